"""PPO kernels against independent numpy loops on tiny hand-built examples."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppocoder_jax.config import KLConfig
from ppocoder_jax.ppo import kernels as K
from ppocoder_jax.ppo.kl import init_kl_state, update_kl_state

# row 0: ends with </s> at t=2; row 1: no </s>, fills all 4 positions; row 2: one token;
# row 3: empty (e.g. an infrastructure-error sample masked out)
MASK = np.array(
    [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]],
    dtype=np.float32,
)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _np_rewards(logp, ref, mask, score, beta, exact=None):
    b, t = mask.shape
    out = np.zeros((b, t), np.float64)
    kl_rows = np.zeros(b)
    for i in range(b):
        last = -1
        for j in range(t):
            if mask[i, j]:
                k = exact[i, j] if exact is not None else logp[i, j] - ref[i, j]
                out[i, j] = -beta * k
                kl_rows[i] += k
                last = j
        if last >= 0:
            out[i, last] += score[i]
    return out, kl_rows


def _np_gae(r, v, m, gamma, lam):
    b, t = m.shape
    adv = np.zeros((b, t))
    for i in range(b):
        valid = [j for j in range(t) if m[i, j]]
        running = 0.0
        for idx in reversed(range(len(valid))):
            j = valid[idx]
            nxt = v[i, valid[idx + 1]] if idx + 1 < len(valid) else 0.0
            # valid positions here are a prefix, so "next valid" is j + 1
            delta = r[i, j] + gamma * nxt - v[i, j]
            running = delta + gamma * lam * running
            adv[i, j] = running
    return adv, (adv + v) * m


def test_kl_penalised_rewards_sampled_and_exact():
    rng = _rng(1)
    logp = rng.normal(size=MASK.shape).astype(np.float32)
    ref = rng.normal(size=MASK.shape).astype(np.float32)
    exact = rng.uniform(0, 1, size=MASK.shape).astype(np.float32)
    score = np.array([1.5, -1.0, 3.0, 2.0], np.float32)
    beta = 0.1
    fn = jax.jit(K.kl_penalised_rewards)
    r, kl = fn(logp, ref, MASK, score, beta)
    er, ekl = _np_rewards(logp, ref, MASK, score, beta)
    np.testing.assert_allclose(r, er, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(kl, ekl, rtol=1e-6, atol=1e-7)
    # the score lands on the </s> of row 0 (t=2) and the last token of row 1 (t=3)
    assert r[0, 2] == pytest.approx(-beta * (logp[0, 2] - ref[0, 2]) + 1.5, rel=1e-6)
    assert r[1, 3] == pytest.approx(-beta * (logp[1, 3] - ref[1, 3]) - 1.0, rel=1e-6)
    assert np.all(r[3] == 0) and kl[3] == 0  # empty row: no score, no KL
    r2, kl2 = fn(logp, ref, MASK, score, beta, exact)
    er2, ekl2 = _np_rewards(logp, ref, MASK, score, beta, exact)
    np.testing.assert_allclose(r2, er2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(kl2, ekl2, rtol=1e-6, atol=1e-7)


def test_last_valid_index_non_prefix_mask():
    m = np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    np.testing.assert_array_equal(K.last_valid_index(m), [3, -1, 4])


def test_exact_kl_from_logits():
    rng = _rng(2)
    a = rng.normal(size=(2, 3, 7)).astype(np.float32)
    b = rng.normal(size=(2, 3, 7)).astype(np.float32)
    got = np.asarray(K.exact_kl_from_logits(a, b))
    want = np.zeros((2, 3))
    for i in range(2):
        for j in range(3):
            p = np.exp(a[i, j] - a[i, j].max())
            p /= p.sum()
            q = np.exp(b[i, j] - b[i, j].max())
            q /= q.sum()
            want[i, j] = sum(p[v] * (math.log(p[v]) - math.log(q[v])) for v in range(7))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(got >= 0)
    np.testing.assert_allclose(K.exact_kl_from_logits(a, a), 0.0, atol=1e-6)


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (0.99, 0.0)])
def test_gae_matches_loop(gamma, lam):
    rng = _rng(3)
    r = rng.normal(size=MASK.shape).astype(np.float32)
    v = rng.normal(size=MASK.shape).astype(np.float32)
    adv, ret = jax.jit(K.gae, static_argnums=(3, 4))(r, v, MASK, gamma, lam)
    eadv, eret = _np_gae(r, v, MASK, gamma, lam)
    np.testing.assert_allclose(adv, eadv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ret, eret, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(adv)[MASK == 0] == 0)


def test_gae_hand_example():
    # one row, 3 tokens, gamma=1, lam=1: A_t = sum_{k>=t} r_k - V_t, returns = reward-to-go
    r = np.array([[0.0, 0.0, 1.0, 5.0]], np.float32)  # the 5 is padding and must be ignored
    v = np.array([[0.5, 0.2, 0.1, 9.0]], np.float32)
    m = np.array([[1, 1, 1, 0]], np.float32)
    adv, ret = K.gae(r, v, m, 1.0, 1.0)
    np.testing.assert_allclose(adv, [[0.5, 0.8, 0.9, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(ret, [[1.0, 1.0, 1.0, 0.0]], rtol=1e-6)


def test_whiten_batch_and_sample():
    rng = _rng(4)
    x = rng.normal(size=MASK.shape).astype(np.float32) * 3 + 1
    eps = 1e-8
    # batch
    vals = np.array([x[i, j] for i in range(4) for j in range(4) if MASK[i, j]], np.float64)
    mu, var = vals.mean(), vals.var()
    want = np.where(MASK > 0, (x - mu) / np.sqrt(var + eps), 0.0)
    np.testing.assert_allclose(K.whiten(x, MASK, "batch"), want, rtol=1e-5, atol=1e-6)
    want_noshift = np.where(MASK > 0, (x - mu) / np.sqrt(var + eps) + mu, 0.0)
    np.testing.assert_allclose(
        K.whiten(x, MASK, "batch", shift_mean=False), want_noshift, rtol=1e-5, atol=1e-6
    )
    # sample: per row; the single-token row has var 0 -> 0, the empty row stays 0
    want_s = np.zeros_like(x, dtype=np.float64)
    for i in range(4):
        row = [x[i, j] for j in range(4) if MASK[i, j]]
        if not row:
            continue
        m_, v_ = np.mean(row), np.var(row)
        for j in range(4):
            if MASK[i, j]:
                want_s[i, j] = (x[i, j] - m_) / np.sqrt(v_ + eps)
    got_s = np.asarray(K.whiten(x, MASK, "sample"))
    np.testing.assert_allclose(got_s, want_s, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(got_s))
    np.testing.assert_allclose(K.whiten(x, MASK, "none"), x * MASK)


def test_policy_loss_hand_example():
    new = np.log(np.array([[0.5, 0.3, 0.2]], np.float32))
    old = np.log(np.array([[0.25, 0.3, 0.4]], np.float32))  # ratios 2.0, 1.0, 0.5
    adv = np.array([[1.0, -2.0, -1.0]], np.float32)
    m = np.array([[1, 1, 1]], np.float32)
    s, c, met = K.policy_loss(new, old, adv, m, 0.2)
    # t0: max(-2, -1.2) = -1.2 (clipped); t1: 2; t2: max(0.5, 0.8) = 0.8 (clipped)
    assert float(s) == pytest.approx(-1.2 + 2.0 + 0.8, rel=1e-6)
    assert float(c) == 3
    assert float(met["clip_frac"]) == 2
    k3 = (2.0 - 1 - math.log(2.0)) + 0 + (0.5 - 1 - math.log(0.5))
    assert float(met["approx_kl"]) == pytest.approx(k3, rel=1e-5)


def test_policy_loss_loop_with_mask():
    rng = _rng(5)
    new = rng.normal(size=MASK.shape).astype(np.float32) * 0.3
    old = rng.normal(size=MASK.shape).astype(np.float32) * 0.3
    adv = rng.normal(size=MASK.shape).astype(np.float32)
    s, c, met = K.policy_loss(new, old, adv, MASK, 0.2)
    es = ecf = ekl = 0.0
    for i in range(4):
        for j in range(4):
            if not MASK[i, j]:
                continue
            ratio = math.exp(new[i, j] - old[i, j])
            u = -adv[i, j] * ratio
            cl = -adv[i, j] * min(max(ratio, 0.8), 1.2)
            es += max(u, cl)
            ecf += cl > u
            ekl += ratio - 1 - math.log(ratio)
    assert float(s) == pytest.approx(es, rel=1e-5)
    assert float(c) == MASK.sum()
    assert float(met["clip_frac"]) == ecf
    assert float(met["approx_kl"]) == pytest.approx(ekl, rel=1e-4)


def test_value_loss_loop_with_mask():
    rng = _rng(6)
    vn = rng.normal(size=MASK.shape).astype(np.float32)
    vo = rng.normal(size=MASK.shape).astype(np.float32)
    ret = rng.normal(size=MASK.shape).astype(np.float32)
    s, c, met = K.value_loss(vn, vo, ret, MASK, 0.2)
    es = ecf = 0.0
    for i in range(4):
        for j in range(4):
            if not MASK[i, j]:
                continue
            vc = vo[i, j] + min(max(vn[i, j] - vo[i, j], -0.2), 0.2)
            u = (vn[i, j] - ret[i, j]) ** 2
            cl = (vc - ret[i, j]) ** 2
            es += 0.5 * max(u, cl)
            ecf += cl > u
    assert float(s) == pytest.approx(es, rel=1e-5)
    assert float(c) == MASK.sum()
    assert float(met["vf_clip_frac"]) == ecf


def test_entropy_and_token_logprobs():
    rng = _rng(7)
    logits = rng.normal(size=(4, 4, 5)).astype(np.float32)
    s, c = K.entropy_from_logits(logits, MASK)
    tokens = rng.integers(0, 5, size=(4, 4))
    lp = np.asarray(K.token_logprobs(logits, tokens))
    es = 0.0
    for i in range(4):
        for j in range(4):
            p = np.exp(logits[i, j] - logits[i, j].max())
            p /= p.sum()
            assert lp[i, j] == pytest.approx(math.log(p[tokens[i, j]]), rel=1e-5)
            if MASK[i, j]:
                es += -sum(pv * math.log(pv) for pv in p)
    assert float(s) == pytest.approx(es, rel=1e-5)
    assert float(c) == MASK.sum()


def test_explained_variance():
    rng = _rng(8)
    ret = rng.normal(size=MASK.shape).astype(np.float32)
    v = ret + 0.1 * rng.normal(size=MASK.shape).astype(np.float32)
    r_ = ret[MASK > 0].astype(np.float64)
    v_ = v[MASK > 0].astype(np.float64)
    want = 1 - np.var(r_ - v_) / np.var(r_)
    assert float(K.explained_variance(v, ret, MASK)) == pytest.approx(want, rel=1e-5)
    assert float(K.explained_variance(v, np.ones_like(ret), MASK)) == 0.0


def test_sum_count_reductions_are_exact_across_splits():
    rng = _rng(9)
    new = rng.normal(size=(8, 6)).astype(np.float32) * 0.3
    old = rng.normal(size=(8, 6)).astype(np.float32) * 0.3
    adv = rng.normal(size=(8, 6)).astype(np.float32)
    m = (rng.uniform(size=(8, 6)) > 0.3).astype(np.float32)
    s, c, _ = K.policy_loss(new, old, adv, m, 0.2)
    parts = [
        K.policy_loss(new[i : i + 2], old[i : i + 2], adv[i : i + 2], m[i : i + 2], 0.2)
        for i in range(0, 8, 2)
    ]
    total_s = sum(float(p[0]) for p in parts)
    total_c = sum(float(p[1]) for p in parts)
    assert total_s / total_c == pytest.approx(float(s) / float(c), rel=1e-6)


def test_kl_controllers():
    fixed = KLConfig(kind="fixed", init_coef=0.1, target=1.0, horizon=10000)
    st = init_kl_state(fixed)
    st = update_kl_state(st, 5.0, 32, fixed)
    assert float(st.coef) == pytest.approx(0.1) and float(st.last_kl) == 5.0
    ada = KLConfig(kind="adaptive", init_coef=0.1, target=1.0, horizon=10000)
    beta = 0.1
    st = init_kl_state(ada)
    step = jax.jit(update_kl_state, static_argnums=(3,))
    for kl, n in [(5.0, 32), (1.1, 32), (0.0, 16), (0.95, 64)]:
        st = step(st, kl, n, ada)
        err = min(max(kl / 1.0 - 1.0, -0.2), 0.2)
        beta = beta * (1 + err * n / 10000)
        assert float(st.coef) == pytest.approx(beta, rel=1e-6)
    assert jnp.asarray(st.coef).dtype == jnp.float32


def test_padding_garbage_never_leaks():
    """NaN/inf on padded positions (e.g. an uninitialised buffer) must not reach any result."""
    rng = _rng(10)
    x = rng.normal(size=MASK.shape).astype(np.float32)
    bad = np.where(MASK > 0, x, np.nan).astype(np.float32)
    bad_inf = np.where(MASK > 0, x, np.inf).astype(np.float32)
    score = np.ones(4, np.float32)
    r, kl = K.kl_penalised_rewards(bad, bad_inf, MASK, score, 0.1)
    adv, ret = K.gae(bad, bad_inf, MASK, 1.0, 0.95)
    outs = [r, kl, adv, ret, K.whiten(bad, MASK, "batch"), K.whiten(bad, MASK, "sample")]
    outs += list(K.policy_loss(bad, bad_inf, bad, MASK, 0.2)[:2])
    outs += list(K.value_loss(bad, bad_inf, bad, MASK, 0.2)[:2])
    for o in outs:
        assert np.all(np.isfinite(np.asarray(o)))
    clean_r, _ = K.kl_penalised_rewards(x * MASK, x * MASK, MASK, score, 0.1)
    np.testing.assert_array_equal(np.asarray(r), np.asarray(clean_r))


def test_leave_one_out_baseline_by_hand():
    returns = jnp.array([1.0, 2.0, 3.0, 10.0, 20.0, 99.0], jnp.float32)
    valid = jnp.array([1, 1, 1, 1, 1, 0], jnp.float32)
    base = np.asarray(K.leave_one_out_baseline(returns, valid, 3))
    # group 1: mean of the other two; group 2: the invalid row is nobody's sibling,
    # and rows 3 and 4 see only each other
    np.testing.assert_allclose(base, [2.5, 2.0, 1.5, 20.0, 10.0, 15.0], rtol=1e-6)
    lonely = K.leave_one_out_baseline(jnp.array([4.0, 7.0]), jnp.array([1.0, 0.0]), 2)
    assert float(lonely[0]) == 4.0  # no valid sibling: advantage 0
