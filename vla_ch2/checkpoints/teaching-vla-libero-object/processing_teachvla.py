"""TeachVLA's processor: a BPE tokenizer and an image transform, like OpenVLA's.

``AutoProcessor.from_pretrained(dir, trust_remote_code=True)`` returns a
:class:`TeachVLAProcessor`; ``processor(prompt, image)`` gives ``input_ids``,
``attention_mask`` and ``pixel_values`` in a ``BatchFeature`` that moves with
``.to(device, dtype=...)`` (only the pixels change dtype).
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature, PreTrainedTokenizerFast


def image_to_pixels(image: Image.Image, size: int) -> np.ndarray:
    """Resize (antialiased bilinear) to ``size`` and scale to [-1, 1], channels first."""
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return ((pixels - 0.5) / 0.5).transpose(2, 0, 1)


class TeachVLAProcessor:
    """Tokenizer + image transform of the teaching model."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast, image_size: int):
        self.tokenizer = tokenizer
        self.image_size = image_size
        self._encoded: dict = {}  # a loop sends the same prompt every step: tokenize it once

    @classmethod
    def register_for_auto_class(cls, auto_class: str = "AutoProcessor") -> None:
        """Called by ``AutoProcessor`` for remote code; nothing to register here."""

    @classmethod
    def from_pretrained(cls, path, **kwargs) -> "TeachVLAProcessor":
        path = os.fspath(path)
        with open(os.path.join(path, "preprocessor_config.json"), encoding="utf-8") as handle:
            image_size = int(json.load(handle)["image_size"])
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_file=os.path.join(path, "tokenizer.json"),
            bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        )
        return cls(tokenizer, image_size)

    def __call__(self, text, images, return_tensors: str = "pt") -> BatchFeature:
        texts = [text] if isinstance(text, str) else list(text)
        pictures = [images] if isinstance(images, Image.Image) else list(images)
        key = tuple(texts)
        if key not in self._encoded:
            if len(self._encoded) >= 64:
                self._encoded.clear()
            self._encoded[key] = self.tokenizer(texts, padding=True, return_tensors="pt")
        encoded = {name: tensor.clone() for name, tensor in self._encoded[key].items()}
        pixels = np.stack([image_to_pixels(p, self.image_size) for p in pictures])
        return BatchFeature(
            {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "pixel_values": torch.from_numpy(pixels),
            }
        )

    def decode(self, token_ids, **kwargs) -> str:
        return self.tokenizer.decode(token_ids, **kwargs)
