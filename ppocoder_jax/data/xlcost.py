"""XLCoST program-level translation pairs and per-language detokenisers.

Layout: `<root>/<Src>-<Tgt>/{train,val,test}-<Src>-<Tgt>-tok.<ext>`, one program per line,
aligned by line number (directory names C++, Java, Python, C#, PHP, C, Javascript; extensions
cpp, java, py, cs, php, c, js). Each pair has one directory; a pair is found in either order.
The test split is required, train and val may be absent.

The files are tokenised the TransCoder way: tokens separated by spaces, `NEW_LINE` / `INDENT` /
`DEDENT` markers for lines and Python blocks, and inside string literals every space replaced
by ` ▁ ` and the literal split into pieces (`STRNEWLINE` / `TABSYMBOL` for newline / tab).
`detokenize(text, lang)` turns that back into source code that compiles: literals are rejoined
exactly, Python gets its indentation, C/C++ `#include` lines and PHP's `<?php`, `?>` and `$name`
are restored. Prompts and targets are the detokenised programs (what is compiled and matched);
`meta` keeps the tokenised lines.
"""

from __future__ import annotations

import re
from pathlib import Path

from ppocoder_jax.data.task import LANGS, Example, Task
from ppocoder_jax.errors import UserError

DIR_NAMES = {
    "cpp": "C++",
    "java": "Java",
    "python": "Python",
    "csharp": "C#",
    "php": "PHP",
    "c": "C",
    "javascript": "Javascript",
}
EXTENSIONS = {
    "cpp": "cpp",
    "java": "java",
    "python": "py",
    "csharp": "cs",
    "php": "php",
    "c": "c",
    "javascript": "js",
}
ALIASES = {"c++": "cpp", "c#": "csharp", "cs": "csharp", "js": "javascript", "py": "python"}

SPACE = "\u2581"  # ▁
_PREFIX = {
    "python": re.compile(r"^[rRbBfFuU]{1,2}$"),
    "csharp": re.compile(r"^(\$|@|\$@|@\$)$"),
    "cpp": re.compile(r"^(L|u|U|u8|R|LR|uR|UR|u8R)$"),
    "c": re.compile(r"^(L|u|U|u8)$"),
}


def normalize_lang(lang: str) -> str:
    key = lang.strip().lower()
    key = ALIASES.get(key, key)
    if key not in LANGS:
        raise UserError(f"unknown language {lang!r} (known: {', '.join(LANGS)})")
    return key


def _quotes(lang: str) -> tuple[str, ...]:
    if lang == "python":
        return ('"""', "'''", '"', "'")
    if lang == "javascript":
        return ('"', "'", "`")
    return ('"', "'")


def _escaped(text: str) -> bool:
    """Whether the character after `text` is escaped by an odd run of backslashes."""
    return (len(text) - len(text.rstrip("\\"))) % 2 == 1


def _literal_text(parts: list[str]) -> str:
    return "".join(parts).replace(SPACE, " ").replace("STRNEWLINE", "\n").replace("TABSYMBOL", "\t")


def merge_literals(tokens: list[str], lang: str) -> list[str]:
    """Join the space-separated pieces of each string / char literal into one exact token."""
    quotes = _quotes(lang)
    prefix = _PREFIX.get(lang)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        quote = next((q for q in quotes if tok.startswith(q)), None)
        if quote is None:
            out.append(tok)
            i += 1
            continue
        parts = [tok]
        closed = (
            len(tok) >= 2 * len(quote) and tok.endswith(quote) and not _escaped(tok[: -len(quote)])
        )
        j = i + 1
        while not closed and j < len(tokens):
            parts.append(tokens[j])
            joined = "".join(parts)
            closed = tokens[j].endswith(quote) and not _escaped(joined[: -len(quote)])
            j += 1
        literal = _literal_text(parts)
        if out and prefix is not None and prefix.match(out[-1]):
            literal = out.pop() + literal  # f"..." / $"..." / L"..."
        out.append(literal)
        i = j
    return out


def _detok_python(tokens: list[str]) -> str:
    lines, current, level = [], [], 0
    for tok in tokens:
        if tok == "NEW_LINE":
            if current:
                lines.append("    " * level + " ".join(current))
                current = []
        elif tok == "INDENT":
            if current:  # defensive: INDENT mid-line ends the line
                lines.append("    " * level + " ".join(current))
                current = []
            level += 1
        elif tok == "DEDENT":
            if current:
                lines.append("    " * level + " ".join(current))
                current = []
            level = max(0, level - 1)
        else:
            current.append(tok)
    if current:
        lines.append("    " * level + " ".join(current))
    return "\n".join(lines)


