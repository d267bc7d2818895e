# sandboxctl shell [USER]: the user's login shell from passwd, on a terminal, in their home, with the
# shell's exit status; driven through a real pseudo-terminal.
import fcntl
import os
import pwd
import select
import struct
import subprocess
import termios
import time

import pytest

from conftest import SANDBOXCTL, ctl


class Pty:
    """A program on a new pseudo-terminal that is its controlling terminal, as at a login."""

    def __init__(self, argv, env=None, rows=24, cols=80):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
        try:
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                         start_new_session=True,
                                         preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        finally:
            os.close(slave)
        self.out = b''
        self.eof = False

    def _read(self, timeout):
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:                 # EIO: nobody holds the terminal open any more
            data = b''
        if not data:
            self.eof = True
            return False
        self.out += data
        return True

    def expect(self, marker, timeout=15):
        """Waits until marker (bytes) has been written after what earlier calls consumed; returns
        the output up to and including it."""
        deadline = time.monotonic() + timeout
        while marker not in self.out:
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                raise AssertionError('no %r in %r' % (marker, self.out))
            self._read(left)
        i = self.out.index(marker) + len(marker)
        seen, self.out = self.out[:i], self.out[i:]
        return seen

    def send(self, data):
        os.write(self.master, data)

    def wait(self, timeout=15):
        """Reads to the end of the output; returns the exit status and the rest of the output."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            if not self._read(deadline - time.monotonic()) and self.proc.poll() is not None:
                break
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 1)), self.out

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def pty_run():
    ptys = []

    def start(argv, **kw):
        p = Pty(argv, **kw)
        ptys.append(p)
        return p
    yield start
    for p in ptys:
        p.close()


def env():
    return {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'TERM': 'vt100'}


def test_shell_is_login_shell_in_home(daemon, pty_run):
    me = pwd.getpwuid(os.getuid())
    if not os.path.basename(me.pw_shell).endswith('bash'):
        pytest.skip('the test reads bash\'s login_shell option; the shell here is ' + me.pw_shell)
    p = pty_run([SANDBOXCTL, '--address=' + daemon.address, 'shell'], env=env())
    # Arithmetic, so that the marker is in the output and not in the echo of what was typed.
    p.send(b'echo "SHELL=$SHELL PWD=$(pwd)"; shopt -q login_shell && echo LOGIN-$((6*7)); '
           b'test -t 0 && echo TTY-$((2*3))\r')
    seen = p.expect(b'TTY-6').decode(errors='replace')
    assert 'SHELL=%s PWD=%s\r\n' % (me.pw_shell, me.pw_dir) in seen, seen
    assert 'LOGIN-42' in seen, seen
    p.send(b'exit 5\r')
    rc, _ = p.wait()
    assert rc == 5


def test_shell_user_from_passwd(daemon, pty_run):
    # nobody's passwd entry: a home that does not exist (so /) and nologin as the shell, which says so
    # and exits 1: the shell is the one from passwd, not the caller's nor a fixed one.
    nobody = pwd.getpwnam('nobody')
    if 'nologin' not in nobody.pw_shell:
        pytest.skip('nobody has a real shell here: ' + nobody.pw_shell)
    p = pty_run([SANDBOXCTL, '--address=' + daemon.address, 'shell', 'nobody'], env=env())
    rc, out = p.wait()
    assert rc == 1, out
    assert b'not available' in out, out


def test_shell_usage(daemon):
    r = ctl(daemon.address, 'shell', 'root', 'extra')
    assert r.returncode == 2
    assert b'at most one argument' in r.stderr
    r = ctl(daemon.address, 'shell', '-u', 'root')
    assert r.returncode == 2
    r = ctl(daemon.address, 'shell', 'no-such-user-xyz', input=b'')
    assert r.returncode == 1
    assert b'NoSuchUser' in r.stderr
