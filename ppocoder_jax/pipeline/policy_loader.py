"""Build the policy (params, architecture, tokenizer) a job starts from.

`model.path` names a Hugging Face directory or one of our checkpoints (either family: the
model_type in its config.json decides); empty means the embedded default: a small model
initialised at random over the embedded byte-level BPE code tokenizer, CodeT5-architecture
(T5 v1.0: ReLU, tied embeddings) or, with `model.family=decoder`, Qwen2-architecture (GQA,
RoPE, SwiGLU, q/k/v biases, tied embeddings).
"""

from __future__ import annotations

import dataclasses

import jax

from ppocoder_jax.config import Config
from ppocoder_jax.errors import UserError


def tiny_t5_config(cfg: Config, vocab_size: int):
    from ppocoder_jax.model import T5Config

    m = cfg.model
    return T5Config.from_hf_dict(
        {
            "model_type": "t5",
            "architectures": ["T5ForConditionalGeneration"],
            "vocab_size": vocab_size,
            "d_model": m.tiny_d_model,
            "d_kv": m.tiny_d_kv,
            "d_ff": m.tiny_d_ff,
            "num_layers": m.tiny_num_layers,
            "num_decoder_layers": m.tiny_num_decoder_layers,
            "num_heads": m.tiny_num_heads,
            "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128,
            "dropout_rate": 0.0,
            "layer_norm_epsilon": 1e-6,
            "feed_forward_proj": "relu",
            "tie_word_embeddings": True,
            "pad_token_id": 0,
            "eos_token_id": 2,
            "bos_token_id": 1,
            "decoder_start_token_id": 0,
        }
    )


def tiny_decoder_config(cfg: Config, tokenizer):
    from ppocoder_jax.model.decoder_config import DecoderConfig

    m = cfg.model
    return DecoderConfig.from_hf_dict(
        {
            "model_type": "qwen2",
            "architectures": ["Qwen2ForCausalLM"],
            "vocab_size": len(tokenizer),
            "hidden_size": m.tiny_d_model,
            "intermediate_size": m.tiny_d_ff,
            "num_hidden_layers": m.tiny_num_layers,
            "num_attention_heads": m.tiny_num_heads,
            "num_key_value_heads": m.tiny_num_kv_heads,
            "head_dim": m.tiny_d_kv,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": True,
            "use_sliding_window": False,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        source="model.tiny_*",
    )


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
    from ppocoder_jax.model.policy import as_policy

    family = cfg.model.family
    if cfg.model.path:
        from ppocoder_jax.model import load_model

        params, model_cfg, tokenizer = load_model(cfg.model.path)
        found = as_policy(model_cfg).family
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
    if family == "decoder":
        from ppocoder_jax.model import decoder

        model_cfg = tiny_decoder_config(cfg, tokenizer)
        init = decoder.init_params
    else:
        from ppocoder_jax.model import init_params as init

        model_cfg = tiny_t5_config(cfg, vocab_size=len(tokenizer))
    # Host arrays, as load_model gives: the trainer sends each device only its shards.
    with _host_device():
        params = jax.device_get(init(model_cfg, rng))
    return params, model_cfg, tokenizer


def _host_device():
    """Make the host's CPU device the default (where there is one), so that a random init
    never puts a whole copy of the parameters on an accelerator."""
    import contextlib

    try:
        return jax.default_device(jax.local_devices(backend="cpu")[0])
    except (RuntimeError, ValueError):  # no CPU backend (JAX_PLATFORMS without cpu)
        return contextlib.nullcontext()
