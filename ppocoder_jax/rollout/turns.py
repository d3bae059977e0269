"""Multi-turn rollouts (`rollout.turns > 1`): attempt, public-test feedback, revision.

One batch of `train.batch_size x rollout.num_samples` trajectories, batched across rows:

    turn 0: every row samples from the problem's prompt (the same draw as a single-turn batch)
    turn k: rows still revising read `Observation` k (problem + attempts + feedback, through
            rollout.feedback_template or the chat template) and sample again
    final:  each row's last attempt is scored on the PRIVATE tests by the reward

A later turn samples only the rows still revising, grouped by the width of their prompt (the
sampler's bucket rule: a few long prompts do not widen every row), each group compacted and
filled up to one of a few sizes (rows / 8, / 4, / 2, / 1: few shapes to compile, the same on
every host), and spreads them back to their rows; a done row holds no tokens in that turn
(`turn_rows_done_frac` reports the share of sampled rows that were fill). The update trains
each row at its own prompt width too (`ppo/width_parts.py`). The
`Experience` holds the turns as blocks of rows, [turn 0 rows | turn 1 rows | ...], each block
in the single-turn row order (sample j of prompt i at i * n + j), so a group of n consecutive
rows is still one problem's samples and every registered estimator applies per turn. A turn's
row is valid when the row sampled that turn and its trajectory was scored; its score is the
final reward times rollout.turn_discount ** (turns after it), plus reward.turn_shaping_weight
times that attempt's own public-test reward on turns that got feedback. Feedback never enters
`tokens`: it is part of the next turn's prompt, which is never trained on.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from ppocoder_jax import faults
from ppocoder_jax.ppo.experience import Experience


class TurnRunner:
    def __init__(self, collector, env):
        self.c, self.env = collector, env

    def run(self, params, iteration: int):
        """Sample every turn and hand the last attempts to the reward -> (the turns' unscored
        Experiences, the final reward futures, what happened per row and turn)."""
        c, env = self.c, self.env
        cfg = c.cfg
        turns = cfg.rollout.turns
        _, examples, prompts = c._draw_prompts()
        key = jax.random.fold_in(c.sample_key, iteration)
        rows = len(examples)
        obs = [env.reset(e) for e in examples]
        active = np.ones(rows, bool)  # still revising
        alive = np.ones(rows, bool)  # no sandbox failure on the way
        last_turn = np.zeros(rows, np.int64)
        public_pass = np.zeros((turns, rows), bool)
        shaped = np.zeros((turns, rows), np.float32)
        sampled_active, blocks, sampled_rows = [], [], []
        feedback_wait = 0.0
        final_texts: list[str] = [""] * rows
        for k in range(turns):
            if k == 0:  # turn 0 draws exactly what a single-turn batch draws
                block, texts = self._sample(params, *prompts, key, iteration,
                                            cfg.rollout.num_samples)  # fmt: skip
                sampled_rows.append(rows)
            else:
                turn_key = jax.random.fold_in(key, k)
                pieces, texts, sampled = [], {}, 0
                for width, picked, real, ids, mask in self._width_groups(active, obs, rows):
                    group_key = jax.random.fold_in(turn_key, width)
                    piece, got = self._sample(params, ids, mask, group_key, iteration, 1)
                    pieces.append((piece, real))
                    texts.update(zip(real.tolist(), got, strict=False))
                    sampled += len(picked)
                sampled_rows.append(sampled)
                block = self._spread(pieces, rows)
            blocks.append(block)
            sampled_active.append(active.copy())
            for r in np.flatnonzero(active):
                final_texts[r], last_turn[r] = texts[r], k
            if k == turns - 1:
                break
            futures = {r: env.step(examples[r], obs[r], texts[r]) for r in np.flatnonzero(active)}
            t_wait = time.perf_counter()  # the device is idle until the feedback is in
            for r, future in futures.items():
                step = future.result()
                shaped[k, r] = step.reward
                if step.feedback is None:  # a sandbox failure: the row is masked, not scored
                    alive[r] = active[r] = False
                elif step.passed:
                    public_pass[k, r], active[r] = True, False
                else:
                    obs[r] = env.observe(examples[r], obs[r], texts[r], step)
            feedback_wait += time.perf_counter() - t_wait
        scored = [dataclasses.replace(e, tests=e.public_and_private_tests()[1]) for e in examples]
        futures = c.reward.submit(scored, final_texts)
        faults.point("rewards", iteration + 1)
        info = {
            "active": np.stack(sampled_active),
            "alive": alive,
            "last_turn": last_turn,
            "public_pass": public_pass,
            "shaped": shaped,
            "sampled_rows": np.asarray(sampled_rows),
            "feedback_wait_s": feedback_wait,
        }
        return blocks, futures, info

    def _sample(self, params, ids, mask, key, iteration: int, num_samples: int):
        """Sample rows and take their statistics -> (unscored Experience, this host's texts)."""
        from ppocoder_jax.parallel.mesh import batch_sharding, global_to_host_local

        c = self.c
        out = c.sample_arrays(params, ids, mask, key, iteration, num_samples=num_samples)
        faults.point("sample", iteration + 1)
        texts = None
        if c.cfg.rollout.stop:
            out, texts = c._cut_at_stops(out)
        placed = [out.prompt_ids, out.prompt_mask, out.tokens, out.token_mask]
        placed = [jax.device_put(x, batch_sharding(c.mesh, x.ndim)) for x in placed]
        block = c._statistics(params, *placed, sampled=out)
        if texts is None:
            tokens, token_mask = global_to_host_local((out.tokens, out.token_mask))
            texts = c.sampler.decode(c.tokenizer, tokens, token_mask)
        return block, texts

    def _width_groups(self, active: np.ndarray, obs, rows: int):
        """A later turn's revising rows grouped by the width of their prompt (the sampler's
        bucket rule, agreed on by every host), each group compacted (`_compacted`) ->
        [(width, picked rows, real rows, global ids, global mask)], narrowest first: a few long
        prompts no longer widen every row's sampling and statistics."""
        from ppocoder_jax.parallel.mesh import host_local_to_global
        from ppocoder_jax.rollout.bucketed_sampler import bucket_length, pad_prompts

        c = self.c
        revising = np.flatnonzero(active)
        cap = c.sampler.max_source_length
        encoded = c.sampler.encode(c.tokenizer, [obs[r].text for r in revising])
        seqs = dict(zip(revising.tolist(), encoded, strict=True))
        buckets = c.cfg.rollout.length_buckets
        width = {r: bucket_length(len(s), buckets, max(cap, len(s))) for r, s in seqs.items()}
        present = sorted(set(width.values()))
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            cand = _candidate_widths(buckets, cap)
            here = np.asarray([w in present for w in cand], np.int32)
            anywhere = np.asarray(multihost_utils.process_allgather(here)).reshape(-1, len(cand))
            present = [w for w, n in zip(cand, anywhere.max(0), strict=True) if n]
        groups = []
        for w in present:
            members = np.asarray([r for r in revising if width[r] == w], np.int64)
            picked = self._compacted(members, rows)
            real = picked[: len(members)]
            fill = seqs[int(members[0])] if len(members) else self._filler_seq(obs)
            # fill rows (copies, or any prompt cut to the width): their samples are dropped
            chosen = [seqs.get(int(r), fill)[-w:] for r in picked]
            ids, mask = pad_prompts(chosen, w, c.policy.pad_id, c.policy.pad_side)
            groups.append((w, picked, real, *host_local_to_global((ids, mask), c.mesh)))
        return groups

    def _filler_seq(self, obs):
        """A prompt for the fill rows of a group this host has no row in (its samples are
        dropped)."""
        c = self.c
        return c.sampler.encode(c.tokenizer, [obs[0].text])[0]

    def _compacted(self, revising: np.ndarray, rows: int) -> np.ndarray:
        """This host's rows to sample in a later turn: the revising rows, then copies of the
        first row up to the smallest of rows / 8, / 4, / 2, / 1 (a multiple of this host's
        batch shards) that holds every host's revising rows - few shapes to compile, and rows
        that are done cost no sampling."""
        from ppocoder_jax.parallel.mesh import num_batch_shards

        need = len(revising)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            need = int(np.max(multihost_utils.process_allgather(np.int32(need))))
        shards = max(num_batch_shards(self.c.mesh) // jax.process_count(), 1)
        sizes = sorted({-(-max(rows // d, 1) // shards) * shards for d in (8, 4, 2, 1)})
        size = next((s for s in sizes if s >= need), sizes[-1])
        filler = np.full(size - len(revising), revising[0] if len(revising) else 0)
        return np.concatenate([revising, filler]).astype(np.int64)

    def _spread(self, pieces: list, rows: int) -> Experience:
        """A later turn's groups [(Experience, real rows)] laid out on all `rows` rows of the
        batch: the sampled rows in their places (prompts padded to the widest group on the
        policy's side), the others empty (no tokens, masked by the turn's validity)."""
        from ppocoder_jax.parallel.mesh import global_to_host_local, host_local_to_global

        policy = self.c.policy
        local = [(global_to_host_local(piece), real) for piece, real in pieces]
        width = max(int(p.prompt_ids.shape[1]) for p, _ in local)

        def spread(name):
            parts = [(getattr(p, name), real) for p, real in local]
            if parts[0][0] is None:
                return None
            first = parts[0][0]
            wide = name.startswith("prompt")
            shape = (rows, width) if wide else (rows, *first.shape[1:])
            full = np.full(shape, policy.pad_id if name == "prompt_ids" else 0, first.dtype)
            for x, real in parts:
                x = x[: len(real)]
                if wide and policy.pad_side == "left":
                    full[real, width - x.shape[1] :] = x
                elif wide:
                    full[real, : x.shape[1]] = x
                else:
                    full[real] = x
            return host_local_to_global(full, self.c.mesh)

        return Experience(**{f.name: spread(f.name) for f in dataclasses.fields(Experience)})


def _candidate_widths(buckets, cap: int) -> list[int]:
    """Every width the bucket rule can give a prompt of at most `cap` tokens."""
    from ppocoder_jax.rollout.bucketed_sampler import bucket_length

    return sorted({bucket_length(n, buckets, cap) for n in range(1, cap + 1)})


def turn_scores(info, total: np.ndarray, valid: np.ndarray, discount: float, shaping: float):
    """Per turn, this host's rows' (score, valid): the final reward discounted back from the
    last turn, plus the shaped public-test reward of turns that got feedback."""
    active, alive, last = info["active"], info["alive"], info["last_turn"]
    out = []
    for k in range(active.shape[0]):
        ok = active[k] & alive & (valid > 0)
        score = total * np.power(discount, np.maximum(last - k, 0)) + shaping * info["shaped"][k]
        out.append((np.where(ok, score, 0.0).astype(np.float32), ok.astype(np.float32)))
    return out


def stack_turns(blocks: list[Experience], policy, mesh) -> Experience:
    """The turns' Experiences as one, [turn 0 rows | turn 1 rows | ...], prompts padded to the
    widest turn on the policy's padding side."""
    from ppocoder_jax.parallel.mesh import batch_sharding

    width = max(int(b.prompt_ids.shape[1]) for b in blocks)

    def pad(x, value):
        extra = width - x.shape[1]
        if not extra:
            return x
        spec = ((0, 0), (extra, 0)) if policy.pad_side == "left" else ((0, 0), (0, extra))
        return jnp.pad(x, spec, constant_values=value)

    def cat(name, value=0):
        parts = [getattr(b, name) for b in blocks]
        if parts[0] is None:
            return None
        if name.startswith("prompt"):
            parts = [pad(x, value) for x in parts]
        whole = jnp.concatenate(parts, axis=0)
        return jax.device_put(whole, batch_sharding(mesh, whole.ndim))

    names = ("prompt_ids", "prompt_mask", "tokens", "token_mask")
    stats = ("logprobs", "values", "ref_logprobs", "exact_kl")
    fields = {n: cat(n, policy.pad_id if n == "prompt_ids" else 0) for n in names + stats}
    return Experience(**fields)


def turn_metrics(info, final_pass: np.ndarray, final_valid: np.ndarray) -> dict:
    """How the turns went, over this host's scored trajectories."""
    ok = info["alive"] & (final_valid > 0)
    n = max(int(ok.sum()), 1)
    first_fail = ok & ~info["public_pass"][0]
    fixed = first_fail & (final_pass > 0)
    sampled = int(info["sampled_rows"].sum())
    return {
        "turns_mean": float((info["last_turn"][ok] + 1).sum() / n),
        "public_pass_turn1": float(info["public_pass"][0][ok].sum() / n),
        # share of the trajectories failing turn 1's public tests whose last attempt passes
        "fix_rate": float(fixed.sum() / max(int(first_fail.sum()), 1)),
        # sampled rows that were not revising (a compacted turn's fill): spent and masked
        "turn_rows_done_frac": float(1.0 - info["active"].sum() / max(sampled, 1)),
    }
