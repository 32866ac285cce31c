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
``cache_write=True`` stores every layer's (rotated) keys and values of the full sequence (into the
cache's preallocated buffers when their shape matches); a later forward with ``cache_start=s`` runs
only the given tokens (positions ``s .. s+n-1``), writes their keys/values into the buffers in place
and attends over the whole buffer (no per-step concatenation). After :meth:`MMaDAModelLM.prepare_native_step`, such
windows (no grad, float32, CPU) run through the AVX-512 kernels of :mod:`mmada_ref.cpu_native` instead, one C++
call per block.

RoPE sin/cos tables are computed once per model for ``max(max_sequence_length, needed)`` positions
and sliced; grouped-query attention uses SDPA's ``enable_gqa`` where torch has it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.utils import ModelOutput

from .checkpoint import load_model, save_model
from .config import MMaDAConfig
from .cpu_gemm import PackedLinear, grouped_linear, pack_group, pack_linears, unpack_linears


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


def _probe_gqa() -> bool:
    """True when ``F.scaled_dot_product_attention`` accepts ``enable_gqa`` (torch >= 2.5)."""
    try:
        q, kv = torch.zeros(1, 2, 1, 4), torch.zeros(1, 1, 1, 4)
        F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
        return True
    except (TypeError, RuntimeError):
        return False


#: Whether attention uses SDPA's grouped-query support; set False to force the repeat path.
SDPA_GQA = _probe_gqa()


def grouped_attention(q, k, v, mask=None, use_gqa: Optional[bool] = None) -> torch.Tensor:
    """Bidirectional SDPA of ``q`` ``[B, H, n, D]`` over ``k``/``v`` ``[B, H_kv, L, D]`` (H a multiple of H_kv).

    ``use_gqa`` (default :data:`SDPA_GQA`): pass ``enable_gqa=True`` instead of repeating K/V over heads.
    """
    rep = q.shape[1] // k.shape[1]
    if rep == 1:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
    if SDPA_GQA if use_gqa is None else use_gqa:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False,
                                              enable_gqa=True)
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)


