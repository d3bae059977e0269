"""A reward plugin for tests/test_user_path.py, written as a user would write one for TRL: it
reads the problem file's own `difficulty` column from `meta`.

    difficulty_bonus(completions, meta, **kwargs) -> list[float]

A bonus for short answers, as large as the problem is hard: the difficulty's weight (easy 0.1,
medium 0.2, hard 0.3) over 1 + the answer's number of lines; 0.0 for an empty answer. A
problem without a known difficulty raises (the column must reach the plugin). CALLS records
each call's [(problem id, difficulty), ...] for the test to check.
"""

from __future__ import annotations

WEIGHTS = {"easy": 0.1, "medium": 0.2, "hard": 0.3}
CALLS: list[list[tuple[str, str]]] = []


def difficulty_bonus(completions, meta, **kwargs):
    difficulties = [m.get("difficulty") for m in meta]
    unknown = [d for d in difficulties if d not in WEIGHTS]
    if unknown:
        raise KeyError(f"no known difficulty in meta: {unknown[0]!r}")
    CALLS.append(list(zip(kwargs["id"], difficulties)))
    return [
        WEIGHTS[d] / (1 + len(c.splitlines())) if c.strip() else 0.0
        for c, d in zip(completions, difficulties)
    ]
