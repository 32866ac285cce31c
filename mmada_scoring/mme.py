"""MME scoring: yes/no parsers, per-category acc / acc+, perception and cognition totals.

Public API
----------
``VARIANTS = ("vlmevalkit", "vlmevalkit_mmada", "lmms_eval")``
``PERCEPTION_CATEGORIES`` (10, max 2000) / ``COGNITION_CATEGORIES`` (4, max 800; VLMEvalKit
calls this group "reasoning"), in VLMEvalKit ``MME_rating`` summation order.
``parse_pred_ans(text) -> "yes" | "no" | "other"``
    lmms-eval ``mme/utils.py::parse_pred_ans``.
``parse_answer(text, variant) -> dict``
    ``{"parsed", "post_processed"?}`` for one generation.
``score_mme(items, variant="vlmevalkit", pair_column=None) -> dict``
    Score a list of dicts / DataFrame with ``question_id``, ``category``, ``answer`` (Yes/No)
    and ``prediction``. Questions are paired per image by ``pair_column`` (default
    ``image_path`` when present, else ``question_id``, which lmms-lab/MME sets to the image
    path). Returns::

        {"variant", "per_item": [...],
         "categories": {cat: {"acc", "acc_plus", "score", "n_questions", "n_images"}},
         "perception", "cognition",            # None when a category of the group is missing
         "perception_partial", "cognition_partial",  # sums over the categories present
         "missing_categories", "unknown_categories", "errors": [...]}

``acc`` = 100 * correct questions / questions; ``acc_plus`` = 100 * images with both
questions correct / paired images; ``score = acc + acc_plus`` (max 200). An image that does not
have exactly two questions gets an error record for each of its questions (``per_item[i]
["error"]`` and ``errors``): those questions still count in ``acc`` but the image is left out of
``acc_plus`` (the references would raise). A missing category is listed, never a KeyError.
"""
from __future__ import annotations

from .item_table import as_records, text_or_empty
from .yes_no import mmada_post_process, yorn_extraction

VARIANTS = ("vlmevalkit", "vlmevalkit_mmada", "lmms_eval")
PERCEPTION_CATEGORIES = ("OCR", "artwork", "celebrity", "color", "count", "existence",
                         "landmark", "position", "posters", "scene")
COGNITION_CATEGORIES = ("code_reasoning", "numerical_calculation", "commonsense_reasoning",
                        "text_translation")
REQUIRED_COLUMNS = ("question_id", "category", "answer", "prediction")


def parse_pred_ans(text: str) -> str:
    """lmms-eval MME parser: exact yes/no, single y/n, else yes/no within the first 4 characters."""
    answer = text.lower().strip().replace(".", "")
    if answer in ("yes", "no"):
        return answer
    if len(answer) == 1:
        return {"y": "yes", "n": "no"}.get(answer, "other")
    prefix = answer[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def parse_answer(text: str, variant: str) -> dict:
    """Parse one raw generation under ``variant``."""
    if variant == "lmms_eval":
        return {"parsed": parse_pred_ans(text)}
    if variant == "vlmevalkit":
        return {"parsed": yorn_extraction(text)}
    if variant == "vlmevalkit_mmada":
        post = mmada_post_process(text, dataset="MME")
        return {"post_processed": post, "parsed": yorn_extraction(post)}
    raise ValueError(f"unknown MME variant {variant!r}; choose one of {VARIANTS}")


def _ground_truth(record: dict) -> str:
    answer = str(record["answer"]).lower().strip().replace(".", "")
    if answer not in ("yes", "no"):
        raise ValueError(f"MME question {record['question_id']!r}: answer must be Yes/No, got {record['answer']!r}")
    return answer


def _super_category(category: str) -> str | None:
    if category in PERCEPTION_CATEGORIES:
        return "perception"
    if category in COGNITION_CATEGORIES:
        return "cognition"
    return None


def _category_scores(per_item: list[dict], pair_name: str) -> dict:
    by_category: dict[str, dict[str, list[dict]]] = {}
    for item in per_item:
        by_category.setdefault(item["category"], {}).setdefault(str(item[pair_name]), []).append(item)
    scores = {}
    for category, images in by_category.items():
        questions = [item for group in images.values() for item in group]
        paired = [group for group in images.values() if len(group) == 2]
        acc = sum(item["correct"] for item in questions) / len(questions) * 100
        acc_plus = (sum(all(item["correct"] for item in group) for group in paired) / len(paired) * 100
                    if paired else 0.0)
        scores[category] = {"acc": acc, "acc_plus": acc_plus, "score": acc + acc_plus,
                            "n_questions": len(questions), "n_images": len(paired)}
    return scores


def _mark_unpaired(per_item: list[dict], pair_name: str) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for item in per_item:
        groups.setdefault((item["category"], str(item[pair_name])), []).append(item)
    errors = []
    for (category, image), group in groups.items():
        if len(group) != 2:
            message = (f"MME image {image!r} ({category}) has {len(group)} question(s), expected 2; "
                       "its questions count in acc but the image is left out of acc+")
            for item in group:
                item["error"] = message
            errors.append({"category": category, pair_name: image, "n_questions": len(group), "error": message})
    return errors


def _group_total(scores: dict, categories: tuple[str, ...]) -> tuple[float | None, float]:
    partial = 0.0
    for category in categories:
        if category in scores:
            partial += scores[category]["score"]
    complete = all(category in scores for category in categories)
    return (partial if complete else None), partial


def score_mme(items, variant: str = "vlmevalkit", pair_column: str | None = None) -> dict:
    """Score MME generations under one parser ``variant``; see the module docstring."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown MME variant {variant!r}; choose one of {VARIANTS}")
    records = as_records(items, REQUIRED_COLUMNS + ((pair_column,) if pair_column else ()), "MME")
    pair_name = pair_column or ("image_path" if all("image_path" in r for r in records) else "question_id")
    per_item = []
    for record in records:
        ground_truth = _ground_truth(record)
        parsed = parse_answer(text_or_empty(record["prediction"]), variant)
        if variant == "lmms_eval":
            correct = parsed["parsed"] == ground_truth
        else:
            correct = parsed["parsed"] == ground_truth.capitalize()
        category = str(record["category"])
        per_item.append({"question_id": record["question_id"], pair_name: record[pair_name],
                         "category": category, "super_category": _super_category(category),
                         "answer": record["answer"], "prediction": record["prediction"], **parsed,
                         "correct": correct, "error": None})
    errors = _mark_unpaired(per_item, pair_name)
    categories = _category_scores(per_item, pair_name)
    perception, perception_partial = _group_total(categories, PERCEPTION_CATEGORIES)
    cognition, cognition_partial = _group_total(categories, COGNITION_CATEGORIES)
    known = PERCEPTION_CATEGORIES + COGNITION_CATEGORIES
    return {
        "variant": variant, "per_item": per_item, "categories": categories,
        "perception": perception, "cognition": cognition,
        "perception_partial": perception_partial, "cognition_partial": cognition_partial,
        "missing_categories": [c for c in known if c not in categories],
        "unknown_categories": sorted(c for c in categories if c not in known),
        "errors": errors,
    }
