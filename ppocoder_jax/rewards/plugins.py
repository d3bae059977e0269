"""Reward plugins: user functions with TRL's reward-function signature.

    reward:
      functions: ["my_rewards:short_bonus", "pkg.sub.module:style_score"]
      function_weights: [0.5, 1.0]          # optional; 1 each when empty

A function is called once per batch on a host thread, beside the sandboxed execution rewards,
with keyword arguments only, as TRL's ``GRPOTrainer`` calls reward functions::

    f(prompts=[str, ...], completions=[str, ...], id=[...], target=[...], lang=[...],
      tests=[...], meta=[...]) -> list[float | None]        # one value per completion

``completions`` are the decoded model outputs (what is appended to the task's context to make
the program), ``prompts`` the model inputs, and the other lists are the examples' columns
(``target``: the reference output, ``tests``: the unit tests or None, ``meta``: the task's
extra fields). Take ``**kwargs`` to ignore what you do not use. A value adds ``weight * value``
to the sample's score; ``None``, NaN or an infinity masks the sample out of the update like an
``INFRA_ERROR`` (a non-finite value is never scored: it is also counted as ``masked_nonfinite``).
The completions are the answers as the model wrote them, before ``reward.extract``.

Each plugin's value is a reward column ``plugin/<name>`` (``plugin_column_names``: the function's
name, suffixed with its index in ``reward.functions`` when two plugins share a name). A plugin
that raises during training masks that batch's samples as reward errors; the exception is saved
once per batch call (``CompositeReward``), and the error line names the plugin.

Bad plugins are a one-line ``UserError`` (exit 2) at start-up: a module that cannot be imported,
a name that is not there or not callable, a signature that cannot take these keyword arguments,
and (``probe``, called on two reference solutions before training) a call that raises or returns
the wrong number of values or a non-number.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ppocoder_jax.data import Example
from ppocoder_jax.errors import UserError

# The dataset columns passed beside `prompts` and `completions` (Example fields).
COLUMNS = ("id", "target", "lang", "tests", "meta")
KEY = "reward.functions"


@dataclass(frozen=True)
class RewardFunction:
    spec: str  # "package.module:function"
    fn: Callable
    weight: float

    @property
    def name(self) -> str:
        return self.spec.rsplit(":", 1)[1].rsplit(".", 1)[-1]


def plugin_column_names(functions: Sequence[RewardFunction]) -> list[str]:
    """``plugin/<name>`` per function, in order; a name two plugins share gets ``_<index>``
    (the plugin's index in ``reward.functions``), and the names are unique either way."""
    names = [rf.name for rf in functions]
    out: list[str] = []
    for i, name in enumerate(names):
        column = f"plugin/{name}" if names.count(name) == 1 else f"plugin/{name}_{i}"
        while column in out:  # e.g. a plugin literally named "score_1" beside two "score"s
            column += f"_{i}"
        out.append(column)
    return out


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]


def load_reward_functions(
    specs: Sequence[str], weights: Sequence[float] = ()
) -> list[RewardFunction]:
    """Import and check every ``package.module:function``; UserError naming the bad one."""
    if weights and len(weights) != len(specs):
        raise UserError(
            f"config key 'reward.function_weights': needs one weight per {KEY} entry "
            f"({len(specs)}), got {len(weights)}"
        )
    out = []
    for i, spec in enumerate(specs):
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise UserError(f"config key {KEY!r}: {spec!r} is not 'package.module:function'")
        try:
            obj = importlib.import_module(module_name)
        except Exception as err:  # ImportError, or anything the module raises on import
            raise UserError(
                f"config key {KEY!r}: cannot import {module_name!r} for {spec!r}: {_one_line(err)}"
            ) from None
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise UserError(f"config key {KEY!r}: {module_name!r} has no {attr!r} ({spec!r})")
            obj = getattr(obj, part)
        if not callable(obj):
            raise UserError(f"config key {KEY!r}: {spec!r} is not callable")
        check_signature(obj, spec)
        out.append(RewardFunction(spec, obj, float(weights[i]) if weights else 1.0))
    return out


def check_signature(fn: Callable, spec: str) -> None:
    """The function must accept ``prompts``, ``completions`` and the columns as keywords."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none to read: the probe call decides
        return
    names = ("prompts", "completions", *COLUMNS)
    try:
        sig.bind(**dict.fromkeys(names, []))
    except TypeError as err:
        raise UserError(
            f"config key {KEY!r}: {spec} has the wrong signature {sig} ({err}); a reward "
            "function is called as f(prompts=..., completions=..., "
            f"{', '.join(f'{c}=...' for c in COLUMNS)}) (TRL's signature: take **kwargs) and "
            "returns one float or None per completion"
        ) from None


def call_reward_function(
    rf: RewardFunction,
    examples: Sequence[Example],
    outputs: Sequence[str],
    *,
    keep_nonfinite: bool = False,
) -> list[float | None]:
    """One batch through ``rf``; checked: one number or None per completion. A NaN or an
    infinity becomes None, unless ``keep_nonfinite`` (the composite reward names them)."""
    columns = {
        "id": [e.id for e in examples],
        "target": [e.target for e in examples],
        "lang": [e.lang for e in examples],
        "tests": [e.tests for e in examples],
        "meta": [e.meta for e in examples],
    }
    values = rf.fn(prompts=[e.prompt for e in examples], completions=list(outputs), **columns)
    try:
        values = list(values)
    except TypeError:
        raise UserError(
            f"reward function {rf.spec} returned {type(values).__name__}, not a list of "
            "floats or None"
        ) from None
    if len(values) != len(outputs):
        raise UserError(
            f"reward function {rf.spec} returned {len(values)} values for {len(outputs)} "
            "completions (one float or None per completion)"
        )
    out: list[float | None] = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            v = float(v)
            out.append(v if keep_nonfinite or math.isfinite(v) else None)
        else:
            raise UserError(
                f"reward function {rf.spec} returned {v!r} ({type(v).__name__}); expected a "
                "float or None per completion"
            )
    return out


def probe(functions: Sequence[RewardFunction], examples: Sequence[Example]) -> None:
    """Start-up check: each function on (up to) two examples with their reference solutions as
    completions must return one value each; UserError otherwise."""
    examples = list(examples)[:2]
    if not examples:
        return
    outputs = [e.target for e in examples]
    for rf in functions:
        try:
            call_reward_function(rf, examples, outputs)
        except UserError as err:
            raise UserError(f"config key {KEY!r}: {err}") from None
        except Exception as err:
            raise UserError(
                f"config key {KEY!r}: {rf.spec} raised on a probe batch of {len(examples)} "
                f"reference solutions: {_one_line(err)}"
            ) from None
