"""Tiny model configurations and the one-device mesh that several tests build alike.

    tiny_t5_config(vocab_size=32, **changes) -> ppocoder_jax T5Config  (1+1 layers, d_model 32)
    tiny_decoder_config(vocab_size, **hf_changes) -> DecoderConfig      (Qwen2: GQA, q/k/v biases)
    single_device_mesh() -> Mesh                  (the default MeshConfig over the first device)
    TINY_MODEL_OVERRIDES                          (`model.tiny_*=...` for end-to-end job runs)

Importable as `helpers.tiny_models` from tests and as `tiny_models` from the scripts in this
folder that tests run in a subprocess; ppocoder_jax is imported only when a function is called
(a subprocess sets XLA_FLAGS first).
"""

from __future__ import annotations

# The T5 dimensions shared by the PPO-on-T5 tests and the sharded-step helper.
TINY_T5 = dict(
    d_model=32,
    d_kv=8,
    d_ff=48,
    num_layers=1,
    num_decoder_layers=1,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
)

# `model.tiny_*` overrides for end-to-end runs of the jobs: the embedded demo's model shrunk to
# one layer each side, d_model 32 (numbers are not judged, the plumbing is).
TINY_MODEL_OVERRIDES = (
    "model.tiny_d_model=32",
    "model.tiny_d_ff=64",
    "model.tiny_num_layers=1",
    "model.tiny_num_decoder_layers=1",
    "model.tiny_num_heads=2",
    "model.tiny_d_kv=16",
)

# A Qwen2-architecture decoder in Hugging Face config.json spelling.
TINY_QWEN2 = {
    "model_type": "qwen2",
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "tie_word_embeddings": False,
    "eos_token_id": 2,
    "pad_token_id": 0,
}


def tiny_t5_config(vocab_size: int = 32, **changes):
    """A tiny random-init T5 (`TINY_T5`, any field replaced by `changes`)."""
    from ppocoder_jax.model.t5_config import T5Config

    return T5Config(**{**TINY_T5, "vocab_size": vocab_size, **changes})


def tiny_decoder_config(vocab_size: int, **hf_changes):
    """A tiny Qwen2-architecture decoder (`TINY_QWEN2`, config.json keys replaced by
    `hf_changes`)."""
    from ppocoder_jax.model.decoder_config import DecoderConfig

    return DecoderConfig.from_hf_dict({**TINY_QWEN2, "vocab_size": vocab_size, **hf_changes})


def single_device_mesh():
    """The default (data, fsdp, tensor) mesh over the first device only: (1, 1, 1)."""
    import jax

    from ppocoder_jax.config import MeshConfig
    from ppocoder_jax.parallel.mesh import make_mesh

    return make_mesh(MeshConfig(), jax.devices()[:1])


def ppo_start(preset: str = "tiny"):
    """What a PPO trainer starts from, for a preset's tiny model: (host params, model config,
    tokenizer, the task's PPO examples)."""
    import jax

    from ppocoder_jax.config import load_config
    from ppocoder_jax.data import load_task
    from ppocoder_jax.pipeline.policy_loader import load_policy

    cfg = load_config(preset, ["train.run_dir=unused"])
    params, model_cfg, tokenizer = load_policy(cfg)
    examples = load_task(cfg.data, tokenizer).ppo_examples()
    return jax.device_get(params), model_cfg, tokenizer, examples
