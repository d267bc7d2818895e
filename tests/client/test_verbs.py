# sandboxctl's verbs on Run and session objects: run, status, wait, kill, terminate, list --json.
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import SANDBOXCTL, ctl, ctl_argv, wait_for

USAGE = re.compile(rb'^Usage: sandboxctl ', re.M)


def sessions(address):
    r = ctl(address, 'list', '--json')
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b'\n') and r.stdout.count(b'\n') == 1
    return json.loads(r.stdout)


def start(daemon, *args):
    """A session owned by a sandboxctl exec, which stays connected; returns (process, session id)."""
    before = {s['Id'] for s in sessions(daemon.address)}
    p = subprocess.Popen(ctl_argv(daemon.address, 'exec', *args), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    new = wait_for(lambda: [s for s in sessions(daemon.address) if s['Id'] not in before], what='the session')
    assert len(new) == 1
    return p, new[0]['Id']


def status_json(address, sid):
    r = ctl(address, 'status', '--json', str(sid))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(b'\n') == 1
    return json.loads(r.stdout)


def stop(p):
    if p.poll() is None:
        p.kill()
    p.communicate(timeout=10)


# --- run ---

def test_run_binary_output(address, tmp_path):
    data = bytes(range(256)) * 16 + os.urandom(300 * 1024) + b'\0\r\n\x03'
    f = tmp_path / 'blob'
    f.write_bytes(data)
    r = ctl(address, 'run', 'sh', '-c', 'cat "$1"; printf "to\\0err" >&2', 'sh', str(f), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    assert r.stderr == b'to\0err'


def test_run_exit_status(address):
    r = ctl(address, 'run', 'sh', '-c', 'echo out; echo err >&2; exit 3')
    assert (r.returncode, r.stdout, r.stderr) == (3, b'out\n', b'err\n')
    assert ctl(address, 'run', 'true').returncode == 0
    assert ctl(address, 'run', 'sh', '-c', 'exit 255').returncode == 255
    # Killed by signal N: 128+N, as exec; a signal it sent itself is no end reason worth a note.
    r = ctl(address, 'run', 'sh', '-c', 'kill -TERM $$')
    assert (r.returncode, r.stderr) == (143, b'')


def test_run_stdin(address):
    data = os.urandom(200 * 1024) + b'\0\x04\n'
    r = ctl(address, 'run', 'cat', input=data, timeout=60)
    assert (r.returncode, r.stdout) == (0, data), r.stderr
    r = ctl(address, 'run', '--', 'sh', '-c', 'tr a-z A-Z; exit 4', input=b'hello\n')
    assert (r.returncode, r.stdout) == (4, b'HELLO\n')
    r = ctl(address, 'run', 'wc', '-c', input=None, stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stdout.strip()) == (0, b'0')


def test_run_stdin_terminal(daemon):
    # Nobody types into run's command: a terminal on stdin is end of file at once, not a hang.
    master, slave = os.openpty()
    try:
        r = subprocess.run(ctl_argv(daemon.address, 'run', 'sh', '-c', 'cat; test -t 0 || echo no-tty'),
                           stdin=slave, capture_output=True, timeout=20)
    finally:
        os.close(slave)
        os.close(master)
    assert (r.returncode, r.stdout, r.stderr) == (0, b'no-tty\n', b'')


def test_run_stdin_too_large_relayed(proxy):
    # Without fd passing stdin goes in the call, which takes 1 MiB; more is refused before anything runs.
    r = ctl(proxy.address, 'run', 'cat', input=b'x' * (1024 * 1024 + 1), timeout=60)
    assert r.returncode == 1 and r.stdout == b''
    assert r.stderr.count(b'\n') == 1 and b'standard input is larger than 1048576 bytes' in r.stderr
    r = ctl(proxy.address, 'run', 'wc', '-c', input=b'x' * (1024 * 1024), timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, b'1048576')


def test_run_large_stdin_streams_with_fds(daemon):
    # Where fds pass, stdin is handed over and may be larger than stdin-data could be.
    data = os.urandom(3 * 1024 * 1024)
    r = ctl(daemon.address, 'run', 'sh', '-c', 'wc -c', input=data, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, b'3145728'), r.stderr


def test_run_timeout(address):
    start_time = time.monotonic()
    r = ctl(address, 'run', '--timeout=0.5', 'sh', '-c', 'echo before; exec sleep 10')
    assert r.returncode == 128 + signal.SIGKILL
    assert time.monotonic() - start_time < 5
    assert r.stdout == b'before\n'
    assert r.stderr == b"sandboxctl: 'sh' ended: timeout\n"


def test_run_max_output(address):
    r = ctl(address, 'run', '--max-output=1K', 'sh', '-c', 'head -c 5000 /dev/zero; echo e >&2')
    assert r.returncode == 0
    assert r.stdout == b'\0' * 1024
    assert r.stderr == b"e\nsandboxctl: 'sh' wrote 5000 bytes to stdout, only the first 1024 are shown (--max-output=)\n"
    r = ctl(address, 'run', '--max-output=17M', 'true')
    assert r.returncode == 1 and b'max-output' in r.stderr and r.stderr.endswith(b'(InvalidArgs)\n')


def test_run_options(address):
    r = ctl(address, 'run', '-e', 'FOO=bar', '--cwd=/usr', '--profile=restricted', '-u', 'nobody',
            '--tag=t', '--', 'sh', '-c', 'echo "$FOO|$(pwd)|$(id -un)"')
    assert (r.returncode, r.stdout.decode()) == (0, 'bar|/usr|nobody\n'), r.stderr


def test_run_errors(address):
    r = ctl(address, 'run', 'no-such-command-xyz')
    assert r.returncode == 127
    assert r.stderr == b"sandboxctl: failed to run 'no-such-command-xyz': No such file or directory (NotFound)\n"
    for args in (['run'], ['run', '-t', 'true'], ['run', '--tty', 'true'], ['run', '--max-output=lots', 'true'],
                 ['exec', '--max-output=1', 'true']):
        r = ctl(address, *args)
        assert r.returncode == 2, args
        assert r.stderr.startswith(b'sandboxctl: ') and USAGE.search(r.stderr), args
    r = ctl(address, 'run', '-t', 'true')
    assert b'run cannot use a terminal' in r.stderr


def test_run_is_a_session(daemon):
    # While Run runs, the session is listed and can be told apart by its tag.
    p = subprocess.Popen(ctl_argv(daemon.address, 'run', '--tag=mine', 'sh', '-c', 'echo x; sleep 30'),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        s = wait_for(lambda: sessions(daemon.address), what='the session')[0]
        assert status_json(daemon.address, s['Id'])['Tag'] == 'mine'
        assert ctl(daemon.address, 'kill', str(s['Id'])).returncode == 0
        out, err = p.communicate(timeout=10)
        assert (p.returncode, out, err) == (143, b'x\n', b"sandboxctl: 'sh' ended: killed\n")
    finally:
        stop(p)


# --- status ---

def test_status_running_and_ended(daemon, tmp_path):
    p, sid = start(daemon, '--tag=build 1', '--cwd=' + str(tmp_path), 'sh', '-c', 'read x; echo "$x"; exit 7')
    try:
        r = ctl(daemon.address, 'status', str(sid))
        assert r.returncode == 0, r.stderr
        text = r.stdout.decode()
        lines = text.splitlines()
        assert lines[0] == "Session %d: sh -c 'read x; echo \"$x\"; exit 7'" % sid
        assert re.search(r'^ +State: running since \w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d .*; .* ago$', text, re.M)
        assert re.search(r'^ +User: root \(uid 0, gid 0\)$', text, re.M)
        assert re.search(r'^ +Cwd: %s$' % re.escape(str(tmp_path)), text, re.M)
        assert re.search(r'^ +Tag: build 1$', text, re.M)
        assert re.search(r'^ +TTY: no$', text, re.M)
        assert not re.search(r'^ +(Status|Started):', text, re.M) and '(exited)' not in text

        j = status_json(daemon.address, sid)
        assert list(j)[:24] == ['Id', 'PID', 'UID', 'GID', 'User', 'Argv', 'Cwd', 'TTY', 'Profile', 'Tag', 'Owner',
                                'State', 'StartTimestamp', 'EndTimestamp', 'EndReason', 'ExitCode', 'ExitSignal',
                                'Detachable', 'Detached', 'OutputOffset', 'ControlGroup', 'CPUUsageNSec',
                                'MemoryPeak', 'TasksCurrent']
        assert j['Id'] == sid and j['State'] == 'running' and j['EndReason'] == ''
        assert (j['ExitCode'], j['ExitSignal'], j['EndTimestamp']) == (-1, 0, 0)
        assert j['Argv'] == ['sh', '-c', 'read x; echo "$x"; exit 7']
        assert (j['Tag'], j['Cwd'], j['User'], j['UID'], j['TTY']) == ('build 1', str(tmp_path), 'root', 0, False)
        assert abs(j['StartTimestamp'] / 1e6 - time.time()) < 60
        assert re.search(r'^ +PID: %d$' % j['PID'], text, re.M)
        for counter in ('CPUUsageNSec', 'MemoryPeak', 'TasksCurrent'):
            assert j[counter] is None or isinstance(j[counter], int)

        pretty = ctl(daemon.address, 'status', '--json=pretty', str(sid))
        assert pretty.returncode == 0 and pretty.stdout.count(b'\n') > 24
        assert json.loads(pretty.stdout)['Id'] == sid

        out, _ = p.communicate(b'hello\n', timeout=10)
        assert (p.returncode, out) == (7, b'hello\n')

        # The record of the end is kept after the owner went away.
        j = status_json(daemon.address, sid)
        assert (j['State'], j['EndReason'], j['ExitCode'], j['ExitSignal']) == ('ended', 'exited', 7, 0)
        assert j['EndTimestamp'] >= j['StartTimestamp'] > 0
        assert isinstance(j['OutputOffset'], int)  # 0 here: the output went through a passed fd
        text = ctl(daemon.address, 'status', str(sid)).stdout.decode()
        assert re.search(r'^ +State: ended \(exited\) since .*; .* ago$', text, re.M)
        assert re.search(r'^ +Started: .*; ran .*$', text, re.M)
        assert re.search(r'^ +Status: exited with status 7$', text, re.M)
    finally:
        stop(p)


def test_status_killed(daemon):
    p, sid = start(daemon, 'sleep', '30')
    try:
        assert ctl(daemon.address, 'kill', str(sid), 'KILL').returncode == 0
        assert p.wait(timeout=10) == 137
        j = status_json(daemon.address, sid)
        assert (j['State'], j['EndReason'], j['ExitCode'], j['ExitSignal']) == ('ended', 'killed', -1, 9)
        text = ctl(daemon.address, 'status', str(sid)).stdout.decode()
        assert re.search(r'^ +State: ended \(killed\) since ', text, re.M)
        assert re.search(r'^ +Status: killed by signal 9 \(KILL\)$', text, re.M)
    finally:
        stop(p)


# --- wait ---

def test_wait_for_a_running_session(daemon):
    p, sid = start(daemon, 'sh', '-c', 'read x; exit 5')
    try:
        w = subprocess.Popen(ctl_argv(daemon.address, 'wait', str(sid)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        time.sleep(0.5)
        assert w.poll() is None, 'wait returned while the session runs'
        p.communicate(b'\n', timeout=10)
        out, err = w.communicate(timeout=10)
        assert (w.returncode, out, err) == (5, b'', b'')
        # On an ended record: at once, the same status.
        r = ctl(daemon.address, 'wait', str(sid), timeout=5)
        assert (r.returncode, r.stdout, r.stderr) == (5, b'', b'')
    finally:
        stop(p)


def test_wait_longer_than_the_call_timeout(daemon):
    # sd-bus gives up on a reply after 25 s by default; wait must not.
    p, sid = start(daemon, 'sleep', '27')
    try:
        r = ctl(daemon.address, 'wait', str(sid), timeout=60)
        assert (r.returncode, r.stderr) == (0, b'')
    finally:
        stop(p)


def test_wait_killed(daemon):
    p, sid = start(daemon, 'sleep', '30')
    try:
        w = subprocess.Popen(ctl_argv(daemon.address, 'wait', str(sid)))
        time.sleep(0.3)
        assert ctl(daemon.address, 'signal', str(sid), 'INT').returncode == 0
        assert w.wait(timeout=10) == 128 + signal.SIGINT
    finally:
        stop(p)


# --- kill, terminate ---

def test_kill(daemon):
    for args, sig in (([], signal.SIGTERM), (['KILL'], signal.SIGKILL), (['sigusr1'], signal.SIGUSR1),
                      (['2'], signal.SIGINT)):
        p, sid = start(daemon, 'sleep', '30')
        try:
            r = ctl(daemon.address, 'kill', str(sid), *args)
            assert (r.returncode, r.stdout, r.stderr) == (0, b'', b''), args
            assert p.wait(timeout=10) == 128 + sig, args
            assert status_json(daemon.address, sid)['EndReason'] == 'killed'
        finally:
            stop(p)


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_kill_reaches_the_whole_group(daemon):
    p, sid = start(daemon, 'sh', '-c', 'sleep 30 & echo $!; wait')
    try:
        child = int(p.stdout.readline())
        assert ctl(daemon.address, 'kill', str(sid), 'KILL').returncode == 0
        assert p.wait(timeout=10) == 137
        wait_for(lambda: not alive(child), what='the background child to die')
    finally:
        stop(p)


def test_terminate(daemon):
    p, sid = start(daemon, 'sleep', '30')
    try:
        start_time = time.monotonic()
        assert ctl(daemon.address, 'terminate', str(sid)).returncode == 0
        assert p.wait(timeout=10) == 143
        assert time.monotonic() - start_time < 5
        assert status_json(daemon.address, sid)['EndReason'] == 'killed'
    finally:
        stop(p)


def test_terminate_grace(daemon):
    # TERM ignored (by sh and by the sleep it starts): KILL after the grace.
    p, sid = start(daemon, 'sh', '-c', "trap '' TERM; sleep 30; true")
    try:
        start_time = time.monotonic()
        r = ctl(daemon.address, 'terminate', '--grace=1', str(sid))
        assert (r.returncode, r.stderr) == (0, b'')
        assert p.wait(timeout=10) == 137
        assert time.monotonic() - start_time >= 0.9
        assert status_json(daemon.address, sid)['EndReason'] == 'killed'
    finally:
        stop(p)


# --- list --json ---

def test_list_json(daemon):
    r = ctl(daemon.address, 'list', '--json')
    assert (r.returncode, r.stdout) == (0, b'[]\n')
    procs = []
    try:
        procs.append(start(daemon, 'sleep', '30'))
        procs.append(start(daemon, 'sh', '-c', 'sleep 30; echo "a b"', "it's"))
        got = sessions(daemon.address)
        assert [s['Id'] for s in got] == sorted(pid for _, pid in procs)
        assert [list(s) for s in got] == [['Id', 'PID', 'User', 'Argv']] * 2
        assert [s['Argv'] for s in got] == [['sleep', '30'], ['sh', '-c', 'sleep 30; echo "a b"', "it's"]]
        assert all(s['User'] == 'root' for s in got)
        for s in got:
            assert status_json(daemon.address, s['Id'])['PID'] == s['PID']
        pretty = ctl(daemon.address, 'list', '--json=pretty')
        assert pretty.returncode == 0 and json.loads(pretty.stdout) == got and pretty.stdout.count(b'\n') > 2
        # The table without its header.
        for opt in ('--no-legend', '-q', '--quiet'):
            r = ctl(daemon.address, 'list', opt)
            assert r.returncode == 0, (opt, r.stderr)
            assert [int(line.split()[0]) for line in r.stdout.decode().splitlines()] == \
                [s['Id'] for s in got], opt
    finally:
        for p, _ in procs:
            stop(p)


# --- errors ---

@pytest.mark.parametrize('verb,what', [
    (['status'], 'failed to get the status of session 4242'),
    (['status', '--json'], 'failed to get the status of session 4242'),
    (['wait'], 'failed to wait for session 4242'),
    (['kill'], 'failed to send signal TERM to session 4242'),
    (['terminate'], 'failed to terminate session 4242'),
])
def test_unknown_session(daemon, verb, what):
    r = ctl(daemon.address, *verb, '4242')
    assert r.returncode == 1
    assert r.stdout == b''
    assert r.stderr == ('sandboxctl: %s: No such session (NoSuchSession)\n' % what).encode()


def test_kill_ended_session(daemon):
    p, sid = start(daemon, 'sh', '-c', 'read x')
    assert p.communicate(b'\n', timeout=10)[0] == b''
    r = ctl(daemon.address, 'kill', str(sid))
    assert r.returncode == 1 and r.stderr.endswith(b'(NoSuchSession)\n') and r.stderr.count(b'\n') == 1


def test_usage_errors():
    for args in (['kill', '1', 'NOSUCHSIGNAL'], ['kill', '1', '0'], ['kill', '1', '65'], ['kill'],
                 ['kill', '1', 'TERM', 'x'], ['kill', 'x'], ['status'], ['status', '1', '2'], ['status', 'x'],
                 ['status', '--json=long', '1'], ['wait'], ['wait', '-1'], ['wait', '1', '2'],
                 ['terminate'], ['terminate', '--grace=soon', '1'], ['terminate', '1', '2'],
                 ['list', '--json=yaml'], ['list', '--bogus']):
        r = subprocess.run([SANDBOXCTL] + args, capture_output=True, timeout=10)
        assert r.returncode == 2, args
        assert r.stderr.startswith(b'sandboxctl: ') and USAGE.search(r.stderr), args
        assert r.stdout == b'', args
    r = subprocess.run([SANDBOXCTL, 'kill', '1', 'NOSUCHSIGNAL'], capture_output=True, timeout=10)
    assert r.stderr.startswith(b"sandboxctl: unknown signal 'NOSUCHSIGNAL'\n")


def test_help_names_the_verbs():
    r = subprocess.run([SANDBOXCTL, '--help'], capture_output=True, timeout=10)
    assert r.returncode == 0
    for verb in (b'run', b'status', b'wait', b'kill', b'terminate', b'--json', b'--grace', b'--max-output'):
        assert verb in r.stdout


BASH_COMPLETION = '/usr/share/bash-completion/bash_completion'


@pytest.mark.skipif(not os.path.exists(BASH_COMPLETION), reason='bash-completion not installed')
def test_completion():
    from test_completion import complete
    assert complete('') == sorted(['exec', 'run', 'shell', 'list', 'status', 'wait', 'signal', 'kill',
                                   'terminate'])
    assert complete('run', '--max') == ['--max-output=']
    assert '--tty' not in complete('run', '--')
    assert complete('status', '--js') == ['--json=']
    assert complete('status', '--json', '') == ['off', 'pretty', 'short']
    assert complete('terminate', '--gr') == ['--grace=']
    assert complete('kill', '1', 'TE') == ['TERM']
    assert 'echo' in complete('run', 'ech')
