"""Text-sampler speed: vanilla vs prefix cache vs dual cache, one token per step and threshold 0.9.

Issue 3's benchmark: a ~50M-parameter MMaDA-layout model (random weights), a ~512-token prompt and
256 generated tokens (block 32), batch 1 and 8. Prints a Markdown table and writes JSON rows.

    python benchmarks/sampler_speed.py --batch-sizes 1 8 --out docs/benchmarks/sampler_speed_cpu.json
    python benchmarks/sampler_speed.py --device cuda --dtype bfloat16 ...   # on a GPU

With random weights the softmax is nearly flat, so a 0.9 threshold rarely fires: those rows show the
cache speed-up at ~1 token/step; ``--head-scale 30`` sharpens the LM head to emulate a confident model.
"""
from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path

import torch

from mmada_bench.profiling.measure import measure_matmul_peak, profile_text_sampler
from mmada_ref import MMaDAModelLM
from mmada_ref.config import MMaDAConfig
from mmada_ref.sampling import TextSamplerSettings

CONFIG_50M = dict(d_model=512, n_layers=10, n_heads=8, n_kv_heads=8, mlp_hidden_size=1408, rope_theta=10000.0,
                  vocab_size=16384, embedding_size=16384, new_vocab_size=16384, llm_vocab_size=16000,
                  codebook_size=256, num_vq_tokens=256, mask_token_id=15000, bos_token_id=14900,
                  eos_token_id=14901, pad_token_id=14901, max_sequence_length=4096)
MODES = [("vanilla", "none"), ("prefix", "prefix"), ("dual", "dual")]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--prompt-length", type=int, default=512)
    p.add_argument("--gen-length", type=int, default=256)
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--one-per-step-only", action="store_true", help="skip the threshold rows")
    p.add_argument("--modes", nargs="+", default=[m for m, _ in MODES])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--head-scale", type=float, default=1.0)
    p.add_argument("--cpu-gemm", choices=("onednn", "default"), default="onednn",
                   help="float32 CPU: oneDNN-prepacked weights (the harness default) or torch's default GEMM")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = MMaDAModelLM(MMaDAConfig(**CONFIG_50M)).to(device=device, dtype=dtype).eval()
    if args.head_scale != 1.0:
        model.transformer.ff_out.weight.data *= args.head_scale
    if args.cpu_gemm == "onednn":
        model.pack_cpu_weights()  # after any weight edit (edited weights fall back to the dense path)
    n_params = sum(t.numel() for t in model.parameters())
    peak = measure_matmul_peak(device, dtype)
    print(f"model: {n_params / 1e6:.1f}M parameters; matmul peak {peak / 1e9:.1f} GFLOP/s on {device}")
    rows = []
    for batch in args.batch_sizes:
        for mode, cache in MODES:
            if mode not in args.modes:
                continue
            for threshold in (None,) if args.one_per_step_only else (None, args.threshold):
                s = TextSamplerSettings(gen_length=args.gen_length, steps=args.gen_length,
                                        block_length=args.block_length, cache=cache, threshold=threshold)
                row = profile_text_sampler(model, s, CONFIG_50M["mask_token_id"], batch, args.prompt_length,
                                           vocab_high=14000, peak_flops=peak)
                row.update(mode=mode, unmasking="1/step" if threshold is None else f"threshold {threshold}",
                           n_params=n_params, max_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
                rows.append(row)
                print(_line(row), flush=True)
    print(table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1, default=str))


def _line(r: dict) -> str:
    return (f"batch {r['batch_size']} {r['mode']:7s} {r['unmasking']:14s} NFE {r['nfe']:4d} tok/step "
            f"{r['tokens_per_step']:.2f} s/sample {r['time_per_sample_s']:.2f} pos/s {r['positions_per_s']:.1f}")


def table(rows: list[dict]) -> str:
    """Markdown table with speed-ups against vanilla at the same batch size and unmasking rule."""
    base = {(r["batch_size"], r["unmasking"]): r["latency_p50_s"] for r in rows if r["mode"] == "vanilla"}
    out = ["| batch | mode | unmasking | NFE | tokens/step | s/sample | positions/s | speed-up vs vanilla | MFU | mean step ms |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = base.get((r["batch_size"], r["unmasking"]))
        speed = f"{ref / r['latency_p50_s']:.1f}x" if ref else "-"
        out.append(f"| {r['batch_size']} | {r['mode']} | {r['unmasking']} | {r['nfe']} | {r['tokens_per_step']:.2f} | "
                   f"{r['time_per_sample_s']:.2f} | {r['positions_per_s']:.1f} | {speed} | {r.get('mfu', 0):.1%} | "
                   f"{1000 * r['step_time_mean_s']:.1f} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
