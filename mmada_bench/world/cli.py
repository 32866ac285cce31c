"""``python -m mmada_bench world`` (or ``python -m mmada_bench.world``): the shapes world and its model.

    build     --out DIR [--scale full|mini] [--only STEP,...] [--fresh]
              everything from nothing: tokenizer, MAGVIT, data, init, stages 1-3, world CLIP, packaged model
              (see pipeline.py; finished steps are skipped, so a stopped build resumes)
    generate  --out DIR [--seed S] [--n N] [--train-seed T] [--train-n M] [--magvit DIR] [--only tasks|corpora]
              evaluation task files (split "world", seed S) in DIR/tasks and training corpora (split "train",
              seed T) in DIR/corpora
    tokenizer --out DIR [--vocab V]       train the world BPE tokenizer (HF folder with the MMaDA special tokens)
    magvit    --out DIR [--minutes M ...] train the world MAGVIT-v2 (see train_magvit.py)
    init-model --out DIR --tokenizer DIR --magvit DIR [--d-model D --layers L --heads H]
              a random-init tiny MMaDA checkpoint (official layout) to start stage 1 from
    clip      --out DIR [--steps S --n N --seed T --batch B --threads K --tokenizer DIR]
              train the world CLIP (open_clip folder for run --clip-dir, or a model folder's clip/)
    score-t2i METADATA.jsonl              world-oracle GenEval-style score of a harness t2i run's images
    oracle    IMAGE... [--prompt P]       world-oracle detections of images (and the prompt score)
    code-probe --magvit DIR [--n-train N --n-test M --steps S]
              held-out shape / colour accuracy of small classifiers on one cell's MAGVIT codes (code_probe.py)
    answer-probe CHECKPOINT [--layout direct|think|think-listing] [--n N --seed S --hide-response]
              teacher-forced yes / no answer accuracy of a world checkpoint on unseen train-split images
              (answer_probe.py: does the answer depend on the image and the question?)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .seeds import DEFAULT_EVAL_SEED, DEFAULT_TRAIN_SEED


def _generate(args) -> int:
    out = Path(args.out)
    report = {}
    if args.only in (None, "tasks"):
        from .tasks import write_tasks

        report["tasks"] = write_tasks(out / "tasks", seed=args.seed, n=args.n)
    if args.only in (None, "corpora"):
        from .corpora import write_corpora

        train_seed = args.seed if args.train_seed is None else args.train_seed
        report["corpora"] = write_corpora(out / "corpora", seed=train_seed, n=args.train_n or 10 * args.n,
                                          magvit=args.magvit)
    print(json.dumps(report, indent=1))
    return 0


def _tokenizer(args) -> int:
    from .tokenizer import train_world_tokenizer

    tok = train_world_tokenizer(args.out, vocab_size=args.vocab, seed=args.seed, n=args.n)
    print(json.dumps({"out": args.out, "len": len(tok), "first_image_id": len(tok)}))
    return 0


def _init_model(args) -> int:
    from .init_model import build_world_model

    layout = build_world_model(args.out, args.tokenizer, args.magvit, d_model=args.d_model, n_layers=args.layers,
                               n_heads=args.heads, mlp_hidden_size=args.mlp or int(round(args.d_model * 2.6875)),
                               seed=args.seed)
    print(json.dumps(layout))
    return 0


def _clip(args) -> int:
    from .clip import train_world_clip

    try:
        report = train_world_clip(args.out, steps=args.steps, n=args.n, seed=args.seed, batch=args.batch,
                                  threads=args.threads, tokenizer=args.tokenizer)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report["loss"].pop("curve")
    print(json.dumps(report, indent=1))
    return 0


def _score_t2i(args) -> int:
    from .geneval import score_metadata

    report = score_metadata(args.metadata)
    if not args.items:
        report.pop("items")
    print(json.dumps(report, indent=1))
    return 0


def _oracle(args) -> int:
    from PIL import Image

    from .oracle import detect, score_prompt

    for path in args.images:
        image = Image.open(path).convert("RGB")
        row = {"image": path, "objects": [d.__dict__ for d in detect(image)]}
        if args.prompt:
            row["score"] = score_prompt(args.prompt, image)
        print(json.dumps(row))
    return 0


def _code_probe(args) -> int:
    from mmada_ref.magvit import CONFIG_NAME, MAGVITLoadError

    from .code_probe import code_readability

    try:
        report = code_readability(args.magvit, args.n_train, args.n_test, args.steps)
    except (FileNotFoundError, MAGVITLoadError) as exc:
        print(f"error: --magvit {args.magvit} is not a world MAGVIT folder ({CONFIG_NAME} + weights): {exc}",
              file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1))
    return 0


def _answer_probe(args) -> int:
    import torch

    from mmada_ref import MMaDAModelLM
    from mmada_ref.checkpoint import CheckpointError
    from mmada_ref.text_tokenizer import load_text_tokenizer

    from .answer_probe import answer_probe
    from .sft import png_codes, yes_no_rows

    magvit = Path(args.checkpoint) / "magvitv2"
    try:
        model = MMaDAModelLM.from_pretrained(args.checkpoint, torch_dtype=torch.float32).eval()
        if not magvit.is_dir():
            raise CheckpointError(f"{args.checkpoint} has no magvitv2/ folder")
    except (CheckpointError, OSError) as exc:
        print(f"error: {args.checkpoint} is not a world checkpoint folder: {exc}", file=sys.stderr)
        return 2
    rows = yes_no_rows(args.seed, args.n, png_codes(magvit), args.layout)
    report = answer_probe(model, load_text_tokenizer(args.checkpoint), rows, hide_response=args.hide_response)
    print(json.dumps({"checkpoint": args.checkpoint, "layout": args.layout, "seed": args.seed,
                      "hide_response": args.hide_response, **report}, indent=1))
    return 0


def _build(args) -> int:
    from .pipeline import STEP_NAMES, Build, clean

    only = tuple(filter(None, (args.only or "").split(",")))
    unknown = sorted(set(only) - set(STEP_NAMES))
    if unknown:
        print(f"error: --only: unknown step(s) {unknown}; steps: {', '.join(STEP_NAMES)}", file=sys.stderr)
        return 2
    if args.fresh:
        clean(args.out)
    Build(args.out, args.scale).run(only)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["magvit"]:  # every option goes to train_magvit
        from .train_magvit import main as magvit_main

        return magvit_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m mmada_bench.world", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the world model from nothing (every step; resumes)")
    b.add_argument("--out", required=True)
    b.add_argument("--scale", default="full", help="full (the shipped model) or mini (the CI miniature)")
    b.add_argument("--only", default=None, help="comma-separated steps to (re)run")
    b.add_argument("--fresh", action="store_true", help="delete --out first")
    g = sub.add_parser("generate", help="evaluation task files and training corpora")
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=DEFAULT_EVAL_SEED, help="seed of both splits (split keys differ)")
    g.add_argument("--n", type=int, default=100, help="images / problems / prompts per evaluation task")
    g.add_argument("--train-seed", type=int, default=None, help="seed of the training corpora (default --seed)")
    g.add_argument("--train-n", type=int, default=None, help="rows per corpus file (default 10 * n)")
    g.add_argument("--magvit", default=None, help="MAGVIT-v2 folder: add image_codes to corpus rows")
    g.add_argument("--only", choices=("tasks", "corpora"), default=None)
    t = sub.add_parser("tokenizer", help="train the world BPE tokenizer")
    t.add_argument("--out", required=True)
    t.add_argument("--vocab", type=int, default=None, help="BPE tokens before the special range")
    t.add_argument("--seed", type=int, default=DEFAULT_TRAIN_SEED)
    t.add_argument("--n", type=int, default=2000, help="generator rounds of training text")
    sub.add_parser("magvit", help="train the world MAGVIT-v2 (options of train_magvit.py)")
    i = sub.add_parser("init-model", help="random-init tiny MMaDA checkpoint for the world")
    i.add_argument("--out", required=True)
    i.add_argument("--tokenizer", required=True, help="world tokenizer folder (the tokenizer command)")
    i.add_argument("--magvit", required=True, help="world MAGVIT-v2 folder (the magvit command)")
    i.add_argument("--d-model", type=int, default=256)
    i.add_argument("--layers", type=int, default=6)
    i.add_argument("--heads", type=int, default=8)
    i.add_argument("--mlp", type=int, default=None, help="MLP hidden size (default 2.6875 * d_model)")
    i.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("clip", help="train the world CLIP (open_clip classes, ClipLoss)")
    c.add_argument("--out", required=True)
    c.add_argument("--steps", type=int, default=600)
    c.add_argument("--n", type=int, default=16000, help="training image-caption pairs")
    c.add_argument("--seed", type=int, default=DEFAULT_TRAIN_SEED)
    c.add_argument("--batch", type=int, default=128)
    c.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    c.add_argument("--tokenizer", default=None, help="world tokenizer folder (default: train one into --out)")
    st = sub.add_parser("score-t2i", help="oracle score of a t2i run (images/<task>/metadata.jsonl)")
    st.add_argument("metadata")
    st.add_argument("--items", action="store_true", help="also list every image's detections")
    o = sub.add_parser("oracle", help="detect world objects in images")
    o.add_argument("images", nargs="+")
    o.add_argument("--prompt", default=None)
    cp = sub.add_parser("code-probe", help="how readable shape / colour are from one cell's MAGVIT codes")
    cp.add_argument("--magvit", required=True, help="world MAGVIT-v2 folder")
    cp.add_argument("--n-train", type=int, default=6000, help="train-split scenes the classifiers are fitted on")
    cp.add_argument("--n-test", type=int, default=1000, help="world-split scenes they are scored on")
    cp.add_argument("--steps", type=int, default=1500)
    ap = sub.add_parser("answer-probe", help="teacher-forced yes / no accuracy of a world checkpoint")
    ap.add_argument("checkpoint", help="checkpoint folder with magvitv2/ (a trainer step-N folder or a packaged model)")
    ap.add_argument("--layout", choices=("direct", "think", "think-listing"), default="direct",
                    help="sft.YES_NO_LAYOUTS: the official direct answer, the verdict trace, the cell-listing trace")
    ap.add_argument("--n", type=int, default=20, help="images per task (POPE: 6 questions each, MME: 2)")
    ap.add_argument("--seed", type=int, default=1, help="train-split seed of the images (the build trains on 0)")
    ap.add_argument("--hide-response", action="store_true", help="mask the whole response, not only the answer")
    args = parser.parse_args(argv)
    if args.command == "build":
        return _build(args)
    if args.command == "generate":
        return _generate(args)
    if args.command == "tokenizer":
        if args.vocab is None:
            from .tokenizer import DEFAULT_VOCAB

            args.vocab = DEFAULT_VOCAB
        return _tokenizer(args)
    if args.command == "score-t2i":
        return _score_t2i(args)
    if args.command == "init-model":
        return _init_model(args)
    if args.command == "clip":
        return _clip(args)
    if args.command == "code-probe":
        return _code_probe(args)
    if args.command == "answer-probe":
        return _answer_probe(args)
    return _oracle(args)
