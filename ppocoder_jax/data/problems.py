"""`data.task=problems`: your own problems, one JSON object per line (docs/problems.md).

`data.path` is a `.jsonl` file (or `.jsonl.gz`), a `.json` file holding a list of objects, a
directory (every `*.jsonl` / `*.jsonl.gz` in it, in sorted order; else every `*.parquet`), or,
when the `datasets` package is installed, a `.parquet` file or a directory written by
`save_to_disk`.

Fields of a problem:

    id              string, unique over all files
    prompt          the model's input: text, or a list of chat messages {"role", "content"}
                    (messages need data.prompt_format=chat)
    language        python | java | cpp | c | csharp | php | javascript (or an alias:
                    py, c++, c#, cs, c_sharp, js)
    tests           {"test_code": "..."}  assert-style, Python only: run after the program;
                    {"inputs": [...], "outputs": [...]}  standard input -> expected output,
                    any language;
                    {"inputs": [[args], ...], "outputs": [...], "fn_name": "f"}  call-based,
                    Python only: f(*args) must return the output
    private_tests   optional, same shape as tests: the private tests (Example.private_tests;
                    `tests` are then the public ones, Example.public_tests); also kept in
                    meta["private_tests"] for reward plugins. Without it there is no split.
    reference       optional reference solution (SFT target, matching rewards)
    split           optional: train (default) | val | test

Any other field goes into `Example.meta`, which reward plugins receive as their `meta`
column. A bad problem is a one-line UserError "FILE:LINE: field 'NAME': problem".
"""

from __future__ import annotations

import json
from pathlib import Path

from ppocoder_jax.data.io import jsonl_records, open_text, short_repr
from ppocoder_jax.data.task import Example, Task
from ppocoder_jax.errors import UserError
from ppocoder_jax.languages import LANGUAGES, UnknownLanguage, canonical_language

KNOWN_FIELDS = ("id", "prompt", "language", "tests", "private_tests", "reference", "split")
SPLITS = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}
_TEST_KEYS = {"test_code", "inputs", "outputs", "fn_name"}


class ProblemError(UserError):
    pass


def _bad(where: str, field: str, message: str) -> ProblemError:
    return ProblemError(f"{where}: field {field!r}: {message}")


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


# -- reading --------------------------------------------------------------------------------


