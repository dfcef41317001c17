"""The teaching model: how the embedded TeachVLA checkpoint is built and trained.

The checkpoint itself (config, modeling and processing code, weights,
statistics, tokenizer, model card) lives in ``vla_ch2/checkpoints/`` and is
loaded like any OpenVLA checkpoint. This module makes it:

1. :func:`text_corpus` and :func:`train_tokenizer`: a BPE tokenizer whose last
   256 ids become the action tokens (OpenVLA overwrites Llama 2's 256 least
   used tokens the same way);
2. :func:`compute_statistics`: q01/q99 of the demonstrations' actions, stored
   as ``libero_object_no_noops`` beside OpenVLA's published ``bridge_orig``;
3. :func:`train`: behaviour cloning on action tokens, co-trained with a
   language-modelling loss on plain text (the trunk is a language model, as
   OpenVLA's Llama 2 is);
4. :func:`export_checkpoint`: writes the Hugging Face directory.

``python -m vla_ch2.factory.teaching_model --help`` lists the commands; the model card
gives the exact ones used for the shipped weights.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from vla_ch2 import conventions as C

CHECKPOINT_DIR = Path(__file__).parents[1] / "checkpoints" / "teaching-vla-libero-object"
SUITE_KEY = "libero_object_no_noops"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
#: The model's sizes and options that a run records and an export writes (besides the vocabulary).
MODEL_SIZES = ("image_size", "patch_size", "vision_dim", "d_model", "n_layers", "n_heads", "mlp_ratio",
               "max_text_len", "stem_channels", "gelu", "dropout")


def load_modeling(checkpoint_dir: Path = CHECKPOINT_DIR, name: str = "modeling_teachvla"):
    """Import the checkpoint's own ``modeling_teachvla.py`` (one source for both training and inference).

    ``name="processing_teachvla"`` imports its processor instead (the image view
    demonstrations are stored in is the one the processor gives the model).
    """
    spec = importlib.util.spec_from_file_location(name, Path(checkpoint_dir) / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- 1. Tokenizer ---------------------------------------------------------------


def libero_instructions() -> list[str]:
    """Language of every LIBERO task in every suite (read from the installed benchmark)."""
    from vla_ch2.env import _import_libero

    benchmark, _, _ = _import_libero()
    texts = []
    for name in ("libero_object", "libero_spatial", "libero_goal", "libero_10", "libero_90"):
        suite = benchmark.get_benchmark_dict()[name]()
        texts += [suite.get_task(i).language for i in range(suite.n_tasks)]
    return texts


def stdlib_text(max_chars: int = 1_500_000) -> list[str]:
    """Plain English from the docstrings of Python's standard library, a free offline corpus."""
    import warnings

    texts, total = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(sys.stdlib_module_names):
            if name.startswith("_") or name in ("antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"):
                continue
            try:
                module = __import__(name)
            except BaseException:  # noqa: BLE001 - some modules refuse to import here
                continue
            for obj in [module] + [getattr(module, n, None) for n in dir(module)[:200]]:
                doc = getattr(obj, "__doc__", None)
                if isinstance(doc, str) and len(doc) > 40 and getattr(obj, "__module__", name) == name:
                    paragraph = " ".join(doc.split())
                    texts.append(paragraph)
                    total += len(paragraph)
            if total > max_chars:
                break
    return texts


def train_tokenizer(texts: list[str], vocab_size: int = 2048):
    """A BPE tokenizer with Llama-style word-start markers ("▁") and a BOS prefix."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tokenizer


def write_text(path: Path, text: list[str], instructions: list[str]) -> None:
    """Language-modelling data: general text plus task descriptions, never prompts."""
    Path(path).write_text("\n".join(text + instructions) + "\n", encoding="utf-8")


# --- 2. Statistics -----------------------------------------------------------------


def compute_statistics(actions: np.ndarray, n_trajectories: int) -> dict:
    """OpenVLA's ``dataset_statistics.json`` entry for these actions (training convention gripper)."""
    actions = np.asarray(actions, dtype=np.float64)
    return {
        "action": {
            "mean": actions.mean(0).tolist(),
            "std": actions.std(0).tolist(),
            "max": actions.max(0).tolist(),
            "min": actions.min(0).tolist(),
            "q01": np.quantile(actions, 0.01, axis=0).tolist(),
            "q99": np.quantile(actions, 0.99, axis=0).tolist(),
            "mask": list(C.ACTION_MASK),
        },
        "num_transitions": int(actions.shape[0]),
        "num_trajectories": int(n_trajectories),
    }


def to_training_convention(env_actions: np.ndarray) -> np.ndarray:
    """Env actions (gripper -1 open / +1 close) -> training convention (gripper 1 open / 0 close)."""
    actions = np.array(env_actions, dtype=np.float64, copy=True)
    actions[:, 6] = (1.0 - np.sign(actions[:, 6])) / 2.0
    return actions


# --- 3. Dataset and training -----------------------------------------------------


