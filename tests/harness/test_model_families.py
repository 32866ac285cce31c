"""LLaDA (text-only diffusion) and autoregressive (hf-causal) checkpoints through the harness, built tiny and random."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from mmada_bench.models.base import GenerationRequest
from mmada_bench.models.loader import ModelLoadError, detect_family, resolve_model
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings
from mmada_ref.sampling.presets import get_preset

REPO = Path(__file__).resolve().parents[2]
SMOKE_DATA = REPO / "mmada_bench" / "assets" / "smoke"
CHAT_TEMPLATE = ("{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n{{ m['content'] }}"
                 "<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n"
                 "{% endif %}")


def _tokenizer(folder: Path):
    from mmada_ref.text_tokenizer import build_tiny_tokenizer

    corpus = [json.loads(line)["question"] for line in (SMOKE_DATA / "gsm8k" / "train.jsonl").read_text().splitlines()]
    return build_tiny_tokenizer(corpus, folder, n_text_tokens=280)


@pytest.fixture(scope="module")
def llada_dir(tmp_path_factory) -> Path:
    """A random LLaDA-layout checkpoint: MMaDA backbone weights, config.json of model_type llada, no image side."""
    from mmada_ref import MMaDAModelLM
    from mmada_ref.config import tiny_config

    folder = tmp_path_factory.mktemp("llada-tiny")
    _tokenizer(folder)
    torch.manual_seed(0)
    MMaDAModelLM(tiny_config()).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    for key in ("codebook_size", "num_vq_tokens", "new_vocab_size", "llm_vocab_size"):
        config.pop(key, None)
    config.update(model_type="llada", architectures=["LLaDAModelLM"])
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    """A random LlamaForCausalLM with a locally built tokenizer that has a chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("llama-tiny")
    tok = _tokenizer(folder)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_families_are_detected_from_config(llada_dir, llama_dir, tmp_path):
    assert detect_family(llada_dir) == "llada"
    assert detect_family(llama_dir) == "hf-causal"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "not-a-model"}))
    with pytest.raises(ModelLoadError, match="unknown model_type 'not-a-model'.*hf-causal"):
        detect_family(tmp_path)


def test_llada_checkpoint_runs_text_and_refuses_images(llada_dir, tmp_path):
    model = resolve_model(str(llada_dir))
    assert model.family == "llada" and model.name == llada_dir.name
    preset = get_preset("ci")
    request = GenerationRequest("q1", "Question: what is 2 plus 3?\nAnswer:", stop=["Question:"], seed=7)
    first, again = model.generate([request], preset)[0], model.generate([request], preset)[0]
    assert first.nfe > 0 and first.text == again.text
    with pytest.raises(ValueError, match="text only"):
        model.generate([GenerationRequest("q2", "Describe", image=object())], preset)
    assert resolve_model(f"llada:{llada_dir}").family == "llada"


def test_hf_causal_greedy_generate_with_stops_and_chat_template(llama_dir):
    model = resolve_model(str(llama_dir))
    assert model.family == "hf-causal"
    preset = get_preset("ci")
    plain = GenerationRequest("q1", "Question: what is 2 plus 3?\nAnswer:", seed=1)
    (unstopped,) = model.generate([plain], preset)
    assert 0 < unstopped.n_generated_tokens <= preset.settings.gen_length
    # a stop string taken from the free-running output must end generation at (or just past) it
    stop = unstopped.text[2:6]
    if stop.strip():
        (stopped,) = model.generate([GenerationRequest("q1", plain.prompt, stop=[stop], seed=1)], preset)
        assert stopped.text.startswith(unstopped.text[: unstopped.text.index(stop)])
        assert stop in stopped.text and len(stopped.text) <= len(unstopped.text)
    batch = model.generate([plain, GenerationRequest("q2", "Question: a much longer prompt about apples and "
                                                     "oranges?\nAnswer:", seed=2)], preset)
    assert batch[0].text == unstopped.text  # left padding does not change greedy outputs
    chat = GenerationRequest("q3", "hi", messages=[{"role": "user", "content": "hi"}])
    assert model.prompt_text(chat).endswith("<|start_header_id|>assistant<|end_header_id|>\n")
    assert model.generate([chat], preset)[0].error is None


