"""One command from nothing to a trained, packaged and evaluated world model.

``python -m mmada_bench world build --out runs/world [--scale full|mini]`` runs, each step skipped when its
output is already complete (so a stopped build resumes; the trainer resumes from its last checkpoint):

1. ``tokenizer/``  the world BPE tokenizer
2. ``magvit/``     the world MAGVIT-v2 (a fixed step count, so a rebuild repeats it)
3. ``data/``       evaluation splits + stage corpora
4. ``init/``       the random-init checkpoint
5. ``stage1/``     unified masked-token pretraining
6. ``stage2/``     mixed CoT fine-tuning (harness layouts)
7. ``stage2_answers/``, ``stage2_turns/``  the direct POPE / MME answers; ``stage2_rehearse/`` those answers
   beside stage 2's text-to-image and caption rows while the learning rate cools
8. ``stage3/``     UniGRPO (POPE / MME correctness)
9. ``clip/``       the tiny world CLIP (open_clip)
10. ``model/``     the packaged checkpoint (stage 3 + model card + run defaults + clip/ + ``recorded_slice.json``)

Every step's wall time goes to ``timings.json``; the totals are printed at the end.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from mmada_ref.training.stages import load_stage
from mmada_ref.training.trainer import Trainer, latest_checkpoint

from .seeds import DEFAULT_EVAL_SEED, DEFAULT_TRAIN_SEED
from .stage_configs import DEFAULT_STEPS


@dataclass
class Scale:
    """Sizes of one build (``full``: the shipped model; ``mini``: the CI miniature)."""
    eval_n: int = 200
    train_n: int = 12000
    tokenizer_rounds: int = 2000
    vocab: int = 640
    magvit_steps: int = 4362  # round 14's count in its 12-minute budget; by step, so a rebuild repeats it
    magvit_semantic_weight: float = 0.1  # each code names its patch's colour and shape (train_magvit docstring)
    d_model: int = 160  # 2.4 M parameters: the bf16 weights file stays under the 5 MB a shipped file may have
    layers: int = 6
    heads: int = 5
    steps: dict = field(default_factory=lambda: dict(DEFAULT_STEPS))
    clip_steps: int = 600


SCALES = {
    "full": Scale(),
    "mini": Scale(eval_n=8, train_n=64, tokenizer_rounds=300, vocab=512, magvit_steps=40, d_model=64,
                  layers=2, heads=2, clip_steps=10,
                  steps={"stage1": 12, "stage2": 12, "stage2_answers": 6, "stage2_turns": 6, "stage2_rehearse": 6,
                         "stage3": 3}),
}
#: the stages the build runs, in order (``stage2_mmu.yaml``, ``stage3_text.yaml``, ``stage3_t2i.yaml`` are written too)
STAGES = ("stage1", "stage2", "stage2_answers", "stage2_turns", "stage2_rehearse", "stage3")
CLIP_CONTEXT = 64  # text positions of the world CLIP: the build's tokenizer splits digits and is small
STEP_NAMES = ("tokenizer", "magvit", "data", "init", *STAGES, "clip", "model")


def _done(path: Path) -> bool:
    return (path / "DONE").is_file()


def _mark(path: Path, info: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "DONE").write_text(json.dumps(info) + "\n")


class Build:
    """The steps of one build under ``out``; :meth:`run` executes what is not done yet."""

    def __init__(self, out: str | Path, scale: str = "full", log: Callable[[str], None] = print):
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(sorted(SCALES))}")
        self.out, self.scale_name, self.scale, self.log = Path(out).resolve(), scale, SCALES[scale], log
        self.timings_path = self.out / "timings.json"
        self.timings = json.loads(self.timings_path.read_text()) if self.timings_path.is_file() else {}

    # --- steps -----------------------------------------------------------------------------------
    def tokenizer(self) -> None:
        from .tokenizer import train_world_tokenizer

        train_world_tokenizer(self.out / "tokenizer", vocab_size=self.scale.vocab, n=self.scale.tokenizer_rounds)

    def magvit(self) -> None:
        from .train_magvit import main as train_magvit

        train_magvit(["--out", str(self.out / "magvit"), "--steps", str(self.scale.magvit_steps),
                      "--threads", "2", "--heldout-images", str(max(50, self.scale.eval_n)),
                      "--semantic-weight", str(self.scale.magvit_semantic_weight)])

    def data(self) -> None:
        from .corpora import write_corpora
        from .stage_configs import write_stage_configs
        from .tasks import write_tasks

        write_tasks(self.out / "data" / "tasks", seed=DEFAULT_EVAL_SEED, n=self.scale.eval_n)
        write_corpora(self.out / "data" / "corpora", seed=DEFAULT_TRAIN_SEED, n=self.scale.train_n,
                      magvit=self.out / "magvit")
        write_stage_configs(self.out / "data" / "corpora", self.out / "magvit", self.scale.steps)

    def init(self) -> None:
        from .init_model import build_world_model

        s = self.scale
        build_world_model(self.out / "init", self.out / "tokenizer", self.out / "magvit", d_model=s.d_model,
                          n_layers=s.layers, n_heads=s.heads, mlp_hidden_size=int(round(s.d_model * 2.6875)))

    def stage(self, name: str) -> dict:
        """Train stage ``name`` from the previous stage's checkpoint; returns the steps it trained (a stage may stop
        before its cap, ``train.stop_loss_below``)."""
        previous = self.out / "init" if name == STAGES[0] else self.stage_checkpoint(STAGES[STAGES.index(name) - 1])
        cfg = load_stage(self.out / "data" / "corpora" / f"{name}.yaml", {"model.path": str(previous)})
        trainer = Trainer(cfg, self.out / name)
        record = trainer.train()
        self.log(f"{name}: {json.dumps(record)}")
        return {"steps": trainer.step}

    def stage_checkpoint(self, name: str) -> Path:
        ckpt = latest_checkpoint(self.out / name)
        if ckpt is None:
            raise FileNotFoundError(f"{self.out / name} has no checkpoint: run the {name} step first")
        return ckpt

    def clip(self) -> None:
        from .clip import train_world_clip

        train_world_clip(self.out / "clip", steps=self.scale.clip_steps, n=self.scale.train_n,
                         batch=min(128, self.scale.train_n), tokenizer=self.out / "tokenizer",
                         context_length=CLIP_CONTEXT)

    def package(self) -> None:
        from .evaluate import record_slice
        from .package import package_model

        package_model(self.stage_checkpoint("stage3"), self.out / "model", clip_dir=self.out / "clip",
                      build=self.summary())
        record_slice(self.out / "model", self.out / "eval" / "slice")

    # --- running ---------------------------------------------------------------------------------
    def steps(self) -> list[tuple[str, Callable[[], Optional[dict]]]]:
        """(name, step) in build order; a step may return extra figures for ``timings.json``."""
        return [("tokenizer", self.tokenizer), ("magvit", self.magvit), ("data", self.data), ("init", self.init),
                *[(name, (lambda n=name: self.stage(n))) for name in STAGES],
                ("clip", self.clip), ("model", self.package)]

    def run(self, only: tuple[str, ...] = ()) -> dict:
        """Run every step that is not done (or the ``only`` ones); returns the timings."""
        self.out.mkdir(parents=True, exist_ok=True)
        for name, step in self.steps():
            target = self.out / name
            if only and name not in only:
                continue
            if _done(target) and not only:
                self.log(f"{name}: done ({self.timings.get(name, {}).get('seconds', '?')} s), skipped")
                continue
            self.log(f"{name}: running")
            start = time.perf_counter()
            extra = step() or {}
            seconds = round(time.perf_counter() - start, 1)
            self.timings[name] = {"seconds": seconds, **extra}
            _mark(target, {"seconds": seconds, "scale": self.scale_name})
            self.timings_path.write_text(json.dumps(self.timings, indent=1) + "\n")
            self.log(f"{name}: {seconds} s")
        total = round(sum(t["seconds"] for t in self.timings.values()), 1)
        self.log(f"build {self.out}: {total} s in all ({total / 60:.1f} min, scale {self.scale_name})")
        return self.timings

    def summary(self) -> dict:
        sizes = asdict(self.scale)
        sizes["steps"] = {name: self.timings.get(name, {}).get("steps", n)  # the stages run, as trained
                          for name, n in sizes["steps"].items() if name in STAGES}
        return {"scale": self.scale_name, "sizes": sizes, "timings": self.timings,
                "eval_seed": DEFAULT_EVAL_SEED, "train_seed": DEFAULT_TRAIN_SEED}


def clean(out: str | Path) -> None:
    """Remove a build folder (``--fresh``)."""
    shutil.rmtree(out, ignore_errors=True)
