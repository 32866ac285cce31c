"""Native AVX-512 float32 kernels for the cached-window step on a CPU (``kernels.cpp``).

Built once with torch's C++ extension loader (a C++ compiler and ninja are needed; ~30 s on two cores; torch
caches the build under ``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``) and loaded on first use.
:func:`load_kernels` returns the module, or ``None`` where this machine cannot run them (no AVX-512, no
compiler, a failed build); :func:`unavailable_reason` then says why in one line.
"""
from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

from .step import NativeStep

__all__ = ["NativeStep", "load_kernels", "loaded_kernels", "unavailable_reason"]

SOURCE = Path(__file__).with_name("kernels.cpp")
CFLAGS = ["-O3", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mfma", "-ffp-contract=off", "-fopenmp"]


def unavailable_reason() -> Optional[str]:
    """Why the native kernels cannot run here (one line), or None where they can."""
    return _load()[1]


def load_kernels():
    """The compiled kernel module, or None (see :func:`unavailable_reason`)."""
    return _load()[0]


def loaded_kernels():
    """The kernel module where this process has already loaded it, else None (never starts a build)."""
    return _load()[0] if _load.cache_info().currsize else None


@lru_cache(maxsize=1)
def _load():
    capability = torch.backends.cpu.get_cpu_capability()
    if not capability.startswith("AVX512"):
        return None, f"native CPU kernels need AVX-512; this CPU reports {capability}"
    if not torch.backends.openmp.is_available():
        return None, "native CPU kernels need a torch build with OpenMP"
    missing = [tool for tool in ("c++", "ninja") if shutil.which(tool) is None]
    if missing:
        return None, f"native CPU kernels need {' and '.join(missing)} on PATH to build"
    try:
        from torch.utils.cpp_extension import load
        module = load(name="mmada_cpu_native", sources=[str(SOURCE)], extra_cflags=CFLAGS,
                      extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as exc:  # a compiler error, a missing header: report it, fall back to the torch path
        return None, f"native CPU kernels failed to build: {str(exc).strip().splitlines()[-1][:200]}"
    return module, None
