"""`load_task(data_cfg)`: the task named by `data.task`, read from `data.path` where needed."""

from __future__ import annotations

from ppocoder_jax.data.task import Task, cap
from ppocoder_jax.errors import UserError


def _synthesis_demo(data_cfg) -> Task:
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


def _needs_path(data_cfg) -> str:
    if not data_cfg.path:
        raise UserError(f"config key 'data.path': task {data_cfg.task!r} needs a dataset path")
    return data_cfg.path


def load_task(data_cfg, tokenizer=None) -> Task:
    """Build the task of `data_cfg` (a `DataConfig`).

    `tokenizer` (a Hugging Face tokenizer) is used by the completion tasks, whose target is the
    last `data.completion_tokens` tokens of a method: pass the model's own tokenizer; None means
    the embedded code tokenizer. `data.num_train` / `data.num_eval` (0 = all) cap the splits with
    a seeded, order-keeping subset.
    """
    name = data_cfg.task
    if name in ("completion", "translation", "apps", "mbpp"):
        _needs_path(data_cfg)
    if name == "synthesis_demo":
        task = _synthesis_demo(data_cfg)
    elif name == "humaneval":
        from ppocoder_jax.data.humaneval import load_humaneval

        task = load_humaneval(data_cfg.path)
    elif name == "completion_stdlib":
        from ppocoder_jax.data.stdlib_completion import load_stdlib_completion

        if tokenizer is None:
            from ppocoder_jax.data.embedded_tokenizer import embedded_tokenizer

            tokenizer = embedded_tokenizer()
        task = load_stdlib_completion(data_cfg, tokenizer)
    elif name == "completion":
        from ppocoder_jax.data.codesearchnet import load_codesearchnet

        task = load_codesearchnet(_needs_path(data_cfg), data_cfg, tokenizer)
    elif name == "translation":
        from ppocoder_jax.data.xlcost import load_xlcost

        task = load_xlcost(_needs_path(data_cfg), data_cfg.source_lang, data_cfg.target_lang)
    elif name == "apps":
        from ppocoder_jax.data.apps import load_apps

        task = load_apps(_needs_path(data_cfg))
    elif name == "mbpp":
        from ppocoder_jax.data.mbpp import load_mbpp

        task = load_mbpp(_needs_path(data_cfg))
    else:  # pragma: no cover - DataConfig validates the name
        raise UserError(f"config key 'data.task': unknown task {name!r}")
    s = data_cfg.seed
    return Task(
        name=task.name,
        kind=task.kind,
        train=cap(task.train, data_cfg.num_train, s),
        val=cap(task.val, data_cfg.num_eval, s),
        test=cap(task.test, data_cfg.num_eval, s),
        rl=cap(task.rl, data_cfg.num_train, s),
    )
