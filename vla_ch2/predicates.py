"""The three diagnostic predicates of Exercise 2.x.1.

Each predicate looks at one run (a step log as a DataFrame) and says whether
it shows one failure's signature. Two sets:

* **literal**: the chapter's tests with its thresholds as defaults. Bad prompt:
  the mean over steps of ``norm(action[:6])`` is below 0.05. Bad unnorm key:
  ``max(abs(action[:3]))`` exceeds 0.1 on a non-trivial fraction of steps. No
  flip: by elimination, healthy magnitudes and a gripper that closes, but never
  a reward.
* **calibrated**: the same three questions asked relative to the baseline run
  of the same drills, for models whose action scale differs from the one the
  chapter's thresholds were written for (LIBERO actions are controller inputs
  in [-1, 1], so a healthy LIBERO run has ``max(abs(action[:3]))`` near 1).

Predicates see only ``action``, ``img_mean`` and ``reward``; they never read the
``tag``. Verification compares what fires with the tags afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vla_ch2.logs import read_log

RUNS = ("baseline", "no_flip", "bad_prompt", "bad_unnorm")
PREDICATES = ("bad_prompt", "bad_unnorm", "no_flip")


class PredicateInputError(ValueError):
    """A run that the predicates cannot judge; the message says what is wrong."""


def actions_of(run) -> np.ndarray:
    """The (steps, 7) action array of a run, checked: non-empty, 7 wide, finite."""
    if run is None or len(run) == 0:
        raise PredicateInputError("the run is empty: a predicate needs at least one step")
    try:
        actions = np.array([np.asarray(a, dtype=np.float64) for a in run["action"]])
    except (ValueError, TypeError) as exc:
        raise PredicateInputError(f"the action column is not a list of numbers per step ({exc})") from None
    if actions.ndim != 2 or actions.shape[1] != 7:
        raise PredicateInputError(f"every action must have 7 elements; got shape {actions.shape}")
    if not np.all(np.isfinite(actions)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(actions), axis=1))[0])
        raise PredicateInputError(f"the action at row {bad} holds NaN or infinity")
    return actions


def signature(run) -> dict:
    """The numbers the predicates use, for one run."""
    a = actions_of(run)
    closes = np.flatnonzero(a[:, 6] > 0.5)
    closed = a[:, 6] > 0.5
    return {
        "steps": int(len(a)),
        "mean_norm_action6": float(np.mean(np.linalg.norm(a[:, :6], axis=1))),
        "max_abs_translation": float(np.max(np.abs(a[:, :3]))),
        "median_abs_translation": float(np.median(np.max(np.abs(a[:, :3]), axis=1))),
        "p95_abs_translation": float(np.percentile(np.max(np.abs(a[:, :3]), axis=1), 95)),
        "median_norm_action6": float(np.median(np.linalg.norm(a[:, :6], axis=1))),
        "median_abs_rotation": float(np.median(np.max(np.abs(a[:, 3:6]), axis=1))),
        "fraction_translation_above_0.1": float(np.mean(np.max(np.abs(a[:, :3]), axis=1) > 0.1)),
        "gripper_closes": int(np.sum(closed[1:] & ~closed[:-1]) + int(closed[0])),
        "first_close_step": int(closes[0]) if len(closes) else None,
        "rewarded": bool(np.any(np.asarray(run["reward"], dtype=float) > 0)),
        "img_mean": float(np.mean(run["img_mean"])),
        "action_change": float(np.mean(np.linalg.norm(np.diff(a[:, :6], axis=0), axis=1))) if len(a) > 1 else 0.0,
    }


# --- literal: the chapter's thresholds ------------------------------------------------


def bad_prompt_literal(run, threshold: float = 0.05) -> bool:
    """The arm twitches near zero: mean over steps of ``norm(action[:6])`` below ``threshold``."""
    return signature(run)["mean_norm_action6"] < threshold


def bad_unnorm_literal(run, translation: float = 0.1, fraction: float = 0.1) -> bool:
    """Translations too large: ``max(abs(action[:3])) > translation`` on more than ``fraction`` of steps."""
    a = actions_of(run)
    return float(np.mean(np.max(np.abs(a[:, :3]), axis=1) > translation)) > fraction


def no_flip_literal(run, threshold: float = 0.05, translation: float = 0.1, fraction: float = 0.1) -> bool:
    """By elimination: healthy magnitudes, a gripper that closes, and never a reward."""
    s = signature(run)
    healthy = not bad_prompt_literal(run, threshold) and not bad_unnorm_literal(run, translation, fraction)
    return healthy and s["gripper_closes"] > 0 and not s["rewarded"]


# --- calibrated: relative to the baseline run of the same drills ---------------------------
#
# Measured on the teaching model (docs/results): the literal thresholds fail
# because LIBERO actions are controller inputs in [-1, 1], so a healthy run
# exceeds 0.1 on many steps, and because a drill does not stop at success, so
# a baseline spends most of its steps holding still. The calibrated tests
# therefore use robust per-run statistics and the baseline's scale.


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference > 1e-9 else float("inf") if value > 1e-9 else 1.0


def bad_unnorm_calibrated(run, baseline, factor: float = 3.0) -> bool:
    """Translations on another scale: their 95th percentile is off the baseline's by more than ``factor``.

    Un-normalising with another embodiment's statistics rescales every
    dimension by the ratio of the two q01..q99 ranges, in either direction.
    """
    r = _ratio(signature(run)["p95_abs_translation"], signature(baseline)["p95_abs_translation"])
    return r > factor or r < 1.0 / factor


def bad_prompt_calibrated(run, baseline, factor: float = 3.0, stillness: float = 0.05) -> bool:
    """Twitching near zero: at most steps ``norm(action[:6])`` is below ``stillness``, and no reward.

    The median ignores the first moves a run makes before it stalls; the
    chapter's mean does not. Translation scale must match the baseline's
    (otherwise it is the statistics, not the prompt).
    """
    if bad_unnorm_calibrated(run, baseline, factor):
        return False
    s = signature(run)
    return s["median_norm_action6"] < stillness and not s["rewarded"]


def no_flip_calibrated(run, baseline, factor: float = 3.0, stillness: float = 0.05) -> bool:
    """By elimination: baseline-scale actions that keep moving, a gripper that closes, and never a reward."""
    if bad_unnorm_calibrated(run, baseline, factor):
        return False
    s = signature(run)
    return s["median_norm_action6"] >= stillness and s["gripper_closes"] > 0 and not s["rewarded"]


def classify(run, baseline=None, mode: str = "literal") -> dict[str, bool]:
    """Which of the three predicates fire on ``run`` (``mode``: literal or calibrated)."""
    if mode == "literal":
        return {"bad_prompt": bad_prompt_literal(run), "bad_unnorm": bad_unnorm_literal(run),
                "no_flip": no_flip_literal(run)}
    if mode == "calibrated":
        if baseline is None:
            raise PredicateInputError("calibrated predicates need the baseline run of the same drills")
        return {"bad_prompt": bad_prompt_calibrated(run, baseline), "bad_unnorm": bad_unnorm_calibrated(run, baseline),
                "no_flip": no_flip_calibrated(run, baseline)}
    raise PredicateInputError(f"mode must be 'literal' or 'calibrated', got {mode!r}")


def load_runs(directory: str | os.PathLike) -> dict:
    """The four drill logs of a directory as DataFrames, keyed by run name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such drills directory (run `vla-ch2 drills --out {directory}`)")
    runs = {}
    for tag in RUNS:
        path = directory / f"{tag}.jsonl"
        if not path.is_file():
            hint = "the baseline is needed to judge the others" if tag == "baseline" else "run `vla-ch2 drills` again"
            raise FileNotFoundError(f"{path}: missing ({hint})")
        runs[tag] = read_log(path)
    return runs


