#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what it needs, builds, and runs sandboxd for real on a private socket (no system
# setup), then runs a command through it, or, on a terminal, opens an interactive shell in it.
# Anything after the script's name is the command to run instead: tools/demo.sh -- uname -a
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
[ -f build/build.ninja ] || meson setup build
ninja -C build

dir=$(mktemp -d /tmp/sandboxd-demo.XXXXXX)
socket="$dir/io.socket"
build/src/daemon/sandboxd --no-bus --listen="unix:path=$socket" --idle-timeout=0 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done

ctl=(build/src/client/sandboxctl --address="unix:path=$socket")
[ "${1:-}" = "--" ] && shift
echo "sandboxd is serving on $socket (pid $daemon)."
if [ $# -gt 0 ]; then
        echo "+ sandboxctl exec -- $*"
        "${ctl[@]}" exec -- "$@"
elif [ -t 0 ] && [ -t 1 ]; then
        echo "+ sandboxctl exec -t -- bash   (a shell in a session; 'exit' ends it)"
        "${ctl[@]}" exec -t -- bash
else
        echo "+ sandboxctl exec -- sh -c 'echo hello from \$(id -un) in session pid \$\$; uname -sr'"
        "${ctl[@]}" exec -- sh -c 'echo hello from $(id -un) in session pid $$; uname -sr'
        echo "+ busctl --address=unix:path=$socket call org.example.Sandbox1 /org/example/Sandbox1 org.example.Sandbox1 ListSessions"
        busctl --address="unix:path=$socket" call org.example.Sandbox1 /org/example/Sandbox1 \
                org.example.Sandbox1 ListSessions
fi
