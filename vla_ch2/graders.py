"""Offline self-check graders for the free-text exercises of Chapter 2.

Two exercises end in prose rather than code, and both can be checked offline:

* Exercise 2.x.4, *one sentence per failure*: three sentences of the form
  "If the robot is doing X, the most likely cause is Y, and the diagnostic
  is Z", one for each silent failure of §2.4. `grade_sentences`
  splits the answer into sentences, decides which symptom each one is
  about, and checks its cause and diagnostic against the chapter's taxonomy.
* Exercise 2.x.3, *a one-page paper read*: a worksheet with one heading per
  box of §2.3 (vision encoder, language tokenizer, transformer trunk,
  action head, detokenizer, simulator/embodiment). `grade_worksheet`
  finds the boxes and reports which concepts of OpenVLA's Section 3 each
  one names.

Both graders are concept matchers, not language models. The concepts live
in two JSON rubrics shipped with the package (``vla_ch2/rubrics/``): concept
groups made of synonyms and regular expressions, plus misconceptions with
the feedback to give. An instructor can edit them without touching this
module. Feedback for a wrong part is a hint (what kind of thing is missing,
which section to re-read), never the answer itself.

The module reads top to bottom: input hygiene, text normalisation, rubric
loading, the sentence grader, the worksheet grader, and the ``grade``
command-line sub-app (`grade_app`).
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import re
import sys
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer

__all__ = [
    "MAX_CHARS",
    "MAX_SENTENCES",
    "RubricError",
    "grade_app",
    "grade_sentences",
    "grade_worksheet",
    "load_rubric",
    "normalise",
    "split_sentences",
]

#: At most this many characters of an answer are graded; the rest is ignored (and the feedback says so).
MAX_CHARS = 50_000
#: At most this many sentences of an Exercise 2.x.4 answer are graded.
MAX_SENTENCES = 50
#: At most this many characters of one sentence are graded (real ones are a few hundred long).
MAX_SENTENCE_CHARS = 2_000
#: The command line reads at most this many bytes of a file.
MAX_READ_BYTES = 4 * MAX_CHARS + 16

_PACKAGE = __package__ or "vla_ch2"


# ---------------------------------------------------------------------------
# Input hygiene: bytes or str in, clean text (and notes about what was fixed) out
# ---------------------------------------------------------------------------

_BINARY_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (a .docx or .odt file is one)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
    (b"\x7fELF", "an executable"),
    (b"{\\rtf", "an RTF document"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_BINARY_HOW_TO = "Save your answer as plain text (UTF-8) and grade that file."


@dataclass
class _Input:
    """An answer after decoding: the text to grade, notes for the reader, and whether it looked binary."""

    text: str
    notes: list[str]
    binary: bool = False


def _decode_bytes(data: bytes, notes: list[str]) -> tuple[str, Optional[str], bool]:
    """Decode ``data`` as text; return the text, what it looks like if it is not text at all, and whether it was cut."""
    for magic, what in _BINARY_SIGNATURES:
        if data.startswith(magic):
            return "", what, False
    encoding = "utf-8"
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:  # UTF-16 without a byte-order mark: every other byte is zero
        sample = data[:4096]
        half = max(1, len(sample) // 2)
        if len(sample) >= 4 and sample[1::2].count(0) > 0.4 * half and sample[0::2].count(0) < 0.05 * half:
            encoding = "utf-16-le"
        elif len(sample) >= 4 and sample[0::2].count(0) > 0.4 * half and sample[1::2].count(0) < 0.05 * half:
            encoding = "utf-16-be"
    truncated = len(data) > MAX_READ_BYTES
    chunk = data[:MAX_READ_BYTES]
    try:
        text = codecs.getincrementaldecoder(encoding)("strict").decode(chunk, final=not truncated)
    except UnicodeDecodeError as exc:
        text = chunk.decode(encoding, errors="replace")
        notes.append(
            f"The input is not valid {encoding.upper()} (first bad byte at offset {exc.start}); it was decoded "
            "with replacement characters (U+FFFD), so some characters may be lost. Save the file as UTF-8."
        )
    else:
        if encoding != "utf-8":
            notes.append(f"The input was decoded as {encoding.upper()}; UTF-8 is preferred.")
    return text, None, truncated


def _prepare(data: Any) -> _Input:
    """Turn an answer (``str`` or ``bytes``) into clean text, noting anything unusual about it.

    Parameters
    ----------
    data
        The answer as given: ``str``, ``bytes``, ``bytearray`` or ``memoryview``.

    Returns
    -------
    _Input
        The text with line breaks unified and control characters removed, capped at
        `MAX_CHARS`, and notes describing every repair made.
    """
    notes: list[str] = []
    truncated = False
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if isinstance(data, bytes):
        text, binary_kind, truncated = _decode_bytes(data, notes)
        if binary_kind:
            return _Input("", [f"The input looks like {binary_kind}, not text: nothing was graded. {_BINARY_HOW_TO}"], True)
    elif isinstance(data, str):
        text = data
    else:
        raise TypeError(f"expected the answer as str or bytes, got {type(data).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates cannot be graded (or printed): replace them
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if truncated or len(text) > MAX_CHARS:
        cut = text.rfind("\n", MAX_CHARS - 2_000, MAX_CHARS) if len(text) > MAX_CHARS else len(text)
        text = text[: cut if cut > 0 else MAX_CHARS]
        notes.append(f"The input is too long (the limit is {MAX_CHARS:,} characters); only the first {len(text):,} were graded.")
    sample = text[:8192]
    if sample:
        controls = len(_CONTROL.findall(sample))
        replaced = sample.count("\ufffd")
        if controls > 0.05 * len(sample) or replaced > 0.3 * len(sample):
            return _Input("", notes + [f"The input looks like binary data, not text: nothing was graded. {_BINARY_HOW_TO}"], True)
    text = _CONTROL.sub("", _LINE_BREAKS.sub("\n", text))
    return _Input(text, notes)


# ---------------------------------------------------------------------------
# Normalisation: the form every rubric pattern is matched against
# ---------------------------------------------------------------------------

_ASCII = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
        "\u2248": "~", "\u2264": "<=", "\u2265": ">=", "\u00d7": "x", "\u00b0": " degrees ", "\u00a7": " section ",
    }
)
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_CONTRACTIONS = (
    (re.compile(r"\bcan'?t\b|\bcannot\b"), "can not"),
    (re.compile(r"\bwon'?t\b"), "will not"),
    (re.compile(r"\b(it|that|there|here|what|this)'s\b"), r"\1 is"),
    (re.compile(r"n't\b"), " not"),
)
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Return the form of ``text`` that rubric patterns are matched against.

    Lower case, NFKC, ASCII quotes and dashes, contractions expanded
    ("isn't" becomes "is not"), invisible characters dropped, and runs of
    white space (line breaks included) collapsed to one space.

    Examples
    --------
    >>> normalise("It\u2019s  NOT the \u201cflip\u201d\u2014isn\u2019t it?")
    'it is not the "flip"-is not it?'
    """
    text = unicodedata.normalize("NFKC", text).translate(_ASCII).lower()
    text = _INVISIBLE.sub("", text)
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return _SPACES.sub(" ", text).strip()


