"""From a batch's reward parts to the Experience's columns, its metrics and the masking caps.

`with_rewards` puts every sample's `RewardParts.columns()` into global [B] arrays by name and
is the last guard before the learner: a total that is not finite is masked
(`masked_nonfinite`), whatever reward object produced it. `reward_metrics` averages the parts
over valid samples, counts why samples were masked (reward_error, masked_infra, masked_plugin,
masked_nonfinite, and per plugin), and ends the run when too many were
(`reward.max_error_frac`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ppocoder_jax.errors import UserError
from ppocoder_jax.ppo.experience import Experience, column_counts, reward_means

# 0/1 columns counted over every sample (why a sample was left out of the update)
MASKING_COLUMNS = ("reward_error", "masked_infra", "masked_plugin", "masked_nonfinite")
# RewardParts.columns() of a reward without plugins
BUILTIN_COLUMNS = (
    "total", "valid", "compile", "tests", "ast", "dfg", "compiled", "passed", "reward_error",
)  # fmt: skip


def with_rewards(experience: Experience, parts, mesh, names=None) -> Experience:
    """The batch with this host's reward parts assembled into global [B] columns by name
    (`names`: the columns every host has, needed when this host has no rows)."""
    from ppocoder_jax.parallel.mesh import host_local_to_global

    rows = [p.columns() for p in parts]
    names = list(rows[0]) if rows else list(names or BUILTIN_COLUMNS)
    local = {n: np.asarray([r[n] for r in rows], np.float32).reshape(-1) for n in names}
    # (Every host has the same columns, as host_local_to_global needs.)
    bad = ~np.isfinite(local["total"])
    flagged = local.get("masked_nonfinite", np.zeros_like(local["total"]))
    local["masked_nonfinite"] = np.maximum(flagged, bad).astype(np.float32)
    if bad.any():
        local["valid"] = np.where(bad, 0.0, local["valid"]).astype(np.float32)
        local["total"] = np.where(bad, 0.0, local["total"]).astype(np.float32)
    columns = host_local_to_global(local, mesh)
    scores, valid = columns.pop("total"), columns.pop("valid")
    return experience.replace(scores=scores, valid=valid, rewards=columns)


def reward_metrics(cfg, experience: Experience, parts, iteration: int) -> tuple[dict, float]:
    """(reward means, masking counts and per-plugin values of a scored batch, its mean score
    over valid samples); UserError when too many samples were masked."""
    means = reward_means(experience)
    counts = column_counts(experience, MASKING_COLUMNS)
    reward_errors = counts.get("reward_error", 0)
    _check_reward_errors(cfg, reward_errors, experience.num_rows, parts, iteration)
    plugin_masked = _plugin_masked(experience)
    _check_masked(cfg, counts, plugin_masked, experience.num_rows, iteration)
    num_invalid = experience.num_rows - int(jax.device_get(experience.valid.sum()))
    if "masked_infra" in counts:
        infra_errors = counts["masked_infra"]
    else:  # a reward without the masking columns: every other masked sample
        infra_errors = num_invalid - reward_errors
    metrics = {
        "reward_compile": means["compile"],
        "reward_tests": means["tests"],
        "reward_ast": means["ast"],
        "reward_dfg": means["dfg"],
        "compile_rate": means["compiled"],
        "pass_rate": means["passed"],
        "samples": experience.num_rows,
        "infra_errors": infra_errors,
        "reward_errors": reward_errors,
        **{k: v for k, v in counts.items() if k not in ("masked_infra", "reward_error")},
        # each reward plugin's mean over the samples it scored, and how many it masked
        **{f"reward_{name}": means[name] for name in plugin_masked},
        **{f"masked_{name}": n for name, n in plugin_masked.items()},
    }
    return metrics, means["total"]


def _plugin_masked(experience: Experience) -> dict[str, int]:
    """Per reward plugin column (`plugin/<name>`): the samples it gave no finite value."""
    counts = {
        name: (~jnp.isfinite(column)).sum()
        for name, column in experience.rewards.items()
        if name.startswith("plugin/")
    }
    got = jax.device_get(counts)  # one transfer
    return {name: int(got[name]) for name in counts}


def _check_masked(cfg, counts: dict, plugin_masked: dict, total: int, iteration: int) -> None:
    """Samples masked for a plugin's missing value or a non-finite part (and, with a remote
    reward backend, for an infrastructure error) are capped like reward errors
    (`reward.max_error_frac`): a reward that scores (almost) nothing must not train on what is
    left and exit 0."""
    bound = cfg.reward.max_error_frac
    capped = [
        ("masked_plugin", "a reward plugin gave no finite value"),
        ("masked_nonfinite", "a reward part was NaN or infinite"),
    ]
    # Rewards from servers elsewhere: a sample without a verdict after the retries is masked
    # like a reward error, and capped the same way (a dead pool must not train on nothing).
    if getattr(cfg.reward, "backend", "local") != "local":
        capped.append(("masked_infra", "no verdict from the reward servers"))
    for name, why in capped:
        count = counts.get(name, 0)
        if count > bound * total:
            worst = max(plugin_masked.items(), key=lambda kv: kv[1], default=None)
            which = ""
            if name == "masked_plugin" and worst is not None:
                which = f" (the most by {worst[0].removeprefix('plugin/')}: {worst[1]})"
            raise UserError(
                f"{count} of {total} samples masked in PPO iteration {iteration}: "
                f"{why}{which}; more than reward.max_error_frac={bound}"
            )


def _check_reward_errors(cfg, count: int, total: int, parts, iteration: int) -> None:
    """Masked samples whose reward raised are logged; too many in one batch end the run."""
    if not count:
        return
    first = next((p.reward_error for p in parts if p.reward_error is not None), None)
    bound = cfg.reward.max_error_frac
    if count > bound * total:
        raise UserError(
            f"{count} of {total} samples' rewards raised in PPO iteration {iteration} "
            f"(more than reward.max_error_frac={bound}); first on this host: {first}"
        )
    print(f"PPO iteration {iteration}: {count} sample(s) masked, reward raised: {first}")
