"""CLIP score for text-to-image generation, computed directly with open_clip (offline only).

Public API:
    ClipScorer(model_name="ViT-L-14", checkpoint=None, device="cpu", pretrained="openai",
               cache_dir=None, batch_size=32)
    ClipScorer.from_dir(folder, device="cpu", batch_size=32)   a local open_clip folder (open_clip_config.json
                                                              + weights [+ tokenizer files]), open_clip's
                                                              own ``local-dir:`` loader
        .score(images, prompts) -> list[float]     per image 100 * max(cos(E_img, E_txt), 0)
        .mean_score(images, prompts) -> float      mean of the per-image scores
    clip_scores_from_embeddings(image_embeds, text_embeds) -> Tensor   the formula on raw embeddings
    resolve_clip_checkpoint(model_name, pretrained, checkpoint=None, cache_dir=None) -> Path

Formula (benchmark_protocols.md section 6): torchmetrics' ``100 * cos`` on L2-normalised CLIP embeddings with
``max(., 0)``; MMaDA calls it once per image, so the clamp is applied per image, before the mean.
Weights come from ``checkpoint`` (a local file) or, for a known ``pretrained`` tag, from a file already in the
Hugging Face / open_clip download cache. Nothing is ever downloaded: a missing file raises
ScorerWeightsMissing naming ``--clip-checkpoint`` (``--clip-dir`` for a folder).
"""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Sequence

import torch

from .scorer_weights import ScorerWeightsMissing, require_file, to_pil_image

DEFAULT_MODEL = "ViT-L-14"
DEFAULT_PRETRAINED = "openai"
CHECKPOINT_FLAG = "--clip-checkpoint"
DIR_FLAG = "--clip-dir"
DIR_CONFIG = "open_clip_config.json"
#: weight files open_clip's local-dir loader looks for, in its order of preference
DIR_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin")
_TORCHSCRIPT_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


