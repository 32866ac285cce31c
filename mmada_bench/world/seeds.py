"""The seed scheme: every item has its own random stream, keyed by (seed, split, stream, index).

``item_rng(seed, split, stream, i)`` is ``numpy.random.default_rng(SeedSequence(seed, spawn_key=(split_code,
stream_code, i)))``. The split code is part of the key, so the training split (``train``, code 0) and the
evaluation split (``world``, code 1) never share a stream whatever integer seeds are used, and item ``i``
does not depend on how many items are generated (``--n 100`` is a prefix of ``--n 1000``).
"""
from __future__ import annotations

import zlib

import numpy as np

TRAIN_SPLIT = "train"
EVAL_SPLIT = "world"
SPLIT_CODES = {TRAIN_SPLIT: 0, EVAL_SPLIT: 1}
DEFAULT_EVAL_SEED = 1
DEFAULT_TRAIN_SEED = 0


def stream_code(stream: str) -> int:
    """A stable 32-bit code of a stream name (``pope``, ``gsm8k``, ``stage1/caption`` ...)."""
    return zlib.crc32(stream.encode("utf-8"))


def item_rng(seed: int, split: str, stream: str, index: int) -> np.random.Generator:
    """The random generator of item ``index`` of ``stream`` in ``split``."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, not {split!r}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0 (got {seed}, {index})")
    key = (SPLIT_CODES[split], stream_code(stream), int(index))
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))
