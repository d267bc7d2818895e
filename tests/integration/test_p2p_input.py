"""What a peer-to-peer client sends is bounded before sd-bus sees it (p2p-input.c): fds a message
does not declare are closed, a message is bounded in size and time and all of them in total, and
one uid cannot take all connections. Each attack test fails on a daemon without those bounds."""

import array
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jeepney.auth import BEGIN

from sandbox_client import (BUS_NAME, ERR, INTERFACE, OBJECT_PATH, Connection, SandboxClient,
                            authenticate, parse_address, wait_until)

HERE = Path(__file__).resolve().parent
SETPRIV = '/usr/bin/setpriv'
NOBODY = 65534

pytestmark = pytest.mark.root


def fd_count(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def rss_kib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise AssertionError('no VmRSS')


def raw_conn(h):
    """An authenticated p2p connection with fd passing, on which we send what we like."""
    sock = authenticate(parse_address(h.address), enable_fds=True)
    sock.sendall(BEGIN)
    return Connection(sock, enable_fds=True, bus=False)


def wait_reply(conn, serial, timeout=5):
    deadline = time.monotonic() + timeout
    while serial not in conn.replies:
        conn.pump(max(deadline - time.monotonic(), 0))
    return conn.replies.pop(serial)[1]


def list_sessions_msg(conn):
    return conn.make_call(OBJECT_PATH, INTERFACE, 'ListSessions', destination=BUS_NAME)


def send_raw(conn, data, fds):
    """data as it is, fds attached to its first bytes (in pieces of at most SCM_MAX_FD)."""
    conn.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))])


