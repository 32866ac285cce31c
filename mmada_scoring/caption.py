"""Flickr30k (COCO-style) caption metrics through pycocoevalcap 1.2.

Public API
----------
``VARIANTS = ("lmms_eval", "vlmevalkit")``
``CaptionMetricsUnavailable``
    Raised when Java (``openjdk-17-jre-headless``) or ``pycocoevalcap`` is missing, or a Java
    scorer fails.
``require_java() -> str``
    Path of ``java`` on PATH, else ``CaptionMetricsUnavailable`` naming the package to install.
``ptb_tokenize(captions) -> dict[key, list[str]]``
    pycocoevalcap ``PTBTokenizer`` (Stanford CoreNLP, Java; lower-cases and drops punctuation)
    on ``{key: [caption, ...]}``.
``score_captions(items, variant="lmms_eval", id_column="img_id", refs_column="caption") -> dict``
    Score a list of dicts / DataFrame with the image id, its reference captions (list of str)
    and the raw ``prediction`` (None/NaN/empty allowed: scored as ""). Returns::

        {"variant", "per_item": [{id_column, "prediction", "prediction_tokenized"?,
                                  "Bleu_1".."Bleu_4", "METEOR"?, "ROUGE_L", "CIDEr"}],
         "aggregate": {...raw fractions...}, "aggregate_x100": {...as papers print...}}

Variants:
* ``lmms_eval`` - lmms-eval ``flickr30k`` (``flickr_aggregation_result``): refs and predictions
  PTB-tokenized, then Bleu(4) / METEOR / ROUGE_L / CIDEr; lmms-eval reports raw fractions
  (papers print CIDEr x100). Needs Java for the tokenizer and METEOR.
* ``vlmevalkit`` - VLMEvalKit ``COCO_Caption_Scorer``: the same Bleu / ROUGE_L / CIDEr on the
  raw, untokenised strings (case- and punctuation-sensitive), no METEOR; VLMEvalKit prints x100.
  Pure Python, no Java.

CIDEr document frequencies come from the references of the scored set, so per-item CIDEr only
reproduces another run when exactly the same set of images is scored together.
"""
from __future__ import annotations

import shutil

from .item_table import as_records, text_or_empty

VARIANTS = ("lmms_eval", "vlmevalkit")
JAVA_PACKAGE = "openjdk-17-jre-headless"
BLEU_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4")


class CaptionMetricsUnavailable(RuntimeError):
    """Caption metrics cannot run here (missing Java / pycocoevalcap, or a Java scorer failed)."""


def require_java() -> str:
    """Return the ``java`` executable, or raise ``CaptionMetricsUnavailable`` naming the package."""
    java = shutil.which("java")
    if java is None:
        raise CaptionMetricsUnavailable(
            "caption metrics need Java on PATH (pycocoevalcap's PTBTokenizer and METEOR run "
            f"Java jars): install it with `apt-get install -y {JAVA_PACKAGE}`"
        )
    return java


def _scorers(names: tuple[str, ...]) -> dict:
    try:
        from pycocoevalcap.bleu.bleu import Bleu  # pycocoevalcap: loaded when captions are scored
        from pycocoevalcap.cider.cider import Cider  # pycocoevalcap: loaded when captions are scored
        from pycocoevalcap.rouge.rouge import Rouge  # pycocoevalcap: loaded when captions are scored
    except ImportError as error:  # pragma: no cover - dependency of the project
        raise CaptionMetricsUnavailable(f"caption metrics need `pip install pycocoevalcap==1.2` ({error})") from error
    factories = {"Bleu": lambda: Bleu(4), "ROUGE_L": Rouge, "CIDEr": Cider}
    return {name: factories[name] for name in names}


def ptb_tokenize(captions: dict) -> dict:
    """PTB-tokenize ``{key: [caption, ...]}`` with pycocoevalcap's Stanford tokenizer (needs Java)."""
    require_java()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer  # pycocoevalcap: loaded when captions are scored

    wrapped = {key: [{"caption": text} for text in texts] for key, texts in captions.items()}
    try:
        tokenized = PTBTokenizer().tokenize(wrapped)
    except OSError as error:
        raise CaptionMetricsUnavailable(f"PTBTokenizer (java) failed: {error}") from error
    # The tokenizer drops trailing empty lines; those captions were empty.
    for key, texts in captions.items():
        tokenized.setdefault(key, [])
        tokenized[key].extend([""] * (len(texts) - len(tokenized[key])))
    return tokenized


def _meteor(gts: dict, res: dict) -> tuple[float, list[float]]:
    require_java()
    from pycocoevalcap.meteor.meteor import Meteor  # pycocoevalcap: loaded when captions are scored

    try:
        meteor = Meteor()
        try:
            score, scores = meteor.compute_score(gts, res)
        finally:
            del meteor  # closes the java subprocess
    except (OSError, ValueError) as error:
        raise CaptionMetricsUnavailable(f"METEOR (java -jar meteor-1.5.jar) failed: {error}") from error
    return float(score), [float(s) for s in scores]


def _check_items(records: list[dict], id_column: str, refs_column: str) -> None:
    seen = set()
    for record in records:
        image_id = record[id_column]
        if image_id in seen:
            raise ValueError(f"caption input has image {image_id!r} twice; give one prediction per image")
        seen.add(image_id)
        refs = record[refs_column]
        refs = [] if isinstance(refs, str) or not hasattr(refs, "__iter__") else list(refs)
        if not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"caption input: {refs_column!r} of image {image_id!r} must be a non-empty list of "
                             f"reference strings, got {record[refs_column]!r}")


def score_captions(items, variant: str = "lmms_eval", id_column: str = "img_id",
                   refs_column: str = "caption") -> dict:
    """Score captions under ``variant``; see the module docstring."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown caption variant {variant!r}; choose one of {VARIANTS}")
    records = as_records(items, (id_column, refs_column, "prediction"), "caption")
    _check_items(records, id_column, refs_column)
    predictions = [text_or_empty(record["prediction"]) for record in records]
    gts = {position: [str(ref) for ref in record[refs_column]] for position, record in enumerate(records)}
    res = {position: [prediction] for position, prediction in enumerate(predictions)}
    per_item = [{id_column: record[id_column], "prediction": record["prediction"]} for record in records]
    scorers = _scorers(("Bleu", "ROUGE_L", "CIDEr"))
    if variant == "lmms_eval":
        gts, res = ptb_tokenize(gts), ptb_tokenize(res)
        for position, item in enumerate(per_item):
            item["prediction_tokenized"] = res[position][0]

    aggregate = {}
    bleu, bleu_per_item = scorers["Bleu"]().compute_score(gts, res, verbose=0)
    for n, key in enumerate(BLEU_KEYS):
        aggregate[key] = float(bleu[n])
        for item, value in zip(per_item, bleu_per_item[n]):
            item[key] = float(value)
    if variant == "lmms_eval":
        aggregate["METEOR"], meteor_per_item = _meteor(gts, res)
        for item, value in zip(per_item, meteor_per_item):
            item["METEOR"] = value
    for key in ("ROUGE_L", "CIDEr"):
        score, scores = scorers[key]().compute_score(gts, res)
        aggregate[key] = float(score)
        for item, value in zip(per_item, scores):
            item[key] = float(value)
    return {"variant": variant, "per_item": per_item, "aggregate": aggregate,
            "aggregate_x100": {key: value * 100 for key, value in aggregate.items()}}
