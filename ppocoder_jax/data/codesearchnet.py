"""CodeSearchNet Python for code completion (last `data.completion_tokens` tokens removed).

`data.path` is a `.jsonl(.gz)` file, or a directory searched recursively for them (the original
`python/final/jsonl/{train,valid,test}/*.jsonl.gz` layout, or `train/valid/test.jsonl`); a
file's split comes from its name or folder (`train`, `valid`/`val`/`dev`, `test`), and files
with no split in their name are split 80/10/10 by a hash of each record's position. The code
is read from `code`, `original_string`, `whole_func_string` or `func_code_string`; records of
another `language` are skipped. A method is kept when it compiles, has at least
`data.completion_min_tokens` tokens of the given tokenizer and its prompt fits
`data.max_source_length`. A Hugging Face dataset id is tried when the path does not exist.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ppocoder_jax.data.completion import compiles, completion_examples
from ppocoder_jax.data.io import iter_jsonl, load_hub_dataset, looks_like_hub_id, read_records
from ppocoder_jax.data.task import Task
from ppocoder_jax.errors import UserError

CODE_FIELDS = ("code", "original_string", "whole_func_string", "func_code_string")


def _split_of(path: Path) -> str | None:
    parts = [p.lower() for p in path.parts[-3:]]
    for part in reversed(parts):
        words = set(re.split(r"[^a-z]+", part))
        if "train" in words:
            return "train"
        if words & {"valid", "val", "dev", "validation"}:
            return "val"
        if "test" in words:
            return "test"
    return None


def _hash_split(key: str) -> str:
    b = int(hashlib.md5(key.encode()).hexdigest(), 16) % 100
    return "train" if b < 80 else "val" if b < 90 else "test"


def _code_of(rec: dict, where: str) -> str | None:
    lang = rec.get("language")
    if lang is not None and str(lang).lower() != "python":
        return None
    for f in CODE_FIELDS:
        if isinstance(rec.get(f), str):
            return rec[f]
    raise UserError(f"{where}: no code field (expected one of {', '.join(CODE_FIELDS)})")


def _files(root: Path) -> list[Path]:
    pats = ("*.jsonl", "*.jsonl.gz")
    return sorted({p for pat in pats for p in root.rglob(pat)})


def load_codesearchnet(path: str, data_cfg, tokenizer=None) -> Task:
    if tokenizer is None:
        from ppocoder_jax.data.embedded_tokenizer import embedded_tokenizer

        tokenizer = embedded_tokenizer()
    root = Path(path).expanduser()
    items: dict[str, list] = {"train": [], "val": [], "test": []}

    def add(rec: dict, where: str, split: str | None, key: str) -> None:
        code = _code_of(rec, where)
        if code is None:
            return
        code = code.rstrip()
        if not compiles(code):
            return
        meta = {"source": "codesearchnet", "func_name": rec.get("func_name", "")}
        items[split or _hash_split(key)].append((f"csn/{key}", code, meta))

    if root.is_file():
        for i, rec in enumerate(read_records(root), 1):
            add(rec, f"{root}: record {i}", _split_of(root), f"{root.name}:{i}")
    elif root.is_dir():
        files = _files(root)
        if not files:
            raise UserError(f"CodeSearchNet: no .jsonl or .jsonl.gz files under {str(root)!r}")
        for f in files:
            rel = f.relative_to(root)
            split = _split_of(rel) or _split_of(Path(root.name))
            for i, rec in enumerate(iter_jsonl(f), 1):
                add(rec, f"{f}: line {i}", split, f"{rel.as_posix()}:{i}")
    elif looks_like_hub_id(path):
        ds = load_hub_dataset(path, "CodeSearchNet", name="python", trust_remote_code=True)
        for hub, split in (("train", "train"), ("validation", "val"), ("test", "test")):
            if hub in ds:
                for i, rec in enumerate(ds[hub], 1):
                    add(dict(rec), f"{path}[{hub}] row {i}", split, f"{hub}:{i}")
    else:
        raise UserError(f"CodeSearchNet: dataset path {str(root)!r} not found")
    built = {
        split: completion_examples(
            its,
            tokenizer,
            data_cfg.completion_tokens,
            data_cfg.completion_min_tokens,
            max_prompt_tokens=data_cfg.max_source_length - 2,
        )
        for split, its in items.items()
    }
    return Task("completion", "completion", built["train"], built["val"], built["test"])
