"""The OpenVLA-on-LIBERO inference loop (§2.3), one episode at a time.

Read it top to bottom: start from an official initial state, wait for the
objects to settle, then every step render, prepare the image, ask the policy,
fix the gripper convention, step the simulator, log. The three toggles enter
at exactly three places: the image, the prompt and the statistics key.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from vla_ch2 import conventions as C
from vla_ch2.env import LiberoTask
from vla_ch2.logs import instrument_fields, step_record
from vla_ch2.toggles import Toggles


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy and torch (RU ``set_seed_everywhere``)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


@dataclass
class EpisodeResult:
    """What one episode did, for the sweep: success, steps and wall time."""

    seed: int
    success: bool = False
    steps: int = 0
    final_reward: float = 0.0
    wall_s: float = 0.0
    records: list = field(default_factory=list, repr=False)


def run_episode(
    task: LiberoTask,
    policy,
    toggles: Toggles = Toggles(),
    seed: int = 0,
    max_steps: int | None = None,
    stop_on_success: bool = True,
    tag: str = "baseline",
    result: EpisodeResult | None = None,
    frames: list | None = None,
    instruments: bool = False,
) -> Iterator[dict]:
    """Run one episode and yield one log record per policy step.

    Parameters
    ----------
    task : LiberoTask
        A live environment, reused across episodes.
    policy : Policy
        Anything with ``predict(image, prompt, unnorm_key)``.
    toggles : Toggles
        Which conventions to honour (defaults: all correct).
    seed : int
        Episode ``seed`` starts from official initial state ``seed mod 50``
        and seeds Python, numpy and torch.
    max_steps : int or None
        Policy steps after the wait (default: the suite's limit).
    stop_on_success : bool
        End at ``done`` as OpenVLA's evaluation does; drills keep going.
    tag : str
        Written into every record.
    result : EpisodeResult or None
        Filled in as the episode runs (success, steps, wall time).
    frames : list or None
        If given, the raw frames (rotated upright) are appended, for videos.
    instruments : bool
        Add the instrument fields (:func:`vla_ch2.logs.instrument_fields`) to
        the chapter's five: the image's top-minus-bottom brightness and the
        policy's ``last_token_prob`` when it has one.
    """
    result = result if result is not None else EpisodeResult(seed=seed)
    result.seed = seed
    max_steps = task.max_steps if max_steps is None else int(max_steps)
    seed_everything(seed)
    prompt = toggles.prompt(task.language)
    unnorm_key = toggles.key_for(task.suite)
    start = time.perf_counter()

    obs = task.reset(init_index=seed)
    for _ in range(C.NUM_WAIT_STEPS):  # objects are still falling into place
        obs, _, _, _ = task.step(C.WAIT_ACTION)

    for step in range(max_steps):
        frame = task.frame(obs)
        if frames is not None:
            frames.append(C.rotate_180(frame).copy())
        image = C.prepare_image(frame, flip_image=toggles.flip_image)
        action = C.postprocess_gripper(policy.predict(image, prompt, unnorm_key))
        obs, reward, done, _ = task.step(action)
        record = step_record(step, image, action, reward, tag)
        if instruments:
            record.update(instrument_fields(image, getattr(policy, "last_token_prob", None)))
        result.steps, result.final_reward = step + 1, float(reward)
        result.success = result.success or bool(done)
        result.wall_s = time.perf_counter() - start
        yield record
        if done and stop_on_success:
            break
    result.wall_s = time.perf_counter() - start
