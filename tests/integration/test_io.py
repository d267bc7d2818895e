# SPDX-License-Identifier: LGPL-2.1-or-later
"""Output, stdin, PTYs, fd passing and flow control (api.md)."""

import hashlib
import os
import random
import select
import time

import pytest

from sandbox_client import DBusError, ERR, DBUS_ERR, pid_alive

PY = '/usr/bin/python3'

# Writes every byte value 64 times, then 8 MiB of a deterministic pattern,
# to stdout in one go; a marker plus every byte value to stderr.
PATTERN_CHILD = r'''
import hashlib, sys
o = sys.stdout.buffer
o.write(bytes(range(256)) * 64)
o.write(b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(262144)))
o.flush()
sys.stderr.buffer.write(b"E" + bytes(range(256)) + b"\n")
'''


def expected_pattern():
    return bytes(range(256)) * 64 + b''.join(
        hashlib.sha256(b'%d' % i).digest() for i in range(262144))


def read_until_eof(fd, timeout):
    """Read a pipe until EOF; fail if EOF does not come in time."""
    out = b''
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        r, _, _ = select.select([fd], [], [], max(left, 0))
        if not r:
            raise AssertionError(f'no EOF within {timeout} s (someone still holds the '
                                 f'write end); read so far {out[:100]!r}')
        b = os.read(fd, 65536)
        if not b:
            return out
        out += b


# --- output ----------------------------------------------------------------

def test_binary_output_exact_and_in_order(client):
    sid, pid = client.exec([PY, '-c', PATTERN_CHILD])
    r = client.collect(sid, timeout=60)
    assert (r.code, r.signal) == (0, 0), r
    expect = expected_pattern()
    out = r.stdout
    assert len(out) == len(expect), f'got {len(out)} bytes, expected {len(expect)}'
    assert out == expect, 'stdout differs from what the command wrote'
    assert r.stderr == b'E' + bytes(range(256)) + b'\n'
    chunks = [d for s, d in r.chunks if s == 1]
    mean = len(out) / len(chunks)
    assert mean >= 16384, f'{len(chunks)} Output signals, mean {mean:.0f} bytes: too small'


def test_fast_writer_gets_large_signals(harness):
    """A command that fills its pipe has the pipe grown, and peer-to-peer its output comes in
    signals of more than the kernel's default 64 KiB pipe, but never more than 256 KiB; on the bus
    in signals of at most 32 KiB, which dbus-daemon passes on faster (org.example.Sandbox1(5))."""
    client = harness.client()
    size = 32 * 1024 * 1024
    sid, pid = client.exec(['head', '-c', str(size), '/dev/zero'])
    r = client.collect(sid, timeout=60)
    assert (r.code, r.signal) == (0, 0), r
    sizes = [len(d) for s, d in r.chunks if s == 1]
    assert sum(sizes) == size
    if harness.is_bus:
        # How full they are depends on how far the daemon fell behind the command at each read.
        assert max(sizes) == 32768, max(sizes)
    else:
        assert max(sizes) <= 262144, max(sizes)
        assert max(sizes) > 65536, f'no signal above 64 KiB among {len(sizes)}: the pipe was not grown'


# Writes SIZE bytes of random.Random(SEED) to stdout, and as many of SEED + 1 to stderr at the same
# time.
TWO_STREAMS_CHILD = r'''
import os, random, sys, threading
seed, size = int(sys.argv[1]), int(sys.argv[2])
def write(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view[:65536]):]
t = threading.Thread(target=write, args=(2, random.Random(seed + 1).randbytes(size)))
t.start()
write(1, random.Random(seed).randbytes(size))
t.join()
'''

# The serials sandboxd gives the Output signals it writes on a unix socket by hand (zero-copy from
# the pipe); sd-bus counts its own up from 1.
SPLICED_SERIAL_MIN = 0x80000000


