"""The regression gate (``compare``) on synthetic runs written with the harness's own Parquet writers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mmada_bench.cli import main as cli_main
from mmada_bench.commands.compare import parse_tolerances
from mmada_bench.gate import (
    NOT_COMPARABLE,
    OK,
    REGRESSION,
    compare_runs,
    load_run,
    paired_bootstrap,
)
from mmada_bench.results.leaderboard import upsert_leaderboard, write_items

METRIC = ("exact_match", "strict")


def _write_run(out, run_id: str, scores: list[float], task: str = "gsm8k", version: str = "1.0",
               variant: str = "lm-eval", item_ids=None) -> None:
    """One finished run: items/<run_id>/<task>.parquet + its leaderboard rows."""
    item_ids = item_ids or [f"test-{i}" for i in range(len(scores))]
    key = f"{METRIC[0]}/{METRIC[1]}"
    records = [{"run_id": run_id, "task": task, "item_id": iid, "index": i, "prompt_hash": f"h{iid}",
                "score": s, "scores": json.dumps({key: s}), "split": "test"}
               for i, (iid, s) in enumerate(zip(item_ids, scores))]
    write_items(out, run_id, task, records)
    upsert_leaderboard(out, [{"run_id": run_id, "task": task, "task_version": version, "variant": variant,
                              "protocol": json.dumps({"benchmark": "GSM8K", "shots": 5}), "metric": METRIC[0],
                              "filter": METRIC[1], "is_primary": True, "value": float(np.mean(scores)),
                              "model_name": "synthetic", "model_fingerprint": run_id, "model_is_smoke": False,
                              "finished_at": "2025-01-01T00:00:00Z", "seed": 1}])


def _scores(n: int = 200, accuracy: float = 0.6, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in (rng.random(n) < accuracy)]


def _flip_correct(scores: list[float], fraction: float, seed: int = 1) -> list[float]:
    correct = [i for i, s in enumerate(scores) if s == 1.0]
    rng = np.random.default_rng(seed)
    flipped = set(rng.choice(correct, size=int(round(fraction * len(correct))), replace=False).tolist())
    return [0.0 if i in flipped else s for i, s in enumerate(scores)]


def test_identical_runs_pass(tmp_path):
    scores = _scores()
    _write_run(tmp_path / "a", "base", scores)
    _write_run(tmp_path / "b", "cand", scores)
    assert cli_main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--quiet"]) == OK


def test_planted_regression_fails_and_report_says_so(tmp_path):
    scores = _scores()
    _write_run(tmp_path, "base", scores)
    _write_run(tmp_path, "cand", _flip_correct(scores, 0.30))
    report = tmp_path / "gate.md"
    status = cli_main(["compare", "base", "cand", "--output-dir", str(tmp_path), "--report", str(report), "--quiet"])
    assert status == REGRESSION
    text = report.read_text()
    assert "REGRESSION" in text and "| gsm8k |" in text


def test_regression_within_tolerance_passes(tmp_path):
    scores = _scores(n=400)
    _write_run(tmp_path, "base", scores)
    _write_run(tmp_path, "cand", _flip_correct(scores, 0.05))  # a ~3-point drop
    args = ["compare", "base", "cand", "--output-dir", str(tmp_path), "--quiet"]
    assert cli_main(args + ["--tolerance", "gsm8k=0.2"]) == OK
    assert cli_main(args + ["--tolerance", "0"]) == REGRESSION


def test_different_task_version_is_not_comparable(tmp_path):
    scores = _scores()
    _write_run(tmp_path, "base", scores, version="1.0")
    _write_run(tmp_path, "cand", scores, version="2.0")
    assert cli_main(["compare", "base", "cand", "--output-dir", str(tmp_path), "--quiet"]) == NOT_COMPARABLE


def test_different_variant_or_no_shared_items_is_not_comparable(tmp_path):
    scores = _scores(n=20)
    _write_run(tmp_path, "base", scores)
    _write_run(tmp_path, "chat", scores, variant="mmada-chat")
    _write_run(tmp_path, "other", scores, item_ids=[f"x-{i}" for i in range(20)])
    base = load_run("base", tmp_path)
    assert compare_runs(base, load_run("chat", tmp_path)).status == NOT_COMPARABLE
    result = compare_runs(base, load_run("other", tmp_path))
    assert result.status == NOT_COMPARABLE and "no shared items" in result.tasks[0].reasons[0]


def test_items_parquet_file_without_leaderboard(tmp_path):
    scores = _scores(n=100)
    _write_run(tmp_path / "a", "base", scores)
    _write_run(tmp_path / "b", "cand", _flip_correct(scores, 0.5))
    (tmp_path / "b" / "leaderboard.parquet").unlink()
    base_file = tmp_path / "a" / "items" / "base" / "gsm8k.parquet"
    cand_file = tmp_path / "b" / "items" / "cand" / "gsm8k.parquet"
    result = compare_runs(load_run(str(base_file)), load_run(str(cand_file)))
    assert result.status == REGRESSION
    assert any("metadata missing" in n for n in result.tasks[0].notes)


def test_paired_bootstrap_interval_sanity():
    rng = np.random.default_rng(0)
    base = (rng.random(500) < 0.5).astype(float)
    same = paired_bootstrap(base, base)
    assert same == (0.0, 0.0, 0.0)
    shifted = base.copy()
    shifted[np.flatnonzero(base == 1)[:50]] = 0.0  # exactly -0.1
    diff, low, high = paired_bootstrap(base, shifted)
    assert diff == pytest.approx(-0.1)
    assert low < diff < high < 0
    # pairing removes item difficulty: the interval is narrower than an unpaired one would be
    assert high - low < 2 * 1.96 * np.sqrt(2 * 0.25 / 500)
    # fixed seed -> reproducible; more items -> narrower interval
    assert paired_bootstrap(base, shifted) == (diff, low, high)
    d2, l2, h2 = paired_bootstrap(np.tile(base, 4), np.tile(shifted, 4))
    assert h2 - l2 < high - low
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap(base, shifted[:-1])


def test_every_card_tolerance_is_on_the_scale_the_gate_compares():
    """The gate pairs per-item scores (0..1 for every text task), so a card's tolerance is a drop on that scale, as
    on the command line; a larger one (e.g. MME's perception points) would never flag a regression."""
    from mmada_bench.cards.discovery import get_task, task_cards

    for name in task_cards():
        card = get_task(name)
        if card.output_kind == "text":
            parse_tolerances([f"{name}={card.regression.tolerance}"])  # raises on the wrong scale


def test_tolerance_parsing_errors_are_clear():
    assert parse_tolerances(["0.02", "math500=0.03"]) == ({"math500": 0.03}, 0.02)
    with pytest.raises(ValueError, match="TASK=VALUE"):
        parse_tolerances(["gsm8k=two"])
    with pytest.raises(ValueError, match="0..1 scale"):
        parse_tolerances(["2"])


def test_unknown_run_is_exit_2(tmp_path, capsys):
    assert cli_main(["compare", "nope", "nada", "--output-dir", str(tmp_path)]) == NOT_COMPARABLE
    assert "not a file, a folder, nor a run id" in capsys.readouterr().err
