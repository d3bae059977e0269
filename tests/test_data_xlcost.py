"""XLCoST detokenisers and the program-level pair loader (fixtures built here)."""

import shutil
import subprocess

import pytest

from ppocoder_jax.config import load_config
from ppocoder_jax.data import load_task
from ppocoder_jax.data.xlcost import detokenize, load_xlcost
from ppocoder_jax.errors import UserError

# TransCoder-style tokenised programs (strings: spaces -> " ▁ ", pieces space-separated)
TOK = {
    "python": (
        "import sys NEW_LINE def maxSum ( arr , n ) : NEW_LINE INDENT res = - sys . maxsize "
        "NEW_LINE for i in range ( 0 , n ) : NEW_LINE INDENT if arr [ i ] > res : NEW_LINE INDENT "
        "res = arr [ i ] NEW_LINE DEDENT DEDENT return res NEW_LINE DEDENT if __name__ == "
        "' _ _ main _ _ ' : NEW_LINE INDENT arr = [ 1 , 2 ] NEW_LINE print ( \" Max ▁ sum ▁ is \" , "
        'maxSum ( arr , 2 ) , end = " ▁ " ) NEW_LINE print ( f " { arr } ▁ done " ) NEW_LINE DEDENT'
    ),
    "cpp": (
        "# include < bits / stdc ++ . h > using namespace std ; int f ( int n ) { return n + 1 ; } "
        'int main ( ) { char c = \' ▁ \' ; cout << " He ▁ said ▁ \\ " hi \\ " \\n " << f ( c ) ; '
        "return 0 ; }"
    ),
    "c": (
        '#include <stdio.h> NEW_LINE int main ( ) { printf ( " % d ▁ items \\n " , 3 ) ; '
        "return 0 ; }"
    ),
    "java": (
        "import java . util . * ; class GFG { static int f ( int n ) { return n * 2 ; } "
        'public static void main ( String [ ] args ) { System . out . println ( " x ▁ = ▁ " '
        "+ f ( 2 ) ) ; } }"
    ),
    "csharp": (
        "using System ; class GFG { static void Main ( ) { int n = 4 ; "
        'Console . WriteLine ( $ " n ▁ = ▁ { n } " ) ; } }'
    ),
    "php": (
        '< ? php function f ( $ n ) { $ s = " a ▁ b " ; return $ n + 1 ; } $ x = 3 ; '
        "echo ( f ( $ x ) ) ; ? >"
    ),
    "javascript": 'function f ( n ) { return n + 1 ; } console . log ( " v ▁ = " , f ( 2 ) ) ;',
}

EXPECTED = {
    "python": (
        "import sys\ndef maxSum ( arr , n ) :\n    res = - sys . maxsize\n"
        "    for i in range ( 0 , n ) :\n        if arr [ i ] > res :\n"
        "            res = arr [ i ]\n    return res\nif __name__ == '__main__' :\n"
        '    arr = [ 1 , 2 ]\n    print ( "Max sum is" , maxSum ( arr , 2 ) , end = " " )\n'
        '    print ( f"{arr} done" )'
    ),
    "cpp": (
        "#include <bits/stdc++.h>\nusing namespace std ; int f ( int n ) { return n + 1 ; } "
        'int main ( ) { char c = \' \' ; cout << "He said \\"hi\\"\\n" << f ( c ) ; return 0 ; }'
    ),
    "php": (
        '<?php function f ( $n ) { $s = "a b" ; return $n + 1 ; } $x = 3 ; echo ( f ( $x ) ) ; ?>'
    ),
}


@pytest.mark.parametrize("lang", sorted(EXPECTED))
def test_detokenize_exact(lang):
    assert detokenize(TOK[lang], lang) == EXPECTED[lang]


def test_detokenize_literals_and_prefixes():
    assert detokenize('s = " a ▁ ▁ b STRNEWLINE "', "python") == 's = "a  b\n"'
    assert (
        detokenize('Console . Write ( $ " { x } " ) ;', "csharp") == 'Console . Write ( $"{x}" ) ;'
    )
    assert detokenize("x = ' \\ ' ' ;", "java") == "x = '\\'' ;"
    assert detokenize('printf ( " % d " ) ;', "c") == 'printf ( "%d" ) ;'
    compile(detokenize(TOK["python"], "python"), "<x>", "exec")


