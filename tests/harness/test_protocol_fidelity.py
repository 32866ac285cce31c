"""Protocol details that must match the official MMaDA evaluation code (issue: fidelity)."""
from __future__ import annotations

import json

import pytest

from mmada_bench.cards.discovery import get_task
from mmada_bench.data.loading import DatasetSchemaError, load_task_data
from mmada_bench.metrics.filters import apply_chain
from mmada_bench.models.base import GenerationRequest
from mmada_bench.models.loader import resolve_dtype, resolve_model
from mmada_bench.models.smoke import SMOKE_MODEL_DIR
from mmada_bench.run.planning import plan_task
from mmada_bench.run.types import RunSettings
from mmada_ref.sampling.presets import get_preset


@pytest.fixture(scope="module")
def smoke():
    return resolve_model(str(SMOKE_MODEL_DIR))


def _ids(model, text: str) -> list[int]:
    return model.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_text_after_an_eot_token_reaches_the_stop_cut(smoke):
    """Official eval_llada.py: decode with special tokens, cut at stops, decode again without them."""
    card = get_task("gsm8k")
    row = _ids(smoke, "The answer is 5.") + [smoke.tokens.eot_id] + _ids(smoke, " 7") + [smoke.tokens.eos] * 3
    text = smoke.decode_generation(row, card.stop)
    assert apply_chain(card.filters["flexible-extract"], text, {}) == "7"
    stop = card.stop[0]
    cut = smoke.decode_generation(_ids(smoke, "It is 3.") + [smoke.tokens.eot_id] + _ids(smoke, f" {stop} 9"), card.stop)
    assert apply_chain(card.filters["flexible-extract"], cut, {}).rstrip(".") == "3"  # text after the stop is cut


def test_two_token_pope_answer_after_eot_still_maps(smoke):
    card = get_task("pope")
    text = smoke.decode_generation([smoke.tokens.eot_id] + _ids(smoke, "Yes"), [])  # 2 tokens on the real tokenizer
    assert text.strip() and apply_chain(card.filters["vlmevalkit_mmada"], text, {}) == "yes"


def test_wrapper_variant_writes_the_literal_eot_text(smoke, tmp_path):
    """VLMEvalKit build_mmada_prompt: <|mmu|><|soi|>img<|eoi|><|sot|> user turn + literal <eot_id> + assistant header."""
    for task in ("pope", "mme"):
        card = get_task(task)
        wrapper = card.variant("mmada-vlmevalkit")
        assert wrapper.chat_eot == "<eot_id>" and card.default_variant == "mmada-vlmevalkit"
        assert card.variant("mmada-vlmevalkit-eot-token").chat_eot is None
    request = GenerationRequest("x", "Is there a dog?", [{"role": "user", "content": "Is there a dog?"}],
                                chat_eot="<eot_id>")
    ids = smoke._prompt_ids(request)
    tok = smoke.tokens
    expected = ([tok.bos, tok.start_header] + _ids(smoke, "user") + [tok.end_header] + _ids(smoke, "\nIs there a dog?")
                + _ids(smoke, "<eot_id>") + [tok.start_header] + _ids(smoke, "assistant") + [tok.end_header]
                + _ids(smoke, "\n"))
    assert smoke.tokenizer.decode(ids) == smoke.tokenizer.decode(expected)
    assert tok.eot_id not in ids
    token_form = smoke._prompt_ids(GenerationRequest("x", "q", [{"role": "user", "content": "q"}]))
    assert tok.eot_id in token_form


def test_default_variant_follows_the_model_family(data_dir):
    card = get_task("gsm8k")
    settings = RunSettings(tasks=["gsm8k"], data_dir=str(data_dir), limit=1)
    mmada = plan_task(card, settings, family="mmada")
    assert mmada.variant_name == card.family_variants["mmada"] == "mmada-chat"
    assert mmada.items[0].messages is not None and mmada.items[0].prompt.startswith(card.variant("mmada-chat").prefix)
    for family in ("llada", "hf-causal", "dummy"):
        assert plan_task(card, settings, family=family).variant_name == card.default_variant == "lm-eval"


def test_paper_presets_match_the_paper_and_never_stop_early():
    assert get_preset("math500-paper").settings.gen_length == 1024
    for name in ("gsm8k-paper", "math500-paper", "text-paper"):
        assert get_preset(name).settings.stop_at_eos is False  # the official generate() has no early exit


