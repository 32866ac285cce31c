"""Strict safetensors loading and saving in the official format (single file and sharded)."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from mmada_ref import MMaDAModelLM
from mmada_ref.checkpoint import CheckpointError, fingerprint
from mmada_ref.config import tiny_config


@pytest.fixture()
def tiny_dir(tmp_path):
    torch.manual_seed(0)
    model = MMaDAModelLM(tiny_config())
    model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt", model


def _logits(model, seed=1):
    ids = torch.randint(0, model.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(ids).logits


def test_round_trip_single_file(tiny_dir):
    folder, model = tiny_dir
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert json.loads((folder / "config.json").read_text())["model_type"] == "mmada"
    assert torch.equal(_logits(MMaDAModelLM.from_pretrained(folder)), _logits(model))


def test_round_trip_sharded_with_index(tiny_dir, tmp_path):
    _, model = tiny_dir
    model.save_pretrained(tmp_path / "sharded", max_shard_size=20_000)
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert torch.equal(_logits(MMaDAModelLM.from_pretrained(tmp_path / "sharded")), _logits(model))


def test_saved_keys_are_the_official_names(tiny_dir):
    folder, _ = tiny_dir
    keys = set(load_file(folder / "model.safetensors"))
    assert "model.transformer.blocks.0.q_proj.weight" in keys and "model.transformer.ff_out.weight" in keys
    assert not any(".attn." in k for k in keys)


def test_missing_key_is_named(tiny_dir):
    folder, _ = tiny_dir
    state = load_file(folder / "model.safetensors")
    del state["model.transformer.blocks.1.up_proj.weight"]
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing keys: model\.transformer\.blocks\.1\.up_proj\.weight"):
        MMaDAModelLM.from_pretrained(folder)


def test_unexpected_key_and_wrong_shape_are_named(tiny_dir):
    folder, _ = tiny_dir
    state = load_file(folder / "model.safetensors")
    state["model.transformer.extra.weight"] = torch.zeros(2)
    state["model.transformer.ln_f.weight"] = torch.ones(3)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        MMaDAModelLM.from_pretrained(folder)
    assert "unexpected keys: model.transformer.extra.weight" in str(err.value)
    assert "shape of model.transformer.ln_f.weight" in str(err.value)


def test_folder_without_weights_gives_actionable_error(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        MMaDAModelLM.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no config.json"):
        MMaDAModelLM.from_pretrained(tmp_path / "nowhere")


def test_loads_conformance_fixture_in_bf16(conformance_dir):
    model = MMaDAModelLM.from_pretrained(conformance_dir, torch_dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert len(fingerprint(conformance_dir)) == 16