def relabel_holds(env_actions: np.ndarray, episodes: np.ndarray, hold_steps: int = 5) -> tuple[np.ndarray, int]:
    """Label the still part of each grasp with the action that ends it.

    The expert closes the gripper and holds still for a fixed number of steps
    (a counter the camera cannot see), then lifts. Frames after the fingers have
    closed look alike whether the count is at 6 or at 14, so cloning them as
    "hold" teaches a policy to hold forever. From ``hold_steps`` into each hold
    on, the label becomes the expert's next (lift) action: a label that depends
    only on what the image shows, as in DAgger-style relabelling.
    Returns the new actions and how many labels changed.
    """
    actions = np.array(env_actions, dtype=np.float64, copy=True)
    holding = (actions[:, 6] > 0) & (np.linalg.norm(actions[:, :3], axis=1) == 0.0)
    changed, i, n = 0, 0, len(actions)
    while i < n:
        if not holding[i]:
            i += 1
            continue
        j = i
        while j < n and holding[j] and episodes[j] == episodes[i]:
            j += 1
        if j < n and episodes[j] == episodes[i] and j - i > hold_steps:
            actions[i + hold_steps : j] = actions[j]
            changed += j - i - hold_steps
        i = j
    return actions, changed


def collection_record(npz_path: Path) -> dict:
    """The collection summary beside a demonstration file (``task_<id>.json``), or ``{}`` where there is none."""
    meta = Path(npz_path).with_suffix(".json")
    return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}


def frame_spacing(record: dict) -> float:
    """Simulator steps between two stored frames, from a :func:`collection_record` (``keep_every``, thinning)."""
    return record.get("config", {}).get("keep_every", 1) / record.get("thinned", {}).get("fraction", 1.0)


def _collection_key(npz_path: Path, record: dict) -> tuple:
    """Which collection a demonstration file comes from (halves made by thinning share it; recoveries do not)."""
    config = record.get("config", {})
    return Path(npz_path).name, config.get("seed"), bool(config.get("recovery", False))


def still_tail(env_actions: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """Mask of the frames that end a demonstration holding still with the gripper open (after the release).

    They are the only "open and still" labels in the data, and they teach a
    policy a resting state to fall into wherever a scene looks finished.
    """
    actions = np.asarray(env_actions)
    still_open = (actions[:, 6] < 0) & (np.linalg.norm(actions[:, :3], axis=1) == 0.0)
    tail = np.zeros(len(actions), dtype=bool)
    for i in range(len(actions) - 1, -1, -1):
        last = i == len(actions) - 1 or episodes[i + 1] != episodes[i]
        tail[i] = still_open[i] and (last or tail[i + 1])
    return tail


def load_dataset(data_dirs, tokenizer, vocab_size: int, hold_steps: int | None = 7, holdout: int = 0,
                 drop_still_tail: bool = False, statistics: dict | None = None) -> dict:
    """All demos as JPEG frames, prompt token ids and action token ids.

    ``data_dirs`` is one folder of ``task_<id>.npz`` files or several (for
    example the two halves :func:`~vla_ch2.factory.demos.thin_task_demos`
    makes). ``hold_steps`` is counted in simulator steps; for demonstrations
    stored every few steps it becomes the matching number of frames. The last
    ``holdout`` demonstrations of every task are marked ``held_out`` (fresh
    layouts the model does not train on, to measure how it generalises).
    ``drop_still_tail`` leaves out each demonstration's still frames after the
    release (:func:`still_tail`). ``statistics`` (a ``dataset_statistics.json``
    entry) bins the actions with another model's q01/q99 instead of their own:
    a fine-tune must keep the bins its starting weights learnt.
    """
    from vla_ch2.factory.demos import load_task_demos

    if isinstance(data_dirs, (str, Path)):
        data_dirs = [data_dirs]
    paths = sorted((p for d in data_dirs for p in Path(d).glob("task_*.npz")), key=lambda p: (p.name, str(p)))
    frames, prompts, tokens, all_actions, held, n_traj = [], [], [], [], [], 0
    prompt_cache, relabelled, counted, views = {}, 0, set(), {}
    for path in paths:
        demo, record = load_task_demos(path), collection_record(path)
        view = record.get("config", {}).get("view_box")
        views.setdefault(None if view is None else tuple(float(b) for b in view), path)
        if drop_still_tail:
            keep = ~still_tail(demo["actions"], demo["episodes"])
            demo = {**demo, "frames": [f for f, k in zip(demo["frames"], keep) if k], "actions": demo["actions"][keep],
                    "episodes": demo["episodes"][keep]}
        env_actions = demo["actions"]
        if hold_steps is not None:
            hold_frames = max(1, int(round(hold_steps / frame_spacing(record))))
            env_actions, changed = relabel_holds(env_actions, demo["episodes"], hold_frames)
            relabelled += changed
        actions = to_training_convention(env_actions)
        all_actions.append(actions)
        episodes = sorted(set(demo["episodes"].tolist()))
        collection = _collection_key(path, record)
        if collection not in counted:  # the halves of one collection hold the same demonstrations
            counted.add(collection)
            n_traj += len(episodes)
        held.append(np.isin(demo["episodes"], episodes[len(episodes) - holdout:] if holdout else []))
        language = demo["language"]
        if language not in prompt_cache:
            prompt = C.CANONICAL_PROMPT.format(instruction=language.lower())
            prompt_cache[language] = tokenizer.encode(prompt).ids
        frames += demo["frames"]
        prompts += [prompt_cache[language]] * len(actions)
    if not frames:
        raise FileNotFoundError(f"{', '.join(map(str, data_dirs))}: no task_*.npz demonstrations "
                                "(run `python -m vla_ch2.factory.teaching_model demos`)")
    if len(views) > 1:
        seen = "; ".join(f"{path} stores {'the whole image' if v is None else f'view box {list(v)}'}"
                         for v, path in views.items())
        raise ValueError(f"the demonstrations mix image views ({seen}): a model sees one view; train on "
                         "collections made with the same --view-box")
    actions = np.concatenate(all_actions)
    held_out = np.concatenate(held)
    stats = statistics if statistics is not None else compute_statistics(actions[~held_out], n_traj)
    a = stats["action"]
    normalized = C.normalize_actions(actions, np.asarray(a["q01"]), np.asarray(a["q99"]))
    tokens = C.normalized_to_tokens(normalized, vocab_size)
    view_box = next(iter(views))
    return {"frames": frames, "prompts": prompts, "tokens": tokens.astype(np.int64), "stats": stats,
            "relabelled": relabelled, "held_out": held_out, "view_box": None if view_box is None else list(view_box)}


def random_resized_crops(images, area: float = C.CENTER_CROP_AREA, generator=None, area_min: float | None = None,
                         centred: bool = False):
    """OpenVLA's LIBERO training augmentation on a batch: random square crops of 90 % area, resized back.

    ``images`` is a float tensor (B, 3, H, W); the crop is an affine resampling
    (bilinear), done on the training device. ``area_min`` draws each crop's
    area from [area_min, area] instead (a stronger augmentation than
    OpenVLA's); ``centred=True`` is evaluation's centre crop.
    """
    import torch
    import torch.nn.functional as F

    b = images.shape[0]
    if area_min is None:
        scale = torch.full((b, 1), math.sqrt(area), device=images.device)
    else:
        u = torch.rand(b, 1, generator=generator, device=images.device)
        scale = torch.sqrt(area_min + (area - area_min) * u)
    shift = (1.0 - scale) * (2.0 * torch.rand(b, 2, generator=generator, device=images.device) - 1.0)
    if centred:
        shift = torch.zeros_like(shift)
    theta = torch.zeros(b, 2, 3, device=images.device)
    theta[:, 0, 0] = scale[:, 0]
    theta[:, 1, 1] = scale[:, 0]
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


#: OpenVLA's colour augmentation for LIBERO fine-tuning (``image_aug=True``: random brightness 0.2,
#: contrast and saturation 0.8 to 1.2, hue 0.05, after the 90 % random crop). Source: OpenVLA,
#: ``prismatic/vla/datasets/datasets.py``, ``RLDSDataset``.
COLOR_JITTER = {"brightness": 0.2, "contrast": (0.8, 1.2), "saturation": (0.8, 1.2), "hue": 0.05}


def color_jitter(images, jitter: dict = COLOR_JITTER):
    """Random brightness, contrast, saturation and hue per image of a (B, 3, H, W) batch in [0, 1]."""
    import torch

    b, device = images.shape[0], images.device

    def uniform(low, high):
        return low + (high - low) * torch.rand(b, 1, 1, 1, device=device)

    x = images + uniform(-jitter["brightness"], jitter["brightness"])
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * uniform(*jitter["contrast"]) + mean
    grey = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]).expand_as(x)
    x = grey + (x - grey) * uniform(*jitter["saturation"])
    # Hue: rotate the chroma plane of YIQ by a fraction of a full turn.
    angle = uniform(-jitter["hue"], jitter["hue"])[:, 0, 0, 0] * 2 * math.pi
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(b, 3, 3, device=device)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    matrix = torch.linalg.inv(to_yiq) @ rot @ to_yiq
    x = torch.einsum("bij,bjhw->bihw", matrix, x)
    return x.clamp_(0.0, 1.0)


