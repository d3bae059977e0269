"""The embedded pretrained starting model: objectives, corpus, cache, loading, bad input."""

from __future__ import annotations

import hashlib
import json
import textwrap

import numpy as np
import pytest

from ppocoder_jax.config import load_config
from ppocoder_jax.data.embedded_tokenizer import embedded_tokenizer
from ppocoder_jax.data.pretrain_corpus import completion_could_use, pretraining_windows
from ppocoder_jax.data.stdlib_completion import module_split
from ppocoder_jax.errors import UserError
from ppocoder_jax.pipeline import pretrain
from ppocoder_jax.pipeline.pretrain_objectives import (
    causal_lm,
    max_spans,
    noise_span_mask,
    span_corruption,
)

TINY = [
    "model.tiny_d_model=32", "model.tiny_d_ff=64", "model.tiny_num_layers=1",
    "model.tiny_num_decoder_layers=1", "model.tiny_num_heads=2", "model.tiny_d_kv=16",
    "model.tiny_num_kv_heads=1", "pretrain.batch_size=8", "pretrain.max_length=64",
    "pretrain.warmup_steps=2", "pretrain.learning_rate=5e-3",
]  # fmt: skip


@pytest.mark.parametrize("length", [8, 37, 255])
def test_noise_mask_has_the_density_and_spans_t5_asks_for(length):
    rng = np.random.default_rng(length)
    mask = noise_span_mask(length, 0.15, 3.0, rng)
    noise = int(round(length * 0.15)) or 1
    assert mask.sum() == min(max(noise, 1), length - 1)
    starts = np.flatnonzero(mask & ~np.concatenate([[False], mask[:-1]]))
    assert 1 <= len(starts) <= max_spans(length, 0.15, 3.0)
    assert not mask[0]  # T5's layout: a kept span first


def test_span_corruption_loses_no_token():
    """Putting each span back where its sentinel stands gives the window again."""
    rng = np.random.default_rng(0)
    ids = rng.integers(10, 100, size=120).astype(np.int32)
    sentinels = list(range(1000, 1032))
    source, target = span_corruption(ids, sentinels, 0.15, 3.0, rng, bos=1, eos=2)
    assert source[0] == 1 and source[-1] == 2 and target[-1] == 2
    spans, current = {}, None
    for tok in target[:-1]:
        if tok in sentinels:
            current = tok
            spans[current] = []
        else:
            spans[current].append(tok)
    rebuilt = []
    for tok in source[1:-1]:
        rebuilt += spans[tok] if tok in sentinels else [tok]
    assert rebuilt == ids.tolist()
    assert 0 < sum(len(s) for s in spans.values()) < len(ids)
    with pytest.raises(ValueError, match="sentinel"):
        span_corruption(ids, sentinels[:1], 0.15, 3.0, np.random.default_rng(0), bos=1, eos=2)


def test_causal_lm_ends_only_a_function_with_eos():
    ids = np.arange(5, 10)
    assert causal_lm(ids, bos=1, eos=2) == ([1], [5, 6, 7, 8, 9, 2])
    assert causal_lm(ids, bos=1, eos=2, ends=False) == ([1], [5, 6, 7, 8, 9])


def _module_in(split: str) -> str:
    return next(f"m{i}" for i in range(1000) if module_split(f"m{i}") == split)


def test_corpus_leaves_out_evaluation_modules_and_completion_functions(tmp_path):
    """A fake standard library: a short and a long function of a training module are kept
    (the long one in windows); a completion-sized one and a test module's are left out."""
    tok = embedded_tokenizer()
    body = "\n".join(f"    total = total + {i} * value" for i in range(60))
    long_fn = f"def long_fn(value):\n    total = 0\n{body}\n    return total\n"
    mid_body = "\n".join(f"    total = total + {i} * value" for i in range(8))
    mid_fn = f"def mid_fn(value):\n    total = 0\n{mid_body}\n    return total\n"
    short_fn = "def short_fn():\n    return 1\n"
    train, test = _module_in("train"), _module_in("test")
    (tmp_path / f"{train}.py").write_text(short_fn + "\n\n" + long_fn + "\n\n" + mid_fn)
    (tmp_path / f"{test}.py").write_text("def held_out():\n    return 2\n")
    data = load_config("completion_stdlib", []).data
    n_mid = len(tok(mid_fn.rstrip(), add_special_tokens=False)["input_ids"])
    assert completion_could_use(n_mid, data, 256)
    windows, counts = pretraining_windows(tok, data, 256, root=str(tmp_path))
    assert counts["excluded_completion"] == 1 and counts["excluded_eval_modules"] == 1
    assert counts["functions"] == 2
    text = [tok.decode(w) for w, _ in windows]
    assert any("short_fn" in t for t in text) and any("long_fn" in t for t in text)
    assert not any("mid_fn" in t or "held_out" in t for t in text)
    assert len(windows) >= 3 and all(len(w) < 256 for w, _ in windows)
    assert [end for w, end in windows if "short_fn" in tok.decode(w)] == [True]
    assert not windows[1][1]  # the long function's first window does not end it


