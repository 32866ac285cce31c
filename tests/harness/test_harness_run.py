"""End-to-end runs with the dummy model: results, resume, SIGKILL, concurrency, error records."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mmada_bench.cards.discovery import get_task
from mmada_bench.models.dummy import DummyModel
from mmada_bench.models.loader import ModelLoadError, resolve_model
from mmada_bench.results.leaderboard import (
    ITEM_SCHEMA,
    LEADERBOARD_SCHEMA,
    upsert_leaderboard,
)
from mmada_bench.run.planning import plan_task
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings

REPO = Path(__file__).resolve().parents[2]


def _settings(tmp_path, data_dir, **kw):
    base = dict(tasks=["gsm8k"], data_dir=str(data_dir), output_dir=str(tmp_path / "out"), limit=6, progress=False)
    return RunSettings(**{**base, **kw})


def _jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_gsm8k_prompt_is_lm_eval_layout(data_dir):
    card = get_task("gsm8k")
    plan = plan_task(card, RunSettings(tasks=["gsm8k"], data_dir=str(data_dir), limit=3))
    test = _jsonl(data_dir / "gsm8k" / "test.jsonl")
    train = _jsonl(data_dir / "gsm8k" / "train.jsonl")
    rng = random.Random(card.prompt.fewshot.seed)
    for planned, doc in zip(plan.items, test):
        shots = rng.sample(train, 5)
        expected = "\n\n".join([f"Question: {s['question']}\nAnswer: {s['answer']}" for s in shots]
                               + [f"Question: {doc['question']}\nAnswer:"])
        assert planned.prompt == expected and planned.messages is None
    chat = plan_task(card, RunSettings(tasks=["gsm8k"], data_dir=str(data_dir), limit=1, variant="mmada-chat"))
    item = chat.items[0]
    assert item.prompt.endswith(plan.items[0].prompt) and "<think>" in item.prompt.split("\n\n")[0]
    assert item.messages == [{"role": "user", "content": item.prompt}]


def test_math500_prompt_uses_fixed_minerva_shots(data_dir):
    card = get_task("math500")
    plan = plan_task(card, RunSettings(tasks=["math500"], data_dir=str(data_dir), limit=2))
    doc = _jsonl(data_dir / "math500" / "test.jsonl")[1]
    assert plan.items[1].item.item_id == doc["unique_id"]
    assert plan.items[1].prompt.endswith(f"\n\nProblem:\n{doc['problem']}\n\nSolution:")
    assert plan.items[1].prompt.count("I hope it is correct.") == 4


def test_run_writes_leaderboard_and_items(tmp_path, data_dir):
    model = DummyModel()
    outcome = run(_settings(tmp_path, data_dir, tasks=["gsm8k", "math500"]), model=model)
    out = tmp_path / "out"
    board = pq.read_table(out / "leaderboard.parquet")
    assert board.schema.equals(LEADERBOARD_SCHEMA)
    rows = board.to_pylist()
    assert {(r["task"], r["metric"], r["filter"]) for r in rows} == {
        ("gsm8k", "exact_match_gsm8k", "strict-match"), ("gsm8k", "exact_match_gsm8k", "flexible-extract"),
        ("math500", "math_verify", "none")}
    for r in rows:
        assert r["n"] == 6 and r["split"] == "test" and r["model_name"] == "dummy" and r["run_id"] == outcome.run_id
        assert r["ci_low"] <= r["value"] <= r["ci_high"] and r["ci_method"] == "wilson"
        assert json.loads(r["generation_settings"])["gen_length"] > 0 and r["git_sha"]
    items = pq.read_table(out / "items" / outcome.run_id / "gsm8k.parquet")
    assert items.schema.equals(ITEM_SCHEMA) and items.num_rows == 6
    # the stored score is the one the scorer gives for the stored output
    from mmada_scoring.gsm8k import exact_match, extract_flexible

    for rec in items.to_pylist():
        assert rec["output"] == rec["raw_output"].split("Question:")[0]
        assert rec["score"] == float(exact_match(extract_flexible(rec["output"]), rec["gold"]))
    assert model.calls == 12


def test_resume_does_not_regenerate(tmp_path, data_dir):
    first = DummyModel(fail=["test-3"])  # the run stops short of a clean finish for item 3 ...
    run(_settings(tmp_path, data_dir, limit=4), model=first)
    again = DummyModel()
    outcome = run(_settings(tmp_path, data_dir, limit=4), model=again)
    assert again.generated_ids == [] and outcome.resumed == 4  # ... and its error record is kept
    retry = DummyModel()
    run(_settings(tmp_path, data_dir, limit=4, retry_errors=True), model=retry)
    assert retry.generated_ids == ["test-3"]
    bigger = DummyModel()
    run(_settings(tmp_path, data_dir, limit=4, run_id=outcome.run_id, batch_size=1), model=bigger)
    assert bigger.generated_ids == []


def test_sigkill_loses_nothing_and_rerun_completes(tmp_path, data_dir):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mmada_bench", "run", "--tasks", "gsm8k", "--model", "dummy:delay=0.3",
           "--limit", "10", "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 60
    files = []
    while time.time() < deadline:
        files = list(out.glob("runs/*/items/gsm8k.jsonl"))
        if files and len(_jsonl(files[0])) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert files, proc.stderr.read().decode()
    stored = _jsonl(files[0])
    assert 3 <= len(stored) < 10 and not (out / "leaderboard.parquet").exists()
    model = DummyModel()
    outcome = run(_settings(tmp_path, data_dir, limit=10), model=model)
    assert files[0].parent.parent.name == outcome.run_id
    assert set(model.generated_ids).isdisjoint(r["item_id"] for r in stored)
    assert len(model.generated_ids) == 10 - len(stored)
    final = _jsonl(files[0])
    assert final[: len(stored)] == stored and len({r["item_id"] for r in final}) == 10
    assert outcome.rows[0]["n"] == 10


def _writer(out_dir, worker, rounds):
    for i in range(rounds):
        rows = [{"run_id": f"w{worker}-r{i}", "task": "gsm8k", "metric": f"m{k}", "filter": "none",
                 "value": 0.5, "n": 1} for k in range(3)]
        upsert_leaderboard(out_dir, rows)


def test_concurrent_writers_keep_every_row(tmp_path, run_forked):
    run_forked(_writer, [(tmp_path, w, 15) for w in range(3)], 60)
    table = pq.read_table(tmp_path / "leaderboard.parquet")
    keys = {(r["run_id"], r["metric"]) for r in table.to_pylist()}
    assert table.num_rows == len(keys) == 3 * 15 * 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_per_item_error_records(tmp_path, data_dir):
    data = tmp_path / "data" / "gsm8k"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text((data_dir / "gsm8k" / "train.jsonl").read_text())
    rows = (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()[:5]
    rows[1] = "{not json"
    rows[2] = json.dumps({"question": "no answer field"})
    (data / "test.jsonl").write_text("\n".join(rows) + "\n")
    model = DummyModel(fail=["test-3"], empty=["test-4"])
    outcome = run(RunSettings(tasks=["gsm8k"], data_dir=str(tmp_path / "data"), output_dir=str(tmp_path / "out"),
                              progress=False, batch_size=2), model=model)
    items = {r["item_id"]: r for r in pq.read_table(tmp_path / "out" / "items" / outcome.run_id / "gsm8k.parquet").to_pylist()}
    assert len(items) == 5 and items["test-0"]["error"] is None
    assert "not valid JSON" in items["test-1"]["error"] and "malformed row 1" in items["test-1"]["error"]
    assert "'answer' is missing" in items["test-2"]["error"]
    assert items["test-3"]["error"].startswith("generation failed") and "test-3" in items["test-3"]["error"]
    assert items["test-4"]["error"].startswith("empty generation")
    assert all(items[i]["score"] == 0.0 for i in ("test-1", "test-2", "test-3", "test-4"))
    assert {r["n_errors"] for r in outcome.rows} == {4} and {r["n"] for r in outcome.rows} == {5}


def test_missing_dataset_is_one_clear_line(tmp_path):
    outcome = run(RunSettings(tasks=["gsm8k", "nope"], data_dir=str(tmp_path), output_dir=str(tmp_path / "o"),
                              progress=False), model=DummyModel())
    message = outcome.task_errors["gsm8k"]
    assert "\n" not in message and "--data-dir" in message and "gsm8k/test.jsonl" in message and "openai/gsm8k" in message
    known = outcome.task_errors["nope"].split("known tasks: ", 1)[1]
    assert {"gsm8k", "math500"} <= set(known.replace(",", " ").split())


def test_bundled_world_split_is_the_labelled_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.warns(UserWarning, match="shapes-world split"):
        outcome = run(RunSettings(tasks=["gsm8k"], model="dummy", output_dir=str(tmp_path / "o"), limit=3,
                                  progress=False))
    assert {r["split"] for r in outcome.rows} == {"world"}
    assert all(r["dataset_source"].startswith("world:") for r in outcome.rows)
    smoke = run(RunSettings(tasks=["gsm8k"], model="dummy", output_dir=str(tmp_path / "s"), limit=3,
                            data_dir="smoke", progress=False))
    assert {r["split"] for r in smoke.rows} == {"smoke"}


def test_a_world_generator_folder_is_labelled_world(tmp_path):
    from mmada_bench.world.tasks import write_tasks

    write_tasks(tmp_path / "tasks", seed=5, n=4)
    outcome = run(RunSettings(tasks=["gsm8k"], model="dummy", data_dir=str(tmp_path / "tasks"),
                              output_dir=str(tmp_path / "o"), limit=2, progress=False))
    assert {r["split"] for r in outcome.rows} == {"world"}


def test_checkpoint_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mmada"}))
    with pytest.raises(ModelLoadError, match="no weights"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="neither a checkpoint folder nor a known model"):
        resolve_model(str(tmp_path / "missing"))
