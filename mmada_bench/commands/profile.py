"""``profile``: latency / throughput / MFU of text, understanding and text-to-image shapes."""
from __future__ import annotations

import sys

from mmada_bench.models.loader import DTYPES, ModelLoadError, resolve_dtype
from mmada_bench.profiling.store import read_profiles, upsert_profiles
from mmada_bench.profiling.suite import ProfileSettings, markdown_table, run_profiles
from mmada_bench.results.leaderboard import read_leaderboard

HELP = "profile latency, throughput, memory and MFU of a checkpoint (profiles.parquet + PNG plots)"
DESCRIPTION = """\
Time the samplers of a checkpoint on three request shapes: text (text prompt -> text), mmu
(image + prompt -> text; MAGVIT encoding inside the latency) and t2i (prompt -> image, MAGVIT
decoding included), for each preset and batch size. Counted as the throughput glossary of
performance_anchors.md says: NFE per sample (a CFG call counts once), tokens per step, latency of
one batch call p50/p95, useful tokens/s (before the first stop), positions/s, images/s, peak memory
(torch.cuda.max_memory_allocated on a GPU; process max RSS on a CPU), MFU against the measured
large-matmul rate of this device in this dtype. Timing uses CUDA events on a GPU.

Rows go to profiles.parquet beside the leaderboard (atomic, locked; a re-profile replaces the
same settings); plots: profile_latency_vs_batch.png and profile_speed_vs_quality.png (joined with
leaderboard rows of the same model fingerprint and preset). Without --model the packaged demo
model (the shapes-world model; the smoke model where that folder is missing) is profiled with cheap presets
and labelled a demo."""
EPILOG = """\
examples:
  python -m mmada_bench profile                                    # packaged demo model, all shapes, batch 1
  python -m mmada_bench profile --model /ckpt/MMaDA-8B-MixCoT --device cuda --dtype bfloat16 \\
      --tasks text,mmu,t2i --presets gsm8k-paper,fast,mmu-vlmevalkit,t2i-repo --batch-sizes 1,4,16
  python -m mmada_bench profile --model /ckpt/MMaDA-8B-MixCoT --tasks gsm8k --device cuda  # card preset
"""


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=None, help="MMaDA checkpoint folder (default: the packaged demo model)")
    parser.add_argument("--tasks", default="text,mmu,t2i",
                        help="shapes (text, mmu, t2i) or task cards (profiled with the card's preset); default: all shapes")
    parser.add_argument("--presets", default=None,
                        help="comma-separated sampler presets; each goes to the shapes of its kind (*mmu* presets to mmu) "
                             "(default: ci/ci-mmu/t2i-ci for the packaged demo model; "
                             "gsm8k-paper,fast / mmu-vlmevalkit / t2i-repo)")
    parser.add_argument("--batch-sizes", default="1", help="comma-separated batch sizes (default: 1)")
    parser.add_argument("--prompt-length", type=int, default=None,
                        help="prompt tokens (text part for mmu/t2i); default: 900 text / 64 otherwise (smoke: 64/32/16)")
    parser.add_argument("--t2i-max-text-len", type=int, default=512, help="text width of the t2i layout (default: 512)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per setting (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (default: 1)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="model dtype (default: auto = bfloat16 on CUDA, float32 on the CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="leaderboards", help="where profiles.parquet and the plots go")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def main(args) -> int:
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
        if not batch_sizes or min(batch_sizes) < 1 or args.repeats < 1 or args.warmup < 0:
            raise ValueError
    except ValueError:
        print("error: --batch-sizes takes positive integers like 1,4,16; --repeats >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    settings = ProfileSettings(
        model=args.model, tasks=[t.strip() for t in args.tasks.split(",") if t.strip()],
        presets=[p.strip() for p in args.presets.split(",") if p.strip()] if args.presets else None,
        batch_sizes=batch_sizes, prompt_length=args.prompt_length, t2i_max_text_len=args.t2i_max_text_len,
        repeats=args.repeats, warmup=args.warmup, device=args.device, dtype=resolve_dtype(args.dtype, args.device), seed=args.seed,
        output_dir=args.output_dir)
    try:
        rows = run_profiles(settings)
    except (ModelLoadError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    if not rows:
        print("error: nothing was profiled", file=sys.stderr)
        return 1

    path = upsert_profiles(args.output_dir, rows)
    print(markdown_table(rows))
    print(f"profiles: {path}")
    if not args.no_plots:
        from mmada_bench.profiling.plots import (  # matplotlib: loaded only when plotting
            plot_latency_vs_batch,
            plot_speed_vs_quality,
        )

        every = read_profiles(args.output_dir)
        mine = every[every["model_fingerprint"] == rows[0]["model_fingerprint"]]
        mine = mine[mine["device"] == rows[0]["device"]]
        out = path.parent
        print(f"plots: {plot_latency_vs_batch(mine, out / 'profile_latency_vs_batch.png')}, "
              f"{plot_speed_vs_quality(mine, read_leaderboard(args.output_dir), out / 'profile_speed_vs_quality.png')}")
    return 0
