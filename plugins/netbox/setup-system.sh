#!/usr/bin/env bash
# Prepare what the roost-plugin-netbox tests need to run a REAL NetBox on loopback:
#   - Debian packages: redis-server, PostgreSQL 15 (initdb/pg_ctl), libpq-dev + gcc (psycopg[c]).
#   - A Python 3.12 virtualenv OUTSIDE the repository holding the pinned `netbox` wheel from PyPI
#     (NetBox needs Python >= 3.12; the plugin itself runs on the project's Python).
# Idempotent: packages already present are not reinstalled and a complete venv is reused.
# Nothing is started here: the pytest session fixture starts PostgreSQL, Redis and NetBox.
set -euo pipefail

NETBOX_VERSION="${ROOST_NETBOX_VERSION:-4.7.3}"
CACHE_DIR="${ROOST_NETBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roost-netbox}"
VENV="$CACHE_DIR/venv-$NETBOX_VERSION"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v pg_config >/dev/null 2>&1 || need+=(libpq-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}"
fi

# A Python 3.12+ interpreter: $ROOST_NETBOX_PYTHON, the image's pyenv, or the system's.
find_python() {
  if [ -n "${ROOST_NETBOX_PYTHON:-}" ]; then echo "$ROOST_NETBOX_PYTHON"; return; fi
  for p in /root/.pyenv/versions/3.12*/bin/python3 /root/.pyenv/versions/3.13*/bin/python3 \
           "$(command -v python3.12 || true)" "$(command -v python3.13 || true)"; do
    if [ -n "$p" ] && [ -x "$p" ]; then echo "$p"; return; fi
  done
  return 1
}

if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.complete" ] \
   && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('netbox') != '$NETBOX_VERSION')" 2>/dev/null; then
  echo "netbox $NETBOX_VERSION venv ready: $VENV"
  exit 0
fi

PY="$(find_python)" || { echo "setup-system.sh: no Python >= 3.12 found (set ROOST_NETBOX_PYTHON)" >&2; exit 1; }
rm -rf "$VENV"
mkdir -p "$CACHE_DIR"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "netbox==$NETBOX_VERSION"
touch "$VENV/.complete"
echo "netbox $NETBOX_VERSION venv ready: $VENV"
