"""TeachVLA: a CPU-sized vision-language-action model with OpenVLA's interface.

The six boxes of the chapter's section 2.3, scaled down:

1. vision encoder: two small branches over the same image, fused channel-wise
   per patch (OpenVLA fuses SigLIP and DINOv2 the same way): a ViT-style patch
   embedding with one attention layer, and a strided convolutional stem;
2. language tokenizer: a BPE tokenizer shipped with the checkpoint;
3. trunk: a causal transformer over [BOS, image patches, prompt tokens];
4. action head: the LM head itself; the last 256 vocabulary ids are actions;
5. detokenizer: 256 uniform bins over [-1, 1], bin centres, un-normalised with
   the q01/q99 statistics of ``norm_stats[unnorm_key]`` (gripper masked);
6. the simulator is outside the model (LIBERO).

The file is loaded by ``AutoModelForVision2Seq.from_pretrained(...,
trust_remote_code=True)``, exactly as OpenVLA's ``modeling_prismatic.py`` is.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PretrainedConfig, PreTrainedModel


class TeachVLAConfig(PretrainedConfig):
    """Sizes of the teaching model and the statistics it un-normalises with."""

    model_type = "teachvla"

    def __init__(
        self,
        vocab_size: int = 2048,
        n_action_bins: int = 256,
        image_size: int = 128,
        patch_size: int = 16,
        vision_dim: int = 128,
        d_model: int = 192,
        n_layers: int = 4,
        n_heads: int = 6,
        mlp_ratio: int = 4,
        max_text_len: int = 64,
        stem_channels: tuple = (32, 64, 96),
        gelu: str = "none",
        dropout: float = 0.0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        pad_token_id: int = 0,
        empty_token_id: int = 3,
        norm_stats: dict | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.n_action_bins = n_action_bins
        self.image_size = image_size
        self.patch_size = patch_size
        self.vision_dim = vision_dim
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.mlp_ratio = mlp_ratio
        self.max_text_len = max_text_len
        self.stem_channels = list(stem_channels)
        self.gelu = gelu  # "none" (exact) or "tanh" (faster on a CPU)
        self.dropout = dropout
        self.empty_token_id = empty_token_id
        self.norm_stats = norm_stats
        super().__init__(
            bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs
        )

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class KVCache:
    """One block's keys and values for a whole decode, allocated once and filled position by position."""

    def __init__(self, like: torch.Tensor, heads: int, length: int):
        batch, _, dim = like.shape
        self.keys = like.new_empty(batch, heads, length, dim // heads)
        self.values = like.new_empty(batch, heads, length, dim // heads)
        self.filled = 0

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``k``, ``v`` (batch, heads, new, head_dim); return every position so far."""
        start, self.filled = self.filled, self.filled + k.shape[2]
        self.keys[:, :, start : self.filled] = k
        self.values[:, :, start : self.filled] = v
        return self.keys[:, :, : self.filled], self.values[:, :, : self.filled]


class Block(nn.Module):
    """Pre-norm transformer block; causal when used in the trunk.

    The forward pass calls the functional forms of its layers with their
    weights: on a CPU, calling a module costs more than these small matrix
    products, and decoding makes 18 block passes per action.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float = 0.0, gelu: str = "none"):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate=gelu),
                                 nn.Linear(mlp_ratio * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, causal: bool, cache: KVCache | None = None, last_only: bool = False):
        """``last_only``: every position's keys and values, but the output of the last position alone
        (what the trunk's last block owes the next token; the other outputs would be thrown away)."""
        b, n, d = x.shape
        norm1, norm2, fc1, gelu, fc2 = self.norm1, self.norm2, self.mlp[0], self.mlp[1], self.mlp[2]
        h = F.layer_norm(x, norm1.normalized_shape, norm1.weight, norm1.bias, norm1.eps)
        q, k, v = F.linear(h, self.qkv.weight, self.qkv.bias).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = cache.extend(k, v)
        if last_only and n > 1:  # the last query sees every position: no mask needed
            q, x, n = q[:, :, -1:], x[:, -1:], 1
        # With a cache, new queries sit at the end: a causal mask is only needed for the prefix.
        is_causal = causal and q.shape[2] == k.shape[2] and n > 1
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
        h = F.linear(attn.transpose(1, 2).reshape(b, n, d), self.proj.weight, self.proj.bias)
        x = x + (self.dropout(h) if self.training else h)
        h = F.layer_norm(x, norm2.normalized_shape, norm2.weight, norm2.bias, norm2.eps)
        h = F.linear(F.gelu(F.linear(h, fc1.weight, fc1.bias), approximate=gelu.approximate), fc2.weight, fc2.bias)
        return x + (self.dropout(h) if self.training else h)


