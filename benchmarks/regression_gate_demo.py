"""Demonstrate the regression gate on GSM8K: a seed re-run passes, a planted regression fails.

A "noisy oracle" stands in for a checkpoint with per-item difficulty: item i is answered correctly
with probability p_i (0.9 / 0.5 / 0.1 by a hash of its id), drawn with the run's per-item seed, so
re-running the same "checkpoint" with another seed moves individual items like real sampling noise.
The planted regression is the same oracle forgetting 30 % of the items it would answer correctly.
All three runs go through the real harness (``mmada_bench.run.runner.run``), then ``compare`` judges:

    python benchmarks/regression_gate_demo.py --data-dir ../shared/data --out out/gate_demo

Expected: baseline vs seed re-run -> exit 0; baseline vs planted regression -> exit 1.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from pathlib import Path

from mmada_bench.cli import main as cli_main
from mmada_bench.models.base import GenerationResult
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings


def _unit(*parts) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16) / 16**12


class NoisyOracle:
    """Answers GSM8K from the gold answers with per-item difficulty; ``forget`` plants a regression."""

    family = "demo-oracle"
    is_smoke = True  # not a real model: every output says smoke

    def __init__(self, answers_by_question: dict[str, str], forget: float = 0.0):
        self.answers = answers_by_question
        self.forget = forget
        self.name = f"noisy-oracle{'-forget' + str(forget) if forget else ''}"

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps({"oracle": 1, "forget": self.forget}).encode()).hexdigest()

    def generate(self, requests, preset=None):
        out = []
        for r in requests:
            question = r.prompt.rsplit("Question:", 1)[-1].rsplit("\nAnswer:", 1)[0].strip()
            gold = self.answers[question]
            difficulty = [0.9, 0.5, 0.1][int(3 * _unit("difficulty", question))]
            correct = random.Random(r.seed).random() < difficulty
            if correct and self.forget and _unit("forget", question) < self.forget:
                correct = False
            answer = gold if correct else str(int(gold.replace(",", "")) + 1)
            out.append(GenerationResult(text=f" The answer is {answer}.\n#### {answer}", n_generated_tokens=8, nfe=1))
        return out


def gold_answers(data_dir: Path) -> dict[str, str]:
    answers = {}
    for line in (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            answers[row["question"].strip()] = re.sub(r"[^0-9\-]", "", row["answer"].split("####")[-1])
    return answers


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=50)
    args = parser.parse_args(argv)
    answers = gold_answers(args.data_dir)
    runs = {"baseline": (0.0, 1234), "rerun-seed99": (0.0, 99), "planted-forget30": (0.3, 99)}
    for label, (forget, seed) in runs.items():
        settings = RunSettings(tasks=["gsm8k"], limit=args.limit, data_dir=str(args.data_dir),
                               output_dir=str(args.out / label), seed=seed, progress=False)
        outcome = run(settings, model=NoisyOracle(answers, forget))
        primary = [r for r in outcome.rows if r["is_primary"]][0]
        print(f"{label}: run {outcome.run_id} accuracy {100 * primary['value']:.1f}% (n={primary['n']})")
    for candidate in ("rerun-seed99", "planted-forget30"):
        report = args.out / f"gate_baseline_vs_{candidate}.md"
        status = cli_main(["compare", str(args.out / "baseline"), str(args.out / candidate), "--report", str(report),
                           "--quiet"])
        print(f"compare baseline {candidate}: exit {status}  (report {report})")


if __name__ == "__main__":
    main()
