"""Other on-disk formats a card may accept under ``--data-dir`` (``dataset.local_formats``).

A reader ``reader(folder) -> (rows, fingerprint, description) | None`` turns files in the task's
data folder into rows of the card's canonical schema; ``None`` means "not this format here".

``pope_original``: the RUCAIBox/POPE question files ``coco_pope_{adversarial,popular,random}.json``
(JSON lines ``question_id, image, text, label``) -> the lmms-lab/POPE schema (``id``,
``question_id``, ``question``, ``answer``, ``category``, ``image_source``, ``image`` = the COCO file
name, looked up in the image folder).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Optional

from mmada_ref.jsonl import JSONLError, parse_lines

POPE_SPLITS = ("adversarial", "popular", "random")


def read_pope_original(folder: Path) -> Optional[tuple[list[dict], str, str]]:
    """Rows of the original POPE files in ``folder`` (split order adversarial, popular, random)."""
    files = [(split, folder / f"coco_pope_{split}.json") for split in POPE_SPLITS]
    present = [(split, path) for split, path in files if path.exists()]
    if not present:
        return None
    digest = hashlib.sha256()
    rows: list = []
    for split, path in present:
        data = path.read_bytes()
        digest.update(path.name.encode() + data)
        for raw in parse_lines(data, path.name):
            if isinstance(raw, JSONLError):
                rows.append(raw)
                continue
            if not isinstance(raw, dict):
                rows.append(ValueError(f"{path.name}: a line holds a {type(raw).__name__}, not an object"))
                continue
            rows.append({"id": f"{split}-{raw.get('question_id')}", "question_id": raw.get("question_id"),
                         "question": raw.get("text"), "answer": raw.get("label"), "category": split,
                         "image_source": raw.get("image"), "image": raw.get("image")})
    names = ", ".join(path.name for _, path in present)
    return rows, digest.hexdigest(), f"pope-original:{folder} ({names})"


LOCAL_FORMATS: dict[str, Callable[[Path], Optional[tuple[list[dict], str, str]]]] = {
    "pope_original": read_pope_original,
}
