"""One walk over a tree-sitter tree: a light node tree without comments, plus AST subtree keys.

The walk drops comment nodes (per language, see `languages.COMMENT_TYPES`) and, for Python,
expression statements that are a lone string literal (docstrings), which is what CodeBLEU's
comment removal does to the text before parsing. Working on the tree instead of the text means
each program is parsed once, Python `//` stays floor division, and PHP `#` comments go too.

Every node gets an integer `key`: two nodes have the same key exactly when tree-sitter's
S-expression of their subtrees (`str(node)`: named or missing nodes, with field names) is the
same string. Keys are interned in a dict shared by the programs being compared, so building
them is linear in the tree size (no S-expression strings are built).
"""

from __future__ import annotations

import re

from ppocoder_jax.rewards.matching.languages import COMMENT_TYPES, DFG_STRING_TYPES_BY_LANG
from ppocoder_jax.rewards.matching.parsers import get_language, parse

_COMMENT_SEXP = {
    lang: re.compile(r" ?\((?:" + "|".join(sorted(types)) + r")\)")
    for lang, types in COMMENT_TYPES.items()
}


def _drop_lone_strings(sexp: str) -> str:
    """Remove `(expression_statement (string ...))` groups that hold only a string."""
    needle = "(expression_statement (string "
    pos = 0
    while True:
        start = sexp.find(needle, pos)
        if start < 0:
            return sexp
        depth, i, inner_end = 0, start, None
        while i < len(sexp):
            ch = sexp[i]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 1 and inner_end is None:
                    inner_end = i
                if depth == 0:
                    break
            i += 1
        if inner_end is not None and inner_end == i - 1:
            lead = 1 if start > 0 and sexp[start - 1] == " " else 0
            sexp = sexp[: start - lead] + sexp[i + 1 :]
            pos = start - lead
        else:
            pos = start + 1


# Printing the S-expression of every subtree with errors costs the size of each such subtree,
# which is quadratic for deeply nested errors (`"/* " * 2000` as Python: 7.5 s; a 3 MB program
# of such junk exhausted memory). Up to this many printed nodes per program the keys are the
# printed text (tree-sitter's own, as above); past it, the remaining error subtrees are keyed
# by their structure (type, fields and child keys; hidden MISSING tokens are not seen), which
# only such pathological programs ever reach.
ERROR_SEXP_BUDGET = 200_000


class TNode:
    """A visible tree-sitter node (comments removed); `sb`/`eb` are its byte offsets."""

    __slots__ = ("type", "named", "field", "children", "sb", "eb", "key", "entries", "tok", "err")

    def __init__(self, type_, named, field, sb, eb, children):
        self.type = type_
        self.named = named
        self.field = field
        self.children = children  # a list while being built; () for leaves
        self.sb = sb
        self.eb = eb
        self.key = -1
        self.entries = None
        self.tok = None  # (token index, text) for DFG token leaves
        self.err = None  # the tree-sitter node, kept for subtrees with errors

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"TNode({self.type!r}, {len(self.children)} children)"


class Program:
    """A parsed program: its light tree, source bytes, AST subtree keys and DFG tokens."""

    __slots__ = ("root", "data", "subtree_keys", "lang", "empty", "tokens")

    def __init__(self, root, data, subtree_keys, lang, empty, tokens):
        self.root = root
        self.data = data
        self.subtree_keys = subtree_keys
        self.lang = lang
        self.empty = empty
        self.tokens = tokens


# Per-language tables, built on first use (a race builds equal tables; the last one wins).
_KINDS: dict = {}  # lang -> list: kind id -> (type, named, text, len(text), comment, leaves)
_FIELDS: dict = {}  # lang -> list: field id -> name


def _kinds(lang: str) -> list:
    """kind id -> (type, named, type as bytes, its length, is a comment, shared leaves), where
    shared leaves is a list: field id -> the shared leaf of this anonymous kind (or None)."""
    table = _KINDS.get(lang)
    if table is None:
        language = get_language(lang)
        n_fields = language.field_count + 1
        table = [_kind_info(lang, i, n_fields) for i in range(language.node_kind_count)]
        _KINDS[lang] = table
    return table


