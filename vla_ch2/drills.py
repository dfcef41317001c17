"""Exercise 2.x.1: reproduce the three silent failures on demand.

:func:`failure_drills` is the §2.3 loop wrapped with the three toggles,
defaulting to the correct values. :func:`run_drills` runs it four times (the
baseline, then one toggle flipped per run) and writes one ``.jsonl`` per run
plus a combined file. A drill runs a fixed horizon without stopping at
success, so the four logs are comparable line for line.

A run is written to ``<tag>.jsonl.partial`` and renamed only when whole, so a
run cut short is redone on the next call and never read as complete. The logs
carry the chapter's five fields plus the two instrument fields of
:mod:`vla_ch2.logs`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

from vla_ch2.env import LiberoTask, worker_pool
from vla_ch2.logs import StepLogWriter, read_records, stored_log
from vla_ch2.loop import run_episode
from vla_ch2.toggles import DRILLS, Toggles

DEFAULT_STEPS = 500
COMBINED = "drills.jsonl"
MANIFEST = "drills.json"


def failure_drills(
    task: LiberoTask,
    policy,
    flip_image: bool = True,
    prompt_template: str = "canonical",
    unnorm_key: str | None = None,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    tag: str = "baseline",
    frames: list | None = None,
    instruments: bool = False,
) -> Iterator[dict]:
    """The loop with its three toggles; yields one step record per policy step.

    ``seed`` fixes LIBERO's initial condition (official initial state
    ``seed mod 50``) and seeds Python's and numpy's generators. The run never
    stops early: ``steps`` records come out, reward logged at every one.
    ``instruments`` adds the two instrument fields of :mod:`vla_ch2.logs` to
    the chapter's five (``vla-ch2 drills`` does).
    """
    toggles = Toggles(flip_image=flip_image, prompt_template=prompt_template, unnorm_key=unnorm_key)
    yield from run_episode(task, policy, toggles, seed=seed, max_steps=steps, stop_on_success=False, tag=tag,
                           frames=frames, instruments=instruments)


@dataclass(frozen=True)
class DrillSettings:
    """What makes two drill runs comparable; stored in ``drills.json``."""

    model: str
    suite: str = "libero_object"
    task: int = 0
    seed: int = 0
    steps: int = DEFAULT_STEPS


def _manifest(out_dir: Path) -> dict:
    path = out_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}  # an unreadable manifest means nothing is known to be complete


def completed_runs(out_dir: Path, settings: DrillSettings) -> set[str]:
    """Tags whose log is whole, carries the instrument fields and was made with the same settings."""
    manifest, done = _manifest(out_dir), set()
    for tag in DRILLS:
        entry = manifest.get(tag)
        path = out_dir / f"{tag}.jsonl"
        if not entry or entry.get("settings") != asdict(settings) or stored_log(path) is None:
            continue
        try:
            records = read_records(path)
        except ValueError:
            continue
        # Logs written before the instrument fields existed are redone rather than judged without them.
        if len(records) == settings.steps and all("img_top_minus_bottom" in r for r in records):
            done.add(tag)
    return done


def run_drills(
    out_dir: str | os.PathLike,
    policy,
    settings: DrillSettings,
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    video_dir: str | os.PathLike | None = None,
    workers: int = 1,
    load_kwargs: dict | None = None,
) -> dict[str, Path]:
    """Run baseline, no_flip, bad_prompt and bad_unnorm; return the path of each log.

    Runs already complete with the same settings are skipped unless ``force``.
    ``progress(tag, step, steps)`` is called as steps complete. With
    ``workers`` > 1 the runs are shared among that many processes, each with its
    own simulator and its own copy of the model (``load_policy(settings.model,
    **load_kwargs)``; ``policy`` is then not used and may be None); every run
    is deterministic, so its log is the same either way.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = set() if force else completed_runs(out_dir, settings)
    manifest = {k: v for k, v in _manifest(out_dir).items() if k in done}
    paths = {tag: out_dir / f"{tag}.jsonl" for tag in DRILLS}
    todo = [tag for tag in DRILLS if tag not in done]
    for tag in done:
        if progress:
            progress(tag, settings.steps, settings.steps)

    def finished(tag: str) -> None:
        manifest[tag] = {"settings": asdict(settings), "toggles": asdict(DRILLS[tag])}
        ordered = {t: manifest[t] for t in DRILLS if t in manifest}
        (out_dir / MANIFEST).write_text(json.dumps(ordered, indent=2) + "\n", encoding="utf-8")

    if workers > 1 and len(todo) > 1:
        _run_parallel(out_dir, settings, todo, min(workers, len(todo)), load_kwargs or {}, video_dir, progress, finished)
    elif todo:
        with LiberoTask(settings.suite, settings.task) as task:
            for tag in todo:
                run_one_drill(task, policy, settings, tag, out_dir, video_dir, progress)
                finished(tag)
    combine(paths, out_dir / COMBINED)
    return paths


