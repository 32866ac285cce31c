"""MAGVIT-v2 tokenizer and image processing vs the golden outputs of the official code."""
from __future__ import annotations

import io
import json

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

ATOL = 1e-4  # conformance README section 4: encoder_out_z / decode_code


def npz_key(ref: str) -> str:
    assert ref.startswith("npz:"), ref
    return ref[len("npz:"):].split()[0]


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
def pixels(golden) -> torch.Tensor:
    return torch.from_numpy(golden["npz"][npz_key(golden["magvitv2"]["pixel_values"])])


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
    assert codes.shape[1] == golden["magvitv2"]["grid"] ** 2


@pytest.mark.conformance
def test_encoder_output_within_tolerance(tiny, pixels, golden):
    with torch.no_grad():
        z = tiny.encode_z(pixels)
    expected = golden["npz"][npz_key(golden["magvitv2"]["encoder_out_z"])]
    assert max_abs(z, expected) <= ATOL


@pytest.mark.conformance
def test_quantizer_losses_match(tiny, pixels, golden):
    with torch.no_grad():
        out = tiny.quantize(tiny.encode_z(pixels))
    for name, value in golden["magvitv2"]["quantizer_losses"].items():
        assert abs(out[name].item() - value) <= 1e-5 * max(1.0, abs(value)), name
    assert out["indices"].tolist() == golden["magvitv2"]["get_code"]


@pytest.mark.conformance
def test_decode_code_within_tolerance(tiny, golden):
    codes = torch.tensor(golden["magvitv2"]["get_code"])
    with torch.no_grad():
        decoded = tiny.decode_code(codes)
    assert max_abs(decoded, golden["npz"][npz_key(golden["magvitv2"]["decode_code"])]) <= ATOL


@pytest.mark.conformance
def test_decode_t2i_codes_within_tolerance(tiny, golden):
    record = next(r for r in golden["t2i_generate"] if r["tag"] == "g3.5")
    k = golden["magvitv2"]["codebook_size"]
    codes = torch.tensor(record["returned_sampled_ids"]).clamp(0, k - 1)
    with torch.no_grad():
        decoded = tiny.decode_code(codes)
    assert max_abs(decoded, golden["npz"]["mv_decode_t2i_g3.5"]) <= ATOL


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
    assert model.codebook_size == 2 ** 13 and model.config.downsample_factor == 16


# --------------------------------------------------------------------------- loading


def _write_weights(folder, state, fixture_config):
    folder.mkdir()
    save_file(state, str(folder / "pytorch_model.safetensors"))
    (folder / "magvit_config.json").write_text(json.dumps(fixture_config.to_official_kwargs()))
    return folder


@pytest.mark.conformance
def test_strict_loading_names_missing_unexpected_and_mismatched(magvit_dir, fixture_config, tmp_path):
    state = load_file(str(magvit_dir / "pytorch_model.safetensors"))

    missing = dict(state)
    missing.pop("decoder.up.2.block.1.conv2.weight")
    with pytest.raises(MAGVITLoadError, match=r"missing keys \['decoder\.up\.2\.block\.1\.conv2\.weight'\]"):
        MAGVITv2.from_pretrained(_write_weights(tmp_path / "missing", missing, fixture_config))

    extra = dict(state, **{"encoder.down.0.attn.0.q.weight": torch.zeros(32, 32, 1, 1)})
    with pytest.raises(MAGVITLoadError, match=r"unexpected keys \['encoder\.down\.0\.attn\.0\.q\.weight'\]"):
        MAGVITv2.from_pretrained(_write_weights(tmp_path / "extra", extra, fixture_config))

    wrong = dict(state, **{"quantize.embedding": torch.zeros(32, 6)})
    with pytest.raises(MAGVITLoadError, match=r"quantize\.embedding: checkpoint \(32, 6\) vs model \(64, 6\)"):
        MAGVITv2.from_pretrained(_write_weights(tmp_path / "wrong", wrong, fixture_config))


@pytest.mark.conformance
def test_official_config_only_means_real_architecture(magvit_dir, tmp_path):
    folder = tmp_path / "official_only"
    folder.mkdir()
    (folder / "pytorch_model.safetensors").write_bytes((magvit_dir / "pytorch_model.safetensors").read_bytes())
    (folder / "config.json").write_text(json.dumps({"_class_name": "MAGVITv2"}))
    with pytest.raises(MAGVITLoadError, match=r"encoder\.conv_in\.weight: checkpoint \(32, 3, 3, 3\) vs model \(128, 3, 3, 3\)"):
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
def test_lfq_bit_order_and_bad_codes(tiny):
    dim = tiny.config.quantizer.codebook_dim
    z = torch.full((1, dim, 1, 2), -0.5)
    z[0, 0, 0, 0] = 0.7  # most significant bit of the first position
    z[0, dim - 1, 0, 1] = 0.0  # zero counts as a 0 bit (-1)
    assert tiny.quantize.codes(z).tolist() == [[2 ** (dim - 1), 0]]
    with pytest.raises(ValueError, match="must lie in"):
        tiny.decode_code(torch.tensor([[0] * 15 + [tiny.codebook_size]]))
    with pytest.raises(ValueError, match="square grid"):
        tiny.decode_code(torch.zeros(1, 15, dtype=torch.long))


# --------------------------------------------------------------------------- preprocessing


@pytest.mark.conformance
def test_uint8_image_preprocesses_to_golden_pixels(golden):
    chw = golden["npz"]["mv_image1_uint8_CHW"]
    image = Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))
    resolution = golden["magvitv2"]["resolution"]
    expected = golden["npz"][npz_key(golden["magvitv2"]["pixel_values"])][1]
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
