"""Low-rank adapters (LoRA) over the policy's parameter pytree, as pure functions.

    spec = LoraSpec.from_config(cfg.model.lora, model_cfg)   # targets checked against the family
    adapters = init_adapters(backbone, spec, rng)             # {..module path..: {lora_a, lora_b}}
    merged = merge(backbone, adapters, spec.scale)            # kernel + (a @ b) * alpha / rank
    policy = LoraPolicy(inner=as_policy(model_cfg), spec=spec)

A target kernel, seen as the matrix [in, out] of `x @ kernel` (attention kernels flattened:
q/k/v [D, H, K] -> [D, H*K], o [H, K, D] -> [H*K, D], the order Hugging Face's Linear uses),
gets `lora_a` [in, r] and `lora_b` [r, out]; the adapted kernel is `kernel + a @ b * scale`.
`lora_b` starts at zero, so the adapted policy starts equal to the base. The adapter tree
mirrors the backbone's module paths, e.g. `{"layers_0": {"self_attn": {"q_proj": {...}}}}`.

`LoraPolicy` is a `Policy` whose params are

    {"base": backbone (frozen), "lora": adapters, "value_head": ...}

and without "lora" it is the base alone: the reference's log-probs come from the same base
buffers with the adapters off, so no second copy of the backbone exists. Params already in the
inner family's layout (what `cast_for_compute` returns: merged once per sampling call) pass
through unchanged, so the sampler merges once and its decode loop runs on plain kernels.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from ppocoder_jax.config import LORA_TARGETS
from ppocoder_jax.errors import UserError
from ppocoder_jax.model.common import Params
from ppocoder_jax.model.policy import VALUE_HEAD, Policy

BASE, ADAPTERS = "base", "lora"
LORA_A, LORA_B = "lora_a", "lora_b"

# Target names (Hugging Face / PEFT module names) -> (our module name, how many leading kernel
# dimensions are the matmul's input).
DECODER_TARGETS = {
    "q_proj": ("q_proj", 1),
    "k_proj": ("k_proj", 1),
    "v_proj": ("v_proj", 1),
    "o_proj": ("o_proj", 2),
    "gate_proj": ("gate_proj", 1),
    "up_proj": ("up_proj", 1),
    "down_proj": ("down_proj", 1),
}
T5_TARGETS = {
    "q": ("query", 1),
    "k": ("key", 1),
    "v": ("value", 1),
    "o": ("out", 2),
    "wi": ("wi", 1),
    "wi_0": ("wi_0", 1),
    "wi_1": ("wi_1", 1),
    "wo": ("wo", 1),
}
TARGETS_BY_FAMILY = {"decoder": DECODER_TARGETS, "t5": T5_TARGETS}
assert tuple(DECODER_TARGETS) + tuple(T5_TARGETS) == LORA_TARGETS  # the config's names


def family_targets(family: str, model_cfg) -> tuple[str, ...]:
    """The target names this model has (a T5 v1.1 model has wi_0/wi_1, not wi)."""
    names = tuple(TARGETS_BY_FAMILY[family])
    if family == "t5":
        drop = ("wi",) if model_cfg.is_gated else ("wi_0", "wi_1")
        names = tuple(n for n in names if n not in drop)
    return names


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    """What gets adapters and how they are scaled (hashable: part of a static Policy)."""

    family: str
    rank: int
    alpha: float
    targets: tuple[str, ...]  # target names, in the family's order

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @property
    def modules(self) -> dict[str, int]:
        """Our module name -> the number of input dimensions of its kernel."""
        table = TARGETS_BY_FAMILY[self.family]
        return dict(table[t] for t in self.targets)

    @classmethod
    def from_config(cls, lora_cfg, model_cfg, family: str) -> LoraSpec:
        has = family_targets(family, model_cfg)
        wanted = tuple(lora_cfg.targets) or has
        for name in wanted:
            if name not in has:
                raise UserError(
                    f"config key 'model.lora.targets': {name!r} is not a projection of this "
                    f"{family} model (it has: {', '.join(has)})"
                )
        ordered = tuple(n for n in has if n in wanted)
        return cls(family, int(lora_cfg.rank), float(lora_cfg.alpha), ordered)


def _target_paths(backbone: Params, spec: LoraSpec):
    """(module path, kernel shape, input dims) of every target kernel in the backbone."""
    modules = spec.modules
    out = []

    def visit(path, leaf):
        names = tuple(getattr(k, "key", str(k)) for k in path)
        if len(names) >= 2 and names[-1] == "kernel" and names[-2] in modules:
            out.append((names[:-1], tuple(leaf.shape), modules[names[-2]]))

    jax.tree_util.tree_map_with_path(visit, backbone)
    return out


def _matrix_shape(shape, n_in) -> tuple[int, int]:
    return math.prod(shape[:n_in]), math.prod(shape[n_in:])


def set_path(tree: dict, path, value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def get_path(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def adapter_shapes(backbone: Params, spec: LoraSpec) -> Params:
    """The adapter tree of jax.ShapeDtypeStruct (fp32) for a backbone (arrays or shapes)."""
    tree: dict = {}
    for path, shape, n_in in _target_paths(backbone, spec):
        d_in, d_out = _matrix_shape(shape, n_in)
        set_path(tree, path, {
            LORA_A: jax.ShapeDtypeStruct((d_in, spec.rank), jnp.float32),
            LORA_B: jax.ShapeDtypeStruct((spec.rank, d_out), jnp.float32),
        })  # fmt: skip
    return tree


def init_adapters(backbone: Params, spec: LoraSpec, rng: jax.Array) -> Params:
    """Fresh adapters as PEFT draws them: `lora_a` uniform(+-1/sqrt(in)) (Kaiming-uniform
    with a = sqrt(5)), `lora_b` zero (numpy fp32 on the host)."""
    shapes = adapter_shapes(backbone, spec)
    leaves, treedef = jax.tree.flatten(shapes)
    keys = jax.random.split(rng, len(leaves))
    out = []
    for key, leaf in zip(keys, leaves, strict=True):
        if leaf.shape[0] == spec.rank:  # lora_b [r, out]
            out.append(np.zeros(leaf.shape, np.float32))
        else:
            bound = 1.0 / math.sqrt(leaf.shape[0])
            out.append(np.asarray(jax.random.uniform(key, leaf.shape, jnp.float32, -bound, bound)))
    return jax.tree.unflatten(treedef, out)


def delta(adapter: Params, shape, scale: float) -> jax.Array:
    """The kernel's update (a @ b) * scale in the kernel's shape, fp32."""
    a = adapter[LORA_A].astype(jnp.float32)
    b = adapter[LORA_B].astype(jnp.float32)
    return ((a @ b) * scale).reshape(shape)


def merge(backbone: Params, adapters: Params, scale: float) -> Params:
    """The backbone with every adapted kernel replaced by kernel + (a @ b) * scale."""

    def one(path, leaf):
        names = tuple(getattr(k, "key", str(k)) for k in path)
        if names[-1] != "kernel":
            return leaf
        try:
            adapter = get_path(adapters, names[:-1])
        except (KeyError, TypeError):
            return leaf
        return leaf + delta(adapter, leaf.shape, scale).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(one, backbone)


def check_adapters(adapters: Params, backbone: Params, spec: LoraSpec, source: str) -> None:
    """One-line UserError unless `adapters` has exactly the spec's shapes for this backbone."""
    want = jax.tree_util.tree_flatten_with_path(adapter_shapes(backbone, spec))[0]
    got = jax.tree_util.tree_flatten_with_path(adapters)[0]
    want_d = {jax.tree_util.keystr(p): tuple(x.shape) for p, x in want}
    got_d = {jax.tree_util.keystr(p): tuple(np.shape(x)) for p, x in got}
    if want_d == got_d:
        return
    missing = sorted(set(want_d) - set(got_d))
    extra = sorted(set(got_d) - set(want_d))
    if missing:
        what = f"no adapter for {missing[0]}"
    elif extra:
        what = f"an adapter this configuration does not have: {extra[0]}"
    else:
        key = next(k for k in want_d if want_d[k] != got_d[k])
        what = f"{key} has shape {got_d[key]}, model.lora expects {want_d[key]}"
    raise UserError(
        f"{source}: its adapters do not match model.lora "
        f"(rank={spec.rank}, targets={','.join(spec.targets)}): {what}"
    )


