# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures: a private system bus and the real sandboxd, per test.

harness             parametrized over 'bus' (dbus-daemon), 'broker' (dbus-broker) and 'p2p'
bus_harness         both system buses: 'bus' and 'broker'
daemon_bus_harness  only dbus-daemon, for what is specific to it
p2p_harness         only the --listen variant

A harness starts lazily: harness.start('--max-sessions=3') starts the daemon
with extra options, harness.client() starts it with defaults if needed.
"""

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from jeepney import Endianness, Header, HeaderFields, Message, MessageType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sandbox_client import (  # noqa: E402
    SandboxClient, Connection, BUS_NAME, _proc_stat, descendants_of)

REPO = HERE.parents[1]
SANDBOXD = os.environ.get('SANDBOXD') or str(REPO / 'build' / 'src' / 'daemon' / 'sandboxd')
DBUS_POLICY_DIR = REPO / 'dbus'
CLIENT_PY = HERE / 'sandbox_client.py'
DBUS_DAEMON = shutil.which('dbus-daemon') or '/usr/bin/dbus-daemon'
# dbus-broker, unpacked (never installed: that would make it the machine's dbus.service) by
# tools/install-deps.sh; SANDBOXD_TEST_DBUS_BROKER names another unpacked tree.
DBUS_BROKER_ROOT = Path(os.environ.get('SANDBOXD_TEST_DBUS_BROKER') or
                        '/var/cache/sandboxd-test/dbus-broker')
UNSHARE = shutil.which('unshare') or '/usr/bin/unshare'
BUS_TRANSPORTS = ('bus', 'broker')
SETPRIV = shutil.which('setpriv') or '/usr/bin/setpriv'

NOBODY_UID = 65534
NOBODY_GID = 65534

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>

  <!-- The default policy of /usr/share/dbus-1/system.conf -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus" />
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>

  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>

  <!-- As polkit's own policy file has it, so that a test may run a stand-in authority
       (Harness.fake_polkit); without one, nobody owns the name and checks fail as before. -->
  <policy user="root">
    <allow own="org.freedesktop.PolicyKit1"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.PolicyKit1"
           send_interface="org.freedesktop.PolicyKit1.Authority"/>
  </policy>

  <!-- The project's own policy, from the source tree -->
  <includedir>{policy_dir}</includedir>
</busconfig>
"""


class _AllowAllAuthority(Connection):
    """Answers org.freedesktop.PolicyKit1.Authority.CheckAuthorization: authorized."""

    def __init__(self, *args, **kwargs):
        self.checks = []       # (action, subject) asked about
        super().__init__(*args, **kwargs)

    def _answer_call(self, msg):
        f = msg.header.fields
        if not (f.get(HeaderFields.interface) == 'org.freedesktop.PolicyKit1.Authority'
                and f.get(HeaderFields.member) == 'CheckAuthorization'):
            return super()._answer_call(msg)
        self.checks.append((msg.body[1], msg.body[0]))
        fields = {HeaderFields.reply_serial: msg.header.serial,
                  HeaderFields.destination: f.get(HeaderFields.sender),
                  HeaderFields.signature: '(bba{ss})'}
        header = Header(Endianness.little, MessageType.method_return, 0, 1, -1, -1, fields)
        try:
            self.send(Message(header, ((True, False, {}),)))
        except OSError:
            pass


