"""The shapes world (spec/shapes_world.md): scenes, oracle, task files, corpora, tokenizer."""
from __future__ import annotations

import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mmada_bench.cards.discovery import get_task
from mmada_bench.data.loading import load_task_data
from mmada_bench.world import language as L
from mmada_bench.world.oracle import (
    Request,
    detect,
    parse_prompt,
    satisfies,
    scene_found,
    score_prompt,
)
from mmada_bench.world.scene import (
    BACKGROUND,
    CANVAS,
    CELL,
    CELLS,
    CIRCLE_DIAMETER,
    COLOURS,
    JITTER,
    KINDS,
    SQUARE_SIDE,
    TRIANGLE_BASE,
    TRIANGLE_HEIGHT,
    Scene,
    WorldObject,
    draw,
    sample_scene,
)
from mmada_bench.world.seeds import DEFAULT_EVAL_SEED, EVAL_SPLIT, TRAIN_SPLIT, item_rng
from mmada_bench.world.tasks import (
    MME_CATEGORIES,
    POPE_CATEGORIES,
    TASK_FILE,
    flickr30k_rows,
    gsm8k_rows,
    math500_rows,
    mme_rows,
    pope_rows,
    write_tasks,
)

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "mmada_bench" / "assets" / "smoke"
PROMPT_SET = REPO / "mmada_bench" / "assets" / "prompts" / "project-v1.jsonl"
N_SCENES = 300
N_ITEMS = 24


def scenes(n=N_SCENES, split=EVAL_SPLIT, stream="test", **kwargs):
    return [sample_scene(item_rng(7, split, stream, i), **kwargs) for i in range(n)]


def decode(image_cell: dict) -> Image.Image:
    return Image.open(io.BytesIO(image_cell["bytes"])).convert("RGB")


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("world_tasks")
    write_tasks(out, seed=3, n=N_ITEMS)
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------ determinism and seeds

def test_scenes_and_files_are_deterministic_by_seed(tmp_path):
    assert scenes(20) == scenes(20)
    assert scenes(20) != scenes(20, split=TRAIN_SPLIT)
    a, b = write_tasks(tmp_path / "a", seed=5, n=6), write_tasks(tmp_path / "b", seed=5, n=6)
    assert a["files"] == b["files"]
    for rel in a["files"].values():
        left, right = tmp_path / "a" / rel, tmp_path / "b" / rel
        if rel.endswith(".parquet"):
            assert pq.read_table(left).equals(pq.read_table(right))
        else:
            assert left.read_text() == right.read_text()
    write_tasks(tmp_path / "c", seed=6, n=6)
    assert (tmp_path / "c" / a["files"]["gsm8k"]).read_text() != (tmp_path / "a" / a["files"]["gsm8k"]).read_text()


def test_items_do_not_depend_on_the_item_count():
    assert gsm8k_rows(2, 5) == gsm8k_rows(2, 9)[:5]
    assert math500_rows(2, 5) == math500_rows(2, 9)[:5]
    assert flickr30k_rows(2, 3)[0][:3] == flickr30k_rows(2, 6)[0][:3]


def test_training_and_evaluation_streams_differ():
    ev = {json.dumps(r) for r in gsm8k_rows(0, 50, EVAL_SPLIT)}
    tr = {json.dumps(r) for r in gsm8k_rows(0, 50, TRAIN_SPLIT)}
    assert not ev & tr


# ------------------------------------------------------------------ images follow the spec

def test_images_follow_the_spec():
    palette = {BACKGROUND} | set(COLOURS.values())
    ranges = {"circle": [CIRCLE_DIAMETER] * 2, "square": [SQUARE_SIDE] * 2,
              "triangle": [TRIANGLE_BASE, TRIANGLE_HEIGHT]}
    for scene in scenes():
        image = draw(scene)
        assert image.size == (CANVAS, CANVAS) and image.mode == "RGB"
        pixels = np.asarray(image)
        assert {tuple(p) for p in pixels.reshape(-1, 3)} <= palette  # exact colours, no anti-aliasing
        assert 1 <= len(scene.objects) <= 3
        assert len({o.cell for o in scene.objects}) == len(scene.objects)
        assert len(set(scene.kinds())) == len(scene.kinds())
        for obj in scene.objects:
            (lo_w, hi_w), (lo_h, hi_h) = ranges[obj.shape]
            w, h = obj.size
            assert lo_w <= w <= hi_w and lo_h <= h <= hi_h
            if obj.shape != "triangle":
                assert w == h
            assert all(abs(j) <= JITTER for j in obj.jitter)
            x0, y0 = CELLS[obj.cell]
            left, top, right, bottom = obj.box()
            assert x0 <= left and right < x0 + CELL and y0 <= top and bottom < y0 + CELL
            assert abs((left + right) / 2 - (x0 + (CELL - 1) / 2)) <= JITTER + 0.5
            # the drawn pixels of this object fill exactly its box
            mask = (pixels == COLOURS[obj.colour]).all(-1)[y0:y0 + CELL, x0:x0 + CELL]
            ys, xs = np.nonzero(mask)
            assert (xs.min() + x0, ys.min() + y0, xs.max() + x0, ys.max() + y0) == (left, top, right, bottom)


