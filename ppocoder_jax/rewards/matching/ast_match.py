"""Syntax (AST) match: CodeBLEU's r_ast.

Over the reference's subtrees that have children (the root included, with multiplicity), the
fraction whose S-expression (node types and field names, as tree-sitter prints them) also
occurs among the candidate's subtrees. Comments are removed first (see `tree`).
"""

from __future__ import annotations


def syntax_counts(reference, candidate) -> tuple[int, int]:
    """(matched, total) reference subtrees; both programs must share one intern table."""
    candidate_keys = set(candidate.subtree_keys)
    matched = 0
    for key in reference.subtree_keys:
        if key in candidate_keys:
            matched += 1
    return matched, len(reference.subtree_keys)
