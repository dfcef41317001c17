"""Exercise 2.x.4, one sentence per failure: split an answer into sentences and grade each.

A sentence has the form "If the robot is doing X, the most likely cause is Y,
and the diagnostic is Z". :func:`grade_sentences` splits the answer
(:func:`split_sentences`), decides which symptom each sentence is about,
and checks its cause and diagnostic against the rubric
(``rubrics/sentences.json``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from vla_ch2.checking.inputs import HTML_COMMENT, LIST_MARKER, normalise, prepare
from vla_ch2.checking.rubrics import SentenceRubric, Symptom, as_rubric

#: At most this many sentences of an answer are graded.
MAX_SENTENCES = 50
#: At most this many characters of one sentence are graded (real ones are a few hundred long).
MAX_SENTENCE_CHARS = 2_000

_TERMINATORS = re.compile(r"[.!?\u3002\uff01\uff1f]+")
_CLOSERS = "\"')]}\u201d\u2019\u00bb*_"
_ABBREVIATIONS = frozenset("e.g i.e etc vs approx cf fig figs sec eq eqs al resp ca incl esp viz ref refs w.r.t ex".split())
_CONTINUATION_WORDS = frozenset(
    "and or but is are was were be the a an of to by with than that because cause diagnostic in on at for from as its their "
    "which when where so then while if".split()
)
_NEW_SENTENCE = re.compile(r"^(?:if|when|whenever)\b", re.IGNORECASE)
_HAS_WORD = re.compile(r"\w")


def _protected(line: str) -> bytearray:
    """Mark the characters of ``line`` that sit inside matched brackets or backticks (a stop there never ends a sentence)."""
    n = len(line)
    depth = [0] * (n + 1)
    stack: list[tuple[str, int]] = []
    tick = -1
    pairs = {")": "(", "]": "[", "}": "{"}
    for i, ch in enumerate(line):
        if ch == "`":
            if tick < 0:
                tick = i
            else:
                depth[tick] += 1
                depth[i] -= 1
                tick = -1
        elif tick < 0:
            if ch in "([{":
                stack.append((ch, i))
            elif ch in pairs and stack and stack[-1][0] == pairs[ch]:
                depth[stack.pop()[1]] += 1
                depth[i] -= 1
    mask = bytearray(n)
    running = 0
    for i in range(n):
        running += depth[i]
        mask[i] = running > 0
    return mask


def _split_line(line: str) -> list[str]:
    """Split one logical line at sentence-ending ``.``, ``!`` and ``?``.

    A stop ends a sentence only when white space (or the end of the line) follows it,
    so ``0.05``, ``np.linalg.norm`` and ``[::-1]`` stay whole; ellipses, common
    abbreviations ("e.g.") and stops inside brackets or backticks never split.
    """
    mask: Optional[bytearray] = None
    pieces, start = [], 0
    for m in _TERMINATORS.finditer(line):
        i, j = m.span()
        k = j
        while k < len(line) and line[k] in _CLOSERS:
            k += 1
        if k < len(line) and not line[k].isspace():
            continue  # 0.05, np.linalg, a URL's ?query
        run = m.group()
        if len(run) > 1 and set(run) == {"."}:
            continue  # an ellipsis
        if run == ".":
            word = re.search(r"([A-Za-z][A-Za-z.]*)$", line[max(0, i - 12): i])
            if word and word.group(1).lower() in _ABBREVIATIONS:
                continue
        if mask is None:
            mask = _protected(line)
        if mask[i]:
            continue
        pieces.append(line[start:k])
        start = k
    pieces.append(line[start:])
    return pieces


def _continues(previous: str, line: str, symptom_regexes: tuple[re.Pattern, ...]) -> bool:
    """Whether ``line`` carries on the sentence of ``previous`` (a hard-wrapped line), rather than starting a new one."""
    if not previous or previous.rstrip(_CLOSERS)[-1:] in ".!?":
        return False
    if LIST_MARKER.match(line) or _NEW_SENTENCE.match(line):
        return False
    last_word = re.search(r"(\w+)\W*$", previous)
    if previous.rstrip()[-1:] in ",;:-([" or (last_word and last_word.group(1).lower() in _CONTINUATION_WORDS):
        return True  # "..., the most likely cause is" + "the prompt template, ..."
    if any(rx.search(normalise(line[:80])) for rx in symptom_regexes):
        return False  # "scribbles: bad prompt" + "wrong direction: no flip": a new answer per line
    return line[:1].islower() or line[:1] in "([`"


def _split(text: str, rubric: SentenceRubric) -> list[str]:
    """Group physical lines into logical ones, then cut those at sentence-ending stops (see `split_sentences`)."""
    symptom_regexes = tuple(s.concept.regex for s in rubric.symptoms.values())
    logical: list[list[str]] = []  # physical lines, grouped into logical ones
    previous: Optional[str] = None
    for raw in HTML_COMMENT.sub("", text).split("\n"):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("```"):
            previous = None  # blank lines, comments and code fences end a sentence
            continue
        if previous is not None and _continues(previous, line, symptom_regexes):
            logical[-1].append(line)
        else:
            logical.append([line])
        previous = line
    sentences = []
    for group in logical:
        for piece in _split_line(LIST_MARKER.sub("", " ".join(group), count=1)):
            piece = LIST_MARKER.sub("", piece.strip(), count=1).strip()
            if _HAS_WORD.search(piece):
                sentences.append(piece)
    return sentences


def split_sentences(text: str, rubric: Any = None) -> list[str]:
    """Split an Exercise 2.x.4 answer into sentences, as the grader sees them.

    One sentence per line, or several on a line ended by ``.``, ``!`` or ``?``.
    Lines starting with ``#`` and HTML comments are ignored, list markers
    ("1.", "1)", "-", "*") are dropped, and a hard-wrapped line that clearly
    continues the previous one is joined to it.

    Parameters
    ----------
    text
        The answer.
    rubric
        A rubric path, dict or compiled rubric; the packaged one by default.

    Returns
    -------
    list of str
        The sentences as written, trimmed.
    """
    return _split(text, as_rubric("sentences", rubric))


# ---------------------------------------------------------------------------
# Exercise 2.x.4: grading one sentence
# ---------------------------------------------------------------------------

_TEMPLATE_WORDS = frozenset("if when whenever the robot arm it is doing does and most likely cause diagnostic then a an".split())
_PLACEHOLDER_WORDS = frozenset("x y z todo tbd xxx answer here your fill in blank symptom".split())


def _is_placeholder(segment: str) -> bool:
    """Whether a part of a sentence is still the stub's empty slot ("...", "___", "X", "TODO")."""
    words = [w for w in re.findall(r"[a-z0-9]+", segment) if w not in _TEMPLATE_WORDS]
    return all(w in _PLACEHOLDER_WORDS for w in words)


