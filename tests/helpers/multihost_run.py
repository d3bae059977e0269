"""One PPO train step + an Orbax save/restore across several *processes* (jax.distributed on
CPU with gloo collectives), each holding 2 fake CPU devices and only its own rows of the batch.

Usage: python multihost_run.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR
NUM_PROCESSES=1 runs the single-device reference (a 1x1x1 mesh, no jax.distributed).
Process 0 writes OUT_DIR/result.npz (loss, grads, new params, restored params).
"""

import os
import sys

pid, nproc, port, out_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from toy_model import (  # noqa: E402
    init_toy_params,
    random_ppo_batch,
    toy_apply,
    toy_logical_axes,
)
from train_states import create_sharded_train_state  # noqa: E402

from ppocoder_jax.checkpoint.manager import CheckpointManager, abstract_with_shardings  # noqa: E402
from ppocoder_jax.config import KLConfig, MeshConfig, OptimConfig, PPOConfig  # noqa: E402
from ppocoder_jax.parallel.mesh import (  # noqa: E402
    host_local_to_global,
    is_main_process,
    make_mesh,
    maybe_initialize_distributed,
    process_batch_slice,
)
from ppocoder_jax.ppo.state import make_optimizer  # noqa: E402
from ppocoder_jax.ppo.train_step import build_train_step  # noqa: E402


def main():
    if nproc > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        maybe_initialize_distributed(
            MeshConfig(
                distributed=True,
                coordinator_address=f"localhost:{port}",
                num_processes=nproc,
                process_id=pid,
            )
        )
        assert jax.process_count() == nproc and jax.device_count() == 2 * nproc
        mesh = make_mesh(MeshConfig(data=1, fsdp=2, tensor=nproc))  # fsdp x tensor over hosts
    else:
        mesh = make_mesh(MeshConfig(), jax.devices()[:1])
    vocab, batch_size = 32, 16
    ppo = PPOConfig(vf_coef=0.5, entropy_coef=0.01)
    tx = make_optimizer(OptimConfig(learning_rate=1e-3, max_grad_norm=1.0))
    state, shardings = create_sharded_train_state(
        lambda k: init_toy_params(k, vocab=vocab, d_model=8, d_ff=16),
        toy_logical_axes,
        tx,
        KLConfig(),
        jax.random.PRNGKey(0),
        mesh,
    )
    full = random_ppo_batch(0, batch_size, 5, 7, vocab)
    rows = process_batch_slice(batch_size, mesh)
    # each host only ever sees its own rows (as when it samples and scores them itself)
    local = jax.tree.map(lambda x: x[rows], full)
    batch = host_local_to_global(local, mesh)
    step = build_train_step(toy_apply, tx, ppo, mesh, shardings, return_grads=True)
    state, metrics, grads = step(state, batch, np.arange(batch_size, dtype=np.int32))

    # multi-host Orbax save (every process writes its shards) and restore
    mgr = CheckpointManager(os.path.join(out_dir, "ck"), max_to_keep=1)
    mgr.save(1, state, data_state={"position": 1}, config_yaml="x: 1\n")
    mgr.wait_until_finished()
    restored = mgr.restore(abstract_with_shardings(jax.eval_shape(lambda: state), shardings))
    mgr.close()
    assert restored.data_state == {"position": 1}

    gather = multihost_utils.process_allgather
    out = {
        "loss": np.asarray(gather(metrics["loss"], tiled=True)),
        "rows": np.array([rows.start, rows.stop]),
    }
    for prefix, tree in (("grad", grads), ("param", state.params), ("restored", restored.state)):
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            out[prefix + jax.tree_util.keystr(path)] = np.asarray(gather(leaf, tiled=True))
    if is_main_process():
        np.savez(os.path.join(out_dir, "result.npz"), **out)
    print(f"process {pid}: rows {rows.start}:{rows.stop} ok", flush=True)


if __name__ == "__main__":
    main()
