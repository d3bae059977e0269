"""The embedded pretraining corpus: standard-library Python the completion task never scores.

Functions of the training-split modules (stdlib_completion.module_split), minus every function
the completion task could turn into an example: at least `data.completion_min_tokens` tokens
and a prompt of at most `pretrain.max_length - 2` tokens (with its `<s>`/`</s>`). So the
validation and test modules (evaluation) and the completion task's training functions (SFT and
PPO) are all left out, and so is a training module's function whose text equals an evaluation
module's (copied helpers are common in the standard library); what remains is the short functions and the long ones, the latter cut
into windows of `pretrain.max_length` tokens.
"""

from __future__ import annotations

import numpy as np

from ppocoder_jax.data.completion import long_enough_and_fits
from ppocoder_jax.data.stdlib_completion import module_split, stdlib_functions


def completion_could_use(num_tokens: int, data_cfg, max_length: int) -> bool:
    """Whether a function of this many tokens could be a completion example whose prompt fits
    `max_length` (the rule stdlib_completion applies, at that prompt length)."""
    return long_enough_and_fits(
        num_tokens, data_cfg.completion_tokens, data_cfg.completion_min_tokens, max_length - 2
    )


def pretraining_windows(
    tokenizer, data_cfg, max_length: int, root: str | None = None
) -> tuple[list[tuple[np.ndarray, bool]], dict]:
    """(token window, whether it ends its function) pairs, windows without special tokens and
    shorter than max_length, and counts of what was kept."""
    kept = []
    counts = {"functions": 0, "excluded_eval_modules": 0, "excluded_completion": 0,
              "excluded_copies_of_eval": 0}  # fmt: skip
    functions = stdlib_functions(root)
    held_out = {code for module, _, _, code in functions if module_split(module) != "train"}
    codes = []
    for module, _, _, code in functions:
        if module_split(module) != "train":
            counts["excluded_eval_modules"] += 1
        elif code in held_out:  # the same text in a training module (a copied helper)
            counts["excluded_copies_of_eval"] += 1
        else:
            codes.append(code)
    width = max_length - 1  # room for the end-of-sequence token
    for lo in range(0, len(codes), 512):
        ids_list = tokenizer(codes[lo : lo + 512], add_special_tokens=False)["input_ids"]
        for ids in ids_list:
            if completion_could_use(len(ids), data_cfg, max_length):
                counts["excluded_completion"] += 1
                continue
            counts["functions"] += 1
            ids = np.asarray(ids, dtype=np.int32)
            kept += [
                (ids[i : i + width], i + width >= len(ids))
                for i in range(0, len(ids), width)
                if len(ids) - i >= 8
            ]
    counts["windows"] = len(kept)
    counts["tokens"] = int(sum(len(w) for w, _ in kept))
    return kept, counts


def validation_windows(
    tokenizer, max_length: int, limit: int = 256, root: str | None = None
) -> list[tuple[np.ndarray, bool]]:
    """Windows of the validation-split modules' functions (never trained on): a held-out loss."""
    codes = [code for module, _, _, code in stdlib_functions(root) if module_split(module) == "val"]
    ids_list = tokenizer(codes[: limit * 2], add_special_tokens=False)["input_ids"]
    out = [
        (np.asarray(ids[: max_length - 1], dtype=np.int32), len(ids) < max_length)
        for ids in ids_list
        if len(ids) >= 8
    ]
    return out[:limit]
