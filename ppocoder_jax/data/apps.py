"""APPS (Hendrycks et al.) from problem folders or a JSON/JSONL export, with CodeRL's prompt.

Accepted layouts for `data.path`:

* a directory with `train/` and/or `test/` sub-directories of problem folders, each holding
  `question.txt`, `input_output.json` (tests; may be missing for a few training problems),
  `solutions.json` (list of programs), `metadata.json` (`{"difficulty": ...}`), and an optional
  `starter_code.py`; a directory of problem folders alone counts as the test split;
* a directory with `train.jsonl` / `test.jsonl` (or `.json`), or one such file, in the Hugging
  Face `codeparrot/apps` export format: `problem_id`, `question`, `solutions` and `input_output`
  (JSON-encoded strings), `difficulty`, `starter_code`;
* a Hugging Face dataset id (e.g. `codeparrot/apps`) when `datasets` and the hub are available.

The validation split is a fixed 5% of the training problems (by a hash of the problem id).
The target is the first reference solution (empty when there is none).

Public / private tests (multi-turn feedback, docs/problems.md): of a problem's n >= 2
input/output pairs, min(3, n // 2) are public (at least one), drawn with a seed of `seed`
(`data.seed`) and the example id; the others are private. `Example.tests` keeps them all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from ppocoder_jax.data.io import load_hub_dataset, looks_like_hub_id, read_json, read_records
from ppocoder_jax.data.public_private import seeded_split
from ppocoder_jax.data.task import Example, Task
from ppocoder_jax.errors import UserError


def coderl_prompt(question: str, starter_code: str, call_based: bool) -> str:
    fmt = "\nUse Call-Based format\n" if call_based else "\nUse Standard Input format\n"
    return "\nQUESTION:\n" + question + "\n" + starter_code + "\n" + fmt + "\nANSWER:\n"


def _decode_field(value, where: str):
    """JSON-encoded string fields of the export (or already-decoded values)."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise UserError(f"{where}: malformed JSON ({err.msg})") from None
    return value


def _check_tests(io, where: str):
    if io is None:
        return None
    if not isinstance(io, dict) or "inputs" not in io or "outputs" not in io:
        raise UserError(f"{where}: expected an object with 'inputs' and 'outputs'")
    if len(io["inputs"]) != len(io["outputs"]):
        raise UserError(f"{where}: {len(io['inputs'])} inputs but {len(io['outputs'])} outputs")
    tests = {"inputs": io["inputs"], "outputs": io["outputs"]}
    if io.get("fn_name"):
        tests["fn_name"] = io["fn_name"]
    return tests


def _example(split, pid, question, solutions, tests, difficulty, starter, where) -> Example:
    if not isinstance(question, str):
        raise UserError(f"{where}: 'question' must be a string")
    if solutions is not None and not (
        isinstance(solutions, list) and all(isinstance(s, str) for s in solutions)
    ):
        raise UserError(f"{where}: solutions must be a list of strings")
    solutions = solutions or []
    fn_name = (tests or {}).get("fn_name")
    return Example(
        id=f"apps/{split}/{pid}",
        prompt=coderl_prompt(question, starter or "", bool(fn_name)),
        target=solutions[0] if solutions else "",
        lang="python",
        tests=tests,
        context_prefix="",
        meta={
            "problem_id": str(pid),
            "difficulty": difficulty or "",
            "fn_name": fn_name or "",
            "starter_code": starter or "",
            "num_solutions": len(solutions),
        },
    )


def _from_folder(folder: Path, split: str) -> Example:
    question_file = folder / "question.txt"
    if not question_file.is_file():
        raise UserError(f"APPS problem folder {str(folder)!r}: question.txt not found")
    question = question_file.read_text(encoding="utf-8", errors="replace")
    io_file, sol_file = folder / "input_output.json", folder / "solutions.json"
    tests = _check_tests(read_json(io_file), str(io_file)) if io_file.is_file() else None
    solutions = read_json(sol_file) if sol_file.is_file() else None
    if solutions is not None and not isinstance(solutions, list):
        raise UserError(f"{sol_file}: expected a JSON list of programs")
    meta_file = folder / "metadata.json"
    difficulty = ""
    if meta_file.is_file():
        meta = read_json(meta_file)
        difficulty = meta.get("difficulty", "") if isinstance(meta, dict) else ""
    starter_file = folder / "starter_code.py"
    starter = starter_file.read_text(encoding="utf-8") if starter_file.is_file() else ""
    return _example(split, folder.name, question, solutions, tests, difficulty, starter, folder)


