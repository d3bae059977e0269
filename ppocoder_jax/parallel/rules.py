"""Logical-axis rules (t5x / maxtext style): logical dimension names -> mesh axes.

A model declares, for every parameter, a tuple of *logical* names, one per dimension
(``param_logical_axes(params)``: e.g. ``('vocab', 'embed')`` for an embedding table,
``('embed', 'mlp')`` for ``wi``).  One table maps those names to mesh axes; changing the
parallelism layout means changing the table or the mesh shape, never the model.

Rules are an ordered sequence of ``(logical_name, mesh_axes)`` where ``mesh_axes`` is a mesh
axis name, a tuple of them, or ``None`` (replicated).  For each dimension the first rule for its
name whose mesh axes are (a) not already used by another dimension of the same array and (b)
divide the dimension size wins; otherwise the dimension is replicated.  So a vocab of 32100
on a tensor axis of 8 falls back to replication instead of failing to compile.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MeshAxes = str | tuple[str, ...] | None
Rules = Sequence[tuple[str, MeshAxes]]

DEFAULT_RULES: tuple[tuple[str, MeshAxes], ...] = (
    # activations
    ("batch", ("data", "fsdp")),
    ("length", None),
    # parameters: FSDP over the model dimension, tensor parallelism over the wide ones
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    # key/value heads of grouped-query attention (decoder-only models): split like the query
    # heads where they divide; otherwise replicated (e.g. 2 kv heads on a tensor axis of 4)
    ("kv_heads", "tensor"),
    ("kv", None),
    ("relpos_buckets", None),
)

LOGICAL_NAMES = tuple(name for name, _ in DEFAULT_RULES)


def _as_tuple(axes: MeshAxes) -> tuple[str, ...]:
    if axes is None:
        return ()
    if isinstance(axes, str):
        return (axes,)
    return tuple(axes)


def logical_to_partition_spec(
    logical: Sequence[str | None] | None,
    mesh: Mesh,
    rules: Rules = DEFAULT_RULES,
    shape: Sequence[int] | None = None,
) -> PartitionSpec:
    """PartitionSpec for one array from its logical names (``None`` / unknown name: replicate).

    With ``shape`` given, a mapping whose mesh size does not divide the dimension is skipped.
    """
    if logical is None:
        return PartitionSpec()
    logical = tuple(logical)  # a tuple or a PartitionSpec of logical names
    if shape is not None and len(shape) != len(logical):
        raise ValueError(f"logical axes {tuple(logical)} do not match shape {tuple(shape)}")
    used: set[str] = set()
    spec: list[MeshAxes] = []
    for dim, name in enumerate(logical):
        chosen: MeshAxes = None
        for rule_name, axes in rules:
            if rule_name != name:
                continue
            axes_t = tuple(a for a in _as_tuple(axes) if a in mesh.shape)
            if not axes_t or used.intersection(axes_t):
                continue
            size = 1
            for a in axes_t:
                size *= mesh.shape[a]
            if shape is not None and shape[dim] % size:
                continue
            chosen = axes_t[0] if len(axes_t) == 1 else axes_t
            used.update(axes_t)
            break
        spec.append(chosen)
    return PartitionSpec(*spec)


def _is_axes_leaf(x) -> bool:
    if x is None or isinstance(x, PartitionSpec):
        return True
    return isinstance(x, tuple) and all(isinstance(a, (str, type(None))) for a in x)


def logical_to_shardings(
    logical_tree,
    mesh: Mesh,
    rules: Rules = DEFAULT_RULES,
    shapes=None,
):
    """Map a pytree of logical names (tuples or ``PartitionSpec`` of names, as
    ``model.param_logical_axes`` returns) to a pytree of ``NamedSharding``.

    ``shapes`` (optional) is a matching pytree of arrays / ``ShapeDtypeStruct`` used for the
    divisibility fallback; pass the params (or ``jax.eval_shape`` of them).
    """
    if shapes is None:
        return jax.tree.map(
            lambda lg: NamedSharding(mesh, logical_to_partition_spec(lg, mesh, rules)),
            logical_tree,
            is_leaf=_is_axes_leaf,
        )
    return jax.tree.map(
        lambda lg, x: NamedSharding(mesh, logical_to_partition_spec(lg, mesh, rules, x.shape)),
        logical_tree,
        shapes,
        is_leaf=_is_axes_leaf,
    )
