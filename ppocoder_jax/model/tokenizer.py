"""Load and save Hugging Face tokenizers (CodeT5's RoBERTa byte-level BPE, or ours).

Loading goes through `AutoTokenizer.from_pretrained(dir)`, which reads tokenizer.json or
vocab.json + merges.txt correctly (constructing `RobertaTokenizer(vocab_file=..., merges_file=...)`
directly silently ignores the files in transformers 5). A bare `tokenizer.json` without a
tokenizer_config.json falls back to `PreTrainedTokenizerFast(tokenizer_file=...)`.
"""

from __future__ import annotations

from pathlib import Path

from ppocoder_jax.errors import UserError
from ppocoder_jax.model.hf_io import first_line

# Files whose presence means "this directory has a tokenizer".
TOKENIZER_MARKERS = ("tokenizer.json", "vocab.json", "spiece.model", "tokenizer_config.json")


def has_tokenizer(directory) -> bool:
    directory = Path(directory)
    return any((directory / name).is_file() for name in TOKENIZER_MARKERS)


def load_tokenizer(directory):
    """A transformers tokenizer from `directory`; UserError when it cannot be loaded."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: tokenizer directory not found")
    if not has_tokenizer(directory):
        raise UserError(
            f"{directory}: no tokenizer files (tokenizer.json or vocab.json + merges.txt)"
        )
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        if (directory / "tokenizer.json").is_file() and not (
            directory / "tokenizer_config.json"
        ).is_file():
            tok = PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))
        elif _names_generic_tokenizer(directory):
            # AutoTokenizer would build the model family's own tokenizer from config.json's
            # model_type (transformers 5: Qwen2Tokenizer and its pre-tokenizer regex for any
            # qwen2 directory), which encodes a generic tokenizer.json differently.
            tok = PreTrainedTokenizerFast.from_pretrained(str(directory))
        else:
            tok = AutoTokenizer.from_pretrained(str(directory))
    except Exception as err:
        raise UserError(f"{directory}: cannot load the tokenizer ({first_line(err)})") from None
    _fill_special_tokens(tok)
    return tok


_GENERIC_TOKENIZER_CLASSES = {"TokenizersBackend", "PreTrainedTokenizerFast"}


def _names_generic_tokenizer(directory: Path) -> bool:
    """tokenizer_config.json names the generic fast tokenizer (ours: the embedded one, saved
    by transformers 5) rather than a model family's class."""
    import json

    try:
        config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("tokenizer_class") in _GENERIC_TOKENIZER_CLASSES


def _fill_special_tokens(tok) -> None:
    """CodeT5 conventions for tokenizers saved without a special-tokens map."""
    vocab = tok.get_vocab()
    for attr, token in (
        ("pad_token", "<pad>"),
        ("bos_token", "<s>"),
        ("eos_token", "</s>"),
        ("unk_token", "<unk>"),
    ):
        if getattr(tok, attr, None) is None and token in vocab:
            setattr(tok, attr, token)


def save_tokenizer(tokenizer, directory) -> None:
    tokenizer.save_pretrained(str(directory))
