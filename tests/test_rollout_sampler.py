"""The jitted sampler against transformers (greedy) and teacher forcing (log-probs, values,
top-k / top-p), plus layout and determinism.

Tiny random models (tests/rollout_models.py). Programs are compiled once per (model, sampling,
shapes), so tests share module-scoped samples where they can.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rollout_models import make_model, mass_before, padded_prompts, ranks_of
from tiny_t5 import load_torch_t5

from ppocoder_jax.model import t5
from ppocoder_jax.rollout import GREEDY, RolloutBatch, SamplingParams, sample

torch = pytest.importorskip("torch")

fwd = jax.jit(t5.forward, static_argnums=1, static_argnames=("dtype",))
score = jax.jit(t5.score, static_argnums=1, static_argnames=("dtype",))

PROMPT_LENGTHS = [7, 4, 1, 9, 12, 3]
MAX_NEW = 24

GREEDY_MODELS = [
    # v1.1: gated-GELU, untied lm_head, more decoder than encoder layers
    dict(variant="v1.1", tied=False, num_decoder_layers=3, num_heads=2, d_kv=16, vocab_size=32,
         prompt_seed=3, early_stops=3),
    # v1.0 (CodeT5): ReLU, tied, scaled logits
    dict(variant="v1.0", tied=True, vocab_size=64, scale=4.0),
    # v1.0 with one encoder layer, 8 heads of 4
    dict(variant="v1.0", tied=True, num_layers=1, num_decoder_layers=2, num_heads=8, d_kv=4,
         vocab_size=48, scale=4.0, seed=1, prompt_seed=3, early_stops=2),
    # v1.1 tied-but-gated, 3 encoder layers, 1 decoder layer (slow: one more compile)
    pytest.param(
        dict(variant="v1.1", tied=True, num_layers=3, num_decoder_layers=1, vocab_size=40, seed=2),
        marks=pytest.mark.slow,
    ),
]  # fmt: skip
# early_stops: how many of the 6 greedy rows end with </s> before MAX_NEW (checked, so that the
# comparison covers rows that stop, rows that run to the end, and HF's padding after </s>).


def hf_greedy(path, ids, mask, max_new_tokens, cfg):
    model = load_torch_t5(path)
    # transformers sizes its decoder cache by num_layers; with a different decoder depth its
    # cached generate fails (IndexError), so the reference runs without a cache there.
    use_cache = cfg.num_layers == cfg.num_decoder_layers
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            use_cache=use_cache,
        ).numpy()
    assert (out[:, 0] == cfg.decoder_start_token_id).all()
    out = out[:, 1:]
    padded = np.zeros((out.shape[0], max_new_tokens), np.int64)  # HF stops when all rows end
    padded[:, : out.shape[1]] = out
    return padded


def hf_lengths(tokens, eos, max_new_tokens):
    lengths = []
    for row in tokens:
        hits = np.nonzero(row == eos)[0]
        lengths.append(int(hits[0]) + 1 if hits.size else max_new_tokens)
    return np.asarray(lengths)


@pytest.mark.parametrize("spec", GREEDY_MODELS, ids=lambda s: f"{s['variant']}-V{s['vocab_size']}")
def test_greedy_matches_transformers(tmp_path, spec):
    spec = dict(spec)
    prompt_seed, early_stops = spec.pop("prompt_seed", 0), spec.pop("early_stops", 0)
    path, params, cfg = make_model(tmp_path, scale=spec.pop("scale", 3.0), **spec)
    ids, mask = padded_prompts(PROMPT_LENGTHS, cfg.vocab_size, seed=prompt_seed)
    want = hf_greedy(path, ids, mask, MAX_NEW, cfg)
    out = sample(params, cfg, ids, mask, jax.random.PRNGKey(0), GREEDY, MAX_NEW)
    tokens = np.asarray(out.tokens)
    want_len = hf_lengths(want, cfg.eos_token_id, MAX_NEW)
    np.testing.assert_array_equal(np.asarray(out.lengths), want_len)
    # token for token, up to and including the first </s>; pad (0) after it on both sides
    np.testing.assert_array_equal(tokens, want)
    mask_want = (np.arange(MAX_NEW)[None] < want_len[:, None]).astype(np.int32)
    np.testing.assert_array_equal(np.asarray(out.token_mask), mask_want)
    assert (want_len < MAX_NEW).sum() == early_stops, want_len


# ---------------------------------------------------------------------------------------------
# sampling: one model, a few compiled programs shared by the tests below

SAMPLING = SamplingParams(temperature=0.8, top_k=5)
N_SAMPLES = 3
SAMPLE_LENGTHS = [6, 2, 9, 4]
SAMPLE_NEW = 16


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path, params, cfg = make_model(
        tmp_path_factory.mktemp("sampling"),
        scale=1.5,  # larger scales make fp32 logits too big for 1e-4 teacher-forcing agreement
        variant="v1.1",
        tied=False,
        num_decoder_layers=3,
        num_heads=2,
        d_kv=16,
        vocab_size=32,
    )
    return path, params, cfg


@pytest.fixture(scope="module")
def prompts(model):
    return padded_prompts(SAMPLE_LENGTHS, model[2].vocab_size, seed=3)


@pytest.fixture(scope="module")
def topk_batch(model, prompts):
    _, params, cfg = model
    return sample(
        params, cfg, *prompts, jax.random.PRNGKey(7), SAMPLING, SAMPLE_NEW, num_samples=N_SAMPLES
    )


def teacher_forced(params, cfg, batch: RolloutBatch):
    """(logits [B,T,V], values [B,T]) of the batch's own tokens under forward()."""
    dec_in = t5.shift_right(batch.tokens, cfg.decoder_start_token_id)
    logits, values = fwd(params, cfg, batch.prompt_ids, batch.prompt_mask, dec_in, batch.token_mask)
    return np.asarray(logits), np.asarray(values)