def test_fast_output_of_concurrent_streams_is_exact(harness):
    """Two sessions on one connection, each writing 16 MiB to stdout and to stderr at once: every
    stream arrives whole and in order. On a peer-to-peer unix socket most of it is spliced from the
    pipes (output-splice.c), which the serials show; through dbus-daemon none of it is, and it comes
    in signals of at most 32 KiB (OUTPUT_BUS_MESSAGE_MAX), where peer-to-peer ones are larger."""
    client = harness.client()
    size = 16 * 1024 * 1024
    sids = [client.exec([PY, '-c', TWO_STREAMS_CHILD, str(seed), str(size)])[0] for seed in (1, 3)]
    for sid, seed in zip(sids, (1, 3)):
        r = client.collect(sid, timeout=120)
        assert (r.code, r.signal) == (0, 0), r
        assert r.stdout == random.Random(seed).randbytes(size), f'session {sid}: stdout differs'
        assert r.stderr == random.Random(seed + 1).randbytes(size), f'session {sid}: stderr differs'
        spliced = sum(1 for serial in r.serials if serial >= SPLICED_SERIAL_MIN)
        largest = max(len(data) for _, data in r.chunks)
        if harness.is_bus:
            assert spliced == 0, r.serials
            assert largest == 32 * 1024, largest
        else:
            assert spliced > 0, f'nothing spliced among {len(r.serials)} signals'
            assert largest > 32 * 1024, largest


PIPE_SIZE_CHILD = r'''
import fcntl, os, sys, time
os.write(1, bytes(2 * 1024 * 1024))
time.sleep(0.3)
sys.stderr.write("%d\n" % fcntl.fcntl(1, 1032))  # F_GETPIPE_SZ
'''


def test_fast_writer_pipe_is_grown(harness):
    """A pipe the command fills is grown: to 1 MiB where its output is spliced (peer-to-peer on a
    unix socket), so that the command writes on while the daemon rests; to 256 KiB elsewhere."""
    client = harness.client()
    r = client.run([PY, '-c', PIPE_SIZE_CHILD], timeout=30)
    assert (r.code, r.signal) == (0, 0), r
    assert len(r.stdout) == 2 * 1024 * 1024
    assert int(r.stderr) == (262144 if harness.is_bus else 1048576), r.stderr


def test_fast_output_exact_when_the_client_reads_late(client):
    """The client reads nothing for a while, so the socket fills while the command writes; then it
    reads everything. What the daemon wrote by hand and what sd-bus queued meanwhile arrive whole
    and in order, before Exited."""
    sid, pid = client.exec([PY, '-c', TWO_STREAMS_CHILD, '5', str(12 * 1024 * 1024)])
    time.sleep(1.5)
    r = client.collect(sid, timeout=120)
    assert (r.code, r.signal) == (0, 0), r
    assert r.stdout == random.Random(5).randbytes(12 * 1024 * 1024)
    assert r.stderr == random.Random(6).randbytes(12 * 1024 * 1024)
    assert r.after_exit == []


@pytest.mark.parametrize('tty', [False, True], ids=['pipes', 'pty'])
def test_tail_not_lost(client, tty):
    """A command that writes ~100 KiB and exits at once: every byte arrives
    before Exited."""
    expect = ''.join(f'{i}\n' for i in range(1, 20001)).encode()
    if tty:
        expect = expect.replace(b'\n', b'\r\n')
    for _ in range(4):
        r = client.run(['/usr/bin/seq', '1', '20000'], {'tty': tty}, timeout=10)
        assert (r.code, r.signal) == (0, 0), r
        assert len(r.stdout) == len(expect)
        assert r.stdout == expect
        assert r.stderr == b''


def test_tail_not_lost_both_streams(client):
    expect = ''.join(f'{i}\n' for i in range(1, 20001)).encode()
    for _ in range(3):
        r = client.run(['/bin/sh', '-c', 'seq 1 20000; seq 1 20000 >&2'], timeout=10)
        assert r.stdout == expect and r.stderr == expect, (len(r.stdout), len(r.stderr))


def test_stderr_is_stream_2(client):
    r = client.run(['/bin/sh', '-c', 'echo out; echo err >&2'], timeout=5)
    assert r.stdout == b'out\n'
    assert r.stderr == b'err\n'
    assert {s for s, _ in r.chunks} == {1, 2}


@pytest.mark.parametrize('tty', [False, True], ids=['pipes', 'pty'])
def test_exited_not_held_back_by_background_child(client, tty):
    t0 = time.monotonic()
    sid, pid = client.exec(['/bin/sh', '-c', 'sleep 30 & echo $!; echo done'], {'tty': tty})
    try:
        r = client.collect(sid, timeout=5)
        elapsed = time.monotonic() - t0
        lines = r.stdout.replace(b'\r', b'').split(b'\n')
        assert b'done' in lines, r
        assert (r.code, r.signal) == (0, 0), r
        assert elapsed < 2.5, f'Exited took {elapsed:.1f} s: held back by the background child'
    finally:
        try:
            bg = int(client.results[sid].stdout.replace(b'\r', b'').split(b'\n')[0])
            if pid_alive(bg):
                os.kill(bg, 9)
        except (ValueError, ProcessLookupError):
            pass


