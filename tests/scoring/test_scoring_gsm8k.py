"""GSM8K scorer parity with lm-eval 0.4.13 (fixture scoring/gsm8k*.json + lm-eval itself)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmada_scoring import gsm8k

pytestmark = pytest.mark.scoring

EDGE_PREDICTIONS = [
    "",
    "[invalid]",
    "#### 1,234",
    "The total is $1,234.",
    "#### 18.",
    "#### 18.00",
    "#### -16",
    "####16",
    "#### $16",
    "It is 16 dollars.\nQuestion: next one #### 99",
    "no digits at all",
    "1",
    "-",
    ".,",
    "#### ,",
    "\\boxed{42}",
    "answer: 42.\n\n",
    "#### 7 and then #### 8",
    "İ #### 5\x00",
    "Answer: 5\x00\x00",
]
EDGE_GOLDS = ["Work...\n#### 16", "Work...\n#### 1234", "#### 18", "#### 5", "42", "#### -16", "İ"]


def _load(scoring_dir: Path):
    items = [json.loads(line) for line in (scoring_dir / "gsm8k.jsonl").read_text().splitlines() if line.strip()]
    expected = json.loads((scoring_dir / "gsm8k_expected.json").read_text())
    return items, expected


def _expected_by_id(expected: dict) -> dict:
    by_id = {row["id"]: row for row in expected["per_item"]}
    assert len(by_id) == len(expected["per_item"]), "duplicate ids in gsm8k_expected.json"
    return by_id


def test_per_item_parity(scoring_dir):
    items, expected = _load(scoring_dir)
    by_id = _expected_by_id(expected)
    assert len(items) == expected["n_items"] == len(by_id)
    mismatches = []
    for item in items:
        want = by_id[item["id"]]
        assert want["prediction"] == item["prediction"]
        got = gsm8k.score_item(item["prediction"], item["answer"])
        for name in gsm8k.FILTERS:
            for key in (f"{name}_extracted", name):
                if got[key] != want[key]:
                    mismatches.append((item["id"], key, got[key], want[key]))
    assert not mismatches, f"{len(mismatches)} mismatches (id, key, got, expected): {mismatches}"


def test_aggregate_parity(scoring_dir):
    items, expected = _load(scoring_dir)
    _, aggregate = gsm8k.score_items([i["prediction"] for i in items], [i["answer"] for i in items])
    assert set(aggregate) == set(expected["aggregate"])
    for name, value in expected["aggregate"].items():
        assert aggregate[name] == value, name


def _lm_eval_oracle():
    """Filters, metric kwargs and stop strings built from lm-eval's own installed gsm8k task."""
    lm_eval = pytest.importorskip("lm_eval")
    yaml = pytest.importorskip("yaml")
    import lm_eval.filters  # noqa: F401  (registers the "regex" / "take_first" filters)
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.api.registry import get_filter
    from lm_eval.models.utils import postprocess_generated_text

    config = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())
    pipelines = {}
    for entry in config["filter_list"]:
        steps = [(get_filter(step["function"]), {k: v for k, v in step.items() if k != "function"})
                 for step in entry["filter"]]
        pipelines[entry["name"]] = steps

    def run_filter(name: str, prediction: str) -> str:
        resps = [[prediction]]
        for filter_cls, kwargs in pipelines[name]:
            resps = list(filter_cls(**kwargs).apply(resps, [{}]))
        return resps[0]

    metric_kwargs = {k: v for k, v in config["metric_list"][0].items()
                     if k not in ("metric", "aggregation", "higher_is_better")}

    def match(prediction: str, gold: str) -> float:
        return float(exact_match_hf_evaluate(predictions=[prediction], references=[gold], **metric_kwargs)["exact_match"])

    return config, run_filter, match, postprocess_generated_text


def test_constants_match_lm_eval_yaml():
    config, _, _, _ = _lm_eval_oracle()
    patterns = {entry["name"]: entry["filter"][0]["regex_pattern"] for entry in config["filter_list"]}
    assert patterns == {"strict-match": gsm8k.STRICT_PATTERN, "flexible-extract": gsm8k.FLEXIBLE_PATTERN}
    metric = config["metric_list"][0]
    assert tuple(metric["regexes_to_ignore"]) == gsm8k.REGEXES_TO_IGNORE
    assert metric["ignore_case"] is True and metric["ignore_punctuation"] is False
    assert tuple(config["generation_kwargs"]["until"]) == gsm8k.STOP_SEQUENCES


