"""`Experience`: one sampled batch, from the rollout collector to the learner, as one pytree.

B = prompts x rollout.num_samples rows (sample j of prompt i is row i * n + j), all arrays
global and split along the batch over the mesh's ('data', 'fsdp') axes:

    prompt_ids, prompt_mask       [B, S]  int32  the prompts, as the sampler fed them
    tokens, token_mask            [B, T]  int32  the sampled tokens; 1 on generated tokens
    logprobs, values              [B, T]  fp32   the sampling (behaviour) policy's, 0 off-mask
    ref_logprobs                  [B, T]  fp32   the reference's (the policy's own without KL)
    exact_kl                      [B, T]  fp32   full-vocabulary KL per token (kl.estimator=exact)
    scores                        [B]     fp32   the reward's total per sample
    valid                         [B]     fp32   1 = scored, 0 = masked out of the update
    rewards                       {name: [B] fp32}  the reward parts by name
                                                 (`RewardParts.columns()`)

A batch that is sampled but not yet scored (the one waiting under `train.overlap_rollouts`) has
`scores`, `valid` and `rewards` None; that is the pytree a checkpoint holds (`unscored`), and a
resume restores it into `abstract_unscored`'s shapes and shardings.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

# The columns averaged together over valid samples, in this order (one reduction: the metrics
# of a batch do not depend on which other columns exist).
SUMMED_COLUMNS = ("compile", "tests", "ast", "dfg", "compiled", "passed", "reward_error")


@flax.struct.dataclass
class Experience:
    prompt_ids: jax.Array
    prompt_mask: jax.Array
    tokens: jax.Array
    token_mask: jax.Array
    logprobs: jax.Array
    values: jax.Array
    ref_logprobs: jax.Array
    exact_kl: jax.Array | None = None
    scores: jax.Array | None = None
    valid: jax.Array | None = None
    rewards: dict[str, Any] | None = None

    @property
    def num_rows(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def scored(self) -> bool:
        return self.scores is not None

    def unscored(self) -> Experience:
        """The sampled part alone (what a checkpoint holds for a batch not yet scored)."""
        return self.replace(scores=None, valid=None, rewards=None)


def abstract_unscored(
    rows: int, prompt_len: int, length: int, exact_kl: bool, sharding=None
) -> Experience:
    """The shapes (and shardings) of an unscored Experience, through `jax.eval_shape`: the
    restore target of a checkpointed batch."""

    def build():
        ids = jnp.zeros((rows, prompt_len), jnp.int32)
        toks = jnp.zeros((rows, length), jnp.int32)
        stat = jnp.zeros((rows, length), jnp.float32)
        return Experience(ids, ids, toks, toks, stat, stat, stat, stat if exact_kl else None)

    shapes = jax.eval_shape(build)
    if sharding is None:
        return shapes
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def reward_means(experience: Experience) -> dict[str, float]:
    """Mean of every reward column over the valid samples (0 when none is valid), by name.

    The built-in parts go through one reduction of a [B, k] table; any other column (a reward
    plugin's `plugin/<name>`, masking counts) is averaged over the samples where it is finite.
    """
    valid = experience.valid
    n_valid = jnp.maximum(valid.sum(), 1.0)
    summed = [n for n in SUMMED_COLUMNS if n in experience.rewards]
    names = ("total", "valid", *summed)
    table = jnp.stack([experience.scores, valid, *(experience.rewards[n] for n in summed)], axis=1)
    means = jax.device_get((table * valid[:, None]).sum(axis=0) / n_valid)
    out = {name: float(m) for name, m in zip(names, means, strict=True)}
    others = {}
    for name, column in experience.rewards.items():
        if name not in out:
            finite = jnp.isfinite(column) & (valid > 0)
            total = jnp.where(finite, column, 0.0).sum()
            others[name] = total / jnp.maximum(finite.sum(), 1)
    got = jax.device_get(others)  # one transfer for all of them
    return out | {name: float(got[name]) for name in others}


def column_counts(experience: Experience, names) -> dict[str, int]:
    """How many samples have a nonzero value in each named 0/1 column (e.g. masking counts)."""
    sums = {n: experience.rewards[n].sum() for n in names if n in experience.rewards}
    got = jax.device_get(sums)  # one transfer
    return {n: int(got[n]) for n in sums}
