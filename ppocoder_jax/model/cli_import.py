"""`ppocoder import-hf MODEL OUT_DIR`: a Hugging Face model (T5/CodeT5, or decoder-only
Llama/Qwen2/Qwen3) -> our checkpoint."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="local Hugging Face directory, or a hub id (needs the hub)"
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="new checkpoint directory")


def run(args) -> int:
    from ppocoder_jax.model.store import import_hf

    cfg = import_hf(args.model, args.out_dir)
    head = "tied" if cfg.tie_word_embeddings else "untied"
    if not hasattr(cfg, "is_gated"):  # a decoder-only DecoderConfig
        print(
            f"imported {cfg.model_type} decoder-only LM, {head} lm_head, "
            f"hidden={cfg.hidden_size}, layers={cfg.num_hidden_layers}, "
            f"heads={cfg.num_attention_heads}/{cfg.num_key_value_heads} kv, "
            f"vocab={cfg.vocab_size} -> {args.out_dir}"
        )
        return 0
    kind = "v1.1 (gated-gelu)" if cfg.is_gated else "v1.0 (relu)"
    print(
        f"imported T5 {kind}, {head} lm_head, d_model={cfg.d_model}, "
        f"layers={cfg.num_layers}/{cfg.num_decoder_layers}, vocab={cfg.vocab_size} "
        f"-> {args.out_dir}"
    )
    return 0
