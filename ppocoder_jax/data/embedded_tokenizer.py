"""The embedded code tokenizer: a byte-level BPE trained deterministically on embedded corpora.

Trained with the `tokenizers` library on the program-synthesis family (prompts, references and
bug variants of the default configuration) plus the training-split modules of the standard
library completion set (capped). Special tokens follow CodeT5: <pad>=0, <s>=1, </s>=2, <unk>=3;
an encoding with special tokens is `<s> ... </s>`. Returned as a `PreTrainedTokenizerFast`
saved with `save_pretrained` in a cache directory keyed by the corpus recipe, so that
`AutoTokenizer.from_pretrained(dir)` loads it too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ppocoder_jax.data.io import default_cache_dir
from ppocoder_jax.errors import UserError

VERSION = 3  # bump when the corpus recipe (templates, stdlib walk, settings) changes
DEFAULT_VOCAB_SIZE = 4096
DEFAULT_STDLIB_CHARS = 3_000_000
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
FINGERPRINT_FILE = "corpus_sha256.txt"


def tokenizer_corpus(max_stdlib_chars: int = DEFAULT_STDLIB_CHARS) -> list[str]:
    from ppocoder_jax.data.stdlib_completion import module_split, stdlib_functions
    from ppocoder_jax.data.synthesis_demo import SynthesisDemoConfig, build_synthesis_demo

    task = build_synthesis_demo(SynthesisDemoConfig())
    texts: list[str] = []
    for ex in task.train + task.val + task.test:
        texts.append(ex.prompt)
        texts.append(ex.meta["reference"])
        texts.extend(program for _, program in ex.meta["bug_variants"])
    used = 0
    for module, _, _, code in stdlib_functions():
        if used >= max_stdlib_chars:
            break
        if module_split(module) == "train":
            texts.append(code)
            used += len(code)
    return texts


def train_tokenizer(texts: list[str], vocab_size: int = DEFAULT_VOCAB_SIZE):
    """A byte-level BPE `PreTrainedTokenizerFast` trained on `texts` (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise UserError(f"embedded tokenizer: vocab_size {vocab_size} must be >= 260")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 1), ("</s>", 2)],
    )
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        model_max_length=1_000_000,  # truncation is the pipeline's job
    )


def corpus_fingerprint(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()


def _recipe_key(vocab_size: int, max_stdlib_chars: int) -> str:
    # Deliberately not a hash of the corpus (building it takes seconds): bump VERSION whenever
    # the corpus recipe changes. tests/test_data_tokenizer.py checks the stored fingerprint.
    from ppocoder_jax.data.stdlib_completion import stdlib_root

    h = hashlib.sha256(f"{VERSION}|{vocab_size}|{max_stdlib_chars}|{sys.version}".encode())
    h.update(str(stdlib_root()).encode())
    return h.hexdigest()[:16]


def embedded_tokenizer(
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    cache_dir: str | os.PathLike | None = None,
    max_stdlib_chars: int = DEFAULT_STDLIB_CHARS,
):
    """The embedded tokenizer, trained on first use and then loaded from the cache."""
    from transformers import PreTrainedTokenizerFast

    root = Path(cache_dir) if cache_dir else default_cache_dir()
    path = root / f"tokenizer-v{VERSION}-{vocab_size}-{_recipe_key(vocab_size, max_stdlib_chars)}"
    if not (path / "tokenizer.json").is_file():
        corpus = tokenizer_corpus(max_stdlib_chars)
        tokenizer = train_tokenizer(corpus, vocab_size)
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=root))
        tokenizer.save_pretrained(tmp)
        (tmp / FINGERPRINT_FILE).write_text(corpus_fingerprint(corpus) + "\n")
        try:
            os.replace(tmp, path)  # atomic; a concurrent builder may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return PreTrainedTokenizerFast.from_pretrained(path)
