"""Reward plugins for tests/test_reward_plugins.py, written as TRL reward functions are:
keyword arguments, **kwargs for the columns a function does not use, a list of floats or None."""

from __future__ import annotations

CALLS: list[int] = []  # batch sizes seen by `exact_target`


def exact_target(completions, target, **kwargs):
    """1.0 when the completion is the reference output, else 0.0 (a dataset column in use)."""
    CALLS.append(len(completions))
    return [1.0 if c.strip() == t.strip() else 0.0 for c, t in zip(completions, target)]


def short_bonus(completions, prompts, **kwargs):
    """The README's example: a bonus for short programs (None for an empty one: masked)."""
    return [None if not c.strip() else 1.0 / (1 + len(c.splitlines())) for c in completions]


def one_short(completions, **kwargs):
    return [0.0] * max(len(completions) - 1, 0)


def one_short_in_big_batches(completions, **kwargs):
    """Right on the start-up probe (2 samples), wrong in a training batch."""
    return [0.0] * (len(completions) - (len(completions) > 2))


def not_numbers(completions, **kwargs):
    return ["good"] * len(completions)


def raises(completions, **kwargs):
    raise RuntimeError("plugin failed on purpose")


def no_kwargs(completions):
    """Wrong signature: takes neither prompts nor the columns."""
    return [0.0] * len(completions)


NOT_CALLABLE = 3


def nan_second(completions, **kwargs):
    import numpy as np

    return [np.float32(0.25)] + [float("nan")] * (len(completions) - 1)


def value_after_hash(completions, **kwargs):
    """The number after the last '#' of a completion (``"x = 1  # inf"`` -> inf, ``# nan``,
    ``# -inf``), 1.0 without one: non-finite values on purpose."""
    return [float(c.rsplit("#", 1)[1]) if "#" in c else 1.0 for c in completions]


class Other:
    """A second plugin whose function name is also `exact_target` (column names collide)."""

    @staticmethod
    def exact_target(completions, **kwargs):
        return [0.5] * len(completions)