def test_counting_scenes_may_repeat_kinds():
    repeated = [s for s in scenes(200, allow_repeats=True) if len(set(s.kinds())) < len(s.objects)]
    assert repeated


# ------------------------------------------------------------------ the oracle

def test_oracle_recovers_every_object():
    assert all(scene_found(s, draw(s)) for s in scenes())


@pytest.mark.parametrize("jitter", [0, 2])
def test_oracle_recovers_objects_drawn_with_other_jitters(jitter):
    # jitter 2 lets a shape reach one pixel into the next cell: keep neighbouring shapes in different colours
    drawn = [s for s in scenes(N_SCENES, jitter=jitter) if len({o.colour for o in s.objects}) == len(s.objects)]
    assert len(drawn) > 100
    assert all(scene_found(s, draw(s)) for s in drawn)


def test_oracle_recovers_four_shape_scenes():
    assert all(scene_found(s, draw(s)) for s in scenes(100, n_objects=4))


def _requests(scene, cells=True):
    return [Request(o.colour, o.shape, o.cell if cells else None) for o in scene.objects]


def test_oracle_rejects_wrong_images():
    checked = 0
    for scene in scenes(100):
        if len(scene.objects) < 2:
            continue
        checked += 1
        want = _requests(scene)
        missing = Scene(scene.objects[1:])
        assert not satisfies(want, detect(draw(missing)))
        free = next(c for c in CELLS if c not in {o.cell for o in scene.objects})
        moved = Scene((replace(scene.objects[0], cell=free),) + scene.objects[1:])
        assert not satisfies(want, detect(draw(moved)))
        assert satisfies(_requests(moved, cells=False), detect(draw(moved)))  # no cell named: any cell
        extra_kind = next(k for k in KINDS if k not in scene.kinds())
        extra = Scene(scene.objects + (WorldObject(*extra_kind, free, (10, 10)),))
        assert not satisfies(want, detect(draw(extra)))
        other_shape = next(s for s in ("circle", "square", "triangle") if s != scene.objects[0].shape)
        wrong = Scene((replace(scene.objects[0], shape=other_shape, size=(11, 11)),) + scene.objects[1:])
        assert not satisfies(want, detect(draw(wrong)))
    assert checked > 20
    assert score_prompt("a red circle", Image.new("RGB", (CANVAS, CANVAS), BACKGROUND)) == 0.0


def test_prompt_parser_reads_generated_prompts():
    for i in range(200):
        prompt, category = L.t2i_prompt(item_rng(0, EVAL_SPLIT, "t2i-test", i))
        requests = parse_prompt(prompt)
        assert len(requests) == (1 if category.startswith("single") else 2)
        assert all((r.cell is not None) == category.endswith("_position") for r in requests)
        assert L.join_phrases([L.object_phrase(r.colour, r.shape, r.cell) for r in requests]) == prompt
    assert parse_prompt("A Blue triangle in the top right") == [Request("blue", "triangle", "top right")]
    with pytest.raises(ValueError):
        parse_prompt("a purple dog")


def test_oracle_scores_prompts_on_drawn_scenes():
    scene = Scene((WorldObject("blue", "triangle", "top right", (11, 10)),
                   WorldObject("red", "circle", "bottom left", (11, 11))))
    image = draw(scene)
    assert score_prompt("a blue triangle in the top right and a red circle", image) == 1.0
    assert score_prompt("a blue triangle in the top left and a red circle", image) == 0.0
    assert score_prompt("a blue triangle", image) == 0.0  # an extra object


# ------------------------------------------------------------------ task files: schemas

