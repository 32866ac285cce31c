"""A byte-level BPE text tokenizer trained on the world's text, with every MMaDA special token.

Digits are single tokens (``split_digits``), so the model does arithmetic digit by digit.

Built with :func:`mmada_ref.text_tokenizer.build_tiny_tokenizer`: ids ``0..n_text_tokens-1`` are BPE tokens,
then the LLaDA special range in its relative layout (``<|startoftext|>``, ``<|endoftext|>``, the reserved task
tokens from ``bos + 4``, ``<|mdm_mask|>``, the chat headers); the first image id is ``len(tokenizer)``.
Saved as a Hugging Face tokenizer folder (``tokenizer.json`` + ``tokenizer_config.json``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from mmada_ref.text_tokenizer import THINK_SYSTEM_PROMPT, build_tiny_tokenizer

from . import language as L
from .corpora import t2i_caption, text_problem
from .problems import gsm8k_problem, math_problem
from .scene import sample_scene
from .seeds import DEFAULT_TRAIN_SEED, TRAIN_SPLIT, item_rng
from .tasks import MME_CATEGORIES, mme_pair

DEFAULT_VOCAB = 640
#: Fixed strings of the harness prompts and the chat / thinking formats (special tokens excluded).
PROMPT_STRINGS = (
    THINK_SYSTEM_PROMPT, "<think>", "</think>", "user", "assistant", "system",
    "Question:", "Answer:", "Problem:", "Solution:", "Final Answer: The final answer is", "I hope it is correct.",
    "<eot_id>", "Answer the question using a single word or phrase.", L.YES_NO_SUFFIX.strip(), "Yes", "No", "yes", "no",
    *L.CAPTION_QUESTIONS, "The answer is",
)


def world_texts(seed: int = DEFAULT_TRAIN_SEED, n: int = 2000) -> Iterator[str]:
    """Text of every generator of the world (training seeds): problems, captions, questions, prompts."""
    for i in range(n):
        if i % 2 == 0:  # fixed strings weighted like the generated text, so BPE learns them as words
            yield from PROMPT_STRINGS
            yield " ".join(L.vocabulary())
        rng = item_rng(seed, TRAIN_SPLIT, "tokenizer", i)
        p = gsm8k_problem(rng)
        yield f"Question: {p['question']}\nAnswer: {p['answer']}"
        m = math_problem(rng)
        yield f"Problem:\n{m['problem']}\n\nSolution: {m['solution']}"
        question, reasoning, answer = text_problem(rng)
        yield f"{question} <think> {reasoning} </think> #### {answer}"
        scene = sample_scene(rng)
        yield from L.captions(scene, rng)
        yield t2i_caption(rng, scene)
        yield L.seen_objects(scene)
        yield L.t2i_prompt(rng)[0]
        _, pair = mme_pair(rng, MME_CATEGORIES[i % len(MME_CATEGORIES)])
        yield from (q for q, _ in pair)
        yield L.pope_question(*scene.kinds()[0])


def train_world_tokenizer(out: str | Path, vocab_size: int = DEFAULT_VOCAB, seed: int = DEFAULT_TRAIN_SEED,
                          n: int = 2000):
    """Train on :func:`world_texts` and save to ``out``; returns the ``PreTrainedTokenizerFast``."""
    Path(out).mkdir(parents=True, exist_ok=True)
    return build_tiny_tokenizer(list(world_texts(seed, n)), out, n_text_tokens=vocab_size, split_digits=True)

