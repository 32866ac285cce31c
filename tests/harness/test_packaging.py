"""The wheel ships every task card, the baselines and the packaged assets; an installed copy lists the tasks."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "mmada_bench"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, cwd=out)
    (path,) = out.glob("mmada_bench-*.whl")
    return path


def _packaged_files() -> set[str]:
    """Every file the package must carry besides its modules: cards, assets (baselines included)."""
    files = {p for p in (PACKAGE / "tasks").glob("*.yaml")}
    files |= {p for p in (PACKAGE / "assets").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    return {str(p.relative_to(REPO)) for p in files}


def test_wheel_holds_cards_baselines_and_assets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _packaged_files()
    assert "mmada_bench/assets/baselines.parquet" in expected
    assert any(name.startswith("mmada_bench/tasks/") for name in expected)
    assert expected - names == set()
    modules = {str(p.relative_to(REPO)) for root in ("mmada_ref", "mmada_scoring", "mmada_bench")
               for p in (REPO / root).rglob("*.py") if "assets" not in p.parts}
    assert modules - names == set()


def test_installed_copy_lists_every_task(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("MMADA_TASKS_DIR", None)
    where = subprocess.run([sys.executable, "-c", "import mmada_bench; print(mmada_bench.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target))
    listing = subprocess.run([sys.executable, "-m", "mmada_bench", "list-tasks"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    listed = {line.split()[0] for line in listing.stdout.splitlines()[1:] if line.strip()}
    assert listed == {p.stem for p in (PACKAGE / "tasks").glob("*.yaml")}