@pytest.mark.parametrize("task", ["pope", "mme", "flickr30k"])
def test_parquet_schemas_equal_the_bundled_smoke_subsets(task_dir, task):
    reference = pq.read_schema(SMOKE / task / "test.parquet")
    written = pq.read_schema(task_dir / task / f"{TASK_FILE}.parquet")
    assert written.names == reference.names
    assert [f.type for f in written] == [f.type for f in reference]
    table = pq.read_table(task_dir / task / f"{TASK_FILE}.parquet").to_pylist()
    assert table and all(decode(row["image"]).size == (CANVAS, CANVAS) for row in table)


@pytest.mark.parametrize("task,reference", [("gsm8k", SMOKE / "gsm8k" / "test.jsonl"),
                                            ("gsm8k", SMOKE / "gsm8k" / "train.jsonl"),
                                            ("math500", SMOKE / "math500" / "test.jsonl")])
def test_jsonl_schemas_equal_the_bundled_smoke_subsets(task_dir, task, reference):
    ref = read_jsonl(reference)[0]
    name = reference.name if reference.name == "train.jsonl" else f"{TASK_FILE}.jsonl"
    for row in read_jsonl(task_dir / task / name):
        assert list(row) == list(ref)
        assert [type(v) for v in row.values()] == [type(v) for v in ref.values()]


def test_t2i_prompts_follow_the_packaged_prompt_set(task_dir):
    ref = read_jsonl(PROMPT_SET)[0]
    rows = read_jsonl(task_dir / "t2i" / "world.jsonl")
    assert len(rows) == N_ITEMS and len({r["id"] for r in rows}) == N_ITEMS
    for row in rows:
        assert list(row) == list(ref) and all(isinstance(v, str) for v in row.values())
        parse_prompt(row["prompt"])


def test_harness_loaders_read_the_task_files(task_dir):
    for task in ("pope", "mme", "flickr30k", "gsm8k", "math500"):
        loaded = load_task_data(get_task(task), data_dir=task_dir, require_data=True)
        assert loaded.items and not [i.error for i in loaded.items if i.error]


# ------------------------------------------------------------------ task files: content

def test_pope_is_balanced_and_follows_the_category_rules(task_dir):
    rows = pq.read_table(task_dir / "pope" / f"{TASK_FILE}.parquet").to_pylist()
    assert len(rows) == N_ITEMS * len(POPE_CATEGORIES) * 2
    assert len({r["id"] for r in rows}) == len(rows)
    question = re.compile(r"^Is there a (\w+) (\w+) in the image\?$")
    present_of = {}
    for category in POPE_CATEGORIES:
        part = [r for r in rows if r["category"] == category]
        assert Counter(r["answer"] for r in part) == {"yes": N_ITEMS, "no": N_ITEMS}
        for row in part:
            if row["image_source"] not in present_of:  # what is in the image, seen by the oracle
                present_of[row["image_source"]] = {d.kind for d in detect(decode(row["image"]))}
            present = present_of[row["image_source"]]
            kind = question.match(row["question"]).groups()
            assert (kind in present) == (row["answer"] == "yes")
            if category == "adversarial" and row["answer"] == "no":
                assert any(kind[0] == c or kind[1] == s for c, s in present)


def test_mme_pairs_are_balanced_and_true(task_dir):
    rows = pq.read_table(task_dir / "mme" / f"{TASK_FILE}.parquet").to_pylist()
    groups = defaultdict(list)
    for row in rows:
        groups[row["question_id"]].append(row)
        assert row["question"].endswith(" Please answer yes or no.")
        assert row["category"] in MME_CATEGORIES
    assert set(r["category"] for r in rows) == set(MME_CATEGORIES)
    for qid, pair in groups.items():
        assert len(pair) == 2 and sorted(r["answer"] for r in pair) == ["No", "Yes"]
        assert len({r["category"] for r in pair}) == 1 and qid.startswith(pair[0]["category"] + "/")
        found = detect(decode(pair[0]["image"]))
        for row in pair:
            assert _mme_truth(row["category"], row["question"], found) == (row["answer"] == "Yes")


def _mme_truth(category: str, question: str, found) -> bool:
    """The answer to an MME-format world question, computed from the oracle's detections."""
    q = question.removesuffix(L.YES_NO_SUFFIX)
    if category == "existence":
        colour, shape = re.match(r"Is there a (\w+) (\w+) in this image\?", q).groups()
        return (colour, shape) in {d.kind for d in found}
    if category == "count":
        n = re.match(r"Are there (\w+) shapes in this image\?", q).group(1)
        return {**{w: k for k, w in L.NUMBER_WORDS.items()}, **{str(k): k for k in L.NUMBER_WORDS}}[n] == len(found)
    if category == "color":
        shape, colour = re.match(r"Is the (\w+) in this image (\w+)\?", q).groups()
        same = [d for d in found if d.shape == shape]
        assert len(same) == 1, "colour questions only for images with exactly one shape of that kind"
        return same[0].colour == colour
    colour, shape, cell = re.match(r"Is the (\w+) (\w+) in the (.+) of the image\?", q).groups()
    return any(d.kind == (colour, shape) and d.cell == cell for d in found)


