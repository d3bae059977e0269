"""Completion examples and the standard-library completion set."""

import textwrap

import pytest

from ppocoder_jax.config import load_config
from ppocoder_jax.data import load_task
from ppocoder_jax.data.completion import compiles, completion_examples
from ppocoder_jax.data.embedded_tokenizer import embedded_tokenizer
from ppocoder_jax.data.stdlib_completion import module_split, stdlib_functions

BODY = "\n".join(f"    total = total + {i} * value  # step {i}" for i in range(12))
LONG_FN = f"def long_one(value):\n    total = 0\n{BODY}\n    return total"


@pytest.fixture(scope="module")
def tok():
    return embedded_tokenizer()


def test_completion_split_is_exact(tok):
    items = [("a", LONG_FN, {}), ("b", "def short():\n    return 1", {})]
    exs = completion_examples(items, tok, n_target=25, min_tokens=64)
    assert [e.id for e in exs] == ["a"]
    ex = exs[0]
    assert ex.prompt + ex.target == LONG_FN and ex.reference_program() == LONG_FN
    assert len(tok(ex.target, add_special_tokens=False)["input_ids"]) == 25
    assert ex.context_prefix == ex.prompt and ex.tests is None
    assert compiles(ex.reference_program())
    assert completion_examples(items, tok, 25, 64, max_prompt_tokens=10) == []


def test_fake_stdlib_walk(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "test").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("def top():\n    return 1\n")
    (tmp_path / "mod.py").write_text(
        textwrap.dedent(
            """\
            import os

            @decorator
            def f(a):
                return a

            class C:
                x = 1
                def m(self):
                    return self.x

                async def am(self):
                    await g()

            def no_binding():
                nonlocal q
                return q
            """
        )
    )
    (tmp_path / "test" / "test_x.py").write_text("def t():\n    pass\n")
    (tmp_path / "bad.py").write_text("def fine():\n    pass\n\ndef ok(:\n")
    found = stdlib_functions(str(tmp_path))
    names = [(m, q, ln) for m, q, ln, _ in found]
    assert names == [("mod", "f", 4), ("mod", "C.m", 9), ("mod", "C.am", 12), ("pkg", "top", 1)]
    code = {q: c for _, q, _, c in found}
    assert code["C.m"] == "def m(self):\n    return self.x"
    assert code["f"] == "def f(a):\n    return a"


def test_stdlib_completion_set(tok):
    cfg = load_config(None, ["data.task=completion_stdlib"]).data
    task = load_task(cfg)
    assert task.kind == "completion"
    assert len(task.train) > 2000 and len(task.val) > 200 and len(task.test) > 200
    modules = {s: {e.meta["module"] for e in getattr(task, s)} for s in ("train", "val", "test")}
    assert not (modules["train"] & modules["test"]) and not (modules["val"] & modules["test"])
    assert all(module_split(m) == "test" for m in modules["test"])
    for ex in task.test[:200]:
        assert compiles(ex.reference_program())
        assert len(tok(ex.target, add_special_tokens=False)["input_ids"]) == 25
        assert ex.meta["num_tokens"] >= 64
        assert len(tok(ex.prompt)["input_ids"]) <= cfg.max_source_length
    assert any(not compiles(ex.program("")) for ex in task.test)


def test_stdlib_cache_roundtrip(tmp_path, tok):
    from ppocoder_jax.data.stdlib_completion import load_stdlib_completion

    src = tmp_path / "lib"
    src.mkdir()
    fns = [LONG_FN.replace("long_one", f"fn_{i}") for i in range(30)]
    (src / "many.py").write_text("\n\n".join(fns) + "\n")
    cfg = load_config(None, []).data
    cache = tmp_path / "cache"
    fresh = load_stdlib_completion(cfg, tok, root=str(src), cache_dir=str(cache))
    assert len(fresh.train + fresh.val + fresh.test) == 30
    files = list(cache.glob("stdlib_completion-*.json"))
    assert len(files) == 1
    again = load_stdlib_completion(cfg, tok, root=str(src), cache_dir=str(cache))
    assert again == fresh
    files[0].write_text("{damaged")
    assert load_stdlib_completion(cfg, tok, root=str(src), cache_dir=str(cache)) == fresh
    other = load_config(None, ["data.completion_tokens=10"]).data
    shorter = load_stdlib_completion(other, tok, root=str(src), cache_dir=str(cache))
    assert (
        len(
            tok((shorter.train + shorter.val + shorter.test)[0].target, add_special_tokens=False)[
                "input_ids"
            ]
        )
        == 10
    )
