"""`ppocoder import-hf MODEL OUT_DIR`: a Hugging Face T5/CodeT5 model -> our checkpoint."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="local Hugging Face directory, or a hub id (needs the hub)"
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="new checkpoint directory")


def run(args) -> int:
    from ppocoder_jax.model.store import import_hf

    cfg = import_hf(args.model, args.out_dir)
    kind = "v1.1 (gated-gelu)" if cfg.is_gated else "v1.0 (relu)"
    head = "tied" if cfg.tie_word_embeddings else "untied"
    print(
        f"imported T5 {kind}, {head} lm_head, d_model={cfg.d_model}, "
        f"layers={cfg.num_layers}/{cfg.num_decoder_layers}, vocab={cfg.vocab_size} "
        f"-> {args.out_dir}"
    )
    return 0