def closed_by_peer(sock, timeout):
    """Whether the daemon closed the connection within timeout (EOF or reset)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(1 << 16):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def assert_exec_works(h):
    c = SandboxClient.open(h.address, bus=False)
    try:
        r = c.run(['/bin/echo', 'still here'])
        assert (r.code, r.stdout) == (0, b'still here\n')
    finally:
        c.close()


def fds_back_to(h, base, timeout=5):
    return wait_until(lambda: fd_count(h.pid) <= base, timeout)


# --- fds a message does not declare (sd-bus 252 keeps them) ---------------------------------------

def test_undeclared_fds_are_closed(p2p_harness):
    """A method call without UNIX_FDS but with 200 fds, 30 times over: sd-bus 252 would drop each
    message and keep its fds; the daemon closes them, and the call itself is answered."""
    h = p2p_harness
    h.start()
    assert_exec_works(h)
    base = fd_count(h.pid)
    extra = [os.open('/dev/null', os.O_RDONLY) for _ in range(200)]
    try:
        conn = raw_conn(h)
        for _ in range(30):
            conn.serial += 1
            data = list_sessions_msg(conn).serialise(serial=conn.serial)  # no UNIX_FDS field
            send_raw(conn, data, extra)
            reply = wait_reply(conn, conn.serial)
            assert reply.header.message_type.name == 'method_return', reply
        # while connected too: nothing of the 6000 is held (the connection itself has 4)
        assert fd_count(h.pid) <= base + 6, f'{fd_count(h.pid)} fds, {base} before'
        conn.close()
    finally:
        for fd in extra:
            os.close(fd)
    assert fds_back_to(h, base), f'{fd_count(h.pid)} fds after the connection closed, {base} before'
    assert_exec_works(h)


def test_fewer_declared_than_sent(p2p_harness, tmp_path):
    """An Exec that declares its one fd (stdout) but carries 6: it runs with the declared one, the
    other 5 are closed."""
    h = p2p_harness
    h.start()
    assert_exec_works(h)
    base = fd_count(h.pid)
    out_path = tmp_path / 'out'
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT, 0o644)
    extra = [os.open('/dev/null', os.O_RDONLY) for _ in range(5)]
    try:
        conn = raw_conn(h)
        for i in range(20):
            msg = conn.make_call(OBJECT_PATH, INTERFACE, 'Exec', 'asa{sv}',
                                 (['/bin/echo', f'line {i}'], {'stdout': ('h', out)}),
                                 destination=BUS_NAME)
            conn.serial += 1
            fds = array.array('i')
            data = msg.serialise(serial=conn.serial, fds=fds)  # UNIX_FDS = 1
            assert list(fds) == [out]
            send_raw(conn, data, [out] + extra)
            reply = wait_reply(conn, conn.serial)
            assert reply.header.message_type.name == 'method_return', reply
        # before closing, which hangs up the sessions
        assert wait_until(lambda: out_path.read_text().count('\n') == 20, 5), out_path.read_text()
        conn.close()
    finally:
        for fd in extra + [out]:
            os.close(fd)
    assert fds_back_to(h, base), f'{fd_count(h.pid)} fds, {base} before'


def test_more_fds_than_a_message_may_have(p2p_harness):
    """One message whose pieces carry 2 x 200 fds (more than the kernel's 253 for one sendmsg):
    the connection is dropped and every fd closed."""
    h = p2p_harness
    h.start()
    base = fd_count(h.pid)
    extra = [os.open('/dev/null', os.O_RDONLY) for _ in range(200)]
    try:
        conn = raw_conn(h)
        conn.serial += 1
        data = list_sessions_msg(conn).serialise(serial=conn.serial)
        send_raw(conn, data[:8], extra)
        time.sleep(0.1)
        send_raw(conn, data[8:], extra)
        assert closed_by_peer(conn.sock, 5)
        conn.close()
    finally:
        for fd in extra:
            os.close(fd)
    assert fds_back_to(h, base), f'{fd_count(h.pid)} fds, {base} before'
    assert 'more than 253 fds' in h.log()
    assert_exec_works(h)


# --- input bounded in size, time and total ------------------------------------------------------

def partial_message(body_size, serial=1):
    """A method call's header and fields announcing body_size bytes of body ('ay')."""
    fields = b''
    def field(code, sig, value):
        nonlocal fields
        fields += b'\0' * (-len(fields) % 8)
        fields += bytes([code, len(sig)]) + sig.encode() + b'\0'
        if sig in 'os':
            fields += b'\0' * (-(16 + len(fields)) % 4)
            fields += struct.pack('<I', len(value)) + value.encode() + b'\0'
        else:  # g
            fields += bytes([len(value)]) + value.encode() + b'\0'
    field(1, 'o', OBJECT_PATH)
    field(2, 's', INTERFACE)
    field(3, 's', 'WriteStdin')
    field(8, 'g', 'uay')
    header = struct.pack('<cBBBIII', b'l', 1, 0, 1, body_size, serial, len(fields))
    return header + fields + b'\0' * (-len(fields) % 8)


def authenticated_socket(h):
    sock = authenticate(parse_address(h.address))
    sock.sendall(BEGIN)
    return sock


def test_oversized_message_is_refused_at_once(p2p_harness):
    """A header announcing 100 MiB: dropped when the header is in, nothing buffered (sd-bus takes up
    to 128 MiB)."""
    h = p2p_harness
    h.start()
    assert_exec_works(h)
    rss0 = rss_kib(h.pid)
    socks = []
    for _ in range(8):
        s = authenticated_socket(h)
        s.sendall(partial_message(100 << 20))
        s.setblocking(False)
        socks.append(s)
    chunk = b'\0' * (1 << 20)
    sent = [0] * len(socks)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and min(sent) < 4 << 20:
        for i, s in enumerate(socks):
            try:
                sent[i] += s.send(chunk)
            except (BlockingIOError, ConnectionResetError, BrokenPipeError):
                pass
    for s in socks:
        assert closed_by_peer(s, 2), 'a 100 MiB message was not refused'
        s.close()
    assert rss_kib(h.pid) - rss0 < 16 * 1024, f'RSS grew from {rss0} to {rss_kib(h.pid)} KiB'
    assert 'more than 8388608' in h.log()
    assert_exec_works(h)


def test_partial_messages_bounded_in_total(p2p_harness):
    """20 connections each send 6 MiB of a 7 MiB message and stall: the daemon holds at most its
    total bound (64 MiB) of them; the others are not read meanwhile."""
    h = p2p_harness
    h.start()
    assert_exec_works(h)
    rss0 = rss_kib(h.pid)
    socks = []
    for _ in range(20):
        s = authenticated_socket(h)
        s.sendall(partial_message(7 << 20))
        s.setblocking(False)
        socks.append(s)
    chunk = b'\x01' * (256 << 10)
    sent = [0] * len(socks)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and min(sent) < 6 << 20:
        for i, s in enumerate(socks):
            if sent[i] >= 6 << 20:
                continue
            try:
                sent[i] += s.send(chunk)
            except (BlockingIOError, ConnectionResetError, BrokenPipeError):
                pass
    time.sleep(0.5)
    grown = rss_kib(h.pid) - rss0
    try:
        # 20 x 6 MiB = 120 MiB without the bound; the kernel's socket buffers are not ours
        assert grown < 72 * 1024, f'RSS grew by {grown} KiB'
        # ... and root still gets through
        assert_exec_works(h)
    finally:
        for s in socks:
            s.close()


def test_stalled_message_times_out(p2p_harness):
    """Half a message, then nothing: the connection is dropped after the time bound (10 s)."""
    h = p2p_harness
    h.start()
    s = authenticated_socket(h)
    s.sendall(partial_message(1 << 20) + b'\0' * (100 << 10))
    t0 = time.monotonic()
    closed = closed_by_peer(s, 16)
    took = time.monotonic() - t0
    s.close()
    assert closed, 'a stalled message kept its connection for 16 s'
    assert 8 < took < 14, took
    assert 'was not complete after 10 s' in h.log()
    assert_exec_works(h)


def test_auth_text_is_bounded(p2p_harness):
    """Authentication text without end: dropped after 16 KiB."""
    h = p2p_harness
    h.start()
    s = socket.socket(socket.AF_UNIX)
    s.connect(parse_address(h.address))
    s.sendall(b'\0')
    line = b'DATA ' + b'41' * 500 + b'\r\n'
    try:
        for _ in range(40):
            s.sendall(line)
    except (ConnectionResetError, BrokenPipeError):
        pass
    assert closed_by_peer(s, 3)
    s.close()
    assert 'bytes of authentication' in h.log()


# --- connections per uid ------------------------------------------------------------------------

HOLDER = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, {here!r})
    from sandbox_client import Connection
    conns, refused = [], 0
    for i in range({n}):
        try:
            c = Connection.open({address!r}, bus=False, timeout=3)
            c.call('/org/example/Sandbox1', 'org.freedesktop.DBus.Peer', 'Ping', timeout=3)
            conns.append(c)
        except Exception:
            refused += 1
    print(len(conns), refused, flush=True)
    sys.stdin.read()
