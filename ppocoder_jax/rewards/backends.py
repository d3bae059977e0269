"""The executor a reward uses, from `reward.backend`: this host's sandboxed pool, or servers
elsewhere (`ppocoder sandbox-serve`, or SandboxFusion). All give Future[ExecutionResult]s."""

from __future__ import annotations

import os

from ppocoder_jax.config import RewardConfig


def make_executor(cfg: RewardConfig):
    if cfg.backend == "local":
        from ppocoder_jax.rewards.execution import Executor

        return Executor(
            workers=cfg.workers,
            timeout_s=cfg.timeout_s,
            cache_size=cfg.cache_size,
            python_site=cfg.python_site,
            python_server=cfg.python_server,
            compile_servers=cfg.compile_servers,
        )
    from ppocoder_jax.rewards.remote.client import RemoteExecutor, SandboxServeDialect
    from ppocoder_jax.rewards.remote.sandbox_fusion import SandboxFusionDialect

    if cfg.backend == "remote":
        dialect = SandboxServeDialect()
    else:
        dialect = SandboxFusionDialect(timeout_s=cfg.timeout_s)
    executor = RemoteExecutor(
        cfg.endpoints,
        dialect=dialect,
        token=os.environ.get(cfg.token_env, ""),
        concurrency=cfg.endpoint_concurrency,
        request_timeout_s=cfg.request_timeout_s,
        retries=cfg.retries,
    )
    if cfg.backend == "remote":  # sandbox-serve has /health; SandboxFusion is asked per job
        try:
            executor.probe(cfg.timeout_s)
        except BaseException:
            executor.close()
            raise
    return executor
