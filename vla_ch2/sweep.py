"""Exercise 2.x.2: the 50-episode sweep, with its standard error.

Episode ``k`` starts from official initial state ``k`` (seed ``k``). Each
episode writes its step log (``episodes/seed-k.jsonl``, tag ``seed-k``) and
then one line in ``episodes.jsonl``; the summary is recomputed from those
lines. Nothing is lost and nothing repeated: a sweep started again in the
same directory runs only the seeds that have no line yet, and a step log left
half-written by a kill is simply redone.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from vla_ch2 import conventions as C
from vla_ch2.env import worker_pool
from vla_ch2.logs import StepLogWriter

EPISODES = "episodes.jsonl"
SUMMARY = "summary.json"
SETTINGS = "sweep.json"
EPISODE_FIELDS = ("seed", "success", "final_reward", "steps", "first_close_step", "wall_s")

#: Published numbers a sweep is compared with: Kim et al. (2024, arXiv:2406.09246),
#: OpenVLA fine-tuned on LIBERO (500 rollouts per suite, 3 seeds).
PAPER_REFERENCES = {
    ("openvla/openvla-7b-finetuned-libero-spatial", "libero_spatial"): 84.7,
    ("openvla/openvla-7b-finetuned-libero-object", "libero_object"): 88.4,
    ("openvla/openvla-7b-finetuned-libero-goal", "libero_goal"): 79.2,
    ("openvla/openvla-7b-finetuned-libero-10", "libero_10"): 53.7,
}


#: Suite averages published for other policies on the same protocol (10 tasks x 50 official initial
#: states), mean +- standard error over 3 seeds: Kim et al. (2024, arXiv:2406.09246), LIBERO table.
#: A suite sweep of any model is shown beside them, like for like.
PUBLISHED_SUITE_AVERAGES = {
    "libero_spatial": {"OpenVLA-7B fine-tuned": (84.7, 0.9), "Octo fine-tuned": (78.9, 1.0),
                       "Diffusion Policy from scratch": (78.3, 1.1)},
    "libero_object": {"OpenVLA-7B fine-tuned": (88.4, 0.8), "Octo fine-tuned": (85.7, 0.9),
                      "Diffusion Policy from scratch": (92.5, 0.7)},
    "libero_goal": {"OpenVLA-7B fine-tuned": (79.2, 1.0), "Octo fine-tuned": (84.6, 0.9),
                    "Diffusion Policy from scratch": (68.3, 1.2)},
    "libero_10": {"OpenVLA-7B fine-tuned": (53.7, 1.3), "Octo fine-tuned": (51.1, 1.3),
                  "Diffusion Policy from scratch": (50.5, 1.3)},
}
PUBLISHED_SOURCE = "Kim et al. (2024), arXiv:2406.09246, LIBERO table (500 rollouts per suite, 3 seeds)"


class SweepError(ValueError):
    """A sweep directory that cannot be resumed as it is; the message says why and where."""


@dataclass(frozen=True)
class SweepSettings:
    """What identifies a sweep; a directory holds episodes of one setting only."""

    model: str
    suite: str = "libero_object"
    task: int = 0
    max_steps: int | None = None  # None: the suite's limit, as OpenVLA's evaluation


def first_close_step(actions: Iterable) -> int | None:
    """Index of the first step whose seventh action element crosses 0.5 (gripper closes); None if never."""
    for step, action in enumerate(actions):
        if float(action[6]) > 0.5:
            return step
    return None


def standard_error(successes: int, episodes: int) -> float:
    """Binomial standard error of a success rate: sqrt(p (1 - p) / n)."""
    if episodes <= 0:
        raise ValueError("the standard error needs at least one episode")
    p = successes / episodes
    return math.sqrt(p * (1.0 - p) / episodes)


def read_episodes(out_dir: str | os.PathLike) -> list[dict]:
    """Read ``episodes.jsonl``; a torn last line (a kill mid-write) is dropped, any other bad line is an error."""
    path = Path(out_dir) / EPISODES
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    torn = lines[-1] != ""  # the final line has no newline: it was being written when the sweep stopped
    rows, seeds = [], set()
    for number, line in enumerate(lines[:-1], start=1):
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SweepError(f"{where}: not valid JSON ({exc.msg}); fix or delete that line, then run again") from None
        if not isinstance(row, dict) or any(f not in row for f in EPISODE_FIELDS):
            raise SweepError(f"{where}: an episode line needs the fields {list(EPISODE_FIELDS)}; got {line[:120]!r}")
        if not isinstance(row["seed"], int) or not isinstance(row["success"], bool):
            raise SweepError(f"{where}: 'seed' must be an integer and 'success' true or false; got {line[:120]!r}")
        if row["seed"] in seeds:
            raise SweepError(f"{where}: seed {row['seed']} appears twice; delete one of the lines")
        seeds.add(row["seed"])
        rows.append(row)
    if torn:
        # Keep the file whole: rewrite it without the torn line (that episode is redone).
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def _check_settings(out_dir: Path, settings: SweepSettings) -> None:
    path = out_dir / SETTINGS
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise SweepError(f"{path}: unreadable; delete it only if this directory holds no other sweep") from None
        if stored != asdict(settings):
            raise SweepError(
                f"{out_dir} holds a sweep of {stored}, not {asdict(settings)}; use another --out directory"
            )
    else:
        path.write_text(json.dumps(asdict(settings), indent=2) + "\n", encoding="utf-8")


def _episode_worker(job_queue, result_queue, settings: dict, out_dir: str) -> None:
    """One process: its own simulator and model, episodes taken from a queue."""
    import torch

    torch.set_num_threads(1)
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.policy import load_policy

    quiet_robosuite()
    try:
        policy = load_policy(settings["model"])
        task = LiberoTask(settings["suite"], settings["task"])
    except Exception as exc:  # noqa: BLE001 - nothing can run: report, then let the parent stop the sweep
        result_queue.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        while True:
            seed = job_queue.get()
            if seed is None:
                break
            try:
                row = run_one(task, policy, seed, Path(out_dir), settings.get("max_steps"))
            except Exception as exc:  # noqa: BLE001 - OpenVLA's evaluation counts it as a failure and goes on
                row = errored_row(seed, exc)
                task.close()  # the simulator may be in any state now: start the next episode on a fresh one
                task = LiberoTask(settings["suite"], settings["task"])
            result_queue.put(("done", row))
    except Exception as exc:  # noqa: BLE001 - the simulator could not be rebuilt: report, stop the sweep
        result_queue.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        task.close()


def errored_row(seed: int, exc: BaseException) -> dict:
    """The episode line of an episode that raised: a failure, with the error's text (never dropped)."""
    return {"seed": seed, "success": False, "final_reward": 0.0, "steps": 0, "first_close_step": None,
            "wall_s": 0.0, "error": f"{type(exc).__name__}: {exc}"[:500]}


