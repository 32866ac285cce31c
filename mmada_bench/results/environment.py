"""Facts about the environment recorded with every result: git SHA, package versions, time."""
from __future__ import annotations

import datetime as _dt
import functools
import subprocess
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = ("mmada-bench", "torch", "transformers", "datasets", "lm-eval", "math-verify",
                    "numpy", "pyarrow", "accelerate", "open_clip_torch", "pycocoevalcap", "sympy", "tokenizers",
                    "safetensors", "pillow")


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """SHA of the checkout the harness runs from (suffix ``-dirty`` with local changes; "unknown" outside git)."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def java_version() -> str | None:
    """The first line of ``java -version`` (the caption metrics run Java), or None without Java."""
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stderr or done.stdout).strip()
    return text.splitlines()[0] if text else None


def device_info() -> dict:
    """The accelerator a run used: GPU names, CUDA and cuDNN versions (None on a CPU-only machine)."""
    import torch  # already loaded by any run that calls this

    cuda = torch.cuda.is_available()
    return {"cuda_available": cuda, "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda else [], "cuda_version": torch.version.cuda, "cudnn_version": torch.backends.cudnn.version()
            if cuda else None, "torch_threads": torch.get_num_threads()}


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    """Installed versions of the packages that can change results."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
