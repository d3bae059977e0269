"""`PPOLearner` on a hand-built `Experience` (no sampler, no reward): the one sharded state
constructor, what an update changes, that a masked sample is never learned from, the value
warm-up and the value-bias initialisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppocoder_jax.config import load_config
from ppocoder_jax.model.families import as_policy
from ppocoder_jax.parallel.mesh import make_mesh
from ppocoder_jax.pipeline.policy_loader import load_policy
from ppocoder_jax.ppo.experience import Experience, reward_means
from ppocoder_jax.ppo.learner import PPOLearner
from ppocoder_jax.ppo.policy_apply import rollout_statistics

B, S, T = 8, 12, 10


@pytest.fixture(scope="module")
def setup():
    cfg = load_config(
        "tiny",
        ["train.run_dir=unused", "ppo.ppo_epochs=2", "ppo.num_minibatches=2",
         "rollout.num_samples=2", "optim.weight_decay=0.0", "ppo.value_warmup_iters=1",
         "ppo.advantage=rloo"],
    )  # fmt: skip
    params, model_cfg, _ = load_policy(cfg)
    policy = as_policy(model_cfg)
    return cfg, jax.device_get(params), policy


def experience(policy, params, seed=0, masked_row=None, **change) -> Experience:
    """A batch as the collector would hand it over: random prompts and tokens, the policy's
    own statistics (so PPO ratios start at 1), scores, one masked sample if asked."""
    rng = np.random.default_rng(seed)
    prompt_ids = rng.integers(3, 100, (B, S)).astype(np.int32)
    prompt_mask = np.ones((B, S), np.int32)
    tokens = rng.integers(3, 100, (B, T)).astype(np.int32)
    lengths = rng.integers(3, T + 1, B)
    token_mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int32)
    rows = tuple(jnp.asarray(x) for x in (prompt_ids, prompt_mask, tokens, token_mask))
    logprobs, values, ref, _ = rollout_statistics(
        params, params, *rows, policy=policy, dtype=jnp.float32, exact_kl=False
    )
    scores = rng.normal(size=B).astype(np.float32)
    valid = np.ones(B, np.float32)
    if masked_row is not None:
        valid[masked_row] = 0.0
    rewards = {"compile": np.ones(B, np.float32), "tests": scores}
    rewards = {k: jnp.asarray(v) for k, v in rewards.items()}
    e = Experience(
        *rows, logprobs, values, ref, None, jnp.asarray(scores), jnp.asarray(valid), rewards
    )
    return e.replace(**change)


def test_one_update_from_a_hand_built_experience(setup):
    cfg, params, policy = setup
    learner = PPOLearner(cfg, policy, make_mesh(cfg.mesh), jnp.float32)
    state = learner.init_state(params, jax.random.PRNGKey(0))
    assert int(state.step) == 0
    e = experience(policy, params)
    before = jax.device_get(state.params)
    state, m = learner.learn(state, e, iteration=1)  # past the warm-up: policy + value
    assert int(state.step) == cfg.ppo.ppo_epochs * cfg.ppo.num_minibatches == m["num_steps"]
    assert m["value_warmup"] == 0 and m["skipped_updates"] == 0
    for key in ("score", "kl", "loss", "policy_loss", "value_loss", "grad_norm", "entropy"):
        assert np.isfinite(m[key]), key
    assert m["score"] == pytest.approx(float(np.mean(np.asarray(e.scores))), rel=1e-5)
    moved = jax.tree.map(
        lambda a, b: not np.array_equal(a, b), jax.device_get(state.params), before
    )
    assert all(jax.tree.leaves(moved))  # every parameter took the update


def test_a_masked_sample_is_never_learned_from(setup):
    """Two batches that differ only in a masked sample's tokens, statistics and score give the
    same parameters after the update."""
    cfg, params, policy = setup
    learner = PPOLearner(cfg, policy, make_mesh(cfg.mesh), jnp.float32)
    a = experience(policy, params, masked_row=3)
    other = experience(policy, params, seed=1)

    def swap(x, y):
        return x.at[3].set(y[3]) if x.ndim else x

    b = a.replace(
        tokens=swap(a.tokens, other.tokens),
        logprobs=swap(a.logprobs, other.logprobs),
        values=swap(a.values, other.values),
        ref_logprobs=swap(a.ref_logprobs, other.ref_logprobs),
        scores=a.scores.at[3].set(1e6),
    )
    out = []
    for e in (a, b):
        state = learner.init_state(params, jax.random.PRNGKey(0))
        state, _ = learner.learn(state, e, iteration=1)
        out.append(jax.device_get(state.params))
    jax.tree.map(np.testing.assert_array_equal, out[0], out[1])


def test_value_warmup_moves_the_value_head_only(setup):
    cfg, params, policy = setup
    learner = PPOLearner(cfg, policy, make_mesh(cfg.mesh), jnp.float32)
    state = learner.init_state(params, jax.random.PRNGKey(0))
    state, m = learner.learn(state, experience(policy, params), iteration=0)
    assert m["value_warmup"] == 1
    after = jax.device_get(state.params)
    for name, sub in after.items():
        same = jax.tree.leaves(jax.tree.map(np.array_equal, sub, params[name]))
        assert (not all(same)) if name == "value_head" else all(same), name


def test_value_bias_init_and_reward_means(setup):
    cfg, params, policy = setup
    learner = PPOLearner(cfg, policy, make_mesh(cfg.mesh), jnp.float32)
    state = learner.init_state(params, jax.random.PRNGKey(0))
    e = experience(policy, params, masked_row=0)
    means = reward_means(e)
    valid = np.asarray(e.valid) > 0
    assert means["total"] == pytest.approx(float(np.asarray(e.scores)[valid].mean()), rel=1e-6)
    assert means["compile"] == 1.0 and means["valid"] == 1.0  # means over valid samples
    assert learner.resets_value_bias(0) == (cfg.ppo.value_bias_init == "mean_score")
    state = learner.init_value_bias(state, means["total"])
    bias = np.asarray(jax.device_get(state.params["value_head"]["bias"]))
    np.testing.assert_array_equal(bias, np.full(bias.shape, means["total"], bias.dtype))
