"""Seeded mutations of real programs, shaped like the ways sampled programs go wrong.

A policy emits code that is re-indented, cut off mid-token, missing or repeating lines, with
unbalanced brackets and quotes, stray tokens, and statement fragments glued in at random
indentation. `mutate` applies one to three of these to a program; the fuzz tests feed the
results to every reward (both as candidate and as reference).
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path

LANGS = ("python", "java", "cpp", "c", "csharp", "php", "javascript")
_DATA = Path(__file__).resolve().parent.parent / "data" / "codebleu_reference"

# Statement fragments per language: attribute / subscript / tuple assignments with every kind
# of right-hand side, headers missing their colon or brace, lambdas, decorators, templates,
# string interpolation.
_RHS = {
    "python": [
        '"s"', "'test*.py'", 'f"x{y}"', "f'{a!r:>{w}}'", 'b"\\x00"', 'rb"\\d+"', '"a" "b"',
        '"a" f"{b}"', '"""doc"""', "g(x, *a, **k)", "[i for i in range(3) if i]",
        "{k: v for k, v in d.items()}", "(x for x in y)", "lambda a, *b: a", "x if y else z",
        "await q", "yield", "not x", "a[1:2:3]", "...", "None", "{**a}", "[*a]",
    ],
    "java": [
        '"s"', "'c'", '"a" + b', "new int[]{1, 2}", "x -> x + 1", "(a, b) -> { return a; }",
        "List.<String>of()", "a ? b : c", "(int) x", "new Foo<>() {}", "this::m", '"""\ntext"""',
        "switch (x) { case 1 -> 2; default -> 3; }", "s.chars().map(c -> c * 2).sum()",
    ],
    "cpp": [
        '"s"', "'c'", 'u8"s"', 'R"(raw)"', 'L"w"', "std::vector<int>{1, 2}", "[&](int a) { return a; }",
        "a ? b : c", "static_cast<int>(x)", "new T[3]", "sizeof(x)", "{1, 2}", "f<int>(x)",
        "std::string(\"a\") + b", "x->y", "*p++",
    ],
    "c": [
        '"s"', "'c'", '"a" "b"', "(int) x", "sizeof(int)", "{1, 2}", "a ? b : c", "*p++", "&x",
        "f(x, y)", "x->y", "L'w'", "(struct s){.a = 1}",
    ],
    "csharp": [
        '"s"', "'c'", '$"x{y}"', '@"verbatim"', '$@"{a}b"', '"""raw"""', "x => x + 1",
        "new[] { 1, 2 }", "a ?? b", "a?.b", "(int) x", "new List<int> { 1 }", "default",
        "from x in y select x", "x switch { 1 => 2, _ => 3 }", "nameof(x)",
    ],
    "php": [
        '"s"', "'s'", '"x{$y}"', '"a $b c"', "<<<EOT\nx $y\nEOT", "<<<'EOT'\nx\nEOT",
        "fn($x) => $x + 1", "function($a) use ($b) { return $a; }", "[1, 'a' => 2]",
        "$a ?? $b", "$a?->b", "new Foo()", "`ls`", "array(1, 2)", "match($x) { 1 => 2 }",
    ],
    "javascript": [
        '"s"', "'s'", "`x${y}z`", "`a${`b${c}`}`", "/re+/g", "x => x + 1", "async (a) => await a",
        "function* () { yield 1; }", "{a, ...b}", "[...a]", "a?.b ?? c", "new Foo()", "class {}",
        "tag`t${x}`", "<div>{x}</div>", "import('x')",
    ],
}  # fmt: skip

_TARGETS = {
    "python": ["a.b", "self.x", "self.x.y", "a[0]", "a[i][j]", "a.b[c]", "a, b", "(a, b)",
               "[a, b]", "a, *b", "x"],
    "java": ["a.b", "this.x", "this.x.y", "a[0]", "a[i][j]", "x"],
    "cpp": ["a.b", "this->x", "a->b.c", "a[0]", "a[i][j]", "*p", "x", "std::get<0>(t)"],
    "c": ["a.b", "p->x", "a[0]", "a[i][j]", "*p", "x"],
    "csharp": ["a.b", "this.x", "this.x.y", "a[0]", "a[i, j]", "(a, b)", "x"],
    "php": ["$a->b", "$this->x", "$a['k']", "$a[0][1]", "$a[]", "[$a, $b]", "list($a, $b)",
            "$x", "self::$s"],
    "javascript": ["a.b", "this.x", "a[0]", "a['k']", "[a, b]", "{a, b}", "x", "a.b.c"],
}  # fmt: skip

_OPS = {
    "python": ["=", "+=", ":=", "//=", "**=", "@="],
    "php": ["=", ".=", "??=", "+=", "=&"],
    "javascript": ["=", "+=", "??=", "||=", "**="],
}
_DEFAULT_OPS = ["=", "+=", "-=", "<<=", "|="]

_HEADERS = {
    "python": ["def f(self, x)", "if x", "for a.b in c", "while True", "class A(B)", "with open(p) as f",
               "try", "except (A, B) as e", "elif x", "else", "@decorator", "@d.e(1)",
               "async def g():", "lambda: (yield)", "match x:", "case [a, *b]:", "print(f'{x=}')",
               "return", "global a", "del a[0]", "assert x, 'm'", "import a.b as c"],
    "java": ["public void f(int x)", "if (x)", "for (int i = 0; i < n; i++)", "while (true)",
             "class A extends B", "try", "catch (Exception e)", "@Override", "@SuppressWarnings(\"x\")",
             "List<Map<String, Integer>> m = new HashMap<>();", "record P(int x) {}", "else",
             "return;", "interface I<T extends Comparable<T>>", "static {", "}"],
    "cpp": ["void f(int x)", "if (x)", "for (auto& [k, v] : m)", "while (true)", "template <typename T>",
            "class A : public B", "#include <vector>", "#define M(x) (x)", "namespace n", "try",
            "catch (...)", "else", "return;", "struct S {", "}", "using T = std::map<int, int>;"],
    "c": ["void f(int x)", "if (x)", "for (int i = 0; i < n; i++)", "while (1)", "#include <stdio.h>",
          "#define M(x) (x)", "struct s {", "}", "else", "return;", "typedef int T;", "switch (x)",
          "case 1:", "goto end;", "end:"],
    "csharp": ["public void F(int x)", "if (x)", "foreach (var (a, b) in d)", "while (true)",
               "class A : B", "[Obsolete]", "[Attr(1)]", "try", "catch (Exception e) when (x)",
               "else", "return;", "get; set;", "using var s = new S();", "namespace N;", "}",
               "public T G<T>(T x) where T : new()"],
    "php": ["function f($x)", "if ($x)", "foreach ($a as $k => $v)", "while (true)", "class A extends B",
            "try", "catch (Exception $e)", "else", "return;", "?>", "<?php", "#[Attr]", "}",
            "echo \"{$a['b']}\";", "namespace A\\B;", "use A\\B as C;"],
    "javascript": ["function f(x)", "if (x)", "for (const [k, v] of m)", "while (true)",
                   "class A extends B", "try", "catch (e)", "else", "return", "@decorator",
                   "export default", "import {a as b} from 'c'", "}", "async function* g()",
                   "label:", "switch (x)"],
}  # fmt: skip

_STRAY = ["(", ")", "[", "]", "{", "}", '"', "'", "`", ":", ";", ",", ".", "->", "=>", "::",
          "\\", "#", "//", "/*", "*/", "<", ">", "<?php", "?>", "$", "@", "...", "\t", "\r",
          "\x00", "\x0b", "é", "λ", "\U0001f600", "\ufeff", "0x", "1e", "'''", '"""', "${",
          "{$", "<<<EOT", "</", "<!--", "-->"]  # fmt: skip

