"""Loop overhead: time per loop step over bare ``env.step`` time, in one process.

Both are measured here on the same task and machine: ``env.step`` with a
fixed small action (physics + agentview render), then the full loop step
(render -> rotate -> JPEG -> Lanczos -> policy -> gripper fix -> env.step)
with the teaching model. Optionally, a sweep directory's wall time is compared
with the ideal (episodes x steps x bare step time / workers).

    python bench/loop_overhead.py [--steps 200] [--sweep runs/sweep] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--model", default=None)
    parser.add_argument("--sweep", default=None, help="a sweep directory whose last run to compare with the ideal")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from vla_ch2 import conventions as C
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.loop import run_episode
    from vla_ch2.policy import load_policy

    quiet_robosuite()
    policy = load_policy(args.model)
    task = LiberoTask("libero_object", 0)
    try:
        task.reset(init_index=0)
        action = np.array([0.05, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])
        for _ in range(5):
            task.step(action)
        start = time.perf_counter()
        for _ in range(args.steps):
            task.step(action)
        bare = (time.perf_counter() - start) / args.steps

        # The loop also runs 10 wait steps per episode; time only the policy steps.
        records = run_episode(task, policy, seed=0, max_steps=args.steps, stop_on_success=False)
        next(records)
        start = time.perf_counter()
        n = sum(1 for _ in records)
        loop = (time.perf_counter() - start) / n

        image = C.prepare_image(task.frame(task.reset(init_index=0)))
        prompt = C.CANONICAL_PROMPT.format(instruction=task.language)
        policy.predict(image, prompt, "libero_object")
        start = time.perf_counter()
        for _ in range(50):
            policy.predict(image, prompt, "libero_object")
        per_action = (time.perf_counter() - start) / 50
    finally:
        task.close()

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "torch_threads": 1,
        "bare_env_step_ms": round(1000 * bare, 2),
        "loop_step_ms": round(1000 * loop, 2),
        "loop_over_bare": round(loop / bare, 3),
        "policy_ms_per_action": round(1000 * per_action, 2),
    }
    if args.sweep:
        summary = json.load(open(f"{args.sweep}/summary.json"))
        last = summary.get("last_run")
        if last and last["episodes_run"]:
            steps = last["policy_steps"] + C.NUM_WAIT_STEPS * last["episodes_run"]
            ideal = steps * bare / last["workers"]
            result.update({"sweep_wall_s": last["wall_s"], "sweep_ideal_s": round(ideal, 1),
                           "sweep_over_ideal": round(last["wall_s"] / ideal, 3), "sweep_workers": last["workers"]})
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
