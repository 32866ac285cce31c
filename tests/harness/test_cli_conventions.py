"""lm-eval-style conventions of the command line: --gen-kwargs, --num-fewshot, --include-path, --config,
--output-path, the first screen of run / show, and what the manifest records."""
from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from mmada_bench import cli
from mmada_bench.cards.discovery import PACKAGED_TASKS_DIR


def _run(capsys, *args):
    code = cli.main(["run", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def _manifest(out):
    (path,) = (out / "runs").glob("*/manifest.json")
    return json.loads(path.read_text())


def test_gen_kwargs_override_the_preset_and_the_run_id(tmp_path, capsys, data_dir):
    common = ["--tasks", "gsm8k", "--model", "dummy", "--limit", "1", "--data-dir", str(data_dir), "--preset", "ci"]
    assert _run(capsys, *common, "--output-dir", str(tmp_path / "a"))[0] == 0
    code, out, err = _run(capsys, *common, "--gen-kwargs", "steps=4,cache=dual,threshold=0.9",
                          "--output-path", str(tmp_path / "b"))
    assert code == 0, err
    preset = _manifest(tmp_path / "b")["tasks"][0]["preset"]
    assert preset["steps"] == 4 and preset["cache"] == "dual" and preset["threshold"] == 0.9
    assert preset["name"] == "ci+cache=dual,steps=4,threshold=0.9"
    assert _manifest(tmp_path / "a")["run_id"] != _manifest(tmp_path / "b")["run_id"]


def test_gen_kwargs_none_is_a_cache_mode_and_clears_an_optional_setting():
    from mmada_bench.run.planning import with_overrides
    from mmada_ref.sampling.presets import get_preset

    preset = with_overrides(get_preset("world-text"), {"cache": "none", "threshold": "0.9"})
    assert preset.settings.cache == "none" and preset.settings.threshold == 0.9
    assert with_overrides(preset, {"threshold": "none"}).settings.threshold is None


@pytest.mark.parametrize("value, fragment", [("stepz=3", "unknown setting"), ("cache=triple", "'cache'"),
                                             ("steps=many", "expected a int"), ("steps", "not KEY=VALUE")])
def test_bad_gen_kwargs_are_named(tmp_path, capsys, value, fragment):
    code, _, err = _run(capsys, "--tasks", "gsm8k", "--model", "dummy", "--gen-kwargs", value,
                        "--output-dir", str(tmp_path))
    assert code in (1, 2) and fragment in err and "Traceback" not in err, err


def test_num_fewshot_changes_the_prompt(tmp_path, capsys, data_dir):
    for shots in (0, 2):
        out = tmp_path / str(shots)
        assert _run(capsys, "--tasks", "gsm8k", "--model", "dummy", "--limit", "1", "--data-dir", str(data_dir),
                    "--num-fewshot", str(shots), "--output-dir", str(out))[0] == 0
        (items,) = (out / "items").glob("*/gsm8k.parquet")
        prompt = pq.read_table(items).to_pylist()[0]["prompt"]
        assert prompt.count("Question:") == shots + 1


def test_include_path_adds_cards(tmp_path, capsys):
    folder = tmp_path / "cards"
    folder.mkdir()
    text = (PACKAGED_TASKS_DIR / "gsm8k.yaml").read_text().replace("name: gsm8k", "name: my_gsm8k", 1)
    (folder / "my_gsm8k.yaml").write_text(text)
    code, out, err = _run(capsys, "--tasks", "my_gsm8k", "--model", "dummy", "--limit", "1", "--data-dir", "smoke",
                          "--include-path", str(folder), "--output-dir", str(tmp_path / "out"))
    assert code == 0 and "my_gsm8k" in out, err


def test_config_file_with_command_line_overrides(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"tasks: [gsm8k]\nmodel: dummy\nlimit: 3\ndata-dir: smoke\noutput_dir: {tmp_path / 'out'}\n")
    code, out, err = _run(capsys, "--config", str(config), "--limit", "2")
    assert code == 0, err
    assert _manifest(tmp_path / "out")["settings"]["limit"] == 2
    config.write_text("tasks: [gsm8k]\nno_such_flag: 1\n")
    code, _, err = _run(capsys, "--config", str(config))
    assert code == 2 and "no_such_flag" in err


def test_first_screen_is_one_headline_row_per_task(tmp_path, capsys, data_dir):
    shutil.copytree(data_dir / "gsm8k", tmp_path / "data" / "gsm8k")
    code, out, _ = _run(capsys, "--tasks", "gsm8k,pope", "--model", "dummy", "--limit", "2", "--data-dir", "smoke",
                        "--output-dir", str(tmp_path / "out"))
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith(("gsm8k ", "pope "))]
    assert [line.split()[0] for line in table] == ["gsm8k", "pope"]
    assert "--all" in out and "protocol" in out
    capsys.readouterr()
    assert cli.main(["show", "--output-dir", str(tmp_path / "out")]) == 0
    headline = capsys.readouterr().out
    assert cli.main(["show", "--all", "--output-dir", str(tmp_path / "out")]) == 0
    everything = capsys.readouterr().out
    rows = [text.count("\n  this run ") for text in (headline, everything)]
    assert rows[0] == 2 and rows[1] > 2


def test_manifest_records_device_and_scorer_versions(tmp_path, capsys):
    assert _run(capsys, "--tasks", "gsm8k", "--model", "dummy", "--limit", "1", "--output-dir", str(tmp_path))[0] == 0
    manifest = _manifest(tmp_path)
    assert {"gpus", "cuda_version", "cudnn_version"} <= set(manifest["device"])
    assert {"open_clip_torch", "pycocoevalcap", "math-verify"} <= set(manifest["packages"])
    assert "java" in manifest


def test_metric_names_select_their_task_and_list_tasks_shows_metrics(capsys):
    from mmada_bench.cards.discovery import get_task, resolve_task_names, task_cards

    t2i_metrics = get_task("t2i").metric_names
    assert resolve_task_names(t2i_metrics) == ["t2i"]  # clip_score,imagereward -> the text-to-image task
    assert resolve_task_names(["gsm8k", *get_task("gsm8k").metric_names]) == ["gsm8k"]
    shared = set(get_task("pope").metric_names) & set(get_task("mme").metric_names)
    assert shared and resolve_task_names(sorted(shared)) == sorted(shared)  # ambiguous: left for planning to report
    assert cli.main(["list-tasks"]) == 0
    out = capsys.readouterr().out
    for name in task_cards():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert all(metric in line for metric in get_task(name).metric_names)
