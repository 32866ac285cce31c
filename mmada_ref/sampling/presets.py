"""Named sampler presets: the paper's settings per task, a fast cached preset and cheap CI settings.

Every preset is labelled with where its numbers come from (``source``) so a leaderboard row can say
which protocol produced it. ``kind`` is ``"text"`` (semi-autoregressive text / understanding sampler)
or ``"image"`` (MaskGIT text-to-image sampler).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal, Optional


@dataclass(frozen=True)
class TextSamplerSettings:
    """Settings of the semi-autoregressive masked-diffusion text sampler."""

    gen_length: int = 256
    steps: int = 256
    block_length: int = 64
    temperature: float = 0.0
    cfg_scale: float = 0.0
    remasking: Literal["low_confidence", "random"] = "low_confidence"
    cache: Literal["none", "prefix", "dual"] = "none"
    threshold: Optional[float] = None  # confidence-threshold parallel unmasking (Fast-dLLM)
    factor: Optional[float] = None  # factor parallel unmasking (Fast-dLLM)
    stop_at_eos: bool = True  # stop after a block once every row has produced EOS/EoT

    kind = "text"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ImageSamplerSettings:
    """Settings of the MaskGIT image sampler."""

    timesteps: int = 50
    guidance_scale: float = 3.5
    temperature: float = 1.0
    schedule: str = "cosine"
    pad_to_longest: bool = False  # left-pad text only to the batch's longest prompt

    kind = "image"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    name: str
    settings: TextSamplerSettings | ImageSamplerSettings
    source: str
    label: str = "paper"  # "paper" | "repo" | "fast" | "world" | "ci"

    @property
    def kind(self) -> str:
        return self.settings.kind

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "label": self.label, "source": self.source,
                **self.settings.to_dict()}


_T = TextSamplerSettings
_I = ImageSamplerSettings

PRESETS: dict[str, Preset] = {p.name: p for p in [
    # --- text reasoning -------------------------------------------------------------------------
    # the official generate() never stops early: text after an EOS still reaches the stop-string cut
    Preset("gsm8k-paper", _T(gen_length=256, steps=256, block_length=64, stop_at_eos=False),
           "MMaDA evaluation/lm/eval.sh: gen_length 256, steps 256, block 64, temperature 0"),
    Preset("math500-paper", _T(gen_length=1024, steps=512, block_length=64, stop_at_eos=False),
           "MMaDA paper Sec. 3: N=1024, N/2 steps, block 64, low-confidence remasking (MATH500)"),
    Preset("text-paper", _T(gen_length=1024, steps=512, block_length=64, stop_at_eos=False),
           "MMaDA paper Sec. 3: N=1024, N/2 steps, block 64, low-confidence remasking"),
    # --- understanding --------------------------------------------------------------------------
    Preset("mmu-vlmevalkit", _T(gen_length=2, steps=2, block_length=2),
           "MMaDA VLMEvalKit wrapper DEFAULT_KWARGS (POPE, MME, other Y/N sets): 2/2/2", label="paper"),
    Preset("mmu-caption", _T(gen_length=64, steps=32, block_length=16),
           "lmms-eval flickr30k max_new_tokens 64; steps L/2, block L/4 as inference_mmu.py"),
    Preset("mmu-lmms-eval-pope", _T(gen_length=128, steps=64, block_length=32),
           "lmms-eval pope max_new_tokens 128; steps L/2, block L/4 as inference_mmu.py"),
    Preset("mmu-lmms-eval-mme", _T(gen_length=16, steps=8, block_length=4),
           "lmms-eval mme max_new_tokens 16; steps L/2, block L/4 as inference_mmu.py"),
    Preset("mmu-inference", _T(gen_length=512, steps=256, block_length=128),
           "MMaDA inference_mmu.py / validation: max_new_tokens L, steps L/2, block L/4", label="repo"),
    # --- fast (Fast-dLLM style) -----------------------------------------------------------------
    Preset("fast", _T(gen_length=256, steps=256, block_length=32, cache="dual", threshold=0.9),
           "Fast-dLLM: block 32, dual cache, confidence threshold 0.9", label="fast"),
    Preset("fast-prefix", _T(gen_length=256, steps=256, block_length=32, cache="prefix", threshold=0.9),
           "Fast-dLLM: block 32, prefix cache, confidence threshold 0.9", label="fast"),
    # --- the shapes-world model (its harness_defaults.json picks these) -------------------------
    Preset("world-text", _T(gen_length=160, steps=160, block_length=32, cache="dual"),
           "shapes-world model: one token per step, block 32, dual cache (answers fit in 160 tokens)", label="world"),
    Preset("world-mmu-think", _T(gen_length=64, steps=64, block_length=8),
           "shapes-world model, thinking mode: one token per step, block 8 (trace + answer fit in 64 tokens)",
           label="world"),
    # --- cheap CI settings: never for reported numbers -----------------------------------------
    Preset("ci", _T(gen_length=16, steps=8, block_length=8), "CI smoke settings (not a paper protocol)", label="ci"),
    Preset("ci-mmu", _T(gen_length=4, steps=2, block_length=2), "CI smoke settings (not a paper protocol)", label="ci"),
    # --- text-to-image --------------------------------------------------------------------------
    Preset("t2i-paper", _I(timesteps=50, guidance_scale=3.5, temperature=1.0),
           "MMaDA paper Sec. 3: 1024 tokens, 50 steps, cosine schedule, CFG 3.5"),
    Preset("t2i-repo", _I(timesteps=15, guidance_scale=3.5, temperature=1.0),
           "MMaDA README inference_t2i.py / app.py: 15 steps, CFG 3.5", label="repo"),
    Preset("t2i-fast", _I(timesteps=15, guidance_scale=3.5, temperature=1.0, pad_to_longest=True),
           "15 steps, CFG 3.5, text padded to the longest prompt only", label="fast"),
    Preset("t2i-ci", _I(timesteps=4, guidance_scale=3.5, temperature=1.0),
           "CI smoke settings (not a paper protocol)", label="ci"),
]}


def get_preset(name: str, **overrides) -> Preset:
    """Look up a preset by name, optionally overriding some settings (e.g. ``gen_length=64``)."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown sampler preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
    if overrides:
        preset = replace(preset, settings=replace(preset.settings, **overrides))
    return preset
