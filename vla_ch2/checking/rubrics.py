"""Rubrics: the JSON files that say what the free-text graders look for, loaded and checked.

A rubric is data an instructor can edit without touching code
(``vla_ch2/checking/rubrics/sentences.json`` and ``worksheet.json``). Its
building block is the *concept group*: one idea, matched by any of its
synonyms (plain phrases, whole words) or regular expressions, always on
:func:`~vla_ch2.checking.inputs.normalise`-d text. This module reads a rubric,
checks every field (a broken rubric is a :class:`RubricError` naming the
file, the place inside it and the problem) and compiles it into the
frozen dataclasses the graders use.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn, Optional

from vla_ch2.checking.inputs import normalise

class RubricError(ValueError):
    """A rubric file that cannot be used. The message names the file, the place in it, and the problem."""


@dataclass(frozen=True)
class Concept:
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
_BLANK_TO_END = re.compile(r"\s*\Z")


@dataclass(frozen=True)
class Negation:
    """Decides whether a mention is negated: "not the flip", "rather than the prompt", "the key is fine".

    ``spans`` are stretches of text in which every mention is set aside: "not X or Y
    but Z" (X and Y), "I first blamed X, but ..." (X).
    """

    before: Optional[re.Pattern]
    after: tuple[re.Pattern, ...]
    spans: tuple[re.Pattern, ...] = ()
    contrast: Optional[re.Pattern] = None
    contrast_end: Optional[re.Pattern] = None
    contrast_unless: Optional[re.Pattern] = None
    affirmed: tuple[re.Pattern, ...] = ()
    affirmed_unless: Optional[re.Pattern] = None

    def negated(self, text: str, match: re.Match) -> bool:
        """Whether ``match`` (a mention inside ``text``) is negated."""
        start, end = match.span()
        if self.before is not None and self.before.search(text[max(0, start - 120): start]):
            return True
        if any(span.start() <= start and end <= span.end() for pattern in self.spans
               for span in pattern.finditer(text, max(0, start - 200), min(len(text), end + 200))):
            return True
        window = text[end: end + 80]
        if any(p.match(window) for p in self.after):
            return True
        return self._contrasted(text, match) or self._affirmed(text, match)

    def _contrasted(self, text: str, match: re.Match) -> bool:
        """ "it was libero_object, not bridge_orig)": a bare "not" after a break, the mention closing the clause."""
        if self.contrast is None or not self.contrast.search(text[max(0, match.start() - 40): match.start()]):
            return False
        if self.contrast_unless is not None and self.contrast_unless.match(match.group(0)):
            return False  # "upside down, not flipped": a verb after the "not" describes the bug
        return (self.contrast_end is None or bool(_BLANK_TO_END.match(text, match.end()))
                or bool(self.contrast_end.match(text, match.end())))

    def _affirmed(self, text: str, match: re.Match) -> bool:
        """ "the image was rotated as it should be": done right, so set aside, unless a "not" in its clause says otherwise."""
        end = match.end()
        if text.count("[", match.start(), end) > text.count("]", match.start(), end) and 0 <= text.find("]", end) - end <= 20:
            end = text.find("]", end) + 1  # "img[::-1" + ", ::-1] rotation was applied correctly"
        done_right = next((m for p in self.affirmed if (m := p.match(text, end))), None)
        if done_right is None:
            return False
        clause = re.split(r"[.,;:!?()\[\]]", text[max(0, match.start() - 60): match.start()])[-1]
        said = f"{clause} {text[match.start(): done_right.end()]}"  # "was not wrapped correctly": the bug itself
        return self.affirmed_unless is None or not self.affirmed_unless.search(said)

    def state(self, concept: Concept, text: str) -> Optional[str]:
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
class Misconception:
    """A known wrong idea: where it is looked for, how it is recognised, and what to say about it."""

    id: str
    part: str
    regex: re.Pattern
    unless: Optional[re.Pattern]
    feedback: str
    fails: bool

    def found(self, text: str, negation: Optional[Negation] = None) -> bool:
        """Whether the misconception is stated (not negated, and without an ``unless`` phrase) in ``text``."""
        if self.unless is not None and self.unless.search(text):
            return False
        for i, m in enumerate(self.regex.finditer(text)):
            if i >= 50:
                break
            if m.end() > m.start() and (negation is None or not negation.negated(text, m)):
                return True
        return False


FLAGS = re.IGNORECASE
_ZERO_WIDTH_PROBE = "a the x 0 0.05 [::-1] - , . is not\n"
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number", float: "a number"}


def _json_type(value: Any) -> str:
    """How JSON would call the type of ``value``, for error messages."""
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


class RubricReader:
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
            compiled = re.compile(text, FLAGS)
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

    def any_of(self, obj: Any, key: str, where: str, anchor: str = "") -> Optional[re.Pattern]:
        """The optional list ``obj[key]`` as one expression matching any of its patterns (``None`` if absent)."""
        found = self.patterns(obj, key, where, required=False)
        return re.compile("(?:" + "|".join(f"(?:{p})" for p in found) + ")" + anchor, FLAGS) if found else None

    def union(self, patterns: list[str], where: str) -> re.Pattern:
        """One compiled regular expression matching any of ``patterns``."""
        if not patterns:
            self.fail(where, "needs at least one entry in 'synonyms' or 'patterns'")
        try:
            return re.compile("|".join(f"(?:{p})" for p in patterns), FLAGS)
        except re.error as exc:  # e.g. the same group name used in two patterns
            self.fail(where, f"the patterns do not combine into one regular expression: {exc}")

    def concept(self, obj: Any, where: str, *, default_id: str = "", need_hint: bool = False) -> Concept:
        """A concept group: ``label``, ``hint``, ``required``, ``negatable``, ``synonyms`` and ``patterns``."""
        cid = self.get(obj, "id", str, where, default=default_id) or default_id
        label = self.get(obj, "label", str, where)
        required = self.get(obj, "required", bool, where, default=True)
        hint = self.get(obj, "hint", str, where, default="")
        if need_hint and required and not hint.strip():
            self.fail(f"{where}.hint", "a required concept needs a hint (shown when it is missing)")
        regex = self.union(self.synonyms(obj, where) + self.patterns(obj, "patterns", where, required=False), where)
        negatable = self.get(obj, "negatable", bool, where, default=False)
        return Concept(cid, label, hint, regex, required, negatable)

    def negation(self, obj: Any, where: str, chained: tuple[str, ...] = ()) -> Negation:
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
                before = re.compile(r"(?<![a-z0-9_])(?:" + "|".join(options) + r")$", FLAGS)
            except re.error as exc:
                self.fail(where, f"the negation lists do not combine into one regular expression: {exc}")
        after = tuple(re.compile(p, FLAGS) for p in self.patterns(obj, "after", where, required=False))
        spans = tuple(re.compile(p, FLAGS) for p in self.patterns(obj, "spans", where, required=False))
        contrast = self.get(obj, "contrast", dict, where, default={})
        affirmed = self.get(obj, "affirmed", dict, where, default={})
        return Negation(before, after, spans,
                        contrast=self.any_of(contrast, "before", f"{where}.contrast", anchor="$"),
                        contrast_end=self.any_of(contrast, "end", f"{where}.contrast"),
                        contrast_unless=self.any_of(contrast, "unless", f"{where}.contrast"),
                        affirmed=tuple(re.compile(p, FLAGS) for p in
                                       self.patterns(affirmed, "after", f"{where}.affirmed", required=False)),
                        affirmed_unless=self.any_of(affirmed, "unless", f"{where}.affirmed"))

    def misconception(self, obj: Any, where: str, parts: tuple[str, ...]) -> Misconception:
        """A misconception: where to look (``part``), ``patterns``, ``unless``, ``feedback`` and ``fails``."""
        mid = self.get(obj, "id", str, where)
        part = self.get(obj, "part", str, where, default="any" if "any" in parts else parts[0])
        if part not in parts:
            self.fail(f"{where}.part", f"expected one of {', '.join(parts)}, found {part!r}")
        regex = self.union(self.synonyms(obj, where) + self.patterns(obj, "patterns", where, required=False), where)
        unless = self.any_of(obj, "unless", where)
        feedback = self.get(obj, "feedback", str, where)
        fails = self.get(obj, "fails", bool, where, default=False)
        return Misconception(mid, part, regex, unless, feedback, fails)

    def header(self, data: Any, kind: str) -> None:
        """Check that ``data`` is a JSON object declaring ``"rubric": kind``."""
        if not isinstance(data, dict):
            self.fail("top level", f"expected a JSON object, found {_json_type(data)}")
        found = self.get(data, "rubric", str, "top level")
        if found != kind:
            self.fail("rubric", f"this is a '{found}' rubric, but the {kind} grader needs a '{kind}' rubric")


#: The rubric kinds and the modules that compile them (each grader module defines ``compile_rubric``).
KINDS = {"sentences": "vla_ch2.checking.sentences", "worksheet": "vla_ch2.checking.worksheet"}


def _compiler(kind: str):
    import importlib

    return importlib.import_module(KINDS[kind]).compile_rubric


def _read_rubric(kind: str, path: Optional[str]) -> tuple[str, Any]:
    """Read a rubric's JSON (the packaged one via importlib.resources when ``path`` is None); return (source, data)."""
    if path is None:
        resource = resources.files(__package__ or "vla_ch2.checking").joinpath("rubrics").joinpath(f"{kind}.json")
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
    return _compiler(kind)(data, source)


def load_rubric(kind: str, path: str | os.PathLike | None = None) -> Any:
    """Load, validate and compile a rubric.

    Parameters
    ----------
    kind
        ``"sentences"`` (Exercise 2.x.4) or ``"worksheet"`` (Exercise 2.x.3).
    path
        A rubric JSON file to use instead of the one shipped in ``vla_ch2/checking/rubrics/``.

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
    if kind not in KINDS:
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


def as_rubric(kind: str, rubric: Any) -> Any:
    """Accept a rubric as None (the packaged one), a path, a dict, or an already compiled rubric."""
    if rubric is None or isinstance(rubric, (str, os.PathLike)):
        return load_rubric(kind, rubric)
    if isinstance(rubric, dict):  # a rubric given as data, e.g. by a test
        return _compiler(kind)(rubric, "<rubric given as a dict>")
    return rubric

