"""C# data-flow rules (GraphCodeBERT / CodeXGLUE definitions)."""

from __future__ import annotations

from ppocoder_jax.rewards.matching.dataflow.engine import field
from ppocoder_jax.rewards.matching.dataflow.java import JavaLikeExtractor


class CSharpExtractor(JavaLikeExtractor):
    definition_types = ("variable_declarator",)
    assignment_types = ("assignment_expression",)
    increment_types = ("postfix_unary_expression",)
    if_types = ("if_statement", "else")
    for_types = ("for_statement",)
    for_init_type = "local_variable_declaration"
    # CodeXGLUE's name; the current grammar calls it foreach_statement, so like the reference
    # we walk foreach loops as plain statements.
    foreach_types = ("for_each_statement",)
    while_types = ("while_statement",)

    def definition_parts(self, node):
        # the reference takes the value only when the declarator has exactly two children
        children = node.children
        if len(children) == 2:
            return children[0], children[1]
        return children[0], None

    def foreach_parts(self, node):
        return field(node, "left"), field(node, "right"), field(node, "body")
