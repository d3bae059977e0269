"""LoRA vs full fine-tuning, for scripts/bench_ppo_step.py (`--memory-table`, `--lora-speed`).

memory_rows(micro, s, t): at the Qwen2.5-Coder-0.5B / 1.5B shapes (jax.eval_shape: no weights),
    the train state's bytes (params + optimizer + reference; LoRA: adapters + value head, their
    AdamW moments, the frozen base, no reference copy) and the compiled train step's temporary
    memory (`jax.jit(step).lower(...).compile().memory_analysis()`, CPU) for one micro-batch.
speed_rows(iters, rank): one PPO iteration of the decoder demo (configs/demo_decoder.yaml:
    sample 16 x 4 rollouts, statistics, the update) full vs LoRA, interleaved, on this machine;
    rewards are constant stand-ins (the reward pool's time is the same on both sides).
sampler_rows(...): the sampler's two LoRA options timed alone: merge the adapters into the
    kernels once per sampling call, or apply them in every decode step's matmuls.
"""

from __future__ import annotations

import math
import os
import statistics
import time

GIB = 2.0**30

# name: Hugging Face config.json of the shape (no weights are read or made)
QWEN_SHAPES = {
    "qwen2.5-coder-0.5b": dict(
        hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
        intermediate_size=4864,
    ),
    "qwen2.5-coder-1.5b": dict(
        hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
        intermediate_size=8960,
    ),
}  # fmt: skip


def _qwen_cfg(name):
    from ppocoder_jax.model.decoder_config import DecoderConfig

    return DecoderConfig.from_hf_dict(
        {
            "model_type": "qwen2",
            "vocab_size": 151936,
            "tie_word_embeddings": True,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "max_position_embeddings": 32768,
            "eos_token_id": 151643,
            **QWEN_SHAPES[name],
        }
    )


def _bytes(tree) -> int:
    import jax

    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def _one(name: str, rank: int, micro: int, s: int, t: int, compile_step: bool) -> dict:
    import jax
    import jax.numpy as jnp

    from ppocoder_jax.config import KLConfig, LoraConfig, OptimConfig, PPOConfig
    from ppocoder_jax.model import decoder
    from ppocoder_jax.model.families import as_policy
    from ppocoder_jax.model.lora import adapter_shapes, with_lora
    from ppocoder_jax.ppo.policy_apply import make_apply_fn
    from ppocoder_jax.ppo.state import init_train_state, make_optimizer
    from ppocoder_jax.ppo.train_step import PPOBatch, build_train_step

    cfg = _qwen_cfg(name)
    shapes = decoder.param_shapes(cfg)
    policy = with_lora(as_policy(cfg), LoraConfig(rank=rank, alpha=2.0 * max(rank, 1)))
    tx = make_optimizer(OptimConfig())
    if rank:
        frozen = {"base": shapes["lm"]}
        trainable = {"lora": adapter_shapes(shapes["lm"], policy.spec)}
        trainable["value_head"] = shapes["value_head"]
        reference = {"value_head": shapes["value_head"]}  # the base is shared, the head copied
    else:
        frozen, trainable, reference = None, shapes, shapes  # the reference: a full copy
    state = jax.eval_shape(
        lambda p: init_train_state(p, tx, KLConfig(), jax.random.PRNGKey(0)), trainable
    )
    row = {
        "params": _bytes(state.params) + (_bytes(frozen) if frozen else 0),
        "trainable": _bytes(state.params),
        "optimizer": _bytes(state.opt_state),
        "reference": _bytes(reference),
    }
    row["state"] = row["params"] + row["optimizer"] + row["reference"]
    if compile_step:
        step = build_train_step(make_apply_fn(policy, jnp.float32), tx, PPOConfig(), donate=True)

        def arr(shape, dtype=jnp.float32):
            return jax.ShapeDtypeStruct(shape, dtype)

        batch = PPOBatch(
            arr((micro, s), jnp.int32), arr((micro, s), jnp.int32), arr((micro, t), jnp.int32),
            arr((micro, t), jnp.int32), *[arr((micro, t)) for _ in range(5)],
        )  # fmt: skip
        args = (state, batch, arr((micro,), jnp.int32)) + ((frozen,) if frozen else ())
        mem = step.lower(*args).compile().memory_analysis()
        row["step_temp"] = int(mem.temp_size_in_bytes)
    return row


