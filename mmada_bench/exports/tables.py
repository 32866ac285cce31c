"""The headline table of a run (one row per task: primary metric, value, CI, n, errors, variant, protocol)."""
from __future__ import annotations

import csv
import io
import json

from mmada_bench.exports.run_data import RunData

COLUMNS = ["task", "metric", "value", "ci_low", "ci_high", "ci_method", "n", "errors", "variant", "protocol"]


def _scaled(value, unit):
    """A leaderboard value on the scale it is printed on (fractions as %, x100 metrics x100)."""
    if value is None or value != value:
        return None
    return round(100 * float(value), 2) if unit in (None, "fraction", "x100") else round(float(value), 3)


def headline_rows(run: RunData) -> list[dict]:
    """One dict per task of the run with the :data:`COLUMNS` keys (values on the printed scale)."""
    rows = []
    for task in run.tasks:
        r = run.primary(task)
        unit = r.get("unit")
        protocol = json.loads(r["protocol"]) if isinstance(r.get("protocol"), str) else {}
        rows.append({"task": task, "metric": f"{r['metric']}/{r['filter']}" + (" (%)" if unit in (None, "fraction") else ""),
                     "value": _scaled(r["value"], unit), "ci_low": _scaled(r.get("ci_low"), unit),
                     "ci_high": _scaled(r.get("ci_high"), unit), "ci_method": r.get("ci_method") or "",
                     "n": int(r["n"]), "errors": int(r["n_errors"]), "variant": r.get("variant") or "",
                     "protocol": protocol.get("description", "")})
    return rows


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value) -> str:
    return "-" if value is None or value == "" else str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(rows: list[dict], title: str = "") -> str:
    """A GitHub-flavoured Markdown table; the CI as one ``[low, high]`` column."""
    header = ["task", "metric", "value", "95 % CI", "n", "errors", "variant", "protocol"]
    lines = ([f"**{title}**", ""] if title else []) + ["| " + " | ".join(header) + " |",
                                                        "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        ci = f"[{r['ci_low']}, {r['ci_high']}] ({r['ci_method']})" if r["ci_low"] is not None else f"({r['ci_method'] or 'none'})"
        cells = [r["task"], r["metric"], r["value"], ci, r["n"], r["errors"], r["variant"], r["protocol"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