def test_leaderboard_names_the_family(llada_dir, llama_dir, tmp_path):
    out = tmp_path / "out"
    for folder in (llada_dir, llama_dir):
        run(RunSettings(tasks=["gsm8k"], model=str(folder), data_dir="smoke", limit=1, preset="ci",
                        output_dir=str(out), progress=False))
    board = pq.read_table(out / "leaderboard.parquet").to_pandas()
    assert dict(zip(board.model_name, board.model_family)) == {llada_dir.name: "llada", llama_dir.name: "hf-causal"}


def test_cpu_gemm_option_is_the_default_on_a_float32_cpu_and_recorded(tmp_path):
    from mmada_bench.models.smoke import SMOKE_MODEL_DIR
    from mmada_ref.cpu_gemm import PackedLinear, onednn_linear_available

    if not onednn_linear_available():
        pytest.skip("this torch build has no usable oneDNN linear operators")
    packed = resolve_model(str(SMOKE_MODEL_DIR))
    dense = resolve_model(f"{SMOKE_MODEL_DIR}:cpu_gemm=default")
    assert (packed.gemm, dense.gemm) == ("onednn", "default")
    layers = [m for m in packed.model.modules() if isinstance(m, PackedLinear)]
    assert layers and all(m.is_packed for m in layers)
    assert not any(m.is_packed for m in dense.model.modules() if isinstance(m, PackedLinear))
    with pytest.raises(ModelLoadError, match="cpu_gemm"):
        resolve_model(f"{SMOKE_MODEL_DIR}:cpu_gemm=mkl")
    ids = {}
    for spec, gemm in ((str(SMOKE_MODEL_DIR), "onednn"), (f"{SMOKE_MODEL_DIR}:cpu_gemm=default", "default")):
        out = tmp_path / gemm
        run(RunSettings(tasks=["gsm8k"], model=spec, data_dir="smoke", limit=1, preset="ci", output_dir=str(out),
                        progress=False))
        (manifest_path,) = out.glob("runs/*/manifest.json")
        manifest = json.loads(manifest_path.read_text())
        assert manifest["model"]["gemm"] == gemm
        ids[gemm] = manifest["run_id"]
    assert ids["onednn"] != ids["default"]  # outputs may differ in the last bits: never one run id


def test_cpu_gemm_native_serves_cached_steps_natively_or_warns_and_stays_on_onednn(tmp_path, monkeypatch):
    from mmada_bench.models.smoke import SMOKE_MODEL_DIR
    from mmada_ref import cpu_native
    from mmada_ref.cpu_gemm import onednn_linear_available

    if not onednn_linear_available():
        pytest.skip("this torch build has no usable oneDNN linear operators")
    if cpu_native.load_kernels() is not None:
        native = resolve_model(f"{SMOKE_MODEL_DIR}:cpu_gemm=native")
        assert native.gemm == "native" and native.model.uses_native_step
        out = tmp_path / "native"
        run(RunSettings(tasks=["gsm8k"], model=f"{SMOKE_MODEL_DIR}:cpu_gemm=native", data_dir="smoke", limit=1,
                        preset="ci", output_dir=str(out), progress=False))
        (manifest_path,) = out.glob("runs/*/manifest.json")
        assert json.loads(manifest_path.read_text())["model"]["gemm"] == "native"
    cpu_native._load.cache_clear()
    monkeypatch.setattr("torch.backends.cpu.get_cpu_capability", lambda: "AVX2")
    try:
        with pytest.warns(UserWarning, match="cpu_gemm=native: native CPU kernels need AVX-512.*using onednn"):
            fallback = resolve_model(f"{SMOKE_MODEL_DIR}:cpu_gemm=native")
        assert fallback.gemm == "onednn" and not fallback.model.uses_native_step
    finally:
        cpu_native._load.cache_clear()
