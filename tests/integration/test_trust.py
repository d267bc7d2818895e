# SPDX-License-Identifier: LGPL-2.1-or-later
"""Trust boundaries a hostile local caller tries (issue: trust boundaries; api.md, "Authorization"):
groups that are not the caller's own, control of sessions across identities, the environment
across identities, stdin a uid can make the daemon hold, and the errors for limits a caller can
never meet. Each attack test fails on a daemon without the rule it checks.

What needs a real polkitd (the bus side of the group rule, exec-as-user sessions seen from a
second connection, polkit's details and pending checks per uid) is in tests/boot.
"""

import grp
import os

import pytest

from sandbox_client import DBUS_ERR, RLIM_INFINITY, DBusError
from test_identity import ident, run_as_ok  # noqa: F401 - the module's users fixture

INVALID_ARGS = DBUS_ERR + 'InvalidArgs'
ACCESS_DENIED = DBUS_ERR + 'AccessDenied'
LIMITS_EXCEEDED = DBUS_ERR + 'LimitsExceeded'
NO_SUCH_SESSION = 'org.example.Sandbox1.Error.NoSuchSession'
MIB = 1024 * 1024

pytestmark = pytest.mark.root


# --- groups: "as the caller itself" is the caller's uid with its own groups ---------------------

def _gid_of(name):
    return grp.getgrnam(name).gr_gid


def test_p2p_caller_cannot_take_a_group_it_is_not_in(p2p_harness, ident):
    """alice:shadow, 1003:0 and 1003:disk were "as oneself": a shell with gid shadow or 0."""
    h = p2p_harness
    h.start()
    specs = [f'{ident.name}:shadow', f'{ident.uid}:0', f'{ident.uid}:disk', f'{ident.name}:root',
             f'{ident.uid}:{ident.other_gid}']
    actions = [['exec', ['/usr/bin/id', '-G'], {'user': s}] for s in specs] + [['list']]
    res = run_as_ok(h, ident.uid, ident.gid, actions)
    for spec, r in zip(specs, res):
        assert r.get('error') == ACCESS_DENIED, (spec, r)
        assert 'group' in r['message'] and 'member' in r['message'], (spec, r)
    assert res[-1] == {'ok': []}, res[-1]


def test_p2p_caller_may_use_its_own_groups(p2p_harness, ident):
    h = p2p_harness
    h.start()
    extra = sorted(ident.extra_gids)[0]
    specs = [(ident.name, ident.gid), (f'{ident.name}:{ident.name}', ident.gid),
             (f'{ident.uid}:{extra}', extra), (f'{ident.name}:{grp.getgrgid(extra).gr_name}', extra)]
    actions = []
    for spec, _ in specs:
        actions += [['exec', ['/usr/bin/id', '-g'], {'user': spec}], ['collect']]
    res = run_as_ok(h, ident.uid, ident.gid, actions)
    for i, (spec, gid) in enumerate(specs):
        assert 'ok' in res[2 * i], (spec, res[2 * i])
        assert res[2 * i + 1]['ok']['stdout'] == f'{gid}\n', (spec, res[2 * i + 1])


def test_p2p_bare_uid_with_another_gid_is_another_identity(p2p_harness):
    """A uid without a passwd entry has only its own number as group."""
    h = p2p_harness
    h.start()
    uid = 61999
    res = h.run_as([['exec', ['/usr/bin/true'], {'user': f'{uid}:0'}],
                    ['exec', ['/usr/bin/id', '-g'], {'user': f'{uid}:{uid}'}], ['collect']],
                   uid=uid, gid=uid)
    assert res[0].get('error') == ACCESS_DENIED, res[0]
    assert res[2]['ok']['stdout'] == f'{uid}\n', res


# --- who may control a session --------------------------------------------------------------