def _kill_checked(pid, starttime, sig=signal.SIGKILL):
    st = _proc_stat(pid)
    if st and st[2] == starttime:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class Harness:
    def __init__(self, transport):
        self.transport = transport
        self.tmp = Path(tempfile.mkdtemp(prefix='sandboxd-it-'))
        os.chmod(self.tmp, 0o755)   # other uids reach the sockets
        self.bus_socket = self.tmp / 'bus'
        self.io_socket = self.tmp / 'io.socket'
        self.log_path = self.tmp / 'sandboxd.log'
        self.bus_proc = None
        self.journal = None        # dbus-broker's log socket
        self.bus_log_path = self.tmp / 'bus.log'
        self.daemon = None
        self.clients = []
        self.died = None
        self.expect_exit = False   # set by tests that make the daemon exit

    # --- the pieces ---------------------------------------------------

    @property
    def bus_address(self):
        return f'unix:path={self.bus_socket}'

    @property
    def address(self):
        return self.bus_address if self.is_bus else f'unix:path={self.io_socket}'

    @property
    def is_bus(self):
        return self.transport in BUS_TRANSPORTS

    def start_bus(self):
        """Start the private system bus (again, after stop_bus(): same socket path)."""
        assert self.bus_proc is None, 'bus already running'
        conf = self.tmp / 'bus.conf'
        conf.write_text(BUS_CONFIG.format(socket=self.bus_socket, policy_dir=DBUS_POLICY_DIR))
        try:
            self.bus_socket.unlink()
        except FileNotFoundError:
            pass
        if self.transport == 'broker':
            self._start_broker(conf)
            return self.bus_address
        if not os.access(DBUS_DAEMON, os.X_OK):
            pytest.skip('dbus-daemon not installed')
        self.bus_proc = subprocess.Popen(
            [DBUS_DAEMON, f'--config-file={conf}', '--nofork', '--print-address'],
            stdout=subprocess.PIPE, stderr=open(self.bus_log_path, 'ab'),
            stdin=subprocess.DEVNULL, start_new_session=True)
        r, _, _ = select.select([self.bus_proc.stdout], [], [], 5)
        line = self.bus_proc.stdout.readline() if r else b''
        if not line.startswith(b'unix:'):
            raise RuntimeError(f'dbus-daemon did not start: {line!r} {self.bus_log()}')
        return self.bus_address

    def _start_broker(self, conf):
        """dbus-broker-launch takes its listening socket from systemd's socket activation
        protocol (it ignores <listen>), logs to /run/systemd/journal/socket and fails without
        it, and runs BINDIR/dbus-broker, /usr/bin/dbus-broker: so it runs in a mount namespace
        of its own with a tmpfs on /run/systemd holding our log socket, and the unpacked usr/bin
        laid over /usr/bin. It needs no systemd otherwise (no activatable services here)."""
        launch = DBUS_BROKER_ROOT / 'usr' / 'bin' / 'dbus-broker-launch'
        if not os.access(launch, os.X_OK) or not os.access(UNSHARE, os.X_OK):
            pytest.skip(f'dbus-broker not unpacked in {DBUS_BROKER_ROOT} (tools/install-deps.sh)')
        if self.journal is None:
            (self.tmp / 'journal').mkdir()
            self.journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.journal.bind(str(self.tmp / 'journal' / 'socket'))
            self.journal.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.journal.setblocking(False)
        listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listen.bind(str(self.bus_socket))
            os.chmod(self.bus_socket, 0o777)   # as dbus-daemon makes it: every uid connects
            listen.listen(512)
            fd = listen.fileno()
            script = (
                'set -e\n'
                'mount -t tmpfs -o mode=0755 tmpfs /run/systemd\n'
                'mkdir /run/systemd/journal\n'
                f'mount --bind {self.tmp}/journal /run/systemd/journal\n'
                f'mount -t overlay overlay -o lowerdir={DBUS_BROKER_ROOT}/usr/bin:/usr/bin /usr/bin\n'
                f'exec 3<&{fd}\n'
                'export LISTEN_FDS=1 LISTEN_PID=$$\n'
                f'exec dbus-broker-launch --scope system --config-file={conf}\n')
            env = {'PATH': '/usr/bin:/bin', 'DBUS_SYSTEM_BUS_ADDRESS': self.bus_address}
            self.bus_proc = subprocess.Popen(
                [UNSHARE, '--mount', '--propagation', 'private', '/bin/bash', '-c', script],
                env=env, pass_fds=(fd,), stdout=open(self.bus_log_path, 'ab'),
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            listen.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                Connection.open(self.bus_address, bus=True, timeout=2).close()
                return
            except (OSError, TimeoutError):
                pass
            if self.bus_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'dbus-broker did not start: {self.bus_log()}')
            time.sleep(0.05)

    def stop_bus(self, sig=signal.SIGTERM):
        """Stop the private bus (dbus-broker: the launcher and the broker)."""
        if self.bus_proc is None:
            return
        try:
            os.killpg(self.bus_proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.bus_proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.bus_proc.pid, signal.SIGKILL)
            self.bus_proc.wait(5)
        if self.bus_proc.stdout:
            self.bus_proc.stdout.close()
        # The broker may outlive the launcher for a moment: the group goes, all of it.
        try:
            os.killpg(self.bus_proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.bus_proc = None

    def bus_log(self):
        """What the bus logged: dbus-daemon's stderr, or dbus-broker's journal messages."""
        if self.journal is not None:
            with open(self.bus_log_path, 'ab') as f:
                while True:
                    try:
                        d = self.journal.recv(1 << 17)
                    except (BlockingIOError, OSError):
                        break
                    fields = dict(l.split(b'=', 1) for l in d.split(b'\n') if b'=' in l)
                    f.write(fields.get(b'SYSLOG_IDENTIFIER', b'?') + b': ' +
                            fields.get(b'MESSAGE', d[:200]) + b'\n')
        try:
            return self.bus_log_path.read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def start(self, *extra, env=None, idle_timeout=0):
        """Start sandboxd with extra command line options."""
        assert self.daemon is None, 'daemon already started'
        if not os.access(SANDBOXD, os.X_OK):
            pytest.skip(f'sandboxd not built: {SANDBOXD}')
        if self.is_bus and self.bus_proc is None:
            self.start_bus()
        args = [SANDBOXD, f'--idle-timeout={idle_timeout}']
        denv = {
            'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
            'SANDBOXD_TEST_LEAK': '1',
        }
        for k, v in os.environ.items():
            if k.startswith(('ASAN_', 'UBSAN_', 'LSAN_', 'SYSTEMD_LOG_')):
                denv[k] = v
        if self.is_bus:
            denv['DBUS_SYSTEM_BUS_ADDRESS'] = self.bus_address
        else:
            # Never reach the host's real system bus, even if --no-bus were ignored.
            denv['DBUS_SYSTEM_BUS_ADDRESS'] = f'unix:path={self.tmp}/no-such-bus'
            args += [f'--listen=unix:path={self.io_socket}', '--no-bus']
        args += list(extra)
        denv.update(env or {})
        self.daemon = subprocess.Popen(args, env=denv, stdin=subprocess.DEVNULL,
                                       stdout=open(self.log_path, 'ab'),
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def _wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        if self.is_bus:
            watcher = Connection.open(self.bus_address, bus=True)
            try:
                while True:
                    if watcher.dbus('NameHasOwner', 's', (BUS_NAME,))[0]:
                        return
                    self._check_ready_deadline(deadline)
                    time.sleep(0.02)
            finally:
                watcher.close()
        else:
            while True:
                if self.io_socket.exists():
                    try:
                        probe = Connection.open(self.address, bus=False, timeout=2)
                    except OSError:
                        pass
                    else:
                        try:
                            probe.call('/org/example/Sandbox1', 'org.freedesktop.DBus.Peer',
                                       'Ping', timeout=2)
                            return
                        except (OSError, TimeoutError):
                            pass
                        finally:
                            probe.close()
                self._check_ready_deadline(deadline)
                time.sleep(0.02)

    def _check_ready_deadline(self, deadline):
        rc = self.daemon.poll()
        if rc is not None:
            raise RuntimeError(f'sandboxd exited with {rc} before it was ready:\n{self.log()}')
        if time.monotonic() > deadline:
            raise RuntimeError(f'sandboxd not ready in time:\n{self.log()}')

    @property
    def pid(self):
        return self.daemon.pid

    def client(self, enable_fds=False):
        if self.daemon is None:
            self.start()
        c = SandboxClient.open(self.address, bus=self.is_bus, enable_fds=enable_fds)
        self.clients.append(c)
        return c

    def alive(self):
        return self.daemon is not None and self.daemon.poll() is None

    def assert_alive(self):
        assert self.alive(), f'sandboxd died (rc {self.daemon.returncode}):\n{self.log()}'

    def make_socket_public(self):
        """Let other uids connect (the p2p socket; the bus socket is 0777)."""
        os.chmod(self.io_socket if not self.is_bus else self.bus_socket, 0o666)

    def fake_polkit(self):
        """A stand-in polkit authority on the private bus that allows every check: for tests
        of what other uids do on the bus, not of authorization (tests/boot has real polkitd).
        Runs in a thread until the harness stops."""
        assert self.is_bus
        if self.daemon is None:
            self.start()
        conn = _AllowAllAuthority.open(self.bus_address, bus=True)
        assert conn.dbus('RequestName', 'su', ('org.freedesktop.PolicyKit1', 4))[0] == 1
        stop = threading.Event()

        def serve():
            while not stop.is_set():
                try:
                    conn.pump(0.2)
                except TimeoutError:
                    pass
                except OSError:
                    return
                conn.signals.clear()
                conn.replies.clear()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        self._polkit = (stop, t, conn)
        return conn.checks

    def popen_as(self, actions, uid=NOBODY_UID, gid=NOBODY_GID):
        """Start sandbox_client.py's script mode as another uid."""
        if not os.access(SETPRIV, os.X_OK):
            pytest.skip('setpriv not installed')
        self.make_socket_public()
        cmd = [SETPRIV, f'--reuid={uid}', f'--regid={gid}', '--clear-groups',
               '/usr/bin/python3', '-B', str(CLIENT_PY), self.address,
               'bus' if self.is_bus else 'p2p', json.dumps(actions)]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd='/',
                                env={'PATH': '/usr/bin:/bin', 'PYTHONDONTWRITEBYTECODE': '1'})

    def run_as(self, actions, uid=NOBODY_UID, gid=NOBODY_GID, timeout=30):
        """Run sandbox_client.py's script mode as another uid; its results."""
        p = self.popen_as(actions, uid, gid)
        try:
            out, err = p.communicate(timeout=timeout)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, f'client as uid {uid} failed: {err.decode(errors="replace")}'
        return json.loads(out)

    # --- teardown -----------------------------------------------------

    def stop(self):
        if getattr(self, '_polkit', None):
            stop, t, conn = self._polkit
            stop.set()
            t.join(5)
            conn.close()
            self._polkit = None
        for c in self.clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        if self.daemon is not None:
            left = [(p, _proc_stat(p)) for p in descendants_of(self.daemon.pid)]
            rc = self.daemon.poll()
            if rc is not None:
                if not (self.expect_exit and rc == 0):
                    self.died = rc
            else:
                self.daemon.send_signal(signal.SIGTERM)
                try:
                    rc = self.daemon.wait(5)
                    # A clean exit on SIGTERM; under ASan/LSan a leak or
                    # memory error at exit shows up here too.
                    if rc not in (0, -signal.SIGTERM):
                        self.died = f'{rc} after SIGTERM'
                except subprocess.TimeoutExpired:
                    self.daemon.kill()
                    self.daemon.wait(5)
                    self.died = 'hung: no exit within 5 s of SIGTERM'
            for p, st in left:
                if st:
                    _kill_checked(p, st[2])
        self.stop_bus()
        log = self.log()
        if log:
            print(f'----- sandboxd log ({self.transport}) -----\n{log}')
        log = self.bus_log()
        if log:
            print(f'----- bus log ({self.transport}) -----\n{log}')
        if self.journal is not None:
            self.journal.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _harness(transport):
    h = Harness(transport)
    try:
        yield h
    finally:
        h.stop()
    if h.died is not None:
        pytest.fail(f'sandboxd failed: status {h.died}', pytrace=False)


@pytest.fixture(params=['bus', 'broker', 'p2p'])
def harness(request):
    yield from _harness(request.param)


@pytest.fixture(params=BUS_TRANSPORTS)
def bus_harness(request):
    yield from _harness(request.param)


@pytest.fixture
def daemon_bus_harness():
    """Only dbus-daemon: for tests of what is specific to it."""
    yield from _harness('bus')


@pytest.fixture
def p2p_harness():
    yield from _harness('p2p')


@pytest.fixture
def client(harness):
    return harness.client()


@pytest.fixture
def tmpdir_public():
    """A scratch directory every uid may read."""
    d = tempfile.mkdtemp(prefix='sandboxd-it-data-')
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line('markers', 'root: needs uid 0')


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason='needs root (setpriv, /proc of other processes)')
        for item in items:
            if 'root' in item.keywords:
                item.add_marker(skip)
