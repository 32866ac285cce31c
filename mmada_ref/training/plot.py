"""Loss and reward curves of a run folder as PNG files.

    python -m mmada_ref.training.plot RUN_DIR      # writes RUN_DIR/curves/loss.png (+ reward.png for UniGRPO)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

LOSS_KEYS = ("loss", "loss_t2i", "loss_lm", "loss_mmu", "kl")
REWARD_KEYS = ("reward", "reward_std")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Records of ``RUN_DIR/metrics.jsonl`` (a resumed run appends; the last record per step wins)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a training run folder?")
    by_step = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            by_step[rec["step"]] = rec
    return [by_step[s] for s in sorted(by_step)]


def _plot(records: list[dict], keys, title: str, ylabel: str, out: Path) -> bool:
    import matplotlib  # matplotlib: loaded only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib: loaded only when plotting

    present = [k for k in keys if any(k in r for r in records)]
    if not present:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in present:
        pts = [(r["step"], r[key]) for r in records if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key, marker="." if len(pts) < 50 else None)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write ``curves/loss.png`` and, when rewards were logged, ``curves/reward.png``; returns the files."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    out_dir = run_dir / "curves"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    name = run_dir.name
    if _plot(records, LOSS_KEYS, f"{name}: training loss", "loss", out_dir / "loss.png"):
        written.append(out_dir / "loss.png")
    if _plot(records, REWARD_KEYS, f"{name}: mean reward per rollout", "reward", out_dir / "reward.png"):
        written.append(out_dir / "reward.png")
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Plot the loss / reward curves of a training run folder.")
    parser.add_argument("run_dir", nargs="+", help="run folder(s) with metrics.jsonl")
    args = parser.parse_args(argv)
    for run in args.run_dir:
        for path in plot_run(run):
            print(path)


if __name__ == "__main__":
    main()
