"""Comparing pytrees of arrays (gradients, parameters) in tests."""

from __future__ import annotations

import jax
import numpy as np


def assert_close_to_scale(got, want, rtol: float = 1e-5) -> None:
    """Every leaf of `got` within `rtol` of the largest magnitude of the matching leaf of `want`
    (sums in another order, e.g. gradient accumulation, move near-cancelling elements by more
    than their own size allows, never by more than the array's scale)."""
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        x, y = np.asarray(x), np.asarray(y)
        assert np.max(np.abs(x - y)) <= rtol * np.max(np.abs(y))
