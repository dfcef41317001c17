"""Replay episodes and say which objects moved: what a step log cannot tell about a failure.

The chapter's step log holds actions and images, not the scene. To learn
whether a failed grasp closed on nothing, this replays episodes with the
loop unchanged (the same seeds give the same episodes) and reads LIBERO's
object positions at the first policy step and at the end.

    python scripts/replay_objects.py --task 6 --seeds 0,1 [--model DIR]

One JSON line per episode: success, steps, every object that moved more than
1 cm (metres), where the hand ended, where the basket is, and just after the
first closing command the step and the hand's offset from the task's object (x, y,
z in metres, world frame; the scripted expert closes about 1 cm above its
grasp point, aimed along x by ``GRASP_XY``: in v2's demonstrations -1 cm on
the cream cheese). ``--after N`` adds the next N steps: the hand's height over the object and the policy's z and
gripper commands (does it go on down while closing, or lift at once?).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def object_positions(obs: dict) -> dict:
    """Positions of every object in a LIBERO observation (``<name>_pos``), the robot's own keys left out."""
    return {k[: -len("_pos")]: np.asarray(v, dtype=float) for k, v in obs.items()
            if k.endswith("_pos") and not k.startswith("robot") and "_to_" not in k}


def replay(task, policy, seed: int, after: int = 0) -> dict:
    """Run one episode of the loop and report how the scene changed."""
    from vla_ch2.loop import EpisodeResult, run_episode

    result, start, close = EpisodeResult(seed=seed), None, None
    target = task.env.env.obj_of_interest[0]
    for step, record in enumerate(run_episode(task, policy, seed=seed, result=result)):
        if start is None:
            start = object_positions(task.env.env._get_observations())
        if close is None and record["action"][-1] > 0:  # just after the first closing command: where is the hand?
            now = task.env.env._get_observations()
            offset = np.asarray(now["robot0_eef_pos"], dtype=float) - np.asarray(now[f"{target}_pos"], dtype=float)
            close = {"step": step, "hand_minus_target": np.round(offset, 3).tolist()}
            if after:
                close["after"] = []
        elif close is not None and len(close.get("after", ())) < after:
            now = task.env.env._get_observations()
            height = float(now["robot0_eef_pos"][2] - now[f"{target}_pos"][2])
            close["after"].append({"hand_z": round(height, 3), "action_z": round(float(record["action"][2]), 3),
                                   "gripper": float(record["action"][-1])})
    obs = task.env.env._get_observations()
    end = object_positions(obs)
    moved = {name: round(float(np.linalg.norm(end[name] - start[name])), 3) for name in start}
    eef = np.asarray(obs["robot0_eef_pos"], dtype=float)
    return {"task": task.task_id, "seed": seed, "success": result.success, "steps": result.steps,
            "moved": {k: v for k, v in sorted(moved.items(), key=lambda kv: -kv[1]) if v > 0.01},
            "hand_end": np.round(eef, 3).tolist(), "basket": np.round(end.get("basket_1", np.zeros(3)), 3).tolist(),
            "first_close": close}


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 0,1,2") from None
    if any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are 0 or more")
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--seeds", default="0", type=_seeds, help="comma-separated episode seeds, e.g. 0,1,2")
    parser.add_argument("--model", default=None, help="a checkpoint directory (default: the embedded model)")
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--after", type=int, default=0, help="also report this many steps after the first close")
    args = parser.parse_args()
    if args.after < 0:
        parser.error(f"--after {args.after}: give a number of steps, 0 or more")

    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.policy import load_policy

    quiet_robosuite()
    try:
        policy = load_policy(args.model)
        task = LiberoTask(args.suite, args.task)
    except (ValueError, OSError, RuntimeError) as exc:  # unknown suite or task, missing checkpoint, no simulator
        parser.error(str(exc))
    try:
        for seed in args.seeds:
            print(json.dumps(replay(task, policy, seed, args.after)), flush=True)
    finally:
        task.close()


if __name__ == "__main__":
    main()
