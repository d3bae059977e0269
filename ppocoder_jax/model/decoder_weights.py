"""Map Hugging Face Llama / Qwen2 / Qwen3 causal-LM tensors to our `lm` params tree and back.

HF stores Linear weights as [out, in]; we store `x @ kernel` kernels with the heads split out:
q [H*K, D] -> [D, H, K], k/v [N*K, D] -> [D, N, K], o [D, H*K] -> [H, K, D], MLP [F, D] ->
[D, F] (down: [D, F] -> [F, D]), lm_head [V, D] -> [D, V]; biases [H*K] -> [H, K]. Norm
weights, the embedding and q_norm / k_norm are copied as they are. HF names (SPEC):
model.embed_tokens.weight, model.layers.N.{input_layernorm, post_attention_layernorm}.weight,
model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias}, model.layers.N.self_attn.{q,k}_norm.weight
(qwen3), model.layers.N.mlp.{gate,up,down}_proj.weight, model.norm.weight, lm_head.weight
(absent when tied).

    load_hf_decoder(model_dir) -> (lm params as numpy fp32, DecoderConfig)
    write_hf_decoder(out_dir, lm_params, cfg)   config.json, model.safetensors,
                                                generation_config.json (AutoModelForCausalLM loads it)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ppocoder_jax.errors import UserError
from ppocoder_jax.model import hf_io
from ppocoder_jax.model.decoder_config import DecoderConfig
from ppocoder_jax.model.hf_weights import (
    Entry,
    kernel_modules,
    params_to_tensors,
    same_entry,
    tensors_to_params,
    transposed_entry,
)

EMBED = "model.embed_tokens.weight"
LM_HEAD = "lm_head.weight"


def _entries(cfg: DecoderConfig) -> Iterator[Entry]:
    d, f, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    h, n, k = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim

    def split_in(hf_name, path, heads):  # [heads*K, D] -> [D, heads, K]
        return (
            hf_name,
            path,
            lambda w: np.ascontiguousarray(w.T).reshape(d, heads, k),
            lambda x: np.ascontiguousarray(x.reshape(d, heads * k).T),
            (heads * k, d),
        )

    def split_bias(hf_name, path, heads):  # [heads*K] -> [heads, K]
        return (
            hf_name,
            path,
            lambda w: w.reshape(heads, k),
            lambda x: x.reshape(heads * k),
            (heads * k,),
        )

    yield same_entry(EMBED, ("embed_tokens", "embedding"), (v, d))
    for i in range(cfg.num_hidden_layers):
        hf, ours = f"model.layers.{i}", (f"layers_{i}",)
        attn, our_attn = f"{hf}.self_attn", (*ours, "self_attn")
        yield same_entry(f"{hf}.input_layernorm.weight", (*ours, "input_layernorm", "scale"), (d,))
        for name, heads in (("q_proj", h), ("k_proj", n), ("v_proj", n)):
            yield split_in(f"{attn}.{name}.weight", (*our_attn, name, "kernel"), heads)
            if cfg.qkv_bias:
                yield split_bias(f"{attn}.{name}.bias", (*our_attn, name, "bias"), heads)
        yield (
            f"{attn}.o_proj.weight",
            (*our_attn, "o_proj", "kernel"),
            lambda w: np.ascontiguousarray(w.T).reshape(h, k, d),
            lambda x: np.ascontiguousarray(x.reshape(h * k, d).T),
            (d, h * k),
        )
        if cfg.o_bias:
            yield same_entry(f"{attn}.o_proj.bias", (*our_attn, "o_proj", "bias"), (d,))
        if cfg.qk_norm:
            yield same_entry(f"{attn}.q_norm.weight", (*our_attn, "q_norm", "scale"), (k,))
            yield same_entry(f"{attn}.k_norm.weight", (*our_attn, "k_norm", "scale"), (k,))
        yield same_entry(
            f"{hf}.post_attention_layernorm.weight",
            (*ours, "post_attention_layernorm", "scale"),
            (d,),
        )
        for name in ("gate_proj", "up_proj"):
            yield transposed_entry(
                f"{hf}.mlp.{name}.weight", (*ours, "mlp", name, "kernel"), (d, f)
            )
        yield transposed_entry(
            f"{hf}.mlp.down_proj.weight", (*ours, "mlp", "down_proj", "kernel"), (f, d)
        )
    yield same_entry("model.norm.weight", ("norm", "scale"), (d,))
    if not cfg.tie_word_embeddings:
        yield transposed_entry(LM_HEAD, ("lm_head", "kernel"), (d, v))


def normalize_names(tensors: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """A bare `*Model` checkpoint (no "model." prefix) in the `*ForCausalLM` spelling."""
    if EMBED not in tensors and "embed_tokens.weight" in tensors:
        return {(k if k == LM_HEAD else f"model.{k}"): w for k, w in tensors.items()}
    return tensors


def resolve_tying(cfg: DecoderConfig, tensors: Mapping[str, np.ndarray]) -> DecoderConfig:
    """A distinct lm_head.weight beside a config that says tied means untied: trust the file."""
    if cfg.tie_word_embeddings and LM_HEAD in tensors and EMBED in tensors:
        lm, emb = tensors[LM_HEAD], tensors[EMBED]
        if lm.shape != emb.shape or not np.array_equal(lm, emb):
            return dataclasses.replace(cfg, tie_word_embeddings=False)
    return cfg


def hf_to_params(
    cfg: DecoderConfig, tensors: Mapping[str, np.ndarray], source: str = "weights"
) -> dict:
    """HF tensors -> our `lm` params (numpy fp32). Checks every tensor exists with its shape."""
    return tensors_to_params(_entries(cfg), normalize_names(tensors), source)


def params_to_hf(cfg: DecoderConfig, lm_params: Mapping) -> dict[str, np.ndarray]:
    """Our `lm` params -> HF tensor dict (fp32, contiguous) for model.safetensors."""
    return params_to_tensors(_entries(cfg), lm_params)


def read_decoder_config(model_dir: Path) -> DecoderConfig:
    """config.json, with the end-of-sequence ids of a generation_config.json beside it added
    after its own: transformers' `generate` stops at generation_config.json's eos_token_id,
    and chat models list the end of their turn there (Llama 3 instruct's <|eot_id|> beside
    config.json's <|end_of_text|>; Qwen2.5 instruct's <|endoftext|> beside <|im_end|>)."""
    model_dir = Path(model_dir)
    path = model_dir / hf_io.CONFIG_FILE
    cfg = DecoderConfig.from_hf_dict(hf_io.read_json(path), source=str(path))
    extra = _generation_eos_ids(model_dir / hf_io.GENERATION_CONFIG_FILE)
    ids = tuple(dict.fromkeys((*cfg.eos_token_ids, *extra)))
    return cfg if ids == cfg.eos_token_ids else dataclasses.replace(cfg, eos_token_ids=ids)


def _generation_eos_ids(path: Path) -> tuple[int, ...]:
    """generation_config.json's eos_token_id (an id or a list of ids); () without the file."""
    if not path.is_file():
        return ()
    d = hf_io.read_json(path)
    eos = d.get("eos_token_id") if isinstance(d, dict) else None
    if eos is None:
        return ()
    ids = eos if isinstance(eos, list) else [eos]
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise UserError(f"{path}: eos_token_id must be a token id or a list of them, got {eos!r}")
    return tuple(ids)


