"""Strict checkpoint I/O in the official MMaDA format (config.json + safetensors, optionally sharded)."""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .config import MMaDAConfig

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, incomplete or does not match the model."""


def weight_files(path: str | os.PathLike) -> list[Path]:
    """The safetensors files of a checkpoint folder (one file, or the shards named by the index)."""
    folder = Path(path)
    if (folder / INDEX_FILE).is_file():
        index = json.loads((folder / INDEX_FILE).read_text())
        shards = sorted(set(index.get("weight_map", {}).values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if not shards or missing:
            raise CheckpointError(f"{folder / INDEX_FILE} names shard files that are missing: {missing or 'none listed'}")
        return [folder / s for s in shards]
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    raise CheckpointError(f"checkpoint folder {folder} has no {SINGLE_FILE} or {INDEX_FILE}: "
                          "pass --model a folder with the official MMaDA safetensors weights")


def check_keys(expected: dict[str, torch.Size], found: dict[str, tuple], source: str) -> None:
    """Raise :class:`CheckpointError` naming every missing, unexpected or mis-shaped key."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:10])}" + (" ..." if len(unexpected) > 10 else ""))
    for k in wrong[:10]:
        problems.append(f"shape of {k}: checkpoint {tuple(found[k])} vs model {tuple(expected[k])}")
    if problems:
        raise CheckpointError(f"{source} does not match the model config: " + "; ".join(problems))


def load_model(cls, path, dtype: Optional[torch.dtype] = None, device=None, config: Optional[MMaDAConfig] = None):
    """Build ``cls`` from ``path/config.json`` and load its safetensors strictly (no key may be missing or extra)."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder} has no config.json: pass a local MMaDA checkpoint folder")
    config = config or MMaDAConfig.from_pretrained(folder)
    files = weight_files(folder)
    dtype = _resolve_dtype(dtype)
    with torch.device("meta"), initialisers_skipped():
        model = cls(config)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    state = {}
    for file in files:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for key in f.keys():
                state[key] = f.get_tensor(key)
    check_keys(expected, {k: tuple(v.shape) for k, v in state.items()}, str(folder))
    target = torch.device(device) if device is not None else torch.device("cpu")
    for key, tensor in state.items():
        state[key] = tensor.to(device=target, dtype=dtype or tensor.dtype)
    model.load_state_dict(state, strict=True, assign=True)
    model.name_or_path = str(folder)
    return model.eval()


#: ``torch.nn.init`` functions the layers' constructors and ``_init_weights`` call
_INITIALISERS = ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "trunc_normal_", "ones_", "zeros_")


@contextmanager
def initialisers_skipped():
    """Make the parameter initialisers no-ops while a model is built only to receive loaded weights (the LLM and
    MAGVIT loaders; on the meta device they run through torch's Python references, which import ``torch._dynamo``:
    ~1.3 s of start-up)."""
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
    try:
        for name in _INITIALISERS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)


def save_model(model, directory, max_shard_size: int | str = "5GB") -> None:
    """Write ``config.json`` and the weights (sharded with ``model.safetensors.index.json`` when large)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    limit = _parse_size(max_shard_size)
    shards: list[dict] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    for stale in list(folder.glob("model*.safetensors")) + [folder / INDEX_FILE]:
        if stale.exists():
            stale.unlink()
    if len(shards) == 1:
        save_file(shards[0], str(folder / SINGLE_FILE), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / INDEX_FILE).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))


#: file patterns of every weight-like file a checkpoint folder may hold (only safetensors are ever loaded)
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")


def weight_like_files(path: str | os.PathLike) -> list[Path]:
    """Every weight-like file directly inside a folder (:data:`WEIGHT_PATTERNS`), sorted by name."""
    folder = Path(path)
    return sorted(p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern))


def fingerprint(path: str | os.PathLike, files: Optional[Iterable[Path]] = None, sample_bytes: int = 1 << 20) -> str:
    """16 hex digits of sha256 over the folder's JSON files (configs, tokenizer files; ``config.json`` as
    canonical JSON) and, for each weight file, its name, size and its first and last ``sample_bytes``
    (safetensors headers hold every tensor's name, dtype, shape and offsets). Cheap on 16 GB checkpoints;
    ``files`` defaults to :func:`weight_like_files`."""
    folder = Path(path)
    h = hashlib.sha256()
    for meta in sorted(folder.glob("*.json")):
        data = meta.read_bytes()
        if meta.name == "config.json":
            data = json.dumps(json.loads(data), sort_keys=True).encode()
        h.update(meta.name.encode() + b"\0" + data)
    for file in sorted(files) if files is not None else weight_like_files(folder):
        size = file.stat().st_size
        h.update(f"{file.name}:{size}".encode())
        with open(file, "rb") as fh:
            h.update(fh.read(sample_bytes))
            if size > sample_bytes:
                fh.seek(max(size - sample_bytes, sample_bytes))
                h.update(fh.read(sample_bytes))
    return h.hexdigest()[:16]


def _resolve_dtype(dtype) -> Optional[torch.dtype]:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
    return names[dtype]


def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    s = size.strip().upper()
    for unit, mult in units.items():
        if s.endswith(unit):
            return int(float(s[: -len(unit)]) * mult)
    return int(s)