@dataclass
class _Parts:
    """A normalised sentence cut into its symptom (X), cause (Y) and diagnostic (Z) parts."""

    symptom: str
    cause: str
    diagnostic: str
    cause_slot: Optional[str]
    diagnostic_slot: Optional[str]


def _parts(s: str, rubric: SentenceRubric) -> _Parts:
    """Cut a normalised sentence at its cause and diagnostic markers ("the most likely cause is", "the diagnostic is")."""
    cause = rubric.cause_marker.search(s)
    if cause is None and rubric.cause_marker_weak is not None:
        cause = rubric.cause_marker_weak.search(s)
    diagnostic = rubric.diagnostic_marker.search(s)
    if diagnostic is None and rubric.diagnostic_marker_weak is not None:
        diagnostic = rubric.diagnostic_marker_weak.search(s, cause.end() if cause else 0)
    if cause and diagnostic and diagnostic.start() < cause.end() and diagnostic.end() > cause.start():
        diagnostic = None  # the two markers overlap: trust the cause marker
    marks = sorted((m.start(), m.end(), name) for m, name in ((cause, "cause"), (diagnostic, "diagnostic")) if m)
    if not marks:
        return _Parts(s, s, s, None, None)
    slots = {}
    for i, (_, end, name) in enumerate(marks):
        stop = marks[i + 1][0] if i + 1 < len(marks) else len(s)
        slots[name] = s[end:stop]
    # Without a cause marker the cause may be anywhere; without a diagnostic marker it follows the cause.
    cause_text = slots.get("cause", s)
    diagnostic_text = slots.get("diagnostic", slots.get("cause", s))
    return _Parts(s[: marks[0][0]], cause_text, diagnostic_text, slots.get("cause"), slots.get("diagnostic"))


def _which_symptom(text: str, rubric: SentenceRubric) -> Optional[str]:
    """The symptom whose description occurs first in ``text``, or ``None``."""
    best: Optional[tuple[int, str]] = None
    for sid, symptom in rubric.symptoms.items():
        m = symptom.concept.regex.search(text)
        if m and m.end() > m.start() and (best is None or m.start() < best[0]):
            best = (m.start(), sid)
    return best[1] if best else None


