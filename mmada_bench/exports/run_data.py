"""One finished run read back from an output dir: leaderboard rows, per-item tables, manifest."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from mmada_bench.results.leaderboard import items_path, read_leaderboard


class ExportError(ValueError):
    """A run or one of its files could not be found or read; the message says which."""


@dataclass
class RunData:
    """The stored results of one run."""
    run_id: str
    output_dir: Path
    board: pd.DataFrame  # leaderboard rows of this run
    manifest: dict  # runs/<run_id>/manifest.json ({} when absent)

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(self.board["task"]))

    def whole(self, task: str) -> pd.DataFrame:
        """Rows of ``task`` over the whole item set (no breakdown)."""
        rows = self.board[self.board["task"] == task]
        return rows[rows["breakdown"].isna()] if "breakdown" in rows else rows

    def primary(self, task: str) -> dict:
        """The primary whole-set row of ``task`` (the first row when none is marked)."""
        rows = self.whole(task)
        marked = rows[rows["is_primary"].astype(bool)]
        return (marked if len(marked) else rows).iloc[0].to_dict()

    def items(self, task: str) -> pd.DataFrame:
        """items/<run_id>/<task>.parquet; raises ExportError when it is missing."""
        path = items_path(self.output_dir, self.run_id, task)
        if not path.exists():
            raise ExportError(f"{path}: missing per-item table of task {task} in run {self.run_id}")
        return pq.read_table(path).to_pandas()

    def manifest_task(self, task: str) -> dict:
        return next((t for t in self.manifest.get("tasks", []) if t.get("task") == task), {})


def resolve_run_id(board: pd.DataFrame, run: str, output_dir: Path) -> str:
    """``run`` itself, or the most recently finished run for ``latest``."""
    if board.empty:
        raise ExportError(f"no results in {output_dir}/leaderboard.parquet; run `python -m mmada_bench run` first")
    if run == "latest":
        return str(board.sort_values("finished_at").iloc[-1]["run_id"])
    if run not in set(board["run_id"]):
        known = ", ".join(sorted(board["run_id"].unique())[-10:])
        raise ExportError(f"unknown run {run!r} in {output_dir}/leaderboard.parquet; known runs: {known}")
    return run


def load_run_data(run: str, output_dir: str | Path = "leaderboards") -> RunData:
    """The run ``run`` (a run id or ``latest``) under ``output_dir``."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise ExportError(f"{output_dir}: no such output dir (pass --output-dir)")
    try:
        board = read_leaderboard(output_dir)
    except (OSError, ValueError) as exc:
        raise ExportError(f"{output_dir}/leaderboard.parquet: unreadable ({exc})") from None
    run_id = resolve_run_id(board, run, output_dir)
    manifest_path = output_dir / "runs" / run_id / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    except (OSError, ValueError) as exc:
        raise ExportError(f"{manifest_path}: unreadable ({exc})") from None
    rows = board[board["run_id"] == run_id].reset_index(drop=True)
    return RunData(run_id, output_dir, rows, manifest)
