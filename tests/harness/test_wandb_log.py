"""--wandb-args: a smoke run logged to an offline Weights & Biases run, read back from the run's own files; without
wandb the flag is one clear error before anything runs."""
from __future__ import annotations

import json
import struct
import sys

import pyarrow.parquet as pq
import pytest

from mmada_bench import cli
from mmada_bench.integrations.wandb_log import SAMPLE_COLUMNS

RUN = ["run", "--tasks", "gsm8k", "--model", "dummy", "--limit", "3", "--data-dir", "smoke", "--no-progress"]


def _records(path):
    """The protobuf records of a ``run-<id>.wandb`` file: a 7-byte W&B header, then LevelDB-log framed records
    (32 KiB blocks; each chunk: crc32c, little-endian length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # block trailer / padding
            pos += left
            continue
        pending += data[pos + 7: pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_offline_run_holds_metrics_manifest_and_samples(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "out"
    code = cli.main([*RUN, "--output-dir", str(out), "--wandb-args", "project=mmada-test,name=smoke,mode=offline",
                     "--wandb-samples", "2"])
    screen, err = capsys.readouterr()
    assert code == 0, err
    assert "wandb: 4 scalars, 2 samples of 1 task(s)" in screen
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    (events,) = run_dir.glob("run-*.wandb")
    records = _records(events)
    (start,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in start.config.update}
    (board,) = [r for r in pq.read_table(out / "leaderboard.parquet").to_pylist() if r["is_primary"]]
    assert start.project == "mmada-test" and start.display_name == "smoke"
    assert config["run_id"] == board["run_id"] and config["predict_only"] is False and config["tasks"][0]["task"] == "gsm8k"
    history = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            history.update({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item})
    key = f"gsm8k/{board['metric']}/{board['filter']}"
    assert history[key] == board["value"] and history[f"{key}/n"] == board["n"] == 3
    assert history[f"{key}/ci_low"] == pytest.approx(board["ci_low"]) and history[f"{key}/ci_high"] == pytest.approx(board["ci_high"])
    table = json.loads((run_dir / "files" / history["gsm8k/samples/path"]).read_text())
    items = pq.read_table(out / "items" / board["run_id"] / "gsm8k.parquet").to_pylist()
    assert table["columns"] == SAMPLE_COLUMNS and [row[1] for row in table["data"]] == [r["prompt"] for r in items[:2]]


def test_unknown_wandb_init_key_is_named(tmp_path, capsys):
    pytest.importorskip("wandb")
    code = cli.main([*RUN, "--output-dir", str(tmp_path), "--wandb-args", "projekt=x"])
    err = capsys.readouterr().err
    assert code == 2 and "projekt" in err and "project" in err and not (tmp_path / "runs").exists()


def test_without_wandb_the_flag_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if wandb were not installed
    code = cli.main([*RUN, "--output-dir", str(tmp_path), "--wandb-args", "project=x"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and 'pip install "mmada-bench[wandb]"' in err
    assert not (tmp_path / "runs").exists()  # refused before the run
