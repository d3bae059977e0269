"""Python data-flow rules (GraphCodeBERT / CodeXGLUE definitions)."""

from __future__ import annotations

from ppocoder_jax.rewards.matching.dataflow.engine import (
    COMPUTED,
    Abort,
    Extractor,
    dedup,
    field,
)


class PythonExtractor(Extractor):
    do_first = frozenset({"for_in_clause"})

    def __init__(self) -> None:
        super().__init__()
        self.handlers = {
            "default_parameter": self.default_parameter,
            "assignment": self.assignment,
            "augmented_assignment": self.assignment,
            "for_in_clause": self.assignment,
            "if_statement": self.if_statement,
            "for_statement": self.for_statement,
            "while_statement": self.twice,
        }

    def default_parameter(self, node, states):
        return self.define(field(node, "name"), field(node, "value"), states)

    def _pairs(self, left, right):
        """Pair up `a, b = c, d`; otherwise the whole left side with the whole right side.

        CodeXGLUE pairs the children of the two sides whenever their counts agree. A string is
        one data-flow token, so its children are never paired: current grammars give a string
        three children (start, content, end), as many as an attribute target has, and
        `a.b = "s"` would pair `a` with the string's opening quote. The package then fails on
        that sub-token and drops the whole program's graph; we pair the whole sides instead.
        """
        if left is None or right is None:
            raise Abort
        left_nodes = self._elements(left)
        right_nodes = self._elements(right)
        if len(right_nodes) != len(left_nodes):
            left_nodes, right_nodes = [left], [right]
        if not left_nodes:
            left_nodes = [left]
        if not right_nodes:
            right_nodes = [right]
        return left_nodes, right_nodes

    def _elements(self, node) -> list:
        if node.type in self.string_types:
            return [node]
        return [c for c in node.children if c.type != ","]

    def _flow(self, left_nodes, right_nodes, states, items):
        for node in right_nodes:
            got, states = self.dfg(node, states)
            items += got
        for left, right in zip(left_nodes, right_nodes):
            right_tokens = self.variables(right)
            names = [code for _idx, code in right_tokens]
            idxs = [idx for idx, _code in right_tokens]
            for idx1, code1 in self.variables(left):
                items.append((code1, idx1, COMPUTED, list(names), list(idxs)))
                states[code1] = [idx1]
        return states

    def assignment(self, node, states):
        if node.type == "for_in_clause":
            left_nodes = [field(node, "left")]
            right_nodes = [node.children[-1]]
        else:
            right = field(node, "right")
            if right is None:
                return [], states
            left_nodes, right_nodes = self._pairs(field(node, "left"), right)
        items: list = []
        states = self._flow(left_nodes, right_nodes, states, items)
        return items, states

    def if_statement(self, node, states):
        items = []
        current = dict(states)
        branches = []
        has_else = False
        for child in node.children:
            if "else" in child.type:
                has_else = True
            if child.type not in ("elif_clause", "else_clause"):
                got, current = self.dfg(child, current)
            else:
                got, branch = self.dfg(child, dict(states))
                branches.append(branch)
            items += got
        branches.append(current)
        if not has_else:
            branches.append(states)
        return items, self.merge_states(branches)

    def for_statement(self, node, states):
        items: list = []
        for _ in range(2):
            left_nodes, right_nodes = self._pairs(field(node, "left"), field(node, "right"))
            states = self._flow(left_nodes, right_nodes, states, items)
            if node.children[-1].type == "block":
                got, states = self.dfg(node.children[-1], states)
                items += got
        return dedup(items), states
