"""Parity of mmada_scoring.pope with the reference POPE scorers (shared/scoring/pope*)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from mmada_scoring.item_table import MissingColumnError
from mmada_scoring.pope import VARIANTS, parse_original, score_pope

pytestmark = pytest.mark.scoring

# fixture per-item field -> (variant, key of our per-item record)
PER_ITEM_FIELDS = {
    "vlmevalkit_extracted": ("vlmevalkit", "parsed"),
    "vlmevalkit_correct": ("vlmevalkit", "correct"),
    "mmada_post_processed": ("vlmevalkit_mmada", "post_processed"),
    "vlmevalkit_extracted_after_mmada_post": ("vlmevalkit_mmada", "parsed"),
    "vlmevalkit_correct_after_mmada_post": ("vlmevalkit_mmada", "correct"),
    "lmms_eval_pred_normalized": ("lmms_eval", "parsed"),
    "lmms_eval_score": ("lmms_eval", "correct"),
    "pope_original_evaluate_py_parsed": ("original", "parsed"),
    "pope_original_evaluate_py_correct": ("original", "correct"),
}
ITEM_IDENTITY_FIELDS = ("id", "split", "answer", "prediction")
# means of split F1s: the reference sums the splits in its own order (scoring README), unless
# pope_expected.json states a tolerance of its own
AGGREGATE_REL_TOL = 1e-9


def _x100_10dp(value: float) -> float:
    """VLMEvalKit's stored rating rows are percentages written with 10 decimals."""
    return round(value * 100, 10)


# every checker: (our result, fixture value, fixture key, rel_tol for means the reference sums in its own order);
# counts, ratios of counts and VLMEvalKit's 10-decimal percentages are compared exactly

def _check_vlmevalkit_rows(result, expected, where, rel_tol):
    rows = {row["split"]: row for row in expected}
    assert set(rows) == set(result["splits"]) | {"Overall"}, where
    for split, row in rows.items():
        metrics = result["pooled"] if split == "Overall" else result["splits"][split]
        ours = {"Overall": metrics["f1"], "acc": metrics["accuracy"],
                "precision": metrics["precision"], "recall": metrics["recall"]}
        assert set(row) - {"split"} == set(ours), f"{where}: unexpected columns {sorted(row)}"
        for column, value in ours.items():
            assert _x100_10dp(value) == row[column], f"{where} split={split} {column}"


def _check_vlmevalkit_mean_f1(result, expected, where, rel_tol):
    assert _x100_10dp(result["mean_split_f1"]) == round(expected, 10), where


def _check_lmms_metrics(metrics, expected, where):
    ours = {"accuracy": metrics["accuracy"], "precision": metrics["precision"], "recall": metrics["recall"],
            "f1_score": metrics["f1"], "yes_ratio": metrics["yes_ratio_ground_truth"]}
    assert set(expected) == set(ours), where
    for key, value in expected.items():
        assert ours[key] == value, f"{where} {key}"


def _check_lmms_per_split(result, expected, where, rel_tol):
    assert set(expected) == set(result["splits"]), where
    for split, values in expected.items():
        _check_lmms_metrics(result["splits"][split], values, f"{where} split={split}")


def _check_lmms_pooled(result, expected, where, rel_tol):
    _check_lmms_metrics(result["pooled"], expected, where)


def _check_original_per_split(result, expected, where, rel_tol):
    assert set(expected) == set(result["splits"]), where
    for split, values in expected.items():
        m = result["splits"][split]
        ours = {"accuracy": m["accuracy"], "precision": m["precision"], "recall": m["recall"], "f1": m["f1"],
                "yes_ratio(predicted)": m["yes_ratio_predicted"],
                "TP_FP_TN_FN": [m["tp"], m["fp"], m["tn"], m["fn"]]}
        assert set(values) == set(ours), f"{where} split={split}"
        for key, value in values.items():
            assert ours[key] == value, f"{where} split={split} {key}"


def _check_original_mean(result, expected, where, rel_tol):
    ours = result["mean_split_f1"] * 100
    assert math.isclose(ours, expected, rel_tol=rel_tol, abs_tol=0.0), f"{where}: ours {ours!r}, reference {expected!r}"


