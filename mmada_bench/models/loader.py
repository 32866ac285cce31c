"""Resolve ``--model`` into an :class:`~mmada_bench.models.base.EvalModel`.

* a registered family name, optionally with options: ``dummy``, ``dummy:delay=0.1``;
* a checkpoint folder: its ``config.json`` picks the family (``model_type: mmada`` -> ``mmada``,
  loaded lazily from :mod:`mmada_bench.models.mmada`);
* nothing: the packaged default, ``mmada_bench/assets/mmada-world/`` (a built shapes-world model) or else
  ``mmada_bench/assets/mmada-smoke/`` (falls back to the dummy model, with a warning, while neither is there).
  Both are labelled: a checkpoint folder whose ``harness_defaults.json`` has a ``label`` (or that holds
  ``SMOKE_MODEL.md``) is never a benchmark result.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from mmada_bench.models.defaults import read_defaults
from mmada_bench.models.smoke import DEFAULT_MODEL_DIR, SMOKE_LABEL, SMOKE_MARKER
from mmada_bench.registry import MODELS
from mmada_ref.checkpoint import weight_like_files

# config.json "model_type" (or an architectures entry) -> registered family
FAMILY_BY_MODEL_TYPE = {"mmada": "mmada", "llada": "llada"}
# families whose weights are only ever read from safetensors
SAFETENSORS_FAMILIES = {"mmada", "llada"}
# any other model_type that transformers maps to AutoModelForCausalLM (llama, qwen2, ...) -> "hf-causal"
HF_CAUSAL_FAMILY = "hf-causal"


class ModelLoadError(ValueError):
    """``--model`` could not be turned into a model; the message says why and how to fix it."""


def detect_family(folder: Path) -> str:
    """Family of a checkpoint folder from its config.json."""
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ModelLoadError(f"{folder} has no config.json; pass a checkpoint folder (config.json + "
                             f"*.safetensors) or a model name ({', '.join(MODELS.names())})")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{config_path} is not valid JSON ({exc}); re-download or fix the file") from None
    model_type = str(config.get("model_type", "")).lower()
    archs = " ".join(config.get("architectures") or []).lower()
    for key, family in FAMILY_BY_MODEL_TYPE.items():
        if model_type == key or key in archs:
            return family
    if _is_hf_causal(model_type):
        return HF_CAUSAL_FAMILY
    raise ModelLoadError(f"{config_path}: unknown model_type {model_type!r}; known: "
                         f"{', '.join(sorted(FAMILY_BY_MODEL_TYPE))} or any transformers causal LM type (hf-causal)")


#: --dtype choices; "auto" = bfloat16 on CUDA (as every official run), float32 elsewhere
DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_dtype(dtype: str, device: str) -> str:
    """The concrete dtype of ``--dtype`` on ``device`` (what the manifest records)."""
    if dtype == "auto":
        return "bfloat16" if str(device).startswith("cuda") else "float32"
    return dtype


def family_of(spec: str | None) -> str:
    """The model family ``spec`` would load as, without loading it (the smoke default is an MMaDA checkpoint)."""
    if spec is None:
        return FAMILY_BY_MODEL_TYPE["mmada"]
    folder = Path(spec).expanduser()
    return detect_family(folder) if folder.is_dir() else spec.split(":", 1)[0]


def model_folder(spec: str | None) -> Path | None:
    """The checkpoint folder ``spec`` names (the packaged default for None), or None for a named model."""
    if spec is None:
        return DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / "config.json").exists() else None
    folder, _ = split_folder_spec(spec)
    return folder


def resolve_model(spec: str | None, *, device: str = "cpu", dtype: str = "float32", **options):
    """Return a loaded model for ``spec`` (name, name:options, folder, or None for the default)."""
    if spec is None:
        if (DEFAULT_MODEL_DIR / "config.json").exists():
            model = resolve_model(str(DEFAULT_MODEL_DIR), device=device, dtype=dtype, **options)
            model.is_smoke = True  # a demo model, never shown as a benchmark result (its label says which)
            return model
        warnings.warn(f"no --model given and the packaged checkpoint {DEFAULT_MODEL_DIR.name} is missing: using the "
                      "dummy model (results are labelled smoke)", stacklevel=2)
        return MODELS.get("dummy")("dummy", device=device, dtype=dtype, name="dummy-smoke", is_smoke=True)
    check_device(device)
    folder, folder_options = split_folder_spec(spec)
    if folder is not None:
        family = detect_family(folder)
        files = weight_like_files(folder)
        if not files:
            raise ModelLoadError(f"checkpoint folder {folder} has a config.json but no weights (*.safetensors); "
                                 f"download the weight files into it or point --model at the full checkpoint")
        if family in SAFETENSORS_FAMILIES and not any(f.suffix == ".safetensors" for f in files):
            raise ModelLoadError(f"{folder} holds only {', '.join(sorted({f.suffix for f in files}))} weights; only "
                                 "safetensors are loaded (never unpickled): convert them, e.g. with "
                                 "safetensors.torch.save_file(torch.load(..., weights_only=True), 'model.safetensors')")
        try:
            model = _family(family)(str(folder), device=device, dtype=dtype, **folder_options, **options)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - every checkpoint fault becomes one actionable line
            raise ModelLoadError(f"cannot load the checkpoint {folder}: {type(exc).__name__}: {_first_line(exc)}; "
                                 "check its config.json, weights and tokenizer files") from None
        label = read_defaults(folder).label or (SMOKE_LABEL if (folder / SMOKE_MARKER).is_file() else "")
        if label:  # a packaged / demo checkpoint, however it was passed: never a benchmark result
            model.is_smoke, model.label = True, label
        return model
    family = spec.split(":", 1)[0]
    if family in MODELS.names():
        return _family(family)(spec, device=device, dtype=dtype, **options)
    raise ModelLoadError(f"--model {spec!r} is neither a checkpoint folder nor a known model "
                         f"({', '.join(MODELS.names())}); check the path")


def split_folder_spec(spec: str) -> tuple[Path | None, dict]:
    """``DIR`` or ``DIR:key=value,...`` -> (folder, options); (None, {}) when ``spec`` names no folder."""
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return folder, {}
    head, sep, tail = spec.partition(":")
    if sep and Path(head).expanduser().is_dir():
        options = {}
        for part in filter(None, tail.split(",")):
            key, eq, value = part.partition("=")
            if not eq:
                raise ModelLoadError(f"--model {spec!r}: option {part!r} is not key=value (e.g. DIR:vq_model=PATH)")
            options[key] = value
        return Path(head).expanduser(), options
    return None, {}


def check_device(device: str) -> None:
    """A CUDA device that is not there is an error before anything loads."""
    if str(device).startswith("cuda"):
        import torch  # torch: loaded only when a model runs

        index = int(str(device).partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ModelLoadError(f"--device {device}: no such CUDA device is visible "
                                 f"({torch.cuda.device_count()} GPU(s)); use --device cpu or check CUDA_VISIBLE_DEVICES")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def _is_hf_causal(model_type: str) -> bool:
    """True when transformers knows ``model_type`` as a causal LM (AutoModelForCausalLM)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,  # transformers is slow to import: loaded on use
    )

    return bool(model_type) and model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def _family(name: str):
    """The registered loader of family ``name``; a missing adapter module is a clear error."""
    try:
        return MODELS.get(name)
    except ModuleNotFoundError as exc:
        raise ModelLoadError(f"the {name!r} model adapter is not available ({exc}); install the full "
                             f"mmada-bench package or update your checkout") from None
