"""--apply-chat-template and --system-instruction (lm-eval's names): where the instruction goes, what the run
records, and the cards that refuse them."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from mmada_bench import cli
from mmada_bench.cards.discovery import get_task
from mmada_bench.cards.prompts import build_prompt
from mmada_bench.cards.schema import VariantSpec
from mmada_bench.errors import UsageError
from mmada_bench.run.planning import plan_task
from mmada_bench.run.types import RunSettings
from mmada_ref.text_tokenizer import format_chat

DOC = {"question": "What is 2 plus 3?", "answer": "5"}


def test_where_the_system_instruction_goes():
    card = get_task("gsm8k")
    plain, chat = card.variant("lm-eval"), card.variant("mmada-chat")
    prompt, messages = build_prompt(card, plain, DOC, [])
    assert messages is None
    forced, messages = build_prompt(card, plain, DOC, [], chat=True)
    assert forced == prompt and messages == [{"role": "user", "content": prompt}]
    text, messages = build_prompt(card, plain, DOC, [], system_instruction="Be brief.")
    assert messages is None and text == "Be brief." + card.prompt.fewshot_delimiter + prompt  # plain: a prefix
    text, messages = build_prompt(card, chat, DOC, [], system_instruction="Be brief.")
    assert messages[0] == {"role": "system", "content": "Be brief."} and messages[1]["content"] == text
    assert "Be brief." not in text  # chat: a system turn, not part of the user turn
    with_own = VariantSpec(chat=True, system_prompt="Think first.")
    _, messages = build_prompt(card, with_own, DOC, [], system_instruction="Be brief.")
    assert messages[0]["content"] == "Be brief." + card.prompt.fewshot_delimiter + "Think first."
    template = format_chat(messages)  # the MMaDA / LLaDA template has a system role
    assert template.index("system<|end_header_id|>\nBe brief.") < template.index("user<|end_header_id|>")


def test_plans_record_only_what_the_flags_change():
    card = get_task("gsm8k")
    base = dict(tasks=["gsm8k"], data_dir="smoke", limit=2, num_fewshot=0)
    plain = plan_task(card, RunSettings(**base))
    forced = plan_task(card, RunSettings(**base, apply_chat_template=True, system_instruction="Be brief."))
    assert plain.items[0].messages is None and "prompt_overrides" not in plain.describe()
    assert forced.items[0].messages[0] == {"role": "system", "content": "Be brief."}
    assert forced.describe()["prompt_overrides"] == {"apply_chat_template": True, "system_instruction": "Be brief."}
    assert forced.variant_label == "lm-eval+chat+system"
    assert forced.items[0].prompt_hash != plain.items[0].prompt_hash
    already_chat = plan_task(card, RunSettings(**base, variant="mmada-chat", apply_chat_template=True))
    assert already_chat.prompt_overrides == {} and already_chat.variant_label == "mmada-chat"


def test_the_flags_are_in_the_manifest_the_run_id_and_the_rows(tmp_path, capsys):
    common = ["run", "--tasks", "gsm8k", "--model", "dummy", "--limit", "2", "--data-dir", "smoke", "--no-progress"]
    assert cli.main([*common, "--output-dir", str(tmp_path / "plain")]) == 0
    assert cli.main([*common, "--output-dir", str(tmp_path / "chat"), "--apply-chat-template",
                     "--system-instruction", "Answer with a number."]) == 0
    (plain,) = (tmp_path / "plain" / "runs").glob("*/manifest.json")
    (chat,) = (tmp_path / "chat" / "runs").glob("*/manifest.json")
    manifest = json.loads(chat.read_text())
    assert manifest["settings"]["apply_chat_template"] is True
    assert manifest["settings"]["system_instruction"] == "Answer with a number."
    assert manifest["tasks"][0]["prompt_overrides"] == {"apply_chat_template": True,
                                                         "system_instruction": "Answer with a number."}
    assert manifest["run_id"] != json.loads(plain.read_text())["run_id"]
    rows = pq.read_table(tmp_path / "chat" / "leaderboard.parquet").to_pylist()
    assert {r["variant"] for r in rows} == {"lm-eval+chat+system"}
    assert "lm-eval+chat+system" in capsys.readouterr().out
    exported = []
    for name in ("plain", "chat"):
        assert cli.main(["export", "latest", "--format", "lm-eval", "--output-dir", str(tmp_path / name)]) == 0
        (path,) = (tmp_path / name / "exports").glob("*/*/results_*.json")
        exported.append(json.loads(path.read_text()))
    assert exported[0]["system_instruction"] is None
    assert exported[1]["system_instruction"] == "Answer with a number." and exported[1]["system_instruction_sha"]


@pytest.mark.parametrize("task, flags, reason", [
    ("pope", ["--apply-chat-template"], "allow_chat_override: false"),
    ("mme", ["--system-instruction", "Be brief."], "allow_chat_override: false"),
    ("t2i", ["--system-instruction", "Be brief."], "no chat template"),
])
def test_cards_with_a_fixed_prompt_refuse_the_flags(tmp_path, capsys, task, flags, reason):
    code = cli.main(["run", "--tasks", f"gsm8k,{task}", "--model", "dummy", "--limit", "1", "--data-dir", "smoke",
                     "--output-dir", str(tmp_path), "--no-progress", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"task {task}:" in err and reason in err, err
    assert not (tmp_path / "runs").exists()  # refused before anything ran
    with pytest.raises(UsageError, match=task):
        plan_task(get_task(task), RunSettings(tasks=[task], data_dir="smoke", limit=1, apply_chat_template=True))


def test_empty_system_instruction_is_a_usage_error(tmp_path, capsys):
    code = cli.main(["run", "--tasks", "gsm8k", "--model", "dummy", "--system-instruction", " ",
                     "--output-dir", str(tmp_path)])
    assert code == 2 and "--system-instruction is empty" in capsys.readouterr().err
