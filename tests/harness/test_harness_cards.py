"""Task cards: the shipped cards load; invalid cards fail with the file and the field named."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmada_bench.cards.discovery import get_task, task_cards
from mmada_bench.cards.schema import CardError, load_card

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["gsm8k", "math500"])
def test_shipped_cards_load(name):
    card = get_task(name)
    assert card.name == name and card.version
    assert card.default_variant in card.variants and "mmada-chat" in card.variants


def _write(tmp_path, mutate, name="gsm8k"):
    data = yaml.safe_load((REPO / "mmada_bench" / "tasks" / f"{name}.yaml").read_text())
    mutate(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["prompt"]["fewshot"].update(n="five"), "prompt.fewshot.n"),
    (lambda d: d["dataset"].update(hf_idd="x"), "dataset.hf_idd"),
    (lambda d: d.pop("protocol"), "protocol"),
    (lambda d: d["prompt"].pop("template"), "prompt.template"),
    (lambda d: d["filters"].update({"strict-match": ["no_such_filter"]}), "filters.strict-match[0]"),
    (lambda d: d["metrics"][0].update(name="no_such_metric"), "metrics[0].name"),
    (lambda d: d["metrics"][1].update(filter="nope"), "metrics[1].filter"),
    (lambda d: d.update(preset="no-such-preset"), "preset"),
    (lambda d: d.update(default_variant="nope"), "default_variant"),
    (lambda d: d.update(stop="Question:"), "stop"),
    (lambda d: d["variants"]["mmada-chat"].update(chat="yes"), "variants.mmada-chat.chat"),
])
def test_invalid_card_names_file_and_field(tmp_path, mutate, field):
    path = _write(tmp_path, mutate)
    with pytest.raises(CardError) as info:
        load_card(path)
    message = str(info.value)
    assert str(path) in message and repr(field) in message, message


def test_card_name_must_match_file(tmp_path):
    path = _write(tmp_path, lambda d: d.update(name="other"))
    with pytest.raises(CardError, match="field 'name'"):
        load_card(path)


def test_extra_task_dir_adds_a_task(tmp_path, monkeypatch):
    path = _write(tmp_path, lambda d: d.update(name="gsm8k_copy"))
    path.rename(tmp_path / "gsm8k_copy.yaml")
    monkeypatch.setenv("MMADA_TASKS_DIR", str(tmp_path))
    assert "gsm8k_copy" in task_cards()
    assert get_task("gsm8k_copy").version == get_task("gsm8k").version


def test_unknown_task_lists_known_ones():
    with pytest.raises(KeyError) as info:
        get_task("gsm9k")
    assert "gsm8k" in str(info.value) and "math500" in str(info.value)
