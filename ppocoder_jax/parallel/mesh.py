"""The device mesh ``('data', 'fsdp', 'tensor')`` and multi-host helpers.

* ``data``: pure data parallelism (parameters replicated along it).
* ``fsdp``: data parallelism whose parameters/optimizer state are *sharded* along it (ZeRO-3
  style; XLA all-gathers weights for the matmuls and reduce-scatters the gradients).
* ``tensor``: Megatron-style tensor parallelism over ``mlp`` / ``heads`` / ``vocab``.

The batch is split over ``('data', 'fsdp')`` (see ``rules.py``).

Multi-host (TPU pod slices, multi-node GPU): every process runs the same program; call
``maybe_initialize_distributed(cfg.mesh)`` before anything touches a device, build the mesh
over ``jax.devices()`` (all processes' devices), and turn each host's shard of a batch into a
global array with ``host_local_to_global``.  Launch:

* TPU VM slice: ``gcloud compute tpus tpu-vm ssh NAME --worker=all --command "cd ppocoder-jax
  && python -m ppocoder_jax train --config ... mesh.distributed=true"``; on TPU
  ``jax.distributed.initialize()`` needs no arguments.
* GPUs (one process per node, all local GPUs): on every node run the same command with
  ``mesh.distributed=true mesh.coordinator_address=HOST0:1234 mesh.num_processes=N
  mesh.process_id=i`` (or under SLURM / Open MPI, where JAX reads these from the environment
  and the three keys can stay unset).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ppocoder_jax.config import MeshConfig
from ppocoder_jax.errors import UserError

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

log = logging.getLogger(__name__)


def resolve_mesh_shape(cfg: MeshConfig, num_devices: int) -> tuple[int, int, int]:
    """Axis sizes with the (at most one) ``-1`` replaced by the remaining devices."""
    sizes = [cfg.data, cfg.fsdp, cfg.tensor]
    fixed = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if num_devices % fixed:
            raise UserError(
                f"config key 'mesh': {num_devices} devices are not divisible by the fixed axes "
                f"{dict(zip(MESH_AXES, sizes))}"
            )
        sizes[sizes.index(-1)] = num_devices // fixed
    if math.prod(sizes) != num_devices:
        raise UserError(
            f"config key 'mesh': axes {dict(zip(MESH_AXES, sizes))} need {math.prod(sizes)} "
            f"devices, found {num_devices}"
        )
    return tuple(sizes)  # type: ignore[return-value]


def make_mesh(cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``Mesh`` with axes ``('data', 'fsdp', 'tensor')`` over ``devices`` (default: all)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(cfg, len(devices))
    if len(devices) == len(jax.devices()):
        try:  # topology-aware order on TPU/GPU (keeps 'tensor' on the fastest links)
            from jax.experimental import mesh_utils

            grid = mesh_utils.create_device_mesh(shape, devices=devices)
            return Mesh(grid, MESH_AXES)
        except Exception as err:  # noqa: BLE001 - fall back to the plain order
            log.debug("create_device_mesh failed (%s); using device order", err)
    return Mesh(np.asarray(devices, dtype=object).reshape(shape), MESH_AXES)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
    """Leading (batch) dimension over ``('data', 'fsdp')``, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES, *([None] * (ndim - 1))))


def num_batch_shards(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def shard_batch(batch, mesh: Mesh):
    """``device_put`` every array of a (single-process) batch pytree split along its dim 0.

    The batch size must be divisible by ``data * fsdp``.  Multi-process: use
    ``host_local_to_global`` with each host's own rows instead.
    """

    def put(x):
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        if x.shape[0] % num_batch_shards(mesh):
            raise ValueError(
                f"batch dimension {x.shape[0]} is not divisible by data*fsdp = "
                f"{num_batch_shards(mesh)}"
            )
        return jax.device_put(x, batch_sharding(mesh, x.ndim))

    return jax.tree.map(put, batch)


# ---------------------------------------------------------------------------------------------
# multi-host


def maybe_initialize_distributed(cfg: MeshConfig) -> bool:
    """Call ``jax.distributed.initialize`` when ``cfg.distributed``; returns whether it did.

    Explicit ``coordinator_address`` / ``num_processes`` / ``process_id`` are passed through;
    unset ones (``""``, ``0``, ``-1``) are left to JAX's auto-detection (TPU metadata, SLURM,
    Open MPI, ``JAX_COORDINATOR_ADDRESS`` ...).  Must run before any other JAX call touches a
    device.  Idempotent.
    """
    if not cfg.distributed:
        return False
    if jax.distributed.is_initialized():
        return True
    kwargs = {}
    if cfg.coordinator_address:
        kwargs["coordinator_address"] = cfg.coordinator_address
    if cfg.num_processes > 0:
        kwargs["num_processes"] = cfg.num_processes
    if cfg.process_id >= 0:
        kwargs["process_id"] = cfg.process_id
    jax.distributed.initialize(**kwargs)
    log.info(
        "jax.distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def is_main_process() -> bool:
    """Only process 0 logs and writes non-Orbax files."""
    return jax.process_index() == 0


def process_batch_slice(global_batch_size: int, mesh: Mesh | None = None) -> slice:
    """The rows of a global batch that this process samples and scores.

    With ``mesh``: exactly the rows that the batch sharding puts on this process's devices
    (what ``host_local_to_global`` expects from it); they must be one contiguous block, which
    holds for meshes built by ``make_mesh``.  Without: the process-index-th equal block.
    """
    if mesh is None:
        n = jax.process_count()
        if global_batch_size % n:
            raise ValueError(f"global batch {global_batch_size} not divisible by {n} processes")
        per = global_batch_size // n
        return slice(jax.process_index() * per, (jax.process_index() + 1) * per)
    index_map = batch_sharding(mesh, 1).addressable_devices_indices_map((global_batch_size,))
    starts = sorted(
        {(idx[0].start or 0, idx[0].stop or global_batch_size) for idx in index_map.values()}
    )
    lo, hi = starts[0][0], starts[0][1]
    for a, b in starts[1:]:
        if a != hi:
            raise ValueError(f"this process's batch rows are not contiguous: {starts}")
        hi = b
    return slice(lo, hi)


def host_local_to_global(local_batch, mesh: Mesh):
    """Assemble global arrays (batch dim over ``('data','fsdp')``) from each host's rows.

    Every process passes its own ``[B_local, ...]`` rows, the rows
    ``process_batch_slice(B, mesh)`` names; the result is a global ``[B, ...]`` jax.Array.
    With one process this equals ``shard_batch``.
    """

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(batch_sharding(mesh, x.ndim), x)

    return jax.tree.map(put, local_batch)


def global_to_host_local(global_batch):
    """This host's rows of globally sharded arrays as numpy (inverse of the above)."""

    def get(x):
        shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
        seen, parts = set(), []
        for s in shards:
            key = s.index[0].start or 0
            if key not in seen:
                seen.add(key)
                parts.append(np.asarray(s.data))
        return np.concatenate(parts, axis=0)

    return jax.tree.map(get, global_batch)