def run_one(task, policy, seed: int, out_dir: Path, max_steps: int | None = None) -> dict:
    """Run episode ``seed``, write its step log atomically, return its episode line."""
    from vla_ch2.loop import EpisodeResult, run_episode

    log_dir = out_dir / "episodes"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"seed-{seed}.jsonl"
    partial = path.with_suffix(".jsonl.partial")
    result, actions = EpisodeResult(seed=seed), []
    with StepLogWriter(partial) as writer:
        for record in run_episode(task, policy, seed=seed, max_steps=max_steps, tag=f"seed-{seed}", result=result):
            writer.write(record)
            actions.append(record["action"])
    os.replace(partial, path)
    return {
        "seed": seed, "success": bool(result.success), "final_reward": result.final_reward, "steps": result.steps,
        "first_close_step": first_close_step(actions), "wall_s": round(result.wall_s, 3),
    }


def run_sweep(
    out_dir: str | os.PathLike,
    settings: SweepSettings,
    episodes: int = 50,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    progress: Callable[[dict, list[dict]], None] | None = None,
) -> dict:
    """Run the missing episodes of seeds ``0..episodes-1`` (this shard's share), then summarise."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(out_dir, settings)
    rows = read_episodes(out_dir)
    done = {r["seed"] for r in rows}
    index, count = shard
    todo = [s for s in range(episodes) if s % count == index and s not in done]
    started = time.perf_counter()
    if todo:
        n_workers = max(1, min(workers, len(todo)))
        with worker_pool(_episode_worker, todo, n_workers, asdict(settings), str(out_dir)) as results, \
                open(out_dir / EPISODES, "a", encoding="utf-8") as handle:
            for _ in todo:
                kind, payload = results.get()
                if kind == "error":
                    raise RuntimeError(f"a sweep worker failed: {payload}")
                handle.write(json.dumps(payload) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                rows.append(payload)
                if progress:
                    progress(payload, rows)
    ran = [r for r in rows if r["seed"] in set(todo)]
    last_run = {"episodes_run": len(ran), "workers": workers, "wall_s": round(time.perf_counter() - started, 2),
                "policy_steps": int(sum(r["steps"] for r in ran))}
    return write_summary(out_dir, settings, rows, last_run)


def reference_for(settings: SweepSettings) -> dict | None:
    """The number this sweep should be compared with: the paper's, or the teaching model's card."""
    paper = PAPER_REFERENCES.get((settings.model, settings.suite))
    if paper is not None:
        return {"success_rate": paper / 100, "source": "Kim et al. (2024), arXiv:2406.09246, LIBERO table (suite average)"}
    from vla_ch2.policy import resolve_model

    card = Path(resolve_model(settings.model)) / "reference_success.json"
    if card.is_file():
        ref = json.loads(card.read_text(encoding="utf-8"))
        if ref.get("suite") == settings.suite and str(settings.task) in ref.get("per_task", {}):
            return {"success_rate": ref["per_task"][str(settings.task)], "source": ref.get("source", str(card))}
        if ref.get("suite") == settings.suite and ref.get("task") == settings.task:
            return {"success_rate": ref["success_rate"], "source": ref.get("source", str(card))}
    return None


def _card_suite_reference(model: str, suite: str) -> dict | None:
    """The suite average a model's card reports (``reference_success.json``, key ``suite_average``), if any."""
    from vla_ch2.policy import resolve_model

    card = Path(resolve_model(model)) / "reference_success.json"
    if not card.is_file():
        return None
    ref = json.loads(card.read_text(encoding="utf-8"))
    if ref.get("suite") != suite or "suite_average" not in ref:
        return None
    return {"success_rate": ref["suite_average"], "source": ref.get("source", str(card))}


