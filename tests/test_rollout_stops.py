"""Stop strings on sampled rows (rollout/stops.py) with a real byte-level BPE: the mask keeps
the tokens up to the one completing the first stop string, the text is cut before it."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_t5 import make_tiny_tokenizer

from ppocoder_jax.config import RolloutConfig, load_config
from ppocoder_jax.errors import UserError
from ppocoder_jax.rollout.bucketed_sampler import decode_tokens
from ppocoder_jax.rollout.stops import truncate_at_stops

EOS = 2


@pytest.fixture(scope="module")
def tok():
    return make_tiny_tokenizer()


def _rows(tok, texts, width=None, eos=(True,)):
    """[B, T] tokens (padded with 0) and masks (1 on the ids and the </s> after them)."""
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    eos = list(eos) * len(texts) if len(eos) == 1 else list(eos)
    rows = [i + [EOS] * e for i, e in zip(ids, eos)]
    width = width or max(len(r) for r in rows) + 2
    tokens = np.zeros((len(rows), width), np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for b, r in enumerate(rows):
        tokens[b, : len(r)] = r
        mask[b, : len(r)] = 1
    return tokens, mask, ids


def _decode(tok, ids):
    return tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _first_k(tok, ids, stop):
    """Brute force: the smallest k whose decoded prefix contains a stop string."""
    for k in range(1, len(ids) + 1):
        if any(s in _decode(tok, ids[:k]) for s in stop):
            return k
    return None


TEXTS = [
    "def add(a, b):\n    return a + b\n\nclass Stack:\n    pass\n",
    "for i in range(10):\n    print(i * i)\n",  # no stop string
    "x = [y for y in data if y is not None]\nclass A:\n    pass\nclass B:\n",
    "def fib(n):\n    if n < 2:\n        return n\n",  # "retu" ends inside a token
]


def test_the_mask_keeps_the_token_completing_the_stop_and_the_text_is_cut(tok):
    stop = ["\nclass", "retu"]
    tokens, mask, ids = _rows(tok, TEXTS)
    before = mask.copy()
    new, texts = truncate_at_stops(tok, tokens, mask, stop, EOS)
    assert (mask == before).all() and new.dtype == mask.dtype and new.shape == mask.shape
    for b, (text, row_ids) in enumerate(zip(TEXTS, ids)):
        k = _first_k(tok, row_ids, stop)
        if k is None:  # untouched: </s> kept, the whole text
            assert (new[b] == mask[b]).all() and texts[b] == text
            continue
        assert new[b, :k].all() and not new[b, k:].any()  # up to and including token k-1
        cut = min(i for i in (text.find(s) for s in stop) if i >= 0)
        assert texts[b] == text[:cut]
        # the kept tokens decode to a text that contains the stop string, one fewer does not
        assert any(s in _decode(tok, tokens[b, new[b] == 1].tolist()) for s in stop)
        assert not any(s in _decode(tok, row_ids[: k - 1]) for s in stop)
    assert texts[0] == "def add(a, b):\n    "  # "retu" comes before "\nclass"
    assert texts[1] == TEXTS[1] and (new[1] == mask[1]).all()
    assert texts[2] == "x = [y for y in data if y is not None]"  # the first of two classes
    assert texts[3] == "def fib(n):\n    if n < 2:\n        "


def test_a_stop_string_inside_one_token(tok):
    (ids,) = _rows(tok, ["    return a + b\n"])[2]
    # "return" (or a longer piece holding it) is a single token of this BPE
    assert any("return" in _decode(tok, [t]) for t in ids)
    tokens, mask, _ = _rows(tok, ["    return a + b\n"])
    new, (text,) = truncate_at_stops(tok, tokens, mask, ["tur"], EOS)
    k = _first_k(tok, ids, ["tur"])
    assert new[0].sum() == k and "tur" in _decode(tok, ids[:k]) and text == "    re"


def test_no_stops_is_the_decoded_rows_and_an_unchanged_mask(tok):
    tokens, mask, _ = _rows(tok, TEXTS, eos=(True, False, True, False))
    new, texts = truncate_at_stops(tok, tokens, mask, [], EOS)
    assert (new == mask).all() and new is not mask
    assert texts == decode_tokens(tok, tokens, mask, EOS) == TEXTS
    # a stop string that occurs nowhere: the same; eos ids as a list work too
    new, texts = truncate_at_stops(tok, tokens, mask, ["@@@"], [EOS, 0])
    assert (new == mask).all() and texts == TEXTS


def test_a_row_without_eos_and_the_stop_at_its_very_end(tok):
    text = "print(i * i)\nclass"
    tokens, mask, (ids,) = _rows(tok, [text], eos=(False,))
    new, (out,) = truncate_at_stops(tok, tokens, mask, ["\nclass"], EOS)
    assert (new == mask).all() and out == "print(i * i)"
    empty = np.zeros((1, 4), np.int32)
    new, (out,) = truncate_at_stops(tok, empty, empty, ["x"], EOS)  # nothing generated
    assert not new.any() and out == ""


def test_bad_arguments():
    tokens = np.zeros((1, 3), np.int32)
    with pytest.raises(ValueError, match="non-empty strings"):
        truncate_at_stops(None, tokens, tokens, ["ok", ""], EOS)
    with pytest.raises(ValueError, match="one \\[B, T\\]"):
        truncate_at_stops(None, tokens, tokens[:, :2], ["x"], EOS)


def test_config_key():
    assert RolloutConfig().stop == ()
    cfg = load_config(None, ['rollout.stop=["\\nclass ", "###"]'])
    assert cfg.rollout.stop == ("\nclass ", "###")
    with pytest.raises(UserError, match="rollout.stop"):
        load_config(None, ["rollout.stop=['']"])
