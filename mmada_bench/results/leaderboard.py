"""The Parquet results of finished tasks: the leaderboard and the per-item tables.

Layout under the output dir (default ``leaderboards/``)::

    runs/<run_id>/manifest.json         settings of the run (atomic write)
    runs/<run_id>/items/<task>.jsonl    one record per finished item (:mod:`mmada_bench.results.store`)
    items/<run_id>/<task>.parquet       the per-item table of a finished task (ITEM_SCHEMA)
    runs/<run_id>/rows/<task>.parquet   the leaderboard rows of one task of one run (LEADERBOARD_SCHEMA)
    leaderboard.parquet                 one row per run x model x task x metric (LEADERBOARD_SCHEMA)

The leaderboard is derivable: :func:`upsert_leaderboard` writes each (run_id, task)'s rows to the run's
``rows/`` folder too, and :func:`rebuild_leaderboard` (``python -m mmada_bench rebuild``) regenerates
``leaderboard.parquet`` from every ``runs/*/rows/*.parquet``. A leaderboard (or rows file) that cannot be read
(truncated, not Parquet, missing key columns, uncastable types) is renamed to ``<name>.corrupt-<UTC time>``
with a warning, and the leaderboard is rebuilt from the run rows instead of the caller failing.

Every read-modify-write holds an exclusive ``fcntl`` lock on ``leaderboard.parquet.lock``; files are replaced
atomically.
"""
from __future__ import annotations

import os
import warnings
from datetime import datetime, timezone
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
    ("model_label", pa.string()),           # "not a benchmark result" label of demo models ("" otherwise)
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


def items_path(output_dir: str | Path, run_id: str, task: str) -> Path:
    """Where a finished task's per-item Parquet lives: ``items/<run_id>/<task>.parquet``."""
    return Path(output_dir) / "items" / run_id / f"{task}.parquet"


def write_items(output_dir: str | Path, run_id: str, task: str, records: list[dict]) -> Path:
    """Write the per-item Parquet of a finished task; returns its path."""
    path = items_path(output_dir, run_id, task)
    atomic_write_table(path, rows_to_table(records, ITEM_SCHEMA))
    return path


LEADERBOARD_FILE = "leaderboard.parquet"
#: columns a leaderboard table cannot do without (other absent columns read as nulls, as older files lack some)
REQUIRED_COLUMNS = LEADERBOARD_KEY + ("value",)


class CorruptTableError(ValueError):
    """A Parquet results file that cannot be read as leaderboard rows; the message names the file."""


def run_rows_path(output_dir: str | Path, run_id: str, task: str) -> Path:
    """``runs/<run_id>/rows/<task>.parquet``: the leaderboard rows of one task of one run."""
    return Path(output_dir) / "runs" / run_id / "rows" / f"{task}.parquet"


def read_rows_table(path: str | Path) -> pa.Table:
    """A leaderboard-schema Parquet file conformed to LEADERBOARD_SCHEMA; CorruptTableError if it is not one."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptTableError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise CorruptTableError(f"{path}: not leaderboard rows (missing columns {missing})")
    columns = []
    for field in LEADERBOARD_SCHEMA:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        try:
            columns.append(table.column(field.name).cast(field.type))
        except (pa.ArrowException, ValueError) as exc:
            raise CorruptTableError(f"{path}: column {field.name!r} is {table.schema.field(field.name).type}, "
                                    f"expected {field.type} ({exc})") from None
    return pa.Table.from_arrays(columns, schema=LEADERBOARD_SCHEMA)


def quarantine_corrupt(path: str | Path, reason: str) -> Path:
    """Rename ``path`` to ``<name>.corrupt-<UTC timestamp>`` with a warning; returns the new path."""
    path = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, target)
    warnings.warn(f"{reason}; moved aside to {target.name}", stacklevel=3)
    return target


def _key(row: dict) -> tuple:
    return tuple(row.get(k) for k in LEADERBOARD_KEY)


def _merge(old: pa.Table | None, new_rows: list[dict]) -> pa.Table:
    """``old`` without the rows whose key is among ``new_rows``'s, then ``new_rows``."""
    new = rows_to_table(new_rows, LEADERBOARD_SCHEMA)
    if old is None:
        return new
    new_keys = {_key(r) for r in new_rows}
    kept = [r for r in old.to_pylist() if _key(r) not in new_keys]
    return pa.concat_tables([rows_to_table(kept, LEADERBOARD_SCHEMA), new]) if kept else new


def _read_or_quarantine(path: Path) -> pa.Table | None:
    """The rows of ``path``; None if it is absent or was corrupt (then quarantined)."""
    if not path.exists():
        return None
    try:
        return read_rows_table(path)
    except CorruptTableError as exc:
        quarantine_corrupt(path, str(exc))
        return None


