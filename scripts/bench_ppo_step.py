#!/usr/bin/env python
"""Rollout samples per second through the PPO update: our jitted step vs the authors' loop.

    .venv/bin/python scripts/bench_ppo_step.py [--size codet5-small|small|tiny] [--batch 32]
        [--prompt-len 64] [--response-len 64] [--repeats 3] [--threads N] [--quick]
    .venv/bin/python scripts/bench_ppo_step.py --memory-table [--batch 32] [--prompt-len 128]
        [--response-len 128]

What one "iteration" is, on every side, for a rollout batch of B samples (prompt length S,
response length T; every response is T tokens with `</s>` last, so no side gets shorter work):

* the teacher-forced forward passes the update needs: old log-probs and values of the policy and
  the reference log-probs, batched over the B samples (both sides count them);
* KL-penalised rewards -> GAE (gamma 1, lambda 0.95) -> advantage whitening;
* the PPO update over the B samples.

Sides (each in its own worker subprocess, so memory does not mix):

* `torch-authors`: a PyTorch transcription of the authors' `PPOTrainer.step`
  (reddy-lab-code-research/PPOCoder, ppo.py): transformers `T5ForConditionalGeneration` plus a
  value head (Dropout 0.1 + Linear on the final decoder hidden state); one no-grad batched
  forward of policy and reference; rewards; then for each sample separately: the Python GAE loop
  over time, per-sample whitening, forward + backward + AdamW step (lr 1e-6, eps 1e-8, weight
  decay 0.01), one epoch.  Omitted (all of it work their loop does, so the ratios measured
  here understate ours): their `ReduceLROnPlateau.step` (a bug, negligible cost); the `labels=`
  cross-entropy that HF computes and they never use (we pass the shifted decoder input
  instead); the per-sample statistics (full-vocabulary entropy of the logits, approx KL, clip
  fractions, returns/values mean and variance); the per-sample host copy of the whole response
  batch to find the sample's length (a device sync per sample on a GPU; we read the lengths once).
* `jax-default`: ours, the trainer's own `rollout_statistics` + `learn_from_experience`
  (advantages, PPO update, KL controller) with the default preset: ppo_epochs x num_minibatches = 4 x 4 (each sample is trained on 4 times, so
  this side does 4x the gradient work of the authors' loop per rollout sample).
* `jax-reference`: ours with configs/ppocoder_reference.yaml: 1 epoch of B one-sample
  minibatches (the authors' schedule, the same work as `torch-authors`).

The model is a random T5 built in transformers (v1.0 / CodeT5 layout: ReLU, tied embeddings;
`dropout_rate` 0 inside the T5 layers, since our policy applies dropout only in the value head),
saved to a temp dir and loaded by ours from that directory: the same weights on both sides.
The warm-up iteration (jit compile for ours) is excluded and reported separately.  The workers
take turns one iteration at a time (A B C A B C ...); the table reports medians.

Threads: `torch.set_num_threads(N)`; XLA's CPU client uses every core it may run on, so with
`--threads N` smaller than the core count every worker is pinned to the same N cores
(`sched_setaffinity`).  Default 1: on a shared, oversubscribed machine torch's OpenMP threads
collapse (2 threads ran the authors' loop 1.6-5x *slower* than 1 thread here), which would
flatter our side; pass `--threads $(nproc)` on an idle machine.

Memory: each worker resets the kernel's peak-RSS counter before each iteration (writes 5 to
/proc/self/clear_refs) and reads VmHWM after it: the peak resident set *of that iteration*
(process total: weights, optimizer state, activations, framework overhead).  On an accelerator
`jax.devices()[0].memory_stats()["peak_bytes_in_use"]` is printed as well when available.

Work: each JAX worker reads XLA's FLOP count of its compiled programs (the batched forwards and
one train step, times the number of steps) and times the model's matmul shapes (attention
projection, FFN, LM head over the batch's response tokens) on its device.  The report gives each
side's achieved GFLOP/s (torch-authors does jax-reference's work: same model, shapes and
schedule) and the ratio a side could reach at best if every FLOP ran at the best of those
matmul rates: on one CPU core that ceiling is below 5x.  CPU only: XLA's GPU cost analysis
does not count the GEMMs it hands to cuBLAS.

GPU: `--device cuda` runs torch on the GPU and JAX on its GPU backend (workers do not
preallocate, so three share the card); matmuls are strict fp32 on both sides unless
`--precision tf32` (torch's allow_tf32 / JAX's matmul precision "tensorfloat32").

`--memory-table` prints the estimated bytes per parameter of the training state and which
accelerators hold codet5-small/base/large (see `memory_table`); no model is run. It then
measures LoRA vs full at the Qwen2.5-Coder-0.5B / 1.5B shapes (jax.eval_shape, no weights): the
train state's bytes and the compiled train step's temporary memory (scripts/_lora_bench.py).
`--lora-speed` times decoder-demo PPO iterations full vs LoRA side by side, and the sampler's
two ways of using the adapters (merged once per call vs applied in every matmul).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import _bench_harness as harness

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EOS = 2
SIZES = {
    # codet5-small's shape (60M parameters)
    "codet5-small": dict(
        d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8, vocab_size=32100
    ),
    # codet5-base's shape (223M parameters)
    "codet5-base": dict(
        d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12, vocab_size=32100
    ),
    "small": dict(d_model=256, d_kv=32, d_ff=1024, num_layers=4, num_heads=8, vocab_size=32100),
    "tiny": dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, vocab_size=1000),
}
SIDES = ("torch-authors", "jax-default", "jax-reference")


# ---------------------------------------------------------------------------------------------
# the shared inputs


def make_inputs(args):
    import numpy as np

    rng = np.random.default_rng(0)
    vocab = SIZES[args.size]["vocab_size"]
    b, s, t = args.batch, args.prompt_len, args.response_len
    prompt_ids = rng.integers(3, vocab, (b, s)).astype(np.int32)
    prompt_mask = np.ones((b, s), np.int32)
    tokens = rng.integers(3, vocab, (b, t)).astype(np.int32)  # no </s> (2) or pad (0) inside
    tokens[:, -1] = EOS
    token_mask = np.ones((b, t), np.int32)
    scores = rng.normal(size=b).astype(np.float32)
    return prompt_ids, prompt_mask, tokens, token_mask, scores


def build_hf_model(out_dir: Path, size: str) -> int:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    dims = SIZES[size]
    cfg = T5Config(
        **dims,
        num_decoder_layers=dims["num_layers"],
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=EOS,
        decoder_start_token_id=0,
        dropout_rate=0.0,
    )
    model = T5ForConditionalGeneration(cfg)
    model.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# the authors' loop in PyTorch


def torch_worker_setup(args):
    import copy

    import numpy as np
    import torch
    from transformers import T5ForConditionalGeneration

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        # strict fp32 matmuls unless --precision tf32 (the jax side is set to match)
        torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = args.precision == "tf32"

    class PolicyWithValue(torch.nn.Module):
        def __init__(self, t5):
            super().__init__()
            self.t5 = t5
            self.dropout = torch.nn.Dropout(0.1)
            self.v_head = torch.nn.Linear(t5.config.d_model, 1)
            torch.nn.init.zeros_(self.v_head.weight)
            torch.nn.init.zeros_(self.v_head.bias)

        def forward(self, input_ids, attention_mask, decoder_input_ids):
            out = self.t5(
                input_ids=input_ids,
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                output_hidden_states=True,
                use_cache=False,
            )
            hidden = out.decoder_hidden_states[-1]
            return out.logits, self.v_head(self.dropout(hidden)).squeeze(-1)

    t5 = T5ForConditionalGeneration.from_pretrained(args.model_dir).to(dev)
    ref = copy.deepcopy(t5).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    policy = PolicyWithValue(t5).to(dev).train()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6, eps=1e-8, weight_decay=0.01)
    np_prompt_ids, np_prompt_mask, np_tokens, _, np_scores = make_inputs(args)
    prompt_ids, prompt_mask, tokens = (
        torch.from_numpy(x).long().to(dev) for x in (np_prompt_ids, np_prompt_mask, np_tokens)
    )
    scores = torch.from_numpy(np_scores).to(dev)
    # response lengths (through the first </s>), read on the host once: the authors read them
    # per sample, which on a GPU adds a device sync per sample that we spare the torch side
    lengths = [int((row == EOS).argmax()) + 1 for row in np_tokens]
    dec_in = t5._shift_right(tokens)
    gamma, lam, clip, vclip, vf_coef = 1.0, 0.95, 0.2, 0.2, 1e-3
    state = {"kl_coef": 0.1}

    def logprobs_from_logits(logits, labels):
        return torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(-1)

    def whiten(x):
        mean, var = torch.mean(x), torch.var(x)
        return (x - mean) * torch.rsqrt(var + 1e-8)

    def train_sample(old_logprobs, values, rewards, src, src_mask, resp_in, resp):
        # the authors' PPOTrainer.loss + train_minibatch for one sample
        lastgaelam = 0
        adv_rev = []
        n = resp.size(1)
        for t in reversed(range(n)):
            nextvalues = values[:, t + 1] if t < n - 1 else 0.0
            delta = rewards[:, t] + gamma * nextvalues - values[:, t]
            lastgaelam = delta + gamma * lam * lastgaelam
            adv_rev.append(lastgaelam)
        advantages = torch.stack(adv_rev[::-1]).transpose(0, 1)
        returns = advantages + values
        advantages = whiten(advantages).detach()
        logits, vpred = policy(src, src_mask, resp_in)
        logprob = logprobs_from_logits(logits, resp)
        vclipped = torch.clamp(vpred, values - vclip, values + vclip)
        vf_loss = 0.5 * torch.mean(torch.max((vpred - returns) ** 2, (vclipped - returns) ** 2))
        ratio = torch.exp(logprob - old_logprobs)
        pg = torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip, 1 + clip))
        loss = torch.mean(pg) + vf_coef * vf_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    def iteration():
        with torch.no_grad():
            logits, values = policy(prompt_ids, prompt_mask, dec_in)
            ref_logits = ref(
                input_ids=prompt_ids,
                attention_mask=prompt_mask,
                decoder_input_ids=dec_in,
                use_cache=False,
            ).logits
        logprobs = logprobs_from_logits(logits, tokens)
        ref_logprobs = logprobs_from_logits(ref_logits, tokens)
        del logits, ref_logits
        kl = logprobs - ref_logprobs
        rewards = -state["kl_coef"] * kl
        rewards[:, -1] += scores  # the terminal score at </s> (the last position here)
        for i in range(tokens.size(0)):
            n = lengths[i]
            train_sample(
                logprobs[i : i + 1, :n],
                values[i : i + 1, :n],
                rewards[i : i + 1, :n],
                prompt_ids[i : i + 1],
                prompt_mask[i : i + 1],
                dec_in[i : i + 1, :n],
                tokens[i : i + 1, :n],
            )
        mean_kl = float(torch.mean(torch.sum(kl, -1)).abs())
        err = np.clip(mean_kl / 1.0 - 1, -0.2, 0.2)
        state["kl_coef"] *= 1 + err * tokens.size(0) / 10000
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return iteration, sum(p.numel() for p in policy.parameters())


# ---------------------------------------------------------------------------------------------
# ours


def jax_worker_setup(args, reference: bool):
    import jax
    import jax.numpy as jnp

    from ppocoder_jax.config import load_config
    from ppocoder_jax.model import load_model
    from ppocoder_jax.model.common import compute_dtype
    from ppocoder_jax.model.families import as_policy
    from ppocoder_jax.model.policy import num_params
    from ppocoder_jax.ppo.experience import Experience
    from ppocoder_jax.ppo.policy_apply import make_apply_fn, rollout_statistics
    from ppocoder_jax.ppo.state import frozen_copy, init_train_state, make_optimizer
    from ppocoder_jax.ppo.train_step import build_train_step, learn_from_experience

    if jax.default_backend() != "cpu":
        # XLA's GPU default lets fp32 matmuls run in TF32; match the torch side's setting
        jax.config.update(
            "jax_default_matmul_precision",
            "tensorfloat32" if args.precision == "tf32" else "highest",
        )

    if reference:
        cfg = load_config(
            str(ROOT / "configs" / "ppocoder_reference.yaml"),
            [f"ppo.num_minibatches={args.batch}", f"train.batch_size={args.batch}"],
        )
    else:
        cfg = load_config(None, [f"train.batch_size={args.batch}"])
    params, t5cfg, _ = load_model(args.model_dir)
    tx = make_optimizer(cfg.optim)
    state = init_train_state(jax.device_put(params), tx, cfg.kl, jax.random.PRNGKey(0))
    ref_params = frozen_copy(state.params)
    dtype = compute_dtype(cfg)
    train_step = build_train_step(make_apply_fn(t5cfg, dtype), tx, cfg.ppo)
    prompt_ids, prompt_mask, tokens, token_mask, scores = (
        jnp.asarray(x) for x in make_inputs(args)
    )
    valid = jnp.ones(args.batch, jnp.float32)
    box = {"state": state}
    info = {
        "schedule": f"{cfg.ppo.ppo_epochs} x {cfg.ppo.num_minibatches} steps of "
        f"{args.batch // cfg.ppo.num_minibatches}",
        "passes": cfg.ppo.ppo_epochs,
        "whiten": cfg.ppo.whiten,
        "kl_estimator": cfg.kl.estimator,
        "dtype": cfg.model.compute_dtype,
        "device": str(jax.devices()[0]),
    }

    inputs = (prompt_ids, prompt_mask, tokens, token_mask)
    stats_kw = dict(policy=as_policy(t5cfg), dtype=dtype, exact_kl=cfg.kl.estimator == "exact")

    def iteration():
        st = box["state"]
        logprobs, values, ref_logprobs, exact_kl = rollout_statistics(
            st.params, ref_params, *inputs, **stats_kw
        )
        experience = Experience(
            *inputs, logprobs, values, ref_logprobs, exact_kl, scores=scores, valid=valid
        )
        st, _, _ = learn_from_experience(st, train_step, experience, ppo_cfg=cfg.ppo, kl_cfg=cfg.kl)
        jax.block_until_ready(st)
        box["state"] = st

    def measure_work() -> dict:  # called after the warm-up, so the compile time stays in it
        return {
            "gflop_per_iter": xla_gflop_per_iteration(
                box["state"], ref_params, train_step, cfg.ppo, inputs, stats_kw
            ),
            "matmul_gflops": matmul_rate_gflops(args, dtype),
        }

    # XLA's GPU cost analysis leaves library GEMMs (cuBLAS custom calls) uncounted
    work = measure_work if jax.default_backend() == "cpu" else None
    return iteration, num_params(params), info, work


def xla_gflop_per_iteration(state, ref_params, train_step, ppo_cfg, inputs, stats_kw) -> float:
    """XLA's own FLOP count of one iteration: the batched forwards + every optimizer step."""
    import jax
    import jax.numpy as jnp

    from ppocoder_jax.ppo.policy_apply import rollout_statistics
    from ppocoder_jax.ppo.train_step import PPOBatch

    stats = rollout_statistics.lower(state.params, ref_params, *inputs, **stats_kw).compile()
    prompt_ids, prompt_mask, tokens, _ = inputs
    f32 = jax.ShapeDtypeStruct(tokens.shape, jnp.float32)
    batch = PPOBatch(prompt_ids, prompt_mask, tokens, f32, f32, f32, f32, f32, f32)
    mb = tokens.shape[0] // ppo_cfg.num_minibatches
    step = train_step.lower(state, batch, jax.ShapeDtypeStruct((mb,), jnp.int32)).compile()
    n_steps = ppo_cfg.ppo_epochs * ppo_cfg.num_minibatches
    return (harness.xla_flops(stats) + n_steps * harness.xla_flops(step)) / 1e9


