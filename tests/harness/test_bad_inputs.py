"""Hostile inputs through the command line: each case ends in its outcome class, never in a traceback.

* ``error``: one ``error:`` line naming the cause, exit status 2 (usage) or 1 (failed run);
* ``record``: the run goes on and the item is stored as an error record;
* ``ok``: the input is handled correctly (recovery / accepted form).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from mmada_bench import cli
from mmada_bench.data.loading import SMOKE_DIR
from mmada_bench.models.defaults import DEFAULTS_FILE
from mmada_bench.models.smoke import SMOKE_MODEL_DIR

SMOKE = SMOKE_MODEL_DIR


def _checkpoint(tmp_path: Path, damage=None) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(SMOKE, folder)
    (folder / "SMOKE_MODEL.md").unlink()  # behave as a user's own checkpoint
    (folder / DEFAULTS_FILE).unlink()
    if damage:
        damage(folder)
    return folder


def _config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _truncate(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 3])


def _bin_only(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")


def _nan_head(folder: Path) -> None:
    weights = load_file(folder / "model.safetensors")
    head = next(k for k in weights if k.endswith("ff_out.weight"))
    weights[head] = torch.full_like(weights[head], float("nan"))
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def _run(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


GSM8K = ["--tasks", "gsm8k", "--limit", "1", "--preset", "ci", "--no-progress"]

# (id, checkpoint damage, extra args, exit code, fragment of the one error line)
CHECKPOINT_CASES = [
    ("truncated-safetensors", _truncate, [], 1, "cannot load the checkpoint"),
    ("shapes-disagree", lambda f: _config(f, d_model=96), [], 1, "cannot load the checkpoint"),
    ("zero-heads", lambda f: _config(f, n_heads=0), [], 1, "cannot load the checkpoint"),
    ("bin-only", _bin_only, [], 1, "only safetensors are loaded"),
    ("no-tokenizer", lambda f: (f / "tokenizer.json").unlink(), [], 1, "lacks tokenizer.json"),
    ("corrupt-tokenizer", lambda f: (f / "tokenizer.json").write_text("{not json"), [], 1, "cannot be read"),
    ("config-not-json", lambda f: (f / "config.json").write_text("{"), [], 1, "not valid JSON"),
    ("no-config", lambda f: (f / "config.json").unlink(), [], 1, "no config.json"),
    ("no-weights", lambda f: (f / "model.safetensors").unlink(), [], 1, "no weights"),
    ("bad-model-option", None, [":vq_model"], 1, "not key=value"),
]


@pytest.mark.parametrize("case, damage, suffix, code, fragment", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_checkpoint_faults(tmp_path, capsys, data_dir, case, damage, suffix, code, fragment):
    folder = _checkpoint(tmp_path, damage)
    spec = str(folder) + (suffix[0] if suffix else "")
    status, _, err = _run(capsys, "run", "--model", spec, "--data-dir", str(data_dir), "--output-dir",
                          str(tmp_path / "out"), *GSM8K)
    assert status == code and fragment in err and err.count("error:") == 1, err


def test_missing_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    status, _, err = _run(capsys, "run", "--model", str(_checkpoint(tmp_path)), "--device", "cuda", "--output-dir",
                          str(tmp_path / "out"), *GSM8K)
    assert status == 1 and "no such CUDA device" in err


def test_model_path_that_does_not_exist(tmp_path, capsys):
    status, _, err = _run(capsys, "run", "--model", str(tmp_path / "nope"), *GSM8K)
    assert status == 1 and "neither a checkpoint folder" in err


def test_vq_model_option_is_accepted(tmp_path, capsys):
    folder = _checkpoint(tmp_path)
    vq = tmp_path / "vq"
    shutil.move(str(folder / "magvitv2"), vq)
    status, out, err = _run(capsys, "run", "--model", f"{folder}:vq_model={vq}", "--tasks", "pope", "--limit", "2",
                            "--preset", "ci-mmu", "--data-dir", "smoke", "--no-progress", "--output-dir",
                            str(tmp_path / "out"))
    assert status == 0, err
    items = pq.read_table(next((tmp_path / "out" / "items").glob("*/pope.parquet"))).to_pylist()
    assert all(not r["error"] for r in items)


FLAG_CASES = [
    ("empty-tasks", ["run", "--tasks", ""], 2, "names no task"),
    ("only-commas", ["run", "--tasks", ",,"], 2, "names no task"),
    ("zero-batch", ["run", "--tasks", "gsm8k", "--batch-size", "0"], 2, "--batch-size 0: expected a positive integer or auto"),
    ("word-batch", ["run", "--tasks", "gsm8k", "--batch-size", "foo"], 2, "--batch-size foo: expected a positive integer or auto"),
    ("zero-limit", ["run", "--tasks", "gsm8k", "--limit", "0"], 2, "--limit must be a positive integer"),
    ("unknown-task", ["run", "--tasks", "gsm9k", "--model", "dummy"], 1, "unknown task"),
    ("unknown-preset", ["run", "--tasks", "gsm8k", "--model", "dummy", "--preset", "nope"], 1, "unknown sampler preset"),
    ("unknown-variant", ["run", "--tasks", "gsm8k", "--model", "dummy", "--variant", "nope"], 1, "has no variant"),
    ("image-preset-on-text", ["run", "--tasks", "gsm8k", "--model", "dummy", "--preset", "t2i-paper"], 1, "image preset"),
    ("text-preset-on-t2i", ["run", "--tasks", "t2i", "--model", "dummy", "--preset", "gsm8k-paper"], 1, "text preset"),
    ("unknown-model-name", ["run", "--tasks", "gsm8k", "--model", "gpt9"], 1, "neither a checkpoint folder"),
    ("show-without-results", ["show"], 1, "no results"),
]


@pytest.mark.parametrize("case, args, code, fragment", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_flag_errors(tmp_path, capsys, case, args, code, fragment):
    status, _, err = _run(capsys, *args, "--output-dir", str(tmp_path / "out"))
    assert status == code and fragment in err, err
    if code == 2:  # a usage error is one line
        assert len(err.strip().splitlines()) == 1, err


def test_bad_dtype_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--tasks", "gsm8k", "--dtype", "float8"])
    assert info.value.code == 2


def _pope_dir(tmp_path: Path, write) -> Path:
    folder = tmp_path / "data" / "pope"
    folder.mkdir(parents=True)
    write(folder)
    return tmp_path / "data"


POPE_ROW = {"id": "a", "question_id": "1", "question": "Is there a dog?", "answer": "yes", "category": "random",
            "image_source": "x", "image": {"bytes": None, "path": "x.png"}}
DATA_CASES = [
    ("corrupt-parquet", lambda f: (f / "test.parquet").write_bytes(b"PAR1 garbage"), "not a readable Parquet"),
    ("split-is-folder", lambda f: (f / "test.parquet").mkdir(), "is a folder"),
    ("empty-split", lambda f: (f / "test.jsonl").write_text(""), "no items"),
    ("duplicate-ids", lambda f: (f / "test.jsonl").write_text(json.dumps(POPE_ROW) + "\n" + json.dumps(POPE_ROW) + "\n"),
     "duplicate item ids"),
    ("missing-column", lambda f: (f / "test.jsonl").write_text(json.dumps({"id": "a", "question": "q"}) + "\n"),
     "is missing from"),
    ("no-split-file", lambda f: (f / "other.jsonl").write_text("{}\n"), "no 'test' split"),
]


@pytest.mark.parametrize("case, write, fragment", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_data_errors(tmp_path, capsys, case, write, fragment):
    status, _, err = _run(capsys, "run", "--tasks", "pope", "--model", "dummy", "--data-dir",
                          str(_pope_dir(tmp_path, write)), "--output-dir", str(tmp_path / "out"), "--no-progress")
    assert status == 1 and fragment in err, err


def test_require_data_without_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    status, _, err = _run(capsys, "run", "--tasks", "gsm8k", "--model", "dummy", "--require-data",
                          "--output-dir", str(tmp_path / "out"), "--no-progress")
    assert status == 1 and "no dataset found" in err


def _records(out: Path, task: str) -> list[dict]:
    return pq.read_table(next((out / "items").glob(f"*/{task}.parquet"))).to_pylist()


def test_bad_jsonl_line_is_an_error_record(tmp_path, capsys):
    folder = tmp_path / "data" / "gsm8k"
    shutil.copytree(SMOKE_DIR / "gsm8k", folder)
    lines = (folder / "test.jsonl").read_text().splitlines()[:3]
    (folder / "test.jsonl").write_text("\n".join([lines[0], "{broken", lines[2]]) + "\n")
    status, _, err = _run(capsys, "run", "--tasks", "gsm8k", "--model", "dummy", "--data-dir", str(tmp_path / "data"),
                          "--output-dir", str(tmp_path / "out"), "--no-progress")
    records = _records(tmp_path / "out", "gsm8k")
    assert status == 0 and len(records) == 3 and sum(bool(r["error"]) for r in records) == 1


CARD = """name: {name}
version: "1"
dataset: {{local_dir: gsm8k, required_fields: [question, answer]}}
prompt: {{template: "{{{{question}}}}"}}
protocol: {{benchmark: GSM8K}}
output_type: generate_until
preset: ci
metrics: [{{name: exact_match}}]
"""
CARD_CASES = [
    ("missing-module", lambda name: CARD.format(name=name) + "module: no_such_module_here\n", "cannot import"),
    ("invalid-yaml", lambda name: "name: [unclosed\n", "not valid YAML"),
    ("unknown-field", lambda name: CARD.format(name=name) + "bogus: 1\n", "unknown key 'bogus'"),
    ("bad-output-type", lambda name: CARD.format(name=name).replace("generate_until", "video"), "output_type"),
    ("no-preset", lambda name: CARD.format(name=name).replace("preset: ci\n", ""), "'preset' is required"),
]


@pytest.mark.parametrize("case, text, fragment", CARD_CASES, ids=[c[0] for c in CARD_CASES])
def test_card_errors(tmp_path, capsys, monkeypatch, case, text, fragment):
    name = f"bad_{case.replace('-', '_')}"
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / f"{name}.yaml").write_text(text(name))
    monkeypatch.setenv("MMADA_TASKS_DIR", str(tmp_path / "cards"))
    status, _, err = _run(capsys, "run", "--tasks", name, "--model", "dummy", "--data-dir", "smoke",
                          "--output-dir", str(tmp_path / "out"), "--no-progress")
    assert status == 1 and fragment in err, err


def test_output_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "out").write_text("a file")
    status, _, err = _run(capsys, "run", "--tasks", "gsm8k", "--model", "dummy", "--limit", "1",
                          "--output-dir", str(tmp_path / "out" / "sub"), "--no-progress")
    assert status == 1 and "Not a directory" in err and err.count("error:") == 1


def test_run_id_reused_with_another_model(tmp_path, capsys, data_dir):
    common = ["--tasks", "gsm8k", "--limit", "1", "--data-dir", str(data_dir), "--run-id", "mine",
              "--output-dir", str(tmp_path / "out"), "--no-progress", "--preset", "ci"]
    assert _run(capsys, "run", "--model", "dummy", *common)[0] == 0
    status, _, err = _run(capsys, "run", *common)  # the smoke model under the same run id
    assert status == 1 and "already holds results" in err and "model_fingerprint" in err
    status, _, err = _run(capsys, "run", "--model", "dummy", *common[:3], "2", *common[4:])
    assert status == 1 and "limit" in err


def test_smoke_checkpoint_passed_explicitly_is_labelled_smoke(tmp_path, capsys, data_dir):
    status, out, _ = _run(capsys, "run", "--model", str(SMOKE), "--data-dir", str(data_dir),
                          "--output-dir", str(tmp_path / "out"), *GSM8K)
    board = pq.read_table(tmp_path / "out" / "leaderboard.parquet").to_pylist()
    assert status == 0 and board and all(r["model_is_smoke"] for r in board) and "SMOKE MODEL" in out


def test_image_tokenizer_is_part_of_the_fingerprint(tmp_path):
    from mmada_bench.models.loader import resolve_model

    folder = _checkpoint(tmp_path)
    before = resolve_model(str(folder)).fingerprint()
    config = json.loads((folder / "magvitv2" / "magvit_config.json").read_text())
    config["quantizer_kwargs"]["beta"] = 0.5
    (folder / "magvitv2" / "magvit_config.json").write_text(json.dumps(config))
    assert resolve_model(str(folder)).fingerprint() != before


def test_nan_logits_become_error_records(tmp_path, capsys, data_dir):
    folder = _checkpoint(tmp_path, _nan_head)
    status, out, _ = _run(capsys, "run", "--model", str(folder), "--data-dir", str(data_dir),
                          "--output-dir", str(tmp_path / "out"), *GSM8K)
    records = _records(tmp_path / "out", "gsm8k")
    assert status == 0 and all("NaN" in (r["error"] or "") for r in records)
    assert all(r["score"] == 0 for r in records)


def test_prompt_longer_than_the_context_is_an_error_record(tmp_path, capsys, data_dir):
    folder = _checkpoint(tmp_path, lambda f: _config(f, max_sequence_length=64))
    status, _, _ = _run(capsys, "run", "--model", str(folder), "--data-dir", str(data_dir),
                        "--output-dir", str(tmp_path / "out"), *GSM8K)
    records = _records(tmp_path / "out", "gsm8k")
    assert status == 0 and all("prompt too long" in (r["error"] or "") for r in records)


def test_unexpected_error_prints_one_line_and_keeps_the_traceback(tmp_path, capsys, monkeypatch):
    from mmada_bench.commands import run as run_command

    def explode(settings, **kwargs):
        raise RuntimeError("something nobody anticipated")

    monkeypatch.setattr(run_command, "run", explode)
    status, _, err = _run(capsys, "run", "--tasks", "gsm8k", "--model", "dummy", "--output-dir", str(tmp_path / "out"))
    assert status == 1 and "unexpected RuntimeError" in err and err.count("\n") == 1
    path = Path(err.split("full traceback: ")[1].split(";")[0])
    assert path.is_file() and "something nobody anticipated" in path.read_text()
    assert cli.main(["--debug", "run", "--tasks", "gsm8k", "--model", "dummy", "--output-dir", str(tmp_path)]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_exits_130(tmp_path, capsys, monkeypatch):
    from mmada_bench.commands import run as run_command

    def interrupt(settings, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_command, "run", interrupt)
    status, _, err = _run(capsys, "run", "--tasks", "gsm8k", "--model", "dummy", "--output-dir", str(tmp_path / "out"))
    assert status == 130 and "finished items are stored" in err
