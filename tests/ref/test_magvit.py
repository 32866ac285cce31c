"""MAGVIT-v2 tokenizer and image processing vs the golden outputs of the official code."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from mmada_ref.image_processing import (
    ImageLoadError,
    image_transform,
    image_transform_squash,
    load_image,
    preprocess_images,
    to_pil,
)
from mmada_ref.magvit import MAGVITConfig, MAGVITLoadError, MAGVITv2

ATOL = 1e-4  # conformance README section 4: encoder_out_z / decode_code (when golden.json states none)
LOSS_RTOL = 1e-5  # quantizer losses: |delta| <= LOSS_RTOL * max(1, |loss|)


def max_abs(a: torch.Tensor, b: np.ndarray) -> float:
    expected = torch.from_numpy(np.asarray(b))
    assert tuple(a.shape) == tuple(expected.shape)
    return (a.float() - expected.float()).abs().max().item()


@pytest.fixture(scope="module")
def magvit_dir(conformance_dir, golden):
    return conformance_dir / golden["magvitv2"]["dir"]


@pytest.fixture(scope="module")
def fixture_config(conformance_dir, golden) -> MAGVITConfig:
    return MAGVITConfig.from_official_kwargs(
        json.loads((conformance_dir / golden["magvitv2"]["config"]).read_text()))


@pytest.fixture(scope="module")
def tiny(magvit_dir) -> MAGVITv2:
    return MAGVITv2.from_pretrained(magvit_dir)


@pytest.fixture(scope="module")
def pixels(golden, golden_array) -> torch.Tensor:
    return torch.from_numpy(golden_array(golden["magvitv2"]["pixel_values"]))


@pytest.fixture(scope="module")
def atol(golden, tolerance) -> float:
    return tolerance(golden, "magvit_atol", ATOL)


def _n_codes(golden) -> int:
    """Codes per image: the fixture's grid is ``grid x grid``."""
    return golden["magvitv2"]["grid"] ** 2


def _downsample_factor(keys) -> int:
    """2 ** (number of encoder levels that downsample), read off a key list."""
    return 2 ** sum(1 for key in keys if key.startswith("encoder.down.") and key.endswith(".downsample.conv.weight"))


# --------------------------------------------------------------------------- conformance


@pytest.mark.conformance
def test_codes_equal_golden(tiny, pixels, golden):
    with torch.no_grad():
        codes = tiny.get_code(pixels)
        z_q, encode_codes = tiny.encode(pixels)
    assert codes.dtype == torch.long
    assert codes.tolist() == golden["magvitv2"]["get_code"]
    assert encode_codes.tolist() == golden["magvitv2"]["encode_indices"]
    assert set(z_q.unique().tolist()) <= {-1.0, 1.0}
    assert int(codes.max()) < golden["magvitv2"]["codebook_size"]
    assert codes.shape[1] == _n_codes(golden)


@pytest.mark.conformance
def test_encoder_output_within_tolerance(tiny, pixels, golden, golden_array, atol):
    with torch.no_grad():
        z = tiny.encode_z(pixels)
    assert max_abs(z, golden_array(golden["magvitv2"]["encoder_out_z"])) <= atol


@pytest.mark.conformance
def test_quantizer_losses_match(tiny, pixels, golden, tolerance):
    rtol = tolerance(golden, "quantizer_loss_rtol", LOSS_RTOL)
    with torch.no_grad():
        out = tiny.quantize(tiny.encode_z(pixels))
    for name, value in golden["magvitv2"]["quantizer_losses"].items():
        assert abs(out[name].item() - value) <= rtol * max(1.0, abs(value)), name
    assert out["indices"].tolist() == golden["magvitv2"]["get_code"]


@pytest.mark.conformance
def test_decode_code_within_tolerance(tiny, golden, golden_array, atol):
    codes = torch.tensor(golden["magvitv2"]["get_code"])
    with torch.no_grad():
        decoded = tiny.decode_code(codes)
    assert max_abs(decoded, golden_array(golden["magvitv2"]["decode_code"])) <= atol


@pytest.mark.conformance
def test_decode_t2i_codes_within_tolerance(tiny, golden, golden_array, atol):
    described = golden["magvitv2"]["decode_t2i"]  # "npz:<key> = decode_code(clamp(t2i_generate['<tag>']...))"
    tag = re.search(r"t2i_generate\['([^']+)'\]", described).group(1)
    record = next(r for r in golden["t2i_generate"] if r["tag"] == tag)
    k = golden["magvitv2"]["codebook_size"]
    codes = torch.tensor(record["returned_sampled_ids"]).clamp(0, k - 1)
    with torch.no_grad():
        decoded = tiny.decode_code(codes)
    assert max_abs(decoded, golden_array(described)) <= atol


