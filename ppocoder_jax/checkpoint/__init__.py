"""Orbax checkpoints with exact resume (see manager.py)."""

from ppocoder_jax.checkpoint.manager import CheckpointManager, Restored, abstract_with_shardings

__all__ = ["CheckpointManager", "Restored", "abstract_with_shardings"]
