#!/bin/sh
# Builds the libFuzzer targets with clang and runs each for a while on a copy of its seed corpus.
#   tests/fuzz/run.sh [SECONDS] [TARGET...]    (SECONDS per target, default 20; all targets by default)
# BUILDDIR overrides the build directory (default build-fuzz in the source tree). Crashing inputs are
# left in $BUILDDIR/fuzz-artifacts/; the script exits non-zero when any target failed.
set -eu

seconds=${1:-20}
[ $# -gt 0 ] && shift
src=$(cd "$(dirname "$0")/../.." && pwd)
builddir=${BUILDDIR:-$src/build-fuzz}
targets=${*:-fuzz-parse fuzz-hashmap fuzz-exec-request}

if [ ! -f "$builddir/build.ninja" ]; then
        CC=clang meson setup "$builddir" "$src" >/dev/null
fi
for t in $targets; do
        if ! ninja -C "$builddir" "tests/fuzz/$t" >/dev/null; then
                echo "Cannot build $t: it needs clang with libFuzzer (Debian: clang libclang-rt-dev)." >&2
                exit 1
        fi
done

artifacts="$builddir/fuzz-artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=""
for t in $targets; do
        # The seed corpus is copied so that the inputs libFuzzer adds do not land in the repository.
        mkdir -p "$work/$t"
        cp -R "$src/tests/fuzz/corpus/$t/." "$work/$t/" 2>/dev/null || true
        dict=""
        [ -f "$src/tests/fuzz/$t.dict" ] && dict="-dict=$src/tests/fuzz/$t.dict"
        echo "== $t: ${seconds}s"
        # shellcheck disable=SC2086
        if ! "$builddir/tests/fuzz/$t" $dict -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
                        -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "$work/$t" \
                        >"$work/$t.log" 2>&1; then
                failed="$failed $t"
                tail -n 60 "$work/$t.log"
        else
                grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' \
                        "$work/$t.log" || tail -n 5 "$work/$t.log"
        fi
done

if [ -n "$failed" ]; then
        echo "FAILED:$failed (reproducers in $artifacts)" >&2
        exit 1
fi
echo "all fuzz targets passed"
