import _ast
import json
import os
import signal
import sys

PROGRAM_MODULE = "__program__"
_DUNDERS = frozenset(
    """__eq__ __ne__ __lt__ __le__ __gt__ __ge__ __bool__ __len__ __abs__
__sub__ __rsub__ __add__ __radd__ __contains__ __float__ __int__ __index__ __round__ __str__
__repr__ __format__ __iter__ __getitem__ __hash__ __instancecheck__""".split()
)
_ATOMS = (type(None), bool, int, float, complex, str, bytes)


class _TestTimeout(BaseException):
    pass


class _Forged(BaseException):
    pass


def _trusted_class(klass):
    if not (klass.__flags__ & (1 << 9)):  # static (C) types are trusted
        return True
    if not any(name in vars(klass) for name in _DUNDERS):
        return True
    module = sys.modules.get(klass.__module__)
    if module is None or klass.__module__ == PROGRAM_MODULE:
        return False
    obj = module
    for part in klass.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return obj is klass


def _inspect(value, budget):
    budget[0] -= 1
    if budget[0] < 0:
        return
    t = type(value)
    if t in _ATOMS:
        return
    if t in (list, tuple, set, frozenset):
        for item in value:
            _inspect(item, budget)
        return
    if t is dict:
        for k, v in value.items():
            _inspect(k, budget)
            _inspect(v, budget)
        return
    for klass in t.__mro__:
        if not _trusted_class(klass):
            raise _Forged(f"value of program-defined type {t.__name__} overrides comparison")


def _checked(value):
    _inspect(value, [100000])
    return value


def _wrap_calls(node, stmts):
    # Every call's value goes through __ppocoder_checked__. The C module _ast, not ast.py:
    # importing ast (enum, contextlib, ...) cost more than the rest of the runner's start-up.
    # stmts collects [statement, the call an assert captures or None, expected or None].
    if isinstance(node, _ast.stmt):
        stmts.append([node, None, None])
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, _ast.AST):
                    value[i] = _wrap_calls(item, stmts)
        elif isinstance(value, _ast.AST):
            setattr(node, name, _wrap_calls(value, stmts))
    if isinstance(node, _ast.Assert):
        _capture_call(node, stmts)
        return node
    if not isinstance(node, _ast.Call):
        return node
    return _call("__ppocoder_checked__", node, [node])


def _call(name, where, args):
    func = _ast.Name(id=name, ctx=_ast.Load())
    wrapped = _ast.Call(func=func, args=args, keywords=[])
    for new in (func, wrapped, *args):
        for attr in ("lineno", "col_offset", "end_lineno", "end_col_offset"):
            setattr(new, attr, getattr(where, attr))
    return wrapped


def _capture_call(node, stmts):
    # `assert <call> == <value>` (or `<value> == <call>`, or another comparison), `assert
    # <call>`, `assert not <call>`: the call's value also goes through
    # __ppocoder_capture__(value, k), k = this statement's entry in stmts.
    test, expected = node.test, None
    if isinstance(test, _ast.Compare) and len(test.ops) == 1:
        target, other = test.left, test.comparators[0]
        if not isinstance(target, _ast.Call):
            target, other = other, target
        if isinstance(test.ops[0], _ast.Eq):
            expected = other
    elif isinstance(test, _ast.UnaryOp) and isinstance(test.op, _ast.Not):
        target = test.operand
    else:
        target = test
    if not isinstance(target, _ast.Call):
        return
    k = next(i for i in range(len(stmts) - 1, -1, -1) if stmts[i][0] is node)
    stmts[k][1], stmts[k][2] = target, expected
    wrapped = _call("__ppocoder_capture__", target, [target, _ast.Constant(value=k)])
    if test is target:
        node.test = wrapped
    elif isinstance(test, _ast.Compare):
        if test.left is target:
            test.left = wrapped
        else:
            test.comparators[0] = wrapped
    else:
        test.operand = wrapped


