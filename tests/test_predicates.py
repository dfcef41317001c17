"""The three predicates: crafted runs for each rule, bad input, and real drill logs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from vla_ch2.cli import app
from vla_ch2.predicates import (PredicateInputError, bad_prompt_calibrated, bad_prompt_instrumented,
                                bad_prompt_literal, bad_unnorm_calibrated, bad_unnorm_literal, classify,
                                no_flip_calibrated, no_flip_instrumented, no_flip_literal, signature,
                                verify_directory, working_steps)


def run_of(actions, rewards=None, img_mean=120.0, tag="x", top_minus_bottom=None, token_prob=None):
    actions = np.asarray(actions, dtype=float)
    rewards = np.zeros(len(actions)) if rewards is None else np.asarray(rewards, dtype=float)
    run = pd.DataFrame({"step": range(len(actions)), "img_mean": img_mean, "action": [list(a) for a in actions],
                        "reward": rewards, "tag": tag})
    if top_minus_bottom is not None:
        run["img_top_minus_bottom"] = top_minus_bottom
    if token_prob is not None:
        run["token_prob"] = token_prob
    return run


def healthy(n=200, seed=0, success=True, scale=0.6):
    """A run that moves, closes the gripper once in the middle and (optionally) succeeds."""
    rng = np.random.default_rng(seed)
    a = np.zeros((n, 7))
    a[:, :3] = scale * np.sin(np.linspace(0, 6, n))[:, None] * np.array([1, -0.7, 0.5]) + rng.normal(0, 0.05, (n, 3))
    a[:, 3:6] = rng.normal(0, 0.02, (n, 3))
    a[:, 6] = np.where((np.arange(n) > n // 3) & (np.arange(n) < 2 * n // 3), 1.0, -1.0)
    rewards = np.zeros(n)
    if success:
        rewards[-1] = 1.0
    return a, rewards


def twitching(base_a, moving=30, seed=3):
    """A few decisive moves, then near-zero twitches: what a stalled policy logs."""
    a = base_a.copy()
    a[moving:, :6] = np.random.default_rng(seed).normal(0, 0.005, (len(a) - moving, 6))
    a[:moving, :3] = 0.6
    return a


def test_literal_bad_prompt_threshold():
    a = np.zeros((50, 7))
    a[:, 6] = -1
    a[:, 0] = 0.049
    assert bad_prompt_literal(run_of(a))
    a[:, 0] = 0.051
    assert not bad_prompt_literal(run_of(a))
    assert bad_prompt_literal(run_of(a), threshold=0.06)


def test_literal_bad_unnorm_fraction():
    a = np.zeros((100, 7))
    a[:11, 1] = -0.2  # 11 % of steps above 0.1 m
    assert bad_unnorm_literal(run_of(a))
    a[:9, 1] = 0.0  # 2 % of steps
    assert not bad_unnorm_literal(run_of(a))
    assert bad_unnorm_literal(run_of(a), fraction=0.01)


def test_literal_no_flip_by_elimination():
    a, _ = healthy(scale=0.05)  # magnitudes the chapter calls healthy
    a[:, :3] = np.clip(a[:, :3], -0.09, 0.09)
    assert no_flip_literal(run_of(a))
    assert not no_flip_literal(run_of(a, rewards=np.r_[np.zeros(len(a) - 1), 1.0]))  # rewarded
    a[:, 6] = -1.0
    assert not no_flip_literal(run_of(a))  # the gripper never closes


def test_calibrated_predicates_against_a_baseline():
    base_a, base_r = healthy()
    baseline = run_of(base_a, base_r)
    assert classify(baseline, baseline, "calibrated") == {"bad_prompt": False, "bad_unnorm": False, "no_flip": False}
    shrunk = base_a.copy()
    shrunk[:, :3] *= 0.04  # Bridge statistics on LIBERO outputs
    assert bad_unnorm_calibrated(run_of(shrunk), baseline)
    grown = base_a.copy()
    grown[:, :3] *= 5
    assert bad_unnorm_calibrated(run_of(grown), baseline)
    stuck = twitching(base_a)
    assert bad_prompt_calibrated(run_of(stuck), baseline) and not bad_unnorm_calibrated(run_of(stuck), baseline)
    assert not no_flip_calibrated(run_of(stuck), baseline)
    assert not bad_prompt_calibrated(run_of(stuck, rewards=base_r), baseline)  # a rewarded run is not broken
    wandering, _ = healthy(seed=1, success=False)
    assert no_flip_calibrated(run_of(wandering), baseline)
    failed_baseline = run_of(*healthy(seed=2, success=False))
    # By elimination only works when the baseline itself succeeded: an unrewarded
    # baseline looks like no_flip, and verify reports it as wrong.
    assert no_flip_calibrated(failed_baseline, failed_baseline)


@pytest.mark.parametrize(
    "run, message",
    [
        (run_of(np.zeros((0, 7))), "empty"),
        (run_of(np.full((5, 7), np.nan)), "NaN"),
        (run_of(np.zeros((5, 6))), "7 elements"),
    ],
)
def test_bad_runs_give_clear_errors(run, message):
    with pytest.raises(PredicateInputError, match=message):
        signature(run)


def test_calibrated_needs_a_baseline():
    with pytest.raises(PredicateInputError, match="baseline"):
        classify(run_of(healthy()[0]), None, "calibrated")


def test_verify_reports_a_missing_baseline(tmp_path):
    for tag in ("no_flip", "bad_prompt", "bad_unnorm"):
        (tmp_path / f"{tag}.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match="baseline.jsonl: missing"):
        verify_directory(tmp_path)
    result = CliRunner().invoke(app, ["predicates", "verify", str(tmp_path)])
    assert result.exit_code == 2 and "baseline" in result.output


def _write(path, run):
    rows = run.to_dict("records")
    path.write_text("".join(json.dumps({k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in r.items()})
                            + "\n" for r in rows))


def test_verify_exit_codes_on_crafted_drills(tmp_path):
    base_a, base_r = healthy()
    shrunk = base_a.copy()
    shrunk[:, :3] *= 0.04
    runs = {"baseline": run_of(base_a, base_r, tag="baseline"),
            "no_flip": run_of(healthy(seed=1, success=False)[0], tag="no_flip"),
            "bad_prompt": run_of(twitching(base_a), tag="bad_prompt"),
            "bad_unnorm": run_of(shrunk, tag="bad_unnorm")}
    for tag, run in runs.items():
        _write(tmp_path / f"{tag}.jsonl", run)
    report = verify_directory(tmp_path)
    assert report["ok"] and report["mode"] == "calibrated"  # LIBERO-scale actions defeat the literal thresholds
    assert CliRunner().invoke(app, ["predicates", "verify", str(tmp_path)]).exit_code == 0
    _write(tmp_path / "bad_prompt.jsonl", runs["baseline"])  # a toggle that did nothing
    assert CliRunner().invoke(app, ["predicates", "verify", str(tmp_path)]).exit_code == 1


# --- the instrumented set ------------------------------------------------------------------


def instrumented_drills():
    """Four runs with instrument columns, shaped like the teaching model's (docs/results): the baseline is sure
    of its tokens until its reward and unsure after it; bad_prompt moves at full scale (so the calibrated set
    takes it for no_flip) but is unsure throughout."""
    base_a, base_r = healthy()
    n = len(base_a)
    sure_then_idle = np.where(np.arange(n) <= n // 3, 0.92, 0.6)  # unsure after the task: a pose no demo showed
    base_r = np.where(np.arange(n) == n // 3, 1.0, 0.0)
    shrunk = base_a.copy()
    shrunk[:, :3] *= 0.04
    return {
        "baseline": run_of(base_a, base_r, tag="baseline", top_minus_bottom=-40.0, token_prob=sure_then_idle),
        "no_flip": run_of(healthy(seed=1, success=False)[0], tag="no_flip", top_minus_bottom=42.0, token_prob=0.65),
        "bad_prompt": run_of(healthy(seed=4, success=False)[0], tag="bad_prompt", top_minus_bottom=-39.0,
                             token_prob=0.62),
        "bad_unnorm": run_of(shrunk, tag="bad_unnorm", top_minus_bottom=-41.0, token_prob=0.8),
    }


def test_instrumented_predicates_each_fire_on_their_own_run():
    runs = instrumented_drills()
    base = runs["baseline"]
    assert working_steps(base) == len(base) // 3 + 1
    for tag, run in runs.items():
        fired = classify(run, base, "instrumented")
        assert fired == {p: p == tag for p in ("bad_prompt", "bad_unnorm", "no_flip")}, tag
    # Judged over the whole run, the baseline's idle tail would hide the prompt: its median falls to 0.6, and
    # 0.62 is not below 0.8 * 0.6.
    assert not bad_prompt_instrumented(runs["bad_prompt"], base.assign(reward=0.0))
    assert classify(runs["bad_prompt"], base, "calibrated")["no_flip"]  # why the instrumented set exists


def test_instrumented_thresholds_are_parameters_and_cut_where_stated():
    runs = instrumented_drills()
    base = runs["baseline"]
    reference = float(np.median(base["token_prob"][: working_steps(base)]))
    just_sure = runs["bad_prompt"].assign(token_prob=0.8 * reference + 1e-3)
    assert not bad_prompt_instrumented(just_sure, base)
    assert bad_prompt_instrumented(just_sure, base, unsure=0.81)
    upright = runs["no_flip"].assign(img_top_minus_bottom=-0.5)  # same sign as the baseline's
    assert not no_flip_instrumented(upright, base)
    assert not bad_prompt_instrumented(runs["no_flip"], base)  # upside down: not the prompt's fault


def test_paired_drills_decide_the_prompt_at_the_first_step():
    """Same scene at step 0: a different token_prob for the same image means different text, even when the run as a
    whole is not less sure (seed 9 of docs/results: a baseline that fails is unsure too)."""
    base_a, base_r = healthy()
    unsure = np.full(len(base_a), 0.70)
    baseline = run_of(base_a, base_r, top_minus_bottom=-41.09, token_prob=unsure)
    prompt = run_of(healthy(seed=4, success=False)[0], top_minus_bottom=-41.09,
                    token_prob=np.r_[0.7356, np.full(len(base_a) - 1, 0.66)])
    assert bad_prompt_instrumented(prompt, baseline)  # 0.66 / 0.70 is not below 0.8, but step 0 differs
    shrunk = base_a.copy()
    shrunk[:, :3] *= 0.04
    unnorm = run_of(shrunk, top_minus_bottom=-41.09, token_prob=unsure)
    assert classify(unnorm, baseline, "instrumented") == {"bad_prompt": False, "bad_unnorm": True, "no_flip": False}
    # A toggle that changed nothing: same first image, same first token probability, nothing fires.
    idle = run_of(healthy(seed=5, success=False)[0], top_minus_bottom=-41.09, token_prob=unsure)
    assert not any(classify(idle, baseline, "instrumented").values())
    # Not paired (another first image): the run-level ratio decides, and 0.66 / 0.70 is not below 0.8.
    assert not bad_prompt_instrumented(prompt.assign(img_mean=121.0), baseline)
    assert bad_prompt_instrumented(prompt.assign(img_mean=121.0), baseline, unsure=0.95)


def test_instrumented_needs_the_instrument_fields():
    base_a, base_r = healthy()
    with pytest.raises(PredicateInputError, match="token_prob.*vla-ch2 drills"):
        classify(run_of(base_a, top_minus_bottom=1.0), run_of(base_a, base_r, top_minus_bottom=1.0), "instrumented")
    with pytest.raises(PredicateInputError, match="not finite at row 3"):
        no_flip_instrumented(run_of(base_a, top_minus_bottom=[1.0] * 3 + [np.nan] * (len(base_a) - 3)),
                             run_of(base_a, top_minus_bottom=1.0))
    with pytest.raises(PredicateInputError, match="mode"):
        classify(run_of(base_a), run_of(base_a), "clever")


def test_verify_auto_falls_through_to_the_instrumented_set(tmp_path):
    for tag, run in instrumented_drills().items():
        _write(tmp_path / f"{tag}.jsonl", run)
    report = verify_directory(tmp_path)
    assert report["ok"] and report["mode"] == "instrumented"
    assert "calibrated set" in report["notes"][1] and "does not separate" in report["notes"][1]
    result = CliRunner().invoke(app, ["predicates", "verify", str(tmp_path)])
    assert result.exit_code == 0 and "instrumented" in result.output
    assert CliRunner().invoke(app, ["predicates", "verify", str(tmp_path), "--mode", "calibrated"]).exit_code == 1
    # Judging a prefix: 40 steps end before the baseline's reward (step 66), and the runs still separate.
    assert verify_directory(tmp_path, steps=40)["ok"]
    for bad in (0, -3):
        with pytest.raises(PredicateInputError, match="positive"):
            verify_directory(tmp_path, steps=bad)
    with pytest.raises(PredicateInputError, match="baseline has 200"):
        verify_directory(tmp_path, steps=201)
    # Without the instrument fields (a reader's own five-field logs) the set is not tried, and verify says so.
    for tag, run in instrumented_drills().items():
        _write(tmp_path / f"{tag}.jsonl", run.drop(columns=["img_top_minus_bottom", "token_prob"]))
    report = verify_directory(tmp_path)
    assert not report["ok"] and "instrumented set was not tried" in report["notes"][-1]


def test_verify_json_on_every_set(tmp_path):
    """`--json` must serialise whatever the predicates return (numpy booleans once crashed it)."""
    runs = instrumented_drills()
    runs["bad_prompt"]["img_top_minus_bottom"] = runs["bad_unnorm"]["img_top_minus_bottom"] = -40.0  # paired
    for tag, run in runs.items():
        _write(tmp_path / f"{tag}.jsonl", run)
    assert verify_directory(tmp_path, mode="instrumented")["ok"]
    for mode in ("literal", "calibrated", "instrumented", "auto"):
        result = CliRunner().invoke(app, ["predicates", "verify", str(tmp_path), "--json", "--mode", mode])
        report = json.loads(result.output)
        assert result.exit_code == (0 if report["ok"] else 1) and report["mode"] in ("literal", "calibrated",
                                                                                         "instrumented")
        assert all(type(v) is bool for row in report["runs"].values() for v in row["fired"].values())
