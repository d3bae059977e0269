"""Sampler: shape bucketing (few compiled programs) changes no sample; mesh sharding."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from helpers.fake_devices import run_on_fake_devices
from rollout_models import make_model, padded_prompts

from ppocoder_jax.config import RolloutConfig
from ppocoder_jax.rollout import Sampler, SamplingParams, bucket_length, sample
from ppocoder_jax.rollout.sampler import _sample_jit

SP = SamplingParams(temperature=0.9, top_k=6)


def test_bucket_length():
    assert bucket_length(1, (32, 64)) == 32
    assert bucket_length(32, (32, 64)) == 32
    assert bucket_length(33, (64, 32)) == 64
    assert bucket_length(65, (32, 64)) == 128
    assert bucket_length(129, (32, 64)) == 192


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    _, params, cfg = make_model(
        tmp_path_factory.mktemp("buckets"), scale=1.5, variant="v1.0", tied=True, vocab_size=40
    )
    return params, cfg


def test_bucketed_batch_equals_unbucketed(model):
    params, cfg = model
    ids, mask = padded_prompts([5, 9, 2, 7, 3], cfg.vocab_size, seed=4)
    wide = np.zeros((5, 12), np.int32)  # trailing all-padding columns are dropped
    wide[:, :9] = ids
    wide_mask = np.zeros_like(wide)
    wide_mask[:, :9] = mask
    sampler = Sampler(cfg, RolloutConfig(length_buckets=(8, 16)), batch_multiple=8)
    key = jax.random.PRNGKey(3)
    got = sampler(params, wide, wide_mask, key, sampling=SP, max_new_tokens=10, num_samples=2)
    assert sampler.shapes_seen == {(8, 16, 16, 2, SP)}
    want = sample(params, cfg, ids, mask, key, SP, 10, num_samples=2)
    assert got.tokens.shape == (10, 10) and got.prompt_ids.shape == (10, 9)
    for name in ("prompt_ids", "prompt_mask", "tokens", "token_mask", "lengths"):
        np.testing.assert_array_equal(
            np.asarray(getattr(got, name)), np.asarray(getattr(want, name)), err_msg=name
        )
    for name in ("logprobs", "values"):
        np.testing.assert_allclose(
            np.asarray(getattr(got, name)), np.asarray(getattr(want, name)), atol=1e-5, err_msg=name
        )
    # Another batch size / prompt length inside the same buckets: no new program.
    compiled = _sample_jit._cache_size()
    ids2, mask2 = padded_prompts([11, 4, 14, 1, 6, 8, 3], cfg.vocab_size, seed=5)
    out = sampler(params, ids2, mask2, key, sampling=SP, max_new_tokens=13, num_samples=2)
    assert _sample_jit._cache_size() == compiled
    assert out.tokens.shape == (14, 13) and len(sampler.shapes_seen) == 1


@pytest.mark.slow
def test_sharded_over_a_mesh_equals_single_device(tmp_path):
    """8 fake CPU devices, mesh data=4 x fsdp=2: same samples as without a mesh."""
    out = tmp_path / "res.json"
    run_on_fake_devices("rollout_sharded_run.py", out)
    res = json.loads(out.read_text())
    assert res["devices"] == 8
    assert res["tokens_equal"] and res["lengths_equal"]
    assert res["max_logprob_diff"] < 1e-5 and res["max_value_diff"] < 1e-5
    # the loop really ran sharded: the untrimmed output is split over the 8 devices by batch
    assert res["shards"] == 8 and res["shard_rows"] == [2] * 8
