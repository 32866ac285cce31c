"""Regression gate: compare two evaluation runs item by item with a paired bootstrap.

A run is located by run id (under an output dir), by an items Parquet file, by an
``items/<run_id>/`` folder, or by an output dir (its latest finished run). For each task both runs
share, the per-item scores of every ``metric/filter`` are paired on shared items (same ``item_id``
and, where both are stored, the same ``prompt_hash``); the difference candidate - baseline gets a
paired percentile-bootstrap 95 % interval. A *regression* is a drop whose whole interval lies below
``-tolerance`` (tolerance: the card's ``regression.tolerance``, or overridden).

Verdict (exit status of ``python -m mmada_bench compare``): 1 if any gated metric of a comparable
task regresses; otherwise 2 if some task is not comparable (different protocol, task version or
variant, missing on one side, or no shared items); otherwise 0.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmada_bench.cards.discovery import task_cards
from mmada_bench.cards.schema import CardError, load_card
from mmada_bench.models.smoke import result_label
from mmada_bench.results.leaderboard import read_leaderboard

OK, REGRESSION, NOT_COMPARABLE = 0, 1, 2
#: leaderboard columns that must agree for two runs of a task to be comparable
COMPARABILITY_COLUMNS = ("task_version", "variant", "protocol")
#: columns whose differences are reported but do not block the comparison
NOTED_COLUMNS = ("preset", "generation_settings", "batch_size", "dtype", "seed", "split", "dataset_fingerprint",
                 "card_hash", "device", "model_fingerprint")


class CompareError(ValueError):
    """A run could not be located or read; the message says what was tried."""


@dataclass
class RunResults:
    """Per-item tables (task -> DataFrame) and leaderboard rows of one run."""
    label: str  # how the user named it
    run_id: str
    items: dict[str, pd.DataFrame]
    board: pd.DataFrame  # leaderboard rows of this run (may be empty)

    def meta(self, task: str) -> dict:
        """The leaderboard metadata of ``task`` (first row), or {} when the leaderboard is absent."""
        rows = self.board[self.board["task"] == task] if not self.board.empty else self.board
        return rows.iloc[0].to_dict() if len(rows) else {}

    def primary_metric(self, task: str) -> Optional[str]:
        """``metric/filter`` of the task's primary metric per the leaderboard (None when unknown)."""
        if self.board.empty:
            return None
        rows = self.board[(self.board["task"] == task) & self.board["is_primary"].astype(bool)]
        return f"{rows.iloc[0]['metric']}/{rows.iloc[0]['filter']}" if len(rows) else None

    def model_label(self) -> str:
        if self.board.empty:
            return self.run_id
        r = self.board.iloc[0]
        label = result_label(r)
        smoke = f" [{label}]" if label else ""
        return f"{r['model_name']} ({str(r['model_fingerprint'])[:12]}){smoke}"


@dataclass
class MetricComparison:
    task: str
    metric: str  # "metric/filter"
    is_primary: bool
    n_shared: int
    baseline: float
    candidate: float
    diff: float
    ci_low: float
    ci_high: float
    tolerance: float
    gated: bool
    regression: bool


@dataclass
class TaskComparison:
    task: str
    comparable: bool
    reasons: list[str] = field(default_factory=list)  # why not comparable
    notes: list[str] = field(default_factory=list)  # differences that do not block
    n_baseline: int = 0
    n_candidate: int = 0
    n_shared: int = 0
    metrics: list[MetricComparison] = field(default_factory=list)


@dataclass
class Comparison:
    baseline: RunResults
    candidate: RunResults
    tasks: list[TaskComparison]
    resamples: int
    seed: int

    @property
    def status(self) -> int:
        if any(m.regression for t in self.tasks for m in t.metrics):
            return REGRESSION
        if not self.tasks or any(not t.comparable for t in self.tasks):
            return NOT_COMPARABLE
        return OK


