"""The Parquet results of finished tasks: the leaderboard and the per-item tables.

Layout under the output dir (default ``leaderboards/``)::

    runs/<run_id>/manifest.json         settings of the run (atomic write)
    runs/<run_id>/items/<task>.jsonl    one record per finished item (:mod:`mmada_bench.results.store`)
    items/<run_id>/<task>.parquet       the per-item table of a finished task (ITEM_SCHEMA)
    leaderboard.parquet                 one row per run x model x task x metric (LEADERBOARD_SCHEMA)

The leaderboard's read-modify-write holds an exclusive ``fcntl`` lock on ``leaderboard.parquet.lock``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmada_bench.results.store import atomic_write_table, file_lock

LEADERBOARD_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("model_name", pa.string()),
    ("model_family", pa.string()),
    ("model_fingerprint", pa.string()),
    ("model_is_smoke", pa.bool_()),
    ("task", pa.string()),
    ("task_version", pa.string()),
    ("variant", pa.string()),
    ("protocol", pa.string()),  # the card's protocol block, JSON
    ("metric", pa.string()),
    ("filter", pa.string()),
    ("is_primary", pa.bool_()),
    ("breakdown", pa.string()),  # null = the whole item set; "split=adversarial", "category=OCR", ...
    ("value", pa.float64()),  # mean of per-item scores, fraction scale (0..1 for accuracies); set metrics: see unit
    ("unit", pa.string()),  # "fraction" (printed as %), "x100" (printed x100: CIDEr, BLEU), "points" (MME)
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("ci_method", pa.string()),  # "wilson" (binary scores) | "bootstrap-percentile-2000"
    ("n", pa.int64()),  # items scored (errors count as wrong)
    ("n_errors", pa.int64()),
    ("split", pa.string()),  # "smoke" for the bundled subsets
    ("dataset_source", pa.string()),
    ("dataset_fingerprint", pa.string()),
    ("preset", pa.string()),
    ("generation_settings", pa.string()),  # JSON: preset settings + stop strings + batch size + dtype
    ("prompt_hash", pa.string()),  # sha256 over the per-item prompt hashes, in item order
    ("card_hash", pa.string()),
    ("seed", pa.int64()),
    ("limit", pa.int64()),  # null = whole split
    ("batch_size", pa.int64()),
    ("dtype", pa.string()),
    ("device", pa.string()),
    ("git_sha", pa.string()),
    ("package_versions", pa.string()),  # JSON
    ("harness_version", pa.string()),
    ("started_at", pa.string()),  # ISO 8601 UTC
    ("finished_at", pa.string()),
    ("wall_s", pa.float64()),  # generation wall time of the items of this invocation(s)
    ("items_per_s", pa.float64()),
    ("mean_latency_s", pa.float64()),
    ("mean_nfe", pa.float64()),
    ("mean_generated_tokens", pa.float64()),
])

ITEM_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("task", pa.string()),
    ("item_id", pa.string()),
    ("index", pa.int64()),
    ("split", pa.string()),
    ("prompt_hash", pa.string()),
    ("prompt", pa.string()),
    ("gold", pa.string()),
    ("raw_output", pa.string()),  # as returned by the model
    ("output", pa.string()),  # cut at the first stop string
    ("extracted_answer", pa.string()),  # primary filter's output
    ("score", pa.float64()),  # primary metric
    ("extracted", pa.string()),  # JSON: filter -> extracted answer
    ("scores", pa.string()),  # JSON: "metric/filter" -> score
    ("latency_s", pa.float64()),
    ("n_generated_tokens", pa.int64()),
    ("nfe", pa.int64()),
    ("error", pa.string()),  # null when the item went through
    ("stats", pa.string()),  # JSON: family-specific extras
    ("completed_at", pa.string()),
])

LEADERBOARD_KEY = ("run_id", "task", "metric", "filter")


def rows_to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """A table with exactly ``schema``'s columns (missing keys become nulls)."""
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)


def write_items(output_dir: str | Path, run_id: str, task: str, records: list[dict]) -> Path:
    """Write the per-item Parquet of a finished task; returns its path."""
    path = Path(output_dir) / "items" / run_id / f"{task}.parquet"
    atomic_write_table(path, rows_to_table(records, ITEM_SCHEMA))
    return path


def upsert_leaderboard(output_dir: str | Path, rows: list[dict]) -> Path:
    """Add ``rows`` to ``leaderboard.parquet``, replacing rows with the same run/task/metric/filter.

    Safe against concurrent writers (fcntl lock around read-modify-write, atomic replace)."""
    path = Path(output_dir) / "leaderboard.parquet"
    new = rows_to_table(rows, LEADERBOARD_SCHEMA)
    new_keys = {tuple(r[k] for k in LEADERBOARD_KEY) for r in rows}
    with file_lock(path.with_name(path.name + ".lock")):
        kept = []
        if path.exists():
            old = pq.read_table(path)
            kept = [r for r in old.to_pylist() if tuple(r.get(k) for k in LEADERBOARD_KEY) not in new_keys]
        table = pa.concat_tables([rows_to_table(kept, LEADERBOARD_SCHEMA), new]) if kept else new
        atomic_write_table(path, table)
    return path


def read_leaderboard(output_dir: str | Path):
    """The leaderboard as a pandas DataFrame (empty with the schema's columns if absent)."""
    path = Path(output_dir) / "leaderboard.parquet"
    if not path.exists():
        return pd.DataFrame(columns=LEADERBOARD_SCHEMA.names)
    return pq.read_table(path).to_pandas()
