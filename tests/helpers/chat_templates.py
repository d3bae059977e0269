"""Small chat templates (Jinja, ChatML-style) and a tokenizer that carries one, for tests.

CHATML                 <|im_start|>{role}\n{content}<|im_end|>\n per message, then the
                       assistant's generation prompt; `enable_thinking=False` (a template
                       kwarg, as Qwen3's) adds an empty <think></think> block
CHATML_WITH_BOS        the same, led by {{ bos_token }} (as Llama 3's template)
NO_SYSTEM              refuses a system message with raise_exception (as Gemma's)
chat_tokenizer(template=CHATML) -> the tiny test tokenizer (tests/tiny_t5.py) with it
"""

from __future__ import annotations

CHATML = (
    "{% for m in messages %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% endif %}{% endif %}"
)

CHATML_WITH_BOS = "{{ bos_token }}" + CHATML

NO_SYSTEM = (
    "{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}"
    "{% endif %}" + CHATML
)


def chat_tokenizer(template: str | None = CHATML):
    """The tiny byte-level BPE of tests/tiny_t5.py (it adds <s> ... </s> around every text)
    with `template` as its chat template (None: no template)."""
    from tiny_t5 import make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    tok.chat_template = template
    return tok