def _sequences(prompts: list[list[int]], tokens: np.ndarray, empty_id: int, pad_id: int, dims=None):
    """[BOS + prompt + "▁" + 7 action tokens] rows, right-padded, with labels on the action tokens only
    (``dims``: only on these action dimensions; the others are still fed, as context, but not learnt)."""
    import torch

    rows = [p + [empty_id] + t.tolist() for p, t in zip(prompts, tokens)]
    length = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    for b, r in enumerate(rows):
        input_ids[b, : len(r)] = torch.tensor(r)
        labels[b, len(r) - C.ACTION_DIM : len(r)] = torch.tensor(r[-C.ACTION_DIM :])
        for d in range(C.ACTION_DIM):
            if dims is not None and d not in dims:
                labels[b, len(r) - C.ACTION_DIM + d] = -100
    return input_ids, labels


def _text_chunks(text_path: Path, tokenizer, length: int, eos_id: int, pad_id: int):
    """Plain-text lines cut into chunks of ``length`` tokens, for the language-modelling loss."""
    import torch

    chunks = []
    for line in Path(text_path).read_text(encoding="utf-8").splitlines():
        ids = tokenizer.encode(line).ids + [eos_id]
        for i in range(0, len(ids), length):
            if len(ids[i : i + length]) >= 8:
                chunks.append(ids[i : i + length])
    ids = torch.full((len(chunks), length), pad_id, dtype=torch.long)
    labels = torch.full((len(chunks), length), -100, dtype=torch.long)
    for b, c in enumerate(chunks):
        ids[b, : len(c)] = torch.tensor(c)
        labels[b, : len(c)] = torch.tensor(c)
    return ids, labels


