"""Policies: an image and a prompt in, a 7-D action out.

:class:`OpenVLAPolicy` holds the real loading and inference code of
OpenVLA's LIBERO evaluation (``AutoModelForVision2Seq`` + ``AutoProcessor``,
``predict_action(**inputs, unnorm_key=..., do_sample=False)``). It loads
``openvla/openvla-7b-finetuned-libero-object`` on a GPU and the embedded
teaching model on a CPU through the same lines.

A policy never sees the toggles: the loop turns them into the image, the
prompt string and the statistics key, which is all a real model receives.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import urllib.parse
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

from vla_ch2 import conventions as C

#: The embedded teaching model, a Hugging Face directory shipped in the package.
DEFAULT_MODEL_NAME = "teaching-vla-libero-object"
DEFAULT_MODEL = str(Path(__file__).parent / "checkpoints" / DEFAULT_MODEL_NAME)
#: The released OpenVLA fine-tune the chapter runs on a GPU.
OPENVLA_LIBERO_OBJECT = "openvla/openvla-7b-finetuned-libero-object"


class Policy(Protocol):
    """What the loop needs from a policy."""

    def predict(self, image: np.ndarray, prompt: str, unnorm_key: str) -> np.ndarray:
        """Return the un-normalised 7-D action in the model's convention (gripper 1 = open)."""


class ModelLoadError(RuntimeError):
    """A checkpoint could not be loaded; the message says what to do."""


#: Without a CUDA GPU, a checkpoint whose weights exceed this many bytes is refused unless the
#: CPU is asked for explicitly (``device="cpu"``, ``--device cpu``): OpenVLA-7B holds 15 GB of
#: bfloat16 weights, which a CPU would load as 30 GB of float32 and run at minutes per action.
CPU_WEIGHTS_LIMIT = 2 * 1024**3
#: Seconds to wait for the model hub before saying it cannot be reached.
HUB_TIMEOUT_S = 3.0


def weights_bytes(directory: str | Path) -> int:
    """Bytes of model weights (``*.safetensors``, ``*.bin``) in a checkpoint directory."""
    return sum(p.stat().st_size for pattern in ("*.safetensors", "*.bin") for p in Path(directory).glob(pattern))


def hub_endpoint() -> str:
    """The model hub this machine would download from (``HF_ENDPOINT`` or huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_unreachable(timeout: float = HUB_TIMEOUT_S) -> str | None:
    """Why the model hub cannot be reached (offline mode, no route, no answer), or None if it answers."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    parsed = urllib.parse.urlparse(hub_endpoint())
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{parsed.hostname}:{port}: {exc.strerror or type(exc).__name__}"


def torchvision_without_ops() -> None:
    """Let ``import torchvision`` succeed where its compiled operators cannot load (a CPU-only torch).

    OpenVLA's remote code imports ``timm``, which imports ``torchvision``. The
    index's torchvision wheels are CUDA builds; beside a CPU-only torch their
    compiled operators cannot load, and torchvision 0.28's import then fails on
    two unguarded registrations (``torchvision::nms`` and ``::qnms``: "operator
    torchvision::nms does not exist"). Declaring the two operators' signatures
    (no implementation) lets the import finish; OpenVLA never calls them, and a
    call would fail with PyTorch's own "no kernel" error. Does nothing when
    torchvision is absent or its operators load.
    """
    import importlib.util

    import torch

    if importlib.util.find_spec("torchvision") is None or "torchvision" in sys.modules:
        return
    try:
        torch.ops.torchvision.nms  # noqa: B018 - present once torchvision's own operators are loaded
        return
    except (AttributeError, RuntimeError):
        pass
    spec = importlib.util.find_spec("torchvision")
    compiled = sorted(Path(spec.origin).parent.glob("_C*.so")) if spec and spec.origin else []
    try:
        if compiled:
            torch.ops.load_library(str(compiled[0]))
            return
    except (OSError, RuntimeError):
        pass  # a CUDA build beside a CPU torch: declare the two signatures instead
    global _TORCHVISION_STUBS
    if _TORCHVISION_STUBS is None:
        _TORCHVISION_STUBS = torch.library.Library("torchvision", "DEF")
        for name in ("nms", "qnms"):
            _TORCHVISION_STUBS.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


#: The library object holding the two declared signatures (kept alive for the process).
_TORCHVISION_STUBS = None


