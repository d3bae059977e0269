"""The end-of-sequence ids of a decoder-only Hugging Face directory: config.json's, then those
of generation_config.json beside it (where chat models list the end of their turn, and where
transformers' `generate` reads them)."""

from __future__ import annotations

import json

import pytest
from helpers.tiny_models import TINY_QWEN2

from ppocoder_jax.errors import UserError
from ppocoder_jax.model.decoder_weights import read_decoder_config


def _dir(tmp_path, eos=2, generation=None):
    config = {**TINY_QWEN2, "architectures": ["Qwen2ForCausalLM"], "vocab_size": 16}
    config["eos_token_id"] = eos
    (tmp_path / "config.json").write_text(json.dumps(config))
    if generation is not None:
        (tmp_path / "generation_config.json").write_text(json.dumps(generation))
    return tmp_path


@pytest.mark.parametrize(
    ("eos", "generation", "want"),
    [
        (2, None, (2,)),  # no generation_config.json
        (2, {"pad_token_id": 0}, (2,)),  # one without eos_token_id
        (2, {"eos_token_id": None}, (2,)),
        (2, {"eos_token_id": 2}, (2,)),
        (2, {"eos_token_id": [7, 2]}, (2, 7)),  # config.json's first (the SFT target's end)
        ([2, 5], {"eos_token_id": [5, 9]}, (2, 5, 9)),
        (None, {"eos_token_id": 4}, (4,)),
    ],
)
def test_generation_config_eos_ids_join_config_json(tmp_path, eos, generation, want):
    assert read_decoder_config(_dir(tmp_path, eos, generation)).eos_token_ids == want


@pytest.mark.parametrize("bad", ["2", [2, "x"], [True], -1, {"id": 2}])
def test_a_bad_generation_config_eos_is_one_line_error(tmp_path, bad):
    with pytest.raises(UserError, match=r"generation_config\.json: eos_token_id must be"):
        read_decoder_config(_dir(tmp_path, 2, {"eos_token_id": bad}))


def test_an_unreadable_generation_config_names_the_file(tmp_path):
    path = _dir(tmp_path)
    (path / "generation_config.json").write_text("{not json")
    with pytest.raises(UserError, match=r"generation_config\.json: not a readable JSON file"):
        read_decoder_config(path)