def train(
    data_dir: Path,
    out_dir: Path,
    tokenizer_path: Path,
    text_path: Path | None,
    steps: int = 6000,
    batch_size: int = 256,
    lr: float = 1e-3,
    text_fraction: float = 0.25,
    seed: int = 0,
    device: str | None = None,
    config_overrides: dict | None = None,
    options: dict | None = None,
) -> dict:
    """Behaviour cloning on action tokens, co-trained on plain text; saves ``weights.pt`` + ``train.json``.

    ``options`` (all optional): ``holdout`` demonstrations per task kept out of
    training and scored every 500 steps (then ``weights.pt`` holds the
    weights that scored best on them, and ``train.json`` says at which step);
    ``jitter`` (OpenVLA's colour augmentation, :data:`COLOR_JITTER`);
    ``crop_area_min`` (random crop areas from this to 90 %); ``weight_decay``;
    ``max_seconds`` (stop early, keeping what was scored); ``hold_steps`` (see
    :func:`relabel_holds`, default 7 simulator steps); ``drop_still_tail``; ``seed``
    (overrides the argument); ``ema`` (a decay such as 0.999: ``weights.pt`` then holds
    an exponential moving average of the weights and ``weights_raw.pt`` the last
    step's own; the decay is constant from the first step, so after 7000 steps the
    initial weights keep 0.999**7000, under 0.1 %, of the average; not with ``holdout``);
    ``init`` (a checkpoint directory: fine-tune from its weights, with its sizes and its
    action statistics, so that every bin keeps its meaning); ``loss_dims`` (the action
    dimensions whose tokens are learnt, e.g. ``[0, 1, 2, 6]`` to leave rotation as it is).
    """
    import torch
    import torch.nn.functional as F
    from tokenizers import Tokenizer

    from vla_ch2.factory.demos import decode_frame

    options = dict(options or {})
    if options.get("ema") and options.get("holdout"):
        raise ValueError("options 'ema' and 'holdout' together: the held-out score picks a step of the raw weights, "
                         "not of their average; drop one of them")
    seed = int(options.get("seed", seed))  # several candidates of one device call differ by their options alone
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    modeling = load_modeling()
    init = Path(options["init"]) if options.get("init") else None
    statistics = None
    if init is not None:  # fine-tune: the starting checkpoint's sizes, vocabulary and action statistics
        if not (init / "model.safetensors").is_file():
            raise FileNotFoundError(f"option init: {init} holds no model.safetensors; give a checkpoint directory")
        stored = json.loads((init / "config.json").read_text())
        if tokenizer.get_vocab_size() != stored["vocab_size"]:
            raise ValueError(f"option init: {init} has another vocabulary than {tokenizer_path}")
        config_overrides = config_overrides or {k: stored[k] for k in MODEL_SIZES}
        statistics = json.loads((init / "dataset_statistics.json").read_text())[SUITE_KEY]
        init_view = json.loads((init / "preprocessor_config.json").read_text()).get("view_box")
    cfg = modeling.TeachVLAConfig(vocab_size=tokenizer.get_vocab_size(), **(config_overrides or {}))
    holdout = int(options.get("holdout", 0))
    data = load_dataset(data_dir, tokenizer, cfg.vocab_size, hold_steps=options.get("hold_steps", 7), holdout=holdout,
                        drop_still_tail=bool(options.get("drop_still_tail", False)), statistics=statistics)
    if init is not None and data["view_box"] != init_view:
        raise ValueError(f"option init: {init} sees view box {init_view} but the demonstrations store "
                         f"{data['view_box']} (None is the whole image); fine-tune on frames in the model's own view")
    n = len(data["frames"])
    train_idx = torch.from_numpy(np.flatnonzero(~data["held_out"]))
    held_idx = torch.from_numpy(np.flatnonzero(data["held_out"]))
    print(f"[train] {n} frames ({data['relabelled']} hold labels relabelled); decoding images", flush=True)
    images = torch.from_numpy(np.stack([decode_frame(f) for f in data["frames"]])).permute(0, 3, 1, 2).contiguous()
    images = images.to(device)  # uint8 on the device; crops and scaling happen per batch
    input_ids, labels = _sequences(data["prompts"], data["tokens"], tokenizer.token_to_id("▁"), cfg.pad_token_id,
                                   options.get("loss_dims"))
    input_ids, labels = input_ids.to(device), labels.to(device)
    text_ids = text_labels = None
    if text_path is not None and text_fraction > 0:
        text_ids, text_labels = _text_chunks(text_path, tokenizer, cfg.max_text_len, cfg.eos_token_id, cfg.pad_token_id)
        text_ids, text_labels = text_ids.to(device), text_labels.to(device)
    n_text = 0 if text_ids is None else len(text_ids)
    print(f"[train] {n_text} text chunks", flush=True)

    core = modeling.TeachVLACore(cfg)
    if init is not None:  # fine-tune: start from a checkpoint's weights (its sizes must be cfg's)
        from safetensors.torch import load_file

        state = {k.removeprefix("core."): v for k, v in load_file(str(init / "model.safetensors")).items()}
        core.load_state_dict(state)  # copies in place: the LM head stays tied to the embedding
    core = core.to(device)
    n_params = sum(p.numel() for p in core.parameters())
    opt = torch.optim.AdamW(core.parameters(), lr=lr, weight_decay=float(options.get("weight_decay", 0.01)),
                            betas=(0.9, 0.95))
    held_idx_dev = held_idx.to(device)

    def score_held_out() -> dict:
        """Teacher-forced action tokens on the held-out demonstrations, centre-cropped as at evaluation."""
        core.eval()
        exact, error, count = 0.0, 0.0, 0
        with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                                             enabled=device.startswith("cuda")):
            for chunk in held_idx_dev.split(1024):
                pixels = random_resized_crops(images[chunk].float().div_(255.0), centred=True).sub_(0.5).div_(0.5)
                lab = labels[chunk][:, 1:]
                pred = core(input_ids[chunk][:, :-1], pixels)[:, cfg.n_patches :].argmax(-1)
                mask = lab != -100
                exact += (pred[mask] == lab[mask]).float().sum().item()
                error += (pred[mask] - lab[mask]).abs().float().sum().item()
                count += int(mask.sum().item())
        return {"held_token_acc": round(exact / count, 4), "held_bin_error": round(error / count, 3)}

    best, planned_steps = None, steps
    ema_decay = float(options.get("ema", 0.0))
    params = list(core.parameters())
    ema = [p.detach().float().clone() for p in params] if ema_decay else None
    # OneCycleLR divides by zero when its warm-up is exactly one step (20 steps at 5 %): warm up for two then.
    warm_up = 0.05 if not math.isclose(0.05 * steps, 1.0) else 2.0 / steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=warm_up)
    start, log = time.time(), []
    for step in range(steps):
        if time.time() - start > float(options.get("max_seconds", math.inf)):
            steps = step + 1  # out of time: score this step as the last one
        core.train()
        idx = train_idx[torch.randint(0, len(train_idx), (batch_size,), generator=gen)].to(device)
        pixels = random_resized_crops(images[idx].float().div_(255.0), area_min=options.get("crop_area_min"))
        if options.get("jitter"):
            pixels = color_jitter(pixels)
        pixels = pixels.sub_(0.5).div_(0.5)
        ids, lab = input_ids[idx], labels[idx]
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            logits = core(ids[:, :-1], pixels)[:, cfg.n_patches :]
            loss_action = F.cross_entropy(logits.reshape(-1, cfg.vocab_size).float(), lab[:, 1:].reshape(-1))
            loss_text = torch.zeros((), device=device)
            if text_ids is not None:
                k = max(1, int(batch_size * text_fraction))
                tidx = torch.randint(0, n_text, (k,), generator=gen).to(device)
                tlogits = core(text_ids[tidx, :-1])
                loss_text = F.cross_entropy(tlogits.reshape(-1, cfg.vocab_size).float(), text_labels[tidx, 1:].reshape(-1))
            loss = loss_action + loss_text
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(core.parameters(), 1.0)
        opt.step()
        sched.step()
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach().float() for p in params], 1.0 - ema_decay)
        if step % 250 == 0 or step >= steps - 1:
            with torch.no_grad():
                mask = lab[:, 1:] != -100
                acc = (logits.argmax(-1)[mask] == lab[:, 1:][mask]).float().mean().item()
            entry = {"step": step, "loss_action": round(loss_action.item(), 4), "loss_text": round(loss_text.item(), 4),
                     "token_acc": round(acc, 4), "seconds": round(time.time() - start, 1)}
            if len(held_idx) and (step % 500 == 0 or step >= steps - 1):
                entry.update(score_held_out())
                if best is None or entry["held_bin_error"] < best[0]:
                    best = (entry["held_bin_error"], step, {k: v.detach().float().cpu().clone()
                                                           for k, v in core.state_dict().items()})
            log.append(entry)
            print(f"[train] {entry}", flush=True)
        if step >= steps - 1:
            break
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu() for k, v in core.state_dict().items()} if best is None else best[2]
    if ema is not None:
        torch.save(state, out_dir / "weights_raw.pt")
        by_param = {id(p): e.cpu() for p, e in zip(params, ema)}  # tied weights share one average
        averaged = {name: by_param[id(p)] for name, p in core.named_parameters(remove_duplicate=False)}
        state = {k: averaged.get(k, v) for k, v in state.items()}
    torch.save(state, out_dir / "weights.pt")
    summary = {
        "data": [str(d) for d in ([data_dir] if isinstance(data_dir, (str, Path)) else data_dir)],
        "frames": n, "text_chunks": n_text, "steps": steps, "steps_planned": planned_steps, "batch_size": batch_size, "lr": lr,
        "text_fraction": text_fraction, "seed": seed, "device": device, "relabelled_holds": data["relabelled"],
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "torch": torch.__version__, "parameters": n_params, "train_seconds": round(time.time() - start, 1),
        "options": options, "held_out_frames": int(len(held_idx)),
        "weights_from_step": steps - 1 if best is None else best[1], "log": log,
        "config": {k: getattr(cfg, k) for k in ("vocab_size", *MODEL_SIZES)},
        "view_box": data["view_box"],
        "statistics": data["stats"],
    }
    (out_dir / "train.json").write_text(json.dumps(summary, indent=2))
    return summary


