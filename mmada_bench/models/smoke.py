"""The packaged smoke model: where it is and the cheap sampler presets it runs with.

Every special case of the smoke model lives here: without ``--model`` the run uses
:data:`DEFAULT_MODEL_DIR` (random weights, built by :mod:`mmada_bench.models.build_smoke`) with
:data:`SMOKE_PRESETS` unless ``--preset`` is given, and every output it produces is labelled smoke.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "mmada-smoke"

#: a file in a checkpoint folder that marks it as a smoke / world / demo checkpoint: its results are labelled
#: smoke however the folder is passed (never shown as a benchmark result)
SMOKE_MARKER = "SMOKE_MODEL.md"

#: preset kind -> the preset the smoke model runs with (cheap settings; never for reported numbers)
SMOKE_PRESETS = {"text": "ci", "image": "t2i-ci"}

NO_MODEL_WARNING = (f"no --model: using the packaged smoke model with the {SMOKE_PRESETS['text']!r} / "
                    f"{SMOKE_PRESETS['image']!r} sampler presets (pass --preset to change)")


def preset_name(requested: Optional[str], card_preset: str, kind: str, smoke: bool) -> str:
    """The preset a task runs with: ``--preset``, else the smoke preset for the smoke model, else the card's.

    The smoke presets stand for each other across kinds (``--preset ci`` on a text-to-image task means
    ``t2i-ci``), so one ``--preset ci`` serves a mixed run."""
    name = requested or (SMOKE_PRESETS[kind] if smoke else card_preset)
    if name in SMOKE_PRESETS.values():
        return SMOKE_PRESETS[kind]
    return name
