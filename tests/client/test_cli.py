# sandboxctl's command line: help, version, usage errors, list and signal.
import re
import signal
import subprocess

from conftest import SANDBOXCTL, ctl, ctl_argv, list_sessions, wait_for

USAGE = re.compile(rb'^Usage: sandboxctl ', re.M)


def run(*args):
    return subprocess.run([SANDBOXCTL] + list(args), capture_output=True, timeout=10)


def test_help():
    r = run('--help')
    assert r.returncode == 0
    for word in (b'exec', b'list', b'signal', b'--address', b'--tty', b'--rlimit'):
        assert word in r.stdout
    assert r.stderr == b''
    assert run('exec', '--help').returncode == 0


def test_version():
    r = run('--version')
    assert r.returncode == 0
    assert re.fullmatch(rb'sandboxctl \S+\n', r.stdout)


def test_usage_errors():
    for args in (['--bogus'], ['-x'], [], ['bogus-verb'], ['--address'], ['exec'],
                 ['exec', '--bogus', 'true'], ['exec', '--rlimit=nofile', 'true'], ['exec', '-e', 'NOEQ', 'true'],
                 ['exec', '--timeout=soon', 'true'], ['list', 'extra'], ['signal', '1'],
                 ['signal', 'x', 'TERM'], ['signal', '1', 'NOSUCHSIGNAL']):
        r = run(*args)
        assert r.returncode == 2, args
        assert USAGE.search(r.stderr), args
        assert r.stderr.startswith(b'sandboxctl: '), args
        assert r.stdout == b'', args


def test_connect_failure(tmp_path):
    r = run('--address=unix:path=' + str(tmp_path / 'none'), 'list')
    assert r.returncode == 1
    assert r.stderr.count(b'\n') == 1 and r.stderr.startswith(b'sandboxctl: failed to connect')


def test_list(daemon):
    header, rows = list_sessions(daemon.address)
    assert header.split() == ['ID', 'PID', 'USER', 'COMMAND']
    assert rows == []

    procs = [subprocess.Popen(ctl_argv(daemon.address, 'exec', 'sleep', '30')),
             subprocess.Popen(ctl_argv(daemon.address, 'exec', 'sh', '-c', 'sleep 30; echo "a b"', "it's"))]
    try:
        header, rows = wait_for(lambda: (lambda h, r: (h, r) if len(r) == 2 else None)(
            *list_sessions(daemon.address)), what='two sessions')
        assert sorted(r.split(None, 3)[3] for r in rows) == [
            '''sh -c 'sleep 30; echo "a b"' 'it'\\''s\'''', 'sleep 30']
        # Aligned: every column starts where its header does.
        user_col = header.index('USER')
        command_col = header.index('COMMAND')
        for row in rows:
            assert row[user_col:].startswith('root ')
            assert row[command_col - 1] == ' ' and row[command_col] != ' '
        ids = [int(r.split()[0]) for r in rows]
        assert ids == sorted(ids)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def start_and_find(daemon):
    p = subprocess.Popen(ctl_argv(daemon.address, 'exec', 'sleep', '30'))
    _, rows = wait_for(lambda: (lambda h, r: (h, r) if r else None)(*list_sessions(daemon.address)),
                       what='a session')
    return p, rows[0].split()[0]


def test_signal_by_name_and_number(daemon):
    for name, sig in (('TERM', signal.SIGTERM), ('SIGINT', signal.SIGINT), ('kill', signal.SIGKILL),
                      ('sigusr1', signal.SIGUSR1), ('9', signal.SIGKILL), ('15', signal.SIGTERM),
                      ('RTMIN+1', signal.SIGRTMIN + 1)):
        p, sid = start_and_find(daemon)
        r = ctl(daemon.address, 'signal', sid, name)
        assert r.returncode == 0, (name, r.stderr)
        assert p.wait(timeout=10) == 128 + sig, name


def test_signal_unknown_session(daemon):
    r = ctl(daemon.address, 'signal', '4242', 'TERM')
    assert r.returncode == 1
    assert r.stderr == b'sandboxctl: failed to send signal TERM to session 4242: No such session (NoSuchSession)\n'
