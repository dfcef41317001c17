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

from vla_ch2.env import LiberoTask
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
) -> dict[str, Path]:
    """Run baseline, no_flip, bad_prompt and bad_unnorm; return the path of each log.

    Runs already complete with the same settings are skipped unless ``force``.
    ``progress(tag, step, steps)`` is called after every step.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = set() if force else completed_runs(out_dir, settings)
    manifest = {k: v for k, v in _manifest(out_dir).items() if k in done}
    paths, task = {}, None
    try:
        for tag, toggles in DRILLS.items():
            path = out_dir / f"{tag}.jsonl"
            paths[tag] = path
            if tag in done:
                if progress:
                    progress(tag, settings.steps, settings.steps)
                continue
            if task is None:
                task = LiberoTask(settings.suite, settings.task)
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
            manifest[tag] = {"settings": asdict(settings), "toggles": asdict(toggles)}
            (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            if frames:
                from vla_ch2.plots import save_video

                save_video(frames, Path(video_dir) / f"{tag}.webp")
    finally:
        if task is not None:
            task.close()
    combine(paths, out_dir / COMBINED)
    return paths


def combine(paths: dict[str, Path], out: Path) -> Path:
    """Concatenate the four logs (already tagged) into one file, written atomically."""
    partial = out.with_suffix(".jsonl.partial")
    with open(partial, "w", encoding="utf-8") as handle:
        for path in paths.values():
            handle.write(Path(path).read_text(encoding="utf-8"))
    os.replace(partial, out)
    return out