def matmul_rate_gflops(args, dtype) -> float:
    """The best matmul rate on the model's shapes over the batch's response tokens (see
    _bench_harness.best_matmul_gflops)."""
    dims = SIZES[args.size]
    rows = args.batch * args.response_len
    return harness.best_matmul_gflops(
        rows, dims["d_model"], dims["d_ff"], dims["vocab_size"], dtype, tries=5
    )


def device_peak_mib(side: str) -> float | None:
    if side == "torch-authors":
        import torch

        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        import jax

        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - CPU clients have none
        return None
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 2**20


def worker_setup(args):
    """(iteration, number of parameters, info, measure_work or None) of args.worker's side."""
    if args.worker == "torch-authors":
        iteration, n_params = torch_worker_setup(args)
        info = {
            "schedule": f"1 x {args.batch} steps of 1 (per-sample loop)",
            "passes": 1,
            "device": args.device,
        }
        return iteration, n_params, info, None
    return jax_worker_setup(args, args.worker == "jax-reference")


def worker_main(args) -> None:
    harness.pin_threads(args.threads)
    # the warm-up iteration: jit compile for ours, allocator warm-up for torch
    iteration, _, ready, info = harness.start(lambda: worker_setup(args))
    harness.emit("READY", {**ready, "rss_mib": harness.rss_mib(), **info})

    def before() -> None:
        if args.worker == "torch-authors" and args.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()

    def after() -> dict:
        dev = device_peak_mib(args.worker)
        return {} if dev is None else {"device_peak_mib": dev}

    harness.serve(iteration, before=before, after=after)


