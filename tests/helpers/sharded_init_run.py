"""Build the real PPOTrainer on 8 fake CPU devices (mesh data=1, fsdp=8) and measure what each
device holds: the train state (parameters + Adam moments + counters) and the frozen reference,
fresh, from a Hugging Face export, and resumed from an Orbax checkpoint.

Usage: XLA_FLAGS=--xla_force_host_platform_device_count=8 \
    python sharded_init_run.py RUN_DIR t5|decoder
Asserts as it goes; prints one JSON line of byte counts (tests/test_sharded_init.py).
"""

import gc
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ppocoder_jax.config import load_config  # noqa: E402
from ppocoder_jax.data import load_task  # noqa: E402
from ppocoder_jax.pipeline.policy_loader import load_policy  # noqa: E402
from ppocoder_jax.pipeline.ppo_trainer import PPOTrainer  # noqa: E402
from ppocoder_jax.pipeline.run_dir import MetricsLogger  # noqa: E402
from ppocoder_jax.ppo import state as state_module  # noqa: E402

FSDP = 8


def per_device(tree) -> dict:
    out = {d: 0 for d in jax.devices()}
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            out[shard.device] += shard.data.nbytes
    return out


def replicated_bytes(tree) -> int:
    return sum(x.nbytes for x in jax.tree.leaves(tree) if x.sharding.is_fully_replicated)


def check_layout(tree, what: str) -> dict:
    """Each device holds 1/fsdp of the sharded leaves plus the (small) replicated ones."""
    total = sum(x.nbytes for x in jax.tree.leaves(tree))
    repl = replicated_bytes(tree)
    counts = per_device(tree)
    even = (total - repl) / FSDP + repl
    for device, got in counts.items():
        # "within padding": a dimension the mesh does not divide is replicated (counted in repl)
        assert abs(got - even) <= 0.01 * even, (what, device, got, even, total, repl)
    assert repl <= 0.02 * total, (what, "replicated", repl, total)
    return {"total": total, "replicated": repl, "per_device": max(counts.values())}


def buffers(tree) -> set:
    return {
        s.data.unsafe_buffer_pointer() for x in jax.tree.leaves(tree) for s in x.addressable_shards
    }


def live_bytes_per_device() -> dict:
    gc.collect()
    return per_device(list(jax.live_arrays()))


def _traced_only(real):
    """init_train_state may only be traced (inside jit with out_shardings), never run eagerly
    on whole arrays (the old start-up built the Adam state unsharded, then moved it)."""

    def init_train_state(params, *args, **kwargs):
        leaves = jax.tree.leaves(params)
        assert all(isinstance(x, jax.core.Tracer) for x in leaves), "eager init_train_state"
        return real(params, *args, **kwargs)

    return init_train_state


state_module.init_train_state = _traced_only(state_module.init_train_state)


def make_trainer(cfg, params, model_cfg, tokenizer, run_dir):
    task = load_task(cfg.data, tokenizer)
    logger = MetricsLogger(run_dir)
    return PPOTrainer(cfg, params, model_cfg, tokenizer, task.ppo_examples(), run_dir, logger, None)


def main() -> None:
    root, family = Path(sys.argv[1]), sys.argv[2]
    assert len(jax.devices()) == FSDP
    base = ["--config", "tiny"]
    overrides = [f"model.family={family}", "mesh.data=1", f"mesh.fsdp={FSDP}", "kl.init_coef=0.1"]
    report = {}

    # 1) fresh: random tiny model (host arrays) -> trainer
    cfg = load_config(base[1], [*overrides, f"train.run_dir={root / 'fresh'}"])
    params, model_cfg, tokenizer = load_policy(cfg)
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(params)), "host arrays"
    host = jax.tree.map(np.copy, params)
    del params
    trainer = make_trainer(cfg, host, model_cfg, tokenizer, root / "fresh")
    state, ref = trainer.state, trainer.collector.ref_params
    report["state"] = check_layout(state, "state")
    report["reference"] = check_layout(ref, "reference")
    report["params"] = check_layout(state.params, "params")
    # nothing else on any device: no stray whole copy from start-up (1 MB slack: rng, counters)
    live = live_bytes_per_device()
    held = {d: a + b for (d, a), b in zip(per_device(state).items(), per_device(ref).values())}
    for device in live:
        assert live[device] - held[device] < (1 << 20), (device, live[device], held[device])
    # the reference shares no buffer with the policy, and outlives the policy's buffers
    assert not buffers(ref) & buffers(state), "reference aliases the train state"
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(ref), host)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params), host)
    trainer.save()
    trainer.ckpt.close()
    saved = jax.device_get(trainer.state)
    for leaf in jax.tree.leaves(trainer.state.params):
        leaf.delete()  # what the donating train step does to the old state
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(ref), host)
    del trainer, state, ref

    # 2) resumed: Orbax restores each device's shards into the target shardings
    trainer = make_trainer(cfg, host, model_cfg, tokenizer, root / "fresh")
    assert trainer.iteration == 0 and trainer._saved_iteration == 0
    report["resumed_state"] = check_layout(trainer.state, "resumed state")
    check_layout(trainer.collector.ref_params, "resumed reference")
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(trainer.state), saved)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(trainer.collector.ref_params), host)
    assert not buffers(trainer.collector.ref_params) & buffers(trainer.state)
    trainer.ckpt.close()
    del trainer

    # 3) from a Hugging Face directory (export-hf of the reference, loaded by model.path)
    from ppocoder_jax.model.store import export_hf

    hf = root / "hf"
    export_hf(root / "fresh" / "reference_model", hf)
    cfg = load_config(base[1], [*overrides, f"train.run_dir={root / 'hf_run'}", f"model.path={hf}"])
    params, model_cfg, tokenizer = load_policy(cfg)
    trainer = make_trainer(cfg, params, model_cfg, tokenizer, root / "hf_run")
    del params
    report["hf_state"] = check_layout(trainer.state, "state from HF")
    check_layout(trainer.collector.ref_params, "reference from HF")
    trainer.ckpt.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
