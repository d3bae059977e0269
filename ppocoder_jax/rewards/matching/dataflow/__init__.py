"""Data-flow graphs per language family and the DFG match (see `engine`)."""

from __future__ import annotations

import threading

from ppocoder_jax.rewards.matching.dataflow.c import CExtractor
from ppocoder_jax.rewards.matching.dataflow.csharp import CSharpExtractor
from ppocoder_jax.rewards.matching.dataflow.engine import count_matches, normalize
from ppocoder_jax.rewards.matching.dataflow.java import JavaExtractor
from ppocoder_jax.rewards.matching.dataflow.javascript import JavaScriptExtractor
from ppocoder_jax.rewards.matching.dataflow.php import PhpExtractor
from ppocoder_jax.rewards.matching.dataflow.python import PythonExtractor

EXTRACTORS = {
    "python": PythonExtractor,
    "java": JavaExtractor,
    "csharp": CSharpExtractor,
    "javascript": JavaScriptExtractor,
    "php": PhpExtractor,
    "c": CExtractor,
    "cpp": CExtractor,
}

_local = threading.local()


def get_extractor(lang: str):
    """This thread's extractor for `lang` (extractors are cheap but keep bound handlers)."""
    cache = getattr(_local, "extractors", None)
    if cache is None:
        cache = _local.extractors = {}
    ext = cache.get(lang)
    if ext is None:
        ext = cache[lang] = EXTRACTORS[lang]()
    return ext


def data_flow(program) -> list:
    """The merged (unnormalised) data-flow graph of a parsed `tree.Program`."""
    return get_extractor(program.lang).extract(program)


def normalized_data_flow(program) -> list:
    return normalize(data_flow(program))


__all__ = ["EXTRACTORS", "count_matches", "data_flow", "normalize", "normalized_data_flow"]
