"""POPE scoring: four answer parsers and the per-split / pooled yes-no metrics.

Public API
----------
``VARIANTS = ("original", "vlmevalkit", "vlmevalkit_mmada", "lmms_eval")``
``parse_original(text) -> "yes" | "no"``
    RUCAIBox/POPE ``evaluate.py`` (= LLaVA ``eval_pope.py``): text before the first ".",
    commas dropped, split on " "; any word ``No``/``not``/``no`` -> no, else yes.
``normalize_lmms_eval(text) -> str``
    lmms-eval ``pope_process_results``: ``text.lower().strip()`` (only exact yes/no count).
``parse_answer(text, variant) -> dict``
    ``{"parsed", "pred_label", "post_processed"?}`` for one generation; ``pred_label`` is the
    yes/no the confusion counts use (``None`` = left out of TP/FP/FN, lmms-eval only).
``binary_metrics(rows) -> dict``
    Metrics of ``(ground_truth, pred_label, correct)`` triples (see ``score_pope``).
``score_pope(items, variant="vlmevalkit", split_column=None) -> dict``
    Score a list of dicts / DataFrame with ``answer`` (yes/no), ``prediction`` and a split
    column (``split``, else ``category``; comma-separated splits are exploded as VLMEvalKit's
    ``POPE_rating`` does); an optional truthy ``failed`` marks an item whose generation failed.
    Returns ``{"variant", "per_item", "splits", "pooled", "mean_split_f1"}``.

Metric dicts hold fractions (0-1): ``accuracy`` (mean of per-item correctness), ``precision``,
``recall``, ``f1`` (positive class = yes; 0 when undefined), ``yes_ratio_predicted`` (POPE
``evaluate.py``: share of items predicted yes), ``yes_ratio_ground_truth`` (lmms-eval
``pope_yes_ratio``: share of ground-truth yes), counts ``n, tp, fp, tn, fn, n_unparsed, n_failed``.
``pooled`` = all split rows together (VLMEvalKit ``Overall`` row, lmms-eval task ``pope``);
``mean_split_f1`` = unweighted mean of the split F1s (LLaVA-paper style).

Variant conventions for the confusion counts: ``vlmevalkit*`` count ``Unknown`` as a "no"
prediction (wrong, and a false negative on a yes question); ``lmms_eval`` leaves anything but
an exact yes/no out of TP/FP/FN (it is still wrong for accuracy); ``original`` always parses.

Failed items (``failed`` true: the generation failed, there is no answer) are never parsed, under every
variant: ``parsed`` and ``pred_label`` are :data:`FAILED`, the item is wrong (it lowers accuracy), it is never a
yes prediction (not TP / FP, not in ``yes_ratio_predicted``'s numerator) nor a correct no (not TN); on a yes
question it is a false negative (a missed yes, lowering recall). Without this, ``original``'s default-yes rule
would turn every failure into a "yes". Items without ``failed`` are scored exactly as the references do.
"""
from __future__ import annotations

from collections.abc import Iterable

from .item_table import MissingColumnError, as_records, text_or_empty
from .yes_no import mmada_post_process, yorn_extraction

VARIANTS = ("original", "vlmevalkit", "vlmevalkit_mmada", "lmms_eval")
#: ``parsed`` / ``pred_label`` of a failed item (see the module docstring)
FAILED = "failed"
_NEGATION_WORDS = ("No", "not", "no")


def parse_original(text: str) -> str:
    """POPE ``evaluate.py`` / LLaVA ``eval_pope.py`` parsing: default yes unless a negation word."""
    first_sentence = text.split(".")[0]
    words = first_sentence.replace(",", "").split(" ")
    return "no" if any(word in _NEGATION_WORDS for word in words) else "yes"


def normalize_lmms_eval(text: str) -> str:
    """lmms-eval's prediction normalisation: lower-case and strip."""
    return text.lower().strip()


