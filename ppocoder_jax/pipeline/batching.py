"""Text -> padded token arrays, with lengths rounded up to buckets to bound recompilation.

Conventions (CodeT5): the source is the tokenizer's own encoding of the prompt (with its special
tokens); the target is the text's tokens without special tokens followed by `</s>`; the decoder
starts from pad (0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppocoder_jax.data import Example


def bucket_length(length: int, buckets: tuple[int, ...], cap: int) -> int:
    """Smallest bucket >= length (never above `cap`); `cap` when none fits."""
    for b in sorted(buckets):
        if b >= length:
            return min(b, cap)
    return cap


def bucket_batch_size(size: int, multiple: int) -> int:
    """Round a batch size up so it divides evenly over the data-parallel devices."""
    return ((size + multiple - 1) // multiple) * multiple


def encode_sources(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    out = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]
        if len(ids) > max_length:
            # Keep the end of the prompt: for completion it is where the output continues.
            ids = ids[:1] + ids[-(max_length - 1) :]
        out.append(ids)
    return out


def encode_targets(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    eos = tokenizer.eos_token_id
    out = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 1]
        out.append(ids + [eos])
    return out


def pad_to(seqs: list[list[int]], length: int, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((len(seqs), length), pad_id, dtype=np.int32)
    mask = np.zeros((len(seqs), length), dtype=np.int32)
    for i, seq in enumerate(seqs):
        seq = seq[:length]
        ids[i, : len(seq)] = seq
        mask[i, : len(seq)] = 1
    return ids, mask


@dataclass
class EncodedExamples:
    examples: list[Example]
    sources: list[list[int]]
    targets: list[list[int]]

    def __len__(self) -> int:
        return len(self.examples)


def encode_examples(
    tokenizer, examples: list[Example], max_source: int, max_target: int
) -> EncodedExamples:
    sources = encode_sources(tokenizer, [e.prompt for e in examples], max_source)
    targets = encode_targets(tokenizer, [e.target for e in examples], max_target)
    return EncodedExamples(list(examples), sources, targets)


def source_batch(enc: EncodedExamples, indices, buckets: tuple[int, ...], cap: int):
    seqs = [enc.sources[i] for i in indices]
    length = bucket_length(max(len(s) for s in seqs), buckets, cap)
    return pad_to(seqs, length)


def target_batch(enc: EncodedExamples, indices, buckets: tuple[int, ...], cap: int):
    seqs = [enc.targets[i] for i in indices]
    length = bucket_length(max(len(s) for s in seqs), buckets, cap)
    return pad_to(seqs, length)


def decode_outputs(tokenizer, tokens: np.ndarray, mask: np.ndarray) -> list[str]:
    """Generated ids -> text, stopping at `</s>`, dropping special tokens, and keeping the
    text exactly as tokenised (no clean-up of spaces: it would change programs)."""
    from ppocoder_jax.rollout import generated_ids

    return [
        tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        for ids in generated_ids(tokens, mask, tokenizer.eos_token_id)
    ]
