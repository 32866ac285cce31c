"""Datasets: one row reader for jsonl / parquet / Hugging Face layouts (:mod:`.rows`), task data loading
(:mod:`.loading`), other on-disk formats (:mod:`.formats`), item images (:mod:`.images`) and text-to-image
prompt sets (:mod:`.prompt_sets`)."""
