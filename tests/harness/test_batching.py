"""Length-sorted batches and the ``--batch-size auto`` choice (pure functions, fake memory figures)."""
from __future__ import annotations

import pytest

from mmada_bench.models.base import GenerationRequest
from mmada_bench.models.smoke import SMOKE_MODEL_DIR
from mmada_bench.run import batch_size as bs
from mmada_bench.run.batching import length_batches, length_order, prompt_length
from mmada_ref.sampling.presets import get_preset


def test_length_batches_are_longest_first_and_keep_ties_in_order():
    items = list("abcdefg")
    lengths = [5, 9, 5, 1, 9, 7, 5]
    assert length_order(items, lengths) == ["b", "e", "f", "a", "c", "g", "d"]
    batches = length_batches(items, lengths, 3)
    assert batches == [["b", "e", "f"], ["a", "c", "g"], ["d"]]
    assert sorted(x for b in batches for x in b) == items
    with pytest.raises(ValueError, match="lengths"):
        length_order(items, lengths[:-1])


def test_prompt_length_falls_back_to_characters():
    class NoLength:
        pass

    class Broken:
        def prompt_length(self, request):
            raise ValueError("cannot build")

    request = GenerationRequest("x", "four")
    assert prompt_length(NoLength(), request) == 4 == prompt_length(Broken(), request)
    chat = GenerationRequest("x", "", messages=[{"role": "user", "content": "hello"}])
    assert prompt_length(NoLength(), chat) == 5


@pytest.mark.parametrize("text, expected", [("auto", "auto"), ("AUTO", "auto"), ("3", 3), (8, 8)])
def test_parse_batch_size(text, expected):
    assert bs.parse_batch_size(text) == expected


@pytest.mark.parametrize("text", ["0", "-2", "foo", "2.5", ""])
def test_parse_batch_size_refuses_with_one_line(text):
    with pytest.raises(ValueError, match="expected a positive integer or auto") as info:
        bs.parse_batch_size(text)
    assert "\n" not in str(info.value)


def test_rows_in_divides_the_free_memory_less_the_reserve():
    gib = 2 ** 30
    assert bs.rows_in(10 * gib, gib, cap=32) == 8  # 20 % kept back
    assert bs.rows_in(100 * gib, gib, cap=32) == 32  # the cap
    assert bs.rows_in(gib // 2, gib, cap=32) == 1  # never below one row
    assert bs.rows_in(10 * gib, gib, cap=32, reserve=0.0) == 10


def test_halve_until_fits():
    tried = []

    def fits(rows):
        tried.append(rows)
        return rows <= 5

    assert bs.halve_until_fits(40, fits) == 5 and tried == [40, 20, 10, 5]
    assert bs.halve_until_fits(3, lambda rows: False) == 1


class FakeModel:
    family = "fake"

    def __init__(self, row):
        self.row, self.asked = row, []

    def row_bytes(self, prompt_length, preset):
        self.asked.append(prompt_length)
        return self.row


def test_cpu_auto_choice_from_a_fake_memory_figure(monkeypatch):
    monkeypatch.setattr(bs, "available_ram", lambda: 4 * 2 ** 30)
    model = FakeModel(row=100 * 2 ** 20)
    choice = bs.choose(model, get_preset("ci"), longest_prompt=700, n_items=100, requested="auto", device="cpu")
    assert choice.batch_size == 32 and model.asked == [700] and "cap 32" in choice.how  # 32.7 rows fit
    model.row = 1024 * 2 ** 20
    assert bs.choose(model, get_preset("ci"), 700, 100, "auto", "cpu").batch_size == 3  # 3.2 GiB / 1 GiB
    assert bs.choose(model, get_preset("ci"), 700, 2, "auto", "cpu").batch_size == 2  # no more than the items
    assert bs.choose(model, get_preset("ci"), 700, 100, 5, "cpu").to_dict() == {
        "batch_size": 5, "requested": 5, "how": "given"}


def test_auto_without_an_estimate_is_one():
    choice = bs.choose(object(), get_preset("ci"), 10, 10, "auto", "cpu")
    assert choice.batch_size == 1 and "no memory estimate" in choice.how


def test_smoke_model_row_estimate_grows_with_length_and_cache():
    from mmada_bench.models.loader import resolve_model

    model = resolve_model(str(SMOKE_MODEL_DIR))
    short, long = model.row_bytes(100, get_preset("ci")), model.row_bytes(1000, get_preset("ci"))
    assert 0 < short < long
    assert model.row_bytes(1000, get_preset("ci", cache="dual")) > long  # + the K/V cache
    assert model.row_bytes(1000, get_preset("ci", cfg_scale=1.0)) > long  # CFG doubles the forward rows
