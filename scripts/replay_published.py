"""Run published suite episodes again with the current code and compare them step by step.

An output-preserving change (a faster image path, a cheaper model pass) must
leave every logged step as it was: the same action and the same image mean.
Each TASK:SEED names a published step log,
``docs/results/suite/task-TASK/episodes/seed-SEED.jsonl.gz``; the episode runs
again on the embedded model with the loop's defaults and each step is compared.

    python scripts/replay_published.py 0:0 0:1 6:0 6:1

Prints one line per episode and exits with status 1 if any step differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "docs" / "results" / "suite"


def episode(text: str) -> tuple[int, int, Path]:
    """``TASK:SEED`` -> (task, seed, published log), or a usage error naming what is wrong."""
    try:
        task, seed = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TASK:SEED, e.g. 0:3") from None
    path = SUITE / f"task-{task}" / "episodes" / f"seed-{seed}.jsonl.gz"
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: no published log {path.relative_to(REPO)}")
    return task, seed, path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("episodes", nargs="+", type=episode, metavar="TASK:SEED")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.logs import read_records
    from vla_ch2.loop import run_episode
    from vla_ch2.policy import load_policy

    quiet_robosuite()
    policy = load_policy(None)
    differ = 0
    for task_id, seed, path in args.episodes:
        published = read_records(path)
        with LiberoTask("libero_object", task_id) as task:
            now = list(run_episode(task, policy, seed=seed, tag=f"seed-{seed}"))
        common = min(len(published), len(now))
        changed = [i for i, (a, b) in enumerate(zip(published, now))
                   if (a["action"], a["img_mean"]) != (b["action"], b["img_mean"])]
        whole = not changed and len(published) == len(now)
        differ += not whole
        print(f"task {task_id} seed {seed}: {len(published)} published steps, {len(now)} now, "
              f"{common - len(changed)} identical" + ("" if whole else f"; first difference at step {(changed or [common])[0]}"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
