#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what the tests need, builds with warnings as errors, and runs the whole suite: unit tests,
# integration tests against the real daemon on a private bus, the client, the booted-container
# test, then all of it again with AddressSanitizer and UndefinedBehaviorSanitizer, 3000 sessions
# under LeakSanitizer, and a short run of every fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh

PY=/usr/bin/python3          # Debian's, which has pytest and jeepney
passed=0
failed=0
run() {
        local name=$1; shift
        echo "=== $name"
        if "$@"; then
                passed=$((passed + 1))
        else
                echo "=== $name FAILED"
                failed=$((failed + 1))
        fi
}

build() {
        local dir=$1; shift
        if [ ! -f "$dir/build.ninja" ]; then
                meson setup "$dir" --werror "$@"
        fi
        ninja -C "$dir"
}

suite() {
        local dir=$1
        run "unit tests ($dir)" meson test -C "$dir" --print-errorlogs
        run "integration tests ($dir)" env SANDBOXD="$PWD/$dir/src/daemon/sandboxd" \
                $PY -m pytest -q tests/integration
        if [ -d tests/client ]; then
                run "client tests ($dir)" env SANDBOXD="$PWD/$dir/src/daemon/sandboxd" \
                        SANDBOXCTL="$PWD/$dir/src/client/sandboxctl" $PY -m pytest -q tests/client
        fi
}

build build
suite build
if [ -d tests/boot ]; then
        run "boot test" env BUILD_DIR="$PWD/build" $PY -m pytest -q tests/boot
fi
if [ -d tests/vm ]; then
        run "vm test" env BUILD_DIR="$PWD/build" $PY -m pytest -q -rs tests/vm
fi

# The same again under the sanitizers. The child gets a copy of the daemon's memory there (see spawn.c).
build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
# A small quarantine, so that the tests that watch the daemon's RSS measure the daemon, not ASan.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:quarantine_size_mb=4:thread_local_quarantine_size_kb=64
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
suite build-asan
# 3000, not the script's default 10000: a spawn from an ASan daemon copies its memory, about 55 ms
# on the slower VMs CI runs on (18 sessions/s), and 10000 took 9 of the run's 20 minutes there.
run "leak check: 3000 sessions under LeakSanitizer" tests/load/leak-check.sh build-asan 3000
run "fuzzing, 15 s per target" env BUILDDIR="$PWD/build-fuzz" tests/fuzz/run.sh 15

echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
