"""PHP data-flow rules (GraphCodeBERT / CodeXGLUE definitions)."""

from __future__ import annotations

from ppocoder_jax.rewards.matching.dataflow.engine import field
from ppocoder_jax.rewards.matching.dataflow.java import JavaLikeExtractor


class PhpExtractor(JavaLikeExtractor):
    definition_types = ("simple_parameter",)
    assignment_types = ("assignment_expression", "augmented_assignment_expression")
    increment_types = ("update_expression",)
    if_types = ("if_statement", "else_clause")
    for_types = ("for_statement",)
    for_init_type = "assignment_expression"
    foreach_types = ("foreach_statement",)
    while_types = ("while_statement",)
    if_uses_else_tag = False
    if_always_keeps_before = True

    def definition_parts(self, node):
        return field(node, "name"), field(node, "default_value")

    def foreach_parts(self, node):
        # the reference takes the first variable_name child as the iterated value and the
        # second as the loop variable
        value = name = None
        for child in node.children:
            if child.type == "variable_name" and value is None:
                value = child
            elif child.type == "variable_name" and name is None:
                name = child
                break
        return name, value, field(node, "body")
