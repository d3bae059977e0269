"""APPS, MBPP and CodeSearchNet loaders on tiny fixture datasets built here."""

import gzip
import json

import pytest

from ppocoder_jax.config import load_config
from ppocoder_jax.data import load_task
from ppocoder_jax.data.apps import coderl_prompt, load_apps
from ppocoder_jax.data.codesearchnet import load_codesearchnet
from ppocoder_jax.data.completion import compiles
from ppocoder_jax.data.embedded_tokenizer import embedded_tokenizer
from ppocoder_jax.data.mbpp import load_mbpp
from ppocoder_jax.errors import UserError


def _cfg(*overrides):
    return load_config(None, list(overrides)).data


def _write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")


# --- APPS ----------------------------------------------------------------------------------


def _apps_problem(d, question, io=None, solutions=None, difficulty="introductory", starter=None):
    d.mkdir(parents=True)
    (d / "question.txt").write_text(question)
    if io is not None:
        (d / "input_output.json").write_text(json.dumps(io))
    if solutions is not None:
        (d / "solutions.json").write_text(json.dumps(solutions))
    (d / "metadata.json").write_text(json.dumps({"difficulty": difficulty, "url": "u"}))
    if starter is not None:
        (d / "starter_code.py").write_text(starter)


def test_coderl_prompt_format():
    assert coderl_prompt("Q?", "", False) == (
        "\nQUESTION:\nQ?\n\n\nUse Standard Input format\n\nANSWER:\n"
    )
    assert coderl_prompt("Q?", "def f(x):", True).endswith(
        "Q?\ndef f(x):\n\nUse Call-Based format\n\nANSWER:\n"
    )


def test_apps_folders(tmp_path):
    root = tmp_path / "APPS"
    _apps_problem(
        root / "test" / "0000",
        "Add two numbers.",
        {"inputs": ["1 2\n"], "outputs": ["3\n"]},
        ["a, b = map(int, input().split())\nprint(a + b)\n"],
        "interview",
    )
    _apps_problem(
        root / "test" / "0001",
        "Double it.",
        {"inputs": [[2]], "outputs": [[4]], "fn_name": "double"},
        ["class Solution:\n    def double(self, x):\n        return 2 * x\n"],
        "competition",
        starter="class Solution:\n    def double(self, x):\n",
    )
    for i in range(40):
        _apps_problem(root / "train" / f"{i:04d}", f"Problem {i}.", None, [f"print({i})"])
    task = load_task(_cfg("data.task=apps", f"data.path={root}"))
    assert task.kind == "synthesis" and len(task.test) == 2
    a, b = task.test
    assert a.tests == {"inputs": ["1 2\n"], "outputs": ["3\n"]}
    assert a.prompt == coderl_prompt("Add two numbers.", "", False)
    assert a.meta["difficulty"] == "interview" and a.target.startswith("a, b =")
    assert b.tests["fn_name"] == "double" and "Use Call-Based format" in b.prompt
    assert "class Solution:\n    def double(self, x):\n" in b.prompt
    assert b.meta["difficulty"] == "competition"
    assert len(task.train) + len(task.val) == 40 and len(task.val) < 10
    assert task.train[0].tests is None and task.train[0].target == "print(0)"
    assert load_apps(str(root)) == task  # deterministic


def test_apps_jsonl_export(tmp_path):
    rec = {
        "problem_id": 7,
        "question": "Echo.",
        "solutions": json.dumps(["print(input())"]),
        "input_output": json.dumps({"inputs": ["x\n"], "outputs": ["x\n"]}),
        "difficulty": "introductory",
        "starter_code": "",
    }
    _write_jsonl(tmp_path / "test.jsonl", [rec])
    task = load_apps(str(tmp_path))
    assert [e.id for e in task.test] == ["apps/test/7"] and task.test[0].target == "print(input())"
    bad = dict(rec, input_output="{not json")
    _write_jsonl(tmp_path / "b" / "test.jsonl", [rec, bad])
    with pytest.raises(UserError, match=r"test.jsonl: record 2: input_output: malformed JSON"):
        load_apps(str(tmp_path / "b"))


