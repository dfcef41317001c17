"""Every number and string the loop must share with OpenVLA's training.

A VLA is only as good as the agreement between how its training data was
prepared and how the evaluation loop prepares what it feeds the model. The
three silent failures of the chapter are each a broken agreement. This module
keeps all of them in one place, each with the source it was taken from, so a
reader can audit the loop against OpenVLA's code line by line.

Sources (repository ``openvla/openvla`` unless said otherwise):

* ``experiments/robot/libero/run_libero_eval.py`` (RLE)
* ``experiments/robot/libero/libero_utils.py`` (LU)
* ``experiments/robot/openvla_utils.py`` (OU)
* ``experiments/robot/robot_utils.py`` (RU)
* ``prismatic/vla/action_tokenizer.py`` (AT)
* ``prismatic/extern/hf/modeling_prismatic.py`` (MP)
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

# --- Prompts -----------------------------------------------------------------

#: OpenVLA-7B and its LIBERO fine-tunes (OU ``get_vla_action``); the
#: instruction is lower-cased before it is inserted.
CANONICAL_PROMPT = "In: What action should the robot take to {instruction}?\nOut:"

#: The chapter's ``bad_prompt`` drill (§2.4, Exercise 2.x.1): same words,
#: no ``In:``/``Out:`` scaffold.
REPHRASED_PROMPT = "What action should the robot take? {instruction}"

PROMPT_TEMPLATES = {"canonical": CANONICAL_PROMPT, "rephrased": REPHRASED_PROMPT}

# --- Rendering and image preprocessing -----------------------------------------

#: ``OffScreenRenderEnv(camera_heights=256, camera_widths=256)`` (LU ``get_libero_env``).
RENDER_SIZE = 256
#: Camera the policy sees (LU ``get_libero_image``: ``obs["agentview_image"]``).
CAMERA = "agentview"
#: OpenVLA's input resolution (OU ``resize_image`` to 224 x 224).
MODEL_INPUT_SIZE = 224
#: The LIBERO fine-tunes were trained with random-resized-crop of area 0.9, so
#: evaluation crops the centre with sides sqrt(0.9) of the image (OU, ``center_crop=True``).
CENTER_CROP_AREA = 0.9
#: ``env.seed(0)`` after construction (LU: "seed seems to affect object
#: positions even when using fixed initial state").
ENV_SEED = 0
#: Standard deviation (radians) of the gaussian noise on each arm joint of a
#: fresh layout's starting pose: robosuite's ``"default"`` initialization
#: noise, which LIBERO's scene classes use, so the official initial states
#: carry it (libero_object, 50 states a task: the gripper starts 1.8 to 2.4 cm,
#: root mean square, from its mean position; ``scripts/layout_stats.py``).
#: LIBERO's ``OffScreenRenderEnv`` builds its robot with no noise, so without
#: this every fresh layout would start the arm at exactly the same pose.
START_JOINT_NOISE = 0.02


def rotate_180(image: np.ndarray) -> np.ndarray:
    """Rotate a rendered frame by 180 degrees, as OpenVLA's training data was.

    robosuite renders OpenGL-style (upside down); LU ``get_libero_image`` does
    ``img[::-1, ::-1]``: rows *and* columns.
    """
    return image[::-1, ::-1]


def jpeg_round_trip(image: np.ndarray, quality: int = 95) -> np.ndarray:
    """Encode and decode as JPEG, as the RLDS dataset builder stored frames (LU ``resize_image``).

    TensorFlow's ``encode_jpeg`` (quality 95, 4:2:0 chroma) and Pillow's encoder at
    quality 95 give the same pixels once decoded; the decoder is what differs:
    TensorFlow's ``decode_image`` uses libjpeg's fast integer DCT (IFAST) with
    fancy upsampling, which Pillow cannot select. ``simplejpeg`` (libjpeg-turbo)
    can, and decodes exactly as TensorFlow does (measured against TensorFlow 2.21:
    0 grey levels apart on every pixel of five LIBERO renders,
    ``tests/test_image_path.py``; Pillow's own decoder was 1.2 off on average, up to 14).
    """
    import simplejpeg

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=quality)
    return simplejpeg.decode_jpeg(buffer.getvalue(), colorspace="RGB", fastdct=True, fastupsample=False)


def _lanczos3(x: np.ndarray) -> np.ndarray:
    """TensorFlow's Lanczos-3 kernel (``sampling_kernels.h``), in float32: sinc(x) sinc(x / 3) on [-3, 3]."""
    x = np.abs(x.astype(np.float32))
    pi, radius = np.float32(3.14159265359), np.float32(3.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = radius * np.sin(pi * x) * np.sin(pi * x / radius) / (pi * pi * x * x)
    value = np.where(x <= np.float32(1e-3), np.float32(1.0), value)
    return np.where(x > radius, np.float32(0.0), value).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _lanczos3_spans(output_size: int, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output pixel along one axis: the first input pixel it reads and the normalised weights.

    TensorFlow's ``ComputeSpansCore`` (``scale_and_translate_op.cc``) with
    ``antialias=True``: when shrinking, the kernel is stretched by the inverse
    scale, so it low-pass filters as it interpolates.
    """
    inv_scale = np.float32(1.0) / (np.float32(output_size) / np.float32(input_size))
    kernel_scale = max(inv_scale, np.float32(1.0))
    radius = np.float32(3.0) * kernel_scale
    span = min(2 * int(np.ceil(np.float32(3.0) * kernel_scale)) + 1, input_size)
    starts = np.zeros(output_size, dtype=np.int64)
    weights = np.zeros((output_size, span), dtype=np.float32)
    for x in range(output_size):
        sample = (np.float32(x) + np.float32(0.5)) * inv_scale
        start = min(max(int(np.ceil(sample - radius - np.float32(0.5))), 0), input_size - 1)
        end = min(max(int(np.floor(sample + radius - np.float32(0.5))), 0), input_size - 1) + 1
        w = _lanczos3((np.arange(start, end, dtype=np.float32) + np.float32(0.5) - sample) / kernel_scale)
        total = np.float32(0.0)
        for value in w:  # summed in order, in float32, as TensorFlow does
            total = np.float32(total + value)
        weights[x, : end - start] = w * (np.float32(1.0) / total)
        starts[x] = start
    return starts, weights


def _gather(image: np.ndarray, starts: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """Weighted sums along ``axis``, accumulated tap by tap in float32 (``GatherRows`` / ``GatherColumns``).

    Each tap is one float32 product and one float32 sum per value, in TensorFlow's order. The
    image is read as rows of values (every other axis flattened), so that each tap multiplies
    whole rows by one weight; a uint8 image is read as it is (uint8 to float32 is exact).
    """
    moved = np.moveaxis(np.asarray(image), axis, 0)
    if not moved.flags.c_contiguous:
        moved = np.ascontiguousarray(moved)
    flat = moved.reshape(moved.shape[0], -1)
    out = np.zeros((len(starts), flat.shape[1]), dtype=np.float32)
    term = np.empty_like(out)
    for k in range(weights.shape[1]):
        rows = np.minimum(starts + k, flat.shape[0] - 1)  # beyond the edge the weight is 0
        if flat.dtype == np.float32:
            np.take(flat, rows, axis=0, out=term)
            term *= weights[:, k, None]
        else:
            np.multiply(flat[rows], weights[:, k, None], out=term)
        out += term
    return np.moveaxis(out.reshape(len(starts), *moved.shape[1:]), 0, axis)


def resize_lanczos(image: np.ndarray, size: int = MODEL_INPUT_SIZE, as_float: bool = False) -> np.ndarray:
    """Antialiased Lanczos-3 resize to ``size`` x ``size``, rounded and clipped to uint8 (LU ``resize_image``).

    The same computation as ``tf.image.resize(method="lanczos3", antialias=True)``
    (``ScaleAndTranslate``: rows, then columns, float32 throughout), then
    ``round`` and ``clip``. Measured against TensorFlow 2.21 on five LIBERO
    renders (``tests/test_image_path.py``): at most 1 grey level apart after
    rounding (a float32 sum landing on the other side of .5; mean 0.00003),
    1.2e-4 before. ``as_float`` returns the float32 result before rounding.
    """
    source = np.asarray(image)
    if source.dtype != np.uint8:  # uint8 is read as it is: _gather's products are float32 either way
        source = source.astype(np.float32)
    rows = _gather(source, *_lanczos3_spans(size, source.shape[0]), axis=0)
    resized = _gather(rows, *_lanczos3_spans(size, source.shape[1]), axis=1)
    if as_float:  # TensorFlow's float32 result, before rounding
        return resized
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def center_crop(image: np.ndarray, area: float = CENTER_CROP_AREA) -> np.ndarray:
    """Crop the centre (sides ``sqrt(area)`` of the image) and resize back, as OU ``crop_and_resize`` does.

    ``tf.image.convert_image_dtype`` to float32 in [0, 1], ``tf.image.crop_and_resize``
    (bilinear, sampling the box corners exactly: sample ``i`` of ``n`` sits at
    ``y1 (H - 1) + i (y2 - y1) (H - 1) / (n - 1)``), then ``convert_image_dtype``
    back, which multiplies by 255.5 and truncates. Measured against TensorFlow
    2.21 on five LIBERO renders: identical. (A pixel crop with Pillow's
    bilinear resize, this project's earlier path, was 3.9 grey levels off on
    average, up to 147.)
    """
    image = np.asarray(image)
    top, bottom, y_lerp, left, right, x_lerp = _crop_samples(image.shape[0], image.shape[1], float(area))
    # Interpolate along x on every source row once, then along y: per output pixel the same float32
    # operations as crop_and_resize's top/bottom/out formula (gathering commutes with the scaling),
    # written in place to spare the temporaries: a + (b - a) * t, in that order.
    scaled = image.astype(np.float32)
    scaled *= np.float32(1.0 / 255.0)
    at_left, rows = np.take(scaled, left, axis=1), np.take(scaled, right, axis=1)
    rows -= at_left
    rows *= x_lerp
    rows += at_left
    upper_row, cropped = rows[top], rows[bottom]
    cropped -= upper_row
    cropped *= y_lerp
    cropped += upper_row
    np.clip(cropped, 0, 1, out=cropped)
    cropped *= np.float32(255.5)
    return cropped.astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _crop_samples(height: int, width: int, area: float):
    """Where ``crop_and_resize`` samples for a centred box of ``area`` (output the input's size)."""
    side = np.float32(np.clip(np.sqrt(np.float32(area)), 0, 1))
    low = np.float32((np.float32(1) - side) / np.float32(2))
    high = np.float32(low + side)

    def samples(extent: int, n: int):
        step = np.float32((high - low) * np.float32(extent - 1) / np.float32(n - 1))
        where = (low * np.float32(extent - 1) + np.arange(n, dtype=np.float32) * step).astype(np.float32)
        lower = np.floor(where).astype(np.int64)
        return lower, np.ceil(where).astype(np.int64), (where - lower.astype(np.float32)).astype(np.float32)

    top, bottom, y_lerp = samples(height, height)
    left, right, x_lerp = samples(width, width)
    return top, bottom, y_lerp[:, None, None], left, right, x_lerp[None, :, None]


def prepare_image(frame: np.ndarray, flip_image: bool = True) -> np.ndarray:
    """Turn a raw 256 x 256 render into the 224 x 224 image handed to the policy.

    LU ``get_libero_image`` rotates, LU ``resize_image`` does the JPEG round
    trip and the Lanczos resize, each reproduced from TensorFlow's own kernels. ``flip_image=False`` is the chapter's
    ``no_flip`` drill: the only change is the missing rotation. The centre
    crop, when the checkpoint wants it, is the policy's job (OU ``get_vla_action``).
    With the crop, at most 1 grey level from OpenVLA's TensorFlow path on five
    LIBERO renders (mean 0.00003; the earlier Pillow path: mean 4.3, max 144).
    """
    image = rotate_180(frame) if flip_image else frame
    return resize_lanczos(jpeg_round_trip(image))


# --- Episode timing ------------------------------------------------------------

#: RLE: for the first 10 steps objects are still falling into place; send this.
NUM_WAIT_STEPS = 10
WAIT_ACTION = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)

#: RLE ``max_steps`` per suite (steps after the wait, from the longest demo).
MAX_STEPS = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
#: Tasks per suite (LIBERO's benchmark: four evaluation suites of 10 tasks, and LIBERO-90).
N_TASKS = {"libero_spatial": 10, "libero_object": 10, "libero_goal": 10, "libero_10": 10, "libero_90": 90}

#: RLE: 50 trials per task; episode ``i`` starts from official initial state ``i``.
NUM_INIT_STATES = 50

#: RU ``set_seed_everywhere(7)`` is the evaluation default seed in OpenVLA.
OPENVLA_EVAL_SEED = 7

# --- Action tokenizer and detokenizer -----------------------------------------

ACTION_DIM = 7
#: AT: 256 uniform bins over [-1, 1]; 255 bin centres.
N_ACTION_BINS = 256
BINS = np.linspace(-1.0, 1.0, N_ACTION_BINS)
BIN_CENTERS = (BINS[:-1] + BINS[1:]) / 2.0
#: MP: the gripper is not normalised (mask false); translations and rotations are.
ACTION_MASK = (True, True, True, True, True, True, False)
#: MP ``predict_action``: token 29871 (Llama's empty "▁") is appended to the
#: prompt when it is not already last.
LLAMA_EMPTY_TOKEN_ID = 29871


def tokens_to_normalized(token_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """OpenVLA's detokenizer: action token ids -> bin centres in [-1, 1] (MP ``predict_action``).

    Any id below the action range (a text token) clips to the top bin: the
    detokenizer has no notion of "not an action".
    """
    discretized = vocab_size - np.asarray(token_ids, dtype=np.int64)
    discretized = np.clip(discretized - 1, 0, BIN_CENTERS.shape[0] - 1)
    return BIN_CENTERS[discretized]


def normalized_to_tokens(normalized: np.ndarray, vocab_size: int) -> np.ndarray:
    """OpenVLA's action tokenizer: values in [-1, 1] -> the last 256 vocabulary ids (AT ``__call__``)."""
    clipped = np.clip(np.asarray(normalized, dtype=np.float64), -1.0, 1.0)
    return vocab_size - np.digitize(clipped, BINS)


def normalize_actions(actions: np.ndarray, q01: np.ndarray, q99: np.ndarray, mask=ACTION_MASK) -> np.ndarray:
    """Training-time bounds-q99 normalisation (prismatic ``normalize_action_and_proprio``)."""
    actions = np.asarray(actions, dtype=np.float64)
    scaled = np.clip(2.0 * (actions - q01) / (q99 - q01 + 1e-8) - 1.0, -1.0, 1.0)
    return np.where(np.asarray(mask), scaled, actions)


def unnormalize_actions(normalized: np.ndarray, q01, q99, mask=ACTION_MASK) -> np.ndarray:
    """MP ``predict_action``: ``0.5 * (x + 1) * (q99 - q01) + q01`` where masked, pass-through elsewhere."""
    normalized = np.asarray(normalized, dtype=np.float64)
    q01, q99 = np.asarray(q01, dtype=np.float64), np.asarray(q99, dtype=np.float64)
    return np.where(np.asarray(mask), 0.5 * (normalized + 1.0) * (q99 - q01) + q01, normalized)


def postprocess_gripper(action: np.ndarray) -> np.ndarray:
    """Model gripper (1 = open, in [0, 1]) -> LIBERO gripper (-1 = open, +1 = close).

    RU ``normalize_gripper_action(binarize=True)`` maps [0, 1] to [-1, 1] and
    takes the sign; RU ``invert_gripper_action`` flips it for LIBERO.
    """
    action = np.array(action, dtype=np.float64, copy=True)
    action[-1] = -np.sign(2.0 * action[-1] - 1.0)
    return action


def gripper_to_training(env_gripper: float) -> float:
    """LIBERO gripper (-1 open, +1 close) -> training convention (1 open, 0 close)."""
    return float((1.0 - np.sign(env_gripper)) / 2.0)


# --- Statistics keys ------------------------------------------------------------


def resolve_unnorm_key(requested: str, available) -> str:
    """Pick the statistics key as RLE does, raising OpenVLA's own error text.

    RLE: ``unnorm_key = task_suite_name``; if that is absent but
    ``f"{name}_no_noops"`` is present, use it. MP then asserts the key exists.
    """
    keys = sorted(available)
    if requested in keys:
        return requested
    if f"{requested}_no_noops" in keys:
        return f"{requested}_no_noops"
    raise KeyError(
        f"The `unnorm_key` you chose ({requested!r}) is not in the set of available dataset "
        f"statistics, please choose from: {keys}"
    )


#: OpenVLA's published statistics for Bridge V2 (``bridge_orig``), from the
#: openvla-7b base checkpoint's ``norm_stats`` as copied in public code
#: (e.g. microsoft/Magma). Actions are in metres and radians.
BRIDGE_ORIG_ACTION_STATS = {
    "q01": [-0.02872725307941437, -0.04170349963009357, -0.026093858778476715,
            -0.08092105075716972, -0.09288699507713317, -0.20718276381492615, 0.0],
    "q99": [0.028309678435325586, 0.040855254605412394, 0.040161586627364146,
            0.08192047759890528, 0.07792850524187081, 0.20382574498653397, 1.0],
    "mean": [0.0002334194869035855, 0.00013004911306779832, -0.00012762474943883717,
             -0.0001556558854645118, -0.0004039328487124294, 0.00023557482927571982, 0.5764579176902771],
    "std": [0.009765930473804474, 0.013689135201275349, 0.012667362578213215,
            0.028534092009067535, 0.030637972056865692, 0.07691419124603271, 0.4973701536655426],
    "mask": list(ACTION_MASK),
}

#: openvla-7b-finetuned-libero-object's ``libero_object_no_noops`` action
#: statistics (454 trajectories, 66984 transitions); for reference and tests.
OPENVLA_LIBERO_OBJECT_ACTION_STATS = {
    "q01": [-0.5383928418159485, -0.8758928775787354, -0.9375, -0.06964285671710968,
            -0.11678571254014969, -0.15964286029338837, 0.0],
    "q99": [0.8464285731315613, 0.84375, 0.9375, 0.08142857253551483,
            0.14892856776714325, 0.0867857113480568, 1.0],
    "mask": list(ACTION_MASK),
}