def test_matches_lm_eval_functions(scoring_dir):
    """Second oracle: lm-eval's RegexFilter/TakeFirstFilter + exact_match_hf_evaluate."""
    _, run_filter, match, _ = _lm_eval_oracle()
    items, _ = _load(scoring_dir)
    pairs = [(i["prediction"], i["answer"]) for i in items]
    pairs += [(p, g) for p in EDGE_PREDICTIONS for g in EDGE_GOLDS]
    checked = 0
    for prediction, gold in pairs:
        for name, extract in (("strict-match", gsm8k.extract_strict), ("flexible-extract", gsm8k.extract_flexible)):
            ours = extract(prediction)
            assert ours == run_filter(name, prediction), (name, prediction)
            assert gsm8k.exact_match(ours, gold) == match(ours, gold), (ours, gold)
            checked += 1
        assert gsm8k.exact_match(prediction, gold) == match(prediction, gold), (prediction, gold)
    assert checked == 2 * len(pairs)


def test_truncation_matches_lm_eval():
    _, _, _, postprocess = _lm_eval_oracle()
    texts = EDGE_PREDICTIONS + ["a</s>b<|im_end|>c", "x<|im_end|>y</s>z", "Question:", "<think>q</think>  #### 3 Question: 4"]
    for text in texts:
        assert gsm8k.truncate_at_stops(text) == postprocess(text, list(gsm8k.STOP_SEQUENCES), None)
        assert gsm8k.truncate_at_stops(text, think_end_token="</think>") == postprocess(
            text, list(gsm8k.STOP_SEQUENCES), "</think>")
    assert gsm8k.truncate_at_stops("abc", ["", "c"]) == postprocess("abc", ["", "c"], None) == "ab"


@pytest.mark.parametrize(
    ("prediction", "gold", "strict", "flexible"),
    [
        ("", "#### 5", 0.0, 0.0),
        (None, "#### 5", 0.0, 0.0),
        ("[invalid]", "#### 5", 0.0, 0.0),
        ("#### 1,234", "Work\n#### 1234", 1.0, 1.0),
        ("#### 1234", "Work\n#### 1,234", 1.0, 1.0),
        ("The answer is $1,234.", "#### 1234", 0.0, 1.0),
        ("#### $18", "#### 18", 0.0, 1.0),
        ("#### 18.", "#### 18", 1.0, 1.0),
        ("#### 18.00", "#### 18", 0.0, 0.0),
        ("#### -16", "#### 16", 0.0, 0.0),
        ("####16", "#### 16", 0.0, 1.0),
    ],
)
def test_edge_cases(prediction, gold, strict, flexible):
    result = gsm8k.score_item(prediction, gold)
    assert (result["strict-match"], result["flexible-extract"]) == (strict, flexible)


def test_invalid_never_matches_a_number():
    assert gsm8k.extract_strict("") == gsm8k.INVALID == gsm8k.extract_flexible("no number")
    assert gsm8k.exact_match(gsm8k.INVALID, "#### 0") == 0.0


def test_truncate_then_score():
    raw = "#### 11\n\nQuestion: John has 3 apples ... Answer: 5\n#### 5"
    assert gsm8k.extract_flexible(raw) == "5"
    assert gsm8k.extract_flexible(gsm8k.truncate_at_stops(raw)) == "11"


def test_bad_input_errors():
    with pytest.raises(TypeError, match="prediction must be a str"):
        gsm8k.exact_match(5, "#### 5")
    with pytest.raises(TypeError, match="reference solution"):
        gsm8k.score_item("#### 5", 5)
    with pytest.raises(TypeError, match="prediction must be a str"):
        gsm8k.extract_strict(["#### 5"])
    with pytest.raises(ValueError, match="pair up"):
        gsm8k.score_items(["#### 5"], [])
    with pytest.raises(ValueError, match="nothing to score"):
        gsm8k.score_items([], [])
    with pytest.raises(TypeError, match="stop strings"):
        gsm8k.truncate_at_stops("abc", [None])
