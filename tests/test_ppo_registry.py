"""The registered algorithm parts (ppo/registry.py) against plain-numpy references written here.

Advantage estimators (gae, rloo, grpo, dr_grpo), policy-loss aggregations (token_mean,
seq_mean_token_mean, seq_mean_token_sum_norm), asymmetric and dual clipping, the k3 KL in the
loss, DAPO's dynamic sampling (masking form), the exact (sum, count) reductions of every
aggregation across row splits and gradient accumulation, and the config spellings.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.toy_model import init_toy_params, random_ppo_batch, toy_apply, toy_forward
from helpers.trees import assert_close_to_scale

from ppocoder_jax.config import Config, KLConfig, PPOConfig, RolloutConfig, load_config
from ppocoder_jax.errors import UserError
from ppocoder_jax.ppo import kernels as K
from ppocoder_jax.ppo import registry as R
from ppocoder_jax.ppo.train_step import (
    build_loss_and_grads,
    compute_advantages,
    kl_placement,
    uses_reference,
)

G = 4  # samples per prompt
B, T = 12, 6  # 3 prompts x 4 samples


def _data(seed=0, ties=True):
    """Prefix masks of random lengths, scores with ties, per-token log-probs, values; row 5 is
    invalid (an infrastructure error), group 2 has a single valid sample."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, T + 1, size=B)
    mask = (np.arange(T)[None] < lens[:, None]).astype(np.float32)
    score = rng.choice([-1.0, -0.3, 1.0], size=B).astype(np.float32)
    if ties:
        score[0:4] = [1.0, -1.0, 1.0, 1.0]  # one tie pair inside a spread group
    valid = np.ones(B, np.float32)
    valid[5] = 0.0
    valid[9:12] = 0.0  # group 2: only row 8 is valid
    score[5] = np.nan
    logp = (rng.normal(size=(B, T)) * 0.3 - 2.0).astype(np.float32) * mask
    ref = (rng.normal(size=(B, T)) * 0.3 - 2.0).astype(np.float32) * mask
    values = rng.normal(size=(B, T)).astype(np.float32) * mask
    return dict(lens=lens, mask=mask, score=score, valid=valid, logp=logp, ref=ref, values=values)


def _np_rewards(d, beta):
    r = np.zeros((B, T))
    for i in range(B):
        if not d["valid"][i]:
            continue
        for t in range(d["lens"][i]):
            r[i, t] = -beta * (d["logp"][i, t] - d["ref"][i, t])
        r[i, d["lens"][i] - 1] += d["score"][i]
    return r


def _np_to_go(r, d, gamma):
    out = np.zeros((B, T))
    for i in range(B):
        acc = 0.0
        for t in reversed(range(d["lens"][i])):
            acc = r[i, t] + gamma * acc
            out[i, t] = acc
    return out


def _np_gae(r, d, gamma, lam):
    adv = np.zeros((B, T))
    for i in range(B):
        if not d["valid"][i]:
            continue
        n, v = d["lens"][i], d["values"][i]
        last = 0.0
        for t in reversed(range(n)):
            nxt = v[t + 1] if t + 1 < n else 0.0
            delta = r[i, t] + gamma * nxt - v[t]
            last = delta + gamma * lam * last
            adv[i, t] = last
    return adv


def _np_group_adv(name, r, d, gamma):
    to_go = _np_to_go(r, d, gamma)
    adv = np.zeros((B, T))
    for i in range(B):
        if not d["valid"][i]:
            continue
        g = i // G
        members = [j for j in range(g * G, g * G + G) if d["valid"][j]]
        rets = np.array([to_go[j, 0] for j in members])
        if name == "rloo":
            others = [to_go[j, 0] for j in members if j != i]
            base = np.mean(others) if others else to_go[i, 0]
            a = to_go[i] - base
        elif name == "grpo":
            std = np.std(rets, ddof=1) if len(rets) > 1 else 0.0
            a = (to_go[i] - rets.mean()) / (std + 1e-4)
        else:  # dr_grpo
            a = to_go[i] - rets.mean()
        adv[i] = a * d["mask"][i]
    return adv


def _ours(d, name, beta, gamma=0.97, lam=0.9, **cfg):
    cfg = PPOConfig(advantage=name, gamma=gamma, lam=lam, whiten="none", **cfg)
    return compute_advantages(
        d["logp"],
        d["ref"],
        d["values"],
        d["mask"],
        d["score"],
        beta,
        None,
        d["valid"],
        cfg=cfg,
        group_size=G,
    )


