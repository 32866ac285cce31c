"""The world-model build in miniature: every step runs from nothing, each training stage learns, a stopped build
resumes, and the packaged folder is a loadable, labelled checkpoint."""
from __future__ import annotations

import json

import pytest

from mmada_bench.world.pipeline import SCALES, STAGES, STEP_NAMES, Build


def _losses(run_dir, key):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if key in r]


@pytest.fixture(scope="module")
def mini_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("world_mini")
    logs: list[str] = []
    timings = Build(out, "mini", log=logs.append).run()
    return out, timings, logs


def test_every_step_runs_and_is_timed(mini_build):
    out, timings, logs = mini_build
    assert set(timings) == set(STEP_NAMES)
    assert all(t["seconds"] >= 0 for t in timings.values())
    assert any("in all" in line for line in logs)
    for name in STEP_NAMES:
        assert (out / name / "DONE").is_file(), name
    scale = SCALES["mini"]
    for name in STAGES:  # the steps each stage trained (none reaches the answers stage's loss threshold here)
        assert timings[name]["steps"] == scale.steps[name], name
    assert json.loads((out / "magvit" / "metrics.json").read_text())["steps"] == scale.magvit_steps  # by count


def test_unified_stages_lower_their_loss(mini_build):
    out, _, _ = mini_build
    for stage in ("stage1", "stage2"):
        losses = _losses(out / stage, "loss")
        assert len(losses) >= 2 and losses[-1] < losses[0], (stage, losses)


def test_grpo_stage_rolls_out_and_logs_rewards(mini_build):
    out, _, _ = mini_build
    rows = [json.loads(line) for line in (out / "stage3" / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["step"] == SCALES["mini"].steps["stage3"]
    assert all(0.0 <= r["reward"] <= 1.0 and r["response_tokens"] > 0 for r in rows)


def test_finished_steps_are_skipped_on_a_rerun(mini_build):
    out, timings, _ = mini_build
    logs: list[str] = []
    again = Build(out, "mini", log=logs.append).run()
    assert again == timings
    assert sum("skipped" in line for line in logs) == len(STEP_NAMES)


def test_packaged_model_loads_labelled_with_its_defaults(mini_build):
    from mmada_bench.models.defaults import read_defaults
    from mmada_bench.models.loader import resolve_model
    from mmada_bench.world.package import STAGE_SUMMARIES, WORLD_LABEL

    out, _, _ = mini_build
    model = resolve_model(str(out / "model"))
    assert model.is_smoke and model.label == WORLD_LABEL
    defaults = read_defaults(out / "model")
    assert defaults.num_fewshot["gsm8k"] == 0 and defaults.task_presets["gsm8k"]
    assert (out / "model" / "magvitv2").is_dir() and (out / "model" / "model.safetensors").is_file()
    assert (out / "model" / "clip" / "open_clip_config.json").is_file()
    card = (out / "model" / "README.md").read_text()
    assert "not a benchmark result" in card
    for stage in STAGES:  # the card names every stage the build ran, with its summary, and no other
        assert f"`{stage}` {STAGE_SUMMARIES[stage]}" in card
    assert "stage2_mmu" not in card


def test_packaging_records_a_slice_that_a_rerun_reproduces(mini_build, tmp_path):
    from mmada_bench.world.evaluate import RECORDED_SLICE, run_slice

    out, _, _ = mini_build
    recorded = json.loads((out / "model" / RECORDED_SLICE).read_text())
    assert set(recorded["scores"]) == set(recorded["tasks"]) == set(recorded["outputs"])
    assert all(len(outputs) == recorded["scores"][t]["n"] for t, outputs in recorded["outputs"].items())
    assert run_slice(out / "model", tmp_path, recorded["tasks"], recorded["limit"]) == recorded
