"""Tasks: `Example`s with prompt, target and tests; embedded corpora; dataset loaders.

See docs/ARCHITECTURE.md ("Data"). Entry point: `load_task(data_cfg, tokenizer=None)`; the task
names are `TASKS` (registry.py); your own problem files: docs/problems.md.
"""

from ppocoder_jax.data.registry import TASKS, load_task
from ppocoder_jax.data.task import Example, Task

__all__ = ["TASKS", "Example", "Task", "load_task"]