@pytest.mark.parametrize('tty', [False, True], ids=['pipes', 'pty'])
def test_exited_not_held_back_by_background_writer(client, tty):
    """A background child that never stops writing to the session's output: the final drain
    takes what the command left behind, and Exited follows, not an endless relay."""
    t0 = time.monotonic()
    sid, pid = client.exec(['/bin/sh', '-c', 'for i in 1 2 3; do cat /dev/zero & echo $! >&2; done; echo done; exit 4'],
                           {'tty': tty})
    try:
        r = client.collect(sid, timeout=10)
        elapsed = time.monotonic() - t0
        assert (r.code, r.signal) == (4, 0), r
        assert elapsed < 5, f'Exited took {elapsed:.1f} s: the drain followed the background writer'
    finally:
        out = client.results[sid]
        text = (out.stderr + out.stdout).replace(b'\r', b'').split(b'\n')
        for line in text:
            if line.strip().isdigit() and pid_alive(int(line)):
                try:
                    os.kill(int(line), 9)
                except ProcessLookupError:
                    pass


def test_command_that_closes_its_output_early(client):
    """What was written before the command closed its stdout and stderr arrives, and Exited comes
    when it exits: the daemon keeps its own write end of each pipe, so it never sees EOF there."""
    t0 = time.monotonic()
    r = client.run(['/bin/sh', '-c', 'echo out; echo err >&2; exec >&- 2>&-; sleep 0.5; exit 3'],
                   timeout=5)
    assert (r.code, r.signal) == (3, 0), r
    assert (r.stdout, r.stderr) == (b'out\n', b'err\n'), r
    assert time.monotonic() - t0 >= 0.5, 'Exited came before the command exited'


# --- stdin -----------------------------------------------------------------

def test_stdin_round_trip(client):
    data = random.Random(7).randbytes(600000)
    sid, pid = client.exec(['/bin/cat'])
    pos = 0
    for size in (1, 2, 100, 4096, 65536, 1, 200000, 7, 300000):
        client.write_stdin(sid, data[pos:pos + size])
        pos += size
    client.write_stdin(sid, data[pos:])
    client.close_stdin(sid)
    r = client.collect(sid, timeout=20)
    assert (r.code, r.signal) == (0, 0), r
    assert len(r.stdout) == len(data)
    assert r.stdout == data


def test_stdin_after_exit_and_unknown(client):
    sid, pid = client.exec(['/bin/true'])
    client.collect(sid, timeout=5)
    for fn in (lambda i: client.write_stdin(i, b'x'), lambda i: client.close_stdin(i)):
        for i in (sid, 0xfffffff0):
            with pytest.raises(DBusError) as ei:
                fn(i)
            assert ei.value.name == ERR + 'NoSuchSession', ei.value


def test_close_stdin_twice_is_harmless(client):
    sid, pid = client.exec(['/bin/cat'])
    client.write_stdin(sid, b'abc')
    client.close_stdin(sid)
    try:
        client.close_stdin(sid)
    except DBusError as e:
        # Either a no-op or a clean error; the session must still end normally.
        assert e.name.startswith(('org.freedesktop.DBus.Error.', ERR)), e
    r = client.collect(sid, timeout=5)
    assert r.stdout == b'abc' and (r.code, r.signal) == (0, 0), r


# --- PTY -------------------------------------------------------------------

def test_pty_initial_size(client):
    r = client.run(['/usr/bin/stty', 'size'], {'tty': True, 'rows': 40, 'cols': 120}, timeout=5)
    assert r.stdout == b'40 120\r\n', r


def test_pty_default_size(client):
    r = client.run(['/usr/bin/stty', 'size'], {'tty': True}, timeout=5)
    assert r.stdout == b'24 80\r\n', r


