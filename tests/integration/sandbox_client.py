# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small blocking D-Bus client for org.example.Sandbox1, built on jeepney.

Works on a message bus (Hello, destination set) and on a peer-to-peer
connection (no Hello, no destination). Every message received gets a
sequence number so that tests can check ordering on the connection.

Run as a script it performs a list of actions given as JSON and prints the
results as JSON; tests use that to act as another uid (setpriv).
"""

import json
import os
import socket
import sys
import time
from collections import defaultdict

from jeepney import Header, Message, MessageType, HeaderFields, Endianness
from jeepney.auth import Authenticator, BEGIN
from jeepney.io.blocking import DBusConnectionBase, unwrap_read

BUS_NAME = 'org.example.Sandbox1'
OBJECT_PATH = '/org/example/Sandbox1'
INTERFACE = 'org.example.Sandbox1'
ERR = 'org.example.Sandbox1.Error.'
DBUS_ERR = 'org.freedesktop.DBus.Error.'

# The types of the Exec options of the contract (api.md).
OPTION_TYPES = {
    'cwd': 's',
    'env': 'as',
    'user': 's',
    'tty': 'b',
    'rows': 'q',
    'cols': 'q',
    'rlimits': 'a(stt)',
    'profile': 's',
    'timeout-usec': 't',
    'output-window': 't',
    'stdin': 'h',
    'stdout': 'h',
    'stderr': 'h',
    'tag': 's',
    'stdin-data': 'ay',
    'max-output': 't',
    'on-output-limit': 's',
    'timeout-grace-usec': 't',
}

RLIM_INFINITY = 18446744073709551615


class Var(tuple):
    """An explicitly typed variant: Var('s', 'true')."""
    def __new__(cls, sig, value):
        return tuple.__new__(cls, (sig, value))


class DBusError(Exception):
    """An error reply: .name is the D-Bus error name, .message its text."""
    def __init__(self, name, message):
        super().__init__(f'{name}: {message}')
        self.name = name
        self.message = message


def variant_for(key, value):
    if isinstance(value, Var):
        return tuple(value)
    sig = OPTION_TYPES.get(key)
    if sig is None:
        if isinstance(value, bool):
            sig = 'b'
        elif isinstance(value, int):
            sig = 't'
        elif isinstance(value, str):
            sig = 's'
        else:
            raise TypeError(f'no type known for option {key!r}; use Var()')
    return (sig, value)


def encode_options(options):
    return {k: variant_for(k, v) for k, v in (options or {}).items()}


# An sd-bus 252 server does not dispatch a message that arrives in the same
# read as the client's BEGIN until something else wakes the connection
# (test_p2p_begin_and_first_call_together checks sandboxd copes). Setting
# this makes the client wait after BEGIN on p2p, to test other things on a
# daemon with that bug.
P2P_BEGIN_DELAY = float(os.environ.get('SANDBOXD_TEST_BEGIN_DELAY', '0'))


def authenticate(path, enable_fds=False, timeout=5.0):
    """Connect and run the SASL EXTERNAL conversation up to, not including,
    BEGIN. Returns the socket."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        auth = Authenticator(enable_fds=enable_fds)
        for data in auth:
            sock.sendall(data)
            auth.feed(unwrap_read(sock.recv(1024)))
    except socket.timeout as e:
        sock.close()
        raise TimeoutError(f'did not authenticate in {timeout} s') from e
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


def parse_address(address):
    """unix:path=P -> P (the only kind the tests use)."""
    if address.startswith('unix:path='):
        return address[len('unix:path='):].split(',')[0]
    if address.startswith('/'):
        return address
    raise ValueError(f'unsupported address {address!r}')


