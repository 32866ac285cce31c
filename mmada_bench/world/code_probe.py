"""How readable are shape and colour from a world MAGVIT's codes? Small classifiers on the codes of one cell.

Every occupied cell of a scene becomes one example: the ids of the codes inside the cell (``side / 2`` squared,
16 for 8 x 8 codes), labelled with the object's shape and colour. Two classifiers are fitted on scenes of the
``train`` split and scored on scenes of the ``world`` split:

* ``mlp``: per-position code embeddings -> one hidden layer (uses where each code sits in the cell);
* ``bag``: the sum of the cells' code embeddings -> ReLU -> linear (a bag of codes: position-free).

High held-out accuracy means the codes carry the attribute in a form a small network reads at once, so a
transformer that does not name it has a training problem, not a tokenizer problem.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .scene import CANVAS, CELLS, COLOURS, SHAPES, Scene

ATTRIBUTES = {"shape": SHAPES, "colour": tuple(COLOURS)}
PROBE_KINDS = ("mlp", "bag")


def cell_examples(scenes: Sequence[Scene], codes: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """``(X [cells, codes per cell], {"shape": y, "colour": y})`` of every occupied cell of ``scenes``.

    ``codes`` is ``[len(scenes), side * side]`` (raster order, as ``MAGVITv2.get_code`` returns them)."""
    side = int(round(codes.shape[1] ** 0.5))
    if side * side != codes.shape[1] or side % 2:
        raise ValueError(f"codes per image must be an even square, not {codes.shape[1]}")
    grid, half = codes.view(-1, side, side), side // 2
    rows, labels = [], {name: [] for name in ATTRIBUTES}
    for i, scene in enumerate(scenes):
        for obj in scene.objects:
            x0, y0 = (v * side // CANVAS for v in CELLS[obj.cell])
            rows.append(grid[i, y0:y0 + half, x0:x0 + half].reshape(-1))
            labels["shape"].append(SHAPES.index(obj.shape))
            labels["colour"].append(ATTRIBUTES["colour"].index(obj.colour))
    return torch.stack(rows), {name: torch.tensor(v) for name, v in labels.items()}


def _classifier(kind: str, vocab: int, positions: int, n_classes: int) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(nn.Embedding(vocab, 32), nn.Flatten(1), nn.Linear(positions * 32, 256), nn.ReLU(),
                             nn.Linear(256, n_classes))
    if kind == "bag":
        return nn.Sequential(nn.EmbeddingBag(vocab, 64, mode="sum"), nn.ReLU(), nn.Linear(64, n_classes))
    raise ValueError(f"probe kind must be one of {PROBE_KINDS}, not {kind!r}")


def fit_probe(kind: str, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
              steps: int = 1500, batch: int = 256, lr: float = 3e-3, seed: int = 0) -> dict:
    """Fit one classifier (Adam, cross-entropy) on ``x -> y``; ``{"train", "test", "chance"}`` accuracies."""
    generator = torch.Generator().manual_seed(seed)
    vocab = int(max(x.max(), x_test.max())) + 1
    n_classes = int(max(y.max(), y_test.max())) + 1
    with torch.random.fork_rng():  # seeded initialisation without touching the caller's random state
        torch.manual_seed(seed)
        model = _classifier(kind, vocab, x.shape[1], n_classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(batch, len(x)),), generator=generator)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        accuracy = {split: float((model(a).argmax(-1) == b).float().mean())
                    for split, a, b in (("train", x, y), ("test", x_test, y_test))}
    accuracy["chance"] = float(torch.bincount(y_test).max()) / len(y_test)
    return accuracy


def code_readability(magvit_dir, n_train: int = 6000, n_test: int = 1000, steps: int = 1500, seed: int = 0) -> dict:
    """Held-out accuracy of each probe kind for shape and colour from the codes of ``magvit_dir``."""
    from mmada_ref.magvit import MAGVITv2

    from .seeds import DEFAULT_EVAL_SEED, DEFAULT_TRAIN_SEED, EVAL_SPLIT, TRAIN_SPLIT
    from .train_magvit import scene_codes, world_scenes

    vq = MAGVITv2.from_pretrained(str(magvit_dir)).eval()
    train = world_scenes(n_train, TRAIN_SPLIT, DEFAULT_TRAIN_SEED, stream="code_probe")
    test = world_scenes(n_test, EVAL_SPLIT, DEFAULT_EVAL_SEED, stream="code_probe")
    (x, y), (x_test, y_test) = cell_examples(train, scene_codes(vq, train)), cell_examples(test, scene_codes(vq, test))
    report = {"cells": {"train": len(x), "test": len(x_test)}, "codes_per_cell": int(x.shape[1])}
    for attribute in ATTRIBUTES:
        report[attribute] = {kind: fit_probe(kind, x, y[attribute], x_test, y_test[attribute], steps=steps, seed=seed)
                             for kind in PROBE_KINDS}
    return report
