"""Multi-turn rollouts with execution feedback (rollout.turns > 1), on the tiny models with the
real sandboxed reward: what each turn's prompt holds, that private tests are never shown, how
the turns are credited, that a sandbox failure masks the row, the one-line errors at start-up,
and `ppocoder train` end to end for both families."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.tiny_models import ppo_start

from ppocoder_jax.cli import main
from ppocoder_jax.config import load_config
from ppocoder_jax.errors import UserError
from ppocoder_jax.model.families import as_policy
from ppocoder_jax.parallel.mesh import make_mesh
from ppocoder_jax.rewards.composite import CompositeReward
from ppocoder_jax.rollout.collector import RolloutCollector
from ppocoder_jax.rollout.environment import CodeFeedbackEnv, Observation
from ppocoder_jax.rollout.turns import turn_scores

TURNS = ["rollout.turns=2", "data.max_source_length=128", "rollout.length_buckets=[16,32,64,128]"]


@pytest.fixture(scope="module")
def start():
    return ppo_start()


def split_examples(examples):
    """The examples with their assert lines split: the first public, the rest private (so
    that a test can look for the private ones in every prompt)."""
    out = []
    for e in examples:
        lines = e.tests["test_code"].splitlines()
        asserts = [i for i, line in enumerate(lines) if line.lstrip().startswith("assert")]
        if len(asserts) < 2:
            continue
        keep = [line for i, line in enumerate(lines) if i not in asserts]
        public = "\n".join(keep + [lines[asserts[0]]])
        private = "\n".join(keep + [lines[i] for i in asserts[1:]])
        out.append(
            dataclasses.replace(
                e, public_tests={"test_code": public}, private_tests={"test_code": private}
            )
        )
    return out


def collector_for(start, reward, *overrides, examples=None):
    params, model_cfg, tokenizer, all_examples = start
    cfg = load_config("tiny", ["train.run_dir=unused", "train.batch_size=2", *TURNS, *overrides])
    collector = RolloutCollector(
        cfg, as_policy(model_cfg), tokenizer, examples or all_examples, make_mesh(cfg.mesh),
        reward, None, dtype=jnp.float32, sample_key=jax.random.PRNGKey(3),
    )  # fmt: skip
    return collector, params


def test_two_turns_hold_feedback_never_private_tests(start):
    examples = split_examples(start[3])
    seen: list[Observation] = []
    real = CodeFeedbackEnv.observe

    def spy(self, *args):
        obs = real(self, *args)
        seen.append(obs)
        return obs

    with CompositeReward(load_config("tiny", []).reward) as reward:
        collector, params = collector_for(start, reward, examples=examples)
        CodeFeedbackEnv.observe = spy
        try:
            e = collector.next(params)
        finally:
            CodeFeedbackEnv.observe = real
    rows = 2 * 2  # prompts x samples
    assert e.tokens.shape[0] == 2 * rows  # [turn 0 rows | turn 1 rows]
    m = collector.metrics
    assert {"turns_mean", "public_pass_turn1", "fix_rate", "turn_rows_done_frac"} <= set(m)
    # a random tiny model fails its first attempts: they got feedback and a second turn
    assert seen and 1.0 <= m["turns_mean"] <= 2.0
    for obs in seen:
        assert obs.turn == 1 and "# Feedback:" in obs.text and "# Previous attempt:" in obs.text
    privates = {
        line.strip()
        for ex in examples
        for line in ex.private_tests["test_code"].splitlines()
        if line.strip().startswith("assert")
    }
    for obs in seen:
        assert not any(p in obs.text for p in privates), obs.text
    # turn 1 rows are valid only where the row revised; the others were not sampled
    valid = np.asarray(e.valid).reshape(2, rows)
    assert valid[1].sum() <= valid[0].sum()
    assert valid[1].sum() == len(seen)
    mask = np.asarray(e.token_mask).reshape(2, rows, -1)
    assert mask[1][valid[1] == 0].sum() == 0 and mask[1][valid[1] > 0].sum(axis=-1).all()


@pytest.mark.parametrize(
    "revising, shards, expected",
    [
        ([], 1, 8),  # rows / 8
        ([3], 1, 8),
        ([0, 5, 9, 12, 13, 20, 30, 40, 41], 1, 16),  # 9 rows -> rows / 4
        (list(range(33)), 1, 64),
        (list(range(64)), 1, 64),
        ([7], 8, 8),  # a multiple of the batch shards
        ([7], 16, 16),
    ],
)
def test_a_later_turn_samples_only_the_revising_rows(revising, shards, expected):
    from types import SimpleNamespace

    from ppocoder_jax.rollout.turns import TurnRunner

    mesh = SimpleNamespace(shape={"data": shards, "fsdp": 1})
    runner = TurnRunner(SimpleNamespace(mesh=mesh), None)
    picked = runner._compacted(np.asarray(revising, np.int64), 64)
    assert len(picked) == expected
    assert picked[: len(revising)].tolist() == revising
    assert set(picked[len(revising) :].tolist()) <= {revising[0] if revising else 0}


def _fake_runner(pad_side):
    from types import SimpleNamespace

    from helpers.tiny_models import single_device_mesh

    from ppocoder_jax.rollout.turns import TurnRunner

    collector = SimpleNamespace(
        mesh=single_device_mesh(),
        policy=SimpleNamespace(pad_id=0, pad_side=pad_side),
        tokenizer=None,
        # a prompt of n characters is n tokens 1..n
        sampler=SimpleNamespace(
            max_source_length=64,
            encode=lambda tok, texts: [list(range(1, len(t) + 1)) for t in texts],
        ),
        cfg=SimpleNamespace(rollout=SimpleNamespace(length_buckets=(8, 16, 32, 64))),
    )
    return TurnRunner(collector, None)


@pytest.mark.parametrize("pad_side", ["right", "left"])
def test_a_later_turn_samples_each_prompt_width_apart(pad_side):
    """Revising rows are grouped by their prompt's bucket: a few long prompts do not widen
    every row's sampling; the groups come back to their rows at the widest width."""
    from types import SimpleNamespace

    from ppocoder_jax.ppo.experience import Experience

    runner = _fake_runner(pad_side)
    lengths = [5, 30, 7, 3, 20, 6, 8, 40]
    obs = [SimpleNamespace(text="x" * n) for n in lengths]
    active = np.array([1, 1, 0, 1, 1, 1, 0, 0], bool)  # revising: lengths 5, 30, 3, 20, 6
    groups = runner._width_groups(active, obs, 8)
    assert [g[0] for g in groups] == [8, 32]
    for width, picked, real, ids, mask in groups:
        assert ids.shape == (len(picked), width) and mask.shape == ids.shape
        assert all(width == (8 if lengths[r] <= 8 else 32) for r in real)
        np.testing.assert_array_equal(
            np.asarray(mask).sum(1)[: len(real)], [lengths[r] for r in real]
        )
    assert sorted(np.concatenate([g[2] for g in groups]).tolist()) == [0, 1, 3, 4, 5]
    # each group's block laid out on all rows, prompts padded to the widest on the policy's side
    pieces = []
    for width, picked, real, ids, mask in groups:
        n = len(picked)
        toks = jnp.full((n, 4), width, jnp.int32)
        stat = jnp.ones((n, 4), jnp.float32)
        pieces.append((Experience(ids, mask, toks, toks, stat, stat, stat, None), real))
    e = runner._spread(pieces, 8)
    assert e.prompt_ids.shape == (8, 32) and e.exact_kl is None
    pm, tok = np.asarray(e.prompt_mask), np.asarray(e.tokens)
    for r in range(8):
        n = lengths[r] if active[r] else 0
        assert pm[r].sum() == n
        if n:
            on = pm[r][:n] if pad_side == "right" else pm[r][32 - n :]
            assert on.all()
            assert tok[r, 0] == (8 if n <= 8 else 32)
        else:
            assert not tok[r].any()


