"""The embedded program-synthesis task family and its realistically noisy SFT corpus.

Small Python problems (list, string and arithmetic templates with varied parameters) are
generated deterministically from a seed. Each problem has

* a prompt: a one-sentence statement plus the signature line, e.g.
  ``"Return the sum of the elements of nums that are greater than 7.\\ndef f(nums):"``;
* a target: the whole function, ``"def f(nums):\\n    return sum(x for x in nums if x > 7)"``
  (``context_prefix`` is empty: the output alone is the program);
* tests: ``{"test_code": "assert f([...]) == ...\\n..."}``, whose expected values come from
  running the reference implementation on inputs chosen so that every plausible bug variant of
  the problem (off-by-one, wrong comparison, wrong operator, wrong initial value, swapped
  arguments) fails at least one assert. A bug variant that no candidate input distinguishes
  from the reference (e.g. ``>=`` vs ``>`` in a product over ``x > 1``) is dropped for that
  problem.

Splits: the numeric parameters of each template are split into train / val / test pools (by a
hash rank seeded with the seed and the template's name), so a held-out problem's parameters
never occur in a training problem of the same template, while the numbers do occur in other
templates. (Ranking by the seed alone gave every single-number template one split: the PPO
problems of all nine showed the same 20 values, which PPO learnt as a prior answer, and no
corpus problem of those templates showed a held-out value.) With ``rl_fraction > 0`` a fourth pool
gives ``num_rl`` PPO problems (statement + tests; the reference is the correct solution, which
no supervised example shows): PPO then practises on parameters the corpus never showed, as the
held-out problems are, without seeing any of theirs. Validation and test targets are always
the correct reference.

The training corpus is noisy, as scraped code is: with probability ``bug_rate`` a training
solution carries a random plausible bug, and for the "popular wrong answer" templates a fraction
``popular_rate`` of the solutions share one specific plausible bug, so a model that imitates the
corpus answers those templates wrongly under greedy decoding while the correct variant keeps
substantial probability. Every training example records ``meta["bug"]`` (``"none"`` or the bug
kind) and ``meta["is_correct"]``.

Public and private tests (multi-turn RL with execution feedback, docs/problems.md): of each
problem's asserts (four with the defaults) exactly one is public (``Example.public_tests``,
shown as feedback) and the others are private (``Example.private_tests``, the final reward);
``Example.tests`` keeps all of them. The public assert is drawn with a seed made of
``cfg.seed`` and the problem's identity (template and parameters), so a problem splits the same
way in every split, copy and batch order, among the asserts whose removal leaves every wrong
variant the tests reject (plausible bugs and degenerate answers) still rejected by the private
asserts (failing that, every plausible bug: a few ``between`` / ``count_between`` problems let a
degenerate one-sided comparison pass their private asserts).

Everything is a pure function of the :class:`SynthesisDemoConfig`.
"""

from __future__ import annotations

import hashlib
import math
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from ppocoder_jax.data.public_private import seeded_rng
from ppocoder_jax.data.task import Example, Task

LIST_NAMES = ("xs", "nums", "values", "items", "arr", "data")
STR_NAMES = ("s", "text", "word", "line", "name")
INT_NAMES = ("n", "m", "num", "x", "value")
WORDS_NAMES = ("words", "names", "strs", "tokens")
NAMES = {"list": LIST_NAMES, "str": STR_NAMES, "int": INT_NAMES, "words": WORDS_NAMES}

BUG_KINDS = ("off_by_one", "comparison", "operator", "initial_value", "argument_order")

DEFAULT_POPULAR = ("sum_gt", "count_between", "sum_range", "product_gt", "mod")


@dataclass(frozen=True)
class SynthesisDemoConfig:
    seed: int = 0
    num_train: int = 4000
    num_val: int = 200
    num_test: int = 600
    bug_rate: float = 0.2  # random plausible bug in a training solution
    popular_rate: float = 0.65  # share of the popular templates' solutions with their popular bug
    popular_templates: tuple[str, ...] = DEFAULT_POPULAR
    test_fraction: float = 0.2  # of each template's parameter tuples
    val_fraction: float = 0.05
    # Parameter tuples reserved for PPO problems (tests, no solution in the corpus), and how
    # many such problems to draw: PPO then meets numbers imitation never showed it.
    rl_fraction: float = 0.0
    num_rl: int = 0
    min_asserts: int = 4
    num_candidates: int = 24  # candidate test inputs tried per problem

    def __post_init__(self):
        if not (0 <= self.bug_rate <= 1 and 0 <= self.popular_rate <= 1):
            raise ValueError("bug_rate and popular_rate must be in [0, 1]")
        if not (0 < self.test_fraction and 0 < self.val_fraction):
            raise ValueError("test_fraction and val_fraction must be > 0")
        if not 0 <= self.rl_fraction < 1 or self.num_rl < 0:
            raise ValueError("rl_fraction must be in [0, 1) and num_rl >= 0")
        if (self.rl_fraction > 0) != (self.num_rl > 0):
            raise ValueError("rl_fraction and num_rl go together (both > 0 or both 0)")
        if self.test_fraction + self.val_fraction + self.rl_fraction >= 1:
            raise ValueError("test_fraction + val_fraction + rl_fraction must be < 1")
        unknown = sorted(set(self.popular_templates) - set(TEMPLATES))
        if unknown:
            raise ValueError(
                f"unknown popular template {unknown[0]!r} (known: {sorted(TEMPLATES)})"
            )


