"""Exercise 2.x.3, a one-page paper read: find the six boxes of a worksheet and grade each.

A worksheet has one heading per box of §2.3 (vision encoder, language
tokenizer, transformer trunk, action head, detokenizer,
simulator/embodiment). :func:`grade_worksheet` finds the boxes and reports
which concepts of OpenVLA's Section 3 each one names (``rubrics/worksheet.json``).

A box's text is read the way an instructor reads it:

* **typos** in the rubric's technical names still count ("Lamma 2", "qunatile"):
  see :class:`Speller`;
* a **negated** mention counts for nothing, neither as a concept ("not the
  fused SigLIP + DINOv2 encoder") nor as a wrong idea ("not CLIP"): see
  :class:`NegationScope`;
* a box passes when its required concepts are named (for a box with
  alternatives, those of any one alternative), unless it states a wrong fact
  (a misconception marked ``"fails"``);
* **keyword stuffing** earns nothing: a box whose text also names the design
  choices of several other boxes, or whose text is pasted under another box;
* a fact written under a **neighbouring box** (the one just before or after, or
  a pair the rubric names, such as the tokenizer and the action head, which share
  the vocabulary) counts for the box it belongs to, but never earns the box it
  was written under.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any, Optional

from vla_ch2.checking.inputs import HTML_COMMENT, LIST_MARKER, Speller, normalise, prepare
from vla_ch2.checking.rubrics import Concept, Misconception, RubricReader, as_rubric


# --- Reading a box's text: typos of technical names, and the scope of a negation ---------------


_SCOPE_TOKEN = re.compile(r"[a-z0-9_]+(?:['.][a-z0-9_]+)*|[.;:!?,()\[\]{}]")


def _list_goes_on(tokens: list, k: int) -> bool:
    """Whether the words from ``tokens[k]`` close a list with "or" or "nor" within three words, before any break."""
    for token in tokens[k: k + 4]:
        word = token.group()
        if word in ("or", "nor"):
            return True
        if not word[0].isalnum():
            return False
    return False


@dataclass(frozen=True)
class NegationScope:
    """Which words a negation covers: "not the fused SigLIP + DINOv2 encoder" negates all three names.

    A negator covers the words after it, up to ``words`` words, a clause break
    (``. ; : ! ? ,`` or a bracket) or a word of ``ends`` ("but", "which", ...). "or"
    and "nor" share it out ("no separate MLP or diffusion head" negates both heads, and so
    does "no separate MLP, regression or diffusion head");
    "and" carries it on only to a technical name (one of ``names``): "not SigLIP and
    DINOv2" negates both, while "no separate head and predicts the 256 tokens"
    leaves the 256 alone. A negator followed by one of ``not_before`` ("not
    only") negates nothing. ``after`` negates a mention from behind: "a separate head
    is not needed".
    """

    negator: re.Pattern
    not_before: Optional[re.Pattern]
    words: int
    ends: frozenset[str]
    names: frozenset[str]
    after: Optional[re.Pattern]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The negated stretches of ``text``, sorted and merged."""
        spans: list[tuple[int, int]] = []
        for count, m in enumerate(self.negator.finditer(text)):
            if count >= 2_000:
                break
            if self.not_before is not None and self.not_before.match(text, m.end()):
                continue
            end, taken = m.end(), 0
            tokens = list(_SCOPE_TOKEN.finditer(text, m.end(), min(len(text), m.end() + 400)))
            k = 0
            while k < len(tokens):
                word = tokens[k].group()
                if word == "," and _list_goes_on(tokens, k + 1):
                    k += 1  # "no separate MLP, regression or diffusion head": a list the negation shares out
                    continue
                if not word[0].isalnum() or word in self.ends:
                    break
                if word == "and":
                    k += 1
                    if k >= len(tokens) or tokens[k].group() not in self.names:
                        break
                taken += 1
                end = tokens[k].end()
                k += 1
                if taken >= self.words:
                    break
            if end > m.end():
                if spans and m.end() <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
                else:
                    spans.append((m.end(), end))
        return spans


@dataclass
class Reading:
    """One piece of worksheet text, ready for matching: normalised, typos corrected, negations marked."""

    text: str
    negated: list[tuple[int, int]]
    after: Optional[re.Pattern] = None

    def _is_negated(self, match: re.Match) -> bool:
        i = bisect.bisect_right(self.negated, (match.start(), float("inf"))) - 1
        if i >= 0 and self.negated[i][0] <= match.start() < self.negated[i][1]:
            return True
        return self.after is not None and self.after.match(self.text, match.end()) is not None

    def names(self, regex: re.Pattern) -> bool:
        """Whether ``regex`` occurs in the text at least once outside a negation."""
        for count, m in enumerate(regex.finditer(self.text)):
            if count >= 200:
                break
            if m.end() > m.start() and not self._is_negated(m):
                return True
        return False

    def states(self, wrong: Misconception) -> bool:
        """Whether the text states the misconception (not negated, and no un-negated ``unless`` phrase)."""
        return self.names(wrong.regex) and not (wrong.unless is not None and self.names(wrong.unless))


# --- The rubric: rubrics/worksheet.json, compiled ------------------------------------------------


@dataclass(frozen=True)
class Box:
    """One box of the §2.3 diagram, as the worksheet rubric describes it.

    ``alternatives`` lists the ways to pass the box: each is a tuple of indices into
    ``groups`` that must all be named. Most boxes have one alternative, their required groups.
    """

    id: str
    title: str
    heading: re.Pattern
    groups: tuple[Concept, ...]
    misconceptions: tuple[Misconception, ...]
    alternatives: tuple[tuple[int, ...], ...]

    @property
    def required(self) -> tuple[int, ...]:
        """The indices of the groups that some alternative needs."""
        return tuple(sorted({i for alt in self.alternatives for i in alt}))


@dataclass(frozen=True)
class Stuffing:
    """When a box's text is a keyword dump rather than this box's answer (see ``stuffing`` in the rubric)."""

    beyond_neighbours: int
    other_boxes: int
    touched_boxes: int
    same_text: float
    same_text_min_words: int


@dataclass(frozen=True)
class WorksheetRubric:
    """The compiled rubric of Exercise 2.x.3 (``rubrics/worksheet.json``).

    ``shared`` holds the ids of concept groups that more than one box needs (the
    Llama family, for the tokenizer and the trunk): each box must name such a fact itself.
    ``neighbours[i]`` lists the boxes next to box ``i``: the one before, the one after,
    and any pair the rubric adds.
    """

    source: str
    section: str
    boxes: tuple[Box, ...]
    heading_order: tuple[int, ...]
    negation: NegationScope
    speller: Speller
    stuffing: Stuffing
    shared: frozenset[str]
    neighbours: tuple[tuple[int, ...], ...]

    def read(self, text: str) -> Reading:
        """Normalise ``text``, correct typos of the technical names, and mark what is negated."""
        respelled = self.speller.respell(normalise(text))
        return Reading(respelled, self.negation.spans(respelled), self.negation.after)


def _words(r: RubricReader, obj: Any, key: str, where: str) -> list[str]:
    """A list of plain lower-case words under ``obj[key]``."""
    words = r.get(obj, key, list, where, default=[])
    for i, word in enumerate(words):
        if not isinstance(word, str) or not re.fullmatch(r"[a-z0-9]+", word):
            r.fail(f"{where}.{key}[{i}]", f"expected one lower-case word of letters and digits, found {word!r}")
    return words


def _number(r: RubricReader, obj: Any, key: str, where: str, default: float, low: float, high: float) -> Any:
    """A number under ``obj[key]`` (of the type of ``default``) from ``low`` to ``high``."""
    value = r.get(obj, key, object, where, default=default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(default, int) and value != int(value)):
        r.fail(f"{where}.{key}", f"expected {'a whole number' if isinstance(default, int) else 'a number'}, found {value!r}")
    if not low <= value <= high:
        r.fail(f"{where}.{key}", f"expected a number from {low} to {high}, found {value}")
    return type(default)(value)


def _compile_negation(r: RubricReader, obj: Any, names: frozenset[str]) -> NegationScope:
    where = "negation"
    negators = r.patterns(obj, "negators", where, required=False) or ["not", "no", "never"]
    not_before = _words(r, obj, "not_before", where)
    after = r.patterns(obj, "after", where, required=False)
    return NegationScope(
        negator=re.compile(r"(?<![a-z0-9_])(?:" + "|".join(f"(?:{p})" for p in negators) + r")(?![a-z0-9_])", re.IGNORECASE),
        not_before=re.compile(r"\s+(?:" + "|".join(not_before) + r")\b") if not_before else None,
        words=_number(r, obj, "scope_words", where, 6, 1, 20),
        ends=frozenset(_words(r, obj, "scope_ends", where)),
        names=names,
        after=re.compile("|".join(f"(?:{p})" for p in after), re.IGNORECASE) if after else None,
    )


def _compile_alternatives(r: RubricReader, obj: Any, groups: tuple[Concept, ...], where: str) -> tuple[tuple[int, ...], ...]:
    """The ways to pass a box: ``pass_with.any_of`` (lists of group ids), or else all its required groups."""
    required = [i for i, g in enumerate(groups) if g.required]
    if "pass_with" not in obj:
        return (tuple(required),)
    lists = r.get(r.get(obj, "pass_with", dict, where), "any_of", list, f"{where}.pass_with")
    ids = [g.id for g in groups]
    alternatives = []
    for k, names in enumerate(lists):
        here = f"{where}.pass_with.any_of[{k}]"
        if not isinstance(names, list) or not names:
            r.fail(here, "expected a non-empty list of group ids")
        for name in names:
            if name not in ids:
                r.fail(here, f"no group with id {name!r} in this box (its groups: {', '.join(ids)})")
            if not groups[ids.index(name)].required:
                r.fail(here, f"group {name!r} must have \"required\": true to be part of a way to pass the box")
        alternatives.append(tuple(ids.index(name) for name in names))
    unused = [groups[i].id for i in required if not any(i in alt for alt in alternatives)]
    if not alternatives or unused:
        r.fail(f"{where}.pass_with.any_of", f"every required group must be in one of the lists (missing: {', '.join(unused)})")
    return tuple(alternatives)


def _compile_neighbours(r: RubricReader, obj: Any, ids: list[str]) -> tuple[tuple[int, ...], ...]:
    """Each box's neighbours: the boxes just before and after it, plus the pairs of ``neighbours.also``."""
    near = [{j for j in (i - 1, i + 1) if 0 <= j < len(ids)} for i in range(len(ids))]
    for k, pair in enumerate(r.get(obj, "also", list, "neighbours", default=[])):
        where = f"neighbours.also[{k}]"
        if not isinstance(pair, list) or len(pair) != 2 or pair[0] == pair[1] or any(b not in ids for b in pair):
            r.fail(where, f"expected two different box ids (from {', '.join(ids)}), found {pair!r}")
        a, b = ids.index(pair[0]), ids.index(pair[1])
        near[a].add(b)
        near[b].add(a)
    return tuple(tuple(sorted(n)) for n in near)


def compile_rubric(data: Any, source: str) -> WorksheetRubric:
    """Validate and compile the Exercise 2.x.3 rubric."""
    r = RubricReader(source)
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
        if len({g.id for g in groups}) != len(groups):
            r.fail(f"{where}.groups", "two groups of this box share an id")
        miscs = tuple(
            r.misconception(m, f"{where}.misconceptions[{j}]", ("any",))
            for j, m in enumerate(r.get(obj, "misconceptions", list, where, default=[]))
        )
        boxes.append(Box(bid, title, heading, groups, miscs, _compile_alternatives(r, obj, groups, where)))
    if not boxes:
        r.fail("boxes", "needs at least one box")
    ids = [b.id for b in boxes]
    if len(set(ids)) != len(ids):
        r.fail("boxes", "two boxes share an id")
    order_obj = r.get(data, "heading_order", dict, "top level", default={"order": ids})
    order = r.get(order_obj, "order", list, "heading_order")
    if sorted(map(str, order)) != sorted(ids):
        r.fail("heading_order.order", f"must list every box id exactly once ({', '.join(ids)})")
    spelling = r.get(data, "spelling", dict, "top level", default={})
    terms = _words(r, spelling, "terms", "spelling")
    terms += [t + "s" for t in terms if t.isalpha() and not t.endswith("s")]
    group_ids = [g.id for b in boxes for g in {g.id: g for g in b.groups}.values()]
    stuffing = r.get(data, "stuffing", dict, "top level", default={})
    return WorksheetRubric(
        source=source,
        section=r.get(data, "section", str, "top level", default="Section 3 of the OpenVLA paper"),
        boxes=tuple(boxes),
        heading_order=tuple(ids.index(b) for b in order),
        negation=_compile_negation(r, r.get(data, "negation", dict, "top level", default={}), frozenset(terms)),
        speller=Speller(frozenset(terms), _number(r, spelling, "min_length", "spelling", 6, 4, 20)),
        stuffing=Stuffing(
            beyond_neighbours=_number(r, stuffing, "beyond_neighbours", "stuffing", 2, 1, 10),
            other_boxes=_number(r, stuffing, "other_boxes", "stuffing", 3, 1, 10),
            touched_boxes=_number(r, stuffing, "touched_boxes", "stuffing", 4, 1, 10),
            same_text=_number(r, stuffing, "same_text", "stuffing", 0.8, 0.0, 1.0),
            same_text_min_words=_number(r, stuffing, "same_text_min_words", "stuffing", 8, 1, 1000),
        ),
        shared=frozenset(g for g in group_ids if group_ids.count(g) > 1),
        neighbours=_compile_neighbours(r, r.get(data, "neighbours", dict, "top level", default={}), ids),
    )


# --- Finding the boxes: headings, bold lines, "Label: text" lines and table rows -----------------


_ATX = re.compile(r"^ {0,3}(#{1,6})(?!#)(.*)$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_BOLD_LINE = re.compile(r"^\s*(?:\*\*|__)(.+?)(?:\*\*|__)\s*:?\s*$")
_LABEL_LINE = re.compile(r"^\s*(?:[-*]\s+)?(?:\*\*|__)?([^:*_]{2,60}?)(?:\*\*|__)?\s*[:\u2014\u2013]\s*(?:\*\*|__)?\s*(.*)$")
_TABLE_ROW = re.compile(r"^\s*\|(.*?)\|?\s*$")
#: A table row written without its outer pipes: "vision encoder   |  SigLIP and DINOv2, fused".
_BARE_ROW = re.compile(r"^\s*([^|]{2,60}?\s\|\s.*)$")
#: HTML table cells and other tags: a row "<tr><td>Box 1</td><td>text</td></tr>" reads as "| Box 1 | text |".
_HTML_CELL = re.compile(r"\s*</t[dh]>\s*<t[dh][^>]*>\s*", re.IGNORECASE)
_HTML_TAG = re.compile(r"</?[a-z][a-z0-9]*(?:\s[^<>]*)?>", re.IGNORECASE)
_HTML_CELL_OPEN = re.compile(r"<t[dh][\s>]", re.IGNORECASE)
_BOX_PREFIX = re.compile(r"^\s*(?:(?:box|part|step)\s*#?\s*\d{1,2}\s*[:.)\-\u2014\u2013]?\s*|\d{1,2}\s*[.):\-\u2014\u2013]\s*)",
                         re.IGNORECASE)
#: "Box 4", the template's own numbering of a heading.
_BOX_NUMBER = re.compile(r"^\s*(?:\*\*|__)?\s*box\s*#?\s*(\d{1,2})\b", re.IGNORECASE)
#: A list item's marker at the start of a line: "1.", "1)", "(a)", "a)", "- ", "* ".
_ITEM = re.compile(r"^\s*(?:[-*+]\s+|\(?(?:\d{1,2}|[a-fA-F])[.)]\s+)")
#: A leading bold label: "**Vision encoder.** text", "__Box 4__ - text".
_LEAD_BOLD = re.compile(r"^(?:\*\*|__)(.{2,80}?)(?:\*\*|__)\s*[:.\u2014\u2013-]?\s*(.*)$")
#: The first separator after a short label: ":", an em or en dash, or a spaced hyphen.
_LEAD_SEPARATOR = re.compile(r"^([^:\u2014\u2013]{2,60}?)\s*(?::|\u2014|\u2013|\s-\s)\s*(.*)$")
#: Six items marked (a)..(f) or 1..6, in order: the boxes in §2.3's order when no heading names them.
_ORDERED_ITEM = re.compile(r"^\s*\(?([a-fA-F]|[1-6])[.)]\s+(.*)$")


def _html_rows(text: str) -> str:
    """HTML table rows as Markdown table rows, other tags dropped (only for a worksheet with a <table>)."""
    if not _HTML_CELL_OPEN.search(text):
        return text
    lines = []
    for line in text.split("\n"):
        if _HTML_CELL_OPEN.search(line):
            line = "| " + _HTML_TAG.sub("", _HTML_CELL.sub(" | ", line)).strip() + " |"
        else:
            line = _HTML_TAG.sub("", line)
        lines.append(line)
    return "\n".join(lines)


@dataclass
class _Section:
    """The text a worksheet gives one box: its heading and the lines under it."""

    heading: str
    body: list[str]


def _box_of(label: str, rubric: WorksheetRubric, how: str) -> Optional[int]:
    """The index of the box a heading names, trying specific box names before generic ones.

    Typos of the rubric's terms are corrected first ("Detokenzier"). ``how`` says how
    sure we are that ``label`` is a heading: a Markdown heading
    (``"heading"``) only has to contain a box name; a bold line or the label of a
    ``Label: text`` line (``"label"``) must be short (four words at most) or exactly a
    box name; a plain line (``"line"``) must be exactly a box name, so prose never opens a box.
    """
    text = rubric.speller.respell(normalise(_BOX_PREFIX.sub("", label))).strip(" :*_#.-")
    if len(text) > 120:
        return None
    contains = how == "heading" or (how == "label" and len(text.split()) <= 4)
    for index in rubric.heading_order:
        heading = rubric.boxes[index].heading
        if text and (heading.search(text) if contains else heading.fullmatch(text)):
            return index
    numbered = _BOX_NUMBER.match(label)
    if how != "line" and numbered and 1 <= int(numbered.group(1)) <= len(rubric.boxes):
        return int(numbered.group(1)) - 1  # "## Box 4: Action haed", "Box 1 — text": the template's own number
    return None


def _inline_heading(line: str, rubric: WorksheetRubric, strict: bool) -> tuple[Optional[int], str, str]:
    """Read ``**Vision encoder**``, ``Vision encoder: text``, ``| Vision encoder | text |`` or a bare
    ``Vision encoder`` line as a box heading.

    ``strict`` (inside a box opened by a Markdown heading) accepts only labels that are
    exactly a box name, so "Open X-Embodiment: 970k trajectories" stays text. Returns the
    box index (or ``None``), the heading text, and the text after the label.
    """
    if len(line) > 300:
        return None, "", ""
    candidates = []
    row = _TABLE_ROW.match(line) or _BARE_ROW.match(line)
    if row:
        cells = [c.strip() for c in row.group(1).split("|")]
        for k in range(min(2, len(cells))):  # the box name may follow a number column
            candidates.append((cells[k], " ".join(cells[k + 1:]), "line" if strict else "label"))
    bold = _BOLD_LINE.match(line)
    if bold:
        candidates.append((bold.group(1), "", "line" if strict else "label"))
    labelled = _LABEL_LINE.match(line)
    if labelled and not row:
        candidates.append((labelled.group(1), labelled.group(2), "line" if strict else "label"))
    lead = _ITEM.sub("", line, count=1).strip()
    lead = _BOX_PREFIX.sub("", lead, count=1) if not strict else lead
    for pattern in (_LEAD_BOLD, _LEAD_SEPARATOR):  # "1) **Vision encoder** - text", "Box 1 - Vision encoder: text"
        found = pattern.match(lead)
        if found and not row:
            candidates.append((found.group(1).strip().rstrip("."), found.group(2), "line" if strict else "label"))
    if len(line.strip()) <= 50:
        candidates.append((line, "", "line"))
    for label, rest, how in candidates:
        box = _box_of(label, rubric, how)
        if box is not None:
            return box, label, rest
    return None, "", ""


def _worksheet_sections(text: str, rubric: WorksheetRubric) -> tuple[dict[int, list[_Section]], list[str]]:
    """Find the box headings of a worksheet; return each box's sections and the lines under no box."""
    lines = _html_rows(HTML_COMMENT.sub("", text)).split("\n")
    sections: dict[int, list[_Section]] = {}
    loose: list[str] = []
    current: Optional[_Section] = None
    level = 7  # the heading level of the current box; 7 for bold, label and table lines
    fenced = False
    atx_headings: list[tuple[int, int, str, Optional[int]]] = []  # (line, level, label, box it names) outside code
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
        elif i + 1 < len(lines) and line.strip() and _SETEXT.match(lines[i + 1]) and not LIST_MARKER.match(line):
            heading_level, label = (1 if lines[i + 1].strip()[0] == "=" else 2), line
        elif _SETEXT.match(line) and i > 0 and lines[i - 1].strip():
            continue  # the underline of a setext heading
        if heading_level is not None:
            box = _box_of(label, rubric, "heading")
            if atx:
                atx_headings.append((i, heading_level, label, box))
            if box is not None:
                current, level = _Section(label, []), heading_level
                sections.setdefault(box, []).append(current)
            elif current is not None and heading_level <= level:
                current = None  # a sibling heading that names no box ends the box
            continue
        box, label, rest = _inline_heading(line, rubric, strict=current is not None and level < 7)
        if box is not None:
            current, level = _Section(label, [rest]), 7
            sections.setdefault(box, []).append(current)
        else:
            (current.body if current else loose).append(line)
    if len(sections) < len(rubric.boxes):
        ordered, before = _ordered_items(lines, loose, rubric)
        if not ordered:
            ordered, before = _six_headings(lines, atx_headings, len(rubric.boxes))
        if ordered:
            sections, loose = ordered, before
    if not sections and (notes := _unfenced(lines)) is not None:
        return _worksheet_sections(notes, rubric)  # notes kept as YAML or key = value inside a code block
    return sections, loose


#: A key of notes kept as data: "vision_encoder: ...", "  action-head = ...", '"detokenizer": ...'.
_DATA_KEY = re.compile(r"^\s*[\"']?([A-Za-z][A-Za-z0-9]*(?:[_-][A-Za-z0-9]+)*)[\"']?\s*[:=]\s*")


def _unfenced(lines: list[str]) -> Optional[str]:
    """A worksheet whose boxes are all inside code blocks, read as plain lines: fences dropped, keys as labels.

    Only a key opens a box; every other line of a code block stays content (indented past any Markdown
    heading, so a template pasted inside a code block still opens nothing). ``None`` when no code
    block holds a key.
    """
    out, fenced, keys = [], False, 0
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
            continue
        key = _DATA_KEY.match(line) if fenced else None
        if key:
            keys += 1
            out.append(f"{key.group(1).replace('_', ' ').replace('-', ' ')}: {line[key.end():]}")
        else:
            out.append(f"    {line}" if fenced else line)
    return "\n".join(out) if keys else None


def _six_headings(lines: list[str], headings: list[tuple[int, int, str, Optional[int]]],
                  boxes: int) -> tuple[dict[int, list[_Section]], list[str]]:
    """Read six Markdown headings of one level as the six boxes, in order ("### What looks at the picture?").

    ``headings`` are the worksheet's ``#`` headings outside code, ``(line, level, label, box it names)``.
    Only when there are exactly six at one level (below the title) and none names another box than
    its place says.
    """
    for level in sorted({lv for _, lv, _, _ in headings if lv >= 2}):
        heads = [h for h in headings if h[1] == level]
        if len(heads) != boxes or any(box is not None and box != k for k, (_, _, _, box) in enumerate(heads)):
            continue
        higher = {i for i, lv, _, _ in headings if lv <= level}  # headings that are not part of a box's text
        sections = {}
        for k, (i, _, label, _) in enumerate(heads):
            end = heads[k + 1][0] if k + 1 < len(heads) else len(lines)
            sections[k] = [_Section(f"{label} (read as box {k + 1})", [lines[j] for j in range(i + 1, end) if j not in higher])]
        return sections, lines[:heads[0][0]]
    return {}, []


def _ordered_items(lines: list[str], loose: list[str], rubric: WorksheetRubric) -> tuple[dict[int, list[_Section]], list[str]]:
    """Read six items marked (a)..(f) or 1..6, in that order, as the six boxes.

    Only when no item's label names another box than its place says: "4. **Output /
    actions**: ..." between "3. **Backbone**" and "5. **De-tokenisation**" is box 4.
    """
    starts = [(i, m) for i, line in enumerate(lines) if (m := _ORDERED_ITEM.match(line))]
    marks = [m.group(1).lower() for _, m in starts]
    if marks not in (list("abcdef"), list("123456")):
        return {}, loose
    for box, (i, _) in enumerate(starts):
        named, _, _ = _inline_heading(lines[i], rubric, strict=False)
        if named is not None and named != box:
            return {}, loose
    sections: dict[int, list[_Section]] = {}
    for box, (i, found) in enumerate(starts):
        end = starts[box + 1][0] if box + 1 < len(starts) else len(lines)
        sections[box] = [_Section(f"item {found.group(1)} (read as box {box + 1})", [found.group(2), *lines[i + 1:end]])]
    return sections, lines[:starts[0][0]]


# --- Grading: what each box names, stuffing, neighbours, and the verdict -------------------------


def _passes(box: Box, named: set[int]) -> bool:
    """Whether the groups ``named`` (indices into ``box.groups``) complete one way to pass ``box``."""
    return any(all(i in named for i in alt) for alt in box.alternatives)


def _closest(box: Box, named: set[int]) -> list[list[int]]:
    """The groups still missing for each way to pass ``box``, the nearest way first."""
    missing = [[i for i in alt if i not in named] for alt in box.alternatives]
    return sorted(missing, key=len)


def _own(box: Box, rubric: WorksheetRubric) -> set[int]:
    """The required groups of ``box`` that no other box needs: the facts that can move between neighbours."""
    return {i for i in box.required if box.groups[i].id not in rubric.shared}


def _trigrams(text: str) -> set[tuple[str, ...]]:
    """The word trigrams of ``text``, to recognise the same text pasted under two boxes."""
    words = re.findall(r"[a-z0-9]+", text)
    return {tuple(words[k: k + 3]) for k in range(max(0, len(words) - 2))}


def _labels(box: Box, indices) -> str:
    """The labels of some groups of ``box``, for feedback."""
    return " and ".join(box.groups[i].label for i in sorted(indices))


@dataclass
class _BoxText:
    """What one box of a worksheet says: its sections, its reading, and which groups of every box it names."""

    sections: list[_Section]
    reading: Reading
    words: int
    trigrams: set
    named: list[set[int]]  # named[j]: the groups of box j (required or not) named in this box's text
    wrong: list[Misconception]  # this box's misconceptions stated here


def _read_box(index: int, sections: list[_Section], rubric: WorksheetRubric) -> _BoxText:
    """Read the sections of box ``index``: what they name of every box, and which wrong ideas about this box."""
    body = "\n".join("\n".join(s.body) for s in sections)
    reading = rubric.read(" ".join(s.heading for s in sections) + "\n" + body)
    plain = normalise(body)
    named = [{i for i, g in enumerate(other.groups) if reading.names(g.regex)} for other in rubric.boxes]
    wrong = [m for m in rubric.boxes[index].misconceptions if reading.states(m)]
    return _BoxText(sections, reading, len(plain.split()), _trigrams(plain[:20_000]), named, wrong)


def _stuffing(i: int, texts: dict[int, _BoxText], rubric: WorksheetRubric) -> str:
    """Why box ``i``'s text is keyword stuffing rather than its answer ("" when it is not)."""
    mine, rule = texts[i], rubric.stuffing
    if mine.words >= rule.same_text_min_words and mine.trigrams:
        copies = [f"'{rubric.boxes[j].title}'" for j, other in sorted(texts.items())
                  if j != i and other.words >= rule.same_text_min_words and other.trigrams
                  and len(mine.trigrams & other.trigrams) >= rule.same_text * len(mine.trigrams | other.trigrams)]
        if copies:
            return (f"The same text appears under {', '.join(copies)}: text pasted under several boxes earns nothing. "
                    "Write under each box only the design choice of that box.")
    touched = [j for j, other in enumerate(rubric.boxes) if j != i and mine.named[j] & _own(other, rubric)]
    covered = [j for j in touched if _passes(rubric.boxes[j], mine.named[j])]
    beyond = [j for j in covered if j not in rubric.neighbours[i]]
    if len(beyond) >= rule.beyond_neighbours or len(covered) >= rule.other_boxes:
        names = ", ".join(f"'{rubric.boxes[j].title}'" for j in covered)
        return (f"This text also gives the answers for {names}: a list of keywords for several boxes earns nothing "
                "here. Write under this box only its own design choice.")
    if len(touched) >= rule.touched_boxes:
        names = ", ".join(f"'{rubric.boxes[j].title}'" for j in touched)
        return (f"This text also names facts of {names}: a list of keywords for several boxes earns nothing "
                "here. Write under this box only its own design choice.")
    return ""


_PLACEHOLDERS = frozenset("todo tbd tba xxx n/a na your answer here fill in later none nothing yet".split())


#: A pointer to a neighbour's text ("see below", "see box 3"): the box says where its answer is.
_POINTER = re.compile(r"\bsee\s+(?:below|above|next|the\s+next|previous|the\s+previous|box\s*\d)\b")


def _says_something(text: "_BoxText") -> bool:
    """Whether a box has text of its own: three or more words that are not a placeholder ("TODO", "your answer
    here"), or a pointer to its neighbour ("see below")."""
    body = normalise("\n".join("\n".join(s.body) for s in text.sections))
    words = re.findall(r"[a-z0-9/]+", body)
    return sum(1 for w in words if w not in _PLACEHOLDERS) >= 3 or bool(_POINTER.search(body))


def _borrow(i: int, texts: dict[int, _BoxText], stuffed: dict[int, str], rubric: WorksheetRubric) -> dict[int, set[int]]:
    """The facts box ``i`` still needs that a neighbouring box's text supplies, by neighbour; {} if they don't complete it.

    Only facts of this box alone (not shared ones such as Llama) move, only to a box that
    has text of its own (an empty box borrows nothing), and never from a stuffed neighbour
    or one that states a wrong idea about this box.
    """
    box, mine = rubric.boxes[i], texts[i]
    own = _own(box, rubric)
    if not _says_something(mine):
        return {}
    taken: dict[int, set[int]] = {}
    have = set(mine.named[i])
    for j in rubric.neighbours[i]:
        if j not in texts or j in stuffed or any(texts[j].reading.states(m) for m in box.misconceptions):
            continue
        extra = (texts[j].named[i] & own) - have
        if extra:
            taken[j] = extra
            have |= extra
    if not taken or not _passes(box, have):
        return {}
    # keep only what the nearest complete way to pass needs
    need = next(set(alt) for alt in sorted(box.alternatives, key=lambda a: len(set(a) - set(mine.named[i])))
                if all(k in have for k in alt))
    taken = {j: extra & need for j, extra in taken.items() if extra & need}
    return taken


def _grade_box(i: int, texts: dict[int, _BoxText], stuffed: dict[int, str], borrowed: dict[int, dict[int, set[int]]],
               rubric: WorksheetRubric) -> dict:
    """Grade box ``i``: matched concepts, hints for the missing ones, and feedback that says why."""
    box = rubric.boxes[i]
    if i not in texts:
        return {"box": box.title, "found": False, "matched": [], "missing": [box.groups[k].hint for k in box.required],
                "ok": False,
                "feedback": f"No heading for this box: add one such as '## {box.title}' and write the design choice under it."}
    mine = texts[i]
    named = set(mine.named[i])
    given = {k for extra in borrowed.get(i, {}).values() for k in extra}
    matched = [g.label for k, g in enumerate(box.groups) if k in named | given]
    feedback = []
    if len(mine.sections) > 1:
        feedback.append(f"{len(mine.sections)} headings name this box; their text was graded together.")
    failing = [m for m in mine.wrong if m.fails]
    if i in stuffed:
        missing = ["this box's own design choice, written without the other boxes' keywords"]
        feedback.append(stuffed[i])
    elif failing:
        missing = ["correct the wrong fact noted in the feedback"]
        feedback.append("This box states something Section 3 contradicts, so it earns nothing yet.")
    else:
        ways = _closest(box, named | given)
        missing = [box.groups[k].hint for k in ways[0]]
        if not missing:
            feedback.append("All required concepts found.")
            extra = [g.hint for k, g in enumerate(box.groups) if not g.required and g.hint and k not in named]
            if extra:
                feedback.append("You could also mention: " + "; ".join(extra) + ".")
        elif not re.search(r"\w", "\n".join("\n".join(s.body) for s in mine.sections)):
            feedback.append(f"This box is still empty: write the sentence from {rubric.section} that names its design choice, "
                            "in your own words.")
        else:
            feedback.append("Missing: " + "; ".join(missing) + ".")
            others = []
            for way in ways[1:]:
                hint = "; ".join(box.groups[k].hint for k in way)
                if way and hint != "; ".join(missing) and hint not in others:
                    others.append(hint)  # two ways with the same hint ('llama' or 'llama_tokenizer') say it once
            if others:
                feedback.append("Another way to earn this box: " + ". Or: ".join(others) + ".")
            if any(k not in named and box.groups[k].regex.search(mine.reading.text) for k in ways[0]):
                feedback.append("Part of what this box needs appears only after a negation ('not', 'no', 'rather than', "
                                "'instead of', 'unlike'), and a negated mention does not count.")
            feedback.append(f"Re-read {rubric.section}.")
            if not named & set(box.required):
                for j, other in enumerate(rubric.boxes):
                    if j != i and _passes(other, mine.named[j]) and mine.named[j] & _own(other, rubric):
                        feedback.append(f"This text reads like the answer for '{other.title}'; check that each answer "
                                        "sits under its own heading.")
                        break
    for j, extra in sorted(borrowed.get(i, {}).items()):
        labels = _labels(box, extra)
        feedback.append(f"{labels[:1].upper() + labels[1:]}: found under '{rubric.boxes[j].title}'; it belongs here, "
                        "so it counts for this box.")
    for j, taken in sorted(borrowed.items()):
        if i in taken:
            feedback.append(f"Part of this text ({_labels(rubric.boxes[j], taken[i])}) belongs to "
                            f"'{rubric.boxes[j].title}' and counts there.")
    feedback += [m.feedback for m in mine.wrong]
    return {"box": box.title, "found": True, "matched": matched, "missing": missing, "ok": not missing,
            "feedback": " ".join(feedback)}


def grade_worksheet(text: str | bytes, rubric: Any = None) -> dict:
    """Grade an Exercise 2.x.3 worksheet: one heading per box of §2.3, each naming OpenVLA's design choice.

    Headings may be Markdown headings of any level (``## Vision encoder``,
    ``### Box 1: Vision encoder``), bold lines, ``Vision encoder: ...`` label lines or
    table rows; matching ignores case and recognisable typos of technical names. A
    box passes when its required concept groups (for a box with alternatives, those of
    any one alternative) are named, not negated, in its text, and it states no wrong
    fact. A box whose text also answers several other boxes, or repeats another box's
    text, earns nothing. A fact written under a neighbouring box counts for the box it
    belongs to (never for the box it was written under), and the feedback of both boxes
    says so.

    Parameters
    ----------
    text
        The worksheet's content, as ``str`` or raw ``bytes``.
    rubric
        A rubric JSON path (or a dict) to use instead of ``vla_ch2/checking/rubrics/worksheet.json``.

    Returns
    -------
    dict
        ``{"boxes": [{"box", "found", "matched", "missing", "ok", "feedback"}, ...], "score": int,
        "out_of": 6, "notes": [str, ...]}``, boxes in the order of §2.3. ``matched`` lists the
        concepts found; ``missing`` gives a hint for each required concept not found (or says
        what else keeps the box from its point); ``ok`` is ``found and not missing``.

    Raises
    ------
    RubricError
        If the rubric file is unusable.
    TypeError
        If ``text`` is neither ``str`` nor ``bytes``.
    """
    compiled: WorksheetRubric = as_rubric("worksheet", rubric)
    prepared = prepare(text)
    notes = list(prepared.notes)
    sections, loose = _worksheet_sections(prepared.text, compiled)
    texts = {i: _read_box(i, found, compiled) for i, found in sections.items()}
    stuffed = {i: why for i in texts if (why := _stuffing(i, texts, compiled))}
    borrowed = {i: taken for i in texts if i not in stuffed and not any(m.fails for m in texts[i].wrong)
                and not _passes(compiled.boxes[i], texts[i].named[i]) and (taken := _borrow(i, texts, stuffed, compiled))}
    boxes = [_grade_box(i, texts, stuffed, borrowed, compiled) for i in range(len(compiled.boxes))]
    if not prepared.binary:  # (for binary input, prepare's note already says why nothing was graded)
        if not re.search(r"\w", HTML_COMMENT.sub("", prepared.text)):
            notes.append("The worksheet is empty. Start from exercises/worksheet.md: one heading per box, your sentence under each.")
        elif not sections:
            notes.append(
                "No box headings found. Give each box its own heading, e.g. '## Vision encoder', '## Language tokenizer', "
                "'## Transformer trunk', '## Action head', '## Detokenizer', '## Simulator / embodiment'."
            )
        elif any("(read as box " in s.heading for found in sections.values() for s in found):
            notes.append("Not every heading names a box, so your six items or headings were read in order as boxes 1 "
                         "to 6 of §2.3; name each box in its heading to be sure each answer is read where you meant it.")
    stray = compiled.read("\n".join(loose))
    misplaced = [box.title for i, box in enumerate(compiled.boxes)
                 if i not in sections and _passes(box, {k for k, g in enumerate(box.groups) if stray.names(g.regex)})]
    if misplaced:
        notes.append("Text outside any box heading covers: " + ", ".join(misplaced) + "; move it under the box's own heading.")
    if stuffed:
        notes.append("Keyword stuffing under " + ", ".join(f"'{compiled.boxes[i].title}'" for i in sorted(stuffed))
                     + ": those boxes earn nothing (see their feedback).")
    score = sum(1 for b in boxes if b["ok"])
    if score == len(boxes):
        notes.append("Full marks: every box names its design choice.")
    return {"boxes": boxes, "score": score, "out_of": len(boxes), "notes": notes}


# ---------------------------------------------------------------------------
# The ``grade`` command-line sub-app
# ---------------------------------------------------------------------------


def worksheet_results(result: dict) -> tuple[list, list[str]]:
    """One graded test per box (1 point each) from a :func:`grade_worksheet` result, and its notes."""
    from vla_ch2.checking.report import TestResult

    tests = []
    for number, box in enumerate(result["boxes"], start=1):
        parts = []
        if not box.get("found", True):
            parts.append("no heading for this box was found")
        if box.get("missing") and not all(hint in box.get("feedback", "") for hint in box["missing"]):
            parts.append("missing: " + "; ".join(box["missing"]))  # (unless the feedback already lists them)
        if box.get("feedback"):
            parts.append(box["feedback"])
        ok = bool(box["ok"])
        hint = ". ".join(part.strip().rstrip(".") for part in parts) + "." if parts else ""
        tests.append(TestResult(f"box {number}: {box['box']}", int(ok), 1, box.get("feedback", "") if ok else hint))
    return tests, list(result.get("notes", []))
