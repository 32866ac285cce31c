"""Training data: jsonl / parquet mixtures and the assembly of noised :class:`UnifiedBatch` es.

Row schemas (one file = one kind, named in the stage config's ``data.sources``):

* ``text``: ``{"text": ...}`` (plain pretraining text) or ``{"prompt": ..., "response": ...}``; for the
  thinking format also ``{"prompt", "reasoning", "answer"}`` -> ``<think> reasoning </think> answer``.
* ``mmu``: ``{"image": path}`` or ``{"image_codes": [...]}`` + ``{"question", "answer"}`` (or ``reasoning``).
* chat rows (``text`` under ``lm_format: chat``, ``mmu``) may carry ``chat_eot`` (the end-of-turn string of that
  row's prompt, e.g. ``"<eot_id>"`` for the VLMEvalKit layout); a plain ``{"text"}`` row in a chat stage stays plain.
* ``t2i``: ``{"caption": ...}`` + ``{"image": path}`` or ``{"image_codes": [...]}``; a ``reasoning``
  field makes it a reasoning-before-image row (the caption prompt is followed by ``<think> ... </think>``).

Image codes are MAGVIT-v2 indices ``0..K-1``; image files are encoded with the MAGVIT folder of the stage.
"""
from __future__ import annotations

import json
import math
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandas as pd
import torch

from ..image_processing import load_image, preprocess_images
from ..jsonl import JSONLError, parse_lines
from ..magvit import MAGVITv2
from ..prompting import Prompting
from ..text_tokenizer import THINK_SYSTEM_PROMPT, format_chat
from ..tokens import SpecialTokens
from .objective import (
    LossCoefficients,
    UnifiedBatch,
    condition_dropout,
    mask_image,
    mask_text,
    target_weights,
)
from .stages import DataSection, ObjectiveSection, SourceSection


