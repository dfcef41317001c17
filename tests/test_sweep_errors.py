"""An episode that raises inside a sweep is recorded as a failure with its error, and the sweep goes on.

OpenVLA's LIBERO evaluation counts an episode that raises as a failure and
continues; a sweep must never stop, nor drop the episode silently. The worker
loop is exercised in-process with a stand-in simulator and policy (no LIBERO).
"""

from __future__ import annotations

import json
import queue

import numpy as np

from vla_ch2 import sweep


class FakeTask:
    """Just enough of LiberoTask for the loop: a flat grey scene that never ends."""

    suite, language, max_steps = "libero_object", "pick up the soup", 3
    built = 0

    def __init__(self, *args):
        FakeTask.built += 1
        self.index = None

    def reset(self, init_index=None, layout_seed=None):
        self.index = init_index
        return {}

    def step(self, action):
        return {}, 0.0, False, {}

    def frame(self, obs):
        return np.full((256, 256, 3), 120, dtype=np.uint8)

    def close(self):
        pass


class FailingPolicy:
    """Raises on every call during episode 1, as a CUDA out-of-memory error would."""

    def __init__(self, task_of):
        self.task_of = task_of

    def predict(self, image, prompt, unnorm_key):
        if self.task_of().index == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return np.array([0.1, 0, 0, 0, 0, 0, 1.0])


def test_an_episode_that_raises_is_a_failure_with_its_error_and_the_sweep_goes_on(tmp_path, monkeypatch):
    tasks: list[FakeTask] = []

    def make_task(*args):
        tasks.append(FakeTask(*args))
        return tasks[-1]

    monkeypatch.setattr("vla_ch2.env.LiberoTask", make_task)
    monkeypatch.setattr("vla_ch2.policy.load_policy", lambda model: FailingPolicy(lambda: tasks[-1]))
    jobs, results = queue.Queue(), queue.Queue()
    for seed in (0, 1, 2, None):
        jobs.put(seed)
    settings = {"model": "unused", "suite": "libero_object", "task": 0, "max_steps": 3}
    sweep._episode_worker(jobs, results, settings, str(tmp_path))
    rows = [results.get_nowait() for _ in range(3)]
    assert [kind for kind, _ in rows] == ["done", "done", "done"]
    by_seed = {row["seed"]: row for _, row in rows}
    assert by_seed[1]["success"] is False and "CUDA out of memory (simulated)" in by_seed[1]["error"]
    assert "error" not in by_seed[0] and "error" not in by_seed[2] and by_seed[2]["steps"] == 3
    assert len(tasks) == 2  # a fresh simulator after the error

    # The episode line keeps the error, the summary counts it, and a resumed sweep reads it back.
    (tmp_path / sweep.EPISODES).write_text("".join(json.dumps(row) + "\n" for _, row in rows), encoding="utf-8")
    settings_obj = sweep.SweepSettings(model="unused", max_steps=3)
    summary = sweep.summarise(sweep.read_episodes(tmp_path), settings_obj)
    assert summary["episodes"] == 3 and summary["successes"] == 0
    assert summary["errored"] == 1 and summary["errored_seeds"] == [1]


def test_a_worker_that_cannot_start_reports_instead_of_hanging(tmp_path, monkeypatch):
    def broken(*args):
        raise FileNotFoundError("no LIBERO assets")

    monkeypatch.setattr("vla_ch2.env.LiberoTask", broken)
    monkeypatch.setattr("vla_ch2.policy.load_policy", lambda model: object())
    jobs, results = queue.Queue(), queue.Queue()
    jobs.put(0)
    sweep._episode_worker(jobs, results, {"model": "x", "suite": "libero_object", "task": 0}, str(tmp_path))
    kind, message = results.get_nowait()
    assert kind == "error" and "no LIBERO assets" in message


def test_tasks_are_parsed_and_checked():
    assert sweep.parse_tasks("all", 10) == list(range(10))
    assert sweep.parse_tasks("0-2,7", 10) == [0, 1, 2, 7]
    for bad in ("11", "x", "3-12", ""):
        try:
            sweep.parse_tasks(bad, 10)
        except ValueError as exc:
            assert "--tasks" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_the_suite_summary_pools_every_episode_and_keeps_the_per_task_rates(tmp_path):
    outcomes = {0: [True] * 9 + [False], 1: [True] * 5 + [False] * 5, 2: [True] * 10}
    for task, wins in outcomes.items():
        folder = tmp_path / sweep.TASK_DIR.format(task=task)
        folder.mkdir()
        rows = [{"seed": s, "success": w, "final_reward": float(w), "steps": 100, "first_close_step": 40,
                 "wall_s": 1.0} for s, w in enumerate(wins)]
        rows[-1]["error"] = "RuntimeError: simulated" if task == 1 else None
        (folder / sweep.EPISODES).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    summary = sweep.suite_summary(tmp_path, [0, 1, 2], "openvla/openvla-7b-finetuned-libero-object", "libero_object")
    assert [t["success_rate"] for t in summary["tasks"]] == [0.9, 0.5, 1.0]
    assert summary["episodes"] == 30 and summary["successes"] == 24 and summary["success_rate"] == 0.8
    assert abs(summary["standard_error"] - (0.8 * 0.2 / 30) ** 0.5) < 1e-12
    assert summary["reference"]["success_rate"] == 0.884 and summary["errored"] == 1
    assert json.loads((tmp_path / sweep.SUITE_SUMMARY).read_text())["successes"] == 24
    assert not summary["whole_suite"]  # 3 tasks of 10 episodes: not the paper's protocol
    published = {p["policy"]: p["success_rate"] for p in summary["published"]}
    assert published["OpenVLA-7B fine-tuned"] == 0.884 and "Octo fine-tuned" in published


def test_a_model_card_gives_per_task_and_suite_references(tmp_path, monkeypatch):
    card = tmp_path / "model"
    card.mkdir()
    (card / "reference_success.json").write_text(json.dumps(
        {"suite": "libero_object", "per_task": {"3": 0.92}, "suite_average": 0.95, "source": "card"}))
    assert sweep.reference_for(sweep.SweepSettings(model=str(card), task=3))["success_rate"] == 0.92
    assert sweep.reference_for(sweep.SweepSettings(model=str(card), task=4)) is None
    for task in range(10):
        folder = tmp_path / "s" / sweep.TASK_DIR.format(task=task)
        folder.mkdir(parents=True)
        rows = [{"seed": s, "success": True, "final_reward": 1.0, "steps": 90, "first_close_step": 30, "wall_s": 1.0}
                for s in range(50)]
        (folder / sweep.EPISODES).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    whole = sweep.suite_summary(tmp_path / "s", list(range(10)), str(card), "libero_object")
    assert whole["whole_suite"] and whole["reference"] == {"success_rate": 0.95, "source": "card"}
    part = sweep.suite_summary(tmp_path / "s", [0, 1], str(card), "libero_object")
    assert part["reference"] is None  # a suite average is not a reference for two tasks
