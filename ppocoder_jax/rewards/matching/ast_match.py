"""Syntax (AST) match: CodeBLEU's r_ast.

Over the reference's subtrees that have children (the root included, with multiplicity), the
fraction whose S-expression (node types and field names, as tree-sitter prints them) also
occurs among the candidate's subtrees. Comments are removed first (see `tree`); subtrees are
compared by interned keys (`tree.build_program`), not by strings.
"""

from __future__ import annotations


def count_subtree_matches(reference_keys: list, candidate_keys: set) -> int:
    """How many of the reference's subtree keys (with multiplicity) the candidate has."""
    return sum(map(candidate_keys.__contains__, reference_keys))