def _grade_cause(parts: _Parts, symptom: Symptom, rubric: SentenceRubric) -> tuple[bool, list[str]]:
    """Check the cause (Y) against the symptom's cause; negated mentions do not count. Returns (ok, feedback)."""
    section = rubric.section
    if parts.cause_slot is not None and _is_placeholder(parts.cause_slot):
        return False, ["Cause: the Y slot is still empty."]
    states = {cid: rubric.negation.state(concept, parts.cause) for cid, concept in rubric.causes.items()}
    named = [cid for cid, state in states.items() if state == "named"]
    negated = [cid for cid, state in states.items() if state == "negated"]
    wrong_ideas = [m for m in rubric.misconceptions if m.part in ("cause", "any") and m.found(parts.cause, rubric.negation)]
    notes = [m.feedback for m in wrong_ideas]
    failing = any(m.fails for m in wrong_ideas)
    if named == [symptom.cause] and not failing:
        return True, ["Cause: correct."] + notes
    if symptom.cause in named and len(named) > 1:
        return False, ["Cause: you name more than one cause; commit to the single most likely one for this symptom."]
    if symptom.cause in named:
        return False, ["Cause: besides a cause you also name something that is not a silent failure; commit to one cause."] + notes
    if named:
        return False, [f"Cause: the cause you named belongs to another symptom; re-read {section}."] + notes
    if negated:
        return False, [
            "Cause: every cause you mention is negated ('not ...', 'rather than ...'), and a negated mention does not "
            "count; say plainly what the most likely cause is."
        ] + notes
    if notes:
        return False, notes
    return False, [
        f"Cause: none found. Name the one thing in the loop that differs from the working baseline (re-read {section})."
    ]


def _grade_diagnostic(parts: _Parts, symptom: Symptom, rubric: SentenceRubric) -> tuple[bool, list[str]]:
    """Check the diagnostic (Z): every required concept group of the symptom must occur. Returns (ok, feedback)."""
    if parts.diagnostic_slot is not None and _is_placeholder(parts.diagnostic_slot):
        return False, ["Diagnostic: the Z slot is still empty."]
    text = parts.diagnostic
    wrong_ideas = [m for m in rubric.misconceptions if m.part in ("diagnostic", "any") and m.found(text)]
    notes = [m.feedback for m in wrong_ideas]
    failing = any(m.fails for m in wrong_ideas)
    missing = [g for g in symptom.diagnostic if g.required and not g.matches(text)]
    if not missing and not failing:
        return True, ["Diagnostic: correct."] + notes
    if not missing:
        return False, notes
    for other in rubric.symptoms.values():
        if other.id != symptom.id and all(g.matches(text) for g in other.diagnostic if g.required):
            return False, [
                f"Diagnostic: the diagnostic you gave belongs to another symptom; re-read Exercise 2.x.1 and {rubric.section}."
            ] + notes
    required = [g for g in symptom.diagnostic if g.required]
    lead = "Diagnostic: none found" if len(missing) == len(required) else "Diagnostic: incomplete"
    return False, [f"{lead}; " + "; ".join(g.hint for g in missing) + "."] + notes


def _grade_sentence(text: str, rubric: SentenceRubric) -> tuple[dict, bool]:
    """Grade one sentence; return its result entry and whether it covers several symptoms."""
    s = normalise(text[:MAX_SENTENCE_CHARS])
    parts = _parts(s, rubric)
    feedback: list[str] = []
    if not rubric.form.search(s):
        feedback.append(f"Not in the form '{rubric.template}'; graded anyway.")
    slots = [parts.symptom, parts.cause_slot, parts.diagnostic_slot]
    if parts.cause_slot is not None and parts.diagnostic_slot is not None and all(_is_placeholder(x or "") for x in slots):
        entry = {"text": text, "symptom": None, "cause_ok": False, "diagnostic_ok": False,
                 "feedback": "This slot is still empty: replace each '...' with your own words."}
        return entry, False
    symptom_id = _which_symptom(parts.symptom, rubric) or _which_symptom(s, rubric)
    x_part = parts.symptom if symptom_id and _which_symptom(parts.symptom, rubric) else s
    several = sum(1 for sym in rubric.symptoms.values() if sym.concept.regex.search(x_part)) > 1
    if symptom_id is None:
        labels = "; ".join(f"'{sym.label}'" for sym in rubric.symptoms.values())
        empty = parts.cause_slot is not None and _is_placeholder(parts.symptom)
        feedback.append(
            ("Symptom: the X slot is still empty. " if empty else "Symptom: could not tell which symptom this sentence is about. ")
            + f"Describe what the robot does, as {rubric.section} does ({labels}); the cause and diagnostic are checked once the symptom is clear."
        )
        entry = {"text": text, "symptom": None, "cause_ok": False, "diagnostic_ok": False, "feedback": " ".join(feedback)}
        return entry, several
    symptom = rubric.symptoms[symptom_id]
    feedback.append(f"Symptom: {symptom.label}.")
    cause_ok, cause_notes = _grade_cause(parts, symptom, rubric)
    diagnostic_ok, diagnostic_notes = _grade_diagnostic(parts, symptom, rubric)
    feedback += cause_notes + diagnostic_notes
    entry = {"text": text, "symptom": symptom_id, "cause_ok": cause_ok, "diagnostic_ok": diagnostic_ok,
             "feedback": " ".join(feedback)}
    return entry, several


