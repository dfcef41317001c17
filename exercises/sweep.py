"""Exercise 2.x.2: the 50-episode sweep.

Your task, top to bottom:

1. Per-episode numbers: ``first_close_step`` (the first step whose seventh
   action element exceeds 0.5, ``None`` if the gripper never closes),
   ``standard_error`` (binomial) and ``success_rate``.
2. ``run_sweep``: the correct loop (no toggle flipped), one episode per seed
   ``0..episodes-1``, one row per episode with ``seed``, ``success``,
   ``final_reward``, ``steps``, ``first_close_step`` and ``wall_s``.
3. ``plot_first_close``: a histogram of episodes over the first-close step,
   successes and failures in two colours, "never closes" as its own bar.
4. ``main``: fifty episodes on libero_object task 0, the success rate with
   its standard error, one sentence comparing it with the paper, the plot.

Every ``raise NotImplementedError`` marks a place for your code. Check your
work from the repository root with

    vla-ch2 check 2.x.2 exercises/sweep.py

and, once it passes, start the sweep with ``python exercises/sweep.py``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from vla_ch2.env import LiberoTask
from vla_ch2.logs import StepLogWriter
from vla_ch2.loop import EpisodeResult, run_episode
from vla_ch2.policy import DEFAULT_MODEL_NAME, load_policy
from vla_ch2.sweep import SweepSettings, reference_for, verdict

SUITE, TASK_ID = "libero_object", 0
EPISODES = 50
OUT_DIR = Path("sweep")
#: Kim et al. (2024, arXiv:2406.09246): fine-tuned OpenVLA on LIBERO-Object.
PAPER_RATE, PAPER_SE = 0.884, 0.008


# --- 1. Per-episode numbers --------------------------------------------------------------------


def first_close_step(actions) -> int | None:
    """The first step whose seventh action element exceeds 0.5 (the gripper closes); None if never."""
    raise NotImplementedError("return the index of the first action with action[6] > 0.5, else None")


def standard_error(successes, episodes) -> float:
    """Binomial standard error of the success rate, ``sqrt(p (1 - p) / n)``."""
    raise NotImplementedError("p = successes / episodes; raise ValueError when there are no episodes")


def success_rate(rows) -> float:
    """The fraction of episodes (rows) that succeeded."""
    raise NotImplementedError("count the rows whose 'success' is true")


# --- 2. The sweep ---------------------------------------------------------------------------------


def run_sweep(task, policy, episodes=50, max_steps=None, log_dir=None, progress=None) -> list[dict]:
    """Run episodes ``0..episodes-1`` (episode k = seed k) and return one row per episode.

    Parameters
    ----------
    task : LiberoTask
        A live LIBERO task, reused across episodes.
    policy : Policy
        Anything with ``predict(image, prompt, unnorm_key)``.
    episodes : int
        How many seeds to run.
    max_steps : int or None
        Policy steps per episode (default: the suite's limit).
    log_dir : path or None
        If given, each episode's step log goes to ``log_dir/seed-k.jsonl``.
    progress : callable or None
        If given, called with each row as soon as its episode is over (``main`` prints a line).

    For each seed, make an ``EpisodeResult(seed=seed)`` and iterate over
    ``run_episode(task, policy, seed=seed, max_steps=max_steps, result=result)``:
    each step record it yields carries the action, and once the episode is
    over ``result`` holds ``success``, ``final_reward``, ``steps`` and ``wall_s``.
    Keep row values plain Python (``bool``, ``int``, ``float``) so a row is one JSON line.
    """
    raise NotImplementedError("one run_episode per seed; build each row from its records and its result")


# --- 3. The plot ----------------------------------------------------------------------------------


def plot_first_close(rows, out_png, bin_width=10) -> Path:
    """Histogram of the first-close step, successes and failures stacked, "never closes" as its own bar.

    matplotlib with the ``Agg`` backend is enough: ``np.histogram`` with bins
    ``bin_width`` steps wide, one stacked ``ax.bar`` per outcome, and one more
    bar to the right for the episodes whose ``first_close_step`` is ``None``.
    Save to ``out_png`` as a PNG.
    """
    raise NotImplementedError("histogram of first_close_step by outcome, plus a 'never closes' bar")


# --- 4. Fifty episodes, one number, one sentence, one plot ----------------------------------------


def main(episodes: int = EPISODES, max_steps: int | None = None, out_dir: Path = OUT_DIR) -> None:
    """Sweep the seeds, print the success rate with its standard error against the right reference, and plot.

    Load the policy (``load_policy``; ``VLA_CH2_MODEL`` may name another
    checkpoint), run ``run_sweep`` on ``LiberoTask(SUITE, TASK_ID)`` with step
    logs under ``out_dir/episodes`` and a ``progress`` function that prints one
    line per finished episode (fifty episodes take a while on a CPU), write the
    rows to ``out_dir/episodes.jsonl``, and print the rate with its standard
    error. Then one sentence comparing it with the right number: the teaching
    model with its own card, OpenVLA-7B with the paper.
    ``reference_for(SweepSettings(model=model or DEFAULT_MODEL_NAME, suite=SUITE, task=TASK_ID))``
    picks it, and ``verdict(rate, se, reference)`` words the chapter's rule
    (within 3 points: healthy; more than 5 below: a bug), or write your own.
    Finally save the plot to ``out_dir/first_close.png``.
    """
    raise NotImplementedError("sweep the seeds with progress, report rate +- standard error against the reference, plot")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Exercise 2.x.2: the sweep, its success rate and its plot.")
    parser.add_argument("--episodes", type=int, default=EPISODES, help=f"episodes (seeds 0..N-1; default {EPISODES})")
    parser.add_argument("--steps", type=int, default=None, help="policy steps per episode (default: the suite's limit)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"where the rows, logs and plot go (default {OUT_DIR}/)")
    args = parser.parse_args()
    if args.episodes <= 0 or (args.steps is not None and args.steps <= 0):
        parser.error("--episodes and --steps must be positive")
    main(args.episodes, args.steps, args.out)
