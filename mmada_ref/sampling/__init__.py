"""Samplers: one implementation of each, shared by every caller."""
from .presets import PRESETS, ImageSamplerSettings, Preset, TextSamplerSettings, get_preset
from .stats import SamplerStats

__all__ = ["PRESETS", "Preset", "TextSamplerSettings", "ImageSamplerSettings", "get_preset", "SamplerStats"]
