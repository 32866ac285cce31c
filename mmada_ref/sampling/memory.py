"""Memory one batch row needs while a sampler runs (an estimate, for choosing batch sizes).

Per row of ``seq_len`` positions in ``dtype_bytes`` per value: the K/V cache (cached text sampling:
``2 · layers · seq_len · kv_dim``), the activations alive inside one layer of a full forward (residual,
normed input, q/k/v and their rotated copies, attention output, SwiGLU gate/up/product), and the
logits of the decoded window with the sampler's float64 softmax / Gumbel noise on it. Classifier-free
guidance doubles the rows of every forward. Weights are not counted (they are loaded already), nor
attention score matrices (SDPA's flash / memory-efficient kernels do not build them).
"""
from __future__ import annotations


def _activation_values(config, seq_len: int) -> int:
    d, kv = config.d_model, config.n_kv_heads * config.head_dim
    return seq_len * (6 * d + 4 * kv + 3 * config.mlp_hidden)


def text_row_bytes(config, seq_len: int, settings, dtype_bytes: int) -> int:
    """Bytes per row of the text sampler (``TextSamplerSettings``) over ``seq_len`` = prompt + gen_length."""
    cfg_rows = 2 if settings.cfg_scale > 0 else 1
    cache = 2 * config.n_layers * seq_len * config.n_kv_heads * config.head_dim if settings.cache != "none" else 0
    window = settings.block_length if settings.cache != "none" else settings.gen_length  # uncached: stray masks too
    logits = window * config.padded_vocab_size
    return int(cache * dtype_bytes + cfg_rows * (_activation_values(config, seq_len) * dtype_bytes
                                                  + logits * (dtype_bytes + 16)))


def image_row_bytes(config, seq_len: int, image_tokens: int, guidance: bool, dtype_bytes: int) -> int:
    """Bytes per row of the MaskGIT sampler: full forwards over ``seq_len``, logits and probabilities of the image
    tokens (float32 softmax, float64 noise)."""
    rows = 2 if guidance else 1
    logits = image_tokens * config.padded_vocab_size
    return int(rows * (_activation_values(config, seq_len) * dtype_bytes + logits * (dtype_bytes + 12)))