class VisionEncoder(nn.Module):
    """Two branches over one image, fused per patch by channel concatenation."""

    def __init__(self, cfg: TeachVLAConfig):
        super().__init__()
        vd, grid = cfg.vision_dim, cfg.image_size // cfg.patch_size
        # Branch A ("SigLIP-like"): patch embedding + one attention layer.
        self.patch = nn.Conv2d(3, vd, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.pos = nn.Parameter(torch.zeros(1, grid * grid, vd))
        self.attn = Block(vd, 4, 2, gelu=cfg.gelu)
        # Branch B ("DINOv2-like" local features): a strided convolutional stem.
        channels = [3, *cfg.stem_channels, vd]
        layers = []
        for cin, cout in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(8, cout), nn.GELU(approximate=cfg.gelu)]
        self.conv = nn.Sequential(*layers)
        self.grid = grid
        # Projector: fused 2 * vd features -> trunk width (OpenVLA: a 3-layer MLP).
        self.projector = nn.Sequential(nn.Linear(2 * vd, cfg.d_model), nn.GELU(approximate=cfg.gelu),
                                       nn.Linear(cfg.d_model, cfg.d_model))

    def forward(self, pixel_values):
        a = self.patch(pixel_values).flatten(2).transpose(1, 2) + self.pos
        a = self.attn(a, causal=False)
        b = self.conv(pixel_values)
        if b.shape[-1] != self.grid:
            b = F.adaptive_avg_pool2d(b, self.grid)
        b = b.flatten(2).transpose(1, 2)
        return self.projector(torch.cat([a, b], dim=-1))


class TeachVLACore(nn.Module):
    """Vision encoder + causal trunk + LM head (plain PyTorch, used for training too)."""

    def __init__(self, cfg: TeachVLAConfig):
        super().__init__()
        self.cfg = cfg
        self.vision = VisionEncoder(cfg)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(1, 1 + cfg.n_patches + cfg.max_text_len, cfg.d_model))
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_heads, cfg.mlp_ratio, cfg.dropout, cfg.gelu) for _ in range(cfg.n_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight  # tied, as in many LMs
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)

    def embed_inputs(self, input_ids, pixel_values=None):
        """[BOS, patches, rest of the prompt] when there is an image; plain text otherwise."""
        tokens = self.embed(input_ids)
        if pixel_values is None:
            return tokens
        patches = self.vision(pixel_values)
        return torch.cat([tokens[:, :1], patches, tokens[:, 1:]], dim=1)

    def forward(self, input_ids, pixel_values=None, caches=None, offset: int = 0, last_only: bool = False):
        """Logits for every position (``last_only``: the last one). ``caches`` (one :class:`KVCache` per
        block) enables incremental decoding."""
        x = self.embed_inputs(input_ids, pixel_values)
        x = x + self.pos[:, offset : offset + x.shape[1]]
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, causal=True, cache=None if caches is None else caches[i], last_only=last_only and i == last)
        norm = self.norm
        return self.lm_head(F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps))

    @torch.inference_mode()
    def generate_greedy(self, input_ids, pixel_values, max_new_tokens: int):
        """Greedy decoding with a key/value cache (OpenVLA: ``do_sample=False``).

        The image and prompt pass through the trunk once (its last block
        computes the last position's output alone); each new token is then
        one pass over a single position against the cached keys and values.
        Inference mode, not ``no_grad``: no tensor here is ever differentiated,
        and each of the some 300 small operations of an action then costs less.
        """
        prefix = input_ids.shape[1] + (self.cfg.n_patches if pixel_values is not None else 0)
        like = self.embed.weight.new_empty(input_ids.shape[0], 1, self.cfg.d_model)
        caches = [KVCache(like, block.heads, prefix + max_new_tokens) for block in self.blocks]
        logits = self.forward(input_ids, pixel_values, caches=caches, last_only=True)
        offset = caches[0].filled
        out = []
        for i in range(max_new_tokens):
            token = logits[:, -1].argmax(dim=-1, keepdim=True)
            out.append(token)
            if i + 1 < max_new_tokens:  # the last token needs no pass of its own
                logits = self.forward(token, None, caches=caches, offset=offset)
                offset += 1
        return torch.cat(out, dim=1)


