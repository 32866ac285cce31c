"""Forward-pass throughput and model FLOP utilisation on this machine (tiny and ~50M configs)."""
import pytest
import torch
from sampler_speed import CONFIG_50M  # noqa: E402  (benchmarks/ is on sys.path under pytest)

from mmada_ref import MMaDAModelLM
from mmada_ref.config import MMaDAConfig, tiny_config

CASES = {"tiny": (lambda: tiny_config(), 4, 43), "50M": (lambda: MMaDAConfig(**CONFIG_50M), 1, 768)}


@pytest.mark.parametrize("name", list(CASES))
def test_forward(benchmark, matmul_peak, report, name):
    make_config, batch, length = CASES[name]
    torch.manual_seed(0)
    model = MMaDAModelLM(make_config()).eval()
    ids = torch.randint(0, 256, (batch, length))
    with torch.no_grad():
        benchmark.pedantic(lambda: model(ids), rounds=5, iterations=1, warmup_rounds=1)
    seconds = benchmark.stats.stats.mean
    flops = model.matmul_flops(batch, length)
    tokens_per_s = batch * length / seconds
    mfu = flops / seconds / matmul_peak
    benchmark.extra_info.update(tokens_per_s=tokens_per_s, mfu=mfu, matmul_peak_flops=matmul_peak)
    report(f"forward {name}: batch {batch} x {length} tokens, {tokens_per_s:,.0f} tokens/s, MFU {mfu:.1%} "
           f"(matmul peak {matmul_peak / 1e9:.0f} GFLOP/s)")
