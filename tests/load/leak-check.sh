#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs N sessions (default 10000) through a sandboxd built with AddressSanitizer/LeakSanitizer and
# checks that nothing is left behind: every session's output and exit checked by sandbox-load, the
# daemon's fd count and RSS back at their baseline, no zombie children, and no leak or error report
# when it exits.
#   tests/load/leak-check.sh BUILDDIR [SESSIONS]      (BUILDDIR built with -Db_sanitize=address,...)
set -euo pipefail

builddir=$1
sessions=${2:-10000}
clients=8
daemon_bin="$builddir/src/daemon/sandboxd"
load_bin="$builddir/tests/load/sandbox-load"

dir=$(mktemp -d /tmp/sandboxd-leak.XXXXXX)
socket="$dir/io.socket"
log="$dir/daemon.log"
cleanup() {
        [ -n "${daemon:-}" ] && kill -9 "$daemon" 2>/dev/null || true
        rm -rf "$dir"
}
trap cleanup EXIT

ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:quarantine_size_mb=8:thread_local_quarantine_size_kb=64 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "$daemon_bin" --no-bus --listen="unix:path=$socket" --idle-timeout=0 \
        --max-sessions-per-user=1024 --log-level=warning 2>"$log" &
daemon=$!
for _ in $(seq 200); do [ -S "$socket" ] && break; sleep 0.05; done

fds() { ls "/proc/$daemon/fd" | wc -l; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$daemon/status"; }
zombies() {
        local n=0
        for s in /proc/[0-9]*/stat; do
                read -r _ _ state ppid _ < "$s" 2>/dev/null || continue
                [ "$ppid" = "$daemon" ] && [ "$state" = Z ] && n=$((n + 1))
        done
        echo "$n"
}

# One short run first, so that what is allocated once (buffers, NSS state) is in the baseline.
"$load_bin" --address="unix:path=$socket" --clients=2 --execs=20 --seed=7 >/dev/null
fd0=$(fds); rss0=$(rss)

"$load_bin" --address="unix:path=$socket" --clients=$clients --execs=$((sessions / clients)) \
        --seconds=100000 --grace=120 --disconnect=2 --seed=2026
sleep 4  # sessions dropped with their connection get SIGHUP, then SIGKILL after 3 s

fd1=$(fds); rss1=$(rss); z=$(zombies)
echo "daemon fds: $fd0 -> $fd1; RSS: $rss0 -> $rss1 KiB; zombies: $z"
status=0
[ "$fd1" -le "$fd0" ] || { echo "FAIL: fd count grew"; status=1; }
[ "$z" -eq 0 ] || { echo "FAIL: zombie children left"; status=1; }
# ASan keeps some freed memory in quarantine (kept small above), so RSS only needs to stay
# near the baseline.
[ "$rss1" -le $((rss0 + 65536)) ] || { echo "FAIL: RSS grew by more than 64 MiB"; status=1; }

kill -TERM "$daemon"
rc=0; wait "$daemon" || rc=$?
daemon=
if [ "$rc" -ne 0 ] || grep -qE "LeakSanitizer|AddressSanitizer|runtime error" "$log"; then
        echo "FAIL: the daemon exited with $rc or reported errors:"; cat "$log"; status=1
fi
[ $status -eq 0 ] && echo "leak check: $sessions sessions, nothing left behind"
exit $status
