"""Map Hugging Face `T5ForConditionalGeneration` tensors to our params tree and back.

HF stores Linear weights as [out, in]; we store `x @ kernel` kernels, with the attention
heads split out: q/k/v [H*K, D] -> [D, H, K], o [D, H*K] -> [H, K, D]. Only layer 0 of each
stack holds the relative position table ([buckets, H] in HF, [H, buckets] here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from ppocoder_jax.errors import UserError
from ppocoder_jax.model.t5_config import T5Config

# (hf name, our path, to_ours(np) -> np, to_hf(np) -> np, hf shape)
Entry = tuple[str, tuple[str, ...], Callable, Callable, tuple[int, ...]]


def same_entry(hf_name: str, path: tuple[str, ...], shape) -> Entry:
    """A tensor stored alike on both sides."""
    return (hf_name, path, lambda w: w, lambda x: x, shape)


def transposed_entry(hf_name: str, path: tuple[str, ...], our_shape) -> Entry:
    """A torch Linear weight ([out, in]) that we store as a kernel ([in, out])."""
    return (
        hf_name,
        path,
        lambda w: np.ascontiguousarray(w.T),
        lambda x: np.ascontiguousarray(x.T),
        our_shape[::-1],
    )


def _entries(cfg: T5Config) -> Iterator[Entry]:
    d, h, k, f, v = cfg.d_model, cfg.num_heads, cfg.d_kv, cfg.d_ff, cfg.vocab_size
    ident = (lambda w: w, lambda w: w)

    def qkv(hf_prefix, path):
        for hf_name, ours in (("q", "query"), ("k", "key"), ("v", "value")):
            yield (
                f"{hf_prefix}.{hf_name}.weight",
                (*path, ours, "kernel"),
                lambda w: np.ascontiguousarray(w.T).reshape(d, h, k),
                lambda x: np.ascontiguousarray(x.reshape(d, h * k).T),
                (h * k, d),
            )
        yield (
            f"{hf_prefix}.o.weight",
            (*path, "out", "kernel"),
            lambda w: np.ascontiguousarray(w.T).reshape(h, k, d),
            lambda x: np.ascontiguousarray(x.reshape(h * k, d).T),
            (d, h * k),
        )

    def norm(hf_name, path):
        return (f"{hf_name}.weight", (*path, "scale"), *ident, (d,))

    def mlp(hf_prefix, path):
        names = ("wi_0", "wi_1") if cfg.is_gated else ("wi",)
        for name in names:
            yield transposed_entry(f"{hf_prefix}.{name}.weight", (*path, name, "kernel"), (d, f))
        yield transposed_entry(f"{hf_prefix}.wo.weight", (*path, "wo", "kernel"), (f, d))

    yield ("shared.weight", ("token_embedder", "embedding"), *ident, (v, d))
    for stack, n_layers in (("encoder", cfg.num_layers), ("decoder", cfg.num_decoder_layers)):
        nb = cfg.relative_attention_num_buckets
        yield transposed_entry(
            f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            (stack, "relpos_bias", "rel_embedding"),
            (h, nb),
        )
        for i in range(n_layers):
            hf = f"{stack}.block.{i}.layer"
            ours = (stack, f"layers_{i}")
            if stack == "encoder":
                yield from qkv(f"{hf}.0.SelfAttention", (*ours, "attention"))
                yield norm(f"{hf}.0.layer_norm", (*ours, "pre_attention_layer_norm"))
                yield from mlp(f"{hf}.1.DenseReluDense", (*ours, "mlp"))
                yield norm(f"{hf}.1.layer_norm", (*ours, "pre_mlp_layer_norm"))
            else:
                yield from qkv(f"{hf}.0.SelfAttention", (*ours, "self_attention"))
                yield norm(f"{hf}.0.layer_norm", (*ours, "pre_self_attention_layer_norm"))
                yield from qkv(f"{hf}.1.EncDecAttention", (*ours, "encoder_decoder_attention"))
                yield norm(f"{hf}.1.layer_norm", (*ours, "pre_cross_attention_layer_norm"))
                yield from mlp(f"{hf}.2.DenseReluDense", (*ours, "mlp"))
                yield norm(f"{hf}.2.layer_norm", (*ours, "pre_mlp_layer_norm"))
        norm_name = "encoder_norm" if stack == "encoder" else "decoder_norm"
        yield norm(f"{stack}.final_layer_norm", (stack, norm_name))
    if not cfg.tie_word_embeddings:
        yield transposed_entry("lm_head.weight", ("lm_head", "kernel"), (d, v))


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree: Mapping, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def resolve_tying(cfg: T5Config, tensors: Mapping[str, np.ndarray]) -> T5Config:
    """transformers 5 writes tie_word_embeddings=true even for untied models; trust the file.

    A distinct `lm_head.weight` in the weights means an untied head (as transformers 5 does).
    """
    if cfg.tie_word_embeddings and "lm_head.weight" in tensors and "shared.weight" in tensors:
        lm, shared = tensors["lm_head.weight"], tensors["shared.weight"]
        if lm.shape != shared.shape or not np.array_equal(lm, shared):
            return dataclasses.replace(cfg, tie_word_embeddings=False)
    return cfg


def hf_to_params(cfg: T5Config, tensors: Mapping[str, np.ndarray], source: str = "weights") -> dict:
    """HF tensors -> our `t5` params (numpy fp32). Checks every tensor exists with its shape."""
    if "shared.weight" not in tensors:
        # Some checkpoints keep only the (tied) per-stack copies.
        for alias in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            if alias in tensors:
                tensors = {**tensors, "shared.weight": tensors[alias]}
                break
    return tensors_to_params(_entries(cfg), tensors, source)


def tensors_to_params(entries, tensors: Mapping[str, np.ndarray], source: str) -> dict:
    """HF tensors -> our params (numpy fp32) by a family's `Entry` table (T5 and decoder-only
    alike); every tensor must exist with its shape."""
    params: dict = {}
    for hf_name, path, to_ours, _to_hf, hf_shape in entries:
        if hf_name not in tensors:
            raise UserError(f"{source}: missing tensor {hf_name!r}")
        w = np.asarray(tensors[hf_name])
        if tuple(w.shape) != tuple(hf_shape):
            raise UserError(
                f"{source}: tensor {hf_name!r} has shape {tuple(w.shape)}, "
                f"expected {tuple(hf_shape)} from config.json"
            )
        _set(params, path, to_ours(w.astype(np.float32)))
    return params


def params_to_tensors(entries, params: Mapping) -> dict[str, np.ndarray]:
    """Our params -> HF tensor dict (fp32, contiguous) by a family's `Entry` table."""
    out = {}
    for hf_name, path, _to_ours, to_hf, _shape in entries:
        out[hf_name] = np.ascontiguousarray(to_hf(np.asarray(_get(params, path), np.float32)))
    return out


def params_to_hf(cfg: T5Config, t5_params: Mapping) -> dict[str, np.ndarray]:
    """Our `t5` params -> HF tensor dict (fp32, contiguous) for model.safetensors."""
    return params_to_tensors(_entries(cfg), t5_params)


def kernel_modules(entries) -> dict[tuple[str, ...], str]:
    """Our kernel path (under the backbone key) -> the Hugging Face module that holds it, from
    a family's weight table: where a PEFT adapter of that kernel lives."""
    return {
        path: hf_name.removesuffix(".weight")
        for hf_name, path, *_ in entries
        if path[-1] == "kernel"
    }


def kernel_module_names(cfg: T5Config) -> dict[tuple[str, ...], str]:
    """`kernel_modules` of T5, e.g. ("encoder", "layers_0", "attention", "query", "kernel")
    -> "encoder.block.0.layer.0.SelfAttention.q"."""
    return kernel_modules(_entries(cfg))
