"""The sweep: standard error, first close, resume after a kill, shards, the plot, bad files."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vla_ch2.cli import app
from vla_ch2.sweep import (SweepError, SweepSettings, first_close_step, merge, read_episodes, standard_error,
                           summarise, verdict)


def test_standard_error_arithmetic():
    assert standard_error(44, 50) == pytest.approx(math.sqrt(0.88 * 0.12 / 50))
    assert standard_error(50, 50) == 0.0 and standard_error(0, 10) == 0.0
    assert standard_error(1, 2) == pytest.approx(math.sqrt(0.25 / 2))
    with pytest.raises(ValueError):
        standard_error(0, 0)


def test_first_close_step_on_crafted_actions():
    open_ = [0, 0, 0, 0, 0, 0, -1.0]
    close = [0, 0, 0, 0, 0, 0, 1.0]
    assert first_close_step([open_] * 5 + [close] * 3) == 5
    assert first_close_step([close] + [open_]) == 0
    assert first_close_step([open_] * 10) is None
    assert first_close_step([[0, 0, 0, 0, 0, 0, 0.5]]) is None  # must cross 0.5, not touch it
    assert first_close_step([]) is None


def test_verdict_bands():
    ref = {"success_rate": 0.884, "source": "paper"}
    assert "healthy" in verdict(0.86, 0.05, ref)
    assert "bug" in verdict(0.80, 0.05, ref)
    assert "3 to 5 points below" in verdict(0.84, 0.05, ref)
    assert "no published reference" in verdict(0.5, 0.07, None)


def _row(seed, success, close=None):
    return {"seed": seed, "success": success, "final_reward": float(success), "steps": 100,
            "first_close_step": close, "wall_s": 1.0}


def _fake_sweep(directory: Path, rows, settings=SweepSettings(model="m")):
    directory.mkdir(parents=True, exist_ok=True)
    from dataclasses import asdict

    (directory / "sweep.json").write_text(json.dumps(asdict(settings)))
    (directory / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_summary_counts_and_reference(tmp_path):
    rows = [_row(s, s % 4 != 0, 70 + s) for s in range(8)]
    summary = summarise(rows, SweepSettings(model="openvla/openvla-7b-finetuned-libero-object"))
    assert summary["episodes"] == 8 and summary["successes"] == 6
    assert summary["success_rate"] == 0.75 and summary["standard_error"] == pytest.approx(math.sqrt(0.75 * 0.25 / 8))
    assert summary["reference"]["success_rate"] == pytest.approx(0.884)


def test_merge_of_shards(tmp_path):
    _fake_sweep(tmp_path / "a", [_row(0, True, 80), _row(2, False)])
    _fake_sweep(tmp_path / "b", [_row(1, True, 75), _row(3, True, 90)])
    summary = merge([tmp_path / "a", tmp_path / "b"], tmp_path / "all")
    assert summary["episodes"] == 4 and summary["successes"] == 3
    assert [r["seed"] for r in read_episodes(tmp_path / "all")] == [0, 1, 2, 3]
    _fake_sweep(tmp_path / "c", [_row(1, False)])
    with pytest.raises(SweepError, match="seed 1 disagrees"):
        merge([tmp_path / "a", tmp_path / "b", tmp_path / "c"], tmp_path / "all2")
    _fake_sweep(tmp_path / "d", [_row(5, True)], SweepSettings(model="other"))
    with pytest.raises(SweepError, match="cannot be merged"):
        merge([tmp_path / "a", tmp_path / "d"], tmp_path / "all3")


def test_corrupt_episode_line_names_the_line(tmp_path):
    _fake_sweep(tmp_path / "s", [_row(0, True)])
    with open(tmp_path / "s" / "episodes.jsonl", "a") as handle:
        handle.write("{oops\n" + json.dumps(_row(2, True)) + "\n")
    with pytest.raises(SweepError, match=r"episodes.jsonl, line 2: not valid JSON"):
        read_episodes(tmp_path / "s")
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "s")])
    assert result.exit_code == 2 and "line 2" in result.output


def test_torn_last_line_is_dropped_and_the_file_kept_whole(tmp_path):
    _fake_sweep(tmp_path / "s", [_row(0, True), _row(1, False)])
    with open(tmp_path / "s" / "episodes.jsonl", "a") as handle:
        handle.write('{"seed": 2, "succ')
    assert [r["seed"] for r in read_episodes(tmp_path / "s")] == [0, 1]
    assert (tmp_path / "s" / "episodes.jsonl").read_text().endswith("\n")


def test_plot_renders_png_and_svg(tmp_path):
    from vla_ch2.plots import first_close_histogram

    rows = [_row(0, True, 70), _row(1, True, 85), _row(2, False, None), _row(3, False, 2), _row(4, True, 95)]
    paths = first_close_histogram(rows, tmp_path / "fc.png")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 5000
    assert "never" in paths[1].read_text()


@pytest.mark.sim
def test_resume_after_kill_loses_and_repeats_nothing(tmp_path, random_checkpoint):
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "vla_ch2.cli", "sweep", "--out", str(out), "--episodes", "3", "--steps", "15",
           "--model", str(random_checkpoint)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (out / "episodes.jsonl").is_file() and (out / "episodes.jsonl").read_text().count("\n") >= 1:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, mid-sweep
    proc.wait()
    before = read_episodes(out)
    assert 1 <= len(before) < 3, "the kill should land after the first episode and before the last"
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    rows = read_episodes(out)
    assert sorted(r["seed"] for r in rows) == [0, 1, 2]
    assert rows[: len(before)] == before  # finished episodes were not rerun
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["last_run"]["episodes_run"] == 3 - len(before)
    for seed in range(3):
        lines = (out / "episodes" / f"seed-{seed}.jsonl").read_text().splitlines()
        assert len(lines) == 15 and all(json.loads(line)["tag"] == f"seed-{seed}" for line in lines)
    assert not list((out / "episodes").glob("*.partial"))
    # Asking for more episodes in the same directory extends it.
    subprocess.run(cmd[:7] + ["4"] + cmd[8:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=300)
    assert sorted(r["seed"] for r in read_episodes(out)) == [0, 1, 2, 3]