def check_layout(batch: RolloutBatch, prompts, n: int, cfg, max_new: int):
    ids, mask = prompts
    b = ids.shape[0]
    assert batch.tokens.shape == (b * n, max_new) and batch.tokens.dtype == jnp.int32
    for name in ("token_mask", "logprobs", "values"):
        assert getattr(batch, name).shape == (b * n, max_new), name
    # sample j of prompt i is row i*n + j
    np.testing.assert_array_equal(np.asarray(batch.prompt_ids), np.repeat(ids, n, axis=0))
    np.testing.assert_array_equal(np.asarray(batch.prompt_mask), np.repeat(mask, n, axis=0))
    tokens, tmask = np.asarray(batch.tokens), np.asarray(batch.token_mask)
    lengths = np.asarray(batch.lengths)
    np.testing.assert_array_equal(tmask.sum(1), lengths)
    for row, m, length in zip(tokens, tmask, lengths):
        assert m[:length].all() and not m[length:].any()
        eos_at = np.nonzero(row[:length] == cfg.eos_token_id)[0]
        if length < max_new:  # stopped early: exactly one </s>, the last masked token
            assert list(eos_at) == [length - 1]
        else:
            assert eos_at.size <= 1 and (eos_at.size == 0 or eos_at[0] == length - 1)
        assert (row[length:] == cfg.pad_token_id).all()
    assert (np.asarray(batch.logprobs)[tmask == 0] == 0).all()
    assert (np.asarray(batch.values)[tmask == 0] == 0).all()


def test_layout_and_masks(model, prompts, topk_batch):
    cfg = model[2]
    check_layout(topk_batch, prompts, N_SAMPLES, cfg, SAMPLE_NEW)
    lengths = np.asarray(topk_batch.lengths)
    assert (lengths < SAMPLE_NEW).any(), "the sampling model should end some rows early"
    # samples of one prompt differ from each other
    tokens = np.asarray(topk_batch.tokens).reshape(len(SAMPLE_LENGTHS), N_SAMPLES, -1)
    assert all(len({r.tobytes() for r in group}) > 1 for group in tokens)


def test_logprobs_equal_score_and_values_equal_forward(model, topk_batch):
    _, params, cfg = model
    b = topk_batch
    want = score(params, cfg, b.prompt_ids, b.prompt_mask, b.tokens, b.token_mask)
    got = np.asarray(b.logprobs)
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-4, rtol=0)
    # log-probs of the full distribution, not the top-k renormalised one (that would be > these)
    assert (got[np.asarray(b.token_mask) == 1] < -1e-3).mean() > 0.5
    _, values = teacher_forced(params, cfg, b)
    m = np.asarray(b.token_mask) == 1
    np.testing.assert_allclose(np.asarray(b.values)[m], values[m], atol=1e-4, rtol=0)
    assert np.abs(values[m]).max() > 1e-2  # the value head is not trivially zero


def test_top_k_never_leaves_the_k_most_likely(model, topk_batch):
    _, params, cfg = model
    logits, _ = teacher_forced(params, cfg, topk_batch)
    m = np.asarray(topk_batch.token_mask) == 1
    ranks = ranks_of(logits, np.asarray(topk_batch.tokens))[m]
    assert ranks.max() < SAMPLING.top_k, np.bincount(ranks)
    assert ranks.max() > 0  # it does sample, not just argmax


