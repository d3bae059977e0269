"""The jobs behind `ppocoder sft | train | eval | demo`: each a function of a resolved Config.

Run directory layout (see run_dir.py): config.yaml, metrics.jsonl, tensorboard/, plots/,
sft_model/ (after sft), reference_model/ + checkpoints/ + final_model/ (after train),
eval_<split>.json, reward_errors/ (one JSON file per sample whose reward raised), and for the
demo results.json.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax

from ppocoder_jax.config import Config, from_dict, to_dict
from ppocoder_jax.data.registry import require_training_problems
from ppocoder_jax.errors import UserError
from ppocoder_jax.pipeline.run_dir import MetricsLogger, prepare_run_dir

SFT_DIR = "sft_model"
FINAL_DIR = "final_model"
FINAL_ADAPTER_DIR = "final_lora_adapter"  # with model.lora: the adapters, PEFT's format
REWARD_ERRORS_DIR = "reward_errors"


def _load_task(cfg: Config, tokenizer):
    from ppocoder_jax.data import load_task

    return load_task(cfg.data, tokenizer)


def _with(cfg: Config, section: str, **changes) -> Config:
    data = to_dict(cfg)
    data[section].update(changes)
    return from_dict(Config, data)


def _save(path: Path, params, model_cfg, tokenizer) -> None:
    """Write a model directory; an existing one is replaced only once the new one is complete."""
    import shutil

    from ppocoder_jax.model import save_model

    if jax.process_index() != 0:
        return
    if not path.exists():
        save_model(path, jax.device_get(params), model_cfg, tokenizer)
        return
    fresh, stale = path.with_name(path.name + ".new"), path.with_name(path.name + ".old")
    for leftover in (fresh, stale):
        shutil.rmtree(leftover, ignore_errors=True)
    save_model(fresh, jax.device_get(params), model_cfg, tokenizer)
    path.rename(stale)
    fresh.rename(path)
    shutil.rmtree(stale, ignore_errors=True)


def _save_adapters(path: Path, adapters, params, policy) -> None:
    """LoRA's adapters as a PEFT directory (replacing an older one only once complete)."""
    import shutil

    from ppocoder_jax.model.lora_peft import write_peft_adapters

    fresh = path.with_name(path.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    write_peft_adapters(fresh, adapters, policy, value_head=params["value_head"])
    shutil.rmtree(path, ignore_errors=True)
    fresh.rename(path)


def sft_job(cfg: Config, run_dir: Path | None = None, logger=None):
    """Cross-entropy fine-tuning; writes <run_dir>/sft_model. Returns (params, model_cfg, tokenizer)."""
    from ppocoder_jax.pipeline.batching import encode_examples
    from ppocoder_jax.pipeline.policy_loader import load_policy
    from ppocoder_jax.pipeline.sft import run_sft

    run_dir = run_dir or prepare_run_dir(cfg)
    own_logger = logger is None
    logger = logger or MetricsLogger(run_dir, cfg)
    params, model_cfg, tokenizer = load_policy(cfg)
    task = _load_task(cfg, tokenizer)
    require_training_problems(task, cfg.data)
    revisions = None
    if cfg.sft.revision_examples:
        from ppocoder_jax.pipeline.revision_corpus import revision_examples

        made, counts = revision_examples(
            cfg, task.train, tokenizer, cfg.sft.revision_examples, seed=cfg.train.seed
        )
        print(
            f"sft: {len(made)} revision examples from {counts['checked']} buggy attempts "
            f"({counts['skipped_passed']} passed their public tests, "
            f"{counts['skipped_infra']} sandbox failures)"
        )
        revisions = encode_examples(
            model_cfg, tokenizer, made, cfg.data.max_source_length, cfg.data.max_target_length
        )
    train = encode_examples(
        model_cfg, tokenizer, task.train, cfg.data.max_source_length, cfg.data.max_target_length
    )
    val = encode_examples(
        model_cfg, tokenizer, task.val, cfg.data.max_source_length, cfg.data.max_target_length
    )
    print(f"sft: {len(train)} training examples, {len(val)} validation, {cfg.sft.steps} steps")
    params = run_sft(
        cfg, params, model_cfg, train, val, logger, seed=cfg.train.seed, revisions=revisions
    )
    _save(run_dir / SFT_DIR, params, model_cfg, tokenizer)
    if own_logger:
        logger.close()
    return params, model_cfg, tokenizer


def train_job(cfg: Config, run_dir: Path | None = None, logger=None, policy=None):
    """PPO from cfg.model.path (or `policy`), resuming from <run_dir>/checkpoints if present.

    SIGTERM (preemption) while it runs: a checkpoint after the current iteration, then
    `Preempted` (the CLI exits 0; the same command resumes)."""
    from ppocoder_jax.errors import Preempted
    from ppocoder_jax.pipeline.policy_loader import load_policy
    from ppocoder_jax.pipeline.ppo_trainer import PPOTrainer
    from ppocoder_jax.pipeline.preemption import PreemptionGuard
    from ppocoder_jax.rewards.composite import CompositeReward

    run_dir = run_dir or prepare_run_dir(cfg)
    own_logger = logger is None
    logger = logger or MetricsLogger(run_dir, cfg)
    params, model_cfg, tokenizer = policy or load_policy(cfg)
    task = _load_task(cfg, tokenizer)
    require_training_problems(task, cfg.data)  # e.g. HumanEval (evaluation-only): exit 2
    with (
        PreemptionGuard() as guard,
        CompositeReward(cfg.reward, error_dir=run_dir / REWARD_ERRORS_DIR) as reward,
    ):
        reward.check_functions(task.ppo_examples())  # a bad reward plugin fails here
        trainer = PPOTrainer(
            cfg, params, model_cfg, tokenizer, task.ppo_examples(), run_dir, logger, reward
        )
        if not trainer.train(stop=guard):
            if own_logger:
                logger.close()
            raise Preempted(
                f"preempted (SIGTERM): checkpoint at iteration {trainer.iteration} in "
                f"{run_dir / 'checkpoints'}; run the same command again to resume"
            )
        params = trainer.params()  # LoRA: the base with the adapters merged
        adapters = trainer.adapters()
    _save(run_dir / FINAL_DIR, params, model_cfg, tokenizer)
    if adapters is not None and jax.process_index() == 0:
        _save_adapters(run_dir / FINAL_ADAPTER_DIR, adapters, params, trainer.learner.policy)
    if own_logger:
        logger.close()
    return params, model_cfg, tokenizer


def eval_job(
    cfg: Config,
    split: str = "test",
    policy=None,
    *,
    greedy: bool | None = None,
    num_samples: int | None = None,
    desc: str = "eval",
    samples: list | None = None,
) -> dict:
    """The split's metrics; `samples` (a list) also gets one record per sample."""
    from ppocoder_jax.pipeline.evaluate import evaluate
    from ppocoder_jax.pipeline.policy_loader import load_policy
    from ppocoder_jax.rewards.composite import CompositeReward

    params, model_cfg, tokenizer = policy or load_policy(cfg)
    task = _load_task(cfg, tokenizer)
    examples = task.split(split)
    if not examples:
        raise UserError(f"task {task.name!r} has no {split!r} examples")
    greedy = cfg.eval.greedy if greedy is None else greedy
    n = cfg.eval.num_samples if num_samples is None else num_samples
    reward_cfg = cfg.reward
    if task.kind == "synthesis":  # pass@k needs the test verdicts, not matching
        reward_cfg = _with(
            cfg, "reward", tests_weight=1.0, compile_weight=0.0, ast_weight=0.0, dfg_weight=0.0
        ).reward
    # reward plugins shape the training score only; evaluation has its own metrics
    reward_cfg = dataclasses.replace(reward_cfg, functions=(), function_weights=())
    error_dir = Path(cfg.train.run_dir) / REWARD_ERRORS_DIR
    with CompositeReward(reward_cfg, error_dir=error_dir) as reward:
        return evaluate(
            cfg,
            params,
            model_cfg,
            tokenizer,
            task.kind,
            examples,
            reward,
            greedy=greedy,
            num_samples=n,
            seed=cfg.train.seed,
            desc=desc,
            samples=samples,
        )


def demo_job(cfg: Config) -> dict:
    """SFT warm start -> eval -> PPO with unit-test rewards -> eval; table, curves, results.json."""
    from ppocoder_jax.pipeline.plots import plot_run

    start = time.time()
    run_dir = prepare_run_dir(cfg)
    logger = MetricsLogger(run_dir, cfg)
    sft_path = run_dir / SFT_DIR
    if sft_path.exists():
        print(f"demo: reusing the SFT model in {sft_path}")
        policy = load_saved(sft_path)
    else:
        policy = sft_job(cfg, run_dir, logger)
    t_sft = time.time()
    results = {"seed": cfg.train.seed}
    results["before"] = demo_eval(cfg, policy, "before PPO")
    logger.log("eval", 0, _flat(results["before"]))
    t_eval = time.time()
    final = train_job(cfg, run_dir, logger, policy=policy)
    t_ppo = time.time()
    results["after"] = demo_eval(cfg, final, "after PPO")
    logger.log("eval", cfg.train.steps, _flat(results["after"]))
    logger.close()
    results["timing_s"] = {
        "sft": t_sft - start,
        "eval_before": t_eval - t_sft,
        "ppo": t_ppo - t_eval,
        "eval_after": time.time() - t_ppo,
        "total": time.time() - start,
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    plots = plot_run(run_dir)
    print(format_demo_table(results))
    print(f"curves: {', '.join(str(p) for p in plots)}\nresults: {run_dir / 'results.json'}")
    return results


def load_saved(path: Path):
    from ppocoder_jax.model import load_model

    return load_model(str(path))


def demo_eval(cfg: Config, policy, label: str) -> dict:
    greedy = eval_job(cfg, "test", policy, greedy=True, desc=f"eval greedy ({label})")
    sampled = eval_job(
        cfg,
        "test",
        policy,
        greedy=False,
        num_samples=cfg.eval.num_samples,
        desc=f"eval sampled ({label})",
    )
    return {"greedy": greedy, "sampled": sampled}


def _flat(result: dict) -> dict:
    out = {}
    for mode, metrics in result.items():
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                out[f"{mode}_{key}"] = value
    return out


# (label, mode, metric key, unit) per task kind; rows whose metric is absent are skipped.
_PCT, _NUM = "%", ""
_DEMO_ROWS = [
    ("pass@1 greedy", "greedy", "pass@1", _PCT),
    ("pass@1 sampled", "sampled", "pass@1", _PCT),
    # rollout.turns > 1: the first attempt alone, and how many failures the feedback fixed
    ("pass@1 turn 1 greedy", "greedy", "pass@1_turn1", _PCT),
    ("pass@1 turn 1 sampled", "sampled", "pass@1_turn1", _PCT),
    ("fix rate greedy", "greedy", "fix_rate", _PCT),
    ("fix rate sampled", "sampled", "fix_rate", _PCT),
    ("compile rate greedy", "greedy", "compile_rate", _PCT),
    ("compile rate sampled", "sampled", "compile_rate", _PCT),
    ("exact match greedy", "greedy", "exact_match", _PCT),
    ("edit similarity greedy", "greedy", "edit_similarity", _PCT),
    ("BLEU greedy", "greedy", "bleu", _PCT),
    ("CodeBLEU greedy", "greedy", "codebleu", _PCT),
    ("output chars greedy", "greedy", "mean_output_chars", _NUM),
    ("reward errors greedy", "greedy", "reward_errors", _NUM),
    ("reward errors sampled", "sampled", "reward_errors", _NUM),
]


def format_demo_table(results: dict) -> str:
    """SFT -> PPO table for any task the demo accepts (synthesis, completion, translation)."""
    before, after = results["before"], results["after"]
    greedy = before["greedy"]
    if "num_problems" in greedy:
        title = f"held-out ({greedy['num_problems']} problems)"
    else:
        title = f"held-out ({greedy.get('num_examples', '?')} examples)"
    lines = [f"{title:<30}{'SFT':>8}{'PPO':>8}{'gain':>8}"]
    for label, mode, key, unit in _DEMO_ROWS:
        b, a = before.get(mode, {}).get(key), after.get(mode, {}).get(key)
        if b is None or a is None or (key == "reward_errors" and not (a or b)):
            continue
        if unit == _PCT:
            lines.append(f"{label:<30}{100 * b:>7.1f}%{100 * a:>7.1f}%{100 * (a - b):>+7.1f}")
        else:
            lines.append(f"{label:<30}{b:>8.1f}{a:>8.1f}{a - b:>+8.1f}")
    if "mean_reference_chars" in greedy:
        lines.append(f"{'reference chars':<30}{greedy['mean_reference_chars']:>8.1f}")
    if "floor_empty_compile_rate" in greedy:
        lines.append("trivial floors (compile rate):")
        lines.append(f"  {'empty completion':<28}{100 * greedy['floor_empty_compile_rate']:>7.1f}%")
        const = repr(greedy.get("floor_best_constant", "?"))
        rate = 100 * greedy["floor_best_constant_compile_rate"]
        lines.append(f"  {'best constant ' + const:<28}{rate:>7.1f}%")
    if "ceiling_compile_rate" in greedy:
        ceiling = 100 * greedy["ceiling_compile_rate"]
        lines.append(
            f"{'attainable ceiling':<30}{ceiling:>7.1f}%  ({greedy['unfixable_prompts']} prompts "
            "whose reference completion does not fit the budget or compile)"
        )
    causes = greedy.get("per_compile_failure")
    if causes:
        lines.append("why greedy completions fail to compile (share of all, SFT -> PPO):")
        after_c = after["greedy"].get("per_compile_failure", {})
        for name, b in causes.items():
            a = after_c.get(name, float("nan"))
            lines.append(f"  {name:<28}{100 * b:>7.1f}%{100 * a:>7.1f}%{100 * (a - b):>+7.1f}")
    templates = greedy.get("per_template_pass", {})
    if templates:
        lines.append("greedy pass rate per template (SFT -> PPO):")
        after_t = after["greedy"].get("per_template_pass", {})
        for name, b in templates.items():
            lines.append(
                f"  {name:<28}{100 * b:>7.1f}%{100 * after_t.get(name, float('nan')):>7.1f}%"
            )
    return "\n".join(lines)
