"""Mesh shapes, the logical-axis rules table and batch placement (in-process, 1 device)."""

import jax
import numpy as np
import pytest
from jax.sharding import AbstractMesh, PartitionSpec

from ppocoder_jax.config import MeshConfig
from ppocoder_jax.errors import UserError
from ppocoder_jax.parallel import mesh as M
from ppocoder_jax.parallel.rules import (
    DEFAULT_RULES,
    logical_to_partition_spec,
    logical_to_shardings,
)


def test_resolve_mesh_shape():
    assert M.resolve_mesh_shape(MeshConfig(), 8) == (8, 1, 1)
    assert M.resolve_mesh_shape(MeshConfig(data=2, fsdp=-1, tensor=2), 8) == (2, 2, 2)
    assert M.resolve_mesh_shape(MeshConfig(data=2, fsdp=4, tensor=1), 8) == (2, 4, 1)
    with pytest.raises(UserError, match="mesh"):
        M.resolve_mesh_shape(MeshConfig(data=-1, fsdp=3), 8)
    with pytest.raises(UserError, match="need 4 devices"):
        M.resolve_mesh_shape(MeshConfig(data=2, fsdp=2, tensor=1), 8)


def test_rules_table():
    mesh = AbstractMesh((2, 2, 2), M.MESH_AXES)
    spec = logical_to_partition_spec
    assert spec(("vocab", "embed"), mesh) == PartitionSpec("tensor", "fsdp")
    assert spec(("embed", "mlp"), mesh) == PartitionSpec("fsdp", "tensor")
    assert spec(("embed", "heads", "kv"), mesh) == PartitionSpec("fsdp", "tensor", None)
    assert spec(("relpos_buckets", "heads"), mesh) == PartitionSpec(None, "tensor")
    assert spec(("batch", "length"), mesh) == PartitionSpec(("data", "fsdp"), None)
    # one mesh axis is never used twice in one array: batch takes fsdp, embed falls back
    assert spec(("batch", "length", "embed"), mesh) == PartitionSpec(("data", "fsdp"), None, None)
    assert spec(("batch", "length", "mlp"), mesh) == PartitionSpec(("data", "fsdp"), None, "tensor")
    # unknown / None names replicate; None logical tuple -> fully replicated
    assert spec((None, "what"), mesh) == PartitionSpec(None, None)
    assert spec(None, mesh) == PartitionSpec()
    assert spec(PartitionSpec("embed", "mlp"), mesh) == PartitionSpec("fsdp", "tensor")
    # divisibility fallback with shapes: vocab 32101 is not divisible by tensor=2
    assert spec(("vocab", "embed"), mesh, shape=(32101, 512)) == PartitionSpec(None, "fsdp")
    assert spec(("vocab", "embed"), mesh, shape=(32100, 512)) == PartitionSpec("tensor", "fsdp")
    with pytest.raises(ValueError, match="do not match"):
        spec(("vocab",), mesh, shape=(3, 4))
    # a custom table: first applicable rule wins
    rules = (("embed", "tensor"), ("embed", "fsdp"), ("mlp", "tensor"))
    assert spec(("embed", "mlp"), mesh, rules) == PartitionSpec("tensor", None)
    names = {n for n, _ in DEFAULT_RULES}
    assert {"vocab", "embed", "mlp", "heads", "kv", "relpos_buckets", "batch", "length"} <= names


def test_logical_to_shardings_tree_and_batch_placement():
    mesh = M.make_mesh(MeshConfig(), jax.devices()[:1])
    assert mesh.axis_names == M.MESH_AXES and mesh.devices.shape == (1, 1, 1)
    tree = {"a": PartitionSpec("vocab", "embed"), "b": {"c": (None,)}, "d": None}
    shapes = {"a": np.zeros((4, 6)), "b": {"c": np.zeros(3)}, "d": np.zeros(())}
    sh = logical_to_shardings(tree, mesh, shapes=shapes)
    assert sh["a"].spec == PartitionSpec("tensor", "fsdp")
    assert sh["b"]["c"].spec == PartitionSpec(None)
    assert sh["d"].spec == PartitionSpec()
    batch = {"x": np.arange(12).reshape(4, 3), "y": np.ones(4)}
    placed = M.shard_batch(batch, mesh)
    assert placed["x"].sharding.spec == PartitionSpec(("data", "fsdp"), None)
    np.testing.assert_array_equal(placed["x"], batch["x"])
    glob = M.host_local_to_global(batch, mesh)  # one process: the whole batch
    np.testing.assert_array_equal(glob["x"], batch["x"])
    np.testing.assert_array_equal(M.global_to_host_local(glob)["x"], batch["x"])
    assert M.process_batch_slice(8) == slice(0, 8)
    assert M.process_batch_slice(8, mesh) == slice(0, 8)
    assert M.is_main_process()
    assert M.maybe_initialize_distributed(MeshConfig()) is False
