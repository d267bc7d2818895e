# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run and RunText (org.example.Sandbox1(5)): a command to its end in one call, with its output
in the reply; the new Exec options (tag, stdin-data, max-output, on-output-limit,
timeout-grace-usec); end reasons; the Version and Features properties. Every test runs on
dbus-daemon, dbus-broker and peer-to-peer, against the real daemon."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sandbox_client import (  # noqa: E402
    BUS_NAME, INTERFACE, OBJECT_PATH, DBusError, Connection, SandboxClient, encode_options,
    pid_alive, wait_until)

INVALID_ARGS = 'org.freedesktop.DBus.Error.InvalidArgs'
LIMITS_EXCEEDED = 'org.freedesktop.DBus.Error.LimitsExceeded'
MIB = 1024 * 1024
BUSCTL = shutil.which('busctl')


def busctl_call(h, *args, timeout=20):
    """busctl call on the harness's bus (or the p2p socket, which answers Hello itself)."""
    cmd = [BUSCTL, f'--address={h.address}', 'call', BUS_NAME, OBJECT_PATH, INTERFACE, '--']
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not BUSCTL, reason='busctl (systemd) is not installed')
def test_busctl_one_liner_prints_text_and_status(harness):
    """The issue's one-liner: busctl call … RunText 'asa{sv}' 2 uname -a 0."""
    harness.start()
    p = busctl_call(harness, 'RunText', 'asa{sv}', '2', 'uname', '-a', '0')
    assert p.returncode == 0, p.stderr
    uname = subprocess.run(['uname', '-a'], capture_output=True, text=True).stdout
    assert p.stdout.startswith('iissa{sv} 0 0 '), p.stdout
    assert f'"{uname.rstrip()}\\n"' in p.stdout, p.stdout
    assert '"end-reason" s "exited"' in p.stdout, p.stdout


def test_run_is_binary_safe(harness, tmp_path):
    """A 3 MiB random blob through cat comes back byte for byte, with
    max-output raised; nothing is truncated; no Output or Exited signals."""
    harness.start()
    blob = os.urandom(3 * MIB)
    f = tmp_path / 'blob'
    f.write_bytes(blob)
    os.chmod(tmp_path, 0o755)
    c = harness.client()
    code, sig, out, err, info = c.run_call(['cat', str(f)], {'max-output': 4 * MIB}, timeout=30)
    assert (code, sig, err) == (0, 0, b'')
    assert out == blob
    assert info['stdout-bytes'] == len(blob) and info['stdout-truncated'] is False
    assert info['end-reason'] == 'exited' and info['pid'] > 0 and info['id'] > 0
    c.idle(0.3)
    assert info['id'] not in c.results or not c.results[info['id']].chunks, 'Output sent for Run'
    assert info['id'] not in c.results or not c.results[info['id']].exited, 'Exited sent for Run'


def test_run_truncates_at_max_output_with_true_counts(harness):
    harness.start()
    c = harness.client()
    code, sig, out, err, info = c.run_call(
        ['sh', '-c', 'head -c 5000 /dev/zero; head -c 300 /dev/zero >&2'], {'max-output': 100})
    assert (code, sig) == (0, 0)
    assert out == b'\0' * 100 and err == b'\0' * 100
    assert info['stdout-bytes'] == 5000 and info['stderr-bytes'] == 300
    assert info['stdout-truncated'] is True and info['stderr-truncated'] is True
    assert info['end-reason'] == 'exited'
    # the default is 1 MiB
    code, sig, out, err, info = c.run_call(['head', '-c', str(MIB + 10), '/dev/zero'], timeout=20)
    assert len(out) == MIB and info['stdout-bytes'] == MIB + 10 and info['stdout-truncated']


def test_run_output_limit_kill(harness):
    harness.start()
    c = harness.client()
    code, sig, out, err, info = c.run_call(['yes'], {'max-output': 10, 'on-output-limit': 'kill'})
    assert (code, sig) == (-1, signal.SIGKILL)
    assert info['end-reason'] == 'output-limit'
    assert out == b'y\n' * 5 and info['stdout-truncated'] is True
    assert info['stdout-bytes'] > 10


def test_exec_max_output_kills(harness):
    """Exec with max-output relays at most that much, then the session is
    killed (on-output-limit defaults to kill for Exec)."""
    harness.start()
    c = harness.client()
    r = c.run(['yes'], {'max-output': 1000}, timeout=10)
    assert len(r.stream(1)) == 1000
    assert (r.code, r.signal) == (-1, signal.SIGKILL)
    assert wait_until(lambda: ', output-limit.' in harness.log(), 2), harness.log()


