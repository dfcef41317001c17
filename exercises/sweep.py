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
from vla_ch2.policy import load_policy

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


def run_sweep(task, policy, episodes=50, max_steps=None, log_dir=None) -> list[dict]:
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


def main() -> None:
    """Sweep fifty seeds, print the success rate with its standard error, and draw the plot.

    Load the policy (``load_policy``; ``VLA_CH2_MODEL`` may name another
    checkpoint), run ``run_sweep`` on ``LiberoTask(SUITE, TASK_ID)`` with step
    logs under ``sweep/episodes``, write the rows to ``sweep/episodes.jsonl``,
    print the rate with its standard error and one sentence comparing it with
    ``PAPER_RATE``, and save the plot to ``sweep/first_close.png``.
    """
    raise NotImplementedError("sweep EPISODES seeds, report rate +- standard error against the paper, plot")


if __name__ == "__main__":
    main()
