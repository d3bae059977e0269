"""C and C++ data-flow rules (ours).

CodeXGLUE (and PPOCoder) run the C# extractor on C and C++ trees, but C/C++ grammars name
their nodes differently (`init_declarator`, `update_expression`, `else_clause`,
`for_range_loop`, `do_statement`...), so most definitions and increments are missed and the
graphs are partial. These rules follow the same GraphCodeBERT scheme with the C/C++ node types:

- `T x = e;` (init_declarator): the declared name comesFrom each variable of `e`; only the
  declared identifier counts as the name (not array sizes or pointer stars);
- `x = e`, `x op= e` (assignment_expression): computedFrom each variable of `e`;
- `x++`, `--x` (update_expression): computedFrom itself;
- if/else: definitions from each branch reach the code after it;
- for: initializer, condition, update, body, then condition, update and body once more;
  range-for (C++) like Java's for-each; while and do/while: their children twice;
- string, character and raw string literals are single tokens.

Missing parts in error-recovered trees are skipped instead of emptying the whole graph.
"""

from __future__ import annotations

from ppocoder_jax.rewards.matching.dataflow.engine import COMPUTED, dedup, field
from ppocoder_jax.rewards.matching.dataflow.java import JavaLikeExtractor
from ppocoder_jax.rewards.matching.languages import C_DFG_STRING_TYPES

_NAME_TYPES = frozenset({"identifier", "field_identifier", "qualified_identifier"})


def declared_name(node):
    """The identifier a declarator declares (follows nested `declarator` fields)."""
    while node is not None and node.type not in _NAME_TYPES:
        inner = field(node, "declarator")
        if inner is None:
            return node
        node = inner
    return node


class CExtractor(JavaLikeExtractor):
    string_types = C_DFG_STRING_TYPES
    strict = False
    definition_types = ("init_declarator",)
    assignment_types = ("assignment_expression",)
    increment_types = ("update_expression",)
    if_types = ("if_statement",)
    for_types = ("for_statement",)
    foreach_types = ("for_range_loop",)
    while_types = ("while_statement", "do_statement")

    def definition_parts(self, node):
        return declared_name(field(node, "declarator")), field(node, "value")

    def foreach_parts(self, node):
        return declared_name(field(node, "declarator")), field(node, "right"), field(node, "body")

    def if_statement(self, node, states):
        items = []
        current = dict(states)
        branches = []
        has_else = False
        for child in node.children:
            if child.type == "else_clause":
                has_else = True
                got, branch = self.dfg(child, dict(states))
                branches.append(branch)
            else:
                got, current = self.dfg(child, current)
            items += got
        branches.append(current)
        if not has_else:
            branches.append(states)
        return items, self.merge_states(branches)

    def for_statement(self, node, states):
        items = []
        for child in node.children:
            got, states = self.dfg(child, states)
            items += got
        for child in node.children:
            if child.field in ("condition", "update", "body"):
                got, states = self.dfg(child, states)
                items += got
        return dedup(items), states

    def foreach(self, node, states):
        name, value, body = self.foreach_parts(node)
        if value is None or name is None:
            return self.sequence(node, states)
        items = []
        for _ in range(2):
            got, states = self.dfg(value, states)
            items += got
            value_tokens = self.variables(value)
            for idx1, code1 in self.variables(name):
                for idx2, code2 in value_tokens:
                    items.append((code1, idx1, COMPUTED, [code2], [idx2]))
                states[code1] = [idx1]
            got, states = self.dfg(body, states)
            items += got
        return dedup(items), states
