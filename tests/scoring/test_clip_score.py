"""CLIP score: a tiny random open_clip model saved to a file, scored by ClipScorer and by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

open_clip = pytest.importorskip("open_clip")

from mmada_scoring.clip_score import (  # noqa: E402
    ClipScorer,
    clip_scores_from_embeddings,
    resolve_clip_checkpoint,
)
from mmada_scoring.scorer_weights import ScorerWeightsMissing, to_pil_image  # noqa: E402

PROMPTS = ["a red cat", "two dogs in the snow", "an astronaut riding a horse", "", "a blue sky over a field"]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(40, 32), (32, 32), (17, 45), (64, 48), (33, 33)]
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    images[1] = images[1].convert("L")  # a non-RGB mode goes through the same transform
    return images


@pytest.fixture(scope="module")
def tiny_checkpoints(tiny_clip, tmp_path_factory):
    """(model, path of its state dict, path of the same model with the text projection negated)."""
    model = tiny_clip.model
    flipped = {k: (-v if k == "text_projection" else v) for k, v in model.state_dict().items()}
    flipped_path = tmp_path_factory.mktemp("tiny_clip_flipped") / "tiny_flipped.pt"
    torch.save(flipped, flipped_path)
    return model, tiny_clip.checkpoint, flipped_path


def _direct_cosines(tiny_clip, model, images, prompts) -> torch.Tensor:
    """Cosine of every pair, computed by hand with open_clip's own transform and tokenizer."""
    _, _, preprocess = open_clip.create_model_and_transforms(tiny_clip.name, pretrained=None)
    tokenizer = open_clip.get_tokenizer(tiny_clip.name)
    with torch.no_grad():
        image_features = model.encode_image(torch.stack([preprocess(im) for im in images]))
        text_features = model.encode_text(tokenizer(prompts))
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    return (image_features * text_features).sum(dim=-1)


def test_scores_match_direct_computation(tiny_clip, tiny_checkpoints):
    model, path, _ = tiny_checkpoints
    images = _images()
    scorer = ClipScorer(tiny_clip.name, checkpoint=path, pretrained=None, batch_size=2)
    scores = scorer.score(images, PROMPTS)
    expected = 100.0 * _direct_cosines(tiny_clip, model, images, PROMPTS).clamp(min=0.0)
    assert len(scores) == len(PROMPTS)
    np.testing.assert_allclose(scores, expected.numpy(), atol=1e-4, rtol=0)
    assert scorer.mean_score(images, PROMPTS) == pytest.approx(float(np.mean(scores)), abs=1e-6)


def test_clamp_is_per_image_before_the_mean(tiny_clip, tiny_checkpoints):
    model, path, flipped_path = tiny_checkpoints
    images = _images()
    cosines = _direct_cosines(tiny_clip, model, images, PROMPTS)
    assert (cosines > 0).any() and (cosines < 0).any(), "fixture should give cosines of both signs"
    flipped = ClipScorer(tiny_clip.name, checkpoint=flipped_path, pretrained=None, batch_size=3)
    scores = torch.tensor(flipped.score(images, PROMPTS))
    # negating the text projection negates every cosine: pairs that were positive must now score 0
    assert torch.all(scores[cosines > 0] == 0)
    np.testing.assert_allclose(scores[cosines < 0], (-100.0 * cosines[cosines < 0]).numpy(), atol=1e-4)
    assert flipped.mean_score(images, PROMPTS) == pytest.approx(float(scores.mean()), abs=1e-5)


def test_formula_on_hand_made_embeddings():
    image = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    text = torch.tensor([[5.0, 0.0], [-1.0, 0.0], [0.0, -1.0]])
    scores = clip_scores_from_embeddings(image, text)
    assert scores.tolist() == [100.0, 0.0, 0.0]
    # clamping after averaging would give max(mean(100, -100, -100), 0) = 0, per image gives 100 / 3
    assert scores.mean().item() == pytest.approx(100.0 / 3)


def test_image_input_types_give_the_same_score(tiny_clip, tiny_checkpoints, tmp_path):
    _, path, _ = tiny_checkpoints
    scorer = ClipScorer(tiny_clip.name, checkpoint=path, pretrained=None)
    image = _images()[0]
    file = tmp_path / "im.png"
    image.save(file)
    array = np.array(image)
    inputs = [image, str(file), file, array, torch.from_numpy(array).permute(2, 0, 1).contiguous()]
    for item in inputs:
        assert np.array_equal(np.asarray(to_pil_image(item)), array)
    scores = scorer.score(inputs, ["a red cat"] * len(inputs))
    assert max(scores) - min(scores) < 1e-4  # same pixels; only batch-position float noise


def test_bad_inputs_raise_clear_errors(tiny_clip, tiny_checkpoints):
    _, path, _ = tiny_checkpoints
    scorer = ClipScorer(tiny_clip.name, checkpoint=path, pretrained=None)
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        scorer.score(_images()[:2], ["x"])
    with pytest.raises(TypeError, match="uint8"):
        scorer.score([np.zeros((8, 8, 3), dtype=np.float32)], ["x"])
    with pytest.raises(ValueError, match="unknown open_clip model"):
        ClipScorer("no-such-model", checkpoint=path)


def test_missing_checkpoint_names_the_flag(tiny_clip, tmp_path):
    with pytest.raises(ScorerWeightsMissing, match="--clip-checkpoint"):
        ClipScorer(tiny_clip.name, checkpoint=tmp_path / "absent.pt")


def test_pretrained_tag_resolves_only_from_local_caches(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ScorerWeightsMissing, match="--clip-checkpoint"):
        resolve_clip_checkpoint("ViT-B-32", "openai")
    # a file in the Hugging Face cache layout (what open_clip itself would have downloaded) is found offline
    repo = tmp_path / "hub" / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    weights = repo / "snapshots" / "abc123" / "open_clip_model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"stub")
    assert resolve_clip_checkpoint("ViT-B-32", "openai") == weights
    with pytest.raises(ValueError, match="unknown open_clip pretrained tag"):
        resolve_clip_checkpoint("ViT-B-32", "no-such-tag")


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_openai_style_torchscript_archive_loads(tiny_clip, tiny_checkpoints, tmp_path):
    model, path, _ = tiny_checkpoints
    archive = tmp_path / "tiny_jit.pt"
    torch.jit.script(model).save(str(archive))
    images = _images()[:2]
    from_archive = ClipScorer(tiny_clip.name, checkpoint=archive, pretrained=None).score(images, PROMPTS[:2])
    from_state_dict = ClipScorer(tiny_clip.name, checkpoint=path, pretrained=None).score(images, PROMPTS[:2])
    assert from_archive == from_state_dict
