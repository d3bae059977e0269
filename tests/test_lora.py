"""LoRA on the policy (model/lora.py, model/lora_peft.py, the learner's frozen base): the merge
is the low-rank update, only adapters and the value head train, the reference is the base with
the adapters off, the sampler uses the adapters of the state it is given, PEFT and merged
Hugging Face exports load in transformers / peft with our logits, and bad input is one line."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.tiny_models import tiny_decoder_config, tiny_t5_config

from ppocoder_jax.config import LoraConfig, load_config
from ppocoder_jax.errors import UserError
from ppocoder_jax.model import decoder, t5
from ppocoder_jax.model.families import as_policy
from ppocoder_jax.model.lora import (
    LoraSpec,
    init_adapters,
    lora_start,
    merge,
    with_lora,
)

VOCAB = 64


def _randomized(adapters, seed):
    """Adapters as after some training: lora_b no longer zero."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: rng.normal(0, 0.05, np.shape(x)).astype(np.float32), adapters)


def _model(family):
    if family == "decoder":
        cfg = tiny_decoder_config(VOCAB)
        return cfg, decoder.init_params(cfg, jax.random.PRNGKey(0))
    cfg = tiny_t5_config(VOCAB)
    return cfg, t5.init_params(cfg, jax.random.PRNGKey(0))


def _lora(family, seed=1):
    """(model cfg, base params, LoraPolicy rank 4 / alpha 8, its params with trained-looking
    adapters)."""
    cfg, params = _model(family)
    lora_cfg = LoraConfig(rank=4, alpha=8.0)
    policy = with_lora(as_policy(cfg), lora_cfg)
    key = jax.random.PRNGKey(seed)
    frozen, trainable = lora_start(policy, jax.device_get(params), lora_cfg, key)
    trainable["lora"] = _randomized(trainable["lora"], seed)
    return cfg, params, policy, {**frozen, **trainable}


# -- the math ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["decoder", "t5"])
def test_fresh_adapters_leave_the_base_unchanged(family):
    cfg, params = _model(family)
    policy = with_lora(as_policy(cfg), LoraConfig(rank=4, alpha=8))
    key = jax.random.PRNGKey(0)
    frozen, trainable = lora_start(policy, jax.device_get(params), LoraConfig(rank=4, alpha=8), key)
    merged = policy.resolve({**frozen, **trainable})
    for a, b in zip(jax.tree.leaves(merged), jax.tree.leaves(jax.device_get(params))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # lora_a drawn, lora_b zero (PEFT's init)
    a_leaves = [x for p, x in jax.tree_util.tree_flatten_with_path(trainable["lora"])[0]
                if p[-1].key == "lora_a"]  # fmt: skip
    assert a_leaves and all(np.abs(x).max() > 0 for x in a_leaves)


def test_merge_is_the_low_rank_update_in_the_matmul():
    """x @ merged == x @ W + (x @ A) @ B * alpha / r for a 3-D attention kernel and an MLP one."""
    cfg, params = _model("decoder")
    spec = LoraSpec.from_config(LoraConfig(rank=4, alpha=12.0), cfg, "decoder")
    adapters = _randomized(init_adapters(params["lm"], spec, jax.random.PRNGKey(3)), 3)
    merged = merge(params["lm"], adapters, spec.scale)
    for module in ("self_attn/q_proj", "self_attn/o_proj", "mlp/down_proj"):
        group, name = module.split("/")
        w = np.asarray(params["lm"]["layers_1"][group][name]["kernel"], np.float64)
        ad = adapters["layers_1"][group][name]
        a, b = np.asarray(ad["lora_a"], np.float64), np.asarray(ad["lora_b"], np.float64)
        w2 = w.reshape(a.shape[0], -1)
        xin = np.random.default_rng(1).normal(size=(5, a.shape[0]))
        want = xin @ w2 + (xin @ a) @ b * 3.0
        got = xin @ np.asarray(merged["layers_1"][group][name]["kernel"], np.float64).reshape(
            a.shape[0], -1
        )
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["decoder", "t5"])
def test_reference_is_the_base_with_adapters_off(family):
    cfg, params, policy, lp = _lora(family)
    rng = np.random.default_rng(0)
    prompt = jnp.asarray(rng.integers(3, VOCAB, (2, 6)), jnp.int32)
    tokens = jnp.asarray(rng.integers(3, VOCAB, (2, 5)), jnp.int32)
    ones_p, ones_t = jnp.ones_like(prompt), jnp.ones_like(tokens)
    inner = as_policy(cfg)
    base_lp = inner.token_stats(params, prompt, ones_p, tokens, ones_t, jnp.float32)[0]
    ref = {k: v for k, v in lp.items() if k != "lora"}
    ref_lp = policy.token_stats(ref, prompt, ones_p, tokens, ones_t, jnp.float32)[0]
    np.testing.assert_array_equal(np.asarray(ref_lp), np.asarray(base_lp))
    with_adapters = policy.token_stats(lp, prompt, ones_p, tokens, ones_t, jnp.float32)[0]
    assert np.abs(np.asarray(with_adapters) - np.asarray(base_lp)).max() > 1e-3


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.lora.rank=-1", "model.lora.rank"),
        ("model.lora.alpha=0", "model.lora.alpha"),
        ("model.lora.alpha=-2", "model.lora.alpha"),
        ("model.lora.targets=[q_proj,nope]", "model.lora.targets"),
        ("model.lora.dropout=0.1", "model.lora.dropout"),
    ],
)
def test_bad_lora_config_is_one_line(override, key):
    with pytest.raises(UserError) as err:
        load_config("tiny", ["model.lora.rank=4", override])
    assert key in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "family, target", [("decoder", "wi"), ("decoder", "q"), ("t5", "q_proj"), ("t5", "wi_0")]
)
def test_a_target_the_family_lacks_is_one_line(family, target):
    cfg, _ = _model(family)  # the tiny T5 is v1.0 (wi), so wi_0 is absent
    with pytest.raises(UserError) as err:
        with_lora(as_policy(cfg), LoraConfig(rank=4, targets=(target,)))
    msg = str(err.value)
    assert "model.lora.targets" in msg and repr(target) in msg and "\n" not in msg


