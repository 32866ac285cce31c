"""The world CLIP (tiny training, saved folder, the harness's --clip-dir / MODEL/clip path) and geneval_world."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from mmada_bench.metrics import SET_METRICS  # noqa: E402
from mmada_bench.metrics.image_metrics import with_model_clip  # noqa: E402
from mmada_bench.models.smoke import DEFAULT_MODEL_DIR, SMOKE_MODEL_DIR, WORLD_MODEL_DIR  # noqa: E402
from mmada_bench.world import language as L  # noqa: E402
from mmada_bench.world.clip import to_pixels  # noqa: E402
from mmada_bench.world.scene import Scene, WorldObject, draw, sample_scene  # noqa: E402
from mmada_bench.world.seeds import EVAL_SPLIT, item_rng  # noqa: E402
from mmada_scoring.scorer_weights import ScorerWeightsMissing  # noqa: E402

# 512 BPE tokens split captions finer than the default 1024: a longer context
TINY = {"steps": 15, "n": 256, "batch": 32, "threads": 1, "width": 32, "layers": 1, "patch": 8, "context_length": 48}


@pytest.fixture(scope="module")
def world_clip(tmp_path_factory):
    """A world CLIP trained for 15 steps on 256 pairs (tiny towers), with a small world tokenizer."""
    from mmada_bench.world.clip import train_world_clip
    from mmada_bench.world.tokenizer import train_world_tokenizer

    tokenizer = tmp_path_factory.mktemp("clip_tokenizer")
    train_world_tokenizer(tokenizer, vocab_size=512, n=300)
    out = tmp_path_factory.mktemp("world_clip")
    return out, train_world_clip(out, tokenizer=tokenizer, **TINY)


def _scenes(n: int, stream: str = "clip-test") -> list[Scene]:
    return [sample_scene(item_rng(5, EVAL_SPLIT, stream, i)) for i in range(n)]


def _entries(prompts, images, categories=None) -> list[dict]:
    return [{"item_id": f"i{k}", "prompt": p, "image": im, "doc": {"category": (categories or [None] * len(prompts))[k]}}
            for k, (p, im) in enumerate(zip(prompts, images))]


def test_training_saves_an_open_clip_folder(world_clip):
    out, report = world_clip
    config = json.loads((out / "open_clip_config.json").read_text())
    assert set(config) >= {"model_cfg", "preprocess_cfg"} and config["name"] == "world-clip"
    assert config["model_cfg"]["text_cfg"]["vocab_size"] == 512 + 20 == report["vocab_size"]
    assert {p.name for p in out.iterdir()} >= {"open_clip_config.json", "open_clip_model.safetensors", "tokenizer.json",
                                               "clip_train.json"}
    assert json.loads((out / "clip_train.json").read_text())["steps"] == 15
    assert report["folder_bytes"] < 5_000_000
    assert report["loss"]["last"] < report["loss"]["first"]
    retrieval = report["retrieval"]
    assert retrieval["n"] == 100 and retrieval["split"] == "world"
    assert 0 < retrieval["chance_top1"] < 0.1 and 0 <= retrieval["image_to_caption_top1"] <= 1


def test_open_clip_loads_the_folder_with_its_own_loader(world_clip):
    out, _ = world_clip
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    tokens = open_clip.get_tokenizer(f"local-dir:{out}")(["a red circle in the top left"])
    assert tokens.shape == (1, 48) and type(model).__name__ == "CLIP"
    image = draw(_scenes(1)[0])
    pixels = preprocess(image)  # the scorer's transform = the pixels the CLIP was trained on
    trained = to_pixels(np.asarray(image).transpose(2, 0, 1)[None])[0]
    assert torch.allclose(pixels, trained, atol=1e-6)
    assert model.encode_text(tokens).shape[-1] == model.encode_image(pixels[None]).shape[-1]


def test_clip_dir_scores_through_the_harness_metric(world_clip):
    out, _ = world_clip
    scenes = _scenes(4)
    entries = _entries([L.scene_caption(s) for s in scenes], [draw(s) for s in scenes])
    [row] = SET_METRICS.get("clip_score")(entries, {"clip_dir": str(out), "batch_size": 3})
    assert row["label"] == "world-clip" and row["n"] == 4 and math.isfinite(row["value"])
    assert all(0.0 <= v <= 100.0 for v in row["per_item"].values())


def test_model_folder_clip_is_picked_without_clip_flags(world_clip, tmp_path):
    out, _ = world_clip
    shutil.copytree(out, tmp_path / "model" / "clip")
    model = str(tmp_path / "model")
    assert with_model_clip({}, model) == {"clip_dir": str(tmp_path / "model" / "clip")}
    assert with_model_clip({"clip_checkpoint": "x.pt"}, model) == {"clip_checkpoint": "x.pt"}  # a flag wins
    assert with_model_clip({}, str(tmp_path)) == {} and with_model_clip({}, "dummy") == {}


def test_bad_clip_folders_give_one_clear_error(world_clip, tmp_path):
    from mmada_scoring.clip_score import ClipScorer, resolve_clip_checkpoint

    out, _ = world_clip
    shutil.copy(out / "open_clip_config.json", tmp_path / "open_clip_config.json")
    with pytest.raises(ScorerWeightsMissing, match="has no weights.*--clip-dir"):
        ClipScorer.from_dir(tmp_path)
    with pytest.raises(ScorerWeightsMissing, match="--clip-dir"):
        ClipScorer.from_dir(tmp_path / "absent")
    with pytest.raises(ValueError, match="is a folder.*--clip-dir"):
        resolve_clip_checkpoint("ViT-B-32", None, checkpoint=out)
    with pytest.raises(ValueError, match="drop --clip-model"):
        SET_METRICS.get("clip_score")(_entries(["a red circle"], [draw(_scenes(1)[0])]),
                                      {"clip_dir": str(out), "clip_model": "ViT-B-32"})


def test_bad_training_arguments_are_refused(tmp_path):
    from mmada_bench.world.clip import train_world_clip

    with pytest.raises(ValueError, match="batch <= n"):
        train_world_clip(tmp_path, steps=1, n=8, batch=16)
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        train_world_clip(tmp_path, steps=1, n=8, batch=4, tokenizer=tmp_path)


# ------------------------------------------------------------------ geneval_world

def test_geneval_world_scores_matching_and_mismatching_prompts():
    scenes = _scenes(6)
    images = [draw(s) for s in scenes]
    matching = [L.describe(s.objects, with_cells=bool(i % 2)) for i, s in enumerate(scenes)]
    wrong = [L.describe([WorldObject("blue" if o.colour != "blue" else "red", o.shape, o.cell) for o in s.objects])
             for s in scenes]
    metric = SET_METRICS.get("geneval_world")
    rows = {r["metric"]: r for r in metric(_entries(matching, images), {})}
    assert rows["geneval_world"]["value"] == 1.0 and rows["geneval_world"]["n"] == 6
    assert rows["geneval_world"]["label"] == "world-oracle"
    assert rows["geneval_world_unparsable"]["value"] == 0.0
    rows = {r["metric"]: r for r in metric(_entries(wrong, images), {})}
    assert rows["geneval_world"]["value"] == 0.0 and set(rows["geneval_world"]["per_item"].values()) == {0.0}


def test_geneval_world_per_category_and_unparsable_prompts():
    one = Scene((WorldObject("green", "square", "bottom left", (10, 10)),))
    image = draw(one)
    prompts = ["a green square in the bottom left", "a green square", "a red circle and a green square",
               "a lighthouse at night"]
    categories = ["single_position", "single", "pair", "single"]
    rows = {r["metric"]: r for r in SET_METRICS.get("geneval_world")(_entries(prompts, [image] * 4, categories), {})}
    main = rows["geneval_world"]
    assert main["n"] == 3 and main["value"] == pytest.approx(2 / 3) and "i3" not in main["per_item"]
    assert main["item_errors"] == {}  # an unparsable prompt is not a failed image
    unparsable = rows["geneval_world_unparsable"]
    assert unparsable["n_unparsable"] == 1 and unparsable["n"] == 4 and unparsable["value"] == 0.25
    single = rows["geneval_world[category=single]"]
    assert single["breakdown"] == "category=single" and single["n"] == 1 and single["n_errors"] == 1
    assert rows["geneval_world[category=pair]"]["value"] == 0.0
    assert rows["geneval_world[category=single_position]"]["value"] == 1.0


def test_geneval_world_on_a_real_prompt_set_has_no_value():
    prompts = ["a red apple on a table", "two dogs running in the snow"]
    rows = {r["metric"]: r for r in SET_METRICS.get("geneval_world")(_entries(prompts, [draw(_scenes(1)[0])] * 2), {})}
    assert rows["geneval_world"]["n"] == 0 and math.isnan(rows["geneval_world"]["value"])
    assert rows["geneval_world_unparsable"]["value"] == 1.0


# ------------------------------------------------------------------ a t2i run with a model folder that ships clip/

def test_t2i_run_scores_with_the_model_folders_clip(world_clip, tmp_path):
    from mmada_bench.models.loader import resolve_model
    from mmada_bench.run import image_outputs
    from mmada_bench.run.runner import run
    from mmada_bench.run.types import RunSettings

    out, _ = world_clip
    shutil.copytree(out, tmp_path / "model" / "clip")
    prompts = tmp_path / "world.jsonl"
    rows = [{"id": "a", "prompt": "a red circle", "category": "single"},
            {"id": "b", "prompt": "a blue square in the top left and a green triangle", "category": "pair"}]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = RunSettings(tasks=["t2i"], model=str(tmp_path / "model"), output_dir=str(tmp_path / "out"), preset="ci",
                           batch_size=2, prompts=str(prompts), progress=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(image_outputs, "MAX_TEXT_LEN", 24)
        outcome = run(settings, model=resolve_model(str(SMOKE_MODEL_DIR)))
    board = {(r["metric"], r["filter"]): r for r in outcome.rows}
    clip = board[("clip_score", "world-clip")]
    assert clip["is_primary"] and clip["n"] == 2 and math.isfinite(clip["value"])
    assert not any(f.startswith("ViT-L-14") for _, f in board)  # never labelled as the ViT-L-14 score
    oracle = board[("geneval_world", "world-oracle")]
    assert oracle["n"] + oracle["n_errors"] == 2 and 0.0 <= oracle["value"] <= 1.0
    assert board[("geneval_world[category=pair]", "world-oracle")]["breakdown"] == "category=pair"
    assert board[("geneval_world_unparsable", "world-oracle")]["value"] == 0.0


def _t2i_run(folder, prompts, images, run_id="run-a"):
    """A t2i run's item table and images laid out as ``run`` writes them (``items/<id>/t2i.parquet``,
    outputs relative to ``runs/<id>``); returns the table's path."""
    import pandas as pd

    image_dir = folder / "runs" / run_id / "images" / "t2i"
    image_dir.mkdir(parents=True)
    outputs = []
    for k, image in enumerate(images):
        image.save(image_dir / f"{k:05d}.png")
        outputs.append(f"images/t2i/{k:05d}.png")
    table = folder / "items" / run_id / "t2i.parquet"
    table.parent.mkdir(parents=True)
    pd.DataFrame({"run_id": run_id, "item_id": [f"i{k}" for k in range(len(prompts))], "prompt": prompts,
                  "output": outputs, "error": None}).to_parquet(table)
    return table


