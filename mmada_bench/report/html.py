"""The report page: headline tables beside the papers' baselines, breakdown bars, speed-quality and profile
plots, text-to-image contact sheets, the regression gate of two runs, and each run's manifest; one file."""
from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from mmada_bench.cards.discovery import get_task
from mmada_bench.commands.show import format_ci, format_value
from mmada_bench.data.loading import BUNDLED_SPLIT_NOTES
from mmada_bench.exports.run_data import RunData
from mmada_bench.gate import compare_runs, load_run, markdown_report
from mmada_bench.models.smoke import result_label
from mmada_bench.profiling.store import read_profiles
from mmada_bench.report import plots
from mmada_bench.report.markdown import to_html
from mmada_bench.results.baselines import baseline_family, protocol_differences

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f4f6f9;margin:0}
main{max-width:1180px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:18px;margin:26px 0 8px;border-bottom:2px solid #d5dbe5;padding-bottom:3px}
h3{font-size:15px;margin:16px 0 6px}h4{font-size:14px;margin:12px 0 4px}
.sub{color:#5b6578;margin:0 0 10px}.card{background:#fff;border:1px solid #dde3ec;border-radius:8px;padding:12px 16px;margin:10px 0}
table{border-collapse:collapse;width:100%;margin:6px 0 4px;font-size:13px;background:#fff}
th,td{border:1px solid #dde3ec;padding:4px 7px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#eef2f7;font-weight:600;overflow-wrap:normal}td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}td.word{overflow-wrap:normal}
tr.same td{background:#f1f8ef}.diff{color:#9a4b00}.smoke{display:inline-block;background:#fde2e1;color:#9b1c1c;
border-radius:4px;padding:0 6px;font-size:12px;font-weight:600}.muted{color:#6b7486}
img{max-width:100%;height:auto;display:block;margin:6px 0;border:1px solid #e3e7ee;border-radius:4px;background:#fff}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:10px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f7f8fa;border:1px solid #e3e7ee;padding:8px;font-size:12px}
code{background:#eef2f7;padding:0 3px;border-radius:3px;overflow-wrap:anywhere}summary{cursor:pointer;font-weight:600}
"""

#: sets data attributes on <body> after load: page vs viewport width, elements past the right edge, images decoded
CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var b = document.body, w = window.innerWidth, over = [];
  document.querySelectorAll('main *').forEach(function (e) {
    var r = e.getBoundingClientRect();
    var spills = e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible';
    if ((r.width > 0 && r.right > w + 1) || spills) over.push(e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));
  });
  var imgs = Array.prototype.slice.call(document.images);
  b.setAttribute('data-scroll-width', document.documentElement.scrollWidth);
  b.setAttribute('data-inner-width', w);
  b.setAttribute('data-overflowing', over.slice(0, 20).join(' '));
  b.setAttribute('data-images-decoded', imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length);
  b.setAttribute('data-checked', 'yes');
});
"""


CELL_KINDS = {"\x00": "num", "\x01": "word"}  # first character of a cell -> its class


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """A table of already-escaped cells; a cell starting with ``\\x00`` is numeric (right aligned), ``\\x01`` a word
    (wrapped at hyphens only)."""
    def cell(c):
        kind = CELL_KINDS.get(c[:1])
        return f'<td class="{kind}">{c[1:]}</td>' if kind else f"<td>{c}</td>"
    body = "".join(f'<tr class="{(classes or [""] * len(rows))[i]}">' + "".join(cell(c) for c in r) + "</tr>"
                   for i, r in enumerate(rows))
    return "<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + f"</tr></thead><tbody>{body}</tbody></table>"


def _figure(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="{plots.data_uri(png)}">'


def _card(task: str):
    try:
        return get_task(task)
    except (KeyError, ValueError):
        return None


def headline_section(run: RunData) -> str:
    """The run's primary number per task (all whole-set metrics in a fold)."""
    first = run.board.iloc[0]
    label = result_label(first)
    smoke = f' <span class="smoke">{esc(label)}</span>' if label else ""
    rows = []
    for task in run.tasks:
        r = run.primary(task)
        note = BUNDLED_SPLIT_NOTES.get(r["split"])
        split = esc(r["split"]) + (f' <span class="smoke">{note}</span>' if note else "")
        rows.append([f"<strong>{esc(task)}</strong>", esc(f"{r['metric']}/{r['filter']}"),
                     "\x00" + esc(format_value(r["value"], r.get("unit"))), esc(format_ci(r)), "\x00" + esc(r["n"]),
                     "\x00" + esc(r["n_errors"]), esc(r["variant"]), esc(r["preset"]), split])
    others = []
    for task in run.tasks:
        for _, r in run.whole(task).iterrows():
            others.append([esc(task), esc(f"{r['metric']}/{r['filter']}") + (" (primary)" if r["is_primary"] else ""),
                           "\x00" + esc(format_value(r["value"], r.get("unit"))), esc(format_ci(r)), "\x00" + esc(r["n"])])
    return (f'<h3>Run <code>{esc(run.run_id)}</code>: {esc(first["model_name"])} ({esc(first["model_family"])}, '
            f'fingerprint <code>{esc(str(first["model_fingerprint"])[:12])}</code>){smoke}</h3>'
            + _table(["task", "primary metric", "value", "95 % CI", "n", "errors", "variant", "preset", "split"], rows)
            + "<details><summary>every metric and filter</summary>"
            + _table(["task", "metric", "value", "95 % CI", "n"], others) + "</details>")


def baselines_section(runs: list[RunData], baselines: pd.DataFrame | None) -> str:
    """Per task: this report's runs, then the published numbers of the benchmark with protocol differences."""
    if baselines is None or baselines.empty:
        return '<p class="muted">no baselines file (build it with python -m mmada_bench.results.baselines build)</p>'
    out = []
    for task in dict.fromkeys(t for run in runs for t in run.tasks):
        mine = [(run, run.primary(task)) for run in runs if task in run.tasks]
        protocol = json.loads(mine[0][1]["protocol"])
        names = [protocol["benchmark"], *protocol.get("baseline_aliases", {})]
        matches = baselines[baselines["benchmark"].isin(names)]
        card = _card(task)
        rows, classes = [], []
        for run, r in mine:
            rows.append([f"<strong>this report: {esc(run.run_id)}</strong>", esc(task),
                         "\x00" + esc(format_value(r["value"], r.get("unit"))), "\x01" + esc(r["variant"]),
                         esc(protocol.get("description", ""))])
            classes.append("same")
        for _, b in matches.iterrows():
            diffs = protocol_differences(protocol, b.to_dict())
            variant = card.default_variant_for(baseline_family(b["model_type"])) if card else None
            value = f"{b['value']:.1f}%" if b["unit"] == "percent" else f"{b['value']:.2f}"
            note = f'<span class="diff">{esc("; ".join(diffs))}</span>' if diffs else "same as far as stated"
            rows.append([esc(b["model"]), "\x01" + esc(b["benchmark"]), "\x00" + esc(value), "\x01" + esc(variant or "-"),
                         note + f' <span class="muted">({esc(b.get("split_or_protocol") or "")})</span>'])
            classes.append("same" if variant == mine[0][1]["variant"] else "")
        if not len(matches):
            rows.append([f'<span class="muted">no published baselines for {esc(protocol["benchmark"])}</span>',
                         "", "", "", ""])
            classes.append("")
        out.append(f"<h3>{esc(task)} <span class='muted'>({esc(protocol['benchmark'])}, {esc(protocol.get('shots'))}-shot, "
                   f"metric {esc(protocol.get('metric'))})</span></h3>"
                   + _table(["model", "benchmark", "value", "variant", "protocol / differences from this card"], rows, classes))
    return "".join(out)


def breakdown_section(runs: list[RunData]) -> str:
    """Bars per task with breakdown rows, on the primary filter."""
    figures = []
    for run in runs:
        for task in run.tasks:
            rows = run.board[(run.board["task"] == task) & run.board["breakdown"].notna()]
            rows = rows[rows["filter"] == run.primary(task)["filter"]]
            for kind, group in rows.groupby(rows["breakdown"].map(lambda b: str(b).partition("=")[0]), sort=False):
                title = f"{task} by {kind} ({run.primary(task)['filter']}), run {run.run_id}"
                figures.append(_figure(plots.breakdown_bars(group, title), title))
    return f'<div class="grid">{"".join(figures)}</div>' if figures else '<p class="muted">no per-split or per-category rows</p>'


def speed_section(runs: list[RunData]) -> str:
    points = pd.DataFrame([{**run.primary(t), "run_id": run.run_id} for run in runs for t in run.tasks])
    points = points[points["items_per_s"].notna()]
    if points.empty:
        return '<p class="muted">no timed rows</p>'
    return _figure(plots.speed_quality(points), "speed against quality per preset")


def profiles_section(output_dir: Path) -> str:
    profiles = read_profiles(output_dir)
    if profiles.empty:
        return f'<p class="muted">no {esc(output_dir / "profiles.parquet")} (python -m mmada_bench profile writes it)</p>'
    return _figure(plots.profile_latency(profiles), "latency and throughput against batch size")


def images_section(runs: list[RunData]) -> str:
    figures = []
    for run in runs:
        for sheet in sorted((run.output_dir / "runs" / run.run_id / "images").glob("*/contact_sheet.png")):
            figures.append(f"<h4>{esc(sheet.parent.name)}, run {esc(run.run_id)}</h4>"
                           + _figure(sheet.read_bytes(), f"contact sheet {sheet.parent.name}"))
    return "".join(figures) or '<p class="muted">no text-to-image contact sheets in these runs</p>'


def gate_section(runs: list[RunData]) -> str:
    """The regression gate of the second run against the first."""
    base = load_run(runs[0].run_id, runs[0].output_dir)
    cand = load_run(runs[1].run_id, runs[1].output_dir)
    return f'<div class="card">{to_html(markdown_report(compare_runs(base, cand)))}</div>'


def manifest_section(run: RunData) -> str:
    text = json.dumps(run.manifest, indent=2) if run.manifest else "(no manifest.json)"
    return f"<details><summary>manifest of {esc(run.run_id)}</summary><pre>{esc(text)}</pre></details>"


def build_report(runs: list[RunData], baselines: pd.DataFrame | None, generated_at: str) -> str:
    """The whole page for ``runs`` (the gate section when there are exactly two)."""
    sections = [("Headline results", "".join(headline_section(r) for r in runs)),
                ("Beside the papers' baselines", baselines_section(runs, baselines)),
                ("Per split / per category", breakdown_section(runs)),
                ("Speed against quality", speed_section(runs)),
                ("Latency and throughput profiles", profiles_section(runs[0].output_dir))]
    sections.append(("Text-to-image contact sheets", images_section(runs)))
    if len(runs) == 2:
        sections.append((f"Regression gate: {runs[1].run_id} against {runs[0].run_id}", gate_section(runs)))
    sections.append(("Manifests", "".join(manifest_section(r) for r in runs)))
    body = "".join(f"<h2>{esc(title)}</h2>{content}" for title, content in sections)
    names = ", ".join(esc(r.run_id) for r in runs)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>mmada-bench report: {names}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body><main>'
            f'<h1>mmada-bench report</h1><p class="sub">runs {names}; generated {esc(generated_at)} from '
            f'{esc(runs[0].output_dir)}</p>{body}</main><script>{CHECK_SCRIPT}</script></body></html>\n')
