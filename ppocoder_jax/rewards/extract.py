"""The program inside a model's answer: the code of a fenced Markdown block, or the whole text.

    extract_code(text, lang=None, mode="none", block="last") -> str

Chat / instruct models answer in Markdown: prose around one or more fenced blocks. The reward
(``reward.extract``, in ``CompositeReward`` before the program is built from the output, so
training and evaluation alike) and ``ppocoder generate --extract`` take the program out of the
answer with this one function:

- ``none``: the answer as it is (the default; the program is exactly the model's text).
- ``fenced``: among the fenced blocks, those whose info string names ``lang`` (``python`` /
  ``py`` / ``python3``, ``cpp`` / ``c++`` / ``cc`` / ``cxx``, ``c``, ``java``, ``csharp`` /
  ``cs`` / ``c#`` / ``c_sharp``, ``php``, ``javascript`` / ``js`` / ``node`` / ``nodejs``;
  case-insensitive, a leading ``{`` / ``.`` dropped as in ``{.python}``); when none names it
  (or ``lang`` is None), all the fenced blocks; of those, the ``first`` or the ``last``
  (``block``, ``reward.extract_block``); when the answer has no fenced block, the whole
  answer.
- ``auto``: ``fenced`` when the answer contains a fence, else the whole answer. With the
  fallbacks above this is the same program as ``fenced`` for every answer; it is the name to
  use for "take the code out of Markdown when there is Markdown".

Fences follow CommonMark: an opening line of at least three backticks or tildes indented by at
most three spaces (a backtick fence's info string holds no backtick), closed by a line of the
same character, at least as long, with nothing else on it. A block the answer never closes (an
answer cut at ``max_new_tokens`` or a stop string) runs to the end of the answer. A block's
code is the exact text between the fence lines (its last newline included); a fence indented
by k spaces has up to k spaces removed from each of its lines, as CommonMark does.
"""

from __future__ import annotations

import re
from typing import Literal

MODES = ("none", "fenced", "auto")
BLOCKS = ("first", "last")

# info-string tag -> our language name (ppocoder_jax.languages)
TAGS = {
    "python": "python",
    "py": "python",
    "python3": "python",
    "py3": "python",
    "cpp": "cpp",
    "c++": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "c": "c",
    "java": "java",
    "csharp": "csharp",
    "cs": "csharp",
    "c#": "csharp",
    "c_sharp": "csharp",
    "php": "php",
    "javascript": "javascript",
    "js": "javascript",
    "node": "javascript",
    "nodejs": "javascript",
}

_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def _closes(line: str, char: str, length: int) -> bool:
    stripped = line.rstrip(" \t\r\n")
    body = stripped.lstrip(" ")
    return len(stripped) - len(body) <= 3 and len(body) >= length and body == char * len(body)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block of ``text`` in order, as (info-string tag lowercased, code)."""
    lines = text.splitlines(keepends=True)
    blocks = []
    i = 0
    while i < len(lines):
        opened = _OPEN.match(lines[i].rstrip("\r\n"))
        if opened is None or (opened[2][0] == "`" and "`" in opened[3]):
            i += 1
            continue
        indent, fence, info = len(opened[1]), opened[2], opened[3].strip()
        start = i + 1
        end = start
        while end < len(lines) and not _closes(lines[end], fence[0], len(fence)):
            end += 1
        body = lines[start:end]
        if indent:
            body = [_dedent(line, indent) for line in body]
        tag = info.split(maxsplit=1)[0].lstrip("{.").rstrip("}").lower() if info else ""
        blocks.append((tag, "".join(body)))
        i = end + 1
    return blocks


def _dedent(line: str, n: int) -> str:
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, n) :]


def has_fence(text: str) -> bool:
    """Whether ``text`` contains a fence line (``auto`` extracts only then)."""
    return any(_OPEN.match(line) for line in text.splitlines())


def extract_code(
    text: str,
    lang: str | None = None,
    mode: Literal["none", "fenced", "auto"] = "none",
    block: Literal["first", "last"] = "last",
) -> str:
    """The program in ``text`` by the module's rule (``lang``: the example's language, our name
    or an alias; None prefers no language)."""
    if mode not in MODES:
        raise ValueError(f"extract mode {mode!r}: expected one of {', '.join(MODES)}")
    if block not in BLOCKS:
        raise ValueError(f"extract block {block!r}: expected one of {', '.join(BLOCKS)}")
    if mode == "none" or (mode == "auto" and not has_fence(text)):
        return text
    blocks = fenced_blocks(text)
    if not blocks:
        return text
    want = TAGS.get(str(lang).strip().lower()) if lang is not None else None
    if want is None and lang is not None:
        want = str(lang).strip().lower()  # a language name without an alias: itself
    chosen = [code for tag, code in blocks if want is not None and TAGS.get(tag, tag) == want]
    chosen = chosen or [code for _, code in blocks]
    return chosen[0] if block == "first" else chosen[-1]
