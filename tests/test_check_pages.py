"""The pages, the stubs and ``--help`` say exactly what ``vla-ch2 check`` does: one command per job."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vla_ch2.checking.command import EXERCISES
from vla_ch2.cli import app

REPO = Path(__file__).resolve().parents[1]
TEXTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted((REPO / "exercises").iterdir()),
         *sorted((REPO / "solutions").iterdir()), *sorted((REPO / "vla_ch2").rglob("*.py")),
         *sorted((REPO / "vla_ch2" / "checking" / "rubrics").glob("*.json"))]
COMMAND = re.compile(r"vla-ch2 check ([\w.-]+)(?: ([\w./-]+\.(?:py|md|txt)))?")


def _texts():
    for path in TEXTS:
        if path.is_file() and "_generated" not in path.parts:
            yield path, path.read_text(encoding="utf-8")


def test_there_is_no_second_command_for_the_same_job():
    for path, text in _texts():
        assert "vla-ch2 grade" not in text, f"{path.relative_to(REPO)} still mentions `vla-ch2 grade`"
    result = CliRunner().invoke(app, ["grade", "sentences", "x"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_every_check_command_shown_names_a_real_exercise_and_file():
    seen = 0
    for path, text in _texts():
        for exercise, file in COMMAND.findall(text):
            if exercise.startswith(("2.x.N", "2.x.")) and exercise in EXERCISES:
                seen += 1
                if file and not file.startswith("path/"):
                    assert (REPO / file).is_file(), f"{path.relative_to(REPO)}: `vla-ch2 check {exercise} {file}`"
            else:
                assert exercise in ("2.x.N", "--help"), f"{path.relative_to(REPO)}: unknown exercise {exercise!r}"
    assert seen >= 8


@pytest.mark.parametrize("page", sorted((REPO / "docs" / "exercises").glob("2x*.md")), ids=lambda p: p.stem)
def test_every_exercise_page_says_what_check_does(page):
    text = page.read_text(encoding="utf-8")
    exercise = "2.x." + page.stem[2]
    assert f"vla-ch2 check {exercise}" in text
    assert "results.json" in text and "non-zero" in text and "total" in text


def test_help_says_what_the_command_does():
    result = CliRunner().invoke(app, ["check", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for phrase in ("PASS/FAIL", "total", "results.json", "exit 0 only for full marks", "--json", "--rubric",
                   "--no-results", "2.x.1, 2.x.2, 2.x.3 or 2.x.4"):
        assert phrase in text, phrase