def _write_pair(root, a, b, ext_a, ext_b, n=3, splits=("train", "val", "test")):
    d = root / f"{a}-{b}"
    d.mkdir(parents=True, exist_ok=True)
    for split in splits:
        (d / f"{split}-{a}-{b}-tok.{ext_a}").write_text("\n".join([TOK["cpp"]] * n) + "\n")
        (d / f"{split}-{a}-{b}-tok.{ext_b}").write_text("\n".join([TOK["python"]] * n) + "\n")
    return d


def test_load_pairs_either_direction(tmp_path):
    _write_pair(tmp_path, "C++", "Python", "cpp", "py")
    cfg = load_config(
        None,
        [
            "data.task=translation",
            f"data.path={tmp_path}",
            "data.source_lang=python",
            "data.target_lang=cpp",
        ],
    ).data
    task = load_task(cfg)
    assert (
        task.kind == "translation" and [len(task.train), len(task.val), len(task.test)] == [3] * 3
    )
    ex = task.test[0]
    assert ex.lang == "cpp" and ex.prompt == EXPECTED["python"] and ex.target == EXPECTED["cpp"]
    assert ex.meta["source_tok"] == TOK["python"] and ex.context_prefix == ""
    fwd = load_xlcost(str(tmp_path), "C++", "Python")
    assert fwd.test[0].prompt == EXPECTED["cpp"] and fwd.test[0].lang == "python"


def test_xlcost_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_xlcost(str(tmp_path / "none"), "java", "python")
    d = _write_pair(tmp_path, "C++", "Python", "cpp", "py", splits=("test",))
    assert load_xlcost(str(tmp_path), "cpp", "python").train == []
    with pytest.raises(UserError, match=r"no directory Java-PHP or PHP-Java .*found: C\+\+-Python"):
        load_xlcost(str(tmp_path), "java", "php")
    with pytest.raises(UserError, match="unknown language 'cobol'"):
        load_xlcost(str(tmp_path), "cobol", "python")
    (d / "test-C++-Python-tok.py").write_text("a\nb\n")
    with pytest.raises(UserError, match=r"test-C\+\+-Python-tok.cpp has 3 lines but .*py has 2"):
        load_xlcost(str(tmp_path), "cpp", "python")
    (d / "test-C++-Python-tok.py").unlink()
    with pytest.raises(UserError, match=r"test-C\+\+-Python-tok.py' not found"):
        load_xlcost(str(tmp_path), "cpp", "python")


COMPILERS = {
    "cpp": (["g++", "-fsyntax-only", "-x", "c++", "-"], "g++"),
    "c": (["gcc", "-fsyntax-only", "-x", "c", "-"], "gcc"),
    "php": (["php", "-l"], "php"),
    "javascript": (["node", "--check", "-"], "node"),
}


@pytest.mark.toolchain
@pytest.mark.parametrize("lang", ["cpp", "c", "php", "javascript", "java", "csharp"])
def test_detokenized_programs_compile(lang, tmp_path):
    code = detokenize(TOK[lang], lang)
    if lang == "java":
        if not shutil.which("javac"):
            pytest.skip("javac missing")
        (tmp_path / "GFG.java").write_text(code)
        cmd = ["javac", "-d", str(tmp_path), str(tmp_path / "GFG.java")]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    elif lang == "csharp":
        if not shutil.which("mcs"):
            pytest.skip("mcs missing")
        (tmp_path / "a.cs").write_text(code)
        cmd = ["mcs", f"-out:{tmp_path / 'a.exe'}", str(tmp_path / "a.cs")]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    else:
        cmd, tool = COMPILERS[lang]
        if not shutil.which(tool):
            pytest.skip(f"{tool} missing")
        res = subprocess.run(cmd, input=code, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
