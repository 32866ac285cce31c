"""ImageReward on transformers' BLIP classes: parity with the image-reward 1.5 goldens + loading/error checks.

The fixture folder (``imagereward_dir``) holds tiny random weights in the original checkpoint format and the
outputs of the original package on them; tolerances are those its README recommends.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mmada_scoring.imagereward import (
    ImageRewardCheckpointError,
    ImageRewardScorer,
    load_imagereward_checkpoint,
    map_checkpoint_keys,
    preprocess_image,
)
from mmada_scoring.scorer_weights import ScorerWeightsMissing

# README section 7 recommendations, used when golden.json states no tolerance of its own
FEATURE_ATOL = 5e-5
SCORE_ATOL = 1e-5
PIXEL_ATOL = 1e-6
UNUSED_KEYS = {
    "blip.vision_proj.weight", "blip.vision_proj.bias", "blip.text_proj.weight", "blip.text_proj.bias",
    "blip.text_encoder.embeddings.position_ids",
}


@pytest.fixture(scope="module")
def ir_golden(imagereward_dir):
    return json.loads((imagereward_dir / "golden.json").read_text())


@pytest.fixture(scope="module")
def tol(ir_golden, tolerance):
    return {"pixels": tolerance(ir_golden, "pixels_atol", PIXEL_ATOL),
            "features": tolerance(ir_golden, "features_atol", FEATURE_ATOL),
            "score": tolerance(ir_golden, "score_atol", SCORE_ATOL)}


@pytest.fixture(scope="module")
def scorer(imagereward_dir):
    return ImageRewardScorer.from_folder(imagereward_dir)


@pytest.fixture(scope="module")
def all_pairs(scorer, ir_golden, imagereward_dir):
    """forward_pairs over every (prompt, image) pair, prompt-major, reshaped to [n_prompts, n_images, ...]."""
    prompts = [p["text"] for p in ir_golden["prompts"]]
    files = [imagereward_dir / im["file"] for im in ir_golden["images"]]
    out = scorer.forward_pairs([p for p in prompts for _ in files], [f for _ in prompts for f in files])
    shape = (len(prompts), len(files))
    return {name: value.reshape(shape + tuple(value.shape[1:])).numpy() for name, value in out.items()}


def _sha256_f32(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<f4").tobytes()).hexdigest()


def _text(ir_golden, prompt_id: str) -> str:
    return next(p["text"] for p in ir_golden["prompts"] if p["id"] == prompt_id)


def _file(imagereward_dir, ir_golden, image_id: str):
    return imagereward_dir / next(im["file"] for im in ir_golden["images"] if im["id"] == image_id)


@pytest.mark.conformance
def test_tokenizer_matches_original(scorer, ir_golden, all_pairs):
    constants = ir_golden["constants"]
    tokenizer = scorer.tokenizer
    assert len(tokenizer) == constants["tokenizer_len"]
    assert tokenizer.convert_tokens_to_ids("[DEC]") == constants["dec_token_id"]
    assert tokenizer.convert_tokens_to_ids("[ENC]") == constants["enc_token_id"]
    for index, prompt in enumerate(ir_golden["prompts"]):
        ids, mask = scorer.tokenize([prompt["text"]])
        assert ids[0].tolist() == prompt["input_ids"], prompt["id"]
        assert mask[0].tolist() == prompt["attention_mask"], prompt["id"]
        assert tokenizer.convert_ids_to_tokens(prompt["input_ids"]) == prompt["tokens"], prompt["id"]
        assert (all_pairs["input_ids"][index] == np.array(prompt["input_ids"])).all()


@pytest.mark.conformance
def test_preprocessed_pixels_match_original(imagereward_dir, ir_golden, all_pairs, tol):
    stored = np.load(imagereward_dir / "preprocessed.npz")
    size = all_pairs["pixels"].shape[-1]
    for index, image in enumerate(ir_golden["images"]):
        pixels = preprocess_image(imagereward_dir / image["file"], size).numpy()
        assert list(pixels.shape) == image["pixels"]["shape"]
        np.testing.assert_allclose(pixels, stored[image["pixels"]["key"]], atol=tol["pixels"], rtol=0, err_msg=image["id"])
        assert _sha256_f32(pixels) == image["pixels"]["sha256_f32le"], image["id"]
        assert np.array_equal(all_pairs["pixels"][0, index], pixels)
        full = preprocess_image(imagereward_dir / image["file"], image["pixels_224"]["shape"][-1]).numpy()
        assert _sha256_f32(full) == image["pixels_224"]["sha256_f32le"], f"{image['id']} at 224"
    assert size == ir_golden["images"][0]["pixels"]["shape"][-1]


@pytest.mark.conformance
def test_image_embeds_and_cls_features_match_original(imagereward_dir, all_pairs, tol):
    stored = np.load(imagereward_dir / "intermediates.npz")
    for prompt_index in range(all_pairs["image_embeds"].shape[0]):
        np.testing.assert_allclose(
            all_pairs["image_embeds"][prompt_index], stored["image_embeds"], atol=tol["features"], rtol=0
        )
    np.testing.assert_allclose(all_pairs["text_cls_features"], stored["text_cls_features"], atol=tol["features"], rtol=0)


@pytest.mark.conformance
def test_raw_and_normalised_scores_match_original(ir_golden, all_pairs, tol):
    prompt_index = {p["id"]: i for i, p in enumerate(ir_golden["prompts"])}
    image_index = {im["id"]: i for i, im in enumerate(ir_golden["images"])}
    assert len(ir_golden["score"]) == all_pairs["score"].size
    for entry in ir_golden["score"]:
        where = (prompt_index[entry["prompt"]], image_index[entry["image"]])
        assert all_pairs["raw"][where] == pytest.approx(entry["raw"], abs=tol["score"]), where
        assert all_pairs["score"][where] == pytest.approx(entry["score"], abs=tol["score"]), where
    np.testing.assert_allclose(all_pairs["score"], np.array(ir_golden["score_matrix"]), atol=tol["score"], rtol=0)


@pytest.mark.conformance
def test_inference_rank_matches_original(scorer, imagereward_dir, ir_golden, tol):
    for entry in ir_golden["inference_rank"]:
        files = [_file(imagereward_dir, ir_golden, image_id) for image_id in entry["images"]]
        ranks, rewards = scorer.inference_rank(_text(ir_golden, entry["prompt"]), files)
        assert ranks == entry["ranking"], entry["prompt"]
        np.testing.assert_allclose(rewards, entry["rewards"], atol=tol["score"], rtol=0)


@pytest.mark.conformance
def test_list_and_pil_calls_match_original(scorer, imagereward_dir, ir_golden, tol):
    call = ir_golden["score_list_call"]
    files = [_file(imagereward_dir, ir_golden, image_id) for image_id in call["images"]]
    scores = scorer.score([_text(ir_golden, call["prompt"])] * len(files), files)
    np.testing.assert_allclose(scores, call["result"], atol=tol["score"], rtol=0)
    call = ir_golden["score_pil_call"]
    with Image.open(_file(imagereward_dir, ir_golden, call["image"])) as image:
        (score,) = scorer.score([_text(ir_golden, call["prompt"])], [image])
    assert score == pytest.approx(call["result"], abs=tol["score"])


def test_batch_size_does_not_change_scores(imagereward_dir, ir_golden, scorer):
    files = [imagereward_dir / im["file"] for im in ir_golden["images"]]
    prompts = [p["text"] for p in ir_golden["prompts"]]
    one_by_one = ImageRewardScorer(scorer.model, scorer.tokenizer, scorer.image_size, batch_size=1)
    np.testing.assert_allclose(one_by_one.score(prompts, files), scorer.score(prompts, files), atol=SCORE_ATOL)


def test_checkpoint_maps_every_key(imagereward_dir, scorer):
    state_dict = load_imagereward_checkpoint(imagereward_dir / "ImageReward.pt")
    mapped = map_checkpoint_keys(state_dict)
    assert set(mapped) == set(scorer.model.state_dict())
    # only the ITC projections and the position-id buffer (unused by score()) are left out
    assert len(mapped) == len(state_dict) - len(UNUSED_KEYS)
    assert UNUSED_KEYS <= set(state_dict)


def _copy_folder(imagereward_dir, tmp_path, state_dict=None, vision_config=None):
    folder = tmp_path / "ir"
    folder.mkdir(parents=True)
    shutil.copy(imagereward_dir / "med_config.json", folder)
    shutil.copytree(imagereward_dir / "tokenizer", folder / "tokenizer")
    (folder / "vision_config.json").write_text(
        json.dumps(vision_config or json.loads((imagereward_dir / "vision_config.json").read_text()))
    )
    if state_dict is None:
        shutil.copy(imagereward_dir / "ImageReward.pt", folder)
    else:
        torch.save(state_dict, folder / "ImageReward.pt")
    return folder


def test_loading_is_strict(imagereward_dir, tmp_path):
    state_dict = load_imagereward_checkpoint(imagereward_dir / "ImageReward.pt")
    extra = dict(state_dict, **{"blip.itm_head.weight": torch.zeros(2, 2)})
    with pytest.raises(ImageRewardCheckpointError, match="blip.itm_head.weight"):
        ImageRewardScorer.from_folder(_copy_folder(imagereward_dir, tmp_path / "extra", extra))
    partial = {k: v for k, v in state_dict.items() if k != "mlp.layers.7.bias"}
    with pytest.raises(ImageRewardCheckpointError, match=r"head\.7\.bias"):
        ImageRewardScorer.from_folder(_copy_folder(imagereward_dir, tmp_path / "missing", partial))
    vision = json.loads((imagereward_dir / "vision_config.json").read_text())
    vision["hf_blip_vision_config"]["intermediate_size"] *= 2
    with pytest.raises(ImageRewardCheckpointError, match="shape mismatch"):
        ImageRewardScorer.from_folder(_copy_folder(imagereward_dir, tmp_path / "shape", vision_config=vision))


class _NotATensor:
    pass


def test_checkpoint_is_read_with_weights_only(tmp_path):
    path = tmp_path / "ImageReward.pt"
    torch.save({"blip.visual_encoder.cls_token": _NotATensor()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_imagereward_checkpoint(path)


def test_missing_files_name_the_flag(imagereward_dir, tmp_path):
    with pytest.raises(ScorerWeightsMissing, match="--imagereward-dir"):
        ImageRewardScorer.from_folder(tmp_path / "absent")
    folder = _copy_folder(imagereward_dir, tmp_path)
    with pytest.raises(ScorerWeightsMissing, match="--imagereward-tokenizer"):
        ImageRewardScorer.from_folder(folder, tokenizer_dir=tmp_path / "no-tokenizer")
    (folder / "ImageReward.pt").unlink()
    with pytest.raises(ScorerWeightsMissing, match="ImageReward.pt"):
        ImageRewardScorer.from_folder(folder)


def test_bad_inputs_raise_clear_errors(scorer):
    with pytest.raises(ValueError, match="2 prompts but 1 images"):
        scorer.score(["a", "b"], [Image.new("RGB", (8, 8))])
    with pytest.raises(TypeError, match="expected str"):
        scorer.score([None], [Image.new("RGB", (8, 8))])
    with pytest.raises(FileNotFoundError, match="image file not found"):
        scorer.score(["a"], ["/nonexistent/image.png"])


def test_default_vision_config_is_the_released_vit_large():
    from mmada_scoring.imagereward import ORIGINAL_VISION_CONFIG, _vision_config

    config = _vision_config(ORIGINAL_VISION_CONFIG)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (1024, 24, 16)
    assert (config.image_size, config.patch_size, config.intermediate_size) == (224, 16, 4096)
    assert config.layer_norm_eps == 1e-6  # BlipVisionConfig's default 1e-5 would be wrong
