"""Canonical file schemas of the harness tasks (those of the bundled smoke subsets / the HF datasets).

Image columns are stored as the ``datasets`` Image feature stores them: ``struct<bytes: binary, path: string>``.
"""
from __future__ import annotations

import pyarrow as pa

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

POPE = pa.schema([("id", pa.string()), ("question_id", pa.string()), ("question", pa.string()),
                  ("answer", pa.string()), ("image_source", pa.string()), ("image", IMAGE_TYPE),
                  ("category", pa.string())])
MME = pa.schema([("question_id", pa.string()), ("image", IMAGE_TYPE), ("question", pa.string()),
                 ("answer", pa.string()), ("category", pa.string())])
FLICKR30K = pa.schema([("image", IMAGE_TYPE), ("caption", pa.list_(pa.string())),
                       ("sentids", pa.list_(pa.string())), ("img_id", pa.string()), ("filename", pa.string())])
PARQUET = {"pope": POPE, "mme": MME, "flickr30k": FLICKR30K}

#: jsonl tasks: key order of a row (types: str, except MATH500 ``level`` int).
GSM8K_KEYS = ("question", "answer")
MATH500_KEYS = ("problem", "solution", "answer", "subject", "level", "unique_id")
T2I_KEYS = ("id", "prompt", "category")
JSONL = {"gsm8k": GSM8K_KEYS, "math500": MATH500_KEYS, "t2i": T2I_KEYS}