def grade_sentences(text: str | bytes, rubric: Any = None) -> dict:
    """Grade an Exercise 2.x.4 answer: one sentence per silent failure.

    Parameters
    ----------
    text
        The answer file's content, as ``str`` or raw ``bytes`` (decoded as UTF-8,
        with replacement characters and a note if it is not).
    rubric
        A rubric JSON path (or a dict) to use instead of ``vla_ch2/rubrics/sentences.json``.

    Returns
    -------
    dict
        ``{"sentences": [{"text", "symptom", "cause_ok", "diagnostic_ok", "feedback"}, ...],
        "score": int, "out_of": 3, "notes": [str, ...]}``. ``symptom`` is ``"scribbles"``,
        ``"wrong_direction"``, ``"slams"`` or ``None``; the score counts each symptom at most
        once, for a sentence that identifies it with the right cause and diagnostic.
        ``notes`` holds feedback about the answer as a whole.

    Raises
    ------
    RubricError
        If the rubric file is unusable.
    TypeError
        If ``text`` is neither ``str`` nor ``bytes``.
    """
    compiled: SentenceRubric = as_rubric("sentences", rubric)
    prepared = prepare(text)
    out_of = len(compiled.symptoms)
    notes = list(prepared.notes)
    if prepared.binary:
        return {"sentences": [], "score": 0, "out_of": out_of, "notes": notes}
    found = _split(prepared.text, compiled)
    if len(found) > MAX_SENTENCES:
        notes.append(f"Found {len(found):,} sentences; only the first {MAX_SENTENCES} were graded.")
        found = found[:MAX_SENTENCES]
    results, credited, first_seen = [], set(), {}
    for n, sentence in enumerate(found, start=1):
        entry, several = _grade_sentence(sentence, compiled)
        sid = entry["symptom"]
        extra = []
        if several:
            extra.append("This sentence seems to describe more than one symptom; write one sentence per symptom.")
        if sid is not None and sid in first_seen:
            extra.append(f"Sentence {first_seen[sid]} already addresses this symptom; each symptom counts once.")
        elif sid is not None:
            first_seen[sid] = n
        if sid and entry["cause_ok"] and entry["diagnostic_ok"]:
            credited.add(sid)
        if extra:
            entry["feedback"] = " ".join([entry["feedback"]] + extra)
        results.append(entry)
    if not found:
        notes.append(
            "No sentences found (the input is empty, or holds only comments and punctuation). "
            f"Write three sentences of the form '{compiled.template}' (lines starting with # are ignored)."
        )
    elif len(found) != out_of:
        notes.append(f"Found {len(found)} sentence{'s' if len(found) != 1 else ''}; the exercise asks for exactly {out_of}, one per symptom.")
    if found:
        absent = [sym.label for sid, sym in compiled.symptoms.items() if sid not in first_seen]
        if absent:
            notes.append("No sentence addresses: " + "; ".join(f"'{label}'" for label in absent) + ".")
    if len(credited) == out_of:
        notes.append("Full marks: every symptom with the right cause and diagnostic.")
    return {"sentences": results, "score": len(credited), "out_of": out_of, "notes": notes}



def sentence_results(result: dict) -> tuple[list, list[str]]:
    """One graded test per symptom (1 point each) from a :func:`grade_sentences` result, and its notes."""
    from vla_ch2.checking.report import TestResult

    rubric = as_rubric("sentences", None)
    tests = []
    for sid, symptom in rubric.symptoms.items():
        mine = [s for s in result["sentences"] if s.get("symptom") == sid]
        ok = any(s["cause_ok"] and s["diagnostic_ok"] for s in mine)
        if ok:
            output = ""
        elif not mine:
            output = f"no sentence is about the robot that {symptom.label}"
        else:
            best = max(mine, key=lambda s: s["cause_ok"] + s["diagnostic_ok"])
            output = (f"cause {'ok' if best['cause_ok'] else 'not ok'}, diagnostic "
                      f"{'ok' if best['diagnostic_ok'] else 'not ok'}. {best.get('feedback', '')}").strip()
        tests.append(TestResult(f"sentence: the robot {symptom.label}", int(ok), 1, output))
    return tests, list(result.get("notes", []))
