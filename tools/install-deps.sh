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
        # zsh, to load and type its completion of sandboxctl in (tests/client/test_completion_more.py)
        zsh
        # the test runner
        python3 python3-pytest python3-jeepney
        # client libraries the peer-to-peer socket is tested with (test_client_libraries.py)
        python3-dbus-next python3-gi gir1.2-glib-2.0
)

# ---- begin: tests/vm, a QEMU guest (QEMU, busybox, a Debian 6.1 kernel, kmod, udev) ----
# QEMU and busybox-static are installed on the host. The guest's kernel, kmod and udev are only
# unpacked (dpkg -x, never installed) into $vm_cache, merged into usr/, with depmod run on the
# modules; $vm_cache/ready names the kernel and marks a complete cache, so a rerun does nothing.
# Without root or without Debian's mirrors nothing fails here: tests/vm then skips and says why.
vm_cache=/var/cache/sandboxd-test/vm
vm_setup() {
        local need=() p kpkg kver work deb d
        for p in qemu-system-x86 qemu-system-data busybox-static; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
        done
        if [ ${#need[@]} -eq 0 ] && [ -s "$vm_cache/ready" ]; then
                return 0
        fi
        if [ "$(id -u)" -ne 0 ]; then
                echo "tests/vm: run this as root to install ${need[*]:-its kernel}" >&2
                return 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q || return 1
        if [ ${#need[@]} -gt 0 ]; then
                apt-get install -y -q --no-install-recommends "${need[@]}" || return 1
        fi
        [ -s "$vm_cache/ready" ] && return 0
        kpkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' |
               awk '{print $1}' | sort -V | tail -n 1)
        [ -n "$kpkg" ] || { echo "tests/vm: no linux-image-6.1.*-amd64 in apt" >&2; return 1; }
        kver=${kpkg#linux-image-}
        work=$(mktemp -d "${TMPDIR:-/tmp}/sandboxd-vm-debs.XXXXXX") || return 1
        chown _apt "$work" 2>/dev/null || chmod 755 "$work"  # apt-get download fetches as _apt
        (cd "$work" && apt-get download -q "$kpkg" kmod udev) || { rm -rf "$work"; return 1; }
        mkdir -p "$work/root"
        for deb in "$work"/*.deb; do
                dpkg -x "$deb" "$work/root" || { rm -rf "$work"; return 1; }
        done
        # The host's /lib, /bin and /sbin are links into /usr: the tree is laid over it by
        # overlayfs, where a real lib/ would hide the link, so everything moves under usr/.
        for d in lib bin sbin; do
                if [ -d "$work/root/$d" ] && [ ! -L "$work/root/$d" ]; then
                        mkdir -p "$work/root/usr/$d"
                        cp -a "$work/root/$d/." "$work/root/usr/$d/" && rm -rf "${work:?}/root/$d"
                fi
        done
        rm -rf "$work/root/usr/share/doc" "$work/root/usr/share/man"
        # kmod is depmod when called by that name (the package's links are absolute).
        (exec -a depmod "$work/root/usr/bin/kmod" -b "$work/root/usr" "$kver") ||
                { rm -rf "$work"; return 1; }
        rm -rf "$vm_cache"
        mkdir -p "$(dirname "$vm_cache")"
        mv "$work/root" "$vm_cache" && echo "$kver" >"$vm_cache/ready"
        rm -rf "$work"
}
vm_setup || echo "tests/vm: the VM guest's pieces are not installed; tests/vm will skip" >&2
# ---- end: tests/vm ----

# ---- begin: dbus-broker for the integration tests (tests/integration/conftest.py) ----
# The other system bus the tests run on. Only unpacked (dpkg -x) into $broker_cache, never
# installed: installing the package makes it the machine's dbus.service. $broker_cache/ready
# marks a complete tree, so a rerun does nothing. Without root or the mirrors nothing fails
# here: the 'broker' tests then skip and say why.
broker_cache=/var/cache/sandboxd-test/dbus-broker
broker_setup() {
        local work
        [ -s "$broker_cache/ready" ] && [ -x "$broker_cache/usr/bin/dbus-broker-launch" ] && return 0
        if [ "$(id -u)" -ne 0 ]; then
                echo "dbus-broker: run this as root to unpack it into $broker_cache" >&2
                return 1
        fi
        work=$(mktemp -d "${TMPDIR:-/tmp}/sandboxd-broker-deb.XXXXXX") || return 1
        chown _apt "$work" 2>/dev/null || chmod 755 "$work"  # apt-get download fetches as _apt
        if ! (cd "$work" && apt-get download -q dbus-broker); then
                apt-get update -q && (cd "$work" && apt-get download -q dbus-broker) ||
                        { rm -rf "$work"; return 1; }
        fi
        mkdir -p "$work/root" && dpkg -x "$work"/dbus-broker_*.deb "$work/root" ||
                { rm -rf "$work"; return 1; }
        dpkg-deb -f "$work"/dbus-broker_*.deb Version >"$work/root/ready"
        rm -rf "$broker_cache"
        mkdir -p "$(dirname "$broker_cache")"
        mv "$work/root" "$broker_cache"
        rm -rf "$work"
}
broker_setup || echo "dbus-broker is not unpacked; the integration tests on it will skip" >&2
# ---- end: dbus-broker ----

# ---- begin: sshd for sandboxctl -H (tests/client/test_addresses.py) ----
# The tests start a private sshd of their own on a loopback port (own config, keys in a temporary
# directory); only the binaries are needed. Here, before the package check below, so that it counts.
packages+=(openssh-server openssh-client)
# ---- end: sshd ----

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
