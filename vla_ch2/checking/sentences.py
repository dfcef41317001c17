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

from vla_ch2.checking.inputs import HTML_COMMENT, LIST_MARKER, Speller, normalise, prepare
from vla_ch2.checking.rubrics import FLAGS, Concept, Misconception, Negation, RubricReader, as_rubric
from vla_ch2.taxonomy import CAUSES, CHAPTER, credited_causes, measured, measured_sentence, mechanism_summary


# --- The rubric: rubrics/sentences.json, compiled ------------------------------------------------


@dataclass(frozen=True)
class Symptom:
    """One symptom of §2.4, as a sentence may describe it (``weak``: generic words that decide only alone)."""

    id: str
    label: str
    concept: Concept
    weak: Optional[re.Pattern] = None


@dataclass(frozen=True)
class Diagnostic:
    """One way to tell a cause from the logs: it belongs to ``cause``, comes from ``source``, needs all ``groups``."""

    id: str
    cause: str
    source: str
    label: str
    groups: tuple[Concept, ...]

    def matches(self, text: str) -> bool:
        """Whether every group occurs somewhere in ``text``."""
        return all(group.matches(text) for group in self.groups)

    def said_together(self, text: str, window: int = 160) -> bool:
        """Whether every group occurs within ``window`` characters of one another (one statement, not stray words)."""
        spans = [[m.start() for m in group.regex.finditer(text) if m.end() > m.start()][:50] for group in self.groups]
        if not all(spans):
            return False
        return any(all(any(abs(p - q) <= window for q in others) for others in spans[1:]) for p in spans[0])


@dataclass(frozen=True)
class SentenceRubric:
    """The compiled rubric of Exercise 2.x.4 (``rubrics/sentences.json``)."""

    source: str
    section: str
    template: str
    form: re.Pattern
    cause_marker: re.Pattern
    cause_marker_weak: Optional[re.Pattern]
    diagnostic_marker: re.Pattern
    diagnostic_marker_weak: Optional[re.Pattern]
    negation: Negation
    causes: dict[str, Concept]
    symptoms: dict[str, Symptom]
    diagnostics: tuple[Diagnostic, ...]
    misconceptions: tuple[Misconception, ...]
    speller: Speller


#: Where a diagnostic may come from.
SOURCES = ("chapter", "measured")