_EXTRA_KINDS: dict = {}  # (lang, kind id) -> info, for ids past node_kind_count (ERROR)


def _kind_info(lang: str, kind_id: int, n_fields: int = 0) -> tuple:
    info = _EXTRA_KINDS.get((lang, kind_id))
    if info is None:
        language = get_language(lang)
        type_ = language.node_kind_for_id(kind_id) or ""
        text = type_.encode("utf-8")
        info = (
            type_,
            language.node_kind_is_named(kind_id),
            text,
            len(text),
            type_ in COMMENT_TYPES[lang],
            [None] * (n_fields or language.field_count + 1),
        )
        if kind_id >= language.node_kind_count:
            info = _EXTRA_KINDS.setdefault((lang, kind_id), info)
    return info


def _fields(lang: str) -> list:
    table = _FIELDS.get(lang)
    if table is None:
        language = get_language(lang)
        table = [None] + [language.field_name_for_id(i) for i in range(1, language.field_count + 1)]
        _FIELDS[lang] = table
    return table


def _shared_leaf(type_: str, field_id, fields: list) -> TNode:
    """The shared leaf of an anonymous token whose text is its type (never mutated)."""
    leaf = TNode(type_, False, fields[field_id] if field_id else None, -1, -1, ())
    leaf.tok = (-1, type_)  # type == text: the data-flow walk skips it
    return leaf


