"""Loop overhead and sweep efficiency, every ratio against a baseline measured in the same run.

One process, one task: bare ``env.step`` with a fixed small action (physics +
agentview render), then the full loop step (render -> rotate -> JPEG -> Lanczos
-> policy -> gripper fix -> env.step) with the model, then bare ``env.step``
again on the actions the loop just took (the same simulator work), then the policy alone
(``predict`` on a prepared image: crop, processor, forward passes) and the
image path alone (``prepare_image``).

With ``--workers W``, the parallel baseline: bare ``env.step`` in W processes
at once, the throughput a sweep of W workers could reach if the loop cost
nothing. With ``--sweep-episodes E`` a fresh sweep of E episodes is run with W
workers in the same run and its wall time compared with that ideal (its
simulator steps, wait steps included, divided by the parallel throughput),
and with the ideal of its own episodes replayed bare in W processes (their
logged actions from their initial states: the simulator work the sweep did,
which a fixed small action understates).
``--lp-threads N`` sets Mesa llvmpipe's render threads (``LP_NUM_THREADS``) in
every process this bench starts, to measure what renderer threads cost.

    python bench/loop_overhead.py [--steps 200] [--workers 2] [--sweep-episodes 10] [--suite DIR] [--out bench.json]

``--suite DIR`` also compares a finished suite sweep's recorded wall time (its
``last_run`` per task, measured when it ran, not in this run) with the ideal at
this run's parallel throughput.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ACTION = (0.05, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def _timed(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def _bare_steps(task_id: int, steps: int, barrier, results) -> None:
    """One process of the parallel baseline: build, warm up, wait for the others, step."""
    from vla_ch2.env import LiberoTask, quiet_robosuite

    quiet_robosuite()
    with LiberoTask("libero_object", task_id) as task:
        task.reset(init_index=0)
        action = np.array(ACTION)
        for _ in range(5):
            task.step(action)
        barrier.wait()
        start = time.perf_counter()
        for _ in range(steps):
            task.step(action)
        results.put((start, time.perf_counter()))


def parallel_bare(workers: int, steps: int) -> dict:
    """Bare ``env.step`` in ``workers`` processes at once: steps per second over all of them."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_bare_steps, args=(0, steps, barrier, results)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    spans = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return {"workers": workers, "steps_per_s": workers * steps / wall,
            "step_ms_in_parallel": 1000 * float(np.mean([(e - s) / steps for s, e in spans]))}


def _replay_steps(suite: str, task_id: int, episodes: list, barrier, results) -> None:
    """One process of the replay baseline: each episode's own actions, bare (no policy, no image path)."""
    from vla_ch2 import conventions as C
    from vla_ch2.env import LiberoTask, quiet_robosuite

    quiet_robosuite()
    wait = np.array(C.WAIT_ACTION)
    with LiberoTask(suite, task_id) as task:
        task.reset(init_index=0)
        for _ in range(5):
            task.step(wait)
        barrier.wait()
        steps, stepping = 0, 0.0
        for seed, actions in episodes:
            task.reset(init_index=seed)  # as the loop starts an episode; resets are not steps, so not timed
            start = time.perf_counter()
            for _ in range(C.NUM_WAIT_STEPS):
                task.step(wait)
            for action in actions:
                task.step(np.asarray(action, dtype=np.float64))
            stepping += time.perf_counter() - start
            steps += C.NUM_WAIT_STEPS + len(actions)
        results.put((steps, stepping))


def recorded_episodes(sweep_dir: str | Path) -> list[tuple[int, list]]:
    """A sweep's episodes as ``(seed, logged actions)`` pairs, for :func:`parallel_replay`."""
    from vla_ch2.logs import read_records
    from vla_ch2.sweep import read_episodes

    return [(r["seed"], [s["action"] for s in read_records(Path(sweep_dir) / "episodes" / f"seed-{r['seed']}.jsonl")])
            for r in read_episodes(sweep_dir)]


