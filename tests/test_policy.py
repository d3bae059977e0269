"""One policy interface for both families, and one sampler for every generation path.

- the sampler's recorded log-probs / values equal the teacher-forced pass (`Policy.score`,
  through `rollout_statistics`) for T5 and for the decoder-only family, left-padded prompts of
  ragged lengths included;
- greedy decoding through the sampler equals the decoder model's own greedy loop (which the
  model tests check token for token against transformers' `generate`);
- the SFT loss of a decoder-only policy is on the completion only;
- long prompts keep their end, everywhere;
- the trainer's rollout and `ppocoder generate` give the same text for the same prompt, key and
  sampling settings.
"""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.tiny_models import TINY_QWEN2

from ppocoder_jax.config import RolloutConfig, load_config
from ppocoder_jax.model import decoder
from ppocoder_jax.model.common import token_logprobs
from ppocoder_jax.model.decoder_config import DecoderConfig
from ppocoder_jax.model.families import as_policy
from ppocoder_jax.model.policy import DecoderPolicy, T5Policy
from ppocoder_jax.pipeline.policy_loader import load_policy
from ppocoder_jax.ppo.policy_apply import rollout_statistics
from ppocoder_jax.rollout import Sampler, SamplingParams

TINY = [
    "model.tiny_d_model=32",
    "model.tiny_d_ff=64",
    "model.tiny_num_layers=2",
    "model.tiny_num_decoder_layers=1",
    "model.tiny_num_heads=4",
    "model.tiny_num_kv_heads=2",
    "model.tiny_d_kv=8",
    "model.value_head_dropout=0.0",
]


def _decoder_cfg(**over) -> DecoderConfig:
    d = {**TINY_QWEN2, "vocab_size": 53}
    d.update(over)
    return DecoderConfig.from_hf_dict(d)


def _left_padded(rng, batch, width, vocab, lengths):
    ids = np.zeros((batch, width), np.int32)
    mask = np.zeros((batch, width), np.int32)
    for i, n in enumerate(lengths):
        ids[i, width - n :] = rng.integers(3, vocab, size=n)
        mask[i, width - n :] = 1
    return ids, mask


@pytest.fixture(scope="module")
def policies():
    t5_params, t5_cfg, tok = load_policy(load_config("demo", TINY))
    dec_params, dec_cfg, _ = load_policy(load_config("demo", [*TINY, "model.family=decoder"]))
    return {"t5": (t5_params, t5_cfg), "decoder": (dec_params, dec_cfg)}, tok


