"""Where the objects start: official initial states beside fresh validation layouts, task by task.

Candidates are chosen on fresh layouts (``vla_ch2.factory.validate``) and
measured on the 50 official initial states. This script resets a task both
ways, without running any policy, and records every object's starting
position, the target's heading and the gripper's starting position, so that
the sets of starting scenes can be compared.

    python scripts/layout_stats.py --tasks 0,8 --count 50 --out layouts.jsonl
    python scripts/layout_stats.py --summary layouts.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _yaw(quat) -> float:
    """Heading in degrees of a MuJoCo quaternion (w, x, y, z) about the vertical axis."""
    w, x, y, z = (float(v) for v in quat)
    return float(np.degrees(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))))


def scene(obs: dict, target: str) -> dict:
    """Every object's (x, y), the target's heading and the gripper's start, from a LIBERO observation."""
    from replay_objects import object_positions  # this folder's: which observation keys are objects

    objects = {name: [round(float(v[0]), 4), round(float(v[1]), 4)] for name, v in object_positions(obs).items()}
    return {"objects": objects, "target": target, "target_yaw": round(_yaw(obs[f"{target}_quat"]), 1),
            "gripper": [round(float(v), 4) for v in obs["robot0_eef_pos"]]}


def collect(tasks: list[int], count: int, out: Path) -> None:
    """Reset each task ``count`` times three ways and write one row per scene.

    The ways: the official initial states; fresh validation layouts with the
    arm at its home pose (``start_noise=0``, as rounds 1 to 15 had them); the
    same layouts with the library's arm start (``conventions.START_JOINT_NOISE``).
    """
    from vla_ch2 import conventions as C
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.factory.validate import layout_base

    quiet_robosuite()
    partial = out.with_name(out.name + ".partial")  # renamed to ``out`` only once every task is written
    with partial.open("w") as f:
        for t in tasks:
            with LiberoTask("libero_object", t) as task:
                target = task.env.env.obj_of_interest[0]
                for k in range(count):
                    for kind, noise in (("official", None), ("fresh, home start", 0.0),
                                        ("fresh", C.START_JOINT_NOISE)):
                        if noise is None:
                            obs = task.reset(init_index=k)
                        else:
                            task.start_noise = noise
                            obs = task.reset(layout_seed=layout_base(t) + k)
                        f.write(json.dumps({"task": t, "kind": kind, "k": k, **scene(obs, target)}) + "\n")
            print(f"task {t}: {count} official states and {count} validation layouts, two arm starts",
                  file=sys.stderr)
    partial.replace(out)


def spread(rows: list[dict]) -> float:
    """Root-mean-square distance of the gripper's starting position from its mean, in cm."""
    g = np.array([r["gripper"] for r in rows]) * 100
    return float(np.sqrt(((g - g.mean(0)) ** 2).sum(1).mean()))


def summary(path: Path) -> str:
    """Per task and kind: the target's mean (x, y) and spread, its heading range, the nearest distractor."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = ["| task | scenes | target x (cm) | target y (cm) | target heading (deg) | nearest other object (cm) "
             "| gripper's start, spread (cm) |", "|---|---|---|---|---|---|---|"]
    for t in sorted({r["task"] for r in rows}):
        for kind in dict.fromkeys(r["kind"] for r in rows if r["task"] == t):
            mine = [r for r in rows if r["task"] == t and r["kind"] == kind]
            xy = np.array([r["objects"][r["target"]] for r in mine]) * 100
            yaw = np.array([r["target_yaw"] for r in mine])
            near = np.array([min(np.hypot(*(np.array(p) - r["objects"][r["target"]])) for name, p in r["objects"].items()
                                 if name != r["target"] and "basket" not in name) for r in mine]) * 100
            lines.append(f"| {t} | {kind} ({len(mine)}) | {xy[:, 0].mean():.1f} +- {xy[:, 0].std():.1f} "
                         f"[{xy[:, 0].min():.1f}, {xy[:, 0].max():.1f}] | {xy[:, 1].mean():.1f} +- {xy[:, 1].std():.1f} "
                         f"[{xy[:, 1].min():.1f}, {xy[:, 1].max():.1f}] | [{yaw.min():.0f}, {yaw.max():.0f}] "
                         f"| {near.mean():.1f} (min {near.min():.1f}) | {spread(mine):.2f} |")
    return "\n".join(lines) + "\n"


def _task_ids(text: str) -> list[int]:
    """``--tasks``: comma-separated ids of libero_object's ten tasks."""
    try:
        ids = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of task ids, e.g. 0,8") from None
    if not all(0 <= t <= 9 for t in ids):
        raise argparse.ArgumentTypeError(f"{text!r}: libero_object's tasks are 0 to 9")
    return ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="0,8", type=_task_ids, help="comma-separated task ids of libero_object, 0 to 9")
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--out", type=Path)
    p.add_argument("--summary", type=Path, help="print the table of a file this script wrote")
    args = p.parse_args(argv)
    if args.summary:
        print(summary(args.summary), end="")
    elif args.out:
        collect(args.tasks, args.count, args.out)
    else:
        p.error("give --out FILE to collect, or --summary FILE to tabulate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