def _join_line(tokens: list[str], lang: str) -> list[str]:
    """Lines of one NEW_LINE-delimited chunk of a C-like / PHP / JS program."""
    lines: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if lang in ("c", "cpp") and (tok == "#" or re.match(r"^#\w+$", tok)):
            # preprocessor directive: "# include < a / b . h >" -> "#include <a/b.h>"
            if cur:
                lines.append(" ".join(cur))
                cur = []
            name = tok
            if tok == "#" and i + 1 < len(tokens):
                i += 1
                name = "#" + tokens[i]
            i += 1
            if name == "#include" and i < len(tokens):
                if tokens[i].startswith("<") and not tokens[i].endswith(">"):
                    header = [tokens[i]]
                    i += 1
                    while i < len(tokens) and not header[-1].endswith(">"):
                        header.append(tokens[i])
                        i += 1
                    lines.append(f"#include {''.join(header)}")
                else:
                    lines.append(f"#include {tokens[i]}")
                    i += 1
                continue  # an include ends its line even without NEW_LINE
            cur = [name]
            continue
        if lang == "php":
            if tok == "<" and tokens[i + 1 : i + 3] == ["?", "php"]:
                cur.append("<?php")
                i += 3
                continue
            if tok == "?" and i + 1 < len(tokens) and tokens[i + 1] == ">":
                cur.append("?>")
                i += 2
                continue
            if tok == "$" and i + 1 < len(tokens) and re.match(r"^\$*[A-Za-z_]\w*$", tokens[i + 1]):
                cur.append("$" + tokens[i + 1])
                i += 2
                continue
        cur.append(tok)
        i += 1
    if cur:
        lines.append(" ".join(cur))
    return lines


def _detok_clike(tokens: list[str], lang: str) -> str:
    lines: list[str] = []
    chunk: list[str] = []
    for tok in tokens + ["NEW_LINE"]:
        if tok == "NEW_LINE":
            lines += _join_line(chunk, lang)
            chunk = []
        elif tok not in ("INDENT", "DEDENT"):
            chunk.append(tok)
    return "\n".join(lines)


def detokenize(text: str, lang: str) -> str:
    """XLCoST / TransCoder-tokenised code -> source code."""
    lang = normalize_lang(lang)
    tokens = merge_literals(text.split(), lang)
    if lang == "python":
        return _detok_python(tokens)
    return _detok_clike(tokens, lang)


# ---------------------------------------------------------------------------------------------
# loader


def _pair_dir(root: Path, src: str, tgt: str) -> tuple[Path, str, str]:
    a, b = DIR_NAMES[src], DIR_NAMES[tgt]
    for x, y in ((a, b), (b, a)):
        if (root / f"{x}-{y}").is_dir():
            return root / f"{x}-{y}", x, y
    have = sorted(p.name for p in root.iterdir() if p.is_dir() and "-" in p.name)
    raise UserError(
        f"XLCoST: no directory {a}-{b} or {b}-{a} under {str(root)!r}"
        + (f" (found: {', '.join(have)})" if have else "")
    )


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def load_xlcost(path: str, source_lang: str, target_lang: str) -> Task:
    src, tgt = normalize_lang(source_lang), normalize_lang(target_lang)
    if src == tgt:
        raise UserError(f"config key 'data.target_lang': same as data.source_lang ({src})")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(
            f"XLCoST: dataset directory {str(root)!r} not found (the program-level pairs load "
            "from a local copy of XLCoST's pair_data_tok_full directory)"
        )
    pair, x, y = _pair_dir(root, src, tgt)
    splits: dict[str, list[Example]] = {}
    for split in ("train", "val", "test"):
        sfile = pair / f"{split}-{x}-{y}-tok.{EXTENSIONS[src]}"
        tfile = pair / f"{split}-{x}-{y}-tok.{EXTENSIONS[tgt]}"
        if not sfile.is_file() and not tfile.is_file() and split != "test":
            splits[split] = []
            continue
        for f in (sfile, tfile):
            if not f.is_file():
                raise UserError(f"XLCoST: file {str(f)!r} not found")
        slines, tlines = _read_lines(sfile), _read_lines(tfile)
        if len(slines) != len(tlines):
            raise UserError(
                f"XLCoST: {sfile.name} has {len(slines)} lines but {tfile.name} has "
                f"{len(tlines)} (in {pair})"
            )
        examples = []
        for i, (s, t) in enumerate(zip(slines, tlines, strict=True)):
            if not s.strip() or not t.strip():
                continue
            examples.append(
                Example(
                    id=f"xlcost/{pair.name}/{split}/{i}",
                    prompt=detokenize(s, src),
                    target=detokenize(t, tgt),
                    lang=tgt,
                    tests=None,
                    context_prefix="",
                    meta={"source_lang": src, "source_tok": s, "target_tok": t, "line": i + 1},
                )
            )
        splits[split] = examples
    name = f"translation_{src}_{tgt}"
    return Task(name, "translation", splits["train"], splits["val"], splits["test"])
