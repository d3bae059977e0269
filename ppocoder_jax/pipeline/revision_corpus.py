"""SFT examples that teach revising from execution feedback (`sft.revision_examples`).

A multi-turn policy whose warm start never saw feedback has to learn to read it from the reward
alone. Each revision example is what a rollout's second turn looks like: a plausible buggy
attempt at a training problem (the synthesis demo records its bug variants in
`meta["bug_variants"]`), the feedback the sandbox really gives on the problem's public tests,
and, as the target, the correct program (`meta["reference"]`). The prompt is built by the same
`CodeFeedbackEnv` the rollouts use, so it matches the RL prompts character for character
(feedback template or chat template). Attempts that pass the public tests (no revision would be
asked for) or whose check failed in the sandbox are skipped.
"""

from __future__ import annotations

import dataclasses
import random

from ppocoder_jax.data.task import Example
from ppocoder_jax.errors import UserError


def revision_candidates(examples: list[Example]) -> list[tuple[Example, str]]:
    """(problem, buggy program) for every plausible bug of every problem with a reference."""
    return [
        (e, program)
        for e in examples
        if e.meta.get("reference")
        for _, program in e.meta.get("bug_variants", ())
    ]


def revision_examples(cfg, examples: list[Example], tokenizer, count: int, seed: int):
    """`count` revision examples drawn (seeded) from the problems' bug variants -> (examples,
    {"candidates": .., "checked": .., "skipped_passed": .., "skipped_infra": ..})."""
    from ppocoder_jax.rewards.composite import CompositeReward
    from ppocoder_jax.rollout.environment import CodeFeedbackEnv, chat_renderer

    candidates = revision_candidates(examples)
    if not candidates:
        raise UserError(
            "config key 'sft.revision_examples': needs training problems with plausible bugs "
            "and a reference solution (data.task=synthesis_demo has them)"
        )
    random.Random(f"revision:{seed}").shuffle(candidates)
    out: list[Example] = []
    counts = {"candidates": len(candidates), "checked": 0, "skipped_passed": 0, "skipped_infra": 0}
    with CompositeReward(cfg.reward) as reward:
        env = CodeFeedbackEnv(
            reward.executor, cfg.rollout, extract=reward.extract, link=cfg.reward.link,
            chat=chat_renderer(cfg.data, tokenizer),
        )  # fmt: skip
        cursor = 0
        while len(out) < count and cursor < len(candidates):
            # a chunk at a time: most attempts fail their public test, few are wasted
            chunk = candidates[cursor : cursor + 2 * (count - len(out))]
            cursor += len(chunk)
            starts = [env.reset(e) for e, _ in chunk]
            steps = [env.step(e, o, p) for (e, p), o in zip(chunk, starts, strict=True)]
            for (example, program), start, future in zip(chunk, starts, steps, strict=True):
                step = future.result()
                counts["checked"] += 1
                if step.feedback is None:
                    counts["skipped_infra"] += 1
                elif step.passed:
                    counts["skipped_passed"] += 1
                elif len(out) < count:
                    prompt = env.observe(example, start, program, step).text
                    out.append(
                        dataclasses.replace(
                            example,
                            id=f"{example.id}/revision{len(out)}",
                            prompt=prompt,
                            target=example.meta["reference"],
                        )
                    )
    return out, counts