def test_flickr30k_has_five_true_captions(task_dir):
    for row in pq.read_table(task_dir / "flickr30k" / f"{TASK_FILE}.parquet").to_pylist():
        assert len(row["caption"]) == len(set(row["caption"])) == 5 == len(row["sentids"])
        kinds = Counter(d.kind for d in detect(decode(row["image"])))
        for caption in row["caption"]:
            assert Counter(r.kind for r in parse_prompt(caption)) == kinds


def test_gsm8k_answers_follow_their_annotations(task_dir):
    annotation = re.compile(r"<<([0-9+\-*]+)=(-?\d+)>>(-?\d+)")
    for name in (f"{TASK_FILE}.jsonl", "train.jsonl"):
        for row in read_jsonl(task_dir / "gsm8k" / name):
            steps = annotation.findall(row["answer"])
            assert 1 <= len(steps) <= 3
            for expr, result, shown in steps:
                assert eval(expr) == int(result) == int(shown)  # noqa: S307 - digits and + - * only
                assert all(0 <= int(v) <= 99 for v in re.findall(r"\d+", expr) + [result])
            final = re.search(r"\n#### (\d+)$", row["answer"])
            assert final and int(final.group(1)) == int(steps[-1][1])
            assert all(0 <= int(v) <= 99 for v in re.findall(r"\d+", row["question"]))


def test_math_answers_parse_and_are_right(task_dir):
    from math_verify import parse, verify

    rows = read_jsonl(task_dir / "math500" / f"{TASK_FILE}.jsonl")
    assert len({r["unique_id"] for r in rows}) == len(rows)
    for row in rows:
        boxed = re.findall(r"\\boxed\{(-?\d+)\}", row["solution"])
        assert boxed and boxed[-1] == row["answer"] and row["solution"].rstrip().endswith("$")
        assert isinstance(row["level"], int) and 1 <= row["level"] <= 5
        assert row["subject"] in ("Prealgebra", "Algebra")
        assert verify(parse(f"${row['answer']}$"), parse(row["solution"]))
        if row["subject"] == "Prealgebra":
            expr = re.match(r"Compute \$(.+)\$\.$", row["problem"]).group(1).replace("\\times", "*")
            assert eval(expr) == int(row["answer"])  # noqa: S307 - digits, brackets, + - * only
        else:
            var, lhs, rhs = re.match(r"Solve for \$(\w)\$: \$(.+) = (.+)\$\.$", row["problem"]).groups()
            value = int(row["answer"])
            sub = lambda side: eval(re.sub(rf"(\d+){var}", rf"\1*({value})", side))  # noqa: E731,S307
            assert sub(lhs) == sub(rhs)


def test_pope_rows_popular_uses_frequent_kinds():
    rows, meta = pope_rows(4, 30)
    counts = Counter((o["colour"], o["shape"]) for m in meta for o in m["objects"])
    ranked = sorted(KINDS, key=lambda k: (-counts[k], KINDS.index(k)))
    by_image = {m["image"]: {(o["colour"], o["shape"]) for o in m["objects"]} for m in meta}
    for row in rows:
        if row["category"] == "popular" and row["answer"] == "no":
            kind = tuple(re.match(r"Is there a (\w+) (\w+)", row["question"]).groups())
            absent_ranked = [k for k in ranked if k not in by_image[row["image_source"]]]
            assert kind in absent_ranked[:3]  # among the most frequent kinds absent from the image


# ------------------------------------------------------------------ corpora and tokenizer

