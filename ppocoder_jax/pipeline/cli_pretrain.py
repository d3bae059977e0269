"""`ppocoder pretrain [--config PRESET] [key=value ...]`: build the embedded pretrained model.

Pretrains the tiny model of `model.tiny_*` / `model.family` on the standard library by
`pretrain.*` and caches it (pipeline/pretrain.py); prints its directory. A preset with
`model.init: pretrained` builds it on first use too; this command does it ahead of time.
"""

from __future__ import annotations

import json

from ppocoder_jax.config import add_config_arguments, load_config


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--force", action="store_true", help="rebuild even when the cached model exists"
    )


def run(args) -> int:
    import shutil

    from ppocoder_jax.pipeline.pretrain import INFO_FILE, ensure_pretrained, pretrained_dir

    cfg = load_config(args.config, args.overrides)
    path = pretrained_dir(cfg)
    if args.force and path.exists():
        shutil.rmtree(path)
    cached = (path / INFO_FILE).is_file()
    path = ensure_pretrained(cfg)
    info = json.loads((path / INFO_FILE).read_text())
    state = "cached" if cached else "built"
    print(
        f"pretrain: {state}: {path} ({info['objective']}, {info['steps']} steps, "
        f"{info['wall_s'] / 60:.1f} min to build, held-out loss {info['val_loss']:.3f})"
    )
    return 0
