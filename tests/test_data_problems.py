"""data.task=problems (your own problem files), the TASKS table, and evaluation-only tasks."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from ppocoder_jax.config import DataConfig, load_config
from ppocoder_jax.data import load_task
from ppocoder_jax.data.registry import TASKS, require_training_problems
from ppocoder_jax.errors import EXIT_USAGE, UserError
from ppocoder_jax.languages import LANGUAGES

EXAMPLE = Path(__file__).resolve().parent.parent / "configs" / "problems" / "example.jsonl"
ADD = {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}


def _cfg(*overrides):
    return load_config(None, list(overrides)).data


def _write(path: Path, *records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _ok(pid="p1", **extra):
    rec = {"id": pid, "prompt": "Add two numbers.", "language": "python", "tests": ADD}
    rec.update(extra)
    return rec


def _load(path, *overrides):
    return load_task(_cfg("data.task=problems", f"data.path={path}", *overrides))


# -- the example file ------------------------------------------------------------------------


def test_example_file_loads():
    task = load_task(_cfg("data.task=problems", f"data.path={EXAMPLE}"))
    assert task.name == "problems" and task.kind == "synthesis" and not task.eval_only
    everything = task.train + task.val + task.test
    assert len(everything) == 7 and len(task.test) == 2 and task.val == []
    assert {e.lang for e in everything} == {"python", "cpp", "javascript"}
    kinds = {next(iter(e.tests)) for e in everything}
    assert kinds == {"test_code", "inputs"}  # assert-style and stdin/stdout (and call-based)
    assert any("fn_name" in e.tests for e in everything)
    assert all(e.target and e.context_prefix == "" for e in everything)
    first = task.train[0]
    assert first.id == "py-palindrome" and first.meta["difficulty"] == "easy"
    assert "test_code" in first.meta["private_tests"]


def test_example_tests_are_in_the_executor_format():
    from ppocoder_jax.rewards.execution.harness import parse_tests

    task = load_task(_cfg("data.task=problems", f"data.path={EXAMPLE}"))
    for e in task.train + task.test:
        assert parse_tests(e.tests, e.lang) is not None


@pytest.mark.toolchain
def test_example_references_pass_the_real_reward():
    from ppocoder_jax.rewards.composite import CompositeReward
    from ppocoder_jax.rewards.execution.languages import SPECS, missing_tools

    task = load_task(_cfg("data.task=problems", f"data.path={EXAMPLE}"))
    examples = [e for e in task.train + task.test if not missing_tools(SPECS[e.lang])]
    if len(examples) < len(task.train + task.test):
        missing = {e.lang for e in task.train + task.test} - {e.lang for e in examples}
        if not examples:
            pytest.skip(f"no toolchain for {sorted(missing)}")
    reward_cfg = load_config(
        None,
        [
            "reward.tests_weight=1",
            "reward.compile_weight=0",
            "reward.ast_weight=0",
            "reward.dfg_weight=0",
            "reward.workers=2",
        ],
    ).reward
    with CompositeReward(reward_cfg) as reward:
        parts = reward.score(examples, [e.target for e in examples])
        assert [(e.id, p.verdict) for e, p in zip(examples, parts)] == [
            (e.id, "PASS") for e in examples
        ]
        assert all(p.total == 1.0 for p in parts)
        # the private tests pass too, and an empty answer passes nothing
        private = [e for e in examples if "private_tests" in e.meta]
        priv_parts = reward.score(
            [dataclasses.replace(e, tests=e.meta["private_tests"]) for e in private],
            [e.target for e in private],
        )
        assert private and all(p.verdict == "PASS" for p in priv_parts)
        empty = reward.score(examples, ["" for _ in examples])
        assert not any(p.passed for p in empty)


# -- reading ---------------------------------------------------------------------------------


def test_fields_splits_aliases_and_meta(tmp_path):
    f = _write(
        tmp_path / "p.jsonl",
        _ok("a", language="c++", tests={"inputs": ["1 2"], "outputs": ["3"]}, split="test"),
        "",
        _ok("b", language="JS", reference="console.log(3)", split="val", topic="math"),
        _ok(
            "c",
            tests={"test_code": "assert f(1) == 2\n"},
            private_tests={"inputs": [[1]], "outputs": [2], "fn_name": "f"},
            source="mine",
            weight=2,
        ),
        _ok(7),  # a numeric id is read as its text
    )
    task = _load(f)
    assert [e.id for e in task.train] == ["c", "7"]
    assert [e.id for e in task.val] == ["b"] and [e.id for e in task.test] == ["a"]
    a, b, c = task.test[0], task.val[0], task.train[0]
    assert a.lang == "cpp" and a.tests == {"inputs": ["1 2"], "outputs": ["3"]}
    assert b.lang == "javascript" and b.target == "console.log(3)" and b.meta == {"topic": "math"}
    assert c.tests == {"test_code": "assert f(1) == 2\n"}
    assert c.meta == {
        "source": "mine",
        "weight": 2,
        "private_tests": {"inputs": [[1]], "outputs": [2], "fn_name": "f"},
    }
    assert c.target == "" and c.messages is None and c.prompt == "Add two numbers."


def test_directory_json_list_and_order(tmp_path):
    d = tmp_path / "probs"
    d.mkdir()
    _write(d / "b.jsonl", _ok("b1"))
    _write(d / "a.jsonl", _ok("a1"), _ok("a2"))
    (d / "notes.txt").write_text("not a problem file")
    assert [e.id for e in _load(d).train] == ["a1", "a2", "b1"]
    j = tmp_path / "p.json"
    j.write_text(json.dumps([_ok("x"), _ok("y", split="test")]))
    task = _load(j)
    assert [e.id for e in task.train] == ["x"] and [e.id for e in task.test] == ["y"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no .jsonl"):
        _load(empty)
    with pytest.raises(UserError, match="not found"):
        _load(tmp_path / "missing.jsonl")


def test_datasets_parquet_and_saved_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [
        _ok("p1"),
        _ok("p2", split="test"),
        _ok("p3", tests={"test_code": "assert True"}, reference="x = 1"),
    ]
    # the nested tests object is a struct column in Parquet and comes back as a dict
    # (from_list takes its columns from the first row: give every row every column)
    full = [{**r, "split": r.get("split", "train"), "reference": r.get("reference")} for r in rows]
    ds = datasets.Dataset.from_list(full)
    ds.to_parquet(str(tmp_path / "p.parquet"))
    task = _load(tmp_path / "p.parquet")
    assert [e.id for e in task.train] == ["p1", "p3"] and [e.id for e in task.test] == ["p2"]
    # one struct column holds both test kinds: the keys a row does not use come back null
    assert task.train[0].tests == ADD and task.train[1].tests == {"test_code": "assert True"}
    assert task.train[0].target == "" and task.train[1].target == "x = 1"
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([_ok("t1")]),
            "test": datasets.Dataset.from_list([_ok("s1")]),
        }
    )
    dd.save_to_disk(str(tmp_path / "saved"))
    task = _load(tmp_path / "saved")
    assert [e.id for e in task.train] == ["t1"] and [e.id for e in task.test] == ["s1"]


@pytest.mark.toolchain
def test_the_documented_example_line(tmp_path):
    docs = EXAMPLE.parent.parent.parent / "docs" / "problems.md"
    line = next(x for x in docs.read_text().splitlines() if x.startswith('{"id": "cpp-gcd"'))
    task = _load(_write(tmp_path / "p.jsonl", line))
    (ex,) = task.train
    assert ex.lang == "cpp" and ex.meta == {"difficulty": "easy"}
    from ppocoder_jax.rewards.execution import Executor
    from ppocoder_jax.rewards.execution.languages import SPECS, missing_tools

    if missing_tools(SPECS["cpp"]):
        pytest.skip("no g++")
    with Executor(workers=1) as executor:
        assert executor.submit("cpp", ex.target, ex.tests).result().verdict.name == "PASS"


# -- errors: one line, file:line and field -------------------------------------------------

BAD = [
    (_ok(language="rust"), "language", "'rust' is not one of " + ", ".join(LANGUAGES)),
    ({"prompt": "x", "language": "python", "tests": ADD}, "id", "missing"),
    (_ok(id=""), "id", "non-empty"),
    (_ok(prompt=None), "prompt", "missing"),
    (_ok(prompt="  "), "prompt", "empty"),
    (_ok(prompt=[{"role": "user"}]), "prompt", "content"),
    (_ok(prompt=[{"role": "user", "content": "x"}]), "prompt", "data.prompt_format=chat"),
    (_ok(language=None), "language", "missing"),
    (_ok(tests={"input": ["1"], "outputs": ["1"]}), "tests", "unknown key 'input'"),
    (_ok(tests=["assert True"]), "tests", "expected an object"),
    (_ok(tests={"test_code": "  "}), "tests", "non-empty"),
    (_ok(tests={"test_code": "assert 1", "inputs": ["1"], "outputs": ["1"]}), "tests", "not both"),
    (_ok(language="cpp", tests={"test_code": "assert 1"}), "tests", "only supported for python"),
    (
        _ok(language="javascript", tests={"inputs": [[1]], "outputs": [1], "fn_name": "f"}),
        "tests",
        "only supported for python",
    ),
    (_ok(tests={"inputs": ["1", "2"], "outputs": ["1"]}), "tests", ": 2 inputs but 1 outputs"),
    (_ok(tests={"inputs": "1 2", "outputs": ["3"]}), "tests", "'inputs' must be a list"),
    (_ok(tests={"inputs": [], "outputs": []}), "tests", "empty"),
    (_ok(tests={"outputs": ["1"]}), "tests", "missing 'inputs'"),
    (_ok(tests={"inputs": [3], "outputs": ["3"]}), "tests", "inputs[0]"),
    (_ok(tests={"inputs": [[1, 2]], "outputs": ["3"]}), "tests", "inputs[0]"),
    (_ok(private_tests={"inputs": ["1"]}), "private_tests", "missing 'outputs'"),
    (_ok(reference=3), "reference", "expected a string"),
    (_ok(split="dev"), "split", "'dev' is not one of train, val, test"),
]


@pytest.mark.parametrize(("record", "field", "needle"), BAD)
def test_bad_records_name_file_line_and_field(tmp_path, record, field, needle):
    f = _write(tmp_path / "problems.jsonl", _ok("ok1"), "", _ok("ok2"), record)
    with pytest.raises(UserError) as err:
        _load(f)
    message = str(err.value)
    assert message.startswith(f"{f}:4: field {field!r}: "), message
    assert needle in message and "\n" not in message


def test_malformed_json_duplicate_ids_and_non_objects(tmp_path):
    f = _write(tmp_path / "p.jsonl", _ok("a"), "{not json")
    with pytest.raises(UserError, match=rf"^{f}:2: malformed JSON"):
        _load(f)
    f = _write(tmp_path / "p.jsonl", _ok("a"), _ok("b"), _ok("a"))
    with pytest.raises(
        UserError, match=rf"^{f}:3: field 'id': 'a' is used twice \(first at {f}:1\)"
    ):
        _load(f)
    f = _write(tmp_path / "p.jsonl", "[1, 2]")
    with pytest.raises(UserError, match=rf"^{f}:1: expected a JSON object"):
        _load(f)
    j = tmp_path / "p.json"
    j.write_text(json.dumps([_ok("a"), _ok("b", language="go")]))
    with pytest.raises(UserError, match=rf"^{j}\[1\]: field 'language'"):
        _load(j)


def test_problems_without_tests_skip_or_error(tmp_path, capsys):
    f = _write(tmp_path / "p.jsonl", _ok("a"), _ok("b", tests=None), _ok("c", tests={}))
    task = _load(f)
    assert [e.id for e in task.train] == ["a"]
    assert "skipped 2 of 3 problems without tests" in capsys.readouterr().out
    with pytest.raises(UserError, match=rf"^{f}:2: field 'tests': problem 'b' has no tests"):
        _load(f, "data.problems_without_tests=error")
    g = _write(tmp_path / "q.jsonl", _ok("x", tests=None))
    with pytest.raises(UserError, match="all 1 have no tests"):
        _load(g)
    with pytest.raises(UserError, match="data.problems_without_tests"):
        _cfg("data.problems_without_tests=keep")


def test_problems_need_a_path():
    with pytest.raises(UserError, match="data.path"):
        load_task(_cfg("data.task=problems"))


# -- the TASKS table and evaluation-only tasks ----------------------------------------------


def test_tasks_table_matches_the_config():
    names = typing.get_args(typing.get_type_hints(DataConfig)["task"])
    assert set(names) == set(TASKS)
    assert {n for n, s in TASKS.items() if s.needs_path} == {
        "completion",
        "translation",
        "apps",
        "mbpp",
        "problems",
    }
    assert [n for n, s in TASKS.items() if s.eval_only] == ["humaneval"]
    for name, spec in TASKS.items():
        if spec.needs_path:
            with pytest.raises(UserError, match="data.path"):
                load_task(_cfg(f"data.task={name}"))


def test_humaneval_is_evaluation_only():
    data = _cfg("data.task=humaneval", "data.num_eval=3")
    task = load_task(data)
    assert task.eval_only and not task.has_training_problems() and len(task.split("test")) == 3
    with pytest.raises(UserError) as err:
        require_training_problems(task, data)
    message = str(err.value)
    assert message.startswith("task 'humaneval' is evaluation-only (it has no training problems)")
    assert "data.task=problems" in message and "apps/mbpp" in message
    assert "ppocoder eval data.task=humaneval" in message and "\n" not in message


def test_mbpp_and_a_test_only_problem_file_are_not_evaluation_only(tmp_path):
    f = _write(tmp_path / "p.jsonl", _ok("a", split="test"))
    data = _cfg("data.task=problems", f"data.path={f}")
    task = load_task(data)
    assert not task.eval_only and not task.has_training_problems()
    with pytest.raises(UserError, match="has no training problems in data.path"):
        require_training_problems(task, data)
    mbpp = tmp_path / "mbpp.jsonl"
    rec = {"task_id": 700, "text": "t", "code": "def f(): return 1", "test_list": ["assert f()"]}
    mbpp.write_text(json.dumps(rec) + "\n")
    data = _cfg("data.task=mbpp", f"data.path={mbpp}")
    task = load_task(data)
    assert not TASKS["mbpp"].eval_only and task.has_training_problems()
    require_training_problems(task, data)  # no error


def _no_model(monkeypatch):
    import ppocoder_jax.pipeline.policy_loader as policy_loader

    monkeypatch.setattr(policy_loader, "load_policy", lambda cfg: (None, None, None))


def test_train_on_humaneval_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    from ppocoder_jax.cli import main

    _no_model(monkeypatch)
    rc = main(
        ["train", "data.task=humaneval", f"train.run_dir={tmp_path}", "train.tensorboard=false"]
    )
    assert rc == EXIT_USAGE == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ppocoder train: error: task 'humaneval' is evaluation-only")
    assert "\n" not in err


def test_eval_on_humaneval_still_reaches_the_evaluator(tmp_path, monkeypatch):
    import ppocoder_jax.pipeline.evaluate as evaluate_module
    from ppocoder_jax.pipeline.jobs import eval_job

    seen = {}

    def fake_evaluate(cfg, params, model_cfg, tokenizer, kind, examples, reward, **kw):
        seen.update(kind=kind, n=len(examples), tests=reward.cfg.tests_weight)
        return {"pass@1": 0.0}

    monkeypatch.setattr(evaluate_module, "evaluate", fake_evaluate)
    cfg = load_config(
        None,
        ["data.task=humaneval", "data.num_eval=4", f"train.run_dir={tmp_path}", "reward.workers=1"],
    )
    assert eval_job(cfg, "test", policy=(None, None, None)) == {"pass@1": 0.0}
    assert seen == {"kind": "synthesis", "n": 4, "tests": 1.0}