def test_corpora_rows_have_the_trainer_formats(tmp_path):
    from mmada_bench.world.corpora import STAGE_FILES, write_corpora
    from mmada_ref.text_tokenizer import THINK_SYSTEM_PROMPT
    from mmada_ref.training.data import read_rows, think_response
    from mmada_ref.training.stages import load_stage

    manifest = write_corpora(tmp_path, seed=0, n=4)
    for stage, files in STAGE_FILES.items():
        for name, kind in files:
            for row in read_rows(tmp_path / stage / name):
                if kind == "t2i":
                    assert isinstance(row["caption"], str) and parse_prompt(row["caption"])
                if kind == "mmu":
                    assert Path(row["image"]).is_file() and row["question"] and row["answer"]
                if "image" in row:
                    assert Path(row["image"]).is_absolute() and Path(row["image"]).is_file()
                if stage == "stage2" and kind == "text" and row.get("prompt"):
                    assert think_response(row).startswith("<think> ") and row["answer"].startswith("#### ")
                if stage == "stage2" and kind == "text" and not row.get("prompt"):
                    assert row["text"].startswith("Problem:\n") and "\\boxed{" in row["text"]
                if stage == "stage2" and kind == "mmu" and row.get("reasoning"):
                    assert row["question"].startswith(THINK_SYSTEM_PROMPT)
                if stage == "stage3" and kind != "t2i":
                    assert row["answer"]
    for config in manifest["configs"]:
        cfg = load_stage(tmp_path / config)
        assert all(Path(src.path).is_file() for src in cfg.data.sources)


def test_grounding_rows_name_what_the_oracle_sees_in_each_cell(tmp_path):
    from mmada_bench.world.corpora import ImageStore, grounding_rows, stage1_mmu

    images = ImageStore(tmp_path)
    captioned = stage1_mmu(0, 12, images)
    rows = grounding_rows(captioned, images, chat_eot="<eot_id>")
    assert [r["image"] for r in rows] == [r["image"] for r in captioned]
    for row in rows:
        seen = {d.cell: f"{d.colour} {d.shape}" for d in detect(Image.open(row["image"]).convert("RGB"))}
        listed = dict(part.split(": ") for part in row["answer"].split(", "))
        assert list(listed) == list(CELLS)
        assert listed == {cell: seen.get(cell, "empty") for cell in CELLS}
        assert row["question"] == L.CELL_LISTING_QUESTION and row["chat_eot"] == "<eot_id>"


