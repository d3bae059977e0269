"""Device mesh ('data', 'fsdp', 'tensor'), logical-axis rules and multi-host helpers.

See mesh.py (mesh, batch placement, jax.distributed, launch notes) and rules.py (the table).
"""

from ppocoder_jax.parallel.mesh import (
    BATCH_AXES,
    MESH_AXES,
    batch_sharding,
    global_to_host_local,
    host_local_to_global,
    is_main_process,
    make_mesh,
    maybe_initialize_distributed,
    process_batch_slice,
    replicated,
    resolve_mesh_shape,
    shard_batch,
)
from ppocoder_jax.parallel.rules import (
    DEFAULT_RULES,
    logical_to_partition_spec,
    logical_to_shardings,
)

__all__ = [
    "BATCH_AXES",
    "DEFAULT_RULES",
    "MESH_AXES",
    "batch_sharding",
    "global_to_host_local",
    "host_local_to_global",
    "is_main_process",
    "logical_to_partition_spec",
    "logical_to_shardings",
    "make_mesh",
    "maybe_initialize_distributed",
    "process_batch_slice",
    "replicated",
    "resolve_mesh_shape",
    "shard_batch",
]
