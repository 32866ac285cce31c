"""Damaged stores and result files: every case ends in a known outcome (read, quarantined, cut, rebuilt), never a
traceback or a silent wrong result; failed items are never scored as answers."""
from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmada_bench import cli
from mmada_bench.metrics import SET_METRICS
from mmada_bench.models.dummy import DummyModel
from mmada_bench.results.leaderboard import (
    ITEM_SCHEMA,
    LEADERBOARD_SCHEMA,
    read_leaderboard,
    rebuild_leaderboard,
    run_rows_path,
    upsert_leaderboard,
)
from mmada_bench.results.store import (
    ItemStore,
    atomic_write_table,
    quarantine_path,
    read_store,
)
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings
from mmada_ref.jsonl import encode_line
from mmada_scoring.mme import VARIANTS as MME_VARIANTS
from mmada_scoring.pope import FAILED, score_pope
from mmada_scoring.pope import VARIANTS as POPE_VARIANTS

REPO = Path(__file__).resolve().parents[2]
GOOD_A = encode_line({"item_id": "a", "output": "first"})
GOOD_B = encode_line({"item_id": "b", "output": "second"})


def _records(path) -> dict:
    """The records an ItemStore opened on ``path`` loads (closed again)."""
    store = ItemStore(path)
    store.close()
    return store.records