_SEMI = {"python": ""}


@cache
def real_programs(lang: str) -> tuple[str, ...]:
    """The distinct programs of the CodeBLEU agreement data (HumanEval solutions and generated
    programs), references and candidates."""
    seen: dict = {}
    with open(_DATA / f"{lang}.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            seen.setdefault(row["reference"], None)
            seen.setdefault(row["candidate"], None)
    return tuple(p for p in seen if p.strip())


def fragment(lang: str, rng: random.Random) -> str:
    """One statement fragment: an assignment of some right-hand side to some target, or a
    header, possibly missing its colon / brace."""
    if rng.random() < 0.6:
        op = rng.choice(_OPS.get(lang, _DEFAULT_OPS))
        target, rhs = rng.choice(_TARGETS[lang]), rng.choice(_RHS[lang])
        end = "" if lang == "python" or rng.random() < 0.3 else ";"
        if lang == "javascript" and rng.random() < 0.3:
            return f"let {target} {op} {rhs}{end}"
        if lang in ("java", "csharp", "cpp", "c") and rng.random() < 0.2:
            return f"var {target} {op} {rhs}{end}"
        return f"{target} {op} {rhs}{end}"
    header = rng.choice(_HEADERS[lang])
    r = rng.random()
    if lang == "python":
        return header + (":" if r < 0.5 else "")
    return header + (" {" if r < 0.4 else "" if r < 0.7 else " {}")


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _reindent(text: str, lang: str, rng: random.Random) -> str:
    lines = _lines(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        stripped = lines[i].lstrip(" \t")
        lines[i] = rng.choice(["", " ", "  ", "\t", " " * rng.randint(1, 13), "\t  "]) + stripped
    return "\n".join(lines)


def _truncate(text: str, lang: str, rng: random.Random) -> str:
    return text[: rng.randrange(len(text) + 1)]


def _drop_or_duplicate(text: str, lang: str, rng: random.Random) -> str:
    lines = _lines(text)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        if rng.random() < 0.5 and len(lines) > 1:
            del lines[i]
        else:
            lines.insert(i, lines[i])
    return "\n".join(lines)


def _unbalance(text: str, lang: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(chars) + 1)
        brackets = [i for i, c in enumerate(chars) if c in "()[]{}\"'`"]
        if brackets and rng.random() < 0.5:
            del chars[rng.choice(brackets)]
        else:
            chars.insert(pos, rng.choice("()[]{}\"'`"))
    return "".join(chars)


def _stray(text: str, lang: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(text) + 1)
        text = text[:pos] + rng.choice(_STRAY) + text[pos:]
    return text


def _glue(text: str, lang: str, rng: random.Random) -> str:
    lines = _lines(text)
    for _ in range(rng.randint(1, 3)):
        indent = rng.choice(["", "    ", "        ", "  ", "\t", " " * rng.randint(0, 12)])
        lines.insert(rng.randrange(len(lines) + 1), indent + fragment(lang, rng))
    return "\n".join(lines)


MUTATIONS = {
    "reindent": _reindent,
    "truncate": _truncate,
    "drop_or_duplicate": _drop_or_duplicate,
    "unbalance": _unbalance,
    "stray": _stray,
    "glue": _glue,
}


def mutate(text: str, lang: str, rng: random.Random) -> tuple[str, str]:
    """One to three mutations of `text`; returns (the mutation names, the mutated text)."""
    names = rng.sample(sorted(MUTATIONS), rng.randint(1, 3))
    for name in names:
        text = MUTATIONS[name](text or "\n", lang, rng)
    return "+".join(names), text


def fuzz_cases(lang: str, count: int, seed: int) -> list[tuple[str, str]]:
    """`count` (mutation names, program) cases from `lang`'s real programs, seeded; one in ten
    is a bare fragment list (no host program) and a few are degenerate (empty, blank)."""
    rng = random.Random(f"{seed}-{lang}")
    programs = real_programs(lang)
    cases: list[tuple[str, str]] = [("empty", ""), ("blank", " \n\t\n"), ("nul", "\x00")]
    while len(cases) < count:
        if rng.random() < 0.1:
            text = "\n".join(fragment(lang, rng) for _ in range(rng.randint(1, 6)))
            cases.append(("fragments", text))
        else:
            cases.append(mutate(rng.choice(programs), lang, rng))
    return cases
