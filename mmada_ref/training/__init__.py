"""Training of MMaDA: one trainer (accelerate) whose stages are configurations, and UniGRPO.

* :mod:`.objective` the unified masked-token objective (t2i / lm / mmu rows)
* :mod:`.data`      jsonl / parquet mixtures and batch assembly
* :mod:`.stages`    stage configuration (YAML under ``configs/train/``)
* :mod:`.grpo`      UniGRPO (structured noising, group advantages, clipped ratio, KL to a reference)
* :mod:`.rewards`   reward registry (correctness, format, CLIP score, ImageReward)
* :mod:`.trainer`   the accelerate training loop, checkpoints, resume, curves
* :mod:`.plot`      ``python -m mmada_ref.training.plot RUN_DIR``
"""
