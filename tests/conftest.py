"""Shared pytest fixtures.

Every fixture folder is read from one environment variable whose default is the
project's sibling ``shared/`` folder, so the same tests run on any fixture with the
same schema:

* ``MMADA_SHARED_DIR``        root of the shared folder (default ``<repo>/../shared``)
* ``MMADA_CONFORMANCE_DIR``   golden outputs of the official code (default ``$SHARED/conformance/mmada-tiny``)
* ``MMADA_CONFORMANCE_ROOT``  folder with keys_8b.json / keys_magvitv2.json (default ``$SHARED/conformance``)
* ``MMADA_IMAGEREWARD_DIR``   ImageReward goldens (default ``$SHARED/conformance/imagereward-tiny``)
* ``MMADA_SCORING_DIR``       reference-scorer outputs (default ``$SHARED/scoring``)
* ``MMADA_DATA_DIR``          real dataset files (default ``$SHARED/data``)
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    return Path(os.environ.get("MMADA_SHARED_DIR", REPO.parent / "shared"))


def _dir(env: str, default: Path) -> Path:
    path = Path(os.environ.get(env, default))
    if not path.exists():
        pytest.skip(f"fixture folder {path} not found (set {env})")
    return path


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    return _dir("MMADA_CONFORMANCE_DIR", _shared() / "conformance" / "mmada-tiny")


@pytest.fixture(scope="session")
def conformance_root() -> Path:
    return _dir("MMADA_CONFORMANCE_ROOT", _shared() / "conformance")


@pytest.fixture(scope="session")
def imagereward_dir() -> Path:
    return _dir("MMADA_IMAGEREWARD_DIR", _shared() / "conformance" / "imagereward-tiny")


@pytest.fixture(scope="session")
def scoring_dir() -> Path:
    return _dir("MMADA_SCORING_DIR", _shared() / "scoring")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _dir("MMADA_DATA_DIR", _shared() / "data")


@pytest.fixture(scope="session")
def golden(conformance_dir):
    """golden.json of the conformance fixture plus its npz arrays (``golden['npz']``)."""
    import json

    import numpy as np

    data = json.loads((conformance_dir / "golden.json").read_text())
    data["npz"] = dict(np.load(conformance_dir / "golden.npz"))
    return data
