"""A reset leaves nothing of the episode before it (``LiberoTask._reset_simulator``).

Each test plays a fixed action sequence from official initial state 1 after
different histories (other initial states, gripper left closed or open) and
compares the simulator's positions and velocities at every step, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

WAIT = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])


def _play(task, history: list[tuple[int, float]]) -> np.ndarray:
    """Run ``history`` (init state, gripper command held for 15 random steps), then the probe episode."""
    rng = np.random.default_rng(0)
    for init, gripper in history:
        task.reset(init_index=init)
        for _ in range(15):
            task.step(np.r_[rng.uniform(-1, 1, 6), gripper])
    task.reset(init_index=1)
    probe, states = np.random.default_rng(1), []
    for step in range(40):
        action = WAIT if step < 10 else np.r_[probe.uniform(-1, 1, 6), probe.choice([-1.0, 1.0])]
        task.step(action)
        data = task.env.env.sim.data
        states.append(np.concatenate([data.qpos, data.qvel]))
    return np.array(states)


def _first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
    """The first step at which two runs' states differ in any bit, or None."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if not np.array_equal(x, y)), None)


@pytest.fixture(scope="module")
def hard_task():
    """Task 0 rebuilt at every reset, as OpenVLA's evaluation does (robosuite's hard reset)."""
    from vla_ch2.env import LiberoTask, quiet_robosuite

    quiet_robosuite()
    task = LiberoTask("libero_object", 0)
    task.env.env.hard_reset = True
    yield task
    task.close()


def test_an_episode_depends_on_its_initial_state_alone(object_task):
    after_closed = _play(object_task, [(7, 1.0), (2, 1.0)])
    after_open = _play(object_task, [(4, -1.0)])
    first = _first_difference(after_closed, after_open)
    assert first is None, f"the probe episode differs at step {first} after a different history"


def test_the_quick_reset_is_the_rebuild(object_task, hard_task):
    assert object_task.env.env.hard_reset is False
    quick = _play(object_task, [(3, 1.0)])
    rebuilt = _play(hard_task, [(5, -1.0)])
    first = _first_difference(quick, rebuilt)
    assert first is None, f"the quick reset and the rebuild differ at step {first}"


def test_each_task_draws_its_own_scene_while_another_task_is_open(object_task):
    """Two tasks in one process (a validation worker keeps one per task): each renders its own meshes."""
    from vla_ch2.env import LiberoTask

    alone = object_task.reset(init_index=1)["agentview_image"].copy()
    with LiberoTask("libero_object", 9) as other:
        other.reset(init_index=0)
        beside = object_task.reset(init_index=1)["agentview_image"]
        diff = np.abs(alone.astype(int) - beside).mean()
        assert diff == 0, f"task 0 drew its scene {diff:.2f} grey levels differently with task 9 open"
        stepped_alone = other.step(WAIT)[0]["agentview_image"].copy()
    assert not np.array_equal(stepped_alone, beside), "two different scenes rendered the same image"


def _arm_and_objects(task, obs: dict) -> tuple[np.ndarray, dict]:
    joints = np.asarray(task.env.env.robots[0]._ref_joint_pos_indexes)
    objects = {k: np.asarray(v) for k, v in obs.items() if k.endswith("_pos") and not k.startswith("robot")}
    return task.env.env.sim.data.qpos[joints].copy(), objects


def test_a_fresh_layout_starts_the_arm_as_the_official_states_do(object_task):
    """Official states carry robosuite's default joint noise; a fresh layout draws the same kind from its seed."""
    from vla_ch2 import conventions as C

    home = np.asarray(object_task.env.env.robots[0].init_qpos)
    official = np.array([_arm_and_objects(object_task, object_task.reset(init_index=k))[0] for k in range(12)]) - home
    fresh = np.array([_arm_and_objects(object_task, object_task.reset(layout_seed=500 + k))[0] for k in range(12)]) - home
    for name, offsets in (("official states", official), ("fresh layouts", fresh)):
        spread = offsets.std()
        assert 0.5 * C.START_JOINT_NOISE < spread < 1.5 * C.START_JOINT_NOISE, (
            f"{name}: the arm's joints start {spread:.4f} rad from home on average, not about {C.START_JOINT_NOISE}")
    again, objects_again = _arm_and_objects(object_task, object_task.reset(layout_seed=503))
    assert np.array_equal(again - home, fresh[3]), "the same layout seed started the arm at another pose"
    _, objects_other = _arm_and_objects(object_task, object_task.reset(layout_seed=504))
    moved = [k for k in objects_again if not np.allclose(objects_again[k], objects_other[k])]
    assert moved, "two layout seeds placed every object at the same spot"