def clip_scores_from_embeddings(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Per-pair CLIP score ``100 * max(cos, 0)`` of row-aligned image and text embeddings (float32 [N])."""
    if image_embeds.shape != text_embeds.shape:
        raise ValueError(f"embedding shapes differ: images {tuple(image_embeds.shape)}, texts {tuple(text_embeds.shape)}")
    image_embeds = torch.nn.functional.normalize(image_embeds.float(), dim=-1)
    text_embeds = torch.nn.functional.normalize(text_embeds.float(), dim=-1)
    cosine = (image_embeds * text_embeds).sum(dim=-1)
    return 100.0 * cosine.clamp(min=0.0)


def _cached_tag_files(pretrained_cfg: dict, cache_dir: str | None) -> list[Path]:
    """Paths where open_clip would have stored the weights of a pretrained tag (existing ones only)."""
    found: list[Path] = []
    if pretrained_cfg.get("file"):
        found.append(Path(pretrained_cfg["file"]))
    hf_hub = pretrained_cfg.get("hf_hub", "")
    if hf_hub:
        from huggingface_hub import try_to_load_from_cache  # huggingface_hub: loaded only to look in the offline cache

        repo_id, filename = os.path.split(hf_hub)  # "org/name/" -> ("org/name", ""): open_clip's default file
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        for name in names:
            for directory in {cache_dir, None}:
                hit = try_to_load_from_cache(repo_id, name, cache_dir=directory)
                if isinstance(hit, str):
                    found.append(Path(hit))
    url = pretrained_cfg.get("url", "")
    if url:
        for directory in {cache_dir, os.path.expanduser("~/.cache/clip")} - {None}:
            found.append(Path(directory) / os.path.basename(url))
    return [path for path in found if path.is_file()]


def resolve_clip_checkpoint(
    model_name: str, pretrained: str | None, checkpoint: str | Path | None = None, cache_dir: str | None = None
) -> Path:
    """Local weight file for ``model_name``: ``checkpoint`` if given, else the offline cache of the ``pretrained`` tag."""
    if checkpoint is not None:
        if Path(checkpoint).expanduser().is_dir():
            raise ValueError(f"{CHECKPOINT_FLAG} {checkpoint} is a folder; a whole open_clip folder (open_clip_config.json "
                             f"+ weights) goes to {DIR_FLAG}")
        return require_file(checkpoint, f"CLIP checkpoint for {model_name}", CHECKPOINT_FLAG)
    import open_clip  # open_clip: loaded when images are scored

    if not pretrained:
        raise ScorerWeightsMissing(f"no CLIP weights given for {model_name}: set {CHECKPOINT_FLAG} to a local file")
    if os.path.isfile(pretrained):
        return Path(pretrained)
    pretrained_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not pretrained_cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise ValueError(f"unknown open_clip pretrained tag {pretrained!r} for {model_name}; known tags: {tags}")
    hits = _cached_tag_files(pretrained_cfg, cache_dir)
    if not hits:
        raise ScorerWeightsMissing(
            f"CLIP weights {model_name}/{pretrained} are not in the local cache (looked for hub repo "
            f"{pretrained_cfg.get('hf_hub') or '-'} and {os.path.basename(pretrained_cfg.get('url', '')) or '-'} "
            f"under {cache_dir or '~/.cache/clip'}). Download them on a machine with internet and pass "
            f"{CHECKPOINT_FLAG} /path/to/weights (open_clip_model.safetensors, open_clip_pytorch_model.bin or the "
            "OpenAI .pt); scorers never download."
        )
    return hits[0]


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    """Strictly load ``path`` (state dict, safetensors or OpenAI TorchScript archive) into an open_clip model."""
    import open_clip  # open_clip: loaded when images are scored

    if _is_torchscript_archive(path):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.load deprecation notice
            state_dict = torch.jit.load(str(path), map_location="cpu").state_dict()
        # scripted modules also export non-persistent buffers (e.g. the text attn_mask): not weights
        non_persistent = {name for name, _ in model.named_buffers()} - set(model.state_dict())
        for key in (*_TORCHSCRIPT_EXTRA_KEYS, *non_persistent):
            state_dict.pop(key, None)
        model.load_state_dict(state_dict, strict=True)
    else:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)


class ClipScorer:
    """CLIP score with an open_clip backbone loaded from local weights only."""
    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        checkpoint: str | Path | None = None,
        device: str | torch.device = "cpu",
        pretrained: str | None = DEFAULT_PRETRAINED,
        cache_dir: str | None = None,
        batch_size: int = 32,
    ) -> None:
        import open_clip  # open_clip: loaded when images are scored
        from open_clip.transform import (  # open_clip: loaded when images are scored
            PreprocessCfg,
            image_transform_v2,
            merge_preprocess_dict,
        )

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if open_clip.get_model_config(model_name) is None:
            raise ValueError(f"unknown open_clip model {model_name!r}; known: {open_clip.list_models()}")
        weights = resolve_clip_checkpoint(model_name, pretrained, checkpoint, cache_dir)
        tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained) if pretrained else {}
        # OpenAI weights were trained with QuickGELU; the built-in "ViT-L-14" config says GELU.
        model = open_clip.create_model(
            model_name, pretrained=None, device="cpu", force_quick_gelu=bool(tag_cfg.get("quick_gelu", False))
        )
        _load_weights(model, weights)
        preprocess_cfg = merge_preprocess_dict(open_clip.get_model_preprocess_cfg(model), tag_cfg)
        self._set_parts(model, image_transform_v2(PreprocessCfg(**preprocess_cfg), is_train=False),
                        open_clip.get_tokenizer(model_name), weights, device, batch_size)

    @classmethod
    def from_dir(cls, folder: str | Path, device: str | torch.device = "cpu", batch_size: int = 32) -> ClipScorer:
        """A scorer from a local open_clip folder, loaded by open_clip's ``local-dir:`` schema (weights strict)."""
        import open_clip  # open_clip: loaded when images are scored

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        folder = Path(folder).expanduser()
        require_file(folder / DIR_CONFIG, "open_clip config of the CLIP folder", DIR_FLAG)
        weights = next((folder / name for name in DIR_WEIGHTS if (folder / name).is_file()), None)
        if weights is None:  # open_clip would only warn and return a random model
            raise ScorerWeightsMissing(f"CLIP folder {folder} has no weights ({' / '.join(DIR_WEIGHTS)}); point "
                                       f"{DIR_FLAG} at a folder holding one (scorers never download weights)")
        name = f"local-dir:{folder}"
        model, _, preprocess = open_clip.create_model_and_transforms(name, device="cpu")
        scorer = cls.__new__(cls)
        scorer._set_parts(model, preprocess, open_clip.get_tokenizer(name), weights, device, batch_size)
        return scorer

    def _set_parts(self, model, preprocess, tokenizer, weights: Path, device, batch_size: int) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.checkpoint_path = weights
        self.preprocess = preprocess
        self.tokenizer = tokenizer

    @torch.inference_mode()
    def embed(self, images: Sequence[Any], prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (unnormalised) image and text embeddings, float32 on CPU, batched."""
        _check_pairs(images, prompts)
        image_chunks, text_chunks = [], []
        for start in range(0, len(prompts), self.batch_size):
            stop = start + self.batch_size
            pixels = torch.stack([self.preprocess(to_pil_image(im)) for im in images[start:stop]]).to(self.device)
            tokens = self.tokenizer(list(prompts[start:stop])).to(self.device)
            image_chunks.append(self.model.encode_image(pixels).float().cpu())
            text_chunks.append(self.model.encode_text(tokens).float().cpu())
        return torch.cat(image_chunks), torch.cat(text_chunks)

    def score(self, images: Sequence[Any], prompts: Sequence[str]) -> list[float]:
        """Per-image CLIP score ``100 * max(cos, 0)`` of each (image, prompt) pair."""
        if len(prompts) == 0 and len(images) == 0:
            return []
        image_embeds, text_embeds = self.embed(images, prompts)
        return clip_scores_from_embeddings(image_embeds, text_embeds).tolist()

    def mean_score(self, images: Sequence[Any], prompts: Sequence[str]) -> float:
        """Mean of the per-image scores (the clamp happens per image, before averaging)."""
        scores = self.score(images, prompts)
        if not scores:
            raise ValueError("cannot average the CLIP score of zero images")
        return sum(scores) / len(scores)


def _check_pairs(images: Sequence[Any], prompts: Sequence[str]) -> None:
    if len(images) != len(prompts):
        raise ValueError(f"got {len(images)} images but {len(prompts)} prompts; pass one prompt per image")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(f"prompt {index} is {type(prompt).__name__}, expected str")
