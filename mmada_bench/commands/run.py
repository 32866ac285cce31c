"""``run``: evaluate a model on tasks; resumable; writes Parquet results."""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from mmada_bench.commands.show import format_ci, format_value, load_baselines_quietly
from mmada_bench.errors import UsageError
from mmada_bench.models.loader import DTYPES, ModelLoadError, resolve_dtype
from mmada_bench.models.smoke import NO_MODEL_WARNING
from mmada_bench.results.baselines import reference_value
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunBusy, RunSettings

HELP = "evaluate a model on one or more tasks (resumable; results in Parquet)"
DESCRIPTION = """\
Evaluate a model on tasks with their cards' protocols. Every finished item is stored at once
(runs/<run_id>/items/<task>.jsonl, fsync'ed), so an interrupted run loses nothing: re-run the
same command and it continues where it stopped. When a task finishes, its metrics go to
leaderboard.parquet and its predictions to items/<run_id>/<task>.parquet.

Without --model the packaged smoke checkpoint is used; without a dataset at hand the bundled
smoke subsets are used. Both are labelled (model name, split "smoke") in every output."""
EPILOG = """\
examples:
  python -m mmada_bench run --tasks gsm8k --limit 20
  python -m mmada_bench run --tasks gsm8k,math500 --model /ckpt/MMaDA-8B-MixCoT --data-dir ../shared/data \\
      --device cuda --dtype bfloat16 --batch-size 8 --variant mmada-chat
  python -m mmada_bench run --tasks gsm8k --model dummy:delay=0.05 --limit 50   # plumbing check
  python -m mmada_bench run --tasks gsm8k --preset fast --seed 0 --output-dir out/
  python -m mmada_bench run --tasks t2i --model /ckpt/MMaDA-8B-Base --device cuda --batch-size 8 \
      --clip-checkpoint /weights/ViT-L-14.pt --imagereward-dir /weights/ImageReward   # PNGs + CLIP / ImageReward

data: --data-dir DIR reads DIR/<task>/<split>.jsonl|parquet (e.g. ../shared/data/gsm8k/test.jsonl,
train.jsonl for few-shot); without it the Hugging Face cache is tried (offline), then the bundled
smoke subset (--data-dir smoke forces it, --require-data forbids it). Image tasks whose items name
image files (the original POPE question files) look them up in --image-dir (e.g. COCO val2014).
"""


def add_arguments(parser) -> None:
    parser.add_argument("--tasks", required=True, help="comma-separated task names (see list-tasks), e.g. gsm8k,math500")
    parser.add_argument("--model", default=None,
                        help="checkpoint folder (config.json + *.safetensors) or model name (dummy, dummy:delay=0.1); "
                             "default: the packaged smoke checkpoint")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N items of each task")
    parser.add_argument("--data-dir", default=None, help="folder with <task>/<split>.jsonl|parquet; 'smoke' = bundled subsets")
    parser.add_argument("--image-dir", default=None,
                        help="folder of the image files items refer to (e.g. COCO val2014 for the original POPE files)")
    parser.add_argument("--require-data", action="store_true", help="fail instead of falling back to the smoke subsets")
    parser.add_argument("--output-dir", "--output-path", dest="output_dir", default="leaderboards",
                        help="where results go (default: leaderboards/); --output-path as in lm-eval")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="model dtype (default: auto = bfloat16 on CUDA as the official runs, float32 on the CPU)")
    parser.add_argument("--batch-size", type=int, default=1, help="prompts per generate() call (default: 1)")
    parser.add_argument("--preset", default=None, help="sampler preset for every task (default: each card's preset), e.g. fast, ci")
    parser.add_argument("--seed", type=int, default=1234, help="base seed; item i uses seed+i (default: 1234)")
    parser.add_argument("--gen-kwargs", "--sampler", dest="gen_kwargs", default=None, metavar="KEY=VALUE,...",
                        help="override sampler settings of every task's preset, e.g. steps=128,cache=dual,threshold=0.9 "
                             "(gen_length, steps, block_length, temperature, cfg_scale, remasking, cache, threshold, factor; "
                             "image presets: timesteps, guidance_scale, ...); recorded in the manifest and the run id")
    parser.add_argument("--num-fewshot", type=int, default=None, help="few-shot exemplars (default: each card's)")
    parser.add_argument("--include-path", action="append", default=[], metavar="DIR",
                        help="another folder of task cards (searched before the packaged ones; repeatable)")
    parser.add_argument("--variant", default=None, help="task variant, e.g. mmada-chat (default: each card's default)")
    parser.add_argument("--run-id", default=None, help="explicit run id (default: hash of model + tasks + settings)")
    parser.add_argument("--retry-errors", action="store_true", help="regenerate items whose generation failed before")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    t2i = parser.add_argument_group("text-to-image tasks (t2i)")
    t2i.add_argument("--prompts", default=None,
                     help="prompt set: a .txt (one per line) / .jsonl / .parquet file or a cached HF dataset ORG/NAME[:SPLIT] "
                          "(default: the card's packaged set)")
    t2i.add_argument("--clip-model", default=None, help="open_clip model of the CLIP score (default: ViT-L-14)")
    t2i.add_argument("--clip-pretrained", default=None,
                     help="open_clip pretrained tag of those weights, 'none' for none (default: openai)")
    t2i.add_argument("--clip-checkpoint", default=None,
                     help="local CLIP weight file (default: the pretrained tag's file in the offline cache)")
    t2i.add_argument("--clip-dir", default=None,
                     help="a local open_clip folder (open_clip_config.json + weights [+ tokenizer]), e.g. the world CLIP; "
                          "without any --clip-* flag a model folder's clip/ sub-folder is used when it has one")
    t2i.add_argument("--imagereward-dir", default=None,
                     help="folder with ImageReward.pt + med_config.json [+ tokenizer/] (default: ~/.cache/ImageReward)")
    t2i.add_argument("--imagereward-tokenizer", default=None,
                     help="bert-base-uncased tokenizer folder (default: <imagereward-dir>/tokenizer or the offline cache)")


