"""The one host-side sampler: prompt text -> ids -> bucketed shapes -> jitted `sample` -> text.

    Sampler(policy, rollout_cfg=None, *, mesh=None, dtype=jnp.float32, batch_multiple=8,
            max_source_length=512)
        .encode(tokenizer, texts) -> list of prompt ids      (long prompts keep their end)
        .prompt_arrays(seqs) -> (ids, mask)                   (bucketed, padded on the policy's side)
        .place_params(params) -> params          (replicated over the mesh when there is one)
        (params, prompt_ids, prompt_mask, rng, *, sampling=None, max_new_tokens=None,
         num_samples=None, return_padded=False) -> RolloutBatch   (real rows, T = max_new_tokens)
        .sample_arrays(params, prompt_ids, prompt_mask, rng, ...) -> RolloutBatch  (as placed)
        .decode(tokenizer, tokens, token_mask) -> texts
        .generate(params, tokenizer, prompts, rng, ...) -> (RolloutBatch, texts)

Training rollouts, evaluation and `ppocoder generate` all go through it, so they truncate,
bucket, stop and decode alike: the same prompt, key and sampling settings give the same text.

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
from ppocoder_jax.model.families import as_policy
from ppocoder_jax.rollout.sampler import RolloutBatch, SamplingParams, _as_key, _sample_jit


def bucket_length(n: int, buckets, cap: int | None = None) -> int:
    """Smallest bucket >= n; beyond the largest, the next multiple of the largest; never above
    `cap` (when given and >= n)."""
    n = max(int(n), 1)
    out = None
    for b in sorted(buckets):
        if b >= n:
            out = int(b)
            break
    if out is None:
        top = max(buckets)
        out = int(math.ceil(n / top) * top)
    if cap is not None and n <= cap:
        out = min(out, int(cap))
    return out


def round_up(n: int, multiple: int) -> int:
    return int(math.ceil(max(n, 1) / multiple) * multiple)


def pad_prompts(seqs, length: int, pad_id: int, side: str) -> tuple[np.ndarray, np.ndarray]:
    """int32 (ids, mask) [len(seqs), length]; `side` = "right" | "left" is where padding goes."""
    ids = np.full((len(seqs), length), pad_id, np.int32)
    mask = np.zeros((len(seqs), length), np.int32)
    for i, seq in enumerate(seqs):
        seq = list(seq)[-length:] if side == "left" else list(seq)[:length]
        if not seq:
            continue
        if side == "left":
            ids[i, length - len(seq) :] = seq
            mask[i, length - len(seq) :] = 1
        else:
            ids[i, : len(seq)] = seq
            mask[i, : len(seq)] = 1
    return ids, mask


class Sampler:
    def __init__(
        self,
        policy,
        rollout_cfg: RolloutConfig | None = None,
        *,
        mesh=None,
        dtype=jnp.float32,
        batch_multiple: int = 8,
        max_source_length: int = 512,
    ):
        self.policy = as_policy(policy)
        self.rollout = rollout_cfg or RolloutConfig()
        self.mesh = mesh
        self.dtype = jnp.dtype(dtype).name
        self.batch_multiple = batch_multiple
        self.max_source_length = int(max_source_length)
        if mesh is not None:
            from ppocoder_jax.parallel.mesh import num_batch_shards

            shards = num_batch_shards(mesh)
            self.batch_multiple = batch_multiple * shards // math.gcd(batch_multiple, shards)
        self.shapes_seen: set[tuple] = set()  # (batch, prompt_len, out_len, n, sampling)

    # -- text <-> ids --------------------------------------------------------------------------

    def encode(self, tokenizer, texts) -> list[list[int]]:
        """Prompt ids; a prompt over max_source_length keeps its end (see Policy.encode_prompt)."""
        return [self.policy.encode_prompt(tokenizer, t, self.max_source_length) for t in texts]

    def prompt_arrays(self, seqs) -> tuple[np.ndarray, np.ndarray]:
        """Prompt ids padded on the policy's side to the bucket of the longest."""
        length = bucket_length(
            max(len(s) for s in seqs), self.rollout.length_buckets, self.max_source_length
        )
        return pad_prompts(seqs, length, self.policy.pad_id, self.policy.pad_side)

    def decode(self, tokenizer, tokens, token_mask) -> list[str]:
        return decode_tokens(tokenizer, tokens, token_mask, self.policy.eos_ids)

    def cut_at_stops(self, tokenizer, tokens, token_mask):
        """(token_mask, texts) of host rows after `rollout.stop` (rollout/stops.py): a row
        ends at the token that completes a stop string, its text right before it. Without
        stop strings: the mask as it is and the plain decode."""
        if not self.rollout.stop:
            return token_mask, self.decode(tokenizer, tokens, token_mask)
        from ppocoder_jax.rollout.stops import truncate_at_stops

        return truncate_at_stops(
            tokenizer, tokens, token_mask, list(self.rollout.stop), self.policy.eos_ids
        )

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

    def place_batch(self, *arrays):
        """Batch arrays on the device(s): split along ('data', 'fsdp') with a mesh."""
        if self.mesh is None:
            return tuple(jnp.asarray(a) for a in arrays)
        from ppocoder_jax.parallel.mesh import shard_batch

        return tuple(shard_batch(list(arrays), self.mesh))

    # -- sampling ------------------------------------------------------------------------------

    def padded_shapes(self, batch: int, prompt_len: int, max_new_tokens: int):
        return (
            round_up(batch, self.batch_multiple),
            bucket_length(
                prompt_len, self.rollout.length_buckets, max(self.max_source_length, prompt_len)
            ),
            bucket_length(max_new_tokens, self.rollout.length_buckets),
        )

    def _defaults(self, sampling, max_new_tokens, num_samples):
        """(sampling, max_new_tokens, num_samples), each unset one from the rollout config."""
        return (
            sampling or SamplingParams.from_config(self.rollout),
            int(max_new_tokens or self.rollout.max_new_tokens),
            int(num_samples or self.rollout.num_samples),
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
        sampling, max_new_tokens, n = self._defaults(sampling, max_new_tokens, num_samples)
        ids = np.asarray(prompt_ids, np.int32)
        mask = np.asarray(prompt_mask, np.int32)
        if ids.ndim != 2 or ids.shape != mask.shape or ids.shape[0] == 0:
            raise ValueError(f"prompt_ids/prompt_mask must be equal [B,S], B > 0: {ids.shape}")
        batch = ids.shape[0]
        left = self.policy.pad_side == "left"
        used = np.nonzero(mask.any(axis=0))[0]
        if not used.size:
            start, stop = ids.shape[1] - 1 if left else 0, ids.shape[1] if left else 1
        else:
            start, stop = (int(used[0]), ids.shape[1]) if left else (0, int(used[-1]) + 1)
        length = stop - start
        padded_batch, padded_len, out_len = self.padded_shapes(batch, length, max_new_tokens)
        ids_p = np.full((padded_batch, padded_len), self.policy.pad_id, np.int32)
        mask_p = np.zeros((padded_batch, padded_len), np.int32)
        cols = slice(padded_len - length, padded_len) if left else slice(0, length)
        ids_p[:batch, cols] = ids[:, start:stop]
        mask_p[:batch, cols] = mask[:, start:stop]
        ids_p[batch:] = ids_p[batch - 1]  # padding rows: copies of a real prompt
        mask_p[batch:] = mask_p[batch - 1]
        ids_d, mask_d = self.place_batch(ids_p, mask_p)
        self.shapes_seen.add((padded_batch, padded_len, out_len, n, sampling))
        out = self._sample(params, ids_d, mask_d, rng, sampling, max_new_tokens, out_len, n)
        if return_padded:
            return out
        rows = batch * n
        keep = slice(padded_len - length, padded_len) if left else slice(0, length)
        return RolloutBatch(
            prompt_ids=out.prompt_ids[:rows, keep],
            prompt_mask=out.prompt_mask[:rows, keep],
            tokens=out.tokens[:rows, :max_new_tokens],
            token_mask=out.token_mask[:rows, :max_new_tokens],
            logprobs=out.logprobs[:rows, :max_new_tokens],
            values=out.values[:rows, :max_new_tokens],
            lengths=out.lengths[:rows],
        )

    def sample_arrays(
        self,
        params,
        prompt_ids,
        prompt_mask,
        rng,
        *,
        sampling: SamplingParams | None = None,
        max_new_tokens: int | None = None,
        num_samples: int | None = None,
    ) -> RolloutBatch:
        """Sample from prompt arrays as they are (already bucketed and placed: the trainer's
        global batch); only the output buffer is bucketed."""
        sampling, max_new_tokens, n = self._defaults(sampling, max_new_tokens, num_samples)
        out_len = bucket_length(max_new_tokens, self.rollout.length_buckets)
        out = self._sample(
            params, prompt_ids, prompt_mask, rng, sampling, max_new_tokens, out_len, n
        )
        if out_len == max_new_tokens:
            return out
        return out._replace(
            tokens=out.tokens[:, :max_new_tokens],
            token_mask=out.token_mask[:, :max_new_tokens],
            logprobs=out.logprobs[:, :max_new_tokens],
            values=out.values[:, :max_new_tokens],
        )

    def _sample(self, params, ids, mask, rng, sampling, max_new_tokens, out_len, n):
        return _sample_jit(
            self.place_params(params),
            ids,
            mask,
            _as_key(rng),
            max_new_tokens,
            cfg=self.policy,
            sampling=sampling,
            out_len=out_len,
            num_samples=n,
            dtype=self.dtype,
        )

    def generate(
        self, params, tokenizer, prompts: list[str], rng, **kwargs
    ) -> tuple[RolloutBatch, list[str]]:
        """Tokenise `prompts`, sample, decode: texts[i*n + j] is sample j of prompt i."""
        ids, mask = self.prompt_arrays(self.encode(tokenizer, prompts))
        out = self(params, ids, mask, rng, **kwargs)
        return out, self.decode(tokenizer, out.tokens, out.token_mask)


def generated_ids(tokens, token_mask, eos_ids) -> list[list[int]]:
    """Per row, the generated ids up to (excluding) the end-of-sequence token."""
    eos = {int(eos_ids)} if np.ndim(eos_ids) == 0 else {int(e) for e in eos_ids}
    tokens = np.asarray(tokens)
    token_mask = np.asarray(token_mask)
    out = []
    for row, m in zip(tokens, token_mask):
        ids = [int(t) for t in row[m.astype(bool)]]
        if ids and ids[-1] in eos:
            ids = ids[:-1]
        out.append(ids)
    return out


def decode_tokens(tokenizer, tokens, token_mask, eos_ids) -> list[str]:
    """Generated ids -> text, special tokens dropped, and the text kept exactly as tokenised
    (no clean-up of spaces around punctuation: it would change programs)."""
    return [
        tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        for ids in generated_ids(tokens, token_mask, eos_ids)
    ]