# ---------------------------------------------------------------------------------------------
# templates

Params = dict


@dataclass(frozen=True)
class Template:
    name: str
    arg_kind: str  # list | str | int | words
    statement: Callable[[str, Params], str]
    body: Callable[[str, Params], str]  # the function body, lines indented by 4 spaces
    bugs: tuple[tuple[str, Callable[[str, Params], str]], ...]  # (kind, body)
    params: Callable[[], list[Params]]  # every parameter tuple of the template
    inputs: Callable[[Params, random.Random], list]  # candidate arguments
    popular_bug: int = 0  # index in `bugs` of the popular wrong answer (if the template is popular)
    # kill-only variants: not plausible "scraped" bugs, but the tests must reject them too
    checks: tuple[Callable[[str, Params], str], ...] = ()


def _r(*xs: int) -> range:
    return range(*xs)


def _near_list(rng: random.Random, centre: int, spread: int, lo: int = 0) -> list[int]:
    n = rng.randint(1, 6)
    return [max(lo, centre + rng.randint(-spread, spread)) for _ in range(n)]


def _small_list(rng: random.Random, hi: int = 20) -> list[int]:
    return [rng.randint(0, hi) for _ in range(rng.randint(1, 6))]


def _word(rng: random.Random, letters: str, lo: int = 1, hi: int = 8) -> str:
    return "".join(rng.choice(letters) for _ in range(rng.randint(lo, hi)))


def _list_around(key: str, spread: int = 4):
    def gen(p: Params, rng: random.Random) -> list:
        k = p[key]
        out: list = [[], [k], [k + 1], [max(0, k - 1)]]
        out += [_near_list(rng, k, spread) for _ in range(40)]
        return out

    return gen


def _inputs_between(p: Params, rng: random.Random) -> list:
    lo, hi = p["lo"], p["hi"]
    out: list = [[], [lo], [hi], [lo, hi], [max(0, lo - 1), hi + 1]]
    for _ in range(40):
        out.append([rng.randint(max(0, lo - 3), hi + 3) for _ in range(rng.randint(1, 6))])
    return out


def _inputs_int_between(p: Params, rng: random.Random) -> list:
    lo, hi = p["lo"], p["hi"]
    return [lo, hi, max(0, lo - 1), hi + 1] + [
        rng.randint(max(0, lo - 5), hi + 5) for _ in range(30)
    ]


def _inputs_div(p: Params, rng: random.Random) -> list:
    k = p["k"]
    out: list = [[], [k], [0], [1]]
    for _ in range(40):
        out.append([rng.choice([k * rng.randint(0, 4), rng.randint(0, 3 * k)]) for _ in range(4)])
    return out


def _inputs_small_lists(p: Params, rng: random.Random) -> list:
    return [[], [0], [1], [2, 3]] + [_small_list(rng) for _ in range(30)]


def _inputs_prefix_list(p: Params, rng: random.Random) -> list:
    k = p["k"]
    return [[rng.randint(0, 9) for _ in range(k + rng.randint(1, 3))] for _ in range(20)]


def _inputs_chars(p: Params, rng: random.Random) -> list:
    letters = p["c"] + "abcdeimnorstu"
    return ["", p["c"]] + [_word(rng, letters, 1, 10) for _ in range(30)]


def _inputs_str_len(key: str, extra: int):
    def gen(p: Params, rng: random.Random) -> list:
        k = p[key]
        return [
            _word(rng, string.ascii_lowercase, k + 1, k + 1 + rng.randint(0, extra))
            for _ in range(20)
        ]

    return gen


def _inputs_words(p: Params, rng: random.Random) -> list:
    letters = "abcdeimnorstu"
    out: list = [[], [p["p"]]]
    for _ in range(30):
        words = []
        for _ in range(rng.randint(1, 5)):
            w = _word(rng, letters, 1, 5)
            r = rng.random()
            if r < 0.35:
                w = p["p"] + w
            elif r < 0.55:
                w = w + p["p"]
            elif r < 0.7:
                w = w[:1] + p["p"] + w[1:]
            words.append(w)
        out.append(words)
    return out


