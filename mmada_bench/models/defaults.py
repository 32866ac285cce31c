"""Run defaults a checkpoint folder carries (``harness_defaults.json``, as Hugging Face's ``generation_config.json``).

A demo checkpoint says how it is run and how its results are labelled::

    {"label": "SHAPES-WORLD MODEL: ...",          printed beside every result; marks them as not a benchmark result
     "presets": {"text": "ci", "image": "t2i-ci"}, the sampler preset per output kind when --preset is not given
     "task_presets": {"gsm8k": "world-gsm8k"},     ... per task (wins over "presets")
     "task_variants": {"pope": "mmada-app-think"}, the card variant per task when --variant is not given
     "num_fewshot": {"gsm8k": 0}}                  shots per task when --num-fewshot is not given

Command-line flags always win. A folder without the file has no defaults; a malformed file is an error.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mmada_ref.from_dict import build_dataclass

DEFAULTS_FILE = "harness_defaults.json"


@dataclass
class CheckpointDefaults:
    label: str = ""
    presets: dict = field(default_factory=dict)
    task_presets: dict = field(default_factory=dict)
    task_variants: dict = field(default_factory=dict)
    num_fewshot: dict = field(default_factory=dict)

    def preset_for(self, task: str, kind: str) -> Optional[str]:
        return self.task_presets.get(task) or self.presets.get(kind)


NO_DEFAULTS = CheckpointDefaults()


def read_defaults(folder: Optional[str | Path]) -> CheckpointDefaults:
    """The defaults of a checkpoint folder (:data:`NO_DEFAULTS` when it has none or is not a folder)."""
    if folder is None or not (Path(folder) / DEFAULTS_FILE).is_file():
        return NO_DEFAULTS
    path = Path(folder) / DEFAULTS_FILE
    try:
        return build_dataclass(CheckpointDefaults, json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not valid run defaults ({exc}); fix or delete the file") from None
