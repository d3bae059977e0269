"""Run one PPO train step of the toy policy on several meshes; save loss/grads/params to npz.

Usage: XLA_FLAGS=--xla_force_host_platform_device_count=8 \
    python sharded_step_run.py OUT.npz [GRAD_ACCUM] [toy|t5|decoder|decoder_lora] [ppo|grpo|dr_grpo]
(the flag must be set before jax is imported, hence a separate process). Mesh "single" uses
one device; the others use all 8. tests/test_parallel_sharded_step.py compares them. The last
argument picks the loss: the default PPO one, or a GRPO-family aggregation with the k3 KL in the
loss, clip-higher and dual clip (ALGOS).
"""

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from tiny_models import tiny_decoder_config, tiny_t5_config  # noqa: E402
from toy_model import (  # noqa: E402
    init_toy_params,
    random_ppo_batch,
    toy_apply,
    toy_logical_axes,
)
from train_states import create_sharded_train_state, create_train_state_from_params  # noqa: E402

from ppocoder_jax.config import KLConfig, MeshConfig, OptimConfig, PPOConfig  # noqa: E402
from ppocoder_jax.parallel.mesh import make_mesh, shard_batch  # noqa: E402
from ppocoder_jax.ppo.state import make_optimizer  # noqa: E402
from ppocoder_jax.ppo.train_step import build_train_step  # noqa: E402

# name -> (PPOConfig overrides, KLConfig)
ALGOS = {
    "ppo": ({}, KLConfig()),
    "grpo": (
        dict(loss_agg="seq_mean_token_mean", clip_high=0.28, dual_clip=3.0),
        KLConfig(mode="loss", kind="fixed", init_coef=0.05),
    ),
    "dr_grpo": (
        dict(loss_agg="seq_mean_token_sum_norm", loss_agg_max_len=9),
        KLConfig(mode="loss", kind="fixed", init_coef=0.05, loss_importance_weight=True),
    ),
}

MESHES = {
    "single": (1, 1, 1),
    "8x1x1": (8, 1, 1),
    "2x4x1": (2, 4, 1),
    "2x2x2": (2, 2, 2),
}


def flat(prefix, tree, out):
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        out[prefix + jax.tree_util.keystr(path)] = np.asarray(jax.device_get(leaf))


def _t5_model(vocab):
    """A tiny random T5 policy (ppocoder_jax.model) with a random value head, dropout on."""
    import jax.numpy as jnp

    from ppocoder_jax.model import init_params, param_logical_axes
    from ppocoder_jax.ppo.policy_apply import make_apply_fn

    cfg = tiny_t5_config(vocab_size=vocab)

    def init(k):
        p = init_params(cfg, k)
        kv = np.random.default_rng(1)
        p["value_head"] = {
            "kernel": jnp.asarray(kv.normal(size=p["value_head"]["kernel"].shape) * 0.2, "float32"),
            "bias": jnp.full((1,), 0.5, jnp.float32),
        }
        return p

    return init, param_logical_axes, make_apply_fn(cfg, dropout=True)


def _decoder_model(vocab):
    """A tiny random Qwen2-architecture policy (GQA, q/k/v biases) with a random value head."""
    import jax.numpy as jnp

    from ppocoder_jax.model import decoder
    from ppocoder_jax.ppo.policy_apply import make_apply_fn

    cfg = tiny_decoder_config(vocab_size=vocab)

    def init(k):
        p = decoder.init_params(cfg, k)
        kv = np.random.default_rng(1)
        # biases start at 0; a trained checkpoint's are not (and an all-zero array has no
        # scale for the scale-relative comparison of Adam's first step)
        p["lm"] = jax.tree_util.tree_map_with_path(
            lambda path, x: (
                jnp.asarray(kv.normal(size=x.shape) * 0.02, "float32")
                if getattr(path[-1], "key", "") == "bias"
                else x
            ),
            p["lm"],
        )
        p["value_head"] = {
            "kernel": jnp.asarray(kv.normal(size=p["value_head"]["kernel"].shape) * 0.2, "float32"),
            "bias": jnp.full((1,), 0.5, jnp.float32),
        }
        return p

    return init, decoder.param_logical_axes, make_apply_fn(cfg, dropout=True)


def _decoder_lora_model(vocab):
    """The decoder above with LoRA (rank 4, every target): what trains is {lora, value_head};
    the base is frozen and sharded as the decoder's params are. Adapters drawn with lora_b
    non-zero, so both factors get gradients."""
    import jax.numpy as jnp

    from ppocoder_jax.config import LoraConfig
    from ppocoder_jax.model.families import as_policy
    from ppocoder_jax.model.lora import lora_start, with_lora
    from ppocoder_jax.ppo.policy_apply import make_apply_fn

    cfg = tiny_decoder_config(vocab_size=vocab)
    lora_cfg = LoraConfig(rank=4, alpha=8.0)
    policy = with_lora(as_policy(cfg), lora_cfg)
    init_full, _, _ = _decoder_model(vocab)

    def init(k):
        frozen, trainable = lora_start(policy, jax.device_get(init_full(k)), lora_cfg, k)
        kv = np.random.default_rng(2)
        trainable["lora"] = jax.tree.map(
            lambda x: jnp.asarray(kv.normal(size=x.shape) * 0.05, "float32"), trainable["lora"]
        )
        return frozen, trainable

    return init, policy.param_logical_axes, make_apply_fn(policy, dropout=True)


