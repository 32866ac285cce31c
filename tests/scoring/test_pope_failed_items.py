"""POPE failed items (``failed`` true): wrong, never a yes/no answer, under every parser; items without the
column are scored exactly as the references do (the parity fixtures have none)."""
from __future__ import annotations

import pytest

from mmada_scoring.pope import FAILED, VARIANTS, binary_metrics, score_pope


def _item(answer, prediction, failed=None, split="random"):
    item = {"answer": answer, "prediction": prediction, "split": split}
    if failed is not None:
        item["failed"] = failed
    return item


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("stored_output", ["", "Yes", "No"], ids=["empty", "yes-text", "no-text"])
def test_failed_items_are_wrong_and_not_predictions(variant, stored_output):
    items = [_item("yes", "Yes"), _item("yes", stored_output, True), _item("no", stored_output, True)]
    result = score_pope(items, variant=variant)
    pooled = result["pooled"]
    assert (pooled["tp"], pooled["fp"], pooled["tn"], pooled["fn"]) == (1, 0, 0, 1)  # the failed yes is missed
    assert pooled["n"] == 3 and pooled["n_failed"] == 2 and pooled["accuracy"] == pytest.approx(1 / 3)
    assert pooled["precision"] == 1.0 and pooled["recall"] == 0.5
    assert pooled["yes_ratio_predicted"] == pytest.approx(1 / 3)
    assert [r["parsed"] for r in result["per_item"][1:]] == [FAILED, FAILED]
    assert not any(r["correct"] for r in result["per_item"][1:])


def test_original_parser_no_longer_reads_failures_as_yes():
    """The issue's case: one real answer + failures gave F1 66.7 % under the default-yes rule."""
    real = [_item("yes", "Yes"), _item("no", "", None)]
    assert score_pope(real, variant="original")["pooled"]["f1"] == pytest.approx(2 / 3)  # reference behaviour
    failed = [_item("yes", "Yes"), _item("no", "", True)]
    pooled = score_pope(failed, variant="original")["pooled"]
    assert pooled["fp"] == 0 and pooled["f1"] == 1.0 and pooled["accuracy"] == 0.5


@pytest.mark.parametrize("value, failed", [(False, False), (0, False), (None, False), (float("nan"), False),
                                           (True, True), (1, True)])
def test_failed_cell_values(value, failed):
    result = score_pope([_item("no", "", value)], variant="original")
    assert (result["per_item"][0]["parsed"] == FAILED) is failed


def test_binary_metrics_counts_failed_label():
    metrics = binary_metrics([("yes", FAILED, False), ("no", FAILED, False), ("no", None, False)])
    assert (metrics["fn"], metrics["tn"], metrics["fp"], metrics["n_failed"], metrics["n_unparsed"]) == (1, 0, 0, 2, 1)
