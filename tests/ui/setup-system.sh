#!/usr/bin/env bash
# System packages of the browser tests (run as root by scripts/test-all.sh): Debian's Chromium,
# which Playwright drives as it is (never `playwright install`: nothing is downloaded).
set -euo pipefail
if ! command -v chromium >/dev/null; then
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
