"""Precompiled <bits/stdc++.h> for g++: most generated C++ includes it, and parsing it dominates
the compile time of a short program.

GCC looks for `bits/stdc++.h.gch` in each include directory before the header itself and silently
ignores a PCH built with different options, so adding `-I <pch dir>` never changes what compiles.
Built once per machine (trusted input: the system header), in the background, cached on disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import threading
from pathlib import Path

log = logging.getLogger(__name__)


def cache_root() -> Path:
    if os.geteuid() == 0:
        # Jobs run as other uids and must read it; only root may write here.
        return Path("/var/cache/ppocoder_jax/pch")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ppocoder_jax" / "pch"


class StdcxxPch:
    def __init__(self, flags: tuple[str, ...]):
        self.flags = flags
        self._dir: Path | None = None
        self._state = "new"  # new | building | ready | failed
        self._lock = threading.Lock()
        self._done = threading.Event()

    def include_dir(self, *, wait: bool = False) -> Path | None:
        """The directory to pass with -I, or None while building / when unavailable."""
        with self._lock:
            if self._state == "new":
                self._state = "building"
                threading.Thread(target=self._build, name="ppocoder-pch", daemon=True).start()
        if wait:
            self._done.wait()
        return self._dir if self._state == "ready" else None

    def _build(self) -> None:
        try:
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C"}
            version = subprocess.run(
                ["g++", "--version"], capture_output=True, env=env, timeout=60, check=True
            ).stdout
            probe = subprocess.run(
                ["g++", *self.flags, "-H", "-fsyntax-only", "-x", "c++", "-"],
                input=b"#include <bits/stdc++.h>\n",
                capture_output=True,
                env=env,
                timeout=300,
            )
            first = probe.stderr.decode(errors="replace").splitlines()[0]
            header = first.lstrip(". ").strip()
            if probe.returncode != 0 or not header.endswith("bits/stdc++.h"):
                raise RuntimeError(f"cannot locate bits/stdc++.h: {first[:200]}")
            key = hashlib.sha256(version + repr(self.flags).encode() + header.encode()).hexdigest()
            out_dir = cache_root() / key[:16]
            target = out_dir / "bits" / "stdc++.h.gch"
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f"stdc++.h.gch.tmp{os.getpid()}.{threading.get_ident()}")
                subprocess.run(
                    ["g++", *self.flags, "-x", "c++-header", header, "-o", str(tmp)],
                    capture_output=True,
                    env=env,
                    timeout=600,
                    check=True,
                )
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)  # atomic: concurrent builders never see half a file
            if os.geteuid() == 0:  # readable by the jobs' unprivileged uids
                for d in (out_dir.parent.parent, out_dir.parent, out_dir, out_dir / "bits"):
                    os.chmod(d, 0o755)
            self._dir = out_dir
            self._state = "ready"
        except (OSError, subprocess.SubprocessError, RuntimeError, IndexError) as err:
            log.warning("precompiled bits/stdc++.h unavailable (%s); compiling without it", err)
            self._state = "failed"
        finally:
            self._done.set()
