"""Sharded PPO train step on 8 fake CPU devices equals the single-device step (fp32).

The device count must be forced before jax is imported, so the run happens in a subprocess
(tests/helpers/sharded_step_run.py) and this module compares the saved arrays.
Tolerances (1e-5 relative, never loosened): the loss and the metrics elementwise; gradients and
Adam moments relative to each array's largest magnitude, because a different (sharded)
summation order moves near-cancelling gradient components by more than 1e-5 of their own tiny
size while staying ~1e-7 of the array's scale.  Updated parameters: elementwise for the toy
model; for T5 relative to each array's scale too (near-zero initial weights plus Adam's first
step on gradients near eps make some elements' own relative error ~1e-4, at ~1e-7 of scale).
"""

import numpy as np
import pytest
from helpers.fake_devices import run_on_fake_devices

RTOL = 1e-5


def _run(tmp_path, grad_accum, model="toy", algo="ppo"):
    out = tmp_path / "res.npz"
    run_on_fake_devices("sharded_step_run.py", out, grad_accum, model, algo)
    return dict(np.load(out))


def _compare(res, scale_relative=("grad", "opt")):
    names = sorted({k.split("/", 1)[1] for k in res})
    checked = 0
    for mesh in ("8x1x1", "2x4x1", "2x2x2"):
        for n in names:
            got, want = res[f"{mesh}/{n}"], res[f"single/{n}"]
            if n.startswith("spec"):
                continue
            assert got.shape == want.shape, n
            if n.startswith(scale_relative) and want.dtype.kind == "f":
                scale = np.max(np.abs(want))
                np.testing.assert_allclose(
                    got, want, rtol=RTOL, atol=RTOL * scale, err_msg=f"{mesh} {n}"
                )
            elif want.dtype.kind == "f":
                np.testing.assert_allclose(got, want, rtol=RTOL, atol=0, err_msg=f"{mesh} {n}")
            else:
                np.testing.assert_array_equal(got, want, err_msg=f"{mesh} {n}")
            checked += 1
    # something was compared: loss, every grad/param/opt leaf and the metrics
    assert checked > 3 * 20
    # every run used the same per-parameter layouts (single = a 1x1x1 mesh)
    for mesh in ("8x1x1", "2x4x1", "2x2x2"):
        np.testing.assert_array_equal(res[f"{mesh}/specs"], res["single/specs"])


def _check_toy_specs(res):
    # the run really was sharded as the rules table says
    assert str(res["2x2x2/spec_embed"]) == "P('tensor', 'fsdp')"
    assert str(res["2x4x1/spec_wi"]) == "P('fsdp', 'tensor')"
    assert str(res["2x2x2/spec_mu_wi"]) == "P('fsdp', 'tensor')"  # Adam moments follow params
    assert str(res["2x2x2/spec_new_wi"]) == "P('fsdp', 'tensor')"  # out_shardings kept
    assert str(res["2x2x2/spec_grad_wi"]) == "P('fsdp', 'tensor')"
    assert str(res["8x1x1/spec_tokens"]) == "P(('data', 'fsdp'), None)"


def test_sharded_step_equals_single_device(tmp_path):
    res = _run(tmp_path, 1)
    _compare(res)
    _check_toy_specs(res)


@pytest.mark.slow
def test_sharded_step_equals_single_device_with_grad_accum(tmp_path):
    res = _run(tmp_path, 2)
    _compare(res)
    _check_toy_specs(res)


@pytest.mark.parametrize("algo", ["grpo", pytest.param("dr_grpo", marks=pytest.mark.slow)])
def test_sharded_grpo_family_step_equals_single_device(tmp_path, algo):
    """Per-sequence and constant-normaliser aggregations, the k3 KL in the loss (plain and
    ratio-weighted), clip-higher and dual clip: their (sum, count) pairs stay exact across
    devices and micro-batches (grad_accum 2), with a row that has no valid token."""
    res = _run(tmp_path, 2, "toy", algo)
    _compare(res)
    _check_toy_specs(res)
    assert float(res["single/metric['kl_loss']"]) > 0  # the KL term is really in the loss


@pytest.mark.slow
def test_sharded_t5_step_equals_single_device(tmp_path):
    """The real Flax T5 policy (tiny, random, value-head dropout on) through the same step."""
    res = _run(tmp_path, 1, "t5")
    _compare(res, scale_relative=("grad", "opt", "param"))
    specs = set(res["2x2x2/specs"])
    assert "P('tensor', 'fsdp')" in specs and "P('fsdp', 'tensor')" in specs  # really sharded


def test_sharded_decoder_step_equals_single_device(tmp_path):
    """The decoder-only policy (tiny Qwen2 architecture, GQA, value-head dropout on) through
    the same step on the (8,1,1), (2,4,1) and (2,2,2) meshes."""
    res = _run(tmp_path, 1, "decoder")
    _compare(res, scale_relative=("grad", "opt", "param"))
    specs = set(res["2x2x2/specs"])
    assert "P('tensor', 'fsdp')" in specs and "P('fsdp', 'tensor')" in specs  # really sharded


def test_sharded_decoder_lora_step_equals_single_device(tmp_path):
    """LoRA on the decoder: the step trains {lora, value_head} over a frozen base sharded as
    the decoder's params are; on every mesh it equals the single-device step (the GRPO-style
    loss with the k3 KL against the reference log-probs)."""
    res = _run(tmp_path, 1, "decoder_lora", "grpo")
    _compare(res, scale_relative=("grad", "opt", "param"))
    assert not any("lora" not in k and "value_head" not in k
                   for k in res if k.startswith("single/grad"))  # fmt: skip
    base = set(res["2x2x2/specs_base"])
    assert "P('tensor', 'fsdp')" in base and "P('fsdp', 'tensor')" in base  # really sharded
    np.testing.assert_array_equal(res["2x2x2/specs_base"], res["single/specs_base"])
