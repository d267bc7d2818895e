# SPDX-License-Identifier: LGPL-2.1-or-later
"""sandboxd on a booted system: systemd as PID 1 in a container, the real units, bus activation,
dbus-daemon and polkitd, with the project's install laid over the host's /usr.

Run as root:  /usr/bin/python3 -m pytest tests/boot

The install comes from a build directory configured with --prefix=/usr (default: build-boot in
the repository, set up and built here if missing; SANDBOXD_BOOT_BUILDDIR picks another), or from
an existing DESTDIR tree given as SANDBOXD_BOOT_DESTDIR. SANDBOXD_BOOT_JOURNAL=FILE saves the
container's journal there at the end. The tests share one container and run
in file order; the container is killed on every way out.
"""

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITDIR = '/usr/lib/systemd/system'
UNITS = ['sandboxd.service', 'sandboxd.socket', 'sandboxd-vsock.socket']
IO_SOCKET = '/run/sandboxd/io.socket'
BUS_NAME = 'org.example.Sandbox1'
OBJECT = '/org/example/Sandbox1'
INTERFACE = 'org.example.Sandbox1'
NOBODY = 65534
ACCESS_DENIED = 'org.freedesktop.DBus.Error.AccessDenied'
NO_SUCH_SESSION = 'org.example.Sandbox1.Error.NoSuchSession'
POLKIT_ACTIONS = ('org.example.sandbox1.exec', 'org.example.sandbox1.exec-as-user',
                  'org.example.sandbox1.manage')
# polkit.c's message when polkit did not answer: a denial for the wrong reason.
POLKIT_UNREACHABLE = 'polkit could not be asked'
DROPIN_DIR = '/run/systemd/system/sandboxd.service.d'
RULES_FILE = '/etc/polkit-1/rules.d/50-sandboxd-boot-test.rules'
CONTAINER_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# Runs inside the container with the host's python3 and jeepney (python3-jeepney): busctl
# rewrites every AccessDenied message to "Access denied", so error names and messages are read
# here. 'call' prints the reply or error as JSON; 'hold' starts a session, prints its id and
# keeps the connection (the session's owner) until stdin closes; 'send' calls and disconnects
# after argv[7] seconds without waiting for the answer.
CLIENT = r'''
import json, sys, time
from jeepney import DBusAddress, new_method_call, MessageType, HeaderFields
from jeepney.low_level import MessageFlag
from jeepney.io.blocking import open_dbus_connection

mode, bus, method, signature, body, interactive = sys.argv[1:7]
conn = open_dbus_connection(bus=bus)
addr = DBusAddress('/org/example/Sandbox1', bus_name='org.example.Sandbox1',
                   interface='org.example.Sandbox1')
body = json.loads(body)
if signature.endswith('a{sv}'):
    body[-1] = {k: tuple(v) for k, v in body[-1].items()}
msg = new_method_call(addr, method, signature, tuple(body))
if interactive == '1':
    msg.header.flags |= MessageFlag.allow_interactive_authorization
if mode == 'send':
    # Ask and leave before the answer: the caller is gone by the time it comes.
    conn.send(msg)
    time.sleep(float(sys.argv[7]))
    conn.close()
    sys.exit(0)
reply = conn.send_and_get_reply(msg, timeout=30)
if reply.header.message_type == MessageType.error:
    print(json.dumps({'error': reply.header.fields[HeaderFields.error_name],
                      'message': reply.body[0] if reply.body else ''}), flush=True)
else:
    print(json.dumps({'reply': list(reply.body)}), flush=True)
if mode == 'hold':
    sys.stdin.read()
'''


def _skip_unless_possible():
    if os.geteuid() != 0:
        pytest.skip('needs root (systemd-nspawn, nsenter)')
    for tool in ('systemd-nspawn', 'nsenter', 'pgrep'):
        if not shutil.which(tool):
            pytest.skip(f'{tool} is not installed (apt-get install systemd-container util-linux '
                        f'procps)')
    for path in ('/usr/bin/dbus-daemon', '/usr/lib/polkit-1/polkitd', '/usr/bin/busctl'):
        if not os.path.exists(path):
            pytest.skip(f'{path} is missing (apt-get install dbus polkitd systemd)')
    if not os.path.isdir('/sys/fs/cgroup'):
        pytest.skip('no cgroup file system: systemd cannot boot in a container here')


def _meson_prefix(builddir):
    out = subprocess.run(['meson', 'introspect', '--buildoptions', str(builddir)],
                         capture_output=True, text=True, check=True).stdout
    return next(o['value'] for o in json.loads(out) if o['name'] == 'prefix')


