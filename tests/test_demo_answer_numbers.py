"""scripts/demo_answer_numbers.py: each greedy answer lands in the class the README's table
counts (the statement's number, a PPO problem's, a corpus problem's, none)."""

from __future__ import annotations

import pytest
from helpers.scripts import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("demo_answer_numbers")


REF = "def f(xs):\n    return sum(1 for x in xs if x < 84)"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("def f(xs):\n    return sum(1 for x in xs if x < 84)", "statement"),
        ("def f(xs):\n    return sum(1 for x in xs if x <= 84)", "statement"),
        ("def f(xs):\n    return sum(1 for x in xs if x < 62)", "rl"),
        ("def f(xs):\n    return sum(1 for x in xs if x < 40)", "train"),
        # the template's own `1` is in neither class even when 1 is a corpus number
        ("def f(xs):\n    return sum(1 for x in xs if x < 77)", "none"),
        ("def f(xs):\n    return len(xs)", "none"),
        # the signature line is not part of the answer
        ("def f(x62):\n    return 0", "none"),
    ],
)
def test_classify(script, answer, expected):
    assert script.classify(answer, REF, 84, rl={62, 89}, train={1, 40}) == expected


def test_numbers_by_template_keeps_single_number_templates(script):
    class Ex:
        def __init__(self, template, params):
            self.meta = {"template": template, "params": params}

    out = script.numbers_by_template(
        [Ex("count_lt", {"k": 5}), Ex("count_lt", {"k": 9}), Ex("clamp", {"lo": 1, "hi": 3})]
    )
    assert out == {"count_lt": {5, 9}}
