"""pytest-benchmark microbenchmarks, kept out of the default test run (testpaths = tests).

    python -m pytest benchmarks --benchmark-columns=mean,stddev,rounds --benchmark-json out/bench.json

Each benchmark stores derived figures (tokens/s, MFU against this machine's measured matmul rate)
in ``extra_info``; they are printed at the end of the session.
"""
import pytest
import torch

from mmada_bench.profiling.measure import device_name, measure_matmul_peak

_REPORT: list[str] = []


@pytest.fixture(scope="session")
def matmul_peak() -> float:
    return measure_matmul_peak(torch.device("cpu"))


@pytest.fixture()
def report():
    return _REPORT.append


def pytest_terminal_summary(terminalreporter):
    if _REPORT:
        terminalreporter.write_sep("-", f"derived figures on {device_name(torch.device('cpu'))}")
        for line in _REPORT:
            terminalreporter.write_line(line)
