"""``MMaDAModelLM``: the bidirectional masked-diffusion transformer of MMaDA (LLaDA backbone).

Numerically follows the official ``LLaDALlamaBlock`` stack (``models/modeling_llada.py``):
pre-norm RMSNorm (float32, weight applied after the cast back), RoPE in the rotate-half layout with
the rotation in float32, grouped-query attention through ``scaled_dot_product_attention`` with no
causal mask, SwiGLU MLP, final RMSNorm and an untied LM head. State-dict keys are the official ones
(``model.transformer.blocks.{i}.q_proj.weight`` ...).

Deliberate differences from the official code (see docs/deliberate_differences.md):

* ``attention_mask`` is a 2-D *padding* mask over keys (1 = real token). The official model turns
  such a mask into a **causal** bias; here attention stays bidirectional and padded keys are masked.
* Padded query rows attend to the real keys (the official boolean bias gives them a uniform
  average over all keys). Their outputs are never used by the samplers.
* The official training path adds a float 0/1 bias (padding merely down-weighted); we mask.

K/V caching for Fast-dLLM-style samplers: a forward with ``kv_cache=KVCache()`` and
``cache_write=True`` stores every layer's (rotated) keys and values of the full sequence; a later
forward with ``cache_start=s`` runs only the given tokens (positions ``s .. s+n-1``) and reads the
keys/values of every other position from the cache.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .config import MMaDAConfig


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """RMSNorm computed in float32; the weight multiplies after the cast back (official order)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = x.float()
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rope_sin_cos(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 sin/cos tables ``[L, head_dim]`` (angles duplicated, rotate-half layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float) / head_dim))
    angles = torch.outer(positions.float(), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.sin(), angles.cos()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[B, H, L, D]`` in float32 and cast back to its dtype."""
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


@dataclass
class KVCache:
    """Per-layer rotated keys/values ``[B, H_kv, L, D]`` of a full sequence (see module docstring)."""

    keys: list = field(default_factory=list)
    values: list = field(default_factory=list)

    def __len__(self) -> int:
        return 0 if not self.keys else self.keys[0].shape[-2]

    def reset(self) -> None:
        self.keys.clear()
        self.values.clear()


class Block(nn.Module):
    """One pre-norm block: ``x + attn_out(Attn(attn_norm(x)))`` then ``x + ff_out(silu(ff_proj(h)) * up_proj(h))``.

    Attributes carry the official names (``q_proj``, ``attn_out``, ``ff_proj`` = gate, ``up_proj``, ``ff_out``).
    """

    def __init__(self, config: MMaDAConfig):
        super().__init__()
        d, hidden = config.d_model, config.mlp_hidden
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        # definition order = official state_dict order
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_out = nn.Linear(hidden, d, bias=False)
        self.attn_norm = RMSNorm(d, config.rms_norm_eps)
        self.ff_norm = RMSNorm(d, config.rms_norm_eps)
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.ff_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)

    def forward(self, x, sin, cos, key_mask, layer=0, kv_cache=None, cache_write=False, cache_start=None):
        x = x + self.attention(self.attn_norm(x), sin, cos, key_mask, layer, kv_cache, cache_write, cache_start)
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))

    def attention(self, h, sin, cos, key_mask, layer, kv_cache, cache_write, cache_start):
        """Bidirectional grouped-query attention with RoPE; reads/writes ``kv_cache`` when given."""
        B, L, _ = h.shape
        q = self.q_proj(h).view(B, L, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, sin, cos), apply_rope(k, sin, cos)
        if kv_cache is not None and cache_write:
            if layer == 0:
                kv_cache.reset()
            kv_cache.keys.append(k)
            kv_cache.values.append(v)
        elif kv_cache is not None and cache_start is not None:
            ck, cv = kv_cache.keys[layer], kv_cache.values[layer]
            end = cache_start + L
            k = torch.cat((ck[:, :, :cache_start], k, ck[:, :, end:]), dim=2)
            v = torch.cat((cv[:, :, :cache_start], v, cv[:, :, end:]), dim=2)
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=0.0, is_causal=False)
        return self.attn_out(out.transpose(1, 2).reshape(B, L, -1))


class Transformer(nn.Module):
    """``wte`` -> blocks -> ``ln_f`` -> ``ff_out`` (the official ``model.transformer`` module)."""

    def __init__(self, config: MMaDAConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.padded_vocab_size, config.d_model)
        self.ln_f = RMSNorm(config.d_model, config.rms_norm_eps)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ff_out = nn.Linear(config.d_model, config.padded_vocab_size, bias=False)


class _Backbone(nn.Module):
    """Holds ``transformer`` so that keys read ``model.transformer.*`` as in the official checkpoints."""

    def __init__(self, config: MMaDAConfig):
        super().__init__()
        self.transformer = Transformer(config)


@dataclass
class MMaDAOutput(ModelOutput):
    logits: Optional[torch.Tensor] = None
    hidden_states: Optional[tuple] = None


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
class MMaDAModelLM(PreTrainedModel):
    """MMaDA masked-diffusion LM over the joint text + image vocabulary.

    ``forward(input_ids, attention_mask=None)`` returns logits ``[B, L, V]`` for every position;
    ``attention_mask`` ``[B, L]`` (bool or 0/1) masks padded *keys* and never makes attention causal.
    """

    config_class = MMaDAConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["Block"]

    def __init__(self, config: MMaDAConfig):
        super().__init__(config)
        self.model = _Backbone(config)
        self.gradient_checkpointing = False
        self.post_init()

    # --- transformers plumbing ------------------------------------------------------------------
    @property
    def transformer(self) -> Transformer:
        return self.model.transformer

    def get_input_embeddings(self):
        return self.transformer.wte

    def set_input_embeddings(self, value):
        self.transformer.wte = value

    def get_output_embeddings(self):
        return self.transformer.ff_out

    def set_output_embeddings(self, value):
        self.transformer.ff_out = value

    def _init_weights(self, module):
        std = self.config.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        self.gradient_checkpointing = True

    def gradient_checkpointing_disable(self):
        self.gradient_checkpointing = False

    # --- forward ----------------------------------------------------------------------------------
    def forward(self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.LongTensor] = None, output_hidden_states: bool = False,
                kv_cache: Optional[KVCache] = None, cache_write: bool = False,
                cache_start: Optional[int] = None, logits_slice: Optional[slice] = None,
                return_dict: bool = True, **unused) -> MMaDAOutput:
        """Run the transformer.

        Args:
            input_ids: ``[B, n]`` token ids (the full sequence, or a window when reading a cache).
            attention_mask: ``[B, L_full]`` padding mask over keys (1/True = attend). ``None`` = no mask.
            position_ids: RoPE positions ``[n]``; default ``cache_start + arange(n)``.
            output_hidden_states: also return the input of every block and the final normed state.
            kv_cache: a :class:`KVCache` to fill (``cache_write=True``) or read (``cache_start=s``).
            logits_slice: only project these sequence positions to the vocabulary (saves the LM head).
        """
        if unused.get("attention_bias") is not None:
            raise TypeError("attention_bias is not supported: pass a 2-D padding mask as attention_mask")
        tr = self.transformer
        B, n = input_ids.shape
        start = cache_start or 0
        if position_ids is None:
            position_ids = torch.arange(start, start + n, device=input_ids.device)
        sin, cos = rope_sin_cos(position_ids, self.config.head_dim, self.config.rope_theta)
        key_mask = _key_padding_mask(attention_mask, B)

        x = tr.wte(input_ids)
        hidden = [] if output_hidden_states else None
        for i, block in enumerate(tr.blocks):
            if hidden is not None:
                hidden.append(x)
            if self.gradient_checkpointing and self.training and kv_cache is None:
                x = checkpoint(block, x, sin, cos, key_mask, use_reentrant=False)
            else:
                x = block(x, sin, cos, key_mask, i, kv_cache, cache_write, cache_start)
        x = tr.ln_f(x)
        if hidden is not None:
            hidden.append(x)
        if logits_slice is not None:
            x = x[:, logits_slice]
        logits = tr.ff_out(x)
        return MMaDAOutput(logits=logits, hidden_states=tuple(hidden) if hidden is not None else None)

    # --- checkpoint I/O -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path, *args, torch_dtype=None, dtype=None, device=None, config=None, **kwargs):
        """Load an official MMaDA checkpoint folder (single or sharded safetensors), strictly."""
        from .checkpoint import load_model

        return load_model(cls, path, dtype=dtype or torch_dtype, device=device, config=config)

    def save_pretrained(self, save_directory, max_shard_size: int | str = "5GB", **kwargs):
        """Write ``config.json`` + safetensors (sharded with an index above ``max_shard_size``)."""
        from .checkpoint import save_model

        save_model(self, save_directory, max_shard_size=max_shard_size)

    # --- accounting -------------------------------------------------------------------------------
    def matmul_flops(self, batch: int, q_len: int, kv_len: Optional[int] = None, logits_len: Optional[int] = None) -> float:
        """Forward FLOPs by the formula of spec/performance_anchors.md (2·N_lin·S_q + 4·layers·d·S_q·S_kv)."""
        c = self.config
        kv_len = q_len if kv_len is None else kv_len
        logits_len = q_len if logits_len is None else logits_len
        d, hid, kvd = c.d_model, c.mlp_hidden, c.n_kv_heads * c.head_dim
        per_layer = d * d * 2 + d * kvd * 2 + 3 * d * hid
        lin = 2 * c.n_layers * per_layer * q_len + 2 * d * c.padded_vocab_size * logits_len
        attn = 4 * c.n_layers * d * q_len * kv_len
        return float(batch * (lin + attn))


def _key_padding_mask(attention_mask: Optional[torch.Tensor], batch: int) -> Optional[torch.Tensor]:
    """``[B, L]`` 0/1 or bool -> SDPA boolean mask ``[B, 1, 1, L]`` (None when nothing is padded)."""
    if attention_mask is None:
        return None
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be a 2-D [batch, length] padding mask, got shape "
                         f"{tuple(attention_mask.shape)}")
    mask = attention_mask.bool()
    if bool(mask.all()):
        return None
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("attention_mask has a row with no real token")
    return mask[:, None, None, :].expand(batch, 1, 1, mask.shape[-1])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