# --- 4. Export ------------------------------------------------------------------------


def export_checkpoint(weights: Path, train_json: Path, tokenizer_path: Path, out_dir: Path = CHECKPOINT_DIR) -> str:
    """Write config, tokenizer, statistics and safetensors weights into the checkpoint directory.

    Returns the SHA-256 of ``model.safetensors`` (the model card records it).
    """
    import torch
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("modeling_teachvla.py", "processing_teachvla.py"):
        if (CHECKPOINT_DIR / name).resolve() != (out_dir / name).resolve():
            shutil.copy(CHECKPOINT_DIR / name, out_dir / name)
    summary = json.loads(Path(train_json).read_text())
    norm_stats = {SUITE_KEY: summary["statistics"], "bridge_orig": {"action": dict(C.BRIDGE_ORIG_ACTION_STATS)}}
    modeling = load_modeling(out_dir)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    cfg = modeling.TeachVLAConfig(
        empty_token_id=tokenizer.token_to_id("▁"), norm_stats=norm_stats, **summary["config"]
    )
    cfg.architectures = ["TeachVLAForActionPrediction"]
    cfg.auto_map = {
        "AutoConfig": "modeling_teachvla.TeachVLAConfig",
        "AutoModelForVision2Seq": "modeling_teachvla.TeachVLAForActionPrediction",
        "AutoProcessor": "processing_teachvla.TeachVLAProcessor",
    }
    cfg.save_pretrained(out_dir)
    state = torch.load(weights, map_location="cpu")
    # safetensors refuses shared tensors: store the tied LM head as its own copy.
    state = {f"core.{k}": v.detach().clone().contiguous() for k, v in state.items()}
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(tokenizer_path, out_dir / "tokenizer.json")
    view = {"view_box": summary["view_box"]} if summary.get("view_box") is not None else {}
    (out_dir / "preprocessor_config.json").write_text(json.dumps(
        {"image_size": summary["config"]["image_size"], **view,
         "auto_map": {"AutoProcessor": "processing_teachvla.TeachVLAProcessor"},
         "processor_class": "TeachVLAProcessor"}, indent=2) + "\n")
    (out_dir / "dataset_statistics.json").write_text(json.dumps(norm_stats, indent=2) + "\n")
    if Path(train_json).resolve() != (out_dir / "train.json").resolve():
        shutil.copy(train_json, out_dir / "train.json")
    return sha256(out_dir / "model.safetensors")


