"""The package layers hold: no import cycles, mmada_ref never imports the harness, the scorers import neither."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("mmada_ref", "mmada_scoring", "mmada_bench")


def _modules() -> dict[str, Path]:
    found = {}
    for root in PACKAGES:
        for path in (REPO / root).rglob("*.py"):
            if "assets" in path.parts:
                continue
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _top_level_imports(name: str, path: Path, modules: dict) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    deps = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            candidates = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        deps |= {c for c in candidates if c in modules and c != name and not name.startswith(c + ".")}
    return deps


def test_no_cycles_and_layers_hold():
    modules = _modules()
    graph = {name: _top_level_imports(name, path, modules) for name, path in modules.items()}
    for name, deps in graph.items():
        if name.startswith("mmada_ref"):
            assert not [d for d in deps if d.startswith("mmada_bench")], name
        if name.startswith("mmada_scoring"):
            assert all(d.startswith("mmada_scoring") for d in deps), name
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for dep in graph[node]:
            assert state.get(dep) != 1, "import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep])
            if not state.get(dep):
                visit(dep, stack + [dep])
        state[node] = 2

    for name in graph:
        if not state.get(name):
            visit(name, [name])


#: modules whose import costs seconds of start-up and that a text run never needs (docs/benchmarks/harness_overhead_cpu.md)
HEAVY_AT_START_UP = ("transformers.modeling_utils", "torchvision", "torch._dynamo")


def test_a_text_run_start_up_imports_no_heavy_stack():
    import subprocess
    import sys

    code = ("import sys\nfrom mmada_bench.cli import build_parser\nfrom mmada_bench.models.loader import resolve_model\n"
            "build_parser()\nresolve_model(None)\n"
            f"print(','.join(m for m in {HEAVY_AT_START_UP!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"imported at start-up: {done.stdout.strip()}"
