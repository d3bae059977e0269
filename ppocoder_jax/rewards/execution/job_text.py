"""Text shared by every compile and test path: a program as the bytes its toolchain reads, the
end of a long message, and failure descriptions that can never change a verdict."""

from __future__ import annotations

import codecs
import logging
import re

from ppocoder_jax.rewards.execution.verdicts import TestFailure

log = logging.getLogger(__name__)

_JOB_PATH = re.compile(r"(?:/[\w.-]+)*/(?:sandbox|ppocoder-exec-\w+)(?:/job-\d+)?/")


def tail(data: bytes | str, n: int = 600) -> str:
    """The end of a compiler/program message, with job directory paths dropped."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    # Only the end can be shown: cut before the path regex, whose backtracking is quadratic in
    # a long run of "/x/x/x..." (a program printing megabytes of that hung a worker for hours).
    text = text.rstrip()[-4 * n :]
    text = _JOB_PATH.sub("", text).strip()
    return text if len(text) <= n else "..." + text[-n:]


def _surrogates(err: UnicodeError) -> tuple[bytes, int]:
    """U+DC80..U+DCFF are the bytes they escape (surrogateescape), other lone surrogates are
    written as surrogatepass does: a non-UTF-8 file read by `ppocoder check` keeps its bytes."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    out = bytearray()
    for ch in err.object[err.start : err.end]:
        if not 0xD800 <= ord(ch) <= 0xDFFF:
            raise err
        escaped = 0xDC80 <= ord(ch) <= 0xDCFF
        out += bytes([ord(ch) - 0xDC00]) if escaped else ch.encode("utf-8", "surrogatepass")
    return bytes(out), err.end


codecs.register_error("ppocoder.surrogates", _surrogates)


def program_bytes(program: str) -> bytes:
    """The program text as the file the toolchains read (UTF-8; see _surrogates)."""
    return program.encode("utf-8", errors="ppocoder.surrogates")


def described(build, *args, **kwargs) -> TestFailure | None:
    """A failure's description (failures.py) never changes a verdict: should building it
    raise, that is logged and the result has no failure."""
    try:
        return build(*args, **kwargs)
    except Exception:
        log.exception("describing a failure failed (the verdict stands)")
        return None
