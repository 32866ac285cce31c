"""The world model's figures, measured with the harness itself (``run`` + ``compare``) on the held-out world split.

    python benchmarks/world_figures.py --build runs/world --out docs/world [--limit N]

1. the packaged model on every task (POPE / MME / Flickr30k / GSM8K / MATH500 formats), every parser and
   breakdown (``show --all`` rows) -> ``OUT/scores.md``;
2. Flickr30k-format CIDEr against the image's own references vs shuffled references; text-to-image on the world
   prompts: ``geneval_world`` overall and per category, the world-CLIP score and its shuffled-prompt control;
3. the regression gate: stage 3 (the packaged model) against the stage UniGRPO starts from (the build's stage
   before ``stage3``) on POPE / MME (did UniGRPO help?), and a
   deliberately degraded checkpoint (stage 1 only) against the packaged model (must be flagged);
every number goes to ``OUT/figures.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmada_bench.commands.show import format_show
from mmada_bench.data.loading import WORLD_DIR
from mmada_bench.gate import REGRESSION, compare_runs, load_run, markdown_report
from mmada_bench.results.leaderboard import read_leaderboard
from mmada_bench.world.evaluate import EVAL_TASKS, evaluate, evaluate_t2i, shuffled_reference_cider
from mmada_bench.world.package import package_model
from mmada_bench.world.pipeline import STAGES, Build

GATED_TASKS = ("pope", "mme")
BEFORE_GRPO = STAGES[STAGES.index("stage3") - 1]  # the checkpoint UniGRPO starts from


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="runs/world", help="the world build folder (world build --out)")
    parser.add_argument("--out", default="docs/world")
    parser.add_argument("--data-dir", default="world", help="default: the bundled world split (split label world)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    build, out = Build(args.build), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(args.build) / "eval"
    models = {"stage3": Path(args.build) / "model"}
    for stage in ("stage1", BEFORE_GRPO):  # earlier stages, packaged the same way (labelled, same defaults)
        models[stage] = Path(args.build) / "eval_models" / stage
        if not (models[stage] / "config.json").is_file():
            package_model(build.stage_checkpoint(stage), models[stage])
    figures: dict = {"data_dir": args.data_dir, "limit": args.limit}
    common = dict(data_dir=args.data_dir, output_dir=runs, limit=args.limit, batch_size=args.batch_size)
    figures["scores"] = evaluate(models["stage3"], tasks=EVAL_TASKS, **common)
    print(json.dumps(figures["scores"], indent=1), flush=True)
    board = read_leaderboard(runs / "leaderboard.parquet")
    run_id = figures["scores"]["pope"]["run_id"]
    (out / "scores.md").write_text("```\n" + format_show(board[board["run_id"] == run_id], None) + "\n```\n")
    flickr_items = runs / "items" / figures["scores"]["flickr30k"]["run_id"] / "flickr30k.parquet"
    data_root = WORLD_DIR if args.data_dir == "world" else Path(args.data_dir)
    figures["flickr30k_shuffled_references"] = shuffled_reference_cider(flickr_items, data_root)
    print(json.dumps(figures["flickr30k_shuffled_references"]), flush=True)
    figures["t2i"] = evaluate_t2i(models["stage3"], runs, limit=args.limit, batch_size=args.batch_size)
    print(json.dumps(figures["t2i"]), flush=True)
    stage_runs = {"stage3": run_id}
    for stage in (BEFORE_GRPO, "stage1"):
        scores = evaluate(models[stage], tasks=GATED_TASKS, **common)
        figures[f"{stage}_scores"] = scores
        stage_runs[stage] = scores["pope"]["run_id"]
    gates = {}
    for name, (base, cand) in {"stage3_vs_stage2": (BEFORE_GRPO, "stage3"),
                               "stage1_vs_packaged": ("stage3", "stage1")}.items():
        cmp = compare_runs(load_run(stage_runs[base], runs), load_run(stage_runs[cand], runs), tasks=list(GATED_TASKS))
        (out / f"gate_{name}.md").write_text(markdown_report(cmp))
        gates[name] = {"exit_code": cmp.status, "regression": cmp.status == REGRESSION,
                       "metrics": [{"task": m.task, "metric": m.metric, "baseline": m.baseline, "candidate": m.candidate,
                                    "diff": m.diff, "ci": [m.ci_low, m.ci_high], "n": m.n_shared}
                                   for t in cmp.tasks for m in t.metrics if m.is_primary]}
    figures["gates"] = gates
    print(json.dumps(gates, indent=1))
    (out / "figures.json").write_text(json.dumps(figures, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
