"""Reading local dataset files with errors that name the file and the problem."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ppocoder_jax.errors import UserError


def open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def jsonl_records(path: Path, what: str = "dataset file") -> Iterator[tuple[str, dict]]:
    """("FILE:LINE", object) per non-blank line of a .jsonl(.gz) file; a malformed line, a line
    that is not an object, a missing or unreadable file raise UserError naming file and line."""
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{where}: malformed JSON ({err.msg})") from None
                if not isinstance(obj, dict):
                    raise UserError(f"{where}: expected a JSON object, got {short_repr(obj)}")
                yield where, obj
    except FileNotFoundError:
        raise UserError(f"{what} {str(path)!r} not found") from None
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError) as err:
        if isinstance(err, UserError):
            raise
        raise UserError(f"{path}: cannot read ({err})") from None


def iter_jsonl(path: Path) -> Iterator[dict]:
    """The objects of a .jsonl(.gz) file (`jsonl_records` without the locations)."""
    for _, obj in jsonl_records(path):
        yield obj


def short_repr(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json(path: Path):
    try:
        text = open_text(path).read()
    except FileNotFoundError:
        raise UserError(f"dataset file {str(path)!r} not found") from None
    except (UnicodeDecodeError, OSError) as err:
        raise UserError(f"{path}: cannot read ({err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: malformed JSON at line {err.lineno} ({err.msg})") from None


def read_records(path: Path) -> list[dict]:
    """A .jsonl(.gz) file, or a .json file holding a list of objects."""
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        return list(iter_jsonl(path))
    data = read_json(path)
    if isinstance(data, dict):  # {"0": {...}, ...} exports
        data = list(data.values())
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise UserError(f"{path}: expected a JSON list of objects")
    return data


def require_fields(record: dict, fields: tuple[str, ...], where: str) -> None:
    missing = [f for f in fields if f not in record]
    if missing:
        raise UserError(f"{where}: missing field {missing[0]!r}")


def looks_like_hub_id(path: str) -> bool:
    p = Path(path)
    return (
        not p.exists()
        and not path.startswith((".", "/", "~"))
        and path.count("/") <= 1
        and not p.suffix
    )


def load_hub_dataset(name: str, what: str, **kwargs):
    """A Hugging Face dataset by id (needs the optional `datasets` package and the hub)."""
    try:
        import datasets  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise UserError(
            f"{what}: {name!r} is not a local path and the `datasets` package is not "
            "installed; download the dataset and pass its local path as data.path"
        ) from None
    try:
        return datasets.load_dataset(name, **kwargs)
    except Exception as err:  # offline, unknown id, ...
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(
            f"{what}: cannot load Hugging Face dataset {name!r} ({msg}); "
            "pass a local path as data.path"
        ) from None


def default_cache_dir() -> Path:
    """Where built corpora and the embedded tokenizer are cached ($PPOCODER_CACHE)."""
    env = os.environ.get("PPOCODER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ppocoder_jax"
