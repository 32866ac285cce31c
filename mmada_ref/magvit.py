"""MAGVIT-v2 image tokenizer: convolutional encoder, lookup-free quantizer (LFQ), decoder.

The module tree reproduces the state-dict key names of the official ``MAGVITv2`` class
(``encoder.down.0.block.0.conv1.weight``, ``quantize.embedding``, ``quantize.power_vals``, ...)
so that official checkpoints load strictly. Behaviour (spec/mmada_reference.md section 5):

* GroupNorm(32 groups, eps 1e-6) + swish; ResnetBlock with a 1x1 ``nin_shortcut`` when the
  channel count changes; Downsample = pad (0,1,0,1) + 3x3 conv stride 2; Upsample = nearest x2
  + 3x3 conv; single-head attention with 1x1 q/k/v/proj convs in the middle of both towers.
* Encoder level ``i`` has ``num_res_blocks[i]`` blocks and (except the last) a downsample;
  decoder level ``i`` has ``num_res_blocks[i]`` blocks and (except level 0) an upsample, and is
  run from the deepest level to level 0.
* LFQ: bit ``c`` is ``z_c > 0`` (0 maps to -1), code = sum_c 2**(D-1-c) * bit_c (channel 0 is
  the most significant bit), flattened row-major over (h, w).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .checkpoint import initialisers_skipped

WEIGHTS_NAME = "pytorch_model.safetensors"
CONFIG_NAME = "magvit_config.json"  # written by save_pretrained, rebuilds any architecture
FIXTURE_CONFIG_NAME = "tiny_magvit_config.json"  # same schema (official child kwargs)
OFFICIAL_CONFIG_NAME = "config.json"  # official diffusers config: no architecture inside
GROUPNORM_GROUPS = 32


class MAGVITLoadError(ValueError):
    """A MAGVIT-v2 checkpoint or config does not match the model it is loaded into."""


# --------------------------------------------------------------------------- config


@dataclass
class CoderConfig:
    """Settings of one convolutional tower (kwargs of the official VQGANEncoder/VQGANDecoder)."""
    ch: int = 128
    ch_mult: list = field(default_factory=lambda: [1, 2, 2, 4, 4])
    num_res_blocks: list = field(default_factory=lambda: [4, 3, 4, 3, 4])
    attn_resolutions: list = field(default_factory=lambda: [5])
    dropout: float = 0.0
    in_ch: int = 3
    out_ch: int = 3
    resolution: int = 256
    z_channels: int = 13
    double_z: bool = False

    def level_channels(self) -> list[int]:
        """Output channel count of every level."""
        return [self.ch * m for m in self.ch_mult]


@dataclass
class QuantizerConfig:
    """Settings of the lookup-free quantizer (kwargs of the official LFQuantizer)."""
    num_codebook_entry: int = -1  # unused by the official code (codebook size = 2**codebook_dim)
    codebook_dim: int = 13
    beta: float = 0.25
    entropy_multiplier: float = 0.1
    commit_loss_multiplier: float = 0.1

    @property
    def codebook_size(self) -> int:
        return 2 ** self.codebook_dim


def _real_decoder() -> CoderConfig:
    return CoderConfig(ch_mult=[1, 1, 2, 2, 4], num_res_blocks=[4, 4, 3, 4, 3])


@dataclass
class MAGVITConfig:
    """Full MAGVIT-v2 architecture: encoder, decoder and quantizer settings."""
    encoder: CoderConfig = field(default_factory=CoderConfig)
    decoder: CoderConfig = field(default_factory=_real_decoder)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def real(cls) -> "MAGVITConfig":
        """The released ``showlab/magvitv2`` architecture (what official ``MAGVITv2()`` builds)."""
        return cls()

    @classmethod
    def from_official_kwargs(cls, data: dict) -> "MAGVITConfig":
        """Build from ``{"encoder_kwargs", "decoder_kwargs", "quantizer_kwargs"}`` (extra keys ignored)."""
        missing = [k for k in ("encoder_kwargs", "decoder_kwargs", "quantizer_kwargs") if k not in data]
        if missing:
            raise MAGVITLoadError(f"MAGVIT config is missing {missing}; expected the kwargs of the "
                                  "official VQGANEncoder / VQGANDecoder / LFQuantizer")
        return cls(
            encoder=_dataclass_from_kwargs(CoderConfig, data["encoder_kwargs"], "encoder_kwargs"),
            decoder=_dataclass_from_kwargs(CoderConfig, data["decoder_kwargs"], "decoder_kwargs"),
            quantizer=_dataclass_from_kwargs(QuantizerConfig, data["quantizer_kwargs"], "quantizer_kwargs"),
        )

    def to_official_kwargs(self) -> dict:
        """Inverse of :meth:`from_official_kwargs`."""
        return {
            "encoder_kwargs": asdict(self.encoder),
            "decoder_kwargs": asdict(self.decoder),
            "quantizer_kwargs": asdict(self.quantizer),
        }

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.encoder.ch_mult) - 1)

    def validate(self) -> None:
        """Raise ``ValueError`` for settings the official code cannot run with."""
        z = self.quantizer.codebook_dim
        for name, tower in (("encoder", self.encoder), ("decoder", self.decoder)):
            if tower.z_channels != z:
                raise ValueError(f"{name}.z_channels={tower.z_channels} must equal "
                                 f"quantizer.codebook_dim={z} (one LFQ bit per latent channel)")
            if tower.double_z:
                raise ValueError(f"{name}.double_z=True is not supported (the quant_conv expects "
                                 "z_channels inputs; the official model never sets it)")
            if len(tower.num_res_blocks) != len(tower.ch_mult):
                raise ValueError(f"{name}: num_res_blocks {tower.num_res_blocks} needs one entry per "
                                 f"level of ch_mult {tower.ch_mult}")
            for channels in tower.level_channels() + [tower.ch]:
                if channels % GROUPNORM_GROUPS:
                    raise ValueError(f"{name}: {channels} channels are not divisible by the "
                                     f"{GROUPNORM_GROUPS} GroupNorm groups (check ch / ch_mult)")
        if len(self.encoder.ch_mult) != len(self.decoder.ch_mult):
            raise ValueError("encoder and decoder need the same number of levels "
                             f"({self.encoder.ch_mult} vs {self.decoder.ch_mult})")


def _dataclass_from_kwargs(cls, kwargs: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise MAGVITLoadError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")
    values = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in kwargs.items()}
    return cls(**values)


# --------------------------------------------------------------------------- building blocks


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUPNORM_GROUPS, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """norm1 -> swish -> conv1 -> norm2 -> swish -> dropout -> conv2, plus a (1x1) skip."""
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the h*w positions with 1x1-conv projections."""
    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)

        def tokens(t: torch.Tensor) -> torch.Tensor:  # [B, 1, h*w, C]
            return t.reshape(b, c, h * w).transpose(1, 2).unsqueeze(1)

        attended = F.scaled_dot_product_attention(
            tokens(self.q(normed)), tokens(self.k(normed)), tokens(self.v(normed)))
        attended = attended.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(attended)