def with_lora(policy: Policy, lora_cfg) -> Policy:
    """`policy` wrapped in a LoraPolicy when `model.lora` is on (its targets checked against
    the model: a one-line UserError), else `policy` itself."""
    if not lora_cfg.enabled:
        return policy
    return LoraPolicy.wrap(policy, LoraSpec.from_config(lora_cfg, policy.cfg, policy.family))


def lora_start(policy: LoraPolicy, base: Params, lora_cfg, rng) -> tuple[Params, Params]:
    """Starting parameters (the family's layout) -> (frozen {"base": backbone}, what trains:
    {"lora": adapters, "value_head": ...}). Adapters come from `model.lora.init_from` (a PEFT
    directory, checked against model.lora) or fresh (`lora_b` = 0: the policy starts as the
    base)."""
    frozen, value_head = policy.split(base)
    if lora_cfg.init_from:
        from ppocoder_jax.model.lora_peft import read_peft_adapters, read_value_head

        adapters = read_peft_adapters(lora_cfg.init_from, policy)
        saved_head = read_value_head(lora_cfg.init_from)  # a continued run's own head
        if saved_head is not None:
            for name, leaf in value_head.items():
                if np.shape(saved_head.get(name)) != np.shape(leaf):
                    raise UserError(
                        f"{lora_cfg.init_from}: value_head.safetensors does not fit this model "
                        f"({name!r} has shape {np.shape(saved_head.get(name))}, want "
                        f"{np.shape(leaf)})"
                    )
            value_head = saved_head
    else:
        adapters = init_adapters(frozen[BASE], policy.spec, jax.random.fold_in(rng, 0x10A))
    return frozen, {ADAPTERS: adapters, VALUE_HEAD: value_head}


