#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what building, running and testing sandboxd need, from Debian's packages (Debian 12).
set -euo pipefail

packages=(
        # build
        meson ninja-build pkg-config gcc clang libclang-rt-14-dev
        libsystemd-dev libcap-dev libseccomp-dev
        # man pages
        xsltproc docbook-xsl docbook-xml
        # the real parts the tests run against
        dbus dbus-daemon dbus-bin systemd systemd-container polkitd util-linux procps passwd
        tmux bash-completion
        # the test runner
        python3 python3-pytest python3-jeepney
)

missing=()
for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
        exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
        echo "Missing packages: ${missing[*]}; run this as root to install them." >&2
        exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