def test_gated_t5_has_wi_0_and_wi_1():
    cfg = tiny_t5_config(VOCAB, feed_forward_proj="gated-gelu")
    policy = with_lora(as_policy(cfg), LoraConfig(rank=2))
    assert policy.spec.targets == ("q", "k", "v", "o", "wi_0", "wi_1", "wo")


# -- training ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lora_learner():
    from ppocoder_jax.parallel.mesh import make_mesh
    from ppocoder_jax.ppo.learner import PPOLearner

    cfg = load_config(
        "tiny",
        ["train.run_dir=unused", "model.family=decoder", "model.lora.rank=4",
         "model.lora.alpha=8", "ppo.ppo_epochs=1", "ppo.num_minibatches=2",
         "rollout.num_samples=2", "ppo.advantage=rloo", "optim.learning_rate=1e-2"],
    )  # fmt: skip
    from ppocoder_jax.pipeline.policy_loader import load_policy

    params, model_cfg, tokenizer = load_policy(cfg)
    params = jax.device_get(params)
    policy = with_lora(as_policy(model_cfg), cfg.model.lora)
    learner = PPOLearner(cfg, policy, make_mesh(cfg.mesh), jnp.float32)
    frozen, trainable = lora_start(policy, params, cfg.model.lora, jax.random.PRNGKey(0))
    learner.place_frozen_part(frozen)
    return cfg, params, policy, learner, trainable


def _experience(policy, params, ref_params, seed=0):
    from ppocoder_jax.ppo.experience import Experience
    from ppocoder_jax.ppo.policy_apply import rollout_statistics

    b, s, t = 8, 6, 8
    rng = np.random.default_rng(seed)
    rows = (
        rng.integers(3, 60, (b, s)).astype(np.int32),
        np.ones((b, s), np.int32),
        rng.integers(3, 60, (b, t)).astype(np.int32),
        (np.arange(t)[None] < rng.integers(3, t + 1, b)[:, None]).astype(np.int32),
    )
    rows = tuple(jnp.asarray(x) for x in rows)
    logprobs, values, ref, _ = rollout_statistics(
        params, ref_params, *rows, policy=policy, dtype=jnp.float32, exact_kl=False
    )
    scores = jnp.asarray(rng.normal(size=b).astype(np.float32))
    return Experience(
        *rows, logprobs, values, ref, None, scores, jnp.ones(b, jnp.float32),
        {"compile": jnp.ones(b), "tests": scores},
    )  # fmt: skip


