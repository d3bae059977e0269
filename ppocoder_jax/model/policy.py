"""The policy interface: what rollout/, ppo/ and pipeline/ know of a model.

    policy = as_policy(model_config)          # model/families.py: T5Config -> T5Policy, ...
    policy.prefill(params, prompt_ids, prompt_mask, out_len, dtype) -> (state, first_input [B])
    policy.decode(params, current [B], step, state, dtype) -> (logits [B,V] f32, values [B] f32, state)
    policy.score(params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng=None)
        -> (logits [B,T,V] f32, values [B,T] f32)
    policy.cast_for_compute(params, dtype), policy.param_logical_axes(params)
    policy.pad_side, policy.eos_ids, policy.pad_id, policy.encode_prompt(tokenizer, text, max_len)

`prefill` takes a batch of prompts (padded on `pad_side`) and returns the decoding state and the
first decoder input; the sampler repeats the state per sample (every leaf has batch on axis 0)
and calls `decode(current, step)` once per generated token: step t consumes the input that
precedes token t and returns the distribution of token t with the value of that state.
`score` is the same computation teacher-forced over whole responses: logits[:, t] is the
distribution that produced tokens[:, t], values[:, t] the value of the state before it. It is
the one teacher-forced pass: the rollout statistics, the PPO train step and the SFT loss all
call it, so the PPO ratio compares like with like.

Families:
- T5 (CodeT5, encoder-decoder): prompts right-padded; the encoder runs once in `prefill`; the
  decoder starts from `decoder_start_token_id`.
- Decoder-only (Llama, Qwen2, Qwen3): prompts left-padded, so every row's last prompt token is
  in the last column; `prefill` runs all prompt columns but the last into the KV cache, and
  the first `decode` consumes that last token (positions count from each row's first real
  token). Responses are scored by running prompt + response[:-1] through the model.

The value head is `params["value_head"]` in both families; everything else in `params` is the
backbone (what a value-only warm-up holds still).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from ppocoder_jax.model import decoder, t5
from ppocoder_jax.model.common import Params

VALUE_HEAD = "value_head"


def num_params(params: Params) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))


def backbone_frozen(params: Params) -> Params:
    """`params` with gradients stopped everywhere but the value head."""
    return {k: v if k == VALUE_HEAD else jax.lax.stop_gradient(v) for k, v in params.items()}


@dataclasses.dataclass(frozen=True)
class Policy(abc.ABC):
    """A model family behind one surface; hashable (a static jit argument)."""

    cfg: Any
    # Teacher-forced passes recompute each layer's activations in the backward pass instead
    # of keeping them (`model.remat`): memory for one layer's internals, ~one more forward.
    remat: bool = False
    family: ClassVar[str]
    pad_side: ClassVar[str]  # "right" | "left": where prompt batches are padded

    # -- token conventions --------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def eos_ids(self) -> tuple[int, ...]: ...

    @property
    @abc.abstractmethod
    def pad_id(self) -> int: ...

    @property
    def eos_id(self) -> int:
        """The token appended to SFT targets."""
        return self.eos_ids[0]

    def encode_prompt(self, tokenizer, text: str, max_len: int) -> list[int]:
        """Prompt ids with the tokenizer's special tokens. A prompt longer than `max_len` keeps
        its end (for completion, that is where the code to continue is) and its first token
        when that is a special one (`<s>`, a BOS)."""
        ids = list(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
        if len(ids) <= max_len:
            return ids
        head = ids[:1] if ids and ids[0] in set(tokenizer.all_special_ids) else []
        return head + ids[len(ids) - (max_len - len(head)) :]

    # -- model surface ------------------------------------------------------------------------
    @abc.abstractmethod
    def prefill(self, params, prompt_ids, prompt_mask, out_len: int, dtype): ...

    @abc.abstractmethod
    def decode(self, params, current, step, state, dtype): ...

    @abc.abstractmethod
    def head_inputs(
        self, params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng=None
    ):
        """Teacher-forced pass over given responses tokens [B, T] -> (the LM head's input
        [B, T, D] in dtype, whose position t produced tokens[:, t]; values [B, T] fp32)."""

    @abc.abstractmethod
    def head_weight(self, params, dtype) -> tuple[jax.Array, bool]:
        """(the LM head's weight in dtype, vocab_major): [V, D] (a tied embedding) or [D, V]."""

    def score(self, params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng=None):
        """(logits [B, T, V] fp32, values [B, T] fp32): the whole distribution at every
        position. Teacher-forced training passes use `token_stats`, which never builds it."""
        hidden, values = self.head_inputs(
            params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng
        )
        weight, vocab_major = self.head_weight(params, dtype)
        spec = "btd,vd->btv" if vocab_major else "btd,dv->btv"
        return jnp.einsum(spec, hidden, weight).astype(jnp.float32), values

    def token_stats(
        self, params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng=None
    ):
        """(log-prob [B, T], entropy [B, T], values [B, T]), fp32, of given responses: the one
        teacher-forced function (rollout statistics, the train step, SFT), with the LM head
        fused (model/lm_head.py): no [B, T, V] array in the forward or the backward pass."""
        from ppocoder_jax.model import lm_head

        hidden, values = self.head_inputs(
            params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng
        )
        weight, vocab_major = self.head_weight(params, dtype)
        logprob, entropy = lm_head.token_logprob_entropy(
            hidden, weight, tokens, vocab_major=vocab_major
        )
        return logprob, entropy, values

    @abc.abstractmethod
    def param_logical_axes(self, params: Params): ...

    def with_value_bias(self, params: Params, value: float) -> Params:
        """`params` with the value head's bias set to `value` everywhere (each device keeps
        its shard layout): the value of every state starts at, e.g., the first mean score."""
        head = params[VALUE_HEAD]
        bias = head["bias"]
        new = jnp.full(bias.shape, value, bias.dtype)
        if isinstance(bias, jax.Array):
            new = jax.device_put(new, bias.sharding)
        return {**params, VALUE_HEAD: {**head, "bias": new}}

    def cast_for_compute(self, params: Params, dtype) -> Params:
        """Matmul weights (kernels, embeddings) of the backbone cast once to the compute dtype.

        The model casts every weight to `dtype` where it is used, and fp32 -> dtype -> fp32 ->
        dtype rounds as fp32 -> dtype does, so the numbers are unchanged; norm scales, position
        tables and the value head stay fp32 as the model uses them.
        """
        dtype = jnp.dtype(dtype)
        if dtype == jnp.float32:
            return params

        def cast(path, x):
            name = getattr(path[-1], "key", "")
            return x.astype(dtype) if name in ("kernel", "embedding") else x

        return {
            k: v if k == VALUE_HEAD else jax.tree_util.tree_map_with_path(cast, v)
            for k, v in params.items()
        }


@dataclasses.dataclass(frozen=True)
class T5Policy(Policy):
    family: ClassVar[str] = "t5"
    pad_side: ClassVar[str] = "right"

    @property
    def eos_ids(self) -> tuple[int, ...]:
        return (int(self.cfg.eos_token_id),)

    @property
    def pad_id(self) -> int:
        return int(self.cfg.pad_token_id)

    def prefill(self, params, prompt_ids, prompt_mask, out_len: int, dtype):
        enc = t5.encode(params, self.cfg, prompt_ids, prompt_mask, dtype=dtype)
        # cross-attention keys/values projected once per prompt
        cache = t5.init_cache(self.cfg, prompt_ids.shape[0], out_len, dtype, params=params, enc=enc)
        first = jnp.full((prompt_ids.shape[0],), self.cfg.decoder_start_token_id, jnp.int32)
        return (cache, enc, prompt_mask), first

    def decode(self, params, current, step, state, dtype):
        cache, enc, prompt_mask = state
        logits, values, cache = t5.decode_step(
            params, self.cfg, current, step, cache, enc, prompt_mask, dtype=dtype
        )
        return logits, values, (cache, enc, prompt_mask)

    def head_inputs(
        self, params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng=None
    ):
        tokens = tokens.astype(jnp.int32)
        dec_in = t5.shift_right(tokens, self.cfg.decoder_start_token_id)
        # decoder position t is real when it predicts a real token (the start always is)
        dec_mask = t5.shift_right(token_mask.astype(jnp.int32), 1)
        hidden = t5.decoder_hidden(
            params,
            self.cfg,
            prompt_ids.astype(jnp.int32),
            prompt_mask.astype(jnp.int32),
            dec_in,
            dec_mask,
            dtype=dtype,
            remat=self.remat,
        )
        values = t5.value_head(params, self.cfg, hidden, dropout_rng)
        if self.cfg.scale_decoder_outputs:  # T5 v1.0 / CodeT5 with a tied head
            hidden = hidden * (self.cfg.d_model**-0.5)
        return hidden, values

    def head_weight(self, params, dtype):
        if self.cfg.tie_word_embeddings:
            return params["t5"]["token_embedder"]["embedding"].astype(dtype), True
        return params["t5"]["lm_head"]["kernel"].astype(dtype), False

    def param_logical_axes(self, params: Params):
        return t5.param_logical_axes(params)


@dataclasses.dataclass(frozen=True)
class DecoderPolicy(Policy):
    family: ClassVar[str] = "decoder"
    pad_side: ClassVar[str] = "left"

    @property
    def eos_ids(self) -> tuple[int, ...]:
        if not self.cfg.eos_token_ids:
            raise ValueError("the decoder-only config names no eos_token_id")
        return tuple(int(i) for i in self.cfg.eos_token_ids)

    @property
    def pad_id(self) -> int:
        pad = self.cfg.pad_token_id
        return int(pad) if pad is not None else self.eos_ids[0]

    def prefill(self, params, prompt_ids, prompt_mask, out_len: int, dtype):
        prompt_ids = prompt_ids.astype(jnp.int32)
        prompt_mask = prompt_mask.astype(jnp.int32)
        batch, width = prompt_ids.shape
        cache = decoder.init_cache(self.cfg, batch, width - 1 + out_len, dtype)
        if width > 1:
            _, _, cache = decoder.prefill(
                params, self.cfg, prompt_ids[:, :-1], prompt_mask[:, :-1], cache, dtype=dtype
            )
        # left-padded: every row's last prompt token is in the last column; decode step t
        # writes cache slot width-1+t (kept per row: every state leaf has batch on axis 0)
        offset = jnp.full((batch,), width - 1, jnp.int32)
        return (cache, offset), prompt_ids[:, -1]

    def decode(self, params, current, step, state, dtype):
        cache, offset = state
        logits, values, cache = decoder.decode_step(
            params, self.cfg, current, offset[0] + step, cache, dtype=dtype
        )
        return logits, values, (cache, offset)

    def head_inputs(
        self, params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng=None
    ):
        width = prompt_ids.shape[1]
        ids = jnp.concatenate([prompt_ids, tokens[:, :-1]], axis=1).astype(jnp.int32)
        mask = jnp.concatenate([prompt_mask, token_mask[:, :-1]], axis=1).astype(jnp.int32)
        hidden = decoder.hidden_states(params, self.cfg, ids, mask, dtype=dtype, remat=self.remat)
        # position width-1+t holds the input before token t; the head runs on the response
        # positions only
        hidden = hidden[:, width - 1 :]
        return hidden, decoder.value_head(params, self.cfg, hidden, dropout_rng)

    def head_weight(self, params, dtype):
        lm = params["lm"]
        if self.cfg.tie_word_embeddings:
            return lm["embed_tokens"]["embedding"].astype(dtype), True
        return lm["lm_head"]["kernel"].astype(dtype), False

    def param_logical_axes(self, params: Params):
        return decoder.param_logical_axes(params)
