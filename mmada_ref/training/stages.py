"""Stage configuration: one YAML file per stage (``configs/train/*.yaml``), read into dataclasses.

A stage is ``kind: unified`` (the masked-token objective of stages 1 and 2) or ``kind: grpo`` (UniGRPO).
Unknown keys are errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ..from_dict import build_dataclass
from ..sampling.presets import ImageSamplerSettings, TextSamplerSettings


@dataclass
class ModelSection:
    path: str = ""                       # checkpoint folder (official layout) to start from
    tokenizer: Optional[str] = None      # default: path
    vq_model: Optional[str] = None       # MAGVIT-v2 folder for rows with image files (default: path/magvitv2)
    gradient_checkpointing: bool = False


@dataclass
class SourceSection:
    path: str = ""
    kind: str = "text"                   # text | mmu | t2i (unified) ; text | mmu (grpo prompts)
    weight: float = 1.0
    #: mmu sources: this file's share of wholly masked responses, in place of ``objective.mmu_full_mask_prob``
    #: (e.g. 0 for captions decoded over many steps beside one-token answers at 1); ``None`` = the objective's
    full_mask_prob: Optional[float] = None
    #: mmu sources: loss weight of this file's EOS / end-of-turn targets, in place of ``objective.structural_weight``
    #: (e.g. 1 for captions, which must learn where they end); ``None`` = the objective's
    structural_weight: Optional[float] = None


@dataclass
class DataSection:
    max_seq_length: int = 128            # official preprocessing.max_seq_length (text part of t2i / mmu rows)
    lm_max_length: Optional[int] = None  # length of lm rows; default max_seq_length + 3 + num_vq_tokens
    num_vq_tokens: Optional[int] = None  # default: the model config's
    batch_size: dict = field(default_factory=lambda: {"t2i": 1, "lm": 1, "mmu": 1})
    lm_format: str = "plain"             # plain (whole text masked, /(B*L)) | chat (response only, /answer length)
    think_format: bool = False           # prompts get the thinking system prompt; reasoning -> <think> ... </think>
    chat_eot: str = "<|eot_id|>"         # "<eot_id>" reproduces the official training-string typo
    sources: list[SourceSection] = field(default_factory=list)


@dataclass
class ObjectiveSection:
    coefficients: dict = field(default_factory=lambda: {"t2i": 1.0, "lm": 1.0, "mmu": 1.0})
    cond_dropout_prob: float = 0.1
    min_masking_rate: float = 0.0
    text_eps: float = 1e-3
    #: text-loss weight at EOS-padding / <|eot_id|> targets; 1.0 = the official objective. A tiny model trained
    #: with full weight there learns content that depends on the prompt far more slowly (docs/world/rounds.md)
    structural_weight: float = 1.0
    #: text-loss weights of chosen targets, ``{text piece: weight}`` (e.g. ``{" yes": 4.0}``, mind the leading
    #: space); a piece of several tokens weights each token of its whole occurrences only. Empty = the official
    #: objective
    target_weights: dict = field(default_factory=dict)
    #: share of mmu rows whose whole response is masked (``t = 1``): the one-step answer the harness decodes for
    #: a direct question. 0 = the official objective (``t ~ U(0, 1)`` for every row, same random stream)
    mmu_full_mask_prob: float = 0.0


@dataclass
class OptimSection:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_scale: float = 0.0
    max_grad_norm: float = 1.0


@dataclass
class TrainSection:
    max_steps: int = 1000
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"          # no | fp16 | bf16 (accelerate)
    seed: int = 10086
    log_every: int = 10
    save_every: int = 1000
    keep_last: int = 2
    tensorboard: bool = False            # also write the logged records as TensorBoard scalars (OUTPUT_DIR/tensorboard/)
    # stop before max_steps once the logged loss, averaged over the last ``stop_window`` steps (whole log windows),
    # is at or below this; max_steps is then the cap (the schedule still runs over max_steps)
    stop_loss_below: Optional[float] = None
    stop_window: int = 50


@dataclass
class GRPOSection:
    prompts_per_step: int = 2
    group_size: int = 16
    clip_eps: float = 0.2
    beta: float = 0.01                   # KL (k3) coefficient, against the frozen reference policy
    mask_ratio: tuple[float, float] = (0.0, 1.0)  # structured noising: p ~ U(lo, hi) over the response only
    mask_times: int = 2                  # noisy copies per response
    iterations: int = 1                  # optimiser steps per rollout batch (ratio != 1 from the 2nd on)
    # rollouts run the full gen_length (stop_at_eos is forced off); unset fields keep these defaults
    sampler: TextSamplerSettings = field(default_factory=lambda: TextSamplerSettings(
        gen_length=256, steps=128, block_length=64, temperature=0.8, stop_at_eos=False))
    image_sampler: ImageSamplerSettings = field(default_factory=lambda: ImageSamplerSettings(  # t2i prompt rows
        timesteps=15, guidance_scale=3.5, temperature=1.0))
    rewards: list[dict] = field(default_factory=lambda: [{"name": "correctness", "weight": 2.0},
                                                   {"name": "format", "weight": 0.5}])


@dataclass
class StageConfig:
    name: str = "stage"
    kind: str = "unified"                # unified | grpo
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    grpo: GRPOSection = field(default_factory=GRPOSection)

    def validate(self) -> "StageConfig":
        if self.kind not in ("unified", "grpo"):
            raise ValueError(f"stage kind must be 'unified' or 'grpo', not {self.kind!r}")
        if not self.model.path:
            raise ValueError("model.path is empty: set it to the checkpoint folder to start from (or pass --model)")
        if self.data.lm_format not in ("plain", "chat"):
            raise ValueError(f"data.lm_format must be plain or chat, not {self.data.lm_format!r}")
        unknown = set(self.data.batch_size) - {"t2i", "lm", "mmu"}
        if unknown:
            raise ValueError(f"data.batch_size has unknown groups {sorted(unknown)} (use t2i, lm, mmu)")
        kinds = {"t2i", "text", "mmu"}
        for src in self.data.sources:
            if src.kind not in kinds:
                raise ValueError(f"data source {src.path}: kind must be one of {sorted(kinds)}, not {src.kind!r}")
            if src.weight <= 0:
                raise ValueError(f"data source {src.path}: weight must be > 0")
            if src.full_mask_prob is not None and (src.kind != "mmu" or not 0.0 <= src.full_mask_prob <= 1.0):
                raise ValueError(f"data source {src.path}: full_mask_prob applies to mmu sources and must be in "
                                 f"[0, 1], got {src.full_mask_prob} for kind {src.kind!r}")
            if src.structural_weight is not None and (src.kind != "mmu" or src.structural_weight < 0):
                raise ValueError(f"data source {src.path}: structural_weight applies to mmu sources and must be "
                                 f">= 0, got {src.structural_weight} for kind {src.kind!r}")
        if not self.data.sources:
            raise ValueError("data.sources is empty: list jsonl/parquet files with a kind (text, mmu, t2i)")
        if self.train.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"train.mixed_precision must be no, fp16 or bf16, not {self.train.mixed_precision!r}")
        if self.train.stop_loss_below is not None and (self.train.stop_loss_below <= 0
                                                       or self.train.stop_window < self.train.log_every):
            raise ValueError(f"train.stop_loss_below must be > 0 and train.stop_window >= train.log_every, got "
                             f"{self.train.stop_loss_below} and {self.train.stop_window} (log_every "
                             f"{self.train.log_every})")
        if not 0.0 <= self.objective.mmu_full_mask_prob <= 1.0:
            raise ValueError(f"objective.mmu_full_mask_prob must be in [0, 1], got {self.objective.mmu_full_mask_prob}")
        lo, hi = self.grpo.mask_ratio
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"grpo.mask_ratio must satisfy 0 <= lo <= hi <= 1, got {self.grpo.mask_ratio}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def stage_from_dict(data: dict, base_dir: Optional[Path] = None) -> StageConfig:
    """Build a :class:`StageConfig`; a relative data path missing from the working directory but present
    beside the config (``base_dir``) resolves there."""
    cfg = build_dataclass(StageConfig, data, numeric_strings=True)  # YAML reads 1e-4 as a string
    if base_dir is not None:
        for src in cfg.data.sources:
            beside_config = base_dir / src.path
            if src.path and not Path(src.path).is_absolute() and not Path(src.path).exists() and beside_config.exists():
                src.path = str(beside_config.resolve())
    return cfg


def load_stage(path: str | Path, overrides: Optional[dict] = None) -> StageConfig:
    """Read a stage YAML; ``overrides`` maps dotted keys (``train.max_steps``) to values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"stage config {path} not found (see configs/train/)")
    data = yaml.safe_load(path.read_text()) or {}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return stage_from_dict(data, base_dir=path.parent)
