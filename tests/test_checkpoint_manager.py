"""CheckpointManager: round trip of the whole TrainState and resume info, keep-N, atomicity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.tiny_models import single_device_mesh
from helpers.toy_model import init_toy_params, toy_logical_axes
from helpers.train_states import create_sharded_train_state

from ppocoder_jax.checkpoint.manager import CheckpointManager, abstract_with_shardings
from ppocoder_jax.config import KLConfig, OptimConfig
from ppocoder_jax.ppo.state import init_train_state, make_optimizer


def _state(seed=0):
    tx = make_optimizer(OptimConfig(max_grad_norm=1.0))
    st = init_train_state(
        init_toy_params(jax.random.PRNGKey(seed)), tx, KLConfig(), jax.random.PRNGKey(seed + 1)
    )
    # make every part non-trivial: one optimizer update, a moved KL coef and step
    grads = jax.tree.map(jnp.ones_like, st.params)
    _, opt = tx.update(grads, st.opt_state, st.params)
    return st.replace(
        opt_state=opt, kl=st.kl.replace(coef=jnp.float32(0.123)), step=jnp.int32(seed + 5)
    ), tx


def _assert_equal_trees(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_roundtrip_keep_n_and_latest(tmp_path):
    states = {s: _state(s)[0] for s in (1, 2, 3)}
    with CheckpointManager(tmp_path / "ck", max_to_keep=2) as mgr:
        assert mgr.latest_step() is None
        for s, st in states.items():
            mgr.save(
                s,
                st,
                data_state={"position": s * 10, "epoch": 0},
                config_yaml=f"s: {s}\n",
                extra={"note": "x"},
            )
        mgr.wait_until_finished()
        assert mgr.all_steps() == [2, 3] and mgr.latest_step() == 3
        r = mgr.restore(jax.eval_shape(lambda: states[3]))
        assert r.step == 3 and r.data_state == {"position": 30, "epoch": 0}
        assert r.config_yaml == "s: 3\n" and r.extra == {"note": "x"}
        _assert_equal_trees(r.state, states[3])
        r2 = mgr.restore(states[1], step=2)  # concrete arrays as the target also work
        _assert_equal_trees(r2.state, states[2])
        with pytest.raises(TypeError):
            mgr.save(4, states[3], data_state={"bad": object()})
    # a reopened manager sees the same checkpoints
    mgr = CheckpointManager(tmp_path / "ck", max_to_keep=2)
    assert mgr.latest_step() == 3
    mgr.close()


def test_an_optional_rollout_item_round_trips(tmp_path):
    """A batch sampled but not learned from (train.overlap_rollouts) is saved beside the state;
    a checkpoint without one says so, and restores as before."""
    st = _state(1)[0]
    rollout = {"tokens": jnp.arange(12, dtype=jnp.int32).reshape(3, 4), "values": jnp.ones((3, 4))}
    with CheckpointManager(tmp_path / "ck") as mgr:
        mgr.save(1, st, data_state={"pending": True}, rollout=rollout)
        mgr.save(2, st)
        mgr.wait_until_finished()
        _assert_equal_trees(mgr.restore_rollout(1, rollout), rollout)
        with pytest.raises(FileNotFoundError):
            mgr.restore_rollout(2, rollout)
        _assert_equal_trees(mgr.restore(st, step=1).state, st)
        assert mgr.restore(st).data_state == {}


def test_partial_save_is_ignored(tmp_path):
    st, _ = _state()
    mgr = CheckpointManager(tmp_path / "ck", async_save=False)
    mgr.save(4, st, data_state={"position": 4})
    mgr.close()
    # what a SIGKILL in the middle of writing step 8 leaves behind: a temporary directory
    tmp = tmp_path / "ck" / "8.orbax-checkpoint-tmp-1234567"
    (tmp / "state").mkdir(parents=True)
    (tmp / "state" / "junk").write_text("partial")
    mgr = CheckpointManager(tmp_path / "ck")
    assert mgr.latest_step() == 4
    assert mgr.restore(jax.eval_shape(lambda: st)).data_state == {"position": 4}
    mgr.close()


def test_restore_into_sharded_layout(tmp_path):
    mesh = single_device_mesh()
    tx = make_optimizer(OptimConfig())
    state, shardings = create_sharded_train_state(
        init_toy_params, toy_logical_axes, tx, KLConfig(), jax.random.PRNGKey(0), mesh
    )
    with CheckpointManager(tmp_path / "ck") as mgr:
        mgr.save(1, state)
        mgr.wait_until_finished()
        target = abstract_with_shardings(jax.eval_shape(lambda: state), shardings)
        r = mgr.restore(target)
    _assert_equal_trees(r.state, state)
    assert r.state.params["body"]["wi"].sharding == shardings.params["body"]["wi"]
    assert r.data_state == {} and r.config_yaml == ""


_KILLED_BEFORE_COMMIT = """
import os, signal, sys
import jax.numpy as jnp
from orbax.checkpoint._src.path import atomicity
from ppocoder_jax.checkpoint.manager import CheckpointManager

rename = atomicity.async_path.rename


async def _rename_or_die(src, dst, *args, **kwargs):
    if os.path.basename(str(dst)).isdigit():  # the rename that commits a step: SIGKILL
        os.kill(os.getpid(), signal.SIGKILL)
    return await rename(src, dst, *args, **kwargs)

mgr = CheckpointManager(sys.argv[1])
mgr.save(4, {"w": jnp.arange(4.0)}, data_state={"position": 4})
mgr.wait_until_finished()
atomicity.async_path.rename = _rename_or_die
mgr.save(8, {"w": jnp.arange(4.0) + 8}, data_state={"position": 8})
mgr.wait_until_finished()
print("not killed")
"""


def test_a_save_killed_before_its_commit_is_never_restored(tmp_path):
    """A real Orbax save, killed after every file of step 8 was written but before the rename
    that commits it: the directory is complete yet uncommitted, and it is not a checkpoint."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_BEFORE_COMMIT, str(tmp_path / "ck")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stdout + proc.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert "4" in names and "8" not in names
    (leftover,) = [n for n in names if n.startswith("8.") and "tmp" in n]
    # every item written and committed inside it; only the step's own rename is missing
    items = sorted(p.name for p in (tmp_path / "ck" / leftover).iterdir())
    assert items == ["_CHECKPOINT_METADATA", "commit_success.txt", "config", "meta", "state"]
    mgr = CheckpointManager(tmp_path / "ck")
    assert mgr.latest_step() == 4 and mgr.all_steps() == [4]
    r = mgr.restore({"w": jnp.zeros(4)})
    assert r.data_state == {"position": 4}
    np.testing.assert_array_equal(np.asarray(r.state["w"]), np.arange(4.0))
    mgr.save(12, {"w": jnp.ones(4)})
    mgr.close()
    # the next run's manager cleans the leftover up
    assert not [p for p in (tmp_path / "ck").iterdir() if "tmp" in p.name]
