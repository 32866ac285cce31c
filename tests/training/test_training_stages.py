"""Stages 1 and 2 on tiny models: losses fall, checkpoints load in the official format, resume continues."""
import json

import pytest
import torch

from mmada_ref import MMaDAModelLM
from mmada_ref.training.demo import DEFAULT_MODEL, demo_stages, write_synthetic_data
from mmada_ref.training.plot import read_metrics
from mmada_ref.training.stages import load_stage, stage_from_dict
from mmada_ref.training.trainer import Trainer, latest_checkpoint


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend on a shared 2-core machine
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    data = write_synthetic_data(tmp_path_factory.mktemp("data"))
    return demo_stages(data, DEFAULT_MODEL, steps=30)


def _mean(records, key, part):
    values = [r[key] for r in records]
    n = max(1, len(values) // 4)
    return sum(values[:n] if part == "first" else values[-n:]) / n


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stage1", "stage2"])
def test_loss_falls_on_synthetic_task(stages, name, tmp_path):
    Trainer(stage_from_dict(stages[name]), tmp_path, resume=False).train()
    records = read_metrics(tmp_path)
    assert len(records) == 15
    for key in ("loss", "loss_t2i", "loss_lm", "loss_mmu"):
        first, last = _mean(records, key, "first"), _mean(records, key, "last")
        assert last < 0.8 * first, (key, first, last)
    assert (tmp_path / "curves" / "loss.png").stat().st_size > 1000


def test_stage2_batches_use_the_thinking_format_and_mask_responses_only(stages, tmp_path):
    cfg = stage_from_dict(stages["stage2"])
    trainer = Trainer(cfg, tmp_path, resume=False)
    builder, tokens, tok = trainer.step_fn.builder, trainer.tokens, trainer.tokenizer
    batch = builder.next()
    for ids, lengths in ((batch.lm_ids, batch.lm_answer_lengths), (batch.mmu_ids, batch.mmu_answer_lengths)):
        assert (lengths > 0).all()
        for row in ids.tolist():
            header = max(i for i, t in enumerate(row) if t == tokens.end_header)
            assert tokens.mask not in row[: header + 1]  # the prompt is never masked
    clean = builder.formatter.chat_ids("What is 1 plus 2?", "<think> x </think> 3")
    text = tok.decode(clean)
    assert "<think>" in text and "</think> 3" in text and "reasoning process" in text


def test_target_weights_scale_chosen_tokens_and_whole_multi_token_pieces(stages, tmp_path):
    """objective.target_weights: a one-token piece weights every target with that id, a piece of several tokens
    each token of its whole occurrences; every other target keeps its weight; an empty piece is refused."""
    stage = json.loads(json.dumps(stages["stage2"]))
    trainer = Trainer(stage_from_dict(stage), tmp_path / "plain", resume=False)
    piece = next(t for t in trainer.tokenizer.convert_ids_to_tokens(trainer.step_fn.builder.next().lm_labels[0].tolist())
                 if t is not None)
    piece_text = trainer.tokenizer.convert_tokens_to_string([piece])
    piece_id = trainer.tokenizer(piece_text, add_special_tokens=False)["input_ids"]
    assert len(piece_id) == 1, piece_text
    stage["objective"]["target_weights"] = {piece_text: 3.0}
    builder = Trainer(stage_from_dict(stage), tmp_path / "weighted", resume=False).step_fn.builder
    batch = builder.next()
    assert (batch.lm_labels == piece_id[0]).any()
    for labels, weights in ((batch.lm_labels, batch.lm_loss_weights), (batch.mmu_labels, batch.mmu_loss_weights)):
        assert weights is not None
        chosen = labels == piece_id[0]
        assert torch.all(weights[chosen] == 3.0)
        assert not torch.any(weights[~chosen] == 3.0)
    labels = batch.lm_labels[0].tolist()
    start = next(i for i in range(len(labels) - 1) if min(labels[i], labels[i + 1]) >= 0 and labels[i] != labels[i + 1])
    pair_text = trainer.tokenizer.decode(labels[start:start + 2])
    pair = tuple(trainer.tokenizer(pair_text, add_special_tokens=False)["input_ids"])
    assert len(pair) == 2, pair_text
    stage["objective"]["target_weights"] = {pair_text: 0.5}
    batch = Trainer(stage_from_dict(stage), tmp_path / "pair", resume=False).step_fn.builder.next()
    for row_labels, row_weights in zip(batch.lm_labels.tolist(), batch.lm_loss_weights.tolist()):
        covered = [False] * len(row_labels)
        for i in range(len(row_labels) - 1):
            if tuple(row_labels[i:i + 2]) == pair:
                covered[i] = covered[i + 1] = True
        assert [w == 0.5 for w in row_weights] == covered  # whole occurrences only, never a lone token of the pair
    assert any(0.5 in w for w in batch.lm_loss_weights.tolist())
    stage["objective"]["target_weights"] = {"": 2.0}
    with pytest.raises(ValueError, match="target_weights.*no token"):
        Trainer(stage_from_dict(stage), tmp_path / "bad", resume=False)


def test_mmu_full_mask_prob_masks_whole_responses_and_keeps_the_official_stream_at_zero(stages, tmp_path):
    """objective.mmu_full_mask_prob: 1 masks every mmu response token; 0 (default) draws exactly the official batch."""
    stage = json.loads(json.dumps(stages["stage2"]))

    def builder(name, **objective):
        stage["objective"].update(objective)
        return Trainer(stage_from_dict(stage), tmp_path / name, resume=False).step_fn.builder

    official, zero = builder("official").next(), builder("zero", mmu_full_mask_prob=0.0).next()
    assert torch.equal(official.mmu_ids, zero.mmu_ids) and torch.equal(official.lm_ids, zero.lm_ids)
    full_builder = builder("full", mmu_full_mask_prob=1.0)
    full, mask_id = full_builder.next(), full_builder.tokens.mask
    response = full.mmu_answer_lengths[:, :1]
    assert torch.equal((full.mmu_ids == mask_id).sum(-1, keepdim=True), response)
    assert torch.all(full.mmu_p_mask == 1.0)
    assert not torch.all(official.mmu_p_mask == 1.0)
    stage["objective"]["mmu_full_mask_prob"] = 1.5
    with pytest.raises(ValueError, match="mmu_full_mask_prob"):
        stage_from_dict(stage).validate()


def test_a_source_full_mask_prob_overrides_the_objective_for_its_rows(stages, tmp_path):
    """data.sources[].full_mask_prob: an mmu file at 0 keeps t ~ U(0, 1) beside an objective at 1 (captions beside
    one-token answers), a file at 1 masks whole responses under the official objective; text sources refuse it."""
    stage = json.loads(json.dumps(stages["stage2"]))
    mmu = [src for src in stage["data"]["sources"] if src["kind"] == "mmu"]
    assert mmu, "the stage-2 fixture needs an mmu source"

    def batch(name, objective_share, source_share):
        stage["objective"]["mmu_full_mask_prob"] = objective_share
        for src in mmu:
            src["full_mask_prob"] = source_share
        return Trainer(stage_from_dict(stage), tmp_path / name, resume=False).step_fn.builder.next()

    assert not torch.all(batch("captions", 1.0, 0.0).mmu_p_mask == 1.0)
    assert torch.all(batch("answers", 0.0, 1.0).mmu_p_mask == 1.0)
    text = next(src for src in stage["data"]["sources"] if src["kind"] == "text")
    text["full_mask_prob"] = 0.5
    with pytest.raises(ValueError, match="full_mask_prob applies to mmu"):
        stage_from_dict(stage).validate()


def test_a_source_structural_weight_overrides_the_objective_for_its_rows(stages, tmp_path):
    """data.sources[].structural_weight: the EOS / end-of-turn targets of that file's mmu rows take the source's
    weight, every other target keeps the objective's; text sources refuse it."""
    stage = json.loads(json.dumps(stages["stage2"]))
    stage["objective"]["structural_weight"] = 0.1
    for src in stage["data"]["sources"]:
        if src["kind"] == "mmu":
            src["structural_weight"] = 0.7
    builder = Trainer(stage_from_dict(stage), tmp_path / "source", resume=False).step_fn.builder
    batch = builder.next()
    structural = (batch.mmu_labels == builder.tokens.eos) | (batch.mmu_labels == builder.tokens.eot_id)
    assert structural.any() and (~structural & (batch.mmu_labels >= 0)).any()
    assert torch.all(batch.mmu_loss_weights[structural] == 0.7)
    assert torch.all(batch.mmu_loss_weights[~structural & (batch.mmu_labels >= 0)] == 1.0)
    lm_structural = (batch.lm_labels == builder.tokens.eos) | (batch.lm_labels == builder.tokens.eot_id)
    assert torch.all(batch.lm_loss_weights[lm_structural] == 0.1)
    text = next(src for src in stage["data"]["sources"] if src["kind"] == "text")
    text["structural_weight"] = 1.0
    with pytest.raises(ValueError, match="structural_weight applies to mmu"):
        stage_from_dict(stage).validate()


def test_rows_longer_than_their_layout_are_warned_about_once(stages, tmp_path):
    """A row that does not fit max_seq_length / lm_max_length is cut as in the official code; the builder says so."""
    import warnings

    stage = json.loads(json.dumps(stages["stage2"]))
    builder = Trainer(stage_from_dict(stage), tmp_path / "fits", resume=False).step_fn.builder
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        builder.next()
    stage["data"]["max_seq_length"] = 8
    stage["data"]["lm_max_length"] = 8
    builder = Trainer(stage_from_dict(stage), tmp_path / "short", resume=False).step_fn.builder
    with pytest.warns(UserWarning) as caught:
        builder.next()
        builder.next()
    messages = [str(w.message) for w in caught if "are cut to" in str(w.message)]
    assert sorted(m.split()[0] for m in messages) == ["lm", "mmu"]
    assert any("max_seq_length=8" in m for m in messages) and any("lm_max_length=8" in m for m in messages)


def test_checkpoint_round_trip_and_resume(stages, tmp_path):
    stage = json.loads(json.dumps(stages["stage1"]))
    stage["train"].update(max_steps=4, save_every=2, log_every=1)
    cfg = stage_from_dict(stage)
    first = Trainer(cfg, tmp_path)
    first.train()
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt.name == "step-0000004"
    loaded = MMaDAModelLM.from_pretrained(ckpt)
    trained = first.accelerator.unwrap_model(first.model).state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in loaded.state_dict().items())
    assert not torch.equal(loaded.state_dict()["model.transformer.wte.weight"],
                           MMaDAModelLM.from_pretrained(DEFAULT_MODEL).state_dict()["model.transformer.wte.weight"])
    for name in ("config.json", "model.safetensors", "tokenizer.json", "magvitv2"):
        assert (ckpt / name).exists(), name
    from mmada_bench.models.loader import resolve_model

    assert resolve_model(str(ckpt)).model.config.d_model == loaded.config.d_model

    resumed = Trainer(cfg, tmp_path, max_steps=6)
    assert resumed.step == 4
    assert resumed.optimizer.state_dict()["state"]  # optimiser moments came back
    resumed.train()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5, 6]
    assert latest_checkpoint(tmp_path).name == "step-0000006"
    assert not (tmp_path / "tensorboard").exists()  # off by default