def main(args) -> int:
    warnings.formatwarning = lambda message, *a, **k: f"warning: {message}\n"
    if args.model is None and args.preset is None:
        warnings.warn(NO_MODEL_WARNING)

    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise UsageError("--batch-size and --limit must be positive integers")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.num_fewshot is not None and args.num_fewshot < 0:
        raise UsageError("--num-fewshot must be 0 or more")
    for folder in args.include_path:
        if not Path(folder).is_dir():
            raise UsageError(f"--include-path {folder}: no such folder of task cards")
    if args.clip_dir and (args.clip_model or args.clip_pretrained or args.clip_checkpoint):
        raise UsageError("--clip-dir names the whole CLIP: drop --clip-model / --clip-pretrained / --clip-checkpoint")
    if not tasks:
        raise UsageError("--tasks names no task; pass e.g. --tasks pope,mme (python -m mmada_bench list-tasks)")
    settings = RunSettings(
        tasks=tasks, model=args.model, limit=args.limit,
        data_dir=args.data_dir, output_dir=args.output_dir, device=args.device, dtype=resolve_dtype(args.dtype, args.device),
        batch_size=args.batch_size, preset=args.preset, seed=args.seed, variant=args.variant,
        run_id=args.run_id, retry_errors=args.retry_errors, require_data=args.require_data, image_dir=args.image_dir,
        prompts=args.prompts, scorers=_scorer_options(args), progress=not args.no_progress,
        gen_kwargs=parse_key_values(args.gen_kwargs, "--gen-kwargs"), num_fewshot=args.num_fewshot,
        include_paths=list(args.include_path))
    try:
        outcome = run(settings)
    except (ModelLoadError, RunBusy) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for task, message in outcome.task_errors.items():
        print(f"error: {message}", file=sys.stderr)
    if outcome.rows:
        print(format_summary(outcome))
    return 1 if outcome.task_errors else 0


def parse_key_values(text: str | None, flag: str) -> dict:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}`` (values typed later, against the settings they replace)."""
    values = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"{flag}: {part!r} is not KEY=VALUE (e.g. {flag} steps=128,cache=dual)")
        values[key.strip()] = value.strip()
    return values


def _scorer_options(args) -> dict:
    """The text-to-image scorer flags that were given (``--clip-model`` -> ``clip_model`` ...)."""
    names = ("clip_model", "clip_pretrained", "clip_checkpoint", "clip_dir", "imagereward_dir", "imagereward_tokenizer")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def format_summary(outcome) -> str:
    """The first screen of a run: one headline row per task (primary metric, interval, n, errors, protocol, the
    family's published number), then how to see every parser and breakdown."""
    first = outcome.rows[0]
    smoke = " [SMOKE MODEL: not a real result]" if first["model_is_smoke"] else ""
    lines = [f"run {outcome.run_id}  model {first['model_name']} ({first['model_family']}){smoke}",
             f"generated {outcome.generated} items, {outcome.resumed} taken from earlier progress"]
    published = load_baselines_quietly()
    table = [("task", "variant", "split", "metric", "value", "95% CI", "n", "errors", "protocol", "paper")]
    for r in [r for r in outcome.rows if r.get("is_primary") and not r.get("breakdown")]:
        protocol = json.loads(r["protocol"])
        split = r["split"] + (" (SMOKE)" if r["split"] == "smoke" else "")
        table.append((r["task"], r["variant"], split, f"{r['metric']}/{r['filter']}",
                      format_value(r["value"], r.get("unit")), format_ci(r), str(r["n"]), str(r["n_errors"]),
                      f"{protocol.get('benchmark')} {protocol.get('shots')}-shot",
                      reference_value(published, protocol.get("benchmark"), r["model_family"])))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    lines.append(f"({len(outcome.rows) - len(table) + 1} more rows, every parser and breakdown: "
                 f"python -m mmada_bench show {outcome.run_id} --all --output-dir {outcome.output_dir})")
    lines.append(f"results: {outcome.output_dir}/leaderboard.parquet, {outcome.output_dir}/items/{outcome.run_id}/")
    return "\n".join(lines)
