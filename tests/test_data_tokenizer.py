"""The embedded byte-level BPE code tokenizer."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from ppocoder_jax.data.embedded_tokenizer import (
    FINGERPRINT_FILE,
    corpus_fingerprint,
    embedded_tokenizer,
    tokenizer_corpus,
    train_tokenizer,
)
from ppocoder_jax.data.synthesis_demo import SynthesisDemoConfig, build_synthesis_demo
from ppocoder_jax.errors import UserError

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def f(xs):\n    return sum(x for x in xs if x > 7)\n",
    "class A:\n    def m(self):\n        return 'héllo ▁ wörld'\n",
] * 20
SAMPLE = "def g(x):\n\treturn {'ü': x >= 3}  # ünïcode ✓\n"


def test_small_training_is_deterministic_and_lossless(tmp_path):
    a, b = train_tokenizer(CORPUS, 400), train_tokenizer(CORPUS, 400)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    assert (a.pad_token_id, a.bos_token_id, a.eos_token_id, a.unk_token_id) == (0, 1, 2, 3)
    ids = a(SAMPLE)["input_ids"]
    assert ids[0] == 1 and ids[-1] == 2 and 3 not in ids
    assert a.decode(ids, skip_special_tokens=True) == SAMPLE
    a.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(SAMPLE)["input_ids"] == ids and loaded.pad_token_id == 0


def test_vocab_size_checked():
    with pytest.raises(UserError, match="vocab_size"):
        train_tokenizer(CORPUS, 100)


def test_embedded_tokenizer_fits_the_demo():
    tok = embedded_tokenizer()
    assert len(tok) == 4096 and tok.pad_token_id == 0 and tok.eos_token_id == 2
    task = build_synthesis_demo(SynthesisDemoConfig(num_train=400, num_val=10, num_test=100))
    for ex in task.train + task.test:
        assert len(tok(ex.prompt)["input_ids"]) < 40
        ids = tok(ex.target, add_special_tokens=False)["input_ids"]
        assert len(ids) < 40
        assert tok.decode(ids) == ex.target
    assert (
        AutoTokenizer.from_pretrained(tok.name_or_path)(SAMPLE)["input_ids"]
        == tok(SAMPLE)["input_ids"]
    )


@pytest.mark.slow
def test_embedded_tokenizer_builds_identically(tmp_path):
    a = embedded_tokenizer(cache_dir=tmp_path / "a")
    b = embedded_tokenizer(cache_dir=tmp_path / "b")
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    assert a.name_or_path != b.name_or_path


def test_cached_tokenizer_matches_the_current_corpus():
    """The cache key is a VERSION constant: this fails when the corpus changed without a bump."""
    tok = embedded_tokenizer()
    stored = (Path(tok.name_or_path) / FINGERPRINT_FILE).read_text().strip()
    assert stored == corpus_fingerprint(tokenizer_corpus()), "bump embedded_tokenizer.VERSION"