@pytest.fixture
def no_warnings():
    """Fail the test on any warning raised inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- the per-item store ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, reason", [
    (b'{"item_id": "x", "output": ', "not valid JSON"),
    (b"{not json at all}", "not valid JSON"),
    (b"[1, 2, 3]", "JSON list, not an object"),
    (b"42", "JSON int, not an object"),
    (b'"a string"', "JSON str, not an object"),
    (b'{"id": "x", "output": "a record of another tool"}', "without item_id"),
    (b'{"item_id": ["x"]}', "non-string item_id"),
    (b'{"item_id": "x", "output": "\xff\xfe broken"}', "not valid UTF-8"),
], ids=["truncated-json", "garbage", "json-array", "json-number", "json-string", "no-item-id", "list-item-id",
        "invalid-utf8"])
def test_damaged_line_is_quarantined(tmp_path, bad, reason):
    path = tmp_path / "gsm8k.jsonl"
    path.write_bytes(GOOD_A + bad + b"\n" + GOOD_B)
    with pytest.warns(UserWarning, match=rf"gsm8k\.jsonl line 2 .*{reason}") as caught:
        store = ItemStore(path)
    assert str(quarantine_path(path)) in str(caught[0].message)
    assert set(store.records) == {"a", "b"}
    store.append({"item_id": "c"})
    store.close()
    assert quarantine_path(path).read_bytes() == bad + b"\n"  # raw bytes kept
    assert path.read_bytes() == GOOD_A + GOOD_B + encode_line({"item_id": "c"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the store is clean now
        assert set(_records(path)) == {"a", "b", "c"}
    assert set(read_store(path)) == {"a", "b", "c"}


def test_quarantine_appends(tmp_path):
    path = tmp_path / "t.jsonl"
    for bad in (b"[1]", b"[2]"):
        path.write_bytes(path.read_bytes() + bad + b"\n" if path.exists() else GOOD_A + bad + b"\n")
        with pytest.warns(UserWarning, match="line 2"):
            ItemStore(path).close()
    assert quarantine_path(path).read_bytes() == b"[1]\n[2]\n"
    assert path.read_bytes() == GOOD_A


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85"], ids=["U+2028", "U+2029", "U+0085"])
def test_line_break_like_text_from_another_tool_is_read(tmp_path, no_warnings, char):
    """Raw (unescaped) characters str.splitlines() treats as line ends, inside a JSON string: one record."""
    path = tmp_path / "t.jsonl"
    other_tool = json.dumps({"item_id": "x", "output": f"left{char}right"}, ensure_ascii=False).encode()
    assert char.encode() in other_tool  # written raw, not escaped
    path.write_bytes(GOOD_A + other_tool + b"\n")
    records = _records(path)
    assert records["x"]["output"] == f"left{char}right" and set(records) == {"a", "x"}
    assert not quarantine_path(path).exists()


def test_half_written_last_line_is_cut(tmp_path, no_warnings):
    path = tmp_path / "t.jsonl"
    path.write_bytes(GOOD_A + GOOD_B[:-7])  # killed mid-write: no final newline
    store = ItemStore(path)
    assert set(store.records) == {"a"}
    store.append({"item_id": "b"})
    store.close()
    assert path.read_bytes() == GOOD_A + encode_line({"item_id": "b"})
    assert not quarantine_path(path).exists()


ODD_TEXTS = {
    "U+2028": "a\u2028b", "U+2029": "a\u2029b", "U+0085": "a\x85b", "lone-high-surrogate": "a\ud800b",
    "lone-low-surrogate": "\udfffz", "low-then-high": "\udc00\ud800", "emoji": "\U0001F600", "NUL": "a\x00b",
    "CRLF": "a\r\nb", "newline": "a\nb", "backslash-u": "\\ud800", "BOM": "\ufeffx", "noncharacter": "\uffff",
}


@pytest.mark.parametrize("text", list(ODD_TEXTS.values()), ids=list(ODD_TEXTS))
def test_odd_text_round_trips(tmp_path, no_warnings, text):
    path = tmp_path / "t.jsonl"
    record = {"item_id": f"id-{text}", "output": text, "nested": {"list": [text, 1]}}
    store = ItemStore(path)
    store.append(record)
    store.close()
    assert path.read_bytes().count(b"\n") == 1
    assert _records(path) == {record["item_id"]: record}
    assert read_store(path) == {record["item_id"]: record}


def _append_many(path, worker, n):
    store = ItemStore(path)
    for i in range(n):
        store.append({"item_id": f"w{worker}-{i}", "output": f"{worker}" * (50 + 300 * (i % 7))})
    store.close()


def test_two_writers_keep_every_line(tmp_path, no_warnings, run_forked):
    path = tmp_path / "t.jsonl"
    run_forked(_append_many, [(path, w, 150) for w in range(2)], 120)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 301
    records = [json.loads(line) for line in lines[:-1]]  # every line whole: none interleaved
    assert {r["item_id"] for r in records} == {f"w{w}-{i}" for w in range(2) for i in range(150)}
    assert not quarantine_path(path).exists()


def test_repair_while_another_writer_appends_loses_nothing(tmp_path):
    """A store rewritten (quarantine) under a live writer: the writer follows the new file."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(GOOD_A)
    ctx = multiprocessing.get_context("fork")
    writer = ctx.Process(target=_append_many, args=(path, 0, 200))
    writer.start()
    repairs = 0
    while writer.is_alive() and repairs < 5:
        with open(path, "ab") as fh:  # another tool drops a bad line in, between two whole lines
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            fh.write(b"[not a record]\n")
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            ItemStore(path).close()
        repairs += 1
        time.sleep(0.02)
    writer.join(120)
    assert writer.exitcode == 0 and repairs
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")  # a bad line written after the last repair is quarantined here
        records = _records(path)
    assert set(records) == {"a"} | {f"w0-{i}" for i in range(200)}
    assert quarantine_path(path).read_bytes() == b"[not a record]\n" * repairs


_KILL_CHILD = """
import sys
from mmada_bench.results.store import ItemStore
store = ItemStore(sys.argv[1])
for i in range(100000):
    store.append({"item_id": f"i{i}", "output": "x" * 20000})
    print(i, flush=True)
"""


