"""Demonstrations for the teaching model, prepared the way OpenVLA's LIBERO data was.

The scripted expert runs on fresh layouts that LIBERO samples at reset (never
the 50 official initial states, which are kept for evaluation), the arm
starting as in the official states (``LiberoTask.reset``; at the home pose
itself until round 15). As in
OpenVLA's regenerated LIBERO datasets, no-op steps are removed, failed demos
are dropped and frames are rotated 180 degrees. The frames then go through the
loop's own image path (JPEG round trip, Lanczos to 224) and the teaching
model's processor resize, and are stored as JPEG to keep the data small.

Noise injection (DART, Laskey et al. 2017): the executed action is the
expert's plus Gaussian noise, the stored label is the expert's clean action,
so the data covers the small mistakes a learner will make.
"""

from __future__ import annotations

import functools
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vla_ch2 import conventions as C
from vla_ch2.env import LiberoTask, quiet_robosuite
from vla_ch2.factory.expert import GRASP_XY, ExpertConfig, ScriptedExpert

#: Layout seeds for demonstrations start here, far from anything evaluation uses.
LAYOUT_SEED_BASE = 100_000


@dataclass
class DemoConfig:
    """How demonstrations are collected."""

    suite: str = "libero_object"
    per_task: int = 30
    image_size: int = 128
    jpeg_quality: int = 85
    noise_translation: float = 0.3
    noise_rotation: float = 0.05
    noisy_fraction: float = 0.6
    max_steps: int = 280
    seed: int = 0
    #: Store every k-th (non-no-op) frame: neighbouring frames at 20 Hz are near duplicates.
    keep_every: int = 1
    #: Recovery demonstrations: the first grasp is aimed off on purpose (up to ``miss_xy`` sideways,
    #: ``miss_z`` too high), and only the frames from the noticed miss on are kept: an empty closed
    #: hand over an object still on the table, labelled "open, go back, grasp again".
    recovery: bool = False
    miss_xy: tuple = (0.0, 0.03)
    miss_z: tuple = (0.03, 0.06)
    notice: tuple = (0.05, 0.20)
    #: Share of tries whose expert closes early, ``early_close`` metres (uniform) above its usual closing
    #: height, and goes on down while the fingers close: the data then shows what to do after a close
    #: that came too high, the teaching model's most common failure (measured on the cream cheese).
    early_close_fraction: float = 0.0
    early_close: tuple = (0.005, 0.03)
    #: The part of the policy's image the model sees (left, top, right, bottom, fractions of the centre-cropped
    #: 224 image the loop hands it): the processor's ``view_box``; ``None`` is the whole image.
    view_box: tuple | None = None
    #: Aims that replace the expert's ``GRASP_XY`` for some objects, ``{"cream_cheese": (-0.01, 0.0)}``
    #: (metres along world x and y from the object's origin): v2's demonstrations aimed the cream cheese at -1 cm.
    grasp_xy: dict | None = None
    #: Closing heights that replace the expert's ``GRASP_DZ`` for some objects, ``{"cream_cheese": -0.006}``
    #: (metres from its usual height; negative closes lower).
    grasp_dz: dict | None = None


def expert_aims(cfg: DemoConfig) -> dict:
    """The expert's horizontal aim per object for a collection: ``GRASP_XY`` with ``cfg.grasp_xy`` on top."""
    return {**GRASP_XY, **{name: tuple(float(v) for v in xy) for name, xy in (cfg.grasp_xy or {}).items()}}


def expert_config(cfg: DemoConfig) -> ExpertConfig:
    """The expert of a collection: its aims (:func:`expert_aims`) and ``GRASP_DZ`` with ``cfg.grasp_dz`` on top."""
    config = ExpertConfig(grasp_xy=expert_aims(cfg))
    config.grasp_dz.update({name: float(dz) for name, dz in (cfg.grasp_dz or {}).items()})
    return config


def is_noop(action: np.ndarray, previous: np.ndarray | None) -> bool:
    """OpenVLA's no-op test: no arm motion and the same gripper command as before."""
    return bool(np.linalg.norm(action[:-1]) < 1e-4 and previous is not None and action[-1] == previous[-1])


def encode_frame(frame: np.ndarray, size: int, quality: int, view_box=None) -> bytes:
    """Raw render -> the loop's 224 image -> the model's input, as JPEG bytes (see :func:`encode_prepared`)."""
    return encode_prepared(C.prepare_image(frame, flip_image=True), size, quality, view_box)


