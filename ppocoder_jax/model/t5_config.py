"""The T5 / CodeT5 architecture description, read from a Hugging Face `config.json` dict.

Two variants are supported (SPEC, Models):
- v1.0 (CodeT5): ReLU feed-forward, lm_head tied to the embedding, decoder output scaled by
  d_model**-0.5 before the logits.
- v1.1 (CodeT5+): gated-GELU feed-forward, untied lm_head, no scaling.

Hugging Face has two spellings of "tied / scaled": hub checkpoints (transformers 4) carry only
`tie_word_embeddings` (False for v1.1, meaning untied *and* unscaled); transformers 5 writes
`tie_word_embeddings: true` always plus `scale_decoder_outputs`. We keep the two facts apart:
`tie_word_embeddings` (lm_head shares the embedding) and `scale_decoder_outputs`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ppocoder_jax.errors import UserError

SUPPORTED_FEED_FORWARD = ("relu", "gated-gelu")


@dataclass(frozen=True)
class T5Config:
    vocab_size: int
    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int
    num_decoder_layers: int
    num_heads: int
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"
    tie_word_embeddings: bool = True
    scale_decoder_outputs: bool = True
    pad_token_id: int = 0
    eos_token_id: int = 2
    decoder_start_token_id: int = 0
    # Not part of the HF config: dropout rate of the value head (SPEC: 0.1).
    value_head_dropout: float = 0.1
    # The original HF dict as JSON (kept hashable so the config can be a static jit argument);
    # `to_hf_dict` starts from it so unknown keys survive a round trip.
    hf_json: str = dataclasses.field(default="{}", compare=False, repr=False)

    def __post_init__(self):
        if self.feed_forward_proj not in SUPPORTED_FEED_FORWARD:
            raise UserError(
                f"unsupported T5 feed_forward_proj {self.feed_forward_proj!r} "
                f"(supported: {', '.join(SUPPORTED_FEED_FORWARD)})"
            )
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads"):
            if int(getattr(self, name)) <= 0:
                raise UserError(f"T5 config {name!r} must be > 0, got {getattr(self, name)!r}")
        if self.num_decoder_layers <= 0:
            raise UserError(
                f"T5 config 'num_decoder_layers' must be > 0: {self.num_decoder_layers}"
            )

    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj == "gated-gelu"

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> T5Config:
        """Build from a HF config dict; refuse anything that is not a T5 v1.0 / v1.1 model."""
        if not isinstance(d, dict):
            raise UserError(f"{source}: expected a JSON object")
        model_type = d.get("model_type")
        if model_type != "t5":
            raise UserError(
                f"{source}: unsupported architecture model_type={model_type!r} "
                "(only T5 / CodeT5 encoder-decoders are supported)"
            )
        archs = d.get("architectures") or []
        if any(
            a not in ("T5ForConditionalGeneration", "T5Model", "T5WithLMHeadModel") for a in archs
        ):
            raise UserError(f"{source}: unsupported architectures {archs!r}")
        try:
            num_layers = int(d.get("num_layers", 6))
            tied = d.get("tie_word_embeddings", True) is not False
            scale = bool(d.get("scale_decoder_outputs", tied))
            eos = d.get("eos_token_id", 2)
            if isinstance(eos, list):
                eos = eos[0]
            return cls(
                vocab_size=int(d["vocab_size"]),
                d_model=int(d["d_model"]),
                d_kv=int(d["d_kv"]),
                d_ff=int(d["d_ff"]),
                num_layers=num_layers,
                num_decoder_layers=int(d.get("num_decoder_layers") or num_layers),
                num_heads=int(d["num_heads"]),
                relative_attention_num_buckets=int(d.get("relative_attention_num_buckets", 32)),
                relative_attention_max_distance=int(d.get("relative_attention_max_distance", 128)),
                layer_norm_epsilon=float(d.get("layer_norm_epsilon", 1e-6)),
                feed_forward_proj=str(d.get("feed_forward_proj", "relu")),
                tie_word_embeddings=tied,
                scale_decoder_outputs=scale,
                pad_token_id=int(
                    d.get("pad_token_id", 0) if d.get("pad_token_id") is not None else 0
                ),
                eos_token_id=int(eos if eos is not None else 2),
                decoder_start_token_id=int(
                    d.get("decoder_start_token_id")
                    if d.get("decoder_start_token_id") is not None
                    else 0
                ),
                hf_json=json.dumps(d, sort_keys=True),
            )
        except KeyError as err:
            raise UserError(f"{source}: missing key {err.args[0]!r}") from None
        except (TypeError, ValueError) as err:
            raise UserError(
                f"{source}: invalid value ({str(err).strip().splitlines()[0]})"
            ) from None

    def to_hf_dict(self) -> dict[str, Any]:
        """A config.json that transformers 4 and 5 load as this architecture."""
        d = json.loads(self.hf_json)
        # Derived keys that transformers recomputes from feed_forward_proj.
        for key in ("dense_act_fn", "is_gated_act"):
            d.pop(key, None)
        d.update(
            model_type="t5",
            architectures=["T5ForConditionalGeneration"],
            is_encoder_decoder=True,
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            d_kv=self.d_kv,
            d_ff=self.d_ff,
            num_layers=self.num_layers,
            num_decoder_layers=self.num_decoder_layers,
            num_heads=self.num_heads,
            relative_attention_num_buckets=self.relative_attention_num_buckets,
            relative_attention_max_distance=self.relative_attention_max_distance,
            layer_norm_epsilon=self.layer_norm_epsilon,
            feed_forward_proj=self.feed_forward_proj,
            tie_word_embeddings=self.tie_word_embeddings,
            scale_decoder_outputs=self.scale_decoder_outputs,
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_id,
            decoder_start_token_id=self.decoder_start_token_id,
        )
        d.setdefault("dropout_rate", 0.1)
        return d
