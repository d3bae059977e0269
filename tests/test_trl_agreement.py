"""Our GRPO-family loss and gradient against TRL's GRPOTrainer on the same batch (fp32, 1e-5).

A tiny random Qwen2 is built with transformers and handed to a real ``trl.GRPOTrainer``; its
``rollout_func`` hook returns fixed prompts and completions (no sampling), a reward function
returns fixed rewards, and TRL's own ``_generate_and_score_completions`` computes the
advantages, the reference log-probs and the token count. Its policy is then perturbed (so that
policy != reference), fixed old log-probs are put in, and TRL's ``compute_loss`` + backward give
the peer loss and gradient. Our side imports the same weights through our HF import, computes
the advantages with our registry from the same rewards, and runs our ``loss_and_grads``; the
gradient is mapped back through the same weight table (tensors_to_params).

Pairs (TRL ``loss_type`` -> ours):
  grpo    -> ppo.advantage=grpo,    ppo.loss_agg=seq_mean_token_mean
  dr_grpo -> ppo.advantage=dr_grpo, ppo.loss_agg=seq_mean_token_sum_norm (TRL scale_rewards=none)
  dapo    -> ppo.advantage=grpo,    ppo.loss_agg=token_mean, clip 0.2 / 0.28
with beta 0 (no KL) and beta 0.04 (kl.mode=loss). Deliberate differences are tested as such:
TRL's default multiplies the in-loss k3 by pi/pi_old (use_bias_correction_kl; ours:
kl.loss_importance_weight, off by default = GRPO's plain k3); TRL's grpo / dr_grpo count rows
with no valid token in their denominators (we do not: a masked sample is not in the batch); TRL's
dapo divides a step's token sum by the generation batch's tokens / steps_per_generation (we
divide by the minibatch's own tokens).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

trl = pytest.importorskip(
    "trl", reason="TRL is the peer of these tests: pip install -e '.[test]' installs the pinned one"
)
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ppocoder_jax.config import PPOConfig  # noqa: E402
from ppocoder_jax.model.decoder_weights import hf_to_params, load_hf_decoder  # noqa: E402
from ppocoder_jax.model.policy import DecoderPolicy  # noqa: E402
from ppocoder_jax.ppo.policy_apply import make_apply_fn, rollout_statistics  # noqa: E402
from ppocoder_jax.ppo.train_step import PPOBatch, compute_advantages, loss_and_grads  # noqa: E402

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is "experimental"

V, P, G, L = 96, 2, 4, 7  # vocab, prompts, samples per prompt, max_completion_length
PROMPTS = [[5, 6, 7, 8], [9, 10, 11, 12]]  # equal lengths: no left padding on either side
EOS = 2
COMPLETIONS = [
    [11, 12, EOS],
    [13, 14, 15, 16, 17, 18, 19],  # no eos, L tokens: truncated
    [19, EOS],
    [20, 21, 22, 23, EOS],
    [23, EOS],
    [24, 25, 26, 27, 28, EOS],
    [29, 30, 31, 32, 33, 34, 35],  # truncated
    [34, 35, 36, EOS],
]
REWARDS = [1.0, 0.0, 0.5, 1.0, -1.0, 0.2, 0.2, 1.0]
TOL = 1e-5

CASES = {
    # TRL loss_type: (TRL args, our PPOConfig kwargs)
    "grpo": (
        dict(loss_type="grpo", scale_rewards="group"),
        dict(advantage="grpo", loss_agg="seq_mean_token_mean"),
    ),
    "dr_grpo": (
        dict(loss_type="dr_grpo", scale_rewards="none"),
        dict(advantage="dr_grpo", loss_agg="seq_mean_token_sum_norm", loss_agg_max_len=L),
    ),
    "dapo": (
        dict(loss_type="dapo", scale_rewards="group", epsilon_high=0.28),
        dict(advantage="grpo", loss_agg="token_mean", clip_high=0.28),
    ),
}


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny random Qwen2 (GQA, q/k/v biases, tied embeddings) and a word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, V)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", bos_token="<s>"
    )
    cfg = transformers.Qwen2Config(
        vocab_size=V,
        hidden_size=64,
        intermediate_size=96,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=2,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=EOS,
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # biases and norms away from 0 / 1: a mis-mapped tensor shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("qwen2")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _trl_trainer(hf_dir, tmp_path, beta, **args):
    def rollout(prompts, trainer):
        ids = [PROMPTS[i // G] for i in range(P * G)]
        return {
            "prompt_ids": ids,
            "completion_ids": [list(c) for c in COMPLETIONS],
            "logprobs": None,
        }

    def reward_fn(completions, **kwargs):
        assert len(completions) == len(REWARDS)
        return list(REWARDS)

    config = trl.GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        per_device_train_batch_size=P * G,
        num_generations=G,
        max_completion_length=L,
        beta=beta,
        epsilon=0.2,
        report_to="none",
        use_cpu=True,
        bf16=False,
        fp16=False,
        save_strategy="no",
        **args,
    )
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    dataset = __import__("datasets").Dataset.from_dict({"prompt": ["t5 t6 t7 t8"] * (P * G)})
    trainer = trl.GRPOTrainer(
        model=str(hf_dir),
        reward_funcs=reward_fn,
        args=config,
        train_dataset=dataset,
        processing_class=tok,
        rollout_func=rollout,
    )
    trainer.current_gradient_accumulation_steps = 1
    torch.manual_seed(1)
    with torch.no_grad():  # the policy moves away from the reference (TRL loaded it anew)
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    trainer.model.train()
    return trainer


def _trl_batch(trainer):
    """TRL's own scoring of the fixed rollout, plus fixed old log-probs (ratios off 1)."""
    inputs = trainer._generate_and_score_completions(
        [{"prompt": "t5 t6 t7 t8"}] * G + [{"prompt": "t9 t10 t11 t12"}] * G
    )
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, att, inputs["completion_ids"].size(1)
        )
    noise = torch.from_numpy(np.random.default_rng(2).normal(0, 0.3, logps.shape).astype("f4"))
    inputs["old_per_token_logps"] = (logps + noise) * inputs["completion_mask"]
    return inputs


