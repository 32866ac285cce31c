"""ImageReward (THUDM ImageReward-v1.0) re-hosted on transformers' BLIP classes, loaded strictly and offline.

Public API:
    ImageRewardScorer.from_folder(path, device="cpu", tokenizer_dir=None) -> ImageRewardScorer
        folder = ImageReward.pt + med_config.json [+ vision_config.json] [+ tokenizer/ (bert-base-uncased)]
    scorer.score(prompts, images) -> list[float]           one normalised reward per (prompt, image) pair
    scorer.inference_rank(prompt, images) -> (ranks, rewards)   ranks 1-based, 1 = highest reward
    scorer.forward_pairs(prompts, images) -> dict          pixels, input_ids, attention_mask, image_embeds,
                                                            text_cls_features, raw, score (for parity checks)
    preprocess_image(image, size) -> Tensor[3, size, size]  the original torchvision pipeline, PIL only
    map_checkpoint_keys(state_dict) -> dict                 original key names -> this module's key names
    load_imagereward_checkpoint(path) -> dict               torch.load(weights_only=True) or safetensors

Architecture (image-reward 1.5): BLIP ViT (last_hidden_state, post-LayerNorm, every token) -> BERT "med" text
encoder with cross-attention to the image tokens, run bidirectionally (is_decoder=False) -> [CLS] hidden state
-> 5 stacked Linear layers without activations -> (raw - 0.16717362830052426) / 1.0333394966054072.
Nothing is downloaded: missing files raise ScorerWeightsMissing naming ``--imagereward-dir`` /
``--imagereward-tokenizer``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from .scorer_weights import ScorerWeightsMissing, require_file, to_pil_image

REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
MAX_PROMPT_TOKENS = 35
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HEAD_WIDTHS = (1024, 128, 64, 16, 1)
DIR_FLAG = "--imagereward-dir"
TOKENIZER_FLAG = "--imagereward-tokenizer"

# ViT-L/16 of the released ImageReward.pt, used when the folder has no vision_config.json.
ORIGINAL_VISION_CONFIG = {
    "image_size": 224, "patch_size": 16, "width": 1024, "depth": 24, "heads": 16,
    "mlp_ratio": 4.0, "layer_norm_eps": 1e-6, "qkv_bias": True, "hidden_act": "gelu",
}
# Checkpoint keys present in ImageReward.pt that score() never uses (ITC projections, a position-id buffer).
UNUSED_CHECKPOINT_KEYS = re.compile(r"^blip\.(vision_proj|text_proj)\.(weight|bias)$|^blip\.text_encoder\.embeddings\.position_ids$")
_VISION_RENAMES = [
    (re.compile(r"^cls_token$"), "embeddings.class_embedding"),
    (re.compile(r"^pos_embed$"), "embeddings.position_embedding"),
    (re.compile(r"^patch_embed\.proj\.(weight|bias)$"), r"embeddings.patch_embedding.\1"),
    (re.compile(r"^blocks\.(\d+)\.norm([12])\.(weight|bias)$"), r"encoder.layers.\1.layer_norm\2.\3"),
    (re.compile(r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$"), r"encoder.layers.\1.self_attn.qkv.\2"),
    (re.compile(r"^blocks\.(\d+)\.attn\.proj\.(weight|bias)$"), r"encoder.layers.\1.self_attn.projection.\2"),
    (re.compile(r"^blocks\.(\d+)\.mlp\.(fc[12])\.(weight|bias)$"), r"encoder.layers.\1.mlp.\2.\3"),
    (re.compile(r"^norm\.(weight|bias)$"), r"post_layernorm.\1"),
]


class ImageRewardCheckpointError(ValueError):
    """ImageReward.pt does not match the model built from the folder's configs (the message names the key)."""


