"""Reading what a reader hands in: answer files as clean text, exercise files as modules.

Everything ``vla-ch2 check`` reads passes through here, so every problem with
an input becomes one clear :class:`InputError` (what, where, what to do) and
never a traceback:

* :func:`read_answer` reads a written answer (bytes, at most `MAX_READ_BYTES`);
  :func:`prepare` turns bytes or text into clean text and notes what it
  repaired (encodings, binary files, control characters, length);
* :func:`normalise` gives the form every rubric pattern is matched against;
* :func:`resolve_file` and :func:`load_reader` find and execute a coding
  exercise's file as a fresh module.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import itertools
import re
import sys
import traceback
import types
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

#: At most this many characters of an answer are graded; the rest is ignored (and the feedback says so).
MAX_CHARS = 50_000
#: The command line reads at most this many bytes of a file.
MAX_READ_BYTES = 4 * MAX_CHARS + 16


class InputError(Exception):
    """Nothing can be graded; the message says what, where and what to do."""



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
class Answer:
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


def prepare(data: Any) -> Answer:
    """Turn an answer (``str`` or ``bytes``) into clean text, noting anything unusual about it.

    Parameters
    ----------
    data
        The answer as given: ``str``, ``bytes``, ``bytearray`` or ``memoryview``.

    Returns
    -------
    Answer
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
            return Answer("", [f"The input looks like {binary_kind}, not text: nothing was graded. {_BINARY_HOW_TO}"], True)
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
            return Answer("", notes + [f"The input looks like binary data, not text: nothing was graded. {_BINARY_HOW_TO}"], True)
    text = _CONTROL.sub("", _LINE_BREAKS.sub("\n", text))
    return Answer(text, notes)


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


# --- Spelling: a misspelt key word is read as the word it stands for -------------------------------


def _collapse(word: str) -> str:
    """``word`` with every run of one repeated letter cut to one letter: "llama" and "lamma" both give "lama"."""
    return re.sub(r"(.)\1+", r"\1", word)


