"""Code completion examples: the method minus its last N tokens is the prompt, those the target.

Shared by the standard-library set and CodeSearchNet. Token counts use the given (model's)
tokenizer; the boundary is decoded back to text, and a method whose two decoded halves do not
reproduce it exactly (a cut inside a multi-byte character, `<unk>` tokens) is skipped. The
prompt is also the `context_prefix`, so the completed method is what is compiled and matched.
"""

from __future__ import annotations

import warnings

from ppocoder_jax.data.task import Example


def syntax_error(code: str) -> SyntaxError | None:
    """Python's own compile error for `code` (None when it compiles)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(code, "<completion>", "exec")
        except SyntaxError as err:
            return err
        except ValueError as err:  # a NUL byte
            return SyntaxError(str(err))
    return None


def compiles(code: str) -> bool:
    return syntax_error(code) is None


def long_enough_and_fits(
    num_tokens: int, n_target: int, min_tokens: int, max_prompt_tokens: int
) -> bool:
    """Whether a method of `num_tokens` tokens can be a completion example: at least
    `min_tokens`, and (when `max_prompt_tokens` > 0) a prompt of at most that many tokens."""
    if num_tokens < min_tokens:
        return False
    return max_prompt_tokens <= 0 or num_tokens - n_target <= max_prompt_tokens


def completion_examples(
    items: list[tuple[str, str, dict]],
    tokenizer,
    n_target: int = 25,
    min_tokens: int = 64,
    max_prompt_tokens: int = 0,
    batch: int = 512,
) -> list[Example]:
    """items: (id, code, meta) -> completion examples (in order, skipping unfit methods).

    `max_prompt_tokens` > 0 also skips methods whose prompt would be longer (so that a prompt is
    never truncated, which would cut off the end the model must continue).
    """
    out = []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        enc = tokenizer([code for _, code, _ in chunk], add_special_tokens=False)["input_ids"]
        for (ex_id, code, meta), ids in zip(chunk, enc, strict=True):
            if not long_enough_and_fits(len(ids), n_target, min_tokens, max_prompt_tokens):
                continue
            prompt = tokenizer.decode(
                ids[:-n_target], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
            target = tokenizer.decode(
                ids[-n_target:], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
            if prompt + target != code:
                continue
            out.append(
                Example(
                    id=ex_id,
                    prompt=prompt,
                    target=target,
                    lang="python",
                    tests=None,
                    context_prefix=prompt,
                    meta={**meta, "num_tokens": len(ids)},
                )
            )
    return out