@pytest.mark.parametrize("name", ["gae", "rloo", "grpo", "dr_grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.2])
def test_advantage_estimators_match_numpy(name, beta):
    d = _data()
    out = _ours(d, name, beta)
    r = _np_rewards(d, beta)
    if name == "gae":
        want = _np_gae(r, d, 0.97, 0.9)
    else:
        want = _np_group_adv(name, r, d, 0.97)
    got = np.asarray(out["advantages"])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(got))
    # invalid rows are masked out of everything
    assert np.all(np.asarray(out["token_mask"])[~d["valid"].astype(bool)] == 0)


def test_grpo_without_kl_is_one_advantage_per_sample_as_trl_defines_it():
    """No KL in the reward: every token of a sample gets (r - mean) / (std + 1e-4), Bessel std
    (TRL's scale_rewards='group'); dr_grpo: r - mean."""
    d = _data(seed=3)
    d["valid"][:] = 1.0
    d["score"][5] = 0.5
    for name in ("grpo", "dr_grpo"):
        got = np.asarray(_ours(d, name, 0.0, gamma=1.0)["advantages"])
        for i in range(B):
            grp = d["score"][(i // G) * G : (i // G) * G + G].astype(np.float64)
            a = d["score"][i] - grp.mean()
            if name == "grpo":
                a /= grp.std(ddof=1) + 1e-4
            np.testing.assert_allclose(got[i, : d["lens"][i]], a, rtol=1e-5, atol=1e-6)


def test_group_estimators_ignore_the_value_head_and_auto_whitening():
    d = _data(seed=1)
    for name in ("rloo", "grpo", "dr_grpo"):
        a = _ours(d, name, 0.1)["advantages"]
        d2 = dict(d, values=d["values"] + 3.0)
        np.testing.assert_allclose(_ours(d2, name, 0.1)["advantages"], a, rtol=1e-6)
    assert R.whiten_mode(PPOConfig(advantage="grpo")) == "none"
    assert R.whiten_mode(PPOConfig(advantage="dr_grpo")) == "none"
    assert R.whiten_mode(PPOConfig(advantage="gae")) == "batch"
    assert R.whiten_mode(PPOConfig(advantage="rloo")) == "batch"
    assert R.whiten_mode(PPOConfig(advantage="grpo", whiten="sample")) == "sample"
    # auto whitening for gae is the batch whitening of the raw advantages
    cfg = PPOConfig(advantage="gae", gamma=0.97, lam=0.9)
    out = compute_advantages(
        d["logp"], d["ref"], d["values"], d["mask"], d["score"], 0.1, None, d["valid"], cfg=cfg
    )
    raw = _ours(d, "gae", 0.1)["advantages"]
    m = np.asarray(out["token_mask"])
    np.testing.assert_allclose(out["advantages"], K.whiten(raw, m, "batch"), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# aggregations


def _np_agg(name, x, m, max_len):
    x, m = np.asarray(x, np.float64), np.asarray(m, np.float64)
    rows = [i for i in range(x.shape[0]) if m[i].sum() > 0]
    if name == "token_mean":
        return (x * m).sum() / m.sum()
    if name == "seq_mean_token_mean":
        return np.mean([(x[i] * m[i]).sum() / m[i].sum() for i in rows])
    return (x * m).sum() / (len(rows) * max_len)


AGGS = ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]


@pytest.mark.parametrize("name", AGGS)
@pytest.mark.parametrize("max_len", [0, 20])
def test_aggregations_match_numpy_and_split_exactly(name, max_len):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, T)).astype(np.float32)
    m = (np.arange(T)[None] < rng.integers(0, T + 1, size=8)[:, None]).astype(np.float32)
    m[2] = 0.0  # an empty row is no sequence
    x_pad = np.where(m > 0, x, np.nan).astype(np.float32)  # garbage on padding must not leak
    cfg = PPOConfig(loss_agg=name, loss_agg_max_len=max_len)
    fn = R.LOSS_AGGREGATIONS.get(name).fn
    s, c = fn(jnp.asarray(x_pad), jnp.asarray(m), cfg)
    want = _np_agg(name, x, m, max_len or T)
    assert float(s) / float(c) == pytest.approx(want, rel=1e-5)
    # (sum, count) add up over any split of the rows: the minibatch/device property
    parts = [fn(jnp.asarray(x_pad[i : i + 3]), jnp.asarray(m[i : i + 3]), cfg) for i in (0, 3, 6)]
    total_s = sum(float(p[0]) for p in parts)
    total_c = sum(float(p[1]) for p in parts)
    assert total_c == pytest.approx(float(c))
    assert total_s / total_c == pytest.approx(want, rel=1e-5)


def test_aggregations_differ_where_the_papers_say():
    """Length bias: a long and a short sequence with the same per-token loss."""
    x = np.ones((2, 4), np.float32)
    m = np.array([[1, 1, 1, 1], [1, 0, 0, 0]], np.float32)
    x[1, 0] = 5.0
    cfg = PPOConfig(loss_agg_max_len=4)
    vals = {n: R.LOSS_AGGREGATIONS.get(n).fn(x, m, cfg) for n in AGGS}
    vals = {n: float(s) / float(c) for n, (s, c) in vals.items()}
    assert vals["token_mean"] == pytest.approx(9 / 5)  # the short sample's token weighs 1/5
    assert vals["seq_mean_token_mean"] == pytest.approx((1 + 5) / 2)  # ... 1/2
    assert vals["seq_mean_token_sum_norm"] == pytest.approx(9 / 8)  # ... 1/8


# ---------------------------------------------------------------------------------------------
# clipping and the KL term


def test_asymmetric_and_dual_clip_match_a_loop():
    rng = np.random.default_rng(11)
    new = (rng.normal(size=(6, 5)) * 0.8).astype(np.float32)
    old = (rng.normal(size=(6, 5)) * 0.8).astype(np.float32)
    adv = rng.normal(size=(6, 5)).astype(np.float32)
    m = (rng.uniform(size=(6, 5)) > 0.2).astype(np.float32)
    lo, hi, c = 0.2, 0.28, 3.0
    per, ind = K.clipped_surrogate(new, old, adv, m, lo, hi, c)
    per, ind = np.asarray(per), {k: np.asarray(v) for k, v in ind.items()}
    n_dual = n_clip = 0
    for i in range(6):
        for j in range(5):
            if not m[i, j]:
                assert per[i, j] == 0
                continue
            r, a = math.exp(new[i, j] - old[i, j]), float(adv[i, j])
            loss = max(-a * r, -a * min(max(r, 1 - lo), 1 + hi))
            n_clip += -a * min(max(r, 1 - lo), 1 + hi) > -a * r
            if a < 0 and loss > -c * a:
                loss = -c * a
                n_dual += 1
            assert per[i, j] == pytest.approx(loss, rel=1e-5, abs=1e-6)
    assert n_dual > 0 and n_clip > 0  # the data exercises both bounds
    assert ind["dual_clip_frac"].sum() == n_dual
    assert ind["clip_frac"].sum() == n_clip
    # symmetric = clip_high defaulting to clip_low; dual_clip 0 = off
    sym, _ = K.clipped_surrogate(new, old, adv, m, 0.2)
    same, _ = K.clipped_surrogate(new, old, adv, m, 0.2, 0.2, 0.0)
    np.testing.assert_array_equal(np.asarray(sym), np.asarray(same))


def test_k3_kl_matches_numpy():
    rng = np.random.default_rng(12)
    lp = rng.normal(size=(3, 4)).astype(np.float32)
    ref = rng.normal(size=(3, 4)).astype(np.float32)
    m = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], np.float32)
    want = (np.exp(ref - lp) - (ref - lp) - 1) * m
    np.testing.assert_allclose(K.k3_kl(lp, np.where(m > 0, ref, np.inf), m), want, rtol=1e-5)
    assert np.all(np.asarray(K.k3_kl(lp, ref, m)) >= 0)