def test_same_uid_connection_controls_a_session_run_as_itself(p2p_harness, ident):
    """The other half of the control rule: a session that runs as its creator's own identity is
    controllable by the creator uid's other connections (sandboxctl list/signal from another
    terminal). Sessions run as another identity are checked on the booted system, where polkit
    can grant exec-as-user."""
    h = p2p_harness
    h.start()
    holder = h.popen_as([['exec', ['/bin/sleep', '30']], ['sleep', 20]], uid=ident.uid, gid=ident.gid)
    try:
        client = h.client()
        sid = None
        for _ in range(100):
            sessions = client.list_sessions()
            if sessions:
                sid = sessions[0][0]
                break
            client.idle(0.05)
        assert sid is not None, 'the holder did not start its session'
        res = run_as_ok(h, ident.uid, ident.gid, [['list'], ['write', sid, 'x'], ['signal', sid, 15]])
        assert [s[0] for s in res[0]['ok']] == [sid], res
        assert res[1] == {'ok': []} and res[2] == {'ok': []}, res
    finally:
        holder.kill()
        holder.wait()


# --- the environment across identities --------------------------------------------------------

@pytest.mark.parametrize('entry', ['PATH=/tmp/alice:/usr/bin', 'BASH_ENV=/tmp/alice/rc', 'ENV=/tmp/x',
                                   'PYTHONPATH=/tmp/alice', 'PERL5LIB=/tmp/alice', 'LD_PRELOAD=/x.so',
                                   'GCONV_PATH=/tmp/x', 'IFS=x', 'LANG=/tmp/alice/locale',
                                   'LC_ALL=../../tmp/alice', 'TZ=/tmp/alice/zone', 'TZ=:/tmp/alice/zone',
                                   'TZ=../../../tmp/alice/zone'])
def test_env_across_identities_is_refused_before_polkit(bus_harness, entry):
    """PATH=/tmp/alice:… ran alice's own `id` as root. Refused as InvalidArgs naming the variable,
    before polkit is asked (there is no polkit on this private bus: without the rule the answer
    would be AccessDenied)."""
    h = bus_harness
    h.start()
    res = h.run_as([['exec', ['/usr/bin/id'], {'user': 'root', 'env': [entry]}]])
    assert res[0].get('error') == INVALID_ARGS, (entry, res[0])
    key = entry.split('=')[0]
    assert "'env'" in res[0]['message'] and key in res[0]['message'], (entry, res[0])


def test_env_allowed_across_identities_reaches_authorization(bus_harness):
    """The allow-list itself passes the env check (and then polkit, absent here, says no)."""
    h = bus_harness
    h.start()
    env = ['TERM=dumb', 'COLORTERM=truecolor', 'NO_COLOR=1', 'LANG=C.UTF-8', 'LANGUAGE=en',
           'LC_ALL=C', 'LC_TIME=en_GB.UTF-8', 'TZ=Europe/Paris', 'TZ=UTC']
    res = h.run_as([['exec', ['/usr/bin/true'], {'user': 'root', 'env': env}]])
    assert res[0].get('error') != INVALID_ARGS, res[0]
    assert res[0].get('error') in (ACCESS_DENIED, DBUS_ERR + 'InteractiveAuthorizationRequired'), res[0]


def test_env_for_oneself_is_free(harness):
    client = harness.client()
    r = client.run(['/usr/bin/printenv', 'BASH_ENV'], {'env': ['BASH_ENV=/tmp/x', 'PATH=/usr/bin']})
    assert (r.code, r.stdout) == (0, b'/tmp/x\n'), r


# --- stdin a uid can make the daemon hold -----------------------------------------------------

def test_stdin_queued_is_bounded_per_uid(harness):
    """128 sessions x 1 MiB of stdin per uid used to be accepted: 128 MiB held by the daemon."""
    client = harness.client()
    chunk = b'x' * MIB
    sids, refused = [], None
    for i in range(40):
        sid, _ = client.exec(['/bin/sleep', '60'])
        sids.append(sid)
        try:
            client.write_stdin(sid, chunk)
        except DBusError as e:
            refused = (i, e)
            break
    assert refused, 'the daemon queued 40 MiB of stdin for one uid'
    i, e = refused
    assert e.name == LIMITS_EXCEEDED, e
    assert 'uid 0' in e.message and str(16 * MIB) in e.message, e
    # 16 MiB in the daemon, a pipe's worth each in the kernel.
    assert 16 <= i <= 17, i
    if harness.is_bus:
        return  # uid 65534 may not Exec on a bus without polkit; the p2p variant checks the rest
    # Another uid is not affected.
    res = harness.run_as([['exec', ['/bin/cat']], ['write', None, 'hello'], ['close', None], ['collect']])
    assert res[3]['ok']['stdout'] == 'hello', res