def _map_key(key: str) -> str | None:
    """Model key for one original checkpoint key; None for keys the scorer deliberately does not use."""
    if UNUSED_CHECKPOINT_KEYS.match(key):
        return None
    if key.startswith("blip.visual_encoder."):
        rest = key[len("blip.visual_encoder."):]
        for pattern, replacement in _VISION_RENAMES:
            if pattern.match(rest):
                return "vision." + pattern.sub(replacement, rest)
    elif key.startswith("blip.text_encoder."):
        return "text." + key[len("blip.text_encoder."):]  # med.py and BlipTextModel share the names
    elif key.startswith("mlp.layers."):
        return "head." + key[len("mlp.layers."):]
    raise ImageRewardCheckpointError(f"checkpoint key {key!r} has no place in the ImageReward model (unknown key)")


def map_checkpoint_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename original ImageReward.pt keys to this module's keys; unknown keys raise, unused ones are dropped."""
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        target = _map_key(key)
        if target is not None:
            mapped[target] = tensor
    return mapped


def load_imagereward_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read ImageReward.pt (``torch.load(weights_only=True)``) or a .safetensors file as a flat state dict."""
    path = require_file(path, "ImageReward checkpoint", DIR_FLAG)
    if path.suffix == ".safetensors":
        state_dict = load_file(str(path), device="cpu")
    else:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state_dict, dict) and "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ImageRewardCheckpointError(f"{path} is not a flat state dict of tensors")
    return dict(state_dict)


def preprocess_image(image: Any, size: int) -> torch.Tensor:
    """Original ImageReward transform: bicubic resize of the short side, center crop, RGB, [0,1], CLIP mean/std.

    Resizing happens in the image's own mode (RGBA premultiplied, palette images NEAREST, as PIL does) and the
    RGB conversion comes after the crop, exactly like torchvision's ``Compose`` in image-reward 1.5.
    """
    image = to_pil_image(image)
    width, height = image.size
    if width <= height:
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    if new_size != (width, height):
        image = image.resize(new_size, Image.BICUBIC)
    left = int(round((new_size[0] - size) / 2.0))
    top = int(round((new_size[1] - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    pixels = pixels.to(torch.float32).div(255)
    mean = torch.as_tensor(CLIP_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.as_tensor(CLIP_STD, dtype=torch.float32)[:, None, None]
    return pixels.sub(mean).div(std)


def _vision_config(values: dict):
    from transformers import BlipVisionConfig  # transformers is slow to import: loaded on use

    if "hf_blip_vision_config" in values:
        return BlipVisionConfig(**values["hf_blip_vision_config"])
    if not values.get("qkv_bias", True):
        raise ValueError("vision_config.json: qkv_bias=false is not supported by BlipVisionModel")
    width = int(values["width"])
    return BlipVisionConfig(
        hidden_size=width,
        intermediate_size=int(values.get("intermediate_size") or width * values.get("mlp_ratio", 4.0)),
        num_hidden_layers=int(values["depth"]),
        num_attention_heads=int(values["heads"]),
        image_size=int(values["image_size"]),
        patch_size=int(values["patch_size"]),
        layer_norm_eps=float(values.get("layer_norm_eps", 1e-6)),
        hidden_act=values.get("hidden_act", "gelu"),
        attention_dropout=0.0,
    )


def _text_config(med: dict, vision_width: int):
    from transformers import BlipTextConfig  # transformers is slow to import: loaded on use

    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "max_position_embeddings", "layer_norm_eps", "hidden_act", "pad_token_id")
    missing = [k for k in keys if k not in med]
    if missing:
        raise ValueError(f"med_config.json lacks {missing}")
    return BlipTextConfig(
        **{k: med[k] for k in keys},
        encoder_hidden_size=vision_width,  # cross-attention K/V project from the vision width
        is_decoder=True,  # only so that the cross-attention blocks are built; forward runs with is_decoder=False
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        bos_token_id=None,
        sep_token_id=None,
        eos_token_id=None,
    )


class ImageRewardModel(nn.Module):
    """BLIP ViT + cross-attention BERT + linear head; ``forward`` returns the raw (unnormalised) reward."""
    def __init__(self, vision_config, text_config) -> None:
        super().__init__()
        from transformers import BlipTextModel, BlipVisionModel  # transformers is slow to import: loaded on use

        self.vision = BlipVisionModel(vision_config)
        self.text = BlipTextModel(text_config, add_pooling_layer=False)
        widths = (text_config.hidden_size,) + HEAD_WIDTHS
        self.head = nn.Sequential(
            nn.Linear(widths[0], widths[1]), nn.Dropout(0.2),
            nn.Linear(widths[1], widths[2]), nn.Dropout(0.2),
            nn.Linear(widths[2], widths[3]), nn.Dropout(0.1),
            nn.Linear(widths[3], widths[4]),
            nn.Linear(widths[4], widths[5]),
        )

    def image_embeds(self, pixels: torch.Tensor) -> torch.Tensor:
        """ViT output after the final LayerNorm, every token: [B, 1 + patches, vision width]."""
        return self.vision(pixel_values=pixels).last_hidden_state

    def text_cls_features(self, input_ids, attention_mask, image_embeds) -> torch.Tensor:
        """[CLS] hidden state of the text encoder cross-attending to the image tokens: [B, text hidden]."""
        image_mask = torch.ones(image_embeds.shape[:2], dtype=torch.long, device=image_embeds.device)
        out = self.text(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_mask,
            is_decoder=False,
        )
        return out.last_hidden_state[:, 0, :]

    def load_original_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Strict load of an original ImageReward state dict: every checkpoint key used, every model key filled."""
        mapped = map_checkpoint_keys(state_dict)
        expected = self.state_dict()
        missing = [k for k in expected if k not in mapped]
        if missing:
            raise ImageRewardCheckpointError(
                f"checkpoint leaves model key {missing[0]!r} empty ({len(missing)} missing in all: {missing[:5]})"
            )
        extra = [k for k in mapped if k not in expected]
        if extra:
            raise ImageRewardCheckpointError(
                f"checkpoint key for {extra[0]!r} does not exist in the model built from the configs "
                f"({len(extra)} unexpected in all: {extra[:5]}); check depth/layers in the config files"
            )
        for key, tensor in mapped.items():
            if tensor.shape != expected[key].shape:
                raise ImageRewardCheckpointError(
                    f"shape mismatch for {key!r}: checkpoint {tuple(tensor.shape)}, model {tuple(expected[key].shape)}"
                    " (the config files do not describe this checkpoint)"
                )
        self.load_state_dict(mapped, strict=True)