class TeachVLAForActionPrediction(PreTrainedModel):
    """The Hugging Face face of :class:`TeachVLACore`, with OpenVLA's ``predict_action``."""

    config_class = TeachVLAConfig
    base_model_prefix = "core"
    main_input_name = "pixel_values"

    def __init__(self, config: TeachVLAConfig):
        super().__init__(config)
        self.core = TeachVLACore(config)
        self.norm_stats = config.norm_stats or {}
        bins = np.linspace(-1, 1, config.n_action_bins)
        self.bin_centers = (bins[:-1] + bins[1:]) / 2.0

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def get_input_embeddings(self):
        return self.core.embed

    def forward(self, input_ids=None, pixel_values=None, attention_mask=None, **kwargs):
        return self.core(input_ids, pixel_values)

    @property
    def action_dim(self) -> int:
        return 7

    def predict_action(self, input_ids=None, unnorm_key=None, pixel_values=None, attention_mask=None, **kwargs):
        """OpenVLA's ``predict_action``: greedy-decode 7 tokens, detokenize, un-normalise."""
        if not torch.all(input_ids[:, -1] == self.config.empty_token_id):
            empty = torch.full_like(input_ids[:, :1], self.config.empty_token_id)
            input_ids = torch.cat([input_ids, empty], dim=1)
        pixel_values = pixel_values.to(next(self.parameters()).dtype)
        generated = self.core.generate_greedy(input_ids, pixel_values, self.action_dim)
        token_ids = generated[0].cpu().numpy()
        discretized = np.clip(self.config.vocab_size - token_ids - 1, 0, self.bin_centers.shape[0] - 1)
        normalized = self.bin_centers[discretized]
        stats = self.get_action_stats(unnorm_key)
        mask = np.asarray(stats.get("mask", np.ones_like(stats["q01"], dtype=bool)))
        high, low = np.asarray(stats["q99"]), np.asarray(stats["q01"])
        return np.where(mask, 0.5 * (normalized + 1) * (high - low) + low, normalized)

    def get_action_stats(self, unnorm_key=None) -> dict:
        """Statistics for ``unnorm_key``, with OpenVLA's own assertion messages."""
        if unnorm_key is None:
            assert len(self.norm_stats) == 1, (
                "Your model was trained on more than one dataset, please pass a `unnorm_key` from the "
                f"following options to choose the statistics used for un-normalizing actions: {self.norm_stats.keys()}"
            )
            unnorm_key = next(iter(self.norm_stats.keys()))
        assert unnorm_key in self.norm_stats, (
            "The `unnorm_key` you chose is not in the set of available dataset statistics, please choose "
            f"from: {self.norm_stats.keys()}"
        )
        return self.norm_stats[unnorm_key]["action"]