def parse_answer(text: str, variant: str) -> dict:
    """Parse one raw generation under ``variant`` (see module docstring)."""
    if variant == "original":
        parsed = parse_original(text)
        return {"parsed": parsed, "pred_label": parsed}
    if variant == "lmms_eval":
        parsed = normalize_lmms_eval(text)
        return {"parsed": parsed, "pred_label": parsed if parsed in ("yes", "no") else None}
    if variant in ("vlmevalkit", "vlmevalkit_mmada"):
        result = {}
        if variant == "vlmevalkit_mmada":
            text = result["post_processed"] = mmada_post_process(text, dataset="POPE")
        parsed = yorn_extraction(text)
        result.update(parsed=parsed, pred_label="yes" if parsed == "Yes" else "no")
        return result
    raise ValueError(f"unknown POPE variant {variant!r}; choose one of {VARIANTS}")


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def binary_metrics(rows: Iterable[tuple[str, str | None, bool]]) -> dict:
    """Accuracy, precision, recall, F1, both yes-ratios and counts of (gt, pred_label, correct) rows."""
    rows = list(rows)
    n = len(rows)
    tp = sum(gt == "yes" and pred == "yes" for gt, pred, _ in rows)
    fp = sum(gt == "no" and pred == "yes" for gt, pred, _ in rows)
    tn = sum(gt == "no" and pred == "no" for gt, pred, _ in rows)
    fn = sum(gt == "yes" and pred in ("no", FAILED) for gt, pred, _ in rows)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": n, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "n_unparsed": sum(pred is None for _, pred, _ in rows),
        "n_failed": sum(pred == FAILED for _, pred, _ in rows),
        "accuracy": _ratio(sum(bool(correct) for _, _, correct in rows), n),
        "precision": precision, "recall": recall, "f1": f1,
        "yes_ratio_predicted": _ratio(sum(pred == "yes" for _, pred, _ in rows), n),
        "yes_ratio_ground_truth": _ratio(sum(gt == "yes" for gt, _, _ in rows), n),
    }


def _is_failed(value) -> bool:
    """A truthy ``failed`` cell (None / NaN, as a DataFrame fills absent cells, are not failures)."""
    return value is not None and value == value and bool(value)


def _split_column(records: list[dict], split_column: str | None) -> str:
    if split_column is not None:
        candidates = [split_column]
    else:
        candidates = ["split", "category"]
    for name in candidates:
        if all(name in record for record in records):
            return name
    raise MissingColumnError(
        f"POPE input is missing the split column: expected {' or '.join(repr(c) for c in candidates)} "
        "(adversarial / popular / random) on every item"
    )


def _ground_truth(record: dict, item_id) -> str:
    answer = str(record["answer"]).strip().lower()
    if answer not in ("yes", "no"):
        raise ValueError(f"POPE item {item_id!r}: answer must be yes/no, got {record['answer']!r}")
    return answer


def score_pope(items, variant: str = "vlmevalkit", split_column: str | None = None) -> dict:
    """Score POPE generations under one parser ``variant``; see the module docstring."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown POPE variant {variant!r}; choose one of {VARIANTS}")
    records = as_records(items, ("answer", "prediction"), "POPE")
    split_name = _split_column(records, split_column)
    per_item, split_rows = [], {}
    for position, record in enumerate(records):
        item_id = record.get("id", record.get("question_id", position))
        ground_truth = _ground_truth(record, item_id)
        if _is_failed(record.get("failed")):
            parsed, correct = {"parsed": FAILED, "pred_label": FAILED}, False
        elif variant.startswith("vlmevalkit"):
            parsed = parse_answer(text_or_empty(record["prediction"]), variant)
            correct = parsed["parsed"] == ground_truth.capitalize()
        else:
            parsed = parse_answer(text_or_empty(record["prediction"]), variant)
            correct = parsed["parsed"] == ground_truth
        splits = [s.strip() for s in str(record[split_name]).split(",") if s.strip()]
        per_item.append({"id": item_id, "split": ",".join(splits), "answer": ground_truth,
                         "prediction": record["prediction"], **parsed, "correct": correct})
        for split in splits:
            split_rows.setdefault(split, []).append((ground_truth, parsed["pred_label"], correct))
    splits = {split: binary_metrics(rows) for split, rows in sorted(split_rows.items())}
    pooled = binary_metrics(row for rows in split_rows.values() for row in rows)
    mean_split_f1 = sum(m["f1"] for m in splits.values()) / len(splits)
    return {"variant": variant, "per_item": per_item, "splits": splits, "pooled": pooled,
            "mean_split_f1": mean_split_f1}
