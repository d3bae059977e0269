"""Stand-in rewards for trainer / collector tests: RewardParts handed back as finished futures
(no sandbox), so that a test checks the loop, not the reward."""

from __future__ import annotations

import concurrent.futures as cf


def finished(parts: list) -> list[cf.Future]:
    """One already-resolved future per RewardParts, as `CompositeReward.submit` returns."""
    futures = []
    for p in parts:
        future: cf.Future = cf.Future()
        future.set_result(p)
        futures.append(future)
    return futures
