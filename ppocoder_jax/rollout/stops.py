"""Stop strings (``rollout.stop``) on sampled rows, on the host, after sampling.

    truncate_at_stops(tokenizer, tokens [B,T], token_mask [B,T], stop, eos_ids)
        -> (token_mask [B,T], texts [B])

The sampler stops a row at its end-of-sequence token only; a stop string ("\\nclass ",
"\\n```") is text, which a token boundary need not match, so it is found by decoding. The rule,
per row (the row's generated tokens are the prefix its ``token_mask`` marks, as the sampler
writes it):

1. ``ids`` are the row's masked tokens; the text of its first ``k`` tokens is
   ``tokenizer.decode(ids[:k], skip_special_tokens=True, clean_up_tokenization_spaces=False)``
   (as ``rollout.bucketed_sampler.decode_tokens`` decodes a row: special tokens such as ``</s>`` add no
   text).
2. ``k`` is the smallest count whose text contains any of the stop strings, found by binary
   search (a longer prefix never decodes to less text). The token that completes the stop
   string (``ids[k-1]``) and every token before it stay in the mask; every later one, the
   end-of-sequence token included, is masked out. A row whose text never contains a stop
   string keeps its mask unchanged.
3. The row's text is the text of its first ``k`` tokens cut right before the earliest
   occurrence of a stop string in it: the stop string and anything its last token decodes to
   after it are dropped from the text, as vLLM's ``include_stop_str_in_output=False`` does,
   while the tokens that spelled it stay (the policy did sample them, and the learner sees a
   token boundary). A row without a stop string has its whole text, the end-of-sequence
   token dropped.

So a truncated row has no end-of-sequence token in its mask: it ended on its stop string, not
on ``</s>``. Stop strings are searched in the generated text only, never in the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _decode(tokenizer, ids) -> str:
    return tokenizer.decode(
        [int(t) for t in ids], skip_special_tokens=True, clean_up_tokenization_spaces=False
    )


def _cut(text: str, stop: Sequence[str]) -> int | None:
    """Where the earliest stop string begins in ``text`` (None: there is none)."""
    found = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(found) if found else None


def truncate_at_stops(
    tokenizer,
    tokens,
    token_mask,
    stop: Sequence[str],
    eos_ids,
) -> tuple[np.ndarray, list[str]]:
    """The rows' new ``token_mask`` (same shape and dtype) and their texts, by the module's
    rule. ``eos_ids``: the end-of-sequence id or ids (dropped from an untruncated row's text)."""
    stop = list(stop)
    if any(not isinstance(s, str) or not s for s in stop):
        raise ValueError(f"stop strings must be non-empty strings, got {stop!r}")
    tokens = np.asarray(tokens)
    mask = np.array(token_mask, copy=True)
    if tokens.shape != mask.shape or tokens.ndim != 2:
        raise ValueError(f"tokens {tokens.shape} and token_mask {mask.shape} must be one [B, T]")
    eos = {int(eos_ids)} if np.ndim(eos_ids) == 0 else {int(e) for e in np.ravel(eos_ids)}
    texts = []
    for row in range(tokens.shape[0]):
        keep = np.flatnonzero(mask[row])
        ids = tokens[row, keep]
        body = ids[:-1] if len(ids) and int(ids[-1]) in eos else ids
        full = _decode(tokenizer, body)
        if not stop or _cut(full, stop) is None:
            texts.append(full)
            continue
        lo, hi = 1, len(body)  # the text of hi tokens contains a stop string
        while lo < hi:
            mid = (lo + hi) // 2
            if _cut(_decode(tokenizer, body[:mid]), stop) is None:
                lo = mid + 1
            else:
                hi = mid
        text = _decode(tokenizer, body[:hi])
        texts.append(text[: _cut(text, stop)])
        mask[row, keep[hi:]] = 0
    return mask, texts
