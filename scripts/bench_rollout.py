#!/usr/bin/env python
"""New tokens per second: our jitted sampler vs transformers' PyTorch `generate`, same weights.

    .venv/bin/python scripts/bench_rollout.py [--family t5|decoder] [--batch 8 32]
        [--new-tokens 128] [--prompt-len 64] [--top-k 5] [--repeats 3]
        [--dtypes float32 bfloat16] [--hf-dtypes float32 bfloat16] [--threads N] [--small]

The model is random, built in transformers, saved, and loaded by ours from that directory
through our HF import (`ppocoder_jax.model.store.load_hf_model`, as users import a model):
`--family t5` (default): a CodeT5-small-sized T5 (d_model 512, 6+6 layers, 8 heads, d_kv 64,
d_ff 2048, vocab 32100, ReLU, tied: T5 v1.0 as CodeT5); prompts end with `</s>`.
`--family decoder`: a Qwen2ForCausalLM of comparable size (hidden 512, MLP 2048, 8 layers,
8 attention heads of 64 / 2 KV heads, q/k/v biases, vocab 32000, tied embeddings); prompts are
`--prompt-len` random real tokens (no padding, no BOS), and transformers' output, which
includes the prompt, counts out.shape[1] - prompt_len new tokens.
`--small` makes either a tiny model (smoke test of the script).

Both sides sample (top-k, temperature 1, top-p 1) exactly `--new-tokens` new tokens per row:
end-of-sequence is forbidden until then on both sides (transformers' `min_new_tokens`, our
`SamplingParams.min_new_tokens`), and the script checks the counts. Warm-up runs (jit compile
for ours) are excluded from the timings and reported separately. Runs alternate between the two
sides; the best of `--repeats` is reported.
Both sides use the same CPU: `--threads` sets torch's threads (default: the cores this process
may use); XLA's CPU pool uses every core it may use. On a shared machine pin the process to one
core (`taskset -c 0 ... --threads 1`): with 2 threads on 2 busy cores torch's OpenMP threads
slow down several-fold, which would flatter our sampler. The README has both, measured idle.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


EOS, PAD = 2, 0  # both families' special ids (the decoder's BOS is 1, never used)


def build_t5(small: bool):
    from transformers import T5Config, T5ForConditionalGeneration

    dims = dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8, vocab_size=32100)
    if small:
        dims = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, vocab_size=1000)
    cfg = T5Config(
        **dims,
        num_decoder_layers=dims["num_layers"],
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
        dropout_rate=0.0,
    )
    desc = (
        f"T5 v1.0: d_model {cfg.d_model}, {cfg.num_layers}+{cfg.num_decoder_layers} layers, "
        f"{cfg.num_heads} heads of {cfg.d_kv}, d_ff {cfg.d_ff}"
    )
    return T5ForConditionalGeneration(cfg), desc


def build_decoder(small: bool):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    dims = dict(
        hidden_size=512, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=8,
        num_key_value_heads=2, vocab_size=32000,
    )  # fmt: skip
    if small:
        dims = dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=1000,
        )  # fmt: skip
    cfg = Qwen2Config(
        **dims,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    desc = (
        f"Qwen2: hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, "
        f"{cfg.num_attention_heads} heads / {cfg.num_key_value_heads} KV heads of "
        f"{cfg.hidden_size // cfg.num_attention_heads}, MLP {cfg.intermediate_size}"
    )
    return Qwen2ForCausalLM(cfg), desc


def build_hf_model(out_dir: Path, family: str, small: bool):
    """(random transformers model of `family`, saved to out_dir, in eval mode; a description)."""
    import torch

    torch.manual_seed(0)
    model, desc = {"t5": build_t5, "decoder": build_decoder}[family](small)
    model = model.eval()
    model.save_pretrained(out_dir)
    return model, desc


def make_prompts(family: str, batch: int, prompt_len: int, vocab: int):
    """(ids, mask) [batch, prompt_len] int32: random real tokens, no padding."""
    import numpy as np

    rng = np.random.default_rng(batch)
    ids = rng.integers(3, vocab, (batch, prompt_len)).astype(np.int32)
    if family == "t5":
        ids[:, -1] = EOS  # </s> ends the encoder's input, as the tokenizer would
    return ids, np.ones_like(ids)


def hf_generate(model, ids, mask, args) -> tuple[int, int]:
    """transformers' sampling; (rows, new tokens per row) of its output."""
    import torch

    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=True,
            top_k=args.top_k,
            top_p=1.0,
            temperature=1.0,
            max_new_tokens=args.new_tokens,
            min_new_tokens=args.new_tokens,
        )
    # T5: drop the decoder start token; decoder-only: the output starts with the prompt. No
    # row can end before min_new_tokens, so every row has exactly new_tokens new tokens when
    # the count says so.
    prefix = 1 if args.family == "t5" else ids.shape[1]
    return out.shape[0], out.shape[1] - prefix


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", choices=["t5", "decoder"], default="t5")
    p.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--hf-dtypes", nargs="+", default=["float32"])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--small", action="store_true", help="a tiny model (smoke test of the script)")
    args = p.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from ppocoder_jax.model.store import load_hf_model
    from ppocoder_jax.rollout import SamplingParams, sample

    torch.set_num_threads(args.threads)
    print(
        f"# devices: jax {jax.devices()[0].platform} x{jax.device_count()} "
        f"(XLA CPU pool: {len(os.sched_getaffinity(0))} usable cores), torch threads "
        f"{torch.get_num_threads()}, machine cores {os.cpu_count()}; jax {jax.__version__}, torch {torch.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        hf, desc = build_hf_model(Path(tmp), args.family, args.small)
        params, cfg, _ = load_hf_model(tmp, decoders=True)
    params = jax.device_put(params)
    hf_models = {"float32": hf}
    if "bfloat16" in args.hf_dtypes:
        import copy

        hf_models["bfloat16"] = copy.deepcopy(hf).to(torch.bfloat16)
    n_params = sum(x.numel() for x in hf.parameters())
    print(
        f"# model: family {args.family}, {desc}, {n_params / 1e6:.1f}M params, vocab "
        f"{cfg.vocab_size}; {args.new_tokens} new tokens, prompt length {args.prompt_len}, "
        f"top-k {args.top_k}, best of {args.repeats}"
    )

    sp = SamplingParams(top_k=args.top_k, min_new_tokens=args.new_tokens)
    rows = []
    for batch in args.batch:
        ids, mask = make_prompts(args.family, batch, args.prompt_len, cfg.vocab_size)
        t_ids, t_mask = torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)
        j_ids, j_mask = jnp.asarray(ids), jnp.asarray(mask)

        def ours(dtype, seed, j_ids=j_ids, j_mask=j_mask):
            out = sample(params, cfg, j_ids, j_mask, jax.random.PRNGKey(seed), sp,
                         args.new_tokens, dtype=dtype)  # fmt: skip
            return int(np.asarray(out.token_mask).sum())

        # warm-up (compile) runs, timed separately
        for dt in args.dtypes:
            t0 = time.perf_counter()
            got = ours(jnp.dtype(dt), 0)
            print(f"# batch {batch}: ours {dt} first call (compile + run) "
                  f"{time.perf_counter() - t0:.1f}s", flush=True)  # fmt: skip
            assert got == batch * args.new_tokens, got
        for model in hf_models.values():
            torch.manual_seed(0)
            hf_generate(model, t_ids, t_mask, argparse.Namespace(**{**vars(args), "new_tokens": 4}))

        best: dict[str, float] = {}
        for r in range(args.repeats):
            for hdt, model in hf_models.items():
                torch.manual_seed(r)
                t0 = time.perf_counter()
                shape = hf_generate(model, t_ids, t_mask, args)
                dt_s = time.perf_counter() - t0
                assert shape == (batch, args.new_tokens), shape
                best[f"hf-{hdt}"] = min(best.get(f"hf-{hdt}", 1e9), dt_s)
                print(f"#   batch {batch} run {r}: transformers {hdt} {dt_s:.2f}s", flush=True)
            for dt in args.dtypes:
                t0 = time.perf_counter()
                got = ours(jnp.dtype(dt), r + 1)
                dt_s = time.perf_counter() - t0
                assert got == batch * args.new_tokens, got
                best[f"ours-{dt}"] = min(best.get(f"ours-{dt}", 1e9), dt_s)
                print(f"#   batch {batch} run {r}: ours {dt} {dt_s:.2f}s", flush=True)
        tokens = batch * args.new_tokens
        for name, secs in best.items():
            rows.append((batch, name, tokens / secs, secs))

    print()
    print("| batch | sampler | new tokens/s | seconds | vs transformers fp32 |")
    print("|---:|---|---:|---:|---:|")
    base = {b: tps for b, n, tps, _ in rows if n == "hf-float32"}
    for batch, name, tps, secs in rows:
        print(f"| {batch} | {name} | {tps:.0f} | {secs:.2f} | {tps / base[batch]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