def compile_rubric(data: Any, source: str) -> SentenceRubric:
    """Validate and compile the Exercise 2.x.4 rubric."""
    r = RubricReader(source)
    r.header(data, "sentences")
    markers = r.get(data, "markers", dict, "top level")

    def marker(key: str, required: bool) -> Optional[re.Pattern]:
        items = r.patterns(markers, key, "markers", required=required)
        return r.union(items, f"markers.{key}") if items else None

    def words(obj: Any, where: str) -> list[str]:
        found = r.get(obj, "words", list, where, default=[])
        for i, word in enumerate(found):
            if not isinstance(word, str) or not re.fullmatch(r"[a-z_]{3,}", word):
                r.fail(f"{where}.words[{i}]", f"expected a lower-case word, found {word!r}")
        return found

    vocabulary: set[str] = set(r.get(data, "vocabulary", list, "top level", default=[]))
    causes_obj = r.get(data, "causes", dict, "top level")
    causes = {}
    for cid, obj in causes_obj.items():
        if not cid.startswith("_"):
            causes[cid] = r.concept(obj, f"causes.{cid}", default_id=cid)
            vocabulary.update(words(obj, f"causes.{cid}"))
    if not causes:
        r.fail("causes", "needs at least one cause")
    symptoms: dict[str, Symptom] = {}
    for sid, obj in r.get(data, "symptoms", dict, "top level").items():
        if sid.startswith("_"):
            continue
        concept = r.concept(obj, f"symptoms.{sid}", default_id=sid)
        weak = r.patterns(obj, "weak_patterns", f"symptoms.{sid}", required=False)
        symptoms[sid] = Symptom(sid, concept.label, concept,
                                r.union(weak, f"symptoms.{sid}.weak_patterns") if weak else None)
        vocabulary.update(words(obj, f"symptoms.{sid}"))
    if not symptoms:
        r.fail("symptoms", "needs at least one symptom")
    diagnostics = []
    for i, obj in enumerate(r.get(data, "diagnostics", list, "top level")):
        where = f"diagnostics[{i}]"
        cause = r.get(obj, "cause", str, where)
        if cause not in causes:
            r.fail(f"{where}.cause", f"'{cause}' is not one of the causes ({', '.join(causes)})")
        origin = r.get(obj, "source", str, where)
        if origin not in SOURCES:
            r.fail(f"{where}.source", f"expected one of {', '.join(SOURCES)}, found {origin!r}")
        groups = r.get(obj, "groups", list, where)
        if not groups:
            r.fail(f"{where}.groups", "needs at least one concept group")
        diagnostics.append(Diagnostic(
            r.get(obj, "id", str, where), cause, origin, r.get(obj, "label", str, where),
            tuple(r.concept(g, f"{where}.groups[{j}]", default_id=f"group{j}", need_hint=True)
                  for j, g in enumerate(groups))))
    for cid in causes:
        if not any(d.cause == cid for d in diagnostics):
            r.fail("diagnostics", f"cause '{cid}' has no diagnostic")
    form = r.pattern(r.get(markers, "form", str, "markers"), "markers.form")
    return SentenceRubric(
        source=source,
        section=r.get(data, "section", str, "top level", default="§2.4"),
        template=r.get(data, "template", str, "top level"),
        form=re.compile(form, FLAGS),
        cause_marker=marker("cause", True),
        cause_marker_weak=marker("cause_weak", False),
        diagnostic_marker=marker("diagnostic", True),
        diagnostic_marker_weak=marker("diagnostic_weak", False),
        negation=r.negation(r.get(data, "negation", dict, "top level", default={}), "negation",
                            chained=tuple(c.regex.pattern for c in causes.values())),
        causes=causes,
        symptoms=symptoms,
        diagnostics=tuple(diagnostics),
        misconceptions=tuple(
            r.misconception(m, f"misconceptions[{i}]", ("cause", "diagnostic", "any"))
            for i, m in enumerate(r.get(data, "misconceptions", list, "top level", default=[]))
        ),
        speller=Speller(frozenset(vocabulary), min_length=5),
    )


# --- Typos: a misspelt key word is read as the word it was meant to be -----------------------------


def fix_typos(text: str, speller: Speller) -> tuple[str, list[str]]:
    """``text`` with each misspelt key word read as the word (:class:`~vla_ch2.checking.inputs.Speller`).

    Returns the text and the corrections made (``"scribles -> scribbles"``), so
    the feedback can say how a word was read.
    """
    fixes: list[str] = []

    def replace(match: re.Match) -> str:
        word = match.group(0)
        fixed = speller.correct(word)
        if fixed != word:
            fixes.append(f"{word} -> {fixed}")
        return fixed

    return re.sub(r"[a-z]+", replace, text), fixes


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
_LABELLED_PART = re.compile(r"^(?:[-*]\s+)?(?:\*\*|__)?(?:(?:most\s+likely\s+)?cause|diagnos\w*|tell|signature|check)\s*(?:\*\*|__)?\s*:",
                            re.IGNORECASE)
_HAS_WORD = re.compile(r"\w")


