"""Reference fixtures for the image path, made by TensorFlow itself (a throwaway tool, never a dependency).

OpenVLA prepares LIBERO images with TensorFlow (``experiments/robot/libero/libero_utils.py``
``get_libero_image`` / ``resize_image`` and ``experiments/robot/openvla_utils.py``
``crop_and_resize``). This script runs the same TensorFlow operations, stage by
stage, on real LIBERO renders, and stores every stage, so that
``tests/test_image_path.py`` can compare :mod:`vla_ch2.conventions` with
TensorFlow without TensorFlow installed. Two steps, in two environments:

1. ``render`` (the project's ``.venv``, which has LIBERO): raw 256 x 256
   ``agentview`` frames of several tasks and moments, to ``renders.npz``.

       .venv/bin/python scripts/tf_image_fixtures.py render /tmp/renders.npz

2. ``tensorflow`` (a throwaway virtual environment with ``tensorflow-cpu`` from
   the package index: ``python -m venv /tmp/tf && /tmp/tf/bin/pip install
   tensorflow-cpu numpy``): every stage, to ``tests/data/tf_image/stages.npz``.

       /tmp/tf/bin/python scripts/tf_image_fixtures.py tensorflow /tmp/renders.npz tests/data/tf_image/stages.npz

Stages stored per frame: ``frame`` (raw render), ``jpeg`` (``encode_jpeg`` +
``decode_image`` of the rotated frame), ``resized_uint8`` (``resize(lanczos3,
antialias)`` of ``jpeg``, rounded and clipped) and ``cropped_uint8``
(``crop_and_resize`` of ``resized_uint8`` in [0, 1], then ``convert_image_dtype``
back, saturating); for the first frame also the float32 stages before
rounding, ``resized`` and ``cropped``. The TensorFlow version is stored beside them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: (suite, task, initial state, policy-free steps before the frame): several scenes and moments.
MOMENTS = [
    ("libero_object", 0, 0, 10),
    ("libero_object", 4, 7, 40),
    ("libero_spatial", 2, 3, 10),
    ("libero_goal", 5, 11, 25),
    ("libero_10", 1, 20, 60),
]


def render(out: str) -> None:
    """Raw frames after ``steps`` simulator steps of a slow, fixed arm motion from an official initial state."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vla_ch2 import conventions as C
    from vla_ch2.env import LiberoTask, quiet_robosuite

    quiet_robosuite()
    frames, labels = [], []
    for suite, task_id, init, steps in MOMENTS:
        with LiberoTask(suite, task_id) as task:
            obs = task.reset(init_index=init)
            for k in range(steps):
                action = np.array(C.WAIT_ACTION if k < C.NUM_WAIT_STEPS else (0.3, -0.2, -0.3, 0, 0, 0.1, -1.0))
                obs, _, _, _ = task.step(action)
            frames.append(np.asarray(task.frame(obs), dtype=np.uint8))
            labels.append(f"{suite} task {task_id}, initial state {init}, after {steps} steps")
    np.savez_compressed(out, frames=np.stack(frames), labels=np.array(labels))
    print(f"wrote {out}: {len(frames)} frames")


def tensorflow_stages(renders: str, out: str) -> None:
    """Every stage of OpenVLA's image path, computed by TensorFlow."""
    import tensorflow as tf

    data = np.load(renders)
    stages: dict[str, list] = {k: [] for k in ("jpeg", "resized", "resized_uint8", "cropped", "cropped_uint8")}
    for frame in data["frames"]:
        rotated = frame[::-1, ::-1]
        jpeg = tf.io.decode_image(tf.image.encode_jpeg(rotated), expand_animations=False, dtype=tf.uint8)
        resized = tf.image.resize(jpeg, (224, 224), method="lanczos3", antialias=True)
        resized_uint8 = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
        unit = tf.image.convert_image_dtype(resized_uint8, tf.float32)
        side = tf.reshape(tf.clip_by_value(tf.sqrt(0.9), 0, 1), (1,))
        offset = (1 - side) / 2
        boxes = tf.stack([offset, offset, offset + side, offset + side], axis=1)
        cropped = tf.image.crop_and_resize(unit[None], boxes, tf.range(1), (224, 224))[0]
        cropped_uint8 = tf.image.convert_image_dtype(tf.clip_by_value(cropped, 0, 1), tf.uint8, saturate=True)
        for name, value in (("jpeg", jpeg), ("resized", resized), ("resized_uint8", resized_uint8),
                            ("cropped", cropped), ("cropped_uint8", cropped_uint8)):
            stages[name].append(value.numpy())
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    # The float32 stages (before rounding) of the first frame only: they compress badly, and one frame shows
    # the agreement before rounding; every frame's uint8 stages are kept.
    arrays = {name: np.stack(values) if values[0].dtype == np.uint8 else values[0][None]
              for name, values in stages.items()}
    np.savez_compressed(out, frames=data["frames"], labels=data["labels"], tensorflow=np.array(tf.__version__), **arrays)
    print(f"wrote {out}: {len(data['frames'])} frames, TensorFlow {tf.__version__}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "render":
        render(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "tensorflow":
        tensorflow_stages(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        sys.exit(2)
