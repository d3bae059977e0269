"""`load_task(data_cfg)`: the task named by `data.task`, read from `data.path` where needed.

`TASKS` is the one table of task names: each entry says how to load the task (a function that
imports its loader module only when called), whether it needs `data.path`, and whether it is
evaluation-only (it has no training problems: `ppocoder train` refuses it, `ppocoder eval`
takes it). `DataConfig.task` lists the same names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ppocoder_jax.data.task import Task, cap
from ppocoder_jax.errors import UserError


@dataclass(frozen=True)
class TaskSpec:
    load: Callable  # (data_cfg, tokenizer or None) -> Task
    kind: str  # completion | translation | synthesis (the loaded Task's kind)
    needs_path: bool
    eval_only: bool
    summary: str  # one line for messages and docs


def _synthesis_demo(data_cfg, tokenizer) -> Task:
    from ppocoder_jax.data.synthesis_demo import SynthesisDemoConfig, build_synthesis_demo

    try:
        cfg = SynthesisDemoConfig(
            seed=data_cfg.seed,
            num_train=data_cfg.synth_num_train,
            num_val=data_cfg.synth_num_val,
            num_test=data_cfg.synth_num_test,
            rl_fraction=data_cfg.synth_rl_fraction,
            num_rl=data_cfg.synth_num_rl,
            bug_rate=data_cfg.synth_bug_rate,
            popular_rate=data_cfg.synth_popular_rate,
            popular_templates=tuple(data_cfg.synth_popular_templates),
        )
        return build_synthesis_demo(cfg)
    except ValueError as err:
        raise UserError(f"config key 'data.synth_*': {err}") from None


def _humaneval(data_cfg, tokenizer) -> Task:
    from ppocoder_jax.data.humaneval import load_humaneval

    return load_humaneval(data_cfg.path)


def _completion_stdlib(data_cfg, tokenizer) -> Task:
    from ppocoder_jax.data.stdlib_completion import load_stdlib_completion

    if tokenizer is None:
        from ppocoder_jax.data.embedded_tokenizer import embedded_tokenizer

        tokenizer = embedded_tokenizer()
    return load_stdlib_completion(data_cfg, tokenizer)


def _completion(data_cfg, tokenizer) -> Task:
    from ppocoder_jax.data.codesearchnet import load_codesearchnet

    return load_codesearchnet(data_cfg.path, data_cfg, tokenizer)


def _translation(data_cfg, tokenizer) -> Task:
    from ppocoder_jax.data.xlcost import load_xlcost

    return load_xlcost(data_cfg.path, data_cfg.source_lang, data_cfg.target_lang)


def _apps(data_cfg, tokenizer) -> Task:
    from ppocoder_jax.data.apps import load_apps

    return load_apps(data_cfg.path, seed=data_cfg.seed)


def _mbpp(data_cfg, tokenizer) -> Task:
    from ppocoder_jax.data.mbpp import load_mbpp

    return load_mbpp(data_cfg.path, prompt_tests=data_cfg.mbpp_prompt_tests)


def _problems(data_cfg, tokenizer) -> Task:
    from ppocoder_jax.data.problems import load_problems

    return load_problems(data_cfg.path, data_cfg)


TASKS: dict[str, TaskSpec] = {
    "synthesis_demo": TaskSpec(
        _synthesis_demo, "synthesis", False, False, "the embedded program-synthesis family"
    ),
    "completion_stdlib": TaskSpec(
        _completion_stdlib, "completion", False, False, "completion on Python's standard library"
    ),
    "completion": TaskSpec(
        _completion, "completion", True, False, "CodeSearchNet Python code completion"
    ),
    "translation": TaskSpec(_translation, "translation", True, False, "XLCoST translation"),
    "apps": TaskSpec(_apps, "synthesis", True, False, "APPS program synthesis"),
    "mbpp": TaskSpec(_mbpp, "synthesis", True, False, "MBPP program synthesis"),
    "humaneval": TaskSpec(
        _humaneval, "synthesis", False, True, "HumanEval (164 evaluation problems)"
    ),
    "problems": TaskSpec(
        _problems, "synthesis", True, False, "your own problem file (docs/problems.md)"
    ),
}


def _needs_path(data_cfg) -> str:
    if not data_cfg.path:
        raise UserError(f"config key 'data.path': task {data_cfg.task!r} needs a dataset path")
    return data_cfg.path


def load_task(data_cfg, tokenizer=None) -> Task:
    """Build the task of `data_cfg` (a `DataConfig`).

    `tokenizer` (a Hugging Face tokenizer) is used by the completion tasks, whose target is the
    last `data.completion_tokens` tokens of a method: pass the model's own tokenizer; None means
    the embedded code tokenizer. With `data.prompt_format=chat` every prompt is rendered
    through this tokenizer's chat template (data/chat.py). `data.num_train` / `data.num_eval`
    (0 = all) cap the splits with a seeded, order-keeping subset.
    """
    name = data_cfg.task
    spec = TASKS.get(name)
    if spec is None:  # pragma: no cover - DataConfig validates the name
        raise UserError(f"config key 'data.task': unknown task {name!r}")
    if spec.needs_path:
        _needs_path(data_cfg)
    task = spec.load(data_cfg, tokenizer)
    s = data_cfg.seed
    task = Task(
        name=task.name,
        kind=task.kind,
        train=cap(task.train, data_cfg.num_train, s),
        val=cap(task.val, data_cfg.num_eval, s),
        test=cap(task.test, data_cfg.num_eval, s),
        rl=cap(task.rl, data_cfg.num_train, s),
        eval_only=spec.eval_only or task.eval_only,
    )
    if data_cfg.prompt_format == "chat":
        from ppocoder_jax.data.chat import render_chat_prompts

        task = render_chat_prompts(
            task,
            tokenizer,
            system_prompt=data_cfg.system_prompt,
            template_kwargs=data_cfg.chat_template_kwargs,
        )
    return task


def _trainable_tasks(kind: str) -> str:
    """The built-in tasks of `kind` that have training problems, e.g. "apps/mbpp"."""
    names = [
        n
        for n, spec in TASKS.items()
        if spec.kind == kind and not spec.eval_only and n not in ("problems", "synthesis_demo")
    ]
    return "/".join(sorted(names))


def require_training_problems(task: Task, data_cfg) -> None:
    """UserError (one line) when `task` has nothing to train on: an evaluation-only task such
    as HumanEval, or a dataset whose files hold no training problems."""
    if task.has_training_problems():
        return
    own = "data.task=problems with your own problem file (docs/problems.md)"
    if task.eval_only:
        others = _trainable_tasks(task.kind)
        raise UserError(
            f"task {task.name!r} is evaluation-only (it has no training problems): train on "
            f"{own}"
            + (f", or on {others} (data.path=...)" if others else "")
            + f", and evaluate with `ppocoder eval data.task={task.name}`"
        )
    source = f" in data.path={data_cfg.path!r}" if data_cfg.path else ""
    raise UserError(
        f"task {task.name!r} has no training problems{source} (all are in the val/test "
        f"splits): give data.path a dataset with training problems, or train on {own}"
    )


__all__ = ["TASKS", "TaskSpec", "load_task", "require_training_problems"]
