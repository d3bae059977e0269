"""Evaluation: generate for a split, execute / match, and report the task's metrics.

- synthesis: pass@k (unbiased estimator over n samples per problem; greedy = one sample),
  compile rate, and pass rate per template when examples carry `meta["template"]`;
- completion: compile rate, exact match, edit similarity, mean output length next to the
  reference's, and the trivial floors (empty completion, best constant completion) so that a
  collapse to emitting nothing is never mistaken for progress;
- translation: compile rate, BLEU, CodeBLEU.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import defaultdict

import jax
import numpy as np
from tqdm import tqdm

from ppocoder_jax.config import Config
from ppocoder_jax.data import Example

# Completions that a collapsed policy could emit; the best of them is the "constant" floor.
CONSTANT_COMPLETIONS = ("", "()", ")", "pass", "\n", ":", "]", "}", "\n    pass\n", "0")


def generate_outputs(
    cfg: Config,
    params,
    model_cfg,
    tokenizer,
    examples: list[Example],
    *,
    greedy: bool,
    num_samples: int = 1,
    seed: int = 0,
    desc: str = "generate",
    with_limit_flags: bool = False,
):
    """-> outputs[i] = the `num_samples` decoded outputs for examples[i]; with
    `with_limit_flags`, (outputs, hit_limit) where hit_limit[i][j] says output j ran to the
    token budget without ending (the "truncated" compile failures).

    At most `eval.batch_size` rows (prompts x samples) go through the sampler at once, so large
    n (pass@1000) is drawn in chunks instead of holding n KV caches per prompt. With several
    devices, the rows are sharded along the mesh's data axes and the params by the rules table.
    Prompts are encoded, bucketed and decoded by the same `Sampler` as training rollouts.
    """
    from ppocoder_jax.model.common import compute_dtype
    from ppocoder_jax.model.families import as_policy
    from ppocoder_jax.rollout import Sampler, SamplingParams

    r = cfg.rollout
    policy = as_policy(model_cfg)
    dtype = compute_dtype(cfg)
    sampling = dataclasses.replace(
        SamplingParams.from_config(r, greedy=greedy), temperature=float(cfg.eval.temperature)
    )
    n = 1 if greedy else num_samples
    mesh, params = _place_on_mesh(cfg, params, policy)
    shards = _num_batch_shards(mesh)
    sampler = Sampler(
        policy, r, mesh=mesh, dtype=dtype, max_source_length=cfg.data.max_source_length
    )
    rows = max(cfg.eval.batch_size, shards)
    sample_chunk = min(n, rows)
    prompts_per_call = max(1, rows // sample_chunk)
    prompts_per_call = ((prompts_per_call + shards - 1) // shards) * shards
    max_new = min(r.max_new_tokens, cfg.data.max_target_length)
    sources = sampler.encode(tokenizer, [e.prompt for e in examples])
    outputs: list[list[str]] = [[] for _ in examples]
    hit_limit: list[list[bool]] = [[] for _ in examples]
    eos_ids = np.asarray(policy.eos_ids)
    key = jax.random.PRNGKey(seed)
    calls = [
        (lo, s)
        for lo in range(0, len(examples), prompts_per_call)
        for s in range(0, n, sample_chunk)
    ]
    for lo, s_lo in tqdm(calls, desc=desc, unit="batch", mininterval=2.0):
        chunk = sources[lo : lo + prompts_per_call]
        real = len(chunk)
        chunk = chunk + [chunk[-1]] * (prompts_per_call - real)  # fixed shape: one program
        ids, mask = sampler.place_batch(*sampler.prompt_arrays(chunk))
        k = min(sample_chunk, n - s_lo)
        out = sampler.sample_arrays(
            params,
            ids,
            mask,
            jax.random.fold_in(jax.random.fold_in(key, lo), s_lo),
            sampling=sampling,
            max_new_tokens=max_new,
            num_samples=k,
        )
        tokens = np.asarray(out.tokens)
        token_mask, texts = sampler.cut_at_stops(tokenizer, tokens, np.asarray(out.token_mask))
        lengths = np.asarray(token_mask).sum(axis=1)
        last = tokens[np.arange(len(tokens)), np.maximum(lengths - 1, 0)]
        ran_out = (lengths >= max_new) & ~np.isin(last, eos_ids)
        for i in range(real):
            outputs[lo + i].extend(texts[i * k : (i + 1) * k])
            hit_limit[lo + i].extend(bool(x) for x in ran_out[i * k : (i + 1) * k])
    return (outputs, hit_limit) if with_limit_flags else outputs


def _place_on_mesh(cfg: Config, params, policy):
    """Single-device: params as they are. Several local devices: shard by the rules table."""
    if jax.device_count() == 1:
        return None, params
    from ppocoder_jax.parallel.mesh import make_mesh
    from ppocoder_jax.parallel.rules import logical_to_shardings

    mesh = make_mesh(cfg.mesh)
    shardings = logical_to_shardings(policy.param_logical_axes(params), mesh, shapes=params)
    return mesh, jax.device_put(params, shardings)


def _num_batch_shards(mesh) -> int:
    if mesh is None:
        return 1
    from ppocoder_jax.parallel.mesh import num_batch_shards

    return num_batch_shards(mesh)


def revise_with_feedback(
    cfg, params, model_cfg, tokenizer, examples, outputs, reward, *, greedy, seed, desc
):
    """rollout.turns > 1: every sample whose attempt fails its public tests reads the feedback
    (rollout/environment.py) and is drawn again, up to rollout.turns attempts. -> (the last
    attempts, {"first": the first attempts, "attempts" / "feedback": each sample's attempts and
    the public-test feedback it read, keyed by (problem, sample)})."""
    from ppocoder_jax.rollout.environment import CodeFeedbackEnv, chat_renderer

    env = CodeFeedbackEnv(
        reward.executor, cfg.rollout, extract=getattr(reward, "extract", None),
        link=cfg.reward.link, chat=chat_renderer(cfg.data, tokenizer),
    )  # fmt: skip
    rows = [(i, j) for i, outs in enumerate(outputs) for j in range(len(outs))]
    obs = {row: env.reset(examples[row[0]]) for row in rows}
    attempts = {(i, j): [outputs[i][j]] for i, j in rows}
    feedback: dict[tuple[int, int], list[str | None]] = {r: [] for r in rows}
    active = list(rows)
    for turn in range(1, cfg.rollout.turns):
        steps = {r: env.step(examples[r[0]], obs[r], attempts[r][-1]) for r in active}
        revising = []
        for r, future in steps.items():
            step = future.result()
            feedback[r].append(step.feedback)
            if step.feedback is not None and not step.passed:
                obs[r] = env.observe(examples[r[0]], obs[r], attempts[r][-1], step)
                revising.append(r)
        if not revising:
            break
        prompts = [dataclasses.replace(examples[i], prompt=obs[(i, j)].text) for i, j in revising]
        again = generate_outputs(
            cfg, params, model_cfg, tokenizer, prompts, greedy=greedy, num_samples=1,
            seed=seed + 7919 * turn, desc=f"{desc} (turn {turn + 1})",
        )  # fmt: skip
        for r, out in zip(revising, again, strict=True):
            attempts[r].append(out[0])
        active = revising
    final = [[attempts[(i, j)][-1] for j in range(len(outs))] for i, outs in enumerate(outputs)]
    return final, {"first": outputs, "attempts": attempts, "feedback": feedback}


def sample_records(examples, outputs, parts, turns: dict, first_parts) -> list[dict]:
    """One JSON-able record per sample (`ppocoder eval --samples FILE`): the problem's id and
    prompt, the output, its verdict and score on the tests that scored it; with rollout.turns > 1
    every attempt, the feedback read after each (null: the sandbox failed) and the first
    attempt's verdict on the same tests."""
    records = []
    for i, (example, outs) in enumerate(zip(examples, outputs, strict=True)):
        for j, out in enumerate(outs):
            q = parts[i][j]
            record = {
                "id": example.id,
                "sample": j,
                "prompt": example.prompt,
                "output": out,
                "verdict": q.verdict,
                "passed": q.passed,
                "score": q.total,
            }
            if turns:
                record["attempts"] = turns["attempts"][(i, j)]
                record["feedback"] = turns["feedback"][(i, j)]
                record["first_verdict"] = first_parts[i][j].verdict
            records.append(record)
    return records