def parallel_replay(workers: int, episodes: list, suite: str = "libero_object", task_id: int = 0) -> dict:
    """Bare ``env.step`` on recorded episodes' own actions in ``workers`` processes at once.

    ``episodes`` holds ``(seed, actions)`` pairs: each starts from initial
    state ``seed``, takes the wait steps and then its logged actions, so the
    simulator does the work the loop made it do (contacts and all), without
    the policy. Episodes go to the least loaded process, longest first. The
    throughput is the sum of each process's own steps per second of stepping.
    """
    from vla_ch2 import conventions as C

    groups, loads = [[] for _ in range(workers)], [0] * workers
    for seed, actions in sorted(episodes, key=lambda e: -len(e[1])):
        i = loads.index(min(loads))
        groups[i].append((seed, actions))
        loads[i] += C.NUM_WAIT_STEPS + len(actions)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_replay_steps, args=(suite, task_id, group, barrier, results)) for group in groups]
    for proc in procs:
        proc.start()
    done = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return {"workers": workers, "steps": sum(n for n, _ in done), "steps_per_s": sum(n / t for n, t in done)}


def single_process(model: str | None, steps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from vla_ch2 import conventions as C
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.loop import run_episode
    from vla_ch2.policy import load_policy

    quiet_robosuite()
    policy = load_policy(model)
    with LiberoTask("libero_object", 0) as task:
        task.reset(init_index=0)
        action = np.array(ACTION)
        for _ in range(5):
            task.step(action)
        bare = _timed(lambda: task.step(action), steps)

        # The loop also runs 10 wait steps per episode; time only the policy steps.
        records = run_episode(task, policy, seed=0, max_steps=steps, stop_on_success=False)
        first = next(records)["action"]
        start = time.perf_counter()
        actions = [record["action"] for record in records]
        loop = (time.perf_counter() - start) / len(actions)

        # The same simulator work as the loop's: bare steps on the actions the policy just took.
        task.reset(init_index=0)
        for _ in range(C.NUM_WAIT_STEPS):
            task.step(np.array(C.WAIT_ACTION))
        task.step(np.array(first))
        start = time.perf_counter()
        for recorded in actions:
            task.step(np.array(recorded))
        bare_policy = (time.perf_counter() - start) / len(actions)

        frame = task.frame(task.reset(init_index=0))
        image = C.prepare_image(frame)
        prompt = C.CANONICAL_PROMPT.format(instruction=task.language)
        policy.predict(image, prompt, "libero_object")
        per_action = _timed(lambda: policy.predict(image, prompt, "libero_object"), 100)
        image_path = _timed(lambda: C.prepare_image(frame), 100)
        # The model alone: predict_action on inputs the processor already made (no crop, no resize).
        from PIL import Image

        inputs = policy.processor(prompt, Image.fromarray(C.center_crop(image)))
        key = policy.resolve_key("libero_object")

        def model_only():
            with torch.inference_mode():
                policy.vla.predict_action(**inputs, unnorm_key=key, do_sample=False)

        model = _timed(model_only, 100)
        # The two steps of an action that are not the model: the centre crop and the processor.
        cropped = C.center_crop(image)
        crop = _timed(lambda: C.center_crop(image), 100)
        processor = _timed(lambda: policy.processor(prompt, Image.fromarray(cropped)), 100)
    return {
        "bare_env_step_ms": round(1000 * bare, 2),
        "loop_step_ms": round(1000 * loop, 2),
        "loop_over_bare": round(loop / bare, 3),
        "bare_policy_actions_ms": round(1000 * bare_policy, 2),
        "loop_over_bare_policy_actions": round(loop / bare_policy, 3),
        "policy_ms_per_action": round(1000 * per_action, 2),
        "policy_over_bare": round(per_action / bare, 3),
        "model_ms_per_action": round(1000 * model, 2),
        "model_over_bare": round(model / bare, 3),
        "image_path_ms": round(1000 * image_path, 2),
        "crop_ms": round(1000 * crop, 2),
        "processor_ms": round(1000 * processor, 2),
        # What a loop step costs beyond the bare step, the policy and the image path, against either baseline
        # (the policy's own actions cost the simulator as much as the fixed one or more: see bare_policy_actions_ms).
        "loop_rest_ms": round(1000 * (loop - bare - per_action - image_path), 2),
        "loop_rest_ms_policy_actions": round(1000 * (loop - bare_policy - per_action - image_path), 2),
    }


def weights_sha256(model: str | None) -> str | None:
    """SHA-256 of the measured model's ``model.safetensors`` (a local checkpoint), so a card can tell whose timing it shows."""
    from vla_ch2.factory.teaching_model import sha256
    from vla_ch2.policy import resolve_model

    path = Path(resolve_model(model)) / "model.safetensors"
    return sha256(path) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--model", default=None)
    parser.add_argument("--workers", type=int, default=0, help="measure the parallel baseline with this many processes")
    parser.add_argument("--sweep-episodes", type=int, default=0, help="run a sweep of this many episodes, compare with the ideal")
    parser.add_argument("--lp-threads", type=int, default=None, help="LP_NUM_THREADS for every process started here")
    parser.add_argument("--suite", default=None,
                        help="a finished suite sweep (task-*/summary.json): compare its recorded wall time with the ideal")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.lp_threads is not None:
        os.environ["LP_NUM_THREADS"] = str(args.lp_threads)

    result = {"machine": f"{platform.processor() or platform.machine()}, {platform.system()}, {os.cpu_count()} cores",
              "torch_threads": 1, "lp_num_threads": os.environ.get("LP_NUM_THREADS", "Mesa default")}
    result.update(single_process(args.model, args.steps))
    result["model_sha256"] = weights_sha256(args.model)
    if args.workers:
        par = parallel_bare(args.workers, args.steps)
        result.update({"parallel_workers": args.workers, "parallel_bare_steps_per_s": round(par["steps_per_s"], 2),
                       "parallel_bare_step_ms": round(par["step_ms_in_parallel"], 2),
                       "parallel_speedup": round(par["steps_per_s"] * result["bare_env_step_ms"] / 1000, 3)})
        if args.sweep_episodes:
            from vla_ch2 import conventions as C
            from vla_ch2.policy import DEFAULT_MODEL_NAME
            from vla_ch2.sweep import SweepSettings, run_sweep

            settings = SweepSettings(model=args.model or DEFAULT_MODEL_NAME)
            with tempfile.TemporaryDirectory() as out:
                summary = run_sweep(out, settings, episodes=args.sweep_episodes, workers=args.workers)
                episodes = recorded_episodes(out)
            last = summary["last_run"]
            sim_steps = last["policy_steps"] + C.NUM_WAIT_STEPS * last["episodes_run"]
            ideal = sim_steps / par["steps_per_s"]
            # The sweep's own episodes replayed bare in as many processes: the simulator work it did.
            replay = parallel_replay(args.workers, episodes)
            replay_ideal = sim_steps / replay["steps_per_s"]
            result.update({"sweep_episodes": last["episodes_run"], "sweep_sim_steps": sim_steps,
                           "sweep_wall_s": last["wall_s"], "sweep_ideal_s": round(ideal, 1),
                           "sweep_over_ideal": round(last["wall_s"] / ideal, 3),
                           "sweep_replay_steps_per_s": round(replay["steps_per_s"], 2),
                           "sweep_replay_ideal_s": round(replay_ideal, 1),
                           "sweep_over_replay_ideal": round(last["wall_s"] / replay_ideal, 3)})
        if args.suite:
            from vla_ch2 import conventions as C

            runs = [json.loads(p.read_text())["last_run"] for p in sorted(Path(args.suite).glob("task-*/summary.json"))]
            sim_steps = sum(r["policy_steps"] + C.NUM_WAIT_STEPS * r["episodes_run"] for r in runs)
            wall = sum(r["wall_s"] for r in runs)
            ideal = sim_steps / par["steps_per_s"]
            result.update({"suite_episodes": sum(r["episodes_run"] for r in runs), "suite_sim_steps": sim_steps,
                           "suite_wall_s_recorded": round(wall, 1), "suite_ideal_s": round(ideal, 1),
                           "suite_over_ideal": round(wall / ideal, 3)})
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
