# sandboxctl exec without a terminal: streams, exit statuses, options, errors, signals, lost connections.
import os
import signal
import subprocess
import time

from conftest import ctl, ctl_argv, list_sessions, wait_for


def test_echo(address):
    r = ctl(address, 'exec', 'echo', 'hello', 'world')
    assert (r.returncode, r.stdout, r.stderr) == (0, b'hello world\n', b'')


def test_binary_round_trip(address):
    data = bytes(range(256)) * 64 + os.urandom(2 * 1024 * 1024) + b'\0\n\r\x03\x04'
    r = ctl(address, 'exec', 'cat', input=data, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


def test_input_to_a_slow_reader(address):
    # The daemon queues only so much stdin: sandboxctl waits and resends, losing nothing.
    data = os.urandom(3 * 1024 * 1024)
    r = ctl(address, 'exec', 'sh', '-c', 'sleep 2; cat', input=data, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


def test_stdin_eof(address):
    r = ctl(address, 'exec', 'wc', '-c', input=b'')
    assert (r.returncode, r.stdout.strip()) == (0, b'0')
    r = ctl(address, 'exec', 'cat', input=None, stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stdout) == (0, b'')


def test_stderr_separate(address):
    r = ctl(address, 'exec', 'sh', '-c', 'echo out; echo err >&2; echo out2')
    assert (r.returncode, r.stdout, r.stderr) == (0, b'out\nout2\n', b'err\n')


def test_exit_status(address):
    assert ctl(address, 'exec', 'sh', '-c', 'exit 3').returncode == 3
    assert ctl(address, 'exec', 'false').returncode == 1
    assert ctl(address, 'exec', 'sh', '-c', 'exit 255').returncode == 255


def test_killed_by_signal(address):
    assert ctl(address, 'exec', 'sh', '-c', 'kill -TERM $$').returncode == 143
    assert ctl(address, 'exec', 'sh', '-c', 'kill -KILL $$').returncode == 137


def test_not_found(address):
    r = ctl(address, 'exec', 'no-such-command-xyz', 'arg')
    assert r.returncode == 127
    assert r.stdout == b''
    assert r.stderr == b"sandboxctl: failed to run 'no-such-command-xyz': No such file or directory (NotFound)\n"


def test_not_executable(address, tmp_path):
    f = tmp_path / 'script'
    f.write_text('#!/bin/sh\necho hi\n')
    f.chmod(0o644)
    r = ctl(address, 'exec', str(f))
    assert r.returncode == 126
    assert r.stderr.count(b'\n') == 1
    assert r.stderr.startswith(b"sandboxctl: failed to run '%s': " % str(f).encode())
    assert r.stderr.endswith(b'(PermissionDenied)\n')


def test_invalid_args_one_line(address):
    r = ctl(address, 'exec', '--cwd=relative/dir', 'true')
    assert r.returncode == 1
    assert r.stderr.count(b'\n') == 1
    assert r.stderr.startswith(b"sandboxctl: failed to run 'true': ")
    assert b'cwd' in r.stderr and r.stderr.endswith(b'(InvalidArgs)\n')


def test_bad_cwd(address):
    r = ctl(address, 'exec', '--cwd=/no/such/dir', 'true')
    assert r.returncode == 1
    assert r.stderr.count(b'\n') == 1 and r.stderr.endswith(b'(BadCwd)\n')


def test_options(address, tmp_path):
    r = ctl(address, 'exec', '-e', 'FOO=bar baz', '--env=EMPTY=', '--cwd=' + str(tmp_path),
            '--rlimit=nofile=100:200', '--rlimit=CORE=0', '--',
            'sh', '-c', 'echo "$FOO|$EMPTY|$(pwd)|$(ulimit -Sn)|$(ulimit -Hn)|$(ulimit -c)"')
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == 'bar baz||%s|100|200|0\n' % tmp_path


def test_rlimit_infinity(address):
    r = ctl(address, 'exec', '--rlimit=cpu=100:infinity', '--rlimit=RLIMIT_CORE=unlimited',
            'sh', '-c', 'ulimit -St; ulimit -Ht; ulimit -Sc')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b'100', b'unlimited', b'unlimited']


def test_rlimit_past_nr_open(address):
    # The kernel refuses nofile past fs.nr_open: the daemon says so up front (issue 15, item 11),
    # on one line that names the limit.
    r = ctl(address, 'exec', '--rlimit=nofile=infinity', 'true')
    assert r.returncode == 1
    assert r.stderr.startswith(b"sandboxctl: failed to run 'true': Invalid 'rlimits': 'nofile' cannot be above ")
    assert b'fs.nr_open' in r.stderr and r.stderr.endswith(b' (InvalidArgs)\n') and r.stderr.count(b'\n') == 1


def test_options_end_at_command(address):
    r = ctl(address, 'exec', 'printf', '%s|', '-e', '--tty', '-u')
    assert (r.returncode, r.stdout) == (0, b'-e|--tty|-u|')


def test_timeout(address):
    start = time.monotonic()
    r = ctl(address, 'exec', '--timeout=0.5', 'sleep', '10')
    assert r.returncode == 128 + signal.SIGKILL
    assert time.monotonic() - start < 5


def test_profile(address):
    assert ctl(address, 'exec', '--profile=restricted', 'true').returncode == 0
    r = ctl(address, 'exec', '--profile=bogus', 'true')
    assert r.returncode == 1 and r.stderr.endswith(b'(InvalidArgs)\n')


def test_user(address):
    r = ctl(address, 'exec', '-u', 'nobody', 'id', '-un')
    assert (r.returncode, r.stdout) == (0, b'nobody\n')
    r = ctl(address, 'exec', '--user=no-such-user-xyz', 'true')
    assert r.returncode == 1 and r.stderr.endswith(b'(NoSuchUser)\n')


def test_sigterm_is_forwarded(daemon, address):
    p = subprocess.Popen(ctl_argv(address, 'exec', 'sleep', '30'))
    wait_for(lambda: list_sessions(daemon.address)[1], what='the session')
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 143
    wait_for(lambda: not list_sessions(daemon.address)[1], what='the session to end')


def test_closed_stdout_is_sigpipe(address):
    # A reader that goes away: like a local command, the remote one dies of SIGPIPE.
    p = subprocess.Popen(ctl_argv(address, 'exec', 'yes'), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(100000)
    p.stdout.close()
    assert p.wait(timeout=20) == 128 + signal.SIGPIPE
    assert p.stderr.read() == b''


def test_lost_connection(daemon, proxy):
    p = subprocess.Popen(ctl_argv(proxy.address, 'exec', 'sleep', '30'), stderr=subprocess.PIPE)
    wait_for(lambda: list_sessions(daemon.address)[1], what='the session')
    proxy.break_connections()
    assert p.wait(timeout=10) == 255
    err = p.stderr.read()
    assert err.count(b'\n') == 1 and err.startswith(b'sandboxctl: lost the connection')
    # The daemon ends a session whose connection went away.
    wait_for(lambda: not list_sessions(daemon.address)[1], what='the session to end')


WARNING = b'sandboxctl: Pseudo-terminal will not be allocated because stdin is not a terminal (-tt forces one).\n'


def test_tty_without_terminal(address):
    # As ssh: -t with stdin not a terminal warns and runs on pipes, so piped bytes are data, not keys.
    r = ctl(address, 'exec', '-t', '--', 'cat', input=b'a\x03b\x04c\n')
    assert (r.returncode, r.stdout, r.stderr) == (0, b'a\x03b\x04c\n', WARNING)
    r = ctl(address, 'exec', '--tty', '--', 'sh', '-c', 'test -t 0 || test -t 1 || echo no-tty', input=b'')
    assert (r.returncode, r.stdout, r.stderr) == (0, b'no-tty\n', WARNING)


def test_tty_forced(address):
    # -tt (or -t -t) insists: a PTY, without the warning, and the bytes are typed into it.
    for tt in (['-tt'], ['-t', '-t'], ['--tty', '--tty']):
        r = ctl(address, 'exec', *tt, '--', 'sh', '-c', 'test -t 0 && test -t 1 && echo on-a-tty', input=b'')
        assert (r.returncode, r.stdout, r.stderr) == (0, b'on-a-tty\r\n', b''), tt
    # 0x03 is Ctrl-C on a terminal: cat gets SIGINT.
    r = ctl(address, 'exec', '-tt', '--', 'cat', input=b'a\x03b\n')
    assert r.returncode == 128 + signal.SIGINT, r.stderr
