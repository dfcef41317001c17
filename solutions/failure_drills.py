# SOLUTION
"""Exercise 2.x.1: reproduce the three silent failures on demand (worked solution).

The §2.3 loop wrapped in a function with three toggles that default to the
correct values; four runs (the baseline, then one toggle flipped per run)
logged to ``drills/``; three predicates that recognise each failure from
the log alone.

Run it from the repository root with ``python solutions/failure_drills.py``
and check it with ``vla-ch2 check 2.x.1 solutions/failure_drills.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from vla_ch2 import conventions as C
from vla_ch2.env import LiberoTask
from vla_ch2.logs import StepLogWriter, read_log, step_record
from vla_ch2.loop import seed_everything
from vla_ch2.policy import load_policy
from vla_ch2.toggles import Toggles

SUITE, TASK_ID = "libero_object", 0
SEED, STEPS = 0, 500
OUT_DIR = Path("drills")

#: The four runs: the baseline, then exactly one toggle flipped in each.
DRILLS = {
    "baseline": {},
    "no_flip": {"flip_image": False},
    "bad_prompt": {"prompt_template": "rephrased"},
    "bad_unnorm": {"unnorm_key": "bridge_orig"},
}


# --- 1. The loop with its three toggles --------------------------------------------------------


def failure_drills(task, policy, flip_image=True, prompt_template="canonical", unnorm_key=None, seed=0,
                   steps=500, tag="baseline"):
    """Run one drill and yield one step record per policy step; never stop early.

    Parameters
    ----------
    task : LiberoTask
        A live LIBERO task (reused across runs).
    policy : Policy
        Anything with ``predict(image, prompt, unnorm_key)``.
    flip_image, prompt_template, unnorm_key : the three toggles
        ``True``, ``"canonical"`` and ``None`` (the suite's own statistics) are correct.
    seed : int
        Seeds Python and numpy, and picks the official initial state.
    steps : int
        Policy steps after the wait; the run goes on after a success.
    tag : str
        Written into every record.
    """
    seed_everything(seed)
    prompt = Toggles(prompt_template=prompt_template).prompt(task.language)
    key = unnorm_key or task.suite

    obs = task.reset(init_index=seed)
    for _ in range(C.NUM_WAIT_STEPS):  # objects are still falling into place
        obs, _, _, _ = task.step(C.WAIT_ACTION)

    for step in range(steps):
        image = C.prepare_image(task.frame(obs), flip_image)
        action = C.postprocess_gripper(policy.predict(image, prompt, key))
        obs, reward, done, _ = task.step(action)
        yield step_record(step, image, action, reward, tag)


# --- 2. Three predicates, each on one run (a DataFrame from read_log) --------------------------


def _actions(run) -> np.ndarray:
    """The run's actions as an (n, 7) float array."""
    return np.array(run["action"].tolist(), dtype=np.float64).reshape(-1, 7)


def is_bad_prompt(run, threshold=0.05) -> bool:
    """The arm barely moves: the time-mean of ``norm(action[:6])`` is below ``threshold``."""
    arm_norms = np.linalg.norm(_actions(run)[:, :6], axis=1)
    return bool(arm_norms.mean() < threshold)


def is_bad_unnorm(run, translation=0.1, fraction=0.1) -> bool:
    """Translations out of scale: ``max |action[:3]| > translation`` on more than ``fraction`` of steps."""
    too_large = np.abs(_actions(run)[:, :3]).max(axis=1) > translation
    return bool(too_large.mean() > fraction)


def is_no_flip(run) -> bool:
    """By elimination: healthy magnitudes, the gripper closes at least once, and reward never rises above 0."""
    gripper_closes = bool((_actions(run)[:, 6] > 0.5).any())
    never_rewarded = not bool((run["reward"] > 0).any())
    return not is_bad_prompt(run) and not is_bad_unnorm(run) and gripper_closes and never_rewarded


PREDICATES = {"bad_prompt": is_bad_prompt, "bad_unnorm": is_bad_unnorm, "no_flip": is_no_flip}


# --- 3. The same questions asked relative to the baseline ---------------------------------------
#
# Run the chapter's predicates on your own four logs first: on LIBERO they misfire (LIBERO
# actions are controller inputs in [-1, 1], and Bridge statistics shrink them). These three
# ask the chapter's questions against the baseline of the same drills instead.


def _largest_translation(run) -> float:
    return float(np.abs(_actions(run)[:, :3]).max())


def _median_arm_norm(run) -> float:
    return float(np.median(np.linalg.norm(_actions(run)[:, :6], axis=1)))


def _rewarded(run) -> bool:
    return bool((run["reward"] > 0).any())


def is_bad_unnorm_relative(run, baseline, factor=3.0) -> bool:
    """Another embodiment's scale: the largest ``|action[:3]|`` is off the baseline's by more than ``factor``, either way."""
    ratio = _largest_translation(run) / max(_largest_translation(baseline), 1e-9)
    return bool(ratio > factor or ratio < 1.0 / factor)


def is_bad_prompt_relative(run, baseline, stillness=0.05) -> bool:
    """The baseline's scale, yet the arm stays still (median ``norm(action[:6])`` below ``stillness``) and,
    unlike a rewarded baseline, the run is never rewarded."""
    if is_bad_unnorm_relative(run, baseline) or not _rewarded(baseline) or _rewarded(run):
        return False
    return _median_arm_norm(run) < stillness


def is_no_flip_relative(run, baseline, stillness=0.05) -> bool:
    """By elimination: the baseline's scale, the arm keeps moving (median ``norm(action[:6])`` at least
    ``stillness``) and, unlike a rewarded baseline, the run is never rewarded."""
    if is_bad_unnorm_relative(run, baseline) or not _rewarded(baseline) or _rewarded(run):
        return False
    return _median_arm_norm(run) >= stillness


RELATIVE_PREDICATES = {"bad_prompt": is_bad_prompt_relative, "bad_unnorm": is_bad_unnorm_relative,
                       "no_flip": is_no_flip_relative}


# --- 4. Four runs into drills/, then which predicates fire on each -----------------------------


def _verdict(tag: str, fired: list) -> str:
    expected = [] if tag == "baseline" else [tag]
    return "as expected" if fired == expected else f"expected {expected or 'none'}"


def main(steps: int = STEPS, seed: int = SEED, out_dir: Path = OUT_DIR) -> None:
    """Run the four drills into ``out_dir`` and print which predicates fire on each run."""
    policy = load_policy(os.environ.get("VLA_CH2_MODEL"))
    out_dir.mkdir(parents=True, exist_ok=True)
    with LiberoTask(SUITE, TASK_ID) as task:
        for tag, toggles in DRILLS.items():
            with StepLogWriter(out_dir / f"{tag}.jsonl") as writer:
                for record in failure_drills(task, policy, **toggles, seed=seed, steps=steps, tag=tag):
                    writer.write(record)
                    if record["step"] % 50 == 49 or record["step"] == steps - 1:
                        print(f"\r{tag:<11} step {record['step'] + 1}/{steps}", end="", flush=True)
            print()
    shutil.copy(__file__, out_dir / "predicates.py")  # Chapter 17 starts from these predicates

    runs = {tag: read_log(out_dir / f"{tag}.jsonl") for tag in DRILLS}
    for title, predicates, judge in (
        ("the chapter's thresholds", PREDICATES, lambda predicate, run: predicate(run)),
        ("relative to the baseline", RELATIVE_PREDICATES, lambda predicate, run: predicate(run, runs["baseline"])),
    ):
        print(f"\n{title}:")
        for tag, run in runs.items():
            fired = [name for name, predicate in predicates.items() if judge(predicate, run)]
            print(f"  {tag:<11} fires: {', '.join(fired) or 'none':<24} {_verdict(tag, fired)}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Exercise 2.x.1: run the four drills and judge them.")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"policy steps per drill (default {STEPS})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed and initial state (default {SEED})")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"where the logs go (default {OUT_DIR}/)")
    args = parser.parse_args()
    if args.steps <= 0:
        parser.error(f"--steps must be a positive number of policy steps, got {args.steps}")
    main(args.steps, args.seed, args.out)