# ---------------------------------------------------------------------------------------------
# what fits where (estimates)

CODET5 = {
    # name: (d_model, layers per stack, heads, d_ff, vocab); d_kv = d_model / heads; tied
    "codet5-small": (512, 6, 8, 2048, 32100),
    "codet5-base": (768, 12, 12, 3072, 32100),
    "codet5-large": (1024, 24, 16, 4096, 32100),
}
ACCELERATORS = {  # per-chip memory, GiB
    "TPU v5e": 16,
    "TPU v4": 32,
    "A100-40GB": 40,
    "A100-80GB": 80,
    "H100-80GB": 80,
}
DECODERS = {
    # name: (hidden, layers, heads, kv heads, head_dim, mlp size, vocab, tied, q/k/v bias)
    "qwen2.5-coder-0.5b": (896, 24, 14, 2, 64, 4864, 151936, True, True),
    "qwen2.5-coder-1.5b": (1536, 28, 12, 2, 128, 8960, 151936, True, True),
    "llama-3.2-1b": (2048, 16, 32, 8, 64, 8192, 128256, True, False),
}


def decoder_param_count(d, layers, heads, kv, hd, d_ff, vocab, tied, bias) -> int:
    """Llama / Qwen2 (+ value head): embeddings, q/k/v/o, SwiGLU MLP, two norms per layer."""
    attn = d * heads * hd * 2 + d * kv * hd * 2 + (heads * hd + 2 * kv * hd if bias else 0)
    layer = attn + 3 * d * d_ff + 2 * d
    return vocab * d * (1 if tied else 2) + layers * layer + d + (d + 1)


