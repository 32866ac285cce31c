"""oneDNN-prepacked float32 linear layers for CPU inference.

torch's default CPU GEMM is MKL's sgemm, which on some x86 CPUs (the AMD EPYC development VM among
them) runs at well under half the machine's float32 rate, worst at the small row counts of a
sampler's block step (32 rows: ~85-150 GFLOP/s against oneDNN's ~300-360 GFLOP/s there). oneDNN,
which ships inside torch, computes the same float32 products from a weight reordered once into its
blocked layout. The results differ from MKL's in the last bits (a different summation order,
relative differences ~1e-6), exactly as two BLAS libraries do; the dense weights stay the
parameters, so checkpoints and state dicts are unchanged.

:class:`PackedLinear` is an ``nn.Linear`` that uses its packed copy only where that is valid:
autograd off, a float32 CPU input, eager mode, and the weight unchanged since :meth:`PackedLinear.pack`
(same storage and version counter). Anything else (training, another device or dtype, code traced by
``torch.compile``, weights edited after packing) runs ``F.linear`` on the dense weight as before.

Layers that read the same input (a block's q / k / v, the MLP's gate / up) can be packed together
(:func:`pack_group`): their weights, concatenated by rows, become one packed product whose output
:func:`grouped_linear` splits back. Each output column is the same dot product as in the separate
products, so the results are bitwise those of the separate packed layers; fewer, wider products
stream the weights better at a sampler's row counts.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: row count the packed layout is tuned for (a sampler's block); results do not depend on it for >= 2 rows
PACK_ROWS_HINT = 32


@lru_cache(maxsize=1)
def onednn_linear_available() -> bool:
    """True when this torch build has oneDNN's prepacked linear operators and they run here."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        w = torch.ops.mkldnn._reorder_linear_weight(torch.ones(2, 2), 2)
        out = torch.ops.mkldnn._linear_pointwise(torch.ones(2, 2), w, None, "none", [], "")
        return bool(torch.equal(out, torch.full((2, 2), 2.0)))
    except (AttributeError, RuntimeError):
        return False


class PackedLinear(nn.Linear):
    """``nn.Linear`` with an optional oneDNN-prepacked weight for no-grad float32 CPU forwards."""

    _packed: Optional[torch.Tensor] = None
    _packed_key: tuple = ()
    _group: Optional["PackedGroup"] = None

    def can_pack(self) -> bool:
        """True where the weight can be packed: float32 on the CPU, with oneDNN's linear operators."""
        return self.weight.device.type == "cpu" and self.weight.dtype == torch.float32 and onednn_linear_available()

    def pack(self) -> bool:
        """Reorder the weight into oneDNN's layout (an extra copy of it); False where that cannot apply."""
        if not self.can_pack():
            self.unpack()
            return False
        with torch.no_grad():
            self._packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), PACK_ROWS_HINT)
        self._packed_key, self._group = self._weight_key(), None
        return True

    def unpack(self) -> None:
        """Drop the packed copy and any group (forwards use the dense weight)."""
        self._packed, self._packed_key, self._group = None, (), None

    @property
    def is_packed(self) -> bool:
        """True where this layer's products run on a oneDNN-packed weight (its own or its group's)."""
        return self._packed is not None or self._group is not None

    def _weight_key(self) -> tuple:
        return self.weight.data_ptr(), self.weight._version, tuple(self.weight.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self._packed
        if packed is not None and _packed_path_applies(x) and self._weight_key() == self._packed_key:
            return _onednn_linear(x, packed, self.bias)
        return F.linear(x, self.weight, self.bias)


class PackedGroup:
    """One packed product standing for several bias-free :class:`PackedLinear` layers of the same input."""

    def __init__(self, layers: Sequence[PackedLinear]):
        self.layers = tuple(layers)
        self.sizes = [layer.out_features for layer in self.layers]
        with torch.no_grad():
            weight = torch.cat([layer.weight.detach() for layer in self.layers])
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, PACK_ROWS_HINT)
        self.keys = tuple(layer._weight_key() for layer in self.layers)

    def applies(self, layers: Sequence[PackedLinear], x: torch.Tensor) -> bool:
        """True where the packed product is valid for ``layers`` on ``x`` (same layers, weights unchanged)."""
        return (len(layers) == len(self.layers) and all(a is b for a, b in zip(layers, self.layers))
                and _packed_path_applies(x) and tuple(layer._weight_key() for layer in layers) == self.keys)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _onednn_linear(x, self.packed, None).split(self.sizes, dim=-1)


def pack_group(layers: Sequence[PackedLinear]) -> bool:
    """Pack ``layers`` (same input features, no bias) as one product; their own packed copies are dropped.
    False (nothing changed) where any of them cannot be packed."""
    if (len({layer.in_features for layer in layers}) != 1 or any(layer.bias is not None for layer in layers)
            or not all(layer.can_pack() for layer in layers)):
        return False
    group = PackedGroup(layers)
    for layer in layers:
        layer.unpack()
        layer._group = group
    return True


def grouped_linear(layers: Sequence[PackedLinear], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tuple(layer(x) for layer in layers)``: one packed product where the layers were packed together
    (:func:`pack_group`) and that product applies, the layers one by one otherwise."""
    group = layers[0]._group
    if group is not None and group.applies(layers, x):
        return group(x)
    return tuple(layer(x) for layer in layers)


def _packed_path_applies(x: torch.Tensor) -> bool:
    """The packed weights serve no-grad, eager, float32 CPU forwards only."""
    return (not torch.is_grad_enabled() and x.dtype == torch.float32 and x.device.type == "cpu"
            and not torch.compiler.is_compiling())


def _onednn_linear(x: torch.Tensor, packed: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def gemm_in_use(module: nn.Module) -> str:
    """"native" where ``module`` serves cached windows through :mod:`mmada_ref.cpu_native`, "onednn" where any
    linear layer under it carries a packed weight, else "default"."""
    if getattr(module, "uses_native_step", False):
        return "native"
    return "onednn" if any(isinstance(m, PackedLinear) and m.is_packed for m in module.modules()) else "default"


def pack_linears(module: nn.Module, skip_grouped: bool = False) -> int:
    """Pack every :class:`PackedLinear` under ``module`` (with ``skip_grouped``, those not in a :func:`pack_group`);
    returns how many were packed."""
    return sum(layer.pack() for layer in module.modules()
               if isinstance(layer, PackedLinear) and not (skip_grouped and layer._group is not None))


def unpack_linears(module: nn.Module) -> None:
    """Drop every packed copy under ``module``."""
    for layer in module.modules():
        if isinstance(layer, PackedLinear):
            layer.unpack()