def test_only_adapters_and_value_head_train_and_the_sampler_uses_the_update(tiny_lora_learner):
    from ppocoder_jax.model.lora import lora_reference
    from ppocoder_jax.rollout.sampler import SamplingParams, sample

    cfg, params, policy, learner, trainable = tiny_lora_learner
    state = learner.init_state(trainable, jax.random.PRNGKey(1))
    # the state and its optimizer hold the adapters and the value head only
    assert set(state.params) == {"lora", "value_head"}
    n_state = sum(x.size for x in jax.tree.leaves(state.params))
    n_opt = sum(x.size for x in jax.tree.leaves(state.opt_state) if x.ndim > 0)
    assert n_opt == 2 * n_state  # Adam's two moments of the trainable leaves, nothing else
    assert n_state < sum(x.size for x in jax.tree.leaves(params)) // 4
    ref = lora_reference(learner.frozen, trainable, learner.shardings.params)
    # the reference reads the learner's base buffers: no second copy of the backbone
    for a, b in zip(jax.tree.leaves(ref["base"]), jax.tree.leaves(learner.frozen["base"])):
        assert a is b
    base_before = jax.device_get(learner.frozen)
    before = jax.device_get(state.params)
    e = _experience(policy, learner.policy_params(state), ref)
    state, m = learner.learn(state, e, iteration=1)
    assert m["skipped_updates"] == 0 and np.isfinite(m["loss"])
    after = jax.device_get(state.params)
    moved = [
        not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before))
    ]
    assert all(moved)
    for a, b in zip(jax.tree.leaves(jax.device_get(learner.frozen)), jax.tree.leaves(base_before)):
        np.testing.assert_array_equal(a, b)  # the base never moves
    # the sampler, given the new state's params, samples from base + the *new* adapters
    prompt = jnp.asarray(np.random.default_rng(5).integers(3, 60, (4, 6)), jnp.int32)
    mask = jnp.ones_like(prompt)
    sp = SamplingParams(greedy=False, temperature=1.0)
    key = jax.random.PRNGKey(7)
    got = sample(learner.policy_params(state), policy, prompt, mask, key, sp, 12)
    merged = jax.jit(policy.resolve)(learner.policy_params(state))
    want = sample(merged, policy.inner, prompt, mask, key, sp, 12)
    np.testing.assert_array_equal(np.asarray(got.tokens), np.asarray(want.tokens))
    np.testing.assert_allclose(np.asarray(got.logprobs), np.asarray(want.logprobs), atol=1e-6)
    old = sample(jax.jit(policy.resolve)({**learner.frozen, **before}), policy.inner,
                 prompt, mask, key, sp, 12)  # fmt: skip
    assert np.abs(np.asarray(old.logprobs) - np.asarray(got.logprobs)).max() > 1e-4


