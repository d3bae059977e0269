"""Tasks: `Example`s with prompt, target and tests; embedded corpora; dataset loaders.

See docs/ARCHITECTURE.md ("Data"). Entry point: `load_task(data_cfg, tokenizer=None)`.
"""

from ppocoder_jax.data.registry import load_task
from ppocoder_jax.data.task import Example, Task

__all__ = ["Example", "Task", "load_task"]