@pytest.mark.conformance
def test_fixture_config_gives_golden_keys(fixture_config, golden):
    with torch.device("meta"):
        model = MAGVITv2(fixture_config)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == golden["magvitv2"]["keys"]


@pytest.mark.conformance
def test_real_config_keys_and_shapes(conformance_root):
    reference = json.loads((conformance_root / "keys_magvitv2.json").read_text())
    with torch.device("meta"):
        model = MAGVITv2(MAGVITConfig.real())
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {e["key"]: e["shape"] for e in reference["keys"]}
    assert len(shapes) == reference["num_keys"]
    assert sum(p.numel() for p in model.parameters()) == reference["total_params_excluding_buffers"]
    codebook, bits = shapes["quantize.embedding"]
    assert model.codebook_size == codebook == 2 ** bits
    assert model.config.downsample_factor == _downsample_factor(shapes)


# --------------------------------------------------------------------------- loading


def _write_weights(folder, state, fixture_config):
    folder.mkdir()
    save_file(state, str(folder / "pytorch_model.safetensors"))
    (folder / "magvit_config.json").write_text(json.dumps(fixture_config.to_official_kwargs()))
    return folder


@pytest.mark.conformance
def _shape(shape) -> str:
    return re.escape(str(tuple(shape)))


@pytest.mark.conformance
def test_strict_loading_names_missing_unexpected_and_mismatched(magvit_dir, fixture_config, golden, tmp_path):
    state = load_file(str(magvit_dir / "pytorch_model.safetensors"))
    assert {k: list(v.shape) for k, v in state.items()} == golden["magvitv2"]["keys"]

    missing_key = next(k for k in reversed(golden["magvitv2"]["keys"]) if k.startswith("decoder.up.")
                       and k.endswith(".conv2.weight"))  # a deep decoder conv
    missing = dict(state)
    missing.pop(missing_key)
    with pytest.raises(MAGVITLoadError, match=rf"missing keys \[{re.escape(repr(missing_key))}\]"):
        MAGVITv2.from_pretrained(_write_weights(tmp_path / "missing", missing, fixture_config))

    extra_key = "encoder.down.0.attn.0.q.weight"  # attention at the first encoder level: never built here
    assert extra_key not in state
    extra = dict(state, **{extra_key: torch.zeros_like(state["encoder.mid.attn_1.q.weight"])})
    with pytest.raises(MAGVITLoadError, match=rf"unexpected keys \[{re.escape(repr(extra_key))}\]"):
        MAGVITv2.from_pretrained(_write_weights(tmp_path / "extra", extra, fixture_config))

    codebook, bits = golden["magvitv2"]["keys"]["quantize.embedding"]
    wrong = dict(state, **{"quantize.embedding": torch.zeros(codebook // 2, bits)})
    with pytest.raises(MAGVITLoadError, match=rf"quantize\.embedding: checkpoint {_shape((codebook // 2, bits))} "
                                              rf"vs model {_shape((codebook, bits))}"):
        MAGVITv2.from_pretrained(_write_weights(tmp_path / "wrong", wrong, fixture_config))


@pytest.mark.conformance
def test_official_config_only_means_real_architecture(magvit_dir, golden, conformance_root, tmp_path):
    folder = tmp_path / "official_only"
    folder.mkdir()
    (folder / "pytorch_model.safetensors").write_bytes((magvit_dir / "pytorch_model.safetensors").read_bytes())
    (folder / "config.json").write_text(json.dumps({"_class_name": "MAGVITv2"}))
    real = {e["key"]: e["shape"] for e in json.loads((conformance_root / "keys_magvitv2.json").read_text())["keys"]}
    tiny_shape = golden["magvitv2"]["keys"]["encoder.conv_in.weight"]
    assert tiny_shape != real["encoder.conv_in.weight"]
    with pytest.raises(MAGVITLoadError, match=rf"encoder\.conv_in\.weight: checkpoint {_shape(tiny_shape)} "
                                              rf"vs model {_shape(real['encoder.conv_in.weight'])}"):
        MAGVITv2.from_pretrained(folder)
    (folder / "config.json").unlink()
    with pytest.raises(MAGVITLoadError, match="no MAGVIT config"):
        MAGVITv2.from_pretrained(folder)


@pytest.mark.conformance
def test_save_load_round_trip(tiny, pixels, tmp_path):
    saved = tiny.save_pretrained(tmp_path / "saved")
    reloaded = MAGVITv2.from_pretrained(saved)
    assert reloaded.config == tiny.config
    original, restored = tiny.state_dict(), reloaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert original[key].dtype == restored[key].dtype, key
        assert torch.equal(original[key], restored[key]), key
    with torch.no_grad():
        assert torch.equal(reloaded.get_code(pixels), tiny.get_code(pixels))
    # a single file plus an explicit config loads too
    file_only = MAGVITv2.from_pretrained(saved / "pytorch_model.safetensors", config=tiny.config)
    assert torch.equal(file_only.quantize.embedding, tiny.quantize.embedding)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MAGVITv2.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no pytorch_model.safetensors"):
        MAGVITv2.from_pretrained(tmp_path)


def test_config_rejects_inconsistent_settings():
    kwargs = MAGVITConfig.real().to_official_kwargs()
    kwargs["decoder_kwargs"]["z_channels"] = 12
    with pytest.raises(ValueError, match="z_channels"):
        MAGVITConfig.from_official_kwargs(kwargs)
    kwargs = MAGVITConfig.real().to_official_kwargs()
    kwargs["encoder_kwargs"]["widht"] = 3
    with pytest.raises(MAGVITLoadError, match="widht"):
        MAGVITConfig.from_official_kwargs(kwargs)


@pytest.mark.conformance
def test_lfq_bit_order_and_bad_codes(tiny, golden):
    n = _n_codes(golden)
    dim = tiny.config.quantizer.codebook_dim
    z = torch.full((1, dim, 1, 2), -0.5)
    z[0, 0, 0, 0] = 0.7  # most significant bit of the first position
    z[0, dim - 1, 0, 1] = 0.0  # zero counts as a 0 bit (-1)
    assert tiny.quantize.codes(z).tolist() == [[2 ** (dim - 1), 0]]
    with pytest.raises(ValueError, match="must lie in"):
        tiny.decode_code(torch.tensor([[0] * (n - 1) + [tiny.codebook_size]]))
    with pytest.raises(ValueError, match="square grid"):
        tiny.decode_code(torch.zeros(1, n - 1, dtype=torch.long))


# --------------------------------------------------------------------------- preprocessing


@pytest.mark.conformance
def test_uint8_image_preprocesses_to_golden_pixels(golden, golden_array):
    described = golden["magvitv2"]["pixel_values"]  # "... image1 = uint8 random image (npz:<key>) /255 ..."
    chw = golden_array(re.search(r"\((npz:\S+)\)", described).group(1))
    image = Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))
    resolution = golden["magvitv2"]["resolution"]
    expected = golden_array(described)[1]
    assert torch.equal(image_transform(image, resolution), torch.from_numpy(expected))
    assert torch.equal(preprocess_images([image, image], resolution)[1], torch.from_numpy(expected))


def _non_square_image(width=48, height=20) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_resize_crop_and_squash_shapes_and_ranges():
    image = _non_square_image()
    crop = image_transform(image, 16)
    squash = image_transform_squash(image, 16)
    for tensor in (crop, squash):
        assert tensor.shape == (3, 16, 16) and tensor.dtype == torch.float32
        assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    assert not torch.equal(crop, squash)
    # crop keeps the aspect ratio: equals squashing the central square of the short-side resize
    resized = image.resize((38, 16), Image.Resampling.BICUBIC)  # 48x20 -> short side 16
    left = int(round((38 - 16) / 2.0))
    center = resized.crop((left, 0, left + 16, 16))
    assert torch.equal(crop, image_transform_squash(center, 16))
    unnormalised = image_transform(image, 16, normalize=False)
    assert unnormalised.min() >= 0.0 and unnormalised.max() <= 1.0
    batch = preprocess_images([image, image.convert("L")], 16, mode="squash")
    assert batch.shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="mode"):
        preprocess_images([image], 16, mode="pad")


