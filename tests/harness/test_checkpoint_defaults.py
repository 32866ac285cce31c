"""Run defaults a checkpoint carries (harness_defaults.json): presets, shots and the "not a benchmark result" label."""
from __future__ import annotations

import json
import shutil

import pytest

from mmada_bench import cli
from mmada_bench.cards.discovery import get_task
from mmada_bench.models.defaults import DEFAULTS_FILE, read_defaults
from mmada_bench.models.smoke import SMOKE_MODEL_DIR
from mmada_bench.run.planning import plan_task
from mmada_bench.run.types import RunSettings


@pytest.fixture
def labelled_checkpoint(tmp_path):
    folder = tmp_path / "demo"
    shutil.copytree(SMOKE_MODEL_DIR, folder)
    (folder / "SMOKE_MODEL.md").unlink()
    defaults = {"label": "DEMO MODEL: a test label", "presets": {"text": "ci-mmu"},
                "task_presets": {"gsm8k": "ci"}, "task_variants": {"gsm8k": "mmada-chat"}, "num_fewshot": {"gsm8k": 1}}
    (folder / DEFAULTS_FILE).write_text(json.dumps(defaults))
    return folder


def test_defaults_pick_presets_and_shots_and_flags_win(labelled_checkpoint, data_dir):
    defaults = read_defaults(labelled_checkpoint)
    card = get_task("gsm8k")
    plan = plan_task(card, RunSettings(tasks=["gsm8k"], data_dir=str(data_dir), limit=2), defaults, family="mmada")
    assert plan.preset.name == defaults.task_presets["gsm8k"]
    assert plan.items[0].prompt.count("Question:") == defaults.num_fewshot["gsm8k"] + 1
    flags = RunSettings(tasks=["gsm8k"], data_dir=str(data_dir), limit=2, preset="gsm8k-paper", num_fewshot=0)
    plan = plan_task(card, flags, defaults, family="mmada")
    assert plan.preset.name == "gsm8k-paper" and plan.items[0].prompt.count("Question:") == 1
    math = plan_task(get_task("math500"), RunSettings(tasks=["math500"], data_dir=str(data_dir), limit=1), defaults)
    assert math.preset.name == defaults.presets["text"]  # no task entry: the output kind's preset


def test_defaults_pick_the_variant_and_the_flag_wins(labelled_checkpoint, data_dir):
    defaults = read_defaults(labelled_checkpoint)
    card = get_task("gsm8k")
    chosen = defaults.task_variants["gsm8k"]
    other = next(name for name in card.variants if name != chosen)
    settings = RunSettings(tasks=["gsm8k"], data_dir=str(data_dir), limit=1)
    assert plan_task(card, settings, defaults, family="llada").variant_name == chosen  # over the family default
    flagged = RunSettings(tasks=["gsm8k"], data_dir=str(data_dir), limit=1, variant=other)
    assert plan_task(card, flagged, defaults, family="llada").variant_name == other


def test_a_malformed_defaults_file_is_one_clear_error(tmp_path):
    (tmp_path / DEFAULTS_FILE).write_text(json.dumps({"presets": "ci"}))
    with pytest.raises(ValueError, match=DEFAULTS_FILE) as info:
        read_defaults(tmp_path)
    assert "\n" not in str(info.value)


def test_labelled_results_say_so_and_hide_the_paper_column(labelled_checkpoint, data_dir, tmp_path, capsys):
    label = read_defaults(labelled_checkpoint).label
    status = cli.main(["run", "--tasks", "gsm8k", "--model", str(labelled_checkpoint), "--data-dir", str(data_dir),
                       "--limit", "2", "--output-dir", str(tmp_path / "out"), "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0 and f"[{label}]" in out
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("task "))
    header, row = lines[start:start + 2]
    assert header.split()[-1] == "paper" and row.split()[-1] == "-"
    cli.main(["show", "--output-dir", str(tmp_path / "out")])
    shown = capsys.readouterr().out
    assert f"[{label}: the baselines below are for orientation only, not a comparison]" in shown
    manifest = next((tmp_path / "out" / "runs").glob("*/manifest.json"))
    assert json.loads(manifest.read_text())["model"]["label"] == label