def _segment(lines, node, header=False):
    # The source of a node (col offsets count UTF-8 bytes); header: its first line only.
    first, last = node.lineno, node.end_lineno
    if header:
        last = first
    if not (1 <= first <= last <= len(lines)):
        return ""
    head = lines[first - 1].encode("utf-8")
    if first == last:
        end = None if header else node.end_col_offset
        return head[node.col_offset : end].decode("utf-8", "replace").rstrip()
    tail = lines[last - 1].encode("utf-8")[: node.end_col_offset].decode("utf-8", "replace")
    parts = [head[node.col_offset :].decode("utf-8", "replace")]
    return "\n".join(parts + lines[first : last - 1] + [tail])


def _show(value):
    # repr, bounded, independent of the hash seed and the heap (sets sorted, no addresses)
    out = []
    _show_into(value, out, [2000], 0)
    text = "".join(out).replace(PROGRAM_MODULE + ".", "")
    while " at 0x" in text:
        i = text.index(" at 0x")
        j = i + 6
        while j < len(text) and text[j] in "0123456789abcdefABCDEF":
            j += 1
        text = text[:i] + text[j:]
    return text if len(text) <= 2000 else text[:1997] + "..."


def _show_into(value, out, budget, depth):
    if budget[0] <= 0:
        return
    t = type(value)
    if depth > 40 or t not in (list, tuple, dict, set, frozenset):
        try:
            text = repr(value)
        except Exception:
            text = f"<{t.__name__} object>"
        out.append(text[: budget[0]])
        budget[0] -= len(text)
        return
    if t in (set, frozenset):
        if not value:
            out.append(t.__name__ + "()")
            return
        items = sorted(_show(v) for v in value) if len(value) <= 200 else None
        if items is None:
            out.append(repr(value)[: budget[0]])
            budget[0] = 0
            return
        out.append("{" if t is set else "frozenset({")
        for i, item in enumerate(items):
            if budget[0] <= 0:
                break
            out.append((", " if i else "") + item)
            budget[0] -= len(item) + 2
        out.append("}" if t is set else "})")
        return
    opening, closing = {list: "[]", tuple: "()", dict: "{}"}[t]
    out.append(opening)
    for i, item in enumerate(value.items() if t is dict else value):
        if budget[0] <= 0:
            break
        if i:
            out.append(", ")
        if t is dict:
            _show_into(item[0], out, budget, depth + 1)
            out.append(": ")
            _show_into(item[1], out, budget, depth + 1)
        else:
            _show_into(item, out, budget, depth + 1)
        budget[0] -= 2
    if t is tuple and len(value) == 1:
        out.append(",")
    out.append(closing)


def _failure_info(err, test_code, stmts, captured, stop_timer=False):
    # What an assert-style test's failure was: the statement (and captured call), as JSON.
    info = {}
    try:
        _failure_into(info, err, test_code, stmts, captured)
        if stop_timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException:  # a timeout, a repr that raised, ...: what is known so far
        if stop_timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return json.dumps(info)


def _failure_into(info, err, test_code, stmts, captured):
    line, raised_here, tb = None, False, err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "tests.py":
            line, raised_here = tb.tb_lineno, tb.tb_next is None
        tb = tb.tb_next
    if line is None:
        return
    best = None
    for k, entry in enumerate(stmts):
        node = entry[0]
        if node.lineno <= line <= node.end_lineno:
            span = node.end_lineno - node.lineno
            if (
                best is None
                or span < best[0]
                or (span == best[0] and captured[0] is not None and captured[0][0] == k)
            ):
                best = (span, k)
    if best is None:
        return
    lines = test_code.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    node, target, expected = stmts[best[1]]
    compound = "body" in node._fields or "cases" in node._fields
    info["input"] = _segment(lines, node, compound)[:2000]
    if isinstance(err, AssertionError) and raised_here and target is not None:
        if captured[0] is not None and captured[0][0] == best[1]:
            info["call"] = _segment(lines, target)[:2000]
            if expected is not None:
                info["expected"] = _segment(lines, expected)[:2000]
            info["actual"] = _show(captured[0][1])