V = 16


def _np_log_softmax(x):
    x = x.astype(np.float64)
    mx = x.max(-1, keepdims=True)
    return x - mx - np.log(np.exp(x - mx).sum(-1, keepdims=True))


@pytest.mark.parametrize("agg", AGGS)
def test_loss_with_kl_in_loss_and_clipping_matches_numpy(agg):
    params = init_toy_params(jax.random.PRNGKey(0), vocab=V)
    batch = random_ppo_batch(2, 8, 5, 6, V)
    cfg = PPOConfig(
        vf_coef=0.5,
        entropy_coef=0.01,
        loss_agg=agg,
        loss_agg_max_len=9,
        clip_low=0.1,
        clip_high=0.3,
        dual_clip=2.0,
    )
    beta = 0.04
    loss, _, sums = build_loss_and_grads(toy_apply, cfg, kl_coef=beta)(
        params, batch, jax.random.PRNGKey(1)
    )
    dec_in = np.concatenate([np.zeros((8, 1), np.int32), batch.tokens[:, :-1]], axis=1)
    logits, values = toy_forward(params, batch.prompt_ids, batch.prompt_mask, dec_in)
    logp_all = _np_log_softmax(np.asarray(logits))
    values = np.asarray(values, np.float64)
    m = batch.token_mask.astype(np.float64)
    pol = np.zeros((8, 6))
    vf = ent = 0.0
    for i in range(8):
        for t in range(6):
            if not m[i, t]:
                continue
            lp = logp_all[i, t, batch.tokens[i, t]]
            r = math.exp(lp - batch.old_logprobs[i, t])
            a = float(batch.advantages[i, t])
            pg = max(-a * r, -a * min(max(r, 0.9), 1.3))
            if a < 0:
                pg = min(pg, -2.0 * a)
            d = batch.ref_logprobs[i, t] - lp
            pol[i, t] = pg + beta * (math.exp(d) - d - 1)
            vo, ret, v = batch.old_values[i, t], batch.returns[i, t], values[i, t]
            vc = vo + min(max(v - vo, -0.2), 0.2)
            vf += 0.5 * max((v - ret) ** 2, (vc - ret) ** 2)
            ent += -np.sum(np.exp(logp_all[i, t]) * logp_all[i, t])
    want = _np_agg(agg, pol, m, 9) + (0.5 * vf - 0.01 * ent) / m.sum()
    assert float(loss) == pytest.approx(want, rel=1e-5)
    assert float(sums["kl_loss"]) > 0