def test_real_corpus_holds_no_test_or_completion_function():
    """Every window of the real corpus comes from a training module's function that the
    completion task cannot use."""
    from ppocoder_jax.data.stdlib_completion import stdlib_functions

    tok = embedded_tokenizer()
    data = load_config("completion_stdlib", []).data
    windows, counts = pretraining_windows(tok, data, 256)
    assert counts["functions"] > 3000 and counts["tokens"] > 500_000
    task_ids = {hashlib.sha256(np.asarray(w).tobytes()).hexdigest() for w, _ in windows}
    held = [code for m, _, _, code in stdlib_functions() if module_split(m) != "train"][:300]
    for code in held:
        ids = np.asarray(tok(code, add_special_tokens=False)["input_ids"][:255], dtype=np.int32)
        assert hashlib.sha256(ids.tobytes()).hexdigest() not in task_ids


@pytest.fixture
def cache(tmp_path, monkeypatch):
    real = pretrain.pretrained_dir
    monkeypatch.setattr(pretrain, "pretrained_dir", lambda cfg, cache_dir=None: real(cfg, tmp_path))
    return tmp_path


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_pretraining_learns_is_cached_and_starts_a_run(cache, family):
    from ppocoder_jax.pipeline.policy_loader import load_policy

    cfg = load_config("completion_stdlib", [*TINY, f"model.family={family}", "data.max_source_length=64",
                                            "pretrain.steps=40", "model.init=pretrained"])  # fmt: skip
    logs = []
    path = pretrain.ensure_pretrained(cfg, log=logs.append)
    info = json.loads((path / pretrain.INFO_FILE).read_text())
    assert info["objective"] == ("span_corruption" if family == "t5" else "causal_lm")
    steps = [line for line in logs if "step 0/" in line]
    first = float(steps[0].split("loss ")[1].split()[0])
    assert info["train_loss"] < first - 1.0  # it learns
    assert info["wall_s"] > 0 and info["corpus"]["tokens"] > 0
    params, model_cfg, tok = load_policy(cfg)  # from the cache: no second build
    assert (path / pretrain.INFO_FILE).read_text() == json.dumps(info, indent=1) + "\n"
    n_sentinels = 32 if family == "t5" else 0
    assert len(tok) == 4096 + n_sentinels == model_cfg.vocab_size
    other = load_config("completion_stdlib", [*TINY, f"model.family={family}", "pretrain.steps=41"])
    assert pretrain.pretrained_dir(other) != path  # another recipe, another model
    # a model.path (an SFT model of that start, say) is where a run starts, init or not
    import jax

    from ppocoder_jax.model import save_model

    moved = jax.tree.map(lambda x: x + 1.0, params)
    save_model(cache / "sft_model", moved, model_cfg, tok)
    cfg_path = load_config("completion_stdlib", [*TINY, f"model.family={family}",
                                                 "model.init=pretrained", f"model.path={cache / 'sft_model'}"])  # fmt: skip
    loaded, _, _ = load_policy(cfg_path)
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool((a == b).all()), loaded, moved)))


def test_pretrained_bad_input_is_one_line():
    cfg = load_config("completion_stdlib", ["model.init=pretrained", "model.tokenizer=/x"])
    with pytest.raises(UserError, match="model.tokenizer"):
        pretrain.check_pretrained_config(cfg)
    cfg = load_config("completion_stdlib", ["model.init=pretrained", "data.max_source_length=300"])
    with pytest.raises(UserError, match="pretrain.max_length"):
        pretrain.check_pretrained_config(cfg)
    for bad in ("pretrain.steps=0", "pretrain.noise_density=0.7", "model.init=imagenet"):
        with pytest.raises(UserError):
            load_config("completion_stdlib", [bad])


def test_corpus_walk_is_the_stdlib_walk(tmp_path):
    """The fake-library test above means something only if a function file there is read."""
    (tmp_path / f"{_module_in('train')}.py").write_text(
        textwrap.dedent("""\
        def only_one():
            return [i for i in range(3)]
        """)
    )
    from ppocoder_jax.data.stdlib_completion import stdlib_functions

    assert [q for _, q, _, _ in stdlib_functions(str(tmp_path))] == ["only_one"]


def test_a_fresh_cache_directory_is_made_and_filled(tmp_path, monkeypatch):
    """A first run on a new machine: the cache folder does not exist yet."""
    real = pretrain.pretrained_dir
    fresh = tmp_path / "new" / "cache"
    monkeypatch.setattr(pretrain, "pretrained_dir", lambda cfg, cache_dir=None: real(cfg, fresh))
    cfg = load_config("completion_stdlib", [*TINY, "data.max_source_length=64", "pretrain.steps=2"])
    path = pretrain.ensure_pretrained(cfg, log=lambda _: None)
    assert path.parent == fresh and (path / pretrain.INFO_FILE).is_file()
    assert [p.name for p in fresh.iterdir()] == [path.name]  # no temporary folder left
