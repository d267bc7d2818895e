#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what it needs, builds, and runs sandboxd for real on a private socket (no system
# setup), then runs a command through it, or, on a terminal, opens an interactive shell in it.
# Anything after the script's name is the command to run instead: tools/demo.sh -- uname -a
# -v shows the package check and the build as they run; otherwise their output is shown only
# when they fail. The daemon writes its log into a file, never into the terminal (which is in raw
# mode while a shell runs): its name is printed at the start and at the end.
# BUILDDIR (default: build) is the build directory, as for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
        echo "Usage: $0 [-v|--verbose] [--] [CMD [ARG…]]"
}
verbose=false
while [ $# -gt 0 ]; do
        case $1 in
        -v | --verbose) verbose=true; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        -*) usage >&2; exit 2 ;;
        *) break ;;
        esac
done

# Words as a shell would need them typed: bare when safe, else in single quotes (as shlex.quote).
quote_words() {
        local w out=''
        for w in "$@"; do
                if [[ -n $w && $w != *[!A-Za-z0-9_@%+=:,./-]* ]]; then
                        out+=" $w"
                else
                        out+=" '${w//\'/\'\\\'\'}'"
                fi
        done
        printf '%s\n' "${out# }"
}

build=${BUILDDIR:-build}
dir=$(mktemp -d /tmp/sandboxd-demo.XXXXXX)
log="$dir/sandboxd.log"
build_log="$dir/build.log"

# Packages and build: quiet unless -v; on failure, what they printed and where it is kept.
build_step() {
        if $verbose; then
                "$@"
        elif ! "$@" >>"$build_log" 2>&1; then
                cat "$build_log" >&2
                echo "demo: '$(quote_words "$@")' failed; its output is above and in $build_log" >&2
                return 1
        fi
}
# Said only when there is something to build, so that an up-to-date tree starts at once.
built() {
        [ -f "$build/build.ninja" ] &&
                ninja -C "$build" -n 2>/dev/null | grep '^ninja: no work to do' >/dev/null
}
if ! $verbose && ! built; then
        echo "demo: installing what is missing and building (output in $build_log; -v shows it)…" >&2
fi
build_step tools/install-deps.sh
[ -f "$build/build.ninja" ] || build_step meson setup "$build"
build_step ninja -C "$build"

socket="$dir/io.socket"
daemon=
cleanup() {
        if [ -n "$daemon" ]; then
                kill "$daemon" 2>/dev/null || true
                wait "$daemon" 2>/dev/null || true
                echo "demo: sandboxd has stopped; its log is in $log" >&2
        fi
        rm -f "$socket"
}
trap cleanup EXIT
"$build/src/daemon/sandboxd" --no-bus --listen="unix:path=$socket" --idle-timeout=0 \
        </dev/null >"$log" 2>&1 &
daemon=$!
for _ in $(seq 200); do
        [ -S "$socket" ] && break
        kill -0 "$daemon" 2>/dev/null || break
        sleep 0.02
done
if [ ! -S "$socket" ]; then
        cat "$log" >&2
        echo "demo: sandboxd did not start; its log is above and in $log" >&2
        exit 1
fi

ctl=("$build/src/client/sandboxctl" --address="unix:path=$socket")
echo "demo: sandboxd (pid $daemon) is serving on $socket" >&2
echo "demo: its log is in $log" >&2
rc=0
if [ $# -gt 0 ]; then
        echo "+ sandboxctl exec -- $(quote_words "$@")" >&2
        "${ctl[@]}" exec -- "$@" || rc=$?
elif [ -t 0 ] && [ -t 1 ]; then
        echo "+ sandboxctl exec -t -- bash   (a shell in a session; 'exit' ends it)" >&2
        "${ctl[@]}" exec -t -- bash || rc=$?
else
        echo "+ sandboxctl exec -- sh -c 'echo hello from \$(id -un) in session pid \$\$; uname -sr'" >&2
        "${ctl[@]}" exec -- sh -c 'echo hello from $(id -un) in session pid $$; uname -sr' || rc=$?
        echo "+ busctl --address=unix:path=$socket call org.example.Sandbox1 /org/example/Sandbox1" \
             "org.example.Sandbox1 ListSessions" >&2
        busctl --address="unix:path=$socket" call org.example.Sandbox1 /org/example/Sandbox1 \
                org.example.Sandbox1 ListSessions || rc=$?
fi
exit $rc
