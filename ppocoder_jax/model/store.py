"""Our model checkpoint format, `load_model` / `save_model`, and the HF import / export jobs.

Our checkpoint directory:
    ppocoder_model.json   {"format": "ppocoder-jax-model", "version": 1,
                           "value_head_dropout": ..., "extra_config": {...} | null}
    config.json           the Hugging Face T5 config (T5Config.to_hf_dict())
    params/               Orbax PyTree checkpoint of {"t5": ..., "value_head": ...} (fp32)
    tokenizer files       (when the model has a tokenizer)
A decoder-only model (llama / qwen2 / qwen3, `ppocoder_jax.model.decoder`) has its
DecoderConfig.to_hf_dict() as config.json and {"lm": ..., "value_head": ...} as params;
`load_model` reads both families (by config.json's model_type).

An exported Hugging Face directory holds config.json, model.safetensors, generation_config.json,
the tokenizer files and, beside the HF weights, value_head.safetensors (kernel [D,1], bias [1]).

Every writer builds the whole directory under a temporary name next to the target and renames
it at the end, so a failure leaves no partial output directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ppocoder_jax.errors import UserError
from ppocoder_jax.model import hf_io
from ppocoder_jax.model.decoder_config import DecoderConfig
from ppocoder_jax.model.families import (
    DEFAULT_FAMILY,
    FAMILIES,
    Family,
    family_of,
    family_of_model_type,
)
from ppocoder_jax.model.t5_config import T5Config
from ppocoder_jax.model.tokenizer import has_tokenizer, load_tokenizer, save_tokenizer

META_FILE = "ppocoder_model.json"
FORMAT = "ppocoder-jax-model"
PARAMS_DIR = "params"
VALUE_HEAD_FILE = "value_head.safetensors"


@contextlib.contextmanager
def atomic_output_dir(out_dir):
    """Yield a temp dir beside `out_dir`; rename it to `out_dir` only if the block succeeds."""
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"{out_dir}: already exists and is not empty (refusing to overwrite)")
    if out_dir.parent.exists() and not out_dir.parent.is_dir():
        raise UserError(f"{out_dir.parent}: not a directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():  # an empty directory made by the caller
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _host_fp32(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(jax.device_get(x), np.float32), tree)


def fresh_value_head(cfg: T5Config) -> dict:
    """The value head's initial parameters: zeros, as modules.ValueHead initialises them."""
    return {"kernel": np.zeros((cfg.d_model, 1), np.float32), "bias": np.zeros((1,), np.float32)}


def is_our_checkpoint(path) -> bool:
    return (Path(path) / META_FILE).is_file()


def read_model_meta(path) -> dict:
    meta = hf_io.read_json(Path(path) / META_FILE)
    if meta.get("format") != FORMAT:
        raise UserError(f"{Path(path) / META_FILE}: not a {FORMAT} file")
    return meta