@pytest.mark.parametrize("threshold, steps_run", [(1e9, 2), (1e-12, 5)])
def test_loss_threshold_stops_the_stage_early_and_for_good(stages, tmp_path, threshold, steps_run):
    """``train.stop_loss_below`` ends the stage once the last ``stop_window`` steps' loss reaches it (checked on the
    logged windows); ``max_steps`` stays the cap, and a resumed run does not train past the stop."""
    stage = json.loads(json.dumps(stages["stage1"]))
    stage["train"].update(max_steps=5, save_every=100, log_every=1, stop_loss_below=threshold, stop_window=2)
    cfg = stage_from_dict(stage)
    record = Trainer(cfg, tmp_path).train()
    assert record["step"] == steps_run
    assert record.get("stopped_early", False) == (steps_run < 5)
    assert latest_checkpoint(tmp_path).name == f"step-{steps_run:07d}"
    Trainer(cfg, tmp_path).train()  # resumes from the stop: nothing more to do
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(1, steps_run + 1))


def test_loss_threshold_needs_a_whole_log_window(stages):
    stage = json.loads(json.dumps(stages["stage1"]))
    stage["train"].update(log_every=10, stop_loss_below=0.5, stop_window=5)
    with pytest.raises(ValueError, match="stop_window"):
        stage_from_dict(stage).validate()


