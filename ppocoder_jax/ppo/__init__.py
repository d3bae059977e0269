"""PPO learner: pure masked kernels, KL controllers, the train state and the sharded train step.

See docs/ARCHITECTURE.md ("PPO") and the module docstrings; the public names are re-exported
here.
"""

from ppocoder_jax.ppo.experience import Experience
from ppocoder_jax.ppo.kernels import (
    clipped_surrogate,
    entropy_from_logits,
    exact_kl_from_logits,
    explained_variance,
    gae,
    group_mean_std,
    groups_with_spread,
    k3_kl,
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
from ppocoder_jax.ppo.learner import PPOLearner
from ppocoder_jax.ppo.registry import ADVANTAGES, LOSS_AGGREGATIONS, Registry
from ppocoder_jax.ppo.state import (
    TrainState,
    frozen_copy,
    init_train_state,
    make_optimizer,
    make_schedule,
    train_state_shardings,
)
from ppocoder_jax.ppo.train_step import (
    ApplyFn,
    PPOBatch,
    build_loss_and_grads,
    build_train_step,
    compute_advantages,
    kl_placement,
    learn_from_experience,
    loss_and_grads,
    minibatch_indices,
    ppo_batch_shardings,
    ppo_update,
    uses_reference,
)

__all__ = [
    "ADVANTAGES",
    "Experience",
    "PPOLearner",
    "ApplyFn",
    "LOSS_AGGREGATIONS",
    "Registry",
    "KLState",
    "PPOBatch",
    "TrainState",
    "build_loss_and_grads",
    "build_train_step",
    "clipped_surrogate",
    "compute_advantages",
    "entropy_from_logits",
    "exact_kl_from_logits",
    "frozen_copy",
    "explained_variance",
    "gae",
    "group_mean_std",
    "groups_with_spread",
    "init_kl_state",
    "init_train_state",
    "k3_kl",
    "kl_penalised_rewards",
    "kl_placement",
    "last_valid_index",
    "learn_from_experience",
    "loss_and_grads",
    "make_optimizer",
    "make_schedule",
    "masked_mean",
    "masked_var",
    "minibatch_indices",
    "policy_loss",
    "ppo_batch_shardings",
    "ppo_update",
    "token_logprobs",
    "train_state_shardings",
    "update_kl_state",
    "uses_reference",
    "value_loss",
    "whiten",
]
