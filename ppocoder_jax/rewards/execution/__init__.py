"""Sandboxed execution feedback: compile checks and unit tests on host threads.

See docs/ARCHITECTURE.md (Rewards) and the README's "Execution feedback" section.
"""

from ppocoder_jax.rewards.execution.executor import Executor, python_compiles
from ppocoder_jax.rewards.execution.languages import LANGUAGES, canonical_language
from ppocoder_jax.rewards.execution.sandbox import sandbox_info
from ppocoder_jax.rewards.execution.verdicts import REWARDS, ExecutionResult, Verdict

__all__ = [
    "LANGUAGES",
    "REWARDS",
    "ExecutionResult",
    "Executor",
    "Verdict",
    "canonical_language",
    "python_compiles",
    "sandbox_info",
]
