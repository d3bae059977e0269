"""Code extraction from Markdown answers (rewards/extract.py, reward.extract): the pure rule on
realistic chat-model answers, the same rule in the composite reward and in `ppocoder generate
--extract`; and the CLI texts (no PyTorch notice, import-hf's help)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ppocoder_jax.config import RewardConfig, load_config
from ppocoder_jax.data import Example
from ppocoder_jax.errors import UserError
from ppocoder_jax.rewards.composite import CompositeReward
from ppocoder_jax.rewards.extract import extract_code, fenced_blocks

ROOT = Path(__file__).resolve().parent.parent

ANSWER = """\
Sure! Here is a function that adds two numbers:

```python
def add(a, b):
    return a + b
```

You can call it like this:

```py
print(add(1, 2))  # 3
```

The output of the call is:

```
3
```
Let me know if you need anything else.
"""

MIXED = """\
To compile it, run:

```bash
g++ -O2 main.cpp -o main
```

The program:

```cpp
#include <cstdio>
int main() { std::puts("hi"); }
```
"""

TRUNCATED = """\
Here's my solution:

```python
def longest(xs):
    best = 0
    for x in xs:"""


def test_none_is_the_answer_bit_for_bit():
    for text in (ANSWER, MIXED, TRUNCATED, "", "x = 1\r\n"):
        assert extract_code(text, "python", "none") is text


def test_fenced_prefers_the_language_then_first_or_last():
    assert extract_code(ANSWER, "python", "fenced") == "print(add(1, 2))  # 3\n"
    assert extract_code(ANSWER, "python", "fenced", "first") == (
        "def add(a, b):\n    return a + b\n"
    )
    # the bash block is not C++: the tagged block wins either way
    want = '#include <cstdio>\nint main() { std::puts("hi"); }\n'
    assert extract_code(MIXED, "cpp", "fenced", "first") == want
    assert extract_code(MIXED, "c++", "fenced", "first") == want  # a language alias
    # no block tagged with the language: any block (the last / the first)
    assert extract_code(MIXED, "java", "fenced") == want
    assert extract_code(MIXED, "java", "fenced", "first") == "g++ -O2 main.cpp -o main\n"
    assert extract_code(ANSWER, None, "fenced") == "3\n"  # no language: the last of all


@pytest.mark.parametrize(
    "tag, lang",
    [
        ("python", "python"), ("py", "python"), ("Python3", "python"), ("{.python}", "python"),
        ("cpp", "cpp"), ("c++", "cpp"), ("c", "c"), ("java", "java"), ("csharp", "csharp"),
        ("cs", "csharp"), ("c#", "csharp"), ("php", "php"), ("javascript", "javascript"),
        ("js", "javascript"), ("node", "javascript"),
    ],
)  # fmt: skip
def test_the_common_tags_name_their_language(tag, lang):
    text = f"Wrong one:\n```text\nnope\n```\nRight one:\n```{tag} title=x\nCODE\n```\nEnd.\n"
    assert extract_code(text, lang, "fenced", "first") == "CODE\n"


def test_no_fence_is_the_whole_answer_and_auto_agrees():
    plain = "def f():\n    return 1\n"
    assert extract_code(plain, "python", "fenced") is plain
    assert extract_code(plain, "python", "auto") is plain
    inline = "Use ```x = 1``` inline.\n"  # a backtick fence's info string has no backtick
    assert extract_code(inline, "python", "fenced") == inline
    for text in (ANSWER, MIXED, TRUNCATED):
        for block in ("first", "last"):
            assert extract_code(text, "python", "auto", block) == extract_code(
                text, "python", "fenced", block
            )


def test_commonmark_fence_details():
    # an answer cut at max_new_tokens: the open block runs to the end
    assert extract_code(TRUNCATED, "python", "fenced") == (
        "def longest(xs):\n    best = 0\n    for x in xs:"
    )
    # tildes, a longer fence holding a shorter one, an indented fence (list item)
    tilde = "~~~python\nx = 1\n~~~\n"
    assert extract_code(tilde, "python", "fenced") == "x = 1\n"
    nested = "````markdown\n```python\ny = 2\n```\n````\n"
    assert fenced_blocks(nested) == [("markdown", "```python\ny = 2\n```\n")]
    item = "1. Define it:\n   ```python\n   def f():\n       return 1\n   ```\n"
    assert extract_code(item, "python", "fenced") == "def f():\n    return 1\n"
    # closing fence with trailing spaces; CRLF answers keep their line ends inside the block
    assert extract_code("```py\nz = 3\n```   \nbye", "python", "fenced") == "z = 3\n"
    assert extract_code("```py\r\nz = 3\r\n```\r\n", "python", "fenced") == "z = 3\r\n"
    # an empty block is an empty program
    assert extract_code("```python\n```\n", "python", "fenced") == ""
    with pytest.raises(ValueError, match="extract mode"):
        extract_code("x", "python", "markdown")
    with pytest.raises(ValueError, match="extract block"):
        extract_code("x", "python", "fenced", "middle")


def test_config_keys():
    assert RewardConfig().extract == "none" and RewardConfig().extract_block == "last"
    cfg = load_config(None, ["reward.extract=fenced", "reward.extract_block=first"])
    assert (cfg.reward.extract, cfg.reward.extract_block) == ("fenced", "first")
    with pytest.raises(UserError, match="reward.extract"):
        load_config(None, ["reward.extract=markdown"])


def _reward(extract: str, block: str = "last") -> CompositeReward:
    cfg = RewardConfig(
        compile_weight=1.0, ast_weight=1.0, dfg_weight=0.0, workers=2, extract=extract,
        extract_block=block,
    )  # fmt: skip
    return CompositeReward(cfg)


def test_the_reward_scores_the_extracted_program():
    ex = Example(id="e", prompt="p", target="def add(a, b):\n    return a + b\n", lang="python")
    with _reward("none") as reward:
        raw, plain = reward.score([ex, ex], [ANSWER, ex.target])
    with _reward("fenced", "first") as reward:
        first, plain_fenced = reward.score([ex, ex], [ANSWER, ex.target])
    with _reward("auto", "last") as reward:
        (last,) = reward.score([ex], [ANSWER])
    assert not raw.compiled  # the prose is no Python
    assert first.compiled and first.ast == pytest.approx(1.0)  # the reference itself
    assert last.compiled and last.ast < 1.0  # the usage example
    assert plain_fenced == plain  # an answer without fences: the same as no extraction


def test_a_completion_context_prefix_gets_the_extracted_code():
    ex = Example(
        id="e", prompt="p", target="    return a + b\n", lang="python",
        context_prefix="def add(a, b):\n",
    )  # fmt: skip
    answer = "Complete the body:\n```python\n    return a + b\n```\n"
    with _reward("fenced") as reward:
        (parts,) = reward.score([ex], [answer])
    assert parts.compiled and parts.ast == pytest.approx(1.0)


# --------------------------------------------------------------------------- ppocoder CLI


def test_generate_extract_prints_the_code(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from tiny_t5 import make_tiny_hf_t5

    from ppocoder_jax.cli import main
    from ppocoder_jax.rollout import bucketed_sampler as buckets

    hf_dir = make_tiny_hf_t5(tmp_path, variant="v1.0", tied=True)
    real = buckets.Sampler.generate

    def generate(self, *args, **kwargs):  # the tiny random model writes no Markdown
        out, texts = real(self, *args, **kwargs)
        return out, [ANSWER, MIXED][: len(texts)]

    monkeypatch.setattr(buckets.Sampler, "generate", generate)
    base = ["generate", "--model", str(hf_dir), "--max-new-tokens", "2", "--greedy"]
    base += ["--prompt", "a", "--prompt", "b"]
    assert main([*base, "--extract", "--lang", "py"]) == 0
    out = capsys.readouterr().out
    assert out == (
        "=== prompt 0 sample 0 ===\nprint(add(1, 2))  # 3\n\n"
        f"=== prompt 1 sample 0 ===\n{extract_code(MIXED, 'python', 'auto')}\n"
    )
    assert main([*base, "--extract", "fenced", "--extract-block", "first", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == [ANSWER, MIXED]
    assert [r["code"] for r in records] == [
        "def add(a, b):\n    return a + b\n",
        "g++ -O2 main.cpp -o main\n",
    ]
    assert main([*base, "--json"]) == 0  # no --extract: no "code"
    assert all("code" not in json.loads(line) for line in capsys.readouterr().out.splitlines())


NOTICE = "PyTorch was not found"
NO_TORCH = "import sys; sys.modules['torch'] = None\n"  # find_spec('torch') is None: not found


def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_NO_ADVISORY_WARNINGS"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


def test_commands_print_no_pytorch_notice():
    # without torch, importing transformers prints the notice (so its absence below counts)
    bare = _python(NO_TORCH + "import transformers")
    assert NOTICE in bare.stderr
    # `ppocoder --help`, then what a command does: import transformers for a tokenizer
    run = _python(
        NO_TORCH + "from ppocoder_jax.cli import main\n"
        "assert main(['--help']) == 0\n"
        "from transformers import PreTrainedTokenizerFast\n"
    )
    assert run.returncode == 0, run.stderr
    assert NOTICE not in run.stderr and "import a Hugging Face model" in run.stdout
    assert "Llama/Qwen2/Qwen3" in run.stdout.replace("\n", " ").replace("  ", "")


def test_import_hf_help_names_both_families(capsys):
    from ppocoder_jax.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["import-hf", "--help"])
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "T5/CodeT5, or decoder-only Llama/Qwen2/Qwen3" in out