def decoder_activation_bytes(d, layers, heads, kv, hd, d_ff, vocab, tied, bias, b, s, t,
                             act_bytes=4) -> float:  # fmt: skip
    """ESTIMATE of what one teacher-forced train-step forward keeps for the backward pass (no
    remat), micro-batch b, prompt s, response t: the model runs over n = s + t tokens. Kept per
    token and layer: 4d (two norms' in/out) + 2d (attention and MLP outputs) + q, k, v,
    attention out (2 heads*hd + 2 kv*hd) + 3 d_ff (gate, up, their product) + heads*n softmax
    probabilities, in the compute dtype; plus 3 [t, vocab] fp32 tensors (logits, log-softmax,
    their gradient) on the response positions only."""
    n = s + t
    per_token = 6 * d + 2 * heads * hd + 2 * kv * hd + 3 * d_ff + heads * n
    return float(b * (act_bytes * n * layers * per_token + 4 * 3 * t * vocab))


def t5_param_count(d, layers, heads, d_ff, vocab, buckets=32) -> int:
    """T5 v1.0 (tied embeddings, ReLU FFN) + value head."""
    attn = 4 * d * d
    ffn = 2 * d * d_ff
    enc = layers * (attn + ffn + 2 * d) + d + buckets * heads
    dec = layers * (2 * attn + ffn + 3 * d) + d + buckets * heads
    return vocab * d + enc + dec + (d + 1)


