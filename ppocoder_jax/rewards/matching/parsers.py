"""Tree-sitter parsers: one per language per thread (tree-sitter parsers are not thread-safe)."""

from __future__ import annotations

import importlib
import threading
from functools import cache

from tree_sitter import Language, Parser

from ppocoder_jax.rewards.matching.languages import canonical_language

_MODULES = {
    "python": ("tree_sitter_python", "language"),
    "java": ("tree_sitter_java", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "c": ("tree_sitter_c", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "javascript": ("tree_sitter_javascript", "language"),
}

_local = threading.local()


@cache
def get_language(lang: str) -> Language:
    """The tree-sitter `Language` of one of our language names (Language objects are shareable)."""
    module_name, attr = _MODULES[canonical_language(lang)]
    module = importlib.import_module(module_name)
    return Language(getattr(module, attr)())


def get_parser(lang: str) -> Parser:
    """This thread's parser for `lang` (created on first use)."""
    lang = canonical_language(lang)
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(lang)
    if parser is None:
        parser = parsers[lang] = Parser(get_language(lang))
    return parser


def parse(code: str, lang: str):
    """Parse `code` with this thread's parser; returns (tree, utf-8 bytes)."""
    data = code.encode("utf-8", errors="surrogatepass")
    return get_parser(lang).parse(data), data
