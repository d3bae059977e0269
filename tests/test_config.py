import pytest

from ppocoder_jax.config import Config, load_config, parse_override, save_config
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
