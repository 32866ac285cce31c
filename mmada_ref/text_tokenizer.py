"""The text side: local Hugging Face tokenizer folders, the MMaDA chat template, a tiny tokenizer builder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from .tokens import (
    END_HEADER_TOKEN,
    EOT_ID_TOKEN,
    MASK_TOKEN,
    RESERVED_OFFSET_FROM_BOS,
    RESERVED_TASK_TOKENS,
    START_HEADER_TOKEN,
)

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"

#: System prompt of MMaDA's thinking mode / CoT training data (training/data.py, app.py).
THINK_SYSTEM_PROMPT = (
    "You should first think about the reasoning process in the mind and then provide the user with the answer. "
    "The reasoning process is enclosed within <think> </think> tags, i.e. <think> reasoning process here </think> "
    "answer here"
)


#: files a local tokenizer folder must hold
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def load_text_tokenizer(path: str | os.PathLike):
    """Load a local tokenizer folder (the LLaDA/MMaDA tokenizer) without touching the network."""
    from transformers import (
        AutoTokenizer,  # transformers is slow to import: loaded on use
    )

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"tokenizer folder {folder} does not exist: pass the checkpoint folder "
                                "(it must contain tokenizer.json / tokenizer_config.json)")
    missing = [name for name in TOKENIZER_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"tokenizer folder {folder} lacks {', '.join(missing)}: copy the tokenizer files of the "
                         "release (the MMaDA / LLaDA tokenizer is a fast tokenizer, tokenizer.json) into it")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises several types (and suggests unrelated installs) for broken files
        raise ValueError(f"the tokenizer files in {folder} cannot be read ({type(exc).__name__}); re-download "
                         "tokenizer.json and tokenizer_config.json") from None


def format_chat(messages: Sequence[dict], add_generation_prompt: bool = True, eot: str = EOT_ID_TOKEN,
                bos: str = BOS_TOKEN) -> str:
    """The MMaDA chat template (``generate.py``/``app.py``) as a string.

    ``bos`` + per message ``<|start_header_id|>role<|end_header_id|>\\n`` + content.strip() + ``eot``,
    then ``<|start_header_id|>assistant<|end_header_id|>\\n``. ``eot="<eot_id>"`` reproduces the typo of
    the official training and evaluation strings.
    """
    parts = [bos]
    for msg in messages:
        parts.append(f"{START_HEADER_TOKEN}{msg['role']}{END_HEADER_TOKEN}\n{msg['content'].strip()}{eot}")
    if add_generation_prompt:
        parts.append(f"{START_HEADER_TOKEN}assistant{END_HEADER_TOKEN}\n")
    return "".join(parts)


def encode_chat(tokenizer, messages: Sequence[dict], **kwargs) -> list[int]:
    """Token ids of :func:`format_chat` (special tokens are written out, so none are added)."""
    return tokenizer(format_chat(messages, **kwargs), add_special_tokens=False)["input_ids"]


def build_tiny_tokenizer(corpus: Iterable[str], out_dir: str | os.PathLike, n_text_tokens: int = 280,
                         split_digits: bool = False):
    """Train a small byte-level BPE tokenizer with the MMaDA special-token layout and save it.

    ``split_digits`` makes every digit its own token (as LLaMA's tokenizer does), so numbers are digit
    sequences rather than one learned token per number.

    Ids ``0..n_text_tokens-1`` are ordinary tokens; then ``<|startoftext|>``, ``<|endoftext|>``, two
    reserved ids, the eleven task tokens (``bos + 4 ...``), a reserved id, ``<|mdm_mask|>`` and the three
    chat-header tokens, exactly the relative layout of the LLaDA tokenizer's special range
    (``len(tokenizer) = n_text_tokens + 20`` = the first image id).
    """
    from tokenizers import (  # tokenizers trainer: loaded only when building a tokenizer
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import (
        PreTrainedTokenizerFast,  # transformers is slow to import: loaded on use
    )

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                         if split_digits else byte_level)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=n_text_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    if tok.get_vocab_size() != n_text_tokens:
        raise ValueError(f"BPE training gave {tok.get_vocab_size()} tokens, wanted {n_text_tokens}: use a larger corpus")
    specials = special_token_names(n_text_tokens)
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN,
                                   pad_token=EOS_TOKEN, mask_token=MASK_TOKEN)
    fast.save_pretrained(str(out_dir))
    return fast


def special_token_names(n_text_tokens: int) -> list[str]:
    """Special-token strings in id order starting at ``n_text_tokens`` (the LLaDA relative layout)."""
    names = [BOS_TOKEN, EOS_TOKEN] + [f"<|reserved_{i}|>" for i in range(RESERVED_OFFSET_FROM_BOS - 2)]
    names += [f"<|reserved_task_{name.strip('<|>[]')}|>" for name in RESERVED_TASK_TOKENS]
    names += ["<|reserved_pre_mask|>", MASK_TOKEN, START_HEADER_TOKEN, END_HEADER_TOKEN, EOT_ID_TOKEN]
    return names
