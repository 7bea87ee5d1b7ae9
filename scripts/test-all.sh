#!/usr/bin/env bash
# Install everything the test suites need on a fresh Debian 12 machine (root), then run every tox environment.
# Usage: bash scripts/test-all.sh [tox env list]   e.g. bash scripts/test-all.sh core,jdbc
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  for setup in plugins/*/setup-system.sh tests/ui/setup-system.sh; do
    [ -f "$setup" ] || continue
    echo "== system setup: $setup"
    bash "$setup"
  done
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -m pip install -q --upgrade uv tox tox-uv >/dev/null 2>&1 || "$PY" -m pip install -q uv tox tox-uv
export PATH="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"

envs=${1:-ALL}
if [ "$envs" = ALL ]; then
  "$PY" -m tox run-parallel -p 2 --parallel-no-spinner --parallel-live
else
  "$PY" -m tox run-parallel -p 2 --parallel-no-spinner --parallel-live -e "$envs"
fi
