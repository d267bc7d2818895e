# sandboxctl's address forms that sd-bus 252 lacks: vsock:, vsock-mux: (against a stand-in for the
# hypervisor's multiplexer), -H over a real sshd on loopback, -M; and unixexec: addresses, which pass no fds.
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import SANDBOXCTL, SANDBOXD, wait_for
from sshd import Sshd, free_port, unavailable_reason
from vsockmux import VsockMux

FORWARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'stdio_forward.py')

USAGE = re.compile(rb'^Usage: sandboxctl ', re.M)
MIB = 1024 * 1024


def run(*args, input=b'', timeout=60, env=None):
    start = time.monotonic()
    r = subprocess.run([SANDBOXCTL] + list(args), input=input, capture_output=True, timeout=timeout, env=env)
    r.elapsed = time.monotonic() - start
    return r


def one_error_line(r, prefix):
    """Exactly one line on stderr, sandboxctl's, starting with prefix; nothing on stdout."""
    assert r.stdout == b'', r.stdout
    assert r.stderr.count(b'\n') == 1, r.stderr
    assert r.stderr.startswith(b'sandboxctl: ' + prefix), r.stderr
    return r.stderr.decode()


def stdout_handed_over(global_args, env=None):
    """Whether the command's stdout is sandboxctl's own pipe (passed as an fd), not the relay's."""
    p = subprocess.Popen([SANDBOXCTL] + global_args + ['exec', 'readlink', '/proc/self/fd/1'],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    ino = os.fstat(p.stdout.fileno()).st_ino
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert out.startswith(b'pipe:['), out
    return out == b'pipe:[%d]\n' % ino


# ---- vsock: parsing and failures (this machine has no vsock peer to reach) ----

@pytest.mark.parametrize('address, reason', [
    ('vsock:cid=x,port=1', "cid 'x' is not a number"),
    ('vsock:cid=-1,port=1', "cid '-1' is not a number"),
    ('vsock:cid=3,port=4294967296', "port '4294967296' is not a number"),
    ('vsock:cid=3,port=', "port '' is not a number"),
    ('vsock:port=1', 'cid= is missing'),
    ('vsock:cid=3', 'port= is missing'),
    ('vsock:', 'cid= is missing'),
    ('vsock:cid=3,port=1,path=/x', "unknown key 'path'"),
    ('vsock:cid=3,cid=4,port=1', "'cid' given twice"),
    ('vsock:cid=3,port', "'port' is not KEY=VALUE"),
    ('vsock:cid=%3,port=1', "bad %-escape in the value of 'cid'"),
    ('vsock:cid=3,port=1;unix:path=/x', 'cannot be one of a list'),
    ('vsock-mux:port=1', 'path= is missing'),
    ('vsock-mux:path=/x', 'port= is missing'),
    ('vsock-mux:path=,port=1', 'empty path'),
    ('vsock-mux:path=/x,port=1,cid=3', "unknown key 'cid'"),
    ('vsock-mux:path=/' + 'x' * 120 + ',port=1', 'too long for a unix socket'),
])
def test_bad_vsock_address(address, reason):
    r = run('--address=' + address, 'list')
    assert r.returncode == 2, r.stderr
    assert r.stdout == b''
    first = r.stderr.decode().splitlines()[0]
    assert first == "sandboxctl: invalid address '%s': %s" % (address, first.split("': ", 1)[1])
    assert reason in first, first
    assert USAGE.search(r.stderr)


@pytest.mark.parametrize('cid', [3, 2, 4294967295])
def test_vsock_connect_failure(cid):
    # CID 3: no guest here (ENODEV); CID 2, the host: nothing listens on the port; -1: no such CID.
    # Whatever the kernel says, one line that names the address, at once.
    address = 'vsock:cid=%d,port=47999' % cid
    r = run('--address=' + address, 'exec', 'true', timeout=30)
    assert r.returncode == 1
    line = one_error_line(r, b'failed to connect to ' + address.encode() + b': ')
    # The kernel's answer to an AF_VSOCK connect(), with what it means here.
    assert re.search(r': .+ \((no vsock transport reaches that CID from here|nothing listens on that port there|'
                     r'no answer|this kernel has no vsock support)\)$', line.strip()), line
    assert r.elapsed < 8, (r.elapsed, line)


def test_vsock_escaped_values():
    # %XX escapes are D-Bus's: cid=%33 is cid=3.
    r = run('--address=vsock:cid=%33,port=%34%37%39%39%39', 'list')
    assert r.returncode == 1
    line = one_error_line(r, b'failed to connect to vsock:cid=%33,port=%34%37%39%39%39: ')
    plain = run('--address=vsock:cid=3,port=47999', 'list').stderr.decode()
    assert line.split('%39: ', 1)[1] == plain.split('47999: ', 1)[1]
    assert line.strip().endswith(')'), line


# ---- vsock-mux: the hybrid vsock of Firecracker and Cloud Hypervisor, against a stand-in ----

@pytest.fixture
def mux(tmp_path, daemon):
    m = VsockMux(str(tmp_path / 'vsock.mux'), daemon.sock)
    yield m
    m.close()


def test_mux_exec(mux):
    r = run('--address=' + mux.address(5123), 'exec', 'sh', '-c', 'echo out; echo err >&2; exit 7')
    assert (r.returncode, r.stdout, r.stderr) == (7, b'out\n', b'err\n')
    # The handshake, then D-Bus without fd passing: nothing sent over a vsock could carry them.
    assert mux.requests == [b'CONNECT 5123\n']
    auth = bytes(mux.first_bytes[0])
    assert auth.startswith(b'\0AUTH '), auth[:64]
    assert b'NEGOTIATE_UNIX_FD' not in auth.split(b'BEGIN\r\n')[0]
    assert not stdout_handed_over(['--address=' + mux.address()])


def test_mux_output_complete(mux):
    r = run('--address=' + mux.address(), 'exec', 'sh', '-c',
            'head -c %d /dev/zero | tr "\\0" x; head -c 300000 /dev/zero | tr "\\0" y >&2' % MIB, timeout=120)
    assert r.returncode == 0, r.stderr[-300:]
    assert r.stdout == b'x' * MIB
    assert r.stderr == b'y' * 300000


def test_mux_stdin_relayed(mux):
    data = os.urandom(MIB) + b'\0end'
    r = run('--address=' + mux.address(), 'exec', 'cat', input=data, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    r = run('--address=' + mux.address(), 'exec', 'wc', '-c', input=b'')
    assert (r.returncode, r.stdout.strip()) == (0, b'0')


def test_mux_signal_exit_status(mux):
    r = run('--address=' + mux.address(), 'exec', 'sh', '-c', 'kill -TERM $$')
    assert r.returncode == 128 + 15


def test_mux_tty(mux):
    # -tt: a PTY although stdin is a pipe; what is typed goes through it.
    r = run('--address=' + mux.address(), 'exec', '-tt', 'sh', '-c',
            'test -t 0 && test -t 1 && read l && echo "got $l"', input=b'typed\n')
    assert r.returncode == 0, r.stderr
    assert b'got typed\r\n' in r.stdout, (r.stdout, r.stderr)


def test_mux_list(mux):
    r = run('--address=' + mux.address(), 'list')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:4] == [b'ID', b'PID', b'USER', b'COMMAND']


@pytest.mark.parametrize('answer', [b'FAILURE\n', b'ERR no such port\n', b'OK\n', b'ok 1\n'])
def test_mux_refused(tmp_path, daemon, answer):
    m = VsockMux(str(tmp_path / 'vsock.mux'), daemon.sock, mode='refuse', answer=answer)
    try:
        r = run('--address=' + m.address(77), 'exec', 'true', timeout=30)
    finally:
        m.close()
    assert r.returncode == 1
    line = one_error_line(r, b'failed to connect to ' + m.address(77).encode() + b': ')
    assert "'CONNECT 77' was answered '%s', not 'OK ...'" % answer.decode().strip() in line
    assert r.elapsed < 3, r.elapsed


def test_mux_closed(tmp_path, daemon):
    m = VsockMux(str(tmp_path / 'vsock.mux'), daemon.sock, mode='close')
    try:
        r = run('--address=' + m.address(78), 'list', timeout=30)
    finally:
        m.close()
    assert r.returncode == 1
    line = one_error_line(r, b'failed to connect to ' + m.address(78).encode() + b': ')
    assert 'closed before an answer' in line
    assert r.elapsed < 3, r.elapsed


def test_mux_no_answer_times_out(tmp_path, daemon):
    m = VsockMux(str(tmp_path / 'vsock.mux'), daemon.sock, mode='silent')
    try:
        r = run('--address=' + m.address(79), 'exec', 'true', timeout=30)
    finally:
        m.close()
    assert r.returncode == 1
    line = one_error_line(r, b'failed to connect to ' + m.address(79).encode() + b': ')
    assert "no answer to 'CONNECT 79' within" in line
    assert 4 <= r.elapsed < 10, r.elapsed


def test_mux_no_dbus_answer(tmp_path, daemon):
    # OK, and then nothing: bounded, not sd-bus's 90 s.
    m = VsockMux(str(tmp_path / 'vsock.mux'), daemon.sock, mode='ok-silent')
    try:
        r = run('--address=' + m.address(80), 'list', timeout=60)
    finally:
        m.close()
    assert r.returncode == 1
    line = one_error_line(r, b'failed to connect to ' + m.address(80).encode() + b': ')
    assert 'no D-Bus answer within 10 s' in line
    assert 9 <= r.elapsed < 20, r.elapsed


def test_mux_closed_after_ok(tmp_path, daemon):
    m = VsockMux(str(tmp_path / 'vsock.mux'), daemon.sock, mode='ok-close')
    try:
        r = run('--address=' + m.address(81), 'list', timeout=60)
    finally:
        m.close()
    assert r.returncode == 1
    one_error_line(r, b'failed to connect to ' + m.address(81).encode() + b': ')
    assert m.requests == [b'CONNECT 81\n']
    assert r.elapsed < 3, r.elapsed


def test_mux_nothing_at_path(tmp_path):
    address = 'vsock-mux:path=%s,port=1' % (tmp_path / 'none')
    r = run('--address=' + address, 'list')
    assert r.returncode == 1
    one_error_line(r, b'failed to connect to ' + address.encode() + b': No such file or directory')


# ---- -H: ssh and systemd-stdio-bridge, against a real sshd on loopback ----

@pytest.fixture(scope='module')
def sshd(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason + ' (tools/install-deps.sh installs openssh-server)')
    s = Sshd(tmp_path_factory.mktemp('sshd'))
    if s.error:
        s.stop()
        pytest.skip('no sshd on loopback: ' + s.error)
    yield s
    s.stop()


def host_run(sshd, daemon, *args, **kw):
    return run('-H', 'sandboxd-test', '--address=' + daemon.address, *args, env=sshd.env(), **kw)


def test_host_exec(sshd, daemon):
    # Without -t, from pipes: the streams are relayed, through ssh and systemd-stdio-bridge.
    r = host_run(sshd, daemon, 'exec', 'sh', '-c', 'cat; echo err >&2; exit 5', input=b'in\n', timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (5, b'in\n', b'err\n')
    assert not stdout_handed_over(['-H', 'sandboxd-test', '--address=' + daemon.address], env=sshd.env())
    assert r.elapsed < 10, r.elapsed


def test_host_output_complete(sshd, daemon):
    data = os.urandom(MIB)
    r = host_run(sshd, daemon, 'exec', 'cat', input=data, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


def test_host_stdio_files(sshd, daemon, tmp_path):
    # Files as stdin and stdout, which would be passed as fds on the daemon's own socket.
    (tmp_path / 'in').write_bytes(b'from a file\n')
    with open(tmp_path / 'in', 'rb') as fin, open(tmp_path / 'out', 'wb') as fout:
        start = time.monotonic()
        r = subprocess.run([SANDBOXCTL, '-H', 'sandboxd-test', '--address=' + daemon.address, 'exec', 'cat'],
                           stdin=fin, stdout=fout, stderr=subprocess.PIPE, env=sshd.env(), timeout=30)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - start < 10
    assert (tmp_path / 'out').read_bytes() == b'from a file\n'


def test_host_tty(sshd, daemon):
    r = host_run(sshd, daemon, 'exec', '-tt', 'sh', '-c', 'test -t 0 && read l && echo "got $l"',
                 input=b'typed\n')
    assert r.returncode == 0, r.stderr
    assert b'got typed\r\n' in r.stdout, (r.stdout, r.stderr)


def test_host_list_and_signal(sshd, daemon):
    r = host_run(sshd, daemon, 'list')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b'ID')
    r = host_run(sshd, daemon, 'signal', '999999', 'TERM')
    assert r.returncode == 1
    assert b'No such session' in r.stderr


def test_host_user_in_destination(sshd, daemon):
    r = run('-H', sshd.user + '@sandboxd-test', '--address=' + daemon.address, 'exec', 'echo', 'ok',
            env=sshd.env())
    assert (r.returncode, r.stdout) == (0, b'ok\n'), r.stderr


def test_host_ctrl_c(sshd, daemon):
    # Ctrl-C at a terminal signals the whole foreground process group, ssh included: the command gets
    # SIGINT and its status decides; the connection stays.
    p = subprocess.Popen([SANDBOXCTL, '-H', 'sandboxd-test', '--address=' + daemon.address, 'exec', 'sh', '-c',
                          'trap "echo got INT; exit 42" INT; echo ready; while :; do sleep 0.1; done'],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=sshd.env(), start_new_session=True)
    try:
        assert p.stdout.readline() == b'ready\n'
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert (p.returncode, out, err) == (42, b'got INT\n', b'')


def test_host_no_ssh(daemon, tmp_path):
    env = dict(os.environ, SANDBOXCTL_SSH=str(tmp_path / 'no-such-ssh'))
    r = run('-H', 'somehost', 'list', env=env)
    assert r.returncode == 1
    one_error_line(r, b'failed to run %s: No such file or directory' % str(tmp_path / 'no-such-ssh').encode())


def test_host_unreachable(sshd, daemon):
    # No sshd on that port: ssh says why, sandboxctl names the host, both at once.
    host = '127.0.0.1:%d' % free_port()
    r = run('-H', host, '--address=' + daemon.address, 'exec', 'true', env=sshd.env(), timeout=30)
    assert r.returncode == 1
    last = r.stderr.decode().splitlines()[-1]
    assert last.startswith('sandboxctl: failed to connect to %s over ssh (systemd-stdio-bridge' % host), last
    assert r.elapsed < 10


def test_host_no_socket_there(sshd, tmp_path):
    address = 'unix:path=%s' % (tmp_path / 'none')
    r = run('-H', 'sandboxd-test', '--address=' + address, 'list', env=sshd.env(), timeout=30)
    assert r.returncode == 1
    last = r.stderr.decode().splitlines()[-1]
    assert last.startswith('sandboxctl: failed to connect to sandboxd-test over ssh '
                           '(systemd-stdio-bridge --bus-path=%s there): ' % address), last


def dbus_escape(s):
    return ''.join(c if c.isalnum() or c in '-_/.' else '%%%02x' % ord(c) for c in s)


def run_with_file_stdio(tmp_path, args, env=None, data=b'from a file\n'):
    """sandboxctl ARGS with a file as stdin and another as stdout: fds it would pass where it can."""
    (tmp_path / 'in').write_bytes(data)
    with open(tmp_path / 'in', 'rb') as fin, open(tmp_path / 'out', 'wb') as fout:
        start = time.monotonic()
        r = subprocess.run([SANDBOXCTL] + args, stdin=fin, stdout=fout, stderr=subprocess.PIPE, env=env,
                           timeout=60)
    return r, time.monotonic() - start, (tmp_path / 'out').read_bytes()


def test_unixexec_forwarder_relays(daemon, tmp_path):
    # A unixexec: program that forwards bytes (as socat does): fd passing would be agreed end to end,
    # with the daemon, and every fd sent dropped on the way; the call then waited 25 s for nothing.
    address = 'unixexec:path=%s,argv1=%s' % (dbus_escape(FORWARD), dbus_escape(daemon.sock))
    r, elapsed, out = run_with_file_stdio(tmp_path, ['--address=' + address, 'exec', 'sh', '-c', 'cat; exit 3'])
    assert (r.returncode, out, r.stderr) == (3, b'from a file\n', b'')
    assert elapsed < 10, elapsed


def test_host_through_forwarding_ssh(daemon, tmp_path):
    # An "ssh" whose other end agrees to fd passing (sshd giving the bridge a socket pair): -H never
    # asks for it, so nothing is lost.
    fake = tmp_path / 'ssh'
    fake.write_text('#!/bin/sh\nexec %s %s "$@"\n' % (FORWARD, daemon.sock))
    fake.chmod(0o755)
    env = dict(os.environ, SANDBOXCTL_SSH=str(fake))
    r, elapsed, out = run_with_file_stdio(tmp_path, ['-H', 'somehost', 'exec', 'sh', '-c', 'cat; exit 6'], env=env)
    assert (r.returncode, out, r.stderr) == (6, b'from a file\n', b'')
    assert elapsed < 10, elapsed
    r = run('-H', 'somehost', 'exec', 'cat', input=os.urandom(MIB), env=env, timeout=60)
    assert r.returncode == 0 and len(r.stdout) == MIB, r.stderr


@pytest.mark.parametrize('host', ['', '-oProxyCommand=sh', 'user@', '@host', 'host:0', 'host:65536',
                                  'host:ssh', 'a b', '[::1', '[]', '[::1]x', 'user@-x'])
def test_bad_host(host):
    r = run('-H', host, 'list')
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(b"sandboxctl: invalid host '%s': expected [USER@]HOST[:PORT]" % host.encode())
    assert USAGE.search(r.stderr)


def test_host_ssh_command_line(tmp_path):
    # What ssh is given: -xT, the port, "--", the destination, and one quoted remote command.
    log = tmp_path / 'argv'
    fake = tmp_path / 'fake-ssh'
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%%s\\n" "$a"; done > %s\nexit 1\n' % log)
    fake.chmod(0o755)
    env = dict(os.environ, SANDBOXCTL_SSH=str(fake))
    run('-H', 'me@[::1]:2222', 'list', env=env)
    assert log.read_text().splitlines() == [
        '-xT', '-p', '2222', '--', 'me@::1',
        'systemd-stdio-bridge --bus-path=unix:path=/run/sandboxd/io.socket']
    run('-H', 'host', '--address=unix:path=/tmp/a b', 'list', env=env)
    assert log.read_text().splitlines() == [
        '-xT', '--', 'host', "systemd-stdio-bridge '--bus-path=unix:path=/tmp/a b'"]
    run('-H', 'host', '--system', 'list', env=env)
    assert log.read_text().splitlines() == ['-xT', '--', 'host', 'systemd-stdio-bridge']


# ---- -M ----

def test_machine_failure():
    # No machined (or no such machine) here: one line naming the machine, exit status 1.
    r = run('-M', 'sandboxd-test-no-such-machine', 'list', timeout=60,
            env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS='unix:path=/nonexistent'))
    assert r.returncode == 1
    one_error_line(r, b"failed to connect to the system bus of machine 'sandboxd-test-no-such-machine': ")


def test_machine_and_host_exclusive():
    r = run('-H', 'host', '-M', 'machine', 'list')
    assert r.returncode == 2
    assert r.stderr.startswith(b'sandboxctl: -H and -M cannot be combined')


# A "container" for -M: a process in a mount namespace of its own where /run/dbus is a temporary
# directory with a private bus in it, sandboxd on that bus, and the file by which systemd-machined
# names a running machine (sd-bus reads /run/systemd/machines/NAME for its leader).
MACHINE_BUS_CONFIG = '''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
'''


def stop_proc(p):
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture
def machine(tmp_path):
    if os.getuid() != 0:
        pytest.skip('entering a container needs root')
    if not shutil.which('dbus-daemon') or not shutil.which('unshare'):
        pytest.skip('dbus-daemon or unshare not installed')
    if not os.path.isdir('/run/dbus') or not os.path.isdir('/run/systemd/machines'):
        pytest.skip('no /run/dbus or /run/systemd/machines to stand a container up with')
    run_dbus = tmp_path / 'run-dbus'
    run_dbus.mkdir()
    sock = run_dbus / 'system_bus_socket'
    (tmp_path / 'bus.conf').write_text(MACHINE_BUS_CONFIG.format(socket=sock))
    name = 'sandboxd-test-%d' % os.getpid()
    machine_file = '/run/systemd/machines/' + name
    procs = []
    try:
        procs.append(subprocess.Popen(['dbus-daemon', '--config-file=%s' % (tmp_path / 'bus.conf'), '--nofork'],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        wait_for(lambda: sock.exists(), what='the bus socket')
        bus = 'unix:path=%s' % sock
        procs.append(subprocess.Popen([SANDBOXD, '--idle-timeout=0'], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=open(tmp_path / 'sandboxd.log', 'wb'),
                                      env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus), start_new_session=True))
        wait_for(lambda: run('--bus-address=' + bus, 'list', timeout=10).returncode == 0, what='sandboxd on the bus')
        leader = subprocess.Popen(['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c',
                                   'mount --bind "$0" /run/dbus && echo ready && exec sleep 600', str(run_dbus)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
        procs.append(leader)
        if leader.stdout.readline() != b'ready\n':
            pytest.skip('cannot make a mount namespace here')
        with open(machine_file, 'w') as f:
            f.write('LEADER=%d\nCLASS=container\n' % leader.pid)
        yield name
    finally:
        if os.path.exists(machine_file):
            os.unlink(machine_file)
        for p in reversed(procs):
            stop_proc(p)


def test_machine(machine, tmp_path):
    # The container's bus, reached from here: fds pass (a file as stdin and stdout).
    r, elapsed, out = run_with_file_stdio(tmp_path, ['-M', machine, 'exec', 'sh', '-c', 'cat; exit 3'])
    assert (r.returncode, out, r.stderr) == (3, b'from a file\n', b'')
    # The command's stdout is our own pipe, handed over, not a pipe of the daemon's relay.
    assert stdout_handed_over(['-M', machine])
    r = run('-M', machine, 'list')
    assert r.returncode == 0 and r.stdout.startswith(b'ID'), r.stderr


def test_help_names_the_address_forms():
    r = run('--help')
    assert r.returncode == 0
    for word in (b'-H --host=', b'-M --machine=', b'vsock:cid=CID,port=PORT', b'vsock-mux:path=PATH,port=PORT'):
        assert word in r.stdout, word
    r = run('bogus-verb')
    assert b'[-H [USER@]HOST | -M MACHINE | --address=ADDRESS' in r.stderr