def test_sigkill_during_store_writes_loses_nothing_finished(tmp_path, no_warnings):
    path = tmp_path / "t.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_CHILD, str(path)], cwd=REPO, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    finished = -1
    while finished < 30:
        line = proc.stdout.readline()
        assert line, "the writer died early"
        finished = int(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    records = _records(path)
    assert {f"i{i}" for i in range(finished + 1)} <= set(records)
    assert list(records) == [f"i{i}" for i in range(len(records))]
    assert not quarantine_path(path).exists()


def _settings(tmp_path, data_dir, **kw):
    base = dict(tasks=["gsm8k"], data_dir=str(data_dir), output_dir=str(tmp_path / "out"), limit=4, progress=False)
    return RunSettings(**{**base, **kw})


def test_runner_regenerates_a_quarantined_item(tmp_path, data_dir):
    first = run(_settings(tmp_path, data_dir), model=DummyModel())
    path = tmp_path / "out" / "runs" / first.run_id / "items" / "gsm8k.jsonl"
    lines = path.read_bytes().split(b"\n")
    victim = json.loads(lines[1])["item_id"]
    lines[1] = b'{"item_id": "' + victim.encode() + b'", "output": \xff'
    path.write_bytes(b"\n".join(lines))
    model = DummyModel()
    with pytest.warns(UserWarning, match="line 2 is not valid UTF-8"):
        again = run(_settings(tmp_path, data_dir), model=model)
    assert again.run_id == first.run_id and model.generated_ids == [victim]
    assert len(read_store(path)) == 4 and again.rows[0]["n"] == 4
    assert quarantine_path(path).read_bytes().startswith(b'{"item_id": "' + victim.encode())


# --- the leaderboard ------------------------------------------------------------------------------------------
PROVENANCE = {"model_name": "dummy", "model_family": "dummy", "model_fingerprint": "f" * 64, "model_is_smoke": False,
              "task_version": "1", "variant": "default", "split": "test", "preset": "ci", "n_errors": 0,
              "protocol": json.dumps({"benchmark": "GSM8K", "description": "synthetic rows"})}


def _rows(run_id, task="gsm8k", metrics=("m1", "m2"), value=0.5):
    return [{**PROVENANCE, "run_id": run_id, "task": task, "metric": m, "filter": "none", "value": value, "n": 3,
             "finished_at": f"2026-01-01T00:00:0{i}Z", "is_primary": i == 0} for i, m in enumerate(metrics)]


def _keys(table_or_frame) -> set:
    rows = table_or_frame.to_pylist() if isinstance(table_or_frame, pa.Table) else table_or_frame.to_dict("records")
    return {(r["run_id"], r["task"], r["metric"], r["value"]) for r in rows}


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path):
    path.write_bytes(os.urandom(64) + b"PAR1")


def _wrong_schema(path):  # an items table where the leaderboard should be
    atomic_write_table(path, pa.Table.from_pylist([{"run_id": "r1", "task": "gsm8k", "item_id": "x"}],
                                                  schema=ITEM_SCHEMA))


def _uncastable(path):
    atomic_write_table(path, pa.table({"run_id": ["r1"], "task": ["gsm8k"], "metric": ["m1"], "filter": ["none"],
                                       "value": ["not a number"]}))


CORRUPTIONS = {"truncated": _truncate, "garbage": _garbage, "wrong-schema": _wrong_schema, "uncastable": _uncastable}


@pytest.fixture
def two_runs(tmp_path):
    out = tmp_path / "out"
    upsert_leaderboard(out, _rows("r1"))
    upsert_leaderboard(out, _rows("r2") + _rows("r2", task="mme"))
    return out


def test_rows_are_written_per_run_and_task(two_runs):
    assert sorted(p.relative_to(two_runs).as_posix() for p in two_runs.glob("runs/*/rows/*.parquet")) == [
        "runs/r1/rows/gsm8k.parquet", "runs/r2/rows/gsm8k.parquet", "runs/r2/rows/mme.parquet"]
    table = pq.read_table(run_rows_path(two_runs, "r2", "mme"))
    assert table.schema.equals(LEADERBOARD_SCHEMA) and _keys(table) == _keys(pa.Table.from_pylist(_rows("r2", "mme")))
    upsert_leaderboard(two_runs, _rows("r1", metrics=("m2", "m3"), value=0.9))  # same upsert rule as the board
    assert _keys(pq.read_table(run_rows_path(two_runs, "r1", "gsm8k"))) == {
        ("r1", "gsm8k", "m1", 0.5), ("r1", "gsm8k", "m2", 0.9), ("r1", "gsm8k", "m3", 0.9)}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS.values()), ids=list(CORRUPTIONS))
