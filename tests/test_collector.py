"""`RolloutCollector` with a fake reward (scores from the decoded text, no sandbox): what one
`next(params)` hands the learner, the data stream, the reward columns by name, and the batch
sampled ahead under `train.overlap_rollouts`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.fake_rewards import finished
from helpers.tiny_models import ppo_start

from ppocoder_jax.config import load_config
from ppocoder_jax.model.families import as_policy
from ppocoder_jax.parallel.mesh import make_mesh
from ppocoder_jax.rewards.composite import RewardParts
from ppocoder_jax.rollout.collector import RolloutCollector


class TextReward:
    """score = (len(text) % 5) / 4; sample 1 of every batch is an infrastructure error."""

    def __init__(self):
        self.seen = []

    def submit(self, examples, outputs):
        self.seen.append(list(outputs))
        scores = [(len(text) % 5) / 4 for text in outputs]
        return finished(
            [RewardParts(s, 1.0, s, 0.0, 0.0, "PASS", i == 1) for i, s in enumerate(scores)]
        )


@pytest.fixture(scope="module")
def start():
    return ppo_start()


def collector_for(start, *overrides):
    params, model_cfg, tokenizer, examples = start
    cfg = load_config(
        "tiny", ["train.run_dir=unused", "train.batch_size=3", "rollout.num_samples=2",
                 "train.steps=5", *overrides],
    )  # fmt: skip
    reward = TextReward()
    collector = RolloutCollector(
        cfg, as_policy(model_cfg), tokenizer, examples, make_mesh(cfg.mesh), reward, None,
        dtype=jnp.float32, sample_key=jax.random.PRNGKey(7),
    )  # fmt: skip
    return collector, reward, params


def test_next_hands_over_a_scored_experience(start):
    collector, reward, params = collector_for(start)
    e = collector.next(params)
    rows = 3 * 2
    assert e.tokens.shape[0] == e.prompt_ids.shape[0] == rows and e.scored
    assert e.logprobs.shape == e.values.shape == e.ref_logprobs.shape == e.tokens.shape
    assert e.exact_kl is None  # kl.estimator=sampled
    texts = reward.seen[0]
    want = np.asarray([(len(t) % 5) / 4 for t in texts], np.float32)
    want[1] = 0.0  # the masked sample's score does not count
    np.testing.assert_array_equal(np.asarray(e.scores) * np.asarray(e.valid), want)
    np.testing.assert_array_equal(np.asarray(e.valid), [1, 0, 1, 1, 1, 1])
    assert set(e.rewards) >= {"compile", "tests", "ast", "dfg", "passed", "masked_nonfinite"}
    mask = np.asarray(e.token_mask) == 0
    assert not np.asarray(e.logprobs)[mask].any()  # statistics are 0 off the mask
    m = collector.metrics
    assert m["samples"] == rows and m["infra_errors"] == 1 and m["reward_errors"] == 0
    assert m["rollout_lag"] == 0 and m["pass_rate"] == 1.0
    assert collector.stream.position == 3 and collector.iteration == 1
    assert collector.pending is None and collector.position_state() == {"position": 3}


def test_the_same_parameters_and_iteration_sample_the_same_batch(start):
    a, _, params = collector_for(start)
    b, _, _ = collector_for(start)
    ea, eb = a.next(params), b.next(params)
    np.testing.assert_array_equal(np.asarray(ea.tokens), np.asarray(eb.tokens))
    ea2 = a.next(params)  # the next iteration: the next prompts, the next key
    assert not np.array_equal(np.asarray(ea.prompt_ids), np.asarray(ea2.prompt_ids))


def test_overlap_samples_the_next_batch_ahead_with_the_same_parameters(start):
    plain, _, params = collector_for(start)
    ahead, reward, _ = collector_for(start, "train.overlap_rollouts=true")
    first = ahead.next(params)
    waiting = ahead.pending
    assert waiting is not None and waiting.iteration == 1 and waiting.scoring is not None
    assert ahead.position_state() == {"position": 3, "pending": True}
    assert len(reward.seen) == 2  # both batches went to the reward pool at once
    # what waits is what the next call returns, scored, lag 1
    second = ahead.next(params)
    assert ahead.metrics["rollout_lag"] == 1
    np.testing.assert_array_equal(np.asarray(second.tokens), np.asarray(waiting.experience.tokens))
    # the same batches a collector without overlap samples with the same parameters
    for e in (first, second):
        np.testing.assert_array_equal(np.asarray(plain.next(params).tokens), np.asarray(e.tokens))


def test_stop_strings_end_rows_before_the_statistics_and_the_reward(start):
    plain, _, params = collector_for(start)
    cut, reward, _ = collector_for(start, "rollout.stop=[e]", "ppo.old_logprobs=sampler")
    a, b = plain.next(params), cut.next(params)
    np.testing.assert_array_equal(np.asarray(a.tokens), np.asarray(b.tokens))  # same draws
    full, ended = np.asarray(a.token_mask), np.asarray(b.token_mask)
    assert (ended <= full).all() and ended.sum() < full.sum()
    assert all("e" not in text for text in reward.seen[0])
    off = ended == 0
    assert not np.asarray(b.logprobs)[off].any() and not np.asarray(b.values)[off].any()