def _from_record(rec: dict, split: str, where: str) -> Example:
    for key in ("question",):
        if key not in rec:
            raise UserError(f"{where}: missing field {key!r}")
    pid = rec.get("problem_id", rec.get("id", ""))
    tests = _check_tests(_decode_field(rec.get("input_output"), where + ": input_output"), where)
    solutions = _decode_field(rec.get("solutions"), where + ": solutions")
    return _example(
        split,
        pid,
        rec["question"],
        solutions,
        tests,
        rec.get("difficulty", ""),
        rec.get("starter_code", ""),
        where,
    )


def _problem_dirs(d: Path) -> list[Path]:
    dirs = [p for p in d.iterdir() if p.is_dir()]
    return sorted(dirs, key=lambda p: (len(p.name), p.name))  # 0000 < 0001 < ... numerically


def _split_file(root: Path, split: str) -> Path | None:
    for ext in (".jsonl", ".jsonl.gz", ".json"):
        if (root / f"{split}{ext}").is_file():
            return root / f"{split}{ext}"
    return None


def _records_split(path: Path, split: str) -> list[Example]:
    return [
        _from_record(r, split, f"{path}: record {i}") for i, r in enumerate(read_records(path), 1)
    ]


def _is_val(pid: str) -> bool:
    return int(hashlib.md5(f"apps-val:{pid}".encode()).hexdigest(), 16) % 100 < 5


MAX_PUBLIC = 3  # public input/output pairs per problem (at most half of them)


def with_test_split(example: Example, seed: int) -> Example:
    """`example` with its seeded public / private tests (none with fewer than 2 pairs)."""
    public, private = seeded_split(example.tests, MAX_PUBLIC, "apps-tests", seed, example.id)
    return dataclasses.replace(example, public_tests=public, private_tests=private)


def load_apps(path: str, seed: int = 0) -> Task:
    """APPS from `path`; `seed` (`data.seed`) draws the public tests of each problem."""
    task = _load_apps(path)
    split = [[with_test_split(e, seed) for e in part] for part in (task.train, task.val, task.test)]
    return Task(task.name, task.kind, *split)


def _load_apps(path: str) -> Task:
    root = Path(path).expanduser()
    splits: dict[str, list[Example]] = {"train": [], "test": []}
    if root.is_file():
        split = "train" if "train" in root.name else "test"
        splits[split] = _records_split(root, split)
    elif root.is_dir():
        found = False
        for split in ("train", "test"):
            sub, file = root / split, _split_file(root, split)
            if sub.is_dir():
                splits[split] = [_from_folder(d, split) for d in _problem_dirs(sub)]
                found = True
            elif file is not None:
                splits[split] = _records_split(file, split)
                found = True
        if not found:
            if (root / "question.txt").is_file():
                raise UserError(f"APPS: {str(root)!r} is one problem folder; pass its parent")
            dirs = _problem_dirs(root)
            if not dirs:
                raise UserError(
                    f"APPS: {str(root)!r} holds no train/ or test/ folders, no train.jsonl or "
                    "test.jsonl, and no problem folders"
                )
            splits["test"] = [_from_folder(d, "test") for d in dirs]
    elif looks_like_hub_id(path):
        ds = load_hub_dataset(path, "APPS", trust_remote_code=True)
        for split in ("train", "test"):
            if split in ds:
                splits[split] = [
                    _from_record(dict(r), split, f"{path}[{split}] row {i}")
                    for i, r in enumerate(ds[split], 1)
                ]
    else:
        raise UserError(f"APPS: dataset path {str(root)!r} not found")
    train = [e for e in splits["train"] if not _is_val(e.meta["problem_id"])]
    val = [e for e in splits["train"] if _is_val(e.meta["problem_id"])]
    return Task("apps", "synthesis", train, val, splits["test"])