class Downsample(nn.Module):
    """Asymmetric zero pad (right/bottom) then a stride-2 3x3 conv: halves h and w."""
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv."""
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    """block_1 -> attn_1 -> block_2 at the lowest resolution."""
    def __init__(self, channels: int, dropout: float):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels, dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Level(nn.Module):
    """One resolution level: residual blocks (each optionally followed by attention) and an
    optional resampler stored as ``downsample`` or ``upsample``."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, with_attn: bool,
                 dropout: float):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()
        channels = in_channels
        for _ in range(num_blocks):
            self.block.append(ResnetBlock(channels, out_channels, dropout))
            channels = out_channels
            if with_attn:
                self.attn.append(AttnBlock(channels))
        self.out_channels = channels

    def run_blocks(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[i](h)
        return h


# --------------------------------------------------------------------------- towers


class Encoder(nn.Module):
    """pixels [B, in_ch, H, W] -> latent z [B, z_channels, H/f, W/f] (incl. ``quant_conv``)."""
    def __init__(self, cfg: CoderConfig):
        super().__init__()
        self.conv_in = nn.Conv2d(cfg.in_ch, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        channels, res = cfg.ch, cfg.resolution
        last = len(cfg.ch_mult) - 1
        for i, out_channels in enumerate(cfg.level_channels()):
            level = Level(channels, out_channels, cfg.num_res_blocks[i],
                          res in cfg.attn_resolutions, cfg.dropout)
            channels = level.out_channels
            if i != last:
                level.downsample = Downsample(channels)
                res //= 2
            self.down.append(level)
        self.mid = MidBlock(channels, cfg.dropout)
        self.norm_out = group_norm(channels)
        self.conv_out = nn.Conv2d(channels, cfg.z_channels, 3, padding=1)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level.run_blocks(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        h = self.conv_out(swish(self.norm_out(h)))
        return self.quant_conv(h)


class Decoder(nn.Module):
    """latent [B, z_channels, h, w] -> pixels [B, out_ch, h*f, w*f]; levels run deepest first."""
    def __init__(self, cfg: CoderConfig):
        super().__init__()
        n_levels = len(cfg.ch_mult)
        channels = cfg.level_channels()[-1]
        res = cfg.resolution // 2 ** (n_levels - 1)
        self.post_quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 1)
        self.conv_in = nn.Conv2d(cfg.z_channels, channels, 3, padding=1)
        self.mid = MidBlock(channels, cfg.dropout)
        levels: dict[int, Level] = {}
        for i in reversed(range(n_levels)):
            level = Level(channels, cfg.level_channels()[i], cfg.num_res_blocks[i],
                          res in cfg.attn_resolutions, cfg.dropout)
            channels = level.out_channels
            if i != 0:
                level.upsample = Upsample(channels)
                res *= 2
            levels[i] = level
        self.up = nn.ModuleList(levels[i] for i in range(n_levels))
        self.norm_out = group_norm(channels)
        self.conv_out = nn.Conv2d(channels, cfg.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(self.post_quant_conv(z)))
        for level in reversed(self.up):
            h = level.run_blocks(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class LFQuantizer(nn.Module):
    """Lookup-free quantizer: each latent channel becomes one bit (sign), 2**D codes."""
    def __init__(self, cfg: QuantizerConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.codebook_dim
        # computed on the CPU even inside a meta-device build (a loader's), where the bit operations would run
        # through torch's Python references; loaded weights replace both buffers anyway
        shifts = torch.arange(dim - 1, -1, -1, dtype=torch.long, device="cpu")
        codes = torch.arange(cfg.codebook_size, dtype=torch.long, device="cpu")
        bits = (codes.unsqueeze(1) >> shifts) & 1
        self.register_buffer("embedding", bits.float() * 2 - 1)  # [K, D], entries +-1
        self.register_buffer("power_vals", 2 ** shifts)  # [D], MSB first

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Signs of ``z`` as +-1 (``z == 0`` maps to -1), same shape as ``z``."""
        return torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, D, h, w]`` -> code ids ``[B, h*w]`` (row-major), int64."""
        bits = (z > 0).long()
        ids = (bits * self.power_vals.view(1, -1, 1, 1).to(bits.device)).sum(dim=1)
        return ids.reshape(z.shape[0], -1)

    def lookup(self, codes: torch.Tensor, shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Code ids ``[B, n]`` -> +-1 latent ``[B, D, h, w]`` (square grid unless ``shape=(h, w)``)."""
        if codes.dim() != 2:
            raise ValueError(f"codes must have shape [batch, n_tokens], got {tuple(codes.shape)}")
        b, n = codes.shape
        if shape is None:
            side = math.isqrt(n)
            if side * side != n:
                raise ValueError(f"{n} codes per image do not form a square grid; pass shape=(h, w)")
            h, w = side, side
        else:
            h, w = int(shape[0]), int(shape[1])
            if h * w != n:
                raise ValueError(f"shape {tuple(shape)} does not hold {n} codes per image")
        k = self.embedding.shape[0]
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= k):
            raise ValueError(f"code ids must lie in [0, {k - 1}], got range "
                             f"[{int(codes.min())}, {int(codes.max())}] (image ids still offset "
                             "by the text vocabulary, or unfinished [MASK] positions?)")
        z_q = self.embedding[codes.reshape(-1).long()].view(b, h, w, -1)
        return z_q.permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> dict:
        """Quantize with straight-through gradients; returns ``z``, ``indices`` and the official
        commitment / entropy losses (already multiplied by their multipliers)."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        hard = self.quantize(flat)
        z_q = flat + (hard - flat).detach()
        # two-way categorical per bit with logits -(z - 1)^2 and -(z + 1)^2
        logits = torch.stack([-(flat - 1).pow(2), -(flat + 1).pow(2)], dim=-1)
        log_probs = logits.log_softmax(dim=-1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs).sum(-1).mean()
        mean_probs = probs.mean(0)
        mean_entropy = -(mean_probs * mean_probs.clamp_min(torch.finfo(mean_probs.dtype).tiny).log()).sum(-1).mean()
        commit = ((z_q.detach() - flat) ** 2).mean() + self.cfg.beta * ((z_q - flat.detach()) ** 2).mean()
        z_q = z_q.view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2).contiguous()
        return {
            "z": z_q,
            "quantizer_loss": commit * self.cfg.commit_loss_multiplier,
            "entropy_loss": (entropy - mean_entropy) * self.cfg.entropy_multiplier,
            "indices": self.codes(z),
        }


# --------------------------------------------------------------------------- model


class MAGVITv2(nn.Module):
    """MAGVIT-v2 tokenizer with the official key names (``encoder.*``, ``decoder.*``, ``quantize.*``)."""
    def __init__(self, config: Optional[MAGVITConfig] = None):
        super().__init__()
        self.config = config if config is not None else MAGVITConfig.real()
        self.config.validate()
        self.encoder = Encoder(self.config.encoder)
        self.decoder = Decoder(self.config.decoder)
        self.quantize = LFQuantizer(self.config.quantizer)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def _check_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.dim() != 4 or pixels.shape[1] != self.config.encoder.in_ch:
            raise ValueError(f"pixels must be [batch, {self.config.encoder.in_ch}, H, W] in [-1, 1], "
                             f"got {tuple(pixels.shape)}")
        f = self.config.downsample_factor
        if pixels.shape[2] % f or pixels.shape[3] % f:
            raise ValueError(f"image size {tuple(pixels.shape[2:])} must be a multiple of the "
                             f"downsample factor {f}")
        param = self.encoder.conv_in.weight
        return pixels.to(device=param.device, dtype=param.dtype)

    def encode_z(self, pixels: torch.Tensor) -> torch.Tensor:
        """Encoder output (incl. ``quant_conv``) before quantization: ``[B, D, H/f, W/f]``."""
        return self.encoder(self._check_pixels(pixels))

    def get_code(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1] ``[B, 3, H, W]`` -> code ids ``[B, (H/f)*(W/f)]`` (int64, row-major)."""
        return self.quantize.codes(self.encode_z(pixels))

    def encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_q, codes)`` like the official ``encode``: +-1 latents and code ids."""
        z = self.encode_z(pixels)
        return self.quantize.quantize(z), self.quantize.codes(z)

    def decode_code(self, codes: torch.Tensor, shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Code ids ``[B, n]`` (0..K-1) -> reconstructed pixels ``[B, 3, H, W]`` (roughly [-1, 1])."""
        codes = torch.as_tensor(codes, device=self.quantize.embedding.device)
        z_q = self.quantize.lookup(codes, shape).to(self.decoder.conv_in.weight.dtype)
        return self.decoder(z_q)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Reconstruction: ``decode_code(get_code(pixels))``."""
        z = self.encode_z(pixels)
        return self.decoder(self.quantize.quantize(z))

    # ----------------------------------------------------------------- checkpoints

    def save_pretrained(self, directory: Union[str, Path]) -> Path:
        """Write ``pytorch_model.safetensors`` (official keys) and ``magvit_config.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        payload = {"_class_name": "mmada_ref.magvit.MAGVITv2", **self.config.to_official_kwargs()}
        (directory / CONFIG_NAME).write_text(json.dumps(payload, indent=1) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, path: Union[str, Path], config: Optional[MAGVITConfig] = None,
                        device: Union[str, torch.device] = "cpu",
                        dtype: Optional[torch.dtype] = None) -> "MAGVITv2":
        """Load a folder (or a ``.safetensors`` file) strictly; see :func:`resolve_checkpoint`."""
        weights, resolved_config = resolve_checkpoint(path, config)
        with torch.device("meta"), initialisers_skipped():
            model = cls(resolved_config)
        state = load_state_strict(model, weights)
        model.load_state_dict(state, strict=True, assign=True)
        model = model.to(device=device)
        if dtype is not None:
            model = model.to(dtype=dtype)  # floating tensors only; power_vals stays int64
        return model.eval()


def resolve_checkpoint(path: Union[str, Path], config: Optional[MAGVITConfig] = None
                       ) -> tuple[Path, MAGVITConfig]:
    """Find the weights file and the architecture of a MAGVIT checkpoint.

    Config priority: the ``config`` argument, ``magvit_config.json`` (ours),
    ``tiny_magvit_config.json`` (conformance fixture, same schema), then an official
    ``config.json`` (``{"_class_name": "MAGVITv2"}``), which means the real architecture.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MAGVIT checkpoint {path} does not exist")
    if path.is_file():
        weights, folder = path, path.parent
    else:
        weights, folder = path / WEIGHTS_NAME, path
        if not weights.is_file():
            found = sorted(p.name for p in path.iterdir())
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in {path} (found: {found})")
    if config is not None:
        return weights, config
    for name in (CONFIG_NAME, FIXTURE_CONFIG_NAME):
        candidate = folder / name
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text())
            except json.JSONDecodeError as err:
                raise MAGVITLoadError(f"{candidate} is not valid JSON: {err}") from err
            return weights, MAGVITConfig.from_official_kwargs(data)
    official = folder / OFFICIAL_CONFIG_NAME
    if official.is_file():
        return weights, MAGVITConfig.real()
    raise MAGVITLoadError(f"no MAGVIT config next to {weights}: expected {CONFIG_NAME}, "
                          f"{FIXTURE_CONFIG_NAME} or the official {OFFICIAL_CONFIG_NAME}; "
                          "or pass config=MAGVITConfig(...)")


def load_state_strict(model: nn.Module, weights: Union[str, Path]) -> dict:
    """Read a safetensors file and check it has exactly the model's keys and shapes.

    Raises :class:`MAGVITLoadError` naming every missing / unexpected key and shape mismatch.
    """

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise MAGVITLoadError(f"cannot read safetensors file {weights}: {err}") from err
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {expected[k]}"
                        for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mismatched:
        problems.append(f"shape mismatches {mismatched}")
    if problems:
        raise MAGVITLoadError(f"{weights} does not match the MAGVIT architecture "
                              f"({'; '.join(problems)}); check the config")
    return state
