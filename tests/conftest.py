"""Shared pytest fixtures.

Every fixture folder is read from one environment variable whose default lies in the
repository's own ``tests/fixtures/`` (see ``tests/fixtures/PROVENANCE.md``), so a fresh clone
runs the whole suite, and the same tests run on any other fixture with the same schema:

* ``MMADA_SHARED_DIR``        root with the same layout (default ``<repo>/tests/fixtures``; e.g. ``../shared``)
* ``MMADA_CONFORMANCE_DIR``   golden outputs of the official code (default ``$SHARED/conformance/mmada-tiny``)
* ``MMADA_CONFORMANCE_ROOT``  folder with keys_8b.json / keys_magvitv2.json (default ``$SHARED/conformance``)
* ``MMADA_IMAGEREWARD_DIR``   ImageReward goldens (default ``$SHARED/conformance/imagereward-tiny``)
* ``MMADA_SCORING_DIR``       reference-scorer outputs (default ``$SHARED/scoring``)
* ``MMADA_DATA_DIR``          real dataset files (default ``$SHARED/data``; the vendored copy holds the first rows)
* ``MMADA_SPEC_DIR``          spec files, e.g. paper_tables.csv (default ``$SHARED/spec``)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"  # vendored copy of the fixture folders (tests/fixtures/PROVENANCE.md)


def _shared() -> Path:
    return Path(os.environ.get("MMADA_SHARED_DIR", FIXTURES))


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
def spec_dir() -> Path:
    return _dir("MMADA_SPEC_DIR", _shared() / "spec")


@pytest.fixture(scope="session")
def golden(conformance_dir):
    """golden.json of the conformance fixture plus its npz arrays (``golden['npz']``)."""
    import numpy as np

    data = json.loads((conformance_dir / "golden.json").read_text())
    data["npz"] = dict(np.load(conformance_dir / "golden.npz"))
    return data


# --- a tiny random open_clip model (CLIP-score tests of the scorer and of the t2i task) ----------------------

TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@dataclass
class TinyClip:
    name: str  # open_clip model name its JSON config is registered under
    model: object
    checkpoint: Path  # its state dict


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> TinyClip:
    """A tiny random open_clip model registered with open_clip, and its state dict on disk."""
    open_clip = pytest.importorskip("open_clip")
    import torch

    name = "mmada-test-tiny-clip"
    folder = tmp_path_factory.mktemp("tiny_clip")
    (folder / f"{name}.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(folder / f"{name}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None).eval()
    torch.save(model.state_dict(), folder / "tiny.pt")
    return TinyClip(name, model, folder / "tiny.pt")


# --- scored predictions of the reference scorers (MMADA_SCORING_DIR) -----------------------------------------

def _scoring_pair(name: str):
    """Fixtures ``(<name>.jsonl rows, <name>_expected.json)`` of the scoring fixture folder."""

    @pytest.fixture(scope="session")
    def items(scoring_dir):
        return [json.loads(line) for line in (scoring_dir / f"{name}.jsonl").read_text().splitlines() if line.strip()]

    @pytest.fixture(scope="session")
    def expected(scoring_dir):
        return json.loads((scoring_dir / f"{name}_expected.json").read_text())

    return items, expected


pope_items, pope_expected = _scoring_pair("pope")
mme_items, mme_expected = _scoring_pair("mme")
flickr_items, flickr_expected = _scoring_pair("flickr30k")
