#!/usr/bin/env bash
# System packages for roost-plugin-kvm and its tests (Debian; run as root; safe to run again).
#
#   libvirt-dev pkg-config      build libvirt-python (pip compiles it against the system libvirt)
#   libvirt-daemon* qemu-*      a real libvirtd with QEMU for tests/test_real_libvirtd.py
#
# Nothing is started here: the tests' session fixture starts virtlogd and libvirtd when they are
# not running and stops what it started.
set -euo pipefail

packages=(
  libvirt-dev pkg-config
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients
  qemu-system-x86 qemu-utils
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Without udev (containers), /dev/kvm stays root-only. udev's rule gives it to group kvm (mode 0660),
# which the libvirt-qemu user is in; without that, libvirt re-probes QEMU's capabilities on every
# call (tens of seconds each) because it finds KVM usable as root but not as the QEMU user.
if [[ -c /dev/kvm ]] && getent group kvm >/dev/null && [[ "$(stat -c %G /dev/kvm)" != kvm ]]; then
  chgrp kvm /dev/kvm
  chmod 0660 /dev/kvm
fi
