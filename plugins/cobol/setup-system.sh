#!/usr/bin/env bash
# The COBOL plugin's tests run GnuCOBOL behind a real SSH server on loopback (run as root by scripts/test-all.sh).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends gnucobol openssh-server openssh-client >/dev/null
mkdir -p /run/sshd
