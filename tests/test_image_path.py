"""The image path equals OpenVLA's TensorFlow one, stage by stage, on real LIBERO renders.

The fixtures (``tests/data/tf_image/stages.npz``) were made by TensorFlow
itself, running the operations of OpenVLA's LIBERO evaluation on renders of
five scenes and moments (``scripts/tf_image_fixtures.py``; TensorFlow lives in
a throwaway environment, never in this project). Each stage is fed
TensorFlow's own output of the stage before, so a difference belongs to that
stage alone; the end-to-end test chains the project's stages from the raw
render. ``pytest -s`` prints the measured mean and max differences.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vla_ch2 import conventions as C

FIXTURES = Path(__file__).parent / "data" / "tf_image" / "stages.npz"


@pytest.fixture(scope="module")
def tf():
    data = np.load(FIXTURES)
    assert str(data["tensorflow"]).startswith("2."), "fixtures made by TensorFlow 2"
    return data


def _report(name: str, mine: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    diff = np.abs(mine.astype(np.float64) - theirs.astype(np.float64))
    print(f"{name}: mean {diff.mean():.5f}, max {diff.max():.5f} grey levels over {diff.size} values")
    return float(diff.mean()), float(diff.max())


def test_rotation_jpeg_round_trip_is_tensorflows_decode_exactly(tf):
    for k, frame in enumerate(tf["frames"]):
        mine = C.jpeg_round_trip(C.rotate_180(frame))
        assert mine.shape == tf["jpeg"][k].shape
        mean, worst = _report(f"jpeg[{k}]", mine, tf["jpeg"][k])
        assert worst == 0


def test_lanczos3_resize_is_within_one_grey_level(tf):
    for k, jpeg in enumerate(tf["jpeg"]):
        mean, worst = _report(f"resize[{k}]", C.resize_lanczos(jpeg), tf["resized_uint8"][k])
        assert worst <= 1 and mean < 0.01


def test_lanczos3_before_rounding_agrees_to_a_ten_thousandth(tf):
    resized = C.resize_lanczos(tf["jpeg"][0], as_float=True)
    mean, worst = _report("resize float[0]", resized, tf["resized"][0])
    assert worst < 1e-3


def test_centre_crop_is_tensorflows_crop_and_resize(tf):
    for k, resized in enumerate(tf["resized_uint8"]):
        mean, worst = _report(f"crop[{k}]", C.center_crop(resized), tf["cropped_uint8"][k])
        assert worst <= 1 and mean < 0.01


def test_end_to_end_within_two_grey_levels_and_a_tenth_on_average(tf):
    for k, frame in enumerate(tf["frames"]):
        mine = C.center_crop(C.prepare_image(frame, flip_image=True))
        mean, worst = _report(f"end to end[{k}] ({tf['labels'][k]})", mine, tf["cropped_uint8"][k])
        assert worst <= 2 and mean < 0.1


def test_the_flip_is_the_only_difference_without_it(tf):
    """``flip_image=False`` skips the rotation and nothing else."""
    frame = tf["frames"][0]
    assert np.array_equal(C.prepare_image(frame, flip_image=False),
                          C.resize_lanczos(C.jpeg_round_trip(frame)))