def _within_one_edit(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by one letter added, dropped or changed, or two neighbouring letters swapped."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:] or (a[i: i + 2] == b[i: i + 2][::-1] and a[i + 2:] == b[i + 2:])
    return a[i + 1:] == b[i:] if len(a) > len(b) else a[i:] == b[i + 1:]


@dataclass(frozen=True)
class Speller:
    """Reads a misspelt technical name as the name: "Lamma" as "llama", "qunatile" as "quantile".

    A word (letters only) is read as a term when the two differ only by doubled
    letters, or, for terms of at least ``min_length`` letters, by one edit (a
    letter added, dropped or changed, or two neighbouring letters swapped). Words
    that are terms already, words with digits, words under four letters and words
    close to two different terms are left as they are, so "CLIP" never reads as
    "SigLIP" and "quantize" (itself a term) never as "quantile".
    """

    terms: frozenset[str]
    min_length: int
    _doubled: dict = field(init=False, compare=False, repr=False)  # collapsed form -> terms
    _long: tuple = field(init=False, compare=False, repr=False)  # the terms one edit may reach
    _cache: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        doubled: dict[str, set[str]] = {}
        for term in self.terms:
            if len(term) >= 5 and term.isalpha():
                doubled.setdefault(_collapse(term), set()).add(term)
        object.__setattr__(self, "_doubled", doubled)
        object.__setattr__(self, "_long", tuple(t for t in sorted(self.terms) if len(t) >= self.min_length and t.isalpha()))

    def correct(self, word: str) -> str:
        """The term ``word`` stands for, or ``word`` itself."""
        if len(word) < 4 or word in self.terms:
            return word
        if word not in self._cache:
            if len(self._cache) > 20_000:
                self._cache.clear()
            found = self._doubled.get(_collapse(word), set())
            if not found and len(word) >= self.min_length - 1:
                found = {t for t in self._long if abs(len(t) - len(word)) <= 1 and _within_one_edit(word, t)}
            self._cache[word] = next(iter(found)) if len(found) == 1 else word
        return self._cache[word]

    def respell(self, text: str) -> str:
        """``text`` (normalised) with every misspelt term replaced by the term."""
        return re.sub(r"[a-z]+", lambda m: self.correct(m.group()), text)


# Markdown structure shared by the graders: comments are never graded, list markers never count as words.
HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
LIST_MARKER = re.compile(
    r"^\s*(?:>[>\s]*|(?:[-*+\u2022\u25e6\u2023\u25aa\u2013\u2014](?:\s+\[[ xX]?\])?|\*\*\d{1,3}[.)]\*\*|\(?\d{1,3}[.)]"
    r"|\(?[a-zA-Z]\)|(?:sentence|failure|symptom|answer|case)\s*#?\s*\d{1,3}\s*[:.)-])(?:\s+|$|(?-i:(?=[A-Z]))))+",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------
# Files: an answer's bytes, an exercise's module
# ---------------------------------------------------------------------------


def read_answer(file: str, stub: str) -> bytes:
    """Read at most `MAX_READ_BYTES` bytes of ``file`` (``-`` is standard input)."""
    if file == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:
            return (sys.stdin.read(MAX_READ_BYTES + 1) or "").encode("utf-8", "surrogatepass")
        return stream.read(MAX_READ_BYTES + 1)
    try:
        path = Path(file)
        if path.is_dir():
            raise InputError(f"{file} is a directory, not a file. Pass the answer file itself, e.g. {stub}.")
        with path.open("rb") as handle:
            return handle.read(MAX_READ_BYTES + 1)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{file}: no such file (looked in {Path.cwd()}). Check the path; the exercise stub is {stub}.") from None
    except PermissionError:
        raise InputError(f"{file}: permission denied. Make the file readable (chmod u+r) or copy it somewhere you can read.") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"{file}: cannot read it ({reason}). Pass the path of a plain-text file such as {stub}.") from None


def resolve_file(exercise: str, file, default: str) -> Path:
    """The reader's file for ``exercise`` (``default`` when ``file`` is None), checked to be a readable file."""
    path = Path(default if file is None else file)
    shown = str(path) if len(str(path)) <= 200 else str(path)[:200] + "..."
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        raise InputError(f"{shown!r} cannot be a file name ({getattr(exc, 'strerror', None) or exc}). Pass the path "
                         f"of your file, e.g. `vla-ch2 check {exercise} {default}`.") from None
    if not exists:
        raise InputError(f"{shown}: no such file (looked in {Path.cwd()}). Run from the repository root, where "
                         f"{default} is, or pass your file: `vla-ch2 check {exercise} path/to/your_file`.")
    if is_dir:
        raise InputError(f"{shown} is a directory. Pass the exercise file itself, e.g. "
                         f"`vla-ch2 check {exercise} {default}`.")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise InputError(f"{shown}: cannot read it ({exc.strerror or exc}). Make it readable (chmod u+r) "
                         "or copy it somewhere you can read, then check again.") from None
    return path


def where_in(exc: BaseException, path: Path) -> str:
    """`` (line N of your file)`` for the deepest frame of ``exc`` inside the reader's file."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if Path(frame.f_code.co_filename) == path:
            line = lineno
    return f" (line {line} of {path.name})" if line is not None else ""


_module_ids = itertools.count()


def load_reader(path: Path) -> tuple[types.ModuleType | None, str | None]:
    """Execute the reader's file as a fresh module; return ``(module, None)`` or ``(None, why)``.

    The file is compiled from its text (no ``__pycache__`` is written next to it).
    """
    path = path.resolve()
    name = f"_vla_ch2_reader_{path.stem}_{next(_module_ids)}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
            exec(code, module.__dict__)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        return None, f"{path.name} does not compile: {exc.msg} (line {exc.lineno}); fix it, then check again"
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any import failure fails every test, cleanly
        sys.modules.pop(name, None)
        return None, f"importing {path.name} raised {type(exc).__name__}: {exc}{where_in(exc, path)}"
    return module, None
