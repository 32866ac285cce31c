"""`report`: one self-contained HTML file, checked as written and as rendered by headless chromium."""
from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from mmada_bench.cli import main as cli_main

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IMG_SRC = re.compile(r'<img\b[^>]*\bsrc="([^"]*)"')


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    """Two dummy runs (gsm8k + pope, second on the fast preset), a real text profile, a contact sheet, the report."""
    out = tmp_path_factory.mktemp("report_runs")
    common = ["--tasks", "gsm8k,pope", "--model", "dummy", "--limit", "5", "--output-dir", str(out), "--no-progress"]
    assert cli_main(["run", *common, "--run-id", "base-run"]) == 0
    assert cli_main(["run", *common, "--run-id", "cand-run", "--preset", "fast"]) == 0
    assert cli_main(["profile", "--output-dir", str(out), "--tasks", "text", "--batch-sizes", "1,2", "--repeats", "1",
                     "--warmup", "0", "--prompt-length", "12", "--no-plots"]) == 0
    sheet = out / "runs" / "cand-run" / "images" / "t2i" / "contact_sheet.png"
    sheet.parent.mkdir(parents=True)
    Image.new("RGB", (96, 48), (200, 40, 40)).save(sheet)
    page = out / "report.html"
    assert cli_main(["report", "base-run", "cand-run", "--output-dir", str(out), "--out", str(page)]) == 0
    return page, page.read_text()


def _png(src: str) -> Image.Image:
    assert src.startswith("data:image/png;base64,")
    data = base64.b64decode(src.split(",", 1)[1], validate=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.width > 0 and image.height > 0
    return image


def test_report_is_one_self_contained_file(report):
    _, text = report
    assert not re.search(r'\b(?:src|href)="(?!data:|#)', text)  # every source inline
    assert not re.search(r"url\(\s*['\"]?(?!data:)", text) and "<link" not in text and "@import" not in text
    sources = IMG_SRC.findall(text)
    assert len(sources) >= 5  # 2 breakdown bars, speed-quality, profile, contact sheet
    sizes = [_png(src).size for src in sources]
    assert (96, 48) in sizes  # the contact sheet itself


def test_report_sections_hold_the_runs(report):
    _, text = report
    for needle in ("base-run", "cand-run", "<strong>gsm8k</strong>", "<strong>pope</strong>", "LLaDA 8B Instruct",
                   "shots: 4 vs 5", "Regression gate", "speed against quality", "latency and throughput",
                   "manifest of cand-run", "contact sheet t2i", "SHAPES-WORLD SPLIT"):
        assert needle in text, needle
    assert "<table><thead><tr><th>task</th><th>metric</th><th>gated</th>" in text  # the gate table as HTML


def test_errors_are_one_line(tmp_path, report, capsys):
    page, _ = report
    assert cli_main(["report", "nope", "--output-dir", str(page.parent), "--out", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown run 'nope'") and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def _chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *extra,
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (scripts/setup.sh installs it with apt-get)")
@pytest.mark.parametrize("width", [1280, 820])
def test_chromium_renders_every_figure_without_overflow(report, tmp_path, width):
    page, text = report
    dom = _chromium(tmp_path, page, f"--window-size={width},2000", "--dump-dom").stdout
    body = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', re.search(r"<body[^>]*>", dom).group(0)))
    assert body.get("data-checked") == "yes", "the page's check script did not run"
    assert body["data-overflowing"] == "", f"elements past the right edge at {width}px: {body['data-overflowing']}"
    assert int(body["data-scroll-width"]) <= int(body["data-inner-width"])
    assert int(body["data-images-decoded"]) == len(IMG_SRC.findall(text))
    assert "<td>gsm8k</td>" in dom or "<strong>gsm8k</strong>" in dom


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (scripts/setup.sh installs it with apt-get)")
def test_chromium_screenshot_is_not_blank(report, tmp_path):
    page, _ = report
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, page, "--window-size=1280,2000", f"--screenshot={shot}")
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        low, high = zip(*image.convert("RGB").getextrema())
        assert max(high) - min(low) > 100  # text and figures, not one flat colour


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (scripts/setup.sh installs it with apt-get)")
def test_overflow_check_catches_a_wide_element(report, tmp_path):
    page, text = report
    wide = tmp_path / "wide.html"
    wide.write_text(text.replace("<main>", '<main><pre style="white-space:pre">' + "x" * 400 + "</pre>", 1))
    dom = _chromium(tmp_path, wide, "--window-size=1280,2000", "--dump-dom").stdout
    body = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', re.search(r"<body[^>]*>", dom).group(0)))
    assert "pre" in body["data-overflowing"].split() and int(body["data-scroll-width"]) > int(body["data-inner-width"])
