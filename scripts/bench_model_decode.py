"""Greedy decoding speed: KV-cached `decode_step` vs recomputing the decoder every step.

    .venv/bin/python scripts/bench_model_decode.py [--d-model 256 --layers 3 --batch 8 --new 64]

Both variants run side by side in one process on the same params and inputs and must produce
the same tokens; report the ratio, not absolute times (the machine is shared).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from ppocoder_jax.model import t5
from ppocoder_jax.model.t5_config import T5Config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = ap.parse_args()

    cfg = T5Config(
        vocab_size=args.vocab,
        d_model=args.d_model,
        d_kv=args.d_model // args.heads,
        d_ff=4 * args.d_model,
        num_layers=args.layers,
        num_decoder_layers=args.layers,
        num_heads=args.heads,
    )
    dtype = jnp.dtype(args.dtype)
    params = t5.init_params(cfg, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    enc_ids = jnp.asarray(rng.integers(3, cfg.vocab_size, (args.batch, args.prompt)), jnp.int32)
    enc_mask = jnp.ones_like(enc_ids)
    n = args.new

    @jax.jit
    def cached(params, enc_ids, enc_mask):
        enc = t5.encode(params, cfg, enc_ids, enc_mask, dtype=dtype)
        cache = t5.init_cache(cfg, enc_ids.shape[0], n, dtype, params=params, enc=enc)

        def body(carry, step):
            token, cache = carry
            logits, _, cache = t5.decode_step(
                params, cfg, token, step, cache, enc, enc_mask, dtype=dtype
            )
            nxt = jnp.argmax(logits, -1).astype(jnp.int32)
            return (nxt, cache), nxt

        start = jnp.zeros(enc_ids.shape[0], jnp.int32)
        _, tokens = jax.lax.scan(body, (start, cache), jnp.arange(n))
        return tokens.T

    @jax.jit
    def recompute(params, enc_ids, enc_mask):
        """Full teacher-forced decoder over the fixed-length buffer at every step."""
        enc = t5.encode(params, cfg, enc_ids, enc_mask, dtype=dtype)
        b = enc_ids.shape[0]

        def body(buf, step):
            hidden = t5._t5(cfg, dtype).apply(
                {"params": params["t5"]}, buf, jnp.ones_like(buf), enc, enc_mask, method="decode"
            )
            logits = t5._t5(cfg, dtype).apply(
                {"params": params["t5"]}, hidden[:, step], method="logits"
            )
            nxt = jnp.argmax(logits, -1).astype(jnp.int32)
            buf = jax.lax.dynamic_update_slice(buf, nxt[:, None], (0, step + 1))
            return buf, nxt

        buf = jnp.zeros((b, n + 1), jnp.int32)
        _, tokens = jax.lax.scan(body, buf, jnp.arange(n))
        return tokens.T

    results = {}
    for name, fn in (("cached decode_step", cached), ("recompute decoder", recompute)):
        out = jax.block_until_ready(fn(params, enc_ids, enc_mask))  # compile
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(params, enc_ids, enc_mask))
            times.append(time.perf_counter() - t0)
        results[name] = (min(times), np.asarray(out))
    same = np.array_equal(results["cached decode_step"][1], results["recompute decoder"][1])
    print(
        f"device={jax.devices()[0].platform} dtype={args.dtype} batch={args.batch} "
        f"prompt={args.prompt} new={n} d_model={cfg.d_model} layers={cfg.num_layers}"
    )
    for name, (t, _) in results.items():
        print(f"  {name:20s} {t * 1000:8.1f} ms  ({args.batch * n / t:8.0f} tokens/s)")
    ratio = results["recompute decoder"][0] / results["cached decode_step"][0]
    print(f"  speed-up of the cache: {ratio:.2f}x; identical greedy tokens: {same}")


if __name__ == "__main__":
    main()