def turn_metrics(examples, first_parts, final_parts, ks) -> dict:
    """pass@k of the first attempts (on the same private tests) and the fix rate: the share of
    first attempts that fail whose sample passes by the last turn."""
    first = synthesis_metrics(examples, None, first_parts, ks)
    out = {f"{k}_turn1": v for k, v in first.items() if k.startswith("pass@")}
    pairs = [
        (a, b)
        for p, q in zip(first_parts, final_parts, strict=True)
        for a, b in zip(p, q, strict=True)
        if not a.infra_error and not b.infra_error
    ]
    failed = [b for a, b in pairs if not a.passed]
    out["fix_rate"] = sum(b.passed for b in failed) / max(len(failed), 1)
    out["first_attempt_failures"] = len(failed)
    return out


def score_outputs(reward, examples: list[Example], outputs: list[list[str]]):
    flat_ex = [e for e, outs in zip(examples, outputs) for _ in outs]
    flat_out = [o for outs in outputs for o in outs]
    parts = reward.score(flat_ex, flat_out)
    grouped, i = [], 0
    for outs in outputs:
        grouped.append(parts[i : i + len(outs)])
        i += len(outs)
    return grouped


def synthesis_metrics(examples, outputs, parts, ks) -> dict:
    from ppocoder_jax.rewards.metrics import mean_pass_at_k

    ns = [len(p) for p in parts]
    valid = [[q for q in p if not q.infra_error] for p in parts]
    cs = [sum(q.passed for q in v) for v in valid]
    ns_valid = [len(v) for v in valid]
    metrics = {"num_problems": len(examples), "samples_per_problem": max(ns) if ns else 0}
    for k in ks:
        if all(n >= k for n in ns_valid):
            metrics[f"pass@{k}"] = mean_pass_at_k(ns_valid, cs, k)
    flat = [q for v in valid for q in v]
    metrics["compile_rate"] = sum(q.compiled for q in flat) / max(len(flat), 1)
    metrics["infra_errors"] = sum(len(p) - len(v) for p, v in zip(parts, valid))
    for key in ("template", "difficulty"):  # the embedded templates; APPS difficulties
        groups = defaultdict(list)
        for ex, v in zip(examples, valid):
            if key in ex.meta and v:
                groups[ex.meta[key]].append(sum(q.passed for q in v) / len(v))
        if groups:
            metrics[f"per_{key}_pass"] = {t: float(np.mean(v)) for t, v in sorted(groups.items())}
    return metrics