def test_stdin_data_reaches_the_command(harness):
    harness.start()
    c = harness.client()
    data = b'hello\0\xff world\n' * 1000
    code, sig, out, err, info = c.run_call(['cat'], {'stdin-data': data})
    assert (code, sig, out) == (0, 0, data)
    # Exec too, and on a terminal the end of input is the EOF character
    r = c.run(['sh', '-c', 'cat; echo done'], {'stdin-data': b'abc\n'})
    assert r.stream(1) == b'abc\ndone\n' and r.code == 0
    code, sig, out, err, info = c.run_call(['sh', '-c', 'read x; echo "got $x"'],
                                           {'stdin-data': b'line\n', 'tty': True}, text=True)
    assert code == 0 and 'got line' in out, out


def test_runtext_replaces_invalid_utf8_and_nul(harness):
    harness.start()
    c = harness.client()
    code, sig, out, err, info = c.run_call(['printf', 'a\\0b\\377c\\303\\251\\355\\240\\200'], text=True)
    assert code == 0
    assert out == 'a\ufffdb\ufffdc\u00e9\ufffd\ufffd\ufffd', repr(out)


def test_caller_leaving_mid_run_kills_it(harness):
    harness.start()
    watcher = harness.client()
    conn = Connection.open(harness.address, bus=harness.is_bus)
    conn.send(conn.make_call(OBJECT_PATH, INTERFACE, 'Run', 'asa{sv}',
                             (['sleep', '100'], encode_options({})), destination=BUS_NAME))
    assert wait_until(lambda: len(watcher.list_sessions()) == 1, 5)
    (sid, pid, user, argv), = watcher.list_sessions()
    assert argv == ['sleep', '100'] and pid_alive(pid)
    conn.close()
    assert wait_until(lambda: watcher.list_sessions() == [], 10), watcher.list_sessions()
    assert wait_until(lambda: not pid_alive(pid), 5)
    assert wait_until(lambda: ', owner-gone.' in harness.log(), 2), harness.log()


def test_spawn_failures_are_the_errors_of_exec(harness):
    harness.start()
    c = harness.client()
    for argv in (['/nonexistent/command'], ['/etc/passwd']):
        with pytest.raises(DBusError) as e_exec:
            c.exec(argv)
        with pytest.raises(DBusError) as e_run:
            c.run_call(argv)
        with pytest.raises(DBusError) as e_text:
            c.run_call(argv, text=True)
        assert e_exec.value.name == e_run.value.name == e_text.value.name, argv
        assert e_run.value.message == e_exec.value.message


@pytest.mark.parametrize('method, options, field', [
    ('Run', {'max-output': 16 * MIB + 1}, 'max-output'),
    ('RunText', {'max-output': 1 << 40}, 'max-output'),
    ('Run', {'output-window': 4096}, 'output-window'),
    ('Exec', {'on-output-limit': 'truncate'}, 'on-output-limit'),
    ('Exec', {'on-output-limit': 'explode'}, 'on-output-limit'),
    ('Exec', {'max-output': 0}, 'max-output'),
    ('Run', {'tag': 'x' * 257}, 'tag'),
    ('Exec', {'stdin-data': b'x' * (MIB + 1)}, 'stdin-data'),
    ('Run', {'timeout-grace-usec': 1000}, 'timeout-grace-usec'),
])
def test_bad_new_options_name_the_field(harness, method, options, field):
    harness.start()
    c = harness.client()
    with pytest.raises(DBusError) as e:
        c._call(method, 'asa{sv}', (['/bin/true'], encode_options(options)))
    assert e.value.name == INVALID_ARGS
    assert f"'{field}'" in e.value.message, e.value.message
    assert c.list_sessions() == []


def test_tag_is_accepted(harness):
    harness.start()
    c = harness.client()
    code, sig, out, err, info = c.run_call(['echo', 'x'], {'tag': 'é' * 128}, text=True)
    assert (code, out) == (0, 'x\n')