# --- locating runs --------------------------------------------------------------------------------
def load_run(spec: str, output_dir: str | Path = "leaderboards") -> RunResults:
    """Resolve ``spec`` (run id, items Parquet file, items/<run_id>/ folder or output dir) to a run."""
    path = Path(spec)
    if path.is_file():
        if path.suffix != ".parquet":
            raise CompareError(f"{spec}: expected an items Parquet file (items/<run_id>/<task>.parquet)")
        if path.name == "leaderboard.parquet":
            return _latest_in_output_dir(path.parent, spec)
        table = _read_items(path)
        _check_item_columns(table, path)
        run_id = str(table["run_id"].iloc[0]) if len(table) else path.parent.name
        return RunResults(spec, run_id, {str(table["task"].iloc[0]) if len(table) else path.stem: table},
                          _board_for(path.parent.parent.parent, run_id))
    if path.is_dir():
        if (path / "leaderboard.parquet").exists() and (path / "items").is_dir():
            return _latest_in_output_dir(path, spec)
        files = sorted(path.glob("*.parquet"))
        if files:
            return _from_items_dir(path, spec, path.name, path.parent.parent)
        raise CompareError(f"{spec}: a folder with neither leaderboard.parquet + items/ nor items Parquet files")
    items_dir = Path(output_dir) / "items" / spec
    if items_dir.is_dir():
        return _from_items_dir(items_dir, spec, spec, Path(output_dir))
    known = sorted(p.name for p in (Path(output_dir) / "items").glob("*")) if (Path(output_dir) / "items").is_dir() else []
    raise CompareError(f"{spec!r} is not a file, a folder, nor a run id under {output_dir}/items/"
                       + (f" (known run ids: {', '.join(known[-10:])})" if known else "")
                       + "; pass --output-dir or a path")


def _latest_in_output_dir(out: Path, label: str) -> RunResults:
    board = read_leaderboard(out)  # a corrupt leaderboard is quarantined and rebuilt from the run rows
    if board.empty:
        raise CompareError(f"{out}/leaderboard.parquet is empty")
    run_id = str(board.sort_values("finished_at").iloc[-1]["run_id"])
    items_dir = out / "items" / run_id
    if not items_dir.is_dir():
        raise CompareError(f"{out}: latest run {run_id} has no items folder {items_dir}")
    return _from_items_dir(items_dir, label, run_id, out)


def _from_items_dir(items_dir: Path, label: str, run_id: str, out: Path) -> RunResults:
    items = {}
    for file in sorted(items_dir.glob("*.parquet")):
        table = _read_items(file)
        _check_item_columns(table, file)
        items[file.stem] = table
    if not items:
        raise CompareError(f"{items_dir} holds no items Parquet files")
    return RunResults(label, run_id, items, _board_for(out, run_id))


def _board_for(out: Path, run_id: str) -> pd.DataFrame:
    board = read_leaderboard(out)
    return board[board["run_id"] == run_id].reset_index(drop=True) if not board.empty else pd.DataFrame()


def _read_items(path: Path) -> pd.DataFrame:
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise CompareError(f"{path} is not a readable items Parquet file ({exc}); re-run the task to rewrite it") from None


def _check_item_columns(table: pd.DataFrame, path: Path) -> None:
    missing = {"item_id", "score", "scores"} - set(table.columns)
    if missing:
        raise CompareError(f"{path}: not an items table (missing columns {sorted(missing)}); "
                           f"pass items/<run_id>/<task>.parquet, its folder, a run id or an output dir")