def verdict(rate: float, se: float, reference: dict | None) -> str:
    """One sentence: healthy within 3 points of the reference, a bug to chase if more than 5 below."""
    ours = f"{100 * rate:.1f} % +- {100 * se:.1f}"
    if reference is None:
        return f"Measured {ours}; no published reference for this model and task to compare with."
    ref = 100 * reference["success_rate"]
    gap = 100 * rate - ref
    if abs(gap) <= 3:
        judgement = "within 3 points: the install looks healthy"
    elif gap < -5:
        judgement = "more than 5 points below: treat the gap as a bug and work back through the environment and the loop"
    elif gap < 0:
        judgement = "3 to 5 points below: inside two standard errors of 50 episodes, rerun or widen the sweep"
    else:
        judgement = "more than 3 points above the reference"
    return f"Measured {ours} against {ref:.1f} % ({reference['source']}): {gap:+.1f} points, {judgement}."


def summarise(rows: list[dict], settings: SweepSettings) -> dict:
    """Success rate, binomial standard error, reference and verdict."""
    n = len(rows)
    if n == 0:
        raise SweepError("no finished episodes to summarise")
    successes = sum(1 for r in rows if r["success"])
    errored = sorted(r["seed"] for r in rows if r.get("error"))
    rate, se = successes / n, standard_error(successes, n)
    reference = reference_for(settings)
    walls = [r["wall_s"] for r in rows]
    return {
        **asdict(settings),
        "episodes": n, "successes": successes, "success_rate": rate, "standard_error": se,
        "reference": reference, "verdict": verdict(rate, se, reference), "errored": len(errored),
        "errored_seeds": errored,
        "mean_steps": float(np.mean([r["steps"] for r in rows])), "mean_wall_s": float(np.mean(walls)),
        "seeds": sorted(r["seed"] for r in rows),
    }


def write_summary(out_dir: Path, settings: SweepSettings, rows: list[dict], last_run: dict | None = None) -> dict:
    """Write ``summary.json`` atomically and return it (``last_run``: what this invocation ran, and how long)."""
    summary = summarise(rows, settings)
    previous = out_dir / SUMMARY
    if last_run is not None and last_run["episodes_run"] == 0 and previous.is_file():
        last_run = json.loads(previous.read_text(encoding="utf-8")).get("last_run", last_run)  # nothing new ran
    if last_run is not None:
        summary["last_run"] = last_run
    partial = out_dir / (SUMMARY + ".partial")
    partial.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, out_dir / SUMMARY)
    return summary


