"""lm-eval bridge: the masked Monte-Carlo loglikelihood, and `python -m mmada_bench lm-eval` on local task cards."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval")

from mmada_bench.integrations.lm_eval import greedy_matches, masked_loglikelihood  # noqa: E402


class TableModel(torch.nn.Module):
    """Logits that depend only on the position (inputs ignored): log p of the target is known exactly."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.table = logits  # [positions, vocab]

    def forward(self, ids, logits_slice=None):
        logits = self.table[: ids.shape[1]].expand(ids.shape[0], -1, -1)
        return type("Out", (), {"logits": logits[:, logits_slice] if logits_slice is not None else logits})()


def test_uniform_predictions_give_the_exact_loglikelihood_for_every_sample():
    vocab, prefix, target = 11, [1, 2, 3], [4, 5, 6, 7, 8]
    model = TableModel(torch.zeros(len(prefix) + len(target), vocab))
    value = masked_loglikelihood(model, prefix, target, 0, 7, 3, torch.Generator().manual_seed(0), "cpu")
    assert value == pytest.approx(-len(target) * math.log(vocab), rel=1e-6)  # float32 log-softmax


def test_estimate_is_unbiased_and_seeded():
    torch.manual_seed(0)
    prefix, target = [1, 2], [3, 0, 4, 2]
    table = torch.randn(len(prefix) + len(target), 6) * 2
    exact = float(torch.log_softmax(table[len(prefix):], -1)[range(len(target)), target].sum())
    estimate = masked_loglikelihood(TableModel(table), prefix, target, 5, 4000, 500, torch.Generator().manual_seed(1), "cpu")
    assert estimate == pytest.approx(exact, abs=0.05 * abs(exact))
    again = [masked_loglikelihood(TableModel(table), prefix, target, 5, 16, 4, torch.Generator().manual_seed(3), "cpu")
             for _ in range(2)]
    assert again[0] == again[1]
    assert greedy_matches(TableModel(table), prefix, table[len(prefix):].argmax(-1).tolist(), 5, "cpu")


def _write_tasks(folder: Path) -> None:
    gen = [{"question": f"What is {a} plus {a + 1}?", "answer": str(2 * a + 1)} for a in range(3)]
    mc = [{"question": f"Is {a} even?", "choices": ["yes", "no"], "label": a % 2} for a in range(3)]
    for name, rows in (("gen", gen), ("mc", mc)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = "dataset_path: json\ntest_split: test\nmetadata:\n  version: 1.0\n"
    (folder / "gen.yaml").write_text(
        f"task: local_gen\n{common}dataset_kwargs:\n  data_files:\n    test: {folder / 'gen.jsonl'}\n"
        "output_type: generate_until\ndoc_to_text: \"Question: {{question}}\\nAnswer:\"\ndoc_to_target: \"{{answer}}\"\n"
        "generation_kwargs:\n  until: [\"Question:\"]\n  max_gen_toks: 16\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n")
    (folder / "mc.yaml").write_text(
        f"task: local_mc\n{common}dataset_kwargs:\n  data_files:\n    test: {folder / 'mc.jsonl'}\n"
        "output_type: multiple_choice\ndoc_to_text: \"Question: {{question}}\\nAnswer:\"\n"
        "doc_to_choice: \"{{choices}}\"\ndoc_to_target: \"{{label}}\"\nmetric_list:\n  - metric: acc\n  - metric: acc_norm\n")


def test_lm_eval_cli_runs_local_generate_and_multiple_choice_tasks(tmp_path, monkeypatch, capsys):
    from mmada_bench.cli import main

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _write_tasks(tmp_path)
    status = main(["lm-eval", "--model", "mmada", "--model_args", "preset=ci,mc_num=4,mc_batch_size=4,seed=5",
                   "--device", "cpu", "--include_path", str(tmp_path), "--tasks", "local_gen,local_mc", "--limit", "2",
                   "--output_path", str(tmp_path / "out"), "--log_samples"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "local_gen" in printed and "local_mc" in printed and "exact_match" in printed
    (results,) = (tmp_path / "out").rglob("results_*.json")
    data = json.loads(results.read_text())["results"]
    assert set(data["local_mc"]) >= {"acc,none", "acc_norm,none"} and "exact_match,none" in data["local_gen"]

    # generate_until answers are our sampler's (same preset, per-context seed), cut at the stop string
    from mmada_bench.integrations.lm_eval import MMaDALM

    lm = MMaDALM(preset="ci", seed=5, device="cpu")
    (samples,) = (tmp_path / "out").rglob("samples_local_gen_*.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    request = type("Req", (), {"args": (rows[0]["arguments"]["gen_args_0"]["arg_0"], {"until": ["Question:"]})})()
    assert lm.generate_until([request]) == [rows[0]["resps"][0][0]]
    (mc_samples,) = (tmp_path / "out").rglob("samples_local_mc_*.jsonl")
    mc_rows = [json.loads(line) for line in mc_samples.read_text().splitlines()]
    assert len(mc_rows) == 2 and all(len(r["resps"]) == 2 for r in mc_rows)
    first = mc_rows[0]["arguments"]["gen_args_0"]
    lm.mc_num, lm.mc_batch_size = 4, 4
    request = type("Req", (), {"args": (first["arg_0"], first["arg_1"])})()
    ((logp, _),) = lm.loglikelihood([request])
    assert logp < 0 and logp == pytest.approx(float(mc_rows[0]["resps"][0][0][0]), rel=1e-6)
