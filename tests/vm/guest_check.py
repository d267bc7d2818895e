#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The checks inside the VM guest (run by vm-test-check.service, as root, once per boot).

    guest_check.py OUTDIR                 run every check, append results to OUTDIR/results.jsonl
    guest_check.py --client ACTION ...    one client over AF_VSOCK (run as nobody by the above)

Each check appends one JSON object {check, ok, detail, seconds} to results.jsonl as soon as it
ends (so a guest killed by the host's timeout still tells how far it got); test_vm.py turns each
into a test. The vsock port is api.md's 5000, not read from the unit: a unit listening elsewhere
is a failure. The only vsock peer in a guest without a host device is the guest itself, CID 1,
over the vsock_loopback transport.
"""

import json
import os
import re
import socket
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PORT = 5000
CID_LOCAL = 1
NOBODY = 65534
IDLE = 4
DROPIN = Path('/run/systemd/system/sandboxd.service.d/50-vm-test.conf')
SERVICE = 'sandboxd.service'
VSOCK_SOCKET = 'sandboxd-vsock.socket'


# --- client side (runs as nobody) -------------------------------------------------------------

def vsock_connect(timeout=20.0):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((CID_LOCAL, PORT))
    return s


def read_line(s):
    buf = b''
    while not buf.endswith(b'\r\n'):
        c = s.recv(1)
        if not c:
            raise EOFError(f'connection closed after {buf!r}')
        buf += c
    return buf


def sasl(s, negotiate_fds=False):
    """SASL ANONYMOUS (vsock has no credentials for EXTERNAL) up to BEGIN. Returns the answer
    to NEGOTIATE_UNIX_FD, or None."""
    s.sendall(b'\0AUTH ANONYMOUS ' + b'sandboxd-vm-test'.hex().encode() + b'\r\n')
    line = read_line(s)
    if not line.startswith(b'OK '):
        raise RuntimeError(f'AUTH ANONYMOUS answered {line!r}')
    fds = None
    if negotiate_fds:
        s.sendall(b'NEGOTIATE_UNIX_FD\r\n')
        fds = read_line(s).decode(errors='replace').strip()
    s.sendall(b'BEGIN\r\n')
    s.settimeout(None)
    return fds


def open_client():
    from sandbox_client import Connection, SandboxClient
    s = vsock_connect()
    sasl(s)
    return SandboxClient(Connection(s, enable_fds=False, bus=False))


def main_pid():
    r = subprocess.run(['systemctl', 'show', '-P', 'MainPID', SERVICE], capture_output=True,
                       text=True)
    return int(r.stdout.strip() or 0)


def client_refused():
    """Connect and authenticate; report what came back."""
    res = {'connected': False, 'answer': '', 'closed': False, 'error': ''}
    try:
        s = vsock_connect()
    except OSError as e:
        res['error'] = f'connect: {e}'
        return res
    res['connected'] = True
    try:
        s.sendall(b'\0AUTH ANONYMOUS 74657374\r\n')
        data = b''
        while b'\r\n' not in data:
            c = s.recv(4096)
            if not c:
                res['closed'] = True
                break
            data += c
        res['answer'] = data.decode(errors='replace')
    except (ConnectionResetError, BrokenPipeError) as e:
        res['closed'] = True
        res['error'] = str(e)
    except OSError as e:
        res['error'] = str(e)
    finally:
        s.close()
    return res


def client_serve():
    """The session checks over one vsock connection. Returns a list of check results."""
    out = []

    def check(name, fn):
        t = time.monotonic()
        try:
            detail = fn()
            out.append({'check': name, 'ok': True, 'detail': detail or ''})
        except Exception as e:
            out.append({'check': name, 'ok': False,
                        'detail': f'{type(e).__name__}: {e}'[:2000]})
        out[-1]['seconds'] = round(time.monotonic() - t, 2)

    c = None
    sessions = []

    def connect():
        nonlocal c
        c = open_client()
        # The session's parent is whoever serves the connection.
        r = c.run(['sh', '-c', 'echo $PPID; cat /proc/$PPID/comm; id -u; id -un'], timeout=20)
        sessions.append(r.id)
        lines = r.stdout.decode().split()
        assert r.code == 0 and len(lines) == 4, f'probe session: {r!r}'
        ppid, comm, uid, name = int(lines[0]), lines[1], lines[2], lines[3]
        mp = main_pid()
        active = subprocess.run(['systemctl', 'is-active', SERVICE], capture_output=True,
                                text=True).stdout.strip()
        assert comm == 'sandboxd', f'the session\'s parent is {comm!r}, not sandboxd'
        assert ppid == mp and active == 'active', \
            f'served by pid {ppid}, but {SERVICE} is {active} with MainPID {mp}'
        # vsock has no credentials: the caller (nobody) is served as the DefaultUser (root).
        assert uid == '0' and name == 'root', f'commands run as {name} ({uid}), not root'
        return f'{SERVICE} (pid {ppid}) started through {VSOCK_SOCKET}; commands run as root'

    check('vsock_activation', connect)
    if c is None:
        return out, sessions, 0
    daemon = main_pid()

    def pipes():
        r = c.run(['sh', '-c', 'echo out; echo err >&2; exit 7'], timeout=20)
        sessions.append(r.id)
        assert (r.stdout, r.stderr, r.code, r.signal) == (b'out\n', b'err\n', 7, 0), repr(r)
        for argv, code in ((['true'], 0), (['false'], 1), (['sh', '-c', 'exit 255'], 255)):
            r = c.run(argv, timeout=20)
            sessions.append(r.id)
            assert r.code == code and r.signal == 0, f'{argv}: {r!r}'
        sid, _ = c.exec(['cat'])
        sessions.append(sid)
        c.write_stdin(sid, b'to stdin\n')
        c.close_stdin(sid)
        r = c.collect(sid, timeout=20)
        assert r.stdout == b'to stdin\n' and r.code == 0, f'cat: {r!r}'
        return 'stdout, stderr, stdin and exit codes 7, 0, 1, 255 over vsock'

    def output_complete():
        n = 100000
        r = c.run(['seq', str(n)], timeout=60)
        sessions.append(r.id)
        want = ''.join(f'{i}\n' for i in range(1, n + 1)).encode()
        assert r.code == 0, repr(r)
        assert r.stdout == want, (f'{len(r.stdout)} of {len(want)} bytes; first difference at '
                                  f'{next((i for i, (a, b) in enumerate(zip(r.stdout, want)) if a != b), min(len(r.stdout), len(want)))}')
        return f'{len(want)} bytes, all there, in order'

    def pty():
        sid, _ = c.exec(['sh', '-c', 'tty; stty size; read x; echo "got:$x"; exit 5'],
                        {'tty': True, 'rows': 33, 'cols': 101})
        sessions.append(sid)
        c.wait_output(sid, b'33 101', timeout=20)
        c.write_stdin(sid, b'hello\n')
        r = c.collect(sid, timeout=20)
        text = r.stdout.decode(errors='replace')
        assert '/dev/pts/' in text, f'not on a PTY: {text!r}'
        assert 'got:hello' in text and r.code == 5, f'{r!r}'
        return 'a PTY session: tty, window size, input, exit code 5'

    def signals():
        sid, _ = c.exec(['sleep', '1000'])
        sessions.append(sid)
        c.idle(0.3)
        c.signal(sid, 15)
        r = c.collect(sid, timeout=20)
        assert r.signal == 15, f'SIGTERM: {r!r}'
        sid, _ = c.exec(['sh', '-c', 'trap "echo caught; exit 3" INT; echo ready; '
                         'while :; do sleep 0.1; done'])
        sessions.append(sid)
        c.wait_output(sid, b'ready', timeout=20)
        c.signal(sid, 2)
        r = c.collect(sid, timeout=20)
        assert b'caught' in r.stdout and r.code == 3, f'SIGINT: {r!r}'
        return 'SIGTERM ends a session (signal 15); SIGINT reaches a trap (exit 3)'

    check('pipes_and_exit_codes', pipes)
    check('output_complete', output_complete)
    check('pty_session', pty)
    check('signals', signals)
    c.close()
    return out, sessions, daemon


def client_fds():
    """fd passing over vsock: the negotiation, and an Exec whose message says it carries an fd
    (vsock cannot carry one). Either is refused; the daemon keeps serving."""
    from jeepney import HeaderFields
    from sandbox_client import Connection, OBJECT_PATH, INTERFACE
    res = {}
    s = vsock_connect()
    res['negotiate'] = sasl(s, negotiate_fds=True)
    # What the kernel says to SCM_RIGHTS on AF_VSOCK.
    try:
        s.sendmsg([b''], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(4))])
        res['scm_rights'] = 'accepted'
    except OSError as e:
        res['scm_rights'] = str(e)
    conn = Connection(s, enable_fds=False, bus=False)
    msg = conn.make_call(OBJECT_PATH, INTERFACE, 'Exec', 'asa{sv}',
                         (['echo', 'via-fd'], {'stdout': ('h', 1)}))
    conn.serial += 1
    fds = []
    data = msg.serialise(conn.serial, fds=fds)
    res['unix_fds_header'] = msg.header.fields.get(HeaderFields.unix_fds)
    s.sendall(data)
    bad = conn.serial
    try:
        deadline = time.monotonic() + 5
        while bad not in conn.replies:
            conn.pump(max(0.0, deadline - time.monotonic()))
        _, reply = conn.replies.pop(bad)
        name = reply.header.fields.get(HeaderFields.error_name)
        res['exec'] = f'error {name}: {reply.body[0] if reply.body else ""}' if name \
            else f'reply {reply.body!r}'
    except TimeoutError:
        res['exec'] = 'no answer in 5 s (dropped)'
    except Exception as e:       # the daemon closed the connection
        res['exec'] = f'connection closed ({type(e).__name__}: {e})'
    # The same connection afterwards, unless the daemon closed it.
    res['same_connection'] = 'closed'
    if not res['exec'].startswith('connection closed'):
        try:
            conn.call(OBJECT_PATH, 'org.freedesktop.DBus.Peer', 'Ping', timeout=10)
            res['same_connection'] = 'answers Ping'
        except Exception as e:
            res['same_connection'] = f'{type(e).__name__}: {e}'
    conn.close()
    c = open_client()
    r = c.run(['echo', 'still serving'], timeout=20)
    res['after'] = r.stdout.decode(errors='replace').strip()
    res['after_id'] = r.id
    c.close()
    return res


def client_again():
    c = open_client()
    r = c.run(['sh', '-c', 'echo again $PPID'], timeout=20)
    c.close()
    return {'id': r.id, 'stdout': r.stdout.decode(errors='replace'), 'code': r.code}


CLIENTS = {'refused': client_refused, 'serve': client_serve, 'fds': client_fds,
           'again': client_again}


def client_main(action):
    try:
        res = {'result': CLIENTS[action]()}
    except Exception as e:
        res = {'exception': f'{type(e).__name__}: {e}', 'traceback': traceback.format_exc()}
    print(json.dumps(res), flush=True)


# --- checker side (root) ----------------------------------------------------------------------

class Checker:
    def __init__(self, outdir):
        self.results = Path(outdir) / 'results.jsonl'
        self.outdir = Path(outdir)

    def record(self, name, ok, detail, seconds):
        line = json.dumps({'check': name, 'ok': bool(ok), 'detail': str(detail)[:4000],
                           'seconds': round(seconds, 2)})
        print(('ok   ' if ok else 'FAIL ') + line, flush=True)
        with open(self.results, 'a') as f:
            f.write(line + '\n')
            f.flush()
            os.fsync(f.fileno())

    def check(self, name, fn):
        t = time.monotonic()
        try:
            detail = fn()
            self.record(name, True, detail or '', time.monotonic() - t)
            return True
        except Exception as e:
            self.record(name, False, f'{type(e).__name__}: {e}', time.monotonic() - t)
            return False


def run(*argv, timeout=30):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def unit_prop(unit, prop):
    return run('systemctl', 'show', '-P', prop, unit).stdout.strip()


def client(action, timeout=90):
    """guest_check.py --client ACTION as nobody; its JSON answer's result."""
    r = run('setpriv', f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups',
            sys.executable, __file__, '--client', action, timeout=timeout)
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f'client {action} exited {r.returncode}: {r.stdout[-1000:]} '
                           f'{r.stderr[-2000:]}')
    if 'exception' in res:
        raise RuntimeError(f'client {action}: {res["exception"]}\n{res["traceback"][-1500:]}')
    return res['result']