@pytest.mark.parametrize("entry", ["upsert", "read", "show"])
def test_corrupt_leaderboard_is_quarantined_and_rebuilt(two_runs, corrupt, entry, capsys):
    board = two_runs / "leaderboard.parquet"
    expected = _keys(pq.read_table(board))
    corrupt(board)
    damaged = board.read_bytes()
    with pytest.warns(UserWarning, match=r"leaderboard\.parquet.*moved aside to leaderboard\.parquet\.corrupt-"):
        if entry == "upsert":
            upsert_leaderboard(two_runs, _rows("r3"))
            expected |= _keys(pa.Table.from_pylist(_rows("r3")))
        elif entry == "read":
            assert _keys(read_leaderboard(two_runs)) == expected
        else:
            assert cli.main(["show", "r2", "--output-dir", str(two_runs)]) == 0
            assert "run r2" in capsys.readouterr().out
    (quarantined,) = two_runs.glob("leaderboard.parquet.corrupt-*")
    assert quarantined.read_bytes() == damaged
    assert quarantined.name.removeprefix("leaderboard.parquet.corrupt-").endswith("Z")
    assert _keys(pq.read_table(board)) == expected  # repaired on disk


def test_rebuild_command_restores_the_leaderboard(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    outcome = run(_settings(tmp_path, data_dir, tasks=["gsm8k", "math500"], limit=3), model=DummyModel())
    upsert_leaderboard(out, _rows("other-run"))
    board = out / "leaderboard.parquet"
    before = pq.read_table(board)
    board.unlink()
    assert cli.main(["rebuild", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{before.num_rows} rows from 2 runs" in printed
    after = pq.read_table(board)
    assert after.schema.equals(LEADERBOARD_SCHEMA)
    key = ["run_id", "task", "metric", "filter"]
    assert after.sort_by([(k, "ascending") for k in key]).equals(before.sort_by([(k, "ascending") for k in key]))
    assert {r["run_id"] for r in after.to_pylist()} == {outcome.run_id, "other-run"}
    assert cli.main(["show", outcome.run_id, "--output-dir", str(out)]) == 0


def test_rebuild_keeps_rows_without_run_rows_aside(two_runs):
    board = two_runs / "leaderboard.parquet"
    legacy = pa.concat_tables([pq.read_table(board), pa.Table.from_pylist(_rows("legacy"), schema=LEADERBOARD_SCHEMA)])
    atomic_write_table(board, legacy)  # a leaderboard written before runs kept their rows
    with pytest.warns(UserWarning, match="2 row.*of 1 run.*have no run rows"):
        result = rebuild_leaderboard(two_runs)
    assert result["kept_aside"].exists() and pq.read_table(result["kept_aside"]).equals(legacy)
    assert {r["run_id"] for r in pq.read_table(board).to_pylist()} == {"r1", "r2"}


def test_rebuild_without_run_rows_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["rebuild", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no run rows") and err.count("\n") == 1


def test_corrupt_run_rows_file_is_quarantined_on_rebuild(two_runs):
    _garbage(run_rows_path(two_runs, "r2", "mme"))
    with pytest.warns(UserWarning) as caught:
        result = rebuild_leaderboard(two_runs)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "mme.parquet: not a readable Parquet file" in messages[0]
    assert "2 row(s) of 1 run(s) have no run rows" in messages[1]  # r2/mme's rows: only in the old board now
    assert result["files"] == 2 and result["rows"] == 4 and result["kept_aside"].exists()
    assert list((two_runs / "runs" / "r2" / "rows").glob("mme.parquet.corrupt-*"))


# --- failed items in set metrics ------------------------------------------------------------------------------
def _pope_entry(i, answer, output, error=None):
    return {"item_id": f"p{i}", "doc": {"answer": answer, "category": "random"}, "output": output, "error": error}


def _metric(rows, name):
    return next(r["value"] for r in rows if r["metric"] == name)


@pytest.mark.parametrize("variant", POPE_VARIANTS)
def test_pope_failed_items_are_wrong_never_yes(variant):
    """1 real item (a correct "no") + 2 failed items: the failures are not read as "yes" (which gave F1 66.7)."""
    entries = [_pope_entry(0, "no", "No"),
               _pope_entry(1, "yes", "", error="generation failed: CUDA OOM"),
               _pope_entry(2, "no", "", error="empty generation: the model returned no text")]
    rows = SET_METRICS.get("pope")(entries, {"variant": variant})
    assert _metric(rows, "f1") == 0.0 != pytest.approx(2 / 3)
    assert _metric(rows, "precision") == 0.0 and _metric(rows, "recall") == 0.0
    assert _metric(rows, "yes_ratio") == 0.0
    assert _metric(rows, "accuracy[split=random]") == pytest.approx(1 / 3)
    pooled = score_pope([{"id": e["item_id"], "answer": e["doc"]["answer"], "category": "random",
                          "prediction": e["output"], "failed": bool(e["error"])} for e in entries],
                        variant=variant)["pooled"]
    assert (pooled["tp"], pooled["fp"], pooled["tn"], pooled["fn"], pooled["n_failed"], pooled["n"]) == (0, 0, 1, 1, 2, 3)


@pytest.mark.parametrize("variant", POPE_VARIANTS)
def test_pope_all_failed_scores_zero(variant):
    entries = [_pope_entry(i, "yes" if i % 2 else "no", "", error="generation failed") for i in range(6)]
    rows = SET_METRICS.get("pope")(entries, {"variant": variant})
    assert {r["metric"]: r["value"] for r in rows if r["metric"] in ("f1", "yes_ratio", "mean_split_f1")} == {
        "f1": 0.0, "yes_ratio": 0.0, "mean_split_f1": 0.0}
    result = score_pope([{"answer": "yes", "split": "random", "prediction": "", "failed": True}], variant=variant)
    assert result["per_item"][0]["parsed"] == FAILED and result["per_item"][0]["correct"] is False


def test_pope_without_failed_column_is_unchanged():
    items = [{"answer": "no", "split": "random", "prediction": ""}]  # no `failed`: the reference default-yes rule
    assert score_pope(items, variant="original")["pooled"]["fp"] == 1
    nan_failed = [{**items[0], "failed": float("nan")}]  # a DataFrame's absent cell is not a failure
    assert score_pope(nan_failed, variant="original")["pooled"]["fp"] == 1


@pytest.mark.parametrize("variant", MME_VARIANTS)
def test_mme_failed_items_are_wrong_and_fail_the_pair(variant):
    docs = [{"question_id": "img1.png", "category": "existence", "answer": "Yes"},
            {"question_id": "img1.png", "category": "existence", "answer": "No"},
            {"question_id": "img2.png", "category": "existence", "answer": "Yes"},
            {"question_id": "img2.png", "category": "existence", "answer": "No"}]
    outputs = [("Yes", None), ("", "generation failed"), ("", "generation failed"), ("", "generation failed")]
    entries = [{"item_id": f"q{i}", "doc": d, "output": o, "error": e} for i, (d, (o, e)) in enumerate(zip(docs, outputs))]
    rows = SET_METRICS.get("mme")(entries, {"variant": variant})
    assert _metric(rows, "acc[category=existence]") == pytest.approx(0.25)
    assert _metric(rows, "acc_plus[category=existence]") == 0.0
    # a failure whose stored output happens to be a yes/no is still not an answer
    entries[1]["output"] = "No"
    assert _metric(SET_METRICS.get("mme")(entries, {"variant": variant}), "acc[category=existence]") == pytest.approx(0.25)
