"""Tiny random Hugging Face T5 models and tokenizers for tests (PyTorch CPU, seconds).

    make_tiny_tokenizer() -> PreTrainedTokenizerFast   (byte-level BPE; <pad>=0 <s>=1 </s>=2 <unk>=3)
    make_tiny_hf_t5(tmp_path, variant="v1.0"|"v1.1", tied=True, ...) -> Path of a HF directory
    load_torch_t5(path) -> transformers.T5ForConditionalGeneration (eval mode)

The directory looks like a hub checkpoint: config.json in the transformers-4 spelling
(`tie_word_embeddings` only, as CodeT5 / CodeT5+ ship it), model.safetensors (or
pytorch_model.bin with weights_format="bin"), tokenizer files. Layer norm scales are random
(not 1) so a mis-mapped norm shows up in logits.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]

TRAINING_TEXT = [
    "def add(a, b):\n    return a + b\n",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for i in range(10):\n    print(i * i)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n",
    "public static int max(int a, int b) { return a > b ? a : b; }\n",
    '#include <stdio.h>\nint main() { printf("%d\\n", 42); return 0; }\n',
    "x = [y for y in data if y is not None]\n",
]


def make_tiny_tokenizer(vocab_size: int = 300):
    """A deterministic byte-level BPE with CodeT5's special-token ids, as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
    )
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def make_tiny_hf_t5(
    tmp_path,
    variant: str = "v1.0",
    tied: bool = True,
    num_layers: int = 2,
    num_decoder_layers: int | None = None,
    num_heads: int = 4,
    d_model: int = 32,
    d_kv: int = 8,
    d_ff: int = 64,
    vocab_size: int = 320,
    seed: int = 0,
    with_tokenizer: bool = True,
    weights_format: str = "safetensors",
    name: str | None = None,
) -> Path:
    """Save a random T5ForConditionalGeneration (+ tokenizer) under tmp_path; return its dir."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    assert variant in ("v1.0", "v1.1")
    assert weights_format in ("safetensors", "bin")
    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_kv,
        d_ff=d_ff,
        num_layers=num_layers,
        num_decoder_layers=num_decoder_layers,
        num_heads=num_heads,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        feed_forward_proj="relu" if variant == "v1.0" else "gated-gelu",
        tie_word_embeddings=tied,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=0,
        dropout_rate=0.0,
    )
    model = T5ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("layer_norm.weight"):
                p.copy_(torch.rand_like(p) + 0.5)
        if not tied:
            model.lm_head.weight = torch.nn.Parameter(torch.randn(vocab_size, d_model))
    name = name or f"t5_{variant}_{'tied' if tied else 'untied'}_{seed}"
    out = Path(tmp_path) / name
    out.mkdir(parents=True, exist_ok=False)
    if weights_format == "safetensors":
        model.save_pretrained(out)
    else:
        model.config.save_pretrained(out)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        torch.save(state, out / "pytorch_model.bin")
    # Hub (transformers 4) spelling of the config, as CodeT5 / CodeT5+ ship it.
    config = json.loads((out / "config.json").read_text())
    for key in ("scale_decoder_outputs", "dense_act_fn", "is_gated_act"):
        config.pop(key, None)
    config["tie_word_embeddings"] = tied
    (out / "config.json").write_text(json.dumps(config, indent=2))
    if with_tokenizer:
        make_tiny_tokenizer().save_pretrained(out)
    return out


def load_torch_t5(path):
    from transformers import T5ForConditionalGeneration

    return T5ForConditionalGeneration.from_pretrained(str(path)).eval()
