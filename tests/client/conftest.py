# Fixtures for the sandboxctl tests: a private sandboxd on a temporary socket, and ways to reach it.
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tcpproxy import TcpProxy  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('BUILDDIR', os.path.join(ROOT, 'build'))
SANDBOXD = os.environ.get('SANDBOXD', os.path.join(BUILD, 'src/daemon/sandboxd'))
SANDBOXCTL = os.environ.get('SANDBOXCTL', os.path.join(BUILD, 'src/client/sandboxctl'))


def wait_for(predicate, timeout=10.0, interval=0.05, what='condition'):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for ' + what)
        time.sleep(interval)


class Daemon:
    def __init__(self, sock):
        self.sock = sock
        self.address = 'unix:path=' + sock
        log = open(sock + '.log', 'wb')
        # Its own session: signals sent to the test's process group do not reach it.
        self.proc = subprocess.Popen(
            [SANDBOXD, '--listen=' + self.address, '--no-bus', '--idle-timeout=0'],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_for(lambda: os.path.exists(sock) or self.proc.poll() is not None, what='sandboxd socket')
        assert self.proc.poll() is None, 'sandboxd exited: ' + open(sock + '.log').read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def daemon(tmp_path):
    if not os.access(SANDBOXD, os.X_OK):
        pytest.skip('sandboxd not built: ' + SANDBOXD)
    d = Daemon(str(tmp_path / 'sandboxd.sock'))
    yield d
    d.stop()


@pytest.fixture
def proxy(daemon):
    """A tcp: address for the daemon: a connection that cannot pass fds, so output is relayed."""
    p = TcpProxy(daemon.sock)
    yield p
    p.close()


@pytest.fixture(params=['fds', 'relay'])
def address(request, daemon):
    """Each exec test runs twice: fds passed over the unix socket, and relayed over tcp."""
    if request.param == 'fds':
        return daemon.address
    return request.getfixturevalue('proxy').address


def ctl_argv(address, *args):
    return [SANDBOXCTL, '--address=' + address] + list(args)


def ctl(address, *args, input=b'', timeout=30, **kw):
    return subprocess.run(ctl_argv(address, *args), input=input, capture_output=True, timeout=timeout, **kw)


def list_sessions(address):
    r = ctl(address, 'list')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    return lines[0], lines[1:]
