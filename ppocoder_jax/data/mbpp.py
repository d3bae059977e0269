"""MBPP (Austin et al.) from jsonl: `text` (or `prompt`), `code`, `test_list`, `test_setup_code`.

`data.path` is the original `mbpp.jsonl` (split by task id: 11-510 test, 511-600 validation,
601-974 train; 1-10 are the few-shot prompt problems, put in train), a directory with
`train` / `validation` (or `val`) / `test` (/ `prompt`) `.jsonl` files (the Hugging Face
layout, also the sanitized set with `prompt` and `test_imports`), or a Hugging Face dataset id.

Prompt: CodeRL's format (call-based) around the description and the test asserts, as in the
MBPP paper's prompts (the asserts name the function to write). Tests: `test_setup_code` /
`test_imports` plus the asserts, as `test_code`.

Public / private tests (multi-turn feedback, docs/problems.md): the first assert is public,
the others (two of MBPP's three) private; the setup and imports are on both sides. A problem
with one assert has no split. The prompt lists every assert, as the MBPP paper's prompts do
(`data.mbpp_prompt_tests: all`), or only the public one (`public`: multi-turn training then
never shows the policy the asserts its reward runs).
"""

from __future__ import annotations

from pathlib import Path

from ppocoder_jax.data.apps import coderl_prompt
from ppocoder_jax.data.io import load_hub_dataset, looks_like_hub_id, read_records
from ppocoder_jax.data.public_private import first_public_split
from ppocoder_jax.data.task import Example, Task
from ppocoder_jax.errors import UserError

SPLIT_FILES = {
    "train": ("train", "prompt"),
    "val": ("validation", "val", "valid"),
    "test": ("test",),
}


def mbpp_example(rec: dict, where: str, prompt_tests: str = "all") -> Example:
    text = rec.get("text", rec.get("prompt"))
    for key, value in (
        ("text", text),
        ("code", rec.get("code")),
        ("test_list", rec.get("test_list")),
    ):
        if value is None:
            raise UserError(f"{where}: missing field {key!r}")
    tests = rec["test_list"]
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise UserError(f"{where}: 'test_list' must be a list of strings")
    setup = rec.get("test_setup_code") or ""
    imports = rec.get("test_imports") or []
    header = "\n".join([*imports, setup]).strip()
    test_code = {"test_code": (header + "\n" if header else "") + "\n".join(tests) + "\n"}
    public, private = first_public_split(test_code)
    shown = tests[:1] if prompt_tests == "public" and public is not None else tests
    question = text + "\nYour code should pass these tests:\n" + "\n".join(shown)
    return Example(
        id=f"mbpp/{rec.get('task_id', where)}",
        prompt=coderl_prompt(question, "", call_based=True),
        target=rec["code"],
        lang="python",
        tests=test_code,
        context_prefix="",
        meta={"task_id": rec.get("task_id"), "source": "mbpp"},
        public_tests=public,
        private_tests=private,
    )


def _split_of_task_id(task_id) -> str:
    if not isinstance(task_id, int):
        return "test"
    if 11 <= task_id <= 510:
        return "test"
    if 511 <= task_id <= 600:
        return "val"
    return "train"


def _find(root: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for ext in (".jsonl", ".jsonl.gz", ".json"):
            if (root / f"{stem}{ext}").is_file():
                return root / f"{stem}{ext}"
    return None


def load_mbpp(path: str, prompt_tests: str = "all") -> Task:
    """MBPP from `path`; `prompt_tests`: the asserts the prompt lists ("all" or "public")."""
    if prompt_tests not in ("all", "public"):
        raise UserError(f"MBPP: prompt_tests must be 'all' or 'public', got {prompt_tests!r}")
    root = Path(path).expanduser()
    splits: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    if root.is_file():
        for i, rec in enumerate(read_records(root), 1):
            ex = mbpp_example(rec, f"{root}: record {i}", prompt_tests)
            splits[_split_of_task_id(rec.get("task_id"))].append(ex)
    elif root.is_dir():
        for split, stems in SPLIT_FILES.items():
            for stem in stems:
                f = _find(root, (stem,))
                if f is not None:
                    recs = read_records(f)
                    splits[split] += [
                        mbpp_example(r, f"{f}: record {i}", prompt_tests)
                        for i, r in enumerate(recs, 1)
                    ]
        if not any(splits.values()):
            full = _find(root, ("mbpp",))
            if full is None:
                raise UserError(
                    f"MBPP: {str(root)!r} holds no mbpp.jsonl and no train/validation/test .jsonl"
                )
            return load_mbpp(str(full), prompt_tests)
    elif looks_like_hub_id(path):
        ds = load_hub_dataset(path, "MBPP")
        names = {"train": ("train", "prompt"), "val": ("validation",), "test": ("test",)}
        for split, hub_names in names.items():
            for hub in hub_names:
                if hub in ds:
                    splits[split] += [
                        mbpp_example(dict(r), f"{path}[{hub}] row {i}", prompt_tests)
                        for i, r in enumerate(ds[hub], 1)
                    ]
    else:
        raise UserError(f"MBPP: dataset path {str(root)!r} not found")
    return Task("mbpp", "synthesis", splits["train"], splits["val"], splits["test"])