def run_one_drill(task, policy, settings: DrillSettings, tag: str, out_dir: Path,
                  video_dir: str | os.PathLike | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> Path:
    """One drill run, written to ``<tag>.jsonl.partial`` and renamed when whole (and its clip, if asked)."""
    toggles = DRILLS[tag]
    path = out_dir / f"{tag}.jsonl"
    partial = path.with_suffix(".jsonl.partial")
    frames = [] if video_dir is not None else None
    with StepLogWriter(partial) as writer:
        runs = failure_drills(task, policy, toggles.flip_image, toggles.prompt_template, toggles.unnorm_key,
                              settings.seed, settings.steps, tag, frames, instruments=True)
        for record in runs:
            writer.write(record)
            if progress:
                progress(tag, record["step"] + 1, settings.steps)
    os.replace(partial, path)
    if frames:
        from vla_ch2.plots import save_video

        save_video(frames, Path(video_dir) / f"{tag}.webp")
    return path


def _drill_worker(jobs, events, settings: dict, out_dir: str, video_dir, load_kwargs: dict) -> None:
    """One process of a parallel drill: its own simulator and model, runs taken from a queue."""
    import torch

    torch.set_num_threads(1)
    from vla_ch2.env import quiet_robosuite
    from vla_ch2.policy import load_policy

    quiet_robosuite()
    settings = DrillSettings(**settings)
    last = {}

    def report(tag: str, step: int, steps: int) -> None:
        if step == steps or step - last.get(tag, 0) >= 10:  # every 10 steps: cheap, still live
            last[tag] = step
            events.put(("step", tag, step))

    try:
        policy = load_policy(settings.model, **load_kwargs)
        with LiberoTask(settings.suite, settings.task) as task:
            while (tag := jobs.get()) is not None:
                run_one_drill(task, policy, settings, tag, Path(out_dir), video_dir, report)
                events.put(("done", tag, None))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops with the message
        events.put(("error", None, f"{type(exc).__name__}: {exc}"))


def _run_parallel(out_dir: Path, settings: DrillSettings, todo: list[str], workers: int, load_kwargs: dict,
                  video_dir, progress, finished) -> None:
    with worker_pool(_drill_worker, todo, workers, asdict(settings), str(out_dir),
                     None if video_dir is None else str(video_dir), load_kwargs) as events:
        remaining = set(todo)
        while remaining:
            kind, tag, payload = events.get()
            if kind == "error":
                raise RuntimeError(f"a drill worker failed: {payload}")
            if kind == "step" and progress:
                progress(tag, payload, settings.steps)
            if kind == "done":
                remaining.discard(tag)
                finished(tag)


def combine(paths: dict[str, Path], out: Path) -> Path:
    """Concatenate the four logs (already tagged) into one file, written atomically."""
    partial = out.with_suffix(".jsonl.partial")
    with open(partial, "w", encoding="utf-8") as handle:
        for path in paths.values():
            handle.write(Path(path).read_text(encoding="utf-8"))
    os.replace(partial, out)
    return out
