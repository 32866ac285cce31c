"""Image generation for the t2i tasks: batched MaskGIT sampling through an MMaDA model, PNG files, contact sheet.

Every row of a batch draws from its own generator seeded with the item's seed and is decoded alone, so an
item's image does not depend on which other prompts share its batch (on CPU float32 the PNGs are byte-equal;
other devices / dtypes may reorder floating-point reductions). PNGs are written atomically and carry their prompt, seed,
item id and preset as PNG text chunks; ``metadata.jsonl`` beside them lists the same per image.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from mmada_bench.results.store import atomic_write_bytes
from mmada_ref.prompting import Prompting
from mmada_ref.sampling.contact_sheet import contact_sheet
from mmada_ref.sampling.image import generate_images

#: text prefix length of the t2i rows: the official 512 (demo / app.py / stage-3 configs, max_seq_length)
MAX_TEXT_LEN = 512
#: at most this many images go on a run's contact sheet (the first ones in item order)
CONTACT_SHEET_LIMIT = 64


class NotAnImageModel(ValueError):
    """The model cannot generate images (it is not an MMaDA checkpoint with a MAGVIT tokenizer)."""


@dataclass
class GeneratedBatch:
    """PIL images of one batch with the sampler's accounting."""
    images: list
    nfe: int
    latency_s: float  # wall time of the batch divided by its size
    image_tokens: int


def check_image_model(model) -> None:
    """Raise :class:`NotAnImageModel` unless ``model`` has the MMaDA adapter's image-generation parts."""
    missing = [a for a in ("model", "tokenizer", "tokens", "vq_model") if not hasattr(model, a)]
    if missing:
        raise NotAnImageModel(f"model {getattr(model, 'name', model)!r} ({getattr(model, 'family', '?')}) cannot "
                              f"generate images (no {', '.join(missing)}); text-to-image tasks need an MMaDA "
                              "checkpoint folder with magvitv2/ (--model DIR)")


def generate_batch(model, prompts: Sequence[str], seeds: Sequence[int], preset,
                   max_text_len: Optional[int] = None) -> GeneratedBatch:
    """Generate one image per prompt with ``preset``'s MaskGIT settings; row ``i`` draws from seed ``seeds[i]``.

    ``max_text_len`` defaults to :data:`MAX_TEXT_LEN` (read at call time)."""
    import torch  # torch and the samplers load only when images are generated


    if preset.kind != "image":
        raise ValueError(f"preset {preset.name!r} is a {preset.kind} preset; text-to-image needs an image preset")
    device = next(model.model.parameters()).device
    generators = [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]
    n_tokens = int(model.model.config.num_vq_tokens)
    start = time.perf_counter()
    out = generate_images(model.model, RowWiseDecoder(model.vq_model()), Prompting(model.tokens, max_text_len or MAX_TEXT_LEN), list(prompts),
                          preset.settings, tokenizer=model.tokenizer, generator=generators, num_vq_tokens=n_tokens)
    elapsed = time.perf_counter() - start
    return GeneratedBatch(out.images, out.stats.nfe, elapsed / len(prompts), n_tokens)


class RowWiseDecoder:
    """A MAGVIT whose ``decode_code`` decodes one image at a time: batched convolutions round differently,
    and an image's pixels should not depend on its batch."""

    def __init__(self, magvit):
        self.magvit = magvit
        self.codebook_size = magvit.codebook_size

    def decode_code(self, codes, shape=None):
        import torch  # only reached while generating (torch already loaded)

        return torch.cat([self.magvit.decode_code(codes[i: i + 1], shape) for i in range(codes.shape[0])])


def image_filename(index: int, item_id: str) -> str:
    """``<index:05d>_<item id, file-name safe>.png`` (the index keeps names unique and in item order)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", item_id).strip("-.")[:60] or "item"
    return f"{index:05d}_{safe}.png"


def save_png(image, path: Path, text: dict) -> str:
    """Write ``image`` as a PNG with ``text`` as tEXt chunks (atomic); returns the file's sha256."""
    info = PngInfo()
    for key, value in text.items():
        info.add_itxt(key, str(value))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def write_metadata(records: list[dict], path: Path) -> Path:
    """``metadata.jsonl``: one line per stored image (file, item id, prompt, seed, preset, sha256)."""
    lines = []
    for r in records:
        stats = r.get("stats") or {}
        if stats.get("image_file"):
            lines.append(json.dumps({"file": stats["image_file"], "item_id": r["item_id"], "index": r["index"],
                                     "prompt": r["prompt"], "seed": stats.get("seed"), "preset": stats.get("preset"),
                                     "sha256": stats.get("sha256")}, ensure_ascii=False))
    atomic_write_bytes(path, ("\n".join(lines) + ("\n" if lines else "")).encode())
    return path


def write_contact_sheet(records: list[dict], image_dir: Path, path: Path,
                        limit: int = CONTACT_SHEET_LIMIT) -> Optional[Path]:
    """One PNG grid of the first ``limit`` stored images with ``id: prompt`` captions (None if there are none)."""
    images, captions = [], []
    for r in records:
        file = (r.get("stats") or {}).get("image_file")
        if not file or not (image_dir / file).is_file() or len(images) >= limit:
            continue
        with Image.open(image_dir / file) as opened:
            images.append(opened.convert("RGB"))
        captions.append(f"{r['item_id']}: {r['prompt']}")
    if not images:
        return None
    side = max(max(im.size) for im in images)
    return contact_sheet(images, captions, path, tile_size=min(256, max(128, side)))
