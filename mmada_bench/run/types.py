"""The types every part of a run shares: settings, planned items, task plans, the run's context and outcome."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from mmada_bench.cards.schema import TaskCard, VariantSpec
from mmada_bench.data.loading import Item, TaskData
from mmada_bench.run.timing import RunTiming
from mmada_ref.sampling.presets import Preset


class RunBusy(RuntimeError):
    """Another process holds the same run."""


@dataclass
class RunSettings:
    """Everything ``run`` needs besides the model object."""

    tasks: list[str]
    model: Optional[str] = None  # --model; None = the packaged default (models.smoke.DEFAULT_MODEL_DIR)
    limit: Optional[int] = None
    data_dir: Optional[str] = None
    output_dir: str = "leaderboards"
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: Union[int, str] = 1  # prompts per generate() call, or "auto" (mmada_bench.run.batch_size)
    preset: Optional[str] = None  # overrides the cards' presets
    seed: int = 1234
    variant: Optional[str] = None  # overrides the cards' default variants
    run_id: Optional[str] = None
    retry_errors: bool = False  # regenerate items stored with a model error
    require_data: bool = False  # fail instead of falling back to the bundled smoke subsets
    image_dir: Optional[str] = None  # folder of image files for items that name them (e.g. COCO val2014)
    prompts: Optional[str] = None  # text-to-image prompt set: .txt/.jsonl/.parquet file or HF dataset id
    scorers: dict = field(default_factory=dict)  # t2i scorer options (mmada_bench.metrics.image_metrics.OPTION_FLAGS)
    gen_kwargs: dict = field(default_factory=dict)  # --gen-kwargs: overrides of the preset's sampler settings
    num_fewshot: Optional[int] = None  # --num-fewshot: overrides the card's prompt.fewshot.n
    include_paths: list = field(default_factory=list)  # --include-path: folders of task cards searched first
    predict_only: bool = False  # --predict-only: generate and store the items, score nothing
    apply_chat_template: bool = False  # --apply-chat-template: chat layout for text tasks whose variant is plain
    system_instruction: Optional[str] = None  # --system-instruction: a system turn (chat) or prompt prefix (plain)
    progress: bool = True


@dataclass
class PlannedItem:
    """One item with its rendered prompt (or the reason it cannot be asked)."""

    item: Item
    prompt: str = ""
    messages: Optional[list] = None
    prompt_hash: str = ""
    error: Optional[str] = None
    image: Any = None  # image source (bytes / path / PIL) of image tasks, decoded when generating


@dataclass
class TaskPlan:
    """A task ready to run: its card, variant, sampler preset, stop strings, data and planned items."""

    card: TaskCard
    variant_name: str
    variant: VariantSpec
    preset: Preset
    stop: list[str]
    data: TaskData
    items: list[PlannedItem]
    prompt_overrides: dict = field(default_factory=dict)  # effective --apply-chat-template / --system-instruction

    @property
    def primary(self) -> tuple[str, str]:
        """(metric, filter) of the headline number for this plan's variant."""
        return self.card.primary(self.variant_name)

    @property
    def variant_label(self) -> str:
        """The variant name as results show it: ``lm-eval+chat``, ``lm-eval+system`` when flags changed the prompt."""
        suffixes = [s for key, s in (("apply_chat_template", "chat"), ("system_instruction", "system"))
                    if key in self.prompt_overrides]
        return "+".join([self.variant_name, *suffixes])

    def describe(self) -> dict:
        """What identifies the plan's outputs (part of the run id and the manifest)."""
        described = {"task": self.card.name, "version": self.card.version, "variant": self.variant_name,
                     "card_hash": self.card.content_hash(), "preset": self.preset.to_dict(), "stop": self.stop,
                     "split": self.data.split, "dataset_fingerprint": self.data.fingerprint,
                     "n_items": len(self.items)}
        if self.prompt_overrides:  # only when set, so runs without the flags keep their ids
            described["prompt_overrides"] = dict(self.prompt_overrides)
        return described


@dataclass
class RunOutcome:
    """What a run produced: leaderboard rows, per-task errors and where things were written."""

    run_id: str
    model_name: str
    rows: list[dict] = field(default_factory=list)
    task_errors: dict = field(default_factory=dict)
    generated: int = 0
    resumed: int = 0
    output_dir: str = ""
    model_label: str = ""  # the model's "not a benchmark result" label (smoke / demo checkpoints)
    predicted: dict = field(default_factory=dict)  # --predict-only: task -> {"variant", "split", "n", "n_errors"}
    timing: RunTiming = field(default_factory=RunTiming)  # where this invocation's wall time went


@dataclass
class RunContext:
    """Where one run writes and what every task path of it shares."""

    settings: RunSettings
    model: Any
    run_id: str
    output_dir: Path
    run_dir: Path
    started_at: str
    dist: Any  # mmada_bench.run.distributed.DistContext
    outcome: RunOutcome
    defaults: Any = None  # mmada_bench.models.defaults.CheckpointDefaults the tasks were planned with
    batch_sizes: dict = field(default_factory=dict)  # task -> the batch size it runs with (an "auto" choice resolved)
