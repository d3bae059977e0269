#!/usr/bin/env python
"""One full GRPO iteration, ours against TRL's `GRPOTrainer` (and tunix's GRPOLearner), on the
same random Qwen2 weights, on CPU.

    .venv/bin/python scripts/bench_grpo_step.py [--size small|tiny] [--prompts 8] [--samples 4]
        [--prompt-len 64] [--new-tokens 128] [--repeats 3] [--threads 1] [--sides ours trl]
        [--draw cdf|gumbel] [--old-logprobs sampler|recompute]
        [--tunix-python /tmp/tunixvenv/bin/python] [--quick]

One iteration, on every side: take P prompts, sample G completions of each (temperature 1, no
top-k / top-p), decode them and score them with the same cheap Python reward function
(`char_reward` below: TRL's reward-function signature, so ours runs it as a reward plugin), GRPO
advantages (group z-score), the reference log-probs (beta = 0.04 > 0, KL in the loss as k3), one
optimizer step on all P x G rows (AdamW, lr 1e-6, global-norm clip 1.0, no weight decay), fp32.
Every completion is exactly `--new-tokens` long on every side (end-of-sequence is forbidden
until then: transformers' `min_new_tokens` for TRL, the sampler's `min_new_tokens` for ours, an
end-of-sequence id outside the vocabulary for tunix); each side reports the mean completion
length it saw.

Sides (each in its own worker subprocess, so memory does not mix; they take turns one
iteration at a time, A B C A B C ..., and the table reports medians):

* `ours`: the trainer's own `PPOTrainer.run_iteration` (the `ppocoder train` path) with
  `ppo.advantage=grpo ppo.loss_agg=seq_mean_token_mean kl.mode=loss kl.kind=fixed
  kl.init_coef=0.04 ppo.ppo_epochs=1 ppo.num_minibatches=1` and the reward as a plugin
  (`reward.functions`; the execution and matching weights are 0, the composite reward still
  byte-compiles each completion as a Python program, which only adds to our side's time): the
  jitted sampler (`rollout.Sampler`), the reference log-probs (computed while the reward threads
  run), the registries' grpo advantages, and `learn_from_experience` -> the jitted train step.
  `--draw` sets `rollout.draw` (default cdf: inverse-CDF draws, also the config's default)
  and `--old-logprobs` sets `ppo.old_logprobs` (default sampler: the log-probs the sampler
  recorded, so no policy forward over the batch, as TRL and tunix do on-policy; recompute is
  the config's default and adds that forward pass).
* `trl`: `trl.GRPOTrainer` (1.16) driving its own training loop (`trainer.train()`): transformers
  `generate`, the reward function, the reference model's log-probs, `compute_loss` + backward +
  AdamW. `loss_type=grpo`, `scale_rewards=group`, `use_bias_correction_kl=False` (GRPO's plain k3,
  as ours), `activation_checkpointing=False` (TRL's default, `gradient_checkpointing=True`,
  recomputes activations in the backward pass; ours does not, so off on both), one generation
  per step. An iteration is timed from the command that lets the loop go on to the end of its
  next optimizer step (`on_step_end`), so everything the loop does in between (data loading,
  generation, scoring, logging) counts.
* `tunix` (when `--tunix-python` names a Python where `google-tunix` is installed beside the
  same JAX; it needs no network): `GRPOLearner` on an `RLCluster` (vanilla rollout engine,
  actor, rollout and reference on the one CPU device), weights read from the same safetensors
  by tunix's own Qwen2 loader; `num_iterations=1`, `loss_agg_mode=sequence-mean-token-mean`,
  optax AdamW behind a global-norm clip. Paced through its prompt iterator (`tunix_worker`).

The model is a random `Qwen2ForCausalLM` built in transformers (GQA, q/k/v biases, tied
embeddings; `small`: 4 layers, hidden 256, MLP 1024, 4 heads of 64, 2 KV heads, vocab 32000),
saved with a word-level tokenizer of the same vocabulary to a temp dir: TRL and tunix load it
from there and ours imports it through our HF import (`model.path`). Prompts are P fixed random
token strings of `--prompt-len` tokens (no padding and no BOS on any side).

Threads: `torch.set_num_threads(N)`; XLA's CPU client uses every core it may run on, so with
`--threads N` below the core count every worker is pinned to the same N cores. Default 1 (on a
shared, oversubscribed machine torch's OpenMP threads collapse; see bench_ppo_step.py). Each
iteration reports wall-clock and the worker's CPU seconds (steadier on a loaded machine).

Warm-up: the first iteration (jit compiles for ours and tunix, allocator and first-call costs
for TRL) is excluded from the medians and reported as `warm-up s`; compile time is warm-up
minus the median iteration.

Work (CPU): our worker reads XLA's FLOP count of its compiled programs at the run's shapes (the
prefill plus one decode step times the new tokens, as XLA counts a loop body once; one
teacher-forced pass; the train step), with the fused LM head traced in one chunk so that every
chunk is counted, and times the model's matmul shapes on its device. TRL and tunix do the same
model work (sample + reference pass + train step; ours adds a policy pass with
`--old-logprobs recompute`). The report gives each side's GFLOP per CPU second and the most any
implementation of TRL's work could gain at the best matmul rate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _bench_harness as harness

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EOS, PAD, BOS = 2, 0, 1
BETA = 0.04
LR = 1e-6
SIZES = {
    "small": dict(
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=32000,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1000,
    ),
}
SIDES = ("ours", "trl", "tunix")


def char_reward(completions, **kwargs):
    """The cheap reward both sides score with (TRL's reward-function signature): the share of
    the completion's characters that are the digit 7, times 10."""
    return [10.0 * c.count("7") / max(len(c), 1) for c in completions]


# ---------------------------------------------------------------------------------------------
# the shared model, tokenizer and prompts


def prompt_texts(args) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(0)
    vocab = SIZES[args.size]["vocab_size"]
    ids = rng.integers(3, vocab, (args.prompts, args.prompt_len))
    return [" ".join(f"t{i}" for i in row) for row in ids]


def build_hf_model(out_dir: Path, size: str) -> int:
    """A random Qwen2ForCausalLM and a word-level tokenizer over the same vocabulary."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    dims = SIZES[size]
    vocab = {"<pad>": PAD, "<s>": BOS, "</s>": EOS}
    vocab.update({f"t{i}": i for i in range(3, dims["vocab_size"])})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", bos_token="<s>"
    )
    cfg = transformers.Qwen2Config(
        **dims,
        max_position_embeddings=1024,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(cfg)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# ours: the trainer's own iteration


def ours_worker_setup(args):
    import dataclasses

    import jax

    from ppocoder_jax.config import load_config
    from ppocoder_jax.data.task import Example
    from ppocoder_jax.model.policy import num_params
    from ppocoder_jax.pipeline.policy_loader import load_policy
    from ppocoder_jax.pipeline.ppo_trainer import PPOTrainer
    from ppocoder_jax.rewards.composite import CompositeReward
    from ppocoder_jax.rollout.sampler import SamplingParams

    run_dir = Path(tempfile.mkdtemp(prefix="bench_grpo_ours_"))
    cfg = load_config(
        None,
        [
            f"model.path={args.model_dir}",
            "model.value_head_dropout=0.0",
            f"data.max_source_length={args.prompt_len}",
            f"data.max_target_length={args.new_tokens}",
            f"rollout.max_new_tokens={args.new_tokens}",
            f"rollout.num_samples={args.samples}",
            "rollout.temperature=1.0",
            "rollout.top_k=0",
            "rollout.top_p=1.0",
            f"rollout.draw={args.draw}",
            f"ppo.old_logprobs={args.old_logprobs}",
            "ppo.advantage=grpo",
            "ppo.loss_agg=seq_mean_token_mean",
            "ppo.clip_ratio=0.2",
            "ppo.ppo_epochs=1",
            "ppo.num_minibatches=1",
            "kl.mode=loss",
            "kl.kind=fixed",
            f"kl.init_coef={BETA}",
            "kl.estimator=sampled",
            f"optim.learning_rate={LR}",
            "optim.max_grad_norm=1.0",
            "optim.weight_decay=0.0",
            "reward.compile_weight=0",
            "reward.ast_weight=0",
            "reward.dfg_weight=0",
            "reward.tests_weight=0",
            "reward.workers=1",
            "reward.python_server=false",
            f"reward.functions=[{Path(__file__).stem}:char_reward]",
            f"train.batch_size={args.prompts}",
            "train.steps=1000000",
            "train.tensorboard=false",
            f"train.run_dir={run_dir}",
        ],
    )
    params, model_cfg, tokenizer = load_policy(cfg)
    examples = [
        Example(id=str(i), prompt=text, target="", lang="python")
        for i, text in enumerate(prompt_texts(args))
    ]
    reward = CompositeReward(cfg.reward)
    reward.check_functions(examples)
    trainer = PPOTrainer(cfg, params, model_cfg, tokenizer, examples, run_dir, None, reward)
    # Every completion exactly --new-tokens long: no end-of-sequence before then, as TRL's
    # generation_kwargs={"min_new_tokens": ...} (what is drawn only; the log-probs are the
    # policy's own).
    forced = dataclasses.replace(
        SamplingParams.from_config(cfg.rollout), min_new_tokens=args.new_tokens
    )
    sample_arrays = trainer.collector.sampler.sample_arrays

    def sample_forced(*a, sampling=None, **kw):
        return sample_arrays(*a, sampling=forced, **kw)

    trainer.collector.sampler.sample_arrays = sample_forced
    n_params = num_params(params)
    del params

    def iteration() -> dict:
        metrics = trainer.run_iteration()
        jax.block_until_ready(trainer.state)
        return {
            "mean_length": metrics["mean_length"],
            "score": metrics["score"],
            "kl_loss": metrics.get("kl_loss"),
            "time_sample_s": metrics["time_sample_s"],
            "time_rewards_s": metrics["time_rewards_s"],
            "time_update_s": metrics["time_update_s"],
        }

    def measure_work() -> dict:
        return {
            **ours_gflop_per_iteration(trainer, args),
            "matmul_gflops": matmul_rate_gflops(args),
        }

    info = {
        "schedule": "1 step of all rows",
        "device": str(jax.devices()[0]),
        "prompt_tokens": len(trainer.collector.sampler.encode(tokenizer, [examples[0].prompt])[0]),
    }
    work = measure_work if jax.default_backend() == "cpu" else None
    return iteration, n_params, info, work


def _whole_head_flops(fn, *args) -> float:
    """XLA's FLOP count of fn(*args) traced with the fused LM head in one chunk: XLA counts a
    loop body once, and the head otherwise runs as a scan over sequence chunks."""
    import jax

    from ppocoder_jax.model import lm_head

    saved = lm_head.chunk_length
    lm_head.chunk_length = lambda batch, length, vocab, elements=0: length
    try:  # a fresh jit of the unjitted function: nothing comes from a trace cache
        return harness.xla_flops(jax.jit(lambda *a: fn(*a)).lower(*args).compile())
    finally:
        lm_head.chunk_length = saved


def ours_gflop_per_iteration(trainer, args) -> dict:
    """XLA's FLOP count of our iteration's programs at the shapes the trainer ran: the prompt
    prefill plus one decode step times the new tokens (XLA counts the decode loop's body once),
    rollout_statistics (the policy's and the reference's teacher-forced passes) and the train
    step (forward + backward + AdamW), the fused LM head counted over every chunk."""
    import jax
    import jax.numpy as jnp

    from ppocoder_jax.ppo.policy_apply import reference_logprobs
    from ppocoder_jax.ppo.train_step import PPOBatch

    policy, dtype = trainer.collector.policy, trainer.collector.dtype
    params, ref = trainer.state.params, trainer.collector.ref_params
    rows, plen, t = args.prompts * args.samples, args.prompt_len, args.new_tokens
    i32 = jnp.int32
    ids = jax.ShapeDtypeStruct((args.prompts, plen), i32)

    def prefill(p, a, m):
        return policy.prefill(p, a, m, t, dtype)

    state, _ = jax.eval_shape(prefill, params, ids, ids)
    state = jax.tree.map(lambda x: jax.ShapeDtypeStruct((rows, *x.shape[1:]), x.dtype), state)
    step = jax.jit(lambda p, c, i, st: policy.decode(p, c, i, st, dtype)).lower(
        params, jax.ShapeDtypeStruct((rows,), i32), jax.ShapeDtypeStruct((), i32), state
    )
    sample = harness.xla_flops(jax.jit(prefill).lower(params, ids, ids).compile())
    sample += t * harness.xla_flops(step.compile())
    prompt = jax.ShapeDtypeStruct((rows, plen), i32)
    tokens = jax.ShapeDtypeStruct((rows, t), i32)
    ref_fn = reference_logprobs.__wrapped__

    def forward(r, a, m, tok, tm):  # one teacher-forced pass (the reference's)
        return ref_fn(r, a, m, tok, tm, policy=policy, dtype=dtype)

    f32 = jax.ShapeDtypeStruct((rows, t), jnp.float32)
    batch = PPOBatch(prompt, prompt, tokens, f32, f32, f32, f32, f32, f32)
    index = jax.ShapeDtypeStruct((rows,), i32)
    gflop = {
        "gflop_sample": sample / 1e9,
        # the reference's teacher-forced pass (the policy's, when recomputed, costs the same)
        "gflop_forward": _whole_head_flops(forward, ref, prompt, prompt, tokens, tokens) / 1e9,
        "gflop_train": _whole_head_flops(
            trainer.learner._train_steps()[0].__wrapped__, trainer.state, batch, index
        )
        / 1e9,
    }
    # TRL (on-policy, one step per generation) does: sample + reference pass + train step
    gflop["gflop_trl_work"] = sum(gflop.values())
    recompute = trainer.cfg.ppo.old_logprobs == "recompute"
    gflop["gflop_per_iter"] = gflop["gflop_trl_work"] + recompute * gflop["gflop_forward"]
    return gflop


def matmul_rate_gflops(args) -> float:
    """The best fp32 matmul rate on the model's shapes over the batch's response tokens (see
    _bench_harness.best_matmul_gflops)."""
    dims = SIZES[args.size]
    rows = args.prompts * args.samples * args.new_tokens
    d, f, v = dims["hidden_size"], dims["intermediate_size"], dims["vocab_size"]
    return harness.best_matmul_gflops(rows, d, f, v, "float32", tries=3)


# ---------------------------------------------------------------------------------------------
# TRL: GRPOTrainer's own loop, paced by the driver


def trl_worker(args) -> None:
    import datasets
    import torch
    import transformers
    import trl

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.set_num_threads(args.threads)
    t_setup = time.perf_counter()
    # the generic fast tokenizer as saved (AutoTokenizer would wrap a qwen2 directory's
    # tokenizer.json in Qwen2Tokenizer, which splits these words differently)
    tok = transformers.PreTrainedTokenizerFast.from_pretrained(args.model_dir)
    prompts = prompt_texts(args)
    n_steps = 1 + args.repeats
    config = trl.GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench_grpo_trl_"),
        per_device_train_batch_size=args.prompts * args.samples,
        gradient_accumulation_steps=1,
        num_generations=args.samples,
        max_completion_length=args.new_tokens,
        generation_kwargs={"min_new_tokens": args.new_tokens},
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=BETA,
        epsilon=0.2,
        loss_type="grpo",
        scale_rewards="group",
        use_bias_correction_kl=False,
        activation_checkpointing=False,
        learning_rate=LR,
        weight_decay=0.0,
        max_grad_norm=1.0,
        lr_scheduler_type="constant",
        max_steps=n_steps,
        logging_steps=10**6,
        report_to="none",
        use_cpu=True,
        bf16=False,
        fp16=False,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = trl.GRPOTrainer(
        model=args.model_dir,
        reward_funcs=char_reward,
        args=config,
        train_dataset=datasets.Dataset.from_dict({"prompt": prompts}),
        processing_class=tok,
    )
    n_params = sum(p.numel() for p in trainer.model.parameters())
    prompt_tokens = len(tok(prompts[0])["input_ids"])
    setup_s = time.perf_counter() - t_setup
    box = {"t0": None, "step": 0}

    def metric(name):
        values = trainer._metrics["train"].get(name) or [float("nan")]
        return float(values[-1])

    class Pace(transformers.TrainerCallback):
        def on_train_begin(self, a, state, control, **kw):
            box["t0"], box["c0"] = time.perf_counter(), time.process_time()

        def on_step_end(self, a, state, control, **kw):
            dt = time.perf_counter() - box["t0"]
            res = {
                "time_s": dt,
                "cpu_s": time.process_time() - box["c0"],
                "peak_rss_mib": harness.peak_rss_mib(),
                "mean_length": metric("completions/mean_length"),
                "score": metric("reward"),
                "kl": metric("kl"),
            }
            if box["step"] == 0:
                ready = {
                    "setup_s": setup_s,
                    "warmup_s": dt,
                    "params": n_params,
                    "schedule": "1 step of all rows",
                    "device": "cpu",
                    "prompt_tokens": prompt_tokens,
                    "mean_length": res["mean_length"],
                }
                harness.emit("READY", ready)
            else:
                harness.emit("RESULT", res)
            box["step"] += 1
            line = sys.stdin.readline().strip()
            if line != "iter" or box["step"] >= n_steps:
                control.should_training_stop = True
            harness.reset_peak_rss()
            box["t0"], box["c0"] = time.perf_counter(), time.process_time()
            return control

    trainer.add_callback(Pace())
    trainer.train()


# ---------------------------------------------------------------------------------------------
# worker entry (ours; TRL runs its own loop above)


def worker_main(args) -> None:
    harness.pin_threads(args.threads)
    if args.worker == "trl":
        trl_worker(args)
        return
    if args.worker == "tunix":
        tunix_worker(args)
        return
    # the warm-up iteration: jit compiles
    iteration, first, ready, info = harness.start(lambda: ours_worker_setup(args))
    harness.emit("READY", {**ready, **info, "mean_length": first["mean_length"]})
    harness.serve(iteration)


def tunix_worker(args) -> None:
    """tunix's GRPOLearner driving its own loop (RLCluster, vanilla rollout engine, actor and
    reference colocated on the one CPU device), paced through its prompt iterator: it asks for
    the next batch at the start of a global step, so an iteration is timed from one request to
    the next (generation, reward, reference log-probs, advantages, the update, weight sync)."""
    import jax
    import numpy as np
    import optax
    import transformers
    from flax import nnx
    from tunix.models.qwen2 import model as qwen2_model
    from tunix.models.qwen2 import params as qwen2_params
    from tunix.rl import rl_cluster as rl_cluster_lib
    from tunix.rl.grpo import grpo_learner
    from tunix.rl.rollout import base_rollout

    t_setup = time.perf_counter()
    dims = SIZES[args.size]
    cfg = qwen2_model.ModelConfig(
        num_layers=dims["num_hidden_layers"],
        vocab_size=dims["vocab_size"],
        embed_dim=dims["hidden_size"],
        hidden_dim=dims["intermediate_size"],
        num_heads=dims["num_attention_heads"],
        head_dim=dims["hidden_size"] // dims["num_attention_heads"],
        num_kv_heads=dims["num_key_value_heads"],
        rope_theta=10000,  # transformers' Qwen2Config defaults, as the saved model has
        norm_eps=1e-6,
        use_tied_embedding=True,
    )
    auto = (jax.sharding.AxisType.Auto,) * 2  # tunix shards with logical rules, not explicit
    mesh = jax.make_mesh((1, 1), ("fsdp", "tp"), axis_types=auto)
    actor = qwen2_params.create_model_from_safe_tensors(args.model_dir, cfg, mesh)
    reference = qwen2_params.create_model_from_safe_tensors(args.model_dir, cfg, mesh)
    tok = transformers.PreTrainedTokenizerFast.from_pretrained(args.model_dir)
    tok.bos_token = None  # tunix's sampler puts the tokenizer's BOS before each prompt
    rollout = base_rollout.RolloutConfig(
        max_tokens_to_generate=args.new_tokens,
        max_prompt_length=args.prompt_len,
        kv_cache_size=args.prompt_len + args.new_tokens + 8,
        temperature=1.0,
        top_p=1.0,
        top_k=None,
        # no end-of-sequence id it can draw: every completion runs to --new-tokens
        eos_tokens=[dims["vocab_size"]],
    )
    optimizer = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(LR, b1=0.9, b2=0.999, weight_decay=0.0)
    )
    training = rl_cluster_lib.RLTrainingConfig(
        actor_optimizer=optimizer,
        eval_every_n_steps=10**6,
        max_steps=10**6,
    )
    cluster = rl_cluster_lib.RLCluster(
        actor=actor,
        reference=reference,
        tokenizer=tok,
        cluster_config=rl_cluster_lib.ClusterConfig(
            role_to_mesh={
                rl_cluster_lib.Role.ACTOR: mesh,
                rl_cluster_lib.Role.REFERENCE: mesh,
                rl_cluster_lib.Role.ROLLOUT: mesh,
            },
            rollout_engine="vanilla",
            offload_to_cpu=False,
            training_config=training,
            rollout_config=rollout,
        ),
    )
    algo = grpo_learner.GRPOConfig(
        num_generations=args.samples,
        num_iterations=1,
        beta=BETA,
        epsilon=0.2,
        loss_agg_mode="sequence-mean-token-mean",
    )
    seen = []  # completion lengths (the word-level tokenizer: one word per token)

    def reward(completions, **kwargs):
        seen.append(sum(len(c.split()) for c in completions) / max(len(completions), 1))
        return char_reward(completions, **kwargs)

    learner = grpo_learner.GRPOLearner(cluster, algo, reward_fns=[reward])
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(actor, nnx.Param)))
    prompts = prompt_texts(args)
    prompt_tokens = len(tok(prompts[0])["input_ids"])
    setup_s = time.perf_counter() - t_setup
    box = {"t0": None, "n": 0}

    def batches():
        while True:
            if box["t0"] is not None:
                jax.block_until_ready(jax.tree.leaves(nnx.state(cluster.actor_trainer.model)))
                dt = time.perf_counter() - box["t0"]
                length = seen[-1] if seen else float("nan")
                res = {
                    "time_s": dt,
                    "peak_rss_mib": harness.peak_rss_mib(),
                    "mean_length": length,
                }
                res["cpu_s"] = time.process_time() - box["c0"]
                if box["n"] == 1:
                    ready = {
                        "setup_s": setup_s,
                        "warmup_s": dt,
                        "params": n_params,
                        "schedule": "1 step of all rows",
                        "device": str(jax.devices()[0]),
                        "prompt_tokens": prompt_tokens,
                        "mean_length": res["mean_length"],
                    }
                    harness.emit("READY", ready)
                else:
                    harness.emit("RESULT", res)
                if sys.stdin.readline().strip() != "iter":
                    return
                harness.reset_peak_rss()
            box["t0"], box["c0"] = time.perf_counter(), time.process_time()
            box["n"] += 1
            yield {"prompts": np.asarray(prompts)}  # an array: tunix repeats it per sample

    learner.train(batches())


# ---------------------------------------------------------------------------------------------
# driver


def start_worker(side: str, args, model_dir: Path) -> harness.Worker:
    python = args.tunix_python if side == "tunix" else sys.executable
    cmd = harness.worker_command(__file__, side, model_dir, python)
    for flag in (
        "size", "prompts", "samples", "prompt_len", "new_tokens", "threads", "repeats",
        "draw", "old_logprobs",
    ):  # fmt: skip
        cmd += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    env = dict(os.environ, JAX_PLATFORMS="cpu", TOKENIZERS_PARALLELISM="false")
    return harness.Worker(side, cmd, env, close_timeout=120)


def show_result(w: harness.Worker, res: dict) -> str:
    return (
        f"{w.side:<6} {res['time_s']:8.2f} s ({res['cpu_s']:.2f} CPU s)  "
        f"new tokens {res['mean_length']:.0f}  peak RSS {res['peak_rss_mib']:6.0f} MiB"
    )


def report(args, workers) -> None:
    samples = args.prompts * args.samples
    print(
        f"\nmedians over {args.repeats} interleaved iterations; warm-up excluded "
        "(compile ~= warm-up - median)"
    )
    print(
        f"{'side':<6} {'s/iter':>7} {'samples/s':>9} {'vs trl':>7} {'CPU s/iter':>10} "
        f"{'vs trl':>7} {'warm-up s':>9} {'compile s':>9} {'new tokens':>10} "
        f"{'prompt tok':>10} {'peak RSS MiB':>12}"
    )
    rows, cpu = {}, {}
    for w in workers:
        rows[w.side] = statistics.median(r["time_s"] for r in w.results)
        cpu[w.side] = statistics.median(r["cpu_s"] for r in w.results)
    base, base_cpu = rows.get("trl"), cpu.get("trl")
    for w in workers:
        med = rows[w.side]
        sps = samples / med
        ratio = f"{base / med:6.2f}x" if base else "n/a"
        cpu_ratio = f"{base_cpu / cpu[w.side]:6.2f}x" if base_cpu else "n/a"
        compile_s = max(w.ready["warmup_s"] - med, 0.0)
        lengths = [w.ready["mean_length"]] + [r["mean_length"] for r in w.results]
        peak = max(r["peak_rss_mib"] for r in w.results)
        print(
            f"{w.side:<6} {med:7.2f} {sps:9.2f} {ratio:>7} {cpu[w.side]:10.2f} {cpu_ratio:>7} "
            f"{w.ready['warmup_s']:9.1f} {compile_s:9.1f} {min(lengths):4.0f}-{max(lengths):<5.0f} "
            f"{w.ready['prompt_tokens']:>10} {peak:12.0f}"
        )
    print(
        "s/iter: wall-clock seconds of one whole iteration; CPU s/iter: the worker process's CPU\n"
        "seconds in it (all its threads; on a loaded machine the steadier of the two)"
    )
    ours = next((w for w in workers if w.side == "ours"), None)
    if ours is not None:
        parts = ("time_sample_s", "time_rewards_s", "time_update_s")
        split = {p: statistics.median(r[p] for r in ours.results) for p in parts}
        print(
            "ours, median split: sample {time_sample_s:.2f} s, rewards (device stats run "
            "meanwhile) {time_rewards_s:.2f} s, update {time_update_s:.2f} s".format(**split)
        )
    if ours is not None and "gflop_per_iter" in ours.ready:
        r = ours.ready
        rate = r["matmul_gflops"]
        passes = "reference pass" if args.old_logprobs == "sampler" else "policy + reference passes"
        n_fwd = 1 if args.old_logprobs == "sampler" else 2
        print(
            "\nwork (XLA's cost analysis of our compiled programs at the run's shapes; TRL's and "
            "tunix's sides are given the same count for their work: sample + reference pass + "
            "train step):"
        )
        print(
            f"  ours: sample {r['gflop_sample']:.4g} + {passes} {n_fwd * r['gflop_forward']:.4g}"
            f" + train step {r['gflop_train']:.4g} = {r['gflop_per_iter']:.4g} GFLOP/iter"
        )
        for w in workers:  # tunix (num_iterations 1) skips the old-log-prob pass as TRL does
            gflop = r["gflop_per_iter"] if w.side == "ours" else r["gflop_trl_work"]
            achieved = gflop / cpu[w.side]
            print(
                f"  {w.side:<5} {gflop:8.1f} GFLOP/iter {achieved:8.1f} GFLOP per CPU second "
                f"({achieved / rate:.0%} of the best matmul rate)"
            )
        if base:
            floor_s = r["gflop_trl_work"] / rate
            print(
                f"  at the best matmul rate TRL's work would take {floor_s:.2f} s: at most "
                f"{base_cpu / floor_s:.1f}x over TRL's CPU seconds for any implementation doing "
                "its work"
            )
        print(f"  best matmul rate on the model's shapes on this device: {rate:.1f} GFLOP/s")
    if base and "ours" in rows:
        ratio = base / rows["ours"]
        verdict = "met" if ratio >= 1.5 else "NOT met"
        print(
            f"floor 1.5x TRL's samples/s: {verdict} ({ratio:.2f}x wall clock; "
            f"{base_cpu / cpu['ours']:.2f}x in CPU seconds)"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=list(SIZES), default="small")
    p.add_argument("--prompts", type=int, default=8, help="P prompts per iteration")
    p.add_argument("--samples", type=int, default=4, help="G completions per prompt")
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed iterations per side")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per side (pinned)")
    p.add_argument("--sides", nargs="+", choices=SIDES, default=["ours", "trl"])
    p.add_argument(
        "--draw",
        choices=("cdf", "gumbel"),
        default="cdf",
        help="ours: rollout.draw, how the sampler draws a token (see rollout/sampler.py)",
    )
    p.add_argument(
        "--old-logprobs",
        choices=("sampler", "recompute"),
        default="sampler",
        help="ours: ppo.old_logprobs (sampler: no policy forward over the batch, as TRL)",
    )
    p.add_argument("--tunix-python", default="", help="a Python with google-tunix installed")
    p.add_argument("--quick", action="store_true", help="tiny model, 2 x 2, 16 + 16 tokens")
    args = harness.parse_args(p, SIDES, worker_main)
    if args is None:  # a worker: it has run
        return
    if args.quick:
        args.size, args.prompts, args.samples = "tiny", 2, 2
        args.prompt_len, args.new_tokens, args.repeats = 16, 16, min(args.repeats, 2)
    if args.tunix_python and "tunix" not in args.sides:
        args.sides.append("tunix")
    load = harness.load_average()
    print(
        f"size {args.size} {SIZES[args.size]}, {args.prompts} prompts x {args.samples} samples, "
        f"prompt {args.prompt_len} tokens, {args.new_tokens} new tokens, threads {args.threads} "
        f"(of {os.cpu_count()} cores), load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
        flush=True,
    )

    def build_model(model_dir: Path) -> None:
        n = build_hf_model(model_dir, args.size)
        print(f"model: random Qwen2ForCausalLM, {n / 1e6:.1f}M parameters", flush=True)

    workers = harness.take_turns(
        args.sides,
        build_model,
        lambda side, model_dir: start_worker(side, args, model_dir),
        args.repeats,
        json.dumps,
        show_result,
        prefix="bench_grpo_step_",
    )
    load_end = harness.load_average()[0]
    print(f"load average at end {load_end:.1f}")
    report(args, workers)


if __name__ == "__main__":
    main()
