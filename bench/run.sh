#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what the benchmark needs, builds, starts sandboxd (on a private system bus and on a
# peer-to-peer socket) and its peers (flatpak-session-helper on a private session bus, qemu-ga) in a
# temporary directory, runs bench/sandbox-bench and prints its table.
#
#   bench/run.sh [--quick] [--baseline=REV] [sandbox-bench options…]
#
# Stages: latency, throughput, scale, cold (on this machine) and unit (bench/boot-cold.sh: the
# real units in a booted container); --stages=LIST picks some, the default is all.
#
# --baseline=REV also builds git revision REV in a temporary worktree and measures its daemon in
# the same interleaved rounds (latency and throughput): the way to tell whether a change helped,
# since figures from separate runs drift by more than most changes move them.
#
# Environment: BUILD_DIR (default build-bench, a tree of its own so that it is not rebuilt under
# someone else's feet), KEEP_TMP=1 to keep the temporary directory and the daemons' logs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}

baseline=
args=()
boot_args=()
boot=yes
for a in "$@"; do
        case $a in
        --baseline=*) baseline=${a#--baseline=} ;;
        *) args+=("$a") ;;
        esac
        case $a in
        --stages=*unit*) ;;
        --stages=*) boot=no ;;
        --cold-rounds=*|--quick) boot_args+=("$a") ;;
        esac
done

if [ "$(id -u)" -ne 0 ]; then
        echo "Run this as root: it starts a system-type bus, qemu-ga and 10000 sessions." >&2
        exit 1
fi

