"""Set metrics of the image-understanding tasks (POPE, MME, Flickr30k).

Registers set metrics ``pope``, ``mme`` and ``captions``: ``fn(entries, options) -> rows``, called once per
task with every item (``{"item_id", "doc", "output", "error"}``). Each row is ``{"metric", "value", "unit",
"breakdown"?}``; ``unit`` is
``fraction`` (0..1, printed as %), ``x100`` (printed x100 without %, as papers print CIDEr / BLEU) or
``points`` (printed as is, MME's 0..2000 scores).

Failed items (``error`` set: no usable generation) count as errors, never as an answer, under every parser
variant: they stay in the item count and are wrong.

- POPE: passed to :func:`mmada_scoring.pope.score_pope` as ``failed`` items: wrong for accuracy, never a yes
  (not TP / FP, not in the predicted yes-ratio) nor a correct no (not TN); a false negative on a yes question.
  Without this the ``original`` parser's default-yes rule would read a failure as "yes".
- MME: scored with an empty prediction, which every MME parser reads as neither yes nor no: the question is
  wrong and its image's acc+ pair fails.
- captions: scored with an empty caption (as the references would score a missing one).
"""
from __future__ import annotations

from mmada_bench.registry import register_set_metric
from mmada_scoring.caption import score_captions
from mmada_scoring.mme import COGNITION_CATEGORIES, PERCEPTION_CATEGORIES, score_mme
from mmada_scoring.pope import score_pope


def _prediction(entry: dict) -> str:
    return "" if entry.get("error") else (entry.get("output") or "")


def _row(metric: str, value, unit: str = "fraction", breakdown: str | None = None, n: int | None = None) -> dict:
    name = f"{metric}[{breakdown}]" if breakdown else metric
    return {"metric": name, "value": None if value is None else float(value), "unit": unit,
            "breakdown": breakdown, "n": n}


POPE_OUTPUTS = ("f1", "precision", "recall", "accuracy", "yes_ratio", "mean_split_f1")


@register_set_metric("pope")
def pope_set_metric(entries: list[dict], options: dict) -> list[dict]:
    """POPE pooled F1 / precision / recall / accuracy / yes-ratio, the mean of split F1s, and per split."""
    items = [{"id": e["item_id"], "answer": e["doc"].get("answer"), "category": e["doc"].get("category"),
              "prediction": _prediction(e), "failed": bool(e.get("error"))} for e in entries]
    result = score_pope(items, variant=options.get("variant", "vlmevalkit_mmada"), split_column="category")
    rows = []
    for breakdown, metrics in [(None, result["pooled"])] + [(f"split={s}", m) for s, m in result["splits"].items()]:
        for name, key in (("f1", "f1"), ("precision", "precision"), ("recall", "recall"), ("accuracy", "accuracy"),
                          ("yes_ratio", "yes_ratio_predicted")):
            if breakdown is None and name == "accuracy":
                continue  # the per-item yes_no_accuracy row carries the pooled accuracy (with its CI)
            rows.append(_row(name, metrics[key], breakdown=breakdown, n=metrics["n"]))
    rows.append(_row("mean_split_f1", result["mean_split_f1"], n=result["pooled"]["n"]))
    return rows


pope_set_metric.outputs = POPE_OUTPUTS


GROUP_CATEGORIES = {"perception": PERCEPTION_CATEGORIES, "cognition": COGNITION_CATEGORIES}


@register_set_metric("mme")
def mme_set_metric(entries: list[dict], options: dict) -> list[dict]:
    """MME perception (max 2000) and cognition (max 800), and acc / acc+ / score per category."""
    items = [{"question_id": e["doc"].get("question_id"), "category": e["doc"].get("category"),
              "answer": e["doc"].get("answer"), "prediction": _prediction(e)} for e in entries]
    result = score_mme(items, variant=options.get("variant", "vlmevalkit_mmada"), pair_column="question_id")
    rows = []
    for group in ("perception", "cognition"):
        if result[group] is not None:
            rows.append(_row(group, result[group], unit="points", n=len(entries)))
        elif any(c in result["categories"] for c in GROUP_CATEGORIES[group]):
            rows.append(_row(f"{group}_partial", result[f"{group}_partial"], unit="points", n=len(entries)))
    for category, scores in sorted(result["categories"].items()):
        breakdown = f"category={category}"
        rows.append(_row("score", scores["score"], unit="points", breakdown=breakdown, n=scores["n_questions"]))
        rows.append(_row("acc", scores["acc"] / 100, breakdown=breakdown, n=scores["n_questions"]))
        rows.append(_row("acc_plus", scores["acc_plus"] / 100, breakdown=breakdown, n=scores["n_images"]))
    return rows


mme_set_metric.outputs = ("perception", "cognition", "perception_partial", "cognition_partial")


CAPTION_OUTPUTS = ("CIDEr", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L")
#: the caption metrics whose corpus value is the mean of per-image values (corpus BLEU and METEOR are not)
PER_ITEM_CAPTION_OUTPUTS = ("CIDEr",)


@register_set_metric("captions")
def captions_set_metric(entries: list[dict], options: dict) -> list[dict]:
    """Corpus caption metrics (pycocoevalcap) under ``options.variant``; raises CaptionMetricsUnavailable without Java."""
    refs_field = options.get("refs_field", "caption")
    items = [{"img_id": e["item_id"], "caption": e["doc"].get(refs_field), "prediction": _prediction(e)}
             for e in entries]
    result = score_captions(items, variant=options.get("variant", "lmms_eval"))
    rows = [_row(key, result["aggregate"][key], unit="x100", n=len(entries))
            for key in CAPTION_OUTPUTS if key in result["aggregate"]]
    for row in rows:  # CIDEr is the mean of its per-image scores: stored per item, the gate pairs them
        if row["metric"] in PER_ITEM_CAPTION_OUTPUTS:
            row["per_item"] = {item["img_id"]: item[row["metric"]] for item in result["per_item"]}
    return rows


captions_set_metric.outputs = CAPTION_OUTPUTS