def test_pty_is_controlling_terminal(client):
    r = client.run(['/bin/sh', '-c', 'ps -o sid=,pgid=,pid=,tty= -p $$; tty'],
                   {'tty': True}, timeout=5)
    lines = r.stdout.decode().replace('\r', '').split('\n')
    sid_, pgid, pid, tty = lines[0].split()
    assert sid_ == pid == pgid == str(r.pid), lines
    assert tty.startswith('pts/'), lines
    assert lines[1] == '/dev/' + tty, lines


def test_pty_resize_sends_winch(client):
    script = "trap 'stty size; exit 0' WINCH; echo ready; while :; do sleep 0.05; done"
    sid, pid = client.exec(['/bin/sh', '-c', script], {'tty': True, 'rows': 30, 'cols': 100})
    client.wait_output(sid, b'ready', timeout=5)
    client.resize(sid, 50, 132)
    r = client.collect(sid, timeout=5)
    assert b'50 132' in r.stdout, r
    assert (r.code, r.signal) == (0, 0)


def test_resize_pipe_session_not_supported(client):
    sid, pid = client.exec(['/bin/sleep', '100'])
    with pytest.raises(DBusError) as ei:
        client.resize(sid, 50, 132)
    assert ei.value.name == DBUS_ERR + 'NotSupported', ei.value
    client.signal(sid, 9)
    client.collect(sid, timeout=5)


def test_resize_unknown_session(client):
    with pytest.raises(DBusError) as ei:
        client.resize(0xfffffff0, 50, 132)
    assert ei.value.name == ERR + 'NoSuchSession', ei.value


def test_pty_close_stdin_sends_eof(client):
    sid, pid = client.exec(['/bin/cat'], {'tty': True})
    client.write_stdin(sid, b'abc\n')
    client.wait_output(sid, b'abc\r\nabc\r\n', timeout=5)   # echo + cat's copy
    client.close_stdin(sid)
    r = client.collect(sid, timeout=5)
    assert (r.code, r.signal) == (0, 0), r


def test_pty_input_reaches_program(client):
    sid, pid = client.exec(['/bin/sh', '-c', 'read a; echo "got:$a"'], {'tty': True})
    client.write_stdin(sid, b'hello\r')
    r = client.collect(sid, timeout=5)
    assert b'got:hello' in r.stdout, r


def test_pty_ctrl_c_interrupts(client):
    sid, pid = client.exec(['/bin/sh', '-c', 'echo ready; exec sleep 100'], {'tty': True})
    client.wait_output(sid, b'ready', timeout=5)
    time.sleep(0.2)
    client.write_stdin(sid, b'\x03')
    r = client.collect(sid, timeout=5)
    assert (r.code, r.signal) == (-1, 2), r


# --- fd passing ------------------------------------------------------------

@pytest.fixture
def fd_client(harness):
    return harness.client(enable_fds=True)


def test_stdout_to_passed_fd(fd_client):
    rfd, wfd = os.pipe()
    try:
        sid, pid = fd_client.exec(['/bin/sh', '-c', 'echo hello; echo err >&2'], {'stdout': wfd})
        os.close(wfd)
        wfd = None
        r = fd_client.collect(sid, timeout=5, linger=0.2)
        assert (r.code, r.signal) == (0, 0)
        assert r.stdout == b'' and not any(s == 1 for s, _ in r.chunks), \
            'a stream given as fd must send no Output signals'
        assert r.stderr == b'err\n'
        # EOF proves the daemon closed its own copy of the fd.
        assert read_until_eof(rfd, 3) == b'hello\n'
    finally:
        os.close(rfd)
        if wfd is not None:
            os.close(wfd)


def test_stderr_to_passed_fd(fd_client):
    rfd, wfd = os.pipe()
    try:
        sid, pid = fd_client.exec(['/bin/sh', '-c', 'echo out; echo err >&2'], {'stderr': wfd})
        os.close(wfd)
        wfd = None
        r = fd_client.collect(sid, timeout=5, linger=0.2)
        assert r.stdout == b'out\n'
        assert not any(s == 2 for s, _ in r.chunks)
        assert read_until_eof(rfd, 3) == b'err\n'
    finally:
        os.close(rfd)
        if wfd is not None:
            os.close(wfd)


