"""Published baseline numbers (``mmada_bench/assets/baselines.parquet``) and protocol comparison.

Build the file from the spec's paper tables::

    python -m mmada_bench.results.baselines build --csv ../shared/spec/paper_tables.csv

Columns: the CSV's (model, model_type, benchmark, metric, value, split_or_protocol, source, notes,
confirmed_two_sources) plus ``unit`` ("percent" when the metric says %, else "raw") and
``source_csv_sha256``.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa

from mmada_bench.results.store import atomic_write_table

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "assets" / "baselines.parquet"
COLUMNS = ["model", "model_type", "benchmark", "metric", "value", "split_or_protocol", "source", "notes",
           "confirmed_two_sources"]


def build(csv_path: str | Path, out_path: str | Path = DEFAULT_PATH) -> Path:
    """Convert the paper-tables CSV into the baselines Parquet (atomic write); returns its path."""
    csv_path = Path(csv_path)
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    frame = frame[COLUMNS].copy()
    bad = frame.index[pd.to_numeric(frame["value"], errors="coerce").isna()].tolist()
    if bad:
        raise ValueError(f"{csv_path}: non-numeric 'value' in data row(s) {', '.join(str(i + 1) for i in bad[:5])}")
    frame["value"] = frame["value"].astype(float)
    frame["unit"] = ["percent" if "%" in m else "raw" for m in frame["metric"]]
    frame["source_csv_sha256"] = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    atomic_write_table(out_path, pa.Table.from_pandas(frame, preserve_index=False))
    return Path(out_path)


def load(path: str | Path | None = None):
    """The baselines as a DataFrame (``DEFAULT_PATH`` unless ``path`` is given)."""
    return pd.read_parquet(path or DEFAULT_PATH)


_SAME_METRIC = {"exact match": "accuracy"}  # the papers use both names for mean 0/1 correctness
_OTHER_BENCHMARK_WORDS = {"gsm8k", "math", "math500", "minerva_math", "mmlu", "pope", "mme"}


def _norm_metric(metric: str) -> str:
    name = re.sub(r"\s*\(%\)\s*", "", metric).strip().lower()
    return _SAME_METRIC.get(name, name)


def _stated_shots(text: str, benchmark: str) -> list[int]:
    """Shot counts in a protocol note, ignoring ones said of another benchmark ("gsm8k 5-shot")."""
    shots = []
    for word, count in re.findall(r"(?:(\w+)\s+)?(\d+)-shot", text):
        if word.lower() in _OTHER_BENCHMARK_WORDS and word.lower() != benchmark.lower():
            continue
        shots.append(int(count))
    return shots


#: baseline ``model_type`` prefix -> the model family whose default protocol (card ``family_variants``) it ran
BASELINE_FAMILIES = (("unified", "mmada"), ("diffusion LLM", "llada"), ("AR LLM", "hf-causal"))


#: model family -> the published model its headline numbers are shown beside
REFERENCE_MODELS = {"mmada": "MMaDA-8B", "llada": "LLaDA-8B"}


def reference_value(frame, benchmark: str, family: str) -> str:
    """``"86.1 (MMaDA-8B)"``: the family's reference model's published number on ``benchmark``, or ``"-"``."""
    model = REFERENCE_MODELS.get(family)
    if frame is None or model is None:
        return "-"
    rows = frame[(frame["benchmark"] == benchmark) & (frame["model"] == model)]
    if rows.empty:
        return "-"
    b = rows.iloc[0]
    return f"{b['value']:.1f}{'%' if b['unit'] == 'percent' else ''} ({model})"


def baseline_family(model_type: str) -> str | None:
    """The model family of a baseline row (``None`` for understanding-/generation-only models)."""
    return next((family for prefix, family in BASELINE_FAMILIES if str(model_type).startswith(prefix)), None)


def protocol_differences(protocol: dict, baseline: dict) -> list[str]:
    """How a baseline row's protocol differs from a task card's ``protocol`` block (empty = same as far as stated)."""
    notes = []
    text = str(baseline.get("split_or_protocol", ""))
    aliases = protocol.get("baseline_aliases") or {}
    if baseline["benchmark"] != protocol["benchmark"]:
        if protocol["benchmark"].lower() not in text.lower():
            notes.append(f"split: {aliases.get(baseline['benchmark'], baseline['benchmark'])}")
    shots = _stated_shots(text, baseline["benchmark"])
    if not shots:
        notes.append("shots not stated")
    elif protocol.get("shots") not in shots:
        notes.append(f"shots: {'/'.join(map(str, shots))} vs {protocol.get('shots')}")
    if protocol.get("metric") and _norm_metric(baseline["metric"]) != _norm_metric(protocol["metric"]):
        notes.append(f"metric: {baseline['metric']} vs {protocol['metric']}")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmada_bench.results.baselines",
                                     description="Build mmada_bench/assets/baselines.parquet from the paper tables CSV.",
                                     epilog="example:\n  python -m mmada_bench.results.baselines build --csv ../shared/spec/paper_tables.csv",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser("build", help="convert the CSV into Parquet")
    b.add_argument("--csv", required=True, help="path of paper_tables.csv")
    b.add_argument("--out", default=str(DEFAULT_PATH), help=f"output Parquet (default: {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    try:
        path = build(args.csv, args.out)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({len(load(path))} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
