"""Named special-token ids of the joint MMaDA vocabulary.

The official code hard-codes ids such as 126084 in several places. Here every special id is a
field of :class:`SpecialTokens`, resolved once from the text tokenizer and the model config.

Layout (real model / tiny fixture):

* ``bos`` ``<|startoftext|>`` (126080 / 280), ``eos`` = ``pad`` ``<|endoftext|>`` (126081 / 281)
* eleven reserved task tokens starting at ``bos + 4`` (126084.. / 284..):
  ``<|soi|> <|eoi|> <|sov|> <|eov|> <|t2i|> <|mmu|> <|t2v|> <|v2v|> <|lvg|> [iPAD] <|r2i|>``
  (the official ``reserved_token_mapping``; no tokens are added to the tokenizer)
* ``mask`` ``<|mdm_mask|>`` (126336 / 296)
* chat headers ``<|start_header_id|> <|end_header_id|> <|eot_id|>`` (126346-8 / 297-9)
* image codes: id = code + ``image_offset`` with ``image_offset = len(text_tokenizer)``
  (126349 / 300), **not** ``llm_vocab_size``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

#: Names of the reserved task tokens, in id order from ``bos + RESERVED_OFFSET_FROM_BOS``.
RESERVED_TASK_TOKENS = (
    "<|soi|>", "<|eoi|>", "<|sov|>", "<|eov|>", "<|t2i|>", "<|mmu|>",
    "<|t2v|>", "<|v2v|>", "<|lvg|>", "[iPAD]", "<|r2i|>",
)
#: ``<|soi|>`` sits four ids after ``<|startoftext|>`` in the LLaDA vocabulary (126084 = 126080 + 4).
RESERVED_OFFSET_FROM_BOS = 4

MASK_TOKEN = "<|mdm_mask|>"
START_HEADER_TOKEN = "<|start_header_id|>"
END_HEADER_TOKEN = "<|end_header_id|>"
EOT_ID_TOKEN = "<|eot_id|>"

#: Real-model ids (MMaDA-8B / LLaDA-8B tokenizer), used when no tokenizer is at hand.
REAL_MODEL_IDS = dict(
    bos=126080, eos=126081, pad=126081, mask=126336,
    start_header=126346, end_header=126347, eot_id=126348,
    image_offset=126349, codebook_size=8192,
)


@dataclass(frozen=True)
class SpecialTokens:
    """Every special id of the joint vocabulary (see the module docstring for the layout)."""

    bos: int
    eos: int
    pad: int
    mask: int
    start_header: int
    end_header: int
    eot_id: int
    soi: int
    eoi: int
    sov: int
    eov: int
    t2i: int
    mmu: int
    t2v: int
    v2v: int
    lvg: int
    ipad: int
    r2i: int
    image_offset: int
    codebook_size: int

    @classmethod
    def from_ids(cls, *, bos: int, eos: int, mask: int, start_header: int, end_header: int,
                 eot_id: int, image_offset: int, codebook_size: int, pad: int | None = None,
                 reserved: Mapping[str, int] | None = None) -> "SpecialTokens":
        """Build from the basic ids; reserved task tokens default to ``bos + 4 + i``."""
        reserved = dict(reserved or {})
        task = {}
        for i, name in enumerate(RESERVED_TASK_TOKENS):
            task[_field_name(name)] = int(reserved.get(name, bos + RESERVED_OFFSET_FROM_BOS + i))
        return cls(bos=bos, eos=eos, pad=eos if pad is None else pad, mask=mask,
                   start_header=start_header, end_header=end_header, eot_id=eot_id,
                   image_offset=image_offset, codebook_size=codebook_size, **task)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, config: Any | None = None) -> "SpecialTokens":
        """Resolve ids by name from a Hugging Face tokenizer (and ``codebook_size``/``mask_token_id`` from the config)."""
        def by_name(tok: str, fallback: int | None = None) -> int:
            idx = tokenizer.convert_tokens_to_ids(tok)
            unk = getattr(tokenizer, "unk_token_id", None)
            if idx is None or (unk is not None and idx == unk and tok != getattr(tokenizer, "unk_token", None)):
                if fallback is None:
                    raise ValueError(f"tokenizer has no token {tok!r}; is this the MMaDA/LLaDA tokenizer?")
                return fallback
            return int(idx)

        cfg_mask = getattr(config, "mask_token_id", None) if config is not None else None
        codebook = int(getattr(config, "codebook_size", REAL_MODEL_IDS["codebook_size"])) if config is not None \
            else REAL_MODEL_IDS["codebook_size"]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return cls.from_ids(
            bos=int(tokenizer.bos_token_id), eos=int(tokenizer.eos_token_id), pad=int(pad),
            mask=by_name(MASK_TOKEN, cfg_mask),
            start_header=by_name(START_HEADER_TOKEN), end_header=by_name(END_HEADER_TOKEN),
            eot_id=by_name(EOT_ID_TOKEN), image_offset=len(tokenizer), codebook_size=codebook,
        )

    @classmethod
    def real_model(cls) -> "SpecialTokens":
        """The ids of the released MMaDA-8B checkpoints."""
        return cls.from_ids(**REAL_MODEL_IDS)

    def by_name(self) -> dict[str, int]:
        """Official-style ``sptids_dict`` view: token string -> id."""
        out = {name: getattr(self, _field_name(name)) for name in RESERVED_TASK_TOKENS}
        out.update({"<|sot|>": self.bos, "<|eot|>": self.eos, START_HEADER_TOKEN: self.start_header,
                    END_HEADER_TOKEN: self.end_header, EOT_ID_TOKEN: self.eot_id, MASK_TOKEN: self.mask})
        return out

    def image_ids(self, codes):
        """VQ codes (0..K-1) -> token ids."""
        return codes + self.image_offset

    def image_codes(self, ids):
        """Token ids -> VQ codes, clamped to [0, K-1] as the official callers do before decoding."""
        codes = ids - self.image_offset
        return codes.clamp(0, self.codebook_size - 1) if hasattr(codes, "clamp") else codes

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _field_name(token: str) -> str:
    return "ipad" if token == "[iPAD]" else token.strip("<|>")
