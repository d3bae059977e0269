"""The fused, chunked LM head equals the whole-logits computation, values and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppocoder_jax.model import lm_head
from ppocoder_jax.model.common import token_logprobs
from ppocoder_jax.ppo import kernels as K

B, T, D, V = 3, 11, 16, 37


def _inputs(vocab_major: bool, seed: int = 0):
    ks = jax.random.split(jax.random.PRNGKey(seed), 5)
    hidden = jax.random.normal(ks[0], (B, T, D)) * 2.0
    weight = jax.random.normal(ks[1], (V, D) if vocab_major else (D, V))
    tokens = jax.random.randint(ks[2], (B, T), 0, V)
    g_lp = jax.random.normal(ks[3], (B, T))
    g_ent = jax.random.normal(ks[4], (B, T))
    return hidden, weight, tokens, g_lp, g_ent


def _whole(hidden, weight, tokens, vocab_major):
    w = weight.T if vocab_major else weight
    logits = jnp.einsum("btd,dv->btv", hidden, w, precision="highest")
    logp = jax.nn.log_softmax(logits, axis=-1)
    entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    return token_logprobs(logits, tokens), entropy


@pytest.mark.parametrize("vocab_major", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 11, None])
def test_values_and_gradients_equal_the_whole_logits_path(vocab_major, chunk):
    hidden, weight, tokens, g_lp, g_ent = _inputs(vocab_major)

    def fused(h, w):
        lp, ent = lm_head.token_logprob_entropy(h, w, tokens, vocab_major=vocab_major, chunk=chunk)
        return jnp.sum(lp * g_lp + ent * g_ent), (lp, ent)

    def whole(h, w):
        lp, ent = _whole(h, w, tokens, vocab_major)
        return jnp.sum(lp * g_lp + ent * g_ent), (lp, ent)

    with jax.default_matmul_precision("highest"):
        (_, (lp_f, ent_f)), grads_f = jax.value_and_grad(fused, (0, 1), has_aux=True)(
            hidden, weight
        )
        (_, (lp_w, ent_w)), grads_w = jax.value_and_grad(whole, (0, 1), has_aux=True)(
            hidden, weight
        )
    # the whole-logits entropy is the kernel the train step uses today
    w = weight.T if vocab_major else weight
    ent_sum, _ = K.entropy_from_logits(hidden @ w, jnp.ones(tokens.shape))
    np.testing.assert_allclose(ent_sum, ent_w.sum(), rtol=1e-5)
    np.testing.assert_allclose(lp_f, lp_w, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ent_f, ent_w, atol=1e-5, rtol=1e-5)
    for gf, gw in zip(grads_f, grads_w):
        assert gf.shape == gw.shape and gf.dtype == gw.dtype
        np.testing.assert_allclose(gf, gw, atol=1e-5, rtol=1e-5)


def test_exact_kl_and_both_logprobs_equal_the_whole_logits_path():
    hidden, weight, tokens, _, _ = _inputs(False)
    ref_hidden, ref_weight, _, _, _ = _inputs(False, seed=1)
    with jax.default_matmul_precision("highest"):
        lp, ref_lp, kl = lm_head.logprob_and_exact_kl(
            hidden, weight, ref_hidden, ref_weight, tokens, chunk=3
        )
        logits = hidden @ weight
        ref_logits = ref_hidden @ ref_weight
    np.testing.assert_allclose(lp, token_logprobs(logits, tokens), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ref_lp, token_logprobs(ref_logits, tokens), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(kl, K.exact_kl_from_logits(logits, ref_logits), atol=1e-5)
    assert float(kl.min()) > 0  # different models: every position has some divergence


def test_bf16_inputs_keep_fp32_statistics():
    hidden, weight, tokens, g_lp, _ = _inputs(True)
    h16, w16 = hidden.astype(jnp.bfloat16), weight.astype(jnp.bfloat16)
    lp, ent = lm_head.token_logprob_entropy(h16, w16, tokens, vocab_major=True, chunk=4)
    assert lp.dtype == ent.dtype == jnp.float32
    ref_lp, _ = _whole(h16.astype(jnp.float32), w16.astype(jnp.float32), tokens, True)
    np.testing.assert_allclose(lp, ref_lp, atol=2e-2)  # the matmul inputs are bf16
    gh, gw = jax.grad(
        lambda h, w: jnp.sum(
            lm_head.token_logprob_entropy(h, w, tokens, vocab_major=True, chunk=4)[0] * g_lp
        ),
        (0, 1),
    )(h16, w16)
    assert gh.dtype == gw.dtype == jnp.bfloat16


def test_no_whole_logits_array_in_the_compiled_gradient():
    """The point of the module: no [B, T, V] buffer, forward or backward."""
    b, t, d, v = 2, 64, 8, 4096
    hidden = jnp.ones((b, t, d))
    weight = jnp.ones((d, v))
    tokens = jnp.zeros((b, t), jnp.int32)

    def loss(h, w):
        lp, ent = lm_head.token_logprob_entropy(h, w, tokens, chunk=8)
        return jnp.sum(lp) + jnp.sum(ent)

    hlo = jax.jit(jax.grad(loss, (0, 1))).lower(hidden, weight).compile().as_text()
    assert f"[{b},{t},{v}]" not in hlo and f"[{b * t},{v}]" not in hlo
    assert f"[{b},8,{v}]" in hlo  # a chunk's logits
