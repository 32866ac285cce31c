"""``run``: evaluate a model on tasks; resumable; writes Parquet results."""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from mmada_bench.commands.show import format_ci, format_value, load_baselines_quietly
from mmada_bench.data.loading import BUNDLED_SPLIT_NOTES
from mmada_bench.errors import UsageError
from mmada_bench.integrations.wandb_log import check_init_args, log_to_wandb
from mmada_bench.models.loader import DTYPES, ModelLoadError, resolve_dtype
from mmada_bench.models.smoke import NO_MODEL_WARNING, result_label
from mmada_bench.results.baselines import reference_value
from mmada_bench.run.batch_size import parse_batch_size
from mmada_bench.run.distributed import is_main_process
from mmada_bench.run.runner import run
from mmada_bench.run.timing import RunTiming, process_age_s
from mmada_bench.run.types import RunBusy, RunSettings

HELP = "evaluate a model on one or more tasks (resumable; results in Parquet)"
DESCRIPTION = """\
Evaluate a model on tasks with their cards' protocols. Every finished item is stored at once
(runs/<run_id>/items/<task>.jsonl, fsync'ed), so an interrupted run loses nothing: re-run the
same command and it continues where it stopped. When a task finishes, its metrics go to
leaderboard.parquet and its predictions to items/<run_id>/<task>.parquet.

Without --model the packaged smoke checkpoint is used; without a dataset at hand the bundled
shapes-world split is used (split "world"; `--data-dir smoke` for the smoke subsets). Both are labelled in
every output.

--predict-only generates and stores the items (the same item store and item table as a normal run)
and scores nothing: no metrics, no leaderboard rows. Score such a run later, without the model, with
`python -m mmada_bench score RUN` (or by running the same command without --predict-only)."""
EPILOG = """\
examples:
  python -m mmada_bench run --tasks gsm8k --limit 20
  python -m mmada_bench run --tasks gsm8k,math500 --model /ckpt/MMaDA-8B-MixCoT --data-dir ../shared/data \\
      --device cuda --dtype bfloat16 --batch-size 8 --variant mmada-chat
  python -m mmada_bench run --tasks gsm8k --model dummy:delay=0.05 --limit 50   # plumbing check
  python -m mmada_bench run --tasks gsm8k --preset fast --seed 0 --output-dir out/
  python -m mmada_bench run --tasks gsm8k --model DIR --predict-only && python -m mmada_bench score latest
  python -m mmada_bench run --tasks gsm8k --apply-chat-template --system-instruction "Answer briefly."
  python -m mmada_bench run --tasks gsm8k --limit 20 --wandb-args project=mmada,name=smoke,mode=offline
  python -m mmada_bench run --tasks t2i --model /ckpt/MMaDA-8B-Base --device cuda --batch-size 8 \
      --clip-checkpoint /weights/ViT-L-14.pt --imagereward-dir /weights/ImageReward   # PNGs + CLIP / ImageReward

data: --data-dir DIR reads DIR/<task>/<split>.jsonl|parquet (e.g. ../shared/data/gsm8k/test.jsonl,
train.jsonl for few-shot); without it the Hugging Face cache is tried (offline), then the bundled
shapes-world split (--data-dir world forces it, --data-dir smoke picks the smoke subsets of real data,
--require-data forbids both). Image tasks whose items name
image files (the original POPE question files) look them up in --image-dir (e.g. COCO val2014).
"""