def _trl_loss_and_grads(trainer, inputs):
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    grads = {n: p.grad.detach().numpy().copy() for n, p in trainer.model.named_parameters()}
    return float(loss.detach()), grads


def _ours(hf_dir, trainer, inputs, ppo: PPOConfig, beta, kl_weighted=False, rows=None):
    """Our loss / gradient / advantages / reference log-probs on TRL's batch."""
    ref_lm, dcfg = load_hf_decoder(hf_dir)  # the reference: the saved weights, as TRL's
    policy = DecoderPolicy(dcfg)
    pol_lm = hf_to_params(dcfg, {k: v.numpy() for k, v in trainer.model.state_dict().items()})
    head = {"kernel": np.zeros((dcfg.hidden_size, 1), np.float32), "bias": np.zeros(1, "f4")}
    params = {"lm": pol_lm, "value_head": head}
    ref_params = {"lm": ref_lm, "value_head": head}
    t = {k: v.numpy() if hasattr(v, "numpy") else v for k, v in inputs.items()}
    mask = t["completion_mask"].astype(np.float32)
    tokens = t["completion_ids"].astype(np.int32)
    logp, values, ref_logp, _ = rollout_statistics(
        params,
        ref_params,
        t["prompt_ids"],
        t["prompt_mask"],
        tokens,
        mask,
        policy=policy,
        dtype=jnp.float32,
        exact_kl=False,
    )
    # advantages over every sample (TRL's; mask_truncated_completions only masks the loss)
    full = np.arange(tokens.shape[1])[None] < np.array([len(c) for c in COMPLETIONS])[:, None]
    adv = compute_advantages(
        t["old_per_token_logps"],
        ref_logp,
        values,
        full.astype(np.float32),
        jnp.asarray(REWARDS, jnp.float32),
        jnp.zeros((), jnp.float32),  # no KL in the reward
        cfg=ppo,
        group_size=G,
    )
    batch = PPOBatch(
        prompt_ids=t["prompt_ids"],
        prompt_mask=t["prompt_mask"],
        tokens=tokens,
        token_mask=mask,
        old_logprobs=t["old_per_token_logps"].astype(np.float32),
        ref_logprobs=np.asarray(ref_logp),
        old_values=np.zeros_like(mask),
        advantages=np.asarray(adv["advantages"]) * mask,
        returns=np.zeros_like(mask),
    )
    if rows is not None:
        batch = jax.tree.map(lambda x: x[rows], batch)
    apply_fn = make_apply_fn(policy, dropout=False)
    beta_arr = None if beta == 0 else jnp.float32(beta)
    fn = jax.jit(
        lambda p, b: loss_and_grads(
            p, b, jax.random.PRNGKey(0), apply_fn, ppo, False, beta_arr, kl_weighted
        )
    )
    loss, grads, sums = fn(params, batch)
    return dict(loss=float(loss), grads=grads, adv=adv, ref_logp=np.asarray(ref_logp), cfg=dcfg)


def _check_grads(ours, trl_grads, cfg):
    """Every gradient tensor, mapped through our HF weight table, within 1e-5 of its scale."""
    theirs = jax.tree_util.tree_leaves_with_path(hf_to_params(cfg, trl_grads))
    mine = jax.tree_util.tree_leaves_with_path(ours["grads"]["lm"])
    assert [p for p, _ in mine] == [p for p, _ in theirs]
    for (path, a), (_, b) in zip(mine, theirs):
        a, b = np.asarray(a), np.asarray(b)
        scale = np.max(np.abs(b))
        assert scale > 0, path
        np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL * scale, err_msg=str(path))
    assert len(mine) >= 2 * 12  # every tensor of both layers (and the embedding, the norm)
    assert np.all(np.asarray(ours["grads"]["value_head"]["kernel"]) == 0)