def test_image_sources_and_load_errors(tmp_path):
    image = _non_square_image()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    encoded = buffer.getvalue()
    path = tmp_path / "ok.png"
    path.write_bytes(encoded)
    for source in (encoded, path, str(path), io.BytesIO(encoded), image.convert("RGBA")):
        assert np.array_equal(np.asarray(load_image(source)), np.asarray(image))

    with pytest.raises(ImageLoadError, match="bytes"):
        load_image(b"definitely not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(encoded[: len(encoded) // 2])
    with pytest.raises(ImageLoadError, match="truncated.png"):
        image_transform(truncated, 16)
    with pytest.raises(ImageLoadError, match="missing.jpg"):
        preprocess_images([path, tmp_path / "missing.jpg"], 16)
    with pytest.raises(ImageLoadError, match="int"):
        load_image(42)


def test_to_pil_clamps_scales_and_truncates():
    decoded = torch.tensor([-3.0, -1.0, 0.0, 0.5, 1.0, 7.0]).view(1, 1, 1, 6).expand(2, 3, 1, 6)
    images = to_pil(decoded)
    assert len(images) == 2 and images[0].mode == "RGB" and images[0].size == (6, 1)
    row = np.asarray(images[1])[0, :, 0].tolist()
    assert row == [0, 0, 127, 191, 255, 255]  # (x+1)/2*255, truncated like astype(uint8)
    assert len(to_pil(decoded[0])) == 1
