"""The multi-turn update with every row at its own prompt width (ppo/width_parts.py)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.tiny_models import single_device_mesh
from helpers.toy_model import init_toy_params, random_ppo_batch, toy_apply, toy_logical_axes
from helpers.trees import assert_close_to_scale

from ppocoder_jax.config import KLConfig, OptimConfig, PPOConfig
from ppocoder_jax.ppo.state import init_train_state, make_optimizer, train_state_shardings
from ppocoder_jax.ppo.train_step import build_train_step
from ppocoder_jax.ppo.width_parts import (
    PartSteps,
    part_size,
    plan_width_parts,
    row_denominators,
    update_by_width,
)
from ppocoder_jax.rollout.bucketed_sampler import bucket_length

V = 16
PPO = PPOConfig(vf_coef=0.5, entropy_coef=0.01, ppo_epochs=2, num_minibatches=2)
BUCKETS = (4, 8, 16)


def width_of(n):
    return bucket_length(n, BUCKETS, 16)


def _plan(lengths, learns, unit=1, key=0, cfg=PPO):
    return plan_width_parts(
        np.asarray(lengths), np.asarray(learns), jax.random.PRNGKey(key), width_of=width_of,
        epochs=cfg.ppo_epochs, num_minibatches=cfg.num_minibatches, unit=unit,
    )  # fmt: skip


def test_every_learning_row_once_per_epoch_at_its_width():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 17, size=40)
    learns = rng.random(40) > 0.3
    parts = _plan(lengths, learns, unit=2)
    assert [p.width for p in parts] == sorted({width_of(n) for n in lengths[learns]}, reverse=True)
    for e in range(PPO.ppo_epochs):
        seen = np.concatenate([p.rows[e].ravel() for p in parts])
        real = np.sort(seen[seen >= 0])
        np.testing.assert_array_equal(real, np.flatnonzero(learns))  # once each, no other
        for p in parts:
            rows = p.rows[e][p.rows[e] >= 0]
            assert all(width_of(n) == p.width for n in lengths[rows])
            assert p.rows.shape[-1] % 2 == 0  # the unit divides every share
    # the permutation is the key's: the same key, the same plan; another, another
    again = _plan(lengths, learns, unit=2)
    assert all(np.array_equal(a.rows, b.rows) for a, b in zip(parts, again, strict=True))
    other = _plan(lengths, learns, unit=2, key=1)
    assert any(not np.array_equal(a.rows, b.rows) for a, b in zip(parts, other, strict=True))


def test_the_minibatches_hold_the_same_rows_on_any_number_of_shards():
    """Fill depends on the shard count, which rows share a minibatch does not (so one device
    and eight give the same update)."""
    rng = np.random.default_rng(1)
    lengths, learns = rng.integers(1, 17, size=64), rng.random(64) > 0.2
    one, eight = _plan(lengths, learns, unit=1), _plan(lengths, learns, unit=8)
    for a, b in zip(one, eight, strict=True):
        assert b.rows.shape[-1] % 8 == 0
        for e in range(PPO.ppo_epochs):
            for m in range(PPO.num_minibatches):
                x, y = a.rows[e, m], b.rows[e, m]
                np.testing.assert_array_equal(x[x >= 0], y[y >= 0])


def test_nothing_learning_still_steps_every_minibatch():
    parts = _plan([3, 5, 9], [False, False, False], unit=2)
    assert len(parts) == 1 and parts[0].rows.shape == (2, 2, 2) and (parts[0].rows < 0).all()


@pytest.mark.parametrize(
    "need, unit, most, want",
    [(1, 1, 64, 1), (3, 1, 64, 4), (5, 1, 64, 8), (23, 1, 64, 24), (33, 1, 64, 40),
     (64, 1, 64, 64), (3, 8, 64, 8), (9, 8, 64, 16), (0, 2, 16, 2)],
)  # fmt: skip
def test_part_sizes(need, unit, most, want):
    assert part_size(need, unit, most) == want


def _state_and_steps(cfg=PPO, kl_cfg=None):
    params = init_toy_params(jax.random.PRNGKey(0), vocab=V)
    tx = make_optimizer(OptimConfig(learning_rate=3e-2, weight_decay=0.0))
    mesh = single_device_mesh()
    state = init_train_state(params, tx, KLConfig(), jax.random.PRNGKey(3))
    shardings = train_state_shardings(state, toy_logical_axes(params), mesh, tx)
    state = jax.device_put(state, shardings)
    parts = PartSteps(toy_apply, tx, cfg, mesh, shardings, pad_side="right", kl_cfg=kl_cfg)
    fused = build_train_step(toy_apply, tx, cfg, mesh, shardings, donate=False, kl_cfg=kl_cfg)
    return state, parts, fused


def _two_width_batch():
    """Rows of prompt length 1..16 padded to 16 on the right, a few rows without tokens."""
    batch = random_ppo_batch(0, 24, 16, 6, V)
    mask = np.asarray(batch.token_mask).copy()
    mask[[3, 7, 11]] = 0.0  # e.g. a later turn's rows that did not revise
    return jax.tree.map(jnp.asarray, batch._replace(token_mask=mask))


@pytest.mark.parametrize(
    "cfg",
    [PPO, dataclasses.replace(PPO, grad_accum_steps=2),
     dataclasses.replace(PPO, loss_agg="seq_mean_token_mean")],
    ids=["token_mean", "grad_accum", "seq_mean"],
)  # fmt: skip
def test_each_step_equals_one_padded_minibatch_of_the_same_rows(cfg):
    """The parts' summed gradient over the whole minibatch's denominators makes the same step
    as the fused train step on those rows at the full width."""
    batch = _two_width_batch()
    state, parts_steps, fused = _state_and_steps(cfg)
    start = jax.tree.map(jnp.copy, state)  # the parts' apply step donates the state
    state, metrics = update_by_width(state, batch, parts_steps, width_of, cfg)
    # replay: the same plan, each minibatch's real rows through the fused step
    lengths = np.asarray(batch.prompt_mask).sum(1)
    tokens, _ = row_denominators(batch.token_mask, cfg)
    plan = plan_width_parts(
        lengths, tokens > 0, start.rng, width_of=width_of, epochs=cfg.ppo_epochs,
        num_minibatches=cfg.num_minibatches, unit=cfg.grad_accum_steps,
    )  # fmt: skip
    assert len(plan) >= 2  # the batch has rows of several widths
    replay, losses = start, []
    for e in range(cfg.ppo_epochs):
        for m in range(cfg.num_minibatches):
            idx = np.concatenate([p.rows[e, m] for p in plan])
            idx = idx[idx >= 0]
            pad = -len(idx) % cfg.grad_accum_steps  # a row without tokens adds nothing
            idx = np.concatenate([idx, np.full(pad, 3)]).astype(np.int32)
            replay, sums = fused(replay, batch, jnp.asarray(idx))
            losses.append(float(sums["loss"]))
    assert int(state.step) == int(replay.step) == cfg.ppo_epochs * cfg.num_minibatches
    assert_close_to_scale(state.params, replay.params, rtol=1e-5)
    assert metrics["loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    np.testing.assert_array_equal(np.asarray(state.rng), np.asarray(replay.rng))


def test_kl_in_the_loss_and_left_padding():
    """kl.mode=loss reads the state's coefficient; a left-padded batch (decoder-only) keeps
    its last columns."""
    kl_cfg = KLConfig(mode="loss", kind="fixed", init_coef=0.2)
    batch = _two_width_batch()
    left = batch._replace(
        prompt_ids=jnp.asarray(_to_left(np.asarray(batch.prompt_ids), np.asarray(batch.prompt_mask))),
        prompt_mask=jnp.asarray(_to_left(np.asarray(batch.prompt_mask), np.asarray(batch.prompt_mask))),
    )  # fmt: skip
    state, right_steps, _ = _state_and_steps(kl_cfg=kl_cfg)
    a, ma = update_by_width(state, batch, right_steps, width_of, PPO)
    state2, _, _ = _state_and_steps(kl_cfg=kl_cfg)
    left_steps = PartSteps(toy_apply, right_steps.tx, PPO, right_steps.mesh,
                           right_steps.state_shardings, pad_side="left", kl_cfg=kl_cfg)  # fmt: skip
    b, mb = update_by_width(state2, left, left_steps, width_of, PPO)
    assert ma["kl_loss"] > 0
    assert_close_to_scale(a.params, b.params, rtol=1e-5)
    assert mb["kl_loss"] == pytest.approx(ma["kl_loss"], rel=1e-5)


def _to_left(x, mask):
    out = np.zeros_like(x)
    for i, row in enumerate(x):
        n = int(mask[i].sum())
        out[i, x.shape[1] - n :] = row[:n]
    return out