def load_tokenizer(tokenizer_dir: str | Path | None, vocab_size: int):
    """bert-base-uncased tokenizer from a local folder (or the offline HF cache) with [DEC]/[ENC] added."""
    from transformers import BertTokenizer  # transformers is slow to import: loaded on use

    try:
        if tokenizer_dir is not None:
            folder = Path(tokenizer_dir)
            if not (folder / "vocab.txt").is_file() and not (folder / "tokenizer.json").is_file():
                raise OSError(f"no vocab.txt or tokenizer.json in {folder}")
            tokenizer = BertTokenizer.from_pretrained(str(folder), local_files_only=True)
        else:
            tokenizer = BertTokenizer.from_pretrained("bert-base-uncased", local_files_only=True)
    except (OSError, ValueError) as error:
        where = tokenizer_dir if tokenizer_dir is not None else "the offline Hugging Face cache (bert-base-uncased)"
        raise ScorerWeightsMissing(
            f"ImageReward tokenizer not found in {where} ({error}). Put a bert-base-uncased tokenizer folder "
            f"(vocab.txt + tokenizer_config.json) at <imagereward dir>/tokenizer or pass {TOKENIZER_FLAG} /path"
        ) from error
    # as BLIP's init_tokenizer(): [DEC] as bos, then [ENC] as an additional special token
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    if len(tokenizer) != vocab_size:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens after adding [DEC]/[ENC] but med_config.json says vocab_size="
            f"{vocab_size}; the tokenizer does not belong to this checkpoint"
        )
    return tokenizer