def load_hf_decoder(model_dir: Path) -> tuple[dict, DecoderConfig]:
    """HF directory -> (our `lm` params as numpy fp32, DecoderConfig)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"{model_dir}: directory not found")
    cfg = read_decoder_config(model_dir)
    tensors = normalize_names(hf_io.read_hf_tensors(model_dir))
    cfg = resolve_tying(cfg, tensors)
    return hf_to_params(cfg, tensors, source=str(model_dir)), cfg


def generation_config(cfg: DecoderConfig) -> dict:
    out = {}
    if cfg.bos_token_id is not None:
        out["bos_token_id"] = cfg.bos_token_id
    if cfg.eos_token_ids:
        ids = list(cfg.eos_token_ids)
        out["eos_token_id"] = ids[0] if len(ids) == 1 else ids
    if cfg.pad_token_id is not None:
        out["pad_token_id"] = cfg.pad_token_id
    return out


def write_hf_decoder(out_dir: Path, lm_params: dict, cfg: DecoderConfig) -> None:
    """Write config.json, model.safetensors and generation_config.json into `out_dir`."""
    from safetensors.numpy import save_file

    out_dir = Path(out_dir)
    (out_dir / hf_io.CONFIG_FILE).write_text(json.dumps(cfg.to_hf_dict(), indent=2, sort_keys=True))
    (out_dir / hf_io.GENERATION_CONFIG_FILE).write_text(
        json.dumps(generation_config(cfg), indent=2)
    )
    # transformers refuses safetensors files without the "format" metadata.
    save_file(params_to_hf(cfg, lm_params), str(out_dir / hf_io.SAFETENSORS_FILE), {"format": "pt"})


def kernel_module_names(cfg: DecoderConfig) -> dict[tuple[str, ...], str]:
    """`hf_weights.kernel_modules` of a decoder, e.g. ("layers_0", "self_attn", "q_proj",
    "kernel") -> "model.layers.0.self_attn.q_proj"."""
    return kernel_modules(_entries(cfg))