def add_arguments(parser) -> None:
    parser.add_argument("--tasks", required=True, help="comma-separated task names (see list-tasks), e.g. gsm8k,math500")
    parser.add_argument("--model", default=None,
                        help="checkpoint folder (config.json + *.safetensors) or model name (dummy, dummy:delay=0.1); "
                             "default: the packaged smoke checkpoint")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N items of each task")
    parser.add_argument("--data-dir", default=None, help="folder with <task>/<split>.jsonl|parquet; 'world' / 'smoke' = a bundled set")
    parser.add_argument("--image-dir", default=None,
                        help="folder of the image files items refer to (e.g. COCO val2014 for the original POPE files)")
    parser.add_argument("--require-data", action="store_true", help="fail instead of falling back to a bundled set")
    parser.add_argument("--output-dir", "--output-path", dest="output_dir", default="leaderboards",
                        help="where results go (default: leaderboards/); --output-path as in lm-eval")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="model dtype (default: auto = bfloat16 on CUDA as the official runs, float32 on the CPU)")
    parser.add_argument("--batch-size", default="1", metavar="N|auto",
                        help="prompts per generate() call, or auto: the largest batch that fits the device's memory "
                             "(CUDA: probed; CPU: estimated from the available RAM, at most 32); default 1")
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
    parser.add_argument("--apply-chat-template", action="store_true",
                        help="send text tasks whose variant is plain as one user turn through the model's chat template "
                             "(cards with allow_chat_override: false refuse it); recorded in the manifest and the run id")
    parser.add_argument("--system-instruction", default=None, metavar="TEXT",
                        help="a system instruction: a system turn before the user turn in a chat layout, else put before "
                             "the prompt + the few-shot delimiter; recorded in the manifest and the run id")
    parser.add_argument("--predict-only", action="store_true",
                        help="generate and store the items, score nothing (no metrics, no leaderboard rows); "
                             "score later with: python -m mmada_bench score RUN")
    parser.add_argument("--log-samples", action="store_true",
                        help="accepted for lm-eval compatibility and does nothing: every sample is always kept "
                             "(items/<run_id>/<task>.parquet; export --format lm-eval writes samples_<task>.jsonl)")
    parser.add_argument("--wandb-args", default=None, metavar="KEY=VALUE,...",
                        help="after the run, log the headline metrics, the manifest and a samples table to Weights & "
                             "Biases; the keys go to wandb.init, e.g. project=mmada,name=run1,mode=offline "
                             '(needs pip install "mmada-bench[wandb]")')
    parser.add_argument("--wandb-samples", type=int, default=100, metavar="N",
                        help="rows per task in the W&B samples table (default: 100; 0: no table)")
    parser.add_argument("--run-id", default=None, help="explicit run id (default: hash of model + tasks + settings)")
    parser.add_argument("--retry-errors", action="store_true", help="regenerate items whose generation failed before")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_t2i_arguments(parser)


def add_t2i_arguments(parser) -> None:
    """The text-to-image flags: the prompt set and the scorers' weights (``run`` and ``score``)."""
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
    try:
        batch_size = parse_batch_size(args.batch_size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    warnings.formatwarning = lambda message, *a, **k: f"warning: {message}\n"
    if args.model is None and args.preset is None:
        warnings.warn(NO_MODEL_WARNING)
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be a positive integer")
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
    if args.system_instruction is not None and not args.system_instruction.strip():
        raise UsageError("--system-instruction is empty; pass the instruction text or drop the flag")
    wandb_init = parse_key_values(args.wandb_args, "--wandb-args") if args.wandb_args is not None else None
    if wandb_init is not None:
        check_init_args(wandb_init)  # before the run: a missing package or a typo must not cost a run
        if args.wandb_samples < 0:
            raise UsageError("--wandb-samples must be 0 or more")
    settings = RunSettings(
        tasks=tasks, model=args.model, limit=args.limit,
        data_dir=args.data_dir, output_dir=args.output_dir, device=args.device, dtype=resolve_dtype(args.dtype, args.device),
        batch_size=batch_size, preset=args.preset, seed=args.seed, variant=args.variant,
        run_id=args.run_id, retry_errors=args.retry_errors, require_data=args.require_data, image_dir=args.image_dir,
        prompts=args.prompts, scorers=_scorer_options(args), progress=not args.no_progress,
        gen_kwargs=parse_key_values(args.gen_kwargs, "--gen-kwargs"), num_fewshot=args.num_fewshot,
        include_paths=list(args.include_path), predict_only=args.predict_only,
        apply_chat_template=args.apply_chat_template, system_instruction=args.system_instruction)
    try:
        outcome = run(settings, timing=RunTiming(import_s=process_age_s()))
    except (ModelLoadError, RunBusy) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for task, message in outcome.task_errors.items():
        print(f"error: {message}", file=sys.stderr)
    if outcome.predicted:
        print(format_predict_only(outcome))
    elif outcome.rows:
        print(format_summary(outcome))
    if wandb_init is not None and (outcome.rows or outcome.predicted) and is_main_process():
        print(log_to_wandb(outcome, wandb_init, args.wandb_samples))
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


def format_predict_only(outcome) -> str:
    """The first screen of a ``--predict-only`` run: what was stored per task and how to score it later."""
    label = f" [{outcome.model_label}]" if outcome.model_label else ""
    lines = [f"run {outcome.run_id}  model {outcome.model_name}{label}  PREDICT-ONLY: nothing scored, no leaderboard rows",
             f"generated {outcome.generated} items, {outcome.resumed} taken from earlier progress"]
    table = [("task", "variant", "split", "items", "generation errors")]
    for task, info in outcome.predicted.items():
        split = info["split"] + (f" ({BUNDLED_SPLIT_NOTES[info['split']]})" if info["split"] in BUNDLED_SPLIT_NOTES else "")
        table.append((task, info["variant"], split, str(info["n"]), str(info["n_errors"])))
    lines += _columns(table)
    lines.append(f"predictions: {outcome.output_dir}/items/{outcome.run_id}/ (and runs/{outcome.run_id}/items/*.jsonl)")
    lines.append(f"score them later (no model needed): python -m mmada_bench score {outcome.run_id} "
                 f"--output-dir {outcome.output_dir}")
    return "\n".join(lines)


def _columns(table: list[tuple]) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]