# What we need, by command → Debian package.
declare -A need=(
        [dbus-daemon]=dbus-daemon
        [/usr/libexec/flatpak-session-helper]=flatpak
        [qemu-ga]=qemu-guest-agent
        [systemd-socket-activate]=systemd
        [meson]=meson
        [ninja]=ninja-build
        [pkg-config]=pkg-config
        [cc]=gcc
        [prlimit]=util-linux
        [git]=git
        [systemd-nspawn]=systemd-container
        [xsltproc]=xsltproc
)
missing=()
for cmd in "${!need[@]}"; do
        if [[ $cmd == /* ]]; then [ -x "$cmd" ] || missing+=("${need[$cmd]}")
        else command -v "$cmd" >/dev/null || missing+=("${need[$cmd]}"); fi
done
for p in libsystemd-dev libcap-dev libseccomp-dev docbook-xsl docbook-xml; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        echo "Installing: ${missing[*]}" >&2
        apt-get install -y -q "${missing[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${missing[@]}" >&2; }
fi

# Build. Once the top-level meson.build has subdir('bench') the harness comes out of the tree;
# until then it is compiled here by hand.
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
        meson setup "$BUILD_DIR" >&2
fi
ninja -C "$BUILD_DIR" >&2
SANDBOXD=$BUILD_DIR/src/daemon/sandboxd
BENCH=$BUILD_DIR/bench/sandbox-bench
ECHO=$BUILD_DIR/bench/echo-activated
TMP=$(mktemp -d /tmp/sandbox-bench.XXXXXX)
if [ ! -x "$BENCH" ] || [ ! -x "$ECHO" ]; then
        cflags="-O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers"
        # shellcheck disable=SC2046,SC2086
        cc $cflags -o "$TMP/sandbox-bench" bench/sandbox-bench.c $(pkg-config --cflags --libs libsystemd)
        # shellcheck disable=SC2086
        cc $cflags -o "$TMP/echo-activated" bench/echo-activated.c
        BENCH=$TMP/sandbox-bench
        ECHO=$TMP/echo-activated
fi

pids=()
cleanup() {
        local p
        for p in "${pids[@]}"; do
                kill "$p" 2>/dev/null || true
        done
        for p in "${pids[@]}"; do
                wait "$p" 2>/dev/null || true
        done
        if [ -d "$TMP/baseline" ]; then
                git -C "$ROOT" worktree remove --force "$TMP/baseline" >/dev/null 2>&1 || true
        fi
        if [ "${KEEP_TMP:-0}" = 1 ]; then
                echo "Logs kept in $TMP" >&2
        else
                rm -rf "$TMP"
        fi
}
trap cleanup EXIT

wait_for() {
        local i
        for i in $(seq 200); do
                [ -e "$1" ] && return 0
                sleep 0.05
        done
        echo "Timed out waiting for $1" >&2
        return 1
}

# High fd limits for everything started from here: 10000 relayed sessions hold ~40000 fds in the
# daemon. Raising the hard limit needs CAP_SYS_RESOURCE; without it the harness reports the limit
# and runs the largest load with the stdio fds passed instead (one fd per session).
ulimit -Hn 524288 2>/dev/null || echo "Cannot raise the hard fd limit past $(ulimit -Hn) (no CAP_SYS_RESOURCE?)" >&2
ulimit -Sn "$(ulimit -Hn)"

# The baseline: another revision's daemon, built in a worktree of its own.
if [ -n "$baseline" ]; then
        git -C "$ROOT" worktree add --detach "$TMP/baseline" "$baseline" >&2
        meson setup "$TMP/baseline/build" "$TMP/baseline" >&2
        ninja -C "$TMP/baseline/build" src/daemon/sandboxd >&2
fi

# A private system bus with the project's policy, and a permissive default for the benchmark.
cat > "$TMP/system.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$TMP/system.socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  <includedir>$ROOT/dbus</includedir>
</busconfig>
EOF
sed -e 's|<type>system</type>|<type>session</type>|' -e "s|$TMP/system.socket|$TMP/session.socket|" \
        -e "\|<includedir>|d" "$TMP/system.conf" > "$TMP/session.conf"

dbus-daemon --config-file="$TMP/system.conf" --nofork --nopidfile >"$TMP/system-bus.log" 2>&1 &
pids+=($!)
dbus-daemon --config-file="$TMP/session.conf" --nofork --nopidfile >"$TMP/session-bus.log" 2>&1 &
pids+=($!)
wait_for "$TMP/system.socket"
wait_for "$TMP/session.socket"

baseline_args=()
if [ -n "$baseline" ]; then
        # Its own bus, with its own policy, since both daemons take the same name.
        sed -e "s|$TMP/system.socket|$TMP/baseline-system.socket|" \
                -e "s|<includedir>$ROOT/dbus</includedir>|<includedir>$TMP/baseline/dbus</includedir>|" \
                "$TMP/system.conf" > "$TMP/baseline-system.conf"
        dbus-daemon --config-file="$TMP/baseline-system.conf" --nofork --nopidfile \
                >"$TMP/baseline-bus.log" 2>&1 &
        pids+=($!)
        wait_for "$TMP/baseline-system.socket"
        B=$TMP/baseline/build/src/daemon/sandboxd
        DBUS_SYSTEM_BUS_ADDRESS=unix:path=$TMP/baseline-system.socket "$B" --idle-timeout=0 \
                --max-sessions=100000 --max-sessions-per-user=100000 >"$TMP/baseline-bus-sandboxd.log" 2>&1 &
        pids+=($!)
        "$B" --no-bus --listen=unix:path="$TMP/baseline-p2p.socket" --idle-timeout=0 \
                --max-sessions=100000 --max-sessions-per-user=100000 >"$TMP/baseline-p2p-sandboxd.log" 2>&1 &
        pids+=($!)
        wait_for "$TMP/baseline-p2p.socket"
        baseline_args=(--baseline-p2p="unix:path=$TMP/baseline-p2p.socket"
                       --baseline-bus="unix:path=$TMP/baseline-system.socket"
                       --baseline-label="$(git -C "$ROOT" rev-parse --short "$baseline")")
fi

DBUS_SYSTEM_BUS_ADDRESS=unix:path=$TMP/system.socket "$SANDBOXD" --idle-timeout=0 \
        --max-sessions=100000 --max-sessions-per-user=100000 >"$TMP/sandboxd-bus.log" 2>&1 &
pids+=($!)
"$SANDBOXD" --no-bus --listen=unix:path="$TMP/p2p.socket" --idle-timeout=0 \
        --max-sessions=100000 --max-sessions-per-user=100000 >"$TMP/sandboxd-p2p.log" 2>&1 &
pids+=($!)
mkdir -p "$TMP/xdg" && chmod 700 "$TMP/xdg"
env -u DISPLAY -u WAYLAND_DISPLAY XDG_RUNTIME_DIR="$TMP/xdg" \
        DBUS_SESSION_BUS_ADDRESS=unix:path=$TMP/session.socket \
        /usr/libexec/flatpak-session-helper >"$TMP/flatpak-session-helper.log" 2>&1 &
pids+=($!)
mkdir -p "$TMP/qga"
qemu-ga -m unix-listen -p "$TMP/qga.socket" -t "$TMP/qga" -f "$TMP/qga/qemu-ga.pid" \
        >"$TMP/qemu-ga.log" 2>&1 &
pids+=($!)
wait_for "$TMP/p2p.socket"
wait_for "$TMP/qga.socket"

echo "sandboxd: $SANDBOXD (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))" >&2
"$BENCH" --bus="unix:path=$TMP/system.socket" --p2p="unix:path=$TMP/p2p.socket" \
        --flatpak="unix:path=$TMP/session.socket" --qga="$TMP/qga.socket" \
        --sandboxd="$SANDBOXD" --echo="$ECHO" --tmpdir="$TMP" "${baseline_args[@]}" "${args[@]}" \
        | tee "$TMP/result.txt"

# The cold start through the real units needs a booted system: a container of its own.
if [ "$boot" = yes ]; then
        "$ROOT/bench/boot-cold.sh" "${boot_args[@]}" | tee -a "$TMP/result.txt"
fi