def extra_demo_rows(folders: list[Path]) -> list[dict]:
    """One row per task and folder of further collections a run trained on, sorted by folder and task.

    Raises ``ValueError`` naming a folder that holds no collection summaries.
    """
    rows = []
    for folder in folders:
        records = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("task_*.json"))]
        if not records:
            raise ValueError(f"{folder}: no task_*.json collection summaries there; pass a folder "
                             "that `demos --out` wrote, or leave it out")
        rows += [{**r["summary"], "folder": Path(folder).name, "collection_seed": r["config"]["seed"]} for r in records]
    return sorted(rows, key=lambda r: (r["folder"], r["task_id"]))


def fine_tune_records(init: Path, run: dict, dagger_rows: list[dict]) -> dict:
    """The records a fine-tune's checkpoint carries: its starting checkpoint's data and runs, and its own.

    ``base_train.json`` is the run that trained from scratch; ``finetunes.json``
    lists every fine-tune since, oldest first (this one last, without its loss
    log); ``dagger.json`` every DAgger collection they trained on. The starting
    checkpoint's demonstration records (``demos.json``, ``extra_demos.json``,
    ``recovery_demos.json``) are copied as they are.
    """
    init = Path(init)

    def read(name, default):
        return json.loads((init / name).read_text()) if (init / name).is_file() else default

    records = {name: read(name, []) for name in ("demos.json", "extra_demos.json", "recovery_demos.json")}
    records["base_train.json"] = read("base_train.json", None) or read("train.json", None)
    own = {k: v for k, v in run.items() if k not in ("log", "statistics")}
    records["finetunes.json"] = read("finetunes.json", []) + [own]
    records["dagger.json"] = read("dagger.json", []) + dagger_rows
    return records


def write_record(path: Path, rows: list[dict]) -> None:
    """Write an export's record of the data a run trained on (``rows`` as JSON); with no rows, remove
    an earlier record, so that a checkpoint never inherits the last export's data."""
    path = Path(path)
    if rows:
        path.write_text(json.dumps(rows, indent=2) + "\n")
    elif path.exists():
        path.unlink()