def test_as_policy_picks_the_family(policies):
    models, _ = policies
    assert isinstance(as_policy(models["t5"][1]), T5Policy)
    assert isinstance(as_policy(models["decoder"][1]), DecoderPolicy)
    assert as_policy(models["t5"][1]).pad_side == "right"
    assert as_policy(models["decoder"][1]).pad_side == "left"


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_sampler_logprobs_equal_the_teacher_forced_pass(policies, family):
    models, tok = policies
    params, cfg = models[family]
    policy = as_policy(cfg)
    sampler = Sampler(policy, RolloutConfig(length_buckets=(8, 16)), batch_multiple=1)
    prompts = ["def f(x):", "return a + b  # a longer prompt than the first", "x"]
    ids, mask = sampler.prompt_arrays(sampler.encode(tok, prompts))
    out = sampler(params, ids, mask, jax.random.PRNGKey(3), max_new_tokens=12, num_samples=2,
                  sampling=SamplingParams(temperature=1.0))  # fmt: skip
    assert int(out.lengths.min()) >= 1
    logprobs, values, ref_logprobs, kl = rollout_statistics(
        params, params, out.prompt_ids, out.prompt_mask, out.tokens, out.token_mask,
        policy=policy, dtype=jnp.float32, exact_kl=True,
    )  # fmt: skip
    np.testing.assert_allclose(logprobs, out.logprobs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(values, out.values, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ref_logprobs, logprobs, atol=0, rtol=0)
    np.testing.assert_allclose(kl, 0.0, atol=1e-6)


def test_decoder_sampler_on_ragged_left_padding_equals_the_model_greedy_loop():
    cfg = _decoder_cfg(eos_token_id=None)
    params = decoder.init_params(cfg, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    ids, mask = _left_padded(rng, 4, 9, cfg.vocab_size, [9, 3, 1, 6])
    want = decoder.greedy_generate(params, cfg, jnp.asarray(ids), jnp.asarray(mask), 7)
    policy = DecoderPolicy(_decoder_cfg(eos_token_id=[51]))  # an eos no row emits first
    out = Sampler(policy, RolloutConfig(length_buckets=(16,)), batch_multiple=8)(
        params, ids, mask, 0, sampling=SamplingParams(greedy=True), max_new_tokens=7,
        num_samples=1,
    )  # fmt: skip
    got = np.asarray(out.tokens)
    np.testing.assert_array_equal(got[:, : want.shape[1]], np.asarray(want))


def test_decoder_multiple_eos_ids_stop_a_row():
    cfg = _decoder_cfg(eos_token_id=[5, 7])
    params = decoder.init_params(cfg, jax.random.PRNGKey(1))
    rng = np.random.default_rng(1)
    ids, mask = _left_padded(rng, 8, 6, cfg.vocab_size, [6, 2, 4, 5, 1, 3, 6, 2])
    out = Sampler(DecoderPolicy(cfg), RolloutConfig(length_buckets=(8, 32)))(
        params, ids, mask, 5, max_new_tokens=30, num_samples=4,
        sampling=SamplingParams(temperature=2.0),
    )  # fmt: skip
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    for row, n in zip(tokens, lengths):
        body = row[: n - 1]
        assert not np.isin(body, [5, 7]).any()  # no eos before the last token
        if n < 30:
            assert row[n - 1] in (5, 7) and (row[n:] == 0).all()
    assert (lengths < 30).any()


def test_decoder_sft_loss_is_on_the_completion_only():
    from ppocoder_jax.pipeline.sft import cross_entropy_loss

    cfg = _decoder_cfg()
    policy = DecoderPolicy(cfg)
    params = decoder.init_params(cfg, jax.random.PRNGKey(2))
    rng = np.random.default_rng(2)
    src, src_mask = _left_padded(rng, 3, 6, cfg.vocab_size, [6, 2, 4])
    tgt = rng.integers(3, cfg.vocab_size, size=(3, 5)).astype(np.int32)
    tgt_mask = (np.arange(5)[None] < np.array([[5], [3], [1]])).astype(np.int32)
    tgt = tgt * tgt_mask
    loss = float(cross_entropy_loss(params, policy, (src, src_mask, tgt, tgt_mask), jnp.float32))
    # by hand: each row's real prompt then its target, unpadded, through the plain forward
    total, count = 0.0, 0
    for i in range(3):
        p = src[i][src_mask[i] == 1]
        t = tgt[i][tgt_mask[i] == 1]
        seq = jnp.asarray(np.concatenate([p, t])[None])
        logits, _ = decoder.forward(params, cfg, seq)
        lp = token_logprobs(logits[0, len(p) - 1 : -1], jnp.asarray(t))
        total += float(-lp.sum())
        count += len(t)
    assert loss == pytest.approx(total / count, abs=1e-5)


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_long_prompts_keep_their_end(policies, family):
    models, tok = policies
    policy = as_policy(models[family][1])
    text = " ".join(f"x{i}" for i in range(200)) + " return total"
    ids = policy.encode_prompt(tok, text, 16)
    assert len(ids) == 16
    assert tok.decode(ids, skip_special_tokens=True).endswith("return total")
    full = tok(text, add_special_tokens=True)["input_ids"]
    if full[0] in tok.all_special_ids:
        assert ids[0] == full[0]  # the leading special token stays


def test_sampled_evaluation_draws_at_eval_temperature_not_the_rollouts(policies):
    """A preset may explore at a cooler rollout temperature; sampled pass@k still draws at
    `eval.temperature` (the README's T=1 numbers)."""
    from ppocoder_jax.data import Example
    from ppocoder_jax.pipeline.evaluate import generate_outputs

    models, tok = policies
    params, model_cfg = models["t5"]
    exs = [Example(id=f"p{i}", prompt=f"def f{i}(x):", target="", lang="python") for i in range(4)]

    def sample(*over):
        cfg = load_config("demo", [*TINY, "rollout.max_new_tokens=12", *over])
        return generate_outputs(cfg, params, model_cfg, tok, exs, greedy=False, num_samples=3)

    at_one = sample("rollout.temperature=1.0")
    assert sample("rollout.temperature=0.3") == at_one  # eval.temperature = 1 by default
    assert sample("rollout.temperature=1.0", "eval.temperature=0.3") != at_one
    assert sample("rollout.temperature=0.3", "eval.temperature=0.3") == sample(
        "rollout.temperature=1.0", "eval.temperature=0.3"
    )


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_trainer_rollout_and_ppocoder_generate_give_the_same_text(tmp_path, family):
    """The same prompt, key and sampling settings through the PPO trainer's rollout path and
    through the `ppocoder generate` command give the same text."""
    from ppocoder_jax.data import Example
    from ppocoder_jax.model import save_model
    from ppocoder_jax.pipeline.ppo_trainer import PPOTrainer

    over = [*TINY, f"model.family={family}", f"train.run_dir={tmp_path / 'run'}"]
    over += ["rollout.top_k=7", "rollout.temperature=1.3", "rollout.num_samples=2",
             "rollout.max_new_tokens=20", "data.max_target_length=20", "train.batch_size=1",
             "ppo.num_minibatches=1", "data.max_source_length=24"]  # fmt: skip
    cfg = load_config("demo", over)
    params, model_cfg, tok = load_policy(cfg)
    model_dir = tmp_path / "model"
    save_model(model_dir, jax.device_get(params), model_cfg, tok)
    prompt = "# sum the list\ndef total(xs):\n" * 4  # longer than max_source_length
    ex = Example(id="p", prompt=prompt, target="", lang="python", tests={"test_code": "pass"})

    class NoReward:
        pass

    trainer = PPOTrainer(cfg, params, model_cfg, tok, [ex], tmp_path / "run", None, NoReward())
    key = jax.random.PRNGKey(11)
    collector = trainer.collector
    ids, mask = collector.prompt_batch([ex])
    out = collector.sample_arrays(trainer.state.params, jnp.asarray(ids), jnp.asarray(mask), key)
    trained = collector.sampler.decode(tok, np.asarray(out.tokens), np.asarray(out.token_mask))
    trainer.ckpt.close()

    cmd = [sys.executable, "-m", "ppocoder_jax", "generate", "--model", str(model_dir), "--json"]
    cmd += ["--prompt", prompt, "--num-samples", "2", "--max-new-tokens", "20", "--top-k", "7"]
    cmd += ["--temperature", "1.3", "--max-source-length", "24", "--draw", cfg.rollout.draw]
    # the CLI's --seed S samples with PRNGKey(S); give it the trainer's key through a seed
    # whose key equals it
    assert np.array_equal(jax.random.PRNGKey(11), key)
    cmd += ["--seed", "11"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    generated = [json.loads(line)["text"] for line in proc.stdout.splitlines()]
    assert generated == trained
    assert any(t for t in trained)  # something was generated


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_a_saved_model_reloads_with_the_same_tokenizer(policies, family, tmp_path):
    """A decoder-only checkpoint's config.json says qwen2, and transformers 5's AutoTokenizer
    then builds Qwen2Tokenizer (another pre-tokenizer) around our tokenizer.json: a reloaded
    SFT model saw other ids than it was trained on (greedy pass@1 47% -> 8%)."""
    from ppocoder_jax.model import load_model, save_model

    models, tok = policies
    params, cfg = models[family]
    save_model(tmp_path / "m", jax.device_get(params), cfg, tok)
    _, cfg2, tok2 = load_model(tmp_path / "m")
    assert cfg2 == cfg
    for text in ("def f(x):\n    return x + 1  # ok", "\tif a[0] == 'b':\n\t\tpass", "x=1;y=2"):
        ids = tok(text, add_special_tokens=True)["input_ids"]
        assert tok2(text, add_special_tokens=True)["input_ids"] == ids
        assert tok2.decode(ids, skip_special_tokens=True) == tok.decode(
            ids, skip_special_tokens=True
        )


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_fused_head_statistics_and_gradients_equal_the_whole_logits(policies, family):
    """token_stats / rollout_statistics (fused LM head) against Policy.score's whole logits."""
    from ppocoder_jax.ppo import kernels as K

    models, _ = policies
    params, cfg = models[family]
    policy = as_policy(cfg)
    rng = np.random.default_rng(0)
    vocab = policy.head_weight(params, jnp.float32)[0].shape[0]
    ids, mask = _left_padded(rng, 3, 6, vocab, [6, 2, 4])
    if policy.pad_side == "right":
        ids, mask = ids[:, ::-1].copy(), mask[:, ::-1].copy()
    tokens = jnp.asarray(rng.integers(3, vocab, (3, 7)), jnp.int32)
    token_mask = jnp.asarray(np.arange(7)[None] < np.array([[7], [3], [5]]), jnp.int32)
    ref = jax.tree_util.tree_map(
        lambda x: x + 0.05 * jnp.asarray(rng.standard_normal(x.shape), x.dtype), params
    )
    args = (ids, mask, tokens, token_mask)
    with jax.default_matmul_precision("highest"):
        lp, vals, ref_lp, kl = rollout_statistics(
            params, ref, *args, policy=policy, dtype=jnp.float32, exact_kl=True
        )
        logits, values = policy.score(params, *args, jnp.float32)
        ref_logits, _ = policy.score(ref, *args, jnp.float32)
    m = np.asarray(token_mask, np.float32)
    np.testing.assert_allclose(lp, token_logprobs(logits, tokens) * m, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ref_lp, token_logprobs(ref_logits, tokens) * m, atol=1e-5)
    np.testing.assert_allclose(kl, K.exact_kl_from_logits(logits, ref_logits) * m, atol=1e-5)
    np.testing.assert_allclose(vals, values * m, atol=1e-6)
    assert float(np.asarray(kl).max()) > 1e-4

    weights = jnp.asarray(rng.standard_normal((3, 7)), jnp.float32) * token_mask

    def fused(p):
        logprob, entropy, v = policy.token_stats(p, *args, jnp.float32)
        return jnp.sum((logprob + 0.3 * entropy + 0.1 * v) * weights)

    def whole(p):
        z, v = policy.score(p, *args, jnp.float32)
        logp = jax.nn.log_softmax(z, axis=-1)
        entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
        return jnp.sum((token_logprobs(z, tokens) + 0.3 * entropy + 0.1 * v) * weights)

    with jax.default_matmul_precision("highest"):
        g_fused = jax.grad(fused)(params)
        g_whole = jax.grad(whole)(params)
    flat_f = jax.tree_util.tree_leaves_with_path(g_fused)
    flat_w = jax.tree_util.tree_leaves(g_whole)
    for (path, a), b in zip(flat_f, flat_w, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5, err_msg=str(path))


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_remat_changes_no_number(policies, family):
    """model.remat recomputes layer activations in the backward pass: same values, same grads."""
    models, _ = policies
    params, cfg = models[family]
    plain, remat = as_policy(cfg), as_policy(cfg, remat=True)
    assert remat.remat and not plain.remat and as_policy(remat) is remat
    rng = np.random.default_rng(1)
    ids = jnp.asarray(rng.integers(3, 50, (2, 5)), jnp.int32)
    mask = jnp.ones((2, 5), jnp.int32)
    tokens = jnp.asarray(rng.integers(3, 50, (2, 6)), jnp.int32)
    token_mask = jnp.ones((2, 6), jnp.int32)

    def loss(p, policy):
        logprob, entropy, values = policy.token_stats(p, ids, mask, tokens, token_mask, jnp.float32)
        return jnp.sum(logprob) + 0.1 * jnp.sum(entropy) + jnp.sum(values)

    # the remat'd program does recompute: its jaxpr holds the rematerialised layers
    assert "remat" in str(jax.make_jaxpr(lambda p: loss(p, remat))(params))
    assert "remat" not in str(jax.make_jaxpr(lambda p: loss(p, plain))(params))
    if family == "decoder":  # one scanned, checkpointed layer body
        assert "scan" in str(jax.make_jaxpr(lambda p: loss(p, remat))(params))
    value_a, grads_a = jax.value_and_grad(loss)(params, plain)
    value_b, grads_b = jax.value_and_grad(loss)(params, remat)
    np.testing.assert_allclose(value_a, value_b, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(grads_a), jax.tree_util.tree_leaves(grads_b)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


def test_decoder_remat_keeps_one_layer_of_backward_temporaries():
    """With model.remat the decoder's backward holds one layer's temporaries, not every
    layer's: XLA's own accounting of the compiled loss+gradient (temporary bytes) drops
    by more than half at 6 layers, and grows by less than a layer's activations per layer."""
    from ppocoder_jax.model.decoder import init_params

    def temp_bytes(layers: int, remat: bool) -> int:
        cfg = _decoder_cfg(
            vocab_size=256,
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=layers,
            head_dim=16,
            tie_word_embeddings=True,
        )
        params = init_params(cfg, jax.random.PRNGKey(0))
        policy = as_policy(cfg, remat=remat)
        ids = jax.ShapeDtypeStruct((4, 64), jnp.int32)
        tokens = jax.ShapeDtypeStruct((4, 192), jnp.int32)

        def loss(p, ids, mask, tokens, token_mask):
            logprob, _, values = policy.token_stats(p, ids, mask, tokens, token_mask, jnp.float32)
            return jnp.sum(logprob) + jnp.sum(values)

        compiled = jax.jit(jax.grad(loss)).lower(params, ids, ids, tokens, tokens).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    plain6, remat6 = temp_bytes(6, False), temp_bytes(6, True)
    remat3 = temp_bytes(3, True)
    assert remat6 < 0.5 * plain6
    # 3 more layers add their saved inputs (and stacked weights), not 3 layers' temporaries
    assert remat6 - remat3 < 0.25 * (plain6 - temp_bytes(3, False))


def test_temperature_cycle_picks_each_iterations_temperature(tmp_path):
    """rollout.temperature_cycle=[1.0, 0.3]: iteration 0 draws as temperature 1.0 does,
    iteration 1 as temperature 0.3 does, iteration 2 as 1.0 again (same key)."""
    from ppocoder_jax.data import Example
    from ppocoder_jax.pipeline.ppo_trainer import PPOTrainer

    ex = Example(id="p", prompt="def total(xs):", target="", lang="python", tests={})

    class NoReward:
        pass

    def draw(over, iteration):
        cfg = load_config(
            "demo",
            [*TINY, f"train.run_dir={tmp_path / 'run'}", "train.batch_size=1",
             "rollout.num_samples=4", "rollout.max_new_tokens=16", *over],
        )  # fmt: skip
        params, model_cfg, tok = load_policy(cfg)
        trainer = PPOTrainer(cfg, params, model_cfg, tok, [ex], tmp_path / "run", None, NoReward())
        try:
            collector = trainer.collector
            ids, mask = collector.prompt_batch([ex])
            out = collector.sample_arrays(
                trainer.state.params,
                jnp.asarray(ids),
                jnp.asarray(mask),
                jax.random.PRNGKey(3),
                iteration,
            )
            return np.asarray(out.tokens).tolist()
        finally:
            trainer.ckpt.close()

    cycle = ["rollout.temperature_cycle=[1.0,0.3]"]
    hot, cold = draw(["rollout.temperature=1.0"], 0), draw(["rollout.temperature=0.3"], 0)
    assert hot != cold
    assert draw(cycle, 0) == hot
    assert draw(cycle, 1) == cold
    assert draw(cycle, 2) == hot
