"""`data.prompt_format=chat`: prompts rendered by the tokenizer's own chat template.

Each example's prompt becomes a list of chat messages (its `messages` when the problem gave
them, else one user message holding the prompt text), with `data.system_prompt` first when set
and the problem has no system message of its own, and is rendered with transformers'
`tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)`
(`kwargs` = `data.chat_template_kwargs`). The rendered text replaces `Example.prompt`, so the
trainer, the evaluator and SFT see it like any other prompt text.

A tokenizer that puts its BOS token in front of every encoded text (Llama 3) would get a second
one from a template that writes `{{ bos_token }}` itself: the rendered text drops its leading
BOS in that case, so the encoded prompt has exactly one.
"""

from __future__ import annotations

from dataclasses import replace

from ppocoder_jax.data.task import Example, Task
from ppocoder_jax.errors import UserError

KEY = "data.prompt_format"


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _tokenizer_name(tokenizer) -> str:
    name = getattr(tokenizer, "name_or_path", "") or ""
    return repr(name) if name else type(tokenizer).__name__


def require_chat_template(tokenizer) -> None:
    if tokenizer is None:
        raise UserError(f"config key {KEY!r}: 'chat' needs the model's tokenizer (none was given)")
    if not has_chat_template(tokenizer):
        raise UserError(
            f"config key {KEY!r}: 'chat' needs a tokenizer with a chat template, and the "
            f"tokenizer {_tokenizer_name(tokenizer)} has none (no `chat_template`): use an "
            f"instruct / chat model's tokenizer, or {KEY}=raw"
        )


def chat_messages(example: Example, system_prompt: str = "") -> list[dict]:
    """The messages an example's prompt is rendered from."""
    if example.messages:
        messages = [dict(m) for m in example.messages]
    else:
        messages = [{"role": "user", "content": example.prompt}]
    if system_prompt and messages[0].get("role") != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _drop_double_bos(tokenizer, text: str) -> str:
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or not text.startswith(bos):
        return text
    try:
        added = tokenizer("", add_special_tokens=True)["input_ids"]
    except Exception:  # a tokenizer that cannot encode "" adds nothing we know of
        return text
    if added and added[0] == getattr(tokenizer, "bos_token_id", None):
        return text[len(bos) :]
    return text


def render_chat(
    tokenizer, messages: list[dict], template_kwargs: dict | None = None, where: str = ""
) -> str:
    """One prompt text from chat messages, ending with the assistant's generation prompt."""
    kwargs = dict(template_kwargs or {})
    try:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **kwargs
        )
    except Exception as err:  # jinja errors, raise_exception() in the template, ...
        at = f" on {where}" if where else ""
        raise UserError(
            f"config key {KEY!r}: the tokenizer's chat template failed{at}: {_one_line(err)}"
        ) from None
    if not isinstance(text, str):  # pragma: no cover - tokenize=False returns the text
        raise UserError(f"config key {KEY!r}: the chat template returned {type(text).__name__}")
    return _drop_double_bos(tokenizer, text)


def render_chat_prompts(
    task: Task, tokenizer, system_prompt: str = "", template_kwargs: dict | None = None
) -> Task:
    """`task` with every split's prompts rendered through the tokenizer's chat template."""
    require_chat_template(tokenizer)

    def render(examples: list[Example]) -> list[Example]:
        out = []
        for ex in examples:
            messages = chat_messages(ex, system_prompt)
            text = render_chat(tokenizer, messages, template_kwargs, where=f"problem {ex.id!r}")
            out.append(replace(ex, prompt=text))
        return out

    return replace(
        task,
        train=render(task.train),
        val=render(task.val),
        test=render(task.test),
        rl=render(task.rl),
    )