def main(out_path, grad_accum, model="toy", algo="ppo"):
    assert jax.device_count() == 8, jax.devices()
    vocab, batch_size = 32, 16
    if model == "t5":
        init_fn, axes_fn, apply_fn = _t5_model(vocab)
    elif model == "decoder":
        init_fn, axes_fn, apply_fn = _decoder_model(vocab)
    elif model == "decoder_lora":
        init_lora, axes_fn, apply_fn = _decoder_lora_model(vocab)
        frozen_host, trainable_host = init_lora(jax.random.PRNGKey(0))
    else:
        init_fn, axes_fn, apply_fn = (
            lambda k: init_toy_params(k, vocab=vocab, d_model=8, d_ff=16),
            toy_logical_axes,
            toy_apply,
        )
    more, kl_cfg = ALGOS[algo]
    ppo = PPOConfig(vf_coef=0.5, entropy_coef=0.01, grad_accum_steps=grad_accum, **more)
    # lr 1e-3 (100x a real PPO lr): Adam's first step is lr * g / (|g| + eps) per element, which
    # turns the ~1e-7 (of scale) summation-order noise of near-zero gradient elements into
    # O(lr * 1e-3) parameter noise; with lr 1e-2 that reaches ~1e-5 of the weights' scale.
    # For the decoder, Adam's eps is 1e-5: the step lr * g / (|g| + eps) has slope lr / eps at
    # g = 0, so with eps 1e-8 a gradient element within summation noise of 0 (the decoder has
    # such elements; the gradients themselves are compared, and agree) moves its parameter by
    # up to 1e-3 of lr between meshes. With eps 1e-5 the updated parameters are a
    # well-conditioned function of the gradients and can be compared at 1e-5 of their scale.
    eps = 1e-5 if model == "decoder" else 1e-8
    tx = make_optimizer(OptimConfig(learning_rate=1e-3, max_grad_norm=1.0, eps=eps))
    batch_np = random_ppo_batch(0, batch_size, 5, 7, vocab)
    if model.startswith("decoder"):  # decoder-only prompts are left-padded
        shift = batch_np.prompt_mask.shape[1] - batch_np.prompt_mask.sum(axis=1)
        roll = [np.roll(r, k) for r, k in zip(batch_np.prompt_ids, shift)]
        batch_np = batch_np._replace(
            prompt_ids=np.stack(roll),
            prompt_mask=np.stack([np.roll(r, k) for r, k in zip(batch_np.prompt_mask, shift)]),
        )
    results = {}
    for name, shape in MESHES.items():
        devices = jax.devices()[:1] if name == "single" else jax.devices()
        mesh = make_mesh(MeshConfig(data=shape[0], fsdp=shape[1], tensor=shape[2]), devices)
        frozen = frozen_shardings = None
        if model == "decoder_lora":  # the frozen base placed as the learner places it
            from ppocoder_jax.parallel.rules import logical_to_shardings

            frozen_shardings = logical_to_shardings(axes_fn(frozen_host), mesh, shapes=frozen_host)
            frozen = jax.device_put(frozen_host, frozen_shardings)
            state, shardings = create_train_state_from_params(
                trainable_host, axes_fn, tx, kl_cfg, jax.random.PRNGKey(1), mesh
            )
        elif model in ("t5", "decoder"):  # their inits draw on the host: concrete params
            state, shardings = create_train_state_from_params(
                init_fn(jax.random.PRNGKey(0)), axes_fn, tx, kl_cfg, jax.random.PRNGKey(1), mesh
            )
        else:
            state, shardings = create_sharded_train_state(
                init_fn, axes_fn, tx, kl_cfg, jax.random.PRNGKey(0), mesh
            )
        batch = shard_batch(batch_np, mesh)
        out = {}
        # the params really are sharded as the rules say
        if model == "toy":
            out["spec_embed"] = np.array(str(state.params["body"]["embed"].sharding.spec))
            out["spec_wi"] = np.array(str(state.params["body"]["wi"].sharding.spec))
            mu = state.opt_state[1][0].mu
            out["spec_mu_wi"] = np.array(str(mu["body"]["wi"].sharding.spec))
        out["specs"] = np.array(
            sorted({str(x.sharding.spec) for x in jax.tree.leaves(state.params)})
        )
        out["spec_tokens"] = np.array(str(batch.tokens.sharding.spec))
        if frozen is not None:
            out["specs_base"] = np.array(
                sorted({str(x.sharding.spec) for x in jax.tree.leaves(frozen)})
            )
        # one step on the whole batch (rows reversed, so the gather is exercised); it also
        # returns its gradients
        step = build_train_step(
            apply_fn, tx, ppo, mesh, shardings, return_grads=True, kl_cfg=kl_cfg,
            frozen_shardings=frozen_shardings,
        )  # fmt: skip
        idx = np.arange(batch_size, dtype=np.int32)[::-1].copy()
        extra = () if frozen is None else (frozen,)
        new_state, metrics, grads = step(state, batch, idx, *extra)
        out["loss"] = np.asarray(metrics["loss"])
        flat("grad", grads, out)
        if model == "toy":
            out["spec_new_wi"] = np.array(str(new_state.params["body"]["wi"].sharding.spec))
            out["spec_grad_wi"] = np.array(str(grads["body"]["wi"].sharding.spec))
        flat("param", new_state.params, out)
        flat("opt", new_state.opt_state, out)
        flat("metric", metrics, out)
        for k, v in out.items():
            results[f"{name}/{k}"] = v
    np.savez(out_path, **results)


if __name__ == "__main__":
    main(
        sys.argv[1],
        int(sys.argv[2]) if len(sys.argv) > 2 else 1,
        sys.argv[3] if len(sys.argv) > 3 else "toy",
        sys.argv[4] if len(sys.argv) > 4 else "ppo",
    )