# fixture aggregate key (text before " (") -> (variant, checker)
AGGREGATE_CHECKS = {
    "vlmevalkit_POPE_rating_raw_predictions": ("vlmevalkit", _check_vlmevalkit_rows),
    "vlmevalkit_POPE_rating_after_mmada_post_process": ("vlmevalkit_mmada", _check_vlmevalkit_rows),
    "vlmevalkit_mean_of_split_F1_raw": ("vlmevalkit", _check_vlmevalkit_mean_f1),
    "lmms_eval_per_split": ("lmms_eval", _check_lmms_per_split),
    "lmms_eval_pooled": ("lmms_eval", _check_lmms_pooled),
    "pope_original_evaluate_py_per_split": ("original", _check_original_per_split),
    "pope_original_mean_F1_over_3_splits_x100": ("original", _check_original_mean),
}


def _base_key(key: str) -> str:
    return key.split(" (")[0]


@pytest.fixture(scope="module")
def results(pope_items):
    return {variant: score_pope(pope_items, variant) for variant in VARIANTS}


def test_every_fixture_field_has_a_check(pope_expected):
    item_fields = {field for item in pope_expected["per_item"] for field in item}
    assert item_fields - set(PER_ITEM_FIELDS) - set(ITEM_IDENTITY_FIELDS) == set()
    assert {_base_key(key) for key in pope_expected["aggregate"]} <= set(AGGREGATE_CHECKS)


def test_per_item_parity(pope_expected, results):
    n_checked = 0
    for position, expected in enumerate(pope_expected["per_item"]):
        for field, value in expected.items():
            if field in ITEM_IDENTITY_FIELDS:
                assert results["original"]["per_item"][position][field] == (
                    value.lower() if field == "answer" else value), (position, field)
                continue
            variant, key = PER_ITEM_FIELDS[field]
            ours = results[variant]["per_item"][position][key]
            if field == "lmms_eval_score":
                ours = 1.0 if ours else 0.0
            assert ours == value, f"item {expected['id']} {field}: ours {ours!r}, reference {value!r}"
            n_checked += 1
    assert n_checked >= len(pope_expected["per_item"])


def test_aggregate_parity(pope_expected, results, tolerance):
    rel_tol = tolerance(pope_expected, "aggregate_rel", AGGREGATE_REL_TOL)
    for key, expected in pope_expected["aggregate"].items():
        variant, check = AGGREGATE_CHECKS[_base_key(key)]
        check(results[variant], expected, key, rel_tol)


def test_original_parser_is_case_sensitive_and_defaults_to_yes():
    assert parse_original("NO") == "yes"
    assert parse_original("") == "yes"
    assert parse_original("Yes. But no.") == "yes"
    assert parse_original("It is not there") == "no"


def test_dataframe_input_matches_list_input(pope_items):
    from_frame = score_pope(pd.DataFrame(pope_items), "vlmevalkit")
    assert from_frame["pooled"] == score_pope(pope_items, "vlmevalkit")["pooled"]


def test_comma_separated_splits_are_exploded():
    items = [{"answer": "yes", "prediction": "Yes", "category": "popular,random"},
             {"answer": "no", "prediction": "Yes", "category": "random"}]
    result = score_pope(items, "vlmevalkit")
    assert result["splits"]["popular"]["n"] == 1 and result["splits"]["random"]["n"] == 2
    assert result["pooled"]["n"] == 3


def test_missing_prediction_column_is_named(pope_items):
    items = [{k: v for k, v in item.items() if k != "prediction"} for item in pope_items]
    with pytest.raises(MissingColumnError, match="prediction"):
        score_pope(items, "lmms_eval")


def test_missing_split_column_is_named():
    with pytest.raises(MissingColumnError, match="split"):
        score_pope([{"answer": "yes", "prediction": "yes"}], "original")


def test_bad_answer_and_variant_are_rejected():
    with pytest.raises(ValueError, match="yes/no"):
        score_pope([{"answer": "maybe", "prediction": "yes", "split": "random"}], "original")
    with pytest.raises(ValueError, match="variant"):
        score_pope([{"answer": "yes", "prediction": "yes", "split": "random"}], "llava")


def test_missing_prediction_value_scores_as_empty():
    result = score_pope([{"answer": "yes", "prediction": None, "split": "random"}], "vlmevalkit")
    assert result["per_item"][0]["parsed"] == "Unknown" and result["pooled"]["fn"] == 1