def stored_box(view_box, area: float = C.CENTER_CROP_AREA) -> tuple:
    """Where in the *uncropped* 224 image to cut a stored frame, for a model that sees ``view_box`` of the cropped one.

    Frames are stored before the centre crop, because training draws random crops
    of its area around them (OpenVLA's augmentation). At evaluation the loop
    centre-crops (side ``sqrt(area)``, resized back) and the processor cuts
    ``view_box`` out of that. Training's centred crop of a stored frame is the
    same region when the stored box has the view box's width (in fractions) and
    sits at the view box's centre mapped back through the centre crop. A view box
    inside the image always gives a stored box inside it (the crop only zooms in).
    """
    side = float(np.sqrt(area))
    low = (1.0 - side) / 2.0
    left, top, right, bottom = (float(b) for b in view_box)
    cx, cy = low + side * (left + right) / 2.0, low + side * (top + bottom) / 2.0
    half_w, half_h = (right - left) / 2.0, (bottom - top) / 2.0
    return tuple(min(1.0, max(0.0, b)) for b in (cx - half_w, cy - half_h, cx + half_w, cy + half_h))  # rounding only


def encode_prepared(prepared: np.ndarray, size: int, quality: int, view_box=None) -> bytes:
    """The loop's 224 image (:func:`vla_ch2.conventions.prepare_image`) -> the model's input, as JPEG bytes.

    The cut and the resize are the processor's own (``processing_teachvla.model_view``),
    on :func:`stored_box` of ``view_box``; ``None`` (or the whole image) stores the whole image.
    """
    processing = _processing()
    whole = view_box is None or tuple(map(float, view_box)) == processing.FULL_VIEW
    box = processing.FULL_VIEW if whole else stored_box(view_box)
    image = processing.model_view(Image.fromarray(prepared), size, box)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def _processing():
    """The checkpoint's processor module (its image view is the one demonstrations store)."""
    from vla_ch2.factory.teaching_model import load_modeling

    return load_modeling(name="processing_teachvla")


def collect_task(task_id: int, cfg: DemoConfig, out_dir: Path, progress=None) -> dict:
    """Collect ``cfg.per_task`` tries on one task; keep the successful ones in ``task_<id>.npz``."""
    quiet_robosuite()
    rng = np.random.default_rng(cfg.seed * 1000 + task_id)
    task = LiberoTask(cfg.suite, task_id)
    target = task.env.env.obj_of_interest[0]
    frames, actions, episodes = [], [], []
    tries, kept, noops, start = 0, 0, 0, time.time()
    outcomes = {"clean": [0, 0], "noisy": [0, 0]}  # [tries, successes]
    expert_cfg = expert_config(cfg)
    try:
        for k in range(cfg.per_task):
            tries += 1
            obs = task.reset(layout_seed=LAYOUT_SEED_BASE + 1000 * task_id + k + 100 * cfg.seed)
            for _ in range(C.NUM_WAIT_STEPS):
                obs, _, _, _ = task.step(C.WAIT_ACTION)
            if cfg.recovery:
                angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(*cfg.miss_xy)
                miss = (radius * np.cos(angle), radius * np.sin(angle), rng.uniform(*cfg.miss_z))
                expert = ScriptedExpert(target, config=expert_cfg, miss=miss,
                                        notice=rng.uniform(*cfg.notice))
            else:
                # No draw at all when the share is 0: earlier collections keep their random streams.
                early_try = cfg.early_close_fraction > 0 and rng.random() < cfg.early_close_fraction
                early = rng.uniform(*cfg.early_close) if early_try else 0.0
                expert = ScriptedExpert(target, config=expert_cfg, early_close=early)
            noisy = rng.random() < cfg.noisy_fraction
            demo_frames, demo_actions, previous, done = [], [], None, False
            for step in range(cfg.max_steps):
                clean = expert.act(obs)
                executed = clean.copy()
                if noisy:
                    executed[:3] += rng.normal(0.0, cfg.noise_translation, 3)
                    executed[3:6] += rng.normal(0.0, cfg.noise_rotation, 3)
                    executed[:6] = np.clip(executed[:6], -1.0, 1.0)
                if is_noop(clean, previous):
                    noops += 1
                elif step % cfg.keep_every == 0 and (not cfg.recovery or expert.attempts > 0):
                    demo_frames.append(encode_frame(task.frame(obs), cfg.image_size, cfg.jpeg_quality, cfg.view_box))
                    demo_actions.append(clean)
                previous = clean
                obs, _, done, _ = task.step(executed)
                if done:
                    break
            outcomes["noisy" if noisy else "clean"][0] += 1
            outcomes["noisy" if noisy else "clean"][1] += int(bool(done))
            if done and demo_actions:  # failed demos (and recoveries from a miss that grasped anyway) are dropped
                kept += 1
                frames += demo_frames
                actions += demo_actions
                episodes += [k] * len(demo_actions)
            if progress:
                progress(task_id, k, done)
    finally:
        task.close()
    save_task_demos(out_dir / f"task_{task_id}.npz", frames, actions, episodes, task_id, task.language)
    summary = {
        "task_id": task_id, "language": task.language, "tries": tries, "kept": kept,
        "frames": len(actions), "noops_removed": noops,
        "expert_clean": {"tries": outcomes["clean"][0], "successes": outcomes["clean"][1]},
        "expert_noisy": {"tries": outcomes["noisy"][0], "successes": outcomes["noisy"][1]}, "seconds": round(time.time() - start, 1),
    }
    with open(out_dir / f"task_{task_id}.json", "w", encoding="utf-8") as handle:
        json.dump({"summary": summary, "config": asdict(cfg), "expert_grasp_xy": expert_cfg.grasp_xy,
                   "expert_grasp_dz": expert_cfg.grasp_dz}, handle, indent=2)
    return summary


