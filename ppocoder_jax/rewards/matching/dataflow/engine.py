"""The data-flow graph (DFG) machinery shared by all languages.

A DFG item is ``(name, token_index, relation, parent_names, parent_token_indices)`` with
relation ``comesFrom`` or ``computedFrom`` (GraphCodeBERT). Each language module defines an
`Extractor` subclass: which node types are definitions, assignments, increments, branches and
loops, and how to find their parts. The base class gives the walk over the light tree
(`tree.TNode`; token leaves carry `tok` = (index, text)), the final merge of items per token
and the normalisation that CodeBLEU applies.

Determinism: where CodeXGLUE merges parent-name lists through a Python ``set`` (so the order,
and with it the normalised names, depends on PYTHONHASHSEED), we keep the order of first
appearance instead.
"""

from __future__ import annotations

from collections import Counter
from operator import itemgetter

from ppocoder_jax.rewards.matching.languages import DFG_STRING_TYPES

_by_index = itemgetter(1)

COMES = "comesFrom"
COMPUTED = "computedFrom"


class Abort(Exception):
    """The input lacks a part the reference extractor needs (it would raise): empty graph."""


def _union(a: list, b: list) -> list:
    """Order-preserving union (CodeXGLUE uses ``list(set(a + b))``, whose order is random)."""
    return list(dict.fromkeys(a + b))


def field(node, name: str):
    """The first child with field `name` (like tree-sitter's child_by_field_name), or None."""
    for child in node.children:
        if child.field == name:
            return child
    return None


