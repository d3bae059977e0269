"""The embedded completion set: functions and methods of this machine's Python standard library.

Deterministic: a sorted walk of `sysconfig.get_paths()['stdlib']` (skipping tests, idlelib,
lib2to3, turtledemo, ensurepip, site-packages), top-level functions and methods of top-level
classes extracted with `ast` (decorators excluded, methods dedented), kept when they compile on
their own and have at least `data.completion_min_tokens` tokens (and whose prompt fits
`data.max_source_length`, so prompts are never truncated). Prompt = the function minus its
last `data.completion_tokens` tokens, target = those tokens. Split by module (a hash of the
dotted module name): 80% train, 10% val, 10% test.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
import sysconfig
import tempfile
import textwrap
import warnings
from functools import cache
from pathlib import Path

from ppocoder_jax.data.completion import compiles, completion_examples
from ppocoder_jax.data.task import Example, Task
from ppocoder_jax.errors import UserError

SKIP_DIRS = frozenset(
    {
        "test",
        "tests",
        "idlelib",
        "site-packages",
        "dist-packages",
        "lib2to3",
        "turtledemo",
        "__pycache__",
        "ensurepip",
    }
)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def module_split(module: str) -> str:
    bucket = int(hashlib.md5(module.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 80 else "val" if bucket < 90 else "test"


def _python_files(root: Path) -> list[Path]:
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("config-"))
        files += [Path(d) / n for n in sorted(names) if n.endswith(".py")]
    return files


def _functions_in(source: str) -> list[tuple[str, int, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return []
    lines = source.splitlines(keepends=True)
    fn_types = (ast.FunctionDef, ast.AsyncFunctionDef)
    found = []
    for node in tree.body:
        if isinstance(node, fn_types):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            found += [(f"{node.name}.{m.name}", m) for m in node.body if isinstance(m, fn_types)]
    out = []
    for qualname, fn in found:
        code = textwrap.dedent("".join(lines[fn.lineno - 1 : fn.end_lineno])).rstrip()
        if compiles(code):
            out.append((qualname, fn.lineno, code))
    return out


@cache
def stdlib_functions(root: str | None = None) -> tuple[tuple[str, str, int, str], ...]:
    """(module, qualname, lineno, code) of every standalone-compiling stdlib function."""
    base = Path(root) if root else stdlib_root()
    if not base.is_dir():
        raise UserError(f"completion_stdlib: standard library directory {str(base)!r} not found")
    out = []
    for path in _python_files(base):
        rel = path.relative_to(base).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        out += [(module, q, ln, code) for q, ln, code in _functions_in(source)]
    return tuple(out)


def _cache_key(data_cfg, tokenizer, root: str | None) -> str | None:
    """Key of the built task on disk, or None when the tokenizer cannot be fingerprinted."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from ppocoder_jax.data import completion

    h = hashlib.sha256(backend.to_str().encode())
    for mod in (completion, sys.modules[__name__]):
        h.update(Path(mod.__file__).read_bytes())
    settings = (
        data_cfg.completion_tokens,
        data_cfg.completion_min_tokens,
        data_cfg.max_source_length,
        str(Path(root) if root else stdlib_root()),
        sys.version,
    )
    h.update(repr(settings).encode())
    return h.hexdigest()[:20]


def _build(data_cfg, tokenizer, root: str | None) -> dict[str, list[Example]]:
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for module, qualname, lineno, code in stdlib_functions(root):
        item = (f"stdlib/{module}:{qualname}:{lineno}", code, {"module": module, "name": qualname})
        splits[module_split(module)].append(item)
    return {
        name: completion_examples(
            items,
            tokenizer,
            data_cfg.completion_tokens,
            data_cfg.completion_min_tokens,
            max_prompt_tokens=data_cfg.max_source_length - 2,  # room for <s> ... </s>
        )
        for name, items in splits.items()
    }


def load_stdlib_completion(
    data_cfg, tokenizer, root: str | None = None, cache_dir: str | None = None
) -> Task:
    """The task; built once per (tokenizer, settings, stdlib) and cached as JSON on disk.
    (The tokenizer is the caller's: this module never imports the embedded tokenizer, which
    is trained on this corpus.)"""
    from ppocoder_jax.data.io import default_cache_dir

    key = _cache_key(data_cfg, tokenizer, root)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"stdlib_completion-{key}.json" if key else None
    if path is not None and path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            built = {
                split: [
                    Example(
                        e["id"], e["prompt"], e["target"], "python", None, e["prompt"], e["meta"]
                    )
                    for e in data[split]
                ]
                for split in ("train", "val", "test")
            }
        except (json.JSONDecodeError, KeyError, TypeError, OSError):
            built = None  # a damaged cache entry is rebuilt
        if built is not None:
            return Task(
                "completion_stdlib", "completion", built["train"], built["val"], built["test"]
            )
    built = _build(data_cfg, tokenizer, root)
    if path is not None:
        data = {
            split: [
                {"id": e.id, "prompt": e.prompt, "target": e.target, "meta": e.meta} for e in exs
            ]
            for split, exs in built.items()
        }
        try:
            cache.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=path.name, dir=cache)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, path)
        except OSError:
            pass  # caching is an optimisation only
    return Task("completion_stdlib", "completion", built["train"], built["val"], built["test"])
