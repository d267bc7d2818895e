#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Cold start on a booted system: builds the tree for /usr, boots the host's /usr with the install
# laid over it in systemd-nspawn (../shared/design/testing.md), and inside runs sandbox-bench's
# "unit" stage: first connection to /run/sandboxd/io.socket with sandboxd.service stopped → the
# Exec reply, against a trivial socket-activated service of the same systemd.
#
#   bench/boot-cold.sh [sandbox-bench options…]      (as root; run.sh calls it for --stages=…unit…)
#
# Environment: BUILD_DIR (default build-bench-usr, configured with --prefix=/usr), KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench-usr}

if [ "$(id -u)" -ne 0 ]; then
        echo "Run this as root: it boots a container." >&2
        exit 1
fi
for tool in systemd-nspawn nsenter pgrep meson ninja; do
        if ! command -v "$tool" >/dev/null; then
                echo "boot-cold: $tool is missing (apt-get install systemd-container util-linux procps meson ninja-build); skipped." >&2
                exit 0
        fi
done

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
        meson setup "$BUILD_DIR" --prefix=/usr >&2
fi
ninja -C "$BUILD_DIR" >&2

TMP=$(mktemp -d /tmp/sandbox-boot-cold.XXXXXX)
nspawn=
init=
cleanup() {
        if [ -n "$init" ]; then
                kill -KILL "$init" 2>/dev/null || true
        fi
        if [ -n "$nspawn" ]; then
                wait "$nspawn" 2>/dev/null || true
        fi
        if [ "${KEEP_TMP:-0}" = 1 ]; then
                echo "Kept $TMP" >&2
        else
                rm -rf "$TMP"
        fi
}
trap cleanup EXIT

DEST=$TMP/dest
meson install -C "$BUILD_DIR" --destdir "$DEST" --no-rebuild --quiet >&2
# The harness and the floor, which the project does not install, and the floor's units.
install -D -m 0755 "$BUILD_DIR/bench/sandbox-bench" "$DEST/usr/libexec/sandbox-bench/sandbox-bench"
install -D -m 0755 "$BUILD_DIR/bench/echo-activated" "$DEST/usr/libexec/sandbox-bench/echo-activated"
cat > "$DEST/usr/lib/systemd/system/sandbox-bench-echo.socket" <<'EOF'
[Unit]
Description=sandbox-bench: the cold-start floor's socket

[Socket]
ListenStream=/run/sandbox-bench-echo.socket
Accept=no
EOF
cat > "$DEST/usr/lib/systemd/system/sandbox-bench-echo.service" <<'EOF'
[Unit]
Description=sandbox-bench: the cold-start floor, one echoed connection per start

[Service]
ExecStart=/usr/libexec/sandbox-bench/echo-activated
EOF

systemd-nspawn -D / --volatile=yes -b --console=pipe -q --register=no --keep-unit \
        --machine="sandbox-bench-$$" --overlay-ro=/usr:"$DEST"/usr:/usr \
        systemd.wants=sandboxd.socket systemd.wants=sandbox-bench-echo.socket \
        </dev/null >"$TMP/console.log" 2>&1 &
nspawn=$!

for _ in $(seq 200); do
        init=$(pgrep -P "$nspawn" -x systemd || true)
        [ -n "$init" ] && break
        if ! kill -0 "$nspawn" 2>/dev/null; then
                echo "boot-cold: systemd-nspawn exited; skipped. Its output:" >&2
                tail -20 "$TMP/console.log" >&2
                exit 0
        fi
        sleep 0.1
done
if [ -z "$init" ]; then
        echo "boot-cold: no systemd in the container after 20 s; skipped." >&2
        exit 0
fi

inside() {
        nsenter -t "$init" -m -p -u -i -n env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
state=
for _ in $(seq 200); do
        state=$(inside systemctl is-system-running 2>/dev/null || true)
        case $state in running|degraded) break ;; esac
        sleep 0.2
done
case $state in
running|degraded) ;;
*) echo "boot-cold: the container did not come up (is-system-running: $state)" >&2; exit 1 ;;
esac

inside /usr/libexec/sandbox-bench/sandbox-bench --stages=unit "$@"