def _protected(line: str) -> bytearray:
    """Mark the characters of ``line`` inside matched brackets, backticks or quotes (a stop there never ends a sentence).

    Double and curly quotes pair up as they come; a straight single quote opens
    only after a space or bracket and closes only before a space or punctuation,
    so apostrophes ("the baseline's") are not taken for quotes.
    """
    n = len(line)
    depth = [0] * (n + 1)
    stack: list[tuple[str, int]] = []
    tick = -1
    pairs = {")": "(", "]": "[", "}": "{", "\u201d": "\u201c", "\u2019": "\u2018"}
    for i, ch in enumerate(line):
        if ch == "`":
            if tick < 0:
                tick = i
            else:
                depth[tick] += 1
                depth[i] -= 1
                tick = -1
        elif tick < 0:
            before = line[i - 1] if i else " "
            after = line[i + 1] if i + 1 < n else " "
            closes_quote = ch == '"' or (ch == "'" and not after.isalnum())
            if ch in "'\"" and stack and stack[-1][0] == ch and closes_quote:
                depth[stack.pop()[1]] += 1
                depth[i] -= 1
            elif ch in "([{\u201c\u2018" or ch == '"' or (ch == "'" and (before.isspace() or before in "([{:")):
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
    if _LABELLED_PART.match(line):
        return True  # "Cause: ..." or "Diagnostic: ..." under the line that gave the symptom
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
    logical: list[tuple[list[str], bool]] = []  # physical lines grouped into logical ones; does each open a block?
    previous: Optional[str] = None
    opens_block = True
    for raw in HTML_COMMENT.sub("", text).split("\n"):
        line = raw.strip()
        if not line:
            previous, opens_block = None, True  # a blank line ends a sentence and the answer it belongs to
            continue
        if line.startswith("#") or line.startswith("```"):
            previous = None  # comments and code fences end a sentence, not the answer around them
            continue
        if previous is not None and _continues(previous, line, symptom_regexes):
            logical[-1][0].append(line)
        else:
            logical.append(([line], opens_block))
        previous, opens_block = line, False
    sentences: list[str] = []
    in_answer = False  # the last sentence names a symptom: a following piece may complete it
    lead_in = False  # the last sentence names a cause but no symptom: the symptom may come next ("Probably X. Symptom: Y.")
    for group, opens in logical:
        if opens:
            in_answer = lead_in = False
        for piece in _split_line(LIST_MARKER.sub("", " ".join(group), count=1)):
            piece = LIST_MARKER.sub("", piece.strip(), count=1).strip()
            if not _HAS_WORD.search(piece):
                continue
            reading = _reading_of(piece, rubric)
            names_symptom = any(rx.search(reading) for rx in symptom_regexes)
            names_cause = _mentions_cause(reading, rubric)
            # "Symptom: ... . Cause: ... . Check: ..." is one answer, even when the check's own words
            # ("hovers near zero") read like a symptom, and even across lines, list items and a code block;
            # an unlabelled piece joins only an unfinished answer, and "If ..." always starts a new one.
            if in_answer and not _NEW_SENTENCE.match(piece) and (
                    _LABELLED_PART.match(piece) or not (names_symptom or _complete(sentences[-1], rubric))):
                sentences[-1] += " " + piece
                continue
            if lead_in and names_symptom and not names_cause:
                sentences[-1] += " " + piece
                in_answer, lead_in = True, False
                continue
            sentences.append(piece)
            in_answer = names_symptom
            lead_in = not names_symptom and names_cause
    return sentences


def _reading_of(piece: str, rubric: SentenceRubric) -> str:
    """``piece`` as the grader reads it: normalised, misspelt key words read as meant ("direcion")."""
    return fix_typos(normalise(piece), rubric.speller)[0]


def _mentions_cause(reading: str, rubric: SentenceRubric) -> bool:
    """Whether ``reading`` (see `_reading_of`) mentions any of the causes, negated or not."""
    return any(c.regex.search(reading) for c in rubric.causes.values())


def _complete(sentence: str, rubric: SentenceRubric) -> bool:
    """Whether ``sentence`` already has both a cause and a diagnostic part (a following piece then stands alone).

    A diagnostic marker with nothing after it ("... and the diagnostic is:" before a code block) is not a part yet.
    """
    s = _reading_of(sentence, rubric)
    has_cause = bool(rubric.cause_marker.search(s)) or _mentions_cause(s, rubric)
    marker = rubric.diagnostic_marker.search(s)
    has_diagnostic = bool(marker and _HAS_WORD.search(s[marker.end():])) or any(d.matches(s) for d in rubric.diagnostics)
    return has_cause and has_diagnostic


