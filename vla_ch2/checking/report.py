"""Reporting: one line per graded test with its points, a total, and a Gradescope-style ``results.json``.

Every exercise is reported the same way, whatever graded it (tests run
against a coding exercise, or the free-text graders): a list of
:class:`TestResult`, printed by :func:`report` and written by
:func:`write_results`. The exit status follows from the same list
(:func:`exit_status`): 0 only for full marks.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text


@dataclass
class TestResult:
    """One line of the report and one entry of ``results.json``."""

    name: str
    score: int
    max_score: int
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.score == self.max_score

    def as_json(self) -> dict:
        return {"name": self.name, "score": self.score, "max_score": self.max_score, "output": self.output,
                "status": "passed" if self.passed else "failed"}


def write_results(results: list[TestResult], path, notes: list[str] = ()) -> Path:
    """Write Gradescope's ``results.json`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "score": sum(r.score for r in results),
        "max_score": sum(r.max_score for r in results),
        "tests": [r.as_json() for r in results],
    }
    if notes:
        payload["output"] = "\n".join(notes)
    handle, partial = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2)
            out.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return path


def report(results: list[TestResult], console, notes: list[str] = ()) -> None:
    """Print one line per test (PASS/FAIL, points, name), the hint or feedback under it, then the total."""
    width = max((len(r.name) for r in results), default=0)
    for r in results:
        status = ("PASS", "green") if r.passed else ("FAIL", "red")
        console.print(Text.assemble(status, "  ", r.name.ljust(width), f"  {r.score}/{r.max_score}"),
                      highlight=False, soft_wrap=True)
        if r.output:  # a hint under a failure; what a free-text grader credited, and on whose authority
            console.print(f"      {r.output}", markup=False, highlight=False, soft_wrap=True)
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    score, out_of = sum(r.score for r in results), sum(r.max_score for r in results)
    console.print(f"total: {score}/{out_of}", highlight=False, soft_wrap=True)


def exit_status(results: list[TestResult]) -> int:
    """0 for full marks, 1 otherwise (and for an empty list: nothing was earned)."""
    score, out_of = sum(r.score for r in results), sum(r.max_score for r in results)
    return 0 if out_of > 0 and score == out_of else 1
