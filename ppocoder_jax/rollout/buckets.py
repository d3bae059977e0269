"""Host-side wrapper around `sample` that bounds recompilation and shards the batch.

    Sampler(cfg, rollout_cfg=None, *, mesh=None, dtype=jnp.float32, batch_multiple=8)
        .place_params(params) -> params          (replicated over the mesh when there is one)
        (params, prompt_ids, prompt_mask, rng, *, sampling=None, max_new_tokens=None,
         num_samples=None, return_padded=False) -> RolloutBatch   (real rows, T = max_new_tokens)
        .generate(params, tokenizer, prompts, rng, ...) -> (RolloutBatch, texts)

Shapes are rounded up before the jitted call: the prompt length (after dropping all-padding
columns) to a `RolloutConfig.length_buckets` entry, the output buffer to a bucket as well (the
loop still stops at `max_new_tokens`), and the batch to a multiple of `batch_multiple` (and of
the mesh's data*fsdp shards). Padding rows repeat the last prompt and are dropped from the
result; a row's samples do not depend on them (per-row random keys), so bucketing changes no
token. With a mesh, prompts are placed split along ('data', 'fsdp') and the whole loop runs
sharded by batch; params are used as given when they already live on the mesh, else replicated.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ppocoder_jax.config import RolloutConfig
from ppocoder_jax.rollout.sampler import RolloutBatch, SamplingParams, _as_key, _sample_jit


def bucket_length(n: int, buckets) -> int:
    """Smallest bucket >= n; beyond the largest, the next multiple of the largest."""
    n = max(int(n), 1)
    for b in sorted(buckets):
        if b >= n:
            return int(b)
    top = max(buckets)
    return int(math.ceil(n / top) * top)


def round_up(n: int, multiple: int) -> int:
    return int(math.ceil(max(n, 1) / multiple) * multiple)


class Sampler:
    def __init__(
        self,
        cfg,
        rollout_cfg: RolloutConfig | None = None,
        *,
        mesh=None,
        dtype=jnp.float32,
        batch_multiple: int = 8,
    ):
        self.cfg = cfg
        self.rollout = rollout_cfg or RolloutConfig()
        self.mesh = mesh
        self.dtype = jnp.dtype(dtype).name
        self.batch_multiple = batch_multiple
        if mesh is not None:
            from ppocoder_jax.parallel.mesh import num_batch_shards

            shards = num_batch_shards(mesh)
            self.batch_multiple = batch_multiple * shards // math.gcd(batch_multiple, shards)
        self.shapes_seen: set[tuple] = set()  # (batch, prompt_len, out_len, n, sampling)

    # -- placement -----------------------------------------------------------------------------

    def place_params(self, params):
        """Params on the mesh: leaves already on it stay as they are, others are replicated."""
        if self.mesh is None:
            return params
        from ppocoder_jax.parallel.mesh import replicated

        def put(x):
            sharding = getattr(x, "sharding", None)
            if getattr(sharding, "mesh", None) == self.mesh:
                return x
            return jax.device_put(x, replicated(self.mesh))

        return jax.tree.map(put, params)

    def _place_batch(self, *arrays):
        if self.mesh is None:
            return tuple(jnp.asarray(a) for a in arrays)
        from ppocoder_jax.parallel.mesh import shard_batch

        return tuple(shard_batch(list(arrays), self.mesh))

    # -- sampling ------------------------------------------------------------------------------

    def padded_shapes(self, batch: int, prompt_len: int, max_new_tokens: int):
        return (
            round_up(batch, self.batch_multiple),
            bucket_length(prompt_len, self.rollout.length_buckets),
            bucket_length(max_new_tokens, self.rollout.length_buckets),
        )

    def __call__(
        self,
        params,
        prompt_ids,
        prompt_mask,
        rng,
        *,
        sampling: SamplingParams | None = None,
        max_new_tokens: int | None = None,
        num_samples: int | None = None,
        return_padded: bool = False,
    ) -> RolloutBatch:
        """Sample; `return_padded` keeps the padding rows / columns (the arrays as computed)."""
        sampling = sampling or SamplingParams.from_config(self.rollout)
        max_new_tokens = int(max_new_tokens or self.rollout.max_new_tokens)
        n = int(num_samples or self.rollout.num_samples)
        ids = np.asarray(prompt_ids, np.int32)
        mask = np.asarray(prompt_mask, np.int32)
        if ids.ndim != 2 or ids.shape != mask.shape or ids.shape[0] == 0:
            raise ValueError(f"prompt_ids/prompt_mask must be equal [B,S], B > 0: {ids.shape}")
        batch = ids.shape[0]
        used = np.nonzero(mask.any(axis=0))[0]
        length = int(used[-1]) + 1 if used.size else 1
        padded_batch, padded_len, out_len = self.padded_shapes(batch, length, max_new_tokens)
        ids_p = np.zeros((padded_batch, padded_len), np.int32)
        mask_p = np.zeros((padded_batch, padded_len), np.int32)
        keep = min(length, ids.shape[1])
        ids_p[:batch, :keep] = ids[:, :keep]
        mask_p[:batch, :keep] = mask[:, :keep]
        ids_p[batch:] = ids_p[batch - 1]  # padding rows: copies of a real prompt
        mask_p[batch:] = mask_p[batch - 1]
        ids_d, mask_d = self._place_batch(ids_p, mask_p)
        self.shapes_seen.add((padded_batch, padded_len, out_len, n, sampling))
        out = _sample_jit(
            self.place_params(params),
            ids_d,
            mask_d,
            _as_key(rng),
            max_new_tokens,
            cfg=self.cfg,
            sampling=sampling,
            out_len=out_len,
            num_samples=n,
            dtype=self.dtype,
        )
        if return_padded:
            return out
        rows = batch * n
        trimmed = RolloutBatch(
            prompt_ids=out.prompt_ids[:rows, :length],
            prompt_mask=out.prompt_mask[:rows, :length],
            tokens=out.tokens[:rows, :max_new_tokens],
            token_mask=out.token_mask[:rows, :max_new_tokens],
            logprobs=out.logprobs[:rows, :max_new_tokens],
            values=out.values[:rows, :max_new_tokens],
            lengths=out.lengths[:rows],
        )
        return trimmed

    def generate(
        self,
        params,
        tokenizer,
        prompts: list[str],
        rng,
        *,
        max_source_length: int = 512,
        **kwargs,
    ) -> tuple[RolloutBatch, list[str]]:
        """Tokenise `prompts`, sample, decode: texts[i*n + j] is sample j of prompt i."""
        ids, mask = encode_prompts(tokenizer, prompts, max_source_length)
        out = self(params, ids, mask, rng, **kwargs)
        return out, decode_tokens(tokenizer, out.tokens, out.token_mask, self.cfg.eos_token_id)


def encode_prompts(tokenizer, prompts: list[str], max_source_length: int):
    """Right-padded int32 (ids, mask) with the tokenizer's special tokens (CodeT5: <s> .. </s>)."""
    enc = tokenizer(
        list(prompts), truncation=True, max_length=max_source_length, add_special_tokens=True
    )
    rows = enc["input_ids"]
    width = max(1, max(len(r) for r in rows))
    ids = np.zeros((len(rows), width), np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


def generated_ids(tokens, token_mask, eos_token_id: int) -> list[list[int]]:
    """Per row, the generated ids up to (excluding) `</s>`."""
    tokens = np.asarray(tokens)
    token_mask = np.asarray(token_mask)
    out = []
    for row, m in zip(tokens, token_mask):
        ids = [int(t) for t in row[m.astype(bool)]]
        if ids and ids[-1] == eos_token_id:
            ids = ids[:-1]
        out.append(ids)
    return out


def decode_tokens(tokenizer, tokens, token_mask, eos_token_id: int) -> list[str]:
    return [
        tokenizer.decode(ids, skip_special_tokens=True)
        for ids in generated_ids(tokens, token_mask, eos_token_id)
    ]
