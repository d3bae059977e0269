"""Pretraining objectives as (source, target) token pairs, the shape SFT's loss already takes.

- T5 span corruption (CodeT5's, after T5's `random_spans_noise_mask`): about `noise_density` of
  a window's tokens, in spans of mean length `mean_span_length`, are each replaced by one
  sentinel in the source; the target lists sentinel, span, sentinel, span, ..., end.
- Causal LM (decoder-only): the source is the beginning-of-sequence token alone, the target is
  the window (the loss is every token's next-token prediction).
"""

from __future__ import annotations

import numpy as np

SENTINEL_FORMAT = "<extra_id_{}>"  # CodeT5's / T5's names


def _segment_lengths(total: int, segments: int, rng: np.random.Generator) -> np.ndarray:
    """`segments` positive lengths summing to `total`, uniformly over such partitions."""
    cuts = np.sort(rng.choice(np.arange(1, total), size=segments - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [total]]))


def noise_span_mask(
    length: int, noise_density: float, mean_span_length: float, rng: np.random.Generator
) -> np.ndarray:
    """Boolean [length]: True on the masked tokens. Spans of noise alternate with spans of
    kept tokens, the first span kept (T5's layout)."""
    num_noise = int(np.clip(round(length * noise_density), 1, length - 1))
    num_spans = int(
        np.clip(round(num_noise / mean_span_length), 1, min(num_noise, length - num_noise))
    )
    noise = _segment_lengths(num_noise, num_spans, rng)
    keep = _segment_lengths(length - num_noise, num_spans, rng)
    mask = np.zeros(length, dtype=bool)
    pos = 0
    for k, n in zip(keep, noise, strict=True):
        pos += k
        mask[pos : pos + n] = True
        pos += n
    return mask


def span_corruption(
    ids: np.ndarray,
    sentinels: list[int],
    noise_density: float,
    mean_span_length: float,
    rng: np.random.Generator,
    *,
    bos: int,
    eos: int,
) -> tuple[list[int], list[int]]:
    """-> (source `<s> text-with-sentinels </s>`, target `sentinel span ... </s>`)."""
    if len(ids) < 2:
        return [bos, *ids.tolist(), eos], [eos]
    mask = noise_span_mask(len(ids), noise_density, mean_span_length, rng)
    starts = np.flatnonzero(mask & ~np.concatenate([[False], mask[:-1]]))
    if len(starts) > len(sentinels):
        raise ValueError(f"{len(starts)} noise spans but only {len(sentinels)} sentinel tokens")
    source, target = [bos], []
    span = -1
    for i, (tok, noisy) in enumerate(zip(ids.tolist(), mask, strict=True)):
        if noisy:
            if i == 0 or not mask[i - 1]:
                span += 1
                source.append(sentinels[span])
                target.append(sentinels[span])
            target.append(tok)
        else:
            source.append(tok)
    return source + [eos], target + [eos]


def causal_lm(
    ids: np.ndarray, *, bos: int, eos: int, ends: bool = True
) -> tuple[list[int], list[int]]:
    """-> (source `<s>`, target the window, then end-of-sequence where the function ends)."""
    return [bos], ids.tolist() + ([eos] if ends else [])


def max_spans(max_length: int, noise_density: float, mean_span_length: float) -> int:
    """The most noise spans a window of up to `max_length` tokens gets (sentinels needed)."""
    num_noise = max(1, round(max_length * noise_density))
    return max(1, round(num_noise / mean_span_length))