def format_summary(outcome, activity: str | None = None) -> str:
    """The first screen of a run: one headline row per task (primary metric, interval, n, errors, protocol, the
    family's published number), then how to see every parser and breakdown. ``activity`` replaces the line
    counting generated / resumed items."""
    first = outcome.rows[0]
    label = result_label(first)
    smoke = f" [{label}]" if label else ""
    lines = [f"run {outcome.run_id}  model {first['model_name']} ({first['model_family']}){smoke}",
             activity or f"generated {outcome.generated} items, {outcome.resumed} taken from earlier progress"]
    if outcome.generated:
        lines.append(format_timing(outcome.timing.as_dict()))
    published = load_baselines_quietly()
    table = [("task", "variant", "split", "metric", "value", "95% CI", "n", "errors", "protocol", "paper")]
    for r in [r for r in outcome.rows if r.get("is_primary") and not r.get("breakdown")]:
        protocol = json.loads(r["protocol"])
        split = r["split"] + (f" ({BUNDLED_SPLIT_NOTES[r['split']]})" if r["split"] in BUNDLED_SPLIT_NOTES else "")
        table.append((r["task"], r["variant"], split, f"{r['metric']}/{r['filter']}",
                      format_value(r["value"], r.get("unit")), format_ci(r), str(r["n"]), str(r["n_errors"]),
                      f"{protocol.get('benchmark')} {protocol.get('shots')}-shot",
                      "-" if label else reference_value(published, protocol.get("benchmark"), r["model_family"])))
    lines += _columns(table)
    lines.append(f"({len(outcome.rows) - len(table) + 1} more rows, every parser and breakdown: "
                 f"python -m mmada_bench show {outcome.run_id} --all --output-dir {outcome.output_dir})")
    lines.append(f"results: {outcome.output_dir}/leaderboard.parquet, {outcome.output_dir}/items/{outcome.run_id}/")
    return "\n".join(lines)


def format_timing(t: dict) -> str:
    """One line: start-up, then the tasks' wall time and the shares inside the model."""
    share = (lambda v: "-" if v is None else f"{100 * v:.1f} %")
    return (f"time: start-up {t['startup_s']:.1f} s, tasks {t['tasks_s']:.1f} s (in model.generate "
            f"{share(t['generate_share'])}, in forward passes {share(t['forward_share'])})")