class Connection(DBusConnectionBase):
    """A raw D-Bus connection; bus=True says Hello, bus=False is p2p."""

    def __init__(self, sock, enable_fds=False, bus=True, settle=True):
        super().__init__(sock, enable_fds)
        self.bus = bus
        self.seq = 0
        self.replies = {}      # reply serial -> (seq, msg)
        self.signals = []      # (seq, msg) not consumed yet
        self.closed = False
        self.serial = 0
        if bus:
            reply = self.call('/org/freedesktop/DBus', 'org.freedesktop.DBus',
                              'Hello', destination='org.freedesktop.DBus')
            self.unique_name = reply[0]
        elif enable_fds and settle:
            # sd-bus servers drop a connection whose fds arrive in the same
            # read as BEGIN (test_p2p_begin_and_first_call_with_fd_together
            # checks that case): one round trip first, so that fd tests test
            # fd passing.
            self.call(OBJECT_PATH, 'org.freedesktop.DBus.Peer', 'Ping', timeout=5)

    @classmethod
    def open(cls, address, enable_fds=False, bus=True, timeout=5.0):
        sock = authenticate(parse_address(address), enable_fds, timeout=timeout)
        sock.sendall(BEGIN)
        if not bus and P2P_BEGIN_DELAY > 0:
            time.sleep(P2P_BEGIN_DELAY)
        return cls(sock, enable_fds=enable_fds, bus=bus)

    def _read_some_data(self, timeout=None):
        # jeepney reads 4 KiB at a time without fds; multi-MiB output tests
        # want bigger reads. With fds, keep jeepney's one-message reads.
        if self.enable_fds:
            return super()._read_some_data(timeout)
        for key, ev in self.selector.select(timeout):
            if key == self.select_key:
                return unwrap_read(self.sock.recv(1 << 20)), []
        raise TimeoutError

    def send(self, msg):
        self.serial += 1
        data, fds = self._serialise(msg, self.serial)
        if fds:
            self._send_with_fds(data, fds)
        else:
            self.sock.sendall(data)
        return self.serial

    def pump(self, timeout):
        """Receive one message (or raise TimeoutError) and file it."""
        msg = self._receive(time.monotonic() + max(timeout, 0))
        self.seq += 1
        t = msg.header.message_type
        if t in (MessageType.method_return, MessageType.error):
            self.replies[msg.header.fields.get(HeaderFields.reply_serial)] = (self.seq, msg)
        elif t == MessageType.signal:
            self.signals.append((self.seq, msg))
        elif t == MessageType.method_call:
            self._answer_call(msg)
        return msg

    def _answer_call(self, msg):
        """Answer Peer.Ping, and anything else with UnknownMethod, as D-Bus libraries do: the
        daemon pings bus clients that have much Output in flight and waits for the answer."""
        if msg.header.flags & 1:  # NO_REPLY_EXPECTED
            return
        fields = {HeaderFields.reply_serial: msg.header.serial}
        sender = msg.header.fields.get(HeaderFields.sender)
        if sender and self.bus:
            fields[HeaderFields.destination] = sender
        if (msg.header.fields.get(HeaderFields.interface) == 'org.freedesktop.DBus.Peer'
                and msg.header.fields.get(HeaderFields.member) == 'Ping'):
            header = Header(Endianness.little, MessageType.method_return, 0, 1, -1, -1, fields)
            body = ()
        else:
            fields[HeaderFields.error_name] = 'org.freedesktop.DBus.Error.UnknownMethod'
            fields[HeaderFields.signature] = 's'
            header = Header(Endianness.little, MessageType.error, 0, 1, -1, -1, fields)
            body = ('Unknown method',)
        try:
            self.send(Message(header, body))
        except OSError:
            pass

    def make_call(self, path, interface, member, signature=None, body=(),
                  destination=None, flags=0):
        fields = {HeaderFields.path: path, HeaderFields.member: member}
        if interface:
            fields[HeaderFields.interface] = interface
        if destination and self.bus:
            fields[HeaderFields.destination] = destination
        if signature:
            fields[HeaderFields.signature] = signature
        header = Header(Endianness.little, MessageType.method_call, flags, 1, -1, -1, fields)
        return Message(header, body)

    def call_msg(self, msg, timeout=10.0):
        """Send a method call, return (seq, reply message)."""
        serial = self.send(msg)
        deadline = time.monotonic() + timeout
        while serial not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'no reply to {msg.header.fields.get(HeaderFields.member)} '
                                   f'within {timeout} s')
            self.pump(left)
        return self.replies.pop(serial)

    def call(self, path, interface, member, signature=None, body=(),
             destination=None, timeout=10.0, flags=0, with_seq=False):
        msg = self.make_call(path, interface, member, signature, body, destination, flags)
        seq, reply = self.call_msg(msg, timeout)
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name)
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ''
            raise DBusError(name, text)
        return (seq, reply.body) if with_seq else reply.body

    def dbus(self, member, signature=None, body=(), timeout=5.0):
        """Call the message bus itself."""
        return self.call('/org/freedesktop/DBus', 'org.freedesktop.DBus', member,
                         signature, body, destination='org.freedesktop.DBus',
                         timeout=timeout)

    def close(self):
        if not self.closed:
            self.closed = True
            super().close()