def _json_records(path: Path):
    try:
        text = open_text(path).read()
    except (UnicodeDecodeError, OSError) as err:
        raise UserError(f"{path}: cannot read ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProblemError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
    if not isinstance(data, list):
        raise ProblemError(f"{path}: expected a JSON list of problem objects")
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise ProblemError(f"{path}[{i}]: expected a JSON object, got {short_repr(obj)}")
        yield f"{path}[{i}]", obj


def _datasets():
    try:
        import datasets  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    return datasets


def _dataset_rows(ds, where: str, default_split: str | None = None):
    for i, row in enumerate(ds, 1):
        row = dict(row)
        if default_split and row.get("split") is None:
            row["split"] = default_split
        yield f"{where} row {i}", row


def _parquet_records(path: Path):
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - comes with the optional `datasets`
    except ImportError:
        raise UserError(
            f"problems: {str(path)!r} is a Parquet file and `pyarrow` (installed with the "
            "`datasets` package) is not; install it or convert the file to .jsonl"
        ) from None
    try:
        rows = pq.read_table(str(path)).to_pylist()
    except Exception as err:  # any reader failure is the file's
        raise UserError(f"{path}: cannot read as Parquet ({_first_line(err)})") from None
    for i, row in enumerate(rows, 1):
        yield f"{path} row {i}", row


def _saved_dataset_records(root: Path):
    datasets = _datasets()
    try:
        ds = datasets.load_from_disk(str(root))
    except Exception as err:
        raise UserError(f"{root}: cannot load the saved dataset ({_first_line(err)})") from None
    if isinstance(ds, datasets.DatasetDict):
        for name, part in ds.items():
            yield from _dataset_rows(part, f"{root}[{name}]", default_split=name)
    else:
        yield from _dataset_rows(ds, str(root))


def _is_saved_dataset(root: Path) -> bool:
    return (root / "dataset_dict.json").is_file() or (root / "state.json").is_file()


def _file_records(path: Path):
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        return jsonl_records(path, what="problems: file")
    if name.endswith(".json"):
        return _json_records(path)
    if name.endswith(".parquet"):
        return _parquet_records(path)
    raise UserError(
        f"problems: {str(path)!r} is not a .jsonl, .json or .parquet file (see docs/problems.md)"
    )


def iter_problem_records(path: str | Path):
    """(location, record) of every problem under `path` (file or directory)."""
    root = Path(path).expanduser()
    if root.is_file():
        yield from _file_records(root)
        return
    if not root.is_dir():
        raise UserError(f"problems: data.path {str(root)!r} not found")
    if _is_saved_dataset(root) and _datasets() is not None:
        yield from _saved_dataset_records(root)
        return
    files = sorted(
        p for p in root.iterdir() if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz"))
    )
    if not files:
        files = sorted(p for p in root.iterdir() if p.is_file() and p.name.endswith(".parquet"))
    if not files:
        raise UserError(f"problems: directory {str(root)!r} holds no .jsonl (or .parquet) files")
    for f in files:
        yield from _file_records(f)


# -- validating ----------------------------------------------------------------------------


def _text(rec: dict, field: str, where: str, required: bool = True) -> str | None:
    value = rec.get(field)
    if value is None:
        if required:
            raise _bad(where, field, "missing")
        return None
    if not isinstance(value, str):
        raise _bad(where, field, f"expected a string, got {short_repr(value)}")
    return value


def _prompt(rec: dict, where: str, chat: bool) -> tuple[str, tuple[dict, ...] | None]:
    value = rec.get("prompt")
    if value is None:
        raise _bad(where, "prompt", "missing")
    if isinstance(value, str):
        if not value.strip():
            raise _bad(where, "prompt", "is empty")
        return value, None
    if not isinstance(value, list) or not value:
        raise _bad(where, "prompt", "expected text or a non-empty list of chat messages")
    messages = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _bad(where, "prompt", f"message {i} must be an object with a string 'role'")
        if not isinstance(m.get("content"), str):
            raise _bad(where, "prompt", f"message {i} must have a string 'content'")
        messages.append({"role": m["role"], "content": m["content"]})
    if not chat:
        raise _bad(
            where, "prompt", "a list of chat messages needs data.prompt_format=chat (got raw)"
        )
    return "\n\n".join(m["content"] for m in messages), tuple(messages)


def _language(rec: dict, where: str) -> str:
    value = rec.get("language")
    if value is None:
        raise _bad(where, "language", "missing")
    try:
        return canonical_language(value)
    except UnknownLanguage:
        raise _bad(
            where, "language", f"{short_repr(value)} is not one of {', '.join(LANGUAGES)}"
        ) from None


def _tests(rec: dict, field: str, where: str, lang: str) -> dict | None:
    """The executor's test format (rewards/execution/harness.py), or None when there are none."""
    value = rec.get(field)
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise _bad(where, field, f"expected an object, got {short_repr(value)}")
    # a null key is an absent one (table formats give every row every key of the column)
    value = {k: v for k, v in value.items() if v is not None}
    if not value:
        return None
    unknown = sorted(set(value) - _TEST_KEYS)
    if unknown:
        raise _bad(
            where,
            field,
            f"unknown key {unknown[0]!r} (expected 'test_code', or 'inputs' and 'outputs' "
            "with an optional 'fn_name')",
        )
    if "test_code" in value:
        if set(value) != {"test_code"}:
            raise _bad(where, field, "give either 'test_code' or 'inputs'/'outputs', not both")
        code = value["test_code"]
        if not isinstance(code, str) or not code.strip():
            raise _bad(where, field, "'test_code' must be non-empty text")
        tests = {"test_code": code}
    else:
        for key in ("inputs", "outputs"):
            if key not in value:
                raise _bad(where, field, f"missing {key!r} (or give 'test_code')")
        inputs, outputs = value["inputs"], value["outputs"]
        for key, items in (("inputs", inputs), ("outputs", outputs)):
            if not isinstance(items, list):
                raise _bad(where, field, f"{key!r} must be a list, got {short_repr(items)}")
        if len(inputs) != len(outputs):
            raise _bad(where, field, f"{len(inputs)} inputs but {len(outputs)} outputs")
        if not inputs:
            raise _bad(where, field, "'inputs' is empty: give at least one test")
        tests = {"inputs": inputs, "outputs": outputs}
        if value.get("fn_name") is not None:
            tests["fn_name"] = value["fn_name"]
        else:
            for i, given in enumerate(inputs):
                if not isinstance(given, str) and not (
                    isinstance(given, list) and all(isinstance(x, str) for x in given)
                ):
                    raise _bad(
                        where,
                        field,
                        f"inputs[{i}]: standard input is text (or a list of lines), got "
                        f"{short_repr(given)}; call-based tests need 'fn_name'",
                    )
    from ppocoder_jax.rewards.execution.harness import parse_tests  # the executor's own check

    try:
        parse_tests(tests, lang)
    except ValueError as err:
        message = str(err).replace("tests.", "")
        raise _bad(where, field, message) from None
    return tests


def _split(rec: dict, where: str) -> str:
    value = rec.get("split")
    if value is None:
        return "train"
    if not isinstance(value, str) or value.strip().lower() not in SPLITS:
        raise _bad(where, "split", f"{short_repr(value)} is not one of train, val, test")
    return SPLITS[value.strip().lower()]


def problem_example(rec: dict, where: str, chat: bool = True) -> tuple[str, Example]:
    """(split, Example) of one problem record; ProblemError naming `where` and the field."""
    pid = rec.get("id")
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if pid is None:
        raise _bad(where, "id", "missing")
    if not isinstance(pid, str) or not pid.strip():
        raise _bad(where, "id", f"expected a non-empty string, got {short_repr(pid)}")
    prompt, messages = _prompt(rec, where, chat)
    lang = _language(rec, where)
    tests = _tests(rec, "tests", where, lang)
    private = _tests(rec, "private_tests", where, lang)
    reference = _text(rec, "reference", where, required=False) or ""
    split = _split(rec, where)
    meta = {k: v for k, v in rec.items() if k not in KNOWN_FIELDS}
    if private is not None:
        meta["private_tests"] = private
    example = Example(
        id=pid,
        prompt=prompt,
        target=reference,
        lang=lang,
        tests=tests,
        context_prefix="",
        meta=meta,
        messages=messages,
        # `tests` stay what they were (the public tests); the private ones are their own field
        public_tests=tests if private is not None else None,
        private_tests=private,
    )
    return split, example


def load_problems(path: str, data_cfg=None) -> Task:
    """The `problems` task: every problem under `path`, by its `split` (default train)."""
    without = getattr(data_cfg, "problems_without_tests", "skip")
    chat = getattr(data_cfg, "prompt_format", "raw") == "chat"
    splits: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    seen: dict[str, str] = {}
    skipped = total = 0
    for where, rec in iter_problem_records(path):
        split, ex = problem_example(rec, where, chat=chat)
        total += 1
        if ex.id in seen:
            raise _bad(where, "id", f"{ex.id!r} is used twice (first at {seen[ex.id]})")
        seen[ex.id] = where
        if ex.tests is None:
            if without == "error":
                raise _bad(
                    where,
                    "tests",
                    f"problem {ex.id!r} has no tests (data.problems_without_tests=error; "
                    "=skip leaves such problems out)",
                )
            skipped += 1
            continue
        splits[split].append(ex)
    if skipped:
        print(
            f"problems: skipped {skipped} of {total} problems without tests in {path} "
            "(data.problems_without_tests=skip)"
        )
    if not any(splits.values()):
        reason = f"all {total} have no tests" if total else "there are none"
        raise UserError(f"problems: no problems to use in {path} ({reason})")
    return Task("problems", "synthesis", splits["train"], splits["val"], splits["test"])
