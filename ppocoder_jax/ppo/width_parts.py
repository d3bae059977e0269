"""The PPO update with every row at its own prompt width (multi-turn batches).

A multi-turn `Experience` stacks turns whose prompts differ several-fold in length (the
problem alone, then problem + attempt + feedback), padded to the widest. Trained as one
[rows, widest] batch, every short row pays for the longest prompt, and the rows that did not
revise (no tokens in that turn) still run forward and backward. Here each minibatch is cut
into parts by prompt width instead:

    parts = plan_width_parts(experience.prompt_mask, adv["token_mask"], state.rng, ...)
    state, metrics = ppo_update_parts(state, batch, parts, steps, cfg)

- a row learns when it has a token left after the advantages' masks; rows that do not are
  left out of every part (they add nothing to any loss or count);
- a learning row goes to the part of its width: `bucket_length(its prompt length,
  rollout.length_buckets, data.max_source_length)`, the sampler's own rule; the part's prompt
  columns are cut to that width (T5 pads on the right, a decoder on the left: the columns cut
  are padding on either side);
- per epoch each part's rows are permuted (a function of the train state's key, so a resumed
  run repeats it) and dealt round-robin to the minibatches; a part's share of a minibatch is
  filled up to one of at most 8 sizes (`part_size`: few shapes to compile) with fill rows
  (-1), which carry no token;
- one optimizer step per minibatch: the parts' gradients are summed, each part's loss divided
  by the whole minibatch's denominators (its token count and the loss aggregation's count,
  `train_step._denominators`), so the step optimises the same loss as one padded minibatch of
  the same rows (equal up to float rounding: a padded prompt column changes nothing).

Which rows share a minibatch differs from `ppo_update`'s (a permutation per width, not one over
all rows); the set of rows and the loss each step optimises do not.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ppocoder_jax.parallel.mesh import num_batch_shards
from ppocoder_jax.ppo import registry as R
from ppocoder_jax.ppo.train_step import (
    PPOBatch,
    _with_frozen,
    apply_gradients,
    kl_placement,
    loss_and_grads,
    ppo_batch_shardings,
    summarize_metrics,
)

_PART_SALT = 0x9A27


class WidthPart(NamedTuple):
    width: int  # the prompt columns this part keeps
    rows: np.ndarray  # [epochs, num_minibatches, r] int32 row indices; -1 = fill (no tokens)


def global_numpy(x) -> np.ndarray:
    """A global array's whole value on every host (a small one: per-row numbers)."""
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def part_size(need: int, unit: int, most: int) -> int:
    """A part's share of a minibatch: the smaller of `need` rows rounded up to `unit * 2^j` and
    to a multiple of `unit * ceil(most / (8 unit))` (`most`: the largest share possible), so
    each width compiles for few sizes and the fill stays small for small and large parts."""
    step = unit * max(-(-most // (8 * unit)), 1)
    power = unit
    while power < need:
        power *= 2
    return min(power, max(-(-need // step), 1) * step)


def plan_width_parts(
    prompt_lengths: np.ndarray,
    learns: np.ndarray,
    key: jax.Array,
    *,
    width_of,
    epochs: int,
    num_minibatches: int,
    unit: int,
) -> list[WidthPart]:
    """The parts of every minibatch of one update, widest first (see the module docstring).

    `prompt_lengths [B]` and `learns [B]` (bool) are the whole batch's, the same on every host;
    `width_of(length) -> width`; `unit` divides every part's share of a minibatch (the batch
    shards times `ppo.grad_accum_steps`)."""
    widths = np.asarray([width_of(int(n)) for n in prompt_lengths], np.int64)
    if not learns.any():  # nothing learns: still one step per minibatch, as ppo_update takes
        fill = np.full((epochs, num_minibatches, unit), -1, np.int32)
        return [WidthPart(int(widths.min()), fill)]
    most = -(-len(prompt_lengths) // num_minibatches)
    parts = []
    for width in sorted({int(w) for w in widths[learns]}, reverse=True):
        members = np.flatnonzero(learns & (widths == width)).astype(np.int32)
        share = part_size(-(-len(members) // num_minibatches), unit, most)
        rows = np.full((epochs, num_minibatches, share), -1, np.int32)
        for e in range(epochs):
            k = jax.random.fold_in(jax.random.fold_in(key, _PART_SALT + width), e)
            order = members[np.asarray(jax.random.permutation(k, len(members)))]
            for m in range(num_minibatches):
                dealt = order[m::num_minibatches]  # round-robin: fill spreads over minibatches
                rows[e, m, : len(dealt)] = dealt
        parts.append(WidthPart(width, rows))
    return parts


@functools.partial(jax.jit, static_argnames=("cfg",))
def _per_row_denominators(mask, cfg):
    mask = mask.astype(jnp.float32)
    agg = R.loss_aggregation(cfg)
    count = jax.vmap(lambda m: agg(jnp.zeros_like(m)[None], m[None], cfg)[1])(mask)
    return jnp.sum(mask, axis=1), count


def row_denominators(token_mask: jax.Array, cfg) -> tuple[np.ndarray, np.ndarray]:
    """Per row: its tokens and its share of the loss aggregation's count (both additive over
    rows, so a minibatch's denominators are sums of these over its rows)."""
    tokens, counts = _per_row_denominators(token_mask, cfg)
    return global_numpy(tokens), global_numpy(counts)


class PartSteps:
    """The jitted pieces of a parts update: a part's gradient added into a carry (one compile
    per part width and size) and the optimizer step from the summed gradient."""

    def __init__(self, apply_fn, tx, cfg, mesh, state_shardings, *, pad_side: str,
                 value_only=False, kl_cfg=None, frozen_shardings=None):  # fmt: skip
        self.cfg, self.tx, self.mesh = cfg, tx, mesh
        self.pads_right = pad_side == "right"
        self.value_only = value_only
        self.kl_in_loss = kl_placement(kl_cfg) == "loss" and not value_only
        self.kl_weighted = kl_cfg is not None and kl_cfg.loss_importance_weight
        self.apply_fn = apply_fn
        self.frozen = frozen_shardings is not None
        self.state_shardings = state_shardings
        self._grads = {}
        self._zeros = None
        repl = NamedSharding(mesh, PartitionSpec())
        carry = (state_shardings.params, repl, repl)
        ins = (carry, state_shardings, ppo_batch_shardings(mesh), repl, repl, repl)
        self._ins, self._carry_shardings = ins, carry
        if self.frozen:
            self._ins = ins + (frozen_shardings,)
        self.apply = jax.jit(
            self._apply,
            in_shardings=(state_shardings, carry),
            out_shardings=(state_shardings, repl),
            donate_argnums=(0,),
        )

    def grads(self, width: int):
        if width not in self._grads:
            self._grads[width] = jax.jit(
                functools.partial(self._part_grads, width=width),
                in_shardings=self._ins,
                out_shardings=self._carry_shardings,
                donate_argnums=(0,),
            )
        return self._grads[width]

    def zero_carry(self, state, batch, width, idx, denoms, key, *frozen):
        """Zeros in the carry's shapes (what one part's gradient call returns; the same for
        every part, so traced once)."""
        if self._zeros is None:
            fn = functools.partial(self._part_grads, width=width)
            shapes = jax.eval_shape(fn, None, state, batch, idx, denoms, key, *frozen)
            self._zeros = jax.jit(
                lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
                out_shardings=self._carry_shardings,
            )
        return self._zeros()

    def _part_grads(self, carry, state, batch: PPOBatch, idx, denoms, key, frozen=None, *,
                    width: int):  # fmt: skip
        keep = (idx >= 0).astype(batch.token_mask.dtype)
        mb = jax.tree.map(lambda x: jnp.take(x, jnp.maximum(idx, 0), axis=0), batch)
        cut = slice(None, width) if self.pads_right else slice(-width, None)
        mb = mb._replace(
            prompt_ids=mb.prompt_ids[:, cut],
            prompt_mask=mb.prompt_mask[:, cut],
            token_mask=mb.token_mask * keep[:, None],
        )
        if idx.shape[0] % num_batch_shards(self.mesh) == 0:
            mb = jax.lax.with_sharding_constraint(mb, ppo_batch_shardings(self.mesh))
        apply_fn = self.apply_fn if frozen is None else _with_frozen(self.apply_fn, frozen)
        kl_coef = state.kl.coef if self.kl_in_loss else None
        loss, grads, sums = loss_and_grads(
            state.params, mb, key, apply_fn, self.cfg, self.value_only, kl_coef,
            self.kl_weighted, denoms=denoms,
        )  # fmt: skip
        if carry is None:
            return grads, loss, sums
        acc_grads, acc_loss, acc_sums = carry
        return (
            jax.tree.map(jnp.add, acc_grads, grads),
            acc_loss + loss,
            jax.tree.map(jnp.add, acc_sums, sums),
        )

    def _apply(self, state, carry):
        grads, loss, sums = carry
        rng, _ = jax.random.split(state.rng)  # as the fused step: its step key was the other half
        return apply_gradients(state, self.tx, grads, loss, sums, rng)


def ppo_update_parts(state, batch: PPOBatch, parts: list[WidthPart], steps: PartSteps,
                     row_tokens: np.ndarray, row_counts: np.ndarray, cfg, frozen=None):  # fmt: skip
    """`cfg.ppo_epochs x cfg.num_minibatches` optimizer steps, each over its parts -> (state,
    metric means as `ppo_update`'s)."""
    extra = () if frozen is None else (frozen,)
    totals, skipped = None, []
    for e in range(cfg.ppo_epochs):
        for m in range(cfg.num_minibatches):
            idxs = [p.rows[e, m] for p in parts]
            real = np.concatenate([i[i >= 0] for i in idxs])  # a plan has at least one part
            denoms = (
                jnp.float32(max(float(row_tokens[real].sum()), 1.0)),
                jnp.float32(max(float(row_counts[real].sum()), 1.0)),
            )
            _, step_key = jax.random.split(state.rng)
            carry = None
            for i, (part, idx) in enumerate(zip(parts, idxs, strict=True)):
                key = jax.random.fold_in(step_key, i)
                fn = steps.grads(part.width)
                if carry is None:
                    carry = steps.zero_carry(state, batch, part.width, idx, denoms, key, *extra)
                carry = fn(carry, state, batch, idx, denoms, key, *extra)
            state, sums = steps.apply(state, carry)
            skipped.append(sums.pop("skipped"))
            totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    metrics = summarize_metrics(totals, cfg.ppo_epochs * cfg.num_minibatches, state)
    metrics["skipped_steps"] = [bool(x) for x in jax.device_get(skipped)]
    return state, metrics


def update_by_width(state, batch: PPOBatch, steps: PartSteps, width_of, cfg, frozen=None):
    """Plan the parts of `batch` (prompt lengths, learning rows, per-row denominators) and run
    `ppo_update_parts`."""
    lengths = global_numpy(jnp.sum(batch.prompt_mask, axis=1))
    row_tokens, row_counts = row_denominators(batch.token_mask, cfg)
    total = int(batch.prompt_ids.shape[1])
    parts = plan_width_parts(
        lengths,
        row_tokens > 0,
        state.rng,
        width_of=lambda n: min(width_of(n), total),
        epochs=cfg.ppo_epochs,
        num_minibatches=cfg.num_minibatches,
        unit=num_batch_shards(steps.mesh) * cfg.grad_accum_steps,
    )
    return ppo_update_parts(state, batch, parts, steps, row_tokens, row_counts, cfg, frozen)
