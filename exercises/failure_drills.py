"""Exercise 2.x.1: reproduce the three silent failures on demand.

Your task, top to bottom:

1. ``failure_drills``: the §2.3 loop wrapped in a function with three toggles
   that default to the correct values. It yields one step record per policy
   step (``step``, ``img_mean``, ``action``, ``reward``, ``tag``) and never
   stops early, not even on success.
2. Three predicates that look at one run (a DataFrame from ``read_log``) and
   say whether it shows a given failure: ``is_bad_prompt``, ``is_bad_unnorm``
   and ``is_no_flip``, with the chapter's thresholds as defaults.
3. The same three questions relative to the baseline run of the same
   drills (``is_bad_unnorm_relative`` and the others): the chapter's
   thresholds misfire on LIBERO, and you will see it on your own logs.
4. ``main``: run the four drills (baseline, no_flip, bad_prompt, bad_unnorm)
   into ``drills/`` and print which predicates of each set fire on each run.

Every ``raise NotImplementedError`` marks a place for your code. Check your
work from the repository root with

    vla-ch2 check 2.x.1 exercises/failure_drills.py

and, once it passes, run the drills with ``python exercises/failure_drills.py``
(``--steps 200`` for a quicker first look; ``--help`` lists the options).
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

    The loop, in order:

    * seed everything from ``seed`` (``seed_everything``);
    * the prompt: the template named by ``prompt_template`` around the task's
      instruction ``task.language``, lower-cased (``Toggles(...).prompt`` does
      this); the statistics key: ``unnorm_key``, or the suite's own
      (``task.suite``) when it is ``None``;
    * start from official initial state ``seed`` (``task.reset(init_index=seed)``;
      seeds from 50 on wrap round), then send ``C.WAIT_ACTION`` for
      ``C.NUM_WAIT_STEPS`` steps while the objects settle;
    * each of the ``steps`` steps: prepare the image from ``task.frame(obs)``
      (``C.prepare_image``, with or without the flip), ask the policy, convert
      the gripper (``C.postprocess_gripper``), step the simulator, and yield
      ``step_record(step, image, action, reward, tag)``.

    Write it yourself: ``vla_ch2.loop.run_episode`` is the library's version of
    this loop, the one ``vla-ch2 check`` compares yours with step by step.
    """
    raise NotImplementedError("write the loop: seed, prompt and key, reset and wait, then one record per step")


# --- 2. Three predicates, each on one run (a DataFrame from read_log) --------------------------


def is_bad_prompt(run, threshold=0.05) -> bool:
    """The arm barely moves: the time-mean of ``norm(action[:6])`` is below ``threshold``."""
    raise NotImplementedError("average np.linalg.norm(action[:6]) over the steps; compare with threshold")


def is_bad_unnorm(run, translation=0.1, fraction=0.1) -> bool:
    """Translations out of scale: ``max |action[:3]| > translation`` on more than ``fraction`` of steps."""
    raise NotImplementedError("count the steps whose largest |translation| exceeds `translation`")


def is_no_flip(run) -> bool:
    """By elimination: healthy magnitudes, the gripper closes at least once, and reward never rises above 0."""
    raise NotImplementedError("neither other predicate fires, action[6] > 0.5 at some step, no reward > 0")


PREDICATES = {"bad_prompt": is_bad_prompt, "bad_unnorm": is_bad_unnorm, "no_flip": is_no_flip}


# --- 3. The same questions asked relative to the baseline ---------------------------------------
#
# Run the chapter's predicates on your own four logs first (``main`` prints what fires): on LIBERO
# they misfire. Then ask the chapter's questions against the baseline of the same drills. These
# are checked on real drill logs of several seeds, and each run demands only what its five fields
# can show (the exercise page explains which runs cannot be told apart, and why).


def is_bad_unnorm_relative(run, baseline, factor=3.0) -> bool:
    """Another embodiment's scale: the largest ``|action[:3]|`` is off the baseline's by more than ``factor``, either way."""
    raise NotImplementedError("compare the run's largest |translation| with the baseline's, in both directions")


def is_bad_prompt_relative(run, baseline, stillness=0.05) -> bool:
    """The baseline's scale, yet the arm stays still (median ``norm(action[:6])`` below ``stillness``) and,
    unlike a rewarded baseline, the run is never rewarded."""
    raise NotImplementedError("not another scale; the baseline rewarded, this run not; the arm still most of the time")


def is_no_flip_relative(run, baseline, stillness=0.05) -> bool:
    """By elimination: the baseline's scale, the arm keeps moving (median ``norm(action[:6])`` at least
    ``stillness``) and, unlike a rewarded baseline, the run is never rewarded."""
    raise NotImplementedError("not another scale; the baseline rewarded, this run not; the arm keeps moving")


RELATIVE_PREDICATES = {"bad_prompt": is_bad_prompt_relative, "bad_unnorm": is_bad_unnorm_relative,
                       "no_flip": is_no_flip_relative}


# --- 4. Four runs into drills/, then which predicates fire on each -----------------------------


def main(steps: int = STEPS, seed: int = SEED, out_dir: Path = OUT_DIR) -> None:
    """Run the four drills into ``out_dir`` and print which predicates fire on each run.

    Load the policy (``load_policy``; the environment variable ``VLA_CH2_MODEL``
    may name another checkpoint), open one ``LiberoTask(SUITE, TASK_ID)`` for
    all four runs, write each run with a ``StepLogWriter`` to
    ``out_dir/<tag>.jsonl`` (print progress as you go: a drill of 500 steps
    takes a minute or two on a CPU), copy this file there too, then read each
    log back (``read_log``) and print which ``PREDICATES`` fire on it, and
    which ``RELATIVE_PREDICATES`` (given the baseline run).
    """
    raise NotImplementedError("run DRILLS into out_dir, then print which predicates of each set fire on each run")


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
