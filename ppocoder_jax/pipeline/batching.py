"""Supervised (prompt, target) pairs -> padded token arrays, bucketed to bound recompilation.

Prompts are encoded and padded by the policy's conventions (`Policy.encode_prompt`: special
tokens kept, a long prompt keeps its end; padded on `Policy.pad_side`), the same ones the
sampler uses. Targets are the text's tokens without special tokens followed by the policy's
end-of-sequence token, right-padded; the loss is on them only (never on prompt tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from ppocoder_jax.data import Example
from ppocoder_jax.rollout.bucketed_sampler import bucket_length, pad_prompts


def encode_targets(tokenizer, texts: list[str], max_length: int, eos_id: int) -> list[list[int]]:
    out = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 1]
        out.append(list(ids) + [eos_id])
    return out


@dataclass
class EncodedExamples:
    examples: list[Example]
    sources: list[list[int]]
    targets: list[list[int]]
    pad_id: int = 0
    pad_side: str = "right"

    def __len__(self) -> int:
        return len(self.examples)


def encode_examples(
    policy, tokenizer, examples: list[Example], max_source: int, max_target: int
) -> EncodedExamples:
    from ppocoder_jax.model.families import as_policy

    policy = as_policy(policy)
    sources = [policy.encode_prompt(tokenizer, e.prompt, max_source) for e in examples]
    targets = encode_targets(tokenizer, [e.target for e in examples], max_target, policy.eos_id)
    return EncodedExamples(list(examples), sources, targets, policy.pad_id, policy.pad_side)


def source_batch(enc: EncodedExamples, indices, buckets: tuple[int, ...], cap: int):
    seqs = [enc.sources[i] for i in indices]
    length = bucket_length(max(len(s) for s in seqs), buckets, cap)
    return pad_prompts(seqs, length, enc.pad_id, enc.pad_side)


def target_batch(enc: EncodedExamples, indices, buckets: tuple[int, ...], cap: int):
    seqs = [enc.targets[i] for i in indices]
    length = bucket_length(max(len(s) for s in seqs), buckets, cap)
    return pad_prompts(seqs, length, enc.pad_id, "right")
