"""The generic PPO train step on the toy policy (single device; sharded runs: test_parallel_*)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.tiny_models import single_device_mesh
from helpers.toy_model import init_toy_params, random_ppo_batch, toy_apply, toy_forward
from helpers.trees import assert_close_to_scale

from ppocoder_jax.config import KLConfig, OptimConfig, PPOConfig
from ppocoder_jax.ppo import kernels as K
from ppocoder_jax.ppo.kl import update_kl_state
from ppocoder_jax.ppo.state import init_train_state, make_optimizer, make_schedule
from ppocoder_jax.ppo.train_step import (
    build_loss_and_grads,
    build_train_step,
    compute_advantages,
    ppo_update,
)

V = 16
PPO = PPOConfig(vf_coef=0.5, entropy_coef=0.01, ppo_epochs=2, num_minibatches=2)
GRAD_FN = build_loss_and_grads(toy_apply, PPO)  # one compiled function shared by the tests


def _batch(seed=0, b=8):
    return random_ppo_batch(seed, b, 5, 6, V)


def _np_log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def test_loss_matches_numpy_loop():
    params = init_toy_params(jax.random.PRNGKey(0), vocab=V)
    batch = _batch()
    fn = GRAD_FN
    loss, _, sums = fn(params, batch, jax.random.PRNGKey(1))
    dec_in = np.concatenate([np.zeros((8, 1), np.int32), batch.tokens[:, :-1]], axis=1)
    logits, values = toy_forward(params, batch.prompt_ids, batch.prompt_mask, dec_in)
    logits, values = np.asarray(logits), np.asarray(values)
    logp = _np_log_softmax(logits)
    pg = vf = ent = 0.0
    n = 0
    for i in range(8):
        for t in range(6):
            if not batch.token_mask[i, t]:
                continue
            n += 1
            ratio = math.exp(logp[i, t, batch.tokens[i, t]] - batch.old_logprobs[i, t])
            a = batch.advantages[i, t]
            pg += max(-a * ratio, -a * min(max(ratio, 0.8), 1.2))
            vo, r, v = batch.old_values[i, t], batch.returns[i, t], values[i, t]
            vc = vo + min(max(v - vo, -0.2), 0.2)
            vf += 0.5 * max((v - r) ** 2, (vc - r) ** 2)
            ent += -np.sum(np.exp(logp[i, t]) * logp[i, t])
    want = (pg + 0.5 * vf - 0.01 * ent) / n
    assert float(loss) == pytest.approx(want, rel=1e-5)
    assert float(sums["count"]) == n
    assert float(sums["policy_loss"]) == pytest.approx(pg, rel=1e-5)


def _allclose_tree(a, b, rtol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=0)


def test_grad_accumulation_is_exact():
    params = init_toy_params(jax.random.PRNGKey(0), vocab=V)
    batch = _batch(b=8)
    key = jax.random.PRNGKey(1)
    l1, g1, s1 = GRAD_FN(params, batch, key)
    cfg4 = dataclasses.replace(PPO, grad_accum_steps=4)
    l4, g4, s4 = build_loss_and_grads(toy_apply, cfg4)(params, batch, key)
    assert float(l4) == pytest.approx(float(l1), rel=1e-5)
    assert float(s4["count"]) == float(s1["count"])
    # gradients of different summation order: compare each leaf relative to its scale
    assert_close_to_scale(g4, g1, rtol=1e-5)


def test_masked_rows_do_not_matter():
    params = init_toy_params(jax.random.PRNGKey(0), vocab=V)
    batch = _batch()
    other = batch._replace(
        tokens=batch.tokens.copy(), advantages=batch.advantages.copy(), returns=batch.returns.copy()
    )
    other.tokens[-1] = 5  # the last row is fully masked
    other.advantages[-1] = 100.0
    other.returns[-1] = -100.0
    fn = GRAD_FN
    la, ga, _ = fn(params, batch, jax.random.PRNGKey(1))
    lb, gb, _ = fn(params, other, jax.random.PRNGKey(1))
    assert float(la) == float(lb)
    _allclose_tree(ga, gb, 0)


def test_train_step_and_ppo_update():
    params = init_toy_params(jax.random.PRNGKey(0), vocab=V)
    tx = make_optimizer(OptimConfig(learning_rate=3e-2, weight_decay=0.0))
    state = init_train_state(params, tx, KLConfig(), jax.random.PRNGKey(3))
    batch = _batch()
    fn = GRAD_FN
    before, _, _ = fn(state.params, batch, jax.random.PRNGKey(1))
    step = build_train_step(toy_apply, tx, PPO, donate=False)
    new_state, metrics = ppo_update(state, batch, step, PPO)
    assert int(new_state.step) == 4 and metrics["num_steps"] == 4
    assert int(new_state.opt_state[0].count) == 4
    assert not np.array_equal(np.asarray(new_state.rng), np.asarray(state.rng))
    after, _, _ = fn(new_state.params, batch, jax.random.PRNGKey(1))
    assert float(after) < float(before)  # PPO lowers its own objective on the batch
    for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "grad_norm"):
        assert np.isfinite(metrics[k])
    assert metrics["approx_kl"] > 0 and 0 <= metrics["clip_frac"] <= 1
    # same state -> same result (the minibatch permutation is a function of state.rng)
    again, metrics2 = ppo_update(state, batch, step, PPO)
    _allclose_tree(again.params, new_state.params, 0)
    assert metrics2 == metrics


def test_value_only_leaves_policy_gradient_out():
    params = init_toy_params(jax.random.PRNGKey(0), vocab=V)
    batch = _batch()
    _, g, _ = build_loss_and_grads(toy_apply, PPO, value_only=True)(
        params, batch, jax.random.PRNGKey(1)
    )
    # the lm head only feeds the policy/entropy terms
    assert np.all(np.asarray(g["body"]["lm_head"]) == 0)
    assert np.any(np.asarray(g["value_head"]["kernel"]) != 0)


def test_compute_advantages_composes_kernels_and_masks_invalid():
    b = _batch(seed=4)
    rng = np.random.default_rng(0)
    score = rng.normal(size=8).astype(np.float32)
    exact = rng.uniform(size=(8, 6)).astype(np.float32)
    valid = np.ones(8, bool)
    valid[2] = False
    score[2] = np.nan  # e.g. the reward of an infrastructure error
    cfg = PPOConfig(gamma=0.99, lam=0.9, whiten="sample")
    out = compute_advantages(
        b.old_logprobs,
        b.ref_logprobs,
        b.old_values,
        b.token_mask,
        score,
        0.1,
        exact,
        valid,
        cfg=cfg,
    )
    mask = b.token_mask * valid[:, None]
    score0 = np.where(valid, score, 0.0)
    r, kl = K.kl_penalised_rewards(b.old_logprobs, b.ref_logprobs, mask, score0, 0.1, exact)
    adv, ret = K.gae(r, b.old_values, mask, 0.99, 0.9)
    np.testing.assert_allclose(out["advantages"], K.whiten(adv, mask, "sample"), rtol=1e-6)
    np.testing.assert_allclose(out["returns"], ret, rtol=1e-6)
    assert np.all(np.asarray(out["token_mask"])[2] == 0)
    assert np.all(np.asarray(out["rewards"])[2] == 0)
    assert float(out["num_invalid"]) == 1
    assert float(out["mean_score"]) == pytest.approx(score0.sum() / 7, rel=1e-6)
    for k, v in out.items():
        assert np.all(np.isfinite(np.asarray(v))), k
    kl = np.asarray(kl)
    assert float(out["mean_kl"]) == pytest.approx(kl[valid].sum() / valid.sum(), rel=1e-6)


def test_kl_state_in_train_state():
    tx = make_optimizer(OptimConfig())
    kcfg = KLConfig(kind="adaptive", init_coef=0.1, target=1.0, horizon=100)
    st = init_train_state(init_toy_params(jax.random.PRNGKey(0)), tx, kcfg, jax.random.PRNGKey(0))
    st = st.replace(kl=update_kl_state(st.kl, 3.0, 10, kcfg))
    assert float(st.kl.coef) == pytest.approx(0.1 * (1 + 0.2 * 10 / 100), rel=1e-6)


def test_schedules_and_clipping():
    cfg = OptimConfig(learning_rate=1.0, schedule="cosine", warmup_steps=10)
    s = make_schedule(cfg, 110)
    assert float(s(0)) == 0.0
    assert float(s(5)) == pytest.approx(0.5)
    assert float(s(10)) == pytest.approx(1.0)
    assert float(s(60)) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)), abs=1e-6)
    assert float(s(110)) == pytest.approx(0.0, abs=1e-6)
    lin = make_schedule(OptimConfig(learning_rate=2.0, schedule="linear"), 4)
    assert [float(lin(i)) for i in range(5)] == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0])
    # clipping: a huge gradient is scaled to norm max_grad_norm before Adam: Adam's first
    # moment after one step is (1 - b1) * clipped gradient
    tx = make_optimizer(OptimConfig(max_grad_norm=1.0, weight_decay=0.0, learning_rate=1.0))
    params = {"w": jnp.zeros(3)}
    g = {"w": jnp.array([30.0, 40.0, 0.0])}
    _, opt = tx.update(g, tx.init(params), params)
    mu = opt[1][0].mu["w"]
    np.testing.assert_allclose(mu, 0.1 * np.array([0.6, 0.8, 0.0]), rtol=1e-6)
    tx = make_optimizer(OptimConfig(weight_decay=0.0, learning_rate=1.0))
    _, opt = tx.update(g, tx.init(params), params)
    np.testing.assert_allclose(opt[0].mu["w"], 0.1 * np.array([30.0, 40.0, 0.0]), rtol=1e-6)


def test_donated_step_and_frozen_reference():
    """The step donates the state; the frozen reference must survive it, with the same layout."""
    from helpers.toy_model import toy_logical_axes
    from helpers.train_states import create_sharded_train_state

    from ppocoder_jax.ppo.state import frozen_copy
    from ppocoder_jax.ppo.train_step import ppo_batch_shardings

    mesh = single_device_mesh()
    tx = make_optimizer(OptimConfig(learning_rate=1e-2))
    state, sh = create_sharded_train_state(
        lambda k: init_toy_params(k, vocab=V),
        toy_logical_axes,
        tx,
        KLConfig(),
        jax.random.PRNGKey(0),
        mesh,
    )
    ref = frozen_copy(state.params)
    before = jax.device_get(ref)
    batch = jax.device_put(_batch(), ppo_batch_shardings(mesh))
    step = build_train_step(toy_apply, tx, PPO, mesh, sh)  # donate=True
    new_state, _ = step(state, batch, np.arange(4, dtype=np.int32))
    assert state.params["body"]["wi"].is_deleted()  # really donated
    _allclose_tree(jax.device_get(ref), before, 0)
    assert ref["body"]["wi"].sharding == sh.params["body"]["wi"]
    assert not np.array_equal(np.asarray(new_state.params["body"]["wi"]), before["body"]["wi"])


def test_group_baseline_advantages_by_hand():
    b = _batch(seed=5)
    rng = np.random.default_rng(1)
    score = rng.normal(size=8).astype(np.float32)
    cfg = PPOConfig(gamma=1.0, whiten="none", baseline="group")
    out = compute_advantages(
        b.old_logprobs,
        b.ref_logprobs,
        b.old_values,
        b.token_mask,
        score,
        0.1,
        cfg=cfg,
        group_size=4,
    )
    mask = np.asarray(b.token_mask, np.float32)
    r, _ = K.kl_penalised_rewards(b.old_logprobs, b.ref_logprobs, mask, score, 0.1)
    r = np.asarray(r)
    to_go = np.cumsum(r[:, ::-1], axis=1)[:, ::-1] * mask
    total = to_go[:, 0]
    expect = np.zeros_like(to_go)
    for i in range(8):
        g = i // 4
        others = [total[j] for j in range(4 * g, 4 * g + 4) if j != i]
        expect[i] = (to_go[i] - np.mean(others)) * mask[i]
    np.testing.assert_allclose(out["advantages"], expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["returns"], to_go, rtol=1e-5, atol=1e-6)
    # the critic's values no longer enter the advantages
    out2 = compute_advantages(
        b.old_logprobs,
        b.ref_logprobs,
        b.old_values + 5.0,
        b.token_mask,
        score,
        0.1,
        cfg=cfg,
        group_size=4,
    )
    np.testing.assert_allclose(out2["advantages"], out["advantages"], rtol=1e-6)


def test_value_head_lr_scale_multiplies_only_the_head_step():
    params = {
        "t5": {"w": jnp.ones(3)},
        "value_head": {"kernel": jnp.ones((2, 1)), "bias": jnp.zeros(1)},
    }
    grads = jax.tree.map(jnp.ones_like, params)
    steps = {}
    for scale in (1.0, 10.0):
        tx = make_optimizer(
            OptimConfig(learning_rate=1e-3, weight_decay=0.0, value_head_lr_scale=scale)
        )
        steps[scale], _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(steps[10.0]["t5"]["w"], steps[1.0]["t5"]["w"], rtol=1e-7)
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(
            steps[10.0]["value_head"][name], 10.0 * steps[1.0]["value_head"][name], rtol=1e-6
        )