def memory_rows(micro: int, s: int, t: int, rank: int = 16, compile_step: bool = True) -> str:
    lines = [
        f"LoRA (rank {rank}, every attention and MLP projection) vs full, fp32 params and AdamW; "
        f"train step temp: one micro-batch of {micro} rows, prompt {s}, response {t}, no remat",
        f"{'model':<20} {'mode':<10} {'params':>9} {'optimizer':>9} {'reference':>9} "
        f"{'state':>9} {'vs full':>7} {'step temp':>9}",
    ]
    for name in QWEN_SHAPES:
        full = _one(name, 0, micro, s, t, compile_step)
        for mode, r in (("full", 0), (f"lora r{rank}", rank)):
            row = full if r == 0 else _one(name, r, micro, s, t, compile_step)
            temp = f"{row['step_temp'] / GIB:8.2f}G" if "step_temp" in row else "-"
            lines.append(
                f"{name:<20} {mode:<10} {row['params'] / GIB:8.2f}G "
                f"{row['optimizer'] / GIB:8.2f}G {row['reference'] / GIB:8.3f}G "
                f"{row['state'] / GIB:8.2f}G {row['state'] / full['state']:6.1%} {temp:>9}"
            )
    lines.append(
        "params: what the devices hold of the policy (LoRA: the frozen base + adapters + value "
        "head); state = params + optimizer + reference"
    )
    return "\n".join(lines)


def speed_rows(iters: int = 4, rank: int = 16) -> str:
    """Full vs LoRA PPO iterations of the decoder demo, interleaved; medians."""
    import jax

    from ppocoder_jax.config import load_config
    from ppocoder_jax.data import load_task
    from ppocoder_jax.model.common import compute_dtype
    from ppocoder_jax.model.families import as_policy
    from ppocoder_jax.model.lora import lora_reference, lora_start, with_lora
    from ppocoder_jax.parallel.mesh import make_mesh
    from ppocoder_jax.pipeline.policy_loader import load_policy
    from ppocoder_jax.ppo.learner import PPOLearner
    from ppocoder_jax.rewards.composite import RewardParts
    from ppocoder_jax.rollout.collector import RolloutCollector, training_examples

    class ConstantReward:  # the reward pool's time is the same for both sides: left out
        def submit(self, examples, outputs):
            import concurrent.futures as cf

            out = []
            for i, _ in enumerate(outputs):
                f = cf.Future()
                score = float(i % 3) - 1.0
                f.set_result(RewardParts(score, 1.0, score, 0.0, 0.0, "PASS", False))
                out.append(f)
            return out

    sides = {}
    for mode, r in (("full", 0), (f"lora r{rank}", rank)):
        over = ["train.run_dir=unused", "train.steps=1000", f"model.lora.rank={r}"]
        cfg = load_config("demo_decoder", over)
        params, model_cfg, tokenizer = load_policy(cfg)
        params = jax.device_get(params)
        examples = training_examples(cfg, load_task(cfg.data, tokenizer).ppo_examples())
        policy = with_lora(as_policy(model_cfg), cfg.model.lora)
        mesh, dtype = make_mesh(cfg.mesh), compute_dtype(cfg)
        learner = PPOLearner(cfg, policy, mesh, dtype)
        key = jax.random.PRNGKey(0)
        if r:
            frozen, trainable = lora_start(policy, params, cfg.model.lora, key)
            learner.place_frozen_part(frozen)
            state = learner.init_state(trainable, key)
            ref = lora_reference(learner.frozen, trainable, learner.shardings.params)
        else:
            state = learner.init_state(params, key)
            ref = learner.place_frozen(params)
        collector = RolloutCollector(
            cfg, policy, tokenizer, examples, mesh, ConstantReward(), ref,
            dtype=dtype, sample_key=key,
        )  # fmt: skip
        sides[mode] = {"learner": learner, "collector": collector, "state": state, "times": []}

    warmup = cfg.ppo.value_warmup_iters

    def one(side, iteration):
        t0 = time.perf_counter()
        exp = side["collector"].next(side["learner"].policy_params(side["state"]))
        t1 = time.perf_counter()
        # past the value warm-up: every timed iteration is a policy + value update
        side["state"], _ = side["learner"].learn(side["state"], exp, iteration + warmup)
        jax.block_until_ready(side["state"])
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    for it in range(iters + 1):  # iteration 0 compiles: left out
        for side in sides.values():
            sample_s, update_s = one(side, it)
            if it:
                side["times"].append((sample_s, update_s))
    load = os.getloadavg()[0]
    lines = [
        f"decoder demo PPO iteration (configs/demo_decoder.yaml, 64 rollouts x 64 tokens, "
        f"2 epochs x 2 minibatches), medians of {iters} interleaved iterations after a warm-up "
        f"(load average {load:.1f} at the end)",
        f"{'mode':<10} {'sample+stats s':>14} {'update s':>9} {'iteration s':>11}",
    ]
    for mode, side in sides.items():
        sample_s = statistics.median(x for x, _ in side["times"])
        update_s = statistics.median(y for _, y in side["times"])
        total = statistics.median(x + y for x, y in side["times"])
        lines.append(f"{mode:<10} {sample_s:14.2f} {update_s:9.2f} {total:11.2f}")
    return "\n".join(lines)


