"""The decoder-only (Llama / Qwen2 / Qwen3) architecture, read from a Hugging Face `config.json`.

Supported `model_type`s (SPEC, Decoder-only code models):
- llama: q/k/v/o biases only with `attention_bias`; RoPE plain or Llama 3's `llama3` scaling.
- qwen2: biases on q, k, v (never on o); no sliding window in use.
- qwen3: per-head RMSNorm on q and k (q_norm / k_norm); biases only with `attention_bias`.

RoPE is spelled two ways: hub checkpoints (written by transformers 4) carry top-level
`rope_theta` and `rope_scaling`; transformers 5 writes one `rope_parameters` dict
({"rope_type", "rope_theta", ...}). Both are read (`rope_scaling` wins when both are present,
as in transformers 5), and `to_hf_dict` writes both so transformers 4 and 5 load the result.
Anything else (other rope types, a sliding window in use, mixture-of-experts, an MLP bias, an
activation other than silu) is refused with a one-line `UserError`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ppocoder_jax.errors import UserError

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3")
SUPPORTED_ROPE_TYPES = ("default", "llama3")
_ARCHITECTURES = {
    "llama": ("LlamaForCausalLM", "LlamaModel"),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2Model"),
    "qwen3": ("Qwen3ForCausalLM", "Qwen3Model"),
}
# transformers' defaults where a config.json leaves the key out.
_DEFAULT_THETA = 10_000.0
_DEFAULT_EPS = {"llama": 1e-6, "qwen2": 1e-6, "qwen3": 1e-6}


@dataclass(frozen=True)
class DecoderConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 2048
    rope_theta: float = _DEFAULT_THETA
    # "default" or "llama3"; the four llama3 numbers are only used with "llama3".
    rope_type: str = "default"
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_position_embeddings: int = 8192
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # biases on q_proj, k_proj, v_proj
    o_bias: bool = False  # bias on o_proj
    qk_norm: bool = False  # Qwen3: RMSNorm over head_dim on q and k, before RoPE
    initializer_range: float = 0.02
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    # Not part of the HF config: dropout rate of the value head (SPEC: 0.1).
    value_head_dropout: float = 0.1
    # The original HF dict as JSON (hashable, so the config can be a static jit argument);
    # `to_hf_dict` starts from it so unknown keys survive a round trip.
    hf_json: str = dataclasses.field(default="{}", compare=False, repr=False)

    def __post_init__(self):
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise UserError(
                f"unsupported decoder model_type {self.model_type!r} "
                f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
            )
        if self.rope_type not in SUPPORTED_ROPE_TYPES:
            raise UserError(
                f"unsupported rope_type {self.rope_type!r} "
                f"(supported: {', '.join(SUPPORTED_ROPE_TYPES)})"
            )
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
        ):
            if int(getattr(self, name)) <= 0:
                raise UserError(f"decoder config {name!r} must be > 0, got {getattr(self, name)!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise UserError(
                f"decoder config: num_attention_heads ({self.num_attention_heads}) is not a "
                f"multiple of num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.head_dim % 2:
            raise UserError(f"decoder config: head_dim must be even for RoPE, got {self.head_dim}")
        if self.rope_theta <= 0:
            raise UserError(f"decoder config: rope_theta must be > 0, got {self.rope_theta}")
        if self.rope_type == "llama3" and not (
            self.rope_factor > 0
            and self.rope_high_freq_factor > self.rope_low_freq_factor > 0
            and self.rope_original_max_position_embeddings > 0
        ):
            raise UserError(
                "decoder config: llama3 rope scaling needs factor > 0, "
                "high_freq_factor > low_freq_factor > 0 and original_max_position_embeddings > 0"
            )

    @property
    def d_model(self) -> int:
        """The hidden size (the name the value head and the T5 code use)."""
        return self.hidden_size

    @property
    def num_layers(self) -> int:
        return self.num_hidden_layers

    @property
    def eos_token_id(self) -> int | None:
        return self.eos_token_ids[0] if self.eos_token_ids else None

    @property
    def num_query_groups(self) -> int:
        """Query heads served by each key/value head."""
        return self.num_attention_heads // self.num_key_value_heads

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> DecoderConfig:
        """Build from a HF config dict; refuse anything this implementation would get wrong."""
        if not isinstance(d, dict):
            raise UserError(f"{source}: expected a JSON object")
        model_type = d.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            moe = isinstance(model_type, str) and "moe" in model_type
            raise UserError(
                f"{source}: unsupported architecture model_type={model_type!r}"
                + (" (mixture-of-experts models are not supported)" if moe else "")
                + f" (supported decoder-only types: {', '.join(SUPPORTED_MODEL_TYPES)})"
            )
        archs = d.get("architectures") or []
        if not isinstance(archs, list) or any(a not in _ARCHITECTURES[model_type] for a in archs):
            raise UserError(f"{source}: unsupported architectures {archs!r}")
        try:
            return cls._from_hf_dict(d, model_type, source)
        except KeyError as err:
            raise UserError(f"{source}: missing key {err.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as err:
            raise UserError(
                f"{source}: invalid value ({str(err).strip().splitlines()[0]})"
            ) from None

    @classmethod
    def _from_hf_dict(cls, d: dict[str, Any], model_type: str, source: str) -> DecoderConfig:
        for key in ("num_experts", "num_local_experts", "n_routed_experts"):
            if d.get(key):
                raise UserError(f"{source}: mixture-of-experts ({key}={d[key]!r}) is not supported")
        act = d.get("hidden_act", "silu")
        if act != "silu":
            raise UserError(f"{source}: unsupported hidden_act {act!r} (only silu)")
        if d.get("mlp_bias"):
            raise UserError(f"{source}: mlp_bias=true is not supported")
        layers = int(d["num_hidden_layers"])
        _check_no_sliding_window(d, model_type, layers, source)

        heads = int(d["num_attention_heads"])
        hidden = int(d["hidden_size"])
        kv_heads = d.get("num_key_value_heads")
        kv_heads = heads if kv_heads is None else int(kv_heads)
        head_dim = d.get("head_dim")
        if head_dim is None:
            # Qwen3Config defaults head_dim to 128; Llama and Qwen2 derive it.
            head_dim = 128 if model_type == "qwen3" else hidden // heads
        max_pos = int(d.get("max_position_embeddings", 2048))
        rope = _read_rope(d, max_pos, source)

        attention_bias = bool(d.get("attention_bias", False))
        if model_type == "qwen2":
            qkv_bias, o_bias = True, False
        else:
            qkv_bias = o_bias = attention_bias

        eos = d.get("eos_token_id")
        eos_ids = (
            tuple(int(x) for x in eos)
            if isinstance(eos, list)
            else (() if eos is None else (int(eos),))
        )
        pad, bos = d.get("pad_token_id"), d.get("bos_token_id")
        return cls(
            model_type=model_type,
            vocab_size=int(d["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(d["intermediate_size"]),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=int(head_dim),
            rms_norm_eps=float(d.get("rms_norm_eps", _DEFAULT_EPS[model_type])),
            max_position_embeddings=max_pos,
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            qkv_bias=qkv_bias,
            o_bias=o_bias,
            qk_norm=model_type == "qwen3",
            initializer_range=float(d.get("initializer_range", 0.02)),
            pad_token_id=None if pad is None else int(pad),
            bos_token_id=None if bos is None else int(bos),
            eos_token_ids=eos_ids,
            hf_json=json.dumps(d, sort_keys=True),
            **rope,
        )

    def rope_dict(self) -> dict[str, Any]:
        """transformers 5's `rope_parameters` for this config."""
        out: dict[str, Any] = {"rope_type": self.rope_type, "rope_theta": self.rope_theta}
        if self.rope_type == "llama3":
            out.update(
                factor=self.rope_factor,
                low_freq_factor=self.rope_low_freq_factor,
                high_freq_factor=self.rope_high_freq_factor,
                original_max_position_embeddings=self.rope_original_max_position_embeddings,
            )
        return out

    def to_hf_dict(self) -> dict[str, Any]:
        """A config.json that transformers 4 and 5 load as this architecture."""
        d = json.loads(self.hf_json)
        for key in ("rope_scaling", "rope_parameters", "rope_theta"):
            d.pop(key, None)
        arch = {
            "llama": "LlamaForCausalLM",
            "qwen2": "Qwen2ForCausalLM",
            "qwen3": "Qwen3ForCausalLM",
        }
        d.update(
            model_type=self.model_type,
            architectures=[arch[self.model_type]],
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            hidden_act="silu",
            rms_norm_eps=self.rms_norm_eps,
            max_position_embeddings=self.max_position_embeddings,
            tie_word_embeddings=self.tie_word_embeddings,
            initializer_range=self.initializer_range,
            pad_token_id=self.pad_token_id,
            bos_token_id=self.bos_token_id,
            # Both spellings: transformers 4 reads the top-level keys, 5 reads rope_parameters
            # (and prefers rope_scaling when it is set, which then holds the same numbers).
            rope_theta=self.rope_theta,
            rope_scaling=None if self.rope_type == "default" else self.rope_dict(),
            rope_parameters=self.rope_dict(),
        )
        if self.eos_token_ids:
            d["eos_token_id"] = (
                self.eos_token_ids[0] if len(self.eos_token_ids) == 1 else list(self.eos_token_ids)
            )
        if self.model_type != "qwen2":
            d["attention_bias"] = self.qkv_bias
        if self.model_type == "llama":
            d["mlp_bias"] = False
        return d