def test_patch_labels_name_each_coloured_patch_and_its_object():
    from mmada_bench.world.oracle import PALETTE_NAMES
    from mmada_bench.world.scene import CELLS, SHAPES
    from mmada_bench.world.train_magvit import patch_labels

    objects = (WorldObject("green", "triangle", "top right", size=(12, 10)),
               WorldObject("blue", "circle", "bottom left", size=(11, 11)))
    side, f = 8, 4
    colour, shape = patch_labels([Scene(objects)], side)
    pixels = np.asarray(draw(Scene(objects)))
    for y in range(side):
        for x in range(side):
            coloured = pixels[y * f:(y + 1) * f, x * f:(x + 1) * f].min(-1).min() < 250
            assert (colour[0, y, x] > 0) == coloured and (shape[0, y, x] > 0) == coloured
    for o in objects:
        x0, y0 = (c // f for c in CELLS[o.cell])
        cell_colour = colour[0, y0:y0 + 4, x0:x0 + 4]
        cell_shape = shape[0, y0:y0 + 4, x0:x0 + 4]
        assert set(cell_colour[cell_colour > 0].tolist()) == {PALETTE_NAMES.index(o.colour)}
        assert set(cell_shape[cell_shape > 0].tolist()) == {SHAPES.index(o.shape) + 1}


def test_code_purities_drop_when_one_code_serves_two_colours_or_two_shapes():
    import torch

    from mmada_bench.world.train_magvit import code_purities, patch_labels

    def codes(scenes, shared: bool):
        colour, _ = patch_labels(scenes, 8)
        return torch.stack([(c.reshape(-1) > 0).long() * (1 if shared else 1 + i) for i, c in enumerate(colour)])

    two_colours = [Scene((WorldObject(c, "square", "top left", size=(10, 10)),)) for c in ("red", "blue")]
    assert code_purities(two_colours, codes(two_colours, shared=False))["code_colour_purity"] == 1.0
    assert code_purities(two_colours, codes(two_colours, shared=True))["code_colour_purity"] == pytest.approx(0.5)
    assert code_purities(two_colours, codes(two_colours, shared=True))["code_shape_purity"] == 1.0
    two_shapes = [Scene((WorldObject("red", s, "top left", size=(11, 11)),)) for s in ("square", "triangle")]
    assert code_purities(two_shapes, codes(two_shapes, shared=False))["code_shape_purity"] == 1.0
    assert code_purities(two_shapes, codes(two_shapes, shared=True))["code_shape_purity"] < 0.8
    assert code_purities(two_shapes, codes(two_shapes, shared=True))["code_colour_purity"] == 1.0


@pytest.mark.parametrize("task", ["pope", "mme", "flickr30k", "gsm8k", "math500"])
def test_training_prompts_are_the_prompts_the_harness_evaluates_with(task, task_dir):
    from mmada_bench.cards.discovery import get_task
    from mmada_bench.run.planning import plan_task
    from mmada_bench.run.types import RunSettings
    from mmada_bench.world.sft import harness_turn

    settings = RunSettings(tasks=[task], data_dir=str(task_dir), limit=3, num_fewshot=0)
    plan = plan_task(get_task(task), settings, family="mmada")
    for planned in plan.items:
        turn, eot, chat = harness_turn(task, planned.item.doc)
        assert turn == (planned.messages[-1]["content"] if planned.messages else planned.prompt)
        assert chat == (planned.messages is not None) and eot == plan.variant.chat_eot


def test_direct_rows_ask_every_yes_no_item_in_the_official_layout(tmp_path):
    """``sft.yes_no_rows`` (direct): one row per POPE / MME item of the train split, the card's default MMaDA turn,
    the gold answer capitalised, no reasoning, the item's category."""
    from mmada_bench.world.sft import harness_turn, png_files, yes_no_rows

    n = 3
    rows = yes_no_rows(0, n, png_files(tmp_path))
    docs = [("pope", d) for d in pope_rows(0, n, TRAIN_SPLIT)[0]] + [("mme", d) for d in mme_rows(0, n, TRAIN_SPLIT)[0]]
    assert len(rows) == len(docs)
    for row, (task, doc) in zip(rows, docs):
        turn, eot, chat = harness_turn(task, {**doc, "image": None})
        assert chat and row["question"] == turn and row.get("chat_eot") == eot
        assert row["answer"] == doc["answer"].capitalize() and row["answer"] in ("Yes", "No")
        assert "reasoning" not in row and Path(row["image"]).is_file()
        assert row["category"] == ("pope" if task == "pope" else doc["category"])
    assert Counter(r["answer"] for r in rows)["Yes"] * 2 == len(rows)


@pytest.mark.parametrize("task", ["pope", "mme"])
def test_direct_rows_are_the_prompts_the_world_model_is_evaluated_with(task, task_dir):
    """The packaged defaults run POPE / MME in the card's default (direct) variant; the direct training rows and
    stage 3's rollouts use exactly its user turn, end-of-turn string and sampler."""
    from mmada_bench.cards.discovery import get_task
    from mmada_bench.models.defaults import CheckpointDefaults
    from mmada_bench.run.planning import plan_task
    from mmada_bench.run.types import RunSettings
    from mmada_bench.world.package import WORLD_DEFAULTS
    from mmada_bench.world.sft import direct_chat_eot, direct_preset, harness_turn
    from mmada_bench.world.stage_configs import stage_dicts

    defaults = CheckpointDefaults(**{k: v for k, v in WORLD_DEFAULTS.items() if k != "label"})
    card = get_task(task)
    plan = plan_task(card, RunSettings(tasks=[task], data_dir=str(task_dir), limit=3), defaults, family="mmada")
    assert plan.variant_name == card.default_variant_for("mmada") and plan.preset.name == direct_preset()
    sampler = stage_dicts()["stage3"]["grpo"]["sampler"]
    settings = plan.preset.settings
    assert (sampler["gen_length"], sampler["steps"], sampler["block_length"]) == (
        settings.gen_length, settings.steps, settings.block_length)
    for planned in plan.items:
        turn, eot, chat = harness_turn(task, planned.item.doc)
        assert chat and turn == planned.messages[-1]["content"] and eot == plan.variant.chat_eot == direct_chat_eot()


@pytest.mark.parametrize("build", [pope_rows, mme_rows])
def test_yes_no_traces_reach_the_gold_answer(build):
    """Every verdict trace ends where the item's gold answer is (the trace is derived from the scene)."""
    docs, scenes = build(DEFAULT_EVAL_SEED, 40)
    scene_of = {m["image"]: Scene.from_dict(m) for m in scenes}
    for doc in docs:
        trace, yes = L.yes_no_trace(doc["question"], scene_of[doc["image"]["path"]])
        assert yes == (doc["answer"].lower() == "yes"), (doc["question"], trace)
        assert trace.count(": ") == len(CELLS)
    with pytest.raises(ValueError, match="not a yes / no question"):
        L.yes_no_trace("What colour is the sky?", Scene.from_dict(scenes[0]))


TEST_VOCAB = 512


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from mmada_bench.world.tokenizer import train_world_tokenizer

    out = tmp_path_factory.mktemp("world_tokenizer")
    train_world_tokenizer(out, vocab_size=TEST_VOCAB, n=300)
    return out


def test_world_tokenizer_round_trips_and_has_every_special_token(tokenizer_dir, task_dir):
    from mmada_bench.world.tokenizer import PROMPT_STRINGS
    from mmada_ref.text_tokenizer import (
        format_chat,
        load_text_tokenizer,
        special_token_names,
    )
    from mmada_ref.tokens import (
        RESERVED_OFFSET_FROM_BOS,
        RESERVED_TASK_TOKENS,
        SpecialTokens,
    )

    vocab = TEST_VOCAB
    tok = load_text_tokenizer(tokenizer_dir)
    names = special_token_names(vocab)
    assert len(tok) == vocab + len(names)
    assert [tok.convert_tokens_to_ids(name) for name in names] == list(range(vocab, vocab + len(names)))
    ids = SpecialTokens.from_tokenizer(tok)
    assert ids.image_offset == len(tok) and ids.pad == ids.eos
    for i, name in enumerate(RESERVED_TASK_TOKENS):
        assert ids.by_name()[name] == ids.bos + RESERVED_OFFSET_FROM_BOS + i
    texts = list(PROMPT_STRINGS)
    texts += [r["question"] + "\n" + r["answer"] for r in read_jsonl(task_dir / "gsm8k" / f"{TASK_FILE}.jsonl")]
    texts += [r["problem"] + "\n" + r["solution"] for r in read_jsonl(task_dir / "math500" / f"{TASK_FILE}.jsonl")]
    texts += [r["prompt"] for r in read_jsonl(task_dir / "t2i" / "world.jsonl")]
    for text in texts:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    chat = format_chat([{"role": "user", "content": "Is there a red circle in the image?"}])
    chat_ids = tok(chat, add_special_tokens=False)["input_ids"]
    assert chat_ids[0] == ids.bos and chat_ids.count(ids.start_header) == 2 and ids.eot_id in chat_ids
    assert tok.decode(chat_ids) == chat


def test_world_init_model_has_the_joint_token_layout(tmp_path, tokenizer_dir):
    from mmada_bench.world.init_model import VOCAB_MULTIPLE, build_world_model
    from mmada_bench.world.train_magvit import world_config
    from mmada_ref import MMaDAModelLM
    from mmada_ref.magvit import MAGVITv2
    from mmada_ref.text_tokenizer import load_text_tokenizer
    from mmada_ref.tokens import SpecialTokens

    MAGVITv2(world_config(levels=4, codebook_dim=6)).save_pretrained(tmp_path / "vq")
    layout = build_world_model(tmp_path / "model", tokenizer_dir, tmp_path / "vq", d_model=64, n_layers=1,
                               n_heads=2, mlp_hidden_size=96)
    model = MMaDAModelLM.from_pretrained(str(tmp_path / "model"))
    tok = load_text_tokenizer(tmp_path / "model")
    ids = SpecialTokens.from_tokenizer(tok, model.config)
    cfg = model.config
    assert cfg.llm_vocab_size == len(tok) == ids.image_offset == layout["image_offset"]
    assert cfg.vocab_size % VOCAB_MULTIPLE == 0 and cfg.vocab_size >= ids.image_offset + cfg.codebook_size
    assert (cfg.codebook_size, cfg.num_vq_tokens) == (2 ** 6, 16)
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.mask_token_id) == (ids.bos, ids.eos, ids.mask)
    assert MAGVITv2.from_pretrained(tmp_path / "model" / "magvitv2").codebook_size == cfg.codebook_size
    # width-scaled initialisation (the official 0.02 belongs to a 4,096-wide model)
    d = cfg.d_model
    assert cfg.init_std == pytest.approx(d ** -0.5) == layout["init_std"]
    for name, weight in model.state_dict().items():
        if weight.dim() == 2:
            assert weight.std().item() == pytest.approx(d ** -0.5, rel=0.1), name


