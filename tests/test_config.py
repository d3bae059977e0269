import pytest

from ppocoder_jax.config import (
    CONFIG_DIR,
    Config,
    RolloutConfig,
    SFTConfig,
    load_config,
    parse_override,
    save_config,
)
from ppocoder_jax.errors import UserError


def test_defaults_and_override():
    cfg = load_config(None, ["ppo.clip_ratio=0.1", "rollout.length_buckets=[16, 32]"])
    assert isinstance(cfg, Config)
    assert cfg.ppo.clip_ratio == 0.1
    assert cfg.rollout.length_buckets == (16, 32)


@pytest.mark.parametrize(
    "override, needle",
    [
        ("ppo.nonsense=1", "unknown config key 'ppo.nonsense'"),
        ("ppo.ppo_epochs=two", "ppo.ppo_epochs"),
        ("ppo.gamma=1.5", "ppo.gamma"),
        ("kl.kind=magic", "kl.kind"),
        ("novalue", "key.sub=value"),
    ],
)
def test_bad_overrides_name_the_key(override, needle):
    with pytest.raises(UserError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        load_config(None, [override])


def test_roundtrip(tmp_path):
    cfg = load_config(None, ["train.seed=7"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(str(tmp_path / "config.yaml"))
    assert again == cfg


def test_scientific_notation_override_is_a_number():
    assert load_config(None, ["optim.learning_rate=1e-4"]).optim.learning_rate == 1e-4
    assert load_config(None, ["model.path=nan_dir"]).model.path == "nan_dir"


def test_parse_override_nested():
    assert parse_override("a.b.c=3") == {"a": {"b": {"c": 3}}}


def test_loading_a_config_imports_no_jax():
    """`ppocoder check` and friends load configs without paying for jax / flax / optax; the
    registered names (ppo.advantage, ppo.loss_agg) are checked when a run starts instead."""
    import subprocess
    import sys

    code = (
        "from ppocoder_jax.config import load_config; load_config('demo'); "
        "load_config('demo_decoder'); import sys; "
        "print(sorted(m for m in ('jax','flax','optax') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_unknown_registered_names_load_and_fail_at_run_start():
    from ppocoder_jax.ppo.registry import check_ppo_config

    cfg = load_config(None, ["ppo.advantage=ppo2"])  # the registry is not asked at load time
    assert cfg.ppo.advantage == "ppo2"
    with pytest.raises(UserError, match=r"config key 'ppo\.advantage': unknown .* 'ppo2'"):
        check_ppo_config(cfg)


def test_sft_has_its_own_length_buckets():
    assert SFTConfig().length_buckets == RolloutConfig().length_buckets
    cfg = load_config(None, ["rollout.length_buckets=[16, 32]", "sft.length_buckets=[8]"])
    assert (cfg.rollout.length_buckets, cfg.sft.length_buckets) == ((16, 32), (8,))
    # Every preset gives SFT the buckets it used to borrow from the rollout: the same batches.
    # (Multi-turn presets add longer prompt buckets for the second turn's prompts, and so do
    # their SFT buckets for the revision examples, sft.revision_examples.)
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        cfg = load_config(str(path))
        assert cfg.sft.length_buckets == cfg.rollout.length_buckets, path.name
