"""Plumbing of the paper-reproduction scripts (scripts/paper/): each runs end to end with --smoke
on a tiny random T5 and a handful of fixture examples in the datasets' real on-disk formats, and
writes the eval JSON with the metric keys its table reads. Nothing here checks quality."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ppocoder_jax.config import load_config

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts" / "paper"

# --------------------------------------------------------------------------------------------
# fixture data in each dataset's on-disk layout (see ppocoder_jax/data/*.py)

PY_METHODS = [
    "def add(a, b):\n    total = a + b\n    return total\n",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "def squares(n):\n    out = []\n    for i in range(n):\n        out.append(i * i)\n    return out\n",
    "def clean(data):\n    return [y for y in data if y is not None]\n",
    "def maximum(a, b):\n    if a > b:\n        return a\n    return b\n",
    "def count(items, x):\n    c = 0\n    for i in items:\n        if i == x:\n            c += 1\n    return c\n",
]


def write_codesearchnet(root: Path) -> Path:
    """python/final/jsonl/{train,valid,test}/python_<split>_0.jsonl.gz-style layout (plain jsonl)."""
    base = root / "python" / "final" / "jsonl"
    for split in ("train", "valid", "test"):
        (base / split).mkdir(parents=True)
        with open(base / split / f"python_{split}_0.jsonl", "w") as f:
            for i, code in enumerate(PY_METHODS):
                rec = {"repo": "r", "func_name": f"f{i}", "language": "python", "code": code}
                f.write(json.dumps(rec) + "\n")
    return base


XLCOST_PAIRS = [
    (
        "int add ( int a , int b ) { return a + b ; } NEW_LINE",
        "def add ( a , b ) : NEW_LINE INDENT return a + b NEW_LINE DEDENT",
    ),
    (
        'int main ( ) { cout << " hi ▁ there " ; return 0 ; } NEW_LINE',
        'print ( " hi ▁ there " ) NEW_LINE',
    ),
    (
        "int sq ( int x ) { return x * x ; } NEW_LINE",
        "def sq ( x ) : NEW_LINE INDENT return x * x NEW_LINE DEDENT",
    ),
]


def write_xlcost(root: Path) -> Path:
    """<root>/C++-Python/{train,val,test}-C++-Python-tok.{cpp,py}, aligned lines."""
    pair = root / "C++-Python"
    pair.mkdir(parents=True)
    for split in ("train", "val", "test"):
        (pair / f"{split}-C++-Python-tok.cpp").write_text(
            "\n".join(s for s, _ in XLCOST_PAIRS) + "\n"
        )
        (pair / f"{split}-C++-Python-tok.py").write_text(
            "\n".join(t for _, t in XLCOST_PAIRS) + "\n"
        )
    return root


APPS_PROBLEMS = [
    (
        "introductory",
        "Print the sum of two integers on one line.",
        "a, b = map(int, input().split())\nprint(a + b)\n",
        {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]},
    ),
    (
        "interview",
        "Write add(a, b).",
        "class Solution:\n    def add(self, a, b):\n        return a + b\n",
        {"inputs": [[1, 2]], "outputs": [3], "fn_name": "add"},
    ),
    (
        "competition",
        "Print the input reversed.",
        "print(input()[::-1])\n",
        {"inputs": ["abc\n"], "outputs": ["cba\n"]},
    ),
]


def write_apps(root: Path) -> Path:
    """APPS problem folders: <root>/{train,test}/<0000>/question.txt, input_output.json, ..."""
    for split in ("train", "test"):
        for i, (difficulty, question, solution, io) in enumerate(APPS_PROBLEMS * 2):
            d = root / split / f"{i:04d}"
            d.mkdir(parents=True)
            (d / "question.txt").write_text(question)
            (d / "solutions.json").write_text(json.dumps([solution]))
            (d / "input_output.json").write_text(json.dumps(io))
            (d / "metadata.json").write_text(json.dumps({"difficulty": difficulty}))
    return root


def write_mbpp(root: Path) -> Path:
    """The original mbpp.jsonl: task ids 11-510 are the test split, 601+ train."""
    recs = [
        (
            11,
            "Write a function to add two numbers.",
            "def add(a, b):\n    return a + b\n",
            ["assert add(1, 2) == 3"],
        ),
        (
            12,
            "Write a function to square a number.",
            "def sq(x):\n    return x * x\n",
            ["assert sq(3) == 9"],
        ),
        (
            601,
            "Write a function to negate a number.",
            "def neg(x):\n    return -x\n",
            ["assert neg(1) == -1"],
        ),
    ]
    root.mkdir(parents=True, exist_ok=True)
    path = root / "mbpp.jsonl"
    with open(path, "w") as f:
        for task_id, text, code, tests in recs:
            rec = {
                "task_id": task_id,
                "text": text,
                "code": code,
                "test_list": tests,
                "test_setup_code": "",
            }
            f.write(json.dumps(rec) + "\n")
    return path


# --------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tiny_t5 import make_tiny_hf_t5

    root = tmp_path_factory.mktemp("paper_model")
    return make_tiny_hf_t5(root, num_layers=1, d_model=16, d_kv=8, d_ff=32, num_heads=2)


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONHASHSEED="0", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / name), "--smoke", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def assert_rate(value) -> None:
    assert isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0, value


def assert_passk_result(result: dict, groups: tuple[str, ...]) -> None:
    assert result["num_samples"] == 4 and result["ks"] == [1, 2, 4]
    for group in groups:
        metrics = result[group]
        assert metrics["num_problems"] >= 1
        for key in ("pass@1", "pass@2", "pass@4", "compile_rate"):
            assert_rate(metrics[key])
        assert metrics["pass@1"] <= metrics["pass@2"] <= metrics["pass@4"]


# --------------------------------------------------------------------------------------------
# fast checks: presets, pass@k grouping


PRESETS = ("paper_completion", "paper_translation", "paper_apps", "paper_mbpp")


@pytest.mark.parametrize("preset", PRESETS)
def test_paper_presets_resolve(preset):
    cfg = load_config(preset)
    assert cfg.model.compute_dtype == "bfloat16" and cfg.mesh.data == -1
    assert cfg.rollout.top_k == 5 and cfg.kl.kind == "adaptive"
    if preset in ("paper_completion", "paper_translation"):
        r = cfg.reward
        assert (r.compile_weight, r.ast_weight, r.dfg_weight, r.tests_weight) == (1, 1, 1, 0)
    else:
        r = cfg.reward
        assert (r.compile_weight, r.ast_weight, r.dfg_weight, r.tests_weight) == (0, 0, 0, 1)
        assert cfg.eval.greedy is False and max(cfg.eval.ks) <= cfg.eval.num_samples
    if preset == "paper_apps":
        assert cfg.eval.num_samples == 1000 and cfg.eval.ks == (1, 5, 1000)
    if preset == "paper_mbpp":
        assert cfg.data.task == "mbpp" and cfg.train.steps == 0


def test_smoke_overrides_resolve_for_every_preset():
    sys.path.insert(0, str(SCRIPTS))
    try:
        from _common import SMOKE_OVERRIDES
    finally:
        sys.path.remove(str(SCRIPTS))
    for preset in PRESETS:
        cfg = load_config(preset, SMOKE_OVERRIDES)
        assert cfg.sft.steps == 2 and cfg.train.steps == 1
        assert cfg.train.batch_size % cfg.ppo.num_minibatches == 0


def test_passk_summary_groups_by_difficulty():
    sys.path.insert(0, str(SCRIPTS))
    try:
        from passk import summarize
    finally:
        sys.path.remove(str(SCRIPTS))
    records = [
        {"difficulty": "interview", "n": 4, "c": 1, "compiled": 4, "infra_errors": 0},
        {"difficulty": "introductory", "n": 4, "c": 4, "compiled": 4, "infra_errors": 0},
        {"difficulty": "introductory", "n": 4, "c": 0, "compiled": 2, "infra_errors": 1},
    ]
    out = summarize(records, (1, 4), 4)
    assert list(out)[:4] == ["num_samples", "ks", "all", "introductory"]
    assert out["introductory"]["pass@1"] == pytest.approx(0.5)
    assert out["interview"]["pass@1"] == pytest.approx(0.25)
    assert out["interview"]["pass@4"] == pytest.approx(1.0)
    assert out["all"]["pass@1"] == pytest.approx((1.0 + 0.0 + 0.25) / 3)
    assert out["all"]["compile_rate"] == pytest.approx(10 / 12)
    assert out["all"]["infra_errors"] == 1


DRY_RUNS = {
    "completion.py": ("paper_completion", ["sft", "train", "eval", "eval"], []),
    "translation.py": (
        "paper_translation",
        ["sft", "train", "eval", "eval"],
        ["--pair", "cpp:java"],
    ),
    "apps.py": ("paper_apps", ["sft", "train", "passk"], []),
    "mbpp.py": ("paper_mbpp", ["passk"], []),
}


@pytest.mark.parametrize("smoke", [False, True])
@pytest.mark.parametrize("script", sorted(DRY_RUNS))
def test_script_dry_run_resolves_every_stage(tmp_path, script, smoke):
    """--dry-run resolves each stage's config (the presets at full size too) without JAX."""
    preset, stages, extra = DRY_RUNS[script]
    argv = [sys.executable, str(SCRIPTS / script), "--dry-run", "--data", str(tmp_path)]
    argv += ["--model", str(tmp_path / "m"), "--out", str(tmp_path / "o"), *extra]
    argv += ["--smoke"] if smoke else []
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    commands = [line for line in proc.stdout.splitlines() if line.startswith("$ ")]
    names = [c.split()[2] if c.startswith("$ ppocoder") else "passk" for c in commands]
    assert names == stages, proc.stdout
    assert all(f"--config {preset}" in c for c in commands)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.json"))
    bad = subprocess.run([*argv, "ppo.no_such_key=1"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0 and "ppo.no_such_key" in bad.stderr


# --------------------------------------------------------------------------------------------
# the scripts end to end (--smoke): SFT -> PPO -> eval on tiny data


def test_mbpp_script_smoke(tmp_path, tiny_model):
    data = write_mbpp(tmp_path / "mbpp")
    out = tmp_path / "out"
    proc = run_script("mbpp.py", "--data", data, "--model", tiny_model, "--out", out)
    result = json.loads((out / "eval" / "eval_test.json").read_text())
    assert_passk_result(result, ("all",))
    assert result["all"]["num_problems"] == 2  # task ids 11 and 12: the test split
    assert "MBPP zero-shot" in proc.stdout and (out / "table.txt").is_file()
    # A rerun after the per-chunk progress was saved samples nothing and reports the same.
    (out / "eval" / "eval_test.json").unlink()
    proc = run_script("mbpp.py", "--data", data, "--model", tiny_model, "--out", out)
    assert "resuming after 4 of 4 samples" in proc.stdout
    assert json.loads((out / "eval" / "eval_test.json").read_text()) == result


@pytest.mark.slow
def test_apps_script_smoke(tmp_path, tiny_model):
    data = write_apps(tmp_path / "apps")
    out = tmp_path / "out"
    proc = run_script(
        "apps.py", "--data", data, "--model", tiny_model, "--out", out, "--eval-start"
    )
    assert (out / "sft" / "sft_model").is_dir() and (out / "ppo" / "final_model").is_dir()
    for stage in ("eval_start", "eval_ppo"):
        result = json.loads((out / stage / "eval_test.json").read_text())
        groups = tuple(g for g in ("introductory", "interview", "competition") if g in result)
        assert groups, result
        assert_passk_result(result, ("all", *groups))
        lines = (out / stage / "passk_test_problems.jsonl").read_text().splitlines()
        assert len(lines) == result["all"]["num_problems"]
        for line in lines:  # every sample scored and given a verdict
            problem = json.loads(line)
            assert problem["n"] + problem["infra_errors"] == 4
            assert sum(problem["verdicts"].values()) == 4
    assert "paper PPOCoder 770M pass@1" in proc.stdout


@pytest.mark.slow
def test_completion_script_smoke(tmp_path, tiny_model):
    data = write_codesearchnet(tmp_path / "csn")
    out = tmp_path / "out"
    proc = run_script("completion.py", "--data", data, "--model", tiny_model, "--out", out)
    for stage in ("eval_start", "eval_ppo"):
        result = json.loads((out / stage / "eval_test.json").read_text())
        assert result["num_examples"] >= 1
        for key in (
            "compile_rate",
            "exact_match",
            "edit_similarity",
            "floor_empty_compile_rate",
            "floor_best_constant_compile_rate",
        ):
            assert_rate(result[key])
    assert "97.68" in proc.stdout  # the paper's number beside ours


@pytest.mark.slow
def test_translation_script_smoke(tmp_path, tiny_model):
    data = write_xlcost(tmp_path / "xlcost")
    out = tmp_path / "out"
    run_script(
        "translation.py",
        "--data",
        data,
        "--model",
        tiny_model,
        "--out",
        out,
        "--pair",
        "cpp:python",
    )
    for stage in ("eval_start", "eval_ppo"):
        result = json.loads((out / "cpp-python" / stage / "eval_test.json").read_text())
        assert result["num_examples"] >= 1
        for key in ("compile_rate", "bleu", "codebleu"):
            assert_rate(result[key])
    assert "cpp -> python" in (out / "table.txt").read_text()
