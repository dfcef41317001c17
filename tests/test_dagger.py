"""DAgger: the expert that follows a learner, the learner-driven episode, and fine-tuning from a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_ch2 import conventions as C
from vla_ch2.factory.expert import ScriptedExpert

BASKET = np.array([0.0, 0.3, 0.04])
REST = np.array([0.1, -0.1, 0.02])


def _obs(eef, obj=REST, basket=BASKET):
    return {"robot0_eef_pos": np.asarray(eef, float), "alphabet_soup_1_pos": np.asarray(obj, float),
            "basket_1_pos": np.asarray(basket, float), "robot0_eef_quat": np.array([0.0, 0.0, 0.0, 1.0])}


def _following(phase_after_first_call=None):
    expert = ScriptedExpert("alphabet_soup_1", follow=True)
    expert.act(_obs(REST + [0.2, 0.0, 0.2]))  # first look: the object at rest, the hand far away
    assert expert.phase == "approach"
    return expert


def test_a_held_object_skips_the_expert_to_the_lift():
    expert = _following()
    lifted = REST + [0.0, 0.0, 0.05]
    action = expert.act(_obs(lifted + [0.0, 0.0, 0.01], lifted))  # the learner grasped and lifted it already
    assert expert.phase == "lift" and action[6] > 0 and action[2] > 0  # keep it closed and go on up


def test_a_dropped_object_sends_the_hand_back():
    expert = _following()
    expert.phase = "carry"
    action = expert.act(_obs([0.05, 0.1, 0.3], REST))  # the hand carries on, the object lies on the table
    assert expert.phase == "approach" and action[6] < 0 and action[1] < 0  # open, back towards the object


def test_a_hand_low_over_the_object_goes_on_down_and_one_that_wandered_hovers_again():
    expert = _following()
    low = REST + [0.0, 0.0, 0.04]  # the learner came down without the expert's precise hover
    action = expert.act(_obs(low))
    assert expert.phase == "descend" and action[2] < 0  # go on down, not back up to the hover height
    wandered = REST + [0.05, 0.0, 0.04]
    expert.act(_obs(wandered))
    assert expert.phase == "approach"


def test_a_learner_that_never_gets_low_is_not_told_to_close():
    expert = _following()
    expert.phase = "descend"
    high = REST + [0.0, 0.0, 0.09]  # over the object, under the hover height, but never coming down
    for _ in range(expert.config.descend_steps + 5):
        action = expert.act(_obs(high))
    assert expert.phase == "descend" and action[6] < 0 and action[2] < 0


def test_a_missed_grasp_is_retried_every_time_without_moving_the_aim():
    expert = _following()
    for attempt in range(1, expert.config.max_attempts + 3):
        expert.phase, expert._grasp = "lift", (REST + [0.0, 0.0, 0.01], REST.copy())
        action = expert.act(_obs(REST + [0.0, 0.0, 0.12]))  # well up, the object still on the table
        assert expert.phase == "approach" and action[6] < 0 and expert.attempts == attempt
    assert not expert._offset.any()


def _closing_at(height, early_close=0.0):
    """An expert that has just closed with the hand ``height`` metres above the object, and its next action."""
    expert = ScriptedExpert("alphabet_soup_1", early_close=early_close)
    expert.act(_obs(REST + [0.2, 0.0, 0.2]))
    expert.phase, expert.counter = "close", 1
    return expert, expert.act(_obs(REST + [0.0, 0.0, height]))


def test_a_close_that_came_early_goes_on_down_and_one_at_the_usual_height_holds_still():
    cfg = ScriptedExpert("alphabet_soup_1").config
    _, early = _closing_at(cfg.close_height + 0.02, early_close=0.02)
    assert early[6] > 0 and early[2] < 0 and not early[:2].any()  # closing, straight down
    _, usual = _closing_at(cfg.close_height - 0.002, early_close=0.02)
    assert usual[6] > 0 and not usual[:3].any()  # closing, still: relabel_holds sees a hold
    _, plain = _closing_at(cfg.close_height + 0.02)
    assert plain[6] > 0 and not plain[:3].any()  # the expert v2 learnt from holds still wherever it closed


def test_the_following_expert_holds_still_wherever_it_closed():
    expert = _following()  # over a tall box the hand closes high because it cannot get lower: no pressing there
    expert.phase, expert.counter, expert._grasp = "close", 1, (REST + [0.0, 0.0, 0.04], REST.copy())
    action = expert.act(_obs(REST + [0.0, 0.0, 0.04]))
    assert expert.phase == "close" and action[6] > 0 and not action[:3].any()


def test_early_close_moves_where_the_descent_closes():
    for early_close, closes in ((0.0, False), (0.02, True)):
        expert = ScriptedExpert("alphabet_soup_1", early_close=early_close)
        expert.act(_obs(REST + [0.2, 0.0, 0.2]))
        expert.phase = "descend"
        expert.act(_obs(REST + [0.0, 0.0, expert.config.close_height + 0.015]))
        assert (expert.phase == "close") is closes


def test_the_expert_alone_ignores_what_following_would_change():
    expert = ScriptedExpert("alphabet_soup_1")
    expert.act(_obs(REST + [0.2, 0.0, 0.2]))
    lifted = REST + [0.0, 0.0, 0.05]
    expert.act(_obs(lifted + [0.0, 0.0, 0.01], lifted))
    assert expert.phase == "approach"  # it trusts its own plan: it never let go of a grasp it never made
    expert.act(_obs(REST + [0.0, 0.0, 0.04]))
    assert expert.phase == "approach"  # and it hovers precisely before every descent


class _FakeTask:
    """Steps of a scene where the hand goes where it is told and nothing else moves."""

    language = "pick up the alphabet soup and place it in the basket"
    max_steps = 12

    def __init__(self):
        self.eef = np.array([0.3, 0.0, 0.3])
        self.executed = []

    def reset(self, layout_seed):
        self.seed = layout_seed
        return self.obs()

    def obs(self):
        return _obs(self.eef) | {"agentview_image": np.full((256, 256, 3), 128, np.uint8)}

    def step(self, action):
        self.executed.append(np.asarray(action, float))
        self.eef = self.eef + 0.01 * np.asarray(action[:3], float)
        return self.obs(), 0.0, False, {}

    def frame(self, obs):
        return obs["agentview_image"]


class _StillLearner:
    """A learner that asks for nothing but an open gripper (model convention: 1 = open)."""

    def resolve_key(self, key):
        return key

    def predict(self, image, prompt, unnorm_key):
        assert image.shape == (C.MODEL_INPUT_SIZE, C.MODEL_INPUT_SIZE, 3) and prompt.startswith("In: ")
        return np.array([0, 0, 0, 0, 0, 0, 1.0])


@pytest.mark.parametrize("beta, expert_steps", [(0.0, 0), (1.0, 12)])
def test_the_learner_drives_and_every_kept_frame_carries_the_experts_label(beta, expert_steps):
    from vla_ch2.factory import dagger

    task = _FakeTask()
    cfg = dagger.DaggerConfig(keep_every=2)
    episode = dagger.run_episode(task, _StillLearner(), ScriptedExpert("alphabet_soup_1", follow=True), cfg, 7, beta)
    assert task.seed == 7 and episode["steps"] == 12 and episode["expert_steps"] == expert_steps
    moves = np.array(task.executed[C.NUM_WAIT_STEPS:])
    if beta == 0.0:  # the learner's still action, its gripper turned into the env's -1 = open
        assert np.allclose(moves[:, :6], 0.0) and (moves[:, 6] == -1.0).all()
    else:  # the expert's own actions: towards the object
        assert (moves[:, 0] < 0).all()
    labels = np.array(episode["labels"])
    assert len(episode["frames"]) == len(labels) == 6  # every second step
    assert (labels[:, 0] < 0).all() and (labels[:, 6] < 0).all()  # the expert's label, whoever drove
    # The stored states give the same labels back when the expert is replayed over them.
    assert episode["states"].shape == (12, 13) and list(episode["kept"]) == [0, 2, 4, 6, 8, 10]
    again = dagger.relabel(episode["states"], episode["kept"], episode["target"])
    assert np.allclose(again, labels)


def test_fine_tuning_starts_from_a_checkpoint_and_keeps_its_bins(tmp_path):
    import torch
    from safetensors.torch import load_file
    from test_teaching_model import _tiny_demos

    from vla_ch2.factory.teaching_model import (
        CHECKPOINT_DIR,
        make_random_checkpoint,
        train,
    )

    tiny = {"image_size": 96, "d_model": 32, "n_layers": 1, "n_heads": 2, "vision_dim": 16, "stem_channels": [8, 8, 16]}
    start = make_random_checkpoint(tmp_path / "start", CHECKPOINT_DIR / "tokenizer.json", **tiny)
    demos = tmp_path / "demos"
    demos.mkdir()
    _tiny_demos(demos)
    summary = train(demos, tmp_path / "run", CHECKPOINT_DIR / "tokenizer.json", None, steps=1, batch_size=4, lr=1e-9,
                    device="cpu", options={"init": str(start)})
    stored = json.loads((start / "dataset_statistics.json").read_text())["libero_object_no_noops"]
    assert summary["statistics"] == stored  # the starting model's bins, not the new data's
    assert summary["config"]["d_model"] == 32  # the starting model's sizes
    before = {k.removeprefix("core."): v for k, v in load_file(str(start / "model.safetensors")).items()}
    after = torch.load(tmp_path / "run" / "weights.pt")
    assert max((after[k] - before[k]).abs().max().item() for k in before) < 1e-4  # one tiny step from the start


def test_fine_tuning_from_a_folder_without_weights_says_so(tmp_path):
    from vla_ch2.factory.teaching_model import CHECKPOINT_DIR, train

    with pytest.raises(FileNotFoundError, match="holds no model.safetensors"):
        train(tmp_path, tmp_path / "run", CHECKPOINT_DIR / "tokenizer.json", None, steps=1, device="cpu",
              options={"init": str(tmp_path)})


def _dagger_folder(path, round_):
    path.mkdir()
    summary = {"task_id": 0, "tries": 3, "kept": 3, "frames": 6, "learner_successes": 1, "seconds": 9.0,
               "by_beta": {"0.0": [1, 2], "0.5": [0, 1]}}
    (path / "task_0.json").write_text(json.dumps({"summary": summary, "config": {"seed": round_, "dagger": True}}))


def test_a_fine_tunes_export_keeps_its_lineage_and_a_bad_start_is_refused(tmp_path, capsys):
    from test_teaching_model import _tiny_demos

    from vla_ch2.factory.teaching_model import (
        CHECKPOINT_DIR,
        main,
        make_random_checkpoint,
        train,
    )

    tokenizer = CHECKPOINT_DIR / "tokenizer.json"
    tiny = {"image_size": 96, "d_model": 32, "n_layers": 1, "n_heads": 2, "vision_dim": 16, "stem_channels": [8, 8, 16]}
    base = make_random_checkpoint(tmp_path / "base", tokenizer, **tiny)
    (base / "demos.json").write_text(json.dumps([{"task_id": 0, "kept": 37}]))
    demos = tmp_path / "demos"
    demos.mkdir()
    _tiny_demos(demos)
    start, checkpoints = base, []
    for round_ in (1, 2):
        run = tmp_path / f"run{round_}"
        train(demos, run, tokenizer, None, steps=1, batch_size=4, device="cpu", options={"init": str(start)})
        _dagger_folder(tmp_path / f"dagger{round_}", round_)
        out = tmp_path / f"ft{round_}"
        assert main(["export", "--run", str(run), "--tokenizer", str(tokenizer), "--out", str(out),
                     "--dagger", str(tmp_path / f"dagger{round_}")]) == 0
        start = out
        checkpoints.append(out)
    second = checkpoints[1]
    assert json.loads((second / "demos.json").read_text()) == [{"task_id": 0, "kept": 37}]  # the base's data
    assert json.loads((second / "base_train.json").read_text()) == json.loads((base / "train.json").read_text())
    finetunes = json.loads((second / "finetunes.json").read_text())
    assert [f["options"]["init"] for f in finetunes] == [str(base), str(checkpoints[0])]
    assert [(r["folder"], r["collection_seed"]) for r in json.loads((second / "dagger.json").read_text())] == [
        ("dagger1", 1), ("dagger2", 2)]
    # A fine-tune whose starting checkpoint is gone cannot say what it was trained on: refused, nothing written.
    gone = tmp_path / "gone"
    train(demos, gone, tokenizer, None, steps=1, batch_size=4, device="cpu", options={"init": str(checkpoints[0])})
    import shutil

    shutil.rmtree(checkpoints[0])
    with pytest.raises(SystemExit):
        main(["export", "--run", str(gone), "--tokenizer", str(tokenizer), "--out", str(tmp_path / "ft3")])
    assert "which is gone" in capsys.readouterr().err and not (tmp_path / "ft3").exists()


@pytest.mark.sim
def test_the_following_expert_driving_alone_grasps_like_the_expert():
    """On the layout where a stricter following expert kept re-hovering over a tall box it slid on, and knocked it over."""
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.factory import dagger

    quiet_robosuite()
    with LiberoTask("libero_object", 4) as task:
        obs = task.reset(layout_seed=dagger.layout_seed(dagger.DaggerConfig(round=1), 4, 3))
        for _ in range(C.NUM_WAIT_STEPS):
            obs, _, _, _ = task.step(C.WAIT_ACTION)
        expert, done, phases = ScriptedExpert(task.env.env.obj_of_interest[0], follow=True), False, []
        for _ in range(200):
            obs, _, done, _ = task.step(expert.act(obs))
            phases += [expert.phase] if not phases or phases[-1] != expert.phase else []
            if done:
                break
    assert done and phases == ["approach", "descend", "close", "lift", "carry", "release"], phases


def test_loss_dims_leave_the_other_action_tokens_unlearnt_but_in_the_input():
    from vla_ch2.factory.teaching_model import _sequences

    prompts, tokens = [[1, 5, 6], [1, 5, 6, 7, 8]], np.arange(2000, 2014).reshape(2, 7)
    ids, labels = _sequences(prompts, tokens, empty_id=3, pad_id=0, dims=[0, 1, 2, 6])
    for row, prompt in enumerate(prompts):
        start = len(prompt) + 1
        assert ids[row, start : start + 7].tolist() == tokens[row].tolist()  # every token is fed
        learnt = labels[row, start : start + 7].tolist()
        assert learnt == [tokens[row][d] if d in (0, 1, 2, 6) else -100 for d in range(7)]
    everything = _sequences(prompts, tokens, empty_id=3, pad_id=0)[1]
    assert (everything != -100).sum() == 14


@pytest.mark.parametrize("args, message", [
    (["--model", "nowhere", "--out", "o"], "--model nowhere: not a checkpoint directory"),
    (["--model", "m", "--out", "empty", "--pack-only"], "--pack-only: no stored episodes in empty"),
    (["--model", "m", "--out", "o", "--betas", "0", "1.5"], "each is a probability in [0, 1]"),
])
def test_dagger_command_rejects_bad_input_with_a_message(args, message, tmp_path, monkeypatch, capsys):
    from vla_ch2.factory.dagger import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def _dagger_labels():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("dagger_labels", Path(__file__).parents[1] / "scripts" / "dagger_labels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dagger_labels_reads_heights_over_the_resting_object_only():
    module = _dagger_labels()
    from vla_ch2.factory.dagger import read_state

    heights, lifted = [0.10, 0.04, 0.01, 0.03, 0.03], [False, False, False, False, True]
    states = np.stack([read_state(_obs(REST + [0, 0, h + 0.03 * up], REST + [0, 0, 0.03 * up]), "alphabet_soup_1")
                       for h, up in zip(heights, lifted)])
    labels = np.zeros((4, 7))
    labels[:, 6] = [-1, -1, 1, 1]
    labels[:, 2] = [-0.5, -0.4, 0.0, 0.3]
    episode = {"states": states, "labels": labels, "kept": np.array([0, 1, 2, 4]), "target": "alphabet_soup_1"}
    rows = module.near_object(episode)  # step 0 is too high, step 4 has the object lifted: neither is near it
    assert [(round(h, 3), c, z) for h, c, z in rows] == [(0.04, False, -0.4), (0.01, True, 0.0)]


def test_dagger_labels_names_a_folder_without_episodes(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        _dagger_labels().main([str(tmp_path)])
    assert stop.value.code == 2 and "no DAgger episodes" in capsys.readouterr().err
