#!/usr/bin/env bash
# System packages the JDBC plugin's tests need (run as root by CI before the tests; idempotent).
# - PostgreSQL 15 server binaries (initdb, pg_ctl): the tests start a throwaway server on a free port.
# - MariaDB server (mariadbd, mariadb-install-db): the MySQL tasks are tested against a throwaway server.
# Nothing is started here: the test fixtures start and stop their own servers.
set -euo pipefail

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
{ command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } || need+=(mariadb-server)

if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d / no init system: the packages' own service start is refused, which is what we want
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