def save_model(
    path, params, cfg: T5Config | DecoderConfig, tokenizer=None, extra_config: dict | None = None
):
    """Write our checkpoint atomically (see module docstring)."""
    params = _host_fp32(params)
    with atomic_output_dir(path) as tmp:
        import orbax.checkpoint as ocp

        ocp.PyTreeCheckpointer().save(str(tmp / PARAMS_DIR), params)
        (tmp / "config.json").write_text(json.dumps(cfg.to_hf_dict(), indent=2, sort_keys=True))
        meta = {
            "format": FORMAT,
            "version": 1,
            "value_head_dropout": cfg.value_head_dropout,
            "extra_config": extra_config,
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        if tokenizer is not None:
            save_tokenizer(tokenizer, tmp)


def _dir_family(path, decoders: bool) -> Family:
    """The family that reads a directory, by its config.json's model_type (the default
    family's reader, which names the problem, when there is none or no family claims it).
    decoders=False: always the default family (T5)."""
    config = Path(path) / hf_io.CONFIG_FILE
    if not decoders or not config.is_file():
        return FAMILIES[DEFAULT_FAMILY]
    d = hf_io.read_json(config)
    return family_of_model_type(d.get("model_type") if isinstance(d, dict) else None)


def _load_our_checkpoint(path: Path, decoders: bool = False):
    meta = read_model_meta(path)
    cfg = _dir_family(path, decoders).read_hf_config(path)
    cfg = dataclasses.replace(cfg, value_head_dropout=float(meta.get("value_head_dropout", 0.1)))
    params_dir = path / PARAMS_DIR
    if not params_dir.is_dir():
        raise UserError(f"{params_dir}: missing parameters directory")
    import orbax.checkpoint as ocp

    try:
        params = ocp.PyTreeCheckpointer().restore(str(params_dir.absolute()))
    except Exception as err:
        raise UserError(
            f"{params_dir}: cannot restore the Orbax checkpoint ({hf_io.first_line(err)})"
        ) from None
    params = _host_fp32(params)
    _check_param_shapes(params, cfg, str(params_dir))
    tokenizer = load_tokenizer(path) if has_tokenizer(path) else None
    return params, cfg, tokenizer


def _check_param_shapes(params, cfg: T5Config | DecoderConfig, source: str) -> None:
    expected = family_of(cfg).param_shapes(cfg)
    flat_exp = {k: tuple(v.shape) for k, v in jax.tree_util.tree_flatten_with_path(expected)[0]}
    flat_got = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    for key, shape in flat_exp.items():
        name = jax.tree_util.keystr(key)
        if key not in flat_got:
            raise UserError(f"{source}: missing parameter {name}")
        if tuple(flat_got[key].shape) != shape:
            raise UserError(
                f"{source}: parameter {name} has shape {tuple(flat_got[key].shape)}, "
                f"expected {shape} from config.json"
            )


def load_hf_model(model: str, decoders: bool = False):
    """A HF directory (or hub id) -> (params, cfg, tokenizer or None).

    decoders=True also reads decoder-only models ({"lm": ..., "value_head": ...}).
    """
    model_dir = hf_io.resolve_model_dir(str(model))
    if not (model_dir / hf_io.CONFIG_FILE).is_file():
        raise UserError(f"{model_dir}: no config.json (not a Hugging Face model directory)")
    family = _dir_family(model_dir, decoders)
    weights, cfg = family.read_hf(model_dir)
    value_head = _read_value_head(model_dir / VALUE_HEAD_FILE, cfg)
    tokenizer = load_tokenizer(model_dir) if has_tokenizer(model_dir) else None
    return {family.params_key: weights, "value_head": value_head}, cfg, tokenizer


def _read_value_head(path: Path, cfg: T5Config | DecoderConfig) -> dict:
    if not path.is_file():
        return fresh_value_head(cfg)
    head = hf_io.read_safetensors(path)
    want = {"kernel": (cfg.d_model, 1), "bias": (1,)}
    for name, shape in want.items():
        if name not in head:
            raise UserError(f"{path}: missing tensor {name!r}")
        if tuple(head[name].shape) != shape:
            raise UserError(f"{path}: tensor {name!r} has shape {head[name].shape}, want {shape}")
    return {name: head[name].astype(np.float32) for name in want}


def load_model(path) -> tuple[dict[str, Any], T5Config | DecoderConfig, Any]:
    """Our checkpoint or a Hugging Face directory (or hub id) -> (params, cfg, tokenizer), for
    either family: T5 / CodeT5 ({"t5", "value_head"}) or decoder-only llama / qwen2 / qwen3
    ({"lm", "value_head"}), chosen by config.json's model_type.

    params are host numpy fp32 arrays; tokenizer is None when the directory has no tokenizer
    files.
    """
    path = Path(path)
    if is_our_checkpoint(path):
        return _load_our_checkpoint(path, decoders=True)
    return load_hf_model(str(path), decoders=True)


def import_hf(model: str, out_dir, extra_config: dict | None = None) -> T5Config | DecoderConfig:
    """`ppocoder import-hf`: HF directory / hub id -> our checkpoint in out_dir."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):  # fail before the (slow) load
        raise UserError(f"{out_dir}: already exists and is not empty (refusing to overwrite)")
    params, cfg, tokenizer = load_hf_model(model, decoders=True)
    save_model(out_dir, params, cfg, tokenizer, extra_config)
    return cfg


def export_hf(checkpoint, out_dir) -> T5Config | DecoderConfig:
    """`ppocoder export-hf`: our checkpoint (or a HF dir) -> a transformers-loadable directory."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir}: already exists and is not empty (refusing to overwrite)")
    if not Path(checkpoint).is_dir():
        raise UserError(f"{checkpoint}: checkpoint directory not found")
    params, cfg, tokenizer = load_model(checkpoint)
    from safetensors.numpy import save_file

    with atomic_output_dir(out_dir) as tmp:
        family = family_of(cfg)
        family.write_hf(tmp, params[family.params_key], cfg)
        head = {k: np.ascontiguousarray(v, np.float32) for k, v in params["value_head"].items()}
        save_file(head, str(tmp / VALUE_HEAD_FILE), {"format": "np"})
        if tokenizer is not None:
            save_tokenizer(tokenizer, tmp)
    return cfg
