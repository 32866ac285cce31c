"""The world oracle as a set metric of text-to-image tasks: ``geneval_world`` (GenEval-style, shapes world only).

Per image (:mod:`mmada_bench.world.oracle`): the prompt's objects (colour, shape, and cell when named) are
parsed, and the image scores 1.0 when the oracle's detections match them one to one with nothing left over
(``satisfies``, as ``score_prompt``), else 0.0. Rows, label ``world-oracle``, unit ``fraction``:

* ``geneval_world``: the mean over the images whose prompt the oracle can parse; ``n`` = those images;
* ``geneval_world[category=C]``: the same per ``category`` of the prompt rows, when they carry one (the world
  set: ``single``, ``pair``, ``single_position``, ``pair_position``); its ``n_errors``: its images not scored;
* ``geneval_world_unparsable``: the share of images whose prompt names no world object; ``n`` = every image.

On a real prompt set nearly every prompt is unparsable: ``geneval_world`` then has no value (NaN, ``n`` = 0)
instead of a plausible number, and ``geneval_world_unparsable`` says why.
"""
from __future__ import annotations

import math
from collections import defaultdict

from mmada_bench.registry import register_set_metric
from mmada_scoring.scorer_weights import to_pil_image

LABEL = "world-oracle"
UNIT = "fraction"


@register_set_metric("geneval_world")
def geneval_world_metric(entries: list[dict], options: dict) -> list[dict]:
    """World-oracle correctness of each (prompt, image); the mean, per category, and the unparsable share."""
    from mmada_bench.world.oracle import (  # scipy (connected components): imported when images are scored
        detect,
        parse_prompt,
        satisfies,
    )

    per_item, unparsable, item_errors, by_category = {}, {}, {}, defaultdict(dict)
    categories = {e["item_id"]: str((e.get("doc") or {}).get("category") or "") for e in entries}
    for entry in entries:
        item_id = entry["item_id"]
        try:
            requests = parse_prompt(entry["prompt"])
        except ValueError:
            unparsable[item_id] = 1.0
            continue
        try:
            score = 1.0 if satisfies(requests, detect(to_pil_image(entry["image"]).convert("RGB"))) else 0.0
        except (OSError, ValueError, TypeError) as exc:
            item_errors[item_id] = f"geneval_world failed: {type(exc).__name__}: {exc}"
            continue
        per_item[item_id] = score
        if categories[item_id]:
            by_category[categories[item_id]][item_id] = score
    rows = [_row("geneval_world", per_item, item_errors)]
    for category, scores in sorted(by_category.items()):
        unscored = sum(1 for i, c in categories.items() if c == category and i not in scores)
        rows.append({**_row(f"geneval_world[category={category}]", scores, {}), "breakdown": f"category={category}",
                     "n_errors": unscored})
    share = {e["item_id"]: unparsable.get(e["item_id"], 0.0) for e in entries}
    rows.append({**_row("geneval_world_unparsable", share, {}), "n_unparsable": len(unparsable)})
    return rows


def _row(metric: str, per_item: dict, item_errors: dict) -> dict:
    scores = list(per_item.values())
    return {"metric": metric, "label": LABEL, "unit": UNIT, "n": len(scores),
            "value": sum(scores) / len(scores) if scores else math.nan, "per_item": per_item,
            "item_errors": item_errors}


geneval_world_metric.outputs = ("geneval_world", "geneval_world_unparsable")
