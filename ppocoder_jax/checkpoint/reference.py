"""The frozen reference policy of a run: the starting parameters, written once to
`<run_dir>/reference_model` so that a resumed run uses the same copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import jax

REFERENCE_DIR = "reference_model"


def save_reference(run_dir: Path, params, model_cfg, tokenizer) -> None:
    from ppocoder_jax.model import save_model

    path = Path(run_dir) / REFERENCE_DIR
    if path.exists() or jax.process_index() != 0:
        return
    # Written beside, then renamed: a run killed mid-write leaves no half reference.
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, jax.device_get(params), model_cfg, tokenizer)
    tmp.rename(path)


def load_reference(run_dir: Path):
    from ppocoder_jax.model import load_model

    params, _, _ = load_model(str(Path(run_dir) / REFERENCE_DIR))
    return params