def test_turn_credit_discounts_back_from_the_last_attempt():
    info = {
        "active": np.array([[1, 1, 1], [1, 0, 1]], bool),
        "alive": np.array([1, 1, 0], bool),
        "last_turn": np.array([1, 0, 1]),
        "shaped": np.array([[-0.3, 1.0, 0.0], [0.0, 0.0, 0.0]], np.float32),
        "public_pass": np.array([[0, 1, 0], [0, 0, 0]], bool),
    }
    total = np.array([1.0, 0.5, 1.0], np.float32)
    valid = np.ones(3, np.float32)
    (s0, v0), (s1, v1) = turn_scores(info, total, valid, discount=0.5, shaping=0.1)
    np.testing.assert_allclose(s0, [1.0 * 0.5 - 0.03, 0.5 + 0.1, 0.0])
    np.testing.assert_array_equal(v0, [1, 1, 0])  # row 2: a sandbox failure on the way
    np.testing.assert_allclose(s1, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(v1, [1, 0, 0])  # row 1 was done after turn 0


def test_a_sandbox_failure_in_a_middle_turn_masks_the_row(start, monkeypatch):
    import concurrent.futures as cf

    from ppocoder_jax.rollout.environment import Step

    real = CodeFeedbackEnv.step
    calls = []

    def first_fails(self, *args):  # rows are stepped in order: row 0 first
        calls.append(1)
        if len(calls) > 1:
            return real(self, *args)
        failed: cf.Future = cf.Future()
        failed.set_result(Step(None, False, "INFRA_ERROR", 0.0))
        return failed

    monkeypatch.setattr(CodeFeedbackEnv, "step", first_fails)
    with CompositeReward(load_config("tiny", []).reward) as reward:
        collector, params = collector_for(start, reward)
        e = collector.next(params)
    valid = np.asarray(e.valid).reshape(2, -1)
    assert not valid[:, 0].any()  # every turn of the row whose feedback failed
    assert math.isfinite(collector.metrics["reward_tests"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("rollout.feedback_template='{attempt} only'", "must contain {feedback}"),
        ("rollout.feedback_template='{feedback} {nope}'", "does not format"),
        ("train.overlap_rollouts=true", "not available with rollout.turns > 1"),
    ],
)
def test_bad_multiturn_settings_are_one_line_errors(start, override, message):
    with CompositeReward(load_config("tiny", []).reward) as reward:
        with pytest.raises(UserError, match=message):
            collector_for(start, reward, override)


@pytest.mark.parametrize("bad", ["rollout.turns=0", "rollout.feedback_max_chars=0"])
def test_bad_turn_numbers_fail_when_the_config_loads(bad):
    with pytest.raises(UserError):
        load_config("tiny", [bad])


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_ppocoder_train_with_two_turns(tmp_path, family):
    run_dir = tmp_path / family
    args = ["train", "--config", "tiny", *TURNS, f"model.family={family}", "train.steps=2"]
    args += ["train.batch_size=4", "ppo.value_warmup_iters=0", "train.tensorboard=false"]
    assert main([*args, f"train.run_dir={run_dir}"]) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ppo = [r for r in rows if r["phase"] == "ppo"]
    assert [r["step"] for r in ppo] == [1, 2]
    for r in ppo:
        assert r["samples"] == 4 * 2  # trajectories; the update saw 2 turns of rows
        for key in ("score", "loss", "policy_loss", "fix_rate", "turns_mean"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), key
    assert (run_dir / "final_model").is_dir()


def test_ppocoder_eval_reports_the_first_attempt_and_the_fix_rate(tmp_path, monkeypatch):
    """Greedy evaluation over 2 turns: pass@1 of the first attempts and of the last ones (on
    the private tests) and the fix rate; revisions are drawn only for failing attempts."""
    from ppocoder_jax.pipeline import evaluate as evaluate_module

    prompts_per_turn = []
    real = evaluate_module.generate_outputs

    def spy(cfg, params, model_cfg, tokenizer, examples, **kwargs):
        prompts_per_turn.append([e.prompt for e in examples])
        return real(cfg, params, model_cfg, tokenizer, examples, **kwargs)

    monkeypatch.setattr(evaluate_module, "generate_outputs", spy)
    run_dir = tmp_path / "eval"
    samples_file = tmp_path / "out" / "samples.jsonl"
    args = ["eval", "--config", "tiny", *TURNS, f"train.run_dir={run_dir}", "eval.greedy=true"]
    assert main([*args, "--samples", str(samples_file)]) == 0
    metrics = json.loads((run_dir / "eval_test.json").read_text())
    for key in ("pass@1", "pass@1_turn1", "fix_rate"):
        assert 0.0 <= metrics[key] <= 1.0, key
    first, *revisions = prompts_per_turn
    assert len(first) == metrics["num_problems"]
    # a random model fails: every failing first attempt was revised once, with its feedback
    assert len(revisions) == 1 and len(revisions[0]) == metrics["first_attempt_failures"]
    assert all("# Feedback:" in p for p in revisions[0])
    # --samples: one record per sample, agreeing with the metrics and the prompts drawn
    records = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert [r["prompt"] for r in records] == first
    assert sum(r["passed"] for r in records) / len(records) == pytest.approx(metrics["pass@1"])
    revised = [r for r in records if len(r["attempts"]) == 2]
    assert len(revised) == metrics["first_attempt_failures"]
    for r, prompt in zip(revised, revisions[0], strict=True):
        assert r["first_verdict"] != "PASS" and r["output"] == r["attempts"][-1]
        assert r["attempts"][0] in prompt and r["feedback"][0] in prompt
    for r in records:
        if len(r["attempts"]) == 1:
            assert r["output"] == r["attempts"][0] and r["verdict"] == r["first_verdict"]


def test_ppocoder_eval_samples_single_turn_and_bad_path(tmp_path):
    run_dir = tmp_path / "eval"
    samples_file = tmp_path / "samples.jsonl"
    args = ["eval", "--config", "tiny", f"train.run_dir={run_dir}", "eval.greedy=true"]
    assert main([*args, "--samples", str(samples_file)]) == 0
    metrics = json.loads((run_dir / "eval_test.json").read_text())
    records = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(records) == metrics["num_problems"]
    assert {"id", "sample", "prompt", "output", "verdict", "passed", "score"} == set(records[0])
    # a directory, or a file under a file, is not a file to write: one-line errors before any
    # work, exit 2
    assert main([*args, "--samples", str(tmp_path)]) == 2
    assert main([*args, "--samples", str(samples_file / "x.jsonl")]) == 2
    assert len(samples_file.read_text().splitlines()) == len(records)  # nothing lost


def test_a_stopped_two_turn_run_resumes_exactly(start, tmp_path):
    """Preemption after update 1 of 3; the resumed run ends bit for bit where an uninterrupted
    one ends (parameters, optimizer state, every metric but timings)."""
    from ppocoder_jax.pipeline.ppo_trainer import PPOTrainer

    timings = {"time_sample_s", "time_rewards_s", "time_feedback_s", "time_update_s", "reward_wait_frac",
               "reward_programs_per_s", "reward_busy_frac"}  # fmt: skip

    class Rows:
        def __init__(self):
            self.rows = []

        def log(self, phase, step, metrics):
            self.rows.append({k: v for k, v in metrics.items() if k not in timings})

        def rewind(self, phase, step):
            self.rows = self.rows[:step]

    def run(run_dir, stop_after=None):
        params, model_cfg, tokenizer, examples = start
        cfg = load_config(
            "tiny", [f"train.run_dir={run_dir}", "train.batch_size=2", "train.steps=3",
                     "train.save_every=100", "train.tensorboard=false", *TURNS],
        )  # fmt: skip
        logger = Rows()
        with CompositeReward(cfg.reward) as reward:
            trainer = PPOTrainer(
                cfg, params, model_cfg, tokenizer, examples, run_dir, logger, reward
            )
            stop = None if stop_after is None else (lambda: trainer.iteration >= stop_after)
            done = trainer.train(stop=stop)
        return trainer, done, logger.rows

    ref, done, ref_rows = run(tmp_path / "ref")
    assert done
    _, done, first = run(tmp_path / "stopped", stop_after=1)
    assert not done
    resumed, done, rest = run(tmp_path / "stopped")
    assert done and resumed.iteration == 3
    jax.tree.map(
        np.testing.assert_array_equal, jax.device_get(resumed.state), jax.device_get(ref.state)
    )
    assert first + rest == ref_rows


def test_revision_examples_are_the_second_turn_prompt_with_the_correct_program():
    """sft.revision_examples: a real buggy attempt, the sandbox's feedback on the public test
    through the rollouts' own environment, the correct program as target; never a private
    assert in the prompt; seeded."""
    from ppocoder_jax.data import load_task
    from ppocoder_jax.pipeline.revision_corpus import revision_examples

    cfg = load_config("demo_multiturn", ["data.synth_num_train=60", "sft.revision_examples=25"])
    train = load_task(cfg.data, None).train
    made, counts = revision_examples(cfg, train, None, 25, seed=0)
    assert len(made) == 25 and counts["checked"] >= 25 and counts["skipped_infra"] == 0
    again, _ = revision_examples(cfg, train, None, 25, seed=0)
    assert [e.prompt for e in again] == [e.prompt for e in made]
    originals = {e.id: e for e in train}
    with CompositeReward(cfg.reward) as reward:
        env = CodeFeedbackEnv(reward.executor, cfg.rollout)
        for e in made:
            assert e.target == e.meta["reference"]
            attempt = e.prompt.split("# Previous attempt:\n", 1)[1].split("\n# Feedback:", 1)[0]
            assert attempt in {program for _, program in e.meta["bug_variants"]}
            problem = originals[e.id.rsplit("/", 1)[0]]
            step = env.step(problem, env.reset(problem), attempt).result()
            assert not step.passed and step.feedback
            assert env.observe(problem, env.reset(problem), attempt, step).text == e.prompt
            for line in e.private_tests["test_code"].splitlines():
                assert line.strip() not in e.prompt
            # the correct program passes every test of the problem
            verdict = reward.executor.submit("python", e.target, tests=e.tests).result()
            assert verdict.verdict.name == "PASS"


def test_revision_examples_need_problems_with_bugs(start):
    from ppocoder_jax.pipeline.revision_corpus import revision_examples

    cfg = load_config("tiny", [*TURNS])
    with pytest.raises(UserError, match="sft.revision_examples"):
        # problems without recorded bug variants (a loaded dataset's)
        revision_examples(cfg, [dataclasses.replace(e, meta={}) for e in start[3]], None, 4, 0)


def test_two_turns_on_8_devices_equal_one_device(tmp_path):
    """`ppocoder train` with 2 turns on one CPU device and on 8 fake ones (mesh data=4 x
    fsdp=2; the compacted turn and its spread-back rows sharded over them): the same samples
    (every logged metric but timings within 1e-5) and the same parameters (within 1e-5 of
    each array's scale, as tests/test_parallel_sharded_step.py compares a sharded step)."""
    import os
    import subprocess
    import sys

    from ppocoder_jax.model import load_model

    def train(name, devices, *mesh):
        run_dir = tmp_path / name
        env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONHASHSEED="0")
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent)  # the reward plugin below
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        cmd = [sys.executable, "-m", "ppocoder_jax", "train", "--config", "tiny", *TURNS, *mesh]
        cmd += ["train.steps=2", "train.tensorboard=false"]
        # A random model fails every test: without a reward that varies between samples the
        # advantages are ~0 and every gradient is rounding noise, which no two summation
        # orders agree on. A bonus for short programs gives every group a spread.
        cmd += ["reward.functions=[helpers.reward_plugins:short_bonus]"]
        # The value head's gradient is a mean of value errors that nearly cancel, and Adam's
        # second step divides by it: its 1e-6 differences became 5e-5 of the bias (measured).
        # Here only the policy learns; the sharded value step is tests/test_parallel_sharded_step.
        cmd += ["ppo.vf_coef=0"]
        cmd += ["ppo.value_warmup_iters=0", f"train.run_dir={run_dir}"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        params = load_model(run_dir / "final_model")[0]
        return [r for r in rows if r.get("phase") == "ppo"], params

    one_rows, one = train("one", 1)
    eight_rows, eight = train("eight", 8, "mesh.data=4", "mesh.fsdp=2")
    assert [r["step"] for r in one_rows] == [r["step"] for r in eight_rows] == [1, 2]
    assert any(r["turn_rows_done_frac"] < 1 and r["turns_mean"] > 1 for r in one_rows)
    for a, b in zip(one_rows, eight_rows, strict=True):
        assert a.keys() == b.keys()
        for key, want in a.items():
            if key.startswith("time_") or key.startswith("reward_") and key.endswith("_s"):
                continue
            if key in ("reward_wait_frac", "reward_programs_per_s", "reward_busy_frac"):
                continue
            if key == "explained_variance" and a["step"] > 1:
                # 1 - var(returns - values) / var(returns) after an update: the values come
                # from parameters that differ by ~1e-6 of their scale (compared below) and
                # the differences returns - values cancel, so this one diagnostic differs by
                # more (7e-5 measured); step 1's, before any update, is compared
                continue
            if isinstance(want, float) and math.isfinite(want):
                assert b[key] == pytest.approx(want, rel=1e-5, abs=1e-6), (a["step"], key)
            else:
                assert b[key] == want, (a["step"], key)
    flat_one = jax.tree_util.tree_flatten_with_path(one)[0]
    flat_eight = jax.tree_util.tree_flatten_with_path(eight)[0]
    assert [p for p, _ in flat_one] == [p for p, _ in flat_eight]
    for (path, x), (_, y) in zip(flat_one, flat_eight, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind == "f":
            scale = float(np.max(np.abs(x))) if x.size else 0.0
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-5 * scale, err_msg=str(path))
        else:
            np.testing.assert_array_equal(y, x, err_msg=str(path))


def test_sft_gives_revision_examples_batches_of_their_own(start, monkeypatch):
    """Revision prompts are several times longer than the problems: they are batched apart,
    one step in every (problems + revisions) / revisions, and the problems' batches are drawn
    exactly as without revisions."""
    from ppocoder_jax.pipeline import sft as sft_module
    from ppocoder_jax.pipeline.batching import encode_examples

    params, model_cfg, tokenizer, examples = start
    cfg = load_config("tiny", ["sft.steps=12", "sft.batch_size=4"])
    train = encode_examples(model_cfg, tokenizer, examples[:24], 64, 64)
    longer = [dataclasses.replace(e, prompt=e.prompt * 3) for e in examples[24:32]]
    revisions = encode_examples(model_cfg, tokenizer, longer, 64, 64)
    seen = []
    real = sft_module.source_batch

    def spy(corpus, idx, *args):
        seen.append(("revision" if corpus is revisions else "problem", tuple(idx)))
        return real(corpus, idx, *args)

    class Log:
        def log(self, *args):
            pass

    monkeypatch.setattr(sft_module, "source_batch", spy)
    sft_module.run_sft(cfg, params, model_cfg, train, None, Log(), seed=5, revisions=revisions)
    with_revisions = list(seen)
    seen.clear()
    sft_module.run_sft(cfg, params, model_cfg, train, None, Log(), seed=5)
    kinds = [k for k, _ in with_revisions]
    assert kinds == ["problem", "problem", "problem", "revision"] * 3  # (24 + 8) / 8 = 4
    problems = [idx for k, idx in with_revisions if k == "problem"]
    assert problems == [idx for _, idx in seen[: len(problems)]]
    assert {i for k, idx in with_revisions if k == "revision" for i in idx} == set(range(8))
