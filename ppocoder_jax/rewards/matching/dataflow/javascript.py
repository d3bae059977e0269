"""JavaScript data-flow rules (GraphCodeBERT / CodeXGLUE definitions).

As in the reference, plain `x = y` (assignment_expression) is not an assignment rule (only
destructuring defaults and `x += y`), and `for (let ...)` loops are walked once more only
after a `var` declaration."""

from __future__ import annotations

from ppocoder_jax.rewards.matching.dataflow.java import JavaLikeExtractor


class JavaScriptExtractor(JavaLikeExtractor):
    definition_types = ("variable_declarator",)
    assignment_types = ("assignment_pattern", "augmented_assignment_expression")
    increment_types = ("update_expression",)
    if_types = ("if_statement", "else")
    for_types = ("for_statement",)
    for_init_type = "variable_declaration"
    foreach_types = ()
    while_types = ("while_statement",)
    if_always_keeps_before = True
