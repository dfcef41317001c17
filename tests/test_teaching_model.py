"""The shipped teaching checkpoint: its card's hash, and a real episode through the OpenVLA path."""

from __future__ import annotations

import json
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


def _expert_obs(eef, obj, basket=(0.0, 0.3, 0.0)):
    return {"robot0_eef_pos": np.asarray(eef, float), "alphabet_soup_1_pos": np.asarray(obj, float),
            "basket_1_pos": np.asarray(basket, float), "robot0_eef_quat": np.array([0.0, 0.0, 0.0, 1.0])}


def test_a_deliberate_miss_aims_off_then_recovers_where_the_grasp_belongs():
    from vla_ch2.factory.expert import ScriptedExpert

    obj = np.array([0.1, -0.1, 0.02])
    miss = np.array([0.02, 0.0, 0.05])
    expert = ScriptedExpert("alphabet_soup_1", miss=miss, notice=0.1)
    eef = obj + [miss[0], miss[1], 0.10]  # hovering over the wrong spot: the hand must descend there
    expert.act(_expert_obs(eef, obj))
    assert expert.phase == "descend"
    down = expert.act(_expert_obs(eef, obj))
    assert down[2] < 0 and abs(down[0]) < 1e-9  # straight down over the miss point, not towards the object
    low = obj + miss + [0.0, 0.0, 0.005]  # low enough over the miss point: it closes there, on nothing
    expert.act(_expert_obs(low, obj))
    assert expert.phase == "close"
    for _ in range(expert.config.close_steps):
        expert.act(_expert_obs(low, obj))
    assert expert.phase == "lift"
    expert.act(_expert_obs(low + [0, 0, 0.05], obj))  # below the notice height: still lifting, closed
    assert expert.attempts == 0
    opened = expert.act(_expert_obs(low + [0, 0, 0.11], obj))  # the object stayed on the table: noticed
    assert expert.attempts == 1 and expert.phase == "approach" and opened[6] < 0
    back = expert.act(_expert_obs(low + [0, 0, 0.11], obj))
    assert back[0] < 0  # heads back towards the object itself (the miss is forgotten)
    assert expert.phase == "approach" and not expert._miss.any()


def test_recovery_collection_keeps_only_frames_after_the_noticed_miss(monkeypatch, tmp_path):
    from vla_ch2 import conventions as C
    from vla_ch2.factory import demos

    class FakeTask:
        language = "pick up the alphabet soup and place it in the basket"

        def __init__(self, *args):
            self.env = type("E", (), {"env": type("I", (), {"obj_of_interest": ["alphabet_soup_1"]})()})()
            self.t = 0

        def reset(self, layout_seed):
            self.t = 0
            return self.obs()

        def obs(self):
            return {"t": self.t}

        def step(self, action):
            self.t += 1
            return self.obs(), 0.0, self.t >= C.NUM_WAIT_STEPS + 12, {}

        def frame(self, obs):
            return np.full((8, 8, 3), obs["t"], np.uint8)

        def close(self):
            pass

    class FakeExpert:
        def __init__(self, target, config=None, miss=None, notice=0.08):
            assert miss is not None  # recovery mode always aims off
            assert config.grasp_xy["alphabet_soup"] == (0.03, 0.0)  # the collection's own aim reaches the expert
            self.attempts, self.calls = 0, 0

        def act(self, obs):
            self.calls += 1
            self.attempts = int(self.calls > 5)  # the miss is noticed on the sixth call
            return np.array([0.5, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0 if self.attempts else 1.0])

    monkeypatch.setattr(demos, "LiberoTask", FakeTask)
    monkeypatch.setattr(demos, "ScriptedExpert", FakeExpert)
    monkeypatch.setattr(demos, "quiet_robosuite", lambda: None)
    cfg = demos.DemoConfig(per_task=1, image_size=8, noisy_fraction=0.0, recovery=True,
                           grasp_xy={"alphabet_soup": (0.03, 0.0)})
    summary = demos.collect_task(0, cfg, tmp_path)
    record = json.loads((tmp_path / "task_0.json").read_text())
    assert record["expert_grasp_xy"]["alphabet_soup"] == [0.03, 0.0] and record["config"]["grasp_xy"]
    kept = demos.load_task_demos(tmp_path / "task_0.npz")
    assert summary["kept"] == 1
    assert len(kept["actions"]) == 12 - 5 and (kept["actions"][:, 6] < 0).all()  # nothing from before the miss


