"""mmada_ref: a clean reference implementation of MMaDA (Gen-Verse/MMaDA, arXiv 2505.15809)."""
from .config import MMaDAConfig
from .modeling import KVCache, MMaDAModelLM
from .tokens import SpecialTokens

__all__ = ["MMaDAConfig", "MMaDAModelLM", "KVCache", "SpecialTokens"]
