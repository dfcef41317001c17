"""DAgger for the teaching model: the learner drives, the scripted expert labels.

Behaviour cloning trains on the states the expert visits. The learner then
reaches states of its own (fingers closed beside a flat box, a hand that
drifted during the descent) where it has never seen a correct action, and its
demonstrations have nothing to say. DAgger (Ross, Gordon and Bagnell 2011,
arXiv:1011.0686) runs the learner, asks the expert what it would do in every
state the learner reaches, and trains on those labels. The expert reads
privileged state, so it can label any state: here it follows the learner
(``ScriptedExpert(follow=True)``), re-reading its phase from the scene each step.

An episode starts from a fresh layout (seeds from ``DAGGER_SEED_BASE``, apart
from the demonstrations' and the validation's), runs the chapter's loop steps
(wait, render, prepare the image, predict, fix the gripper, step) and executes
the learner's action, or with probability ``beta`` the expert's. Every kept
frame is stored with the expert's action, in the demonstrations' format
(``task_<id>.npz``), so :func:`vla_ch2.factory.teaching_model.load_dataset`
reads both.

    python -m vla_ch2.factory.dagger --model CHECKPOINT --out data/dagger1 --tasks all --per-task 40 --workers 15
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vla_ch2 import conventions as C
from vla_ch2.env import worker_pool

#: Layout seeds of DAgger episodes: ``DAGGER_SEED_BASE + 10000 round + 1000 task + k``
#: (demonstrations use 100000 on, validation 200000 on, the official states none of these).
DAGGER_SEED_BASE = 300_000


@dataclass
class DaggerConfig:
    """How DAgger episodes are run and stored."""

    suite: str = "libero_object"
    per_task: int = 20
    #: Per-episode probabilities of executing the expert's action instead of the learner's, used in turn.
    betas: tuple = (0.0,)
    image_size: int = 96
    #: The learner's processor ``view_box`` (None: the whole image); frames are stored in that view.
    view_box: tuple | None = None
    jpeg_quality: int = 80
    keep_every: int = 2
    #: DAgger round: layouts of different rounds never repeat.
    round: int = 0
    #: Policy steps per episode (None: the suite's limit, as evaluation).
    max_steps: int | None = None


def layout_seed(cfg: DaggerConfig, task_id: int, k: int) -> int:
    """Fresh layout of episode ``k`` of ``task_id`` in round ``cfg.round``."""
    return DAGGER_SEED_BASE + 10_000 * cfg.round + 1000 * task_id + k


def run_episode(task, policy, expert, cfg: DaggerConfig, seed: int, beta: float) -> dict:
    """One learner-driven episode from ``task``'s current layout; the expert labels every state.

    Returns the kept frames (JPEG), their expert labels (env convention), how
    many steps ran, whether the task was done, how many actions the expert
    executed, and what the expert read at every step (:data:`STATE_KEYS`) with
    the steps whose frames were kept, so that the labels can be made again by a
    changed expert (:func:`relabel`).
    """
    from vla_ch2.factory.demos import encode_prepared, is_noop

    rng = np.random.default_rng(seed)
    prompt = C.CANONICAL_PROMPT.format(instruction=task.language.lower())
    unnorm_key = policy.resolve_key(cfg.suite)
    obs = task.reset(layout_seed=seed)
    for _ in range(C.NUM_WAIT_STEPS):
        obs, _, _, _ = task.step(C.WAIT_ACTION)
    frames, labels, previous, done, expert_steps = [], [], None, False, 0
    states, kept = [], []
    max_steps = task.max_steps if cfg.max_steps is None else int(cfg.max_steps)
    step = 0
    for step in range(max_steps):
        image = C.prepare_image(task.frame(obs))
        states.append(read_state(obs, expert.target))
        label = expert.act(obs)
        learner = C.postprocess_gripper(policy.predict(image, prompt, unnorm_key))
        if not is_noop(label, previous) and step % cfg.keep_every == 0:
            frames.append(encode_prepared(image, cfg.image_size, cfg.jpeg_quality, cfg.view_box))
            labels.append(label)
            kept.append(step)
        previous = label
        use_expert = rng.random() < beta
        expert_steps += int(use_expert)
        obs, _, done, _ = task.step(label if use_expert else learner)
        if done:
            break
    return {"frames": frames, "labels": labels, "steps": step + 1, "done": bool(done), "expert_steps": expert_steps,
            "states": np.asarray(states, dtype=np.float64), "kept": np.asarray(kept, dtype=np.int32),
            "target": expert.target}


#: What the expert reads from an observation, in the order :func:`read_state` stores it.
STATE_KEYS = (("robot0_eef_pos", 3), ("robot0_eef_quat", 4), ("{target}_pos", 3), ("basket_1_pos", 3))


def read_state(obs: dict, target: str) -> np.ndarray:
    """The expert's inputs at one step, as one flat vector (:data:`STATE_KEYS`)."""
    return np.concatenate([np.asarray(obs[k.format(target=target)], dtype=np.float64) for k, _ in STATE_KEYS])


