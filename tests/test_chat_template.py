"""data.prompt_format=chat: prompts rendered by the tokenizer's own chat template."""

from __future__ import annotations

import json

import pytest
from helpers.chat_templates import CHATML, CHATML_WITH_BOS, NO_SYSTEM, chat_tokenizer

from ppocoder_jax.config import load_config
from ppocoder_jax.data import Example, load_task
from ppocoder_jax.data.chat import chat_messages, render_chat
from ppocoder_jax.errors import UserError

ADD_TESTS = {"inputs": ["1 2\n"], "outputs": ["3\n"]}


def _problems(tmp_path, *records) -> str:
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(f)


def _add(pid="add", prompt="Add two numbers.", **extra):
    return {"id": pid, "prompt": prompt, "language": "python", "tests": ADD_TESTS, **extra}


def _data(*overrides):
    return load_config(None, list(overrides)).data


@pytest.fixture(scope="module")
def tok():
    return chat_tokenizer(CHATML)


def test_text_prompt_renders_as_one_user_message_with_the_system_prompt(tmp_path, tok):
    path = _problems(tmp_path, _add())
    data = _data(
        "data.task=problems",
        f"data.path={path}",
        "data.prompt_format=chat",
        "data.system_prompt=You write Python.",
    )
    task = load_task(data, tok)
    (ex,) = task.train
    assert ex.prompt == (
        "<|im_start|>system\nYou write Python.<|im_end|>\n"
        "<|im_start|>user\nAdd two numbers.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert ex.tests == ADD_TESTS and ex.context_prefix == ""


def test_no_system_prompt_by_default_and_raw_keeps_the_text(tmp_path, tok):
    path = _problems(tmp_path, _add())
    chat = load_task(
        _data("data.task=problems", f"data.path={path}", "data.prompt_format=chat"), tok
    )
    assert chat.train[0].prompt == (
        "<|im_start|>user\nAdd two numbers.<|im_end|>\n<|im_start|>assistant\n"
    )
    raw = load_task(_data("data.task=problems", f"data.path={path}"), tok)
    assert raw.train[0].prompt == "Add two numbers."


def test_message_list_prompt_keeps_its_own_system_message(tmp_path, tok):
    messages = [
        {"role": "system", "content": "Answer in code only."},
        {"role": "user", "content": "Add two numbers."},
    ]
    path = _problems(tmp_path, _add(prompt=messages))
    data = _data(
        "data.task=problems",
        f"data.path={path}",
        "data.prompt_format=chat",
        "data.system_prompt=ignored, the problem has its own",
    )
    (ex,) = load_task(data, tok).train
    assert ex.prompt == (
        "<|im_start|>system\nAnswer in code only.<|im_end|>\n"
        "<|im_start|>user\nAdd two numbers.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert ex.messages == tuple(messages)


def test_message_list_without_system_gets_the_system_prompt(tok):
    ex = Example("a", "", "", "python", messages=({"role": "user", "content": "hi"},))
    assert chat_messages(ex, "sys") == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
    ]
    assert chat_messages(ex) == [{"role": "user", "content": "hi"}]


def test_template_kwargs_pass_through(tmp_path, tok):
    path = _problems(tmp_path, _add())
    base = ["data.task=problems", f"data.path={path}", "data.prompt_format=chat"]
    plain = load_task(_data(*base), tok).train[0].prompt
    assert "<think>" not in plain
    off = load_task(_data(*base, "data.chat_template_kwargs.enable_thinking=false"), tok)
    assert off.train[0].prompt == plain + "<think>\n\n</think>\n\n"
    on = load_task(_data(*base, "data.chat_template_kwargs={enable_thinking: true}"), tok)
    assert on.train[0].prompt == plain


def test_tokenizer_without_a_chat_template_is_a_one_line_error(tmp_path):
    path = _problems(tmp_path, _add())
    data = _data("data.task=problems", f"data.path={path}", "data.prompt_format=chat")
    with pytest.raises(UserError, match="data.prompt_format") as err:
        load_task(data, chat_tokenizer(None))
    assert "\n" not in str(err.value) and "chat template" in str(err.value)
    with pytest.raises(UserError, match="data.prompt_format"):
        load_task(data, None)


def test_a_failing_template_is_a_one_line_error_naming_the_problem(tmp_path):
    path = _problems(tmp_path, _add(pid="p1"))
    data = _data(
        "data.task=problems",
        f"data.path={path}",
        "data.prompt_format=chat",
        "data.system_prompt=be brief",
    )
    with pytest.raises(UserError, match="System role not supported") as err:
        load_task(data, chat_tokenizer(NO_SYSTEM))
    assert "'p1'" in str(err.value) and "\n" not in str(err.value)


def test_a_template_bos_is_not_doubled_by_the_tokenizer():
    tok = chat_tokenizer(CHATML_WITH_BOS)  # the tokenizer itself adds <s> to every text
    text = render_chat(tok, [{"role": "user", "content": "hi"}])
    assert not text.startswith("<s>")
    ids = tok(text, add_special_tokens=True)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_chat_applies_to_builtin_tasks_and_keeps_humaneval_programs(tok):
    data = _data("data.task=humaneval", "data.num_eval=2", "data.prompt_format=chat")
    task = load_task(data, tok)
    assert len(task.test) == 2 and task.eval_only
    ex = task.test[0]
    assert ex.prompt.startswith("<|im_start|>user\n") and ex.prompt.endswith("assistant\n")
    assert ex.context_prefix in ex.prompt  # the program is still signature + completion
    assert ex.program("    pass\n") == ex.context_prefix + "    pass\n"


def test_config_defaults():
    data = _data()
    assert data.prompt_format == "raw" and data.system_prompt == ""
    assert data.chat_template_kwargs == {}
    with pytest.raises(UserError, match="data.prompt_format"):
        _data("data.prompt_format=jinja")
    with pytest.raises(UserError, match="data.chat_template_kwargs"):
        _data("data.chat_template_kwargs=[1]")