@pytest.mark.parametrize("agg", AGGS)
def test_grad_accumulation_is_exact_for_every_aggregation(agg):
    params = init_toy_params(jax.random.PRNGKey(0), vocab=V)
    batch = random_ppo_batch(4, 8, 5, 6, V)
    cfg = PPOConfig(vf_coef=0.5, entropy_coef=0.01, loss_agg=agg, dual_clip=3.0)
    key = jax.random.PRNGKey(1)
    l1, g1, s1 = build_loss_and_grads(toy_apply, cfg, kl_coef=0.1)(params, batch, key)
    cfg4 = dataclasses.replace(cfg, grad_accum_steps=4)
    l4, g4, s4 = build_loss_and_grads(toy_apply, cfg4, kl_coef=0.1)(params, batch, key)
    assert float(l4) == pytest.approx(float(l1), rel=1e-5)
    assert float(s4["agg_count"]) == float(s1["agg_count"])
    assert_close_to_scale(g4, g1, rtol=1e-5)


def test_token_mean_without_kl_is_the_old_loss():
    """The default aggregation and no KL term reproduce the pre-registry loss exactly."""
    params = init_toy_params(jax.random.PRNGKey(0), vocab=V)
    batch = random_ppo_batch(0, 8, 5, 6, V)
    cfg = PPOConfig(vf_coef=0.5, entropy_coef=0.01)
    loss, _, sums = build_loss_and_grads(toy_apply, cfg)(params, batch, jax.random.PRNGKey(1))
    want = (
        float(sums["policy_loss"]) + 0.5 * float(sums["value_loss"]) - 0.01 * float(sums["entropy"])
    ) / float(sums["count"])
    assert float(loss) == pytest.approx(want, rel=1e-6)
    assert "kl_loss" not in sums


# ---------------------------------------------------------------------------------------------
# dynamic sampling, KL placement, registry and config


def test_dynamic_sampling_masks_groups_without_signal():
    d = _data(seed=5)
    d["valid"][:] = 1.0
    d["score"][:] = np.array([1, 1, 1, 1, -1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5], np.float32)
    d["valid"][1] = 0.0  # group 0's valid samples: all 1.0 -> dropped despite the invalid one
    d["score"][1] = -1.0
    out = _ours(d, "grpo", 0.0, dynamic_sampling=True)
    m = np.asarray(out["token_mask"])
    assert float(out["groups_dropped"]) == 2
    assert np.all(m[0:4] == 0) and np.all(m[8:12] == 0)
    np.testing.assert_array_equal(m[4:8], d["mask"][4:8])
    plain = _ours(d, "grpo", 0.0)
    np.testing.assert_allclose(out["advantages"][4:8], plain["advantages"][4:8], rtol=1e-6)
    assert float(plain["groups_dropped"]) == 0
    # the score statistic still counts every valid sample
    assert float(out["mean_score"]) == pytest.approx(float(plain["mean_score"]))
    keep, dropped = K.groups_with_spread(
        jnp.array([1.0, 2.0, 3.0, 3.0]), jnp.array([1.0, 1.0, 0.0, 0.0]), 2
    )
    np.testing.assert_array_equal(keep, [1, 1, 0, 0])  # an all-invalid group is not "dropped"
    assert float(dropped) == 0


