"""Parity of mmada_scoring.mme with the reference MME scorers (shared/scoring/mme*)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from mmada_scoring.item_table import MissingColumnError
from mmada_scoring.mme import PERCEPTION_CATEGORIES, VARIANTS, parse_pred_ans, score_mme

pytestmark = pytest.mark.scoring

# fixture per-item field -> (variant, key of our per-item record)
PER_ITEM_FIELDS = {
    "vlmevalkit_extracted": ("vlmevalkit", "parsed"),
    "vlmevalkit_correct": ("vlmevalkit", "correct"),
    "mmada_post_processed": ("vlmevalkit_mmada", "post_processed"),
    "vlmevalkit_extracted_after_mmada_post": ("vlmevalkit_mmada", "parsed"),
    "vlmevalkit_correct_after_mmada_post": ("vlmevalkit_mmada", "correct"),
    "lmms_eval_parsed": ("lmms_eval", "parsed"),
    "lmms_eval_score": ("lmms_eval", "correct"),
    "lmms_eval_metric_key": ("lmms_eval", "super_category"),
}
ITEM_IDENTITY_FIELDS = ("index", "question_id", "category", "answer", "prediction")
# VLMEvalKit MME_rating names the cognition group "reasoning"
VLMEVALKIT_GROUPS = {"perception": "perception", "reasoning": "cognition"}
# group totals are sums over categories that the references add up in their own order (scoring README),
# unless mme_expected.json states a tolerance of its own; per-category scores are compared exactly
AGGREGATE_REL_TOL = 1e-9


def _close(ours, reference, rel_tol) -> bool:
    return math.isclose(ours, reference, rel_tol=rel_tol, abs_tol=0.0)


def _ours(record: dict, field: str):
    variant, key = PER_ITEM_FIELDS[field]
    value = record[key]
    if field == "lmms_eval_score":
        return 1.0 if value else 0.0
    if field == "lmms_eval_metric_key":
        return f"mme_{value}_score"
    return value


def _check_vlmevalkit_rating(result, expected, where, rel_tol):
    for key, value in expected.items():
        if key in VLMEVALKIT_GROUPS:
            ours = result[VLMEVALKIT_GROUPS[key]]
            assert _close(ours, value, rel_tol), f"{where} {key}: ours {ours}, reference {value}"
        else:
            ours = result["categories"][key]["score"]
            assert ours == value, f"{where} {key}: ours {ours}, reference {value}"
    assert set(expected) == set(VLMEVALKIT_GROUPS) | set(result["categories"]), where


def _check_lmms_group(group):
    def check(result, expected, where, rel_tol):
        assert _close(result[group], expected, rel_tol), f"{where}: ours {result[group]}, reference {expected}"
    return check


# fixture aggregate key -> (variant, checker)
AGGREGATE_CHECKS = {
    "vlmevalkit_MME_rating_raw_predictions": ("vlmevalkit", _check_vlmevalkit_rating),
    "vlmevalkit_MME_rating_after_mmada_post_process": ("vlmevalkit_mmada", _check_vlmevalkit_rating),
    "lmms_eval_mme_perception_score": ("lmms_eval", _check_lmms_group("perception")),
    "lmms_eval_mme_cognition_score": ("lmms_eval", _check_lmms_group("cognition")),
}


@pytest.fixture(scope="module")
def results(mme_items):
    return {variant: score_mme(mme_items, variant) for variant in VARIANTS}


def test_every_fixture_field_has_a_check(mme_expected):
    item_fields = {field for item in mme_expected["per_item"] for field in item}
    assert item_fields - set(PER_ITEM_FIELDS) - set(ITEM_IDENTITY_FIELDS) == set()
    assert set(mme_expected["aggregate"]) <= set(AGGREGATE_CHECKS)


def test_per_item_parity(mme_expected, results):
    for position, expected in enumerate(mme_expected["per_item"]):
        for field, value in expected.items():
            if field in ITEM_IDENTITY_FIELDS:
                if field != "index":
                    assert results["vlmevalkit"]["per_item"][position][field] == value, (position, field)
                continue
            variant = PER_ITEM_FIELDS[field][0]
            record = results[variant]["per_item"][position]
            assert record["error"] is None
            ours = _ours(record, field)
            assert ours == value, f"item {position} ({expected['prediction']!r}) {field}: ours {ours!r}, reference {value!r}"


def test_aggregate_parity(mme_expected, results, tolerance):
    rel_tol = tolerance(mme_expected, "aggregate_rel", AGGREGATE_REL_TOL)
    for key, expected in mme_expected["aggregate"].items():
        variant, check = AGGREGATE_CHECKS[key]
        check(results[variant], expected, key, rel_tol)
    for result in results.values():
        assert result["missing_categories"] == [] and result["errors"] == []


def test_parse_pred_ans_rules():
    assert parse_pred_ans("Y") == "yes" and parse_pred_ans("n.") == "no"
    assert parse_pred_ans("x") == "other" and parse_pred_ans("") == "other"
    assert parse_pred_ans("Nope, yes") == "no"  # "no" within the first 4 characters
    assert parse_pred_ans("I say yes") == "other"


def test_unpaired_question_is_an_error_record_not_a_crash(mme_items):
    items = [item for item in mme_items if item["category"] == "color"]
    dropped = items.pop()  # its partner now has no pair
    rest = [item for item in mme_items if item["category"] != "color"] + items
    result = score_mme(rest, "vlmevalkit")
    flagged = [r for r in result["per_item"] if r["error"]]
    assert [r["question_id"] for r in flagged] == [dropped["question_id"]]
    assert "expected 2" in flagged[0]["error"] and "acc+" in flagged[0]["error"]
    assert len(result["errors"]) == 1
    color = result["categories"]["color"]
    assert color["n_questions"] == len(items) and color["n_images"] == len(items) // 2
    assert result["perception"] is not None


def test_missing_category_is_reported(mme_items):
    result = score_mme([item for item in mme_items if item["category"] != "OCR"], "lmms_eval")
    assert result["missing_categories"] == ["OCR"]
    assert result["perception"] is None
    full = score_mme(mme_items, "lmms_eval")
    # the same sum in two orders (without OCR / total minus OCR)
    assert _close(result["perception_partial"], full["perception"] - full["categories"]["OCR"]["score"],
                  AGGREGATE_REL_TOL)
    assert result["cognition"] == full["cognition"]
    assert set(PERCEPTION_CATEGORIES) - {"OCR"} <= set(result["categories"])


def test_missing_column_is_named(mme_items):
    items = [{k: v for k, v in item.items() if k != "category"} for item in mme_items]
    with pytest.raises(MissingColumnError, match="category"):
        score_mme(items, "vlmevalkit")


def test_dataframe_input_and_bad_variant(mme_items):
    frame = pd.DataFrame(mme_items)
    assert score_mme(frame, "lmms_eval")["categories"] == score_mme(mme_items, "lmms_eval")["categories"]
    with pytest.raises(ValueError, match="variant"):
        score_mme(mme_items, "mme_official")
