"""Statistical tests: the empirical distribution of many samples matches the model's
(filtered) softmax probabilities.

Chi-square goodness of fit with a fixed seed. The threshold is the chi-square quantile at
1 - 1e-5 (Wilson-Hilferty), so a correct sampler fails with probability ~1e-5 for a random seed;
each test also checks that a deliberately wrong distribution fails the same threshold, so the
test can fail. Expected probabilities come from teacher-forced `forward` logits passed through
transformers' own logits warpers (temperature -> top-k -> top-p), an independent implementation.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rollout_models import make_model, mass_before, padded_prompts, ranks_of

from ppocoder_jax.model import t5
from ppocoder_jax.rollout import SamplingParams, sample

torch = pytest.importorskip("torch")

N = 20000
Z_1E5 = 4.2649  # standard normal quantile at 1 - 1e-5


def chi2_threshold(df: int, z: float = Z_1E5) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


def chi_square(counts: np.ndarray, probs: np.ndarray, min_expected: float = 5.0):
    """(statistic, degrees of freedom); a draw of a probability-0 category gives inf.

    Categories expected fewer than `min_expected` times are pooled into one cell.
    """
    impossible = probs == 0
    if counts[impossible].sum() > 0:
        return np.inf, 1
    counts, expected = counts[~impossible], probs[~impossible] * counts.sum()
    small = expected < min_expected
    obs, exp = list(counts[~small]), list(expected[~small])
    if small.any():
        obs.append(counts[small].sum())
        exp.append(expected[small].sum())
    obs, exp = np.asarray(obs, float), np.asarray(exp, float)
    return float(((obs - exp) ** 2 / exp).sum()), len(obs) - 1


def warped_probs(logits: np.ndarray, sp: SamplingParams) -> np.ndarray:
    """transformers' TemperatureLogitsWarper -> TopKLogitsWarper -> TopPLogitsWarper, softmax."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    x = torch.tensor(logits, dtype=torch.float32)[None]
    ids = torch.zeros((1, 1), dtype=torch.long)
    x = TemperatureLogitsWarper(sp.temperature)(ids, x)
    if sp.top_k:
        x = TopKLogitsWarper(sp.top_k)(ids, x)
    if sp.top_p < 1:
        x = TopPLogitsWarper(sp.top_p)(ids, x)
    return torch.softmax(x.double(), -1)[0].numpy()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    _, params, cfg = make_model(
        tmp_path_factory.mktemp("stats"),
        scale=1.5,
        variant="v1.0",
        tied=True,
        vocab_size=32,
    )
    # a prompt whose next-token distribution is spread out (largest probability ~0.2) and
    # gives </s> ~2% of the time
    prompt = padded_prompts([5], cfg.vocab_size, seed=1)
    return params, cfg, prompt


def step_logits(params, cfg, prompt, prefix: list[int]) -> np.ndarray:
    """Teacher-forced logits of the next token after decoder inputs [start] + prefix."""
    dec = jnp.asarray([[cfg.decoder_start_token_id, *prefix]], jnp.int32)
    logits, _ = t5.forward(params, cfg, *prompt, dec, None)
    return np.asarray(logits[0, -1], np.float64)


@pytest.mark.parametrize("draw", ["gumbel", "cdf"])
def test_first_token_matches_full_softmax(model, draw):
    params, cfg, prompt = model
    sp = SamplingParams(draw=draw)  # temperature 1, no filter
    b = sample(params, cfg, *prompt, jax.random.PRNGKey(123), sp, 1, num_samples=N)
    first = np.asarray(b.tokens)[:, 0]
    logits = step_logits(params, cfg, prompt, [])
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    counts = np.bincount(first, minlength=cfg.vocab_size)
    stat, df = chi_square(counts, probs)
    assert stat < chi2_threshold(df), (stat, df)
    assert probs.max() < 0.6  # a spread-out distribution, not a near-deterministic one
    # A wrong distribution (temperature 1.25 instead of 1) must fail the same test.
    wrong = np.exp((logits - logits.max()) / 1.25)
    wrong /= wrong.sum()
    wstat, wdf = chi_square(counts, wrong)
    assert wstat > chi2_threshold(wdf), (wstat, wdf)
    # Power of the top-k / top-p checks in test_rollout_sampler.py: unfiltered samples
    # do land outside the 5 most likely tokens and outside the top-0.6 mass.
    assert (ranks_of(logits[None], first) >= 5).sum() > 100
    assert (mass_before(probs[None], first) >= 0.6).sum() > 100
    # log-probs are those of the full distribution
    np.testing.assert_allclose(np.asarray(b.logprobs)[:, 0], np.log(probs[first]), atol=1e-4)


@pytest.mark.parametrize(
    "sp",
    [
        SamplingParams(temperature=0.7, top_k=3, top_p=0.9),
        SamplingParams(temperature=1.5, top_p=0.5),
        SamplingParams(temperature=0.7, top_k=3, top_p=0.9, draw="cdf"),
        SamplingParams(temperature=1.5, top_p=0.5, draw="cdf"),
    ],
    ids=["k3-p0.9-t0.7", "p0.5-t1.5", "cdf-k3-p0.9-t0.7", "cdf-p0.5-t1.5"],
)
def test_two_token_sequences_match_filtered_softmax(model, sp):
    """Joint distribution of (token 1, token 2): both steps, cache and filters together."""
    params, cfg, prompt = model
    b = sample(params, cfg, *prompt, jax.random.PRNGKey(5), sp, 2, num_samples=N)
    tokens, mask = np.asarray(b.tokens), np.asarray(b.token_mask)
    eos, v = cfg.eos_token_id, cfg.vocab_size
    # category t1 * (v + 1) + t2, with t2 = v meaning "ended at </s> after one token"
    t2 = np.where(mask[:, 1] == 1, tokens[:, 1], v)
    counts = np.bincount(tokens[:, 0] * (v + 1) + t2, minlength=v * (v + 1))
    p1 = warped_probs(step_logits(params, cfg, prompt, []), sp)
    expected = np.zeros(v * (v + 1))
    wrong = np.zeros(v * (v + 1))  # ignores the first token when drawing the second
    p2_after_start = warped_probs(step_logits(params, cfg, prompt, [3]), sp)
    for t1 in np.nonzero(p1 > 0)[0]:
        if t1 == eos:
            expected[t1 * (v + 1) + v] = wrong[t1 * (v + 1) + v] = p1[t1]
            continue
        p2 = warped_probs(step_logits(params, cfg, prompt, [int(t1)]), sp)
        expected[t1 * (v + 1) : t1 * (v + 1) + v] = p1[t1] * p2
        wrong[t1 * (v + 1) : t1 * (v + 1) + v] = p1[t1] * p2_after_start
    assert abs(expected.sum() - 1) < 1e-9
    assert (expected > 0).sum() >= 6  # a real joint distribution, not one or two sequences
    stat, df = chi_square(counts, expected)
    assert stat < chi2_threshold(df), (stat, df)
    wstat, wdf = chi_square(counts, wrong)
    assert wstat > chi2_threshold(wdf), (wstat, wdf)
    # Same support, but 15% of the way to uniform over it: must fail too.
    support = expected > 0
    blurred = 0.85 * expected + 0.15 * support / support.sum()
    bstat, bdf = chi_square(counts, blurred)
    assert bstat > chi2_threshold(bdf), (bstat, bdf)
