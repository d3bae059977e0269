"""Read and write Hugging Face T5 directories (config.json + weights) without torch.

`model.safetensors` (or a sharded `model.safetensors.index.json`) is read with
safetensors.numpy; `pytorch_model.bin` needs torch and is only tried when no safetensors
file exists. Every problem is a one-line `UserError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np

from ppocoder_jax.errors import UserError
from ppocoder_jax.model.hf_weights import hf_to_params, params_to_hf, resolve_tying
from ppocoder_jax.model.t5_config import T5Config

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
GENERATION_CONFIG_FILE = "generation_config.json"


def first_line(err: BaseException) -> str:
    """An exception as one short line (error messages must stay on one line)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a readable JSON file ({first_line(err)})") from None


def read_hf_config(model_dir: Path) -> T5Config:
    path = Path(model_dir) / CONFIG_FILE
    return T5Config.from_hf_dict(read_json(path), source=str(path))


# safetensors dtype names -> numpy dtypes (bfloat16 via ml_dtypes, which jax depends on).
_SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Parse a .safetensors file with numpy (memory-mapped), bf16 included.

    safetensors.numpy cannot read bfloat16 tensors; the format is simple enough to read
    directly: u64 header size, JSON header {name: {dtype, shape, data_offsets}}, raw bytes.
    Every offset and size is checked, so a truncated or corrupt file is a UserError.
    """

    def corrupt(why: str) -> UserError:
        return UserError(f"{path}: corrupt or truncated safetensors file ({why})")

    try:
        size = path.stat().st_size
        if size < 8:
            raise corrupt(f"{size} bytes")
        data = np.memmap(path, dtype=np.uint8, mode="r")
    except OSError as err:
        raise UserError(f"{path}: cannot read ({first_line(err)})") from None
    header_len = int.from_bytes(data[:8].tobytes(), "little")
    if header_len <= 0 or 8 + header_len > size:
        raise corrupt(f"header length {header_len} for a {size}-byte file")
    try:
        header = json.loads(data[8 : 8 + header_len].tobytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise corrupt(f"bad header: {first_line(err)}") from None
    if not isinstance(header, dict):
        raise corrupt("header is not a JSON object")
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]])
            shape = tuple(int(x) for x in info["shape"])
            start, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise corrupt(f"bad entry for tensor {name!r}") from None
        count = int(np.prod(shape, dtype=np.int64))
        if end - start != count * dtype.itemsize or start < 0 or base + end > size:
            raise corrupt(f"tensor {name!r} data out of bounds")
        tensors[name] = np.frombuffer(data, dtype, count, base + start).reshape(shape)
    return tensors


def _read_torch_bin(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise UserError(
            f"{path}: reading pytorch_model.bin needs torch (pip install torch), "
            "or convert the model to model.safetensors"
        ) from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"{path}: unreadable PyTorch weights file ({first_line(err)})") from None
    return {k: v.detach().float().numpy() for k, v in state.items()}


def read_hf_tensors(model_dir: Path) -> dict[str, np.ndarray]:
    model_dir = Path(model_dir)
    single = model_dir / SAFETENSORS_FILE
    index = model_dir / SAFETENSORS_INDEX
    if single.is_file():
        return read_safetensors(single)
    if index.is_file():
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise UserError(f"{index}: missing 'weight_map'")
        tensors: dict[str, np.ndarray] = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = model_dir / shard
            if not shard_path.is_file():
                raise UserError(f"{index}: shard file {shard!r} not found")
            tensors.update(read_safetensors(shard_path))
        return tensors
    if (model_dir / TORCH_FILE).is_file():
        return _read_torch_bin(model_dir / TORCH_FILE)
    raise UserError(
        f"{model_dir}: no weights file ({SAFETENSORS_FILE}, {SAFETENSORS_INDEX} or {TORCH_FILE})"
    )


def resolve_model_dir(model: str) -> Path:
    """A local directory as is; otherwise try it as a hub id (needs a reachable hub)."""
    path = Path(model)
    if path.is_dir():
        return path
    if path.exists():
        raise UserError(f"{model}: not a directory")
    looks_like_hub_id = model.count("/") == 1 and not model.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise UserError(f"{model}: directory not found")
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                model,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "merges.txt"],
            )
        )
    except Exception as err:
        raise UserError(
            f"{model}: not a local directory and the Hugging Face hub download failed "
            f"({first_line(err)})"
        ) from None


def load_hf_t5(model_dir: Path) -> tuple[dict, T5Config]:
    """HF directory -> (our `t5` params as numpy fp32, T5Config)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"{model_dir}: directory not found")
    cfg = read_hf_config(model_dir)
    tensors = read_hf_tensors(model_dir)
    cfg = resolve_tying(cfg, tensors)
    return hf_to_params(cfg, tensors, source=str(model_dir)), cfg


def generation_config(cfg: T5Config) -> dict:
    return {
        "decoder_start_token_id": cfg.decoder_start_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
    }


def write_hf_t5(out_dir: Path, t5_params: dict, cfg: T5Config) -> None:
    """Write config.json, model.safetensors and generation_config.json into `out_dir`."""
    from safetensors.numpy import save_file

    out_dir = Path(out_dir)
    (out_dir / CONFIG_FILE).write_text(json.dumps(cfg.to_hf_dict(), indent=2, sort_keys=True))
    (out_dir / GENERATION_CONFIG_FILE).write_text(json.dumps(generation_config(cfg), indent=2))
    # transformers refuses safetensors files without the "format" metadata.
    save_file(params_to_hf(cfg, t5_params), str(out_dir / SAFETENSORS_FILE), {"format": "pt"})