@pytest.mark.parametrize("top_k,draw", [(0, "gumbel"), (10, "gumbel"), (0, "cdf")])
def test_top_p_respects_its_mass(model, prompts, top_k, draw):
    _, params, cfg = model
    sp = SamplingParams(temperature=1.3, top_k=top_k, top_p=0.6, draw=draw)
    b = sample(params, cfg, *prompts, jax.random.PRNGKey(1), sp, SAMPLE_NEW, num_samples=4)
    check_layout(b, prompts, 4, cfg, SAMPLE_NEW)
    logits, _ = teacher_forced(params, cfg, b)
    m = np.asarray(b.token_mask) == 1
    tokens = np.asarray(b.tokens)
    scaled = logits / sp.temperature
    if top_k:  # top-p applies to the renormalised top-k distribution
        ranks = ranks_of(logits, tokens)
        assert ranks[m].max() < top_k
        kth = np.sort(scaled, axis=-1)[..., -top_k][..., None]
        scaled = np.where(scaled >= kth, scaled, -np.inf)
    probs = np.asarray(jax.nn.softmax(jnp.asarray(scaled), axis=-1))
    before = mass_before(probs, tokens)[m]
    # the token is inside the smallest set whose mass reaches p
    assert before.max() < sp.top_p + 1e-5, before.max()
    assert (before > 0).any()  # not only the argmax
    # and the log-probs are still those of the full temperature-1 policy
    want = score(params, cfg, b.prompt_ids, b.prompt_mask, b.tokens, b.token_mask)
    np.testing.assert_allclose(np.asarray(b.logprobs), np.asarray(want), atol=1e-4, rtol=0)


def test_same_seed_same_samples_other_seed_differs(model, prompts, topk_batch):
    _, params, cfg = model
    again = sample(
        params, cfg, *prompts, jax.random.PRNGKey(7), SAMPLING, SAMPLE_NEW, num_samples=N_SAMPLES
    )
    for name in RolloutBatch._fields:
        np.testing.assert_array_equal(
            np.asarray(getattr(again, name)), np.asarray(getattr(topk_batch, name)), err_msg=name
        )
    other = sample(
        params, cfg, *prompts, jax.random.PRNGKey(8), SAMPLING, SAMPLE_NEW, num_samples=N_SAMPLES
    )
    assert not np.array_equal(np.asarray(other.tokens), np.asarray(topk_batch.tokens))


def test_min_new_tokens_forbids_early_eos(model, prompts):
    _, params, cfg = model
    sp = SamplingParams(temperature=0.8, top_k=5, min_new_tokens=SAMPLE_NEW)
    b = sample(params, cfg, *prompts, jax.random.PRNGKey(7), sp, SAMPLE_NEW, num_samples=N_SAMPLES)
    assert (np.asarray(b.lengths) == SAMPLE_NEW).all()
    assert not (np.asarray(b.tokens) == cfg.eos_token_id).any()
    want = score(params, cfg, b.prompt_ids, b.prompt_mask, b.tokens, b.token_mask)
    np.testing.assert_allclose(np.asarray(b.logprobs), np.asarray(want), atol=1e-4, rtol=0)


def test_bfloat16_compute_runs_and_tracks_fp32(model, prompts):
    """bf16 greedy: valid layout; its log-probs stay near the fp32 teacher-forced ones."""
    _, params, cfg = model
    b = sample(params, cfg, *prompts, 0, GREEDY, SAMPLE_NEW, dtype=jnp.bfloat16)
    check_layout(b, prompts, 1, cfg, SAMPLE_NEW)
    want = np.asarray(score(params, cfg, b.prompt_ids, b.prompt_mask, b.tokens, b.token_mask))
    m = np.asarray(b.token_mask) == 1
    # bf16 has ~3 significant digits; this only catches a broken bf16 path (garbage or NaN)
    assert np.abs(np.asarray(b.logprobs)[m] - want[m]).max() < 0.25


def test_bad_arguments(model, prompts):
    _, params, cfg = model
    with pytest.raises(ValueError):
        SamplingParams(temperature=0.0)
    with pytest.raises(ValueError):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValueError):
        SamplingParams(top_k=-1)
    with pytest.raises(ValueError):
        SamplingParams(draw="multinomial")
    with pytest.raises(ValueError):
        sample(params, cfg, *prompts, 0, GREEDY, 0)
    assert hash(SamplingParams(top_k=5)) == hash(SamplingParams(top_k=5))


def test_inverse_cdf_draws_only_tokens_with_mass_in_proportion():
    """draw="cdf": excluded entries (-inf) at either end and inside are never drawn, the
    others in proportion to their mass; per-row keys decide."""
    from ppocoder_jax.rollout.sampler import choose_tokens

    x = jnp.log(jnp.asarray([0.0, 0.1, 0.0, 0.6, 0.3, 0.0], jnp.float32))
    rows = 20000
    logits = jnp.broadcast_to(x, (rows, x.shape[0]))
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.PRNGKey(0), jnp.arange(rows))
    sp = SamplingParams(draw="cdf")
    tokens = np.asarray(jax.jit(choose_tokens, static_argnums=2)(logits, keys, sp))
    counts = np.bincount(tokens, minlength=6) / rows
    assert counts[[0, 2, 5]].sum() == 0
    np.testing.assert_allclose(counts[[1, 3, 4]], [0.1, 0.6, 0.3], atol=0.015)
    again = np.asarray(jax.jit(choose_tokens, static_argnums=2)(logits, keys, sp))
    np.testing.assert_array_equal(tokens, again)
