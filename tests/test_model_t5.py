"""Our Flax T5 against transformers' PyTorch T5 on tiny random models, plus the KV cache."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.tiny_models import tiny_t5_config
from tiny_t5 import load_torch_t5, make_tiny_hf_t5

from ppocoder_jax.errors import UserError
from ppocoder_jax.model import t5
from ppocoder_jax.model.hf_io import load_hf_t5
from ppocoder_jax.model.t5_config import T5Config

torch = pytest.importorskip("torch")

# Jitted once per config: eager op-by-op dispatch is what makes tiny-model tests slow.
fwd = jax.jit(t5.forward, static_argnums=1, static_argnames=("dtype",))
score = jax.jit(t5.score, static_argnums=1, static_argnames=("dtype",))

ENC_LENGTHS = [7, 4, 1]
DEC_LENGTHS = [6, 3, 2]


def random_batch(vocab_size: int, seed: int = 0):
    """Right-padded encoder and decoder inputs (pad = 0) with different lengths per row."""
    rng = np.random.default_rng(seed)
    b, s, t = len(ENC_LENGTHS), max(ENC_LENGTHS), max(DEC_LENGTHS)
    enc_mask = (np.arange(s)[None] < np.array(ENC_LENGTHS)[:, None]).astype(np.int32)
    dec_mask = (np.arange(t)[None] < np.array(DEC_LENGTHS)[:, None]).astype(np.int32)
    enc_ids = rng.integers(3, vocab_size, (b, s)) * enc_mask
    dec_ids = rng.integers(3, vocab_size, (b, t)) * dec_mask
    dec_ids[:, 0] = 0  # decoder start
    return enc_ids.astype(np.int32), enc_mask, dec_ids.astype(np.int32), dec_mask


def load_with_value_head(path):
    """Our params of a Hugging Face T5 directory plus a fresh value head (init key 0), and the
    config."""
    t5_params, cfg = load_hf_t5(path)
    value_head = t5.init_params(cfg, jax.random.PRNGKey(0))["value_head"]
    return {"t5": t5_params, "value_head": value_head}, cfg


def torch_logits(path, enc_ids, enc_mask, dec_ids, dec_mask):
    model = load_torch_t5(path)
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(enc_ids, dtype=torch.long),
            attention_mask=torch.tensor(enc_mask, dtype=torch.long),
            decoder_input_ids=torch.tensor(dec_ids, dtype=torch.long),
            decoder_attention_mask=torch.tensor(dec_mask, dtype=torch.long),
        )
    return out.logits.numpy()


MODELS = [
    dict(variant="v1.0", tied=True, num_layers=2, num_heads=4),
    dict(variant="v1.1", tied=False, num_layers=2, num_decoder_layers=3, num_heads=2, d_kv=16),
    dict(variant="v1.0", tied=True, num_layers=1, num_decoder_layers=2, num_heads=8, d_kv=4),
    dict(variant="v1.1", tied=True, num_layers=3, num_decoder_layers=1, num_heads=4),
    dict(variant="v1.0", tied=False, num_layers=1, num_heads=1, d_kv=32),
]


@pytest.mark.parametrize("spec", MODELS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_logits_match_pytorch(tmp_path, spec):
    path = make_tiny_hf_t5(tmp_path, with_tokenizer=False, **spec)
    params, cfg = load_with_value_head(path)
    assert cfg.tie_word_embeddings == spec["tied"]
    assert cfg.is_gated == (spec["variant"] == "v1.1")
    batch = random_batch(cfg.vocab_size, seed=1)
    expected = torch_logits(path, *batch)
    logits, values = fwd(params, cfg, *batch)
    assert logits.dtype == jnp.float32 and logits.shape == expected.shape
    assert values.shape == batch[2].shape
    valid = batch[3].astype(bool)
    np.testing.assert_allclose(np.asarray(logits)[valid], expected[valid], atol=1e-4, rtol=0)


def test_score_matches_pytorch_log_probs(tmp_path):
    path = make_tiny_hf_t5(tmp_path, variant="v1.1", tied=False, with_tokenizer=False)
    params, cfg = load_with_value_head(path)
    enc_ids, enc_mask, dec_ids, dec_mask = random_batch(cfg.vocab_size, seed=2)
    target = np.where(dec_mask == 1, np.maximum(dec_ids, 3), 0).astype(np.int32)
    model = load_torch_t5(path)
    with torch.no_grad():
        logits = model(
            input_ids=torch.tensor(enc_ids, dtype=torch.long),
            attention_mask=torch.tensor(enc_mask, dtype=torch.long),
            labels=torch.tensor(target, dtype=torch.long),  # HF shifts right itself
        ).logits
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(target)[..., None].long())
    expected = expected[..., 0].numpy() * dec_mask
    got = score(params, cfg, enc_ids, enc_mask, target, dec_mask)
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4, rtol=0)
    assert np.all(np.asarray(got)[dec_mask == 0] == 0)


def _small_cfg(**kw):
    """The tiny T5 with 2 + 2 layers and a vocabulary of 64."""
    return tiny_t5_config(**{"vocab_size": 64, "num_layers": 2, "num_decoder_layers": 2, **kw})


def _randomize(params, seed=3):
    """Random value head so its outputs are not trivially zero."""
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda x: x, params)
    params["value_head"] = {
        "kernel": jnp.asarray(rng.normal(size=params["value_head"]["kernel"].shape), jnp.float32),
        "bias": jnp.asarray([0.5], jnp.float32),
    }
    return params


@pytest.mark.parametrize(
    "feed_forward_proj,precompute_cross", [("relu", True), ("gated-gelu", False)]
)
def test_decode_step_matches_forward(feed_forward_proj, precompute_cross):
    cfg = _small_cfg(feed_forward_proj=feed_forward_proj, num_decoder_layers=3)
    params = _randomize(t5.init_params(cfg, jax.random.PRNGKey(0)))
    enc_ids, enc_mask, dec_ids, _ = random_batch(cfg.vocab_size, seed=4)
    # 20 positions: relative distances beyond max_distance (16) hit the clipped buckets.
    dec_ids = np.asarray(
        np.random.default_rng(5).integers(0, cfg.vocab_size, (dec_ids.shape[0], 20)), np.int32
    )
    t = dec_ids.shape[1]
    full_logits, full_values = fwd(params, cfg, enc_ids, enc_mask, dec_ids, None)
    max_len = t + 5  # longer than used: unused cache slots must be masked out

    @jax.jit
    def run(params, enc_ids, enc_mask, dec_ids):
        enc = t5.encode(params, cfg, enc_ids, enc_mask)
        if precompute_cross:
            cache = t5.init_cache(cfg, enc_ids.shape[0], max_len, params=params, enc=enc)
        else:
            cache = t5.init_cache(cfg, enc_ids.shape[0], max_len)

        def body(cache, step):  # traced step index
            logits, values, cache = t5.decode_step(
                params, cfg, dec_ids[:, step], step, cache, enc, enc_mask
            )
            return cache, (logits, values)

        _, (logits, values) = jax.lax.scan(body, cache, jnp.arange(t))
        return logits.transpose(1, 0, 2), values.T

    logits, values = run(params, enc_ids, enc_mask, dec_ids)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(full_logits), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(values), np.asarray(full_values), atol=1e-5, rtol=0)


def test_decode_step_in_while_loop():
    cfg = _small_cfg()
    params = t5.init_params(cfg, jax.random.PRNGKey(1))
    enc_ids, enc_mask, _, _ = random_batch(cfg.vocab_size, seed=6)
    steps = 5

    @jax.jit
    def greedy(params, enc_ids, enc_mask):
        enc = t5.encode(params, cfg, enc_ids, enc_mask)
        b = enc_ids.shape[0]
        cache = t5.init_cache(cfg, b, steps, params=params, enc=enc)
        tokens = jnp.zeros((b, steps + 1), jnp.int32)

        def body(state):
            step, tokens, cache = state
            logits, _, cache = t5.decode_step(
                params, cfg, tokens[:, step], step, cache, enc, enc_mask
            )
            tokens = tokens.at[:, step + 1].set(jnp.argmax(logits, -1).astype(jnp.int32))
            return step + 1, tokens, cache

        _, tokens, _ = jax.lax.while_loop(
            lambda s: s[0] < steps, body, (jnp.int32(0), tokens, cache)
        )
        return tokens

    tokens = np.asarray(greedy(params, enc_ids, enc_mask))
    # Greedy tokens must be the argmax of the teacher-forced logits on the same prefix.
    logits, _ = fwd(params, cfg, enc_ids, enc_mask, tokens[:, :-1], None)
    np.testing.assert_array_equal(np.argmax(np.asarray(logits), -1), tokens[:, 1:])


def test_value_head_shape_and_dropout():
    cfg = _small_cfg()
    params = _randomize(t5.init_params(cfg, jax.random.PRNGKey(2)))
    enc_ids, enc_mask, dec_ids, dec_mask = random_batch(cfg.vocab_size, seed=7)
    _, v0 = fwd(params, cfg, enc_ids, enc_mask, dec_ids, dec_mask)
    _, v0_again = fwd(params, cfg, enc_ids, enc_mask, dec_ids, dec_mask)
    _, v1 = fwd(
        params, cfg, enc_ids, enc_mask, dec_ids, dec_mask, dropout_rng=jax.random.PRNGKey(0)
    )
    _, v2 = fwd(
        params, cfg, enc_ids, enc_mask, dec_ids, dec_mask, dropout_rng=jax.random.PRNGKey(1)
    )
    assert v0.shape == dec_ids.shape and v0.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(v0), np.asarray(v0_again))
    assert not np.allclose(np.asarray(v1), np.asarray(v0))
    assert not np.allclose(np.asarray(v1), np.asarray(v2))
    # Fresh init: zero head -> values 0.
    _, v_init = fwd(
        t5.init_params(cfg, jax.random.PRNGKey(2)), cfg, enc_ids, enc_mask, dec_ids, dec_mask
    )
    assert np.all(np.asarray(v_init) == 0)


def test_bf16_compute_close_to_fp32():
    cfg = _small_cfg(feed_forward_proj="gated-gelu")
    params = _randomize(t5.init_params(cfg, jax.random.PRNGKey(3)))
    batch = random_batch(cfg.vocab_size, seed=8)
    logits32, values32 = fwd(params, cfg, *batch)
    logits16, values16 = fwd(params, cfg, *batch, dtype=jnp.bfloat16)
    assert logits16.dtype == jnp.float32 and values16.dtype == jnp.float32
    valid = batch[3].astype(bool)
    p32 = np.asarray(jax.nn.softmax(logits32))[valid]
    p16 = np.asarray(jax.nn.softmax(logits16))[valid]
    # bf16 has ~3 significant digits: probabilities agree to a few 1e-2, not bit for bit.
    assert np.max(np.abs(p32 - p16)) < 0.05
    assert not np.array_equal(np.asarray(logits16), np.asarray(logits32))
    scale = np.max(np.abs(np.asarray(values32)))
    assert np.max(np.abs(np.asarray(values16) - np.asarray(values32))) < 0.05 * scale + 0.05

    # The cached decoder in bf16 runs too (one jitted program: eager dispatch compiles per op).
    @jax.jit
    def first_step(params, enc_ids, enc_mask):
        enc = t5.encode(params, cfg, enc_ids, enc_mask, dtype=jnp.bfloat16)
        cache = t5.init_cache(cfg, 3, 4, jnp.bfloat16, params=params, enc=enc)
        start = jnp.zeros(3, jnp.int32)
        logits, _, cache = t5.decode_step(
            params, cfg, start, 0, cache, enc, enc_mask, dtype=jnp.bfloat16
        )
        return enc, cache["layers_0"]["self_k"], logits

    enc, cache_k, logits = first_step(params, batch[0], batch[1])
    assert enc.dtype == jnp.bfloat16 and cache_k.dtype == jnp.bfloat16
    assert logits.dtype == jnp.float32 and logits.shape == (3, cfg.vocab_size)
    first_p32 = np.asarray(jax.nn.softmax(logits32[:, 0]))
    assert np.max(np.abs(np.asarray(jax.nn.softmax(logits)) - first_p32)) < 0.05


def test_param_logical_axes_match_module_annotations():
    for cfg in (
        _small_cfg(),
        _small_cfg(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    ):
        boxed = jax.eval_shape(lambda cfg=cfg: t5.init_params_boxed(cfg, jax.random.PRNGKey(0)))
        params = nn.meta.unbox(boxed)  # shapes only: no need to run the init
        expected = nn.get_partition_spec(boxed)
        got = t5.param_logical_axes(params)
        assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(expected)
        for a, b, leaf in zip(
            jax.tree_util.tree_leaves(got),
            jax.tree_util.tree_leaves(expected),
            jax.tree_util.tree_leaves(params),
            strict=True,
        ):
            assert tuple(a) == tuple(b) and len(a) == leaf.ndim
        assert ("lm_head" in params["t5"]) == (not cfg.tie_word_embeddings)


def test_config_refuses_other_architectures():
    base = {
        "model_type": "t5",
        "vocab_size": 10,
        "d_model": 8,
        "d_kv": 2,
        "d_ff": 16,
        "num_layers": 1,
        "num_heads": 4,
    }
    cfg = T5Config.from_hf_dict(base)
    assert (cfg.pad_token_id, cfg.decoder_start_token_id, cfg.scale_decoder_outputs) == (0, 0, True)
    with pytest.raises(UserError, match="model_type='bart'"):
        T5Config.from_hf_dict({**base, "model_type": "bart"})
    with pytest.raises(UserError, match="gated-silu"):
        T5Config.from_hf_dict({**base, "feed_forward_proj": "gated-silu"})
    with pytest.raises(UserError, match="'d_model'"):
        T5Config.from_hf_dict({k: v for k, v in base.items() if k != "d_model"})
    # transformers 5 spelling of v1.1: tied flag forced true, scaling off.
    v5 = T5Config.from_hf_dict(
        {**base, "tie_word_embeddings": True, "scale_decoder_outputs": False}
    )
    assert v5.tie_word_embeddings and not v5.scale_decoder_outputs
    roundtrip = T5Config.from_hf_dict(cfg.to_hf_dict())
    assert roundtrip == cfg


@pytest.mark.slow
def test_init_params_matches_flax_initializers():
    """The fast numpy init draws from the same distributions as the modules' initializers."""
    cfg = _small_cfg(
        d_model=64,
        d_ff=96,
        vocab_size=256,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    )
    ours = t5.init_params(cfg, jax.random.PRNGKey(0))
    theirs = nn.meta.unbox(t5.init_params_boxed(cfg, jax.random.PRNGKey(0)))

    def compare(path, a, b):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype == np.float32
        name = jax.tree_util.keystr(path)
        # Sampling error of a std / mean over n draws, with a 5-sigma margin.
        n = a.size
        assert abs(a.std() - b.std()) <= 5 * b.std() / np.sqrt(2 * n) + 1e-6, name
        assert abs(a.mean() - b.mean()) <= 5 * b.std() * np.sqrt(2 / n) + 1e-6, name

    jax.tree_util.tree_map_with_path(compare, ours, theirs)


