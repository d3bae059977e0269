"""Orbax checkpoints with everything an exact resume needs.

One checkpoint (``<directory>/<step>/``) holds three Orbax items, and a fourth when given:

* ``state``: the whole device ``TrainState`` pytree (policy + value params, optimizer state with
  its step count, KL controller state, RNG key, step), saved sharded (every host writes its
  shards; multi-host works as long as every process calls ``save``/``restore``);
* ``meta`` (JSON): ``step``, ``data_state`` (any JSON-able dict: position in the data stream,
  epoch, ...), ``extra`` (any JSON-able dict: e.g. metrics, wall-clock) and the format version;
* ``config`` (JSON): ``{"yaml": <the resolved config as YAML text>}``;
* ``rollout`` (optional): a pytree of arrays saved like ``state``; the PPO trainer keeps there a
  batch sampled but not yet learned from (``train.overlap_rollouts``), read back with
  ``restore_rollout``.

Atomicity: Orbax writes into a temporary directory and renames it when every item is complete,
so a run killed mid-save (SIGKILL included) leaves the previous checkpoints intact; leftover
temporary directories are ignored by ``latest_step`` and removed on the next start.  Keep-N:
``max_to_keep`` newest checkpoints survive.  Saves are asynchronous by default (the device
arrays are copied to host, then written in a background thread while training goes on); call
``wait_until_finished()`` (or ``close()``) before relying on a save having landed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

FORMAT_VERSION = 1


@dataclasses.dataclass
class Restored:
    step: int
    state: Any  # the TrainState (sharded like the abstract target it was restored into)
    data_state: dict
    config_yaml: str
    extra: dict


def abstract_with_shardings(abstract_tree, shardings=None):
    """``ShapeDtypeStruct`` pytree carrying the target shardings (the restore target).

    ``abstract_tree``: arrays or ``ShapeDtypeStruct`` (``jax.eval_shape`` output);
    ``shardings``: a matching pytree of ``Sharding`` (``train_state_shardings``), or ``None`` to
    take each array's own ``.sharding``.
    """
    if shardings is None:
        return jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), abstract_tree
        )
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_tree, shardings
    )


class CheckpointManager:
    """Thin wrapper over ``orbax.checkpoint.CheckpointManager`` for PPO runs.

    Example::

        mgr = CheckpointManager(run_dir / "checkpoints", max_to_keep=cfg.train.keep_checkpoints)
        if mgr.latest_step() is not None:
            r = mgr.restore(abstract_with_shardings(jax.eval_shape(build_state), shardings))
            state, position = r.state, r.data_state["position"]
        ...
        mgr.save(step, state, data_state={"position": position}, config_yaml=yaml_text)
        ...
        mgr.close()
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_to_keep: int | None = 3,
        async_save: bool = True,
        create: bool = True,
    ):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=create,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
        )
        self._mgr = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_names=("state", "meta", "config", "rollout"),
        )

    # -- queries ------------------------------------------------------------------------------

    def latest_step(self) -> int | None:
        return self._mgr.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._mgr.all_steps())

    # -- save / restore -----------------------------------------------------------------------

    def save(
        self,
        step: int,
        state: Any,
        *,
        data_state: dict | None = None,
        config_yaml: str = "",
        extra: dict | None = None,
        force: bool = True,
        rollout: Any = None,
    ) -> bool:
        """Save ``state`` and the host-side resume info under ``step``; returns whether a save
        was started.  ``data_state``/``extra`` must be JSON-serialisable (checked here, before
        anything is written).  ``rollout``: an optional pytree of arrays saved beside the state
        (``restore_rollout``)."""
        meta = {
            "format_version": FORMAT_VERSION,
            "step": int(step),
            "data_state": dict(data_state or {}),
            "extra": dict(extra or {}),
        }
        json.dumps(meta)  # fail early and loudly on non-JSON data
        items = {
            "state": ocp.args.StandardSave(state),
            "meta": ocp.args.JsonSave(meta),
            "config": ocp.args.JsonSave({"yaml": config_yaml}),
        }
        if rollout is not None:
            items["rollout"] = ocp.args.StandardSave(rollout)
        return self._mgr.save(int(step), args=ocp.args.Composite(**items), force=force)

    def restore(self, abstract_state: Any, step: int | None = None) -> Restored:
        """Restore ``step`` (default: the latest) into the layout of ``abstract_state``.

        ``abstract_state``: a pytree of ``jax.ShapeDtypeStruct`` with shardings (see
        ``abstract_with_shardings``) or of concrete arrays (their shardings are used) with the
        same structure as the saved state.
        """
        if step is None:
            step = self.latest_step()
            if step is None:
                raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if not all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(abstract_state)):
            abstract_state = abstract_with_shardings(abstract_state)
        out = self._mgr.restore(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                meta=ocp.args.JsonRestore(),
                config=ocp.args.JsonRestore(),
            ),
        )
        meta = out["meta"]
        return Restored(
            step=int(meta["step"]),
            state=out["state"],
            data_state=dict(meta.get("data_state", {})),
            config_yaml=str(out["config"].get("yaml", "")),
            extra=dict(meta.get("extra", {})),
        )

    def restore_rollout(self, step: int, abstract_rollout: Any) -> Any:
        """The ``rollout`` item of ``step`` in the layout of ``abstract_rollout`` (as for
        ``restore``); FileNotFoundError when that checkpoint has none."""
        if not (self.directory / str(int(step)) / "rollout").exists():
            raise FileNotFoundError(f"checkpoint {step} in {self.directory} holds no rollout")
        if not all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(abstract_rollout)):
            abstract_rollout = abstract_with_shardings(abstract_rollout)
        out = self._mgr.restore(
            int(step),
            args=ocp.args.Composite(rollout=ocp.args.StandardRestore(abstract_rollout)),
        )
        return out["rollout"]

    def wait_until_finished(self) -> None:
        self._mgr.wait_until_finished()

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