@pytest.mark.skipif(not (WORLD_MODEL_DIR / "clip").is_dir(), reason="no packaged world model")
def test_shuffled_prompt_control_separates_images_that_follow_their_prompts(tmp_path):
    from mmada_bench.world.evaluate import shuffled_prompt_clip

    scenes = _scenes(10, stream="clip-control")
    prompts, images = [L.scene_caption(s) for s in scenes], [draw(s) for s in scenes]
    clip = WORLD_MODEL_DIR / "clip"
    control = shuffled_prompt_clip(_t2i_run(tmp_path / "a", prompts, images), clip)
    assert control["n"] == len(scenes) and control["diff"] == pytest.approx(control["own"] - control["shuffled"])
    assert control["diff_ci"][0] > 0, control  # the shipped CLIP tells matching pairs from shuffled ones
    # images that ignore their prompts (each drawn for another prompt): no gap beyond noise
    blind = shuffled_prompt_clip(_t2i_run(tmp_path / "b", prompts, images[1:] + images[:1]), clip)
    assert blind["own"] < control["own"] and blind["diff"] < control["diff"] / 2, (blind, control)
    with pytest.raises(ValueError, match="at least 2"):
        shuffled_prompt_clip(_t2i_run(tmp_path / "c", prompts[:1], images[:1]), clip)


