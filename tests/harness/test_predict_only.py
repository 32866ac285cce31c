"""--predict-only stores what a normal run stores and scores nothing; `score RUN` scores it later without the model,
to the same results a normal run gives; --log-samples is an accepted no-op."""
from __future__ import annotations

import contextlib
import io
import json
import shutil

import pyarrow.parquet as pq
import pytest

from mmada_bench import cli
from mmada_bench.models.dummy import DummyModel
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings

TIMING = {"started_at", "finished_at", "wall_s", "items_per_s", "mean_latency_s", "latency_s", "completed_at"}


def _cli(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _run_args(out, *extra):
    return ["run", "--tasks", "gsm8k,pope", "--model", "dummy", "--limit", "4", "--data-dir", "smoke",
            "--output-dir", str(out), "--no-progress", *extra]


def _untimed(rows):
    return sorted(({k: v for k, v in r.items() if k not in TIMING} for r in rows),
                  key=lambda r: tuple(str(r.get(k)) for k in ("task", "metric", "filter", "breakdown", "item_id")))


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """One predict-only run (gsm8k: per-item metrics, pope: set metrics) and its first screen."""
    out = tmp_path_factory.mktemp("predict") / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):  # capsys is per test
        code = cli.main(_run_args(out, "--predict-only", "--log-samples"))
    (manifest_path,) = (out / "runs").glob("*/manifest.json")
    return {"out": out, "code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
            "manifest": json.loads(manifest_path.read_text()), "run_id": manifest_path.parent.name}


def test_predict_only_stores_the_items_and_scores_nothing(predicted):
    out, run_id = predicted["out"], predicted["run_id"]
    assert predicted["code"] == 0, predicted["stderr"]
    assert predicted["manifest"]["predict_only"] is True and predicted["manifest"]["settings"]["predict_only"] is True
    assert not (out / "leaderboard.parquet").exists() and not (out / "runs" / run_id / "rows").exists()
    for task in ("gsm8k", "pope"):
        items = pq.read_table(out / "items" / run_id / f"{task}.parquet").to_pylist()
        assert len(items) == 4 and all(r["raw_output"] and r["output"] for r in items)
        assert all(r["score"] is None and json.loads(r["scores"]) == {} for r in items)
        stored = (out / "runs" / run_id / "items" / f"{task}.jsonl").read_text().splitlines()
        assert len(stored) == 4
    screen = predicted["stdout"]
    assert "PREDICT-ONLY" in screen and f"python -m mmada_bench score {run_id} --output-dir {out}" in screen
    assert [line.split()[0] for line in screen.splitlines() if line.startswith(("gsm8k ", "pope "))] == ["gsm8k", "pope"]


def test_score_later_gives_what_a_normal_run_gives(predicted, tmp_path, capsys):
    out, run_id = tmp_path / "scored", predicted["run_id"]
    shutil.copytree(predicted["out"], out)
    code, screen, err = _cli(capsys, "score", "latest", "--output-dir", str(out))
    assert code == 0, err
    assert f"run {run_id}" in screen and "scored 8 stored items" in screen and "95% CI" in screen
    assert json.loads((out / "runs" / run_id / "manifest.json").read_text())["scored_at"]
    normal = tmp_path / "normal"
    assert _cli(capsys, *_run_args(normal))[0] == 0
    assert _untimed(pq.read_table(out / "leaderboard.parquet").to_pylist()) == \
        _untimed(pq.read_table(normal / "leaderboard.parquet").to_pylist())
    for task in ("gsm8k", "pope"):
        scored = pq.read_table(out / "items" / run_id / f"{task}.parquet").to_pylist()
        assert _untimed(scored) == _untimed(pq.read_table(normal / "items" / run_id / f"{task}.parquet").to_pylist())
        assert all(r["score"] is not None for r in scored)


def test_the_same_run_without_predict_only_scores_without_generating(predicted, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(predicted["out"], out)
    model = DummyModel()
    outcome = run(RunSettings(tasks=["gsm8k", "pope"], data_dir="smoke", limit=4, output_dir=str(out), progress=False),
                  model=model)
    assert outcome.run_id == predicted["run_id"] and model.generated_ids == [] and outcome.resumed == 8
    assert {r["task"] for r in outcome.rows} == {"gsm8k", "pope"}
    assert json.loads((out / "runs" / outcome.run_id / "manifest.json").read_text())["predict_only"] is False


def test_score_refuses_changed_data_and_missing_items(tmp_path, capsys, data_dir):
    data = tmp_path / "data"
    shutil.copytree(data_dir / "gsm8k", data / "gsm8k")
    out = tmp_path / "out"
    args = ["run", "--tasks", "gsm8k", "--model", "dummy", "--limit", "3", "--data-dir", str(data),
            "--output-dir", str(out), "--no-progress", "--predict-only"]
    assert _cli(capsys, *args)[0] == 0
    (run_dir,) = (out / "runs").glob("*")
    rows = (data / "gsm8k" / "test.jsonl").read_text().splitlines()
    first = json.loads(rows[0])
    (data / "gsm8k" / "test.jsonl").write_text("\n".join([json.dumps({**first, "question": "changed"}), *rows[1:]]) + "\n")
    code, _, err = _cli(capsys, "score", run_dir.name, "--output-dir", str(out))
    assert code == 1 and "dataset_fingerprint" in err and "gsm8k" in err and "Traceback" not in err, err
    assert not (out / "leaderboard.parquet").exists()

    (data / "gsm8k" / "test.jsonl").write_text("\n".join(rows) + "\n")  # the data back, one stored item lost
    store = run_dir / "items" / "gsm8k.jsonl"
    store.write_text("\n".join(store.read_text().splitlines()[:2]) + "\n")
    code, _, err = _cli(capsys, "score", run_dir.name, "--output-dir", str(out))
    assert code == 1 and "1 of 3 items are not stored" in err and "same run command" in err, err

    code, _, err = _cli(capsys, "score", "no-such-run", "--output-dir", str(out))
    assert code == 2 and err.count("\n") == 1 and "no run 'no-such-run'" in err and run_dir.name in err


def test_log_samples_is_a_documented_no_op(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--log-samples" in text and "does nothing: every sample is always kept" in text
    assert "--predict-only" in text and "python -m mmada_bench score RUN" in text


def test_score_uses_the_checkpoint_defaults_the_run_recorded(tmp_path, capsys):
    from mmada_bench.models.smoke import SMOKE_MODEL_DIR

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(SMOKE_MODEL_DIR, checkpoint)
    defaults = json.loads((checkpoint / "harness_defaults.json").read_text())
    (checkpoint / "harness_defaults.json").write_text(json.dumps({**defaults, "num_fewshot": {"gsm8k": 0}}))
    out = tmp_path / "out"
    assert _cli(capsys, "run", "--tasks", "gsm8k", "--model", str(checkpoint), "--limit", "2", "--data-dir", "smoke",
                "--output-dir", str(out), "--no-progress", "--predict-only")[0] == 0
    (manifest,) = (out / "runs").glob("*/manifest.json")
    assert json.loads(manifest.read_text())["defaults"]["num_fewshot"] == {"gsm8k": 0}
    shutil.rmtree(checkpoint)  # scoring needs neither the model nor its folder
    code, screen, err = _cli(capsys, "score", "latest", "--output-dir", str(out))
    assert code == 0 and "scored 2 stored items" in screen and defaults["label"] in screen, err
    items = pq.read_table(out / "items" / manifest.parent.name / "gsm8k.parquet").to_pylist()
    assert all(r["prompt"].count("Question:") == 1 and r["score"] is not None for r in items)
