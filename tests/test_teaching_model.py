"""The shipped teaching checkpoint: its card's hash, and a real episode through the OpenVLA path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from vla_ch2.policy import DEFAULT_MODEL
from vla_ch2.factory.teaching_model import relabel_holds, sha256


def test_weights_hash_matches_the_card():
    card = (Path(DEFAULT_MODEL) / "README.md").read_text()
    stated = re.search(r"SHA-256 `([0-9a-f]{64})`", card).group(1)
    assert stated == sha256(Path(DEFAULT_MODEL) / "model.safetensors")


def test_relabel_holds_only_touches_long_still_grasps():
    hold = [0, 0, 0, 0.01, 0, 0, 1.0]
    lift = [0, 0, 1.0, 0, 0, 0, 1.0]
    actions = np.array([[0.5, 0, 0, 0, 0, 0, -1]] + [hold] * 10 + [lift] + [hold] * 3 + [lift])
    episodes = np.zeros(len(actions), dtype=int)
    out, changed = relabel_holds(actions, episodes, hold_steps=7)
    assert changed == 3 and np.allclose(out[8:11], lift) and np.allclose(out[1:8], hold)
    assert np.allclose(out[12:15], hold)  # a short hold is left alone


@pytest.mark.sim
def test_shipped_checkpoint_acts_on_real_libero(object_task, teaching_policy):
    from vla_ch2.loop import run_episode

    records = list(run_episode(object_task, teaching_policy, seed=0, max_steps=5))
    assert len(records) == 5 and all(np.all(np.isfinite(r["action"])) for r in records)
    assert teaching_policy.resolve_key("libero_object") == "libero_object_no_noops"


def test_still_tail_marks_only_the_resting_frames_that_end_a_demonstration():
    import numpy as np

    from vla_ch2.factory.teaching_model import still_tail

    actions = np.zeros((8, 7))
    actions[:, 6] = 1.0  # closed
    actions[3:5, 6] = -1.0  # demo 0 ends open and still
    actions[5, 0] = 0.3  # demo 1 moves, then rests open
    actions[6:8, 6] = -1.0
    actions[1, 6] = -1.0  # open and still in the middle of demo 0 (frame 2 moves again): not a tail
    actions[2, 2] = 0.5
    episodes = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    assert still_tail(actions, episodes).tolist() == [False, False, False, True, True, False, True, True]
