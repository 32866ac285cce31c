"""`export`: lm-eval results/samples files read back with lm-eval 0.4.13's own code; CSV / Markdown tables."""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest

from mmada_bench.cli import main as cli_main

lm_eval_utils = pytest.importorskip("lm_eval.utils")


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    """A dummy-model run of gsm8k + pope (5 smoke items each)."""
    out = tmp_path_factory.mktemp("export_run")
    assert cli_main(["run", "--tasks", "gsm8k,pope", "--model", "dummy", "--limit", "5", "--output-dir", str(out),
                     "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def exported(out_dir, tmp_path_factory) -> list[str]:
    dest = tmp_path_factory.mktemp("lm_eval_export")
    assert cli_main(["export", "latest", "--format", "lm-eval", "--output-dir", str(out_dir), "--out", str(dest)]) == 0
    return sorted(str(p) for p in dest.rglob("*") if p.is_file())


def test_lm_eval_finds_the_files_by_its_own_name_rules(exported):
    results = lm_eval_utils.get_results_filenames(exported)
    samples = lm_eval_utils.get_sample_results_filenames(exported)
    assert len(results) == 1 and len(samples) == 2
    latest = lm_eval_utils.get_latest_filename(results)
    assert Path(latest).parent.name == "dummy"  # <out>/<model_name_sanitized>/
    assert sorted(lm_eval_utils.get_file_task_name(Path(s).name) for s in samples) == ["gsm8k", "pope"]
    stamps = {lm_eval_utils.get_file_datetime(Path(f).name).removesuffix(".json") for f in exported}
    assert len(stamps) == 1  # results and samples of one run share lm-eval's date_id


def test_results_validate_against_lm_eval_schema_and_print_with_make_table(exported):
    pydantic = pytest.importorskip("pydantic")
    from lm_eval.api.task import TaskConfig
    from lm_eval.result_schema import EvalResults

    data = json.loads(Path(lm_eval_utils.get_results_filenames(exported)[0]).read_text())
    assert {"results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config", "git_hash",
            "date", "task_hashes", "model_name", "lm_eval_version"} <= set(data)
    gsm8k = data["results"]["gsm8k"]
    assert gsm8k["alias"] == "gsm8k" and "exact_match_gsm8k,strict-match" in gsm8k
    assert isinstance(gsm8k["exact_match_gsm8k_stderr,flexible-extract"], float)
    assert data["results"]["pope"]["f1_stderr,vlmevalkit_mmada"] == "N/A"  # set metric, as lm-eval writes it
    assert data["n-samples"]["gsm8k"] == {"original": 5, "effective": 5} and data["n-shot"]["gsm8k"] == 5
    for config in data["configs"].values():  # lm-eval's own TaskConfig accepts every key
        TaskConfig(**config)
    checked = json.loads(json.dumps(data))
    checked.pop("configs")  # EvalResults types configs as flat str/bool maps; lm-eval's own dumps nest dicts
    for entry in checked["results"].values():  # lm-eval writes "N/A" stderrs itself; its TypedDict omits them
        entry.update({k: 0.0 for k, v in entry.items() if v == "N/A"})
    pydantic.TypeAdapter(EvalResults).validate_python(checked)
    table = lm_eval_utils.make_table(data)
    assert "gsm8k" in table and "pope" in table and "flexible-extract" in table and "N/A" in table


def test_samples_validate_hash_and_load_with_datasets(exported):
    pydantic = pytest.importorskip("pydantic")
    from lm_eval.result_schema import SampleResult

    data = json.loads(Path(lm_eval_utils.get_results_filenames(exported)[0]).read_text())
    for path in lm_eval_utils.get_sample_results_filenames(exported):
        task = lm_eval_utils.get_file_task_name(Path(path).name)
        records = [json.loads(line) for line in Path(path).read_text().splitlines()]
        filters = {k.partition(",")[2] for k in data["results"][task] if "," in k}
        assert len(records) == 5 * len(filters) and {r["filter"] for r in records} == filters
        for r in records:
            pydantic.TypeAdapter(SampleResult).validate_python(r)
            assert r["prompt_hash"] == lm_eval_utils.hash_string(r["arguments"]["gen_args_0"]["arg_0"])
            assert r["target_hash"] == lm_eval_utils.hash_string(r["target"])
            assert r["doc_hash"] == lm_eval_utils.hash_string(json.dumps(r["doc"], indent=2, ensure_ascii=False))
            assert all(isinstance(r[m], float) for m in r["metrics"])
        joined = "".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"] for r in records)
        assert data["task_hashes"][task] == hashlib.sha256(joined.encode()).hexdigest()
        datasets = pytest.importorskip("datasets")  # lm-eval sanitizes samples so that `datasets` can load them
        loaded = datasets.load_dataset("json", data_files=path, split="train")
        assert len(loaded) == len(records) and "filtered_resps" in loaded.column_names


def test_csv_and_markdown_headline_tables(out_dir, tmp_path, capsys):
    assert cli_main(["export", "latest", "--format", "csv", "--output-dir", str(out_dir), "--out", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["task"] for r in rows] == ["gsm8k", "pope"]
    assert rows[0]["metric"].startswith("exact_match_gsm8k/") and rows[0]["n"] == "5" and rows[0]["variant"]
    assert cli_main(["export", "latest", "--format", "markdown", "--output-dir", str(out_dir), "--out", str(tmp_path)]) == 0
    (md,) = tmp_path.glob("*.md")
    lines = md.read_text().splitlines()
    assert any(line.startswith("| gsm8k |") for line in lines) and any(line.startswith("| pope |") for line in lines)
    assert len({line.count("|") for line in lines if line.startswith("|")}) == 1  # every row has every column


def test_errors_are_one_line(out_dir, tmp_path, capsys):
    assert cli_main(["export", "no-such-run", "--format", "csv", "--output-dir", str(out_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown run 'no-such-run'") and err.count("\n") == 1 and "Traceback" not in err
    assert cli_main(["export", "latest", "--format", "csv", "--output-dir", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "leaderboard.parquet").write_bytes((out_dir / "leaderboard.parquet").read_bytes())
    assert cli_main(["export", "latest", "--format", "lm-eval", "--output-dir", str(broken), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "missing per-item table" in err and err.count("\n") == 1
    assert cli_main(["export", "latest", "--format", "lm-eval", "--output-dir", str(out_dir), "--out", "-"]) == 2