def test_kl_placement_and_reference_use():
    assert kl_placement(None) == "reward"
    assert kl_placement(KLConfig()) == "reward"
    assert kl_placement(KLConfig(mode="loss")) == "loss"
    assert kl_placement(KLConfig(mode="none")) == "none"
    assert kl_placement(KLConfig(mode="loss", init_coef=0.0)) == "none"  # beta 0
    assert not uses_reference(KLConfig(init_coef=0.0))
    assert uses_reference(KLConfig(mode="loss"))


def test_unknown_names_are_one_line_errors_listing_the_registered():
    # The names are checked when a run starts (loading a config does not import the registry).
    bad_advantage = Config(ppo=PPOConfig(advantage="ppo2"))
    bad_agg = load_config(None, ["ppo.loss_agg=mean"])
    for check in (R.check_ppo_config, R.check_trainer_config):
        with pytest.raises(UserError, match=r"'ppo.advantage'.*'ppo2'.*gae, rloo, grpo, dr_grpo"):
            check(bad_advantage)
        with pytest.raises(UserError, match=r"'ppo.loss_agg'.*registered: token_mean, seq_mean"):
            check(bad_agg)
    for bad, key in [("ppo.dual_clip=0.5", "dual_clip"), ("ppo.clip_low=1.5", "clip_low")]:
        with pytest.raises(UserError, match=key):
            load_config(None, [bad])


def test_old_baseline_names_map_to_the_new_key():
    assert PPOConfig().advantage == "gae"
    assert PPOConfig(baseline="group").advantage == "rloo"
    assert PPOConfig(baseline="value").advantage == "gae"
    assert PPOConfig(baseline="group", advantage="rloo").advantage == "rloo"
    with pytest.raises(UserError, match="ppo.advantage"):
        PPOConfig(baseline="group", advantage="grpo")
    assert load_config("demo", []).ppo.advantage == "rloo"
    assert load_config("demo", ["ppo.advantage=grpo"]).ppo.advantage == "grpo"
    low, high = PPOConfig(clip_ratio=0.1, clip_high=0.28).clip_range
    assert (low, high) == (0.1, 0.28)


def test_group_estimators_need_several_samples():
    cfg = Config(ppo=PPOConfig(advantage="dr_grpo"), rollout=RolloutConfig(num_samples=1))
    with pytest.raises(UserError, match="rollout.num_samples >= 2"):
        R.check_trainer_config(cfg)
    cfg = Config(ppo=PPOConfig(dynamic_sampling=True), rollout=RolloutConfig(num_samples=1))
    with pytest.raises(UserError, match="ppo.dynamic_sampling"):
        R.check_trainer_config(cfg)
    R.check_trainer_config(Config(ppo=PPOConfig(advantage="gae")))


def test_a_new_estimator_is_one_function_and_a_registration():
    @R.ADVANTAGES.register("test_constant", group=False, whiten="none")
    def constant(rewards, values, mask, valid, cfg, group_size):
        return 2.0 * mask, jnp.zeros_like(rewards)

    try:
        d = _data()
        out = _ours(d, "test_constant", 0.1)
        np.testing.assert_array_equal(out["advantages"], 2.0 * np.asarray(out["token_mask"]))
        with pytest.raises(ValueError, match="already registered"):
            R.ADVANTAGES.register("test_constant")(constant)
    finally:
        del R.ADVANTAGES._entries["test_constant"]


@pytest.mark.parametrize("command", ["sft", "train", "eval", "demo"])
def test_the_cli_checks_the_names_before_the_command_runs(command, monkeypatch, capsys):
    import importlib

    from ppocoder_jax.cli import COMMANDS, main

    module = importlib.import_module(COMMANDS[command][0])

    def must_not_run(args):
        raise AssertionError("the command ran with an unknown ppo.loss_agg")

    monkeypatch.setattr(module, "run", must_not_run)
    assert main([command, "ppo.loss_agg=mean"]) == 2
    err = capsys.readouterr().err
    assert f"ppocoder {command}: error: config key 'ppo.loss_agg': unknown" in err
    assert "registered: token_mean" in err
