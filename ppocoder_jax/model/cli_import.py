"""`ppocoder import-hf MODEL OUT_DIR`: a Hugging Face model (T5/CodeT5, or decoder-only
Llama/Qwen2/Qwen3) -> our checkpoint."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="local Hugging Face directory, or a hub id (needs the hub)"
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="new checkpoint directory")


def run(args) -> int:
    from ppocoder_jax.model.families import family_of
    from ppocoder_jax.model.store import import_hf

    cfg = import_hf(args.model, args.out_dir)
    print(f"imported {family_of(cfg).describe(cfg)} -> {args.out_dir}")
    return 0
