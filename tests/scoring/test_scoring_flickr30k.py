"""Parity of mmada_scoring.caption with the reference caption scorers (shared/scoring/flickr30k*).

The lmms-eval pipeline runs Java twice for PTB tokenization and once for METEOR, so the whole
fixture is scored once per variant (module fixture) and every check reads that result.
"""
from __future__ import annotations

import math
import shutil

import pytest

from mmada_scoring import caption
from mmada_scoring.caption import CaptionMetricsUnavailable, score_captions
from mmada_scoring.item_table import MissingColumnError

pytestmark = pytest.mark.scoring

REL_TOL = 1e-9  # same pycocoevalcap code on both sides (scoring README), unless the fixture states a tolerance
# fixture per-item field -> (variant, key of our per-item record)
PER_ITEM_FIELDS = {
    "prediction_ptb_tokenized": ("lmms_eval", "prediction_tokenized"),
    "cider_lmms_eval_pipeline": ("lmms_eval", "CIDEr"),
    "bleu4_lmms_eval_pipeline": ("lmms_eval", "Bleu_4"),
    "cider_vlmevalkit_pipeline": ("vlmevalkit", "CIDEr"),
}
ITEM_IDENTITY_FIELDS = ("img_id", "prediction")


@pytest.fixture(scope="module")
def rel_tol(flickr_expected, tolerance):
    return tolerance(flickr_expected, "aggregate_rel", REL_TOL)


def _close(ours: float, reference: float, rel_tol: float) -> bool:
    return math.isclose(ours, reference, rel_tol=rel_tol, abs_tol=0.0)


def _check_lmms_fractions(results, expected, where, rel_tol):
    aggregate = results["lmms_eval"]["aggregate"]
    assert set(expected) == set(aggregate), where
    for key, value in expected.items():
        assert _close(aggregate[key], value, rel_tol), f"{where} {key}: ours {aggregate[key]!r}, reference {value!r}"


def _check_lmms_cider_x100(results, expected, where, rel_tol):
    ours = results["lmms_eval"]["aggregate_x100"]["CIDEr"]
    assert _close(ours, expected, rel_tol), f"{where}: ours {ours!r}, reference {expected!r}"


def _check_vlmevalkit_x100(results, expected, where, rel_tol):
    x100 = results["vlmevalkit"]["aggregate_x100"]
    ours = {"Bleu": [x100[f"Bleu_{n}"] for n in range(1, 5)], "ROUGE_L": x100["ROUGE_L"], "CIDEr": x100["CIDEr"]}
    assert set(expected) == set(ours), where
    for key, value in expected.items():
        pairs = zip(ours[key], value) if isinstance(value, list) else [(ours[key], value)]
        for mine, reference in pairs:
            assert _close(mine, reference, rel_tol), f"{where} {key}: ours {mine!r}, reference {reference!r}"


# fixture aggregate key (text before " (") -> checker
AGGREGATE_CHECKS = {
    "lmms_eval_flickr30k_test": _check_lmms_fractions,
    "lmms_eval_CIDEr_x100": _check_lmms_cider_x100,
    "vlmevalkit_COCO_Caption_Scorer": _check_vlmevalkit_x100,
}


@pytest.fixture(scope="module")
def results(flickr_items):
    if shutil.which("java") is None:
        pytest.skip("the lmms-eval caption pipeline needs Java (apt-get install -y openjdk-17-jre-headless)")
    return {variant: score_captions(flickr_items, variant) for variant in caption.VARIANTS}


def test_every_fixture_field_has_a_check(flickr_expected):
    item_fields = {field for item in flickr_expected["per_item"] for field in item}
    assert item_fields - set(PER_ITEM_FIELDS) - set(ITEM_IDENTITY_FIELDS) == set()
    assert {key.split(" (")[0] for key in flickr_expected["aggregate"]} <= set(AGGREGATE_CHECKS)


def test_per_item_parity(flickr_expected, results, rel_tol):
    for position, expected in enumerate(flickr_expected["per_item"]):
        for field, value in expected.items():
            if field in ITEM_IDENTITY_FIELDS:
                assert results["lmms_eval"]["per_item"][position][field] == value, (position, field)
                continue
            variant, key = PER_ITEM_FIELDS[field]
            ours = results[variant]["per_item"][position][key]
            matches = ours == value if isinstance(value, str) else _close(ours, value, rel_tol)
            assert matches, f"image {expected['img_id']} {field}: ours {ours!r}, reference {value!r}"


def test_aggregate_parity(flickr_expected, results, rel_tol):
    for key, expected in flickr_expected["aggregate"].items():
        AGGREGATE_CHECKS[key.split(" (")[0]](results, expected, key, rel_tol)


def test_x100_is_the_raw_fraction_times_100(results):
    for result in results.values():
        for key, value in result["aggregate"].items():
            assert result["aggregate_x100"][key] == value * 100


def test_no_java_is_a_clear_error(flickr_items, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(CaptionMetricsUnavailable, match="openjdk-17-jre-headless"):
        score_captions(flickr_items, "lmms_eval")


def test_java_off_path_is_a_clear_error(flickr_items, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CaptionMetricsUnavailable, match="openjdk-17-jre-headless"):
        score_captions(flickr_items[:2], "lmms_eval")


def test_vlmevalkit_variant_needs_no_java(flickr_items, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    result = score_captions(flickr_items[:5], "vlmevalkit")
    assert "METEOR" not in result["aggregate"] and len(result["per_item"]) == 5


def test_empty_and_missing_predictions_score_zero(flickr_items):
    items = [dict(item, prediction=value) for item, value in zip(flickr_items[:3], ["", None, float("nan")])]
    result = score_captions(items, "vlmevalkit")
    for record in result["per_item"]:
        assert record["CIDEr"] == 0.0 and record["ROUGE_L"] == 0.0 and record["Bleu_1"] < 1e-6


def test_bad_input_is_named(flickr_items):
    without_refs = [{k: v for k, v in item.items() if k != "caption"} for item in flickr_items[:3]]
    with pytest.raises(MissingColumnError, match="caption"):
        score_captions(without_refs, "vlmevalkit")
    with pytest.raises(ValueError, match="twice"):
        score_captions([flickr_items[0], flickr_items[0]], "vlmevalkit")
    with pytest.raises(ValueError, match="non-empty list"):
        score_captions([dict(flickr_items[0], caption="one string")], "vlmevalkit")
    with pytest.raises(ValueError, match="variant"):
        score_captions(flickr_items[:2], "coco")
