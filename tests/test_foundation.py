"""The loop's conventions, toggles, step logs, loading path and CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vla_ch2 import conventions as C
from vla_ch2.cli import app
from vla_ch2.logs import LogFormatError, StepLogWriter, read_log, read_records, step_record
from vla_ch2.toggles import DRILLS, Toggles

INSTRUCTION = "Pick up the alphabet soup and place it in the basket"


# --- conventions -----------------------------------------------------------------


def test_prompts_are_exact_strings():
    assert Toggles().prompt(INSTRUCTION) == (
        "In: What action should the robot take to pick up the alphabet soup and place it in the basket?\nOut:"
    )
    assert Toggles(prompt_template="rephrased").prompt(INSTRUCTION) == (
        "What action should the robot take? pick up the alphabet soup and place it in the basket"
    )


def test_rotation_is_rows_and_columns():
    image = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    assert np.array_equal(C.rotate_180(image), image[::-1, ::-1])
    assert C.rotate_180(image)[0, 0, 0] == image[-1, -1, 0]


def test_prepare_image_size_and_flip_only_changes_orientation():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    flipped, plain = C.prepare_image(frame, True), C.prepare_image(frame, False)
    assert flipped.shape == (224, 224, 3) and flipped.dtype == np.uint8
    assert not np.array_equal(flipped, plain)
    assert abs(float(flipped.mean()) - float(plain.mean())) < 0.5


def test_center_crop_keeps_size_and_zooms():
    image = np.zeros((224, 224, 3), dtype=np.uint8)
    image[:5] = 255  # a bright border row disappears under a 0.9-area crop
    cropped = C.center_crop(image)
    assert cropped.shape == image.shape
    assert cropped[:3].max() == 0


def test_action_tokens_round_trip_to_bin_centres():
    values = np.array([-1.0, -0.5, 0.0, 0.3, 0.999])
    tokens = C.normalized_to_tokens(values, 32000)
    assert tokens.min() >= 32000 - 256 and tokens.max() <= 31999
    back = C.tokens_to_normalized(tokens, 32000)
    assert np.all(np.abs(back - values) <= 2.0 / 255)


def test_text_token_decodes_to_top_bin():
    assert C.tokens_to_normalized(np.array([100]), 32000)[0] == pytest.approx(C.BIN_CENTERS[-1])


def test_unnormalize_masks_the_gripper():
    stats = C.OPENVLA_LIBERO_OBJECT_ACTION_STATS
    out = C.unnormalize_actions(np.array([-1, -1, -1, 1, 1, 1, 0.42]), stats["q01"], stats["q99"])
    assert np.allclose(out[:3], stats["q01"][:3]) and np.allclose(out[3:6], stats["q99"][3:6])
    assert out[6] == pytest.approx(0.42)


@pytest.mark.parametrize("model_gripper, env_gripper", [(1.0, -1.0), (0.0, 1.0), (0.9, -1.0), (0.2, 1.0)])
def test_gripper_postprocessing(model_gripper, env_gripper):
    action = C.postprocess_gripper(np.array([0, 0, 0, 0, 0, 0, model_gripper]))
    assert action[6] == env_gripper


def test_statistics_selection_and_no_noops_fallback():
    keys = {"libero_object_no_noops": {}, "bridge_orig": {}}
    assert C.resolve_unnorm_key("libero_object", keys) == "libero_object_no_noops"
    assert C.resolve_unnorm_key("bridge_orig", keys) == "bridge_orig"
    with pytest.raises(KeyError, match="not in the set of available dataset statistics"):
        C.resolve_unnorm_key("libero_goal", keys)


def test_max_steps_per_suite():
    assert C.MAX_STEPS["libero_object"] == 280 and C.MAX_STEPS["libero_10"] == 520
    assert C.NUM_WAIT_STEPS == 10 and C.WAIT_ACTION == (0, 0, 0, 0, 0, 0, -1)


# --- toggles ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [({"flip_image": "no"}, "flip_image"), ({"prompt_template": "polite"}, "prompt_template"),
     ({"unnorm_key": ""}, "unnorm_key"), ({"unnorm_key": 3}, "unnorm_key")],
)
def test_bad_toggle_names_field_value_and_choices(kwargs, field):
    with pytest.raises(ValueError) as info:
        Toggles(**kwargs)
    message = str(info.value)
    assert field in message and repr(next(iter(kwargs.values()))) in message


def test_drills_flip_exactly_one_toggle():
    base = DRILLS["baseline"]
    for tag, toggles in DRILLS.items():
        changed = [f for f in ("flip_image", "prompt_template", "unnorm_key") if getattr(toggles, f) != getattr(base, f)]
        assert len(changed) == (0 if tag == "baseline" else 1), tag


# --- step logs ------------------------------------------------------------------------


def test_log_round_trip(tmp_path):
    path = tmp_path / "run.jsonl"
    with StepLogWriter(path) as writer:
        for step in range(3):
            writer.write(step_record(step, np.full((4, 4, 3), step), np.arange(7) / 3, 0.0, "baseline"))
    df = read_log(path)
    assert list(df.columns) == ["step", "img_mean", "action", "reward", "tag"]
    assert df["step"].tolist() == [0, 1, 2] and df["img_mean"].tolist() == [0.0, 1.0, 2.0]
    assert df["action"][1] == [round(i / 3, 4) for i in range(7)]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        ('{"step": 0, "img_mean": 1.0, "action": [0,0,0,0,0,0,0], "reward": 0.0}', "missing field"),
        ('{"step": 0, "img_mean": 1.0, "action": [0,0,0], "reward": 0.0, "tag": "x"}', "'action'"),
        ('{"step": -1, "img_mean": 1.0, "action": [0,0,0,0,0,0,0], "reward": 0.0, "tag": "x"}', "'step'"),
        ('{"step": 0, "img_mean": NaN, "action": [0,0,0,0,0,0,0], "reward": 0.0, "tag": "x"}', "'img_mean'"),
        ('{"step": 0, "img_mean": 1.0, "action": [0,0,0,0,0,0,"a"], "reward": 0.0, "tag": "x"}', "'action'"),
        ('{"step": 0, "img_mean": 1.0, "action": [0,0,NaN,0,0,0,0], "reward": 0.0, "tag": "x"}', "NaN or infinity"),
        ('{"step": 0, "img_mean": 1.0, "action": [0,0,0,0,0,0,Infinity], "reward": 0.0, "tag": "x"}', "NaN or inf"),
        ('{"step": 0, "img_mean": 1.0, "action": [0,0,0,0,0,0,0], "reward": 0.0, "tag": ""}', "'tag'"),
        ("", "not valid JSON"),
    ],
)
def test_malformed_line_names_file_line_and_field(tmp_path, line, message):
    good = json.dumps(step_record(0, np.zeros(3), np.zeros(7), 0.0, "baseline"))
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(LogFormatError) as info:
        read_records(path)
    assert f"{path}, line 2" in str(info.value) and message in str(info.value)


def test_cut_short_last_line_is_rejected(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_text(json.dumps(step_record(0, np.zeros(3), np.zeros(7), 0.0, "baseline")))
    with pytest.raises(LogFormatError, match="cut short"):
        read_records(path)


def test_writer_refuses_an_invalid_record(tmp_path):
    with StepLogWriter(tmp_path / "x.jsonl") as writer, pytest.raises(LogFormatError, match="'action'"):
        writer.write({"step": 0, "img_mean": 1.0, "action": [1, 2], "reward": 0.0, "tag": "t"})


# --- the OpenVLA loading path ---------------------------------------------------------------


def test_openvla_path_loads_a_local_hf_directory(random_checkpoint):
    from vla_ch2.policy import OpenVLAPolicy

    policy = OpenVLAPolicy(str(random_checkpoint), device="cpu")
    assert "bridge_orig" in policy.statistics_keys and "libero_object_no_noops" in policy.statistics_keys
    image = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    action = policy.predict(image, Toggles().prompt(INSTRUCTION), "libero_object")
    assert action.shape == (7,) and np.all(np.isfinite(action))
    q01 = np.array(C.OPENVLA_LIBERO_OBJECT_ACTION_STATS["q01"])
    q99 = np.array(C.OPENVLA_LIBERO_OBJECT_ACTION_STATS["q99"])
    assert np.all(action[:6] >= q01[:6] - 1e-6) and np.all(action[:6] <= q99[:6] + 1e-6)
    bridge = policy.predict(image, Toggles().prompt(INSTRUCTION), "bridge_orig")
    assert np.all(np.abs(bridge[:3]) <= 0.05)  # Bridge's q01..q99 span only a few centimetres
    with pytest.raises(KeyError, match="not in the set of available dataset statistics"):
        policy.predict(image, "x", "libero_goal")


def test_token_prob_is_the_probability_of_the_emitted_tokens(random_checkpoint):
    """``last_token_prob`` comes from a hook on the output layer; recompute it without the cache, by hand."""
    import torch
    from PIL import Image

    from vla_ch2.policy import OpenVLAPolicy

    policy = OpenVLAPolicy(str(random_checkpoint), device="cpu")
    image = np.random.default_rng(1).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    prompt = Toggles().prompt(INSTRUCTION)
    action = policy.predict(image, prompt, "libero_object")
    inputs = policy.processor(prompt, Image.fromarray(C.center_crop(image)))
    ids = torch.cat([inputs["input_ids"], torch.tensor([[policy.vla.config.empty_token_id]])], dim=1)
    probs, tokens = [], []
    with torch.no_grad():
        for _ in range(7):
            p = policy.vla.core(ids, inputs["pixel_values"])[0, -1].softmax(-1)
            token = int(p.argmax())
            probs.append(float(p[token]))
            tokens.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    assert policy.last_token_prob == pytest.approx(np.mean(probs), abs=1e-5)
    bins = np.clip(policy.vla.config.vocab_size - np.array(tokens) - 1, 0, 254)
    assert np.allclose(action[6], policy.vla.bin_centers[bins][6])  # the same tokens as predict_action's


def test_cached_decoding_emits_the_uncached_tokens(teaching_policy):
    """The key/value cache (one buffer per block, filled position by position) changes the cost, not the
    tokens: on the shipped weights, every one of the 7 tokens equals the argmax of a full forward pass
    over the prompt and the tokens so far."""
    import torch
    from PIL import Image

    rng = np.random.default_rng(2)
    prompt = Toggles().prompt(INSTRUCTION)
    core = teaching_policy.vla.core
    for image in (rng.integers(0, 255, (224, 224, 3), dtype=np.uint8), np.full((224, 224, 3), 90, np.uint8)):
        inputs = teaching_policy.processor(prompt, Image.fromarray(C.center_crop(image)))
        ids = torch.cat([inputs["input_ids"], torch.tensor([[teaching_policy.vla.config.empty_token_id]])], dim=1)
        cached = core.generate_greedy(ids, inputs["pixel_values"], 7)[0].tolist()
        uncached = []
        with torch.no_grad():
            for _ in range(7):
                uncached.append(int(core(ids, inputs["pixel_values"])[0, -1].argmax()))
                ids = torch.cat([ids, torch.tensor([[uncached[-1]]])], dim=1)
        assert cached == uncached


def test_instrument_fields_see_the_flip_that_img_mean_cannot():
    from vla_ch2.logs import instrument_fields

    frame = np.zeros((224, 224, 3), dtype=np.uint8)
    frame[:100] = 200  # a bright top
    up, down = instrument_fields(frame, 0.9), instrument_fields(C.rotate_180(frame), None)
    assert up["img_top_minus_bottom"] == pytest.approx(-down["img_top_minus_bottom"]) and up["img_top_minus_bottom"] > 0
    assert up["token_prob"] == 0.9 and "token_prob" not in down
    assert np.mean(frame) == np.mean(C.rotate_180(frame))


@pytest.mark.parametrize("field, value, message", [("token_prob", 1.5, "probability"),
                                                   ("token_prob", "high", "finite number"),
                                                   ("img_top_minus_bottom", float("inf"), "finite number")])
def test_instrument_fields_are_checked(field, value, message):
    from vla_ch2.logs import LogFormatError, validate_record

    record = {"step": 0, "img_mean": 1.0, "action": [0.0] * 7, "reward": 0.0, "tag": "x", field: value}
    with pytest.raises(LogFormatError, match=message):
        validate_record(record, where="here")


def test_hub_id_needs_trust_and_a_folder_needs_config(tmp_path):
    from vla_ch2.policy import ModelLoadError, OpenVLAPolicy

    with pytest.raises(ModelLoadError, match="trust-remote-code"):
        OpenVLAPolicy("openvla/openvla-7b-finetuned-libero-object")
    with pytest.raises(ModelLoadError, match="no config.json"):
        OpenVLAPolicy(str(tmp_path))


# --- CLI errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["episode", "--prompt", "polite", "--out", "x.jsonl"], "prompt_template"),
        (["episode", "--steps", "0", "--out", "x.jsonl"], "--steps"),
        (["episode", "--model", "/nonexistent/dir", "--out", "x.jsonl"], "neither a local checkpoint"),
        (["sweep", "--shard", "3/2", "--out", "s"], "--shard"),
        (["predicates", "verify", "no-such-dir"], "no such drills directory"),
        (["plot", "no-such-dir"], "no episodes"),
    ],
)
def test_cli_user_errors_exit_2_without_traceback(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output


# --- real LIBERO ---------------------------------------------------------------------------------


@pytest.mark.sim
def test_real_episode_logs_valid_lines(object_task, random_checkpoint, tmp_path):
    from vla_ch2.loop import EpisodeResult, run_episode
    from vla_ch2.policy import OpenVLAPolicy

    policy = OpenVLAPolicy(str(random_checkpoint), device="cpu")
    result = EpisodeResult(seed=3)
    path = tmp_path / "ep.jsonl"
    with StepLogWriter(path) as writer:
        for record in run_episode(object_task, policy, seed=3, max_steps=6, result=result):
            writer.write(record)
    df = read_log(path)
    assert len(df) == 6 and result.steps == 6 and result.wall_s > 0
    assert set(df["tag"]) == {"baseline"} and all(len(a) == 7 for a in df["action"])
    assert all(a[6] in (-1.0, 1.0) for a in df["action"])  # LIBERO gripper convention


@pytest.mark.sim
def test_flip_changes_pixels_not_img_mean(object_task):
    obs = object_task.reset(init_index=0)
    for _ in range(C.NUM_WAIT_STEPS):
        obs, *_ = object_task.step(C.WAIT_ACTION)
    frame = object_task.frame(obs)
    flipped, plain = C.prepare_image(frame, True), C.prepare_image(frame, False)
    assert np.mean(np.abs(flipped.astype(int) - plain.astype(int))) > 5
    assert abs(float(flipped.mean()) - float(plain.mean())) < 0.5


def test_decoding_watcher_matches_generate_scores_on_a_llama():
    """OpenVLA's predict_action decodes with Hugging Face `generate` on a Llama (key/value cache: the first pass
    covers the whole prompt, later ones one token). The watcher's number must equal the one `generate` itself
    reports through `output_scores`, on a tiny random Llama built here."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from vla_ch2.policy import DecodingWatcher

    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4)).eval()
    watcher = DecodingWatcher(llama)
    prompt = torch.randint(3, 300, (1, 11))
    watcher.clear()
    with torch.no_grad():
        out = llama.generate(prompt, max_new_tokens=7, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, pad_token_id=0)
    expected = float(torch.stack([s.softmax(-1).max(-1).values for s in out.scores]).mean())
    assert watcher.available and watcher.token_prob(7) == pytest.approx(expected, abs=1e-6)
    assert watcher.token_prob(7) is None  # read once: the next call needs new passes
    assert not DecodingWatcher(torch.nn.Linear(2, 2)).available
