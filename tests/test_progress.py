"""Progress stays visible when the output goes to a file or a pipe (a live bar would print nothing until the end)."""

from __future__ import annotations

import io

from vla_ch2.cli import LineProgress, _progress


def test_progress_is_plain_lines_off_a_terminal():
    assert isinstance(_progress(), LineProgress)  # pytest captures stderr: not a terminal


def test_a_line_per_tenth_and_per_change_of_description():
    out = io.StringIO()
    bar = LineProgress(out)
    steps = bar.add_task("baseline", total=500)
    for _ in range(500):
        bar.advance(steps)
    episodes = bar.add_task("episodes", total=3, completed=1)
    bar.update(episodes, advance=1, description="episodes (success 2/2)")
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[:11]] == ["baseline"] * 11  # 0/500, 50/500, ..., 500/500
    assert lines[10].startswith("baseline: 500/500")
    assert lines[-1].startswith("episodes (success 2/2): 2/3")
