"""Which training metric goes where: the panels of each phase (``PPO_PANELS``, ``SFT_PANELS``),
the counters and constants summarised in the caption instead (``PPO_CAPTION``,
``SFT_CAPTION``), the legend labels, and the series drawn specially (``TOTALS``,
``NOT_SMOOTHED``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Panel:
    title: str
    left: tuple[str, ...]
    ylabel: str
    right: tuple[str, ...] = ()
    ylabel_right: str = ""
    ylim: tuple[float, float] | None = None
    ylim_right: tuple[float, float] | None = None


# PPO iteration metrics (ppo_trainer.run_iteration; update means from train_step.summarize_metrics)
PPO_PANELS: tuple[Panel, ...] = (
    Panel(
        "Reward (training samples)",
        ("score", "reward_tests", "reward_compile", "reward_ast", "reward_dfg"),
        "mean reward per sample",
    ),
    Panel(
        "Pass / compile rate",
        ("pass_rate", "compile_rate"),
        "fraction of samples",
        ylim=(-0.02, 1.02),
    ),
    Panel(
        "KL to the reference model",
        ("kl",),
        "KL (nats per sample)",
        ("kl_coef",),
        "KL coefficient β",
    ),
    Panel(
        "Policy loss and clipping",
        ("policy_loss", "policy_loss_token_mean", "loss"),
        "loss",
        ("clip_frac", "dual_clip_frac"),
        "clipped fraction of tokens",
    ),
    Panel(
        "Value loss and clipping",
        ("value_loss",),
        "value loss (per token)",
        ("vf_clip_frac",),
        "clipped fraction of values",
    ),
    Panel(
        "Update size",
        ("approx_kl", "kl_loss"),
        "KL (nats/token)",
        ("grad_norm",),
        "gradient norm",
    ),
    Panel(
        "Entropy and explained variance",
        ("entropy",),
        "entropy (nats/token)",
        ("explained_variance",),
        "explained variance (value head)",
    ),
    Panel(
        "Sample length and degeneration",
        ("mean_length",),
        "tokens per sample",
        ("repeat_collapse_frac",),
        "share of samples that are one token repeated",
    ),
    Panel(
        "Turns (rollout.turns > 1)",
        ("public_pass_turn1", "fix_rate", "turn_rows_done_frac"),
        "fraction",
        ("turns_mean",),
        "attempts per trajectory",
        ylim=(-0.02, 1.02),
    ),
    Panel(
        "Time per iteration",
        ("time_total_s", "time_sample_s", "time_rewards_s", "time_update_s", "time_feedback_s"),
        "seconds",
    ),
    Panel(
        "Rewards: device waiting, pool busy, throughput",
        ("reward_wait_frac", "reward_busy_frac"),
        "fraction",
        ("reward_programs_per_s",),
        "programs scored per second",
        ylim=(-0.02, 1.02),
    ),
)
# Counters and per-iteration constants: never curves, summarised in the caption.
PPO_CAPTION: dict[str, str] = {
    "samples": "samples per iteration",
    "num_steps": "optimizer steps per iteration",
    "value_warmup": "value-only warm-up",
    "infra_errors": "infra errors (masked)",
    "reward_errors": "reward errors (masked)",
    "groups_dropped": "groups dropped (dynamic sampling)",
    "rollout_lag": "updates between sampling and learning (train.overlap_rollouts)",
    "masked_plugin": "samples a reward plugin masked",
    "masked_nonfinite": "samples with a non-finite reward part (masked)",
    "skipped_updates": "optimizer steps skipped (non-finite loss or gradient)",
}
# Series named by prefix: each reward plugin's mean gets a curve in one panel of its own
# (reward_plugin/<name>); its masked count (masked_plugin/<name>) goes to the caption.
PLUGIN_PREFIX = "reward_plugin/"
COUNTER_PREFIXES = ("masked_",)
SFT_PANELS: tuple[Panel, ...] = (
    Panel("Cross-entropy", ("loss", "val_loss"), "cross-entropy (nats/token)"),
)
SFT_CAPTION: dict[str, str] = {"elapsed_s": "wall time"}
PHASE_LABELS: dict[str, dict[str, str]] = {"sft": {"loss": "training batch"}}
PHASES: dict[str, tuple[tuple[Panel, ...], dict[str, str], str]] = {
    "ppo": (PPO_PANELS, PPO_CAPTION, "PPO iteration"),
    "sft": (SFT_PANELS, SFT_CAPTION, "SFT step"),
}
TOTALS = {"score", "time_total_s"}  # drawn black and broad under their parts (one run)
NOT_SMOOTHED = {"kl_coef", "val_loss"}  # set by a controller / measured rarely: not noise


LABELS: dict[str, str] = {
    "score": "total reward",
    "reward_tests": "unit-test part",
    "reward_compile": "compile part",
    "reward_ast": "AST-match part",
    "reward_dfg": "data-flow part",
    "pass_rate": "pass rate",
    "compile_rate": "compile rate",
    "kl": "KL",
    "kl_coef": "β",
    "policy_loss": "policy loss (as optimised)",
    "policy_loss_token_mean": "policy loss per token",
    "public_pass_turn1": "turn 1 passes its public tests",
    "fix_rate": "fixed by the feedback",
    "turn_rows_done_frac": "rows sampled though done",
    "turns_mean": "attempts",
    "loss": "total loss",
    "clip_frac": "clip fraction",
    "dual_clip_frac": "dual-clip fraction",
    "kl_loss": "k3 KL to the reference (in the loss)",
    "value_loss": "value loss",
    "vf_clip_frac": "value clip fraction",
    "approx_kl": "approx. KL old → new",
    "grad_norm": "gradient norm",
    "entropy": "entropy",
    "explained_variance": "explained variance",
    "mean_length": "tokens",
    "time_total_s": "total",
    "time_sample_s": "sample",
    "time_rewards_s": "score (rewards)",
    "time_update_s": "update",
    "time_feedback_s": "feedback between turns (in sample)",
    "repeat_collapse_frac": "collapsed samples",
    "reward_wait_frac": "device waiting",
    "reward_busy_frac": "pool busy",
    "reward_programs_per_s": "programs/s",
    "val_loss": "validation",
}
