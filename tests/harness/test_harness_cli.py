"""The command line: help texts, list-tasks, run summary, show beside baselines, baselines build."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mmada_bench.cli import COMMANDS, main
from mmada_bench.results.baselines import build, protocol_differences

REPO = Path(__file__).resolve().parents[2]


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for name in COMMANDS:
        assert name in text
    assert "examples:" in text and "run --tasks gsm8k" in text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for option in ("--tasks", "--model", "--limit", "--data-dir", "--output-dir", "--device", "--dtype",
                   "--batch-size", "--preset", "--seed", "--variant", "examples:"):
        assert option in text


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "mmada_bench", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "list-tasks" in result.stdout


def test_list_tasks(capsys):
    assert main(["list-tasks"]) == 0
    out = capsys.readouterr().out
    assert "gsm8k" in out and "math500" in out and "mmada-chat" in out


def test_run_summary_and_show(tmp_path, data_dir, capsys):
    out_dir = tmp_path / "out"
    code = main(["run", "--tasks", "gsm8k,math500", "--model", "dummy", "--limit", "3", "--data-dir", str(data_dir),
                 "--output-dir", str(out_dir), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "flexible-extract" in text and "math_verify" in text and "95% CI" in text
    assert main(["show", "--output-dir", str(out_dir)]) == 0
    shown = capsys.readouterr().out
    baselines = pd.read_parquet(REPO / "mmada_bench" / "assets" / "baselines.parquet")
    for model in baselines[baselines["benchmark"] == "GSM8K"]["model"]:
        assert model in shown
    assert "* LLaDA-8B" in shown and "shots: 4 vs 5" in shown  # LLaDA's 4-shot vs the card's 5-shot
    assert "split: full MATH" in shown


def test_unknown_task_exit_code(tmp_path, capsys):
    code = main(["run", "--tasks", "gsm9k", "--model", "dummy", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "unknown task 'gsm9k'" in err and "gsm8k" in err


def test_show_without_results(tmp_path, capsys):
    assert main(["show", "--output-dir", str(tmp_path)]) == 1
    assert "run `python -m mmada_bench run" in capsys.readouterr().err


def test_baselines_parquet_matches_csv(tmp_path, spec_dir):
    csv_path = spec_dir / "paper_tables.csv"
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    committed = pd.read_parquet(REPO / "mmada_bench" / "assets" / "baselines.parquet")
    rebuilt = pd.read_parquet(build(csv_path, tmp_path / "b.parquet"))
    for frame in (committed, rebuilt):
        assert len(frame) == len(rows)
        assert list(frame["model"]) == [r["model"] for r in rows]
        assert list(frame["value"]) == [float(r["value"]) for r in rows]
        assert list(frame["source"]) == [r["source"] for r in rows]
    assert {"MMaDA-8B", "LLaDA-8B", "Show-o", "SEED-X", "SDXL"} <= set(committed["model"])


def test_protocol_differences():
    protocol = {"benchmark": "MATH500", "shots": 4, "metric": "accuracy (%)",
                "baseline_aliases": {"MATH": "full MATH test"}}
    same = {"benchmark": "MATH500", "metric": "accuracy (%)", "split_or_protocol": "4-shot, MATH500"}
    assert protocol_differences(protocol, same) == []
    other = {"benchmark": "MATH", "metric": "exact match (%)", "split_or_protocol": "0-shot"}
    assert protocol_differences(protocol, other) == ["split: full MATH test", "shots: 0 vs 4"]
