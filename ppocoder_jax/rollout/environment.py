"""The code-feedback environment: what a policy reads between attempts (multi-turn rollouts).

    env = CodeFeedbackEnv(executor, rollout_cfg, extract=reward.extract, chat=None)
    obs = env.reset(example)                      # Observation: the problem's prompt, turn 0
    step = env.step(example, obs, output).result()  # runs the PUBLIC tests on the attempt
    obs = env.observe(example, obs, output, step)   # the next prompt: problem, attempt, feedback

Feedback comes only from an example's public tests (`Example.public_and_private_tests()`:
all tests when the task has no split); the final reward is the caller's (the rollout collector
scores the last attempt on the private tests). An attempt whose public tests all pass is `done`; a sandbox
failure (INFRA_ERROR) gives `feedback=None`, and the caller masks the row, never scores it.

The next prompt is `rollout.feedback_template` formatted with the problem's prompt, the attempt
and the feedback (raw prompts: T5's encoder input, a decoder's context), or, for chat prompts,
the conversation so far (the problem, the attempt as the assistant's turn, the feedback as the
user's) rendered through the tokenizer's chat template.
"""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass

from ppocoder_jax.errors import UserError

TEMPLATE_FIELDS = ("prompt", "attempt", "feedback")
# The user's message after the feedback, in a chat conversation.
CHAT_REVISE = "Fix the program and answer with the whole corrected program."


@dataclass(frozen=True)
class Observation:
    text: str  # the prompt the policy reads for this turn
    turn: int  # 0-based
    messages: tuple[dict, ...] | None = None  # the conversation so far (chat prompts)


@dataclass(frozen=True)
class Step:
    feedback: str | None  # what the policy reads next; None: the sandbox failed (mask the row)
    passed: bool  # every public test passed
    verdict: str
    reward: float  # the public tests' execution reward (a per-turn shaped reward can use it)

    @property
    def done(self) -> bool:
        return self.passed or self.feedback is None


def check_feedback_config(rollout_cfg, examples=()) -> None:
    """Start-up checks of the multi-turn settings (UserError, one line)."""
    if rollout_cfg.turns < 2:
        return
    template = rollout_cfg.feedback_template
    try:
        template.format(**{name: "" for name in TEMPLATE_FIELDS})
    except (KeyError, IndexError, ValueError) as err:
        raise UserError(
            f"config key 'rollout.feedback_template': does not format with the fields "
            f"{', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}: {type(err).__name__}: {err}"
        ) from None
    if "{feedback}" not in template:
        raise UserError("config key 'rollout.feedback_template': must contain {feedback}")
    missing = [e.id for e in examples if e.public_and_private_tests()[0] is None]
    if missing:
        raise UserError(
            f"rollout.turns={rollout_cfg.turns} needs tests to give feedback from, and "
            f"{len(missing)} training problems have none (the first: {missing[0]!r})"
        )


def chat_renderer(data_cfg, tokenizer):
    """(messages of an example, render messages -> prompt text) for `data.prompt_format=chat`,
    else None: how a chat conversation grows turn by turn."""
    if data_cfg.prompt_format != "chat":
        return None
    from ppocoder_jax.data.chat import chat_messages, render_chat

    kwargs = dict(data_cfg.chat_template_kwargs)
    return (
        lambda example: chat_messages(example, data_cfg.system_prompt),
        lambda messages: render_chat(tokenizer, messages, kwargs),
    )


class CodeFeedbackEnv:
    def __init__(self, executor, rollout_cfg, *, extract=None, link: bool = False, chat=None):
        self.executor = executor
        self.template = rollout_cfg.feedback_template
        self.max_chars = rollout_cfg.feedback_max_chars
        self.extract = extract or (lambda output, lang: output)
        self.link = link
        self.chat = chat  # chat_renderer(...): (example -> messages, messages -> text) or None

    def reset(self, example) -> Observation:
        messages = tuple(self.chat[0](example)) if self.chat is not None else None
        return Observation(example.prompt, 0, messages)

    def step(self, example, observation: Observation, output: str) -> cf.Future:
        """Run the attempt on the public tests -> Future[Step]."""
        program = example.program(self.extract(output, example.lang))
        job = self.executor.submit(
            example.lang, program, tests=example.public_and_private_tests()[0], link=self.link
        )
        step: cf.Future = cf.Future()

        def done(future):
            try:
                step.set_result(self._step(future.result()))
            except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
                step.set_exception(err)

        job.add_done_callback(done)
        return step

    def _step(self, result) -> Step:
        from ppocoder_jax.rewards.feedback import feedback_text

        verdict = getattr(result.verdict, "name", str(result.verdict))
        if verdict == "INFRA_ERROR":
            return Step(None, False, verdict, 0.0)
        passed = verdict == "PASS"
        text = feedback_text(result, max_chars=self.max_chars)
        return Step(text, passed, verdict, float(result.reward or 0.0))

    def observe(self, example, observation: Observation, output: str, step: Step) -> Observation:
        """The prompt of the next turn: the problem, this attempt and its feedback."""
        turn = observation.turn + 1
        if self.chat is not None:
            user = f"{step.feedback}\n{CHAT_REVISE}"
            messages = (
                *observation.messages,
                {"role": "assistant", "content": output},
                {"role": "user", "content": user},
            )
            return Observation(self.chat[1](list(messages)), turn, messages)
        text = self.template.format(prompt=observation.text, attempt=output, feedback=step.feedback)
        return Observation(text, turn)
