"""One trainer for every stage, on accelerate.

``python -m mmada_ref.training --config configs/train/stage1.yaml`` runs in a single process;
``accelerate launch [--config_file configs/accelerate/ddp.yaml] -m mmada_ref.training --config ...`` runs DDP,
DeepSpeed or FSDP (whatever the accelerate config says). Per optimiser step the trainer draws
``gradient_accumulation_steps`` micro-batches from the stage's step function (unified objective or UniGRPO).

Run folder::

    OUTPUT_DIR/config.yaml                   the resolved stage config
    OUTPUT_DIR/metrics.jsonl                 one record per logged step (loss terms, lr, reward, steps/s)
    OUTPUT_DIR/curves/*.png                  loss (and reward) curves, rewritten at every checkpoint
    OUTPUT_DIR/tensorboard/                  the same records as TensorBoard scalars (train.tensorboard: true)
    OUTPUT_DIR/checkpoints/step-NNNNNNN/     official-format model + tokenizer (+ magvitv2/), loadable by
                                             ``python -m mmada_bench run --model`` and MMaDAModelLM.from_pretrained;
        accelerate_state/                    optimiser / scheduler / RNG state for resuming
        trainer_state.json                   step and data-sampler state
"""
from __future__ import annotations

import json
import math
import shutil
import time
from collections import deque
from pathlib import Path
from typing import Optional

import torch
import yaml

from ..checkpoint import save_model
from ..modeling import MMaDAModelLM
from ..text_tokenizer import load_text_tokenizer
from ..tokens import SpecialTokens
from .data import ImageCodes, Mixture, TextFormatter, UnifiedBatchBuilder
from .grpo import build_grpo_step
from .objective import total_loss, unified_losses
from .plot import plot_run
from .stages import StageConfig
from .tensorboard_log import TensorBoardLog

STATE_DIR = "accelerate_state"
TRAINER_STATE = "trainer_state.json"