def _plain(value, depth=0):
    if depth > 100:
        raise TypeError("value nested too deeply")
    t = type(value)
    if t in (type(None), bool, int, float, str):
        return value
    if t in (list, tuple):
        return [_plain(v, depth + 1) for v in value]
    if t is dict:
        return {
            str(k) if type(k) in (int, float, bool) else k: _plain(v, depth + 1)
            for k, v in value.items()
            if type(k) in (str, int, float, bool)
        }
    raise TypeError(f"return value of type {t.__name__} is not plain data")


def _describe(err):
    # str(), never format(): a program's exception may define its own __format__
    text = "%s: %s" % (type(err).__name__, err)  # noqa: UP031
    return " ".join(text.split())[:300]


def _alarm(signum, frame):
    raise _TestTimeout()


def main():
    nonce = sys.stdin.readline().strip()
    job = json.loads(sys.stdin.read())
    chan = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)

    def say(*parts):
        chan.write(nonce + " " + " ".join(parts) + "\n")
        chan.flush()

    timeout = float(job["timeout"])
    with open(job["program"], "rb") as f:
        source = f.read()
    ns = {"__name__": PROGRAM_MODULE, "__builtins__": __builtins__}
    signal.signal(signal.SIGALRM, _alarm)
    try:
        code = compile(source, job["program"], "exec", dont_inherit=True)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        exec(code, ns)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except _TestTimeout:
        say("load", "timeout")
        return
    except BaseException as err:
        signal.setitimer(signal.ITIMER_REAL, 0)
        say("load", "error", _describe(err))
        return
    say("loaded")
    if job["kind"] == "call":
        fn = ns.get(job["fn_name"])
        if fn is None and isinstance(ns.get("Solution"), type):
            fn = getattr(ns["Solution"](), job["fn_name"], None)
        if not callable(fn):
            say("0", "error", "NameError: function {} not defined".format(job["fn_name"]))
            return
        for i, args in enumerate(job["inputs"]):
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout)
                out = fn(*args)
                signal.setitimer(signal.ITIMER_REAL, 0)
            except _TestTimeout:
                say(str(i), "timeout")
                return
            except BaseException as err:
                signal.setitimer(signal.ITIMER_REAL, 0)
                say(str(i), "error", _describe(err))
                return
            try:
                say(str(i), "value", json.dumps(_plain(out)))
            except Exception as err:
                say(str(i), "unplain", _describe(err))
    else:
        stmts, captured = [], [None]
        try:
            tree = compile(
                job["test_code"], "tests.py", "exec", _ast.PyCF_ONLY_AST, dont_inherit=True
            )
            test = compile(_wrap_calls(tree, stmts), "tests.py", "exec", dont_inherit=True)
        except SyntaxError as err:
            say("0", "badtest", _describe(err))
            return

        def capture(value, k):
            captured[0] = (k, value)
            return value

        ns["__ppocoder_checked__"] = _checked
        ns["__ppocoder_capture__"] = capture
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            exec(test, ns)
            signal.setitimer(signal.ITIMER_REAL, 0)
        except _TestTimeout as err:
            say("info", "0", _failure_info(err, job["test_code"], stmts, captured))
            say("0", "timeout")
            return
        except (AssertionError, _Forged) as err:
            # Still under the test's own timer (which _failure_info stops): the repr of the
            # value counts in the test's time.
            info = _failure_info(err, job["test_code"], stmts, captured, True)
            signal.setitimer(signal.ITIMER_REAL, 0)
            say("info", "0", info)
            say("0", "fail", _describe(err))
        except BaseException as err:
            signal.setitimer(signal.ITIMER_REAL, 0)
            say("info", "0", _failure_info(err, job["test_code"], stmts, captured))
            say("0", "error", _describe(err))
            return
        else:
            say("0", "pass")
    say("done")
