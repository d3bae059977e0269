"""The LM head fused with what every teacher-forced pass needs of it, never holding [B, T, V].

A teacher-forced pass needs, per position, only a few numbers of the vocabulary distribution:
the log-prob of the token taken, the entropy and (for the reward) the exact KL to the reference.
Materialising the logits for that costs B*T*V floats - 20 GB in fp32 at a Qwen2.5 vocabulary
(151,936), B 32, T 1024 - and their softmax, one-hot and gradient scatter dominated the PPO step.
Here the head runs chunk by chunk over the sequence: each chunk's [B, C, V] logits live only
inside one step of a `lax.scan`, and a custom VJP recomputes them chunk by chunk in the backward
pass (one extra [B*C, D] x [D, V] matmul per chunk) instead of saving them.

    token_logprob_entropy(hidden [B,T,D], weight, tokens [B,T], *, vocab_major)
        -> (logprob [B,T] fp32, entropy [B,T] fp32)      differentiable in hidden and weight
    logprob_and_exact_kl(hidden, weight, ref_hidden, ref_weight, tokens, *, vocab_major)
        -> (logprob, ref_logprob, exact_kl)  [B,T] fp32  no gradient (rollout statistics)

`weight` is [D, V], or [V, D] with vocab_major=True (a tied embedding, used without a
transposed copy). Matmuls run in the inputs' dtype with fp32 accumulation; every softmax
quantity is fp32. Values equal log_softmax / entropy of `hidden @ weight` computed whole.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# Elements of one chunk's [B, C, V] fp32 logits (64 MiB); the chunk length follows from it.
CHUNK_ELEMENTS = 1 << 24


def chunk_length(batch: int, length: int, vocab: int, elements: int = CHUNK_ELEMENTS) -> int:
    return max(1, min(length, elements // max(batch * vocab, 1)))


def _logits(h, weight, vocab_major: bool):
    spec = "bcd,vd->bcv" if vocab_major else "bcd,dv->bcv"
    return jnp.einsum(spec, h, weight.astype(h.dtype), preferred_element_type=jnp.float32)


def _chunks(x, c: int):
    """[B, T, ...] -> [n, B, c, ...] (T zero-padded up to a multiple of c)."""
    b, t = x.shape[:2]
    n = -(-t // c)
    pad = [(0, 0), (0, n * c - t)] + [(0, 0)] * (x.ndim - 2)
    x = jnp.pad(x, pad)
    return jnp.moveaxis(x.reshape(b, n, c, *x.shape[2:]), 1, 0)


def _unchunk(x, t: int):
    """[n, B, c, ...] -> [B, T, ...]."""
    n, b, c = x.shape[:3]
    return jnp.moveaxis(x, 0, 1).reshape(b, n * c, *x.shape[3:])[:, :t]


def _taken(z, tok):
    return jnp.take_along_axis(z, tok[..., None], axis=-1)[..., 0]


def _log_softmax_lse(z):
    """(log_softmax(z), logsumexp(z)), rounded as jax.nn.log_softmax rounds."""
    top = jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    shifted = z - top
    log_norm = jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))
    return shifted - log_norm, (top + log_norm)[..., 0]


def _log_softmax(z):
    return _log_softmax_lse(z)[0]


def _chunk_forward(h, weight, tok, vocab_major):
    logp, lse = _log_softmax_lse(_logits(h, weight, vocab_major))  # lse: for the backward
    # -sum p log p, not lse - sum p z: the latter cancels to noise at low entropy
    entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    return _taken(logp, tok), entropy, lse


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _fused(hidden, weight, tokens, vocab_major: bool, c: int):
    return _fused_fwd(hidden, weight, tokens, vocab_major, c)[0]


def _fused_fwd(hidden, weight, tokens, vocab_major, c):
    t = hidden.shape[1]

    def body(_, xs):
        h, tok = xs
        return None, _chunk_forward(h, weight, tok, vocab_major)

    _, (logprob, entropy, lse) = jax.lax.scan(body, None, (_chunks(hidden, c), _chunks(tokens, c)))
    out = (_unchunk(logprob, t), _unchunk(entropy, t))
    return out, (hidden, weight, tokens, _unchunk(lse, t), out[1])


def _fused_bwd(vocab_major, c, res, cotangents):
    hidden, weight, tokens, lse, entropy = res
    g_logprob, g_entropy = cotangents
    t = hidden.shape[1]

    def body(d_weight, xs):
        h, tok, lse_c, ent_c, g_lp, g_ent = xs
        z = _logits(h, weight, vocab_major)
        logp = z - lse_c[..., None]
        p = jnp.exp(logp)
        onehot = jax.nn.one_hot(tok, z.shape[-1], dtype=jnp.float32)
        # d logprob / dz = onehot - p;  d entropy / dz = -p * (log p + H)
        dz = g_lp[..., None] * (onehot - p) - g_ent[..., None] * p * (logp + ent_c[..., None])
        dz = dz.astype(h.dtype)
        spec = "bcv,vd->bcd" if vocab_major else "bcv,dv->bcd"
        dh = jnp.einsum(spec, dz, weight.astype(h.dtype))
        # [D, V] in either layout: dz is read as it lies ([rows, V], the matmul's right operand);
        # a [V, D] product made XLA:CPU write every chunk's dz transposed (a strided copy that
        # cost as much as the chunk's matmuls), so a vocab-major weight's gradient is transposed
        # once at the end instead
        dw = jnp.einsum("bcd,bcv->dv", h, dz, preferred_element_type=jnp.float32)
        return d_weight + dw, dh

    xs = tuple(
        _chunks(x, c)
        for x in (hidden, tokens, lse, entropy, g_logprob.astype(jnp.float32), g_entropy)
    )
    d, v = weight.shape[::-1] if vocab_major else weight.shape
    d_weight, dh = jax.lax.scan(body, jnp.zeros((d, v), jnp.float32), xs)
    if vocab_major:
        d_weight = d_weight.T
    return _unchunk(dh, t).astype(hidden.dtype), d_weight.astype(weight.dtype), None


_fused.defvjp(_fused_fwd, _fused_bwd)


def token_logprob_entropy(
    hidden, weight, tokens, *, vocab_major: bool = False, chunk: int | None = None
):
    """Log-prob of each given token and the entropy, from the head's input (see module doc)."""
    b, t = tokens.shape
    vocab = weight.shape[0 if vocab_major else 1]
    c = chunk or chunk_length(b, t, vocab)
    return _fused(hidden, weight, tokens.astype(jnp.int32), vocab_major, c)


def logprob_and_exact_kl(
    hidden, weight, ref_hidden, ref_weight, tokens, *, vocab_major: bool = False, chunk=None
):
    """(log pi(token), log pi_ref(token), KL(pi || pi_ref) over the whole vocabulary), no grad."""
    hidden, weight, ref_hidden, ref_weight = jax.lax.stop_gradient(
        (hidden, weight, ref_hidden, ref_weight)
    )
    b, t = tokens.shape
    vocab = weight.shape[0 if vocab_major else 1]
    c = chunk or chunk_length(b, t, vocab)  # as token_logprob_entropy chunks

    def body(_, xs):
        h, hr, tok = xs
        logp = _log_softmax(_logits(h, weight, vocab_major))
        logq = _log_softmax(_logits(hr, ref_weight, vocab_major))
        kl = jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)
        return None, (_taken(logp, tok), _taken(logq, tok), kl)

    xs = (_chunks(hidden, c), _chunks(ref_hidden, c), _chunks(tokens.astype(jnp.int32), c))
    _, outs = jax.lax.scan(body, None, xs)
    return tuple(_unchunk(x, t) for x in outs)
