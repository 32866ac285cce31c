"""``python -m mmada_ref.training --config configs/train/stage1.yaml [--output-dir DIR] [--max-steps N] [--tensorboard]``.

Multi-GPU: ``accelerate launch --config_file configs/accelerate/ddp.yaml -m mmada_ref.training --config ...``.
"""
from __future__ import annotations

import argparse
import json

import yaml

from .stages import load_stage
from .tensorboard_log import TensorBoardMissing
from .trainer import Trainer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mmada_ref.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="stage YAML (configs/train/*.yaml)")
    parser.add_argument("--output-dir", default=None, help="run folder (default runs/<stage name>)")
    parser.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    parser.add_argument("--model", default=None, help="override model.path (checkpoint folder to start from)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set optim.lr=1e-5 (value parsed as YAML)")
    parser.add_argument("--no-resume", action="store_true", help="start fresh even if the run folder has checkpoints")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write the logged records as TensorBoard scalars under OUTPUT_DIR/tensorboard/ "
                             "(= --set train.tensorboard=true; needs the tensorboard package)")
    args = parser.parse_args(argv)

    overrides = {}
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    if args.model:
        overrides["model.path"] = args.model
    if args.tensorboard:
        overrides["train.tensorboard"] = True
    cfg = load_stage(args.config, overrides)
    try:
        trainer = Trainer(cfg, args.output_dir or f"runs/{cfg.name}", max_steps=args.max_steps, resume=not args.no_resume)
    except TensorBoardMissing as exc:
        parser.exit(2, f"error: {exc}\n")
    record = trainer.train()
    if trainer.accelerator.is_main_process:
        print(json.dumps(record))


if __name__ == "__main__":
    main()