def _inputs_replace(p: Params, rng: random.Random) -> list:
    letters = p["x"] + p["y"] + "aeimnorst"
    return [p["x"], p["y"]] + [_word(rng, letters, 2, 10) for _ in range(30)]


def _inputs_range(p: Params, rng: random.Random) -> list:
    lo = p["lo"]
    return [lo, lo + 1, lo + 2] + [lo + rng.randint(0, 30) for _ in range(20)]


def _inputs_mod(p: Params, rng: random.Random) -> list:
    k = p["k"]
    return [k + 1, 2 * k + 3, k - 1] + [rng.randint(1, 5 * k) for _ in range(20)]


def _inputs_int_small(p: Params, rng: random.Random) -> list:
    return [0, 1, 2, 5] + [rng.randint(0, 100) for _ in range(20)]


def _inputs_int_around(key: str):
    def gen(p: Params, rng: random.Random) -> list:
        k = p[key]
        return [k, k + 1, max(0, k - 1), 0] + [rng.randint(0, k + 20) for _ in range(20)]

    return gen


def _inputs_product(p: Params, rng: random.Random) -> list:
    k = p["k"]
    out: list = [[], [k], [k + 1], [max(0, k - 1)], [k, k + 2]]
    out += [_near_list(rng, k, 3)[:4] for _ in range(40)]
    return out


def _ks(lo: int, hi: int) -> Callable[[], list[Params]]:
    return lambda: [{"k": k} for k in range(lo, hi + 1)]


def _lohi(lo_max: int, gap_lo: int, gap_hi: int) -> Callable[[], list[Params]]:
    return lambda: [
        {"lo": lo, "hi": lo + g} for lo in range(lo_max + 1) for g in range(gap_lo, gap_hi + 1)
    ]


def _ret(expr: Callable[[str, Params], str]) -> Callable[[str, Params], str]:
    return lambda a, p: "    return " + expr(a, p)


_LETTERS = string.ascii_lowercase

