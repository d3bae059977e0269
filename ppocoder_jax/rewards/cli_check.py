"""`ppocoder check`: compile / unit-test one program in the sandbox and print one JSON object.

Exit 0 whenever a verdict was reached (even COMPILE_ERROR or INFRA_ERROR); 2 for bad usage.
The program is checked byte for byte: text that is not UTF-8 is the toolchain's to reject.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ppocoder_jax.errors import UserError


def add_arguments(parser) -> None:
    parser.add_argument("program", metavar="FILE|-", help="program source file, or - for stdin")
    parser.add_argument(
        "--lang",
        required=True,
        help="python | java | cpp | c | csharp | php | javascript",
    )
    parser.add_argument(
        "--tests",
        metavar="TESTS.json",
        help='{"inputs": [...], "outputs": [...][, "fn_name": "f"]} or {"test_code": "..."}',
    )
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds per test (default 4)")
    parser.add_argument(
        "--link", action="store_true", help="require a full program (a main), not just a unit"
    )
    parser.add_argument("--json", action="store_true", help="print compact JSON on one line")


def _read_program(arg: str) -> str:
    # Bytes, decoded with surrogateescape (the executor writes those bytes back unchanged):
    # non-UTF-8 input is a program like any other. A strict stdin decoder raised a traceback
    # (locales other than C), and a file was refused as bad usage instead of getting a verdict.
    if arg == "-":
        return sys.stdin.buffer.read().decode("utf-8", errors="surrogateescape")
    path = Path(arg)
    if not path.is_file():
        raise UserError(f"{arg}: no such file")
    try:
        return path.read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as err:
        raise UserError(f"{arg}: cannot read program: {err}") from None


def _read_tests(arg: str | None):
    if arg is None:
        return None
    path = Path(arg)
    if not path.is_file():
        raise UserError(f"{arg}: no such tests file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{arg}: not valid JSON: {err}") from None


def run(args) -> int:
    from ppocoder_jax.rewards.execution import Executor, canonical_language
    from ppocoder_jax.rewards.execution.harness import parse_tests

    try:
        lang = canonical_language(args.lang)
    except ValueError as err:
        raise UserError(f"--lang: {err}") from None
    if not args.timeout > 0:
        raise UserError(f"--timeout must be > 0, got {args.timeout}")
    program = _read_program(args.program)
    tests = _read_tests(args.tests)
    try:
        parse_tests(tests, lang)
    except ValueError as err:
        raise UserError(f"{args.tests}: {err}") from None
    with Executor(workers=1, timeout_s=args.timeout, cpp_pch=False) as executor:
        result = executor.submit(lang, program, tests, link=args.link).result()
    print(json.dumps(result.to_dict(), indent=None if args.json else 2))
    return 0
