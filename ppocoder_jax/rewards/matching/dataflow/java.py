"""Java data-flow rules (GraphCodeBERT / CodeXGLUE definitions), and the family they share
with C#, JavaScript and PHP: definitions, assignments, increments, if/else, for, for-each,
while."""

from __future__ import annotations

from ppocoder_jax.rewards.matching.dataflow.engine import (
    COMPUTED,
    Extractor,
    dedup,
    field,
)


class JavaLikeExtractor(Extractor):
    """Table-driven rules; subclasses set the node types."""

    definition_types: tuple = ()
    assignment_types: tuple = ()
    increment_types: tuple = ()
    if_types: tuple = ()
    for_types: tuple = ()
    for_init_type: str = ""  # the child after which a for loop's parts are walked again
    foreach_types: tuple = ()
    while_types: tuple = ()
    if_uses_else_tag = True  # without an else branch the state before the if also reaches
    if_always_keeps_before = False  # PHP/JavaScript: it always does

    def __init__(self) -> None:
        super().__init__()
        for kind, handler in (
            (self.definition_types, self.definition),
            (self.assignment_types, self.assignment),
            (self.increment_types, self.increment),
            (self.if_types, self.if_statement),
            (self.for_types, self.for_statement),
            (self.foreach_types, self.foreach),
            (self.while_types, self.twice),
        ):
            for type_ in kind:
                self.handlers.setdefault(type_, handler)

    # the parts of a definition / for-each; overridden where the grammar differs
    def definition_parts(self, node):
        return field(node, "name"), field(node, "value")

    def foreach_parts(self, node):
        return field(node, "name"), field(node, "value"), field(node, "body")

    def definition(self, node, states):
        name, value = self.definition_parts(node)
        return self.define(name, value, states)

    def assignment(self, node, states):
        return self.assign(field(node, "left"), field(node, "right"), states)

    def if_statement(self, node, states):
        items = []
        current = dict(states)
        branches = []
        in_else = False
        has_else = "else" in node.type
        if_types = self.if_types
        for child in node.children:
            if "else" in child.type:
                has_else = True
            if child.type not in if_types and not in_else:
                got, current = self.dfg(child, current)
            else:
                in_else = True
                got, branch = self.dfg(child, dict(states))
                branches.append(branch)
            items += got
        branches.append(current)
        if self.if_uses_else_tag and not has_else:
            branches.append(states)
        extra = states if self.if_always_keeps_before else None
        return items, self.merge_states(branches, extra)

    def for_statement(self, node, states):
        items = []
        for child in node.children:
            got, states = self.dfg(child, states)
            items += got
        again = False
        for child in node.children:
            if again:
                got, states = self.dfg(child, states)
                items += got
            elif child.type == self.for_init_type:
                again = True
        return dedup(items), states

    def foreach(self, node, states):
        name, value, body = self.foreach_parts(node)
        items = []
        for _ in range(2):
            got, states = self.dfg(value, states)
            items += got
            name_tokens = self.variables(name)
            value_tokens = self.variables(value)
            for idx1, code1 in name_tokens:
                for idx2, code2 in value_tokens:
                    items.append((code1, idx1, COMPUTED, [code2], [idx2]))
                states[code1] = [idx1]
            got, states = self.dfg(body, states)
            items += got
        return dedup(items), states


class JavaExtractor(JavaLikeExtractor):
    definition_types = ("variable_declarator",)
    assignment_types = ("assignment_expression",)
    increment_types = ("update_expression",)
    if_types = ("if_statement", "else")
    for_types = ("for_statement",)
    for_init_type = "local_variable_declaration"
    foreach_types = ("enhanced_for_statement",)
    while_types = ("while_statement",)
