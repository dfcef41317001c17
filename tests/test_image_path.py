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


#: A float32 sum that lands on the other side of .5 rounds one grey level off (the same sums in another
#: order); that may happen to at most one value in ten thousand (measured: up to 3 in 100,000).
ROUNDING_FLIPS = 1e-4


def test_lanczos3_resize_is_within_one_grey_level(tf):
    for k, jpeg in enumerate(tf["jpeg"]):
        mean, worst = _report(f"resize[{k}]", C.resize_lanczos(jpeg), tf["resized_uint8"][k])
        assert worst <= 1 and mean < ROUNDING_FLIPS


def test_lanczos3_before_rounding_agrees_to_a_thousandth_of_a_grey_level(tf):
    resized = C.resize_lanczos(tf["jpeg"][0], as_float=True)
    mean, worst = _report("resize float[0]", resized, tf["resized"][0])
    assert worst < 1e-3  # float32 near 255 is exact to 1.5e-5; measured 1.2e-4 (sums in another order)


def test_centre_crop_is_tensorflows_crop_and_resize(tf):
    for k, resized in enumerate(tf["resized_uint8"]):
        mean, worst = _report(f"crop[{k}]", C.center_crop(resized), tf["cropped_uint8"][k])
        assert worst == 0  # the same float32 operations in the same order: identical


def test_end_to_end_within_one_grey_level_where_the_resize_rounds_the_other_way(tf):
    for k, frame in enumerate(tf["frames"]):
        mine = C.center_crop(C.prepare_image(frame, flip_image=True))
        mean, worst = _report(f"end to end[{k}] ({tf['labels'][k]})", mine, tf["cropped_uint8"][k])
        assert worst <= 1 and mean < ROUNDING_FLIPS


def test_the_flip_is_the_only_difference_without_it(tf):
    """``flip_image=False`` skips the rotation and nothing else."""
    frame = tf["frames"][0]
    assert np.array_equal(C.prepare_image(frame, flip_image=False),
                          C.resize_lanczos(C.jpeg_round_trip(frame)))


def _lanczos_one_value_at_a_time(image: np.ndarray, size: int) -> np.ndarray:
    """ScaleAndTranslate written out: rows then columns, each output a float32 sum of products, tap by tap."""
    def one_axis(values: np.ndarray, out_size: int) -> np.ndarray:
        starts, weights = C._lanczos3_spans(out_size, values.shape[0])
        out = np.zeros((out_size, *values.shape[1:]), dtype=np.float32)
        for x in range(out_size):
            for index in np.ndindex(values.shape[1:]):
                total = np.float32(0.0)
                for k in range(weights.shape[1]):
                    source = min(starts[x] + k, values.shape[0] - 1)
                    total = np.float32(total + np.float32(weights[x, k] * np.float32(values[(source, *index)])))
                out[(x, *index)] = total
        return out

    rows = one_axis(image.astype(np.float32), size)
    return np.moveaxis(one_axis(np.moveaxis(rows, 1, 0), size), 0, 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_lanczos3_accumulates_in_tensorflows_order_bit_for_bit(dtype):
    # The vectorised resize must make the same float32 operations in the same order as the
    # one-value-at-a-time version, so that a faster resize leaves every logged episode unchanged.
    image = np.random.default_rng(0).integers(0, 256, size=(23, 17, 3)).astype(dtype)
    for size in (9, 30):  # shrinking (kernel stretched) and enlarging
        mine = C.resize_lanczos(image, size=size, as_float=True)
        reference = _lanczos_one_value_at_a_time(image, size)
        assert np.array_equal(np.ascontiguousarray(mine).view(np.uint32), reference.view(np.uint32)), size