def completion_metrics(
    examples, outputs, parts, reward, hit_limit=None, reference_fits=None
) -> dict:
    """`hit_limit` (per output, generate_outputs' flags) adds the compile failures' causes for
    Python; `reference_fits` (per example: the reference completion fits the token budget) adds
    the attainable ceiling: the share of prompts whose reference completion fits and compiles,
    the most any policy can reach."""
    from ppocoder_jax.rewards.metrics import exact_match, mean_edit_similarity

    first = [o[0] for o in outputs]
    refs = [e.target for e in examples]
    flat = [p[0] for p in parts]
    ok = [q for q in flat if not q.infra_error]
    metrics = {
        "num_examples": len(examples),
        "compile_rate": sum(q.compiled for q in ok) / max(len(ok), 1),
        "exact_match": exact_match(refs, first),
        "edit_similarity": mean_edit_similarity(refs, first),
        "mean_output_chars": float(np.mean([len(o) for o in first])) if first else 0.0,
        "mean_reference_chars": float(np.mean([len(r) for r in refs])) if refs else 0.0,
    }
    metrics.update(trivial_floors(examples, reward))
    if hit_limit is not None and examples and all(e.lang == "python" for e in examples):
        from ppocoder_jax.pipeline.compile_failures import failure_breakdown

        prompts = [e.context_prefix or "" for e in examples]
        metrics.update(failure_breakdown(prompts, first, [h[0] for h in hit_limit]))
    if reference_fits is not None:
        ref_parts = reward.score(examples, refs)
        fixable = [f and q.compiled for f, q in zip(reference_fits, ref_parts, strict=True)]
        metrics["ceiling_compile_rate"] = sum(fixable) / max(len(examples), 1)
        metrics["unfixable_prompts"] = len(examples) - sum(fixable)
    if metrics["mean_output_chars"] < 0.5 * metrics["mean_reference_chars"]:
        print(
            f"WARNING: mean completion length {metrics['mean_output_chars']:.1f} chars is below half "
            f"the references' ({metrics['mean_reference_chars']:.1f}): compile-rate gains may be "
            "a collapse to emitting (almost) nothing, not progress",
            file=sys.stderr,
        )
        metrics["length_collapse_warning"] = True
    return metrics