class ImageRewardScorer:
    """Normalised ImageReward scores for (prompt, image) pairs, float32."""
    def __init__(self, model: ImageRewardModel, tokenizer, image_size: int, device="cpu", batch_size: int = 16):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.batch_size = batch_size

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        tokenizer_dir: str | Path | None = None,
        batch_size: int = 16,
    ) -> "ImageRewardScorer":
        """Build from a folder with ImageReward.pt, med_config.json, optional vision_config.json and tokenizer/."""
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ScorerWeightsMissing(
                f"ImageReward folder {folder} does not exist; pass {DIR_FLAG} pointing at a folder with "
                "ImageReward.pt and med_config.json (from THUDM/ImageReward)"
            )
        checkpoint = require_file(folder / "ImageReward.pt", "ImageReward weights", DIR_FLAG)
        med = json.loads(require_file(folder / "med_config.json", "ImageReward med_config.json", DIR_FLAG).read_text())
        vision_file = folder / "vision_config.json"
        vision_values = json.loads(vision_file.read_text()) if vision_file.is_file() else ORIGINAL_VISION_CONFIG
        vision_config = _vision_config(vision_values)
        text_config = _text_config(med, vision_config.hidden_size)
        if tokenizer_dir is None and (folder / "tokenizer").is_dir():
            tokenizer_dir = folder / "tokenizer"
        tokenizer = load_tokenizer(tokenizer_dir, text_config.vocab_size)
        model = ImageRewardModel(vision_config, text_config)
        model.load_original_state_dict(load_imagereward_checkpoint(checkpoint))
        image_size = int(vision_values.get("preprocess_size", vision_config.image_size))
        return cls(model, tokenizer, image_size, device=device, batch_size=batch_size)

    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids and attention_mask, padded and truncated to 35 tokens as in ImageReward.score()."""
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"prompt {index} is {type(prompt).__name__}, expected str")
        encoded = self.tokenizer(
            list(prompts), padding="max_length", truncation=True, max_length=MAX_PROMPT_TOKENS, return_tensors="pt"
        )
        return encoded["input_ids"], encoded["attention_mask"]

    @torch.inference_mode()
    def forward_pairs(self, prompts: Sequence[str], images: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Every intermediate for row-aligned (prompt, image) pairs, computed in batches; float32 on CPU."""
        if len(prompts) != len(images):
            raise ValueError(f"got {len(prompts)} prompts but {len(images)} images; pass one prompt per image")
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, len(prompts), self.batch_size):
            stop = start + self.batch_size
            pixels = torch.stack([preprocess_image(im, self.image_size) for im in images[start:stop]])
            input_ids, attention_mask = self.tokenize(prompts[start:stop])
            image_embeds = self.model.image_embeds(pixels.to(self.device))
            features = self.model.text_cls_features(
                input_ids.to(self.device), attention_mask.to(self.device), image_embeds
            )
            raw = self.model.head(features)[:, 0]
            batch = {
                "pixels": pixels, "input_ids": input_ids, "attention_mask": attention_mask,
                "image_embeds": image_embeds, "text_cls_features": features, "raw": raw,
                "score": (raw - REWARD_MEAN) / REWARD_STD,
            }
            for name, value in batch.items():
                parts.setdefault(name, []).append(value.cpu())
        if not parts:
            return {}
        return {name: torch.cat(values) for name, values in parts.items()}

    def score(self, prompts: Sequence[str], images: Sequence[Any]) -> list[float]:
        """Normalised ImageReward of each (prompt, image) pair; images: PIL images, paths or uint8 arrays."""
        if len(prompts) == 0 and len(images) == 0:
            return []
        return self.forward_pairs(prompts, images)["score"].tolist()

    def inference_rank(self, prompt: str, images: Sequence[Any]) -> tuple[list[int], list[float]]:
        """Rewards of several images for one prompt and their 1-based ranks (1 = best), as the original does."""
        if not images:
            raise ValueError("inference_rank needs at least one image")
        rewards = self.forward_pairs([prompt] * len(images), images)["score"]
        order = torch.sort(rewards, descending=True).indices
        ranks = torch.sort(order).indices + 1
        return ranks.tolist(), rewards.tolist()
