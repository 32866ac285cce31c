"""The report's figures as PNG bytes (matplotlib, Agg) and data URIs."""
from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import pandas as pd

SCALED_UNITS = (None, "fraction", "x100")  # units printed x100


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _pyplot():
    # function-level import: matplotlib is heavy and only the report needs it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return buffer.getvalue()


def _shown(value: float, unit) -> float:
    return 100 * value if unit in SCALED_UNITS else value


def _from_zero(ax, values) -> None:
    """A y axis from 0 when every value is >= 0 (an all-zero smoke run still gets a 0..1 % axis)."""
    finite = [float(v) for v in values if v == v]
    if finite and min(finite) >= 0:
        ax.set_ylim(0, max(1.0, 1.15 * max(finite)))


def breakdown_bars(rows: pd.DataFrame, title: str) -> bytes:
    """Grouped bars of one task's breakdown rows (``split=...`` / ``category=...``): label x base metric."""
    plt = _pyplot()
    frame = rows.assign(label=rows["breakdown"].map(lambda b: str(b).partition("=")[2]),
                        base=rows["metric"].map(lambda m: str(m).split("[", 1)[0]))
    frame = frame.assign(shown=[_shown(v, u) for v, u in zip(frame["value"], frame["unit"])])
    table = frame.pivot_table(index="label", columns="base", values="shown", aggfunc="first", sort=False)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.8 / max(1, len(table.columns))
    for i, column in enumerate(table.columns):
        ax.bar([x + i * width for x in range(len(table.index))], table[column].fillna(0), width, label=column)
    ax.set_xticks([x + width * (len(table.columns) - 1) / 2 for x in range(len(table.index))], table.index,
                  rotation=30 if len(table.index) > 4 else 0, ha="right" if len(table.index) > 4 else "center",
                  fontsize=8)
    _from_zero(ax, table.to_numpy().ravel())
    ax.set(title=title, ylabel="% (points for MME)" if frame["unit"].eq("points").any() else "%")
    ax.title.set_fontsize(9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, len(table.columns)))
    return _png(fig)


def speed_quality(points: pd.DataFrame) -> bytes:
    """Primary value against items/s, one marker per run x task, labelled with the preset."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for task, g in points.groupby("task", sort=False):
        ax.scatter(g["items_per_s"], [_shown(v, u) for v, u in zip(g["value"], g["unit"])], label=task, s=40)
        for _, r in g.iterrows():
            ax.annotate(f"{r['preset']} ({r['run_id'][-6:]})", (r["items_per_s"], _shown(r["value"], r["unit"])),
                        fontsize=7, xytext=(4, 3), textcoords="offset points")
    if (points["items_per_s"] > 0).all():
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    _from_zero(ax, [_shown(v, u) for v, u in zip(points["value"], points["unit"])])
    ax.set(xlabel="items/s (generation wall time of the run)", ylabel="primary metric (% / points)",
           title="speed against quality per preset")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def profile_latency(profiles: pd.DataFrame) -> bytes:
    """profiling.plots' latency / throughput against batch size, as PNG bytes."""
    # function-level import: profiling.plots imports matplotlib at module level
    from mmada_bench.profiling.plots import plot_latency_vs_batch

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "latency.png"
        plot_latency_vs_batch(profiles, path)
        return path.read_bytes()
