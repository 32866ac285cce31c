"""Throughput of each scorer on synthetic items (items/s), kept out of the default test run.

    python -m pytest benchmarks/test_bench_scorers.py --benchmark-columns=mean,stddev,rounds

GSM8K / MATH500 / POPE / MME score 200 synthetic generations; the caption scorer 20 captions
(lmms-eval pipeline: PTB tokenizer needs Java, else that case is skipped); CLIP score runs a tiny
random open_clip model on 16 images (no downloaded weights).
"""
import json
import random
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

N = 200


def _rng():
    return random.Random(0)


def _record(benchmark, report, name: str, n: int) -> None:
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(items_per_s=n / seconds)
    report(f"scorer {name}: {n} items in {1000 * seconds:.1f} ms = {n / seconds:,.0f} items/s")


def test_gsm8k_scorer(benchmark, report):
    from mmada_scoring.gsm8k import score_items

    rng = _rng()
    answers = [f"step one\n#### {rng.randint(0, 999)}" for _ in range(N)]
    predictions = [f"Let me think. The answer is {rng.randint(0, 999)}.\n#### {rng.randint(0, 999)}\n\nQuestion: x"
                   for _ in range(N)]
    benchmark.pedantic(score_items, args=(predictions, answers), rounds=5, warmup_rounds=1)
    _record(benchmark, report, "gsm8k", N)


def test_math500_scorer(benchmark, report):
    pytest.importorskip("math_verify")
    from mmada_scoring.math500 import score_items

    rng = _rng()
    answers = [rng.choice([r"\frac{1}{2}", "3", r"\sqrt{2}", "x^2+1", r"(1, 2)"]) for _ in range(40)]
    predictions = [f"so the result is $\\boxed{{{rng.choice(answers)}}}$" for _ in range(40)]
    benchmark.pedantic(score_items, args=(predictions, answers), rounds=3, warmup_rounds=1)
    _record(benchmark, report, "math500 (math-verify)", 40)


def test_pope_scorer(benchmark, report):
    from mmada_scoring.pope import score_pope

    rng = _rng()
    items = [{"id": i, "answer": rng.choice(["yes", "no"]), "prediction": rng.choice(["Yes", "No, there is not.", "yes it is"]),
              "category": rng.choice(["random", "popular", "adversarial"])} for i in range(N)]
    benchmark.pedantic(score_pope, args=(items,), rounds=5, warmup_rounds=1)
    _record(benchmark, report, "pope (vlmevalkit)", N)


def test_mme_scorer(benchmark, report):
    from mmada_scoring.mme import score_mme

    rng = _rng()
    items = [{"question_id": f"q{i}", "image_path": f"img{i // 2}.jpg", "category": rng.choice(["color", "OCR", "count"]),
              "answer": "Yes" if i % 2 == 0 else "No", "prediction": rng.choice(["Yes", "No", "yes."])} for i in range(N)]
    benchmark.pedantic(score_mme, args=(items,), rounds=5, warmup_rounds=1)
    _record(benchmark, report, "mme (vlmevalkit)", N)


@pytest.mark.parametrize("variant", ["lmms_eval", "vlmevalkit"])
def test_caption_scorer(benchmark, report, variant):
    pytest.importorskip("pycocoevalcap")
    if variant == "lmms_eval" and shutil.which("java") is None:
        pytest.skip("the PTB tokenizer of the lmms-eval pipeline needs Java")
    from mmada_scoring.caption import score_captions

    rng = _rng()
    words = "a dog cat man woman runs sits on the grass beach red blue with near".split()
    caption = lambda: " ".join(rng.choice(words) for _ in range(8))  # noqa: E731
    items = [{"img_id": i, "caption": [caption() for _ in range(5)], "prediction": caption()} for i in range(20)]
    benchmark.pedantic(score_captions, args=(items, variant), rounds=2, warmup_rounds=0)
    _record(benchmark, report, f"caption ({variant})", 20)


def test_clip_scorer_tiny_model(benchmark, report, tmp_path):
    open_clip = pytest.importorskip("open_clip")
    from mmada_scoring.clip_score import ClipScorer

    name = "mmada-bench-tiny-clip"
    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / f"{name}.json")
    torch.manual_seed(0)
    torch.save(open_clip.create_model(name, pretrained=None).state_dict(), tmp_path / "tiny.pt")
    scorer = ClipScorer(name, checkpoint=tmp_path / "tiny.pt", pretrained=None)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)) for _ in range(16)]
    prompts = [f"a photo of object {i}" for i in range(16)]
    benchmark.pedantic(scorer.score, args=(images, prompts), rounds=3, warmup_rounds=1)
    _record(benchmark, report, "clip score (tiny open_clip)", 16)
