"""One text-sampler step (vanilla full forward vs dual-cache block forward) on the ~50M config."""
import pytest
import torch
from sampler_speed import CONFIG_50M

from mmada_ref import KVCache, MMaDAModelLM
from mmada_ref.config import MMaDAConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MMaDAModelLM(MMaDAConfig(**CONFIG_50M)).eval()


@pytest.mark.parametrize("mode", ["vanilla", "dual"])
def test_sampler_step(benchmark, report, model, mode):
    ids = torch.randint(0, 14000, (1, 768))
    cache = KVCache()
    with torch.no_grad():
        model(ids, kv_cache=cache, cache_write=True)
        if mode == "vanilla":
            step = lambda: model(ids, logits_slice=slice(512, 544))  # noqa: E731
        else:
            step = lambda: model(ids[:, 512:544], kv_cache=cache, cache_start=512, logits_slice=slice(0, 32))  # noqa: E731
        benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    report(f"sampler step {mode}: {1000 * benchmark.stats.stats.mean:.1f} ms (prompt 512 + gen 256, block 32)")
