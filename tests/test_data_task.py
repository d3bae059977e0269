"""Example/Task basics, load_task dispatch and config errors, HumanEval from the package."""

import pytest

from ppocoder_jax.config import load_config
from ppocoder_jax.data import Example, Task, load_task
from ppocoder_jax.data.humaneval import humaneval_examples
from ppocoder_jax.errors import UserError


def test_example_program():
    ex = Example("a", "p", "tail()", "python", None, "def f():\n    return ", {})
    assert ex.program("1") == "def f():\n    return 1"
    assert ex.reference_program() == "def f():\n    return tail()"


def test_load_task_synthesis_demo_with_caps():
    cfg = load_config(
        None,
        ["data.synth_num_train=50", "data.synth_num_test=40", "data.num_eval=10", "data.seed=3"],
    )
    task = load_task(cfg.data)
    assert isinstance(task, Task) and task.kind == "synthesis"
    assert len(task.train) == 50 and len(task.test) == 10 and len(task.val) == 10
    assert task == load_task(cfg.data)


def test_bad_synthesis_config_is_a_user_error():
    cfg = load_config(None, ["data.synth_popular_templates=[nope]"])
    with pytest.raises(UserError, match="nope"):
        load_task(cfg.data)
    with pytest.raises(UserError, match="data.synth_bug_rate"):
        load_config(None, ["data.synth_bug_rate=2"])


def test_path_required():
    cfg = load_config(None, ["data.task=mbpp"])
    with pytest.raises(UserError, match="data.path"):
        load_task(cfg.data)


def _run(program: str, test_code: str) -> bool:
    ns: dict = {}
    try:
        exec(compile(program + "\n" + test_code, "<t>", "exec"), ns)  # trusted package data
    except Exception:
        return False
    return True


def test_humaneval_from_package():
    task = load_task(load_config(None, ["data.task=humaneval"]).data)
    assert len(task.test) == 164 and task.train == [] and task.val == []
    ex = task.test[0]
    assert ex.id == "HumanEval/0" and ex.context_prefix == ex.prompt
    assert "check(has_close_elements)" in ex.tests["test_code"]
    # the canonical solution passes its tests; an empty body does not
    assert _run(ex.reference_program(), ex.tests["test_code"])
    assert not _run(ex.program("    return False\n"), ex.tests["test_code"])


def test_humaneval_errors(tmp_path):
    bad = tmp_path / "he.jsonl"
    bad.write_text('{"task_id": "x"}\n{oops\n')
    with pytest.raises(UserError, match=r"he.jsonl: record 1: missing field 'prompt'"):
        humaneval_examples(bad)
    bad.write_text(
        '{"task_id": "x", "prompt": "", "canonical_solution": "", "test": "",'
        ' "entry_point": "f"}\n{oops\n'
    )
    with pytest.raises(UserError, match=r"he.jsonl:2: malformed JSON"):
        humaneval_examples(bad)
    with pytest.raises(UserError, match="not found"):
        humaneval_examples(tmp_path / "missing.jsonl")