@dataclass
class KVCache:
    """Per-layer rotated keys/values ``[B, H_kv, L, D]`` of a full sequence (see module docstring).

    The buffers are allocated by the first full write and reused (copied into) by later writes of the
    same shape; :meth:`update` overwrites a window in place and returns the whole buffers.
    """

    keys: list = field(default_factory=list)
    values: list = field(default_factory=list)

    def __len__(self) -> int:
        return 0 if not self.keys else self.keys[0].shape[-2]

    def reset(self) -> None:
        self.keys.clear()
        self.values.clear()

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store layer ``layer``'s full-sequence keys/values (in place when a buffer of that shape exists)."""
        if layer == 0 and self.keys and not _same_layout(self.keys[0], k):
            self.reset()
        if layer < len(self.keys):
            self.keys[layer].copy_(k)
            self.values[layer].copy_(v)
        elif layer == len(self.keys):
            self.keys.append(k.clone(memory_format=torch.contiguous_format))  # own buffers, never aliases
            self.values.append(v.clone(memory_format=torch.contiguous_format))
        else:
            raise ValueError(f"KVCache: layer {layer} written before layer {len(self.keys)}")

    def update(self, layer: int, start, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Overwrite positions ``start .. start+n-1`` (an int, or an index tensor ``[n]``) and return the buffers."""
        kb, vb = self.keys[layer], self.values[layer]
        if isinstance(start, torch.Tensor):
            kb.index_copy_(2, start, k)
            vb.index_copy_(2, start, v)
        else:
            end = start + k.shape[2]
            kb[:, :, start:end].copy_(k)
            vb[:, :, start:end].copy_(v)
        return kb, vb


def _same_layout(buffer: torch.Tensor, t: torch.Tensor) -> bool:
    return buffer.shape == t.shape and buffer.dtype == t.dtype and buffer.device == t.device


class Block(nn.Module):
    """One pre-norm block: ``x + attn_out(Attn(attn_norm(x)))`` then ``x + ff_out(silu(ff_proj(h)) * up_proj(h))``.

    Attributes carry the official names (``q_proj``, ``attn_out``, ``ff_proj`` = gate, ``up_proj``, ``ff_out``).
    """

    def __init__(self, config: MMaDAConfig):
        super().__init__()
        d, hidden = config.d_model, config.mlp_hidden
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        # definition order = official state_dict order
        self.attn_out = PackedLinear(d, d, bias=False)
        self.ff_out = PackedLinear(hidden, d, bias=False)
        self.attn_norm = RMSNorm(d, config.rms_norm_eps)
        self.ff_norm = RMSNorm(d, config.rms_norm_eps)
        self.q_proj = PackedLinear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = PackedLinear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = PackedLinear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.ff_proj = PackedLinear(d, hidden, bias=False)
        self.up_proj = PackedLinear(d, hidden, bias=False)

    def forward(self, x, sin, cos, key_mask, layer=0, kv_cache=None, cache_write=False, cache_start=None):
        x = x + self.attention(self.attn_norm(x), sin, cos, key_mask, layer, kv_cache, cache_write, cache_start)
        gate, up = grouped_linear((self.ff_proj, self.up_proj), self.ff_norm(x))
        if torch.is_grad_enabled():
            return x + self.ff_out(F.silu(gate) * up)
        return x + self.ff_out(F.silu(gate, inplace=True).mul_(up))  # same values, two fewer buffers

    def attention(self, h, sin, cos, key_mask, layer, kv_cache, cache_write, cache_start):
        """Bidirectional grouped-query attention with RoPE; reads/writes ``kv_cache`` when given."""
        B, L, _ = h.shape
        q, k, v = grouped_linear((self.q_proj, self.k_proj, self.v_proj), h)
        q = q.view(B, L, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, sin, cos), apply_rope(k, sin, cos)
        if kv_cache is not None and cache_write:
            kv_cache.write(layer, k, v)
        elif kv_cache is not None and cache_start is not None:
            k, v = kv_cache.update(layer, cache_start, k, v)
        out = grouped_attention(q, k, v, key_mask)
        return self.attn_out(out.transpose(1, 2).reshape(B, L, -1))


class Transformer(nn.Module):
    """``wte`` -> blocks -> ``ln_f`` -> ``ff_out`` (the official ``model.transformer`` module)."""

    def __init__(self, config: MMaDAConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.padded_vocab_size, config.d_model)
        self.ln_f = RMSNorm(config.d_model, config.rms_norm_eps)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ff_out = PackedLinear(config.d_model, config.padded_vocab_size, bias=False)


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
class MMaDAModelLM(nn.Module):
    """MMaDA masked-diffusion LM over the joint text + image vocabulary.

    ``forward(input_ids, attention_mask=None)`` returns logits ``[B, L, V]`` for every position;
    ``attention_mask`` ``[B, L]`` (bool or 0/1) masks padded *keys* and never makes attention causal.

    A plain ``nn.Module`` with the Hugging Face-style surface the project uses (``config``,
    ``from_pretrained`` / ``save_pretrained``, ``device`` / ``dtype``, the embedding accessors, gradient
    checkpointing), not a ``transformers.PreTrainedModel``: importing that base class pulls in
    transformers' whole modeling stack (~2 s of every start-up on the 2-core VM, docs/benchmarks).
    """

    config_class = MMaDAConfig
    supports_gradient_checkpointing = True
    _no_split_modules = ["Block"]  # accelerate's device maps / FSDP auto-wrap read this

    def __init__(self, config: MMaDAConfig):
        super().__init__()
        self.config = config
        self.name_or_path = ""
        self.model = _Backbone(config)
        self.gradient_checkpointing = False
        self.apply(self._init_weights)

    # --- Hugging Face-style plumbing ------------------------------------------------------------
    @property
    def transformer(self) -> Transformer:
        return self.model.transformer

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

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
                return_dict: bool = True, logits_positions=None, compiled_step: bool = False,
                **unused) -> MMaDAOutput:
        """Run the transformer.

        Args:
            input_ids: ``[B, n]`` token ids (the full sequence, or a window when reading a cache).
            attention_mask: ``[B, L_full]`` padding mask over keys (1/True = attend), or the prepared
                ``[B, 1, 1, L_full]`` boolean mask of :func:`prepare_attention_mask`. ``None`` = no mask.
            position_ids: RoPE positions ``[n]``; default ``cache_start + arange(n)`` (cached tables).
            output_hidden_states: also return the input of every block and the final normed state.
            kv_cache: a :class:`KVCache` to fill (``cache_write=True``) or read (``cache_start=s``).
            logits_slice: only project these sequence positions to the vocabulary (saves the LM head).
            logits_positions: like ``logits_slice`` (takes precedence): a slice, a 1-D index tensor of
                positions (logits ``[B, k, V]``) or a boolean ``[B, n]`` mask (logits ``[N_true, V]``).
            compiled_step: run a cache-reading window through ``torch.compile`` (fixed shapes; the
                first call per shape compiles). Ignored for full forwards.
        """
        if unused.get("attention_bias") is not None:
            raise TypeError("attention_bias is not supported: pass a 2-D padding mask as attention_mask")
        B, n = input_ids.shape
        start = cache_start or 0
        if position_ids is None:
            sin, cos = self.rope_tables(start, n, input_ids.device)
        else:
            sin, cos = rope_sin_cos(position_ids, self.config.head_dim, self.config.rope_theta)
        key_mask = prepare_attention_mask(attention_mask, B)
        select = logits_slice if logits_positions is None else logits_positions
        reading = kv_cache is not None and cache_start is not None and not cache_write
        native = self.__dict__.get("_native_step")
        if (native is not None and reading and position_ids is None and not output_hidden_states and not compiled_step
                and native.applies(input_ids, kv_cache, cache_start)):
            return MMaDAOutput(logits=native(input_ids, sin, cos, key_mask, kv_cache, cache_start, select))
        if compiled_step and reading and not output_hidden_states:
            index = torch.arange(start, start + n, device=input_ids.device)
            logits, _ = self._compiled()(input_ids, sin, cos, key_mask, kv_cache, False, index, select, False)
        else:
            logits, hidden = self._run(input_ids, sin, cos, key_mask, kv_cache, cache_write, cache_start, select,
                                       output_hidden_states)
            return MMaDAOutput(logits=logits, hidden_states=hidden)
        return MMaDAOutput(logits=logits, hidden_states=None)

    def _run(self, input_ids, sin, cos, key_mask, kv_cache, cache_write, cache_start, select, output_hidden_states):
        """Embedding -> blocks -> ``ln_f`` -> LM head on the ``select``ed positions; returns (logits, hidden)."""
        tr = self.transformer
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
        return tr.ff_out(select_positions(x, select)), (tuple(hidden) if hidden is not None else None)

    def _compiled(self):
        """``torch.compile`` of :meth:`_run` (built once per model; shapes are specialised, not dynamic)."""
        fn = self.__dict__.get("_compiled_run")
        if fn is None:
            fn = torch.compile(self._run, dynamic=False)
            self.__dict__["_compiled_run"] = fn
        return fn

    def prepare_attention_mask(self, attention_mask: Optional[torch.Tensor], batch: int) -> Optional[torch.Tensor]:
        """The boolean SDPA mask of :func:`prepare_attention_mask` (a sampler converts its mask once per call)."""
        return prepare_attention_mask(attention_mask, batch)

    def rope_tables(self, start: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """sin/cos ``[n, head_dim]`` of positions ``start .. start+n-1``, sliced from a table computed once
        for ``max(max_sequence_length, start+n)`` positions (recomputed when longer or on another device)."""
        table = self.__dict__.get("_rope_table")
        if table is None or table[0].shape[0] < start + n or table[0].device != device:
            length = max(int(self.config.max_sequence_length or 0), start + n)
            table = rope_sin_cos(torch.arange(length, device=device), self.config.head_dim, self.config.rope_theta)
            self.__dict__["_rope_table"] = table
        return table[0][start:start + n], table[1][start:start + n]

    # --- CPU kernels ------------------------------------------------------------------------------
    def pack_cpu_weights(self) -> int:
        """Give every linear layer a oneDNN-prepacked copy of its weight for no-grad float32 CPU forwards
        (:mod:`mmada_ref.cpu_gemm`; an extra copy of the linear weights). Returns the number packed: 0 on
        another device / dtype or without oneDNN. Weights edited later fall back to the dense path.
        Each block's q / k / v and gate / up are packed as one product each (:func:`~.cpu_gemm.pack_group`)."""
        packed = 0
        for block in self.transformer.blocks:
            for group in ((block.q_proj, block.k_proj, block.v_proj), (block.ff_proj, block.up_proj)):
                packed += len(group) * pack_group(group)
        return packed + pack_linears(self, skip_grouped=True)

    def unpack_cpu_weights(self) -> None:
        """Drop the packed copies of :meth:`pack_cpu_weights` and :meth:`prepare_native_step` (forwards use MKL /
        the default GEMM again)."""
        unpack_linears(self)
        self.__dict__.pop("_native_step", None)

    def prepare_native_step(self) -> bool:
        """Serve cached-window forwards (the Fast-dLLM prefix / dual-cache step) through the native AVX-512 kernels
        of :mod:`mmada_ref.cpu_native` (one C++ call per block; a packed copy of the weights). False, with
        nothing changed, where they cannot run here (:func:`mmada_ref.cpu_native.unavailable_reason` says why)."""
        from .cpu_native.step import native_step_or_none
        step = native_step_or_none(self)
        if step is None:
            return False
        self.__dict__["_native_step"] = step
        return True

    @property
    def uses_native_step(self) -> bool:
        """True where :meth:`prepare_native_step` is in effect."""
        return "_native_step" in self.__dict__

    # --- checkpoint I/O -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path, *args, torch_dtype=None, dtype=None, device=None, config=None, **kwargs):
        """Load an official MMaDA checkpoint folder (single or sharded safetensors), strictly."""
        return load_model(cls, path, dtype=dtype or torch_dtype, device=device, config=config)

    def save_pretrained(self, save_directory, max_shard_size: int | str = "5GB", **kwargs):
        """Write ``config.json`` + safetensors (sharded with an index above ``max_shard_size``)."""
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


def select_positions(x: torch.Tensor, select) -> torch.Tensor:
    """The rows of ``x`` ``[B, n, d]`` that go through the LM head: a slice or 1-D index tensor of positions
    (``[B, k, d]``), a boolean ``[B, n]`` mask (``[N_true, d]``), or all of them (``None``)."""
    if isinstance(select, slice):
        return x[:, select]
    if isinstance(select, torch.Tensor):
        return x[select] if select.dtype == torch.bool else x.index_select(1, select)
    return x


def prepare_attention_mask(attention_mask: Optional[torch.Tensor], batch: int) -> Optional[torch.Tensor]:
    """``[B, L]`` 0/1 or bool -> SDPA boolean mask ``[B, 1, 1, L]`` (None when nothing is padded).

    A mask that is already ``[B, 1, 1, L]`` boolean passes through, so a sampler can prepare it once.
    """
    if attention_mask is None:
        return None
    if attention_mask.dim() == 4 and attention_mask.dtype == torch.bool and attention_mask.shape[1:3] == (1, 1):
        return attention_mask
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be a 2-D [batch, length] padding mask, got shape "
                         f"{tuple(attention_mask.shape)}")
    mask = attention_mask.bool()
    if bool(mask.all()):
        return None
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("attention_mask has a row with no real token")
    return mask[:, None, None, :].expand(batch, 1, 1, mask.shape[-1])
