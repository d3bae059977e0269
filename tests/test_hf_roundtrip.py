"""HF import -> our checkpoint -> HF export, tokenizers, and bad input through the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from tiny_t5 import load_torch_t5, make_tiny_hf_t5, make_tiny_tokenizer

from ppocoder_jax.cli import main
from ppocoder_jax.model import store, t5
from ppocoder_jax.model.tokenizer import load_tokenizer

torch = pytest.importorskip("torch")

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "print('héllo wörld') # ✓ unicode",
    "<s> special </s> tokens <pad>",
    "",
]


def torch_logits(model, batch):
    enc_ids, enc_mask, dec_ids, dec_mask = (torch.tensor(x, dtype=torch.long) for x in batch)
    with torch.no_grad():
        return model(
            input_ids=enc_ids,
            attention_mask=enc_mask,
            decoder_input_ids=dec_ids,
            decoder_attention_mask=dec_mask,
        ).logits.numpy()


def a_batch(vocab_size, seed=0):
    rng = np.random.default_rng(seed)
    enc_mask = np.array([[1] * 6, [1] * 3 + [0] * 3], np.int32)
    dec_mask = np.array([[1] * 5, [1] * 2 + [0] * 3], np.int32)
    enc_ids = (rng.integers(3, vocab_size, enc_mask.shape) * enc_mask).astype(np.int32)
    dec_ids = (rng.integers(3, vocab_size, dec_mask.shape) * dec_mask).astype(np.int32)
    dec_ids[:, 0] = 0
    return enc_ids, enc_mask, dec_ids, dec_mask


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return make_tiny_hf_t5(tmp_path_factory.mktemp("hf"), variant="v1.0", tied=True)


@pytest.mark.parametrize("variant,tied", [("v1.0", True), ("v1.1", False)])
def test_import_export_roundtrip(tmp_path, variant, tied):
    src = make_tiny_hf_t5(tmp_path, variant=variant, tied=tied, num_decoder_layers=3)
    ours, exported = tmp_path / "ours", tmp_path / "exported"
    assert main(["import-hf", str(src), str(ours)]) == 0
    assert (ours / "ppocoder_model.json").is_file() and (ours / "params").is_dir()

    # Our checkpoint reproduces the original's logits.
    params, cfg, tokenizer = store.load_model(ours)
    assert cfg.tie_word_embeddings == tied and tokenizer is not None
    batch = a_batch(cfg.vocab_size)
    original = torch_logits(load_torch_t5(src), batch)
    logits, values = t5.forward(params, cfg, *batch)
    valid = batch[3].astype(bool)
    np.testing.assert_allclose(np.asarray(logits)[valid], original[valid], atol=1e-4, rtol=0)
    assert np.all(np.asarray(values) == 0)  # fresh value head

    assert main(["export-hf", str(ours), str(exported)]) == 0
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        assert (exported / name).is_file(), name
    assert (exported / "value_head.safetensors").is_file()
    from safetensors.numpy import load_file

    assert not any("value" in k and "head" in k for k in load_file(exported / "model.safetensors"))
    gen = json.loads((exported / "generation_config.json").read_text())
    assert gen["decoder_start_token_id"] == 0 and gen["eos_token_id"] == 2

    # transformers loads the export and gives the original's logits.
    reloaded = load_torch_t5(exported)
    np.testing.assert_allclose(torch_logits(reloaded, batch)[valid], original[valid], atol=1e-5)

    # The exported tokenizer encodes exactly like the original.
    from transformers import AutoTokenizer

    tok_src = AutoTokenizer.from_pretrained(str(src))
    tok_out = AutoTokenizer.from_pretrained(str(exported))
    for text in TEXTS:
        assert tok_out(text)["input_ids"] == tok_src(text)["input_ids"], text
    assert (tok_out.pad_token_id, tok_out.bos_token_id, tok_out.eos_token_id) == (0, 1, 2)


def test_value_head_survives_save_and_export(tmp_path, hf_dir):
    params, cfg, tokenizer = store.load_model(hf_dir)
    rng = np.random.default_rng(0)
    params["value_head"] = {
        "kernel": rng.normal(size=(cfg.d_model, 1)).astype(np.float32),
        "bias": np.array([0.25], np.float32),
    }
    store.save_model(tmp_path / "ckpt", params, cfg, tokenizer, extra_config={"note": "x"})
    assert store.read_model_meta(tmp_path / "ckpt")["extra_config"] == {"note": "x"}
    assert main(["export-hf", str(tmp_path / "ckpt"), str(tmp_path / "hf")]) == 0
    for path in (tmp_path / "ckpt", tmp_path / "hf"):
        loaded, loaded_cfg, _ = store.load_model(path)
        assert loaded_cfg == cfg
        for name in ("kernel", "bias"):
            np.testing.assert_array_equal(loaded["value_head"][name], params["value_head"][name])
        same = jax.tree_util.tree_map(np.array_equal, loaded["t5"], params["t5"])
        assert all(jax.tree_util.tree_leaves(same))


def test_import_pytorch_bin(tmp_path):
    src = make_tiny_hf_t5(tmp_path, variant="v1.1", tied=False, weights_format="bin")
    assert not (src / "model.safetensors").exists()
    params, cfg, _ = store.load_model(src)
    batch = a_batch(cfg.vocab_size, seed=1)
    valid = batch[3].astype(bool)
    expected = torch_logits(load_torch_t5(src), batch)
    np.testing.assert_allclose(
        np.asarray(t5.forward(params, cfg, *batch)[0])[valid], expected[valid], atol=1e-4, rtol=0
    )


def test_import_bf16_safetensors(tmp_path):
    """bf16 / fp16 checkpoints load (safetensors.numpy itself cannot read bfloat16)."""
    src = make_tiny_hf_t5(tmp_path, variant="v1.1", tied=False, with_tokenizer=False)
    model = load_torch_t5(src)
    half = tmp_path / "half"
    model.to(torch.bfloat16).save_pretrained(half)
    shutil.copy(src / "config.json", half / "config.json")
    params, cfg, _ = store.load_model(half)
    state = {k: v.float().numpy() for k, v in model.state_dict().items()}
    np.testing.assert_array_equal(params["t5"]["lm_head"]["kernel"], state["lm_head.weight"].T)
    kernel = params["t5"]["decoder"]["layers_0"]["self_attention"]["query"]["kernel"]
    assert kernel.dtype == np.float32
    np.testing.assert_array_equal(
        kernel.reshape(cfg.d_model, -1).T, state["decoder.block.0.layer.0.SelfAttention.q.weight"]
    )


def test_tokenizer_loaders(tmp_path):
    tok = make_tiny_tokenizer()
    # tokenizer.json only (no tokenizer_config.json)
    bare = tmp_path / "bare"
    bare.mkdir()
    tok.backend_tokenizer.save(str(bare / "tokenizer.json"))
    # RoBERTa layout, as CodeT5 ships it: vocab.json + merges.txt
    roberta = tmp_path / "roberta"
    roberta.mkdir()
    tok.backend_tokenizer.model.save(str(roberta))
    (roberta / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "RobertaTokenizer", "model_max_length": 512})
    )
    code = TEXTS[0] + TEXTS[1]
    want = tok(code)["input_ids"]
    for directory in (bare, roberta):
        loaded = load_tokenizer(directory)
        assert loaded(code)["input_ids"] == want, directory.name
        assert (loaded.pad_token_id, loaded.eos_token_id) == (0, 2)


# --- bad input: one-line error, exit code 2, no output directory ---------------------------


def _expect_refusal(capsys, argv, out_dir, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out_dir.exists()
    leftovers = [p.name for p in out_dir.parent.iterdir() if p.name.startswith(f".{out_dir.name}")]
    assert not leftovers


def _copy(hf_dir, tmp_path, name="model"):
    dst = tmp_path / name
    shutil.copytree(hf_dir, dst)
    return dst


def test_import_missing_directory(tmp_path, capsys):
    out = tmp_path / "out"
    _expect_refusal(capsys, ["import-hf", str(tmp_path / "nope"), str(out)], out, "not found")


def test_import_no_weights(tmp_path, capsys, hf_dir):
    src = _copy(hf_dir, tmp_path)
    (src / "model.safetensors").unlink()
    out = tmp_path / "out"
    _expect_refusal(capsys, ["import-hf", str(src), str(out)], out, "no weights file")


def test_import_no_config(tmp_path, capsys, hf_dir):
    src = _copy(hf_dir, tmp_path)
    (src / "config.json").unlink()
    out = tmp_path / "out"
    _expect_refusal(capsys, ["import-hf", str(src), str(out)], out, "config.json")
    (src / "config.json").write_text("{not json")
    _expect_refusal(capsys, ["import-hf", str(src), str(out)], out, "not a readable JSON file")
    (src / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": "wide"}))
    _expect_refusal(capsys, ["import-hf", str(src), str(out)], out, "config.json")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_import_corrupt_safetensors(tmp_path, capsys, hf_dir, damage):
    src = _copy(hf_dir, tmp_path)
    weights = src / "model.safetensors"
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        weights.write_bytes(b"\x07" * 64 + data[64:])
    else:
        weights.write_bytes(b"")
    out = tmp_path / "out"
    _expect_refusal(capsys, ["import-hf", str(src), str(out)], out, "model.safetensors", "corrupt")


def test_import_unsupported_architecture(tmp_path, capsys, hf_dir):
    for key, value, fragment in [
        ("model_type", "bart", "unsupported architecture"),
        ("feed_forward_proj", "gated-silu", "feed_forward_proj"),
    ]:
        src = _copy(hf_dir, tmp_path, name=f"model_{key}")
        config = json.loads((src / "config.json").read_text())
        config[key] = value
        (src / "config.json").write_text(json.dumps(config))
        out = tmp_path / f"out_{key}"
        _expect_refusal(capsys, ["import-hf", str(src), str(out)], out, fragment)


def test_import_mismatched_shapes_and_missing_tensor(tmp_path, capsys, hf_dir):
    src = _copy(hf_dir, tmp_path)
    config = json.loads((src / "config.json").read_text())
    config["d_ff"] = config["d_ff"] * 2
    (src / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    _expect_refusal(
        capsys, ["import-hf", str(src), str(out)], out, "DenseReluDense.wi.weight", "shape"
    )

    from safetensors.numpy import load_file, save_file

    src2 = _copy(hf_dir, tmp_path, name="model2")
    tensors = load_file(src2 / "model.safetensors")
    del tensors["decoder.block.1.layer.1.EncDecAttention.o.weight"]
    save_file(tensors, str(src2 / "model.safetensors"), {"format": "pt"})
    _expect_refusal(
        capsys,
        ["import-hf", str(src2), str(out)],
        out,
        "missing tensor 'decoder.block.1.layer.1.EncDecAttention.o.weight'",
    )


def test_import_creates_missing_parents(tmp_path, hf_dir):
    out = tmp_path / "runs" / "models" / "tiny"
    assert main(["import-hf", str(hf_dir), str(out)]) == 0
    assert store.is_our_checkpoint(out)


def test_existing_output_is_kept(tmp_path, capsys, hf_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["import-hf", str(hf_dir), str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep me"


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch, hf_dir):
    def boom(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store, "save_tokenizer", boom)
    out = tmp_path / "out"
    with pytest.raises(OSError):
        store.import_hf(str(hf_dir), out)
    assert list(tmp_path.iterdir()) == []


def test_export_bad_checkpoints(tmp_path, capsys, hf_dir):
    out = tmp_path / "out"
    _expect_refusal(capsys, ["export-hf", str(tmp_path / "nope"), str(out)], out, "not found")
    ckpt = tmp_path / "ckpt"
    assert main(["import-hf", str(hf_dir), str(ckpt)]) == 0
    capsys.readouterr()
    shutil.rmtree(ckpt / "params")
    _expect_refusal(capsys, ["export-hf", str(ckpt), str(out)], out, "params")


def test_cli_subprocess_exit_code(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ppocoder_jax", "import-hf", str(tmp_path / "missing"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("ppocoder import-hf: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_hub_id(tmp_path, capsys, monkeypatch, hf_dir):
    import huggingface_hub

    def unreachable(repo_id, **_kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    out = tmp_path / "out"
    _expect_refusal(
        capsys, ["import-hf", "Salesforce/codet5-small", str(out)], out, "hub download failed"
    )

    downloaded = []

    def from_cache(repo_id, **_kwargs):
        downloaded.append(repo_id)
        return str(hf_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", from_cache)
    assert main(["import-hf", "Salesforce/codet5-small", str(out)]) == 0
    assert downloaded == ["Salesforce/codet5-small"] and store.is_our_checkpoint(out)


def test_sharded_safetensors_index(tmp_path, hf_dir):
    from safetensors.numpy import load_file, save_file

    src = _copy(hf_dir, tmp_path)
    tensors = load_file(src / "model.safetensors")
    (src / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[::2],
        "model-00002-of-00002.safetensors": names[1::2],
    }
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(src / shard), {"format": "pt"})
        weight_map.update({k: shard for k in keys})
    (src / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    sharded, _, _ = store.load_model(src)
    single, _, _ = store.load_model(hf_dir)
    same = jax.tree_util.tree_map(np.array_equal, sharded, single)
    assert all(jax.tree_util.tree_leaves(same))


def test_import_and_export_without_torch(tmp_path, hf_dir):
    """The safetensors import and the export run with torch unimportable."""
    script = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "from ppocoder_jax.cli import main\n"
        f"assert main(['import-hf', {str(hf_dir)!r}, {str(tmp_path / 'ours')!r}]) == 0\n"
        f"assert main(['export-hf', {str(tmp_path / 'ours')!r}, {str(tmp_path / 'hf')!r}]) == 0\n"
        "assert sys.modules['torch'] is None\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    exported, _, tokenizer = store.load_model(tmp_path / "hf")
    original, _, _ = store.load_model(hf_dir)
    same = jax.tree_util.tree_map(np.array_equal, exported, original)
    assert all(jax.tree_util.tree_leaves(same)) and tokenizer is not None
