"""Score a harness text-to-image run on world prompts with the world oracle (GenEval-style).

Reads ``runs/<run_id>/images/<task>/metadata.jsonl`` (one line per image: ``file``, ``prompt``, ...); image
files are resolved beside it. Returns the overall rate and the rate per prompt form (one/two objects,
with/without cells).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from PIL import Image

from .oracle import detect, parse_prompt, satisfies


def prompt_form(prompt: str) -> str:
    """``single`` / ``pair`` (+ ``_position`` when every object has a cell), as :func:`language.t2i_prompt`."""
    requests = parse_prompt(prompt)
    base = "single" if len(requests) == 1 else "pair" if len(requests) == 2 else f"{len(requests)}_objects"
    return base + ("_position" if all(r.cell for r in requests) else "")


def score_metadata(metadata: str | Path) -> dict:
    """Oracle score of every image listed in ``metadata``: ``{"rate", "n", "by_form", "items"}``."""
    metadata = Path(metadata)
    items, by_form = [], defaultdict(list)
    for line in metadata.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        image = Image.open(metadata.parent / row["file"]).convert("RGB")
        found = detect(image)
        ok = satisfies(parse_prompt(row["prompt"]), found)
        form = prompt_form(row["prompt"])
        by_form[form].append(ok)
        items.append({"file": row["file"], "prompt": row["prompt"], "form": form, "score": float(ok),
                      "found": [f"{d.colour} {d.shape} in the {d.cell}" for d in found]})
    if not items:
        raise ValueError(f"{metadata} lists no images")
    return {"rate": sum(i["score"] for i in items) / len(items), "n": len(items),
            "by_form": {k: sum(v) / len(v) for k, v in sorted(by_form.items())}, "items": items}