def test_t2i_run_metadata_is_scored_with_the_oracle(tmp_path):
    from mmada_bench.world.geneval import score_metadata

    scene = Scene((WorldObject("green", "square", "bottom left", (10, 10)),))
    draw(scene).save(tmp_path / "0.png")
    lines = [{"file": "0.png", "prompt": "a green square in the bottom left"},
             {"file": "0.png", "prompt": "a green square and a red circle"}]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    report = score_metadata(tmp_path / "metadata.jsonl")
    assert report["n"] == 2 and report["rate"] == 0.5
    assert report["by_form"] == {"pair": 0.0, "single_position": 1.0}


def test_answer_probe_reads_the_answer_token_of_every_layout(tmp_path, tokenizer_dir):
    """The probe masks the Yes / No token of each layout and counts a model that knows the gold answer as right
    everywhere, one that always says Yes as right exactly on the gold-yes rows."""
    from types import SimpleNamespace

    import torch

    from mmada_bench.world.answer_probe import answer_probe
    from mmada_bench.world.init_model import build_world_model
    from mmada_bench.world.sft import YES_NO_LAYOUTS, png_codes, yes_no_rows
    from mmada_bench.world.train_magvit import world_config
    from mmada_ref import MMaDAModelLM
    from mmada_ref.magvit import MAGVITv2
    from mmada_ref.text_tokenizer import load_text_tokenizer

    MAGVITv2(world_config(levels=4, codebook_dim=6)).save_pretrained(tmp_path / "vq")
    build_world_model(tmp_path / "model", tokenizer_dir, tmp_path / "vq", d_model=64, n_layers=1, n_heads=2,
                      mlp_hidden_size=96)
    model = MMaDAModelLM.from_pretrained(str(tmp_path / "model")).eval()
    tok = load_text_tokenizer(tokenizer_dir)
    yes_id, no_id = (tok(a, add_special_tokens=False)["input_ids"][0] for a in ("Yes", "No"))

    class Answering(torch.nn.Module):
        """Logits favouring ``answers[row]`` at every position (``None``: always Yes)."""
        def __init__(self, answers=None):
            super().__init__()
            self.config, self.device, self.answers = model.config, torch.device("cpu"), answers

        def forward(self, ids):
            logits = torch.zeros(*ids.shape, model.config.vocab_size)
            for i in range(ids.shape[0]):
                favoured = yes_id if self.answers is None or self.answers.pop(0) == "Yes" else no_id
                logits[i, :, favoured] = 5.0
            return SimpleNamespace(logits=logits)

    for layout in YES_NO_LAYOUTS:
        rows = yes_no_rows(0, 2, png_codes(tmp_path / "vq"), layout)
        assert {r["category"] for r in rows} >= {"pope", "existence"}
        real = answer_probe(model, tok, rows, batch=5)
        assert real["n"] == len(rows) and sum(g["n"] for g in real["groups"].values()) == len(rows)
        knowing = answer_probe(Answering([r["answer"] for r in rows]), tok, rows, batch=5, hide_response=True)
        assert all(g["accuracy"] == 1.0 for g in knowing["groups"].values())
        assert knowing["p_yes_on_yes"] > 0.99 and knowing["p_yes_on_no"] < 0.01
        always_yes = answer_probe(Answering(), tok, rows, batch=5)
        yes_share = sum(r["answer"] == "Yes" for r in rows) / len(rows)
        assert sum(g["accuracy"] * g["n"] for g in always_yes["groups"].values()) == pytest.approx(yes_share * len(rows))
        assert always_yes["p_yes_on_yes"] == pytest.approx(always_yes["p_yes_on_no"])
    with pytest.raises(ValueError, match="answer Yes or No"):
        answer_probe(model, tok, [{**rows[0], "answer": "Maybe"}])


