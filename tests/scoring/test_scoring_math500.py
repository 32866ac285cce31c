"""MATH500 scorer parity with math-verify 0.9.0 (fixture scoring/math500*.json)."""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from mmada_scoring import math500

pytestmark = pytest.mark.scoring

MATH_VERIFY_COLUMN = "math_verify(gold=parse('$'+answer+'$'))"


def _load(scoring_dir: Path):
    items = [json.loads(line) for line in (scoring_dir / "math500.jsonl").read_text().splitlines() if line.strip()]
    expected = json.loads((scoring_dir / "math500_expected.json").read_text())
    by_id = {row["id"]: row for row in expected["per_item"]}
    assert len(by_id) == len(expected["per_item"]) == expected["n_items"] == len(items)
    return items, expected, by_id


@pytest.fixture(scope="module")
def scored(scoring_dir):
    items, expected, by_id = _load(scoring_dir)
    per_item, aggregate = math500.score_items([i["prediction"] for i in items], [i["answer"] for i in items])
    return items, expected, by_id, per_item, aggregate


def test_per_item_parity(scored):
    items, _, by_id, per_item, _ = scored
    mismatches = []
    for item, got in zip(items, per_item):
        want = by_id[item["id"]]
        assert (want["prediction"], want["answer"]) == (item["prediction"], item["answer"])
        if got["math_verify"] != want[MATH_VERIFY_COLUMN]:
            mismatches.append((item["id"], got, want[MATH_VERIFY_COLUMN]))
    assert not mismatches, f"{len(mismatches)}/{len(items)} items differ: {mismatches}"


def test_aggregate_parity(scored):
    _, expected, _, _, aggregate = scored
    assert aggregate["math_verify"] == expected["aggregate"][MATH_VERIFY_COLUMN]
    assert aggregate["n_items"] == expected["n_items"]


def test_errors_only_on_wrong_items(scored):
    _, _, _, per_item, aggregate = scored
    assert all(item["error"] is None for item in per_item if item["math_verify"])
    assert aggregate["n_errors"] == sum(item["error"] is not None for item in per_item)


def test_last_boxed_matches_fixture_column(scoring_dir):
    items, _, by_id = _load(scoring_dir)
    for item in items:
        assert math500.last_boxed(item["prediction"]) == by_id[item["id"]]["boxed_extracted"], item["id"]


def _minerva_box_functions():
    """lm-eval minerva's last_boxed_only_string / remove_boxed, read from the installed file.

    Only these two functions are compiled: importing the module asserts
    antlr4-python3-runtime==4.11, which is not needed for them.
    """
    import ast
    import importlib.util

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or spec.origin is None:
        pytest.skip("lm_eval is not installed")
    source_path = Path(spec.origin).parent / "tasks" / "minerva_math" / "utils.py"
    tree = ast.parse(source_path.read_text())
    wanted = {"last_boxed_only_string", "remove_boxed"}
    module = ast.Module(body=[n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted], type_ignores=[])
    namespace: dict = {}
    exec(compile(module, str(source_path), "exec"), namespace)  # noqa: S102 (trusted installed package)
    assert wanted <= namespace.keys()
    return namespace["last_boxed_only_string"], namespace["remove_boxed"]


def test_last_boxed_matches_lm_eval_minerva(scoring_dir):
    last_boxed_only_string, remove_boxed = _minerva_box_functions()

    def reference(text):
        boxed = last_boxed_only_string(text)
        return None if boxed is None else remove_boxed(boxed)

    items, _, _ = _load(scoring_dir)
    texts = [i["prediction"] for i in items] + [i["solution"] for i in items]
    texts += ["\\boxed{a}{b}", "$\\boxed{\\frac{1}{2}}$ and \\boxed{x^{2}}", "no box", "\\boxed{", "\\boxed 5$ rest"]
    for text in texts:
        assert math500.last_boxed(text) == reference(text), text


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("", None),
        (None, None),
        ("\\boxed{12", None),
        ("x \\boxed{1} y \\boxed{\\frac{a}{b}}.", "\\frac{a}{b}"),
        ("\\fbox{7}", "7"),
        ("\\boxed 9$.", "9"),
        ("\\boxed{}", ""),
    ],
)
def test_last_boxed_edges(text, content):
    assert math500.last_boxed(text) == content


