"""``MMaDAConfig``: the official ``config.json`` of MMaDA checkpoints, with documented defaults.

The official ``MMadaConfig`` crashes when any LLaDA ``ModelConfig`` field (e.g. ``precision``) is
missing from ``config.json``. Here every field has a default: the value of the released
MMaDA-8B checkpoints (LLaDA-8B-Instruct backbone + 8192 image codes).
"""
from __future__ import annotations

from transformers import PretrainedConfig

from .tokens import REAL_MODEL_IDS

#: Every field of the official config.json, with the MMaDA-8B value as its default.
DEFAULTS: dict = dict(
    # architecture
    d_model=4096,
    n_layers=32,
    n_heads=32,
    n_kv_heads=32,           # None in some LLaDA configs means n_heads
    mlp_hidden_size=12288,   # takes precedence over mlp_ratio * d_model
    mlp_ratio=4,
    block_type="llama",      # separate q/k/v projections + gated MLP (the only type MMaDA uses)
    activation_type="silu",
    layer_norm_type="rms",
    layer_norm_with_affine=True,
    bias_for_layer_norm=False,
    rms_norm_eps=1e-5,
    attention_layer_norm=False,
    attention_layer_norm_with_affine=True,
    include_bias=False,
    include_qkv_bias=False,
    rope=True,
    rope_theta=500000.0,
    rope_full_precision=True,
    alibi=False,
    alibi_bias_max=8.0,
    flash_attention=False,
    multi_query_attention=None,
    input_emb_norm=False,
    scale_logits=False,
    weight_tying=False,
    block_group_size=1,
    max_sequence_length=4096,  # only sizes the official RoPE cache
    # dropout (0 everywhere in MMaDA)
    attention_dropout=0.0,
    residual_dropout=0.0,
    embedding_dropout=0.0,
    # vocabulary
    vocab_size=134656,
    embedding_size=134656,
    llm_vocab_size=126464,
    new_vocab_size=134656,
    codebook_size=8192,
    num_vq_tokens=1024,
    num_new_special_tokens=0,
    mask_token_id=REAL_MODEL_IDS["mask"],
    # initialisation / bookkeeping (irrelevant when weights are loaded)
    init_device="meta",
    init_fn="mitchell",
    init_std=0.02,
    init_cutoff_factor=None,
    precision="amp_bf16",
)

_SUPPORTED = dict(block_type={"llama"}, activation_type={"silu", "swiglu"}, layer_norm_type={"rms"})


class MMaDAConfig(PretrainedConfig):
    """Configuration of an MMaDA (LLaDA-backbone) masked-diffusion transformer.

    Reads the official ``config.json`` unchanged; any field missing there takes the MMaDA-8B value
    listed in :data:`DEFAULTS`. ``bos/eos/pad`` default to the LLaDA ids (:data:`~mmada_ref.tokens.REAL_MODEL_IDS`).
    """

    model_type = "mmada"

    def __init__(self, bos_token_id: int = REAL_MODEL_IDS["bos"], eos_token_id: int = REAL_MODEL_IDS["eos"],
                 pad_token_id: int = REAL_MODEL_IDS["pad"], tie_word_embeddings: bool = False, **kwargs):
        for name, default in DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, default))
        kwargs.pop("use_cache", None)
        super().__init__(bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                         tie_word_embeddings=tie_word_embeddings, **kwargs)
        self.use_cache = False
        if self.n_kv_heads is None:
            self.n_kv_heads = 1 if self.multi_query_attention else self.n_heads
        self._validate()

    # --- derived quantities -------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_hidden(self) -> int:
        return self.mlp_hidden_size if self.mlp_hidden_size is not None else self.mlp_ratio * self.d_model

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding and LM head (``embedding_size`` if set, else ``vocab_size``)."""
        return self.embedding_size or self.vocab_size

    def _validate(self) -> None:
        for field, allowed in _SUPPORTED.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"MMaDAConfig.{field}={getattr(self, field)!r} is not supported "
                                 f"(supported: {sorted(allowed)})")
        for flag in ("alibi", "attention_layer_norm", "input_emb_norm", "scale_logits", "weight_tying",
                     "include_bias", "include_qkv_bias"):
            if getattr(self, flag):
                raise ValueError(f"MMaDAConfig.{flag}=True is not used by MMaDA and not implemented here")
        if self.d_model % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError(f"d_model ({self.d_model}) must divide by n_heads ({self.n_heads}) and n_heads by "
                             f"n_kv_heads ({self.n_kv_heads})")


def tiny_config(**overrides) -> MMaDAConfig:
    """A small random-init config with the tiny fixture's token layout (for tests and smoke models)."""
    base = dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=4, mlp_hidden_size=160, rope_theta=10000.0,
                max_sequence_length=128, vocab_size=384, embedding_size=384, new_vocab_size=384,
                llm_vocab_size=320, codebook_size=64, num_vq_tokens=16, mask_token_id=296,
                bos_token_id=280, eos_token_id=281, pad_token_id=281)
    base.update(overrides)
    return MMaDAConfig(**base)


def _register_with_auto_classes() -> None:
    """Let ``AutoConfig`` (and so ``AutoTokenizer`` on a checkpoint folder) recognise model_type "mmada"."""
    from transformers import AutoConfig  # transformers is slow to import: loaded on use

    try:
        AutoConfig.register("mmada", MMaDAConfig)
    except ValueError:  # already registered
        pass


_register_with_auto_classes()
