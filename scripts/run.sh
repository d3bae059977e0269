#!/usr/bin/env bash
# The two entry points of the README: `scripts/run.sh demo` and `scripts/run.sh test`.
# Each installs what it needs: system toolchains via apt-get when run as root, a virtualenv in
# .venv with this package and its dependencies, then runs the job.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-}"
shift || true
case "$MODE" in demo|test) ;; *) echo "usage: scripts/run.sh demo|test [args...]" >&2; exit 2;; esac

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "scripts/run.sh: Python 3.11+ is required (set PYTHON=/path/to/python3.11)" >&2; exit 2
fi

# Compilers and the sandbox used by the execution-feedback rewards.
APT_PACKAGES="bubblewrap php-cli mono-mcs default-jdk-headless g++ gcc nodejs"
need_apt=0
for tool in bwrap php mcs javac g++ gcc node; do command -v "$tool" >/dev/null 2>&1 || need_apt=1; done
if [ "$need_apt" = 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing system packages: $APT_PACKAGES"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null || \
      echo "WARNING: apt-get install failed; some languages will report INFRA_ERROR" >&2
  else
    for tool in bwrap php mcs javac g++ gcc node; do
      command -v "$tool" >/dev/null 2>&1 || echo "WARNING: '$tool' is missing (not root, cannot apt-get install): related checks report INFRA_ERROR or run unsandboxed" >&2
    done
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
STAMP=.venv/.ppocoder-installed-$MODE
if [ ! -f "$STAMP" ] || [ setup.cfg -nt "$STAMP" ] || [ scripts/constraints.txt -nt "$STAMP" ]; then
  echo "== installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  # The package versions the documented figures were measured with (scripts/constraints.txt);
  # where they do not install (another Python), the newest ones, said aloud.
  pinned() {
    .venv/bin/pip install -q -c scripts/constraints.txt "$@" || {
      echo "WARNING: the pinned versions (scripts/constraints.txt) did not install; installing the newest: results may differ from the documented figures" >&2
      .venv/bin/pip install -q "$@"
    }
  }
  if [ "$MODE" = test ]; then
    # The CPU build of torch (transformers reference models in tests); a plain `torch`
    # requirement could pull a multi-GB CUDA build.
    .venv/bin/pip install -q "torch==2.13.0" || .venv/bin/pip install -q torch --index-url https://download.pytorch.org/whl/cpu
    pinned -e ".[test]"
  else
    pinned -e .
  fi
  touch "$STAMP"
fi

export PYTHONHASHSEED="${PYTHONHASHSEED:-0}"
if [ "$MODE" = demo ]; then
  exec .venv/bin/ppocoder demo "$@"
else
  exec .venv/bin/python -m pytest -q -n "${PYTEST_WORKERS:-2}" -m "not slow" "$@"
fi