def _write_run_rows(output_dir: Path, rows: list[dict]) -> None:
    """Upsert ``rows`` into ``runs/<run_id>/rows/<task>.parquet`` per (run_id, task); call under the lock."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        run_id, task = row.get("run_id"), row.get("task")
        if not run_id or not task or "/" in f"{run_id}{task}" or str(run_id).startswith("."):
            warnings.warn(f"leaderboard row without a usable run_id/task ({run_id!r}, {task!r}): kept in "
                          f"{LEADERBOARD_FILE} only, a rebuild will not restore it", stacklevel=3)
            continue
        groups.setdefault((str(run_id), str(task)), []).append(row)
    for (run_id, task), group in groups.items():
        path = run_rows_path(output_dir, run_id, task)
        atomic_write_table(path, _merge(_read_or_quarantine(path), group))


def _table_from_run_rows(output_dir: Path) -> tuple[pa.Table, int, int]:
    """Every readable ``runs/*/rows/*.parquet`` concatenated (corrupt ones quarantined); (table, files, runs)."""
    tables, runs = [], set()
    for path in sorted(Path(output_dir).glob("runs/*/rows/*.parquet")):
        table = _read_or_quarantine(path)
        if table is not None:
            tables.append(table)
            runs.add(path.parent.parent.name)
    table = pa.concat_tables(tables) if tables else LEADERBOARD_SCHEMA.empty_table()
    return table, len(tables), len(runs)


def upsert_leaderboard(output_dir: str | Path, rows: list[dict]) -> Path:
    """Add ``rows`` to ``leaderboard.parquet``, replacing rows with the same run/task/metric/filter; the rows of each
    (run_id, task) also go to ``runs/<run_id>/rows/<task>.parquet``.

    Safe against concurrent writers (fcntl lock around read-modify-write, atomic replace). A corrupt leaderboard
    is quarantined and rebuilt from the run rows (which already hold ``rows``)."""
    path = Path(output_dir) / LEADERBOARD_FILE
    with file_lock(path.with_name(path.name + ".lock")):
        _write_run_rows(Path(output_dir), rows)
        exists = path.exists()
        old = _read_or_quarantine(path)
        table = _merge(old, rows) if old is not None or not exists else _table_from_run_rows(Path(output_dir))[0]
        atomic_write_table(path, table)
    return path


def rebuild_leaderboard(output_dir: str | Path) -> dict:
    """Regenerate ``leaderboard.parquet`` from every ``runs/*/rows/*.parquet``, under the lock.

    A readable old leaderboard holding rows no run rows back (written before rows were kept) is renamed to
    ``leaderboard.parquet.replaced-<UTC time>`` with a warning rather than lost. Returns ``{"path", "rows",
    "runs", "files", "kept_aside"}``; ``files == 0`` leaves the leaderboard untouched."""
    out = Path(output_dir)
    path = out / LEADERBOARD_FILE
    with file_lock(path.with_name(path.name + ".lock")):
        table, files, runs = _table_from_run_rows(out)
        result = {"path": path, "rows": table.num_rows, "runs": runs, "files": files, "kept_aside": None}
        if not files:
            return result
        old = _read_or_quarantine(path)
        if old is not None:
            derived = {_key(r) for r in table.to_pylist()}
            orphans = [r for r in old.to_pylist() if _key(r) not in derived]
            if orphans:
                stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
                target = path.with_name(f"{path.name}.replaced-{stamp}")
                os.replace(path, target)
                result["kept_aside"] = target
                warnings.warn(f"{path}: {len(orphans)} row(s) of {len({r['run_id'] for r in orphans})} run(s) have no "
                              f"run rows (runs/<run_id>/rows/) and are not in the rebuilt leaderboard; the old file "
                              f"is kept as {target.name}", stacklevel=2)
        atomic_write_table(path, table)
    return result


def read_leaderboard(output_dir: str | Path):
    """The leaderboard as a pandas DataFrame (empty with the schema's columns if absent).

    A corrupt leaderboard is quarantined and rebuilt from the run rows (in memory only when the folder is
    read-only)."""
    path = Path(output_dir) / LEADERBOARD_FILE
    if not path.exists():
        return pd.DataFrame(columns=LEADERBOARD_SCHEMA.names)
    try:
        return read_rows_table(path).to_pandas()
    except CorruptTableError:
        pass
    try:
        with file_lock(path.with_name(path.name + ".lock")):
            table = _read_or_quarantine(path)  # re-read: another process may have repaired it meanwhile
            if table is None:
                table = _table_from_run_rows(Path(output_dir))[0]
                atomic_write_table(path, table)
    except OSError as exc:
        warnings.warn(f"{path}: cannot repair the leaderboard ({exc}); using the rows rebuilt from "
                      f"{output_dir}/runs/*/rows/ in memory", stacklevel=2)
        table = _table_from_run_rows_readonly(Path(output_dir))
    return table.to_pandas()


def _table_from_run_rows_readonly(output_dir: Path) -> pa.Table:
    """Every readable run rows file concatenated, touching nothing."""
    tables = []
    for path in sorted(output_dir.glob("runs/*/rows/*.parquet")):
        try:
            tables.append(read_rows_table(path))
        except CorruptTableError:
            continue
    return pa.concat_tables(tables) if tables else LEADERBOARD_SCHEMA.empty_table()