# -- export / import --------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["decoder", "t5"])
def test_peft_adapter_and_merged_export_match_our_logits(tmp_path, family):
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    from ppocoder_jax.model.families import FAMILIES
    from ppocoder_jax.model.lora_peft import read_peft_adapters, write_peft_adapters

    cfg, params, policy, lp = _lora(family)
    fam = FAMILIES[family]
    for sub in ("base", "merged"):
        (tmp_path / sub).mkdir()
    fam.write_hf(tmp_path / "base", jax.device_get(params[fam.params_key]), cfg)
    merged = jax.device_get(policy.resolve(lp))
    fam.write_hf(tmp_path / "merged", merged[fam.params_key], cfg)
    write_peft_adapters(tmp_path / "adapter", lp["lora"], policy)
    conf = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert conf["r"] == 4 and conf["lora_alpha"] == 8.0

    rng = np.random.default_rng(0)
    ids = rng.integers(3, VOCAB, (2, 7)).astype(np.int64)
    if family == "decoder":
        from transformers import AutoModelForCausalLM as Auto

        ours = np.asarray(decoder.forward(merged, cfg, jnp.asarray(ids), None)[0])

        def run(model):
            with torch.no_grad():
                return model(input_ids=torch.tensor(ids)).logits.numpy()
    else:
        from transformers import T5ForConditionalGeneration as Auto

        dec = rng.integers(3, VOCAB, (2, 5)).astype(np.int64)
        ones_e, ones_d = np.ones_like(ids), np.ones_like(dec)
        ours = np.asarray(t5.forward(merged, cfg, ids, ones_e, dec, ones_d)[0])

        def run(model):
            with torch.no_grad():
                out = model(input_ids=torch.tensor(ids), decoder_input_ids=torch.tensor(dec))
                return out.logits.numpy()

    # our LoRA model is base + adapters (checked against the merge above)
    ours_lora = ours
    merged_hf = run(Auto.from_pretrained(str(tmp_path / "merged")).eval())
    np.testing.assert_allclose(merged_hf, ours_lora, atol=1e-4, rtol=0)
    base_model = Auto.from_pretrained(str(tmp_path / "base")).eval()
    base_logits = run(base_model)
    assert np.abs(base_logits - ours_lora).max() > 1e-3  # the adapters matter
    peft_model = peft.PeftModel.from_pretrained(base_model, str(tmp_path / "adapter")).eval()
    np.testing.assert_allclose(run(peft_model), ours_lora, atol=1e-4, rtol=0)
    # and back: the PEFT directory reads into the same adapters
    back = read_peft_adapters(tmp_path / "adapter", policy)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(lp["lora"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_peft_import_refuses_a_mismatch(tmp_path):
    from ppocoder_jax.model.lora_peft import read_peft_adapters, write_peft_adapters

    cfg, params, policy, lp = _lora("decoder")
    write_peft_adapters(tmp_path / "a", lp["lora"], policy)
    for lora_cfg, words in [
        (LoraConfig(rank=8, alpha=8.0), "r=4 but model.lora.rank=8"),
        (LoraConfig(rank=4, alpha=16.0), "lora_alpha=8.0 but model.lora.alpha=16.0"),
        (LoraConfig(rank=4, alpha=8.0, targets=("q_proj", "v_proj")), "target_modules"),
    ]:
        other = with_lora(as_policy(cfg), lora_cfg)
        with pytest.raises(UserError) as err:
            read_peft_adapters(tmp_path / "a", other)
        assert words in str(err.value) and "\n" not in str(err.value)
    # a tensor missing from the file
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    tensors.pop(next(k for k in tensors if "layers.1.mlp.up_proj.lora_B" in k))
    save_file(tensors, str(tmp_path / "a" / "adapter_model.safetensors"))
    with pytest.raises(UserError) as err:
        read_peft_adapters(tmp_path / "a", policy)
    assert "model.layers.1.mlp.up_proj.lora_B.weight" in str(err.value)
    with pytest.raises(UserError, match="init_from"):
        read_peft_adapters(tmp_path / "nothing", policy)


# -- the degeneration guard -------------------------------------------------------------------


def test_repeat_collapse_frac_catches_a_collapsed_batch_and_passes_a_healthy_one():
    from ppocoder_jax.rollout.degeneration import repeat_collapse_frac

    rng = np.random.default_rng(0)
    b, t = 8, 24
    healthy = rng.integers(3, 500, (b, t)).astype(np.int32)
    healthy[:, ::6] = 7  # a common token (a space, say): a sixth of the tokens, fine
    mask = (np.arange(t)[None] < rng.integers(12, t + 1, b)[:, None]).astype(np.int32)
    assert float(repeat_collapse_frac(healthy, mask)) == 0.0
    collapsed = healthy.copy()
    collapsed[:6, 2:] = 42  # six of eight samples collapse into one repeated token
    assert float(repeat_collapse_frac(collapsed, mask)) == pytest.approx(6 / 8)
    # padding (beyond the mask) does not count, short samples are not judged
    padded = healthy.copy()
    padded[:, 12:] = 42
    short = (np.arange(t)[None] < 12).astype(np.int32)
    assert float(repeat_collapse_frac(padded, short)) == 0.0
    tiny = np.full((2, t), 5, np.int32)
    assert float(repeat_collapse_frac(tiny, (np.arange(t)[None] < 4).repeat(2, 0))) == 0.0


def test_training_continues_from_a_peft_directory(tmp_path):
    """model.lora.init_from: the adapters and the value head saved beside them are where the
    next run starts; a value head of another width is refused in one line."""
    from ppocoder_jax.model.lora_peft import write_peft_adapters

    cfg, params, policy, lp = _lora("decoder")
    head = {
        "kernel": np.full((cfg.hidden_size, 1), 0.25, np.float32),
        "bias": np.ones(1, np.float32),
    }
    write_peft_adapters(tmp_path / "a", lp["lora"], policy, value_head=head)
    lora_cfg = LoraConfig(rank=4, alpha=8.0, init_from=str(tmp_path / "a"))
    frozen, trainable = lora_start(policy, jax.device_get(params), lora_cfg, jax.random.PRNGKey(9))
    for a, b in zip(jax.tree.leaves(trainable["lora"]), jax.tree.leaves(lp["lora"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(trainable["value_head"]["kernel"], head["kernel"])
    np.testing.assert_array_equal(trainable["value_head"]["bias"], head["bias"])
    for a, b in zip(jax.tree.leaves(frozen["base"]), jax.tree.leaves(params["lm"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    bad = {"kernel": np.zeros((cfg.hidden_size + 1, 1), np.float32), "bias": np.ones(1, np.float32)}
    write_peft_adapters(tmp_path / "b", lp["lora"], policy, value_head=bad)
    with pytest.raises(UserError) as err:
        lora_start(policy, jax.device_get(params), lora_cfg.__class__(
            rank=4, alpha=8.0, init_from=str(tmp_path / "b")), jax.random.PRNGKey(9))  # fmt: skip
    assert "value_head.safetensors" in str(err.value) and "\n" not in str(err.value)