''')


def as_uid(uid, script):
    if not os.access(SETPRIV, os.X_OK):
        pytest.skip('setpriv not installed')
    return subprocess.Popen([SETPRIV, f'--reuid={uid}', f'--regid={uid}', '--clear-groups',
                             '/usr/bin/python3', '-B', '-c', script],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd='/', env={'PATH': '/usr/bin:/bin'})


def test_connections_per_uid(p2p_harness):
    """uid 65534 opens 40 connections: 32 are served (--max-connections-per-user), the rest refused
    at once; root and another uid still connect and Exec."""
    h = p2p_harness
    h.start()
    h.make_socket_public()
    holder = as_uid(NOBODY, HOLDER.format(here=str(HERE), n=40, address=h.address))
    try:
        line = holder.stdout.readline().decode()
        assert line, holder.stderr.read().decode()
        served, refused = map(int, line.split())
        assert (served, refused) == (32, 8), line
        assert 'Refusing a connection of uid 65534' in h.log()
        assert_exec_works(h)    # root
        other = as_uid(1, textwrap.dedent(f'''
            import sys
            sys.path.insert(0, {str(HERE)!r})
            from sandbox_client import SandboxClient
            c = SandboxClient.open({h.address!r}, bus=False)
            r = c.run(['/usr/bin/id', '-u'])
            print(r.code, r.stdout.decode().strip())
        '''))
        out, err = other.communicate(timeout=20)
        assert out.decode().split() == ['0', '1'], err.decode()
    finally:
        holder.stdin.close()
        holder.wait(10)


def test_max_connections_per_user_option(p2p_harness):
    h = p2p_harness
    h.start('--max-connections-per-user=3')
    h.make_socket_public()
    holder = as_uid(NOBODY, HOLDER.format(here=str(HERE), n=5, address=h.address))
    try:
        line = holder.stdout.readline().decode()
        assert line.split() == ['3', '2'], (line, holder.stderr.read().decode())
    finally:
        holder.stdin.close()
        holder.wait(10)


# --- what must still work -----------------------------------------------------------------------

def test_fd_passing_still_works(p2p_harness, tmp_path):
    h = p2p_harness
    c = h.client(enable_fds=True)
    rfd, wfd = os.pipe()
    out_path = tmp_path / 'o'
    err_path = tmp_path / 'e'
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT, 0o644)
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(wfd, b'from stdin\n')
    os.close(wfd)
    try:
        r = c.run(['/bin/sh', '-c', 'cat; echo oops >&2'], {'stdin': rfd, 'stdout': out, 'stderr': err})
        assert r.code == 0
    finally:
        for fd in (rfd, out, err):
            os.close(fd)
    assert out_path.read_bytes() == b'from stdin\n'
    assert err_path.read_bytes() == b'oops\n'


def test_large_messages_still_work(p2p_harness):
    """A 1 MiB WriteStdin (the largest legitimate message) goes through whole."""
    h = p2p_harness
    c = h.client()
    sid, _ = c.exec(['/bin/sh', '-c', 'wc -c'])
    c.write_stdin(sid, b'z' * (1 << 20))
    c.close_stdin(sid)
    r = c.collect(sid)
    assert r.stdout.strip() == str(1 << 20).encode()


def test_busctl_still_works(p2p_harness):
    h = p2p_harness
    h.start()
    out = subprocess.run(['busctl', f'--address={h.address}', 'call', BUS_NAME, OBJECT_PATH, INTERFACE,
                          'ListSessions'], capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b'a'), out.stdout


def test_claimed_uid_is_ignored(p2p_harness):
    """uid 65534 claiming uid 0 in AUTH EXTERNAL is served as 65534: who connected is the socket's
    SO_PEERCRED, never what the peer says."""
    h = p2p_harness
    h.start()
    h.make_socket_public()
    script = textwrap.dedent(f'''
        import socket, sys
        sys.path.insert(0, {str(HERE)!r})
        from sandbox_client import Connection, SandboxClient
        s = socket.socket(socket.AF_UNIX)
        s.connect({parse_address(h.address)!r})
        s.sendall(b'\\0AUTH EXTERNAL 30\\r\\n')
        reply = s.recv(4096)
        if not reply.startswith(b'OK'):
            print('refused', reply)
            sys.exit(0)
        s.sendall(b'BEGIN\\r\\n')
        c = SandboxClient(Connection(s, bus=False))
        r = c.run(['/usr/bin/id', '-u'])
        print(r.code, r.stdout.decode().strip())
    ''')
    p = as_uid(NOBODY, script)
    out, err = p.communicate(timeout=20)
    words = out.decode().split()
    # Refused (as sd-bus did when it checked the claim itself) or served as itself, never as root.
    assert words[:1] == ['refused'] or words == ['0', str(NOBODY)], (out, err.decode())
