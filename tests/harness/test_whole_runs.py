"""Whole runs on the packaged smoke model: predictions per item do not depend on the batch size (length-sorted
batches, finished rows leaving the batch), so neither does the run id where that holds; ``--batch-size auto``
and the manifest's timing block."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mmada_bench import cli
from mmada_bench.cards.discovery import get_task
from mmada_bench.models.dummy import DummyModel
from mmada_bench.models.loader import resolve_model
from mmada_bench.models.smoke import SMOKE_MODEL_DIR
from mmada_bench.run.planning import compute_run_id, plan_task
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings

REPO = Path(__file__).resolve().parents[2]
#: stop strings that the smoke model's zero-shot plain-text answers reach at different blocks (rows leave early)
STOPS = ["Question:", "</s>", "<|im_end|>", "ak", "zz"]


@pytest.fixture(scope="module")
def smoke():
    return resolve_model(str(SMOKE_MODEL_DIR))


@pytest.fixture(scope="module")
def cards(tmp_path_factory) -> Path:
    """The gsm8k card with more stop strings (a copy under another name, same data folder)."""
    folder = tmp_path_factory.mktemp("cards")
    card = (REPO / "mmada_bench" / "tasks" / "gsm8k.yaml").read_text()
    card = card.replace("name: gsm8k", "name: gsm8k_stops").replace(
        'stop: ["Question:", "</s>", "<|im_end|>"]', f"stop: {json.dumps(STOPS)}")
    (folder / "gsm8k_stops.yaml").write_text(card)
    return folder


def _run(smoke, cards, data_dir, out: Path, batch_size, **kw):
    settings = RunSettings(tasks=["gsm8k_stops"], include_paths=[str(cards)], data_dir=str(data_dir),
                           output_dir=str(out), limit=20, num_fewshot=0, variant="lm-eval", preset="ci",
                           batch_size=batch_size, gen_kwargs={"gen_length": "32", "steps": "16"}, progress=False, **kw)
    outcome = run(settings, model=smoke)
    assert not outcome.task_errors, outcome.task_errors
    table = pq.read_table(out / "items" / outcome.run_id / "gsm8k_stops.parquet").to_pylist()
    return outcome, table


def test_predictions_do_not_depend_on_the_batch_size(smoke, cards, data_dir, tmp_path):
    runs = {b: _run(smoke, cards, data_dir, tmp_path / f"b{b}", b) for b in (1, 3, 8)}
    reference = runs[1][1]
    assert [r["index"] for r in reference] == list(range(20))  # the item table stays in plan order
    outputs = [r["raw_output"] for r in reference]
    assert len(set(outputs)) >= 5, outputs  # the items really differ (a mis-keyed result would show)
    nfe = [r["nfe"] for r in reference]
    assert min(nfe) < max(nfe), nfe  # some rows stopped at a stop string before others
    for b in (3, 8):
        table = runs[b][1]
        assert [r["item_id"] for r in table] == [r["item_id"] for r in reference]
        keys = ("raw_output", "output", "n_generated_tokens", "nfe", "score", "error")
        for ours, ref in zip(table, reference):
            assert [ours[k] for k in keys] == [ref[k] for k in keys], ours["item_id"]
        assert max(json.loads(r["stats"])["batch_size"] for r in table) == b
    # float32 on the CPU, greedy: the batch size is not part of the run id (the same run resumes at any size)
    assert len({outcome.run_id for outcome, _ in runs.values()}) == 1


def test_batch_size_auto_end_to_end(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    status = cli.main(["run", "--tasks", "gsm8k", "--limit", "4", "--preset", "ci", "--batch-size", "auto",
                       "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    (manifest_path,) = out.glob("runs/*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    chosen = manifest["batch_sizes"]["gsm8k"]
    assert chosen["requested"] == "auto" and 1 <= chosen["batch_size"] <= 4 and "cpu estimate" in chosen["how"]
    assert f"batch size auto: gsm8k {chosen['batch_size']} (" in captured.err
    board = pq.read_table(out / "leaderboard.parquet").to_pylist()
    assert {r["batch_size"] for r in board} == {chosen["batch_size"]}
    timing = manifest["timing"]
    assert timing["generated_items"] == 4 and 0 < timing["forward_s"] <= timing["generate_s"] <= timing["tasks_s"]
    assert timing["startup_s"] >= timing["load_s"] > 0 and timing["harness_s"] >= 0
    assert "time: start-up" in captured.out


def test_run_id_keeps_the_batch_size_only_where_outputs_may_depend_on_it(data_dir):
    model = DummyModel()

    def run_id(**kw):
        settings = RunSettings(tasks=["gsm8k"], data_dir=str(data_dir), limit=3, **kw)
        return compute_run_id(model, [plan_task(get_task("gsm8k"), settings)], settings)

    assert run_id(batch_size=1) == run_id(batch_size=8) == run_id(batch_size="auto")  # greedy, float32, CPU
    for other in ({"dtype": "bfloat16"}, {"device": "cuda"}, {"gen_kwargs": {"temperature": "0.7"}},
                  {"gen_kwargs": {"remasking": "random"}}):
        assert run_id(batch_size=1, **other) != run_id(batch_size=8, **other), other
        assert run_id(batch_size="auto", **other) == run_id(batch_size="auto", **other)
