"""A new user's path, end to end, through the public CLI only (`ppocoder ...`).

The user brings:
- their own model directory: a random tiny transformers `Qwen2ForCausalLM` (`save_pretrained`)
  with their own byte-level BPE tokenizer (trained with `tokenizers` on a small code corpus,
  a `PreTrainedTokenizerFast` with a ChatML chat template) - `<|endoftext|>` its eos token,
  `<|pad|>` its pad token, and `<|im_end|>` a second end-of-sequence id in
  generation_config.json, as chat models ship it (Qwen2.5 / Llama 3 instruct);
- their own problems: 20 in Python (assert-style tests), C++ and JavaScript (stdin/stdout),
  4 of them in the `test` split, each with a `difficulty` column;
- their own reward plugin (tests/helpers/user_path_plugins.py) reading that column.

and runs, as docs/problems.md and the README tell them:
1. `ppocoder train` (GRPO with the KL in the loss, chat prompts with a system prompt, the
   plugin, reward.extract=auto, a stop string; 2 iterations at toy size);
2. `ppocoder eval` of the run's final_model on the test split;
3. `ppocoder export-hf` of the final model, which transformers loads; its greedy answer to a
   chat prompt (torch, `generate(do_sample=False)`) is the one `ppocoder generate --greedy`
   gives from the export and from the final_model, token for token.
"""

from __future__ import annotations

import json
import math

import pytest

from ppocoder_jax.cli import main

pytestmark = pytest.mark.toolchain

