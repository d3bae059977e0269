#!/usr/bin/env python
"""The fused LM head against whole logits: the PPO step's temporary memory and its CPU time.

    .venv/bin/python scripts/bench_lm_head.py [--memory] [--time] [--json PATH]

Both sides run the same PPO loss-and-gradient program (`build_loss_and_grads`: teacher-forced
pass, clipped policy loss, value loss, entropy bonus, backward) and differ only in how the
per-token log-prob and entropy come out of the model:

* `fused`: `Policy.token_stats` (model/lm_head.py, what the trainer runs): the head chunk by
  chunk over the sequence, custom VJP, no [B, T, V] array;
* `whole`: `Policy.score` -> [B, T, V] fp32 logits -> log_softmax, take, entropy (the path
  before the fused head).

`--memory`: XLA's `memory_analysis()` of the compiled step at a Qwen2.5-0.5B shape (24 layers,
d 896, 14 heads / 2 KV heads, SwiGLU 4864, vocab 151,936, tied), batch 8, prompt 64 + response
1024 tokens, fp32 and bf16 compute, without and with per-layer rematerialisation
(`model.remat`). Compiled from abstract shapes: no weights are made.
`--time`: the step's wall time on this machine's CPU at the codet5-small shape (6+6 layers,
d 512, vocab 32,100), batch 8, prompt 64 + response 64, sides interleaved, medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from ppocoder_jax.config import PPOConfig  # noqa: E402
from ppocoder_jax.model import decoder, t5  # noqa: E402
from ppocoder_jax.model.common import token_logprobs  # noqa: E402
from ppocoder_jax.model.decoder_config import DecoderConfig  # noqa: E402
from ppocoder_jax.model.families import as_policy  # noqa: E402
from ppocoder_jax.model.t5_config import T5Config  # noqa: E402
from ppocoder_jax.ppo.policy_apply import make_apply_fn  # noqa: E402
from ppocoder_jax.ppo.train_step import PPOBatch, build_loss_and_grads  # noqa: E402

QWEN25_05B = {
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "eos_token_id": 151643,
    "pad_token_id": 151643,
}
CODET5_SMALL = T5Config(
    vocab_size=32100, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
    num_heads=8,
)  # fmt: skip
PPO = PPOConfig(vf_coef=0.1, entropy_coef=0.01)


def whole_logits_apply_fn(policy, dtype):
    """The pre-fusion path: [B, T, V] logits, then log-prob of the taken token and entropy."""

    def apply(params, batch, rng):
        del rng
        logits, values = policy.score(
            params, batch.prompt_ids, batch.prompt_mask, batch.tokens, batch.token_mask, dtype
        )
        logp = jax.nn.log_softmax(logits, axis=-1)
        entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
        return token_logprobs(logits, batch.tokens), entropy, values

    return apply


def apply_fns(policy, dtype):
    return {
        "fused": make_apply_fn(policy, dtype, dropout=False),
        "whole": whole_logits_apply_fn(policy, dtype),
    }


def batch_arrays(b: int, s: int, t: int, vocab: int, abstract: bool) -> PPOBatch:
    shapes = {
        "prompt_ids": ((b, s), jnp.int32),
        "prompt_mask": ((b, s), jnp.int32),
        "tokens": ((b, t), jnp.int32),
        "token_mask": ((b, t), jnp.float32),
        "old_logprobs": ((b, t), jnp.float32),
        "ref_logprobs": ((b, t), jnp.float32),
        "old_values": ((b, t), jnp.float32),
        "advantages": ((b, t), jnp.float32),
        "returns": ((b, t), jnp.float32),
    }
    if abstract:
        return PPOBatch(**{k: jax.ShapeDtypeStruct(*v) for k, v in shapes.items()})
    rng = np.random.default_rng(0)
    out = {}
    for k, (shape, dtype) in shapes.items():
        if dtype == jnp.int32:
            out[k] = jnp.asarray(rng.integers(3, vocab, shape), jnp.int32)
        else:
            out[k] = jnp.asarray(rng.standard_normal(shape) * 0.1, jnp.float32)
    out["prompt_mask"] = jnp.ones((b, s), jnp.int32)
    out["token_mask"] = jnp.ones((b, t), jnp.float32)
    out["old_logprobs"] = -jnp.abs(out["old_logprobs"]) - 5.0
    out["ref_logprobs"] = out["old_logprobs"]
    return PPOBatch(**out)


def memory(b: int, s: int, t: int, remats=(False, True)) -> list[dict]:
    cfg = DecoderConfig.from_hf_dict(QWEN25_05B)
    params = decoder.param_shapes(cfg)
    batch = batch_arrays(b, s, t, cfg.vocab_size, abstract=True)
    rng = jax.ShapeDtypeStruct((2,), jnp.uint32)
    rows = []
    for dtype, remat in [(d, r) for d in (jnp.float32, jnp.bfloat16) for r in remats]:
        policy = as_policy(cfg, remat=remat)
        for side, fn in apply_fns(policy, dtype).items():
            start = time.perf_counter()
            compiled = build_loss_and_grads(fn, PPO).lower(params, batch, rng).compile()
            mem = compiled.memory_analysis()
            row = {
                "shape": f"Qwen2.5-0.5B B{b} prompt {s} + response {t}",
                "compute": jnp.dtype(dtype).name,
                "remat": remat,
                "side": side,
                "temp_gib": mem.temp_size_in_bytes / 2**30,
                "args_gib": mem.argument_size_in_bytes / 2**30,
                "out_gib": mem.output_size_in_bytes / 2**30,
                "compile_s": time.perf_counter() - start,
            }
            print(
                f"{row['compute']:>9} remat {str(remat):>5} {side:>6}: temporary {row['temp_gib']:7.2f} GiB "
                f"(arguments {row['args_gib']:.2f}, outputs {row['out_gib']:.2f}; "
                f"compiled in {row['compile_s']:.0f} s)",
                flush=True,
            )
            rows.append(row)
    return rows


def step_time(b: int, s: int, t: int, repeats: int) -> list[dict]:
    cfg = CODET5_SMALL
    policy = as_policy(cfg)
    params = t5.init_params(cfg, jax.random.PRNGKey(0))
    batch = batch_arrays(b, s, t, cfg.vocab_size, abstract=False)
    key = jax.random.PRNGKey(1)
    steps = {k: build_loss_and_grads(fn, PPO) for k, fn in apply_fns(policy, jnp.float32).items()}
    losses = {}
    for side, step in steps.items():  # compile + warm up
        losses[side] = float(jax.block_until_ready(step(params, batch, key))[0])
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for side, step in steps.items():
            start = time.perf_counter()
            jax.block_until_ready(step(params, batch, key))
            times[side].append(time.perf_counter() - start)
    rows = []
    for side, ts in times.items():
        row = {
            "shape": f"codet5-small B{b} prompt {s} + response {t}",
            "side": side,
            "median_s": statistics.median(ts),
            "loss": losses[side],
        }
        print(f"{side:>6}: {row['median_s']:.3f} s per loss+gradient (median of {repeats})")
        rows.append(row)
    fused, whole = (r["median_s"] for r in rows)
    print(f"fused / whole time: {fused / whole:.2f} (< 1: the fused step is faster)")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory", action="store_true", help="temporary memory (compile only)")
    ap.add_argument("--time", action="store_true", help="CPU step time")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--response-len", type=int, default=1024, help="--memory's response length")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--remat", choices=["both", "on", "off"], default="both", help="--memory's model.remat"
    )
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    if not (args.memory or args.time):
        args.memory = args.time = True
    out = {}
    if args.memory:
        remats = {"both": (False, True), "on": (True,), "off": (False,)}[args.remat]
        out["memory"] = memory(args.batch, 64, args.response_len, remats)
        for dtype in ("float32", "bfloat16"):
            for remat in remats:
                side = {
                    r["side"]: r["temp_gib"]
                    for r in out["memory"]
                    if r["compute"] == dtype and r["remat"] == remat
                }
                print(
                    f"{dtype} remat {remat}: fused / whole temporary memory "
                    f"{side['fused'] / side['whole']:.3f}"
                )
    if args.time:
        out["time"] = step_time(args.batch, 64, 64, args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