def _ppo(case, **more):
    return PPOConfig(clip_ratio=0.2, vf_coef=0.0, entropy_coef=0.0, **{**CASES[case][1], **more})


@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("case", list(CASES))
def test_loss_and_gradient_equal_trl(case, beta, hf_dir, tmp_path):
    trl_args = dict(CASES[case][0], use_bias_correction_kl=False)
    trainer = _trl_trainer(hf_dir, tmp_path, beta, **trl_args)
    inputs = _trl_batch(trainer)
    trl_loss, trl_grads = _trl_loss_and_grads(trainer, inputs)
    ours = _ours(hf_dir, trainer, inputs, _ppo(case), beta)
    # the same advantages (one per sample, on its tokens) ...
    mask = inputs["completion_mask"].numpy()
    want = inputs["advantages"].numpy()[:, None] * mask
    np.testing.assert_allclose(np.asarray(ours["adv"]["advantages"]) * mask, want, atol=TOL)
    # ... the same reference log-probs (ours from our model on the imported weights) ...
    if beta:
        ref = inputs["ref_per_token_logps"].numpy() * mask
        np.testing.assert_allclose(ours["ref_logp"], ref, rtol=TOL, atol=TOL)
    # ... and the same loss and gradient
    assert ours["loss"] == pytest.approx(trl_loss, rel=TOL, abs=TOL)
    _check_grads(ours, trl_grads, ours["cfg"])


def test_kl_importance_weight_is_trl_default_and_not_ours(hf_dir, tmp_path):
    """TRL 1.x multiplies the k3 term by pi/pi_old by default (use_bias_correction_kl, from
    DeepSeek-V3.2); we default to GRPO's plain k3 and offer the weighted one as
    kl.loss_importance_weight."""
    trainer = _trl_trainer(hf_dir, tmp_path, 0.5, **CASES["dapo"][0])  # TRL's default: on
    inputs = _trl_batch(trainer)
    trl_loss, trl_grads = _trl_loss_and_grads(trainer, inputs)
    weighted = _ours(hf_dir, trainer, inputs, _ppo("dapo"), 0.5, kl_weighted=True)
    assert weighted["loss"] == pytest.approx(trl_loss, rel=TOL, abs=TOL)
    _check_grads(weighted, trl_grads, weighted["cfg"])
    plain = _ours(hf_dir, trainer, inputs, _ppo("dapo"), 0.5)
    assert abs(plain["loss"] - trl_loss) > 1e-3  # the difference is real at these ratios


@pytest.mark.parametrize("case", ["grpo", "dr_grpo", "dapo"])
def test_rows_without_tokens_count_in_trls_denominator_not_ours(case, hf_dir, tmp_path):
    """mask_truncated_completions zeroes the two truncated samples' rows. TRL's grpo (mean over
    rows) and dr_grpo (rows x max length) still count them; we count only rows with a token,
    as a masked sample (an infrastructure error, a dropped group) is not part of the batch.
    Token-level dapo is unaffected."""
    trainer = _trl_trainer(hf_dir, tmp_path, 0.0, mask_truncated_completions=True, **CASES[case][0])
    inputs = _trl_batch(trainer)
    assert int(inputs["completion_mask"].sum(-1).eq(0).sum()) == 2
    trl_loss, _ = _trl_loss_and_grads(trainer, inputs)
    ours = _ours(hf_dir, trainer, inputs, _ppo(case), 0.0)
    factor = 1.0 if case == "dapo" else (P * G - 2) / (P * G)
    assert ours["loss"] * factor == pytest.approx(trl_loss, rel=TOL, abs=TOL)
    if case != "dapo":
        assert abs(ours["loss"] - trl_loss) > 1e-4


def test_dapo_minibatch_normaliser_differs_from_trls_generation_batch_average(hf_dir, tmp_path):
    """With two optimizer steps per generation batch, TRL divides each step's token sum by
    (generation-batch tokens / steps_per_generation); we divide by the minibatch's own tokens
    (DAPO's token mean over the batch the gradient is taken on)."""
    trainer = _trl_trainer(hf_dir, tmp_path, 0.0, **CASES["dapo"][0])
    inputs = _trl_batch(trainer)
    total = float(inputs["num_items_in_batch"])
    rows = np.arange(4)  # the first minibatch: rows 0-3 (prompt 0's group)
    sub = {
        k: (v[: len(rows)] if torch.is_tensor(v) and v.dim() > 0 else v) for k, v in inputs.items()
    }
    trainer.args.steps_per_generation = 2
    trl_loss, _ = _trl_loss_and_grads(trainer, sub)
    ours = _ours(hf_dir, trainer, inputs, _ppo("dapo"), 0.0, rows=rows)
    mb_tokens = float(inputs["completion_mask"][: len(rows)].sum())
    assert mb_tokens != total / 2  # the two normalisers really differ here
    assert ours["loss"] * mb_tokens == pytest.approx(trl_loss * total / 2, rel=TOL, abs=TOL)
