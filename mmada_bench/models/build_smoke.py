"""Build the packaged smoke checkpoint ``mmada_bench/assets/mmada-smoke/`` (random weights, labelled smoke).

It has the real folder layout (config.json, model.safetensors, tokenizer files, magvitv2/) and the
MMaDA special-token layout, so ``run`` exercises the whole real pipeline on a fresh machine. Its
answers are meaningless: every output that uses it says "smoke".

    python -m mmada_bench.models.build_smoke --out mmada_bench/assets/mmada-smoke --corpus ../shared/data/gsm8k/train.jsonl
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable

import torch

from mmada_bench.models.defaults import DEFAULTS_FILE
from mmada_bench.models.smoke import SMOKE_LABEL, SMOKE_MARKER, SMOKE_PRESETS
from mmada_ref import MMaDAModelLM
from mmada_ref.config import tiny_config
from mmada_ref.jsonl import read_jsonl
from mmada_ref.magvit import MAGVITConfig, MAGVITv2
from mmada_ref.text_tokenizer import build_tiny_tokenizer, special_token_names

#: tiny MAGVIT: 32 px images, 4 levels (downsample 8) -> 4x4 = 16 codes, 64-entry codebook (6 bits)
SMOKE_MAGVIT = {
    "encoder_kwargs": {"ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": [1, 1, 1, 1], "attn_resolutions": [5],
                       "z_channels": 6, "resolution": 32, "double_z": False},
    "decoder_kwargs": {"ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": [1, 1, 1, 1], "attn_resolutions": [5],
                       "z_channels": 6},
    "quantizer_kwargs": {"codebook_dim": 6},
}


def corpus_lines(files: Iterable[str | Path]) -> list[str]:
    """Text of every string field of jsonl files (questions, answers, solutions...)."""
    lines = []
    for file in files:
        for row in read_jsonl(file):
            if isinstance(row, dict):
                lines.extend(v for v in row.values() if isinstance(v, str))
    return lines


def build_smoke_checkpoint(out_dir: str | Path, corpus: list[str], n_text_tokens: int = 1000, seed: int = 0) -> Path:
    """Write a random-weight MMaDA checkpoint with its own small tokenizer and MAGVIT to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    build_tiny_tokenizer(corpus, out, n_text_tokens=n_text_tokens)
    text_len = n_text_tokens + len(special_token_names(n_text_tokens))
    magvit_cfg = MAGVITConfig.from_official_kwargs(SMOKE_MAGVIT)
    codebook = magvit_cfg.codebook_size
    vocab = text_len + codebook
    vocab += -vocab % 32  # unused rows, as the real model has
    bos = n_text_tokens
    config = tiny_config(vocab_size=vocab, embedding_size=vocab, new_vocab_size=vocab, llm_vocab_size=text_len,
                         codebook_size=codebook, num_vq_tokens=16, bos_token_id=bos, eos_token_id=bos + 1,
                         pad_token_id=bos + 1, mask_token_id=bos + 16, max_sequence_length=4096)
    torch.manual_seed(seed)
    MMaDAModelLM(config).save_pretrained(out)
    torch.manual_seed(seed + 1)
    MAGVITv2(magvit_cfg).save_pretrained(out / "magvitv2")
    (out / DEFAULTS_FILE).write_text(json.dumps({"label": SMOKE_LABEL, "presets": SMOKE_PRESETS}, indent=1) + "\n")
    (out / SMOKE_MARKER).write_text(
        "# mmada-smoke\n\nRandom weights in the MMaDA layout, for plumbing and CI only. "
        "Built by `python -m mmada_bench.models.build_smoke`. Every result it produces is labelled smoke.\n")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "assets" / "mmada-smoke"))
    parser.add_argument("--corpus", nargs="+", required=True, help="jsonl files whose text trains the tokenizer")
    parser.add_argument("--vocab", type=int, default=1000, help="ordinary text tokens")
    args = parser.parse_args(argv)
    print(build_smoke_checkpoint(args.out, corpus_lines(args.corpus), n_text_tokens=args.vocab))


if __name__ == "__main__":
    main()
