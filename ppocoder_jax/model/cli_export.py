"""`ppocoder export-hf CHECKPOINT OUT_DIR`: our checkpoint -> a Hugging Face directory.

OUT_DIR loads with `T5ForConditionalGeneration.from_pretrained` (decoder-only models:
`AutoModelForCausalLM.from_pretrained`) and `AutoTokenizer`; the value
head is written beside the weights as value_head.safetensors. Needs no torch.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="our checkpoint directory")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="new Hugging Face directory")


def run(args) -> int:
    from ppocoder_jax.model.store import export_hf

    cfg = export_hf(args.checkpoint, args.out_dir)
    kind = getattr(cfg, "model_type", "T5")  # decoder-only configs name their type
    print(
        f"exported {args.checkpoint} -> {args.out_dir} "
        f"(Hugging Face {kind} + value_head.safetensors)"
    )
    return 0
