"""`ppocoder generate` on a tiny HF directory and on our checkpoint (in-process, no fork)."""

from __future__ import annotations

import json

import pytest
from tiny_t5 import load_torch_t5, make_tiny_hf_t5

from ppocoder_jax.cli import main

torch = pytest.importorskip("torch")

PROMPTS = ["def add(a, b):", "for i in range(10):\n    print(i"]
MAX_NEW = 12


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return make_tiny_hf_t5(tmp_path_factory.mktemp("cli"), variant="v1.0", tied=True)


def run_cli(capsys, *argv):
    rc = main(["generate", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def hf_greedy_ids(path, prompts, max_new):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = load_torch_t5(path).generate(**enc, do_sample=False, max_new_tokens=max_new)
    result = []
    for row in out[:, 1:].tolist():
        ids = []
        for t in row:
            if t == 2:  # </s>
                break
            ids.append(t)
        result.append(ids)
    return tok, result


def test_greedy_json_matches_transformers(hf_dir, capsys):
    args = ["--model", hf_dir, "--greedy", "--max-new-tokens", MAX_NEW, "--json"]
    for p in PROMPTS:
        args += ["--prompt", p]
    rc, out, err = run_cli(capsys, *args)
    assert rc == 0, err
    recs = records(out)
    assert [(r["prompt_index"], r["sample_index"]) for r in recs] == [(0, 0), (1, 0)]
    tok, want = hf_greedy_ids(hf_dir, PROMPTS, MAX_NEW)
    assert [r["token_ids"] for r in recs] == want
    for r in recs:
        assert r["text"] == tok.decode(r["token_ids"], skip_special_tokens=True)
        assert isinstance(r["logprob"], float) and r["logprob"] < 0
        assert r["finished"] == (len(r["token_ids"]) < MAX_NEW)


def test_checkpoint_sampling_num_samples_and_seed(hf_dir, tmp_path, capsys):
    from ppocoder_jax.model.store import import_hf

    ckpt = tmp_path / "ckpt"
    import_hf(str(hf_dir), ckpt)
    prompt_file = tmp_path / "prompts.jsonl"
    prompt_file.write_text(json.dumps(PROMPTS[0]) + "\n" + json.dumps({"prompt": PROMPTS[1]}))
    base = ["--model", ckpt, "--prompt-file", prompt_file, "--max-new-tokens", MAX_NEW]
    base += ["--num-samples", 3, "--top-k", 5, "--temperature", 1.0, "--json"]
    rc, out, err = run_cli(capsys, *base, "--seed", 1)
    assert rc == 0, err
    first = records(out)
    assert [(r["prompt_index"], r["sample_index"]) for r in first] == [
        (i, j) for i in range(2) for j in range(3)
    ]
    rc, out, _ = run_cli(capsys, *base, "--seed", 1)
    assert records(out) == first  # deterministic for a seed
    rc, out, _ = run_cli(capsys, *base, "--seed", 2)
    assert [r["token_ids"] for r in records(out)] != [r["token_ids"] for r in first]
    # greedy from our checkpoint = greedy from the HF directory it was imported from
    rc, out, err = run_cli(
        capsys, "--model", ckpt, "--greedy", "--max-new-tokens", MAX_NEW, "--json",
        "--prompt", PROMPTS[0], "--prompt", PROMPTS[1],
    )  # fmt: skip
    assert rc == 0, err
    _, want = hf_greedy_ids(hf_dir, PROMPTS, MAX_NEW)
    assert [r["token_ids"] for r in records(out)] == want
    # plain-text output
    rc, out, _ = run_cli(
        capsys, "--model", ckpt, "--greedy", "--max-new-tokens", 4, "--prompt", "x"
    )
    assert rc == 0 and out.startswith("=== prompt 0 sample 0 ===\n")


def test_bad_input_is_a_one_line_error(hf_dir, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "--model", tmp_path / "missing", "--prompt", "x")
    assert rc == 2 and "missing" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    rc, out, err = run_cli(capsys, "--model", hf_dir, "--prompt-file", empty)
    assert rc == 2 and "empty prompt" in err and len(err.strip().splitlines()) == 1
    rc, out, err = run_cli(capsys, "--model", hf_dir, "--prompt-file", tmp_path / "nope.txt")
    assert rc == 2 and "not found" in err
    rc, out, err = run_cli(capsys, "--model", hf_dir, "--prompt", "x", "--greedy", "--top-k", 3)
    assert rc == 2 and "--greedy" in err
    rc, out, err = run_cli(capsys, "--model", hf_dir, "--prompt", "x", "--top-p", 1.5)
    assert rc == 2 and "top_p" in err
    no_tok = make_tiny_hf_t5(tmp_path, with_tokenizer=False, name="no_tok")
    capsys.readouterr()
    rc, out, err = run_cli(capsys, "--model", no_tok, "--prompt", "x")
    assert rc == 2 and "tokenizer" in err
    assert err.startswith("ppocoder generate: error:") and len(err.strip().splitlines()) == 1


def test_stop_strings_end_the_text_before_them(hf_dir, capsys):
    """--stop: each sample's text ends right before its first stop string, its token ids end at
    the token that completed it; samples without one are unchanged."""
    base = ["--model", hf_dir, "--prompt", PROMPTS[0], "--max-new-tokens", MAX_NEW, "--json"]
    base += ["--num-samples", 4, "--top-k", 0, "--seed", 3]
    rc, out, err = run_cli(capsys, *base)
    assert rc == 0, err
    plain = records(out)
    stop = next(ch for r in plain for ch in r["text"][1:] if ch.strip())  # a char they contain
    rc, out, err = run_cli(capsys, *base, "--stop", stop)
    assert rc == 0, err
    cut = records(out)
    assert any(stop in r["text"] for r in plain)
    for p, c in zip(plain, cut, strict=True):
        assert stop not in c["text"]
        assert p["text"].startswith(c["text"])
        assert c["token_ids"] == p["token_ids"][: len(c["token_ids"])]
        if stop not in p["text"]:
            assert c == p
