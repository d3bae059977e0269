"""Build the policy (params, architecture, tokenizer) a job starts from.

`model.path` names a Hugging Face directory or one of our checkpoints; empty means the embedded
default: a small CodeT5-architecture model (T5 v1.0: ReLU, tied embeddings) initialised at
random over the embedded byte-level BPE code tokenizer.
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


def load_tokenizer_for(cfg: Config):
    if cfg.model.tokenizer:
        from ppocoder_jax.model import load_tokenizer

        return load_tokenizer(cfg.model.tokenizer)
    from ppocoder_jax.data.embedded_tokenizer import embedded_tokenizer

    return embedded_tokenizer()


def load_policy(cfg: Config, seed: int | None = None):
    """-> (params, t5_config, tokenizer); the value-head dropout comes from model.value_head_dropout."""
    params, t5cfg, tokenizer = _load_policy(cfg, seed)
    return (
        params,
        dataclasses.replace(t5cfg, value_head_dropout=cfg.model.value_head_dropout),
        tokenizer,
    )


def _load_policy(cfg: Config, seed: int | None):
    from ppocoder_jax.model import init_params

    if cfg.model.path:
        from ppocoder_jax.model import load_model

        params, t5cfg, tokenizer = load_model(cfg.model.path)
        if cfg.model.tokenizer:
            tokenizer = load_tokenizer_for(cfg)
        if tokenizer is None:
            raise UserError(f"{cfg.model.path} holds no tokenizer files: set model.tokenizer=DIR")
        return params, t5cfg, tokenizer
    tokenizer = load_tokenizer_for(cfg)
    t5cfg = tiny_t5_config(cfg, vocab_size=len(tokenizer))
    rng = jax.random.PRNGKey(cfg.train.seed if seed is None else seed)
    return init_params(t5cfg, rng), t5cfg, tokenizer