def test_replay_reports_the_object_a_successful_episode_moved(object_task, script):
    """scripts/replay_objects.py: the objects' positions, not the robot's relative keys, and what moved."""
    replay_objects = script("replay_objects")

    class ScriptedPolicy:  # the expert, fed from the live scene, stands in for a model that succeeds
        def __init__(self):
            from vla_ch2.factory.expert import ScriptedExpert

            self.expert = ScriptedExpert(object_task.env.env.obj_of_interest[0])

        def predict(self, image, prompt, unnorm_key):
            action = self.expert.act(object_task.env.env._get_observations())
            action[6] = (1.0 - action[6]) / 2.0  # env gripper -> training convention, as a model returns it
            return action

    positions = replay_objects.object_positions(object_task.env.env._get_observations())
    assert "basket_1" in positions and not any("_to_" in k or k.startswith("robot") for k in positions)
    report = replay_objects.replay(object_task, ScriptedPolicy(), seed=0, after=5)
    assert report["success"] and next(iter(report["moved"])) == "alphabet_soup_1"
    after = report["first_close"]["after"]  # the expert closes about 1 cm up and holds still, closed
    assert len(after) == 5 and all(a["gripper"] > 0 and a["action_z"] == 0 and 0 < a["hand_z"] < 0.02 for a in after)


@pytest.mark.parametrize("args, message", [(["--task", "0", "--seeds", "a,1"], "whole numbers separated by commas"),
                                           (["--task", "42"], "task 42 is out of range"),
                                           (["--task", "0", "--after", "-1"], "--after -1: give a number of steps")])
def test_replay_objects_rejects_bad_input_with_a_message(args, message):
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "scripts" / "replay_objects.py"
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_demos_rejects_a_miss_range_given_backwards(capsys):
    from vla_ch2.factory.teaching_model import main

    with pytest.raises(SystemExit) as stop:
        main(["demos", "--recovery", "--miss-xy", "0.06", "0.04", "--out", "unused"])
    assert stop.value.code == 2 and "--miss-xy 0.06 0.04: give MIN MAX" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--early-close", "0.03", "0.01"], "--early-close 0.03 0.01: give MIN MAX"),
    (["--early-close-fraction", "1.5"], "--early-close-fraction 1.5: give a share between 0 and 1"),
])
def test_demos_rejects_a_bad_early_close_before_any_simulator_starts(args, message, capsys):
    from vla_ch2.factory.teaching_model import main

    with pytest.raises(SystemExit) as stop:
        main(["demos", *args, "--out", "unused"])
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--grasp-xy", "cream_cheese", "-1", "0"], "--grasp-xy cream_cheese -1 0: an aim more than 0.05 m"),
    (["--grasp-xy", "cream_cheese", "nan", "0"], "--grasp-xy cream_cheese nan 0: an aim more than 0.05 m"),
    (["--grasp-xy", "cream_cheese", "1cm", "0"], "--grasp-xy cream_cheese 1cm 0: X and Y are metres"),
    (["--grasp-xy", "cream_cheese_1", "-0.01", "0"], "not cream_cheese_1"),
    (["--grasp-xy", "cream_cheese", "-0.01", "0", "--grasp-xy", "cream_cheese", "0", "0"], "name each object once"),
    (["--grasp-dz", "butter", "0.6"], "--grasp-dz butter 0.6: more than 0.02 m"),
    (["--grasp-dz", "butter", "inf"], "--grasp-dz butter inf: more than 0.02 m"),
    (["--grasp-dz", "butter", "low"], "--grasp-dz butter low: DZ is metres"),
    (["--grasp-dz", "butter_1", "0"], "not cream_cheese_1"),
])
def test_demos_rejects_a_bad_aim_before_any_simulator_starts(args, message, capsys, tmp_path):
    from vla_ch2.factory.teaching_model import main

    with pytest.raises(SystemExit) as stop:
        main(["demos", *args, "--out", str(tmp_path / "demos")])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "demos").exists()  # refused before anything was written