def read_rows(path: str | Path) -> list[dict]:
    """All rows of a ``.jsonl`` / ``.json`` (list) / ``.parquet`` file as dicts."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found (check data.sources in the stage config)")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = parse_lines(path.read_bytes())
        bad = next((r for r in rows if isinstance(r, JSONLError)), None)
        if bad is not None:
            raise ValueError(f"{path}:{bad.line_no}: {bad}")
    elif suffix == ".json":
        rows = json.loads(path.read_text())
    elif suffix == ".parquet":
        rows = pd.read_parquet(path).to_dict("records")
    else:
        raise ValueError(f"{path}: unsupported data format {suffix!r} (use .jsonl, .json or .parquet)")
    if not rows:
        raise ValueError(f"{path} has no rows")
    return rows


class Mixture:
    """Weighted sampling of rows per kind (``text`` / ``mmu`` / ``t2i``) across source files."""
    def __init__(self, sources: Sequence[SourceSection], seed: int = 0):
        self.rng = random.Random(seed)
        self.by_kind: dict[str, list[tuple[SourceSection, list[dict]]]] = {}  # kind -> [(source section, rows)]
        for src in sources:
            self.by_kind.setdefault(src.kind, []).append((src, read_rows(src.path)))

    def sample(self, kind: str, n: int) -> list[dict]:
        """``n`` rows of ``kind``, each from a source drawn by weight."""
        return self.sample_with_sources(kind, n)[0]

    def sample_with_sources(self, kind: str, n: int) -> tuple[list[dict], list]:
        """Like :meth:`sample` (the same draws), with the source section each row came from."""
        if n <= 0:
            return [], []
        if kind not in self.by_kind:
            raise ValueError(f"the batch asks for {n} {kind} row(s) but no data source has kind {kind!r}")
        files = self.by_kind[kind]
        picks = self.rng.choices(files, weights=[float(src.weight) for src, _ in files], k=n)
        return [self.rng.choice(rows) for _, rows in picks], [src for src, _ in picks]

    def sample_any(self, n: int, kinds: Optional[Sequence[str]] = None) -> list[tuple[str, dict]]:
        """``n`` (kind, row) pairs drawn by weight across every source (of ``kinds`` when given)."""
        files = [(kind, src, rows) for kind, entries in self.by_kind.items() for src, rows in entries
                 if kinds is None or kind in kinds]
        if not files:
            raise ValueError(f"no data source of kind {sorted(kinds or [])}")
        picks = self.rng.choices(files, weights=[float(src.weight) for _, src, _ in files], k=n)
        return [(kind, self.rng.choice(rows)) for kind, _, rows in picks]

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        state_rng = state["rng"]
        self.rng.setstate((state_rng[0], tuple(state_rng[1]), state_rng[2]))


def think_response(row: dict) -> str:
    """``<think> reasoning </think> answer`` when the row has ``reasoning``, else its response/answer."""
    if row.get("reasoning"):
        return f"<think> {str(row['reasoning']).strip()} </think> {str(row.get('answer', '')).strip()}"
    for key in ("response", "answer", "caption"):
        if row.get(key) is not None:
            return str(row[key])
    raise ValueError(f"row has no response/answer field: keys {sorted(row)}")


class ImageCodes:
    """MAGVIT codes of a row: ``image_codes`` as given, or an ``image`` file encoded (cached) with MAGVIT-v2."""
    def __init__(self, vq_path: Optional[str], num_vq_tokens: int, device="cpu", codebook_size: Optional[int] = None):
        self.vq_path, self.num_vq_tokens, self.device = vq_path, num_vq_tokens, device
        self.codebook_size = codebook_size
        self._vq, self._cache = None, {}

    def __call__(self, row: dict) -> list[int]:
        if row.get("image_codes") is not None:
            codes = [int(c) for c in row["image_codes"]]
        elif row.get("image") is not None:
            codes = self._encode(str(row["image"]))
        else:
            raise ValueError(f"image row needs 'image_codes' or 'image' (a file path): keys {sorted(row)}")
        if codes and (min(codes) < 0 or (self.codebook_size and max(codes) >= self.codebook_size)):
            raise ValueError(f"image codes must lie in [0, {self.codebook_size}), got {min(codes)}..{max(codes)}: "
                             "give MAGVIT indices, not token ids")
        if len(codes) != self.num_vq_tokens:
            raise ValueError(f"image has {len(codes)} codes, the model expects num_vq_tokens={self.num_vq_tokens}")
        return codes

    def _encode(self, path: str) -> list[int]:
        if path not in self._cache:
            vq = self.magvit("rows with image files")
            side = math.isqrt(self.num_vq_tokens)
            pixels = preprocess_images([load_image(path)], side * vq.config.downsample_factor).to(self.device)
            with torch.no_grad():
                self._cache[path] = vq.get_code(pixels)[0].cpu().tolist()
        return self._cache[path]

    def magvit(self, purpose: str = "image rows"):
        """The MAGVIT-v2 model (loaded on first use)."""
        if self._vq is None:
            if not self.vq_path or not Path(self.vq_path).exists():
                raise FileNotFoundError(f"{purpose} need a MAGVIT-v2 folder: none at {self.vq_path}; "
                                        "set model.vq_model or give image_codes")
            self._vq = MAGVITv2.from_pretrained(self.vq_path).to(self.device).eval()
        return self._vq

    @property
    def has_magvit(self) -> bool:
        return self._vq is not None or bool(self.vq_path and Path(self.vq_path).exists())


@dataclass
class TextFormatter:
    """Turns rows into token ids: chat strings, the thinking format, captions."""
    tokenizer: object
    think_format: bool = False
    chat_eot: str = "<|eot_id|>"

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def user_content(self, question: str) -> str:
        return f"{THINK_SYSTEM_PROMPT}\n{question}" if self.think_format else question

    def prompt_ids(self, question: str, eot: Optional[str] = None) -> list[int]:
        """Chat prompt ending with the assistant header (generation prompt); ``eot`` overrides ``chat_eot``."""
        return self.encode(format_chat([{"role": "user", "content": self.user_content(question)}],
                                       eot=eot or self.chat_eot))

    def chat_ids(self, question: str, response: str, eot: Optional[str] = None) -> list[int]:
        """Prompt + response + end-of-turn (the training string of one exchange); ``eot`` overrides ``chat_eot``."""
        eot = eot or self.chat_eot
        return self.encode(format_chat([{"role": "user", "content": self.user_content(question)}], eot=eot)
                           + response.strip() + eot)

    def row_chat_ids(self, row: dict, question_key: str = "prompt") -> list[int]:
        """:meth:`chat_ids` of a row; a row's own ``chat_eot`` field overrides the stage's."""
        question = row.get(question_key, row.get("prompt", ""))
        return self.chat_ids(str(question), think_response(row), row.get("chat_eot"))

    def text_row(self, row: dict, chat: bool) -> list[int]:
        """Token ids of a text row; under ``chat`` a plain ``{"text"}`` row stays plain (its whole text is the answer)."""
        if not chat or (row.get("prompt") is None and row.get("text") is not None):
            if row.get("text") is not None:
                return self.encode(str(row["text"]))
            return self.encode(str(row.get("prompt", "")) + " " + think_response(row))
        if row.get("prompt") is None:
            raise ValueError(f"chat (lm_format: chat) text rows need prompt/response fields: keys {sorted(row)}")
        return self.row_chat_ids(row)

    def caption(self, row: dict) -> list[int]:
        text = row.get("caption", row.get("prompt"))
        if text is None:
            raise ValueError(f"t2i rows need a 'caption' field: keys {sorted(row)}")
        if row.get("reasoning"):  # reasoning-before-image: the image follows the thought
            text = f"{text} <think> {str(row['reasoning']).strip()} </think>"
        return self.encode(str(text))


def _piece_weights(formatter: TextFormatter, weights: dict) -> dict:
    """``objective.target_weights`` (text piece -> weight) as token id (one-token piece) or tuple of ids (a piece of
    several tokens: only its whole occurrences are weighted) -> weight."""
    by_target = {}
    for piece, weight in weights.items():
        ids = formatter.encode(str(piece))
        if not ids:
            raise ValueError(f"objective.target_weights: {piece!r} encodes to no token; give a non-empty text piece")
        by_target[ids[0] if len(ids) == 1 else tuple(ids)] = float(weight)
    return by_target


class UnifiedBatchBuilder:
    """Samples rows from a :class:`Mixture` and builds a noised :class:`UnifiedBatch` (official layouts)."""
    def __init__(self, mixture: Mixture, tokens: SpecialTokens, formatter: TextFormatter, data: DataSection,
                 objective: ObjectiveSection, num_vq_tokens: int, image_codes: Callable[[dict], list[int]],
                 seed: int = 0):
        self.mixture, self.tokens, self.formatter = mixture, tokens, formatter
        self.data, self.objective, self.N = data, objective, num_vq_tokens
        self.image_codes = image_codes
        self.prompting = Prompting(tokens, data.max_seq_length)
        self.generator = torch.Generator().manual_seed(seed)
        self.lm_length = data.lm_max_length or (data.max_seq_length + 3 + num_vq_tokens)
        self.weight_by_id = {tokens.eos: objective.structural_weight, tokens.eot_id: objective.structural_weight,
                             **_piece_weights(formatter, objective.target_weights)}
        self._warned_truncation: set[str] = set()

    @property
    def coefficients(self) -> LossCoefficients:
        return LossCoefficients(**self.objective.coefficients)

    def next(self) -> UnifiedBatch:
        bs = self.data.batch_size
        batch = UnifiedBatch(t2i_prefix_len=self.data.max_seq_length + 1)
        g, tok, eps = self.generator, self.tokens, self.objective.text_eps
        t2i_rows = self.mixture.sample("t2i", int(bs.get("t2i", 0)))
        if t2i_rows:
            images = torch.tensor([self.image_codes(r) for r in t2i_rows]) + tok.image_offset
            noisy, labels, _ = mask_image(images, tok.mask, self.objective.min_masking_rate, generator=g)
            drop = condition_dropout(len(t2i_rows), self.objective.cond_dropout_prob, generator=g)
            ids, mask, lab = self.prompting.t2i_train([self.formatter.caption(r) for r in t2i_rows], noisy, labels, drop)
            batch.t2i_ids, batch.t2i_mask, batch.t2i_labels = ids, mask, lab
        lm_rows = self.mixture.sample("text", int(bs.get("lm", 0)))
        if lm_rows:
            chat = self.data.lm_format == "chat"
            texts = [self.formatter.text_row(r, chat) for r in lm_rows]
            self._warn_if_truncated("lm", texts, self.lm_length, "data.lm_max_length")
            if chat:
                ids, prompt, labels = self.prompting.lm_chat(texts, self.lm_length)
            else:
                (ids, _, labels), prompt = self.prompting.lm(texts, self.lm_length), None
            noise = mask_text(ids, tok.mask, eps, prompt_mask=prompt, generator=g)
            batch.lm_ids, batch.lm_labels, batch.lm_p_mask = noise.noisy, labels, noise.p_mask
            batch.lm_answer_lengths = noise.answer_lengths
            batch.lm_loss_weights = self._weights(labels)
        mmu_rows, mmu_sources = self.mixture.sample_with_sources("mmu", int(bs.get("mmu", 0)))
        if mmu_rows:
            images = torch.tensor([self.image_codes(r) for r in mmu_rows]) + tok.image_offset
            texts = [self.formatter.row_chat_ids(r, "question") for r in mmu_rows]
            self._warn_if_truncated("mmu", texts, self.data.max_seq_length, "data.max_seq_length")
            ids, prompt, labels = self.prompting.mmu_train(images, texts)
            noise = mask_text(ids, tok.mask, eps, prompt_mask=prompt, t=self._mmu_mask_times(mmu_sources),
                              generator=g)
            batch.mmu_ids, batch.mmu_labels, batch.mmu_p_mask = noise.noisy, labels, noise.p_mask
            batch.mmu_answer_lengths = noise.answer_lengths
            batch.mmu_loss_weights = self._source_structural_weights(labels, self._weights(labels), mmu_sources)
        return batch

    def _source_structural_weights(self, labels: torch.Tensor, weights: Optional[torch.Tensor],
                                   sources: list) -> Optional[torch.Tensor]:
        """``weights`` with the EOS / end-of-turn targets of rows whose source sets ``structural_weight`` re-weighted."""
        rows = [i for i, src in enumerate(sources) if src.structural_weight is not None]
        if not rows:
            return weights
        weights = torch.ones(labels.shape) if weights is None else weights.clone()
        structural = (labels == self.tokens.eos) | (labels == self.tokens.eot_id)
        for i in rows:
            weights[i] = torch.where(structural[i], float(sources[i].structural_weight), weights[i])
        return weights

    def _mmu_mask_times(self, sources: list) -> Optional[torch.Tensor]:
        """Per-row masking times of the mmu rows: ``None`` (``mask_text`` draws ``t ~ U(0, 1)``, the official
        stream) unless ``objective.mmu_full_mask_prob`` or a row's source (``full_mask_prob``) sets a share of
        rows to ``t = 1`` (whole response masked)."""
        default = self.objective.mmu_full_mask_prob
        shares = torch.tensor([default if src.full_mask_prob is None else src.full_mask_prob for src in sources],
                              dtype=torch.float)
        if not bool((shares > 0).any()):
            return None
        t = torch.rand(len(sources), generator=self.generator)
        return torch.where(torch.rand(len(sources), generator=self.generator) < shares, torch.ones_like(t), t)

    def _warn_if_truncated(self, kind: str, texts: list[list[int]], width: int, setting: str) -> None:
        """Warn once per kind when a row does not fit its layout: it is cut as in the official code, so its end
        (often the answer) is never trained on."""
        longest = max(len(t) + (t[:1] != [self.tokens.bos]) + 1 for t in texts)  # + <bos> when missing, + <eos>
        if longest > width and kind not in self._warned_truncation:
            self._warned_truncation.add(kind)
            warnings.warn(f"{kind} rows up to {longest} tokens are cut to {setting}={width} (as the official code "
                          f"does), so their ends are never trained on: raise {setting}", stacklevel=3)

    def _weights(self, labels: torch.Tensor) -> Optional[torch.Tensor]:
        return target_weights(labels, self.weight_by_id)

    def state_dict(self) -> dict:
        return {"mixture": self.mixture.state_dict(), "generator": self.generator.get_state().tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.mixture.load_state_dict(state["mixture"])
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
