"""The model families, one entry each: what the code above them selects by family.

    FAMILIES["t5"], FAMILIES["decoder"]      -> Family
    family_of(model_cfg)                     -> the Family of a T5Config / DecoderConfig
    family_of_model_type(config.json's model_type) -> the Family that reads that directory
    DEFAULT_FAMILY                           the family of `model.family=""` with no model.path

Its users: `as_policy` (below), the checkpoint store and the HF import / export
(model/store.py), `ppocoder import-hf` (model/cli_import.py) and the tiny model built from
scratch (pipeline/policy_loader.py). A new family is its model module(s) (config class,
params, HF weights), its Policy subclass in model/policy.py and its entry here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ppocoder_jax.model import decoder, decoder_weights, hf_io, t5
from ppocoder_jax.model.common import Params
from ppocoder_jax.model.decoder_config import SUPPORTED_MODEL_TYPES as DECODER_MODEL_TYPES
from ppocoder_jax.model.decoder_config import DecoderConfig
from ppocoder_jax.model.policy import DecoderPolicy, Policy, T5Policy
from ppocoder_jax.model.t5_config import T5Config


@dataclasses.dataclass(frozen=True)
class Family:
    name: str  # model.family, Policy.family
    config_class: type
    policy_class: type[Policy]
    # the backbone's key in params ({key: ..., "value_head": ...})
    params_key: str
    # (cfg, rng) -> random params (fp32); cfg -> the params tree of jax.ShapeDtypeStruct
    init_params: Callable[[Any, Any], Params]
    param_shapes: Callable[[Any], Params]
    # config.json's model_type (any JSON value, None when absent) -> this family reads it
    # (model types it then refuses included, for their error)
    reads_model_type: Callable[[Any], bool]
    # Hugging Face directory -> cfg; -> (backbone params as numpy fp32, cfg);
    # (out_dir, backbone params, cfg) -> config.json, model.safetensors, generation_config.json
    read_hf_config: Callable[[Path], Any]
    read_hf: Callable[[Path], tuple[dict, Any]]
    write_hf: Callable[[Path, dict, Any], None]
    # (the job config's `model` section, tokenizer) -> the config of the tiny model built
    # from scratch (model.path empty) from model.tiny_*
    tiny_config: Callable[[Any, Any], Any]
    # cfg -> what `ppocoder import-hf` says it imported
    describe: Callable[[Any], str]


def _tiny_t5(m, tokenizer) -> T5Config:
    """CodeT5 architecture (T5 v1.0: ReLU, tied embeddings)."""
    return T5Config.from_hf_dict(
        {
            "model_type": "t5",
            "architectures": ["T5ForConditionalGeneration"],
            "vocab_size": len(tokenizer),
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


def _tiny_decoder(m, tokenizer) -> DecoderConfig:
    """Qwen2 architecture (GQA, RoPE, SwiGLU, q/k/v biases, tied embeddings)."""
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


def _head(cfg) -> str:
    return "tied" if cfg.tie_word_embeddings else "untied"


def _describe_t5(cfg: T5Config) -> str:
    kind = "v1.1 (gated-gelu)" if cfg.is_gated else "v1.0 (relu)"
    return (
        f"T5 {kind}, {_head(cfg)} lm_head, d_model={cfg.d_model}, "
        f"layers={cfg.num_layers}/{cfg.num_decoder_layers}, vocab={cfg.vocab_size}"
    )


def _describe_decoder(cfg: DecoderConfig) -> str:
    return (
        f"{cfg.model_type} decoder-only LM, {_head(cfg)} lm_head, "
        f"hidden={cfg.hidden_size}, layers={cfg.num_hidden_layers}, "
        f"heads={cfg.num_attention_heads}/{cfg.num_key_value_heads} kv, "
        f"vocab={cfg.vocab_size}"
    )


def _reads_decoder_type(model_type) -> bool:
    """llama / qwen2 / qwen3, and MoE relatives (DecoderConfig refuses them by name)."""
    return model_type in DECODER_MODEL_TYPES or (
        isinstance(model_type, str) and model_type.endswith("_moe")
    )


FAMILIES: dict[str, Family] = {
    "t5": Family(
        name="t5",
        config_class=T5Config,
        policy_class=T5Policy,
        params_key="t5",
        init_params=t5.init_params,
        param_shapes=t5.param_shapes,
        reads_model_type=lambda model_type: model_type == "t5",
        read_hf_config=hf_io.read_hf_config,
        read_hf=hf_io.load_hf_t5,
        write_hf=hf_io.write_hf_t5,
        tiny_config=_tiny_t5,
        describe=_describe_t5,
    ),
    "decoder": Family(
        name="decoder",
        config_class=DecoderConfig,
        policy_class=DecoderPolicy,
        params_key="lm",
        init_params=decoder.init_params,
        param_shapes=decoder.param_shapes,
        reads_model_type=_reads_decoder_type,
        read_hf_config=decoder_weights.read_decoder_config,
        read_hf=decoder_weights.load_hf_decoder,
        write_hf=decoder_weights.write_hf_decoder,
        tiny_config=_tiny_decoder,
        describe=_describe_decoder,
    ),
}

# The family of the tiny model when model.family is "", and the one that reads (and refuses
# with its error) a directory whose model_type no family claims.
DEFAULT_FAMILY = "t5"


def family_of(model_cfg) -> Family:
    """The Family of a model config (T5Config -> "t5", DecoderConfig -> "decoder")."""
    for family in FAMILIES.values():
        if isinstance(model_cfg, family.config_class):
            return family
    raise TypeError(f"no policy family for {type(model_cfg).__name__}")


def family_of_model_type(model_type) -> Family:
    """The Family that reads a Hugging Face config.json of this model_type."""
    for family in FAMILIES.values():
        if family.reads_model_type(model_type):
            return family
    return FAMILIES[DEFAULT_FAMILY]


def as_policy(model, remat: bool | None = None) -> Policy:
    """A Policy for a model config (its family's: T5Config -> T5Policy,
    DecoderConfig -> DecoderPolicy); a Policy is returned as is unless `remat` asks for
    another setting."""
    if isinstance(model, Policy):
        return model if remat is None else dataclasses.replace(model, remat=remat)
    return family_of(model).policy_class(model, remat=bool(remat))
