"""The dual-cache block step through the native kernels (``cpu_gemm=native``) against the oneDNN torch path, in one
process, with where the native step's time goes.

Same random ~50M checkpoint as ``peer_speed.py``. The two models hold the same weights; their step logits are checked
to agree (relative 1e-4, same argmax). The two steps alternate (and swap who goes first) ``--alternations`` times,
each a median of ``--reps`` steps after a refresh (32 queries over prompt + generation keys, LM head on the block).
The breakdown times, with the same weights and activations' shapes: the step's 41 products alone (in step order, so
their weights stream as in the step), the 10 attentions alone over the filled cache, and the whole step; the rest
is RMSNorm, RoPE, the cache writes, SiLU x up and the Python between blocks. The FLOP floor uses the best 2048 x 2048
rate over every GEMM measured before and after (oneDNN, MKL, native).

    python benchmarks/native_step.py --batch 1 --json docs/benchmarks/native_step_b1.json
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_speed import CONFIG, median_seconds, step_ab_arguments  # noqa: E402

from mmada_bench.profiling.measure import matmul_rates  # noqa: E402
from mmada_ref import KVCache, MMaDAModelLM  # noqa: E402
from mmada_ref.config import MMaDAConfig  # noqa: E402
from mmada_ref.cpu_native import load_kernels, unavailable_reason  # noqa: E402


def median_ms(fn, reps: int) -> float:
    return 1e3 * median_seconds(fn, reps)


def breakdown(model, kernels, cache, batch, block, reps) -> dict:
    """Median ms of the native step's products alone and its attentions alone (same weights, shapes and cache)."""
    step, c = model.__dict__["_native_step"], model.config
    d, hidden, heads = c.d_model, c.mlp_hidden, c.n_heads
    qkv_out = (c.n_heads + 2 * c.n_kv_heads) * c.head_dim
    rows = {n: torch.randn(batch, block, n) for n in {d, hidden, heads * c.head_dim}}
    products = [p for (_, _, qkv, out, gate_up, down) in step.blocks
                for p in ((rows[d], qkv, qkv_out), (rows[heads * c.head_dim], out, d), (rows[d], gate_up, 2 * hidden),
                          (rows[hidden], down, d))] + [(rows[d], step.head, step.vocab)]
    q = torch.randn(batch, block, heads, c.head_dim).transpose(1, 2)
    scale = c.head_dim ** -0.5
    return {"products_ms": median_ms(lambda: [kernels.linear(x, w, n) for x, w, n in products], reps),
            "products": len(products),
            "attention_ms": median_ms(lambda: [kernels.attention(q, k, v, None, scale)
                                               for k, v in zip(cache.keys, cache.values)], reps)}


def main(argv=None) -> dict:
    args = step_ab_arguments(__doc__.split("\n")[0], reps=25).parse_args(argv)
    torch.set_num_threads(args.threads)
    kernels = load_kernels()
    if kernels is None:
        raise SystemExit(f"native kernels unavailable: {unavailable_reason()}")
    torch.manual_seed(0)
    onednn = MMaDAModelLM(MMaDAConfig(**CONFIG)).eval()
    native = MMaDAModelLM(MMaDAConfig(**CONFIG)).eval()
    native.load_state_dict(onednn.state_dict())
    onednn.pack_cpu_weights()
    native.pack_cpu_weights()
    assert native.prepare_native_step()
    B, lo, blk = args.batch, args.prompt_length, args.block_length
    ids = torch.randint(0, 14000, (B, lo + args.gen_length), generator=torch.Generator().manual_seed(2))
    caches, steps = {}, {}
    with torch.no_grad():
        for name, model in (("onednn", onednn), ("native", native)):
            caches[name] = KVCache()
            model(ids, kv_cache=caches[name], cache_write=True)
            steps[name] = (lambda m, c: lambda: m(ids[:, lo:lo + blk], kv_cache=c, cache_start=lo,
                                                  logits_slice=slice(0, blk)).logits)(model, caches[name])
        a, b = steps["onednn"](), steps["native"]()
        err = float((a - b).abs().max() / a.abs().max())
        assert err < 1e-4 and torch.equal(a.argmax(-1), b.argmax(-1)), f"native step logits differ ({err:.1e})"
        rates = [matmul_rates(torch.device("cpu"))]
        times = {"onednn": [], "native": []}
        for i in range(args.alternations):
            for name in (("onednn", "native") if i % 2 == 0 else ("native", "onednn")):
                times[name].append(median_ms(steps[name], args.reps))
        parts = breakdown(native, kernels, caches["native"], B, blk, args.reps)
        parts["step_ms"] = median_ms(steps["native"], args.reps)
        parts["rest_ms"] = parts["step_ms"] - parts["products_ms"] - parts["attention_ms"]
        rates.append(matmul_rates(torch.device("cpu")))
    peak = max(v for r in rates for v in r.values())
    flops = native.matmul_flops(B, blk, lo + args.gen_length, blk)
    floor_ms = 1e3 * flops / peak
    med = {k: statistics.median(v) for k, v in times.items()}
    c = native.config
    attn_flops = 4 * c.n_layers * c.d_model * blk * (lo + args.gen_length) * B
    parts.update(products_gflops=(flops - attn_flops) / parts["products_ms"] / 1e6,
                 attention_gflops=attn_flops / parts["attention_ms"] / 1e6)
    result = {"batch": B, "torch": torch.__version__, "threads": args.threads,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "step_ms": times, "median_ms": med,
              "native_faster_in": sum(n < o for n, o in zip(times["native"], times["onednn"])),
              "alternations": args.alternations, "reps": args.reps, "gflop": flops / 1e9, "floor_ms": floor_ms,
              "matmul_gflops": [{k: v / 1e9 for k, v in r.items()} for r in rates], "logit_rel_diff": err,
              "over_floor": {k: v / floor_ms for k, v in med.items()}, "native_breakdown": parts}
    print(f"batch {B}: native {med['native']:.1f} ms, onednn {med['onednn']:.1f} ms (native faster in "
          f"{result['native_faster_in']} of {args.alternations}), floor {floor_ms:.1f} ms at {peak / 1e9:.0f} GFLOP/s: "
          f"native / floor {result['over_floor']['native']:.2f}, onednn / floor {result['over_floor']['onednn']:.2f}")
    print(f"native step {parts['step_ms']:.1f} ms = products {parts['products_ms']:.1f} "
          f"({parts['products_gflops']:.0f} GFLOP/s) + attention {parts['attention_ms']:.1f} "
          f"({parts['attention_gflops']:.0f} GFLOP/s) + rest {parts['rest_ms']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
