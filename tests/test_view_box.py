"""The teaching model's view box: what the processor cuts, what demonstrations store, what training records."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from vla_ch2 import conventions as C
from vla_ch2.factory import demos
from vla_ch2.factory.teaching_model import CHECKPOINT_DIR, load_modeling, main, random_resized_crops, train

BOX = (0.0, 0.10, 0.88, 0.72)
processing = load_modeling(name="processing_teachvla")


def _pattern(size: int = 224) -> np.ndarray:
    """A smooth picture with detail at several scales, so that a misplaced cut shows."""
    y, x = np.mgrid[0:size, 0:size] / size
    picture = np.stack([np.sin(40 * x) * np.cos(30 * y), np.sin(25 * x + 10 * y), np.cos(50 * y)], -1)
    return ((picture + 1) * 127.5).astype(np.uint8)


def _centred_training_view(jpeg: bytes) -> np.ndarray:
    """Training's centred crop of a stored frame, in the model's [-1, 1] pixels."""
    import torch

    frame = torch.from_numpy(demos.decode_frame(jpeg).copy()).permute(2, 0, 1)[None].float() / 255
    return (random_resized_crops(frame, centred=True)[0].numpy() - 0.5) / 0.5


def test_the_whole_view_is_the_plain_resize_it_always_was():
    picture = Image.fromarray(_pattern())
    plain = np.asarray(picture.resize((96, 96), Image.BILINEAR), dtype=np.float32) / 255.0
    assert np.array_equal(processing.image_to_pixels(picture, 96), ((plain - 0.5) / 0.5).transpose(2, 0, 1))
    buffer = io.BytesIO()
    picture.resize((96, 96), Image.BILINEAR).save(buffer, format="JPEG", quality=80)
    assert demos.encode_prepared(_pattern(), 96, 80) == buffer.getvalue()


def test_a_stored_frame_shows_after_training_s_centre_crop_what_the_model_sees_at_evaluation():
    picture = _pattern()
    evaluation = processing.image_to_pixels(Image.fromarray(C.center_crop(picture)), 96, BOX)
    stored = _centred_training_view(demos.encode_prepared(picture, 96, 95, BOX))
    # The mutant: store the view box itself, forgetting that the loop's centre crop zooms in first.
    naive = io.BytesIO()
    processing.model_view(Image.fromarray(picture), 96, BOX).save(naive, format="JPEG", quality=95)
    wrong = _centred_training_view(naive.getvalue())
    grey_levels = lambda a: float(np.abs(a - evaluation).mean() * 127.5)  # noqa: E731
    assert grey_levels(stored) < 5.0, "stored frames are cut where the model does not look"
    assert grey_levels(wrong) > 2 * grey_levels(stored)


def test_the_stored_box_stays_inside_the_image_for_any_view_inside_it():
    for box in [(0, 0, 1, 1), (0, 0, 0.1, 0.1), (0.9, 0.9, 1, 1), (0, 0.5, 1, 0.6), BOX]:
        stored = demos.stored_box(box)
        assert all(0.0 <= b <= 1.0 for b in stored) and stored[0] < stored[2] and stored[1] < stored[3]
        assert stored[2] - stored[0] == pytest.approx(box[2] - box[0])


@pytest.mark.parametrize("box", [("0.5", "0", "0.4", "1"), ("0", "0", "1", "1.2"), ("-0.1", "0", "1", "1")])
def test_demos_refuse_a_view_box_that_is_not_a_box_inside_the_image(box, capsys):
    with pytest.raises(SystemExit):
        main(["demos", "--tasks", "0", "--per-task", "1", "--view-box", *box])
    assert "--view-box" in capsys.readouterr().err


def _demos_in_view(directory, view_box, task_id: int = 0) -> None:
    """Six frames of one demonstration, with a collection record that names its view."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(task_id)
    frames = [demos.encode_prepared(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8), 96, 80, view_box)
              for _ in range(6)]
    actions = rng.uniform(-0.5, 0.5, (6, 7)).astype(np.float32)
    actions[:, 6] = np.where(np.arange(6) < 3, -1.0, 1.0)
    demos.save_task_demos(directory / f"task_{task_id}.npz", frames, actions, np.zeros(6, dtype=np.int32), task_id,
                          "pick up the alphabet soup and place it in the basket")
    record = {"summary": {"task_id": task_id}, "config": {"view_box": None if view_box is None else list(view_box)}}
    (directory / f"task_{task_id}.json").write_text(json.dumps(record))


TINY = {"image_size": 96, "d_model": 32, "n_layers": 1, "n_heads": 2, "vision_dim": 16, "stem_channels": [8, 8, 16]}


def test_training_refuses_demonstrations_stored_in_two_views(tmp_path):
    _demos_in_view(tmp_path / "boxed", BOX)
    _demos_in_view(tmp_path / "whole", None, task_id=1)
    with pytest.raises(ValueError, match=r"mix image views .*boxed.*view box \[0\.0, 0\.1.*whole.*whole image"):
        train([tmp_path / "boxed", tmp_path / "whole"], tmp_path / "run", CHECKPOINT_DIR / "tokenizer.json", None,
              steps=2, batch_size=2, device="cpu", config_overrides=TINY)


def test_a_model_trained_on_boxed_frames_is_exported_with_its_box_and_its_processor_cuts_it(tmp_path):
    from transformers import AutoProcessor

    _demos_in_view(tmp_path / "boxed", BOX)
    summary = train(tmp_path / "boxed", tmp_path / "run", CHECKPOINT_DIR / "tokenizer.json", None, steps=2,
                    batch_size=2, device="cpu", config_overrides=TINY)
    assert summary["view_box"] == list(BOX)
    out = tmp_path / "checkpoint"
    main(["export", "--run", str(tmp_path / "run"), "--tokenizer", str(CHECKPOINT_DIR / "tokenizer.json"),
          "--out", str(out), "--demos", str(tmp_path / "boxed")])
    assert json.loads((out / "preprocessor_config.json").read_text())["view_box"] == list(BOX)
    processor = AutoProcessor.from_pretrained(out, trust_remote_code=True)
    picture = Image.fromarray(_pattern())
    pixels = processor("In: what action should the robot take?\nOut:", picture)["pixel_values"][0].numpy()
    assert np.array_equal(pixels, processing.image_to_pixels(picture, 96, BOX))
    assert not np.array_equal(pixels, processing.image_to_pixels(picture, 96))
    # Fine-tuning it on frames of the whole image is refused: its bins would learn another view.
    _demos_in_view(tmp_path / "whole", None)
    with pytest.raises(ValueError, match="sees view box .* but the demonstrations store None"):
        train(tmp_path / "whole", tmp_path / "tune", CHECKPOINT_DIR / "tokenizer.json", None, steps=2, batch_size=2,
              device="cpu", options={"init": str(out)})