# ---------------------------------------------------------------------------
# Rubrics: loading, validating and compiling the JSON data files
# ---------------------------------------------------------------------------


class RubricError(ValueError):
    """A rubric file that cannot be used. The message names the file, the place in it, and the problem."""


@dataclass(frozen=True)
class _Concept:
    """A concept group: one idea, matched by any of its synonyms or regular expressions."""

    id: str
    label: str
    hint: str
    regex: re.Pattern
    required: bool = True
    negatable: bool = False

    def matches(self, text: str) -> bool:
        """Whether the concept occurs in ``text`` (a direct "not ..." in front cancels a negatable one)."""
        for i, m in enumerate(self.regex.finditer(text)):
            if i >= 50:
                break
            if m.end() > m.start() and not (self.negatable and _DIRECT_NOT.search(text, max(0, m.start() - 12), m.start())):
                return True
        return False


_DIRECT_NOT = re.compile(r"(?<![a-z])(?:not|never)\s+$")
_JOINER = re.compile(r"[\s\-_/'\"():`]*")


@dataclass(frozen=True)
class _Negation:
    """Decides whether a mention is negated: "not the flip", "rather than the prompt", "the key is fine"."""

    before: Optional[re.Pattern]
    after: tuple[re.Pattern, ...]

    def negated(self, text: str, match: re.Match) -> bool:
        """Whether ``match`` (a mention inside ``text``) is negated."""
        start, end = match.span()
        if self.before is not None and self.before.search(text[max(0, start - 120): start]):
            return True
        window = text[end: end + 80]
        return any(p.match(window) for p in self.after)

    def state(self, concept: _Concept, text: str) -> Optional[str]:
        """``"named"`` if ``concept`` occurs un-negated in ``text``, ``"negated"`` if only negated, else ``None``.

        Adjacent mentions ("prompt" + "template") form one phrase and share the negation of its first word.
        """
        seen, negated_until = False, -1
        for i, m in enumerate(concept.regex.finditer(text)):
            if i >= 50:
                break
            if m.end() == m.start():
                continue
            if negated_until >= 0 and _JOINER.fullmatch(text, negated_until, m.start()):
                pass  # carries on a negated phrase: "not the prompt" + "template"
            elif not self.negated(text, m):
                return "named"
            seen, negated_until = True, m.end()
        return "negated" if seen else None


@dataclass(frozen=True)
class _Misconception:
    """A known wrong idea: where it is looked for, how it is recognised, and what to say about it."""

    id: str
    part: str
    regex: re.Pattern
    unless: Optional[re.Pattern]
    feedback: str
    fails: bool

    def found(self, text: str, negation: Optional[_Negation] = None) -> bool:
        """Whether the misconception is stated (not negated, and without an ``unless`` phrase) in ``text``."""
        if self.unless is not None and self.unless.search(text):
            return False
        for i, m in enumerate(self.regex.finditer(text)):
            if i >= 50:
                break
            if m.end() > m.start() and (negation is None or not negation.negated(text, m)):
                return True
        return False


@dataclass(frozen=True)
class _Symptom:
    """One silent failure of §2.4: how its symptom is described, its cause, and its diagnostic."""

    id: str
    label: str
    concept: _Concept
    cause: str
    diagnostic: tuple[_Concept, ...]


@dataclass(frozen=True)
class _SentenceRubric:
    """The compiled rubric of Exercise 2.x.4 (``rubrics/sentences.json``)."""

    source: str
    section: str
    template: str
    form: re.Pattern
    cause_marker: re.Pattern
    cause_marker_weak: Optional[re.Pattern]
    diagnostic_marker: re.Pattern
    diagnostic_marker_weak: Optional[re.Pattern]
    negation: _Negation
    causes: dict[str, _Concept]
    symptoms: dict[str, _Symptom]
    misconceptions: tuple[_Misconception, ...]


