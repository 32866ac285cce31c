"""``NativeStep``: a model's cached-window forward through the native kernels (one C++ call per block)."""
from __future__ import annotations

from typing import Optional

import torch

from ..modeling import select_positions


class NativeStep:
    """The weights of an ``MMaDAModelLM`` packed for :mod:`mmada_ref.cpu_native`'s kernels, and the step that uses them.

    Serves no-grad float32 CPU forwards of a window ``cache_start .. cache_start + n - 1`` over a filled
    :class:`~mmada_ref.modeling.KVCache` (the Fast-dLLM prefix / dual-cache step); :meth:`applies` says when.
    Weights edited after packing (another storage or a bumped version counter) make it stop applying.
    """

    def __init__(self, model, kernels):
        self.model = model
        tr, c = model.transformer, model.config
        pack = kernels.pack_weight
        with torch.no_grad():
            self.blocks = [(b.attn_norm.weight.detach(), b.ff_norm.weight.detach(),
                            pack(torch.cat([b.q_proj.weight, b.k_proj.weight, b.v_proj.weight]).detach()),
                            pack(b.attn_out.weight.detach()),
                            pack(torch.cat([b.ff_proj.weight, b.up_proj.weight]).detach()),
                            pack(b.ff_out.weight.detach())) for b in tr.blocks]
            self.head = pack(tr.ff_out.weight.detach())
        self.vocab = tr.ff_out.out_features
        self.shape = (c.n_heads, c.n_kv_heads, c.mlp_hidden)
        self.eps = c.rms_norm_eps
        self.params = list(model.parameters())
        self.keys = self._weight_keys()

    def _weight_keys(self) -> list:
        return [(p.data_ptr(), p._version) for p in self.params]

    def applies(self, input_ids: torch.Tensor, kv_cache, cache_start) -> bool:
        """True where this step computes the model's forward: a no-grad float32 CPU window read from a cache
        whose buffers are contiguous and long enough, with the weights as packed."""
        if torch.is_grad_enabled() or not isinstance(cache_start, int) or input_ids.device.type != "cpu":
            return False
        if len(kv_cache.keys) != len(self.blocks) or torch.compiler.is_compiling():
            return False
        k = kv_cache.keys[0]
        if (k.dtype != torch.float32 or not k.is_contiguous() or k.shape[0] != input_ids.shape[0]
                or cache_start + input_ids.shape[1] > k.shape[2]):
            return False
        return self.model.dtype == torch.float32 and self._weight_keys() == self.keys

    def __call__(self, input_ids, sin, cos, key_mask, kv_cache, cache_start: int, select) -> torch.Tensor:
        """Logits of the ``select``ed window positions (as :meth:`MMaDAModelLM._run` selects them)."""
        from . import load_kernels
        k = load_kernels()
        tr = self.model.transformer
        heads, kv_heads, hidden = self.shape
        mask = None if key_mask is None else key_mask[:, 0, 0, :]
        x = tr.wte(input_ids).contiguous()
        sin, cos = sin.contiguous(), cos.contiguous()
        with torch.profiler.record_function("mmada::native_blocks"):  # named in torch.profiler tables
            for i, (attn_norm, ff_norm, qkv, out, gate_up, down) in enumerate(self.blocks):
                x = k.block_step(x, attn_norm, ff_norm, self.eps, qkv, out, gate_up, down, heads, kv_heads, hidden,
                                 sin, cos, kv_cache.keys[i], kv_cache.values[i], cache_start, mask)
        x = select_positions(x, select)
        with torch.profiler.record_function("mmada::native_norm_head"):
            return k.norm_linear(x, tr.ln_f.weight.detach(), self.eps, self.head, self.vocab)


#: the largest head dimension the block kernel takes (its RoPE buffer)
MAX_HEAD_DIM = 1024


def native_step_or_none(model) -> Optional[NativeStep]:
    """A :class:`NativeStep` for ``model`` where the kernels load and the model fits them (float32 on a CPU, an even
    head dimension up to :data:`MAX_HEAD_DIM`), else None."""
    from . import load_kernels
    head_dim = model.config.head_dim
    if model.device.type != "cpu" or model.dtype != torch.float32 or head_dim % 2 or head_dim > MAX_HEAD_DIM:
        return None
    kernels = load_kernels()
    return None if kernels is None else NativeStep(model, kernels)
