"""Per-language keyword lists for CodeBLEU's keyword-weighted n-gram match.

These are the lists CodeXGLUE's CodeBLEU (and the `codebleu` package) weight with 1.0; every
other token of the reference weighs 0.2. They are kept verbatim (including their oddities,
e.g. ``True`` in the JavaScript list and library names in the C++ list) so that the weighted
n-gram match agrees with the published metric.
"""

from __future__ import annotations

KEYWORDS: dict[str, frozenset[str]] = {
    "python": frozenset(
        """
        False None True and as assert async await break class
        continue def del elif else except finally for from global
        if import in is lambda nonlocal not or pass raise
        return try while with yield match case type
        """.split()
    ),
    "java": frozenset(
        """
        abstract assert boolean break byte case catch char class const
        continue default do double else enum extends final finally float
        for goto if implements import instanceof int interface long native
        new package private protected public return short static strictfp super
        switch synchronized this throw throws transient try void volatile while
        """.split()
    ),
    "csharp": frozenset(
        """
        abstract as base bool break byte case catch char checked
        class const continue decimal default delegate do double else enum
        event explicit extern false finally fixed float for foreach goto
        if implicit in int interface internal is lock long namespace
        new null object operator out override params private protected public
        readonly ref return sbyte sealed short sizeof stackalloc static string
        struct switch this throw true try typeof uint ulong unchecked
        unsafe ushort using virtual void volatile while add alias ascending
        async await by descending dynamic equals from get global group
        into join let nameof notnull on orderby partial remove select
        set unmanaged value var when where yield
        """.split()
    ),
    "php": frozenset(
        """
        __halt_compiler abstract and array as break callable case catch class
        clone const continue declare default die do echo else elseif
        empty enddeclare endfor endforeach endif endswitch endwhile eval exit extends
        final for foreach function global goto if implements include include_once
        instanceof insteadof interface isset list namespace new or print private
        protected public require require_once return static switch throw trait try
        unset use var while xor
        """.split()
    ),
    "javascript": frozenset(
        """
        await break case catch class const continue debugger default delete
        do else enum export extends false finally for function if
        implements import in instanceof interface let new null package private
        protected public return super switch static this throw try True
        typeof var void while with yield
        """.split()
    ),
    "c": frozenset(
        """
        auto else long switch break enum register typedef case extern
        return union char float short unsigned const for signed void
        continue goto sizeof volatile default if static while do int
        struct _Packed double
        """.split()
    ),
    "cpp": frozenset(
        """
        auto const double float int short struct unsigned break continue
        else for long signed switch void case default enum goto
        register sizeof typedef volatile char do extern if return static
        union while asm dynamic_cast namespace reinterpret_cast bool explicit new static_cast
        typeid catch false try operator template typename class friend private
        this using const_cast inline public throw virtual delete mutable protected
        true wchar_t and bitand compl not_eq or_eq xor_eq and_eq bitor
        not or xor cin endl INT_MIN iomanip main npos std
        cout include INT_MAX iostream MAX_RAND NULL string
        """.split()
    ),
}
