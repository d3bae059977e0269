"""The programs that run inside the sandbox beside the toolchains: the JavaScript, PHP and C#
check servers, the javac server and the Python test runner. They are package data files (not
string literals) so that the suite checks each with its own toolchain (tests/test_programs.py).
"""

from __future__ import annotations

from importlib import resources


def source(name: str) -> str:
    """The text of one program file of this package."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