# --- statistics -------------------------------------------------------------------------------------
def paired_bootstrap(baseline: np.ndarray, candidate: np.ndarray, resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean difference (candidate - baseline) and its percentile-bootstrap 95 % interval over paired items."""
    base = np.asarray(baseline, dtype=float)
    cand = np.asarray(candidate, dtype=float)
    if base.shape != cand.shape or base.ndim != 1:
        raise ValueError(f"paired scores must be two 1-D arrays of equal length, got {base.shape} and {cand.shape}")
    if len(base) == 0:
        return (math.nan, math.nan, math.nan)
    diffs = cand - base
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(low), float(high)


# --- comparison -----------------------------------------------------------------------------------
def card_tolerance(task: str) -> Optional[float]:
    """``regression.tolerance`` of the task's card, or None when the card is not found."""
    path = task_cards().get(task)
    if path is None:
        return None
    try:
        return float(load_card(path).regression.tolerance)
    except CardError:
        return None


def compare_runs(baseline: RunResults, candidate: RunResults, tolerances: Optional[dict] = None,
                 default_tolerance: Optional[float] = None, tasks: Optional[list[str]] = None,
                 all_metrics: bool = False, resamples: int = 2000, seed: int = 0) -> Comparison:
    """Compare every task of both runs (or ``tasks``); tolerance: per-task override, then global, then card."""
    tolerances = tolerances or {}
    names = tasks or sorted(set(baseline.items) | set(candidate.items))
    out = []
    for task in names:
        tc = TaskComparison(task, comparable=True)
        out.append(tc)
        if task not in baseline.items or task not in candidate.items:
            side = "baseline" if task not in baseline.items else "candidate"
            tc.comparable = False
            tc.reasons.append(f"no results for {task} in the {side}")
            continue
        _check_metadata(tc, baseline.meta(task), candidate.meta(task))
        b, c = baseline.items[task], candidate.items[task]
        tc.n_baseline, tc.n_candidate = len(b), len(c)
        merged = _pair_items(b, c, tc)
        tc.n_shared = len(merged)
        if not tc.n_shared:
            tc.comparable = False
            tc.reasons.append("no shared items (same item_id and prompt_hash)")
        if not tc.comparable:
            continue
        tolerance, source = _tolerance_for(task, tolerances, default_tolerance)
        if source:
            tc.notes.append(source)
        primary = baseline.primary_metric(task) or candidate.primary_metric(task)
        columns = list(_metric_columns(merged))
        if primary not in [name for name, _, _ in columns]:
            if primary:
                tc.notes.append(f"primary metric {primary} has no per-item scores: gating the items' score column")
            primary = "score"
            columns.insert(0, ("score", merged["score_b"].fillna(0).to_numpy(float),
                               merged["score_c"].fillna(0).to_numpy(float)))
        for metric, base_scores, cand_scores in columns:
            is_primary = metric == primary
            diff, low, high = paired_bootstrap(base_scores, cand_scores, resamples, seed)
            gated = is_primary or all_metrics
            tc.metrics.append(MetricComparison(
                task, metric, is_primary, len(merged), float(np.mean(base_scores)), float(np.mean(cand_scores)),
                diff, low, high, tolerance, gated, regression=bool(gated and high < -tolerance)))
    return Comparison(baseline, candidate, out, resamples, seed)


def _tolerance_for(task: str, tolerances: dict, default: Optional[float]) -> tuple[float, str]:
    if task in tolerances:
        return float(tolerances[task]), f"tolerance {tolerances[task]} from the command line"
    if default is not None:
        return float(default), f"tolerance {default} from the command line"
    card = card_tolerance(task)
    if card is None:
        return 0.0, "no task card found: tolerance 0"
    return card, ""


def _check_metadata(tc: TaskComparison, base: dict, cand: dict) -> None:
    if not base or not cand:
        tc.notes.append("leaderboard metadata missing for "
                        + " and ".join(s for s, m in (("baseline", base), ("candidate", cand)) if not m)
                        + ": protocol, task version and variant not checked")
        return
    for column in COMPARABILITY_COLUMNS:
        if str(base.get(column)) != str(cand.get(column)):
            tc.comparable = False
            shown = (lambda v: v if len(v) < 60 else v[:57] + "...")
            tc.reasons.append(f"different {column}: {shown(str(base.get(column)))} vs {shown(str(cand.get(column)))}")
    for column in NOTED_COLUMNS:
        if column in base and str(base.get(column)) != str(cand.get(column)):
            value = lambda v: str(v) if len(str(v)) < 40 else str(v)[:12] + "..."  # noqa: E731
            tc.notes.append(f"{column} differs: {value(base.get(column))} vs {value(cand.get(column))}")


def _pair_items(b: pd.DataFrame, c: pd.DataFrame, tc: TaskComparison) -> pd.DataFrame:
    cols = [col for col in ("item_id", "prompt_hash", "score", "scores") if col in b.columns and col in c.columns]
    merged = b[cols].merge(c[cols], on="item_id", suffixes=("_b", "_c"))
    if "prompt_hash" in cols:
        same = (merged["prompt_hash_b"] == merged["prompt_hash_c"]) | merged["prompt_hash_b"].isna() \
            | merged["prompt_hash_c"].isna()
        if (~same).any():
            tc.notes.append(f"{int((~same).sum())} items with the same id but a different prompt were left out")
        merged = merged[same]
    return merged.reset_index(drop=True)


def _metric_columns(merged: pd.DataFrame):
    """Yield (``metric/filter``, baseline scores, candidate scores) for every metric both runs scored."""
    parsed_b = [json.loads(s) if isinstance(s, str) and s else {} for s in merged["scores_b"]]
    parsed_c = [json.loads(s) if isinstance(s, str) and s else {} for s in merged["scores_c"]]
    keys = sorted(set().union(*parsed_b) & set().union(*parsed_c)) if len(merged) else []
    for key in keys:
        base = np.array([_num(d.get(key)) for d in parsed_b])
        cand = np.array([_num(d.get(key)) for d in parsed_c])
        yield key, base, cand


def _num(value) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


# --- report -------------------------------------------------------------------------------------
VERDICT = {OK: "PASS: no regression", REGRESSION: "FAIL: regression", NOT_COMPARABLE: "NOT COMPARABLE"}


def markdown_report(cmp: Comparison) -> str:
    """A Markdown report fit for a CI comment."""
    status = cmp.status
    icon = {OK: "✅", REGRESSION: "❌", NOT_COMPARABLE: "⚠️"}[status]
    lines = [f"## {icon} Regression gate: {VERDICT[status]} (exit {status})", "",
             f"* baseline: `{cmp.baseline.run_id}` {cmp.baseline.model_label()}",
             f"* candidate: `{cmp.candidate.run_id}` {cmp.candidate.model_label()}",
             f"* paired bootstrap over shared items, {cmp.resamples} resamples (seed {cmp.seed}), 95 % interval of "
             f"candidate - baseline; regression = interval entirely below -tolerance", ""]
    lines += ["| task | metric | gated | n shared | baseline | candidate | diff | 95 % CI | tolerance | result |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for t in cmp.tasks:
        if not t.comparable:
            lines.append(f"| {t.task} | - | - | {t.n_shared} | - | - | - | - | - | not comparable |")
            continue
        for m in t.metrics:
            result = "**REGRESSION**" if m.regression else ("ok" if m.gated else "info")
            lines.append(f"| {t.task} | {m.metric}{' (primary)' if m.is_primary else ''} | {'yes' if m.gated else 'no'} | "
                         f"{m.n_shared} | {_pct(m.baseline)} | {_pct(m.candidate)} | {_pct(m.diff, signed=True)} | "
                         f"[{_pct(m.ci_low, signed=True)}, {_pct(m.ci_high, signed=True)}] | {_pct(m.tolerance)} | {result} |")
    details = [t for t in cmp.tasks if t.reasons or t.notes or t.n_shared < max(t.n_baseline, t.n_candidate)]
    if details:
        lines += ["", "### Notes"]
        for t in details:
            for r in t.reasons:
                lines.append(f"* **{t.task}: not comparable**: {r}")
            if t.n_shared < max(t.n_baseline, t.n_candidate) and t.n_shared:
                lines.append(f"* {t.task}: {t.n_shared} shared items (baseline {t.n_baseline}, candidate {t.n_candidate})")
            for n in t.notes:
                lines.append(f"* {t.task}: {n}")
    return "\n".join(lines) + "\n"


def _pct(x: float, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"