def split_sentences(text: str, rubric: Any = None) -> list[str]:
    """Split an Exercise 2.x.4 answer into sentences, as the grader sees them.

    One sentence per line, or several on a line ended by ``.``, ``!`` or ``?``.
    Lines starting with ``#`` and HTML comments are ignored, list markers
    ("1.", "1)", "-", "*") are dropped, and a hard-wrapped line that clearly
    continues the previous one is joined to it.

    One answer may also be spread over pieces: "Symptom: ... / Cause: ... /
    Diagnostic:" lines, a code block, "X:", "Y:", "Z:" list items, or the cause
    before the symptom. A piece joins the answer before it when it is labelled
    (Cause:, Diagnostic:, Check:) or names no symptom while that answer still
    lacks its cause or diagnostic. A blank line, a piece naming a symptom, or
    one starting with "If" begins a new answer.

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


#: A negator right before a cause marker ("was not | due to", "is never | caused by").
_NEGATED_MARKER = re.compile(r"\b(?:not|never|hardly)\s*$")


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
    if cause is not None and _is_placeholder(slots["cause"]) and _mentions_cause(s[: cause.start()], rubric):
        slots["cause"] = s[: cause.start()]  # "the missing flip is the most likely cause, and ...": Y comes first
    cause_text = slots.get("cause", s)
    if cause is None and diagnostic is not None and _mentions_cause(s[: diagnostic.start()], rubric):
        cause_text = s[: diagnostic.start()]  # "the flip was done right, so not it; check whether the frame is upside down"
    if cause is not None and _NEGATED_MARKER.search(s, 0, cause.start()):
        cause_text = "not " + cause_text  # "it was not due to the Bridge key": the marker's negation covers the cause
    diagnostic_text = slots.get("diagnostic", slots.get("cause", s))
    return _Parts(s[: marks[0][0]], cause_text, diagnostic_text, slots.get("cause"), slots.get("diagnostic"))


def _which_symptom(text: str, rubric: SentenceRubric) -> Optional[str]:
    """The symptom whose description occurs first in ``text`` (a weak word only if nothing else does), or ``None``."""
    for strength in ("strong", "weak"):
        best: Optional[tuple[int, str]] = None
        for sid, symptom in rubric.symptoms.items():
            regex = symptom.concept.regex if strength == "strong" else symptom.weak
            m = regex.search(text) if regex is not None else None
            if m and m.end() > m.start() and (best is None or m.start() < best[0]):
                best = (m.start(), sid)
        if best:
            return best[1]
    return None


def _named_causes(text: str, rubric: SentenceRubric) -> tuple[list[str], list[str]]:
    """The causes ``text`` names plainly, and those it mentions only negated ("not the prompt")."""
    states = {cid: rubric.negation.state(concept, text) for cid, concept in rubric.causes.items()}
    return ([cid for cid, state in states.items() if state == "named"],
            [cid for cid, state in states.items() if state == "negated"])


def _authority(sources) -> str:
    """How feedback names the authority for a credited cause."""
    said = {"chapter": "as §2.4 says", "measured": "as the drills measure on LIBERO"}
    return " and ".join(said[s] for s in SOURCES if s in sources)


def _reading(sources) -> str:
    """How feedback names whose instrument a diagnostic uses. Only the instrument: the grader does not
    check which way the sentence says the reading goes, so it claims no measured value for it."""
    said = {"chapter": "the reading §2.4 proposes", "measured": "a reading the drills use"}
    return " and ".join(said[s] for s in SOURCES if s in sources)


def _grade_cause(parts: _Parts, symptom: Symptom, rubric: SentenceRubric, credited: dict) -> tuple[Optional[str], bool, list[str]]:
    """Find the one cause (Y) a sentence names and whether it is credited for ``symptom``.

    Returns ``(cause, ok, feedback)``: ``cause`` is the single cause named
    (``None`` if none, or several), ``ok`` whether it is credited.
    """
    if parts.cause_slot is not None and _is_placeholder(parts.cause_slot):
        return None, False, ["Cause: the Y slot is still empty."]
    named, negated = _named_causes(parts.cause, rubric)
    wrong_ideas = [m for m in rubric.misconceptions if m.part in ("cause", "any") and m.found(parts.cause, rubric.negation)]
    notes = [m.feedback for m in wrong_ideas]
    if len(named) > 1:
        return None, False, ["Cause: you name more than one cause; a sentence that names several earns nothing. "
                             "Commit to the single most likely one for this symptom."]
    if not named:
        if negated:
            return None, False, ["Cause: every cause you mention is negated ('not ...', 'rather than ...'), and a "
                                 "negated mention does not count; say plainly what the most likely cause is."] + notes
        return None, False, (notes or [f"Cause: none found. Name the one loop setting that was broken (re-read "
                                       f"{rubric.section} and your drills)."])
    cause = named[0]
    if any(m.fails for m in wrong_ideas):
        return cause, False, ["Cause: besides a cause you also name something that is not a silent failure; "
                              "commit to one cause."] + notes
    if cause not in credited:
        return cause, False, [f"Cause: {rubric.causes[cause].label} does not produce this symptom, neither in "
                              f"{rubric.section} nor in the measured drills; re-read {rubric.section} and compare "
                              "with your own drill logs."] + notes
    return cause, True, [f"Cause: correct, {_authority(credited[cause])}."] + notes


def _grade_diagnostic(parts: _Parts, cause: Optional[str], rubric: SentenceRubric) -> tuple[bool, Optional[str], list[str]]:
    """Check that the diagnostic (Z) belongs to the cause named, and only to it. Returns (ok, source, feedback)."""
    if parts.diagnostic_slot is not None and _is_placeholder(parts.diagnostic_slot):
        return False, None, ["Diagnostic: the Z slot is still empty."]
    text = parts.diagnostic
    wrong_ideas = [m for m in rubric.misconceptions if m.part in ("diagnostic", "any") and m.found(text)]
    notes = [m.feedback for m in wrong_ideas]
    # The named cause's diagnostic may be spread over the sentence; another cause's counts only when said together.
    matched = [d for d in rubric.diagnostics if (d.matches(text) if d.cause == cause else d.said_together(text))]
    owners = sorted({d.cause for d in matched})
    if len(owners) > 1:
        return False, None, ["Diagnostic: you give the diagnostics of several causes; listing them all earns nothing. "
                             "Give the one that tells the cause you named apart from the others."] + notes
    if cause is None:
        return bool(matched), None, notes
    if owners and owners[0] != cause:
        return False, None, ["Diagnostic: what you describe is the signature of another cause, not of the one you "
                             "named; give the signature that tells your cause apart (Exercise 2.x.1)."] + notes
    if matched:
        sources = {d.source for d in matched}
        return True, "chapter" if "chapter" in sources else "measured", [
            f"Diagnostic: it reads the signature of the cause you named, {_reading(sources)}."] + notes
    own = [d for d in rubric.diagnostics if d.cause == cause]
    best = max(own, key=lambda d: sum(g.matches(text) for g in d.groups))
    missing = [g.hint for g in best.groups if not g.matches(text)]
    lead = "Diagnostic: none found" if len(missing) == len(best.groups) else "Diagnostic: incomplete"
    return False, None, [f"{lead}; " + "; ".join(missing) + "."] + notes


def _measured_note(symptom: Symptom, cause: str, credited: dict, facts) -> list[str]:
    """What the drills measured for the credited cause; beside a measured answer, also what §2.4 says."""
    note = measured_sentence(cause, facts)
    if "chapter" in credited[cause] and CHAPTER[cause].symptom == symptom.id and facts.share(cause, symptom.id) == 0:
        note += f" {mechanism_summary(cause)}"
    if credited[cause] == ("measured",):
        chapter = [cid for cid, claim in CHAPTER.items() if claim.symptom == symptom.id]
        return [f"(§2.4 gives {CAUSES[chapter[0]].label} for this symptom.) {note}" if chapter else note]
    return [note]


def _grade_sentence(text: str, rubric: SentenceRubric, facts) -> tuple[dict, bool]:
    """Grade one sentence; return its result entry and whether it covers several symptoms."""
    s, fixes = fix_typos(normalise(text[:MAX_SENTENCE_CHARS]), rubric.speller)
    parts = _parts(s, rubric)
    feedback: list[str] = []
    entry = {"text": text, "symptom": None, "cause": None, "cause_ok": False, "diagnostic_ok": False,
             "authority": [], "feedback": ""}
    if not rubric.form.search(s):
        feedback.append(f"Not in the form '{rubric.template}'; graded anyway.")
    if fixes:
        feedback.append("Read " + ", ".join(fixes) + ".")
    slots = [parts.symptom, parts.cause_slot, parts.diagnostic_slot]
    if parts.cause_slot is not None and parts.diagnostic_slot is not None and all(_is_placeholder(x or "") for x in slots):
        entry["feedback"] = "This slot is still empty: replace each '...' with your own words."
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
        entry["feedback"] = " ".join(feedback)
        return entry, several
    symptom = rubric.symptoms[symptom_id]
    credited = {cid: sources for cid, sources in credited_causes(symptom_id, facts).items() if cid in rubric.causes}
    feedback.append(f"Symptom: {symptom.label}.")
    cause, cause_ok, cause_notes = _grade_cause(parts, symptom, rubric, credited)
    diagnostic_ok, source, diagnostic_notes = _grade_diagnostic(parts, cause, rubric)
    feedback += cause_notes + diagnostic_notes
    if cause_ok and diagnostic_ok:
        feedback += _measured_note(symptom, cause, credited, facts)
    entry.update(symptom=symptom_id, cause=cause, cause_ok=cause_ok, diagnostic_ok=diagnostic_ok,
                 authority=list(credited.get(cause, ())) if cause_ok else [], feedback=" ".join(feedback))
    return entry, several


def grade_sentences(text: str | bytes, rubric: Any = None) -> dict:
    """Grade an Exercise 2.x.4 answer: one sentence per silent failure.

    Parameters
    ----------
    text
        The answer file's content, as ``str`` or raw ``bytes`` (decoded as UTF-8,
        with replacement characters and a note if it is not).
    rubric
        A rubric JSON path (or a dict) to use instead of ``vla_ch2/checking/rubrics/sentences.json``.

    Returns
    -------
    dict
        ``{"sentences": [{"text", "symptom", "cause", "cause_ok", "diagnostic_ok", "authority",
        "feedback"}, ...], "score": int, "out_of": 3, "notes": [str, ...]}``. ``symptom`` is
        ``"scribbles"``, ``"wrong_direction"``, ``"slams"`` or ``None``; ``cause`` the one cause
        the sentence names (``None`` for none or several); ``cause_ok`` whether that cause is
        credited for the symptom, by the chapter or by the measured drills
        (:func:`vla_ch2.taxonomy.credited_causes`), and ``authority`` which of the two
        (``"chapter"``, ``"measured"``); ``diagnostic_ok`` whether the diagnostic belongs to
        that cause and to no other. The score counts each symptom at most once, for a sentence
        with both right. ``notes`` holds feedback about the answer as a whole.

    Raises
    ------
    RubricError
        If the rubric file is unusable.
    TypeError
        If ``text`` is neither ``str`` nor ``bytes``.
    """
    compiled: SentenceRubric = as_rubric("sentences", rubric)
    facts = measured()
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
        entry, several = _grade_sentence(sentence, compiled, facts)
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
            credited = next(s for s in mine if s["cause_ok"] and s["diagnostic_ok"])
            output = credited.get("feedback", "")
        elif not mine:
            output = f"no sentence is about the robot that {symptom.label}"
        else:
            best = max(mine, key=lambda s: s["cause_ok"] + s["diagnostic_ok"])
            output = (f"cause {'ok' if best['cause_ok'] else 'not ok'}, diagnostic "
                      f"{'ok' if best['diagnostic_ok'] else 'not ok'}. {best.get('feedback', '')}").strip()
        tests.append(TestResult(f"sentence: the robot {symptom.label}", int(ok), 1, output))
    return tests, list(result.get("notes", []))
