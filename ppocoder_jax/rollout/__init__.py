"""Jitted sampling with a KV cache -> RolloutBatch. See docs/ARCHITECTURE.md (Rollout)."""

from ppocoder_jax.rollout.bucketed_sampler import (
    Sampler,
    bucket_length,
    decode_tokens,
    generated_ids,
    pad_prompts,
)
from ppocoder_jax.rollout.sampler import (
    GREEDY,
    RolloutBatch,
    SamplingParams,
    choose_tokens,
    sample,
)

__all__ = [
    "GREEDY",
    "RolloutBatch",
    "Sampler",
    "SamplingParams",
    "bucket_length",
    "choose_tokens",
    "decode_tokens",
    "generated_ids",
    "pad_prompts",
    "sample",
]
