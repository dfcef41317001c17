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


# --- 3. Four runs into drills/, then which predicate fires on each ----------------------------


def main() -> None:
    """Run the four drills into ``drills/`` and print which predicates fire on each run."""
    policy = load_policy(os.environ.get("VLA_CH2_MODEL"))
    OUT_DIR.mkdir(exist_ok=True)
    with LiberoTask(SUITE, TASK_ID) as task:
        for tag, toggles in DRILLS.items():
            print(f"running {tag} ({STEPS} steps) ...", flush=True)
            with StepLogWriter(OUT_DIR / f"{tag}.jsonl") as writer:
                for record in failure_drills(task, policy, **toggles, seed=SEED, steps=STEPS, tag=tag):
                    writer.write(record)
    shutil.copy(__file__, OUT_DIR / "predicates.py")  # Chapter 17 starts from these predicates

    for tag in DRILLS:
        run = read_log(OUT_DIR / f"{tag}.jsonl")
        fired = [name for name, predicate in PREDICATES.items() if predicate(run)]
        expected = [] if tag == "baseline" else [tag]
        verdict = "as expected" if fired == expected else f"expected {expected or 'none'}"
        print(f"{tag:<11} fires: {', '.join(fired) or 'none':<24} {verdict}")


if __name__ == "__main__":
    main()
