"""The one table of programming languages: names, aliases, and the one error for an unknown one.

Execution (compilers, tests), matching (tree-sitter) and the data loaders all accept the same
names and aliases (`c_sharp`, `c#`, `cs` -> `csharp`; `c++` -> `cpp`; `js`, `py`).
"""

from __future__ import annotations

from ppocoder_jax.errors import UserError

LANGUAGES = ("python", "java", "cpp", "c", "csharp", "php", "javascript")

ALIASES = {
    "c_sharp": "csharp",
    "c#": "csharp",
    "cs": "csharp",
    "c++": "cpp",
    "js": "javascript",
    "py": "python",
}


class UnknownLanguage(UserError, ValueError):
    """A language name that is in neither table (a UserError: one line, exit 2; and a
    ValueError for callers that check arguments)."""


def canonical_language(lang: str) -> str:
    """Map a language name or alias (`c_sharp`, `C++`, `js`...) to ours; UnknownLanguage else."""
    key = str(lang).strip().lower()
    key = ALIASES.get(key, key)
    if key not in LANGUAGES:
        raise UnknownLanguage(f"unknown language {lang!r}; expected one of {', '.join(LANGUAGES)}")
    return key
