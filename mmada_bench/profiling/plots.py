"""PNG plots of profiles: latency against batch size, and speed against quality per preset."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _title(df: pd.DataFrame) -> str:
    names = ", ".join(sorted(set(df["model_name"])))
    return f"{names} on {df['device'].iloc[0]} ({df['dtype'].iloc[0]})"


def plot_latency_vs_batch(profiles: pd.DataFrame, path: str | Path) -> Path:
    """Left: p50 latency of one batch call (p95 as error bar); right: throughput (useful tok/s or images/s)."""
    fig, (ax_lat, ax_thr) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (task, preset), g in profiles.groupby(["task", "preset"]):
        g = g.sort_values("batch_size")
        label = f"{task} / {preset}"
        upper = (g["latency_p95_s"] - g["latency_p50_s"]).clip(lower=0)
        ax_lat.errorbar(g["batch_size"], g["latency_p50_s"], yerr=[upper * 0, upper], marker="o", capsize=3, label=label)
        images = g["images_per_s"].notna().all() and len(g)
        ax_thr.plot(g["batch_size"], g["images_per_s"] if images else g["useful_tokens_per_s"], marker="o",
                    label=label + (" (images/s)" if images else " (useful tok/s)"))
    ax_lat.set(xlabel="batch size", ylabel="latency per batch call, p50 (bar to p95) [s]", xscale="log", yscale="log",
               title="latency against batch size")
    ax_thr.set(xlabel="batch size", ylabel="throughput", xscale="log", yscale="log", title="throughput against batch size")
    for ax in (ax_lat, ax_thr):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(_title(profiles), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def join_quality(profiles: pd.DataFrame, board: pd.DataFrame) -> pd.DataFrame:
    """Profile rows x primary leaderboard rows of the same model fingerprint and preset (and task, for card tasks)."""
    if board is None or board.empty:
        return pd.DataFrame()
    primary = board[board["is_primary"].astype(bool)][["model_fingerprint", "preset", "task", "value", "ci_low",
                                                       "ci_high", "n", "split"]]
    joined = profiles.merge(primary, on=["model_fingerprint", "preset"], suffixes=("", "_board"))
    shape_rows = joined["task"].isin(["text", "mmu", "t2i"])
    return joined[shape_rows | (joined["task"] == joined["task_board"])].reset_index(drop=True)


def plot_speed_vs_quality(profiles: pd.DataFrame, board: pd.DataFrame, path: str | Path) -> Path:
    """Quality (primary metric, leaderboard) against useful tokens/s per preset, at each batch size;
    presets without leaderboard rows are drawn as speed-only bars."""
    joined = join_quality(profiles, board)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if not joined.empty:
        for (task, preset, batch), g in joined.groupby(["task_board", "preset", "batch_size"]):
            r = g.iloc[0]
            speed = r["images_per_s"] if pd.notna(r.get("images_per_s")) else r["useful_tokens_per_s"]
            ax.errorbar([speed], [100 * r["value"]], yerr=[[100 * (r["value"] - r["ci_low"])], [100 * (r["ci_high"] - r["value"])]],
                        marker="o", capsize=3, label=f"{task} / {preset} / batch {batch} (n={r['n']}, {r['split']})")
        ax.set(xlabel="useful tokens/s (images/s for t2i)", ylabel="primary metric [%] (95 % CI)", xscale="log",
               title="speed against quality per preset")
        ax.legend(fontsize=7)
    else:
        speeds = profiles.groupby("preset").apply(
            lambda g: (g["images_per_s"] if g["images_per_s"].notna().all() else g["useful_tokens_per_s"]).max(),
            include_groups=False)
        ax.barh(list(speeds.index), list(speeds.values))
        ax.set(xlabel="best useful tokens/s (images/s for t2i) over batch sizes",
               title="speed per preset (no leaderboard rows of this model + preset: run `run` first for quality)")
        ax.title.set_fontsize(8)
    ax.grid(True, alpha=0.3)
    fig.suptitle(_title(profiles), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