def merge(sources: list[str | os.PathLike], out_dir: str | os.PathLike) -> dict:
    """Merge shard directories into ``out_dir`` (episode lines and step logs), then summarise."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings, rows, by_seed = None, read_episodes(out_dir), {}
    for row in rows:
        by_seed[row["seed"]] = row
    for source in map(Path, sources):
        if not (source / SETTINGS).is_file():
            raise SweepError(f"{source}: not a sweep directory (no {SETTINGS})")
        try:
            these = SweepSettings(**json.loads((source / SETTINGS).read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as exc:
            raise SweepError(f"{source / SETTINGS}: unreadable sweep settings ({exc})") from None
        if settings is not None and these != settings:
            raise SweepError(f"{source}: a sweep of {asdict(these)} cannot be merged with {asdict(settings)}")
        settings = these
        for row in read_episodes(source):
            if row["seed"] in by_seed and by_seed[row["seed"]] != row:
                raise SweepError(f"{source}: seed {row['seed']} disagrees with another shard; rerun that seed")
            if row["seed"] not in by_seed:
                log = source / "episodes" / f"seed-{row['seed']}.jsonl"
                if log.is_file():
                    (out_dir / "episodes").mkdir(exist_ok=True)
                    (out_dir / "episodes" / log.name).write_bytes(log.read_bytes())
                by_seed[row["seed"]] = row
    if settings is None:
        raise SweepError("nothing to merge: name at least one shard directory")
    _check_settings(out_dir, settings)
    merged = [by_seed[s] for s in sorted(by_seed)]
    partial = out_dir / (EPISODES + ".partial")
    partial.write_text("".join(json.dumps(r) + "\n" for r in merged), encoding="utf-8")
    os.replace(partial, out_dir / EPISODES)
    return write_summary(out_dir, settings, merged)


# --- Several tasks, or the whole suite --------------------------------------------------------------

#: Directory of one task's sweep inside a suite sweep.
TASK_DIR = "task-{task}"
SUITE_SUMMARY = "suite.json"


def parse_tasks(spec: str, n_tasks: int) -> list[int]:
    """``"all"``, ``"0-4"``, ``"0,2,7"`` (or a mix) -> sorted task indices, each checked against ``n_tasks``."""
    if spec.strip().lower() == "all":
        return list(range(n_tasks))
    tasks: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            low, _, high = part.partition("-")
            tasks.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ValueError(f"--tasks must be 'all', a range like 0-9 or a list like 0,2,7; got {spec!r}") from None
    bad = sorted(t for t in tasks if not 0 <= t < n_tasks)
    if not tasks or bad:
        raise ValueError(f"--tasks {spec!r}: tasks run from 0 to {n_tasks - 1}" + (f"; {bad} are not" if bad else ""))
    return sorted(tasks)


def suite_summary(out_dir: str | os.PathLike, tasks: list[int], model: str, suite: str) -> dict:
    """Per-task rates and the suite average over every episode, with standard errors; written to ``suite.json``.

    The suite average pools the episodes of all tasks (as the paper's 500-rollout
    numbers do); the reference is the paper's suite number for an OpenVLA
    checkpoint, none otherwise.
    """
    out_dir = Path(out_dir)
    per_task = []
    for task in tasks:
        rows = read_episodes(out_dir / TASK_DIR.format(task=task))
        if not rows:
            raise SweepError(f"{out_dir / TASK_DIR.format(task=task)}: no finished episodes for task {task}")
        wins = sum(1 for r in rows if r["success"])
        per_task.append({"task": task, "episodes": len(rows), "successes": wins, "success_rate": wins / len(rows),
                         "standard_error": standard_error(wins, len(rows)),
                         "errored": sum(1 for r in rows if r.get("error"))})
    n = sum(t["episodes"] for t in per_task)
    wins = sum(t["successes"] for t in per_task)
    rate, se = wins / n, standard_error(wins, n)
    paper = PAPER_REFERENCES.get((model, suite))
    reference = None if paper is None else {
        "success_rate": paper / 100, "source": "Kim et al. (2024), arXiv:2406.09246, LIBERO table (suite average)"}
    if reference is None and len(tasks) == C.N_TASKS.get(suite):
        reference = _card_suite_reference(model, suite)
    published = [{"policy": name, "success_rate": mean / 100, "standard_error": err / 100, "source": PUBLISHED_SOURCE}
                 for name, (mean, err) in PUBLISHED_SUITE_AVERAGES.get(suite, {}).items()]
    summary = {"model": model, "suite": suite, "tasks": per_task, "episodes": n, "successes": wins,
               "success_rate": rate, "standard_error": se, "reference": reference,
               "verdict": verdict(rate, se, reference), "errored": sum(t["errored"] for t in per_task),
               "whole_suite": len(tasks) == C.N_TASKS.get(suite) and all(t["episodes"] == 50 for t in per_task),
               "published": published}
    partial = out_dir / (SUITE_SUMMARY + ".partial")
    partial.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, out_dir / SUITE_SUMMARY)
    return summary
