#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots the VM guest of run_vm.py once more, for the benchmark instead of the checks: bench/
sandbox-bench runs inside, against sandboxd over vsock (CID 1, the guest itself), over the guest's
dbus-daemon and over its unix socket, with the posix_spawn floor in the same rounds; then the
scale stage with 10000 relayed sessions (root in the guest raises RLIMIT_NOFILE). Not part of
`pytest tests/vm` or tools/test.sh: it is a second boot, for people measuring. See README.md.

    BUILD_DIR=build tests/vm/bench_vm.py [OUTDIR] [sandbox-bench options...]

Options given are passed to sandbox-bench after the defaults below (the later one wins), e.g.
`--exec-rounds=1000` or `--stages=latency`. Environment: SANDBOXD_VM_BENCH_TIMEOUT (seconds from
QEMU's start to its exit, default 2400), SANDBOXD_VM_BENCH_MEMORY (MiB, default 4096: 10000
`sleep` processes take about 2 GiB, and a 1 GiB guest's kernel.threads-max is below 10000).
Results: OUTDIR/out/bench.txt (the harness's table), bench-progress.txt (its stderr),
results.jsonl (the steps), journal.txt; console.log next to out/.
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run_vm  # noqa: E402

SERVICE = 'vm-bench.service'
TIMEOUT = float(os.environ.get('SANDBOXD_VM_BENCH_TIMEOUT', '2400'))
MEMORY = int(os.environ.get('SANDBOXD_VM_BENCH_MEMORY', '4096'))
# Under TCG a /bin/true costs milliseconds: fewer rounds and smaller outputs than on the host.
DEFAULT_ARGS = ['--stages=latency,throughput,scale', '--exec-rounds=500', '--size=32M',
                '--throughput-rounds=3', '--scale=1000,10000', '--scale-probes=20']
DROPIN = '50-vm-bench.conf'

BENCH_UNIT = f'''[Unit]
Description=sandboxd VM benchmark: bench/sandbox-bench in the guest
After=basic.target sockets.target dbus.socket
Wants=dbus.socket
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 {run_vm.GUEST_DIR}/guest_bench.py {run_vm.OUT_MOUNT}
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec={max(60, int(TIMEOUT) - 60)}
# The scale stage's daemons and their 10000 sessions are children of the harness, in this unit.
TasksMax=infinity
LimitNOFILE=524288
'''


def customize(builddir, bench_args):
    """What the bench boot adds to run_vm.py's guest tree (after builddir's install)."""
    def add(tree):
        gdir = tree / run_vm.GUEST_DIR.lstrip('/')
        for name in ('sandbox-bench', 'echo-activated'):
            src = builddir / 'bench' / name
            if not src.exists():
                raise RuntimeError(f'{src} is missing: the build has no bench/')
            shutil.copy(src, gdir)
        shutil.copy(HERE / 'guest_bench.py', gdir)
        etc = tree / 'etc/systemd/system'
        # The root-only unix socket as well: the same daemon peer-to-peer without vsock.
        os.symlink(run_vm.installed_unit(tree, 'sandboxd.socket'),
                   etc / 'sockets.target.wants/sandboxd.socket')
        # A client in the guest is CID 1 (vsock loopback); no idle exit while measuring.
        service = tree / run_vm.installed_unit(tree, 'sandboxd.service').lstrip('/')
        exec_line = next(ln.split('=', 1)[1] for ln in service.read_text().splitlines()
                         if ln.startswith('ExecStart='))
        (etc / 'sandboxd.service.d').mkdir(parents=True, exist_ok=True)
        (etc / 'sandboxd.service.d' / DROPIN).write_text(
            f'[Service]\nExecStart=\nExecStart={exec_line} --vsock-allow-cid=1 '
            '--idle-timeout=0 --max-sessions=100000 --max-sessions-per-user=100000\n')
        # dbus-daemon reads policies from /usr/share and /etc only; a /usr/local build's would
        # not be seen and the daemon could not take its name.
        policies = sorted(tree.glob('usr/**/dbus-1/system.d/org.example.Sandbox1.conf'))
        if not policies:
            raise RuntimeError(f'the install in {tree} has no bus policy')
        if not str(policies[0]).startswith(str(tree / 'usr/share/')):
            (tree / 'etc/dbus-1/system.d').mkdir(parents=True, exist_ok=True)
            shutil.copy(policies[0], tree / 'etc/dbus-1/system.d')
        (gdir / 'bench-args.json').write_text(json.dumps({
            'sandboxd': exec_line.split()[0].lstrip('@-:+!'),
            'args': bench_args}))
    return add


def main():
    outdir = None
    extra = []
    for a in sys.argv[1:]:
        if a.startswith('--'):
            extra.append(a)
        elif outdir is None:
            outdir = Path(a)
        else:
            print(f'unexpected argument {a!r}', file=sys.stderr)
            return 2
    outdir = outdir or Path(tempfile.mkdtemp(prefix='sandboxd-vm-bench-'))
    outdir.mkdir(parents=True, exist_ok=True)
    builddir = Path(os.environ.get('BUILD_DIR', run_vm.REPO / 'build'))
    try:
        res = run_vm.run(outdir, builddir, TIMEOUT, service=SERVICE, service_unit=BENCH_UNIT,
                         customize=customize(builddir, DEFAULT_ARGS + extra), memory=MEMORY)
    except run_vm.Unavailable as e:
        print(f'skipped: {e}')
        return 77
    try:
        print((outdir / 'out/bench.txt').read_text(errors='replace'), end='')
    except OSError:
        print('(no bench.txt came out of the guest)')
    for r in res['results']:
        print(f"{'ok  ' if r.get('ok') else 'FAIL'} {r.get('check')}: {r.get('detail', '')}"[:600])
    print(f"kernel {res['kernel']}; {MEMORY} MiB; prepared in {res['prepare_seconds']:.1f} s; "
          f"QEMU ran {res['seconds']:.1f} s{' (timed out, killed)' if res['timed_out'] else ''}; "
          f"output in {outdir}")
    done = any(r.get('check') == 'done' for r in res['results'])
    return 0 if done and all(r.get('ok') for r in res['results']) else 1


if __name__ == '__main__':
    sys.exit(main())
