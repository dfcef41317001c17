# SOLUTION
"""Exercise 2.x.2: the 50-episode sweep (worked solution).

The correct loop (no toggle flipped) on libero_object task 0, one episode
per seed; one row per episode with its outcome, final reward, length, first
gripper close and wall-clock time; the success rate with its binomial
standard error; and the first-close histogram coloured by outcome.

Run it from the repository root with ``python solutions/sweep.py`` and
check it with ``vla-ch2 check 2.x.2 solutions/sweep.py``.
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
    for step, action in enumerate(actions):
        if action[6] > 0.5:
            return step
    return None


def standard_error(successes, episodes) -> float:
    """Binomial standard error of the success rate, ``sqrt(p (1 - p) / n)``."""
    if episodes <= 0:
        raise ValueError(f"a success rate needs at least one episode, got {episodes}")
    p = successes / episodes
    return math.sqrt(p * (1.0 - p) / episodes)


def success_rate(rows) -> float:
    """The fraction of episodes (rows) that succeeded."""
    if not rows:
        raise ValueError("no episodes: run the sweep first")
    return sum(1 for row in rows if row["success"]) / len(rows)


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
    """
    rows = []
    for seed in range(episodes):
        result = EpisodeResult(seed=seed)
        actions = []
        records = run_episode(task, policy, seed=seed, max_steps=max_steps, tag=f"seed-{seed}", result=result)
        if log_dir is None:
            actions = [record["action"] for record in records]
        else:
            with StepLogWriter(Path(log_dir) / f"seed-{seed}.jsonl") as writer:
                for record in records:
                    writer.write(record)
                    actions.append(record["action"])
        rows.append(dict(seed=seed, success=bool(result.success), final_reward=float(result.final_reward),
                         steps=int(result.steps), first_close_step=first_close_step(actions),
                         wall_s=round(result.wall_s, 3)))
    return rows


# --- 3. The plot ----------------------------------------------------------------------------------


def plot_first_close(rows, out_png, bin_width=10) -> Path:
    """Histogram of the first-close step, successes and failures stacked, "never closes" as its own bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    closing = [row["first_close_step"] for row in rows if row["first_close_step"] is not None]
    edges = np.arange(0, max(closing, default=0) + 2 * bin_width, bin_width)
    never_at = edges[-1] + bin_width  # one bin to the right of the last one

    fig, ax = plt.subplots(figsize=(7, 3.5))
    below, never_below = np.zeros(len(edges) - 1), 0
    for outcome, color in ((True, "tab:green"), (False, "tab:red")):
        mine = [row for row in rows if bool(row["success"]) is outcome]
        counts, _ = np.histogram([r["first_close_step"] for r in mine if r["first_close_step"] is not None], edges)
        label = f"{'success' if outcome else 'failure'} ({len(mine)})"
        ax.bar(edges[:-1], counts, width=bin_width, bottom=below, align="edge", color=color, edgecolor="white",
               label=label)
        never = sum(1 for r in mine if r["first_close_step"] is None)
        ax.bar(never_at, never, width=bin_width, bottom=never_below, align="edge", color=color, hatch="//")
        below, never_below = below + counts, never_below + never
    ax.set_xticks([*edges[::max(1, len(edges) // 8)], never_at + bin_width / 2])
    ax.set_xticklabels([*(str(int(e)) for e in edges[::max(1, len(edges) // 8)]), "never\ncloses"])
    ax.set_xlabel("step of the first gripper close (action[6] > 0.5)")
    ax.set_ylabel("episodes")
    ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, format="png", dpi=120)
    plt.close(fig)
    return out_png


# --- 4. Fifty episodes, one number, one sentence, one plot ----------------------------------------


def main() -> None:
    """Sweep fifty seeds, print the success rate with its standard error, and draw the plot."""
    policy = load_policy(os.environ.get("VLA_CH2_MODEL"))
    OUT_DIR.mkdir(exist_ok=True)
    with LiberoTask(SUITE, TASK_ID) as task:
        rows = run_sweep(task, policy, episodes=EPISODES, log_dir=OUT_DIR / "episodes")
    with open(OUT_DIR / "episodes.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)

    rate = success_rate(rows)
    se = standard_error(sum(row["success"] for row in rows), len(rows))
    gap = 100 * (rate - PAPER_RATE)
    print(f"success rate over {len(rows)} episodes: {100 * rate:.1f} % +- {100 * se:.1f}")
    print(f"Kim et al. (2024) report {100 * PAPER_RATE:.1f} % +- {100 * PAPER_SE:.1f} on LIBERO-Object: "
          f"{gap:+.1f} points, " + ("a healthy install." if abs(gap) <= 3 else
                                    "a gap to hunt down before trusting the loop." if gap < -5 else
                                    "inside the noise of 50 episodes; pool another 50 seeds to be sure."))
    print(f"plot: {plot_first_close(rows, OUT_DIR / 'first_close.png')}")


if __name__ == "__main__":
    main()
