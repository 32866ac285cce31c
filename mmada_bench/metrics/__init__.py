"""Filters, per-item metrics and set metrics; importing this package registers every one of them.

* :mod:`.filters`: answer extraction ``filter(text, doc) -> str``, chained in a card's ``filters``;
* :mod:`.item_metrics`: ``metric(prediction, gold, doc) -> float``, aggregated as a mean with a CI;
* :mod:`.set_metrics`: ``fn(entries, options) -> rows`` over a task's whole item set (POPE, MME, captions);
* :mod:`.image_metrics`: the set metrics of text-to-image tasks (CLIP score, ImageReward);
* :mod:`.world_metrics`: ``geneval_world``, the shapes-world oracle's text-to-image score;
* :mod:`.intervals`: Wilson / bootstrap confidence intervals.
"""
from mmada_bench.metrics import (  # noqa: F401  (registration)
    filters,
    image_metrics,
    item_metrics,
    set_metrics,
    world_metrics,
)
from mmada_bench.registry import FILTERS, METRICS, SET_METRICS

__all__ = ["FILTERS", "METRICS", "SET_METRICS"]