def _install_tree(tmp):
    """A DESTDIR tree with the project installed under usr/."""
    given = os.environ.get('SANDBOXD_BOOT_DESTDIR')
    if given:
        if not os.path.exists(os.path.join(given, 'usr/libexec/sandboxd')):
            pytest.fail(f'SANDBOXD_BOOT_DESTDIR={given} holds no usr/libexec/sandboxd')
        return given
    if not shutil.which('meson') or not shutil.which('ninja'):
        pytest.skip('meson and ninja are needed to build the install tree')
    builddir = Path(os.environ.get('SANDBOXD_BOOT_BUILDDIR', REPO / 'build-boot'))
    if not (builddir / 'meson-private').exists():
        subprocess.run(['meson', 'setup', str(builddir), str(REPO), '--prefix=/usr'],
                       check=True, capture_output=True, text=True)
    elif _meson_prefix(builddir) != '/usr':
        pytest.fail(f'{builddir} is not configured with --prefix=/usr')
    build = subprocess.run(['ninja', '-C', str(builddir)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail('build failed:\n' + build.stdout[-3000:] + build.stderr[-3000:])
    dest = os.path.join(tmp, 'dest')
    subprocess.run(['meson', 'install', '-C', str(builddir), '--destdir', dest, '--no-rebuild',
                    '--quiet'], check=True, capture_output=True, text=True)
    return dest


class Container:
    def __init__(self, nspawn, init_pid, log_path, dest):
        self.dest = dest
        self.nspawn = nspawn
        self.init_pid = init_pid
        self.log_path = log_path

    def _argv(self, argv, uid=None):
        prefix = ['nsenter', '-t', str(self.init_pid), '-m', '-p', '-u', '-i', '-n',
                  'env', '-i', CONTAINER_PATH]
        if uid is not None:
            prefix += ['setpriv', f'--reuid={uid}', f'--regid={uid}', '--clear-groups']
        return prefix + list(argv)

    def run(self, *argv, uid=None, input=None, timeout=30):
        return subprocess.run(self._argv(argv, uid), input=input, capture_output=True, text=True,
                              timeout=timeout)

    def popen(self, *argv, uid=None):
        return subprocess.Popen(self._argv(argv, uid), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sh(self, script, **kw):
        return self.run('sh', '-c', script, **kw)

    def unit_property(self, unit, prop):
        return self.run('systemctl', 'show', '-P', prop, unit).stdout.strip()

    def stop_service(self):
        """Stops sandboxd.service and forgets its start rate limit: the tests start it far more
        often than a daemon with the default 30s idle timeout is ever started."""
        r = self.run('systemctl', 'stop', 'sandboxd.service', timeout=30)
        assert r.returncode == 0, r.stderr
        self.run('systemctl', 'reset-failed', 'sandboxd.service', 'sandboxd.socket')

    def write_file(self, path, text):
        r = self.run('sh', '-c', 'mkdir -p "$(dirname "$1")" && cat >"$1"', 'sh', path, input=text)
        assert r.returncode == 0, r.stderr

    def call(self, method, signature, body, uid=None, bus='SYSTEM', interactive=False):
        r = self.run('python3', '-c', CLIENT, 'call', bus, method, signature, json.dumps(body),
                     '1' if interactive else '0', uid=uid, timeout=40)
        assert r.returncode == 0, f'client failed: {r.stderr}'
        return json.loads(r.stdout)

    def hold_session(self, argv, uid=None, **options):
        """A client (root by default) on the system bus that started argv and stays connected
        (the owner). Returns (process, reply); kill the process to let the session go."""
        holder = self.popen('python3', '-c', CLIENT, 'hold', 'SYSTEM', 'Exec', 'asa{sv}',
                            json.dumps(_exec_body(argv, **options)), '0', uid=uid)
        ready, _, _ = select.select([holder.stdout], [], [], 30)
        line = holder.stdout.readline() if ready else ''
        res = json.loads(line) if line else {'error': 'no answer', 'message': ''}
        return holder, res

    def wait_for(self, what, predicate, timeout=15.0, interval=0.1):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f'timed out after {timeout}s waiting for {what}')
            time.sleep(interval)

    def log_tail(self):
        try:
            return Path(self.log_path).read_text(errors='replace')[-4000:]
        except OSError:
            return ''


# Sends argv[3] copies of one Exec on one connection without waiting, then reads every answer;
# prints [[error name or "reply", message], ...]. For filling the daemon's pending polkit checks.
FLOOD = r'''
import json, sys
from jeepney import DBusAddress, new_method_call, MessageType, HeaderFields
from jeepney.io.blocking import open_dbus_connection

argv, n = json.loads(sys.argv[1]), int(sys.argv[2])
conn = open_dbus_connection(bus='SYSTEM')
addr = DBusAddress('/org/example/Sandbox1', bus_name='org.example.Sandbox1',
                   interface='org.example.Sandbox1')
for _ in range(n):
    conn.send(new_method_call(addr, 'Exec', 'asa{sv}', (argv, {})))
out = []
while len(out) < n:
    m = conn.receive(timeout=60)
    if m.header.message_type == MessageType.error:
        out.append([m.header.fields[HeaderFields.error_name], m.body[0] if m.body else ''])
    elif m.header.message_type == MessageType.method_return:
        out.append(['reply', ''])
print(json.dumps(out), flush=True)
'''


def _interrupt(signum, frame):
    # A SIGTERM'd test run still goes through the fixture's cleanup.
    raise KeyboardInterrupt


def _stop(nspawn, init_pid):
    # Killing the container's init takes its whole PID namespace down; nspawn then exits.
    if init_pid:
        try:
            os.kill(init_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        nspawn.wait(timeout=10)
    except subprocess.TimeoutExpired:
        nspawn.kill()
        nspawn.wait(timeout=10)


@pytest.fixture(scope='module')
def container():
    _skip_unless_possible()
    tmp = tempfile.mkdtemp(prefix='sandboxd-boot-')
    nspawn = None
    init_pid = None
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        dest = _install_tree(tmp)
        log_path = os.path.join(tmp, 'console.log')
        with open(log_path, 'wb') as log:
            nspawn = subprocess.Popen(
                ['systemd-nspawn', '-D', '/', '--volatile=yes', '-b', '--console=pipe', '-q',
                 '--register=no', '--keep-unit', f'--machine=sandboxd-boot-{os.getpid()}',
                 f'--overlay-ro=/usr:{dest}/usr:/usr', 'systemd.wants=sandboxd.socket'],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        deadline = time.monotonic() + 20
        while not init_pid:
            if nspawn.poll() is not None:
                pytest.fail('systemd-nspawn exited: ' + Path(log_path).read_text(errors='replace'))
            if time.monotonic() > deadline:
                pytest.fail('no systemd in the container after 20s')
            r = subprocess.run(['pgrep', '-P', str(nspawn.pid), '-x', 'systemd'],
                               capture_output=True, text=True)
            if r.stdout.strip():
                init_pid = int(r.stdout.split()[0])
            else:
                time.sleep(0.1)

        c = Container(nspawn, init_pid, log_path, dest)
        state = ''
        deadline = time.monotonic() + 40
        while state not in ('running', 'degraded'):
            if time.monotonic() > deadline:
                pytest.fail(f'system not up after 40s (is-system-running: {state!r})\n'
                            + c.log_tail())
            time.sleep(0.2)
            state = c.run('systemctl', 'is-system-running').stdout.strip()
        yield c
        if os.environ.get('SANDBOXD_BOOT_JOURNAL'):
            with open(os.environ['SANDBOXD_BOOT_JOURNAL'], 'w') as f:
                f.write(c.run('journalctl', '-b', '--no-pager', '-o', 'short-monotonic').stdout)
    finally:
        if nspawn:
            _stop(nspawn, init_pid)
        signal.signal(signal.SIGTERM, old_term)
        shutil.rmtree(tmp, ignore_errors=True)


def _exec_body(argv, **options):
    """Exec's arguments for the CLIENT helper: options as {key: [signature, value]}."""
    return [list(argv), {k: list(v) for k, v in options.items()}]


_polkit_state = {}


def require_polkit_wired(c):
    """xfail until the daemon asks polkit: an unprivileged Exec as root over the bus is then
    denied by polkit.c (its message names the action), not by a built-in rule."""
    if 'wired' not in _polkit_state:
        res = c.call('Exec', 'asa{sv}', _exec_body(['/bin/true'], user=('s', 'root')), uid=NOBODY)
        _polkit_state['wired'] = ('error' in res and
                                  any(a in res['message'] for a in POLKIT_ACTIONS))
        _polkit_state['answer'] = res
    if not _polkit_state['wired']:
        pytest.xfail(f"polkit not wired yet (unprivileged Exec as root: {_polkit_state['answer']})")


# --- the units as installed -------------------------------------------------------------------

def test_units_verify(container):
    paths = [f'{UNITDIR}/{u}' for u in UNITS]
    r = container.run('systemd-analyze', 'verify', '--man=no', *paths)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_unit_documentation_installed(container):
    # The man pages the units' Documentation= names (from man/). Checked in the install tree:
    # man cannot run in the container, whose /etc (manpath.config) is empty.
    pages = set()
    for unit in UNITS:
        for line in (Path(container.dest) / UNITDIR.lstrip('/') / unit).read_text().splitlines():
            if line.startswith('Documentation='):
                pages.update(w[4:] for w in line.split('=', 1)[1].split() if w.startswith('man:'))
    assert pages
    missing = []
    for page in sorted(pages):
        name, section = page.rstrip(')').split('(')
        base = Path(container.dest) / f'usr/share/man/man{section}/{name}.{section}'
        if not any(Path(str(base) + ext).exists() for ext in ('', '.gz')):
            missing.append(page)
    assert not missing, f'not installed: {missing}'


def test_polkit_actions_installed(container):
    for action in POLKIT_ACTIONS:
        r = container.run('pkaction', '--action-id', action, '--verbose')
        assert r.returncode == 0, r.stderr
        expect_active = 'yes' if action == 'org.example.sandbox1.exec' else 'auth_admin_keep'
        assert 'implicit any:      auth_admin\n' in r.stdout
        assert 'implicit inactive: auth_admin\n' in r.stdout
        assert f'implicit active:   {expect_active}\n' in r.stdout


# --- activation -------------------------------------------------------------------------------

def test_nothing_runs_after_boot(container):
    assert container.run('systemctl', 'is-active', 'sandboxd.socket').stdout.strip() == 'active'
    assert container.run('systemctl', 'is-active', 'sandboxd.service').stdout.strip() == 'inactive'
    assert container.run('pgrep', '-x', 'sandboxd').returncode == 1
    # Not a VM: the vsock socket stays out of the way.
    assert container.unit_property('sandboxd-vsock.socket', 'ConditionResult') == 'no'


def test_io_socket_is_root_only(container):
    r = container.run('stat', '-c', '%a %U %G %F', IO_SOCKET)
    assert r.stdout.strip() == '600 root root socket', r.stdout + r.stderr


def test_socket_activation(container):
    r = container.run('busctl', f'--address=unix:path={IO_SOCKET}', 'call', BUS_NAME, OBJECT,
                      INTERFACE, 'Exec', 'asa{sv}', '1', '/bin/true', '0')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('uu '), r.stdout
    assert container.unit_property('sandboxd.service', 'ActiveState') in ('active', 'activating')
    assert container.unit_property('sandboxd.service', 'MainPID') != '0'


def test_idle_exit(container):
    c = container
    c.write_file(f'{DROPIN_DIR}/50-idle.conf',
                 '[Service]\nExecStart=\nExecStart=/usr/libexec/sandboxd --idle-timeout=2\n')
    try:
        assert c.run('systemctl', 'daemon-reload').returncode == 0
        c.stop_service()
        r = c.run('busctl', f'--address=unix:path={IO_SOCKET}', 'call', BUS_NAME, OBJECT, INTERFACE,
                  'Exec', 'asa{sv}', '1', '/bin/true', '0')
        assert r.returncode == 0, r.stderr
        assert '--idle-timeout=2' in c.run('systemctl', 'show', '-P', 'ExecStart',
                                           'sandboxd.service').stdout
        started = time.monotonic()
        try:
            c.wait_for('sandboxd.service to exit when idle',
                       lambda: c.run('systemctl', 'is-active', 'sandboxd.service').stdout.strip()
                       == 'inactive', timeout=15)
        except BaseException:
            print(c.run('journalctl', '--no-pager', '-u', 'sandboxd.service', '-n', '40').stdout)
            raise
        assert time.monotonic() - started >= 1.0, 'exited before its idle timeout'
        assert c.unit_property('sandboxd.service', 'Result') == 'success'
        assert c.run('pgrep', '-x', 'sandboxd').returncode == 1
        # The socket listens again, and the next client starts it again.
        assert c.run('systemctl', 'is-active', 'sandboxd.socket').stdout.strip() == 'active'
        r = c.run('busctl', f'--address=unix:path={IO_SOCKET}', 'call', BUS_NAME, OBJECT,
                  INTERFACE, 'Exec', 'asa{sv}', '1', '/bin/true', '0')
        assert r.returncode == 0, r.stderr
    finally:
        # The rest runs the unit as installed.
        c.run('rm', '-rf', DROPIN_DIR)
        c.run('systemctl', 'daemon-reload')
        c.stop_service()


def test_bus_activation(container):
    c = container
    c.stop_service()
    before = c.unit_property('sandboxd.service', 'InvocationID')
    r = c.run('busctl', '--system', 'call', BUS_NAME, OBJECT, INTERFACE, 'Exec', 'asa{sv}', '1',
              '/bin/true', '0')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('uu '), r.stdout
    # Started through systemd (SystemdService=), not by dbus-daemon itself.
    after = c.unit_property('sandboxd.service', 'InvocationID')
    assert after and after != before
    assert c.call('ListSessions', '', [])['reply'] is not None


def test_stop_ends_sessions(container):
    c = container
    holder, res = c.hold_session(['sleep', '300'])
    try:
        assert 'reply' in res, res
        pid = res['reply'][1]
        assert c.run('kill', '-0', str(pid)).returncode == 0
        c.stop_service()
        assert c.run('kill', '-0', str(pid)).returncode != 0, 'session survived the service'
    finally:
        holder.kill()
        holder.wait()


# --- who may do what --------------------------------------------------------------------------

def test_unprivileged_refused_on_io_socket(container):
    r = container.run('busctl', f'--address=unix:path={IO_SOCKET}', 'call', BUS_NAME, OBJECT,
                      INTERFACE, 'Exec', 'asa{sv}', '1', '/bin/true', '0', uid=NOBODY)
    assert r.returncode != 0
    assert 'Permission denied' in r.stderr, r.stderr


def test_unprivileged_exec_as_root_denied(container):
    require_polkit_wired(container)
    for interactive in (False, True):
        res = container.call('Exec', 'asa{sv}', _exec_body(['/bin/true'], user=('s', 'root')),
                             uid=NOBODY, interactive=interactive)
        assert res.get('error') == ACCESS_DENIED, res
        assert 'org.example.sandbox1.exec-as-user' in res['message'], res
        assert POLKIT_UNREACHABLE not in res['message'], res
        # auth_admin for a caller without an agent: polkit's challenge, which is a no here.
        assert 'interactive authentication is required' in res['message'], res


def test_unprivileged_exec_as_self_denied_by_default(container):
    require_polkit_wired(container)
    # The default 'yes' is for active local sessions only; a setpriv'd caller has none.
    res = container.call('Exec', 'asa{sv}', _exec_body(['/bin/true']), uid=NOBODY)
    assert res.get('error') == ACCESS_DENIED, res
    assert '(org.example.sandbox1.exec)' in res['message'], res
    assert POLKIT_UNREACHABLE not in res['message'], res


def test_unprivileged_exec_as_self_allowed_by_rule(container):
    c = container
    require_polkit_wired(c)
    c.write_file(RULES_FILE,
                 'polkit.addRule(function(action, subject) {\n'
                 '        if (action.id == "org.example.sandbox1.exec" && subject.user == "nobody")\n'
                 '                return polkit.Result.YES;\n'
                 '});\n')
    try:
        # polkitd notices new rules by inotify, shortly after they appear.
        res = c.wait_for('the polkit rule to take effect',
                         lambda: (lambda r: r if 'reply' in r else None)(
                             c.call('Exec', 'asa{sv}', _exec_body(['/bin/true']), uid=NOBODY)),
                         timeout=15, interval=0.3)
        assert len(res['reply']) == 2
        # Several callers waiting for polkit at once are each answered (one re-dispatch each).
        procs = [c.popen('python3', '-c', CLIENT, 'call', 'SYSTEM', 'Exec', 'asa{sv}',
                         json.dumps(_exec_body(['/bin/true'])), '0', uid=NOBODY)
                 for _ in range(12)]
        for p in procs:
            out, err = p.communicate(timeout=40)
            assert 'reply' in json.loads(out or '{}'), out + err
        # The rule grants exec, not exec-as-user.
        res = c.call('Exec', 'asa{sv}', _exec_body(['/bin/true'], user=('s', 'root')), uid=NOBODY)
        assert res.get('error') == ACCESS_DENIED, res
    finally:
        c.run('rm', '-f', RULES_FILE)


def test_unprivileged_run_on_the_system_bus(container):
    """RunText as nobody, allowed by a rule for exec, through the real dbus-daemon, polkitd and
    the installed policy: the reply has the output; a root session stays invisible to nobody."""
    c = container
    require_polkit_wired(c)
    c.write_file(RULES_FILE,
                 'polkit.addRule(function(action, subject) {\n'
                 '        if (action.id == "org.example.sandbox1.exec" && subject.user == "nobody")\n'
                 '                return polkit.Result.YES;\n'
                 '});\n')
    holder = None
    try:
        res = c.wait_for('the polkit rule to take effect',
                         lambda: (lambda r: r if 'reply' in r else None)(
                             c.call('RunText', 'asa{sv}', _exec_body(['id', '-un']), uid=NOBODY)),
                         timeout=15, interval=0.3)
        code, sig, out, err, info = res['reply']
        assert (code, sig, out, err) == (0, 0, 'nobody\n', ''), res
        holder, res = c.hold_session(['sleep', '30'])
        sid = res['reply'][0]
        res = c.call('GetSession', 'u', [sid], uid=NOBODY)
        assert res.get('error') == 'org.example.Sandbox1.Error.NoSuchSession', res
        res = c.call('GetSession', 'u', [sid])
        assert res.get('reply') == [f'/org/example/Sandbox1/session/{sid}'], res
    finally:
        if holder:
            holder.kill()
            holder.wait(5)
        c.run('rm', '-f', RULES_FILE)


def test_unprivileged_cannot_signal_root_session(container):
    c = container
    holder, res = c.hold_session(['sleep', '300'])
    try:
        assert 'reply' in res, res
        sid, pid = res['reply']
        for interactive in (False, True):
            res = c.call('Signal', 'ui', [sid, 9], uid=NOBODY, interactive=interactive)
            assert res.get('error') in (ACCESS_DENIED, NO_SUCH_SESSION), res
        assert c.run('kill', '-0', str(pid)).returncode == 0, 'root session was killed'
        # Nor does it see the session.
        res = c.call('ListSessions', '', [], uid=NOBODY)
        assert res.get('error') == ACCESS_DENIED or \
            all(s[0] != sid for s in res['reply'][0]), res
    finally:
        holder.kill()
        holder.wait()


def test_unprivileged_signal_allowed_by_manage_rule(container):
    c = container
    require_polkit_wired(c)
    holder, res = c.hold_session(['sleep', '300'])
    try:
        assert 'reply' in res, res
        sid, pid = res['reply']
        c.write_file(RULES_FILE,
                     'polkit.addRule(function(action, subject) {\n'
                     '        if (action.id == "org.example.sandbox1.manage" &&\n'
                     '            subject.user == "nobody")\n'
                     '                return polkit.Result.YES;\n'
                     '});\n')
        c.wait_for('the polkit rule to take effect',
                   lambda: 'error' not in c.call('Signal', 'ui', [sid, 15], uid=NOBODY),
                   timeout=15, interval=0.3)
        c.wait_for('the session to end', lambda: c.run('kill', '-0', str(pid)).returncode != 0)
    finally:
        c.run('rm', '-f', RULES_FILE)
        holder.kill()
        holder.wait()


def test_no_action_for_a_caller_gone_while_polkit_decides(container):
    c = container
    require_polkit_wired(c)
    done = '/tmp/sandboxd-boot-gone-done'
    asked = '/tmp/sandboxd-boot-polkit-asked'
    c.run('rm', '-f', done, asked)
    # polkit says yes to nobody's exec; for the command naming 'gone-done' (the details reach
    # the rules) only after 2s, leaving a mark when it does. The caller leaves after 0.5s,
    # after polkit looked it up and before the answer.
    c.write_file(RULES_FILE,
                 'polkit.addRule(function(action, subject) {\n'
                 '        if (action.id != "org.example.sandbox1.exec" || subject.user != "nobody")\n'
                 '                return polkit.Result.NOT_HANDLED;\n'
                 '        if (action.lookup("command_line").indexOf("gone-done") >= 0)\n'
                 f'                polkit.spawn(["/bin/sh", "-c", "sleep 2; touch {asked}"]);\n'
                 '        return polkit.Result.YES;\n'
                 '});\n')
    try:
        c.wait_for('the polkit rule to take effect',
                   lambda: 'reply' in c.call('Exec', 'asa{sv}', _exec_body(['/bin/true']),
                                             uid=NOBODY),
                   timeout=15, interval=0.3)
        r = c.run('python3', '-c', CLIENT, 'send', 'SYSTEM', 'Exec', 'asa{sv}',
                  json.dumps(_exec_body(['/usr/bin/touch', done])), '0', '0.5', uid=NOBODY)
        assert r.returncode == 0, r.stderr
        c.wait_for('polkit to answer', lambda: c.run('test', '-e', asked).returncode == 0,
                   timeout=10)
        time.sleep(1.0)  # the answer's way back and the re-dispatch
        assert c.run('test', '-e', done).returncode != 0, 'ran a command for a caller that was gone'
        assert c.unit_property('sandboxd.service', 'ActiveState') == 'active'
        # And the daemon still answers.
        assert 'reply' in c.call('Exec', 'asa{sv}', _exec_body(['/bin/true']), uid=NOBODY)
    finally:
        c.run('rm', '-f', RULES_FILE, done, asked)


def test_denied_when_polkit_is_unreachable(container):
    c = container
    require_polkit_wired(c)
    # A rule that would say yes, then no polkitd at all: fail closed.
    c.write_file(RULES_FILE,
                 'polkit.addRule(function(action, subject) {\n'
                 '        if (action.id == "org.example.sandbox1.exec" && subject.user == "nobody")\n'
                 '                return polkit.Result.YES;\n'
                 '});\n')
    try:
        c.wait_for('the polkit rule to take effect',
                   lambda: 'reply' in c.call('Exec', 'asa{sv}', _exec_body(['/bin/true']),
                                             uid=NOBODY),
                   timeout=15, interval=0.3)
        assert c.run('systemctl', 'mask', '--runtime', 'polkit.service').returncode == 0
        assert c.run('systemctl', 'stop', 'polkit.service').returncode == 0
        res = c.call('Exec', 'asa{sv}', _exec_body(['/bin/true']), uid=NOBODY)
        assert res.get('error') == ACCESS_DENIED, res
        assert POLKIT_UNREACHABLE in res['message'], res
        # Root does not need polkit.
        assert 'reply' in c.call('Exec', 'asa{sv}', _exec_body(['/bin/true']))
    finally:
        c.run('systemctl', 'unmask', '--runtime', 'polkit.service')
        c.run('rm', '-f', RULES_FILE)


# --- the journal ------------------------------------------------------------------------------

def _journal_entries(c, event):
    r = c.run('journalctl', '--no-pager', '-o', 'json', '-b', f'SANDBOXD_EVENT={event}')
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def test_journal_entries_for_start_end_and_denial(container):
    """One structured entry per session start and end, and one per authorization denial."""
    marker = f'journal-check-{os.getpid()}'
    holder, res = container.hold_session(['/bin/sh', '-c', f'echo {marker}; exit 3'])
    try:
        assert 'reply' in res, res
        sid, pid = res['reply']
        time.sleep(0.5)  # let it end while its owner is still there
    finally:
        holder.kill()
        holder.wait(5)

    def session_entries():
        starts = [e for e in _journal_entries(container, 'start') if marker in e.get('SANDBOXD_ARGV', '')]
        ends = [e for e in _journal_entries(container, 'end') if e.get('SANDBOXD_SESSION') == str(sid)
                and e.get('SANDBOXD_PID') == str(pid)]
        return (starts, ends) if starts and ends else None

    starts, ends = container.wait_for('the start and end entries', session_entries)
    start, end = starts[-1], ends[-1]
    assert start['SANDBOXD_SESSION'] == str(sid) and start['SANDBOXD_PID'] == str(pid), start
    assert start['SANDBOXD_UID'] == '0' and start['SANDBOXD_USER'] == 'root', start
    assert start['SANDBOXD_CALLER_UID'] == '0', start
    assert 'SANDBOXD_EXIT_CODE' not in start, start
    assert end['SANDBOXD_EXIT_CODE'] == '3' and end['SANDBOXD_EXIT_SIGNAL'] == '0', end
    assert end['SANDBOXD_END_REASON'] == 'exited', end
    assert start['_SYSTEMD_UNIT'] == 'sandboxd.service', start

    require_polkit_wired(container)
    before = len(_journal_entries(container, 'denied'))
    res = container.call('Exec', 'asa{sv}', _exec_body(['/bin/true'], user=('s', 'root')), uid=NOBODY)
    assert res.get('error') == ACCESS_DENIED, res
    denied = container.wait_for('the denial entry',
                                lambda: _journal_entries(container, 'denied')[before:] or None)
    assert denied[-1]['SANDBOXD_CALLER_UID'] == str(NOBODY), denied[-1]
    assert denied[-1]['SANDBOXD_ACTION'] == 'org.example.sandbox1.exec-as-user', denied[-1]


# --- trust boundaries that need polkit (the rest: tests/integration/test_trust.py) ---------------

def _rule(c, body):
    """Installs a polkit rule for nobody and waits until polkitd has read it."""
    c.write_file(RULES_FILE,
                 'polkit.addRule(function(action, subject) {\n'
                 '        if (subject.user != "nobody" && subject.user != "daemon")\n'
                 '                return polkit.Result.NOT_HANDLED;\n'
                 + body +
                 '        return polkit.Result.NOT_HANDLED;\n'
                 '});\n')
    c.wait_for('the polkit rule to take effect',
               lambda: 'reply' in c.call('Exec', 'asa{sv}', _exec_body(['/bin/true']), uid=NOBODY),
               timeout=15, interval=0.3)


EXEC_YES = ('        if (action.id == "org.example.sandbox1.exec")\n'
            '                return polkit.Result.YES;\n')


def test_a_group_not_ones_own_needs_exec_as_user(container):
    """alice:shadow, 1003:0 counted as "as oneself" and needed only 'exec': a shell with gid 0."""
    c = container
    require_polkit_wired(c)
    _rule(c, EXEC_YES)
    try:
        for spec in ('nobody:root', f'{NOBODY}:0', 'nobody:shadow', f'{NOBODY}:disk'):
            res = c.call('Exec', 'asa{sv}', _exec_body(['/usr/bin/id', '-g'], user=('s', spec)),
                         uid=NOBODY)
            assert res.get('error') == ACCESS_DENIED, (spec, res)
            assert 'org.example.sandbox1.exec-as-user' in res['message'], (spec, res)
        # Its own primary group is itself.
        for spec in ('nobody', 'nobody:nogroup', f'{NOBODY}:{NOBODY}'):
            res = c.call('Exec', 'asa{sv}', _exec_body(['/bin/true'], user=('s', spec)), uid=NOBODY)
            assert 'reply' in res, (spec, res)
    finally:
        c.run('rm', '-f', RULES_FILE)


def test_polkit_details_name_group_gid_and_env_keys(container):
    c = container
    require_polkit_wired(c)
    _rule(c, EXEC_YES +
          '        if (action.id == "org.example.sandbox1.exec-as-user" &&\n'
          '            action.lookup("user") == "nobody" && action.lookup("uid") == "65534" &&\n'
          '            action.lookup("group") == "root" && action.lookup("gid") == "0" &&\n'
          '            action.lookup("env_keys") == "TERM,LANG")\n'
          '                return polkit.Result.YES;\n')
    try:
        ok = c.call('Exec', 'asa{sv}', _exec_body(['/bin/true'], user=('s', 'nobody:root'),
                                                  env=('as', ['TERM=dumb', 'LANG=C'])), uid=NOBODY)
        assert 'reply' in ok, ok
        for env in (['TERM=dumb'], ['LANG=C', 'TERM=dumb'], []):
            res = c.call('Exec', 'asa{sv}', _exec_body(['/bin/true'], user=('s', 'nobody:root'),
                                                       env=('as', env)), uid=NOBODY)
            assert res.get('error') == ACCESS_DENIED, (env, res)
    finally:
        c.run('rm', '-f', RULES_FILE)


def test_other_connection_of_the_uid_cannot_drive_a_root_session(container):
    """One nobody process granted exec-as-user ran a root sh; a second nobody process, denied
    everything, saw it and wrote to its stdin."""
    c = container
    require_polkit_wired(c)
    marker = '/tmp/sandboxd-boot-stdin-marker'
    c.run('rm', '-f', marker)
    _rule(c, EXEC_YES +
          '        if (action.id == "org.example.sandbox1.exec-as-user" &&\n'
          '            action.lookup("user") == "root")\n'
          '                return polkit.Result.YES;\n')
    holders = []
    try:
        holder, res = c.hold_session(['/bin/sh'], uid=NOBODY, user=('s', 'root'))
        holders.append(holder)
        assert 'reply' in res, res
        root_sid = res['reply'][0]
        holder, res = c.hold_session(['/bin/cat'], uid=NOBODY)
        holders.append(holder)
        assert 'reply' in res, res
        own_sid = res['reply'][0]
        # A second nobody connection: sees and drives its uid's own session, not the root one.
        listed = c.call('ListSessions', '', [], uid=NOBODY)
        ids = [s[0] for s in listed['reply'][0]]
        assert own_sid in ids and root_sid not in ids, listed
        res = c.call('WriteStdin', 'uay', [root_sid, list(f'touch {marker}\n'.encode())], uid=NOBODY)
        assert res.get('error') == NO_SUCH_SESSION, res
        for method, sig, body in (('Signal', 'ui', [root_sid, 9]), ('CloseStdin', 'u', [root_sid])):
            res = c.call(method, sig, body, uid=NOBODY)
            assert res.get('error') == NO_SUCH_SESSION, (method, res)
        assert 'reply' in c.call('WriteStdin', 'uay', [own_sid, [104, 10]], uid=NOBODY)
        time.sleep(0.5)
        assert c.run('test', '-e', marker).returncode != 0, 'the root shell ran what nobody wrote'
        # Root still sees it.
        assert root_sid in [s[0] for s in c.call('ListSessions', '', [])['reply'][0]]
    finally:
        for h in holders:
            h.kill()
            h.wait()
        c.run('rm', '-f', RULES_FILE, marker)


def test_pending_polkit_checks_are_bounded_per_uid(container):
    """~128 checks pending from one uid filled the daemon's replies on the bus
    (max_replies_per_connection) and everyone else got "polkit could not be asked"."""
    c = container
    require_polkit_wired(c)
    # Slow answers for nobody's 'slow' command, so that its checks pile up in polkitd.
    _rule(c, '        if (action.id == "org.example.sandbox1.exec" &&\n'
             '            action.lookup("command_line").indexOf("slow-check") >= 0)\n'
             '                polkit.spawn(["/bin/sleep", "0.2"]);\n' + EXEC_YES)
    floods = []
    try:
        for _ in range(9):
            floods.append(c.popen('python3', '-c', FLOOD, json.dumps(['/bin/echo', 'slow-check']),
                                  '16', uid=NOBODY))
        time.sleep(1.0)
        # Another uid is still asked and answered while nobody's checks wait.
        res = c.call('Exec', 'asa{sv}', _exec_body(['/bin/true']), uid=1)
        assert 'reply' in res, res
        answers = []
        for f in floods:
            out, err = f.communicate(timeout=120)
            assert f.returncode == 0, err
            answers += json.loads(out)
        kinds = {}
        for name, message in answers:
            kinds.setdefault(name, []).append(message)
        assert POLKIT_UNREACHABLE not in json.dumps(answers), kinds.keys()
        limited = kinds.get('org.freedesktop.DBus.Error.LimitsExceeded', [])
        assert limited and all(f'uid {NOBODY}' in m for m in limited), kinds.keys()
        assert len(kinds.get('reply', [])) >= 16, {k: len(v) for k, v in kinds.items()}
    finally:
        for f in floods:
            if f.poll() is None:
                f.kill()
                f.wait()
        c.run('rm', '-f', RULES_FILE)