@pytest.mark.parametrize(
    ("prediction", "answer", "correct"),
    [
        ("The answer is $\\boxed{\\frac{1}{2}}$.", "\\frac12", True),
        ("\\boxed{0.5}", "\\frac{1}{2}", True),
        ("\\boxed{1,000}", "1000", True),
        ("$\\$18$", "18", True),
        ("\\boxed{-3}", "3", False),
        ("[invalid]", "3", False),
        # order matters (gold first): these two only hold with verify(gold, prediction)
        ("$(-\\infty,1)$", "x<1", True),
        ("$x<1$", "(-\\infty,1)", False),
    ],
)
def test_known_verdicts(prediction, answer, correct):
    result = math500.math_verify_check(prediction, answer)
    assert result.correct is correct
    assert math500.math_verify_correct(prediction, answer) is correct


@pytest.mark.parametrize("prediction", ["", None, "I don't know."])
def test_no_answer_is_an_error_record(prediction):
    result = math500.math_verify_check(prediction, "3")
    assert result.correct is False
    assert result.error == "no answer found in prediction"


@pytest.mark.parametrize("answer", ["", "   ", None, 3])
def test_bad_gold_is_an_error_record(answer):
    result = math500.math_verify_check("\\boxed{3}", answer)
    assert result.correct is False and "answer must be a non-empty str" in result.error


def test_non_string_prediction_is_an_error_record():
    result = math500.math_verify_check(["\\boxed{3}"], "3")
    assert result.correct is False and "prediction must be a str" in result.error


def test_parse_exceptions_become_error_records(monkeypatch):
    real_parse = math500.parse

    def failing_parse(text, **kwargs):
        if text.startswith("$"):
            return real_parse(text, **kwargs)
        raise math500.TimeoutException("Timeout during parsing")

    monkeypatch.setattr(math500, "parse", failing_parse)
    result = math500.math_verify_check("\\boxed{3}", "3")
    assert result.correct is False and "could not be parsed" in result.error and "Timeout" in result.error

    monkeypatch.setattr(math500, "parse", lambda text, **kwargs: (_ for _ in ()).throw(RuntimeError("boom")))
    result = math500.math_verify_check("\\boxed{3}", "3")
    assert result.correct is False and "gold answer '3' could not be parsed (RuntimeError: boom)" == result.error


def test_verify_failures_become_error_records(monkeypatch):
    def crashing_verify(gold, target, **kwargs):
        raise ValueError("signal only works in main thread")

    monkeypatch.setattr(math500, "verify", crashing_verify)
    result = math500.math_verify_check("\\boxed{3}", "3")
    assert result.correct is False and result.extracted == "3"
    assert result.error.startswith("verification failed (ValueError")

    def timing_out_verify(gold, target, **kwargs):
        logging.getLogger("math_verify.grader").warning("Timeout during comparison")
        return False

    monkeypatch.setattr(math500, "verify", timing_out_verify)
    result = math500.math_verify_check("\\boxed{3}", "3")
    assert result.correct is False and result.error == "Timeout during comparison"
    assert not logging.getLogger("math_verify").handlers, "warning collector was not removed"


def test_runs_outside_the_main_thread():
    results = []
    worker = threading.Thread(target=lambda: results.append(math500.math_verify_check("\\boxed{\\frac{2}{4}}", "\\frac12")))
    worker.start()
    worker.join(timeout=30)
    assert results and results[0].correct and results[0].error is None


def test_score_items_rejects_bad_shapes():
    with pytest.raises(ValueError, match="pair up"):
        math500.score_items(["\\boxed{1}"], ["1", "2"])
    with pytest.raises(ValueError, match="nothing to score"):
        math500.score_items([], [])
