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


#: The whole image: a processor without a ``view_box`` sees everything it is given.
FULL_VIEW = (0.0, 0.0, 1.0, 1.0)


def model_view(image: Image.Image, size: int, view_box=FULL_VIEW) -> Image.Image:
    """The part of ``image`` the model looks at, resized (antialiased bilinear) to ``size`` x ``size``.

    ``view_box`` is (left, top, right, bottom) in fractions of the image. A box
    narrower than the image spends the model's pixels on the workspace instead of
    the wall and the floor; a box that is not square stretches one axis.
    """
    image = image.convert("RGB")
    box = tuple(float(b) for b in view_box)
    if image.size == (size, size) and box == FULL_VIEW:
        return image
    width, height = image.size
    pixels_box = (box[0] * width, box[1] * height, box[2] * width, box[3] * height)
    return image.resize((size, size), Image.BILINEAR, box=pixels_box)


def image_to_pixels(image: Image.Image, size: int, view_box=FULL_VIEW) -> np.ndarray:
    """:func:`model_view`, scaled to [-1, 1], channels first."""
    pixels = np.asarray(model_view(image, size, view_box), dtype=np.float32) / 255.0
    return ((pixels - 0.5) / 0.5).transpose(2, 0, 1)


class TeachVLAProcessor:
    """Tokenizer + image transform of the teaching model."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast, image_size: int, view_box=FULL_VIEW):
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.view_box = tuple(float(b) for b in view_box)
        self._encoded: dict = {}  # a loop sends the same prompt every step: tokenize it once

    @classmethod
    def register_for_auto_class(cls, auto_class: str = "AutoProcessor") -> None:
        """Called by ``AutoProcessor`` for remote code; nothing to register here."""

    @classmethod
    def from_pretrained(cls, path, **kwargs) -> "TeachVLAProcessor":
        path = os.fspath(path)
        with open(os.path.join(path, "preprocessor_config.json"), encoding="utf-8") as handle:
            stored = json.load(handle)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_file=os.path.join(path, "tokenizer.json"),
            bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        )
        return cls(tokenizer, int(stored["image_size"]), stored.get("view_box", FULL_VIEW))

    def __call__(self, text, images, return_tensors: str = "pt") -> BatchFeature:
        texts = [text] if isinstance(text, str) else list(text)
        pictures = [images] if isinstance(images, Image.Image) else list(images)
        key = tuple(texts)
        if key not in self._encoded:
            if len(self._encoded) >= 64:
                self._encoded.clear()
            self._encoded[key] = self.tokenizer(texts, padding=True, return_tensors="pt")
        encoded = {name: tensor.clone() for name, tensor in self._encoded[key].items()}
        pixels = np.stack([image_to_pixels(p, self.image_size, self.view_box) for p in pictures])
        return BatchFeature(
            {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "pixel_values": torch.from_numpy(pixels),
            }
        )

    def decode(self, token_ids, **kwargs) -> str:
        return self.tokenizer.decode(token_ids, **kwargs)
