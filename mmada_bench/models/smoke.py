"""The packaged demo models: where they are and how the harness picks them.

Without ``--model`` the run uses :data:`DEFAULT_MODEL_DIR`: a shapes-world model in :data:`WORLD_MODEL_DIR`
(trained by ``python -m mmada_bench world build``, packaged by :mod:`mmada_bench.world.package`; committed, or
copied there from a build), or else the smoke model (random weights, built by
:mod:`mmada_bench.models.build_smoke`). Demo checkpoints carry
``harness_defaults.json`` (:mod:`mmada_bench.models.defaults`): the label every output carries ("not a
benchmark result") and the sampler presets they run with unless ``--preset`` is given.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from mmada_bench.models.defaults import NO_DEFAULTS, CheckpointDefaults

ASSETS = Path(__file__).resolve().parents[1] / "assets"
WORLD_MODEL_DIR = ASSETS / "mmada-world"
SMOKE_MODEL_DIR = ASSETS / "mmada-smoke"
DEFAULT_MODEL_DIR = WORLD_MODEL_DIR if (WORLD_MODEL_DIR / "config.json").is_file() else SMOKE_MODEL_DIR

#: a file in a checkpoint folder that marks it as a smoke / demo checkpoint: its results are labelled
#: smoke however the folder is passed (never shown as a benchmark result)
SMOKE_MARKER = "SMOKE_MODEL.md"
SMOKE_LABEL = "SMOKE MODEL: not a real result"

#: the cheap smoke presets stand for each other across output kinds (``--preset ci`` on a t2i task = ``t2i-ci``)
SMOKE_PRESETS = {"text": "ci", "image": "t2i-ci"}

NO_MODEL_WARNING = (
    "no --model: using the packaged shapes-world model (a demo trained on the synthetic world, not a benchmark "
    "result; pass --model DIR for a real checkpoint)" if DEFAULT_MODEL_DIR == WORLD_MODEL_DIR else
    f"no --model: using the packaged smoke model (random weights) with the {SMOKE_PRESETS['text']!r} / "
    f"{SMOKE_PRESETS['image']!r} sampler presets (pass --preset to change)")


def model_label(model) -> str:
    """A loaded model's "not a benchmark result" label ("" for a real checkpoint)."""
    return getattr(model, "label", "") or (SMOKE_LABEL if getattr(model, "is_smoke", False) else "")


def result_label(row) -> str:
    """The "not a benchmark result" label of a leaderboard row (a dict or pandas row); "" for a real model."""
    label = row.get("model_label")
    if isinstance(label, str) and label:
        return label
    return SMOKE_LABEL if bool(row.get("model_is_smoke")) else ""


def preset_name(requested: Optional[str], card_preset: str, kind: str, task: str = "",
                defaults: CheckpointDefaults = NO_DEFAULTS) -> str:
    """The preset a task runs with: ``--preset``, else the checkpoint's default for the task or its output kind
    (``harness_defaults.json``), else the card's."""
    name = requested or defaults.preset_for(task, kind) or card_preset
    if name in SMOKE_PRESETS.values():
        return SMOKE_PRESETS[kind]
    return name
