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

from ppocoder_jax.rewards.matching.languages import COMMENT_TYPES
from ppocoder_jax.rewards.matching.parsers import parse


class TNode:
    """A visible tree-sitter node (comments removed)."""

    __slots__ = (
        "type",
        "named",
        "missing",
        "field",
        "children",
        "sp",
        "ep",
        "key",
        "entries",
        "tok",
    )

    def __init__(self, type_, named, missing, field, sp, ep):
        self.type = type_
        self.named = named
        self.missing = missing
        self.field = field
        self.children = []
        self.sp = sp
        self.ep = ep
        self.key = -1
        self.entries = None
        self.tok = None

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"TNode({self.type!r}, {len(self.children)} children)"


class Program:
    """A parsed program: its light tree, source bytes and AST subtree keys."""

    __slots__ = ("root", "data", "subtree_keys", "lang", "empty")

    def __init__(self, root, data, subtree_keys, lang, empty):
        self.root = root
        self.data = data
        self.subtree_keys = subtree_keys
        self.lang = lang
        self.empty = empty


def _finalize(node: TNode, data: bytes, intern: dict) -> None:
    """Compute the node's S-expression key from its children's keys."""
    entries = []
    for child in node.children:
        if child.named or child.missing:
            entries.append((child.field, child.key))
        elif child.entries:  # an anonymous node with children: its named children show inline
            entries.extend(child.entries)
    if node.missing:
        label = ("MISSING", node.type, node.named)
    elif node.type == "ERROR" and not node.children and node.sp != node.ep:
        # tree-sitter prints an error leaf as (UNEXPECTED 'c') with its first character
        text = data[node.sp[2] : node.ep[2]].decode("utf-8", errors="replace")
        label = ("UNEXPECTED", text[:1])
    else:
        label = node.type
    if node.named or node.missing:
        key = (label, tuple(entries))
        node.key = intern.setdefault(key, len(intern))
    else:
        node.entries = entries


def build_program(code: str, lang: str, intern: dict) -> Program:
    """Parse `code` once and build the comment-free light tree with AST keys."""
    tree, data = parse(code, lang)
    comments = COMMENT_TYPES[lang]
    drop_docstrings = lang == "python"
    cursor = tree.walk()
    n = cursor.node
    root = TNode(
        n.type,
        n.is_named,
        n.is_missing,
        None,
        (*n.start_point, n.start_byte),
        (*n.end_point, n.end_byte),
    )
    stack = [root]
    pushed = True  # whether the cursor's current node is on the stack (not a comment)
    while True:
        if pushed and cursor.goto_first_child():
            pass
        else:
            if pushed:
                _close(stack, data, intern, drop_docstrings)
            done = False
            while not cursor.goto_next_sibling():
                if not cursor.goto_parent():
                    done = True
                    break
                _close(stack, data, intern, drop_docstrings)
            if done:
                break
        n = cursor.node
        type_ = n.type
        if type_ in comments:
            pushed = False
            continue
        pushed = True
        stack.append(
            TNode(
                type_,
                n.is_named,
                n.is_missing,
                cursor.field_name,
                (*n.start_point, n.start_byte),
                (*n.end_point, n.end_byte),
            )
        )
    # AST subtrees: the root and every node with children, with multiplicity
    subtree_keys = [root.key]
    todo = list(root.children)
    while todo:
        node = todo.pop()
        if node.children:
            subtree_keys.append(node.key)
            todo.extend(node.children)
    return Program(root, data, subtree_keys, lang, not root.children)


def _close(stack: list, data: bytes, intern: dict, drop_docstrings: bool) -> None:
    """Finish the node on top of the stack and attach it to its parent."""
    node = stack.pop()
    _finalize(node, data, intern)
    if not stack:
        return
    if (
        drop_docstrings
        and node.type == "expression_statement"
        and len(node.children) == 1
        and node.children[0].type == "string"
    ):
        return  # a docstring / lone string statement: removed like a comment
    stack[-1].children.append(node)