_TEMPLATE_LIST = [
    Template(
        "sum_gt",
        "list",
        lambda a, p: f"Return the sum of the elements of {a} that are greater than {p['k']}.",
        _ret(lambda a, p: f"sum(x for x in {a} if x > {p['k']})"),
        (
            ("comparison", _ret(lambda a, p: f"sum(x for x in {a} if x >= {p['k']})")),
            ("comparison", _ret(lambda a, p: f"sum(x for x in {a} if x < {p['k']})")),
        ),
        _ks(0, 99),
        _list_around("k"),
        0,
    ),
    Template(
        "count_lt",
        "list",
        lambda a, p: f"Return how many elements of {a} are less than {p['k']}.",
        _ret(lambda a, p: f"sum(1 for x in {a} if x < {p['k']})"),
        (
            ("comparison", _ret(lambda a, p: f"sum(1 for x in {a} if x <= {p['k']})")),
            ("operator", _ret(lambda a, p: f"sum(x for x in {a} if x < {p['k']})")),
        ),
        _ks(1, 99),
        _list_around("k"),
        0,
    ),
    Template(
        "count_div",
        "list",
        lambda a, p: f"Return how many elements of {a} are divisible by {p['k']}.",
        _ret(lambda a, p: f"sum(1 for x in {a} if x % {p['k']} == 0)"),
        (
            ("comparison", _ret(lambda a, p: f"sum(1 for x in {a} if x % {p['k']} != 0)")),
            ("operator", _ret(lambda a, p: f"sum(1 for x in {a} if x // {p['k']} == 0)")),
        ),
        _ks(2, 99),
        _inputs_div,
        0,
    ),
    Template(
        "scale",
        "list",
        lambda a, p: f"Return the list of the elements of {a} multiplied by {p['k']}.",
        _ret(lambda a, p: f"[x * {p['k']} for x in {a}]"),
        (
            ("operator", _ret(lambda a, p: f"[x + {p['k']} for x in {a}]")),
            ("operator", _ret(lambda a, p: f"[x // {p['k']} for x in {a}]")),
        ),
        _ks(2, 99),
        _inputs_small_lists,
        0,
    ),
    Template(
        "add_each",
        "list",
        lambda a, p: f"Return the list of the elements of {a} increased by {p['k']}.",
        _ret(lambda a, p: f"[x + {p['k']} for x in {a}]"),
        (
            ("operator", _ret(lambda a, p: f"[x - {p['k']} for x in {a}]")),
            ("operator", _ret(lambda a, p: f"[x * {p['k']} for x in {a}]")),
        ),
        _ks(1, 99),
        _inputs_small_lists,
        0,
    ),
    Template(
        "max_or",
        "list",
        lambda a, p: f"Return the largest element of {a}, or {p['d']} if {a} is empty.",
        _ret(lambda a, p: f"max({a}) if {a} else {p['d']}"),
        (
            ("operator", _ret(lambda a, p: f"min({a}) if {a} else {p['d']}")),
            ("initial_value", _ret(lambda a, p: f"max({a}) if {a} else 0")),
        ),
        lambda: [{"d": d} for d in range(1, 100)],
        lambda p, rng: [[], [1, 2]] + [_small_list(rng, 99) for _ in range(20)],
        0,
    ),
    Template(
        "sum_first",
        "list",
        lambda a, p: f"Return the sum of the first {p['k']} elements of {a}.",
        _ret(lambda a, p: f"sum({a}[:{p['k']}])"),
        (
            ("off_by_one", _ret(lambda a, p: f"sum({a}[:{p['k'] + 1}])")),
            ("operator", _ret(lambda a, p: f"sum({a}[{p['k']}:])")),
        ),
        _ks(1, 40),
        _inputs_prefix_list,
        0,
    ),
    Template(
        "count_between",
        "list",
        lambda a, p: (
            f"Return how many elements of {a} are between {p['lo']} and {p['hi']} inclusive."
        ),
        _ret(lambda a, p: f"sum(1 for x in {a} if {p['lo']} <= x <= {p['hi']})"),
        (
            ("comparison", _ret(lambda a, p: f"sum(1 for x in {a} if {p['lo']} < x < {p['hi']})")),
            (
                "off_by_one",
                _ret(lambda a, p: f"sum(1 for x in {a} if {p['lo']} <= x < {p['hi']})"),
            ),
        ),
        _lohi(60, 2, 30),
        _inputs_between,
        0,
        (
            _ret(lambda a, p: f"sum(1 for x in {a} if {p['lo']} <= x)"),
            _ret(lambda a, p: f"sum(1 for x in {a} if x <= {p['hi']})"),
            _ret(lambda a, p: f"sum(1 for x in {a} if {p['lo']} < x <= {p['hi']})"),
        ),
    ),
    Template(
        "count_chars",
        "str",
        lambda a, p: f"Return how many characters of {a} are in '{p['c']}'.",
        _ret(lambda a, p: f"sum(1 for ch in {a} if ch in '{p['c']}')"),
        (
            ("comparison", _ret(lambda a, p: f"sum(1 for ch in {a} if ch not in '{p['c']}')")),
            ("comparison", _ret(lambda a, p: f"sum(1 for ch in {a} if ch == '{p['c']}')")),
        ),
        lambda: (
            [{"c": a + b} for a in _LETTERS for b in _LETTERS if a < b]
            + [{"c": a + b + c} for a in "aeiou" for b in _LETTERS for c in _LETTERS if a < b < c]
        ),
        _inputs_chars,
        0,
    ),
    Template(
        "first_chars",
        "str",
        lambda a, p: f"Return the first {p['k']} characters of {a}.",
        _ret(lambda a, p: f"{a}[:{p['k']}]"),
        (
            ("off_by_one", _ret(lambda a, p: f"{a}[:{p['k'] + 1}]")),
            ("operator", _ret(lambda a, p: f"{a}[{p['k']}:]")),
        ),
        _ks(1, 40),
        _inputs_str_len("k", 5),
        0,
    ),
    Template(
        "last_chars",
        "str",
        lambda a, p: f"Return the last {p['k']} characters of {a}.",
        _ret(lambda a, p: f"{a}[-{p['k']}:]"),
        (
            ("operator", _ret(lambda a, p: f"{a}[{p['k']}:]")),
            ("off_by_one", _ret(lambda a, p: f"{a}[-{p['k'] - 1}:]")),
        ),
        _ks(2, 40),
        _inputs_str_len("k", 5),
        0,
    ),
    Template(
        "repeat",
        "str",
        lambda a, p: f"Return {a} repeated {p['k']} times.",
        _ret(lambda a, p: f"{a} * {p['k']}"),
        (
            ("off_by_one", _ret(lambda a, p: f"{a} * {p['k'] + 1}")),
            ("off_by_one", _ret(lambda a, p: f"{a} * {p['k'] - 1}")),
        ),
        _ks(2, 40),
        lambda p, rng: [_word(rng, "abcdefgh", 1, 4) for _ in range(10)],
        0,
    ),
    Template(
        "replace",
        "str",
        lambda a, p: f"Return {a} with every '{p['x']}' replaced by '{p['y']}'.",
        _ret(lambda a, p: f"{a}.replace('{p['x']}', '{p['y']}')"),
        (("argument_order", _ret(lambda a, p: f"{a}.replace('{p['y']}', '{p['x']}')")),),
        lambda: [{"x": x, "y": y} for x in _LETTERS for y in _LETTERS if x != y],
        _inputs_replace,
        0,
    ),
    Template(
        "count_prefix",
        "words",
        lambda a, p: f"Return how many strings in {a} start with '{p['p']}'.",
        _ret(lambda a, p: f"sum(1 for w in {a} if w.startswith('{p['p']}'))"),
        (
            ("operator", _ret(lambda a, p: f"sum(1 for w in {a} if w.endswith('{p['p']}'))")),
            ("comparison", _ret(lambda a, p: f"sum(1 for w in {a} if '{p['p']}' in w)")),
        ),
        lambda: [{"p": x} for x in _LETTERS] + [{"p": x + y} for x in _LETTERS for y in "aeiou"],
        _inputs_words,
        0,
    ),
    Template(
        "sum_range",
        "int",
        lambda a, p: f"Return the sum of the integers from {p['lo']} to {a} inclusive.",
        _ret(lambda a, p: f"sum(range({p['lo']}, {a} + 1))"),
        (
            ("off_by_one", _ret(lambda a, p: f"sum(range({p['lo']}, {a}))")),
            ("off_by_one", _ret(lambda a, p: f"sum(range({p['lo']} + 1, {a} + 1))")),
        ),
        lambda: [{"lo": lo} for lo in range(0, 100)],
        _inputs_range,
        0,
    ),
    Template(
        "product_gt",
        "list",
        lambda a, p: f"Return the product of the elements of {a} that are greater than {p['k']}.",
        lambda a, p: (
            f"    p = 1\n    for x in {a}:\n        if x > {p['k']}:\n            p *= x\n    return p"
        ),
        (
            (
                "initial_value",
                lambda a, p: (
                    f"    p = 0\n    for x in {a}:\n        if x > {p['k']}:\n"
                    "            p *= x\n    return p"
                ),
            ),
            (
                "comparison",
                lambda a, p: (
                    f"    p = 1\n    for x in {a}:\n        if x >= {p['k']}:\n"
                    "            p *= x\n    return p"
                ),
            ),
        ),
        _ks(0, 99),
        _inputs_product,
        0,
    ),
    Template(
        "mod",
        "int",
        lambda a, p: f"Return the remainder of {a} divided by {p['k']}.",
        _ret(lambda a, p: f"{a} % {p['k']}"),
        (
            ("operator", _ret(lambda a, p: f"{a} // {p['k']}")),
            ("argument_order", _ret(lambda a, p: f"{p['k']} % {a}")),
        ),
        _ks(2, 99),
        _inputs_mod,
        0,
    ),
    Template(
        "linear",
        "int",
        lambda a, p: f"Return {a} times {p['a']} plus {p['b']}.",
        _ret(lambda a, p: f"{a} * {p['a']} + {p['b']}"),
        (
            ("operator", _ret(lambda a, p: f"{a} * {p['a']} - {p['b']}")),
            ("operator", _ret(lambda a, p: f"({a} + {p['b']}) * {p['a']}")),
        ),
        lambda: [{"a": x, "b": y} for x in range(2, 21) for y in range(1, 61)],
        _inputs_int_small,
        0,
    ),
    Template(
        "clamp",
        "int",
        lambda a, p: f"Return {a} limited to the range from {p['lo']} to {p['hi']}.",
        _ret(lambda a, p: f"min(max({a}, {p['lo']}), {p['hi']})"),
        (("operator", _ret(lambda a, p: f"max(min({a}, {p['lo']}), {p['hi']})")),),
        _lohi(50, 5, 40),
        _inputs_int_between,
        0,
        (_ret(lambda a, p: f"max({a}, {p['lo']})"), _ret(lambda a, p: f"min({a}, {p['hi']})")),
    ),
    Template(
        "between",
        "int",
        lambda a, p: f"Return True if {a} is between {p['lo']} and {p['hi']} inclusive.",
        _ret(lambda a, p: f"{p['lo']} <= {a} <= {p['hi']}"),
        (
            ("comparison", _ret(lambda a, p: f"{p['lo']} < {a} < {p['hi']}")),
            ("off_by_one", _ret(lambda a, p: f"{p['lo']} <= {a} < {p['hi']}")),
        ),
        _lohi(60, 2, 30),
        _inputs_int_between,
        0,
        (
            _ret(lambda a, p: f"{p['lo']} <= {a}"),
            _ret(lambda a, p: f"{a} <= {p['hi']}"),
            _ret(lambda a, p: f"{p['lo']} < {a} <= {p['hi']}"),
        ),
    ),
    Template(
        "distance",
        "int",
        lambda a, p: f"Return the distance between {a} and {p['k']}.",
        _ret(lambda a, p: f"abs({a} - {p['k']})"),
        (
            ("operator", _ret(lambda a, p: f"{a} - {p['k']}")),
            ("operator", _ret(lambda a, p: f"abs({a} + {p['k']})")),
        ),
        _ks(1, 99),
        _inputs_int_around("k"),
        0,
    ),
    Template(
        "divisible",
        "int",
        lambda a, p: f"Return True if {a} is divisible by {p['k']}.",
        _ret(lambda a, p: f"{a} % {p['k']} == 0"),
        (
            ("comparison", _ret(lambda a, p: f"{a} % {p['k']} != 0")),
            ("operator", _ret(lambda a, p: f"{a} // {p['k']} == 0")),
        ),
        _ks(2, 99),
        lambda p, rng: (
            [0, p["k"], 2 * p["k"], 1, p["k"] + 1]
            + [
                rng.choice([p["k"] * rng.randint(1, 5), rng.randint(1, 5 * p["k"])])
                for _ in range(20)
            ]
        ),
        0,
    ),
]

