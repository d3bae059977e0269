"""Build the policy (params, architecture, tokenizer) a job starts from.

`model.path` names a Hugging Face directory or one of our checkpoints (either family: the
model_type in its config.json decides); empty means the embedded default: a small model
initialised at random over the embedded byte-level BPE code tokenizer, CodeT5-architecture
(T5 v1.0: ReLU, tied embeddings) or, with `model.family=decoder`, Qwen2-architecture (GQA,
RoPE, SwiGLU, q/k/v biases, tied embeddings). With `model.init: pretrained` that small model
starts from its standard-library pretraining (pipeline/pretrain.py; built once, then cached).
"""

from __future__ import annotations

import dataclasses

import jax

from ppocoder_jax.config import Config
from ppocoder_jax.errors import UserError


def load_tokenizer_for(cfg: Config):
    if cfg.model.tokenizer:
        from ppocoder_jax.model import load_tokenizer

        return load_tokenizer(cfg.model.tokenizer)
    from ppocoder_jax.data.embedded_tokenizer import embedded_tokenizer

    return embedded_tokenizer()


def load_policy(cfg: Config, seed: int | None = None):
    """-> (params, model config (T5Config | DecoderConfig), tokenizer); the value-head dropout
    comes from model.value_head_dropout."""
    params, model_cfg, tokenizer = _load_policy(cfg, seed)
    return (
        params,
        dataclasses.replace(model_cfg, value_head_dropout=cfg.model.value_head_dropout),
        tokenizer,
    )


def _load_policy(cfg: Config, seed: int | None):
    from ppocoder_jax.model.families import DEFAULT_FAMILY, FAMILIES, family_of

    family = cfg.model.family
    if cfg.model.init == "pretrained" and not cfg.model.path:  # a path is where to start
        from ppocoder_jax.model import load_model
        from ppocoder_jax.pipeline.pretrain import check_pretrained_config, ensure_pretrained

        check_pretrained_config(cfg)
        return load_model(ensure_pretrained(cfg))
    if cfg.model.path:
        from ppocoder_jax.model import load_model

        params, model_cfg, tokenizer = load_model(cfg.model.path)
        found = family_of(model_cfg).name
        if family and family != found:
            raise UserError(
                f"config key 'model.family': {family!r}, but {cfg.model.path} holds a "
                f"{found!r} model"
            )
        if cfg.model.tokenizer:
            tokenizer = load_tokenizer_for(cfg)
        if tokenizer is None:
            raise UserError(f"{cfg.model.path} holds no tokenizer files: set model.tokenizer=DIR")
        return params, model_cfg, tokenizer
    tokenizer = load_tokenizer_for(cfg)
    rng = jax.random.PRNGKey(cfg.train.seed if seed is None else seed)
    # the tiny model of model.tiny_*, in its family's architecture (model/families.py)
    fam = FAMILIES[family or DEFAULT_FAMILY]
    model_cfg = fam.tiny_config(cfg.model, tokenizer)
    # Host arrays, as load_model gives: the trainer sends each device only its shards.
    with _host_device():
        params = jax.device_get(fam.init_params(model_cfg, rng))
    return params, model_cfg, tokenizer


def _host_device():
    """Make the host's CPU device the default (where there is one), so that a random init
    never puts a whole copy of the parameters on an accelerator."""
    import contextlib

    try:
        return jax.default_device(jax.local_devices(backend="cpu")[0])
    except (RuntimeError, ValueError):  # no CPU backend (JAX_PLATFORMS without cpu)
        return contextlib.nullcontext()
