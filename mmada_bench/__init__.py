"""mmada-bench: an evaluation harness for unified multimodal diffusion models (MMaDA first).

Run ``python -m mmada_bench --help`` for the command line; docs/harness.md for how to add a task.
"""
__version__ = "0.1.0"
