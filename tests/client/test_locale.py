# sandboxctl exec -t passes the locale (LANG, LC_*) and COLORTERM on, as ssh's default SendEnv does:
# only those, never a value that names a file, and never without a terminal.
import os
import select
import shutil
import subprocess
import tempfile

import pytest

from conftest import SANDBOXCTL, Daemon, ctl

# What the command prints: its variables that sandboxctl could have passed on, one per line.
SHOW = ['--', 'sh', '-c', 'env | grep -E "^(LANG|LANGUAGE|LC_[A-Z_]*|COLORTERM|TZ|NO_COLOR|FOO)=" | sort; '
        'echo END']


def local_env(**extra):
    """A clean environment for sandboxctl: nothing locale-ish but what the test sets."""
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'TERM': 'vt100'}
    env.update(extra)
    return env


def run_on_pty(argv, env, timeout=30, **kw):
    """Runs argv with stdin, stdout and stderr on a new pseudo-terminal, as at a real one; returns its
    exit status and what it wrote there, line ends as a terminal gives them ("\\r\\n" → "\\n")."""
    master, slave = os.openpty()
    try:
        p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                             start_new_session=True, **kw)
    finally:
        os.close(slave)
    out = b''
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            assert ready, 'no output within %d s: %r' % (timeout, out)
            try:
                data = os.read(master, 65536)
            except OSError:             # EIO: the last holder of the terminal has closed it
                break
            if not data:
                break
            out += data
        rc = p.wait(timeout=timeout)
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, out.decode(errors='replace').replace('\r\n', '\n')


def shown(out):
    lines = out.splitlines()
    assert 'END' in lines, out
    return lines[:lines.index('END')]


def test_locale_passed(daemon):
    env = local_env(LANG='C.UTF-8', LC_ALL='C.UTF-8', LC_MESSAGES='POSIX', COLORTERM='truecolor',
                    LANGUAGE='de:en', TZ='UTC', NO_COLOR='1', FOO='bar')
    rc, out = run_on_pty([SANDBOXCTL, '--address=' + daemon.address, 'exec', '-t'] + SHOW, env)
    assert rc == 0, out
    # Only LANG, LC_* and COLORTERM: not LANGUAGE, TZ, NO_COLOR (ssh's default SendEnv has none of
    # them) nor anything else.
    assert shown(out) == ['COLORTERM=truecolor', 'LANG=C.UTF-8', 'LC_ALL=C.UTF-8', 'LC_MESSAGES=POSIX']


def test_locale_not_passed_without_tty(daemon):
    env = local_env(LANG='C.UTF-8', LC_ALL='C.UTF-8', COLORTERM='truecolor')
    r = ctl(daemon.address, 'exec', *SHOW, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == ['END']


def test_env_option_wins(daemon):
    env = local_env(LANG='C.UTF-8', COLORTERM='truecolor')
    rc, out = run_on_pty([SANDBOXCTL, '--address=' + daemon.address, 'exec', '-t', '-e', 'LANG=POSIX']
                         + SHOW, env)
    assert rc == 0, out
    assert shown(out) == ['COLORTERM=truecolor', 'LANG=POSIX']


def test_value_naming_a_file_skipped(daemon):
    # glibc loads such a locale from the path: the daemon refuses it for a command run as another
    # user. Left out, the command still runs with the rest.
    env = local_env(LANG='/tmp/evil-locale', LC_CTYPE='../../x/y', LC_TIME='C.UTF-8', COLORTERM='a/b')
    rc, out = run_on_pty([SANDBOXCTL, '--address=' + daemon.address, 'exec', '-t'] + SHOW, env)
    assert rc == 0, out
    assert shown(out) == ['LC_TIME=C.UTF-8']


def test_value_not_utf8_skipped(daemon):
    # A D-Bus string must be UTF-8: such a value cannot be sent, and must not stop the command.
    env = local_env(LANG=b'de_DE.\xff\xfe'.decode('utf-8', 'surrogateescape'), LC_TIME='C.UTF-8')
    rc, out = run_on_pty([SANDBOXCTL, '--address=' + daemon.address, 'exec', '-t'] + SHOW, env)
    assert rc == 0, out
    assert shown(out) == ['LC_TIME=C.UTF-8']


@pytest.fixture
def shared_daemon():
    """A daemon whose socket anyone may connect to, for a caller that is not root."""
    if not os.access(SANDBOXCTL, os.X_OK) or os.geteuid() != 0:
        pytest.skip('needs root to run sandboxctl as another user')
    d = tempfile.mkdtemp(prefix='sandboxd-locale-')
    os.chmod(d, 0o755)
    daemon = Daemon(os.path.join(d, 'sandboxd.sock'))
    os.chmod(daemon.sock, 0o666)
    yield daemon
    daemon.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_value_naming_a_file_as_another_user(shared_daemon):
    # For a command run as another user, the daemon answers InvalidArgs to a LANG with a '/' before it
    # even asks whether the caller may: here (peer-to-peer, not root) the answer must be AccessDenied,
    # which shows the value was not sent.
    env = local_env(LANG='/tmp/evil-locale', LC_ALL='C.UTF-8')
    argv = [SANDBOXCTL, '--address=' + shared_daemon.address, 'exec', '-t', '-u', 'root', '--', 'true']
    rc, out = run_on_pty(argv, env, user=65534, group=65534, extra_groups=[])
    assert rc == 1, out
    assert 'AccessDenied' in out and 'InvalidArgs' not in out, out
