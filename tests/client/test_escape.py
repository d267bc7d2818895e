# sandboxctl exec -t's escape keys, as ssh's: ~. (disconnect), ~? (help), ~~ (a ~), only at the start of
# a line; --escape=CHAR|none. Driven through a real pseudo-terminal (and once in tmux).
import os
import shutil
import signal
import time

import pytest

from conftest import SANDBOXCTL, ctl, list_sessions, wait_for
from test_shell import env, pty_run  # noqa: F401 (pty_run is a fixture)

# Reads lines and shows each, so the test sees what reached the command; stays for more.
READER = ['--', 'sh', '-c', 'while read -r line; do echo "GOT:$line"; done; echo "EOF"; sleep 100']


def start(pty_run, daemon, *args):
    return pty_run([SANDBOXCTL, '--address=' + daemon.address] + list(args), env=env())


def test_disconnect_after_enter(daemon, pty_run):
    p = start(pty_run, daemon, 'exec', '-t', *READER)
    p.send(b'first\r')
    p.expect(b'GOT:first')
    t = time.monotonic()
    p.send(b'~.')
    rc, out = p.wait()
    assert rc == 255, out
    assert time.monotonic() - t < 5
    assert b'disconnected' in out, out
    # The session's owner went away: it is hung up and ends.
    wait_for(lambda: list_sessions(daemon.address)[1] == [], what='the session to end')


def test_escape_only_at_line_start(daemon, pty_run):
    p = start(pty_run, daemon, 'exec', '-t', *READER)
    p.send(b'a~.b\r')
    p.expect(b'GOT:a~.b')
    # First of all (nothing typed yet counts as the start of a line), and after Enter: "~~" is one ~.
    p.send(b'~~x\r')
    p.expect(b'GOT:~x')
    # A ~ before anything but '.', '?' or '~' goes out as it is, with what follows.
    p.send(b'~z\r')
    p.expect(b'GOT:~z')
    # Any other key ends the start of a line: Ctrl-D here (EOF for read) makes "~." data.
    p.send(b'\x04~.\r')
    p.expect(b'EOF')
    p.send(b'\r~.')
    rc, _ = p.wait()
    assert rc == 255


def test_escape_first_key(daemon, pty_run):
    p = start(pty_run, daemon, 'exec', '-t', '--', 'sh', '-c', 'read -r line; echo "GOT:$line"')
    p.send(b'~.')
    rc, out = p.wait()
    assert rc == 255, out
    assert b'GOT:' not in out


def test_escape_help(daemon, pty_run):
    p = start(pty_run, daemon, 'exec', '-t', *READER)
    p.send(b'~?')
    p.expect(b'Supported escape sequences:')
    p.expect(b'~.')
    p.expect(b'immediately after newline')
    # Still at the start of a line: another escape works, and the help itself was not sent.
    p.send(b'~~hello\r')
    p.expect(b'GOT:~hello\r\n')
    p.send(b'~.')
    rc, _ = p.wait()
    assert rc == 255


def test_escape_none(daemon, pty_run):
    p = start(pty_run, daemon, 'exec', '-t', '--escape=none', '--', 'sh', '-c',
              'read -r line; echo "GOT:$line"; exit 3')
    p.send(b'~.\r')
    p.expect(b'GOT:~.')
    rc, _ = p.wait()
    assert rc == 3


def test_escape_other_char(daemon, pty_run):
    p = start(pty_run, daemon, 'exec', '-t', '--escape=%', *READER)
    p.send(b'~.\r')
    p.expect(b'GOT:~.')
    p.send(b'%%\r')
    p.expect(b'GOT:%')
    p.send(b'%.')
    rc, _ = p.wait()
    assert rc == 255


def test_escape_control_char(daemon, pty_run):
    # ^] as telnet's: the byte 0x1d.
    p = start(pty_run, daemon, 'exec', '-t', '--escape=^]', *READER)
    p.send(b'~.\r')
    p.expect(b'GOT:~.')
    p.send(b'\x1d.')
    rc, _ = p.wait()
    assert rc == 255


def test_no_escape_without_tty(daemon, pty_run):
    # Without -t the keys are the command's data, as ssh -T's.
    p = start(pty_run, daemon, 'exec', '--', 'sh', '-c', 'read -r line; echo "GOT:$line"')
    p.send(b'~.\n')
    p.expect(b'GOT:~.')
    rc, _ = p.wait()
    assert rc == 0


def test_shell_escape(daemon, pty_run):
    p = start(pty_run, daemon, 'shell')
    p.send(b'echo READY-$((6*7))\r')
    p.expect(b'READY-42')
    p.send(b'\r~.')
    rc, _ = p.wait()
    assert rc == 255


def test_disconnect_from_hung_daemon(daemon, pty_run):
    # The daemon stops answering (SIGSTOP): what is typed can no longer be sent, yet ~. still ends
    # sandboxctl at once, without waiting for the queued input to go out.
    p = start(pty_run, daemon, 'exec', '-t', *READER)
    p.send(b'first\r')
    p.expect(b'GOT:first')
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        p.send(b'stuck\r' + b'x' * 1000 + b'\r')
        time.sleep(0.3)
        t = time.monotonic()
        p.send(b'~.')
        rc, out = p.wait(timeout=10)
        assert rc == 255, out
        assert time.monotonic() - t < 5
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)


def test_escape_usage(daemon):
    assert ctl(daemon.address, 'run', '--escape=none', '--', 'true').returncode == 2
    r = ctl(daemon.address, 'exec', '--escape=ab', '--', 'true')
    assert r.returncode == 2
    assert b'invalid escape character' in r.stderr
    assert ctl(daemon.address, 'exec', '--escape=none', '--', 'true').returncode == 0


@pytest.mark.skipif(not shutil.which('tmux'), reason='tmux not installed')
def test_disconnect_in_tmux(daemon, tmp_path):
    from test_tty import Tmux
    term = Tmux(tmp_path)
    try:
        term.start(daemon.address, '--', 'bash', '--norc')
        term.run('echo READY-$((40+2))', 'READY-42')
        term.send('Enter')
        term.send('~.')
        assert term.exit_status() == 255
        # The terminal is restored, and the message is on it.
        assert term.settings('before').splitlines()[1:] == term.settings('after').splitlines()[1:]
        assert 'sandboxctl: disconnected' in term.screen()
    finally:
        term.kill()