def wait_for(what, pred, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.2)


def journal(*args):
    return run('journalctl', '--no-pager', *args).stdout


def checker_main(outdir):
    ck = Checker(outdir)
    state = {'sessions': [], 'daemon': 0}
    t_start = time.monotonic()

    def boot():
        comm = Path('/proc/1/comm').read_text().strip()
        virt = run('systemd-detect-virt').stdout.strip()
        fs = run('stat', '-f', '-c', '%T', '/sys/fs/cgroup').stdout.strip()
        ctl = Path('/sys/fs/cgroup/cgroup.controllers').read_text().split() \
            if fs == 'cgroup2fs' else []
        up = float(Path('/proc/uptime').read_text().split()[0])
        assert comm == 'systemd', f'PID 1 is {comm}'
        assert virt == 'qemu' or virt == 'kvm', f'systemd-detect-virt says {virt!r}'
        assert fs == 'cgroup2fs' and {'memory', 'pids', 'cpu'} <= set(ctl), \
            f'/sys/fs/cgroup is {fs} with {ctl}'
        return f'systemd as PID 1 in {virt}, cgroup v2 with {" ".join(ctl)}; up {up:.1f} s'

    def vsock_socket_active():
        st = unit_prop(VSOCK_SOCKET, 'ActiveState')
        listen = unit_prop(VSOCK_SOCKET, 'Listen')
        cond = unit_prop(VSOCK_SOCKET, 'ConditionResult')
        assert st == 'active', f'{VSOCK_SOCKET} is {st} (condition result {cond}, listen ' \
                               f'{listen!r}): {run("systemctl", "status", VSOCK_SOCKET).stdout}'
        assert re.search(rf':{PORT}\b', listen), f'{VSOCK_SOCKET} listens on {listen!r}, ' \
                                                 f'not vsock port {PORT}'
        return f'{VSOCK_SOCKET} active, listening on {listen}'

    def nothing_else_runs():
        units = run('systemctl', 'list-units', '--all', '--plain', '--no-legend',
                    '--state=active,activating,failed', 'sandboxd*').stdout.split('\n')
        names = sorted(line.split()[0] for line in units if line.strip())
        procs = run('pgrep', '-a', '-x', 'sandboxd').stdout.strip()
        assert names == [VSOCK_SOCKET], f'project units up: {names}'
        assert not procs, f'sandboxd runs: {procs}'
        return f'only {VSOCK_SOCKET}; no sandboxd process'

    def cid1_refused():
        since = time.time()
        state['refused_since'] = since
        res = client('refused')
        assert res['connected'], f'could not connect to vsock CID {CID_LOCAL} port {PORT}: ' \
                                 f'{res["error"]}'
        assert not res['answer'].startswith('OK'), \
            f'an unprivileged user on CID {CID_LOCAL} was authenticated by default ' \
            f'(answer {res["answer"]!r}): the vsock CID rule is missing'
        assert res['closed'], f'connection not closed: {res}'
        return f'closed before authentication ({res["error"] or "EOF"})'

    def cid1_refusal_logged():
        pattern = re.compile(r'(?i)(refus|reject|denied|not allowed|disallow)')

        def lines():
            text = journal('-u', SERVICE, '-o', 'cat', '--since',
                           f'@{int(state.get("refused_since", 0)) - 1}')
            return [ln for ln in text.splitlines()
                    if pattern.search(ln) and re.search(r'(?i)(cid|vsock)', ln)]
        try:
            found = wait_for('the refusal in the journal', lines, 10)
        except AssertionError:
            raise AssertionError('no journal entry of sandboxd.service about refusing the vsock '
                                 'peer; its journal: ' + journal('-u', SERVICE, '-o', 'cat')[-1500:])
        return found[0]

    def allow_dropin():
        frag = unit_prop(SERVICE, 'FragmentPath')
        exec_line = next((ln.split('=', 1)[1] for ln in Path(frag).read_text().splitlines()
                          if ln.startswith('ExecStart=')), None)
        assert exec_line, f'no ExecStart= in {frag}'
        binary = exec_line.split()[0].lstrip('@-:+!')
        helptext = run(binary, '--help').stdout
        knows = '--vsock-allow-cid' in helptext
        extra = (f' --vsock-allow-cid={CID_LOCAL}' if knows else '') + f' --idle-timeout={IDLE}'
        DROPIN.parent.mkdir(parents=True, exist_ok=True)
        DROPIN.write_text(f'[Service]\nExecStart=\nExecStart={exec_line}{extra}\n')
        t = time.monotonic()
        r = run('systemctl', 'daemon-reload')
        assert r.returncode == 0, r.stderr
        t_reload = time.monotonic() - t
        run('systemctl', 'stop', SERVICE)
        run('systemctl', 'reset-failed', SERVICE)
        t_stop = time.monotonic() - t - t_reload
        st = unit_prop(VSOCK_SOCKET, 'ActiveState')
        if st != 'active':
            run('systemctl', 'restart', VSOCK_SOCKET)
        assert unit_prop(VSOCK_SOCKET, 'ActiveState') == 'active', f'{VSOCK_SOCKET} is {st}'
        state['knows_allow'] = knows
        return f'ExecStart={exec_line}{extra} (reload {t_reload:.1f} s, stop {t_stop:.1f} s)'

    def allow_cid_option():
        assert state.get('knows_allow'), \
            'sandboxd --help does not mention --vsock-allow-cid (the CID rule is not there)'
        return '--vsock-allow-cid is there'

    ck.check('boot', boot)
    ck.check('vsock_socket_active', vsock_socket_active)
    ck.check('nothing_else_runs', nothing_else_runs)
    ck.check('cid1_refused', cid1_refused)
    ck.check('cid1_refusal_logged', cid1_refusal_logged)
    ck.check('allow_cid_dropin', allow_dropin)
    ck.check('allow_cid_option', allow_cid_option)

    # The sessions: one client over vsock (nobody on CID 1, allowed by the drop-in).
    t = time.monotonic()
    try:
        results, sessions, daemon = client('serve')
        state['sessions'] = [(daemon, s) for s in sessions]
        state['daemon'] = daemon
        for r in results:
            ck.record(r['check'], r['ok'], r['detail'], r.get('seconds', 0))
    except Exception as e:
        for name in ('vsock_activation', 'pipes_and_exit_codes', 'output_complete',
                     'pty_session', 'signals'):
            ck.record(name, False, f'the vsock client failed: {e}', time.monotonic() - t)

    def fd_passing():
        before = unit_prop(SERVICE, 'MainPID')
        res = client('fds')
        after = unit_prop(SERVICE, 'MainPID')
        state['sessions'].append((int(after or 0), res['after_id']))
        detail = (f'NEGOTIATE_UNIX_FD -> {res["negotiate"]!r}; SCM_RIGHTS on vsock: '
                  f'{res["scm_rights"]}; an Exec naming an fd it cannot carry -> {res["exec"]}, '
                  f'the connection then {res["same_connection"]}; a new connection: '
                  f'{res["after"]!r}')
        # A client cannot get fd passing on vsock: refused at SASL, so a correct client relays
        # stdio through Output/WriteStdin (the session checks). A message that claims an fd
        # anyway must not take the connection or the daemon down with it.
        assert res['negotiate'] is not None and res['negotiate'].startswith('ERROR'), \
            'fd passing negotiated on vsock: ' + detail
        assert not res['exec'].startswith('reply'), \
            'an Exec naming an fd that never came was run: ' + detail
        assert res['same_connection'] in ('answers Ping', 'closed'), detail
        assert res['after'] == 'still serving', detail
        assert before == after and after != '0', \
            f'the daemon changed from pid {before} to {after} (crashed?): ' + detail
        return detail

    def idle_exit():
        assert state['daemon'], 'no daemon was started over vsock, so none could exit when idle'
        t0 = time.monotonic()
        wait_for(f'{SERVICE} to exit when idle ({IDLE} s)',
                 lambda: unit_prop(SERVICE, 'ActiveState') in ('inactive', 'failed'), IDLE + 30)
        took = time.monotonic() - t0
        res = unit_prop(SERVICE, 'Result')
        sock = unit_prop(VSOCK_SOCKET, 'ActiveState')
        assert res == 'success', f'{SERVICE} ended with result {res}'
        assert sock == 'active', f'{VSOCK_SOCKET} is {sock} after the idle exit'
        said = [ln for ln in journal('-o', 'cat', f'_PID={state["daemon"]}').splitlines()
                if 'Idle for' in ln]
        assert said, f'the daemon (pid {state["daemon"]}) did not log its idle exit'
        return (f'{said[-1]!r} {took:.1f} s after the last client; {VSOCK_SOCKET} still '
                f'listening')

    def second_activation():
        res = client('again')
        words = res['stdout'].split()
        assert res['code'] == 0 and words[:1] == ['again'], repr(res)
        pid = int(words[1])
        assert pid != state['daemon'], f'the same daemon (pid {pid}) served again'
        state['sessions'].append((pid, res['id']))
        return f'a new daemon (pid {pid}, the first was {state["daemon"]}) served it'

    def journal_sessions():
        want = state['sessions']
        assert want, 'no sessions were started'

        def entries():
            got = set()
            for line in journal('-o', 'json', '_SYSTEMD_UNIT=' + SERVICE).splitlines():
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if 'SANDBOXD_EVENT' in e:
                    got.add((int(e.get('_PID', 0)), int(e['SANDBOXD_SESSION']),
                             e['SANDBOXD_EVENT']))
            missing = [(p, s, ev) for p, s in want for ev in ('start', 'end')
                       if (p, s, ev) not in got]
            return (got, missing) if not missing else None
        try:
            wait_for('the journal entries', entries, 10)
        except AssertionError:
            got = set()
            for line in journal('-o', 'json', '_SYSTEMD_UNIT=' + SERVICE).splitlines():
                e = json.loads(line)
                if 'SANDBOXD_EVENT' in e:
                    got.add((int(e.get('_PID', 0)), e['SANDBOXD_SESSION'], e['SANDBOXD_EVENT']))
            raise AssertionError(f'sessions (daemon pid, id) {want}: journal has {sorted(got)}')
        return f'start and end entries for all {len(want)} sessions'

    def sandboxctl_over_vsock():
        # sandboxctl connects the AF_VSOCK socket itself (sd-bus 252 has no vsock addresses) and
        # relays stdio, since no fds cross vsock. As nobody: CID 1 is allowed by the drop-in.
        ctl = shutil.which('sandboxctl') or '/usr/local/bin/sandboxctl'
        asnobody = ['setpriv', f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups', ctl,
                    f'--address=vsock:cid=1,port={PORT}']

        def ctl_run(*args, stdin=None, timeout=30):
            t0 = time.monotonic()
            r = subprocess.run(asnobody + list(args), input=stdin, capture_output=True,
                               timeout=timeout)
            return r, time.monotonic() - t0

        r, _ = ctl_run('exec', '--', 'id', '-un')
        assert (r.returncode, r.stdout) == (0, b'root\n'), (r.returncode, r.stdout, r.stderr)
        r, _ = ctl_run('exec', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7')
        assert (r.returncode, r.stdout, r.stderr) == (7, b'out\n', b'err\n'), r
        r, _ = ctl_run('exec', '--', 'sh', '-c', 'kill -TERM $$')
        assert r.returncode == 143, r
        blob = os.urandom(1 << 20)
        r, took = ctl_run('exec', '--', 'cat', stdin=blob)
        assert r.returncode == 0 and r.stdout == blob, (r.returncode, len(r.stdout), r.stderr[-500:])
        assert took < 20, f'1 MiB through cat took {took:.1f} s'
        r, _ = ctl_run('exec', '-tt', '--', 'sh', '-c', 'test -t 0 && read l && echo "got $l"',
                       stdin=b'typed\n')
        assert r.returncode == 0 and b'got typed' in r.stdout, r
        r, _ = ctl_run('list')
        assert r.returncode == 0 and r.stdout.startswith(b'ID'), r
        return f'exec, exit codes, signals, 1 MiB of stdin in {took:.1f} s, -tt, list: as nobody on CID 1'

    ck.check('sandboxctl_over_vsock', sandboxctl_over_vsock)
    ck.check('fd_passing', fd_passing)
    ck.check('idle_exit', idle_exit)
    ck.check('second_activation', second_activation)
    ck.check('journal_sessions', journal_sessions)
    try:
        with open(ck.outdir / 'journal.txt', 'w') as f:
            f.write(journal('-b', '-o', 'short-monotonic'))
    except OSError:
        pass
    ck.record('done', True, f'checks took {time.monotonic() - t_start:.1f} s', 0)
    os.sync()


if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--client':
        client_main(sys.argv[2])
    else:
        checker_main(sys.argv[1])