def test_an_aim_given_for_a_collection_moves_the_expert_and_is_recorded(monkeypatch, tmp_path):
    """``demos --grasp-xy`` replaces GRASP_XY for that object only, and the collection's record says so."""
    from vla_ch2.factory import demos
    from vla_ch2.factory.expert import GRASP_DZ, GRASP_XY, ExpertConfig, ScriptedExpert
    from vla_ch2.factory.teaching_model import main

    seen = []
    monkeypatch.setattr(demos, "collect_task", lambda task_id, cfg, out: seen.append(cfg) or {"task_id": task_id})
    main(["demos", "--tasks", "1", "--grasp-xy", "cream_cheese", "-0.01", "0", "--grasp-dz", "milk", "-0.006",
          "--out", str(tmp_path)])
    aims = demos.expert_aims(seen[0])
    assert aims["cream_cheese"] == (-0.01, 0.0) and aims["tomato_sauce"] == GRASP_XY["tomato_sauce"]
    assert demos.expert_aims(demos.DemoConfig()) == GRASP_XY  # no option: the expert as committed
    config = demos.expert_config(seen[0])
    assert config.grasp_dz["milk"] == -0.006 and config.grasp_dz == {**GRASP_DZ, "milk": -0.006}
    assert demos.expert_config(demos.DemoConfig()).grasp_dz == GRASP_DZ and "milk" not in GRASP_DZ  # untouched

    obj = np.array([0.1, -0.1, 0.02])
    moved = ScriptedExpert("alphabet_soup_1", config=ExpertConfig(grasp_xy={"alphabet_soup": (0.02, -0.01)}))
    plain = ScriptedExpert("alphabet_soup_1")
    assert np.allclose(moved._grasp_goal(obj)[:2] - plain._grasp_goal(obj)[:2], [0.02, -0.01])
    lower = ScriptedExpert("alphabet_soup_1", config=demos.expert_config(demos.DemoConfig(grasp_dz={"alphabet_soup": -0.006})))
    assert np.allclose(lower._grasp_goal(obj) - plain._grasp_goal(obj), [0.0, 0.0, -0.006])


