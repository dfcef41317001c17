"""Exercise 2.x.3, a one-page paper read: find the six boxes of a worksheet and grade each.

A worksheet has one heading per box of §2.3 (vision encoder, language
tokenizer, transformer trunk, action head, detokenizer,
simulator/embodiment). :func:`grade_worksheet` finds the boxes and reports
which concepts of OpenVLA's Section 3 each one names (``rubrics/worksheet.json``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from vla_ch2.checking.inputs import HTML_COMMENT, LIST_MARKER, normalise, prepare
from vla_ch2.checking.rubrics import Box, WorksheetRubric, as_rubric

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


def _box_of(label: str, rubric: WorksheetRubric, how: str) -> Optional[int]:
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


def _inline_heading(line: str, rubric: WorksheetRubric) -> tuple[Optional[int], str, str]:
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


def _worksheet_sections(text: str, rubric: WorksheetRubric) -> tuple[dict[int, list[_Section]], list[str]]:
    """Find the box headings of a worksheet; return each box's sections and the lines under no box."""
    lines = HTML_COMMENT.sub("", text).split("\n")
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
        elif i + 1 < len(lines) and line.strip() and _SETEXT.match(lines[i + 1]) and not LIST_MARKER.match(line):
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


def _grade_box(box: Box, found: list[_Section], rubric: WorksheetRubric) -> dict:
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
    compiled: WorksheetRubric = as_rubric("worksheet", rubric)
    prepared = prepare(text)
    notes = list(prepared.notes)
    sections, loose = _worksheet_sections(prepared.text, compiled)
    boxes = [_grade_box(box, sections.get(i, []), compiled) for i, box in enumerate(compiled.boxes)]
    if not prepared.binary:  # (for binary input, prepare's note already says why nothing was graded)
        if not re.search(r"\w", HTML_COMMENT.sub("", prepared.text)):
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


def worksheet_results(result: dict) -> tuple[list, list[str]]:
    """One graded test per box (1 point each) from a :func:`grade_worksheet` result, and its notes."""
    from vla_ch2.checking.report import TestResult

    tests = []
    for number, box in enumerate(result["boxes"], start=1):
        parts = []
        if not box.get("found", True):
            parts.append("no heading for this box was found")
        if box.get("missing"):
            parts.append("missing: " + "; ".join(box["missing"]))
        if box.get("feedback"):
            parts.append(box["feedback"])
        ok = bool(box["ok"])
        hint = ". ".join(part.strip().rstrip(".") for part in parts) + "." if parts else ""
        tests.append(TestResult(f"box {number}: {box['box']}", int(ok), 1, "" if ok else hint))
    return tests, list(result.get("notes", []))
