"""Image-understanding tasks (pope, mme, flickr30k) through the harness: cards, loaders, bad input, end to end."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mmada_bench.cards.discovery import get_task
from mmada_bench.cards.schema import CardError, load_card
from mmada_bench.commands.show import format_show
from mmada_bench.data.formats import read_pope_original
from mmada_bench.data.loading import (
    SMOKE_DIR,
    DatasetMissing,
    DatasetSchemaError,
    load_task_data,
)
from mmada_bench.gate import compare_runs, load_run
from mmada_bench.models.base import GenerationResult
from mmada_bench.results.leaderboard import read_leaderboard
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings
from mmada_scoring.mme import score_mme
from mmada_scoring.pope import score_pope

TASKS = Path(__file__).resolve().parents[2] / "mmada_bench" / "tasks"


class ImageEchoModel:
    """Answers "Yes" when the prompt mentions a circle, else "No" (a caption for non-questions); keeps the images."""

    name, family, is_smoke = "image-echo", "test", False

    def __init__(self):
        self.seen: dict[str, tuple] = {}

    def fingerprint(self) -> str:
        return "image-echo-1"

    def generate(self, requests, preset):
        results = []
        for r in requests:
            assert isinstance(r.image, Image.Image) and r.messages, "image tasks send a PIL image and chat messages"
            self.seen[r.item_id] = r.image.size
            text = "A drawing of a red circle." if "caption" in r.prompt else ("Yes" if "circle" in r.prompt else "No")
            results.append(GenerationResult(text=text, nfe=1, n_generated_tokens=1))
        return results


def _settings(tmp_path, tasks, **kw):
    return RunSettings(tasks=tasks, output_dir=str(tmp_path / "out"), progress=False, **kw)


def _copy_smoke(tmp_path, task, mutate=None) -> Path:
    """The bundled smoke parquet of ``task`` as ``<tmp>/data/<task>/test.parquet``, optionally edited."""
    rows = pq.read_table(SMOKE_DIR / task / "test.parquet").to_pylist()
    if mutate:
        rows = mutate(rows)
    folder = tmp_path / "data" / task
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "test.parquet")
    return tmp_path / "data"


# --- cards ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["pope", "mme", "flickr30k"])
def test_cards_validate_with_headline_per_variant(task):
    card = get_task(task)
    assert card.version and card.dataset.image_field == "image"
    for variant in card.variants:
        assert card.primary(variant)[1] in {s.filter for s in card.set_metrics}


def _write_card(tmp_path, name, edit) -> Path:
    text = (TASKS / "pope.yaml").read_text().replace("\nname: pope\n", f"\nname: {name}\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(edit(text))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("{name: pope, filter: lmms_eval", "{name: nope, filter: lmms_eval"), "set_metrics[2].name"),
    (lambda t: t.replace("primary_metric: f1/lmms_eval", "primary_metric: f1/nowhere"), "variants.lmms-eval.primary_metric"),
    (lambda t: t.replace("local_formats: [pope_original]", "local_formats: [pope_v2]"), "dataset.local_formats[0]"),
    (lambda t: t.replace("  image_field: image\n", "  image_field: image\n  group_size: 2\n"), "dataset.group_by"),
    (lambda t: t.replace("answer_filter: after_think", "answer_filter: after_thought"),
     "variants.mmada-app-think.answer_filter"),
])
def test_bad_cards_name_the_field(tmp_path, edit, message):
    with pytest.raises(CardError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_card(_write_card(tmp_path, "pope_bad", edit))


# --- loaders --------------------------------------------------------------------------------------

def test_local_parquet_with_embedded_images(tmp_path):
    data = load_task_data(get_task("mme"), _copy_smoke(tmp_path, "mme"))
    assert data.split == "test" and data.source.startswith("local:")
    assert all(isinstance(i.doc["image"]["bytes"], bytes) and not i.error for i in data.items)


def test_hf_dataset_by_id_keeps_image_bytes(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")

    source = datasets.Dataset.from_parquet(str(SMOKE_DIR / "pope" / "test.parquet"))
    source = source.cast_column("image", datasets.Image())  # as the hub copy declares it (decoding on)
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda hf_id, config=None, split=None: asked.append(hf_id) or source)
    data = load_task_data(get_task("pope"))
    assert asked == ["lmms-lab/POPE"] and data.source == "hf:lmms-lab/POPE"
    assert len(data.items) == len(source) and isinstance(data.items[0].doc["image"]["bytes"], bytes)


def _pope_original_folder(tmp_path, n_per_split=3):
    """Original-format question files + a folder of the images they name."""
    folder, images = tmp_path / "data" / "pope", tmp_path / "val2014"
    folder.mkdir(parents=True)
    images.mkdir()
    for k, color in enumerate(["red", "blue"]):
        Image.new("RGB", (40 + k, 30), color).save(images / f"COCO_val2014_{k:012d}.jpg")
    for split in ("adversarial", "popular", "random"):
        lines = [json.dumps({"question_id": q + 1, "image": f"COCO_val2014_{q % 2:012d}.jpg",
                             "text": f"Is there a {'circle' if q % 2 else 'dog'} in the image?",
                             "label": "yes" if q % 2 else "no"}) for q in range(n_per_split)]
        (folder / f"coco_pope_{split}.json").write_text("\n".join(lines) + "\n")
    return tmp_path / "data", images


def test_pope_original_files_and_image_folder(tmp_path):
    data_dir, images = _pope_original_folder(tmp_path)
    model = ImageEchoModel()
    outcome = run(_settings(tmp_path, ["pope"], data_dir=str(data_dir), image_dir=str(images)), model=model)
    assert not outcome.task_errors
    assert len(model.seen) == 9 and set(model.seen.values()) == {(40, 30), (41, 30)}
    rows = {(r["metric"], r["filter"]): r for r in outcome.rows}
    assert rows[("f1[split=random]", "vlmevalkit_mmada")]["breakdown"] == "split=random"
    assert rows[("f1", "vlmevalkit_mmada")]["value"] == 1.0 and rows[("f1", "vlmevalkit_mmada")]["is_primary"]
    assert rows[("f1", "vlmevalkit_mmada")]["split"] == "test"


def test_pope_original_without_images_names_the_option(tmp_path):
    data_dir, _ = _pope_original_folder(tmp_path)
    with pytest.raises(DatasetMissing, match="--image-dir"):
        load_task_data(get_task("pope"), data_dir)


def test_shared_pope_question_files(data_dir):
    rows, fingerprint, _ = read_pope_original(data_dir / "pope")
    assert len(rows) == len({r["id"] for r in rows}) > 0 and len(fingerprint) == 64
    assert {r["category"] for r in rows} == {"adversarial", "popular", "random"}
    assert {r["answer"] for r in rows} == {"yes", "no"} and all(r["image"].endswith(".jpg") for r in rows)


def test_missing_column_is_a_clear_error(tmp_path):
    data_dir = _copy_smoke(tmp_path, "pope", lambda rows: [{k: v for k, v in r.items() if k != "answer"} for r in rows])
    with pytest.raises(DatasetSchemaError, match="column 'answer' is missing"):
        load_task_data(get_task("pope"), data_dir)
    outcome = run(_settings(tmp_path, ["pope"], data_dir=str(data_dir)), model=ImageEchoModel())
    assert "column 'answer'" in outcome.task_errors["pope"] and not outcome.rows


# --- bad items ------------------------------------------------------------------------------------

def test_corrupt_and_missing_images_become_error_records(tmp_path):
    def damage(rows):
        rows[0]["image"] = {"bytes": b"\x89PNG not really", "path": "broken.png"}
        rows[1]["image"] = None
        return rows

    model = ImageEchoModel()
    outcome = run(_settings(tmp_path, ["pope"], data_dir=str(_copy_smoke(tmp_path, "pope", damage))), model=model)
    items = pq.read_table(next((tmp_path / "out" / "items").glob("*/pope.parquet"))).to_pandas()
    errors = dict(zip(items["item_id"], items["error"]))
    assert "corrupt image" in errors["1"] and "image missing" in errors["2"]
    assert set(model.seen) == set(items["item_id"]) - {"1", "2"}
    primary = next(r for r in outcome.rows if r["is_primary"])
    assert primary["n_errors"] == 2 and primary["n"] == len(items)


def test_unpaired_mme_question_is_an_error_record(tmp_path):
    model = ImageEchoModel()
    data_dir = _copy_smoke(tmp_path, "mme", lambda rows: rows[1:])  # drop the pair of the first question
    outcome = run(_settings(tmp_path, ["mme"], data_dir=str(data_dir)), model=model)
    items = pq.read_table(next((tmp_path / "out" / "items").glob("*/mme.parquet"))).to_pandas()
    lone = items[items["error"].notna()]
    assert len(lone) == 1 and "expected 2" in lone["error"].iloc[0] and lone["item_id"].iloc[0] not in model.seen
    rows = {(r["metric"], r["filter"]): r for r in outcome.rows}
    assert rows[("perception", "vlmevalkit_mmada")]["n_errors"] == 1
    assert rows[("acc_plus[category=existence]", "vlmevalkit_mmada")]["n"] == 0  # no complete pair left


# --- end to end -----------------------------------------------------------------------------------

def test_run_pope_mme_smoke_model_writes_breakdowns(tmp_path):
    outcome = run(_settings(tmp_path, ["pope", "mme"], preset="ci-mmu", data_dir="smoke"))
    assert not outcome.task_errors and outcome.generated == 40
    board = read_leaderboard(tmp_path / "out")
    assert set(board["split"]) == {"smoke"} and board["model_is_smoke"].all()
    primary = board[board["is_primary"]].set_index("task")
    assert primary.loc["pope", "metric"] == "f1" and primary.loc["mme", "metric"] == "perception"
    assert primary.loc["mme", "unit"] == "points" and 0 <= primary.loc["mme", "value"] <= 2000
    splits = board[(board["task"] == "pope") & board["breakdown"].notna()]
    assert {"split=adversarial", "split=popular", "split=random"} <= set(splits["breakdown"])
    categories = board[(board["task"] == "mme") & board["metric"].str.startswith("score[")]
    assert len(categories) == 3 * 14  # 14 categories x 3 parser conventions
    text = format_show(board, None)
    assert "f1/vlmevalkit_mmada by split: adversarial" in text and "score/lmms_eval by category: OCR" in text

    # the leaderboard's set metrics equal the scorers run on the stored generations
    items = pq.read_table(tmp_path / "out" / "items" / outcome.run_id / "pope.parquet").to_pandas()
    docs = {str(r["id"]): r for r in pq.read_table(SMOKE_DIR / "pope" / "test.parquet").to_pylist()}
    scored = score_pope([{"answer": docs[i]["answer"], "category": docs[i]["category"], "prediction": out}
                         for i, out in zip(items["item_id"], items["output"])], "vlmevalkit_mmada")
    assert primary.loc["pope", "value"] == pytest.approx(scored["pooled"]["f1"], abs=1e-12)
    items = pq.read_table(tmp_path / "out" / "items" / outcome.run_id / "mme.parquet").to_pandas()
    docs = pq.read_table(SMOKE_DIR / "mme" / "test.parquet").to_pylist()
    scored = score_mme([{**d, "prediction": out} for d, out in zip(docs, items["output"])], "vlmevalkit_mmada")
    assert primary.loc["mme", "value"] == pytest.approx(scored["perception"], abs=1e-9)


def test_flickr30k_without_java_keeps_captions_then_scores_on_rerun(tmp_path, monkeypatch):
    import mmada_scoring.caption as caption

    real_which = shutil.which
    monkeypatch.setattr(caption.shutil, "which", lambda name, *a, **k: None if name == "java" else real_which(name, *a, **k))
    model = ImageEchoModel()
    first = run(_settings(tmp_path, ["flickr30k"], data_dir="smoke"), model=model)
    assert "Java" in first.task_errors["flickr30k"] and "re-run" in first.task_errors["flickr30k"]
    assert {r["filter"] for r in first.rows} == {"vlmevalkit"}  # the pure-Python scores are still there
    items = pq.read_table(tmp_path / "out" / "items" / first.run_id / "flickr30k.parquet").to_pandas()
    assert len(items) == 6 and (items["output"] == "A drawing of a red circle.").all()

    monkeypatch.undo()
    if real_which("java") is None:
        pytest.skip("Java not installed: the scoring half of this test needs it")
    second = run(_settings(tmp_path, ["flickr30k"], data_dir="smoke"), model=model)
    assert second.generated == 0 and second.resumed == 6 and not second.task_errors
    cider = next(r for r in second.rows if r["is_primary"])
    assert (cider["metric"], cider["filter"], cider["unit"]) == ("CIDEr", "lmms_eval", "x100") and cider["value"] > 0
    # each item carries its own CIDEr (their mean is the run's), so the regression gate pairs CIDEr per item
    items = pq.read_table(tmp_path / "out" / "items" / second.run_id / "flickr30k.parquet").to_pandas()
    per_item = [json.loads(s)["CIDEr/lmms_eval"] for s in items["scores"]]
    assert sum(per_item) / len(per_item) == pytest.approx(cider["value"]) and list(items["score"]) == per_item
    runs = load_run(second.run_id, tmp_path / "out")
    gated = next(m for t in compare_runs(runs, runs).tasks for m in t.metrics if m.is_primary)
    assert gated.metric == "CIDEr/lmms_eval" and gated.n_shared == len(items)
    assert gated.baseline == pytest.approx(cider["value"])
