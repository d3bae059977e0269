"""Reward plugins that return non-finite values for some samples (tests/test_nonfinite.py)."""

from __future__ import annotations


def inf_some(completions, **kwargs):
    """+inf, -inf and NaN for 3 of every 16 samples (under reward.max_error_frac's 0.25)."""
    out = []
    for i in range(len(completions)):
        if i % 16 == 0:
            out.append(float("inf"))
        elif i % 16 == 8:
            out.append(float("-inf"))
        elif i % 16 == 4:
            out.append(float("nan"))
        else:
            out.append(0.5)
    return out


def nan_all(completions, **kwargs):
    return [float("nan")] * len(completions)