def test_long_sequences_match_pytorch(tmp_path):
    """Relative positions beyond max_distance (20 here) fall into the clipped log buckets."""
    path = make_tiny_hf_t5(tmp_path, variant="v1.1", tied=False, with_tokenizer=False)
    params, cfg = load_with_value_head(path)
    rng = np.random.default_rng(9)
    enc_mask = (np.arange(48)[None] < np.array([[48], [30]])).astype(np.int32)
    dec_mask = (np.arange(40)[None] < np.array([[40], [25]])).astype(np.int32)
    enc_ids = (rng.integers(3, cfg.vocab_size, enc_mask.shape) * enc_mask).astype(np.int32)
    dec_ids = (rng.integers(3, cfg.vocab_size, dec_mask.shape) * dec_mask).astype(np.int32)
    batch = (enc_ids, enc_mask, dec_ids, dec_mask)
    expected = torch_logits(path, *batch)
    logits, _ = fwd(params, cfg, *batch)
    valid = dec_mask.astype(bool)
    np.testing.assert_allclose(np.asarray(logits)[valid], expected[valid], atol=1e-4, rtol=0)


def test_sampler_decode_loop_transposes_no_weights():
    """2-D projections: the compiled decode loop never transposes an attention kernel (as 3-D
    einsums it transposed every [H, K, D] kernel of every layer at every step), and keeps the
    [B, H, K, T] cache in place."""
    import re

    from test_model_decoder import while_body_instructions

    from ppocoder_jax.rollout.sampler import SamplingParams, sample

    cfg = _small_cfg(d_model=40)  # no other dimension is 40
    params = _randomize(t5.init_params(cfg, jax.random.PRNGKey(0)))
    ids = jnp.ones((3, 5), jnp.int32)
    mask = jnp.ones((3, 5), jnp.int32)
    sampling = SamplingParams(temperature=1.0)
    fn = jax.jit(lambda p, i, m, k: sample(p, cfg, i, m, k, sampling, 6))
    body = while_body_instructions(
        fn.lower(params, ids, mask, jax.random.PRNGKey(0)).compile().as_text()
    )
    shapes = [
        [int(d) for d in re.search(r"\[([\d,]*)\]", i).group(1).split(",") if d]
        for i in body
        if re.search(r"\btranspose\(", i)
    ]
    assert all(cfg.d_model not in dims for dims in shapes), shapes
    cache = f"[3,{cfg.num_heads},{cfg.d_kv},6]"
    assert any("dynamic-update-slice(" in i and cache in i for i in body)