def sampler_rows(iters: int = 5, rank: int = 16, batch: int = 64, steps: int = 64) -> str:
    """The decoder demo's target matmuls over one sampling call of `steps` decode steps for
    `batch` rows: merged once (merge + x @ W per step) vs applied per step
    (x @ W + (x @ A) @ B * scale)."""
    import jax
    import jax.numpy as jnp

    from ppocoder_jax.config import load_config
    from ppocoder_jax.model.families import as_policy
    from ppocoder_jax.model.lora import LORA_A, LORA_B, init_adapters, merge, with_lora
    from ppocoder_jax.pipeline.policy_loader import load_policy

    cfg = load_config("demo_decoder", ["train.run_dir=unused", f"model.lora.rank={rank}"])
    params, model_cfg, _ = load_policy(cfg)
    policy = with_lora(as_policy(model_cfg), cfg.model.lora)
    backbone = params["lm"]
    adapters = init_adapters(backbone, policy.spec, jax.random.PRNGKey(0))
    adapters = jax.tree.map(lambda x: x + 0.01, adapters)
    scale = policy.spec.scale

    def kernels(tree):
        out = []

        def visit(path, x):
            names = [getattr(k, "key", "") for k in path]
            if names[-1] == "kernel" and names[-2] in policy.spec.modules:
                n_in = policy.spec.modules[names[-2]]
                out.append((names, x.reshape(math.prod(x.shape[:n_in]), -1)))

        jax.tree_util.tree_map_with_path(visit, tree)
        return out

    def pairs():
        res = []
        for names, w in kernels(backbone):
            node = adapters
            for k in names[:-1]:
                node = node[k]
            res.append((w, node[LORA_A], node[LORA_B]))
        return res

    @jax.jit
    def merged_loop(backbone, adapters, x0):
        ws = [w for _, w in kernels(merge(backbone, adapters, scale))]

        def body(x, _):
            acc = 0.0
            for w in ws:
                y = x[:, : w.shape[0]] @ w
                acc = acc + y[:, :1].sum()
            return x + 1e-6 * acc, None

        return jax.lax.scan(body, x0, None, length=steps)[0]

    @jax.jit
    def applied_loop(trip, x0):
        def body(x, _):
            acc = 0.0
            for w, a, b in trip:
                xi = x[:, : w.shape[0]]
                y = xi @ w + ((xi @ a) @ b) * scale
                acc = acc + y[:, :1].sum()
            return x + 1e-6 * acc, None

        return jax.lax.scan(body, x0, None, length=steps)[0]

    width = max(w.shape[0] for w, _, _ in pairs())
    x0 = jnp.ones((batch, width), jnp.float32)
    trip = pairs()
    jax.block_until_ready(merged_loop(backbone, adapters, x0))
    jax.block_until_ready(applied_loop(trip, x0))
    times = {"merged once per call": [], "applied in every matmul": []}
    for _ in range(iters):
        t0 = time.perf_counter()
        jax.block_until_ready(merged_loop(backbone, adapters, x0))
        t1 = time.perf_counter()
        jax.block_until_ready(applied_loop(trip, x0))
        t2 = time.perf_counter()
        times["merged once per call"].append(t1 - t0)
        times["applied in every matmul"].append(t2 - t1)
    lines = [
        f"sampler, LoRA rank {rank}: the demo decoder's {len(trip)} adapted matmuls over "
        f"{steps} decode steps of {batch} rows, medians of {iters}"
    ]
    for k, v in times.items():
        lines.append(f"  {k:<26} {statistics.median(v) * 1e3:8.1f} ms")
    return "\n".join(lines)
