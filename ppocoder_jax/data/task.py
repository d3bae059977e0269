"""`Example` and `Task`: what every loader returns (see docs/ARCHITECTURE.md, "Data")."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ppocoder_jax.languages import LANGUAGES as LANGS  # noqa: F401  (the one table)

KINDS = ("completion", "translation", "synthesis")


@dataclass(frozen=True)
class Example:
    id: str
    prompt: str  # model input text
    target: str  # reference output text
    lang: str  # python | java | cpp | c | csharp | php | javascript
    # {"inputs": [...], "outputs": [...][, "fn_name": ...]} (stdin/stdout or call-based) or
    # {"test_code": "<python asserts run after the program>"}; None when there are no tests.
    tests: dict | None = None
    context_prefix: str = ""  # text the output is appended to before compiling / matching
    meta: dict = field(default_factory=dict)
    # The prompt as chat messages ({"role", "content"} dicts) when the problem gave it so;
    # `data.prompt_format=chat` renders them (or `prompt` as one user message) into `prompt`.
    messages: tuple[dict, ...] | None = None
    # Multi-turn execution feedback (data/public_private.py, docs/problems.md): the PUBLIC tests'
    # failures are shown to the model, the PRIVATE tests decide the final reward and are never
    # shown. Same format as `tests`; None when the problem has no split. `tests` keeps every
    # test whatever the split, so single-turn training and evaluation never depend on it.
    public_tests: dict | None = None
    private_tests: dict | None = None

    def public_and_private_tests(self) -> tuple[dict | None, dict | None]:
        """(public, private) tests; a side the problem does not give is all of `tests`."""
        public = self.public_tests if self.public_tests is not None else self.tests
        private = self.private_tests if self.private_tests is not None else self.tests
        return public, private

    def program(self, output: str) -> str:
        """The text that is compiled / tested / matched for a model output."""
        return self.context_prefix + output

    def reference_program(self) -> str:
        return self.context_prefix + self.target


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # completion | translation | synthesis
    train: list[Example]
    val: list[Example]
    test: list[Example]
    # Problems for PPO only (prompt + tests; their solutions are in no supervised corpus). When
    # empty, PPO samples its prompts from `train` (the paper's setting).
    rl: list[Example] = field(default_factory=list)
    # An evaluation set (e.g. HumanEval): it has no training problems, by design.
    eval_only: bool = False

    def ppo_examples(self) -> list[Example]:
        return self.rl or self.train

    def has_training_problems(self) -> bool:
        """Whether PPO has prompts to train on (`rl`, else `train`)."""
        return not self.eval_only and bool(self.ppo_examples())

    def split(self, name: str) -> list[Example]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, name)


def cap(examples: list[Example], n: int, seed: int) -> list[Example]:
    """A deterministic subset of `n` examples (order kept); n == 0 keeps all."""
    if n <= 0 or n >= len(examples):
        return list(examples)
    keep = sorted(random.Random(f"cap:{seed}:{len(examples)}").sample(range(len(examples)), n))
    return [examples[i] for i in keep]