def test_apps_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_apps(str(tmp_path / "nope"))
    d = tmp_path / "A" / "test" / "0000"
    d.mkdir(parents=True)
    with pytest.raises(UserError, match=r"0000.*question.txt not found"):
        load_apps(str(tmp_path / "A"))
    (d / "question.txt").write_text("q")
    (d / "input_output.json").write_text('{"inputs": [1]')
    with pytest.raises(UserError, match=r"input_output.json: malformed JSON"):
        load_apps(str(tmp_path / "A"))
    (d / "input_output.json").write_text('{"inputs": [1, 2], "outputs": [1]}')
    with pytest.raises(UserError, match=r"input_output.json: 2 inputs but 1 outputs"):
        load_apps(str(tmp_path / "A"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no train/ or test/"):
        load_apps(str(tmp_path / "empty"))


# --- MBPP ----------------------------------------------------------------------------------


def _mbpp(task_id):
    return {
        "task_id": task_id,
        "text": f"Write a function to add {task_id}.",
        "code": f"def add_k(x):\n    return x + {task_id}",
        "test_list": [f"assert add_k(1) == {1 + task_id}", f"assert add_k(0) == {task_id}"],
        "test_setup_code": "",
        "challenge_test_list": [],
    }


def _passes(program, test_code):
    ns = {}
    try:
        exec(compile(program + "\n" + test_code, "<t>", "exec"), ns)  # trusted fixture code
    except Exception:
        return False
    return True


def test_mbpp_full_file_split_by_task_id(tmp_path):
    f = tmp_path / "mbpp.jsonl"
    _write_jsonl(f, [_mbpp(i) for i in (3, 11, 510, 511, 600, 601, 974)])
    task = load_task(_cfg("data.task=mbpp", f"data.path={f}"))
    assert [e.meta["task_id"] for e in task.test] == [11, 510]
    assert [e.meta["task_id"] for e in task.val] == [511, 600]
    assert [e.meta["task_id"] for e in task.train] == [3, 601, 974]
    ex = task.test[0]
    assert "Write a function to add 11." in ex.prompt and "assert add_k(1) == 12" in ex.prompt
    assert ex.prompt.startswith("\nQUESTION:\n") and ex.prompt.endswith("\nANSWER:\n")
    assert _passes(ex.reference_program(), ex.tests["test_code"])
    assert not _passes("def add_k(x):\n    return x", ex.tests["test_code"])


def test_mbpp_split_dir_and_errors(tmp_path):
    sanitized = dict(_mbpp(20), prompt="Add twenty.", test_imports=["import math"])
    del sanitized["text"]
    _write_jsonl(tmp_path / "d" / "test.jsonl", [sanitized])
    _write_jsonl(tmp_path / "d" / "train.jsonl", [_mbpp(700)])
    task = load_mbpp(str(tmp_path / "d"))
    assert len(task.test) == 1 and len(task.train) == 1
    assert task.test[0].tests["test_code"].startswith("import math\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_mbpp(11)) + "\n{broken\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2: malformed JSON"):
        load_mbpp(str(bad))
    bad.write_text(json.dumps({"task_id": 1, "text": "t", "code": "c"}) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl: record 1: missing field 'test_list'"):
        load_mbpp(str(bad))
    with pytest.raises(UserError, match="not found"):
        load_mbpp(str(tmp_path / "missing.jsonl"))


def test_hub_id_without_datasets_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("no datasets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(UserError, match="'mbpp' is not a local path"):
        load_mbpp("mbpp")


# --- CodeSearchNet -------------------------------------------------------------------------

BODY = "\n".join(f"    total = total + {i} * value  # step {i}" for i in range(12))


def _csn(i, lang="python"):
    code = f'def method_{i}(value):\n    """Doc."""\n    total = 0\n{BODY}\n    return total'
    return {"repo": "r", "func_name": f"method_{i}", "original_string": code, "language": lang}


def test_codesearchnet_layout(tmp_path):
    root = tmp_path / "python"
    _write_jsonl(root / "final/jsonl/train/python_train_0.jsonl.gz", [_csn(i) for i in range(3)])
    _write_jsonl(root / "final/jsonl/valid/python_valid_0.jsonl.gz", [_csn(5)])
    test_recs = [_csn(6), _csn(7, "java"), {"code": "def broken(:\n    pass"}, {"code": "x = 1"}]
    _write_jsonl(root / "final/jsonl/test/python_test_0.jsonl.gz", test_recs)
    tok = embedded_tokenizer()
    task = load_task(_cfg("data.task=completion", f"data.path={root}"), tokenizer=tok)
    assert (len(task.train), len(task.val), len(task.test)) == (3, 1, 1)
    ex = task.test[0]
    assert ex.reference_program() == _csn(6)["original_string"]
    assert len(tok(ex.target, add_special_tokens=False)["input_ids"]) == 25
    assert compiles(ex.reference_program()) and ex.context_prefix == ex.prompt
    cfg = _cfg("data.task=completion", "data.completion_tokens=10")
    assert len(load_codesearchnet(str(root), cfg, tok).test[0].meta["func_name"]) > 0


def test_codesearchnet_errors(tmp_path):
    cfg = _cfg("data.task=completion")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .jsonl"):
        load_codesearchnet(str(tmp_path / "empty"), cfg)
    f = tmp_path / "test.jsonl"
    f.write_text('{"repo": "r"}\n')
    with pytest.raises(UserError, match=r"test.jsonl: record 1: no code field"):
        load_codesearchnet(str(f), cfg)
    with pytest.raises(UserError, match="not found"):
        load_codesearchnet(str(tmp_path / "nope.jsonl"), cfg)