class Extractor:
    """Language-independent part of the DFG; subclasses fill the tables and handlers."""

    string_types: frozenset = DFG_STRING_TYPES  # must match tree.build_program's token leaves
    # True: replicate the reference, where a missing part (a None child) raises and the whole
    # program gets an empty graph. False (our C/C++ rules): skip the missing part.
    strict = True
    do_first: frozenset = frozenset()

    def __init__(self) -> None:
        # node type -> bound handler
        self.handlers: dict = {}

    def variables(self, node) -> list:
        """(index, text) of the token leaves under `node` that are not keywords/punctuation."""
        if node is None:
            if self.strict:
                raise Abort
            return []
        string_types = self.string_types
        out = []
        stack = [node]
        while stack:
            cur = stack.pop()
            if not cur.children or cur.type in string_types:
                tok = cur.tok
                if tok is None:  # a piece of a string: not a token of its own
                    if self.strict:
                        raise Abort
                    continue
                if cur.type != tok[1]:
                    out.append(tok)
            else:
                stack.extend(reversed(cur.children))
        return out

    # ------------------------------------------------------------------- walk
    def dfg(self, node, states: dict):
        """Items of `node`'s subtree; `states` (name -> last definitions) may be updated in
        place; the returned dict is the state after the node."""
        if node is None:
            if self.strict:
                raise Abort
            return [], states
        if not node.children or node.type in self.string_types:
            if node.tok is None:  # a piece of a string: not a token of its own
                if self.strict:
                    raise Abort
                return [], states
            idx, code = node.tok
            if node.type == code:
                return [], states
            if code in states:
                return [(code, idx, COMES, [code], list(states[code]))], states
            if node.type == "identifier":
                states[code] = [idx]
            return [(code, idx, COMES, [], [])], states
        handler = self.handlers.get(node.type)
        if handler is not None:
            return handler(node, states)
        return self.sequence(node, states)

    def sequence(self, node, states: dict):
        items: list = []
        states = self._sequence_into(node, states, items)
        return items, states

    def _sequence_into(self, node, states: dict, items: list) -> dict:
        """`sequence`, appending to `items`: plain nodes below share the one list (no copies
        of their items at every level of the tree)."""
        children = node.children
        do_first = self.do_first
        if do_first:
            first = [c for c in children if c.type in do_first]
            if first:
                for child in first:
                    got, states = self.dfg(child, states)
                    items += got
                for child in children:
                    if child.type not in do_first:
                        got, states = self.dfg(child, states)
                        items += got
                return states
        string_types = self.string_types
        handlers = self.handlers
        for child in children:
            if child.sb < 0:  # a shared punctuation / keyword leaf
                continue
            if not child.children or child.type in string_types:
                # a token leaf (inlined `dfg` leaf case)
                if child.tok is None:  # a piece of a string
                    if self.strict:
                        raise Abort
                    continue
                idx, code = child.tok
                if child.type == code:
                    continue
                if code in states:
                    items.append((code, idx, COMES, [code], list(states[code])))
                else:
                    if child.type == "identifier":
                        states[code] = [idx]
                    items.append((code, idx, COMES, [], []))
                continue
            handler = handlers.get(child.type)
            if handler is not None:
                got, states = handler(child, states)
                if got:
                    items += got
            else:
                states = self._sequence_into(child, states, items)
        return states

    # ------------------------------------------------------- shared handlers
    def define(self, name, value, states: dict, relation: str = COMES):
        """`name = value` definitions: one item per (name token, value token) pair."""
        items = []
        if value is None:
            for idx, code in self.variables(name):
                items.append((code, idx, relation, [], []))
                states[code] = [idx]
            return items, states
        name_tokens = self.variables(name)
        value_tokens = self.variables(value)
        items, states = self.dfg(value, states)
        for idx1, code1 in name_tokens:
            for idx2, code2 in value_tokens:
                items.append((code1, idx1, relation, [code2], [idx2]))
            states[code1] = [idx1]
        return items, states

    def assign(self, left, right, states: dict):
        """`left = right`: computedFrom item per (left token, right token) pair."""
        items, states = self.dfg(right, states)
        name_tokens = self.variables(left)
        value_tokens = self.variables(right)
        for idx1, code1 in name_tokens:
            for idx2, code2 in value_tokens:
                items.append((code1, idx1, COMPUTED, [code2], [idx2]))
            states[code1] = [idx1]
        return items, states

    def increment(self, node, states: dict):
        tokens = self.variables(node)
        items = []
        for idx1, code1 in tokens:
            for idx2, code2 in tokens:
                items.append((code1, idx1, COMPUTED, [code2], [idx2]))
            states[code1] = [idx1]
        return items, states

    def twice(self, node, states: dict):
        """A loop: its children twice (definitions in the body reach the condition)."""
        items = []
        for _ in range(2):
            for child in node.children:
                got, states = self.dfg(child, states)
                items += got
        return dedup(items), states

    @staticmethod
    def merge_states(branches: list, extra: dict | None = None) -> dict:
        """Union of the definitions reaching the end of each branch (sorted, unique)."""
        merged: dict = {}
        for branch in branches:
            for key, value in branch.items():
                if key in merged:
                    merged[key] = merged[key] + value
                else:
                    merged[key] = list(value)
        if extra is not None:
            for key, value in extra.items():
                if key in merged:
                    merged[key] = merged[key] + value
                else:
                    merged[key] = list(value)
        for key, value in merged.items():
            if len(value) > 1:
                merged[key] = list(set(value))  # (the order of token indices never matters)
        return merged

    # ------------------------------------------------------------ the graph
    def extract(self, program) -> list:
        """The merged DFG of a program, as CodeXGLUE's get_data_flow returns it."""
        try:
            items, _ = self.dfg(program.root, {})
        except (Abort, RecursionError):
            items = []
        items.sort(key=_by_index)
        used = set()
        for item in items:
            if item[3]:
                used.add(item[1])
            used.update(item[4])
        merged: dict = {}
        for item in items:
            idx = item[1]
            if idx not in used:
                continue
            old = merged.get(idx)
            if old is None:
                merged[idx] = item
            else:
                merged[idx] = (
                    item[0],
                    idx,
                    item[2],
                    _union(old[3], item[3]),
                    list(set(old[4] + item[4])),
                )
        return list(merged.values())


def dedup(items: list) -> list:
    """Merge repeated (name, index, relation) items of a loop body walked twice."""
    table: dict = {}
    for item in items:
        key = item[:3]  # (name, index, relation)
        old = table.get(key)
        if old is None:
            table[key] = item
        else:
            table[key] = (*key, _union(old[3], item[3]), list(set(old[4] + item[4])))
    return sorted(table.values(), key=_by_index)  # stable: ties keep their first order


def normalize(dfg: list) -> list:
    """Rename variables 0, 1, 2... (CodeXGLUE: var_0, var_1...) by order of first appearance,
    parents first."""
    names: dict = {}
    out = []
    for code, _idx, rel, parents, _pidx in dfg:
        for name in parents:
            if name not in names:
                names[name] = len(names)
        if code not in names:
            names[code] = len(names)
        out.append((names[code], rel, tuple([names[p] for p in parents])))
    return out


def count_matches(reference: list, candidate: list) -> int:
    """Multiset matches of normalised reference items among the candidate's."""
    available = Counter(candidate)
    matched = 0
    for item, count in Counter(reference).items():
        matched += min(count, available.get(item, 0))
    return matched
