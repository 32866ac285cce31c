"""The dual-cache block step with fused (q/k/v, gate/up) against separate oneDNN-packed products, A/B in one process.

Same random ~50M checkpoint as ``peer_speed.py``; one model packed with ``pack_cpu_weights()`` (the groups of
``mmada_ref.cpu_gemm.pack_group``), one with ``pack_linears`` only. Their logits are asserted bitwise equal; the two
alternate (and swap who goes first) ``--alternations`` times, each a median of ``--reps`` steps; the FLOP floor uses
the best 2048 x 2048 matmul rate measured before and after.

    python benchmarks/fused_gemm_ab.py --batch 1 --alternations 16 --reps 25 --json docs/benchmarks/fused_gemm_ab_b1.json
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_speed import CONFIG, dual_step_time, step_ab_arguments  # noqa: E402

from mmada_bench.profiling.measure import matmul_rates  # noqa: E402
from mmada_ref import MMaDAModelLM  # noqa: E402
from mmada_ref.config import MMaDAConfig  # noqa: E402
from mmada_ref.cpu_gemm import pack_linears  # noqa: E402


def main(argv=None) -> dict:
    args = step_ab_arguments(__doc__.split("\n")[0], reps=15).parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fused = MMaDAModelLM(MMaDAConfig(**CONFIG)).eval()
    separate = MMaDAModelLM(MMaDAConfig(**CONFIG)).eval()
    separate.load_state_dict(fused.state_dict())
    if not fused.pack_cpu_weights() or not pack_linears(separate):
        raise SystemExit("oneDNN packed linears are not available on this machine (float32 CPU torch with mkldnn)")
    ids = torch.randint(0, 14000, (args.batch, 96), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(fused(ids).logits, separate(ids).logits), "fused and separate logits differ"
    rates = [matmul_rates(torch.device("cpu"))]
    models, times = {"fused": fused, "separate": separate}, {"fused": [], "separate": []}
    for i in range(args.alternations):
        for name in (("fused", "separate") if i % 2 == 0 else ("separate", "fused")):
            times[name].append(1e3 * dual_step_time("ours", models[name], args.batch, args.prompt_length,
                                                    args.gen_length, args.block_length, reps=args.reps))
    rates.append(matmul_rates(torch.device("cpu")))
    peak = max(v for r in rates for v in r.values())
    floor_ms = 1e3 * fused.matmul_flops(args.batch, args.block_length, args.prompt_length + args.gen_length,
                                        args.block_length) / peak
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"batch": args.batch, "torch": torch.__version__, "threads": args.threads,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "step_ms": times, "median_ms": med,
              "fused_faster_in": sum(f < s for f, s in zip(times["fused"], times["separate"])),
              "alternations": args.alternations, "reps": args.reps, "floor_ms": floor_ms,
              "matmul_gflops": [{k: v / 1e9 for k, v in r.items()} for r in rates],
              "over_floor": {k: v / floor_ms for k, v in med.items()}}
    print(f"batch {args.batch}: fused {med['fused']:.1f} ms, separate {med['separate']:.1f} ms "
          f"(fused faster in {result['fused_faster_in']} of {args.alternations}), floor {floor_ms:.1f} ms, "
          f"fused / floor {result['over_floor']['fused']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