def test_end_reasons(harness):
    """exited, signaled, timeout, killed, output-limit from Run's info; owner-gone and shutdown
    from the log line (no caller is there to be told)."""
    harness.start()
    c = harness.client()
    assert c.run_call(['sh', '-c', 'exit 4'])[4]['end-reason'] == 'exited'
    info = c.run_call(['sh', '-c', 'kill -9 $$'])[4]
    assert info['end-reason'] == 'signaled'
    code, sig, _, _, info = c.run_call(['sleep', '10'], {'timeout-usec': 200000})
    assert (sig, info['end-reason']) == (signal.SIGKILL, 'timeout')

    # killed: another connection of the same uid signals the running Run
    other = harness.client()
    conn = Connection.open(harness.address, bus=harness.is_bus)
    serial = conn.send(conn.make_call(OBJECT_PATH, INTERFACE, 'Run', 'asa{sv}',
                                      (['sleep', '100'], encode_options({})), destination=BUS_NAME))
    assert wait_until(lambda: len(other.list_sessions()) == 1, 5)
    sid = other.list_sessions()[0][0]
    other.signal(sid, signal.SIGTERM)
    from test_reliability import _read_replies
    reply = _read_replies(conn, [serial], 10)[serial]
    code, sig, _, _, info = reply.body
    assert (code, sig, info['end-reason'][1]) == (-1, signal.SIGTERM, 'killed')
    # a fatal signal the command survives is not 'killed'
    serial = conn.send(conn.make_call(
        OBJECT_PATH, INTERFACE, 'Run', 'asa{sv}',
        (['sh', '-c', 'trap "exit 5" TERM; sleep 100 & wait'], encode_options({})), destination=BUS_NAME))
    assert wait_until(lambda: len(other.list_sessions()) == 1, 5)
    time.sleep(0.2)
    other.signal(other.list_sessions()[0][0], signal.SIGTERM)
    code, sig, _, _, info = _read_replies(conn, [serial], 10)[serial].body
    assert (code, info['end-reason'][1]) == (5, 'exited')
    conn.close()

    # shutdown: the daemon stops with a session running
    sid, pid = c.exec(['sleep', '100'])
    harness.daemon.send_signal(signal.SIGTERM)
    assert harness.daemon.wait(5) == 0
    harness.expect_exit = True
    assert re.search(rf'Session {sid} ended: pid {pid}, code -1, signal 9, shutdown\.', harness.log()), \
        harness.log()


def test_timeout_grace_terminates_then_kills(harness):
    harness.start()
    c = harness.client()
    t0 = time.monotonic()
    code, sig, out, err, info = c.run_call(
        ['sh', '-c', 'trap "echo term; exit 7" TERM; sleep 10 & wait'],
        {'timeout-usec': 200000, 'timeout-grace-usec': 5000000}, text=True)
    assert (code, sig, out, info['end-reason']) == (7, 0, 'term\n', 'timeout')
    assert time.monotonic() - t0 < 3
    # a command that ignores TERM is killed once the grace is over
    t0 = time.monotonic()
    code, sig, out, err, info = c.run_call(
        ['sh', '-c', 'trap "echo term" TERM; while :; do sleep 0.05; done'],
        {'timeout-usec': 200000, 'timeout-grace-usec': 700000}, text=True, timeout=10)
    took = time.monotonic() - t0
    assert (sig, info['end-reason']) == (signal.SIGKILL, 'timeout') and 'term' in out
    assert 0.8 < took < 3, took


def test_run_output_reservation_is_bounded(harness):
    """Run reserves twice its max-output against 64 MiB per uid: two Runs with
    16 MiB each take all of it, a third is LimitsExceeded until one ends."""
    harness.start()
    c = harness.client()
    conn = Connection.open(harness.address, bus=harness.is_bus)
    serials = [conn.send(conn.make_call(OBJECT_PATH, INTERFACE, 'Run', 'asa{sv}',
                                        (['sleep', '100'], encode_options({'max-output': 16 * MIB})),
                                        destination=BUS_NAME)) for _ in range(2)]
    assert wait_until(lambda: len(c.list_sessions()) == 2, 5)
    with pytest.raises(DBusError) as e:
        c.run_call(['true'], {'max-output': 16 * MIB})
    assert e.value.name == LIMITS_EXCEEDED and 'uid 0' in e.value.message, e.value.message
    assert len(c.list_sessions()) == 2
    for sid, *_ in c.list_sessions():
        c.signal(sid, signal.SIGKILL)
    from test_reliability import _read_replies
    assert len(_read_replies(conn, serials, 10)) == 2
    assert c.run_call(['true'], {'max-output': 16 * MIB})[0] == 0
    conn.close()


def test_version_and_features(harness):
    harness.start()
    c = harness.client()
    assert c.get_property('Version') == '0.1'
    features = c.get_property('Features')
    assert 'run' in features
    assert set(features) <= {'run', 'session-objects', 'detach', 'cgroup', 'resources', 'landlock',
                             'profiles'}
