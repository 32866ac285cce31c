"""A random-init tiny MMaDA for the world, in the official checkpoint layout (the starting point of stage 1).

The folder holds ``config.json`` + ``model.safetensors`` (:class:`mmada_ref.MMaDAModelLM`), the world tokenizer
files and ``magvitv2/`` (the world MAGVIT-v2). Token layout: text ids ``0..len(tokenizer)-1`` (special ids
by name from the tokenizer), image ids ``len(tokenizer) + code``, vocabulary padded to a multiple of 32.

Initialisation: every linear and embedding weight ~ N(0, ``init_std``) with ``init_std = d_model ** -0.5``
by default (the fan-in scale of the width). The official ``init_std = 0.02`` is that scale for LLaDA's 4,096-wide
model; at width 192 it is 3.6x too small, attention starts uniform, and the world's comparisons (is the
question's object this cell's object?) were not learned in 2,000 steps (docs/world/rounds.md, "Third round").
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import torch

from mmada_ref import MMaDAModelLM
from mmada_ref.config import tiny_config
from mmada_ref.magvit import MAGVITv2
from mmada_ref.text_tokenizer import load_text_tokenizer
from mmada_ref.tokens import SpecialTokens

from .scene import CANVAS

VOCAB_MULTIPLE = 32
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def build_world_model(out: str | Path, tokenizer_dir: str | Path, magvit_dir: str | Path, d_model: int = 256,
                      n_layers: int = 6, n_heads: int = 8, mlp_hidden_size: int = 688,
                      max_sequence_length: int = 1024, seed: int = 0, init_std: Optional[float] = None) -> dict:
    """Write the checkpoint folder; returns its token layout (also ``world_model.json``).

    ``init_std`` defaults to ``d_model ** -0.5`` (see the module docstring)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = load_text_tokenizer(tokenizer_dir)
    vq = MAGVITv2.from_pretrained(magvit_dir)
    codebook = vq.codebook_size
    side = CANVAS // vq.config.downsample_factor
    text_len = len(tokenizer)
    vocab = text_len + codebook
    vocab += -vocab % VOCAB_MULTIPLE
    ids = SpecialTokens.from_tokenizer(tokenizer)
    config = tiny_config(d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_heads,
                         mlp_hidden_size=mlp_hidden_size, vocab_size=vocab, embedding_size=vocab,
                         new_vocab_size=vocab, llm_vocab_size=text_len, codebook_size=codebook,
                         num_vq_tokens=side * side, bos_token_id=ids.bos, eos_token_id=ids.eos,
                         pad_token_id=ids.pad, mask_token_id=ids.mask, max_sequence_length=max_sequence_length,
                         init_std=init_std if init_std is not None else d_model ** -0.5)
    torch.manual_seed(seed)
    model = MMaDAModelLM(config)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (Path(tokenizer_dir) / name).is_file():
            shutil.copy2(Path(tokenizer_dir) / name, out / name)
    vq.save_pretrained(out / "magvitv2")
    layout = {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": vocab,
              "text_tokens": text_len, "image_offset": ids.image_offset, "codebook_size": codebook,
              "num_vq_tokens": side * side, "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads,
              "init_std": config.init_std}
    (out / "world_model.json").write_text(json.dumps(layout, indent=1) + "\n")
    return layout