def join_frames(frames: list[bytes]) -> dict:
    """JPEG frames as the two arrays a demonstration file stores: their bytes end to end, and where each starts."""
    return {"jpeg": np.frombuffer(b"".join(frames), dtype=np.uint8),
            "offsets": np.cumsum([0] + [len(f) for f in frames]).astype(np.int64)}


def split_frames(jpeg: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    """The JPEG frames :func:`join_frames` stored."""
    return [jpeg[a:b].tobytes() for a, b in zip(offsets[:-1], offsets[1:])]


def save_task_demos(path: Path, frames: list[bytes], actions, episodes, task_id: int, language: str) -> None:
    """Write one task's frames (JPEG bytes), 7-D actions and episode ids as ``task_<id>.npz``."""
    np.savez(
        path,
        **join_frames(frames),
        actions=np.asarray(actions, dtype=np.float32).reshape(-1, 7),
        episodes=np.asarray(episodes, dtype=np.int32),
        task_id=np.int32(task_id),
        language=np.array(language),
    )


def load_task_demos(path: Path) -> dict:
    """Read one ``task_<id>.npz`` back: JPEG frames, actions, episode ids, instruction."""
    with np.load(path) as data:
        return {
            "frames": split_frames(data["jpeg"], data["offsets"]),
            "actions": data["actions"],
            "episodes": data["episodes"],
            "task_id": int(data["task_id"]),
            "language": str(data["language"]),
        }


def thin_task_demos(source: Path, out_dir: Path, fraction: float, complement: bool = False) -> dict:
    """Copy ``task_<id>.npz`` keeping an evenly spaced ``fraction`` of each demonstration's frames.

    Frame ``j`` of a demonstration is kept when ``floor((j + 1) f) > floor(j f)``,
    so a demonstration keeps its first frames, its last ones and everything in
    between at an even spacing. ``complement=True`` keeps exactly the frames
    that rule drops, so a set can travel in two halves. Used to make the training
    set fit where it has to travel; the collection summary beside it is copied
    with the count.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    demo = load_task_demos(source)
    keep, position, previous = [], 0, None
    for index, episode in enumerate(demo["episodes"]):
        position = 0 if episode != previous else position + 1
        previous = episode
        if (np.floor((position + 1) * fraction) > np.floor(position * fraction)) != complement:
            keep.append(index)
    frames = [demo["frames"][i] for i in keep]
    out_dir.mkdir(parents=True, exist_ok=True)
    save_task_demos(out_dir / source.name, frames, demo["actions"][keep], demo["episodes"][keep], demo["task_id"],
                    demo["language"])
    record = json.loads(source.with_suffix(".json").read_text(encoding="utf-8"))
    record["thinned"] = {"fraction": (1.0 - fraction) if complement else fraction, "complement": complement,
                         "frames_before": len(demo["frames"]), "frames_after": len(keep)}
    (out_dir / source.with_suffix(".json").name).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record["thinned"]


def decode_frame(data: bytes) -> np.ndarray:
    """JPEG bytes -> HxWx3 uint8."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
