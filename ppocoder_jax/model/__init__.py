"""T5 / CodeT5 policy with a value head (Flax), HF import/export and tokenizers.

See docs/ARCHITECTURE.md (Model) and the docstring of `ppocoder_jax.model.t5`.
"""

from ppocoder_jax.model.common import token_logprobs
from ppocoder_jax.model.store import load_model, save_model
from ppocoder_jax.model.t5 import (
    decode_step,
    encode,
    forward,
    init_cache,
    init_params,
    param_logical_axes,
    score,
    shift_right,
    value_head,
)
from ppocoder_jax.model.t5_config import T5Config
from ppocoder_jax.model.tokenizer import load_tokenizer, save_tokenizer

__all__ = [
    "T5Config",
    "decode_step",
    "encode",
    "forward",
    "init_cache",
    "init_params",
    "load_model",
    "load_tokenizer",
    "param_logical_axes",
    "save_model",
    "save_tokenizer",
    "score",
    "shift_right",
    "token_logprobs",
    "value_head",
]