class Result:
    def __init__(self):
        self.chunks = []       # (stream, data) in arrival order
        self.code = None
        self.signal = None
        self.exited = 0        # how many Exited signals
        self.after_exit = []   # members of signals for the id after Exited
        self.seqs = []         # sequence numbers of every signal of the id
        self.serials = []      # the D-Bus serials of its Output signals
        self.destinations = set()
        self.paths = set()
        self.senders = set()

    def stream(self, n):
        return b''.join(d for s, d in self.chunks if s == n)

    @property
    def stdout(self):
        return self.stream(1)

    @property
    def stderr(self):
        return self.stream(2)

    def __repr__(self):
        return (f'Result(code={self.code}, signal={self.signal}, exited={self.exited}, '
                f'stdout={self.stdout[:200]!r}, stderr={self.stderr[:200]!r})')


class SandboxClient:
    def __init__(self, conn):
        self.conn = conn
        self.results = defaultdict(Result)
        self.exec_seq = {}
        self.foreign = []      # signals of the interface for ids we never got
        self.other_signals = []  # signals of other interfaces (PropertiesChanged)

    @classmethod
    def open(cls, address, bus=True, enable_fds=False):
        return cls(Connection.open(address, enable_fds=enable_fds, bus=bus))

    def close(self):
        self.conn.close()

    # --- plumbing ---------------------------------------------------------

    def _dispatch(self):
        sigs, self.conn.signals = self.conn.signals, []
        for seq, msg in sigs:
            f = msg.header.fields
            if f.get(HeaderFields.interface) != INTERFACE:
                self.other_signals.append(msg)
                continue
            member = f.get(HeaderFields.member)
            body = msg.body
            if member not in ('Output', 'Exited') or not body:
                self.foreign.append((seq, msg))
                continue
            r = self.results[body[0]]
            r.seqs.append(seq)
            r.destinations.add(f.get(HeaderFields.destination))
            r.paths.add(f.get(HeaderFields.path))
            r.senders.add(f.get(HeaderFields.sender))
            if r.exited:
                r.after_exit.append(member)
            if member == 'Output':
                r.chunks.append((body[1], bytes(body[2])))
                r.serials.append(msg.header.serial)
            else:
                r.exited += 1
                if r.exited == 1:
                    r.code, r.signal = body[1], body[2]

    def pump(self, timeout):
        try:
            self.conn.pump(timeout)
        finally:
            self._dispatch()

    def _call(self, member, signature=None, body=(), timeout=10.0, with_seq=False):
        try:
            return self.conn.call(OBJECT_PATH, INTERFACE, member, signature, body,
                                  destination=BUS_NAME, timeout=timeout, with_seq=with_seq)
        finally:
            self._dispatch()

    # --- the interface ----------------------------------------------------

    def exec(self, argv, options=None, timeout=10.0):
        seq, (sid, pid) = self._call('Exec', 'asa{sv}', (list(argv), encode_options(options)),
                                     timeout=timeout, with_seq=True)
        self.exec_seq[sid] = seq
        return sid, pid

    def exec_raw(self, argv, options_variants, timeout=10.0):
        """Exec with options already encoded as {key: (sig, value)}."""
        return self._call('Exec', 'asa{sv}', (list(argv), options_variants), timeout=timeout)

    def run_call(self, argv, options=None, text=False, timeout=10.0):
        """Run or RunText: (code, signal, stdout, stderr, info as a plain dict)."""
        code, sig, out, err, info = self._call('RunText' if text else 'Run', 'asa{sv}',
                                               (list(argv), encode_options(options)), timeout=timeout)
        if not text:
            out, err = bytes(out), bytes(err)
        return code, sig, out, err, {k: v[1] for k, v in info.items()}

    def get_property(self, name, interface=INTERFACE, path=OBJECT_PATH):
        return self.conn.call(path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', (interface, name),
                              destination=BUS_NAME)[0][1]

    def signal(self, sid, signo):
        return self._call('Signal', 'ui', (sid, signo))

    def resize(self, sid, rows, cols):
        return self._call('Resize', 'uqq', (sid, rows, cols))

    def write_stdin(self, sid, data):
        return self._call('WriteStdin', 'uay', (sid, bytes(data)))

    def close_stdin(self, sid):
        return self._call('CloseStdin', 'u', (sid,))

    def ack(self, sid, nbytes):
        return self._call('Ack', 'ut', (sid, nbytes))

    def list_sessions(self):
        return self._call('ListSessions')[0]

    # --- waiting ----------------------------------------------------------

    def collect(self, sid, timeout=10.0, linger=0.0):
        """Wait for Exited(sid); then keep listening `linger` seconds to see
        whether anything else arrives for the id. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        r = self.results[sid]
        while not r.exited:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'no Exited for session {sid} within {timeout} s; got {r!r}')
            self.pump(left)
        self.idle(linger)
        return r

    def idle(self, seconds):
        """Receive whatever arrives during `seconds`."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                self.pump(left)
            except TimeoutError:
                return

    def wait_output(self, sid, needle, stream=1, timeout=5.0):
        deadline = time.monotonic() + timeout
        r = self.results[sid]
        while needle not in r.stream(stream):
            if r.exited:
                raise AssertionError(f'session {sid} exited before printing {needle!r}: {r!r}')
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'{needle!r} not seen within {timeout} s: {r!r}')
            self.pump(left)
        return r

    def run(self, argv, options=None, timeout=10.0, linger=0.0):
        sid, pid = self.exec(argv, options)
        r = self.collect(sid, timeout=timeout, linger=linger)
        r.id, r.pid = sid, pid
        return r