def test_shipped_stage_configs_parse(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs" / "train"
    kinds = {}
    for path in sorted(root.glob("*.yaml")):
        cfg = load_stage(path, {"model.path": str(DEFAULT_MODEL)})
        kinds[cfg.name] = cfg.kind
    assert kinds == {"stage1": "unified", "stage2": "unified", "stage3": "grpo"}


def test_config_errors_are_actionable():
    with pytest.raises(ValueError, match="unknown key"):
        stage_from_dict({"model": {"path": "x"}, "optim": {"learning_rate": 1e-4}})
    with pytest.raises(ValueError, match="model.path"):
        stage_from_dict({"data": {"sources": [{"path": "a.jsonl"}]}}).validate()
    with pytest.raises(ValueError, match="kind"):
        stage_from_dict({"model": {"path": "x"}, "data": {"sources": [{"path": "a", "kind": "video"}]}}).validate()


@pytest.fixture
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def test_bf16_gradient_checkpointing_and_accumulation(stages, tmp_path, fresh_accelerate_state):
    stage = json.loads(json.dumps(stages["stage1"]))
    stage["model"]["gradient_checkpointing"] = True
    stage["train"].update(max_steps=3, mixed_precision="bf16", gradient_accumulation_steps=2, save_every=100)
    trainer = Trainer(stage_from_dict(stage), tmp_path, resume=False)
    assert trainer.accelerator.unwrap_model(trainer.model).gradient_checkpointing
    record = trainer.train()
    assert all(v == v and abs(v) < 1e4 for v in record.values())  # finite
    adam_steps = {int(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert adam_steps == {3}  # 6 micro-batches, 3 optimiser steps
    assert trainer.scheduler.scheduler.last_epoch == 3


def test_bad_rows_get_clear_errors(tmp_path):
    from mmada_ref.training.data import ImageCodes, read_rows

    codes = ImageCodes(None, num_vq_tokens=4, codebook_size=64)
    with pytest.raises(ValueError, match="MAGVIT indices"):
        codes({"image_codes": [1, 2, 3, 300]})
    with pytest.raises(ValueError, match="num_vq_tokens=4"):
        codes({"image_codes": [1, 2, 3]})
    with pytest.raises(FileNotFoundError, match="MAGVIT-v2 folder"):
        codes({"image": "x.png"})
    with pytest.raises(ValueError, match="unsupported data format"):
        (tmp_path / "a.csv").write_text("x")
        read_rows(tmp_path / "a.csv")
    (tmp_path / "b.jsonl").write_text('{"text": 1}\n{broken\n')
    with pytest.raises(ValueError, match="b.jsonl:2"):
        read_rows(tmp_path / "b.jsonl")


def test_tensorboard_scalars_follow_metrics_jsonl(stages, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stage = json.loads(json.dumps(stages["stage1"]))
    stage["train"].update(max_steps=3, log_every=1, save_every=100, tensorboard=True)
    Trainer(stage_from_dict(stage), tmp_path, resume=False).train()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    records = read_metrics(tmp_path)
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in records] == [1, 2, 3]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in records], rel=1e-6)
    assert {"train/lr", "train/loss_t2i", "train/loss_lm", "train/loss_mmu"} <= set(events.Tags()["scalars"])


def test_tensorboard_without_the_package_is_one_clear_error(stages, tmp_path, monkeypatch, capsys):
    import sys

    import yaml

    from mmada_ref.training.__main__ import main
    from mmada_ref.training.tensorboard_log import TensorBoardMissing

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    stage = json.loads(json.dumps(stages["stage1"]))
    stage["train"]["tensorboard"] = True
    with pytest.raises(TensorBoardMissing, match=r'pip install "mmada-bench\[tensorboard\]"'):
        Trainer(stage_from_dict(stage), tmp_path / "api", resume=False)
    stage["train"]["tensorboard"] = False
    config = tmp_path / "stage.yaml"
    config.write_text(yaml.safe_dump(stage))
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "--output-dir", str(tmp_path / "cli"), "--tensorboard"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "mmada-bench[tensorboard]" in err
    assert not (tmp_path / "cli" / "metrics.jsonl").exists()