def test_stdin_budget_comes_back_when_sessions_end(harness):
    client = harness.client()
    chunk = b'x' * MIB
    for _ in range(2):
        sids = []
        for _ in range(15):
            sid, _ = client.exec(['/bin/sleep', '60'])
            client.write_stdin(sid, chunk)
            sids.append(sid)
        for sid in sids:
            client.signal(sid, 9)
        for sid in sids:
            client.collect(sid, timeout=10)


# --- clear errors for what can never succeed --------------------------------------------------

def test_write_stdin_larger_than_the_queue_is_invalid(harness):
    client = harness.client()
    sid, _ = client.exec(['/bin/cat'])
    with pytest.raises(DBusError) as e:
        client.write_stdin(sid, b'y' * (MIB + 1))
    assert e.value.name == INVALID_ARGS and "'data'" in e.value.message, e.value
    assert str(MIB) in e.value.message, e.value
    client.write_stdin(sid, b'y' * MIB)     # exactly the queue is fine
    client.close_stdin(sid)
    r = client.collect(sid, timeout=10)
    assert len(r.stdout) == MIB, len(r.stdout)


@pytest.mark.parametrize('soft,hard', [(0, 0), (2, 2), (0, 1024)])
def test_nofile_too_low_is_invalid(harness, soft, hard):
    client = harness.client()
    with pytest.raises(DBusError) as e:
        client.exec(['/bin/true'], {'rlimits': [('nofile', soft, hard)]})
    assert e.value.name == INVALID_ARGS and 'nofile' in e.value.message, e.value
    assert 'at least 3' in e.value.message, e.value


@pytest.mark.parametrize('hard', ['infinity', 'nr_open+1'])
def test_nofile_above_nr_open_is_invalid(harness, hard):
    with open('/proc/sys/fs/nr_open') as f:
        nr_open = int(f.read())
    client = harness.client()
    value = RLIM_INFINITY if hard == 'infinity' else nr_open + 1
    with pytest.raises(DBusError) as e:
        client.exec(['/bin/true'], {'rlimits': [('nofile', 1024, value)]})
    assert e.value.name == INVALID_ARGS and 'nofile' in e.value.message, e.value
    assert 'fs.nr_open' in e.value.message and str(nr_open) in e.value.message, e.value
    r = client.run(['/bin/sh', '-c', 'ulimit -Hn'], {'rlimits': [('nofile', 1024, 4096)]})
    assert r.stdout == b'4096\n', r


def test_hard_limit_above_the_daemons_own_says_why(harness):
    """Without CAP_SYS_RESOURCE (this machine: a hard NOFILE of 20000 nobody may raise) the
    daemon cannot give more than it has; the error says so instead of a bare EPERM."""
    client = harness.client()
    with open(f'/proc/{harness.daemon.pid}/limits') as f:
        line = next(l for l in f if l.startswith('Max open files'))
    hard = line.split()[4]
    with open('/proc/sys/fs/nr_open') as f:
        nr_open = int(f.read())
    if hard == 'unlimited' or int(hard) >= nr_open:
        pytest.skip(f"the daemon's hard NOFILE ({hard}) is already the kernel's ceiling")
    try:
        r = client.run(['/bin/sh', '-c', 'ulimit -Hn'], {'rlimits': [('nofile', 1024, nr_open)]})
    except DBusError as e:
        assert 'setrlimit' in e.message and 'CAP_SYS_RESOURCE' in e.message, e
        return
    assert r.stdout == f'{nr_open}\n'.encode(), r   # the daemon could raise it after all
