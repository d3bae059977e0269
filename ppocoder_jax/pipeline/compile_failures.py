"""Why Python completions fail to compile: one cause per completed function.

The completion setting compiles prompt + completion. A failure is put in the first of these
that applies:
- `truncated`: the completion ran to the token budget without ending;
- `bracket`: a bracket left open or closed without its opener;
- `string`: a string literal left open;
- `indentation`: IndentationError / TabError (a block without a body, a stray dedent);
- `unknown_token`: a character or literal Python has no token for;
- `other`: any other syntax error (the message's first words are counted in `other_messages`).
"""

from __future__ import annotations

import io
import tokenize
from collections import Counter

from ppocoder_jax.data.completion import syntax_error

CAUSES = ("truncated", "bracket", "string", "indentation", "unknown_token", "other")

_BRACKET = ("was never closed", "unmatched", "does not match opening parenthesis")
_STRING = ("unterminated string", "unterminated triple-quoted", "unterminated f-string")
_UNKNOWN = ("invalid character", "invalid decimal literal", "invalid hexadecimal",
            "invalid octal", "invalid binary", "invalid non-printable", "invalid imaginary",
            "invalid digit")  # fmt: skip


def _has_unknown_token(code: str) -> bool:
    """Whether Python's tokenizer meets a character it has no token for (`$`, `?`, a
    backtick): the compiler calls those plain "invalid syntax"."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.ERRORTOKEN and tok.string.strip() not in ("", "'", '"'):
                return True
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass  # an unclosed bracket or string at the end: not this cause
    return False


def cause(err: SyntaxError, hit_limit: bool, code: str = "") -> str:
    if hit_limit:
        return "truncated"
    if isinstance(err, IndentationError):  # TabError is one too
        return "indentation"
    msg = str(err.msg if err.msg is not None else err).lower()
    if any(s in msg for s in _STRING):
        return "string"
    if any(s in msg for s in _BRACKET):
        return "bracket"
    if any(s in msg for s in _UNKNOWN) or _has_unknown_token(code):
        return "unknown_token"
    return "other"


def failure_breakdown(prompts: list[str], outputs: list[str], hit_limit: list[bool]) -> dict:
    """Share of all completions failing for each cause (they sum to 1 - compile rate by
    Python's compiler), and the commonest messages among `other`."""
    counts: Counter = Counter()
    other: Counter = Counter()
    for prompt, out, limit in zip(prompts, outputs, hit_limit, strict=True):
        err = syntax_error(prompt + out)
        if err is None:
            continue
        c = cause(err, limit, prompt + out)
        counts[c] += 1
        if c == "other":
            other[str(err.msg or err).split("(")[0].strip()[:40]] += 1
    n = max(len(outputs), 1)
    return {
        "per_compile_failure": {c: counts[c] / n for c in CAUSES},
        "compile_failure_other_messages": dict(other.most_common(5)),
    }