TEMPLATES: dict[str, Template] = {t.name: t for t in _TEMPLATE_LIST}
assert len(TEMPLATES) == len(_TEMPLATE_LIST)


# ---------------------------------------------------------------------------------------------
# problems


@dataclass(frozen=True)
class Problem:
    template: str
    params: tuple  # sorted (key, value) pairs
    arg: str  # argument name

    @property
    def p(self) -> Params:
        return dict(self.params)

    @property
    def tmpl(self) -> Template:
        return TEMPLATES[self.template]

    def signature(self) -> str:
        return f"def f({self.arg}):"

    def prompt(self) -> str:
        return self.tmpl.statement(self.arg, self.p) + "\n" + self.signature()

    def solution(self) -> str:
        return self.signature() + "\n" + self.tmpl.body(self.arg, self.p)

    def bug_solution(self, index: int) -> str:
        return self.signature() + "\n" + self.tmpl.bugs[index][1](self.arg, self.p)


def _key(params: Params) -> tuple:
    return tuple(sorted(params.items()))


def _hash01(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def _compile_fn(src: str) -> Callable:
    ns: dict = {}
    exec(compile(src, "<synthesis_demo>", "exec"), ns)  # noqa: S102 - trusted generated code
    return ns["f"]


@cache
def _compile_variant(src: str) -> Callable:
    """`_compile_fn`, once per program (the tests and the public/private split both run it)."""
    return _compile_fn(src)


def _call(fn: Callable, arg):
    try:
        return ("ok", fn(arg))
    except Exception as err:  # a bug variant may raise (e.g. modulo by zero)
        return ("error", type(err).__name__)


def _same(a, b) -> bool:
    """Whether `assert f(arg) == <a's value>` would pass for an implementation returning b."""
    if a[0] != "ok" or b[0] != "ok":
        return False
    try:
        return bool(a[1] == b[1])
    except Exception:
        return False


def _variant_programs(prob: Problem) -> list[tuple[int, str]]:
    """(bug index, program) of every wrong variant the tests should reject: the plausible bugs
    first (their index in `bugs`), then kill-only degenerate variants (index -1)."""
    tmpl = prob.tmpl
    variants = [(bi, prob.bug_solution(bi)) for bi in range(len(tmpl.bugs))]
    variants.append((-1, prob.signature() + f"\n    return {prob.arg}"))
    variants += [(-1, prob.signature() + "\n" + b(prob.arg, prob.p)) for b in tmpl.checks]
    return variants


@cache
def _problem_tests(template: str, params: tuple, seed: int, min_asserts: int, n_cand: int):
    """(test_code, killable bug indices) for one parameter tuple (independent of the arg name)."""
    tmpl = TEMPLATES[template]
    prob = Problem(template, params, NAMES[tmpl.arg_kind][0])
    rng = random.Random(f"tests:{seed}:{template}:{params}")
    cands = tmpl.inputs(prob.p, rng)
    # drop duplicates, keep order; the first few are hand-picked edge cases
    seen, uniq = set(), []
    for c in cands:
        r = repr(c)
        if r not in seen:
            seen.add(r)
            uniq.append(c)
    cands = uniq[: max(n_cand, 8)]
    ref = _compile_fn(prob.solution())
    ref_out = [_call(ref, c) for c in cands]
    if any(o[0] != "ok" for o in ref_out):  # pragma: no cover - guarded by tests
        raise AssertionError(f"reference of {template} {params} raised on {cands}")
    chosen: list[int] = []
    killable: list[int] = []
    for bi, src in _variant_programs(prob):
        bug = _compile_variant(src)
        diffs = [i for i, c in enumerate(cands) if not _same(ref_out[i], _call(bug, c))]
        if not diffs:
            continue  # equivalent to the reference on every candidate: not a bug here
        if bi >= 0:
            killable.append(bi)
        if not any(i in chosen for i in diffs):
            outs = {repr(ref_out[i][1]) for i in chosen}
            fresh = [i for i in diffs if repr(ref_out[i][1]) not in outs] or diffs
            chosen.append(rng.choice(fresh[:4]))
    rest = [i for i in range(len(cands)) if i not in chosen]
    rng.shuffle(rest)
    while len(chosen) < min_asserts and rest:
        # prefer inputs whose expected output is not asserted yet (kills constant answers)
        outs = {repr(ref_out[i][1]) for i in chosen}
        pick = next((i for i in rest if repr(ref_out[i][1]) not in outs), rest[0])
        rest.remove(pick)
        chosen.append(pick)
    chosen.sort()
    lines = [f"assert f({cands[i]!r}) == {ref_out[i][1]!r}" for i in chosen]
    return "\n".join(lines) + "\n", tuple(killable)


def _fails(fn: Callable, code) -> bool:
    try:
        exec(code, {"f": fn})  # noqa: S102 - trusted generated code
    except Exception:
        return True
    return False


@cache
def _public_private(
    template: str, params: tuple, seed: int, min_asserts: int, n_cand: int
) -> tuple[str, str] | None:
    """(public, private) test_code of a problem (see the module doc); None: fewer than 2 asserts.

    The one public assert is drawn with a seed of (seed, template, params) among the asserts
    whose removal leaves every wrong variant the tests reject still rejected by the other
    (private) asserts; failing that, every plausible bug; failing that, among all asserts.
    """
    test_code, _ = _problem_tests(template, params, seed, min_asserts, n_cand)
    units = test_code.splitlines(keepends=True)  # one assert a line, nothing else
    if len(units) < 2:
        return None
    codes = [compile(u, "<synthesis_demo>", "exec") for u in units]
    prob = Problem(template, params, NAMES[TEMPLATES[template].arg_kind][0])
    kills = []  # (bug index, asserts that reject the variant)
    for bi, src in _variant_programs(prob):
        fn = _compile_variant(src)
        kills.append((bi, {i for i, code in enumerate(codes) if _fails(fn, code)}))

    def safe(i: int, plausible_only: bool) -> bool:
        return all(k - {i} for bi, k in kills if k and (bi >= 0 or not plausible_only))

    n = len(units)
    pool = [i for i in range(n) if safe(i, False)]
    pool = pool or [i for i in range(n) if safe(i, True)] or list(range(n))
    public = seeded_rng("synth-public", seed, template, params).choice(pool)
    # what data.public_private.split_tests gives for these one-line asserts
    return units[public], "".join(u for i, u in enumerate(units) if i != public)


def _pools(cfg: SynthesisDemoConfig) -> dict[str, dict[str, list[tuple]]]:
    """Per template: {'train','val','test','rl'} -> parameter tuples (a hash rank of its own)."""
    pools = {}
    for name, tmpl in TEMPLATES.items():
        keys = sorted(
            (_key(p) for p in tmpl.params()), key=lambda k: _hash01(f"{cfg.seed}/{name}/{k}")
        )
        n_test = max(1, math.ceil(cfg.test_fraction * len(keys)))
        n_val = max(1, math.ceil(cfg.val_fraction * len(keys)))
        n_rl = math.ceil(cfg.rl_fraction * len(keys))
        pools[name] = {
            "test": keys[:n_test],
            "val": keys[n_test : n_test + n_val],
            "rl": keys[n_test + n_val : n_test + n_val + n_rl],
            "train": keys[n_test + n_val + n_rl :],
        }
        if not pools[name]["train"]:
            raise ValueError(
                f"template {name!r} has {len(keys)} parameter tuples and the test/val/rl "
                f"fractions ({cfg.test_fraction}, {cfg.val_fraction}, {cfg.rl_fraction}, each "
                "rounded up) leave none for training: lower them"
            )
    return pools


def _heldout(cfg, pools, split: str, n: int, rng: random.Random) -> list[Problem]:
    """`n` distinct problems, round-robin over templates (fewer if the pools run out)."""
    per_template = {}
    for name in TEMPLATES:
        names = NAMES[TEMPLATES[name].arg_kind]
        cands = [Problem(name, k, a) for k in pools[name][split] for a in names]
        rng.shuffle(cands)
        per_template[name] = cands
    out: list[Problem] = []
    while len(out) < n and any(per_template.values()):
        for name in TEMPLATES:
            if per_template[name] and len(out) < n:
                out.append(per_template[name].pop())
    return out


def _example(cfg, prob: Problem, split: str, idx: int, rng: random.Random | None) -> Example:
    test_code, killable = _problem_tests(
        prob.template, prob.params, cfg.seed, cfg.min_asserts, cfg.num_candidates
    )
    popular = prob.template in cfg.popular_templates
    bug_index = None
    if rng is not None:  # the noisy training corpus
        tmpl = prob.tmpl
        if popular and rng.random() < cfg.popular_rate:
            bug_index = tmpl.popular_bug
        elif rng.random() < cfg.bug_rate and killable:
            bug_index = rng.choice(killable)
        if bug_index is not None and bug_index not in killable:
            bug_index = None  # not a bug for these parameters
    target = prob.solution() if bug_index is None else prob.bug_solution(bug_index)
    sides = _public_private(
        prob.template, prob.params, cfg.seed, cfg.min_asserts, cfg.num_candidates
    )
    return Example(
        id=f"synth/{split}/{idx:05d}",
        prompt=prob.prompt(),
        target=target,
        lang="python",
        tests={"test_code": test_code},
        context_prefix="",
        meta={
            "template": prob.template,
            "params": dict(prob.params),
            "arg": prob.arg,
            "popular": popular,
            "bug": "none" if bug_index is None else prob.tmpl.bugs[bug_index][0],
            "is_correct": bug_index is None,
            "reference": prob.solution(),
            # every plausible bug the tests catch, as (kind, program)
            "bug_variants": [(prob.tmpl.bugs[i][0], prob.bug_solution(i)) for i in killable],
        },
        public_tests=None if sides is None else {"test_code": sides[0]},
        private_tests=None if sides is None else {"test_code": sides[1]},
    )


def build_synthesis_demo(cfg: SynthesisDemoConfig | None = None) -> Task:
    cfg = cfg or SynthesisDemoConfig()
    pools = _pools(cfg)
    test = _heldout(cfg, pools, "test", cfg.num_test, random.Random(f"test:{cfg.seed}"))
    val = _heldout(cfg, pools, "val", cfg.num_val, random.Random(f"val:{cfg.seed}"))
    rl = _heldout(cfg, pools, "rl", cfg.num_rl, random.Random(f"rl:{cfg.seed}"))
    rng = random.Random(f"train:{cfg.seed}")
    names = list(TEMPLATES)
    train_examples = []
    for i in range(cfg.num_train):
        name = names[rng.randrange(len(names))]
        key = pools[name]["train"][rng.randrange(len(pools[name]["train"]))]
        arg_names = NAMES[TEMPLATES[name].arg_kind]
        prob = Problem(name, key, arg_names[rng.randrange(len(arg_names))])
        train_examples.append(_example(cfg, prob, "train", i, rng))
    return Task(
        name="synthesis_demo",
        kind="synthesis",
        train=train_examples,
        val=[_example(cfg, p, "val", i, None) for i, p in enumerate(val)],
        test=[_example(cfg, p, "test", i, None) for i, p in enumerate(test)],
        rl=[_example(cfg, p, "rl", i, None) for i, p in enumerate(rl)],
    )


def corpus_stats(examples: list[Example]) -> dict:
    """Share of correct solutions per template (what an imitating model learns)."""
    stats: dict = {}
    for ex in examples:
        s = stats.setdefault(ex.meta["template"], {"n": 0, "correct": 0, "bugs": {}})
        s["n"] += 1
        s["correct"] += ex.meta["is_correct"]
        if not ex.meta["is_correct"]:
            s["bugs"][ex.meta["bug"]] = s["bugs"].get(ex.meta["bug"], 0) + 1
    return stats


def rates_by_template(examples: list[Example], passed: list[float]) -> dict[str, float]:
    """Mean of `passed` (e.g. 0/1 test outcomes) per template, plus 'popular' / 'other'."""
    if len(examples) != len(passed):
        raise ValueError(f"{len(examples)} examples but {len(passed)} outcomes")
    sums: dict[str, list[float]] = {}
    for ex, v in zip(examples, passed, strict=True):
        for key in (ex.meta["template"], "popular" if ex.meta["popular"] else "other"):
            sums.setdefault(key, []).append(float(v))
    return {k: sum(v) / len(v) for k, v in sorted(sums.items())}
