"""LoRA adapters to and from a PEFT adapter directory (no torch needed).

    write_peft_adapters(out_dir, adapters, policy, value_head=None)
        -> out_dir/adapter_config.json, adapter_model.safetensors (+ value_head.safetensors)
    read_peft_adapters(path, policy) -> adapters (checked against model.lora; UserError)

`peft.PeftModel.from_pretrained(base, out_dir)` loads the directory onto the Hugging Face
export of the base (`ppocoder export-hf RUN_DIR/reference_model BASE_DIR`). PEFT stores a
module's adapter as `base_model.model.<module>.lora_A.weight` [r, in] and `lora_B.weight`
[out, r] with delta W = B A * lora_alpha / r in torch's [out, in] orientation; ours are
`lora_a` [in, r] = A^T and `lora_b` [r, out] = B^T, and the flattened feature order of our
attention kernels is Hugging Face's (model/hf_weights.py, model/decoder_weights.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ppocoder_jax.errors import UserError
from ppocoder_jax.model.lora import (
    LORA_A,
    LORA_B,
    LoraPolicy,
    adapter_shapes,
    check_adapters,
    set_path,
)

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
VALUE_HEAD_FILE = "value_head.safetensors"
_PREFIX = "base_model.model."
_TASK_TYPE = {"decoder": "CAUSAL_LM", "t5": "SEQ_2_SEQ_LM"}


def _module_names(policy: LoraPolicy) -> dict[tuple[str, ...], str]:
    """Our adapter path (module path under the backbone) -> its Hugging Face module name."""
    if policy.family == "decoder":
        from ppocoder_jax.model.decoder_weights import kernel_module_names
    else:
        from ppocoder_jax.model.hf_weights import kernel_module_names
    return {path[:-1]: name for path, name in kernel_module_names(policy.cfg).items()}


def _adapter_paths(policy: LoraPolicy) -> list[tuple[str, ...]]:
    import jax

    from ppocoder_jax.model.families import FAMILIES

    shapes = FAMILIES[policy.family].param_shapes(policy.cfg)[policy.params_key]
    tree = adapter_shapes(shapes, policy.spec)
    paths = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        names = tuple(k.key for k in path)
        if names[-1] == LORA_A:
            paths.append(names[:-1])
    return paths


def peft_config(policy: LoraPolicy) -> dict:
    spec = policy.spec
    return {
        "peft_type": "LORA",
        "task_type": _TASK_TYPE[policy.family],
        "base_model_name_or_path": None,
        "r": spec.rank,
        "lora_alpha": spec.alpha,
        "lora_dropout": 0.0,
        "target_modules": list(spec.targets),
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
        "layers_to_transform": None,
        "rank_pattern": {},
        "alpha_pattern": {},
    }


def write_peft_adapters(out_dir, adapters, policy: LoraPolicy, value_head=None) -> None:
    """A PEFT adapter directory (written under a temporary name, then renamed); the value
    head, when given, beside it as value_head.safetensors (PEFT ignores it; `init_from`
    reads it to continue training)."""
    import jax
    from safetensors.numpy import save_file

    from ppocoder_jax.model.store import atomic_output_dir

    names = _module_names(policy)
    tensors = {}
    for path in _adapter_paths(policy):
        node = adapters
        for key in path:
            node = node[key]
        module = _PREFIX + names[path]
        a = np.asarray(jax.device_get(node[LORA_A]), np.float32)
        b = np.asarray(jax.device_get(node[LORA_B]), np.float32)
        tensors[f"{module}.lora_A.weight"] = np.ascontiguousarray(a.T)
        tensors[f"{module}.lora_B.weight"] = np.ascontiguousarray(b.T)
    with atomic_output_dir(out_dir) as tmp:
        (tmp / CONFIG_FILE).write_text(json.dumps(peft_config(policy), indent=2))
        save_file(tensors, str(tmp / WEIGHTS_FILE), {"format": "pt"})
        if value_head is not None:
            head = {
                k: np.ascontiguousarray(jax.device_get(v), np.float32)
                for k, v in value_head.items()
            }
            save_file(head, str(tmp / VALUE_HEAD_FILE), {"format": "np"})


def _check_config(path: Path, data: dict, policy: LoraPolicy) -> None:
    spec = policy.spec
    where = f"{path / CONFIG_FILE}"
    if data.get("peft_type") != "LORA":
        raise UserError(f"{where}: peft_type {data.get('peft_type')!r} is not LORA")
    for key in ("use_rslora", "use_dora", "fan_in_fan_out"):
        if data.get(key):
            raise UserError(f"{where}: {key}=true is not supported")
    if data.get("rank_pattern") or data.get("alpha_pattern"):
        raise UserError(f"{where}: per-module rank_pattern / alpha_pattern are not supported")
    if data.get("r") != spec.rank:
        raise UserError(f"{where}: r={data.get('r')} but model.lora.rank={spec.rank}")
    if float(data.get("lora_alpha", -1)) != spec.alpha:
        raise UserError(
            f"{where}: lora_alpha={data.get('lora_alpha')} but model.lora.alpha={spec.alpha}"
        )
    targets = data.get("target_modules")
    targets = [targets] if isinstance(targets, str) else list(targets or [])
    if sorted(targets) != sorted(spec.targets):
        raise UserError(
            f"{where}: target_modules={sorted(targets)} but model.lora.targets resolve to "
            f"{sorted(spec.targets)}"
        )


def read_peft_adapters(path, policy: LoraPolicy):
    """A PEFT LoRA directory -> our adapter tree (numpy fp32), or a one-line UserError when it
    does not match `model.lora` or the model."""
    from safetensors.numpy import load_file

    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise UserError(
            f"config key 'model.lora.init_from': {path} has no {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    try:
        data = json.loads((path / CONFIG_FILE).read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path / CONFIG_FILE}: not valid JSON ({err})") from None
    _check_config(path, data, policy)
    tensors = load_file(str(path / WEIGHTS_FILE))
    names = _module_names(policy)
    adapters: dict = {}
    for our in _adapter_paths(policy):
        module = _PREFIX + names[our]
        pair = {}
        for ours, theirs in ((LORA_A, "lora_A"), (LORA_B, "lora_B")):
            key = f"{module}.{theirs}.weight"
            if key not in tensors:
                key = f"{module}.{theirs}.default.weight"  # saved without stripping the name
            if key not in tensors:
                raise UserError(f"{path / WEIGHTS_FILE}: no tensor {module}.{theirs}.weight")
            pair[ours] = np.ascontiguousarray(tensors[key].astype(np.float32).T)
        set_path(adapters, our, pair)
    from ppocoder_jax.model.families import FAMILIES

    shapes = FAMILIES[policy.family].param_shapes(policy.cfg)[policy.params_key]
    check_adapters(adapters, shapes, policy.spec, str(path))
    return adapters


def read_value_head(path):
    """The value head saved beside the adapters, or None."""
    from safetensors.numpy import load_file

    file = Path(path) / VALUE_HEAD_FILE
    if not file.is_file():
        return None
    return {k: v.astype(np.float32) for k, v in load_file(str(file)).items()}