def trivial_floors(examples, reward) -> dict:
    """Compile rate of the empty completion and of the best constant completion."""
    rates = {}
    for const in CONSTANT_COMPLETIONS:
        parts = reward.score(examples, [const] * len(examples))
        ok = [q for q in parts if not q.infra_error]
        rates[const] = sum(q.compiled for q in ok) / max(len(ok), 1)
    best = max(rates, key=rates.get)
    return {
        "floor_empty_compile_rate": rates[""],
        "floor_best_constant_compile_rate": rates[best],
        "floor_best_constant": best,
    }


def translation_metrics(examples, outputs, parts) -> dict:
    from ppocoder_jax.rewards.matching import corpus_codebleu
    from ppocoder_jax.rewards.metrics import bleu

    first = [o[0] for o in outputs]
    refs = [e.target for e in examples]
    ok = [p[0] for p in parts if not p[0].infra_error]
    lang = examples[0].lang if examples else "python"
    cb = corpus_codebleu([[r] for r in refs], first, lang)
    return {
        "num_examples": len(examples),
        "compile_rate": sum(q.compiled for q in ok) / max(len(ok), 1),
        "bleu": bleu(refs, first),
        "codebleu": cb["codebleu"],
    }


def evaluate(
    cfg: Config,
    params,
    model_cfg,
    tokenizer,
    kind: str,
    examples: list[Example],
    reward,
    *,
    greedy: bool,
    num_samples: int = 1,
    seed: int = 0,
    desc: str = "eval",
    samples: list | None = None,
) -> dict:
    """-> the metrics; `samples`, when given, is extended with one record per sample (see
    `sample_records`)."""
    outputs, hit_limit = generate_outputs(
        cfg,
        params,
        model_cfg,
        tokenizer,
        examples,
        greedy=greedy,
        num_samples=num_samples,
        seed=seed,
        desc=desc,
        with_limit_flags=True,
    )
    turns = {}
    if kind == "synthesis" and cfg.rollout.turns > 1:
        outputs, turns = revise_with_feedback(
            cfg, params, model_cfg, tokenizer, examples, outputs, reward,
            greedy=greedy, seed=seed, desc=desc,
        )  # fmt: skip
        examples = [dataclasses.replace(e, tests=e.public_and_private_tests()[1]) for e in examples]
    parts = score_outputs(reward, examples, outputs)
    first_parts = score_outputs(reward, examples, turns["first"]) if turns else None
    if samples is not None:
        samples.extend(sample_records(examples, outputs, parts, turns, first_parts))
    if kind == "synthesis":
        ks = tuple(k for k in cfg.eval.ks if k <= (1 if greedy else num_samples)) or (1,)
        metrics = synthesis_metrics(examples, outputs, parts, ks)
        if turns:
            metrics.update(turn_metrics(examples, first_parts, parts, ks))
    elif kind == "completion":
        budget = min(cfg.rollout.max_new_tokens, cfg.data.max_target_length)
        fits = [  # the reference's tokens and the end-of-sequence token
            len(tokenizer(e.target, add_special_tokens=False)["input_ids"]) < budget
            for e in examples
        ]
        metrics = completion_metrics(examples, outputs, parts, reward, hit_limit, fits)
    else:
        metrics = translation_metrics(examples, outputs, parts)
    metrics["mean_score"] = float(
        np.mean([q.total for p in parts for q in p if not q.infra_error] or [0.0])
    )
    # samples whose reward raised count as failures above (verdict REWARD_ERROR); say how many
    errors = [q.reward_error for p in parts for q in p if q.reward_error is not None]
    metrics["reward_errors"] = len(errors)
    if errors:
        print(
            f"WARNING: {desc}: {len(errors)} sample(s) whose reward raised, counted as failures;"
            f" first: {errors[0]}",
            file=sys.stderr,
        )
    return metrics
