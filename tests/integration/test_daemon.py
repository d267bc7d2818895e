# SPDX-License-Identifier: LGPL-2.1-or-later
"""The sandboxd command line: --idle-timeout, sd_notify, socket activation
(api.md, "sandboxd command line")."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from sandbox_client import SandboxClient, wait_until
from conftest import SANDBOXD


def test_idle_timeout(harness):
    harness.expect_exit = True
    harness.start(idle_timeout=1)
    c = harness.client()
    sid, pid = c.exec(['/bin/sleep', '2.5'])
    time.sleep(1.5)
    assert harness.alive(), 'exited while a session was running'
    r = c.collect(sid, timeout=5)
    assert (r.code, r.signal) == (0, 0)
    if not harness.is_bus:
        # On the bus, whether a connected caller without sessions keeps the
        # daemon is not pinned down (bus activation restarts it); on a
        # p2p socket the connection itself is the client.
        time.sleep(1.5)
        assert harness.alive(), 'exited while a client was connected'
    c.close()
    harness.clients.remove(c)
    assert wait_until(lambda: not harness.alive(), 5, 0.05), \
        'did not exit after being idle for --idle-timeout'
    assert harness.daemon.returncode == 0, harness.log()


def test_idle_exit_when_a_session_outlives_its_client(harness):
    """The client leaves right after Exec, its session ends later (busctl's way): the daemon is
    idle once the session has ended, and exits. (Since ended sessions are kept as records, the end
    itself had stopped counting as a change that may make the daemon idle.)"""
    harness.expect_exit = True
    harness.start(idle_timeout=1)
    c = harness.client()
    c.exec(['/bin/sleep', '0.5'])
    c.close()
    harness.clients.remove(c)
    assert wait_until(lambda: not harness.alive(), 6, 0.05), \
        'did not exit after its last session ended and --idle-timeout passed'
    assert harness.daemon.returncode == 0, harness.log()


def test_no_idle_exit_with_zero(p2p_harness):
    p2p_harness.start(idle_timeout=0)
    time.sleep(1.5)
    assert p2p_harness.alive()


@pytest.mark.parametrize('transport', ['bus', 'p2p'])
def test_sd_notify_ready_and_status(transport):
    """READY=1 and a STATUS= line go to $NOTIFY_SOCKET."""
    from conftest import Harness
    h = Harness(transport)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        path = str(h.tmp / 'notify')
        sock.bind(path)
        sock.settimeout(0.2)
        h.start(env={'NOTIFY_SOCKET': path})
        msgs = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = '\n'.join(msgs)
            if 'READY=1' in text and 'STATUS=' in text:
                break
            try:
                msgs.append(sock.recv(4096).decode())
            except socket.timeout:
                pass
        text = '\n'.join(msgs)
        assert 'READY=1' in text, msgs
        assert 'STATUS=' in text, msgs
        status = [l for m in msgs for l in m.split('\n') if l.startswith('STATUS=')]
        assert all('\n' not in s for s in status)
    finally:
        sock.close()
        h.stop()


@pytest.mark.skipif(not shutil.which('systemd-socket-activate'),
                    reason='systemd-socket-activate not installed')
def test_socket_activation(tmpdir_public):
    """With LISTEN_FDS (as sandboxd.socket passes) it serves p2p D-Bus on
    every accepted connection."""
    if not os.access(SANDBOXD, os.X_OK):
        pytest.skip(f'sandboxd not built: {SANDBOXD}')
    path = tmpdir_public / 'activated.socket'
    proc = subprocess.Popen(
        ['systemd-socket-activate', '-l', str(path),
         '-E', f'DBUS_SYSTEM_BUS_ADDRESS=unix:path={tmpdir_public}/no-bus',
         SANDBOXD, '--no-bus', '--idle-timeout=0'],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        assert wait_until(path.exists, 5), 'systemd-socket-activate did not listen'
        c1 = SandboxClient.open(f'unix:path={path}', bus=False)
        c2 = SandboxClient.open(f'unix:path={path}', bus=False)
        r1 = c1.run(['/bin/echo', 'activated'], timeout=5)
        r2 = c2.run(['/bin/echo', 'second'], timeout=5)
        assert r1.stdout == b'activated\n' and r2.stdout == b'second\n'
        c1.close()
        c2.close()
        c3 = SandboxClient.open(f'unix:path={path}', bus=False)
        assert c3.run(['/bin/true'], timeout=5).code == 0
        c3.close()
        assert proc.poll() is None, 'daemon exited'
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out = proc.stdout.read().decode(errors='replace')
        proc.stdout.close()
        print(out)
