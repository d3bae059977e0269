"""Jitted sampling with a KV cache -> RolloutBatch. See docs/ARCHITECTURE.md (Rollout)."""

from ppocoder_jax.rollout.buckets import (
    Sampler,
    bucket_length,
    decode_tokens,
    encode_prompts,
    generated_ids,
)
from ppocoder_jax.rollout.sampler import (
    GREEDY,
    RolloutBatch,
    SamplingParams,
    cast_params_for_compute,
    choose_tokens,
    sample,
)

__all__ = [
    "GREEDY",
    "RolloutBatch",
    "Sampler",
    "SamplingParams",
    "bucket_length",
    "cast_params_for_compute",
    "choose_tokens",
    "decode_tokens",
    "encode_prompts",
    "generated_ids",
    "sample",
]