def build_program(code: str, lang: str, intern: dict) -> Program:
    """Parse `code` once; build the comment-free light tree, its AST keys and DFG tokens.

    AST keys: an error-free node's key is interned from (type, ((field, child key)...)) over
    its named children, which is what tree-sitter prints. Subtrees with errors can hold MISSING
    tokens of hidden symbols that tree-sitter prints but no node API shows: they are keyed by
    their printed S-expression (comments and docstrings removed); these keys never collide
    with error-free ones (their text holds ERROR or MISSING).

    DFG tokens: the leaves in order, where string literals count as one leaf, each with its
    index and text (CodeXGLUE's index_to_code; equal byte ranges share the last index).
    """
    tree, data = parse(code, lang)
    sexp_budget = ERROR_SEXP_BUDGET
    kinds = _kinds(lang)
    fields = _fields(lang)
    string_types = DFG_STRING_TYPES_BY_LANG[lang]
    python = lang == "python"
    comment_sexp = _COMMENT_SEXP[lang]
    setdefault = intern.setdefault
    cursor = tree.walk()
    n = cursor.node
    has_errors = n.has_error
    root = TNode(n.type, n.is_named, None, n.start_byte, n.end_byte, [])
    if has_errors:
        root.err = n
    root.tok = 0
    root.key = 0
    stack = [root]
    siblings = root.children  # children list of the node on top of the stack
    leaves: list = []
    subtree_keys: list = []  # keys of the nodes with children (the root is added at the end)
    inline = False  # whether an anonymous node with children (shown inline) was seen
    goto_first_child = cursor.goto_first_child
    goto_next_sibling = cursor.goto_next_sibling
    goto_parent = cursor.goto_parent
    # `closing`: the node on top of the stack is finished (its subtree walked)
    closing = not goto_first_child()
    while True:
        if not closing:
            # ---- the node under the cursor: skipped, a leaf, or pushed
            n = cursor.node
            try:
                type_, named, text, tlen, is_comment, shared = kinds[n.kind_id]
            except IndexError:  # ERROR (kind id 65535)
                type_, named, text, tlen, is_comment, shared = _kind_info(lang, n.kind_id)
            if not is_comment:
                sb = n.start_byte
                eb = n.end_byte
                if (
                    not named
                    and eb - sb == tlen
                    and (not has_errors or not n.is_missing)
                    and data[sb:eb] == text
                    and n.child_count == 0
                ):
                    # punctuation / keywords whose text is their type: one shared leaf per
                    # (type, field) (they carry no AST key and no data flow; CodeXGLUE skips
                    # them by `type == text`)
                    fid = cursor.field_id or 0
                    leaf = shared[fid]
                    if leaf is None:
                        leaf = shared[fid] = _shared_leaf(type_, fid, fields)
                    siblings.append(leaf)
                elif n.child_count == 0 and (not has_errors or not (n.is_missing or n.has_error)):
                    # a leaf (not MISSING, no error): finish it here (what closing it would do)
                    child = TNode(type_, named, fields[cursor.field_id or 0], sb, eb, ())
                    if named:
                        key = intern.get(type_)  # the type name caches its bare leaf's key
                        if key is None:
                            key = intern[type_] = setdefault((type_, ()), len(intern))
                        child.key = key
                    leaves.append(child)
                    siblings.append(child)
                else:
                    child = TNode(type_, named, fields[cursor.field_id or 0], sb, eb, [])
                    if has_errors:
                        if n.is_missing:
                            child.named = True  # tree-sitter prints MISSING tokens, named or not
                            child.err = n
                        elif n.has_error:
                            child.err = n
                    child.tok = len(leaves)
                    child.key = len(subtree_keys)
                    stack.append(child)
                    siblings = child.children
                    if goto_first_child():
                        continue
                    closing = True
            if not closing:
                if goto_next_sibling():
                    continue
                goto_parent()
                closing = True
        # ---- close the node on top of the stack
        node = stack.pop()
        children = node.children
        kstart = node.key  # len(subtree_keys) when the node was pushed
        if node.err is not None:
            if node.named or children:
                size = node.err.descendant_count
                if size <= sexp_budget:
                    sexp_budget -= size
                    sexp = comment_sexp.sub("", str(node.err))
                    if python:
                        sexp = _drop_lone_strings(sexp)
                    node.key = setdefault(("S", sexp), len(intern))
                else:  # past the budget: keyed by structure (see ERROR_SEXP_BUDGET)
                    entries = tuple([(c.field, c.key) for c in children if c.key >= 0])
                    node.key = setdefault(("E", node.type, entries), len(intern))
        elif not children:
            if node.named:
                node.key = setdefault((node.type, ()), len(intern))
        elif not inline and node.named:
            entries = tuple([(c.field, c.key) for c in children if c.named])
            node.key = setdefault((node.type, entries), len(intern))
        else:
            entries = []
            for child in children:
                if child.named:
                    entries.append((child.field, child.key))
                elif child.entries:  # anonymous with children: shown inline
                    entries.extend(child.entries)
            if node.named:
                node.key = setdefault((node.type, tuple(entries)), len(intern))
            else:  # str(node) of an anonymous node: "(type" and the entries
                node.entries = entries
                inline = True
                key = ("anonymous", node.type, tuple(entries))
                node.key = setdefault(key, len(intern))
        start = node.tok
        if not children:
            leaves.append(node)
        else:
            if node.type in string_types:
                del leaves[start:]
                leaves.append(node)
            subtree_keys.append(node.key)
        if not stack:
            break
        if (
            python
            and node.type == "expression_statement"
            and len(children) == 1
            and children[0].type == "string"
        ):
            del leaves[start:]  # a docstring: removed like a comment
            del subtree_keys[kstart:]
        else:
            stack[-1].children.append(node)
        siblings = stack[-1].children
        if goto_next_sibling():
            closing = False
        else:
            goto_parent()
    # AST subtrees: the root and every node with children, with multiplicity
    if not root.children:
        subtree_keys.append(root.key)
    # DFG tokens
    if len(data) == len(code):  # ASCII: byte offsets are str offsets
        for i, leaf in enumerate(leaves):
            text = code[leaf.sb : leaf.eb]
            if "\n" in text:
                text = text.replace("\n", "")  # the reference joins a token's lines
            leaf.tok = (i, text)
    else:
        for i, leaf in enumerate(leaves):
            text = data[leaf.sb : leaf.eb].decode("utf-8", errors="replace")
            if "\n" in text:
                text = text.replace("\n", "")
            leaf.tok = (i, text)
    if has_errors:  # zero-width (MISSING) tokens at one position share the last index
        table = {}
        for leaf in leaves:
            table[(leaf.sb, leaf.eb)] = leaf.tok
        for leaf in leaves:
            leaf.tok = table[(leaf.sb, leaf.eb)]
    return Program(root, data, subtree_keys, lang, not root.children, leaves)
