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
        if progress is not None:
            progress(rows[-1])
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


def main(episodes: int = EPISODES, max_steps: int | None = None, out_dir: Path = OUT_DIR) -> None:
    """Sweep the seeds, print the success rate with its standard error against the right reference, and plot."""
    model = os.environ.get("VLA_CH2_MODEL")
    policy = load_policy(model)
    out_dir.mkdir(parents=True, exist_ok=True)

    def progress(row):
        outcome = "success" if row["success"] else "failure"
        print(f"episode {row['seed'] + 1}/{episodes}: {outcome} after {row['steps']} steps ({row['wall_s']:.0f} s)",
              flush=True)

    with LiberoTask(SUITE, TASK_ID) as task:
        rows = run_sweep(task, policy, episodes=episodes, max_steps=max_steps, log_dir=out_dir / "episodes",
                         progress=progress)
    with open(out_dir / "episodes.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)

    rate = success_rate(rows)
    se = standard_error(sum(row["success"] for row in rows), len(rows))
    print(f"success rate over {len(rows)} episodes: {100 * rate:.1f} % +- {100 * se:.1f}")
    # The teaching model is compared with its own card, OpenVLA-7B with the paper (a suite average).
    reference = reference_for(SweepSettings(model=model or DEFAULT_MODEL_NAME, suite=SUITE, task=TASK_ID))
    print(verdict(rate, se, reference))
    print(f"OpenVLA-7B, for scale: Kim et al. (2024) report {100 * PAPER_RATE:.1f} % +- {100 * PAPER_SE:.1f} on "
          "LIBERO-Object (10 tasks x 50 episodes, averaged over 3 seeds).")
    print(f"plot: {plot_first_close(rows, out_dir / 'first_close.png')}")


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