@dataclass(frozen=True)
class _Box:
    """One box of the §2.3 diagram, as the worksheet rubric describes it."""

    id: str
    title: str
    heading: re.Pattern
    groups: tuple[_Concept, ...]
    misconceptions: tuple[_Misconception, ...]


@dataclass(frozen=True)
class _WorksheetRubric:
    """The compiled rubric of Exercise 2.x.3 (``rubrics/worksheet.json``)."""

    source: str
    section: str
    boxes: tuple[_Box, ...]
    heading_order: tuple[int, ...]
    negation: _Negation


_FLAGS = re.IGNORECASE
_ZERO_WIDTH_PROBE = "a the x 0 0.05 [::-1] - , . is not\n"
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number", float: "a number"}


def _json_type(value: Any) -> str:
    """How JSON would call the type of ``value``, for error messages."""
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


class _RubricReader:
    """Reads one rubric file, turning every problem into a `RubricError` that says where it is."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, problem: str) -> NoReturn:
        raise RubricError(f"{self.source}: {where}: {problem}")

    def get(self, obj: Any, key: str, kind: type, where: str, default: Any = ...) -> Any:
        """``obj[key]``, checked to be of type ``kind``; ``default`` (if given) when the key is absent."""
        if not isinstance(obj, dict):
            self.fail(where, f"expected an object, found {_json_type(obj)}")
        if key not in obj:
            if default is not ...:
                return default
            self.fail(where, f"missing key '{key}'")
        value = obj[key]
        if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
            self.fail(f"{where}.{key}", f"expected {_JSON_TYPES.get(kind, kind.__name__)}, found {_json_type(value)}")
        return value

    def pattern(self, text: Any, where: str) -> str:
        """Check one regular expression: a non-empty string that compiles and never matches empty text."""
        if not isinstance(text, str) or not text.strip():
            self.fail(where, f"expected a non-empty regular expression string, found {_json_type(text)}")
        try:
            compiled = re.compile(text, _FLAGS)
        except re.error as exc:
            self.fail(where, f"invalid regular expression {text!r}: {exc}")
        if any(m.end() == m.start() for m in compiled.finditer(_ZERO_WIDTH_PROBE)):
            self.fail(where, f"regular expression {text!r} can match empty text, so it would match any answer")
        return text

    def patterns(self, obj: Any, key: str, where: str, required: bool = True) -> list[str]:
        """A list of regular expressions under ``obj[key]``, each checked."""
        items = self.get(obj, key, list, where, default=None if not required else ...)
        if items is None:
            return []
        return [self.pattern(p, f"{where}.{key}[{i}]") for i, p in enumerate(items)]

    def synonyms(self, obj: Any, where: str) -> list[str]:
        """Plain phrases, turned into whole-word patterns tolerant of spaces, hyphens and underscores."""
        out = []
        for i, phrase in enumerate(self.get(obj, "synonyms", list, where, default=[])):
            if not isinstance(phrase, str) or not normalise(phrase):
                self.fail(f"{where}.synonyms[{i}]", f"expected a non-empty string, found {_json_type(phrase)}")
            words = [w for w in re.split(r"[\s_-]+", normalise(phrase)) if w]
            body = r"[\s_-]?".join(re.escape(w) for w in words)
            if words[0][0].isalnum():
                body = r"(?<![a-z0-9])" + body
            if words[-1][-1].isalnum():
                body += r"(?![a-z0-9])"
            out.append(body)
        return out

    def union(self, patterns: list[str], where: str) -> re.Pattern:
        """One compiled regular expression matching any of ``patterns``."""
        if not patterns:
            self.fail(where, "needs at least one entry in 'synonyms' or 'patterns'")
        try:
            return re.compile("|".join(f"(?:{p})" for p in patterns), _FLAGS)
        except re.error as exc:  # e.g. the same group name used in two patterns
            self.fail(where, f"the patterns do not combine into one regular expression: {exc}")

    def concept(self, obj: Any, where: str, *, default_id: str = "", need_hint: bool = False) -> _Concept:
        """A concept group: ``label``, ``hint``, ``required``, ``negatable``, ``synonyms`` and ``patterns``."""
        cid = self.get(obj, "id", str, where, default=default_id) or default_id
        label = self.get(obj, "label", str, where)
        required = self.get(obj, "required", bool, where, default=True)
        hint = self.get(obj, "hint", str, where, default="")
        if need_hint and required and not hint.strip():
            self.fail(f"{where}.hint", "a required concept needs a hint (shown when it is missing)")
        regex = self.union(self.synonyms(obj, where) + self.patterns(obj, "patterns", where, required=False), where)
        negatable = self.get(obj, "negatable", bool, where, default=False)
        return _Concept(cid, label, hint, regex, required, negatable)

    def negation(self, obj: Any, where: str, chained: tuple[str, ...] = ()) -> _Negation:
        """Build the negation test; ``chained`` patterns (other causes) may sit between a negator and a mention:
        in "not the prompt or the unnorm key" both causes are negated."""
        strong = self.patterns(obj, "strong", where, required=False)
        weak = self.patterns(obj, "weak", where, required=False)
        filler = self.patterns(obj, "filler", where, required=False)
        if filler and chained:
            filler += [*chained, r"or", r"nor", r"and"]
        most = self.get(obj, "max_filler", int, where, default=4)
        if not 0 <= most <= 10:
            self.fail(f"{where}.max_filler", f"expected a number from 0 to 10, found {most}")
        sep = r"[\s\"'(\[`]+"
        fill = f"(?:(?:{'|'.join(filler)}){sep})" if filler else None
        options = []
        if strong:
            options.append(f"(?:{'|'.join(strong)}){sep}" + (f"{fill}{{0,{most}}}" if fill else ""))
        if weak and fill and most >= 1:
            options.append(f"(?:{'|'.join(weak)}){sep}{fill}{{1,{most}}}")
        before = None
        if options:
            try:
                before = re.compile(r"(?<![a-z0-9_])(?:" + "|".join(options) + r")$", _FLAGS)
            except re.error as exc:
                self.fail(where, f"the negation lists do not combine into one regular expression: {exc}")
        after = tuple(re.compile(p, _FLAGS) for p in self.patterns(obj, "after", where, required=False))
        return _Negation(before, after)

    def misconception(self, obj: Any, where: str, parts: tuple[str, ...]) -> _Misconception:
        """A misconception: where to look (``part``), ``patterns``, ``unless``, ``feedback`` and ``fails``."""
        mid = self.get(obj, "id", str, where)
        part = self.get(obj, "part", str, where, default="any" if "any" in parts else parts[0])
        if part not in parts:
            self.fail(f"{where}.part", f"expected one of {', '.join(parts)}, found {part!r}")
        regex = self.union(self.synonyms(obj, where) + self.patterns(obj, "patterns", where, required=False), where)
        unless_list = self.patterns(obj, "unless", where, required=False)
        unless = re.compile("|".join(f"(?:{p})" for p in unless_list), _FLAGS) if unless_list else None
        feedback = self.get(obj, "feedback", str, where)
        fails = self.get(obj, "fails", bool, where, default=False)
        return _Misconception(mid, part, regex, unless, feedback, fails)

    def header(self, data: Any, kind: str) -> None:
        """Check that ``data`` is a JSON object declaring ``"rubric": kind``."""
        if not isinstance(data, dict):
            self.fail("top level", f"expected a JSON object, found {_json_type(data)}")
        found = self.get(data, "rubric", str, "top level")
        if found != kind:
            self.fail("rubric", f"this is a '{found}' rubric, but the {kind} grader needs a '{kind}' rubric")


def _compile_sentences(data: Any, source: str) -> _SentenceRubric:
    """Validate and compile the Exercise 2.x.4 rubric."""
    r = _RubricReader(source)
    r.header(data, "sentences")
    markers = r.get(data, "markers", dict, "top level")

    def marker(key: str, required: bool) -> Optional[re.Pattern]:
        items = r.patterns(markers, key, "markers", required=required)
        return r.union(items, f"markers.{key}") if items else None

    causes_obj = r.get(data, "causes", dict, "top level")
    causes = {
        cid: r.concept(obj, f"causes.{cid}", default_id=cid) for cid, obj in causes_obj.items() if not cid.startswith("_")
    }
    if not causes:
        r.fail("causes", "needs at least one cause")
    symptoms: dict[str, _Symptom] = {}
    for sid, obj in r.get(data, "symptoms", dict, "top level").items():
        if sid.startswith("_"):
            continue
        where = f"symptoms.{sid}"
        cause = r.get(obj, "cause", str, where)
        if cause not in causes:
            r.fail(f"{where}.cause", f"'{cause}' is not one of the causes ({', '.join(causes)})")
        groups = r.get(obj, "diagnostic", list, where)
        if not groups:
            r.fail(f"{where}.diagnostic", "needs at least one concept group")
        diagnostic = tuple(
            r.concept(g, f"{where}.diagnostic[{i}]", default_id=f"group{i}", need_hint=True) for i, g in enumerate(groups)
        )
        concept = r.concept(obj, where, default_id=sid)
        symptoms[sid] = _Symptom(sid, concept.label, concept, cause, diagnostic)
    if not symptoms:
        r.fail("symptoms", "needs at least one symptom")
    form = r.pattern(r.get(markers, "form", str, "markers"), "markers.form")
    return _SentenceRubric(
        source=source,
        section=r.get(data, "section", str, "top level", default="§2.4"),
        template=r.get(data, "template", str, "top level"),
        form=re.compile(form, _FLAGS),
        cause_marker=marker("cause", True),
        cause_marker_weak=marker("cause_weak", False),
        diagnostic_marker=marker("diagnostic", True),
        diagnostic_marker_weak=marker("diagnostic_weak", False),
        negation=r.negation(r.get(data, "negation", dict, "top level", default={}), "negation",
                            chained=tuple(c.regex.pattern for c in causes.values())),
        causes=causes,
        symptoms=symptoms,
        misconceptions=tuple(
            r.misconception(m, f"misconceptions[{i}]", ("cause", "diagnostic", "any"))
            for i, m in enumerate(r.get(data, "misconceptions", list, "top level", default=[]))
        ),
    )


def _compile_worksheet(data: Any, source: str) -> _WorksheetRubric:
    """Validate and compile the Exercise 2.x.3 rubric."""
    r = _RubricReader(source)
    r.header(data, "worksheet")
    boxes = []
    for i, obj in enumerate(r.get(data, "boxes", list, "top level")):
        where = f"boxes[{i}]"
        bid = r.get(obj, "id", str, where)
        title = r.get(obj, "title", str, where)
        headings = r.get(obj, "headings", dict, where)
        heading = r.union(r.synonyms(headings, f"{where}.headings") + r.patterns(headings, "patterns", f"{where}.headings", False),
                          f"{where}.headings")
        groups = tuple(
            r.concept(g, f"{where}.groups[{j}]", default_id=f"group{j}", need_hint=True)
            for j, g in enumerate(r.get(obj, "groups", list, where))
        )
        if not any(g.required for g in groups):
            r.fail(f"{where}.groups", "needs at least one group with \"required\": true")
        miscs = tuple(
            r.misconception(m, f"{where}.misconceptions[{j}]", ("any",))
            for j, m in enumerate(r.get(obj, "misconceptions", list, where, default=[]))
        )
        boxes.append(_Box(bid, title, heading, groups, miscs))
    if not boxes:
        r.fail("boxes", "needs at least one box")
    ids = [b.id for b in boxes]
    if len(set(ids)) != len(ids):
        r.fail("boxes", "two boxes share an id")
    order_obj = r.get(data, "heading_order", dict, "top level", default={"order": ids})
    order = r.get(order_obj, "order", list, "heading_order")
    if sorted(map(str, order)) != sorted(ids):
        r.fail("heading_order.order", f"must list every box id exactly once ({', '.join(ids)})")
    return _WorksheetRubric(
        source=source,
        section=r.get(data, "section", str, "top level", default="Section 3 of the OpenVLA paper"),
        boxes=tuple(boxes),
        heading_order=tuple(ids.index(b) for b in order),
        negation=r.negation(r.get(data, "negation", dict, "top level", default={}), "negation"),
    )


_COMPILERS = {"sentences": _compile_sentences, "worksheet": _compile_worksheet}


def _read_rubric(kind: str, path: Optional[str]) -> tuple[str, Any]:
    """Read a rubric's JSON (the packaged one via importlib.resources when ``path`` is None); return (source, data)."""
    if path is None:
        resource = resources.files(_PACKAGE).joinpath("rubrics").joinpath(f"{kind}.json")
        source = str(resource)
        try:
            raw = resource.read_bytes()
        except OSError as exc:
            raise RubricError(f"{source}: cannot read the packaged rubric ({exc}); reinstall vla-ch2") from None
    else:
        source = path
        try:
            raw = Path(path).read_bytes()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise RubricError(f"{source}: cannot read the rubric file: {reason}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RubricError(f"{source}: not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8") from None
    try:
        return source, json.loads(text)
    except json.JSONDecodeError as exc:
        raise RubricError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise RubricError(f"{source}: not valid JSON: nested too deeply") from None


@functools.lru_cache(maxsize=16)
def _load_cached(kind: str, path: Optional[str], stamp: Any) -> Any:
    source, data = _read_rubric(kind, path)
    return _COMPILERS[kind](data, source)


def load_rubric(kind: str, path: str | os.PathLike | None = None) -> Any:
    """Load, validate and compile a rubric.

    Parameters
    ----------
    kind
        ``"sentences"`` (Exercise 2.x.4) or ``"worksheet"`` (Exercise 2.x.3).
    path
        A rubric JSON file to use instead of the one shipped in ``vla_ch2/rubrics/``.

    Returns
    -------
    object
        The compiled rubric (cached until the file changes).

    Raises
    ------
    RubricError
        If the file is missing, is not JSON, or does not have the expected structure;
        the message names the file, the place inside it and the problem.
    """
    if kind not in _COMPILERS:
        raise ValueError(f"unknown rubric kind {kind!r}; expected 'sentences' or 'worksheet'")
    if path is None:
        return _load_cached(kind, None, None)
    path = os.fspath(path)
    try:
        stat = os.stat(path)
        stamp: Any = (stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError):
        stamp = object()  # unreadable: do not cache; the read reports the problem
    return _load_cached(kind, path, stamp)


def _as_rubric(kind: str, rubric: Any) -> Any:
    """Accept a rubric as None (the packaged one), a path, a dict, or an already compiled rubric."""
    if rubric is None or isinstance(rubric, (str, os.PathLike)):
        return load_rubric(kind, rubric)
    if isinstance(rubric, dict):  # a rubric given as data, e.g. by a test
        return _COMPILERS[kind](rubric, "<rubric given as a dict>")
    return rubric


# ---------------------------------------------------------------------------
# Exercise 2.x.4: splitting an answer into sentences
# ---------------------------------------------------------------------------

_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_LIST_MARKER = re.compile(
    r"^\s*(?:>[>\s]*|(?:[-*+\u2022\u25e6\u2023\u25aa\u2013\u2014](?:\s+\[[ xX]?\])?|\*\*\d{1,3}[.)]\*\*|\(?\d{1,3}[.)]"
    r"|\(?[a-zA-Z]\)|(?:sentence|failure|symptom|answer|case)\s*#?\s*\d{1,3}\s*[:.)-])(?:\s+|$|(?-i:(?=[A-Z]))))+",
    re.IGNORECASE,
)
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
    if _LIST_MARKER.match(line) or _NEW_SENTENCE.match(line):
        return False
    last_word = re.search(r"(\w+)\W*$", previous)
    if previous.rstrip()[-1:] in ",;:-([" or (last_word and last_word.group(1).lower() in _CONTINUATION_WORDS):
        return True  # "..., the most likely cause is" + "the prompt template, ..."
    if any(rx.search(normalise(line[:80])) for rx in symptom_regexes):
        return False  # "scribbles: bad prompt" + "wrong direction: no flip": a new answer per line
    return line[:1].islower() or line[:1] in "([`"


def _split(text: str, rubric: _SentenceRubric) -> list[str]:
    """Group physical lines into logical ones, then cut those at sentence-ending stops (see `split_sentences`)."""
    symptom_regexes = tuple(s.concept.regex for s in rubric.symptoms.values())
    logical: list[list[str]] = []  # physical lines, grouped into logical ones
    previous: Optional[str] = None
    for raw in _HTML_COMMENT.sub("", text).split("\n"):
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
        for piece in _split_line(_LIST_MARKER.sub("", " ".join(group), count=1)):
            piece = _LIST_MARKER.sub("", piece.strip(), count=1).strip()
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
    return _split(text, _as_rubric("sentences", rubric))


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


def _parts(s: str, rubric: _SentenceRubric) -> _Parts:
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


def _which_symptom(text: str, rubric: _SentenceRubric) -> Optional[str]:
    """The symptom whose description occurs first in ``text``, or ``None``."""
    best: Optional[tuple[int, str]] = None
    for sid, symptom in rubric.symptoms.items():
        m = symptom.concept.regex.search(text)
        if m and m.end() > m.start() and (best is None or m.start() < best[0]):
            best = (m.start(), sid)
    return best[1] if best else None


def _grade_cause(parts: _Parts, symptom: _Symptom, rubric: _SentenceRubric) -> tuple[bool, list[str]]:
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


def _grade_diagnostic(parts: _Parts, symptom: _Symptom, rubric: _SentenceRubric) -> tuple[bool, list[str]]:
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


def _grade_sentence(text: str, rubric: _SentenceRubric) -> tuple[dict, bool]:
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
    compiled: _SentenceRubric = _as_rubric("sentences", rubric)
    prepared = _prepare(text)
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


# ---------------------------------------------------------------------------
# Exercise 2.x.3: the box-by-box worksheet
# ---------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?!#)(.*)$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_BOLD_LINE = re.compile(r"^\s*(?:\*\*|__)(.+?)(?:\*\*|__)\s*:?\s*$")
_LABEL_LINE = re.compile(r"^\s*(?:[-*]\s+)?(?:\*\*|__)?([^:*_]{2,60}?)(?:\*\*|__)?\s*[:\u2014\u2013]\s*(?:\*\*|__)?\s*(.*)$")
_BOX_PREFIX = re.compile(r"^\s*(?:(?:box|part|step)\s*#?\s*\d{1,2}\s*[:.)\-]?\s*|\d{1,2}\s*[.):\-]\s*)", re.IGNORECASE)


@dataclass
class _Section:
    """The text a worksheet gives one box: its heading and the lines under it."""

    heading: str
    body: list[str]


def _box_of(label: str, rubric: _WorksheetRubric, how: str) -> Optional[int]:
    """The index of the box a heading names, trying specific box names before generic ones.

    ``how`` says how sure we are that ``label`` is a heading: a Markdown heading
    (``"heading"``) only has to contain a box name; a bold line or the label of a
    ``Label: text`` line (``"label"``) must be short (four words at most) or exactly a
    box name; a plain line (``"line"``) must be exactly a box name, so prose never opens a box.
    """
    text = normalise(_BOX_PREFIX.sub("", label)).strip(" :*_#.-")
    if not text or len(text) > 120:
        return None
    contains = how == "heading" or (how == "label" and len(text.split()) <= 4)
    for index in rubric.heading_order:
        heading = rubric.boxes[index].heading
        if heading.search(text) if contains else heading.fullmatch(text):
            return index
    return None


def _inline_heading(line: str, rubric: _WorksheetRubric) -> tuple[Optional[int], str, str]:
    """Read ``**Vision encoder**``, ``Vision encoder: text`` or a bare ``Vision encoder`` line as a box heading.

    Returns the box index (or ``None``), the heading text, and the text after the label.
    """
    if len(line) > 300:
        return None, "", ""
    candidates = []
    bold = _BOLD_LINE.match(line)
    if bold:
        candidates.append((bold.group(1), "", "label"))
    labelled = _LABEL_LINE.match(line)
    if labelled:
        candidates.append((labelled.group(1), labelled.group(2), "label"))
    if len(line.strip()) <= 50:
        candidates.append((line, "", "line"))
    for label, rest, how in candidates:
        box = _box_of(label, rubric, how)
        if box is not None:
            return box, label, rest
    return None, "", ""


def _worksheet_sections(text: str, rubric: _WorksheetRubric) -> tuple[dict[int, list[_Section]], list[str]]:
    """Find the box headings of a worksheet; return each box's sections and the lines under no box."""
    lines = _HTML_COMMENT.sub("", text).split("\n")
    sections: dict[int, list[_Section]] = {}
    loose: list[str] = []
    current: Optional[_Section] = None
    level = 7  # the heading level of the current box; 7 for bold and label lines
    fenced = False
    for i, line in enumerate(lines):
        fence = bool(_FENCE.match(line))
        fenced = fenced != fence
        if fenced or fence:  # code blocks are content, never headings
            (current.body if current else loose).append(line)
            continue
        heading_level, label = None, ""
        atx = _ATX.match(line)
        if atx:
            heading_level, label = len(atx.group(1)), atx.group(2).strip().rstrip("#").strip()
        elif i + 1 < len(lines) and line.strip() and _SETEXT.match(lines[i + 1]) and not _LIST_MARKER.match(line):
            heading_level, label = (1 if lines[i + 1].strip()[0] == "=" else 2), line
        elif _SETEXT.match(line) and i > 0 and lines[i - 1].strip():
            continue  # the underline of a setext heading
        if heading_level is not None:
            box = _box_of(label, rubric, "heading")
            if box is not None:
                current, level = _Section(label, []), heading_level
                sections.setdefault(box, []).append(current)
            elif current is not None and heading_level <= level:
                current = None  # a sibling heading that names no box ends the box
            continue
        box, label, rest = _inline_heading(line, rubric)
        if box is not None:
            current, level = _Section(label, [rest]), 7
            sections.setdefault(box, []).append(current)
        else:
            (current.body if current else loose).append(line)
    return sections, loose


def _grade_box(box: _Box, found: list[_Section], rubric: _WorksheetRubric) -> dict:
    """Grade one box from the sections that name it: matched concepts, hints for the missing ones, feedback."""
    if not found:
        return {"box": box.title, "found": False, "matched": [], "missing": [g.hint for g in box.groups if g.required],
                "ok": False,
                "feedback": f"No heading for this box: add one such as '## {box.title}' and write the design choice under it."}
    body = normalise("\n".join("\n".join(s.body) for s in found))
    text = normalise(" ".join(s.heading for s in found)) + " " + body
    matched = [g.label for g in box.groups if g.matches(text)]
    missing = [g for g in box.groups if g.required and not g.matches(text)]
    feedback = []
    if len(found) > 1:
        feedback.append(f"{len(found)} headings name this box; their text was graded together.")
    if not missing:
        feedback.append("All required concepts found.")
        extra = [g.hint for g in box.groups if not g.required and g.hint and not g.matches(text)]
        if extra:
            feedback.append("You could also mention: " + "; ".join(extra) + ".")
    elif not re.search(r"\w", body) and len(missing) == len([g for g in box.groups if g.required]):
        feedback.append(f"This box is still empty: write the sentence from {rubric.section} that names its design choice, in your own words.")
    else:
        feedback.append("Missing: " + "; ".join(g.hint for g in missing) + f". Re-read {rubric.section}.")
        required = [g for g in box.groups if g.required]
        for other in rubric.boxes if len(missing) == len(required) else ():
            if other.id != box.id and all(g.matches(body) for g in other.groups if g.required):
                feedback.append(f"This text reads like the answer for '{other.title}'; check that each answer sits under its own heading.")
                break
    feedback += [m.feedback for m in box.misconceptions if m.found(text, rubric.negation)]
    return {"box": box.title, "found": True, "matched": matched, "missing": [g.hint for g in missing], "ok": not missing,
            "feedback": " ".join(feedback)}


def grade_worksheet(text: str | bytes, rubric: Any = None) -> dict:
    """Grade an Exercise 2.x.3 worksheet: one heading per box of §2.3, each naming OpenVLA's design choice.

    Headings may be Markdown headings of any level (``## Vision encoder``,
    ``### Box 1: Vision encoder``), bold lines, or ``Vision encoder: ...`` label
    lines; matching ignores case. A box passes when all of its required concept
    groups occur in its text, in any wording the rubric's synonyms and patterns allow.

    Parameters
    ----------
    text
        The worksheet's content, as ``str`` or raw ``bytes``.
    rubric
        A rubric JSON path (or a dict) to use instead of ``vla_ch2/rubrics/worksheet.json``.

    Returns
    -------
    dict
        ``{"boxes": [{"box", "found", "matched", "missing", "ok", "feedback"}, ...], "score": int,
        "out_of": 6, "notes": [str, ...]}``, boxes in the order of §2.3. ``matched`` lists the
        concepts found; ``missing`` gives a hint for each required concept not found.

    Raises
    ------
    RubricError
        If the rubric file is unusable.
    TypeError
        If ``text`` is neither ``str`` nor ``bytes``.
    """
    compiled: _WorksheetRubric = _as_rubric("worksheet", rubric)
    prepared = _prepare(text)
    notes = list(prepared.notes)
    sections, loose = _worksheet_sections(prepared.text, compiled)
    boxes = [_grade_box(box, sections.get(i, []), compiled) for i, box in enumerate(compiled.boxes)]
    if not prepared.binary:  # (for binary input, _prepare's note already says why nothing was graded)
        if not re.search(r"\w", _HTML_COMMENT.sub("", prepared.text)):
            notes.append("The worksheet is empty. Start from exercises/worksheet.md: one heading per box, your sentence under each.")
        elif not sections:
            notes.append(
                "No box headings found. Give each box its own heading, e.g. '## Vision encoder', '## Language tokenizer', "
                "'## Transformer trunk', '## Action head', '## Detokenizer', '## Simulator / embodiment'."
            )
    stray = normalise("\n".join(loose))
    misplaced = [box.title for i, box in enumerate(compiled.boxes)
                 if i not in sections and all(g.matches(stray) for g in box.groups if g.required)]
    if misplaced:
        notes.append("Text outside any box heading covers: " + ", ".join(misplaced) + "; move it under the box's own heading.")
    score = sum(1 for b in boxes if b["ok"])
    if score == len(boxes):
        notes.append("Full marks: every box names its design choice.")
    return {"boxes": boxes, "score": score, "out_of": len(boxes), "notes": notes}


# ---------------------------------------------------------------------------
# The ``grade`` command-line sub-app
# ---------------------------------------------------------------------------

grade_app = typer.Typer(
    name="grade",
    help="Offline self-checks for the free-text exercises: 'sentences' (Exercise 2.x.4) and 'worksheet' (Exercise 2.x.3). "
    "Exit code 0 for full marks, 1 otherwise, 2 when the input or the rubric cannot be read.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _InputError(Exception):
    """An answer file that cannot be read; the message says what, where, and what to do."""


def _read_answer(file: str, stub: str) -> bytes:
    """Read at most `MAX_READ_BYTES` bytes of ``file`` (``-`` is standard input)."""
    if file == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:
            return (sys.stdin.read(MAX_READ_BYTES + 1) or "").encode("utf-8", "surrogatepass")
        return stream.read(MAX_READ_BYTES + 1)
    try:
        path = Path(file)
        if path.is_dir():
            raise _InputError(f"{file} is a directory, not a file. Pass the answer file itself, e.g. {stub}.")
        with path.open("rb") as handle:
            return handle.read(MAX_READ_BYTES + 1)
    except _InputError:
        raise
    except FileNotFoundError:
        raise _InputError(f"{file}: no such file (looked in {Path.cwd()}). Check the path; the exercise stub is {stub}.") from None
    except PermissionError:
        raise _InputError(f"{file}: permission denied. Make the file readable (chmod u+r) or copy it somewhere you can read.") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _InputError(f"{file}: cannot read it ({reason}). Pass the path of a plain-text file such as {stub}.") from None


def _echo(text: str = "", err: bool = False) -> None:
    """Print ``text`` without ever failing on characters the terminal's encoding lacks."""
    stream = sys.stderr if err else sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    typer.echo(text.encode(encoding, "replace").decode(encoding, "replace"), err=err)


def _short(text: str, width: int = 100) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _report_sentences(file: str, result: dict) -> None:
    """Print the human-readable report of an Exercise 2.x.4 result."""
    _echo(f"Exercise 2.x.4, one sentence per failure: {file}")
    for n, s in enumerate(result["sentences"], start=1):
        _echo(f"\n{n}. \"{_short(s['text'])}\"")
        _echo(f"   symptom:    {s['symptom'] or 'not recognised'}")
        _echo(f"   cause:      {'ok' if s['cause_ok'] else 'not ok'}")
        _echo(f"   diagnostic: {'ok' if s['diagnostic_ok'] else 'not ok'}")
        _echo(f"   feedback:   {s['feedback']}")
    for note in result.get("notes", []):
        _echo(f"\nnote: {note}")
    _echo(f"\nscore: {result['score']}/{result['out_of']}")


def _report_worksheet(file: str, result: dict) -> None:
    """Print the human-readable report of an Exercise 2.x.3 result."""
    _echo(f"Exercise 2.x.3, a one-page paper read: {file}")
    for b in result["boxes"]:
        _echo(f"\n[{'ok' if b['ok'] else '--'}] {b['box']}{'' if b['found'] else ' (heading not found)'}")
        if b["matched"]:
            _echo("     matched: " + "; ".join(b["matched"]))
        if b["missing"]:
            _echo("     missing: " + "; ".join(b["missing"]))
        _echo(f"     {b['feedback']}")
    for note in result.get("notes", []):
        _echo(f"\nnote: {note}")
    _echo(f"\nscore: {result['score']}/{result['out_of']}")


def _run(kind: str, file: str, as_json: bool, rubric: Optional[str]) -> None:
    """Read, grade and report; exit 0 for full marks, 1 otherwise, 2 when nothing could be graded."""
    grader, report, stub = {
        "sentences": (grade_sentences, _report_sentences, "exercises/sentences.txt"),
        "worksheet": (grade_worksheet, _report_worksheet, "exercises/worksheet.md"),
    }[kind]
    error = None
    try:
        result = grader(_read_answer(file, stub), rubric=rubric)
    except _InputError as exc:
        error = str(exc)
    except RubricError as exc:
        error = f"the rubric cannot be used: {exc}. Fix the file, or drop --rubric to use the packaged one."
    except Exception as exc:  # a grader bug must never reach the reader as a traceback
        error = f"the grader failed on {file} ({type(exc).__name__}: {exc}). Please report this with the file attached."
    if error is not None:
        if as_json:
            _echo(json.dumps({"error": error, "file": file, "exit_code": 2}))
        _echo(f"error: {error}", err=True)
        raise typer.Exit(2)
    if as_json:
        _echo(json.dumps(result, ensure_ascii=True))
    else:
        report(file, result)
    raise typer.Exit(0 if result["score"] == result["out_of"] else 1)


_FILE_HELP = "The answer file ('-' reads standard input)."
_JSON_HELP = "Print exactly one JSON object instead of the report."
_RUBRIC_HELP = "A rubric JSON file to use instead of the packaged one (for instructors)."


@grade_app.command("sentences")
def sentences_command(
    file: str = typer.Argument(..., help=_FILE_HELP),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
    rubric: Optional[str] = typer.Option(None, "--rubric", metavar="RUBRIC", help=_RUBRIC_HELP),
) -> None:
    """Grade Exercise 2.x.4: one 'If the robot is doing X, the most likely cause is Y, and the diagnostic is Z' sentence per failure."""
    _run("sentences", file, as_json, rubric)


@grade_app.command("worksheet")
def worksheet_command(
    file: str = typer.Argument(..., help=_FILE_HELP),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
    rubric: Optional[str] = typer.Option(None, "--rubric", metavar="RUBRIC", help=_RUBRIC_HELP),
) -> None:
    """Grade Exercise 2.x.3: the six boxes of section 2.3, each naming OpenVLA's design choice from Section 3."""
    _run("worksheet", file, as_json, rubric)


if __name__ == "__main__":  # python -m vla_ch2.graders sentences FILE
    grade_app()