def state_bytes_per_param(ref_bf16: bool) -> dict[str, int]:
    return {
        "policy params fp32": 4,
        "gradients fp32": 4,
        "AdamW mu fp32": 4,
        "AdamW nu fp32": 4,
        "reference " + ("bf16" if ref_bf16 else "fp32"): 2 if ref_bf16 else 4,
    }


def activation_bytes(d, layers, heads, d_ff, vocab, b, s, t, act_bytes=4) -> float:
    """ESTIMATE of what one train-step forward keeps for the backward pass (no remat), for a
    micro-batch of b rows, prompt s, response t.  Elements kept per token and layer:
    encoder 8d + d_ff + heads*s (LN in/out, q k v, attention out, FFN in/out, softmax probs);
    decoder 11d + d_ff + heads*(t + s) (two attentions) and 2d per prompt token (cross k, v);
    plus 3 [t, vocab] tensors (logits, log-softmax, their gradient)."""
    enc = s * layers * (8 * d + d_ff + heads * s)
    dec = t * layers * (11 * d + d_ff + heads * (t + s)) + s * layers * 2 * d
    head = 3 * t * vocab
    return float(act_bytes * b * (enc + dec + head))


def memory_table(batch: int, s: int, t: int, micro: int) -> str:
    gib = 2.0**30
    lines = []
    for ref_bf16 in (False, True):
        per = state_bytes_per_param(ref_bf16)
        total = sum(per.values())
        parts = " + ".join(f"{v} ({k})" for k, v in per.items())
        lines.append(
            f"bytes/parameter, reference {'bf16' if ref_bf16 else 'fp32'}: {parts} = {total}"
        )
    lines.append(
        f"activations: ESTIMATE for a micro-batch of {micro} (prompt {s}, response {t}), fp32, "
        "no rematerialisation; see activation_bytes() for the formula"
    )
    lines.append(
        f"rollout statistics (policy + reference forward, no grad) over the batch of {batch}: "
        f"~4 [B, T, vocab] fp32 tensors = {4 * batch * t * 32100 * 4 / gib:.2f} GiB"
    )
    header = (
        f"{'model':<13} {'params':>7} {'state fp32-ref':>14} {'state bf16-ref':>14} "
        f"{'act/micro':>9}  minimum chips (FSDP over N, fp32 ref; 10% headroom)"
    )
    lines.append(header)
    for name, dims in CODET5.items():
        n = t5_param_count(*dims)
        st32 = n * sum(state_bytes_per_param(False).values())
        st16 = n * sum(state_bytes_per_param(True).values())
        act = activation_bytes(*dims, micro, s, t)
        fits = []
        for acc, mem in ACCELERATORS.items():
            usable = 0.9 * mem * gib
            chips = next((c for c in (1, 2, 4, 8, 16, 32, 64) if st32 / c + act <= usable), None)
            fits.append(f"{acc}: {chips if chips else '>64'}")
        lines.append(
            f"{name:<13} {n / 1e6:>6.0f}M {st32 / gib:>11.2f}GiB {st16 / gib:>11.2f}GiB "
            f"{act / gib:>7.2f}GiB  " + ", ".join(fits)
        )
    lines.append("decoder-only (params and optimizer fp32; activations in the compute dtype)")
    for name, dims in DECODERS.items():
        n = decoder_param_count(*dims)
        st32 = n * sum(state_bytes_per_param(False).values())
        for dtype, act_bytes in (("fp32", 4), ("bf16", 2)):
            act = decoder_activation_bytes(*dims, micro, s, t, act_bytes=act_bytes)
            fits = []
            for acc, mem in ACCELERATORS.items():
                usable = 0.9 * mem * gib
                chips = next(
                    (c for c in (1, 2, 4, 8, 16, 32, 64) if st32 / c + act <= usable), None
                )
                fits.append(f"{acc}: {chips if chips else '>64'}")
            label = f"{name} {dtype}"
            lines.append(
                f"{label:<23} {n / 1e6:>6.0f}M {st32 / gib:>7.2f}GiB {act / gib:>7.2f}GiB  "
                + ", ".join(fits)
            )
    lines.append(
        "(the state shards over FSDP chips; activations are per chip for its micro-batch; "
        "XLA's buffer reuse and fusion make real peaks differ: measure with memory_stats())"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# driver


def flop_report(workers, rows, base) -> None:
    """Achieved GFLOP/s per side at XLA's FLOP count, and the ratio the matmul rate allows."""
    jax_workers = [w for w in workers if "gflop_per_iter" in w.ready]
    if not jax_workers:
        return
    print("\nwork (XLA cost analysis of the compiled programs; torch-authors does the work of")
    print("jax-reference: the same model, shapes and one-sample schedule):")
    ref = next((w for w in jax_workers if w.side == "jax-reference"), None)
    rate = max(w.ready["matmul_gflops"] for w in jax_workers)
    for w in workers:
        if w.side == "torch-authors":
            if ref is None:
                continue
            gflop = ref.ready["gflop_per_iter"]
        else:
            gflop = w.ready["gflop_per_iter"]
        med = rows[w.side][0]
        line = f"  {w.side:<14} {gflop:9.1f} GFLOP/iter {gflop / med:9.1f} GFLOP/s"
        if base and ref is not None and w.side != "torch-authors":
            # even with every FLOP at the best matmul rate it could not beat gflop / rate
            bound = base[0] / (gflop / rate)
            line += f"   at most {bound:.1f}x vs torch at the best matmul rate"
        print(line)
    print(f"  best matmul rate on the model's shapes on this device: {rate:.1f} GFLOP/s")


def start_worker(side: str, args, model_dir: Path) -> harness.Worker:
    cmd = harness.worker_command(__file__, side, model_dir) + [
        "--size",
        args.size,
        "--batch",
        str(args.batch),
        "--prompt-len",
        str(args.prompt_len),
        "--response-len",
        str(args.response_len),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--precision",
        args.precision,
    ]
    env = dict(os.environ)
    # three workers share one accelerator: no worker may grab 75% of its memory up front
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    return harness.Worker(side, cmd, env, close_timeout=60)


def show_result(w: harness.Worker, res: dict) -> str:
    return f"{w.side:<14} {res['time_s']:8.2f} s  peak RSS {res['peak_rss_mib']:7.0f} MiB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=list(SIZES), default="small")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--response-len", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="timed iterations per side")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per side (default 1: both pinned to one core, see the docstring)",
    )
    p.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cpu (the issue's setting) or cuda: torch on the GPU, JAX on its default GPU backend",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "tf32"),
        default="fp32",
        help="GPU matmul precision on both sides (fp32: no TF32 anywhere)",
    )
    p.add_argument("--quick", action="store_true", help="tiny model, batch 8, 32/32, 2 repeats")
    p.add_argument("--memory-table", action="store_true", help="print the estimates and exit")
    p.add_argument("--micro-batch", type=int, default=8, help="rows per chip (memory table)")
    p.add_argument(
        "--lora-speed",
        action="store_true",
        help="decoder demo PPO iterations, full vs LoRA side by side, and the sampler's two "
        "LoRA options (scripts/_lora_bench.py); uses --repeats",
    )
    args = harness.parse_args(p, SIDES, worker_main)
    if args is None:  # a worker: it has run
        return
    if args.memory_table:
        import _lora_bench

        print(memory_table(args.batch, args.prompt_len, args.response_len, args.micro_batch))
        print()
        print(_lora_bench.memory_rows(args.micro_batch, args.prompt_len, args.response_len))
        return
    if args.lora_speed:
        import _lora_bench

        print(_lora_bench.speed_rows(args.repeats), flush=True)
        print(_lora_bench.sampler_rows())
        return
    if args.quick:
        args.size, args.batch, args.prompt_len, args.response_len = "tiny", 8, 32, 32
        args.repeats = min(args.repeats, 2)

    load = harness.load_average()
    print(
        f"size {args.size} {SIZES[args.size]}, batch {args.batch}, prompt {args.prompt_len}, "
        f"response {args.response_len}, threads {args.threads} (of {os.cpu_count()} cores), "
        f"device {args.device} ({args.precision}), "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
        flush=True,
    )
    workers = harness.take_turns(
        args.sides,
        lambda model_dir: build_hf_model(model_dir, args.size),
        lambda side, model_dir: start_worker(side, args, model_dir),
        args.repeats,
        str,
        show_result,
        prefix="bench_ppo_step_",
    )
    load_end = harness.load_average()[0]

    print(
        f"\nmedians over {args.repeats} interleaved iterations (load average at end "
        f"{load_end:.1f}); warm-up excluded; compile ~= warm-up - median iteration"
    )
    print(
        f"{'side':<14} {'epochs x steps of rows':<34} {'s/iter':>7} {'samples/s':>9} "
        f"{'vs torch':>8} {'grad-samples/s':>14} {'vs torch':>8} {'compile s':>9} "
        f"{'peak RSS MiB':>12}"
    )
    rows = {}
    for w in workers:
        med = statistics.median(r["time_s"] for r in w.results)
        peak = max(r["peak_rss_mib"] for r in w.results)
        rows[w.side] = (med, peak, args.batch / med, args.batch * w.ready["passes"] / med)
    base = rows.get("torch-authors")
    for w in workers:
        med, peak, sps, gps = rows[w.side]
        r1 = f"{sps / base[2]:7.2f}x" if base else "n/a"
        r2 = f"{gps / base[3]:7.2f}x" if base else "n/a"
        compile_s = max(w.ready["warmup_s"] - med, 0.0) if w.side != "torch-authors" else 0.0
        dev = [r["device_peak_mib"] for r in w.results if "device_peak_mib" in r]
        extra = f"  device peak {max(dev):.0f} MiB" if dev else ""
        print(
            f"{w.side:<14} {w.ready['schedule']:<34} {med:7.2f} {sps:9.2f} {r1:>8} "
            f"{gps:14.2f} {r2:>8} {compile_s:9.1f} {peak:12.0f}{extra}"
        )
    print(
        "samples/s: rollout samples through one whole iteration (forwards + GAE + update);\n"
        "grad-samples/s: sample passes through forward+backward+step (epochs x samples) per s;\n"
        "peak RSS: the process's peak resident set during one timed iteration, max over\n"
        "iterations (weights, optimizer state, activations, the framework itself)"
    )
    flop_report(workers, rows, base)
    if base and "jax-default" in rows:
        ratio = rows["jax-default"][2] / base[2]
        verdict = "met" if ratio >= 5 else "NOT met"
        print(f"floor 5x samples/s (jax-default vs torch-authors): {verdict} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
