"""ppocoder-jax: PPOCoder (PPO with execution feedback for code models) in JAX/Flax.

Data flow, one package per stage:
    data/        -> tasks and datasets (prompts, references, tests)
    model/       -> the Flax CodeT5 policy + value head, HF import/export, tokenizer
    rollout/     -> jitted sampling with a KV cache (token ids, masks, log-probs, values)
    rewards/     -> host-side execution feedback (sandbox) and syntax/data-flow matching
    ppo/         -> KL-penalised rewards, GAE, PPO losses, the sharded train step
    checkpoint/  -> Orbax checkpoints and exact resume
    pipeline/    -> sft / train / eval / plot jobs wiring the stages together
See docs/ARCHITECTURE.md for the interfaces between stages.
"""

__version__ = "0.1.0"
