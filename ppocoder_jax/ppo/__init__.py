"""PPO learner: pure masked kernels, KL controllers, the train state and the sharded train step.

See docs/ARCHITECTURE.md ("PPO") and the module docstrings; the public names are re-exported
here.
"""

from ppocoder_jax.ppo.kernels import (
    entropy_from_logits,
    exact_kl_from_logits,
    explained_variance,
    gae,
    kl_penalised_rewards,
    last_valid_index,
    masked_mean,
    masked_var,
    policy_loss,
    token_logprobs,
    value_loss,
    whiten,
)
from ppocoder_jax.ppo.kl import KLState, init_kl_state, update_kl_state
from ppocoder_jax.ppo.state import (
    TrainState,
    create_sharded_train_state,
    create_train_state_from_params,
    frozen_copy,
    init_train_state,
    make_optimizer,
    make_schedule,
    shard_train_state,
    train_state_shardings,
)
from ppocoder_jax.ppo.train_step import (
    ApplyFn,
    PPOBatch,
    build_loss_and_grads,
    build_train_step,
    compute_advantages,
    learn_from_rollout,
    loss_and_grads,
    minibatch_indices,
    ppo_batch_shardings,
    ppo_update,
    update_state_kl,
)

__all__ = [
    "ApplyFn",
    "KLState",
    "PPOBatch",
    "TrainState",
    "build_loss_and_grads",
    "build_train_step",
    "compute_advantages",
    "create_sharded_train_state",
    "create_train_state_from_params",
    "entropy_from_logits",
    "exact_kl_from_logits",
    "frozen_copy",
    "explained_variance",
    "gae",
    "init_kl_state",
    "init_train_state",
    "kl_penalised_rewards",
    "last_valid_index",
    "learn_from_rollout",
    "loss_and_grads",
    "make_optimizer",
    "make_schedule",
    "masked_mean",
    "masked_var",
    "minibatch_indices",
    "policy_loss",
    "ppo_batch_shardings",
    "ppo_update",
    "shard_train_state",
    "token_logprobs",
    "train_state_shardings",
    "update_kl_state",
    "update_state_kl",
    "value_loss",
    "whiten",
]
