"""Compare candidate models on fresh layouts, never on the official initial states.

Choosing a checkpoint by its score on the 50 official initial states would
tune it to the very episodes the suite sweep then reports. Candidates are
compared here instead on layouts LIBERO samples at reset from seeds of their
own (``VALIDATION_SEED_BASE`` on; demonstrations use ``LAYOUT_SEED_BASE`` =
100000 to 109999), with the chapter's loop unchanged: only ``reset`` is
redirected. A fresh layout starts the arm as the official states do, at its
home pose plus ``conventions.START_JOINT_NOISE`` per joint; until round 15 it
started at the home pose itself, and the scores of a candidate that is fragile
to where the arm starts did not carry over to the official states.

    python -m vla_ch2.factory.validate --models DIR_A DIR_B --tasks 0-9 --per-task 6 --workers 2 --out val.jsonl

Resumable: finished episodes in ``--out`` are kept and skipped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vla_ch2.env import pool_to_jsonl

VALIDATION_SEED_BASE = 200_000


class FreshLayouts:
    """A :class:`~vla_ch2.env.LiberoTask` whose ``reset(init_index=k)`` samples fresh layout ``base + k``."""

    def __init__(self, task, base: int):
        self._task, self._base = task, base

    def reset(self, init_index: int | None = None, layout_seed: int | None = None) -> dict:
        return self._task.reset(layout_seed=self._base + int(init_index or 0))

    def __getattr__(self, name):
        return getattr(self._task, name)


def layout_base(task_id: int) -> int:
    """First layout seed of ``task_id``'s validation episodes."""
    return VALIDATION_SEED_BASE + 1000 * task_id


def _worker(jobs, results, suite: str, device: str | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.loop import EpisodeResult, run_episode
    from vla_ch2.policy import load_policy

    quiet_robosuite()
    policies, tasks = {}, {}
    try:
        while (job := jobs.get()) is not None:
            model, task_id, k = job
            if model not in policies:
                policies[model] = load_policy(model, device=device)
            if task_id not in tasks:
                tasks[task_id] = LiberoTask(suite, task_id)
            result = EpisodeResult(seed=k)
            for _ in run_episode(FreshLayouts(tasks[task_id], layout_base(task_id)), policies[model], seed=k,
                                 result=result):
                pass
            results.put({"model": model, "task": task_id, "k": k, "layout_seed": layout_base(task_id) + k,
                         "success": bool(result.success), "steps": result.steps})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops with the message
        results.put({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        for task in tasks.values():
            task.close()


def validate(models: list[str], tasks: list[int], per_task: int, workers: int, out: Path, suite: str = "libero_object",
             device: str | None = None):
    """Run the missing (model, task, k) episodes, appending one JSON line each to ``out``; return all lines.

    ``device`` is where the policies run (default: a GPU if there is one, as the loop chooses).
    """
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
    done = {(r["model"], r["task"], r["k"]) for r in rows}
    # Interleave the models so that a run cut short still compares them on the same episodes.
    todo = [(m, t, k) for k in range(per_task) for t in tasks for m in models if (m, t, k) not in done]
    return rows + pool_to_jsonl(_worker, todo, workers, out, suite, device, name="a validation worker")


def table(rows: list[dict]) -> dict:
    """Per model: successes / episodes overall and per task."""
    summary = {}
    for r in rows:
        m = summary.setdefault(r["model"], {"episodes": 0, "successes": 0, "tasks": {}})
        m["episodes"] += 1
        m["successes"] += int(r["success"])
        t = m["tasks"].setdefault(r["task"], [0, 0])
        t[0] += int(r["success"])
        t[1] += 1
    return summary


def main(argv: list[str] | None = None) -> int:
    from vla_ch2.conventions import N_TASKS
    from vla_ch2.sweep import parse_tasks

    parser = argparse.ArgumentParser(prog="python -m vla_ch2.factory.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--per-task", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default=None, help="where the policies run: cpu, cuda (default: a GPU if present)")
    args = parser.parse_args(argv)
    rows = validate(args.models, parse_tasks(args.tasks, N_TASKS[args.suite]), args.per_task, args.workers, args.out,
                    args.suite, args.device)
    for model, m in table(rows).items():
        per_task = " ".join(f"{t}:{s}/{n}" for t, (s, n) in sorted(m["tasks"].items()))
        print(f"{model}: {m['successes']}/{m['episodes']} = {100 * m['successes'] / m['episodes']:.1f} %  [{per_task}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
