"""`ppocoder match`: AST / data-flow match and CodeBLEU of a candidate program against a
reference program."""

from __future__ import annotations

import json
from pathlib import Path

from ppocoder_jax.errors import UserError

_KEYS = ("ast_match", "dfg_match", "ngram_match", "weighted_ngram_match", "codebleu")


def add_arguments(parser) -> None:
    parser.add_argument(
        "--lang",
        required=True,
        help="python, java, cpp, c, csharp (or c_sharp), php or javascript",
    )
    parser.add_argument("--reference", required=True, help="file with the reference program")
    parser.add_argument("--candidate", required=True, help="file with the candidate program")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _read(path: str, what: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} file {path}: not found")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{what} file {path}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise UserError(f"{what} file {path}: {err.strerror}") from None


def run(args) -> int:
    from ppocoder_jax.rewards.matching import canonical_language, codebleu

    lang = canonical_language(args.lang)
    reference = _read(args.reference, "reference")
    candidate = _read(args.candidate, "candidate")
    scores = codebleu(reference, candidate, lang)
    if args.json:
        print(json.dumps({k: scores[k] for k in _KEYS}))
    else:
        for k in _KEYS:
            print(f"{k:22s} {scores[k]:.6f}")
    return 0
