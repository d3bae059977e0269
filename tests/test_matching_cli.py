"""`ppocoder match`."""

from __future__ import annotations

import json

from ppocoder_jax.cli import main
from ppocoder_jax.rewards.matching import codebleu


def test_match_json(tmp_path, capsys):
    ref = tmp_path / "ref.java"
    cand = tmp_path / "cand.java"
    ref.write_text("class A { int f(int a) { int x = a + 1; return x; } }\n")
    cand.write_text("class A { int f(int b) { int y = b + 1; // c\n return y; } }\n")
    rc = main(
        ["match", "--lang", "java", "--reference", str(ref), "--candidate", str(cand), "--json"]
    )
    assert rc == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) == {"ast_match", "dfg_match", "ngram_match", "weighted_ngram_match", "codebleu"}
    expected = codebleu(ref.read_text(), cand.read_text(), "java")
    for key, value in got.items():
        assert abs(value - expected[key]) < 1e-12
    assert got["ast_match"] == 1.0 and got["dfg_match"] == 1.0


def test_match_text_output_and_alias(tmp_path, capsys):
    ref = tmp_path / "a.cs"
    ref.write_text("class A { int F() { int x = 1; return x; } }\n")
    assert (
        main(["match", "--lang", "c_sharp", "--reference", str(ref), "--candidate", str(ref)]) == 0
    )
    out = capsys.readouterr().out
    assert "codebleu" in out and "ast_match              1.000000" in out


def test_match_errors(tmp_path, capsys):
    ref = tmp_path / "a.py"
    ref.write_text("x = 1\n")
    assert main(["match", "--lang", "rust", "--reference", str(ref), "--candidate", str(ref)]) == 2
    assert "unknown language 'rust'" in capsys.readouterr().err
    missing = str(tmp_path / "nope.py")
    assert main(["match", "--lang", "python", "--reference", missing, "--candidate", str(ref)]) == 2
    err = capsys.readouterr().err
    assert "nope.py" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"\xff\xfe x")
    assert (
        main(["match", "--lang", "python", "--reference", str(ref), "--candidate", str(bad)]) == 2
    )
    assert "not UTF-8" in capsys.readouterr().err


def test_one_language_table_for_execution_and_matching():
    """`c_sharp` and `csharp` (and every alias) are accepted by both, with one error type."""
    import pytest

    from ppocoder_jax.errors import UserError
    from ppocoder_jax.languages import UnknownLanguage
    from ppocoder_jax.rewards.execution.languages import canonical_language as exec_lang
    from ppocoder_jax.rewards.matching.languages import canonical_language as match_lang

    for name, want in (("c_sharp", "csharp"), ("csharp", "csharp"), ("C#", "csharp"),
                       ("c++", "cpp"), ("JS", "javascript"), ("py", "python")):  # fmt: skip
        assert exec_lang(name) == match_lang(name) == want
    for fn in (exec_lang, match_lang):
        with pytest.raises(UnknownLanguage) as err:
            fn("cobol")
        assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)