def stored_observation(state: np.ndarray, target: str) -> dict:
    """The expert's inputs back from one stored state (the inverse of :func:`read_state`)."""
    splits = np.cumsum([n for _, n in STATE_KEYS])[:-1]
    return {k.format(target=target): v for (k, _), v in zip(STATE_KEYS, np.split(state, splits))}


def relabel(states: np.ndarray, kept: np.ndarray, target: str) -> np.ndarray:
    """Labels of the kept steps by a fresh following expert replayed over an episode's stored states."""
    from vla_ch2.factory.expert import ScriptedExpert

    expert, labels = ScriptedExpert(target, follow=True), []
    wanted = {int(k) for k in kept}
    for step, state in enumerate(states):
        label = expert.act(stored_observation(state, target))
        if step in wanted:
            labels.append(label)
    return np.asarray(labels, dtype=np.float32).reshape(-1, 7)


def _worker(jobs, results, model: str, cfg: DaggerConfig) -> None:
    import torch

    torch.set_num_threads(1)
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.factory.expert import ScriptedExpert
    from vla_ch2.policy import load_policy

    quiet_robosuite()
    tasks = {}
    try:
        policy = load_policy(model, device="cpu")
        while (job := jobs.get()) is not None:
            task_id, k = job
            if task_id not in tasks:
                tasks[task_id] = LiberoTask(cfg.suite, task_id)
            task = tasks[task_id]
            beta = float(cfg.betas[k % len(cfg.betas)])
            start = time.perf_counter()
            expert = ScriptedExpert(task.env.env.obj_of_interest[0], follow=True)
            episode = run_episode(task, policy, expert, cfg, layout_seed(cfg, task_id, k), beta)
            results.put({"task": task_id, "k": k, "beta": beta, "language": task.language,
                         "seconds": round(time.perf_counter() - start, 1), **episode})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops with the message
        results.put({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        for task in tasks.values():
            task.close()


def save_episode(folder: Path, row: dict) -> None:
    """Store one finished episode (``episodes/task<T>_k<K>.npz``): a run cut short keeps it, a rerun skips it."""
    folder.mkdir(parents=True, exist_ok=True)
    from vla_ch2.factory.demos import join_frames

    meta = {k: row[k] for k in ("task", "k", "beta", "language", "seconds", "steps", "done", "expert_steps", "target")}
    final = folder / f"task{row['task']}_k{row['k']}.npz"
    partial = final.with_suffix(".partial.npz")
    np.savez(partial, **join_frames(row["frames"]), actions=np.asarray(row["labels"], dtype=np.float32).reshape(-1, 7),
             meta=np.array(json.dumps(meta)), states=row["states"], kept=row["kept"])
    partial.replace(final)  # whole or absent, never half written


#: A stored episode's file name (``save_episode``); half-written ``.partial.npz`` files do not match it.
EPISODE_FILE = re.compile(r"task(\d+)_k(\d+)\.npz")


def stored_episodes(folder: Path) -> dict[tuple[int, int], Path]:
    """The (task, k) of every episode stored in ``folder``, and its file (nothing is read)."""
    found = (EPISODE_FILE.fullmatch(p.name) for p in Path(folder).glob("task*_k*.npz"))
    return {(int(m[1]), int(m[2])): Path(folder) / m[0] for m in found if m}


def load_episodes(folder: Path) -> list[dict]:
    """Every stored episode of a collection, as ``save_episode`` wrote them."""
    from vla_ch2.factory.demos import split_frames

    rows = []
    for _, path in sorted(stored_episodes(folder).items()):
        with np.load(path) as data:
            rows.append({**json.loads(str(data["meta"])), "labels": data["actions"], "states": data["states"],
                         "kept": data["kept"], "frames": split_frames(data["jpeg"], data["offsets"])})
    return rows


def write_task(out_dir: Path, task_id: int, episodes: list[dict], cfg: DaggerConfig, model: str) -> dict:
    """Store one task's episodes as ``task_<id>.npz`` (the demonstrations' format) and its summary beside it."""
    from vla_ch2.factory.demos import save_task_demos

    episodes = sorted(episodes, key=lambda e: e["k"])
    frames = [f for e in episodes for f in e["frames"]]
    labels = [a for e in episodes for a in e["labels"]]
    ids = [e["k"] for e in episodes for _ in e["labels"]]
    save_task_demos(out_dir / f"task_{task_id}.npz", frames, labels, ids, task_id, episodes[0]["language"])
    summary = {
        "task_id": task_id, "language": episodes[0]["language"], "tries": len(episodes), "kept": len(episodes),
        "frames": len(labels), "learner_successes": int(sum(e["done"] for e in episodes)),
        "by_beta": {str(b): [int(sum(e["done"] for e in episodes if e["beta"] == b)),
                             int(sum(e["beta"] == b for e in episodes))] for b in sorted({e["beta"] for e in episodes})},
        "seconds": round(sum(e["seconds"] for e in episodes), 1),
    }
    record = {"summary": summary, "config": {**asdict(cfg), "seed": cfg.round, "dagger": True, "model": str(model)}}
    (out_dir / f"task_{task_id}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return summary


def collect(model: str, tasks: list[int], cfg: DaggerConfig, out_dir: Path, workers: int,
            max_seconds: float | None = None) -> list[dict]:
    """Run ``cfg.per_task`` DAgger episodes of every task in ``workers`` processes; write one file per task.

    Each finished episode is stored at once under ``out_dir/episodes`` and
    skipped by a rerun (resumable). With ``max_seconds``, episodes still queued
    when the time is up are not run. Then every task's stored episodes are
    packed into ``task_<id>.npz`` (its summary says how many there are).
    """
    out_dir = Path(out_dir)
    folder = out_dir / "episodes"
    have = stored_episodes(folder)
    todo = [(t, k) for k in range(cfg.per_task) for t in tasks if (t, k) not in have]
    start = time.time()
    if todo:
        with worker_pool(_worker, todo, workers, model, cfg) as results:
            for _ in todo:
                row = results.get()
                if "error" in row:
                    raise RuntimeError(f"a DAgger worker failed: {row['error']}")
                save_episode(folder, row)
                print(json.dumps({k: row[k] for k in ("task", "k", "beta", "steps", "done", "seconds")}
                                 | {"frames": len(row["labels"])}), flush=True)
                if max_seconds is not None and time.time() - start > max_seconds:
                    print(f"[dagger] out of time after {time.time() - start:.0f} s", flush=True)
                    break
    return pack(out_dir, tasks, cfg, model)


def pack(out_dir: Path, tasks: list[int], cfg: DaggerConfig, model: str, relabelled: bool = False) -> list[dict]:
    """Write ``task_<id>.npz`` and its summary for every task with stored episodes.

    ``relabelled``: the labels are made again from the stored states by the
    expert as it is now (:func:`relabel`), not taken as they were collected.
    """
    episodes = load_episodes(Path(out_dir) / "episodes")
    if relabelled:
        episodes = [{**e, "labels": relabel(e["states"], e["kept"], e["target"])} for e in episodes]
    return [write_task(Path(out_dir), t, [e for e in episodes if e["task"] == t], cfg, model)
            for t in tasks if any(e["task"] == t for e in episodes)]


def main(argv: list[str] | None = None) -> int:
    from vla_ch2.sweep import parse_tasks

    parser = argparse.ArgumentParser(prog="python -m vla_ch2.factory.dagger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the learner: a checkpoint directory")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--per-task", type=int, default=20)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0])
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--pack-only", action="store_true",
                        help="run nothing: pack the episodes a run stored (one that was stopped) into task files")
    parser.add_argument("--relabel", action="store_true",
                        help="with --pack-only: label the stored states again with the expert as it is now")
    args = parser.parse_args(argv)
    if not all(0.0 <= b <= 1.0 for b in args.betas):
        parser.error(f"--betas {args.betas}: each is a probability in [0, 1]")
    if args.pack_only and not stored_episodes(args.out / "episodes"):
        parser.error(f"--pack-only: no stored episodes in {args.out / 'episodes'}; give the --out of a collection")
    if not args.pack_only and not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model {args.model}: not a checkpoint directory (no config.json there); give the learner's "
                     "folder, e.g. vla_ch2/checkpoints/teaching-vla-libero-object")
    processor = Path(args.model) / "preprocessor_config.json"  # the learner's view is the one its frames are stored in
    view = json.loads(processor.read_text()) if processor.is_file() else {}
    cfg = DaggerConfig(per_task=args.per_task, betas=tuple(args.betas), round=args.round,
                       image_size=int(view.get("image_size", DaggerConfig.image_size)), view_box=view.get("view_box"))
    tasks = parse_tasks(args.tasks, C.N_TASKS[cfg.suite])
    summaries = (pack(args.out, tasks, cfg, args.model, args.relabel) if args.pack_only
                 else collect(args.model, tasks, cfg, args.out, args.workers, args.max_seconds))
    for summary in summaries:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
