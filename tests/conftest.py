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

import functools
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


def fixture_tolerance(fixture: dict, name: str, default: float) -> float:
    """The tolerance a fixture file states (``fixture["tolerances"][name]``), else ``default``.

    ``default`` is the value the fixture's README recommends; it is used only when the fixture
    itself carries no such entry.
    """
    value = (fixture.get("tolerances") or {}).get(name)
    return default if value is None else float(value)


@pytest.fixture(scope="session")
def tolerance():
    """``tolerance(fixture_json, name, default)``: see :func:`fixture_tolerance`."""
    return fixture_tolerance


@functools.cache
def _golden_json_at(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _golden_json():
    """golden.json of the conformance fixture at collection time (None when the folder is absent)."""
    folder = Path(os.environ.get("MMADA_CONFORMANCE_DIR", _shared() / "conformance" / "mmada-tiny"))
    return _golden_json_at(folder / "golden.json")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "golden_cases(section): parametrize the test's `tag` argument with the tags of every "
        "record of golden.json[section] (records that document an expected official error are left out)")


def pytest_generate_tests(metafunc):
    """Golden case names come from the fixture: ``@pytest.mark.golden_cases("t2i_generate")``."""
    marker = metafunc.definition.get_closest_marker("golden_cases")
    if marker is None:
        return
    section = marker.args[0]
    golden = _golden_json()
    if golden is None:
        reason = "conformance fixture golden.json not found (set MMADA_CONFORMANCE_DIR)"
        metafunc.parametrize("tag", [pytest.param(None, marks=pytest.mark.skip(reason=reason))])
        return
    tags = [record["tag"] for record in golden[section] if "error" not in record]
    assert tags, f"golden.json[{section!r}] has no cases"
    metafunc.parametrize("tag", tags)


@pytest.fixture(scope="session")
def golden(conformance_dir):
    """golden.json of the conformance fixture plus its npz arrays (``golden['npz']``)."""
    import numpy as np

    data = json.loads((conformance_dir / "golden.json").read_text())
    data["npz"] = dict(np.load(conformance_dir / "golden.npz"))
    return data


def npz_key(ref: str) -> str:
    """``"npz:<key> <description>"`` (how golden.json points into golden.npz) -> ``<key>``."""
    assert ref.startswith("npz:"), ref
    return ref[len("npz:"):].split()[0]


@pytest.fixture(scope="session")
def golden_array(golden):
    """``golden_array("npz:<key> ...")``: the golden.npz array that a golden.json entry points to."""
    return lambda ref: golden["npz"][npz_key(ref)]


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


# --- processes -----------------------------------------------------------------------------------------------------

@pytest.fixture
def run_forked():
    """``run_forked(target, [args, ...], timeout)``: one forked process per args tuple; asserts each exits 0."""
    import multiprocessing

    def run(target, args_list, timeout: float) -> None:
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=target, args=args) for args in args_list]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout)
            assert p.exitcode == 0

    return run


@pytest.fixture(scope="module", params=("default", "onednn", "native"))
def on_gemm(request):
    """``on_gemm(model)``: the model on one of the three CPU paths every parity test runs: "default" leaves it as
    built, "onednn" packs its weights (``MMaDAModelLM.pack_cpu_weights``; skipped without oneDNN), "native" also
    serves cached windows through the AVX-512 kernels (``prepare_native_step``; skipped where they cannot run)."""
    def apply(model):
        if request.param in ("onednn", "native") and not model.pack_cpu_weights():
            pytest.skip("this torch build has no usable oneDNN linear operators")
        if request.param == "native" and not model.prepare_native_step():
            from mmada_ref.cpu_native import unavailable_reason
            pytest.skip(unavailable_reason() or "the model does not fit the native kernels")
        return model

    return apply
