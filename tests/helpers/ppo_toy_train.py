"""A small but complete PPO training loop on the toy policy, with Orbax checkpoints and resume.

Used by tests/test_checkpoint_resume.py (killed with SIGKILL and resumed) and as a worked example
of wiring the generic pieces together:

    rollout (prompts = f(seed, data position), tokens sampled with the state's RNG)
    -> reference log-probs + exact KL -> scores -> compute_advantages -> ppo_update
    -> KL controller update -> checkpoint every --save-every iterations.

Usage: python ppo_toy_train.py RUN_DIR --iters N --save-every K --out FINAL.npz [--delay S]
Prints "resumed <step>" / "saved <step>" / "done" lines (flushed) for the test to follow.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from toy_model import (  # noqa: E402
    init_toy_params,
    shift_right,
    toy_apply,
    toy_forward,
    toy_logical_axes,
)

from ppocoder_jax.checkpoint.manager import (  # noqa: E402
    CheckpointManager,
    abstract_with_shardings,
)
from ppocoder_jax.config import Config, load_config, to_dict  # noqa: E402
from ppocoder_jax.parallel.mesh import make_mesh, shard_batch  # noqa: E402
from ppocoder_jax.ppo import kernels as K  # noqa: E402
from ppocoder_jax.ppo.state import (  # noqa: E402
    create_sharded_train_state,
    frozen_copy,
    init_train_state,
    make_optimizer,
    train_state_shardings,
)
from ppocoder_jax.ppo.train_step import (  # noqa: E402
    PPOBatch,
    build_train_step,
    compute_advantages,
    ppo_update,
    update_state_kl,
)

VOCAB, B, S, T = 16, 8, 5, 6


def prompts_at(seed: int, position: int):
    """The data stream: batch ``position`` is a pure function of (seed, position)."""
    rng = np.random.default_rng([seed, position])
    ids = rng.integers(3, VOCAB, size=(B, S)).astype(np.int32)
    lens = rng.integers(1, S + 1, size=B)
    mask = (np.arange(S)[None] < lens[:, None]).astype(np.int32)
    return ids * mask, mask


@jax.jit
def rollout(params, ref_params, prompt_ids, prompt_mask, key):
    """Sample T tokens from the policy (teacher-forced on its own samples, one pass per step)."""
    tokens = jnp.zeros((B, T), jnp.int32)

    def body(t, tok):
        logits, _ = toy_forward(params, prompt_ids, prompt_mask, shift_right(tok))
        new = jax.random.categorical(jax.random.fold_in(key, t), logits[:, t])
        return tok.at[:, t].set(new.astype(jnp.int32))

    tokens = jax.lax.fori_loop(0, T, body, tokens)
    # mask: up to and including the first </s> (id 2)
    is_eos = tokens == 2
    after_eos = jnp.cumsum(is_eos, axis=1) - is_eos > 0
    token_mask = (~after_eos).astype(jnp.float32)
    tokens = tokens * token_mask.astype(jnp.int32)
    dec_in = shift_right(tokens)
    logits, values = toy_forward(params, prompt_ids, prompt_mask, dec_in)
    ref_logits, _ = toy_forward(ref_params, prompt_ids, prompt_mask, dec_in)
    logprobs = K.token_logprobs(logits, tokens)
    ref_logprobs = K.token_logprobs(ref_logits, tokens)
    exact_kl = K.exact_kl_from_logits(logits, ref_logits)
    # the "reward": fraction of generated tokens equal to 7, centred
    score = jnp.sum((tokens == 7) * token_mask, axis=1) / jnp.maximum(token_mask.sum(1), 1) - 0.2
    return tokens, token_mask, logprobs, ref_logprobs, exact_kl, values, score


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--iters", type=int, default=12)
    p.add_argument("--save-every", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--delay", type=float, default=0.0, help="sleep per iteration (seconds)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    cfg: Config = load_config(
        None,
        [
            f"train.seed={args.seed}",
            "ppo.ppo_epochs=2",
            "ppo.num_minibatches=2",
            "ppo.grad_accum_steps=2",
            "ppo.vf_coef=0.5",
            "ppo.entropy_coef=0.01",
            "optim.learning_rate=0.01",
            "optim.schedule=cosine",
            "optim.warmup_steps=3",
            "optim.max_grad_norm=1.0",
            "kl.init_coef=0.2",
            "kl.horizon=50",
            "kl.target=0.5",
        ],
    )
    config_yaml = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    mesh = make_mesh(cfg.mesh)
    total_updates = args.iters * cfg.ppo.ppo_epochs * cfg.ppo.num_minibatches
    tx = make_optimizer(cfg.optim, total_updates)

    def init_params(k):
        return init_toy_params(k, vocab=VOCAB)

    root = jax.random.PRNGKey(cfg.train.seed)
    state, shardings = create_sharded_train_state(
        init_params, toy_logical_axes, tx, cfg.kl, root, mesh
    )
    # the frozen reference = the starting parameters (a deterministic function of the seed)
    ref_params = frozen_copy(state.params)

    mgr = CheckpointManager(
        os.path.join(args.run_dir, "checkpoints"), max_to_keep=cfg.train.keep_checkpoints
    )
    position = 0
    it = 0
    if mgr.latest_step() is not None:
        abstract = jax.eval_shape(
            lambda: init_train_state(init_params(root), tx, cfg.kl, jax.random.PRNGKey(0))
        )
        abstract = abstract_with_shardings(
            abstract, train_state_shardings(abstract, toy_logical_axes(None), mesh, tx)
        )
        restored = mgr.restore(abstract)
        assert restored.config_yaml == config_yaml, "config changed between runs"
        state = restored.state
        position = restored.data_state["position"]
        it = restored.step
        print(f"resumed {it} position {position}", flush=True)

    step_fn = build_train_step(toy_apply, tx, cfg.ppo, mesh, shardings)
    while it < args.iters:
        prompt_ids, prompt_mask = prompts_at(cfg.train.seed, position)
        rng, sample_key = jax.random.split(state.rng)
        state = state.replace(rng=rng)
        tokens, mask, logprobs, ref_lp, exact_kl, values, score = rollout(
            state.params, ref_params, prompt_ids, prompt_mask, sample_key
        )
        adv = compute_advantages(
            logprobs, ref_lp, values, mask, score, state.kl.coef, exact_kl, cfg=cfg.ppo
        )
        batch = shard_batch(
            PPOBatch(
                prompt_ids=prompt_ids,
                prompt_mask=prompt_mask,
                tokens=tokens,
                token_mask=adv["token_mask"],
                old_logprobs=logprobs,
                ref_logprobs=ref_lp,
                old_values=values,
                advantages=adv["advantages"],
                returns=adv["returns"],
            ),
            mesh,
        )
        state, metrics = ppo_update(state, batch, step_fn, cfg.ppo)
        state = update_state_kl(state, adv["mean_kl"], B, cfg.kl)
        position += 1
        it += 1
        if it % args.save_every == 0 or it == args.iters:
            mgr.save(
                it,
                state,
                data_state={"position": position},
                config_yaml=config_yaml,
                extra={"loss": metrics["loss"]},
            )
            mgr.wait_until_finished()
            print(f"saved {it}", flush=True)
        if args.delay:
            time.sleep(args.delay)
    mgr.close()
    flat = {
        jax.tree_util.keystr(k): np.asarray(v)
        for k, v in jax.tree_util.tree_leaves_with_path(jax.device_get(state))
    }
    np.savez(args.out, **flat)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