def _check_no_sliding_window(d: dict, model_type: str, layers: int, source: str) -> None:
    """Qwen2/3 only slide on layers >= max_window_layers when use_sliding_window is set."""
    layer_types = d.get("layer_types")
    if layer_types is None and model_type != "llama":
        window = d.get("sliding_window", 4096) if d.get("use_sliding_window", False) else None
        start = int(d.get("max_window_layers", 28))
        layer_types = [
            "sliding_attention" if window is not None and i >= start else "full_attention"
            for i in range(layers)
        ]
    if layer_types is None:
        if d.get("sliding_window") is not None:  # Llama has no sliding window at all
            raise UserError(f"{source}: sliding_window is not supported for model_type llama")
        return
    if not isinstance(layer_types, list) or any(t != "full_attention" for t in layer_types):
        raise UserError(
            f"{source}: sliding-window attention is not supported (layer_types {layer_types!r})"
        )


def _read_rope(d: dict, max_pos: int, source: str) -> dict[str, Any]:
    """DecoderConfig's rope fields from either spelling (see the module docstring)."""
    scaling = d.get("rope_scaling")
    params = d.get("rope_parameters")
    rope = scaling or params or {}
    if not isinstance(rope, dict):
        raise UserError(f"{source}: rope_scaling / rope_parameters must be a JSON object")
    if any(isinstance(v, dict) for v in rope.values()):
        raise UserError(f"{source}: per-layer-type rope parameters are not supported")
    theta = rope.get("rope_theta")
    if theta is None:
        theta = d.get("rope_theta")
    if theta is None and isinstance(params, dict):
        theta = params.get("rope_theta")
    theta = _DEFAULT_THETA if theta is None else float(theta)
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    partial = rope.get("partial_rotary_factor", d.get("partial_rotary_factor", 1.0))
    if partial is not None and float(partial) != 1.0:
        raise UserError(f"{source}: partial_rotary_factor={partial!r} is not supported")
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise UserError(
            f"{source}: unsupported rope_type {rope_type!r} "
            f"(supported: {', '.join(SUPPORTED_ROPE_TYPES)})"
        )
    out: dict[str, Any] = {"rope_theta": theta, "rope_type": rope_type}
    if rope_type == "llama3":
        out.update(
            rope_factor=float(rope["factor"]),
            rope_low_freq_factor=float(rope["low_freq_factor"]),
            rope_high_freq_factor=float(rope["high_freq_factor"]),
            rope_original_max_position_embeddings=int(
                rope.get("original_max_position_embeddings") or max_pos
            ),
        )
    return out