def _cached_snapshot(model: str) -> str | None:
    """The local copy of hub id ``model`` in the Hugging Face cache, if one was downloaded before."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(model, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached (or no huggingface_hub): there is no local copy
        return None


def _checkpoint_hint(model: str) -> str:
    return (
        f"'{model}' is neither a local checkpoint directory nor reachable. Pass a directory that "
        "holds config.json (e.g. the default teaching model) or, on a machine with a model hub, "
        f"'{OPENVLA_LIBERO_OBJECT}' with --trust-remote-code."
    )


class OpenVLAPolicy:
    """OpenVLA's inference path for any OpenVLA-shaped Hugging Face checkpoint.

    Parameters
    ----------
    model : str
        A local checkpoint directory or a hub id (hub ids need ``trust_remote_code=True``).
    device : str or None
        ``"cuda:0"``, ``"cpu"``; default: CUDA when available.
    center_crop : bool
        Crop the centre (area 0.9) before the processor, as the LIBERO fine-tunes need.
    load_in_8bit, load_in_4bit : bool
        bitsandbytes quantisation (GPU only), as OpenVLA's evaluation offers.
    trust_remote_code : bool or None
        Run the checkpoint's own modeling code. ``None``: yes for a local directory
        (you have it on disk to read), no for a hub id unless asked explicitly.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str | None = None,
        center_crop: bool = True,
        load_in_8bit: bool = False,
        load_in_4bit: bool = False,
        trust_remote_code: bool | None = None,
    ):
        import torch
        from transformers import AutoModelForVision2Seq, AutoProcessor

        local = Path(model).is_dir()
        if local and not (Path(model) / "config.json").is_file():
            raise ModelLoadError(f"{model}: the directory has no config.json, so it is not a checkpoint")
        if trust_remote_code is None:
            trust_remote_code = local
        if not trust_remote_code:
            raise ModelLoadError(
                f"{model} is not a local directory; loading it runs the checkpoint's own code. "
                "Read it first, then pass --trust-remote-code (trust_remote_code=True)."
            )
        if not local:
            model = self._reach_hub(model)  # a hub id: a cached copy, or the hub must answer (in seconds)
        if (load_in_8bit or load_in_4bit) and not torch.cuda.is_available():
            raise ModelLoadError("8-bit and 4-bit loading need a CUDA GPU and bitsandbytes")
        if device is None and not torch.cuda.is_available():
            size = weights_bytes(model) if Path(model).is_dir() else 0
            if size > CPU_WEIGHTS_LIMIT:
                raise ModelLoadError(
                    f"{model} holds {size / 1024**3:.1f} GiB of weights and this machine has no CUDA GPU: on the "
                    f"CPU it would load in float32 (about {2 * size / 1024**3:.0f} GiB of memory) and take minutes "
                    "per action. Run it on a GPU, or pass --device cpu (device='cpu') to load it here anyway."
                )
        self.device = torch.device(device or ("cuda:0" if torch.cuda.is_available() else "cpu"))
        # bfloat16 on a GPU as OpenVLA's evaluation; float32 on a CPU, where bfloat16 is slow.
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        kwargs = dict(torch_dtype=self.dtype, low_cpu_mem_usage=True, trust_remote_code=True)
        if self.device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
            kwargs["attn_implementation"] = "flash_attention_2"
        if load_in_8bit or load_in_4bit:
            kwargs["load_in_8bit" if load_in_8bit else "load_in_4bit"] = True
        torchvision_without_ops()
        try:
            with warnings.catch_warnings():
                # transformers 4.40.1 (the version OpenVLA's code is validated on) loads remote code with
                # SourceFileLoader.load_module(), which Python 3.11 reports as deprecated on every load.
                warnings.filterwarnings("ignore", message=r"the load_module\(\) method is deprecated",
                                        category=DeprecationWarning)
                self.processor = AutoProcessor.from_pretrained(model, trust_remote_code=True)
                self.vla = AutoModelForVision2Seq.from_pretrained(model, **kwargs)
        except OSError as exc:
            raise ModelLoadError(f"{_checkpoint_hint(model)} ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
        if not (load_in_8bit or load_in_4bit):
            self.vla = self.vla.to(self.device)
        self.vla.eval()
        self.model = model
        self.center_crop = center_crop
        self._load_local_statistics(model)
        add_bridge_statistics(self.vla.norm_stats)
        self.decoding = DecodingWatcher(self.vla)
        #: Mean probability the model gave the action tokens it emitted at the last call (None: not measurable).
        self.last_token_prob: float | None = None
        #: The last call's action tokens: (token id, probability) per action dimension (None: not measurable).
        self.last_tokens: list[tuple[int, float]] | None = None

    @staticmethod
    def _reach_hub(model: str) -> str:
        """A hub id's local copy if cached, else the id itself once the hub has answered; a clear error otherwise."""
        cached = _cached_snapshot(model)
        if cached is not None:
            return cached
        reason = hub_unreachable()
        if reason is not None:
            raise ModelLoadError(
                f"'{model}' is a model-hub id, but the hub ({hub_endpoint()}) cannot be reached from this machine "
                f"({reason}) and no copy of it is in the local cache. Download it where the hub is reachable "
                f"(huggingface-cli download {model} --local-dir DIR), copy DIR here and pass it with --model DIR."
            )
        return model

    def _load_local_statistics(self, model: str) -> None:
        """A ``dataset_statistics.json`` beside the weights overrides ``vla.norm_stats`` (OU ``get_vla``)."""
        path = Path(model) / "dataset_statistics.json"
        if path.is_file():
            with open(path, encoding="utf-8") as handle:
                self.vla.norm_stats = json.load(handle)

    @property
    def statistics_keys(self) -> list[str]:
        """Keys of the statistics this checkpoint can un-normalise with."""
        return sorted(self.vla.norm_stats)

    def resolve_key(self, requested: str) -> str:
        """The suite name, its ``_no_noops`` variant, or OpenVLA's error (RLE)."""
        return C.resolve_unnorm_key(requested, self.vla.norm_stats)

    def predict(self, image: np.ndarray, prompt: str, unnorm_key: str) -> np.ndarray:
        """One forward pass: OU ``get_vla_action``."""
        import torch
        from PIL import Image

        if self.center_crop:
            image = C.center_crop(image)
        pil = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
        inputs = self.processor(prompt, pil).to(self.device, dtype=self.dtype)
        self.decoding.clear()
        with torch.inference_mode():
            action = np.asarray(
                self.vla.predict_action(**inputs, unnorm_key=self.resolve_key(unnorm_key), do_sample=False),
                dtype=np.float64).reshape(-1)
        self.last_tokens = self.decoding.steps(len(action))
        self.last_token_prob = self.decoding.token_prob(len(action))
        return action


class DecodingWatcher:
    """Read how sure a model was of the tokens it decoded, without changing how it decodes.

    A forward hook on the language model's output layer (the last module
    named ``lm_head``: the teaching model's, or the Llama inside OpenVLA)
    keeps the last position's logits of every forward pass. With greedy
    decoding the first ``n`` passes after :meth:`clear` are the ones that chose
    the ``n`` emitted tokens, each the most probable one.
    """

    def __init__(self, model):
        self._logits: list = []
        heads = [module for name, module in model.named_modules() if name.split(".")[-1] == "lm_head"]
        self.available = bool(heads)
        if heads:
            heads[-1].register_forward_hook(lambda module, args, output: self._logits.append(output[:, -1].detach()))

    def clear(self) -> None:
        """Forget earlier passes; call before each decode."""
        self._logits.clear()

    def steps(self, n: int) -> list[tuple[int, float]] | None:
        """The first ``n`` decoding steps: (chosen token id, its probability), the chosen being the most probable.

        ``None`` when the model has no ``lm_head`` or made fewer than ``n`` passes.
        """
        if len(self._logits) < n or n <= 0:
            return None
        import torch

        probabilities = torch.cat(self._logits[:n]).float().softmax(-1).max(-1)
        return [(int(i), float(p)) for i, p in zip(probabilities.indices, probabilities.values)]

    def token_prob(self, n: int) -> float | None:
        """Mean over the first ``n`` decoding steps of the chosen (most probable) token's probability.

        ``None`` when the model has no ``lm_head`` or made fewer than ``n`` passes.
        """
        steps = self.steps(n)
        self.clear()
        return None if steps is None else float(np.mean([p for _, p in steps], dtype=np.float64))


def add_bridge_statistics(norm_stats: dict) -> dict:
    """Give a checkpoint OpenVLA's published ``bridge_orig`` statistics if it lacks them.

    The LIBERO fine-tunes ship only their own statistics; the chapter's
    ``bad_unnorm`` drill needs Bridge's to un-normalise with.
    """
    norm_stats.setdefault("bridge_orig", {"action": dict(C.BRIDGE_ORIG_ACTION_STATS)})
    return norm_stats


def resolve_model(model: str | None) -> str:
    """A model name as users write it -> what ``from_pretrained`` gets.

    ``None`` or ``teaching-vla-libero-object`` is the embedded checkpoint; a
    directory stays a directory; anything else is taken as a hub id.
    """
    if model in (None, "", DEFAULT_MODEL_NAME):
        return DEFAULT_MODEL
    return model


def load_policy(model: str | None = None, **kwargs) -> OpenVLAPolicy:
    """Load ``model`` (default: the embedded teaching model) through OpenVLA's path."""
    path = resolve_model(model)
    if not Path(path).exists() and (path.startswith((".", "/", "~")) or path.count("/") != 1):
        raise ModelLoadError(_checkpoint_hint(path))
    return OpenVLAPolicy(path, **kwargs)