@pytest.mark.skipif(DEFAULT_MODEL_DIR != WORLD_MODEL_DIR, reason="the packaged default is not the world model")
def test_t2i_on_the_world_prompts_is_scored_with_the_default_models_clip(tmp_path):
    # `run --tasks t2i --data-dir world` without --model: the bundled world prompts, the oracle, and the CLIP that
    # ships beside the default model (not the card's ViT-L-14, which is not in this cache)
    from mmada_bench.run.runner import run
    from mmada_bench.run.types import RunSettings
    from mmada_bench.world.evaluate import evaluate_t2i

    outcome = run(RunSettings(tasks=["t2i"], data_dir="world", limit=2, preset="t2i-ci", output_dir=str(tmp_path),
                              progress=False, scorers={"imagereward_dir": str(tmp_path / "none")}))
    rows = {r["metric"]: r for r in outcome.rows if not r.get("breakdown")}
    assert rows["clip_score"]["filter"] == "world-clip" and rows["clip_score"]["split"] == "world"
    assert rows["geneval_world"]["n"] + rows["geneval_world"]["n_errors"] == 2
    # the world figures' summary of the same kind of run: categories add up, the control pairs every image
    figures = evaluate_t2i(WORLD_MODEL_DIR, tmp_path / "figures", limit=3, preset="t2i-ci")
    assert sum(c["n"] for c in figures["by_category"].values()) == figures["geneval_world"]["n"] == 3
    assert figures["clip_score"]["clip"] == "world-clip" and figures["clip_control"]["n"] == 3
    assert figures["clip_control"]["own"] == pytest.approx(figures["clip_score"]["value"])