def test_dtype_auto():
    assert resolve_dtype("auto", "cuda") == resolve_dtype("auto", "cuda:1") == "bfloat16"
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("float16", "cpu") == "float16"


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_duplicate_ids_and_empty_splits_are_errors(tmp_path):
    card = get_task("pope")
    rows = [{"id": "a", "question": "q?", "answer": "yes", "category": "random", "image": "x.png"},
            {"id": "a", "question": "q2?", "answer": "no", "category": "random", "image": "x.png"}]
    _write_jsonl(tmp_path / "pope" / "test.jsonl", rows)
    with pytest.raises(DatasetSchemaError, match="duplicate item ids.*'a'"):
        load_task_data(card, tmp_path)
    (tmp_path / "pope" / "test.jsonl").write_text("")
    with pytest.raises(DatasetSchemaError, match="no items"):
        load_task_data(card, tmp_path)


def test_show_marks_baselines_scored_with_the_same_variant(tmp_path, data_dir, capsys):
    from mmada_bench import cli
    from mmada_bench.results.baselines import baseline_family, load

    out = tmp_path / "out"
    assert cli.main(["run", "--tasks", "gsm8k", "--model", "dummy", "--limit", "2", "--data-dir", str(data_dir),
                     "--output-dir", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["show", "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    card = get_task("gsm8k")
    rows = load()
    rows = rows[rows["benchmark"] == card.protocol.benchmark]
    for _, b in rows.iterrows():
        variant = card.default_variant_for(baseline_family(b["model_type"]))
        same = variant == card.default_variant  # the dummy run used lm-eval
        tag = f"[{variant} = this run]" if same else f"[{variant}]"
        assert any(f" {b['model']} " in line and tag in line for line in text.splitlines()), (b["model"], tag)
    assert any("[mmada-chat]" in line for line in text.splitlines())


@pytest.mark.parametrize("task", ["pope", "mme"])
def test_thinking_variant_is_the_app_layout_and_scores_the_answer_after_think(task):
    """app.py thinking mode for understanding: the <think> instruction + "\\n" + the question, chat template with the
    <|eot_id|> token, 512 / 256 / 128; filters read the text after the last </think>."""
    from mmada_bench.run.text_scoring import score_output
    from mmada_ref.text_tokenizer import THINK_SYSTEM_PROMPT

    card = get_task(task)
    think = card.variant("mmada-app-think")
    assert think.prefix == THINK_SYSTEM_PROMPT + "\n" and think.chat and think.chat_eot is None
    settings = get_preset(think.preset).settings
    assert (settings.gen_length, settings.steps, settings.block_length) == (512, 256, 128)
    output = "<think> top left: red circle no, top right: empty no </think> Yes"
    scored = score_output(card, output, [], {"answer": "yes"}, None, card.primary("mmada-app-think"),
                          think.answer_filter)
    assert scored["extracted"]["vlmevalkit_mmada"] == "yes" and scored["output"] == output
    unread = score_output(card, output, [], {"answer": "yes"}, None, card.primary("mmada-app-think"))
    assert unread["extracted"]["vlmevalkit_mmada"] != "yes"  # the trace's "no" would decide without the cut


def test_set_metrics_read_the_answer_after_think():
    """POPE's set metric (F1, yes ratio) reads the same text as the per-item metrics: after the last </think>."""
    from mmada_bench.data.loading import WORLD_DIR
    from mmada_bench.run.records import set_metric_rows

    settings = RunSettings(tasks=["pope"], data_dir=str(WORLD_DIR), variant="mmada-app-think")
    plan = plan_task(get_task("pope"), settings)
    golds = [p.item.doc["answer"].lower() for p in plan.items]
    records = [{"output": f"<think> top left: red circle yes, top right: empty no </think> {g.capitalize()}"}
               for g in golds]
    rows = {(r["metric"], r["filter"]): r["value"] for r in set_metric_rows(plan, records, {}, [])}
    assert rows[("yes_ratio", "vlmevalkit_mmada")] == pytest.approx(golds.count("yes") / len(golds))
    if "yes" in golds:
        assert rows[("f1", "vlmevalkit_mmada")] == pytest.approx(1.0)
