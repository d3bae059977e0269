"""Language names, aliases and per-language tree facts used by the matching code."""

from __future__ import annotations

from ppocoder_jax.languages import LANGUAGES, canonical_language  # noqa: F401

# Node types that are comments, per language (removed from the tree before matching).
COMMENT_TYPES: dict[str, frozenset[str]] = {
    "python": frozenset({"comment"}),
    "java": frozenset({"line_comment", "block_comment", "comment"}),
    "cpp": frozenset({"comment"}),
    "c": frozenset({"comment"}),
    "csharp": frozenset({"comment"}),
    "php": frozenset({"comment"}),
    "javascript": frozenset({"comment", "html_comment"}),
}

# Node types that count as one token in the data-flow graph even though tree-sitter gives them
# children (string literals). The reference uses the same three names for every language; our
# own C/C++ rules add the C names.
DFG_STRING_TYPES = frozenset({"string_literal", "string", "character_literal"})
C_DFG_STRING_TYPES = frozenset(
    {"string_literal", "char_literal", "raw_string_literal", "system_lib_string"}
)


DFG_STRING_TYPES_BY_LANG: dict[str, frozenset[str]] = {
    lang: C_DFG_STRING_TYPES if lang in ("c", "cpp") else DFG_STRING_TYPES for lang in LANGUAGES
}
