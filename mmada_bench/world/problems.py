"""Text problems of the world: GSM8K-format word problems and MATH500-format arithmetic / equations.

GSM8K: integers 0-99 everywhere (operands and every intermediate result), one to three steps, each step
annotated ``<<a+b=c>>``, solution ending ``#### N``. MATH: ``\\boxed{}`` solutions, integer answers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .scene import COLOURS, SHAPES

MAX_VALUE = 99
NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Farah", "Gus", "Hana", "Ivo", "Jun")
CONTAINERS = {"box": "boxes", "bag": "bags", "basket": "baskets", "tray": "trays", "jar": "jars"}


@dataclass
class Step:
    """One arithmetic step ``a op b = c`` with its sentence in the problem and in the solution."""

    op: str
    a: int
    b: int

    @property
    def value(self) -> int:
        return {"+": self.a + self.b, "-": self.a - self.b, "*": self.a * self.b}[self.op]

    def annotation(self) -> str:
        return f"<<{self.a}{self.op}{self.b}={self.value}>>{self.value}"

    def shown(self) -> str:
        sign = {"+": "+", "-": "-", "*": "*"}[self.op]
        return f"{self.a} {sign} {self.b} = {self.annotation()}"


def _n(n: int, noun: str) -> str:
    """``n`` with ``noun`` (a plural ending in ``s``) made singular for one."""
    return f"{n} {noun[:-1] if n == 1 else noun}"


def _pick(rng, seq):
    return seq[int(rng.integers(0, len(seq)))]


def _next_step(rng: np.random.Generator, x: int) -> Optional[Step]:
    """A random step from ``x`` keeping every number in 0..99 (None when none fits)."""
    options = []
    if x < MAX_VALUE:
        options.append("+")
    if x > 0:
        options.append("-")
    if 0 < x <= MAX_VALUE // 2:
        options.append("*")
    if not options:
        return None
    op = _pick(rng, options)
    if op == "+":
        return Step("+", x, int(rng.integers(1, MAX_VALUE - x + 1)))
    if op == "-":
        return Step("-", x, int(rng.integers(1, x + 1)))
    return Step("*", x, int(rng.integers(2, MAX_VALUE // x + 1)))


def gsm8k_problem(rng: np.random.Generator, n_steps: Optional[int] = None) -> dict:
    """``{"question", "answer"}`` in the GSM8K format (worked solution with annotations, ``#### N``)."""
    n_steps = int(n_steps or rng.integers(1, 4))
    name, box = _pick(rng, NAMES), _pick(rng, list(CONTAINERS))
    boxes = CONTAINERS[box]
    colour, shape = _pick(rng, list(COLOURS)), _pick(rng, SHAPES)
    thing = f"{colour} {shape}s"
    other = f"{_pick(rng, [c for c in COLOURS if c != colour])} {_pick(rng, SHAPES)}s"
    a = int(rng.integers(2, 60))
    b = int(rng.integers(2, MAX_VALUE - a + 1))
    first_is_sum = bool(rng.integers(0, 2))
    if first_is_sum:  # two kinds counted together
        steps = [Step("+", a, b)]
        story = [f"{name}'s {box} holds {a} {thing} and {b} {other}."]
        lines = [f"There are {steps[0].shown()} shapes in the {box}."]
        unit = "shapes"
    else:
        steps, story, lines, unit = [], [f"{name}'s {box} holds {a} {thing}."], [], thing
    x = steps[-1].value if steps else a
    while len(steps) < n_steps:
        step = _next_step(rng, x)
        if step is None:
            break
        steps.append(step)
        if step.op == "+":
            story.append(f"Then {name} adds {step.b} more {_n(step.b, unit)[len(str(step.b)) + 1:]}.")
            lines.append(f"After adding {step.b} there are {step.shown()} {unit}.")
        elif step.op == "-":
            story.append(f"Then {name} takes {_n(step.b, unit)} out.")
            lines.append(f"After taking {step.b} out there are {step.shown()} {unit}.")
        else:
            story.append(f"Then {name} fills {step.b - 1} more {box if step.b == 2 else boxes} exactly like it, so there are "
                         f"{step.b} {boxes} in all.")
            lines.append(f"{step.b} {boxes} hold {step.shown()} {unit}.")
        x = step.value
    if not steps:  # a single step is always possible from the start value (it is at most 59)
        raise AssertionError("no arithmetic step fits")
    where = f"in all the {boxes}" if any(s.op == "*" for s in steps) else f"in the {box} now"
    question = " ".join(story) + f" How many {unit} are {where}?"
    answer = "\n".join(lines) + f"\n#### {x}"
    return {"question": question, "answer": answer}


# ------------------------------------------------------------------ MATH500 format

_PREC = {"+": 1, "-": 1, "*": 2}
_TEX = {"+": "+", "-": "-", "*": "\\times"}


def _expr(rng: np.random.Generator, n_ops: int):
    """A random expression tree with ``n_ops`` operators: ints are leaves, tuples ``(op, left, right)``."""
    if n_ops == 0:
        return int(rng.integers(1, 13))
    left_ops = int(rng.integers(0, n_ops))
    return (_pick(rng, "+-*"), _expr(rng, left_ops), _expr(rng, n_ops - 1 - left_ops))


def _value(node) -> int:
    if isinstance(node, int):
        return node
    op, left, right = node
    a, b = _value(left), _value(right)
    return a + b if op == "+" else a - b if op == "-" else a * b


def _tex(node, parent: Optional[str] = None, right_side: bool = False) -> str:
    """LaTeX with the brackets precedence needs (``-`` and ``\\times`` bracket a same-level right operand)."""
    if isinstance(node, int):
        return str(node)
    op, left, right = node
    text = f"{_tex(left, op)} {_TEX[op]} {_tex(right, op, True)}"
    if parent is not None and (_PREC[op] < _PREC[parent] or (right_side and parent == "-" and _PREC[op] == _PREC[parent])):
        return f"({text})"
    return text


def _steps(node, out: list) -> int:
    """Post-order evaluation lines ``$a op b = c$``; returns the node's value."""
    if isinstance(node, int):
        return node
    op, left, right = node
    a, b = _steps(left, out), _steps(right, out)
    value = a + b if op == "+" else a - b if op == "-" else a * b
    shown_b = f"({b})" if b < 0 else str(b)
    out.append(f"${a} {_TEX[op]} {shown_b} = {value}$")
    return value


def arithmetic_problem(rng: np.random.Generator) -> dict:
    """An arithmetic expression with precedence and brackets; level = number of operators (1-4) + brackets."""
    n_ops = int(rng.integers(1, 5))
    tree = _expr(rng, n_ops)
    while abs(_value(tree)) > 500:
        tree = _expr(rng, n_ops)
    tex = _tex(tree)
    lines: list[str] = []
    value = _steps(tree, lines)
    level = min(5, n_ops + (1 if "(" in tex else 0))
    solution = ("We respect the order of operations: brackets first, then products, then sums and "
                "differences from left to right. " + " ".join(f"{line}." for line in lines)
                + f" So ${tex} = \\boxed{{{value}}}$")
    return {"problem": f"Compute ${tex}$.", "solution": solution, "answer": str(value),
            "subject": "Prealgebra", "level": level}


def equation_problem(rng: np.random.Generator) -> dict:
    """A linear equation ``a x + b = c`` (levels 1-3) or ``a x + b = c x + d`` (levels 4-5), integer root."""
    x = int(rng.integers(-12, 13))
    a = int(rng.integers(2, 10))
    b = int(rng.choice([v for v in range(-20, 21) if v != 0]))
    var = _pick(rng, "xyn")
    both_sides = bool(rng.integers(0, 2))
    if both_sides:
        c = int(rng.integers(1, 10))
        a = a + c  # keeps a - c >= 2
        d = (a - c) * x + b
        lhs, rhs = f"{a}{var} {_signed(b)}", f"{c}{var} {_signed(d)}"
        k, rest = a - c, d - b
        steps = [f"Subtract ${c}{var}$ from both sides: ${k}{var} {_signed(b)} = {d}$.",
                 f"Subtract ${b}$ from both sides: ${k}{var} = {rest}$." if b >= 0 else
                 f"Add ${-b}$ to both sides: ${k}{var} = {rest}$."]
        level = 4 + int(abs(x) > 6)
    else:
        c = a * x + b
        lhs, rhs, k, rest = f"{a}{var} {_signed(b)}", str(c), a, c - b
        steps = [f"Subtract ${b}$ from both sides: ${a}{var} = {rest}$." if b >= 0 else
                 f"Add ${-b}$ to both sides: ${a}{var} = {rest}$."]
        level = 1 + int(abs(b) > 9) + int(x < 0)
    steps.append(f"Divide both sides by ${k}$: ${var} = \\boxed{{{x}}}$")
    return {"problem": f"Solve for ${var}$: ${lhs} = {rhs}$.", "solution": " ".join(steps), "answer": str(x),
            "subject": "Algebra", "level": level}


def _signed(n: int) -> str:
    return f"+ {n}" if n >= 0 else f"- {-n}"


def math_problem(rng: np.random.Generator) -> dict:
    """One MATH500-format problem (arithmetic or a linear equation), without ``unique_id``."""
    return arithmetic_problem(rng) if rng.integers(0, 2) else equation_problem(rng)