def _tiny_demos(directory):
    """Six frames of one demonstration in the collection format (no simulator needed)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(6):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        frames.append(buffer.getvalue())
    actions = rng.uniform(-0.5, 0.5, (6, 7)).astype(np.float32)
    actions[:, 6] = np.where(np.arange(6) < 3, -1.0, 1.0)
    np.savez(directory / "task_0.npz", jpeg=np.frombuffer(b"".join(frames), dtype=np.uint8),
             offsets=np.cumsum([0] + [len(f) for f in frames]).astype(np.int64), actions=actions,
             episodes=np.zeros(6, dtype=np.int32), task_id=np.int32(0),
             language=np.str_("pick up the alphabet soup and place it in the basket"))


def test_ema_keeps_an_average_beside_the_weights_training_reaches(tmp_path):
    import torch

    from vla_ch2.factory.teaching_model import CHECKPOINT_DIR, train

    _tiny_demos(tmp_path)
    tiny = {"image_size": 96, "d_model": 32, "n_layers": 1, "n_heads": 2, "vision_dim": 16, "stem_channels": [8, 8, 16]}
    common = {"steps": 4, "batch_size": 4, "device": "cpu", "config_overrides": tiny}
    train(tmp_path, tmp_path / "plain", CHECKPOINT_DIR / "tokenizer.json", None, **common)
    train(tmp_path, tmp_path / "ema", CHECKPOINT_DIR / "tokenizer.json", None, options={"ema": 0.5}, **common)
    # A decay of 1 never moves the average: it keeps the initial weights.
    train(tmp_path, tmp_path / "init", CHECKPOINT_DIR / "tokenizer.json", None, options={"ema": 1.0}, **common)
    initial = torch.load(tmp_path / "init" / "weights.pt")
    plain = torch.load(tmp_path / "plain" / "weights.pt")
    raw = torch.load(tmp_path / "ema" / "weights_raw.pt")
    averaged = torch.load(tmp_path / "ema" / "weights.pt")
    assert not (tmp_path / "plain" / "weights_raw.pt").exists()
    # Keeping the average does not change what training reaches ...
    assert all(torch.equal(plain[k], raw[k]) for k in plain)
    # ... the average is not those weights, and the tied LM head stays tied to the embedding.
    assert max((averaged[k] - raw[k]).abs().max().item() for k in raw) > 1e-4
    assert torch.equal(averaged["lm_head.weight"], averaged["embed.weight"])
    # It follows training: nearer the trained weights than the initial ones are.
    def distance(a, b):
        return sum(float((a[k] - b[k]).pow(2).sum()) for k in b) ** 0.5

    assert distance(averaged, raw) < distance(initial, raw)


def test_export_records_every_extra_collection_and_forgets_the_last_ones(tmp_path):
    import json

    from vla_ch2.factory.teaching_model import extra_demo_rows, write_record

    for folder, tasks in (("more_a", (6, 10, 2)), ("more_b", (8,))):
        (tmp_path / folder).mkdir()
        for task in tasks:
            summary = {"task_id": task, "tries": 40, "kept": 39, "frames": 100, "seconds": 60.0,
                       "expert_clean": {"tries": 20, "successes": 20}, "expert_noisy": {"tries": 20, "successes": 19}}
            record = {"summary": summary, "config": {"seed": 1 if folder == "more_a" else 2}}
            (tmp_path / folder / f"task_{task}.json").write_text(json.dumps(record))
    out = tmp_path / "checkpoint"
    out.mkdir()
    rows = extra_demo_rows([tmp_path / "more_b", tmp_path / "more_a"])
    write_record(out / "extra_demos.json", rows)
    assert [(r["folder"], r["task_id"], r["collection_seed"]) for r in rows] == [
        ("more_a", 2, 1), ("more_a", 6, 1), ("more_a", 10, 1), ("more_b", 8, 2)]
    assert json.loads((out / "extra_demos.json").read_text()) == rows
    # The next export without extra collections must not inherit this record.
    write_record(out / "extra_demos.json", extra_demo_rows([]))
    assert not (out / "extra_demos.json").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no task_.*json collection summaries"):
        extra_demo_rows([tmp_path / "empty"])


def test_export_checks_extra_collections_before_writing_anything(tmp_path, capsys):
    from vla_ch2.factory.teaching_model import main

    (tmp_path / "empty").mkdir()
    out = tmp_path / "checkpoint"
    with pytest.raises(SystemExit):
        main(["export", "--run", str(tmp_path / "run"), "--out", str(out), "--extra-demos", str(tmp_path / "empty")])
    err = capsys.readouterr().err
    assert "--extra-demos" in err and "empty: no task_*.json collection summaries there" in err
    assert not out.exists()


def test_ema_and_holdout_together_are_refused_before_any_work(tmp_path):
    from vla_ch2.factory.teaching_model import CHECKPOINT_DIR, train

    with pytest.raises(ValueError, match="'ema' and 'holdout' together"):
        train(tmp_path / "nothing", tmp_path / "run", CHECKPOINT_DIR / "tokenizer.json", None,
              options={"ema": 0.999, "holdout": 3})


def test_a_run_of_twenty_steps_trains(tmp_path):
    """Twenty steps made the learning-rate schedule's one-step warm-up divide by zero."""
    from vla_ch2.factory.teaching_model import CHECKPOINT_DIR, train

    _tiny_demos(tmp_path)
    tiny = {"image_size": 96, "d_model": 32, "n_layers": 1, "n_heads": 2, "vision_dim": 16, "stem_channels": [8, 8, 16]}
    summary = train(tmp_path, tmp_path / "run", CHECKPOINT_DIR / "tokenizer.json", None, steps=20, batch_size=2,
                    device="cpu", config_overrides=tiny)
    assert summary["steps"] == 20 and (tmp_path / "run" / "weights.pt").is_file()


def _refused_before_any_simulator(script, name: str, argv: list[str], named: str, capsys, tmp_path) -> None:
    """The script stops with a usage error naming ``named`` and writes nothing."""
    with pytest.raises(SystemExit) as stop:
        script(name).main([*argv, "--out", str(tmp_path / "out.jsonl")])
    assert stop.value.code == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("argv, named", [(["--radii", "0.2"], "--radii"), (["--heights", "-0.03"], "more than 2 cm lower"),
                                         (["--heights", "0.2"], "--heights value"), (["--early", "-0.01"], "--early"),
                                         (["--directions", "0"], "--directions"), (["--layouts", "0"], "--layouts")])
def test_grasp_tolerance_refuses_a_bad_aim_error_or_direction_count_before_any_simulator_starts(argv, named, capsys,
                                                                                                tmp_path, script):
    _refused_before_any_simulator(script, "grasp_tolerance", argv, named, capsys, tmp_path)


@pytest.mark.parametrize("argv, named", [(["--task", "10"], "--task 10"), (["--task", "1", "--inits", "0,50"], "--inits"),
                                         (["--task", "1", "--inits", "a"], "--inits"),
                                         (["--task", "1", "--driver", "human"], "--driver")])
def test_probe_descent_refuses_a_bad_task_state_or_driver_before_any_simulator_starts(argv, named, capsys, tmp_path,
                                                                                     script):
    _refused_before_any_simulator(script, "probe_descent", argv, named, capsys, tmp_path)