def cosine_with_warmup(warmup_steps: int, total_steps: int, min_lr_scale: float = 0.0):
    """LR multiplier: linear warmup to 1, then cosine decay to ``min_lr_scale``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_scale + (1 - min_lr_scale) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def build_optimizer(model: torch.nn.Module, cfg: StageConfig) -> torch.optim.Optimizer:
    """AdamW over every trainable parameter (the official no-decay filter matches nothing in LLaDA)."""
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)


def latest_checkpoint(output_dir: Path) -> Optional[Path]:
    """The newest ``checkpoints/step-*`` folder that holds a complete trainer state."""
    found = sorted((p for p in (output_dir / "checkpoints").glob("step-*") if (p / TRAINER_STATE).is_file()),
                   key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


class Trainer:
    """Runs one stage: model + optimiser + LR schedule + step function, with checkpoints and curves."""
    def __init__(self, cfg: StageConfig, output_dir: str | Path, max_steps: Optional[int] = None,
                 resume: bool = True, accelerator=None):
        from accelerate import (
            Accelerator,  # accelerate: loaded only when training / sharding
        )
        from accelerate.utils import (
            set_seed,  # accelerate: loaded only when training / sharding
        )

        self.cfg = cfg.validate()
        self.output_dir = Path(output_dir)
        self.max_steps = int(max_steps if max_steps is not None else cfg.train.max_steps)
        self.accelerator = accelerator or Accelerator(
            gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
            mixed_precision=cfg.train.mixed_precision)
        set_seed(cfg.train.seed)
        acc = self.accelerator
        # before the model loads: a missing tensorboard package fails at once
        self.tensorboard = TensorBoardLog(self.output_dir) if cfg.train.tensorboard and acc.is_main_process else None
        self.tokenizer = load_text_tokenizer(cfg.model.tokenizer or cfg.model.path)
        model = MMaDAModelLM.from_pretrained(cfg.model.path, torch_dtype=torch.float32)
        self.tokens = SpecialTokens.from_tokenizer(self.tokenizer, model.config)
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        model.train()
        self.step_fn = self._build_step_fn(model)
        optimizer = build_optimizer(model, cfg)
        n = acc.num_processes  # accelerate steps a prepared scheduler once per process (official convention)
        schedule = cosine_with_warmup(cfg.optim.warmup_steps * n, self.max_steps * n, cfg.optim.min_lr_scale)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        self.model, self.optimizer, self.scheduler = acc.prepare(model, optimizer, scheduler)
        self.step = 0
        self.stopped_early = False  # train.stop_loss_below was met: a resumed run does not train on
        if resume:
            ckpt = latest_checkpoint(self.output_dir)
            if ckpt is not None:
                self._load(ckpt)

    # --- building -------------------------------------------------------------------------------
    def _build_step_fn(self, model):
        cfg = self.cfg
        seed = cfg.train.seed + self.accelerator.process_index
        if cfg.kind == "grpo":
            return build_grpo_step(cfg, model, self.tokenizer, self.tokens, seed, self.accelerator.device)

        N = cfg.data.num_vq_tokens or model.config.num_vq_tokens
        vq = cfg.model.vq_model or str(Path(cfg.model.path) / "magvitv2")
        builder = UnifiedBatchBuilder(
            Mixture(cfg.data.sources, seed=seed), self.tokens,
            TextFormatter(self.tokenizer, cfg.data.think_format, cfg.data.chat_eot), cfg.data, cfg.objective,
            N, ImageCodes(vq, N, self.accelerator.device, self.tokens.codebook_size), seed=seed)
        return UnifiedStep(builder, self.tokens.mask)

    # --- the loop ------------------------------------------------------------------------------
    def train(self) -> dict:
        """Run until ``max_steps`` optimiser steps (or ``train.stop_loss_below``); returns the last logged record."""
        acc, cfg = self.accelerator, self.cfg
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        record: dict = {}
        sums: dict = {}
        window_start, window_steps = time.perf_counter(), 0
        recent_losses = deque(maxlen=max(1, cfg.train.stop_window // cfg.train.log_every))
        stop = self.stopped_early
        try:
            while self.step < self.max_steps and not stop:
                metrics = self._optimizer_step()
                self.step += 1
                window_steps += 1
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                if self.step % cfg.train.log_every == 0 or self.step == self.max_steps:
                    elapsed = time.perf_counter() - window_start
                    means = self._mean_over_processes({k: v / window_steps for k, v in sums.items()})
                    record = {"step": self.step, **means, "lr": self.scheduler.get_last_lr()[0],
                              "steps_per_s": window_steps / max(elapsed, 1e-9)}
                    stop = self.stopped_early = self._loss_reached(recent_losses, record)
                    if stop:
                        record["stopped_early"] = True
                    self._log(record)
                    sums, window_start, window_steps = {}, time.perf_counter(), 0
                if stop or self.step % cfg.train.save_every == 0 or self.step == self.max_steps:
                    self.save()
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
        acc.wait_for_everyone()
        return record

    def _loss_reached(self, recent_losses: deque, record: dict) -> bool:
        """Whether ``train.stop_loss_below`` is met by the logged losses of the last ``train.stop_window`` steps."""
        threshold = self.cfg.train.stop_loss_below
        if threshold is None or "loss" not in record:
            return False
        recent_losses.append(record["loss"])
        return len(recent_losses) == recent_losses.maxlen and sum(recent_losses) / len(recent_losses) <= threshold

    def _optimizer_step(self) -> dict:
        acc, model = self.accelerator, self.model
        totals: dict = {}
        accum = self.cfg.train.gradient_accumulation_steps
        for _ in range(accum):
            with acc.accumulate(model):
                loss, metrics = self.step_fn(model, acc)
                acc.backward(loss)
                if acc.sync_gradients and self.cfg.optim.max_grad_norm:
                    metrics["grad_norm"] = float(acc.clip_grad_norm_(model.parameters(), self.cfg.optim.max_grad_norm))
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + float(v) / (1 if k == "grad_norm" else accum)
        return totals

    def _mean_over_processes(self, values: dict) -> dict:
        """Average logged metrics over processes (every process has the same keys)."""
        if self.accelerator.num_processes == 1 or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], device=self.accelerator.device, dtype=torch.float32)
        t = self.accelerator.reduce(t, reduction="mean")
        return dict(zip(keys, t.tolist()))

    def _log(self, record: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        with open(self.output_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.add(record)

    # --- checkpoints ----------------------------------------------------------------------------
    def save(self) -> Path:
        """Write ``checkpoints/step-N`` (official model format + accelerate state) and refresh the curves."""
        acc = self.accelerator
        folder = self.output_dir / "checkpoints" / f"step-{self.step:07d}"
        acc.wait_for_everyone()
        acc.save_state(str(folder / STATE_DIR))
        weights = acc.get_state_dict(self.model)  # full weights on the main process (gathers FSDP / ZeRO-3 shards)
        if acc.is_main_process:
            save_model(_Weights(acc.unwrap_model(self.model).config, weights), folder)
            self.tokenizer.save_pretrained(str(folder))
            vq = Path(self.cfg.model.vq_model or Path(self.cfg.model.path) / "magvitv2")
            if vq.is_dir() and not (folder / "magvitv2").exists():
                shutil.copytree(vq, folder / "magvitv2")
            state = {"step": self.step, "stopped_early": self.stopped_early, "step_fn": self.step_fn.state_dict()}
            (folder / TRAINER_STATE).write_text(json.dumps(state))
            self._prune()

            plot_run(self.output_dir)
        acc.wait_for_everyone()
        return folder

    def _load(self, folder: Path) -> None:
        self.accelerator.load_state(str(folder / STATE_DIR))
        state = json.loads((folder / TRAINER_STATE).read_text())
        self.step = int(state["step"])
        self.stopped_early = bool(state.get("stopped_early", False))
        self.step_fn.load_state_dict(state["step_fn"])

    def _prune(self) -> None:
        keep = self.cfg.train.keep_last
        if keep <= 0:
            return
        folders = sorted((self.output_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
        for old in folders[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


class _Weights:
    """``config`` + a (gathered) state dict, in the shape :func:`mmada_ref.checkpoint.save_model` reads."""
    def __init__(self, config, state: dict):
        self.config, self._state = config, state

    def state_dict(self) -> dict:
        return self._state


class UnifiedStep:
    """Step function of stages 1-2: one noised batch -> weighted unified loss."""
    def __init__(self, builder, mask_id: int):
        self.builder, self.mask_id = builder, mask_id

    def __call__(self, model, accelerator):
        batch = self.builder.next().to(accelerator.device)
        with accelerator.autocast():
            losses = unified_losses(model, batch, self.mask_id)
        loss = total_loss(losses, self.builder.coefficients)
        return loss, {"loss": loss.detach().item(), **{k: v.detach().item() for k, v in losses.items()}}

    def state_dict(self) -> dict:
        return self.builder.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.builder.load_state_dict(state)
