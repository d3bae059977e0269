"""The generic PPO step wired to the real Flax T5 policy (ppocoder_jax.model)."""

import dataclasses

import jax
import numpy as np
import pytest
from helpers.tiny_models import single_device_mesh, tiny_t5_config
from helpers.toy_model import random_ppo_batch
from helpers.train_states import create_train_state_from_params
from helpers.trees import assert_close_to_scale
from jax.sharding import AbstractMesh, PartitionSpec

from ppocoder_jax.config import KLConfig, OptimConfig, PPOConfig
from ppocoder_jax.model import init_params, param_logical_axes
from ppocoder_jax.parallel.mesh import MESH_AXES
from ppocoder_jax.parallel.rules import logical_to_partition_spec
from ppocoder_jax.ppo.policy_apply import make_apply_fn
from ppocoder_jax.ppo.state import make_optimizer
from ppocoder_jax.ppo.train_step import build_loss_and_grads, build_train_step, ppo_update

CFG = tiny_t5_config(vocab_size=32)


def test_t5_params_map_onto_the_mesh():
    """Every T5 parameter gets a valid layout on a (2,2,2) mesh, and the big ones are sharded."""
    abstract = init_params(CFG, jax.random.PRNGKey(0))
    axes = param_logical_axes(abstract)
    mesh = AbstractMesh((2, 2, 2), MESH_AXES)
    sharded = 0
    for (path, spec), leaf in zip(
        jax.tree_util.tree_leaves_with_path(axes, is_leaf=lambda x: isinstance(x, PartitionSpec)),
        jax.tree.leaves(abstract),
    ):
        p = logical_to_partition_spec(spec, mesh, shape=leaf.shape)
        assert len(p) == leaf.ndim, path
        for dim, ax in zip(leaf.shape, p):
            size = 1 if ax is None else np.prod([mesh.shape[a] for a in np.atleast_1d(ax)])
            assert dim % size == 0, (path, p)
        sharded += any(ax is not None for ax in p)
    assert sharded >= 8


@pytest.mark.slow
def test_t5_ppo_update_lowers_its_objective_and_accumulates_exactly():
    ppo = PPOConfig(vf_coef=0.5, ppo_epochs=2, num_minibatches=2)
    apply_fn = make_apply_fn(CFG, dropout=False)
    params = init_params(CFG, jax.random.PRNGKey(0))
    batch = random_ppo_batch(0, 8, 5, 6, CFG.vocab_size)
    grad_fn = build_loss_and_grads(apply_fn, ppo)
    key = jax.random.PRNGKey(1)
    before, g1, _ = grad_fn(params, batch, key)
    acc = dataclasses.replace(ppo, grad_accum_steps=2)
    before2, g2, _ = build_loss_and_grads(apply_fn, acc)(params, batch, key)
    assert float(before2) == pytest.approx(float(before), rel=1e-5)
    assert_close_to_scale(g2, g1, rtol=1e-5)
    tx = make_optimizer(OptimConfig(learning_rate=1e-3, weight_decay=0.0))
    mesh = single_device_mesh()
    state, _ = create_train_state_from_params(
        params, param_logical_axes, tx, KLConfig(), jax.random.PRNGKey(2), mesh
    )
    step = build_train_step(apply_fn, tx, ppo, donate=False)
    state, metrics = ppo_update(state, batch, step, ppo)
    after, _, _ = grad_fn(state.params, batch, key)
    assert float(after) < float(before)
    assert np.isfinite(metrics["loss"]) and metrics["num_steps"] == 4
