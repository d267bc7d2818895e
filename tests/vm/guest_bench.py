#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The benchmark inside the VM guest (vm-bench.service, as root, once per bench boot; see
bench_vm.py). Starts sandboxd.service (its drop-in allows CID 1 and turns the idle exit off),
waits for its bus name, and runs sandbox-bench against it over vsock (CID 1, port 5000), the
guest's dbus-daemon and /run/sandboxd/io.socket, with qemu-ga and flatpak-session-helper as
bench/run.sh has them.

    guest_bench.py OUTDIR

OUTDIR gets bench.txt (the harness's stdout), bench-progress.txt (its stderr), results.jsonl
(one object per step, as guest_check.py writes them), peers.log and journal.txt.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from guest_check import PORT, SERVICE, Checker, run, unit_prop, wait_for, journal  # noqa: E402

BENCH = HERE / 'sandbox-bench'
ECHO = HERE / 'echo-activated'
BUS = 'unix:path=/run/dbus/system_bus_socket'
QGA_SOCKET = '/tmp/qga.socket'
SESSION_SOCKET = '/tmp/session.socket'
FLATPAK_HELPER = '/usr/libexec/flatpak-session-helper'
IO_SOCKET = '/run/sandboxd/io.socket'
NAME = 'org.example.Sandbox1'


def read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return '?'


def name_owned(name=NAME, bus='--system'):
    r = run('busctl', bus, 'call', 'org.freedesktop.DBus', '/org/freedesktop/DBus',
            'org.freedesktop.DBus', 'NameHasOwner', 's', name)
    return r.stdout.strip() == 'b true'


def start_peers(outdir, procs):
    """The peers of bench/run.sh that a guest has too, started as run.sh starts them: qemu-ga
    (a guest agent, here on a unix socket) and flatpak-session-helper on a session bus of its
    own. Returns sandbox-bench's options for those that came up."""
    args, said = [], []
    log = open(outdir / 'peers.log', 'w')
    if shutil.which('qemu-ga'):
        os.makedirs('/tmp/qga', exist_ok=True)
        procs.append(subprocess.Popen(['qemu-ga', '-m', 'unix-listen', '-p', QGA_SOCKET,
                                       '-t', '/tmp/qga', '-f', '/tmp/qga/qemu-ga.pid'],
                                      stdout=log, stderr=subprocess.STDOUT))
        try:
            wait_for(QGA_SOCKET, lambda: os.path.exists(QGA_SOCKET), 30)
            args.append(f'--qga={QGA_SOCKET}')
            said.append('qemu-ga')
        except AssertionError as e:
            said.append(f'qemu-ga: {e}')
    if os.path.exists(FLATPAK_HELPER) and shutil.which('dbus-daemon'):
        address = f'unix:path={SESSION_SOCKET}'
        procs.append(subprocess.Popen(['dbus-daemon', '--session', '--nofork', '--nopidfile',
                                       f'--address={address}'],
                                      stdout=log, stderr=subprocess.STDOUT))
        os.makedirs('/tmp/xdg', mode=0o700, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ('DISPLAY', 'WAYLAND_DISPLAY')}
        env.update(XDG_RUNTIME_DIR='/tmp/xdg', DBUS_SESSION_BUS_ADDRESS=address)
        try:
            wait_for(SESSION_SOCKET, lambda: os.path.exists(SESSION_SOCKET), 30)
            procs.append(subprocess.Popen([FLATPAK_HELPER], env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
            wait_for('flatpak-session-helper on its bus',
                     lambda: name_owned('org.freedesktop.Flatpak', f'--address={address}'), 60)
            args.append(f'--flatpak={address}')
            said.append('flatpak-session-helper')
        except AssertionError as e:
            said.append(f'flatpak-session-helper: {e}')
    return args, ', '.join(said) or 'none'


def main(outdir):
    outdir = Path(outdir)
    ck = Checker(outdir)
    conf = json.loads((HERE / 'bench-args.json').read_text())
    t_start = time.monotonic()
    procs = []
    peer_args = []

    def environment():
        mem = next((ln.split()[1] for ln in read('/proc/meminfo').splitlines()
                    if ln.startswith('MemTotal:')), '?')
        # 10000 sessions are 10000 processes; threads-max scales with memory (1/32 of the pages).
        want = 40000
        if int(read('/proc/sys/kernel/threads-max') or 0) < want:
            Path('/proc/sys/kernel/threads-max').write_text(str(want))
        resource.setrlimit(resource.RLIMIT_NOFILE, (524288, 524288))
        return (f'{os.uname().release}, {os.cpu_count()} CPUs, MemTotal {mem} kB, '
                f'virt {run("systemd-detect-virt").stdout.strip()}, '
                f'pid_max {read("/proc/sys/kernel/pid_max")}, '
                f'threads-max {read("/proc/sys/kernel/threads-max")}, '
                f'nr_open {read("/proc/sys/fs/nr_open")}, '
                f'RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)}')

    def daemon():
        execs = unit_prop(SERVICE, 'ExecStart')
        assert '--vsock-allow-cid=1' in execs, f'the drop-in is not in effect: {execs}'
        r = run('systemctl', 'start', SERVICE, timeout=120)
        assert r.returncode == 0, f'systemctl start {SERVICE}: {r.stderr}'
        pid = unit_prop(SERVICE, 'MainPID')
        socks = {u: unit_prop(u, 'ActiveState') for u in
                 ('sandboxd-vsock.socket', 'sandboxd.socket', 'dbus.socket')}
        assert all(v == 'active' for v in socks.values()), f'sockets: {socks}'
        wait_for(f'{NAME} on the system bus', name_owned, 60)
        return f'{SERVICE} pid {pid}, {NAME} on the system bus, sockets {socks}'

    def peers():
        args, said = start_peers(outdir, procs)
        peer_args.extend(args)
        return said

    def bench():
        argv = [str(BENCH), f'--vsock=vsock:cid=1,port={PORT}', f'--bus={BUS}',
                f'--p2p=unix:path={IO_SOCKET}', f'--sandboxd={conf["sandboxd"]}',
                f'--echo={ECHO}', '--tmpdir=/tmp'] + peer_args + conf['args']
        t = time.monotonic()
        with open(outdir / 'bench.txt', 'w') as out, \
                open(outdir / 'bench-progress.txt', 'w') as err:
            out.write('# ' + ' '.join(argv) + '\n')
            out.flush()
            r = subprocess.run(argv, stdout=out, stderr=err)
        took = time.monotonic() - t
        text = read(outdir / 'bench.txt')
        targets = text.split('== Targets ==')[-1].strip() if '== Targets ==' in text else ''
        assert r.returncode == 0, f'sandbox-bench exited {r.returncode} after {took:.0f} s'
        return f'{took:.0f} s; ' + (targets.splitlines()[-1] if targets else 'no targets')

    ck.check('environment', environment)
    # Measured whatever the daemon step says: a variant that cannot connect says so in its row.
    ck.check('daemon', daemon)
    ck.check('peers', peers)
    ck.check('bench', bench)
    for p in procs:
        p.terminate()
    try:
        with open(outdir / 'journal.txt', 'w') as f:
            f.write(journal('-b', '-o', 'short-monotonic'))
    except OSError:
        pass
    ck.record('done', True, f'took {time.monotonic() - t_start:.1f} s', 0)
    os.sync()


if __name__ == '__main__':
    main(sys.argv[1])