# --- /proc helpers ---------------------------------------------------------

def _proc_stat(pid):
    """(state, ppid, starttime) of a pid, or None."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = s[s.rindex(')') + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    st = _proc_stat(pid)
    return st is not None and st[0] not in ('Z', 'X')


def pid_exists(pid):
    """True if there is any /proc entry (a zombie counts)."""
    return _proc_stat(pid) is not None


def children_of(pid):
    out = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            st = _proc_stat(int(d))
            if st and st[1] == pid:
                out.append(int(d))
    return out


def descendants_of(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children_of(p):
            out.append(c)
            todo.append(c)
    return out


def wait_until(pred, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)



# --- script mode: act as another user ------------------------------------

def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return v.decode('latin-1')
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def main(argv):
    """sandbox_client.py ADDRESS bus|p2p ACTIONS_JSON

    Actions: ["list"], ["exec", argv, options], ["signal", id, n],
    ["write", id, text], ["close", id] (id None: the last Exec), ["resize", id, r, c],
    ["collect", id or None for the last Exec], ["sleep", seconds], ["dbus", member, signature, args],
    ["call", destination, path, interface, member, signature, args]
    Prints a JSON list with {"ok": value} or {"error": name, "message": m}.
    """
    address, kind, actions = argv[1], argv[2], json.loads(argv[3])
    c = SandboxClient.open(address, bus=(kind == 'bus'))
    out = []
    last = None
    for a in actions:
        try:
            op = a[0]
            if op == 'list':
                v = c.list_sessions()
            elif op == 'exec':
                v = c.exec(a[1], a[2] if len(a) > 2 else None)
                last = v[0]
            elif op == 'signal':
                v = c.signal(a[1], a[2])
            elif op == 'write':
                v = c.write_stdin(last if a[1] is None else a[1], a[2].encode())
            elif op == 'close':
                v = c.close_stdin(last if a[1] is None else a[1])
            elif op == 'resize':
                v = c.resize(a[1], a[2], a[3])
            elif op == 'collect':
                r = c.collect(a[1] if len(a) > 1 and a[1] is not None else last, timeout=10)
                v = {'code': r.code, 'signal': r.signal, 'stdout': r.stdout, 'stderr': r.stderr}
            elif op == 'sleep':
                time.sleep(a[1])
                v = None
            elif op == 'dbus':
                v = c.conn.dbus(a[1], a[2], tuple(a[3]))
            elif op == 'call':
                v = c.conn.call(a[2], a[3], a[4], a[5], tuple(a[6]), destination=a[1], timeout=5)
            else:
                raise ValueError(f'unknown action {op}')
            out.append({'ok': _jsonable(v)})
        except DBusError as e:
            out.append({'error': e.name, 'message': e.message})
        except Exception as e:  # noqa: BLE001 - reported to the test
            out.append({'error': 'python.' + type(e).__name__, 'message': str(e)})
    c.close()
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