def test_stdin_from_passed_file(fd_client, tmpdir_public):
    content = random.Random(3).randbytes(100000)
    f = tmpdir_public / 'input'
    f.write_bytes(content)
    fd = os.open(f, os.O_RDONLY)
    try:
        sid, pid = fd_client.exec(['/bin/cat'], {'stdin': fd})
    finally:
        os.close(fd)
    r = fd_client.collect(sid, timeout=10)
    assert (r.code, r.signal) == (0, 0), r
    assert r.stdout == content


def test_all_streams_passed(fd_client, tmpdir_public):
    f = tmpdir_public / 'in'
    f.write_bytes(b'line1\nline2\n')
    ifd = os.open(f, os.O_RDONLY)
    rfd, wfd = os.pipe()
    try:
        sid, pid = fd_client.exec(['/bin/sh', '-c', 'cat; echo e >&2'],
                                  {'stdin': ifd, 'stdout': wfd, 'stderr': wfd})
        os.close(wfd)
        wfd = None
        r = fd_client.collect(sid, timeout=5, linger=0.2)
        assert r.chunks == [], r.chunks
        assert (r.code, r.signal) == (0, 0)
        assert read_until_eof(rfd, 3) == b'line1\nline2\ne\n'
    finally:
        os.close(ifd)
        os.close(rfd)
        if wfd is not None:
            os.close(wfd)


# --- flow control ------------------------------------------------------------

def test_output_window(client):
    window = 65536
    total = 1 << 20
    child = ('import sys\nfor i in range(256): sys.stdout.buffer.write(bytes([i]) * 4096); '
             'sys.stdout.buffer.flush()')
    sid, pid = client.exec([PY, '-c', child], {'output-window': window})
    r = client.results[sid]
    client.idle(1.0)
    got = len(r.stdout)
    assert 0 < got <= window, f'{got} bytes sent without Ack, window {window}'
    assert not r.exited, 'the child cannot have finished: it must be blocked'
    acked = 0
    deadline = time.monotonic() + 10
    while not r.exited:
        got = len(r.stdout)
        assert got - acked <= window, f'{got - acked} unacknowledged bytes > window {window}'
        if got > acked:
            try:
                client.ack(sid, got - acked)
            except DBusError as e:
                # The session may have ended (Exited not read yet): then it
                # is rightly unknown.
                assert e.name == ERR + 'NoSuchSession', e
                client.collect(sid, timeout=2)
                break
            acked = got
        assert time.monotonic() < deadline, 'output stalled'
        try:
            client.pump(2.0)
        except TimeoutError:
            pass
    assert (r.code, r.signal) == (0, 0), r
    assert r.stdout == b''.join(bytes([i]) * 4096 for i in range(256))
    assert len(r.stdout) == total


def test_pty_merges_stderr_into_stream_1(client):
    r = client.run(['/bin/sh', '-c', 'echo out; echo err >&2'], {'tty': True}, timeout=5)
    assert r.stdout == b'out\r\nerr\r\n', r
    assert not any(s == 2 for s, _ in r.chunks)


def test_close_stdin_keeps_queued_data(client):
    """Data queued by WriteStdin is written before the EOF of CloseStdin."""
    data = random.Random(11).randbytes(512 * 1024)
    sid, pid = client.exec(['/bin/sh', '-c', 'sleep 0.5; exec cat'])
    for i in range(0, len(data), 65536):
        client.write_stdin(sid, data[i:i + 65536])
    client.close_stdin(sid)
    r = client.collect(sid, timeout=10)
    assert (r.code, r.signal) == (0, 0), r
    assert len(r.stdout) == len(data)
    assert r.stdout == data


def test_write_stdin_to_slow_reader_does_not_block_daemon(harness):
    """WriteStdin returns once the data is queued; while a child is not
    reading, the daemon keeps answering. (sandboxd bounds the queue at
    1 MiB per session, past which WriteStdin fails with LimitsExceeded: stay
    below it.)"""
    c = harness.client()
    other = harness.client()
    data = random.Random(5).randbytes(960 * 1024)
    sid, pid = c.exec(['/bin/sh', '-c', 'sleep 2; exec cat'])
    for i in range(0, len(data), 65536):
        c.write_stdin(sid, data[i:i + 65536])
        t0 = time.monotonic()
        other.list_sessions()
        assert time.monotonic() - t0 < 1.0, 'daemon blocked writing to a full pipe'
    c.close_stdin(sid)
    r = c.collect(sid, timeout=15)
    assert r.stdout == data