def lora_reference(frozen: Params, trainable: Params, shardings: Params) -> Params:
    """The reference: the frozen base's own buffers with the adapters off, beside a copy of
    the starting value head (its own buffers: the train step donates the state's)."""
    head = jax.tree.map(np.array, trainable[VALUE_HEAD])
    return {**frozen, VALUE_HEAD: jax.device_put(head, shardings[VALUE_HEAD])}


def num_adapter_params(adapters: Params) -> int:
    return sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(adapters))


@dataclasses.dataclass(frozen=True)
class LoraPolicy(Policy):
    """The inner family's policy with adapters: params {"base", "lora", "value_head"}."""

    inner: Policy | None = None
    spec: LoraSpec | None = None

    def __post_init__(self):
        if self.inner.remat != self.remat:  # as_policy(policy, remat=...) replaced ours
            object.__setattr__(self, "inner", dataclasses.replace(self.inner, remat=self.remat))

    @classmethod
    def wrap(cls, inner: Policy, spec: LoraSpec) -> LoraPolicy:
        return cls(cfg=inner.cfg, remat=inner.remat, inner=inner, spec=spec)

    @property
    def family(self) -> str:  # type: ignore[override]
        return self.inner.family

    @property
    def pad_side(self) -> str:  # type: ignore[override]
        return self.inner.pad_side

    @property
    def params_key(self) -> str:
        from ppocoder_jax.model.families import FAMILIES

        return FAMILIES[self.inner.family].params_key

    # -- params -------------------------------------------------------------------------------
    def resolve(self, params: Params) -> Params:
        """The inner family's params: base + adapters merged (the base alone without
        "lora"); params already in the inner layout are returned as they are."""
        if BASE not in params:
            return params
        backbone = params[BASE]
        if ADAPTERS in params:
            backbone = merge(backbone, params[ADAPTERS], self.spec.scale)
        return {self.params_key: backbone, VALUE_HEAD: params[VALUE_HEAD]}

    def split(self, inner_params: Params) -> tuple[Params, Params]:
        """Inner-layout params -> (the frozen part {"base": backbone}, its value head)."""
        return {BASE: inner_params[self.params_key]}, inner_params[VALUE_HEAD]

    # -- token conventions --------------------------------------------------------------------
    @property
    def eos_ids(self) -> tuple[int, ...]:
        return self.inner.eos_ids

    @property
    def pad_id(self) -> int:
        return self.inner.pad_id

    def encode_prompt(self, tokenizer, text: str, max_len: int) -> list[int]:
        return self.inner.encode_prompt(tokenizer, text, max_len)

    # -- model surface ------------------------------------------------------------------------
    def prefill(self, params, prompt_ids, prompt_mask, out_len: int, dtype):
        return self.inner.prefill(self.resolve(params), prompt_ids, prompt_mask, out_len, dtype)

    def decode(self, params, current, step, state, dtype):
        return self.inner.decode(self.resolve(params), current, step, state, dtype)

    def head_inputs(
        self, params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng=None
    ):
        return self.inner.head_inputs(
            self.resolve(params), prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng
        )

    def head_weight(self, params, dtype):
        return self.inner.head_weight(self.resolve(params), dtype)

    def score(self, params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng=None):
        return self.inner.score(
            self.resolve(params), prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng
        )

    def token_stats(
        self, params, prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng=None
    ):
        return self.inner.token_stats(
            self.resolve(params), prompt_ids, prompt_mask, tokens, token_mask, dtype, dropout_rng
        )

    def cast_for_compute(self, params: Params, dtype) -> Params:
        # merged here, once per sampling call: the decode loop then reads plain kernels
        return self.inner.cast_for_compute(self.resolve(params), dtype)

    def param_logical_axes(self, params: Params) -> Any:
        """The base and the value head as the inner family shards them; adapters replicated
        (rank x width: small, and replicated they need no gather in the merge)."""
        out = {}
        if VALUE_HEAD in params:
            out[VALUE_HEAD] = self.inner.param_logical_axes({VALUE_HEAD: params[VALUE_HEAD]})[
                VALUE_HEAD
            ]
        if BASE in params:
            inner = self.inner.param_logical_axes({self.params_key: params[BASE]})
            out[BASE] = inner[self.params_key]
        if ADAPTERS in params:
            out[ADAPTERS] = jax.tree.map(
                lambda x: PartitionSpec(*([None] * len(x.shape))), params[ADAPTERS]
            )
        for key in params:
            if key not in out:
                out[key] = self.inner.param_logical_axes({key: params[key]})[key]
        return out