def make_random_checkpoint(out_dir: Path, tokenizer_path: Path, seed: int = 0, **config) -> Path:
    """An untrained checkpoint in the same format, for tests of the loading path.

    It carries OpenVLA's published ``libero_object_no_noops`` statistics, so it
    un-normalises like the real fine-tune would.
    """
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from tokenizers import Tokenizer

    modeling = load_modeling()
    torch.manual_seed(seed)
    cfg = modeling.TeachVLAConfig(vocab_size=Tokenizer.from_file(str(tokenizer_path)).get_vocab_size(), **config)
    torch.save(modeling.TeachVLACore(cfg).state_dict(), out_dir / "weights.pt")
    keys = ("vocab_size", "image_size", "patch_size", "vision_dim", "d_model", "n_layers", "n_heads", "mlp_ratio",
            "max_text_len", "stem_channels", "gelu")
    summary = {"config": {k: getattr(cfg, k) for k in keys},
               "statistics": {"action": dict(C.OPENVLA_LIBERO_OBJECT_ACTION_STATS)}}
    (out_dir / "train.json").write_text(json.dumps(summary))
    export_checkpoint(out_dir / "weights.pt", out_dir / "train.json", tokenizer_path, out_dir)
    (out_dir / "weights.pt").unlink()
    return out_dir


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- Command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``demos``, ``thin``, ``tokenizer``, ``train`` and ``export``: the steps that make the checkpoint."""
    parser = argparse.ArgumentParser(prog="python -m vla_ch2.factory.teaching_model", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demos", help="collect expert demonstrations on fresh layouts (CPU, LIBERO)")
    p.add_argument("--out", type=Path, default=Path("data/demos"))
    p.add_argument("--tasks", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--per-task", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=128, help="stored frame size, the model's input size (v2 used 96: its card gives the whole demos command)")
    p.add_argument("--jpeg-quality", type=int, default=85)
    p.add_argument("--noisy-fraction", type=float, default=0.6, help="share of tries that execute noisy actions")
    p.add_argument("--keep-every", type=int, default=1, help="store every k-th frame of a demonstration")
    p.add_argument("--recovery", action="store_true",
                   help="recovery demonstrations: miss the first grasp on purpose, keep the frames from the noticed miss on")
    p.add_argument("--miss-xy", type=float, nargs=2, default=(0.0, 0.03), metavar=("MIN", "MAX"),
                   help="sideways miss range in metres (tall objects need a wide one: a high miss still grasps them)")
    p.add_argument("--miss-z", type=float, nargs=2, default=(0.03, 0.06), metavar=("MIN", "MAX"),
                   help="how far above the grasp height the missed grasp closes, in metres")
    p.add_argument("--early-close-fraction", type=float, default=0.0,
                   help="share of tries whose expert closes early and goes on down while closing")
    p.add_argument("--early-close", type=float, nargs=2, default=(0.005, 0.03), metavar=("MIN", "MAX"),
                   help="how much earlier (metres above the usual closing height) those tries close")
    p.add_argument("--view-box", type=float, nargs=4, default=None, metavar=("LEFT", "TOP", "RIGHT", "BOTTOM"),
                   help="store the part of the policy's 224 image the model will see (fractions; default: all of it)")
    p.add_argument("--grasp-xy", nargs=3, action="append", default=[], metavar=("OBJECT", "X", "Y"),
                   help="aim the expert at OBJECT X Y metres from its origin (world frame) instead of its GRASP_XY, "
                        "e.g. --grasp-xy cream_cheese -0.01 0 (v2's aim); repeat for more objects")
    p.add_argument("--grasp-dz", nargs=2, action="append", default=[], metavar=("OBJECT", "DZ"),
                   help="close DZ metres above (negative: below) the expert's usual closing height for OBJECT, "
                        "e.g. --grasp-dz cream_cheese -0.006; repeat for more objects")
    p = sub.add_parser("thin", help="copy demonstrations keeping an evenly spaced fraction of their frames")
    p.add_argument("--data", type=Path, default=Path("data/demos"))
    p.add_argument("--fraction", type=float, required=True)
    p.add_argument("--complement", action="store_true", help="keep exactly the frames the fraction drops")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("tokenizer", help="train the BPE tokenizer and write the text corpus")
    p.add_argument("--out", type=Path, default=Path("data"))
    p.add_argument("--vocab-size", type=int, default=2048)
    p = sub.add_parser("text", help="write the language-modelling text only (for a run that keeps a tokenizer)")
    p.add_argument("--out", type=Path, default=Path("data/text.txt"))
    p = sub.add_parser("train", help="train the model (GPU if present)")
    p.add_argument("--data", type=Path, nargs="+", default=[Path("data/demos")],
                   help="one or more folders of task_*.npz (e.g. the two halves that 'thin --complement' makes)")
    p.add_argument("--tokenizer", type=Path, default=Path("data/tokenizer.json"))
    p.add_argument("--text", type=Path, default=Path("data/text.txt"))
    p.add_argument("--out", type=Path, default=Path("data/run"))
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--text-fraction", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", type=json.loads, default=None,
                   help='model sizes as JSON, e.g. \'{"image_size": 96, "d_model": 160, "n_layers": 3}\'')
    p.add_argument("--options", type=json.loads, default=None,
                   help='training options as JSON: holdout, jitter, crop_area_min, weight_decay (see train())')
    p = sub.add_parser("export", help="write the Hugging Face checkpoint directory")
    p.add_argument("--run", type=Path, default=Path("data/run"))
    p.add_argument("--tokenizer", type=Path, default=Path("data/tokenizer.json"))
    p.add_argument("--out", type=Path, default=CHECKPOINT_DIR)
    p.add_argument("--demos", type=Path, default=Path("data/demos"), help="collection summaries to record")
    p.add_argument("--recovery-demos", type=Path, default=None, help="recovery collection summaries to record, if any")
    p.add_argument("--extra-demos", type=Path, nargs="*", default=[],
                   help="further (non-recovery) collections the run trained on, to record beside --demos")
    p.add_argument("--dagger", type=Path, nargs="*", default=[],
                   help="DAgger collections a fine-tune trained on (python -m vla_ch2.factory.dagger --out)")
    args = parser.parse_args(argv)

    if args.command == "demos":
        from vla_ch2.factory.demos import DemoConfig, collect_task
        from vla_ch2.factory.expert import MAX_AIM_OFFSET, MAX_CLOSE_SHIFT

        for flag, (low, high) in (("--miss-xy", args.miss_xy), ("--miss-z", args.miss_z),
                                  ("--early-close", args.early_close)):
            if not 0.0 <= low <= high:
                parser.error(f"{flag} {low} {high}: give MIN MAX in metres with 0 <= MIN <= MAX")
        if not 0.0 <= args.early_close_fraction <= 1.0:
            parser.error(f"--early-close-fraction {args.early_close_fraction}: give a share between 0 and 1")
        if args.view_box is not None:
            left, top, right, bottom = args.view_box
            if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
                parser.error(f"--view-box {left} {top} {right} {bottom}: give LEFT TOP RIGHT BOTTOM as fractions "
                             "of the image with 0 <= LEFT < RIGHT <= 1 and 0 <= TOP < BOTTOM <= 1")

        grasp_xy = {}
        for name, x, y in args.grasp_xy:
            try:
                aim = (float(x), float(y))
            except ValueError:
                parser.error(f"--grasp-xy {name} {x} {y}: X and Y are metres, e.g. --grasp-xy cream_cheese -0.01 0")
            if not name.replace("_", "").isalpha() or name in grasp_xy:
                parser.error(f"--grasp-xy {name} {x} {y}: name each object once, as in the scene without its "
                             "number (cream_cheese, not cream_cheese_1)")
            if not all(abs(v) <= MAX_AIM_OFFSET for v in aim):  # a NaN fails too
                parser.error(f"--grasp-xy {name} {x} {y}: an aim more than {MAX_AIM_OFFSET} m from the object's "
                             "origin misses it; give metres, not centimetres")
            grasp_xy[name] = aim
        grasp_dz = {}
        for name, dz in args.grasp_dz:
            try:
                height = float(dz)
            except ValueError:
                parser.error(f"--grasp-dz {name} {dz}: DZ is metres, e.g. --grasp-dz cream_cheese -0.006")
            if not name.replace("_", "").isalpha() or name in grasp_dz:
                parser.error(f"--grasp-dz {name} {dz}: name each object once, as in the scene without its "
                             "number (cream_cheese, not cream_cheese_1)")
            if not abs(height) <= MAX_CLOSE_SHIFT:  # a NaN fails too
                parser.error(f"--grasp-dz {name} {dz}: more than {MAX_CLOSE_SHIFT} m from the usual closing height "
                             "closes in the table or over the object; give metres, not centimetres")
            grasp_dz[name] = height
        args.out.mkdir(parents=True, exist_ok=True)
        cfg = DemoConfig(per_task=args.per_task, seed=args.seed, image_size=args.image_size,
                         jpeg_quality=args.jpeg_quality, noisy_fraction=args.noisy_fraction, keep_every=args.keep_every,
                         recovery=args.recovery, miss_xy=tuple(args.miss_xy), miss_z=tuple(args.miss_z),
                         early_close_fraction=args.early_close_fraction, early_close=tuple(args.early_close),
                         view_box=None if args.view_box is None else tuple(args.view_box), grasp_xy=grasp_xy or None,
                         grasp_dz=grasp_dz or None)
        for task_id in args.tasks:
            print(json.dumps(collect_task(task_id, cfg, args.out)), flush=True)
    elif args.command == "thin":
        from vla_ch2.factory.demos import thin_task_demos

        sources = sorted(args.data.glob("task_*.npz"))
        if not sources:
            raise SystemExit(f"{args.data}: no task_*.npz demonstrations to thin")
        for source in sources:
            print(source.name, json.dumps(thin_task_demos(source, args.out, args.fraction, args.complement)), flush=True)
    elif args.command == "tokenizer":
        args.out.mkdir(parents=True, exist_ok=True)
        instructions = libero_instructions()
        prompts = [p.format(instruction=i.lower()) for i in instructions for p in C.PROMPT_TEMPLATES.values()]
        text = stdlib_text()
        # Prompts are weighted up so that no prompt token is among the last 256
        # (least used) ids, which become action tokens: OpenVLA's overwrite trick.
        tokenizer = train_tokenizer(text + instructions * 200 + prompts * 50, args.vocab_size)
        first_action_id = tokenizer.get_vocab_size() - C.N_ACTION_BINS
        clashes = sorted({t for p in prompts for t in tokenizer.encode(p).tokens
                          if tokenizer.token_to_id(t) >= first_action_id})
        if clashes:
            raise SystemExit(f"prompt tokens fall among the action tokens: {clashes}; raise the prompt weight")
        tokenizer.save(str(args.out / "tokenizer.json"))
        write_text(args.out / "text.txt", text, instructions)
        print(f"tokenizer: {tokenizer.get_vocab_size()} tokens; text: {len(text) + len(instructions)} lines")
    elif args.command == "text":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        text, instructions = stdlib_text(), libero_instructions()
        write_text(args.out, text, instructions)
        print(f"text: {len(text) + len(instructions)} lines in {args.out}")
    elif args.command == "train":
        text = args.text if args.text_fraction > 0 else None
        summary = train(args.data, args.out, args.tokenizer, text, args.steps, args.batch_size, args.lr,
                        args.text_fraction, args.seed, config_overrides=args.config, options=args.options)
        print(json.dumps({k: v for k, v in summary.items() if k not in ("log", "statistics")}))
    elif args.command == "export":
        try:  # read before anything is written: a bad folder must leave the checkpoint whole
            extra = extra_demo_rows(args.extra_demos)
            dagger = extra_demo_rows(args.dagger)
        except ValueError as exc:
            parser.error(f"--extra-demos or --dagger: {exc}")
        run = json.loads((args.run / "train.json").read_text())
        init = run.get("options", {}).get("init")
        if init and not (Path(init) / "train.json").is_file():
            parser.error(f"the run fine-tuned {init}, which is gone: its records (data, base run) are needed")
        # A fine-tune keeps its starting checkpoint's records, read before anything is written (the two may be one folder).
        inherited = fine_tune_records(Path(init), run, dagger) if init else {}
        digest = export_checkpoint(args.run / "weights.pt", args.run / "train.json", args.tokenizer, args.out)
        for name, rows in inherited.items():
            write_record(args.out / name, rows)
        if not inherited:  # trained from scratch: the data it trained on, as the flags name it
            for name in ("base_train.json", "finetunes.json", "dagger.json"):
                write_record(args.out / name, [])
            summaries = [json.loads(p.read_text())["summary"] for p in sorted(args.demos.glob("task_*.json"))]
            if summaries:
                summaries.sort(key=lambda d: d["task_id"])
                (args.out / "demos.json").write_text(json.dumps(summaries, indent=2) + "\n")
            records = ([json.loads(p.read_text()) for p in sorted(args.recovery_demos.glob("task_*.json"))]
                       if args.recovery_demos else [])
            records = [{**r["summary"], "miss_xy": r["config"]["miss_xy"], "miss_z": r["config"]["miss_z"],
                        "notice": r["config"]["notice"]} for r in records]
            write_record(args.out / "recovery_demos.json", sorted(records, key=lambda r: r["task_id"]))
            write_record(args.out / "extra_demos.json", extra)
        print(f"model.safetensors sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