def _verdict(runs: dict, mode: str) -> dict:
    rows, ok = {}, True
    for tag, run in runs.items():
        fired = classify(run, runs["baseline"], mode)
        expected = None if tag == "baseline" else tag
        good = all(fired[p] == (p == expected) for p in PREDICATES)
        ok = ok and good
        rows[tag] = {"fired": fired, "expected": expected, "ok": good, "signature": signature(run)}
    return {"mode": mode, "runs": rows, "ok": ok, "predicates": list(PREDICATES)}


def verify_directory(directory: str | os.PathLike, mode: str = "auto") -> dict:
    """Run the predicates on a drills directory and compare with the tags.

    ``auto`` tries the chapter's literal thresholds first and falls back to
    the calibrated set when they do not separate the runs, saying so.
    """
    runs = load_runs(directory)
    if mode not in ("auto", "literal", "calibrated"):
        raise PredicateInputError(f"mode must be auto, literal or calibrated, got {mode!r}")
    notes = []
    if mode == "auto":
        literal = _verdict(runs, "literal")
        if literal["ok"]:
            report = literal
            notes.append("the chapter's literal thresholds separate the four runs")
        else:
            report = _verdict(runs, "calibrated")
            wrong = [t for t, r in literal["runs"].items() if not r["ok"]]
            notes.append(f"the chapter's literal thresholds do not separate the runs (wrong on: {', '.join(wrong)}); "
                         "used the calibrated set, relative to the baseline run")
    else:
        report = _verdict(runs, mode)
    report["notes"] = notes
    return report