SYSTEM_PROMPT = "You write complete programs. Answer with the program only."
CHATML = (
    "{% for m in messages %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
STOP = "\n\n\n"  # rollout.stop: three newlines end an answer
MAX_NEW = 24

# -- the user's problems ---------------------------------------------------------------------


def _py(id_, prompt, reference, test_code, difficulty, split="train"):
    return {
        "id": id_,
        "language": "python",
        "prompt": prompt,
        "tests": {"test_code": test_code},
        "reference": reference,
        "difficulty": difficulty,
        "split": split,
    }


def _io(id_, language, prompt, reference, pairs, difficulty, split="train"):
    return {
        "id": id_,
        "language": language,
        "prompt": prompt,
        "tests": {"inputs": [i for i, _ in pairs], "outputs": [o for _, o in pairs]},
        "reference": reference,
        "difficulty": difficulty,
        "split": split,
    }


JS_NUMBERS = "const xs = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\n"
CPP_HEAD = "#include <iostream>\n#include <string>\nusing namespace std;\n\n"

PROBLEMS = [
    _py(
        "py-add",
        "Write a Python function `add(a, b)` that returns the sum of a and b.",
        "def add(a, b):\n    return a + b\n",
        "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n",
        "easy",
    ),
    _py(
        "py-count-vowels",
        "Write a Python function `count_vowels(s)` that returns how many of the characters "
        "of s are vowels (a, e, i, o, u, either case).",
        "def count_vowels(s):\n    return sum(1 for c in s.lower() if c in 'aeiou')\n",
        "assert count_vowels('Hello') == 2\nassert count_vowels('xyz') == 0\n"
        "assert count_vowels('AEIOU') == 5\n",
        "easy",
    ),
    _py(
        "py-reverse-words",
        "Write a Python function `reverse_words(s)` that returns the words of s in reverse "
        "order, joined by single spaces.",
        "def reverse_words(s):\n    return ' '.join(reversed(s.split()))\n",
        "assert reverse_words('a b c') == 'c b a'\nassert reverse_words('  hi  there ') == "
        "'there hi'\nassert reverse_words('') == ''\n",
        "easy",
    ),
    _py(
        "py-flatten",
        "Write a Python function `flatten(xs)` that takes a list of lists and returns one "
        "list with their elements in order.",
        "def flatten(xs):\n    out = []\n    for x in xs:\n        out.extend(x)\n    return out\n",
        "assert flatten([[1, 2], [], [3]]) == [1, 2, 3]\nassert flatten([]) == []\n",
        "medium",
    ),
    _py(
        "py-second-largest",
        "Write a Python function `second_largest(xs)` that returns the second largest "
        "distinct value of the list xs, or None when there is none.",
        "def second_largest(xs):\n    values = sorted(set(xs))\n"
        "    return values[-2] if len(values) > 1 else None\n",
        "assert second_largest([3, 1, 3, 2]) == 2\nassert second_largest([5]) is None\n"
        "assert second_largest([7, 7]) is None\n",
        "medium",
    ),
    _py(
        "py-fizzbuzz",
        "Write a Python function `fizzbuzz(n)` that returns 'FizzBuzz' when n is a multiple "
        "of 15, 'Fizz' for a multiple of 3, 'Buzz' for a multiple of 5, and str(n) otherwise.",
        "def fizzbuzz(n):\n    if n % 15 == 0:\n        return 'FizzBuzz'\n    if n % 3 == 0:\n"
        "        return 'Fizz'\n    if n % 5 == 0:\n        return 'Buzz'\n    return str(n)\n",
        "assert fizzbuzz(30) == 'FizzBuzz'\nassert fizzbuzz(9) == 'Fizz'\n"
        "assert fizzbuzz(10) == 'Buzz'\nassert fizzbuzz(7) == '7'\n",
        "easy",
    ),
    _py(
        "py-is-prime",
        "Write a Python function `is_prime(n)` that returns True when the integer n is a "
        "prime number and False otherwise.",
        "def is_prime(n):\n    if n < 2:\n        return False\n    d = 2\n    while d * d <= n:\n"
        "        if n % d == 0:\n            return False\n        d += 1\n    return True\n",
        "assert is_prime(2) and is_prime(97)\nassert not is_prime(1) and not is_prime(91)\n",
        "medium",
        "test",
    ),
    _py(
        "py-char-freq",
        "Write a Python function `char_freq(s)` that returns a dict mapping each character "
        "of s to the number of times it occurs.",
        "def char_freq(s):\n    out = {}\n    for c in s:\n        out[c] = out.get(c, 0) + 1\n"
        "    return out\n",
        "assert char_freq('abca') == {'a': 2, 'b': 1, 'c': 1}\nassert char_freq('') == {}\n",
        "hard",
        "test",
    ),
    _io(
        "cpp-sum",
        "cpp",
        "Write a C++ program that reads an integer n and then n integers from standard input "
        "and prints their sum.",
        CPP_HEAD + "int main() {\n    long long n, x, s = 0;\n    cin >> n;\n"
        "    for (long long i = 0; i < n; i++) {\n        cin >> x;\n        s += x;\n    }\n"
        '    cout << s << "\\n";\n    return 0;\n}\n',
        [("3\n1 2 3\n", "6\n"), ("1\n-5\n", "-5\n")],
        "easy",
    ),
    _io(
        "cpp-max",
        "cpp",
        "Write a C++ program that reads an integer n and then n integers from standard input "
        "and prints the largest of them.",
        CPP_HEAD + "int main() {\n    int n, x, best;\n    cin >> n >> best;\n"
        "    for (int i = 1; i < n; i++) {\n        cin >> x;\n        if (x > best) best = x;\n"
        '    }\n    cout << best << "\\n";\n    return 0;\n}\n',
        [("4\n3 9 2 9\n", "9\n"), ("2\n-4 -7\n", "-4\n")],
        "easy",
    ),
    _io(
        "cpp-reverse",
        "cpp",
        "Write a C++ program that reads one word from standard input and prints it reversed.",
        CPP_HEAD + "int main() {\n    string s;\n    cin >> s;\n"
        '    cout << string(s.rbegin(), s.rend()) << "\\n";\n    return 0;\n}\n',
        [("hello\n", "olleh\n"), ("a\n", "a\n")],
        "easy",
    ),
    _io(
        "cpp-factorial",
        "cpp",
        "Write a C++ program that reads an integer n (0 <= n <= 20) from standard input and "
        "prints n factorial.",
        CPP_HEAD + "int main() {\n    int n;\n    cin >> n;\n    unsigned long long f = 1;\n"
        '    for (int i = 2; i <= n; i++) f *= i;\n    cout << f << "\\n";\n    return 0;\n}\n',
        [("0\n", "1\n"), ("5\n", "120\n"), ("20\n", "2432902008176640000\n")],
        "medium",
    ),
    _io(
        "cpp-count-words",
        "cpp",
        "Write a C++ program that reads a line of text from standard input and prints how "
        "many words (separated by spaces) it has.",
        CPP_HEAD + "int main() {\n    string w;\n    int n = 0;\n    while (cin >> w) n++;\n"
        '    cout << n << "\\n";\n    return 0;\n}\n',
        [("the quick brown fox\n", "4\n"), ("one\n", "1\n")],
        "medium",
    ),
    _io(
        "cpp-fibonacci",
        "cpp",
        "Write a C++ program that reads an integer n (0 <= n <= 80) from standard input and "
        "prints the n-th Fibonacci number (F(0) = 0, F(1) = 1).",
        CPP_HEAD + "int main() {\n    int n;\n    cin >> n;\n    long long a = 0, b = 1;\n"
        "    for (int i = 0; i < n; i++) {\n        long long t = a + b;\n        a = b;\n"
        '        b = t;\n    }\n    cout << a << "\\n";\n    return 0;\n}\n',
        [("0\n", "0\n"), ("10\n", "55\n"), ("80\n", "23416728348467685\n")],
        "hard",
        "test",
    ),
    _io(
        "js-add",
        "javascript",
        "Write a JavaScript program (Node.js) that reads two integers from standard input and "
        "prints their sum.",
        JS_NUMBERS + "console.log(xs[0] + xs[1]);\n",
        [("1 2\n", "3\n"), ("-7 7\n", "0\n")],
        "easy",
    ),
    _io(
        "js-upper",
        "javascript",
        "Write a JavaScript program (Node.js) that reads one line from standard input and "
        "prints it in upper case.",
        "const line = require('fs').readFileSync(0, 'utf8').trim();\n"
        "console.log(line.toUpperCase());\n",
        [("hello world\n", "HELLO WORLD\n"), ("aBc\n", "ABC\n")],
        "easy",
    ),
    _io(
        "js-count-positive",
        "javascript",
        "Write a JavaScript program (Node.js) that reads integers from standard input and "
        "prints how many of them are positive.",
        JS_NUMBERS + "console.log(xs.filter((x) => x > 0).length);\n",
        [("1 -2 3 0\n", "2\n"), ("-1\n", "0\n")],
        "easy",
    ),
    _io(
        "js-min",
        "javascript",
        "Write a JavaScript program (Node.js) that reads integers from standard input and "
        "prints the smallest of them.",
        JS_NUMBERS + "console.log(Math.min(...xs));\n",
        [("4 2 8\n", "2\n"), ("-3 5\n", "-3\n")],
        "medium",
    ),
    _io(
        "js-palindrome",
        "javascript",
        "Write a JavaScript program (Node.js) that reads one word from standard input and "
        "prints yes when it reads the same backwards, else no.",
        "const w = require('fs').readFileSync(0, 'utf8').trim();\n"
        "console.log(w === w.split('').reverse().join('') ? 'yes' : 'no');\n",
        [("level\n", "yes\n"), ("code\n", "no\n")],
        "medium",
    ),
    _io(
        "js-digit-sum",
        "javascript",
        "Write a JavaScript program (Node.js) that reads a non-negative integer from standard "
        "input and prints the sum of its decimal digits.",
        "const s = require('fs').readFileSync(0, 'utf8').trim();\n"
        "console.log(s.split('').reduce((a, c) => a + Number(c), 0));\n",
        [("1234\n", "10\n"), ("0\n", "0\n")],
        "hard",
        "test",
    ),
]
TEST_IDS = ["py-is-prime", "py-char-freq", "cpp-fibonacci", "js-digit-sum"]

# Some more code for the tokenizer's corpus, beside the reference solutions.
EXTRA_CORPUS = [
    "import sys\n\nfor line in sys.stdin:\n    print(line.strip().upper())\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, x):\n        self.items.append(x)\n",
    "#include <vector>\n#include <algorithm>\nint main() {\n    std::vector<int> v{3, 1, 2};\n"
    "    std::sort(v.begin(), v.end());\n    return 0;\n}\n",
    "function gcd(a, b) {\n  while (b !== 0) {\n    [a, b] = [b, a % b];\n  }\n  return a;\n}\n"
    "module.exports = { gcd };\n",
    "const readline = require('readline');\nlet total = 0;\nfor (const x of [1, 2, 3]) {\n"
    "  total += x;\n}\nconsole.log(total);\n",
]


# -- the user's model directory --------------------------------------------------------------


def _tokenizer():
    """A byte-level BPE trained on the problems and some code, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [p["reference"] for p in PROBLEMS] + [p["prompt"] for p in PROBLEMS]
    corpus += EXTRA_CORPUS + [SYSTEM_PROMPT]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus * 3, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tok.chat_template = CHATML
    return tok


def _messages(problem_id: str) -> list[dict]:
    (problem,) = [p for p in PROBLEMS if p["id"] == problem_id]
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": problem["prompt"]},
    ]


ASKED = "js-digit-sum"  # the test problem whose greedy answers are compared


def _build_user_model(path):
    """The user's Qwen2 and tokenizer in `path`. The model is made to end its greedy answer
    to ASKED with <|im_end|>, as a chat model ends its turn: its lm_head row is 1.05 times
    the row of the token the untouched model would emit 6th, so <|im_end|> outscores that
    token (or an earlier one) once the answer gets there."""
    import torch
    import transformers

    tok = _tokenizer()
    eos, pad = tok.eos_token_id, tok.pad_token_id
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    cfg = transformers.Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # weights well away from 0 and from ties between logits
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
        text = tok.apply_chat_template(_messages(ASKED), tokenize=False, add_generation_prompt=True)
        ids = torch.tensor([tok(text)["input_ids"]])
        answer = []
        while len(answer) < 6 or answer[-1] in tok.all_special_ids:
            nxt = int(model(ids).logits[0, -1].argmax())
            answer.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
        head = model.lm_head.weight
        head[im_end] = 1.05 * head[answer[-1]]
    # eos: the tokenizer's in config.json; the chat turn's end beside it in
    # generation_config.json (as Qwen2.5 / Llama 3 instruct models ship them)
    model.generation_config = transformers.GenerationConfig(
        eos_token_id=[eos, im_end], pad_token_id=pad
    )
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return {"eos": eos, "pad": pad, "im_end": im_end, "vocab": len(tok)}


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    from ppocoder_jax.rewards.execution.languages import SPECS, missing_tools

    missing = {lang: missing_tools(SPECS[lang]) for lang in ("cpp", "javascript")}
    if any(missing.values()):
        pytest.skip(f"toolchain not installed: {missing}")
    root = tmp_path_factory.mktemp("user")
    model_dir = root / "my-model"
    ids = _build_user_model(model_dir)
    problems = root / "my_problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return {"root": root, "model": model_dir, "problems": problems, **ids}


# -- 1. train --------------------------------------------------------------------------------


def _common(user) -> list[str]:
    """The settings train and eval share: the user's model, problems and chat prompts."""
    return [
        "data.task=problems",
        f"data.path={user['problems']}",
        "data.prompt_format=chat",
        f"data.system_prompt={SYSTEM_PROMPT}",
        "data.max_source_length=128",
        "data.max_target_length=64",
        f"rollout.max_new_tokens={MAX_NEW}",
        "rollout.length_buckets=[32,128]",
        "reward.tests_weight=1",
        "reward.compile_weight=0",
        "reward.ast_weight=0",
        "reward.dfg_weight=0",
        "reward.extract=auto",
        "reward.workers=2",
        "model.compute_dtype=float32",
    ]


@pytest.fixture(scope="module")
def trained(user):
    from helpers import user_path_plugins

    user_path_plugins.CALLS.clear()
    run_dir = user["root"] / "run"
    argv = [
        "train",
        f"model.path={user['model']}",
        *_common(user),
        "ppo.advantage=grpo",
        "ppo.loss_agg=seq_mean_token_mean",
        "kl.mode=loss",
        "kl.kind=fixed",
        "kl.init_coef=0.04",
        "reward.functions=[helpers.user_path_plugins:difficulty_bonus]",
        f"rollout.stop={json.dumps([STOP])}",
        "rollout.num_samples=2",
        "train.steps=2",
        "train.batch_size=4",
        "ppo.ppo_epochs=1",
        "ppo.num_minibatches=2",
        f"train.run_dir={run_dir}",
    ]
    assert main(argv) == 0
    return run_dir, list(user_path_plugins.CALLS)


def test_train_runs_grpo_with_the_users_plugin(trained):
    run_dir, calls = trained
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ppo = [r for r in rows if r["phase"] == "ppo"]
    assert [r["step"] for r in ppo] == [1, 2]
    for r in ppo:
        for key in ("score", "loss", "policy_loss", "kl_loss", "reward_plugin/difficulty_bonus"):
            assert math.isfinite(r[key]), (key, r)
        assert r["samples"] == 8 and r["infra_errors"] == 0 and r["reward_errors"] == 0
        # the bonus is at most the hardest difficulty's weight
        assert 0.0 <= r["reward_plugin/difficulty_bonus"] <= 0.3
    # the bonus differs between a prompt's samples (their lengths do): the update has a signal
    assert any(r["grad_norm"] > 0 for r in ppo)
    saved = (run_dir / "config.yaml").read_text()
    assert "advantage: grpo" in saved and "mode: loss" in saved and "prompt_format: chat" in saved
    # the plugin got the problem file's column: on the start-up probe, then once per batch
    # of 8 samples, training problems only
    train_difficulty = {p["id"]: p["difficulty"] for p in PROBLEMS if p["split"] == "train"}
    assert [len(c) for c in calls[1:]] == [8, 8]
    seen = [pair for c in calls for pair in c]
    assert all(train_difficulty.get(id_) == d for id_, d in seen), seen
    assert (run_dir / "final_model").is_dir()


# -- 2. eval ---------------------------------------------------------------------------------


def test_eval_of_the_final_model_on_the_test_split(user, trained, capsys):
    run_dir, _ = trained
    out_dir = user["root"] / "eval"
    capsys.readouterr()
    argv = ["eval", f"model.path={run_dir / 'final_model'}", *_common(user)]
    assert main([*argv, f"train.run_dir={out_dir}"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out_dir / "eval_test.json").read_text())
    assert printed == saved
    assert saved["num_problems"] == len(TEST_IDS) and saved["samples_per_problem"] == 1
    assert 0.0 <= saved["pass@1"] <= 1.0 and saved["infra_errors"] == 0
    assert 0.0 <= saved["compile_rate"] <= 1.0
    # the problem file's difficulty column groups the results
    assert set(saved["per_difficulty_pass"]) == {
        p["difficulty"] for p in PROBLEMS if p["id"] in TEST_IDS
    }


# -- 3. export, and the same greedy answer from transformers and from us ----------------------


def _ours(model_dir, prompt: str, capsys) -> dict:
    capsys.readouterr()
    argv = ["generate", "--model", str(model_dir), "--greedy", "--json"]
    assert main([*argv, "--max-new-tokens", str(MAX_NEW), "--prompt", prompt]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return record


def _transformers_greedy(model_dir) -> tuple[str, list[int], list[int], str]:
    """(the chat-rendered prompt, its ids, the generated ids, their text), all by
    transformers from `model_dir` (torch, `generate(do_sample=False)`)."""
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompt = tok.apply_chat_template(_messages(ASKED), tokenize=False, add_generation_prompt=True)
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=MAX_NEW)
    width = enc["input_ids"].shape[1]
    new = out[0, width:].tolist()
    return prompt, enc["input_ids"][0].tolist(), new, tok.decode(new, skip_special_tokens=True)


def _same_answer(ours: dict, new: list[int], text: str, eos_ids) -> None:
    """Our record (token_ids without the end-of-sequence token) is transformers' answer."""
    assert new[-1] in eos_ids and len(new) < MAX_NEW  # it ended its turn
    assert ours["finished"] and ours["token_ids"] == new[:-1]
    assert ours["text"] == text


def test_export_loads_in_transformers_and_greedy_answers_agree(user, trained, capsys):
    from ppocoder_jax.model.tokenizer import load_tokenizer

    run_dir, _ = trained
    final = run_dir / "final_model"
    export = user["root"] / "export"
    capsys.readouterr()
    assert main(["export-hf", str(final), str(export)]) == 0
    assert "exported" in capsys.readouterr().out
    # the user's end-of-sequence ids survive training and export
    generation = json.loads((export / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [user["eos"], user["im_end"]]
    assert generation["pad_token_id"] == user["pad"]

    # the user's own model, as transformers runs it: the answer ends with <|im_end|>
    prompt, prompt_ids, new, text = _transformers_greedy(user["model"])
    assert new[-1] == user["im_end"], new
    # and we read the same prompt ids and give the same answer, ending there too
    assert load_tokenizer(user["model"])(prompt)["input_ids"] == prompt_ids
    _same_answer(_ours(user["model"], prompt, capsys), new, text, [user["im_end"]])

    # the trained model: exported, run by transformers; by us from the export and from ours
    prompt2, prompt_ids2, new2, text2 = _transformers_greedy(export)
    assert (prompt2, prompt_ids2) == (prompt, prompt_ids)
    eos = [user["eos"], user["im_end"]]
    _same_answer(_ours(export, prompt, capsys), new2, text2, eos)
    _same_answer(_ours(final, prompt, capsys), new2, text2, eos)