def test_answer_probe_cli_offers_every_row_layout():
    """The CLI's --layout choices (kept literal: importing sft is slow) are exactly sft.YES_NO_LAYOUTS."""
    import io
    from contextlib import redirect_stdout

    from mmada_bench.world.cli import main
    from mmada_bench.world.sft import YES_NO_LAYOUTS

    with pytest.raises(SystemExit) as exc:
        main(["answer-probe", "CKPT", "--layout", "no-such-layout"])
    assert exc.value.code == 2
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        main(["answer-probe", "--help"])
    assert "{" + ",".join(YES_NO_LAYOUTS) + "}" in out.getvalue()


def test_magvit_trained_for_a_step_count_repeats_exactly(tmp_path):
    """``--steps`` ends on the step count and schedules by it, so two runs give the same weights."""
    import torch
    from safetensors.torch import load_file

    from mmada_bench.world.train_magvit import train

    steps = 3
    runs = []
    for name in ("a", "b"):
        metrics = train(tmp_path / name, minutes=0.0, levels=3, ch=32, codebook_dim=4, batch=4, lr=2e-3,
                        train_images=8, heldout_images=4, seed=0, steps=steps)
        assert metrics["steps"] == steps  # a 0-minute budget would have stopped before the first step
        runs.append(load_file(tmp_path / name / "pytorch_model.safetensors"))
    a, b = runs
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
