# SPDX-License-Identifier: LGPL-2.1-or-later
"""Who a session runs as, with real users: the `user` option and the default
user, the environment built for it, `rlimits`, the `restricted` profile and
the stage every start failure names (api.md: Exec options, default
environment, restricted profile, Errors).

A module fixture creates a user sbxt-<random> with a home directory, its own
user group and two supplementary groups, plus an extra group for name:group;
they are removed at the end. Everything here needs root and useradd.
"""

import grp
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import time
from types import SimpleNamespace

import pytest

from sandbox_client import DBusError, ERR, DBUS_ERR, RLIM_INFINITY, descendants_of, wait_until

INVALID_ARGS = DBUS_ERR + 'InvalidArgs'
ACCESS_DENIED = DBUS_ERR + 'AccessDenied'
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
PY = '/usr/bin/python3'
CAP_SYS_ADMIN = 21

pytestmark = pytest.mark.root


# --- the users ---------------------------------------------------------------

def _tool(name):
    return shutil.which(name) or shutil.which(name, path='/usr/sbin:/sbin:/usr/bin:/bin')


def _run_tool(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _free_uid(start):
    uid = start
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


@pytest.fixture(scope='module')
def ident():
    if os.geteuid() != 0:
        pytest.skip('needs root to create users')
    tools = {t: _tool(t) for t in ('useradd', 'userdel', 'groupadd', 'groupdel')}
    missing = [t for t, p in tools.items() if not p]
    if missing:
        pytest.skip(f'{", ".join(missing)} not installed')
    tag = 'sbxt-' + secrets.token_hex(3)
    extra_groups = [f'{tag}-a', f'{tag}-b']
    other_group = f'{tag}-x'
    home = f'/home/{tag}'
    made_groups, made_user = [], False
    try:
        for g in extra_groups + [other_group]:
            _run_tool(tools['groupadd'], g)
            made_groups.append(g)
        _run_tool(tools['useradd'], '--create-home', '--home-dir', home, '--shell', '/bin/bash',
                  '--user-group', '--groups', ','.join(extra_groups), tag)
        made_user = True
        pw = pwd.getpwnam(tag)
        id_groups = subprocess.run(['id', '-G', tag], check=True, capture_output=True,
                                   text=True).stdout.split()
        yield SimpleNamespace(
            name=tag, uid=pw.pw_uid, gid=pw.pw_gid, home=pw.pw_dir, shell=pw.pw_shell,
            groups={int(g) for g in id_groups},
            extra_gids={grp.getgrnam(g).gr_gid for g in extra_groups},
            other_group=other_group, other_gid=grp.getgrnam(other_group).gr_gid,
            bare_uid=_free_uid(61234))
    finally:
        if made_user:
            # No process of the user may be left, or userdel refuses.
            _kill_uid(pwd.getpwnam(tag).pw_uid)
            subprocess.run([tools['userdel'], '-r', tag], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        for g in made_groups + [tag]:
            try:
                grp.getgrnam(g)
            except KeyError:
                continue
            subprocess.run([tools['groupdel'], g], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)


def _pids_of_uid(uid):
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/status') as f:
                for line in f:
                    if line.startswith('Uid:'):
                        if int(line.split()[1]) == uid:
                            out.append(int(d))
                        break
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def _kill_uid(uid):
    for pid in _pids_of_uid(uid):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    wait_until(lambda: not _pids_of_uid(uid), 5)


# --- helpers -----------------------------------------------------------------

# The environment as exec'd (/proc/self/environ: Python's own locale coercion
# adds LC_CTYPE to os.environ).
PROBE = r'''
import json, os
env = open("/proc/self/environ", "rb").read().decode().split("\0")
print(json.dumps({"status": open("/proc/self/status").read(), "cwd": os.getcwd(),
                  "env": dict(e.split("=", 1) for e in env if e)}))
'''


def parse_status(text):
    return {k: v.strip() for k, v in
            (l.split(':', 1) for l in text.replace('\r\n', '\n').split('\n') if ':' in l)}


def ids(status, key):
    return [int(x) for x in status[key].split()]


def probe(client, options=None):
    """Run the probe; returns (status dict, cwd, env dict)."""
    r = client.run([PY, '-c', PROBE], options, timeout=10)
    assert (r.code, r.signal) == (0, 0), r
    d = json.loads(r.stdout)
    return parse_status(d['status']), d['cwd'], d['env']


def exec_error(client, argv, options=None):
    with pytest.raises(DBusError) as ei:
        client.exec(argv, options)
    return ei.value


def user_env(name, home, shell, extra=()):
    env = {'PATH': DEFAULT_PATH, 'HOME': home, 'USER': name, 'LOGNAME': name, 'SHELL': shell}
    env.update(dict(e.split('=', 1) for e in extra))
    return env


def assert_no_privileges(st):
    for f in ('CapEff', 'CapPrm', 'CapInh', 'CapAmb'):
        assert int(st[f], 16) == 0, f'{f} of a non-root command: {st[f]}'


def proc_limits(text):
    """/proc/PID/limits -> {'Max open files': ('1024', '4096'), ...}"""
    out = {}
    for line in text.split('\n')[1:]:
        m = re.match(r'^(Max .+?)\s{2,}(\S+)\s+(\S+)', line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def daemon_limits(h):
    with open(f'/proc/{h.pid}/limits') as f:
        return proc_limits(f.read())


def run_as_ok(h, uid, gid, actions):
    res = h.run_as(actions, uid=uid, gid=gid)
    assert len(res) == len(actions), res
    return res


# --- user: name, uid, name:group, uid:gid -------------------------------------

@pytest.mark.parametrize('form', ['name', 'uid', 'name:group', 'uid:gid', 'name:gid'])
def test_user_forms_switch_every_id(harness, ident, form):
    client = harness.client()
    spec, gid = {
        'name': (ident.name, ident.gid),
        'uid': (str(ident.uid), ident.gid),
        'name:group': (f'{ident.name}:{ident.other_group}', ident.other_gid),
        'uid:gid': (f'{ident.uid}:{ident.other_gid}', ident.other_gid),
        'name:gid': (f'{ident.name}:{ident.other_gid}', ident.other_gid),
    }[form]
    st, cwd, env = probe(client, {'user': spec})
    assert ids(st, 'Uid') == [ident.uid] * 4, st['Uid']
    assert ids(st, 'Gid') == [gid] * 4, st['Gid']
    # initgroups(name, gid): the requested primary group plus the user's memberships
    assert set(ids(st, 'Groups')) == set(os.getgrouplist(ident.name, gid)), st['Groups']
    if gid == ident.gid:
        assert set(ids(st, 'Groups')) == ident.groups, (st['Groups'], ident.groups)
    else:
        assert set(ids(st, 'Groups')) == ident.extra_gids | {gid}, st['Groups']
    assert_no_privileges(st)
    assert cwd == ident.home
    assert env == user_env(ident.name, ident.home, ident.shell)


@pytest.mark.parametrize('with_gid', [False, True], ids=['uid', 'uid:gid'])
def test_bare_uid(p2p_harness, ident, with_gid):
    client = p2p_harness.client()
    uid = ident.bare_uid
    gid = ident.other_gid if with_gid else uid   # a bare uid: its own number as group
    st, cwd, env = probe(client, {'user': f'{uid}:{gid}' if with_gid else str(uid)})
    assert ids(st, 'Uid') == [uid] * 4, st['Uid']
    assert ids(st, 'Gid') == [gid] * 4, st['Gid']
    assert st['Groups'] == '', 'a uid without passwd entry has no supplementary groups'
    assert_no_privileges(st)
    assert cwd == '/'
    assert env == user_env(str(uid), '/', '/bin/sh')


def test_no_way_back_to_root(p2p_harness, ident):
    client = p2p_harness.client()
    for user in (ident.name, str(ident.bare_uid)):
        for call in ('os.setuid(0)', 'os.setresuid(0, 0, 0)', 'os.setgid(0)',
                     'os.setgroups([0])'):
            r = client.run([PY, '-c', f'import os\ntry:\n {call}\nexcept OSError as e:\n'
                            f' print(e.errno)\nelse:\n print("became root")'],
                           {'user': user}, timeout=10)
            assert r.stdout == b'1\n', (user, call, r)   # EPERM


@pytest.mark.parametrize('spec', ['sbxt-no-such-user-{tag}', '{name}:sbxt-no-such-group',
                                  'root:sbxt-no-such-group', '{bare}:sbxt-no-such-group'])
def test_unknown_user_or_group_spawns_nothing(harness, ident, tmpdir_public, spec):
    client = harness.client()
    spec = spec.format(tag=secrets.token_hex(2), name=ident.name, bare=ident.bare_uid)
    marker = tmpdir_public / 'spawned'
    e = exec_error(client, ['/bin/sh', '-c', f'touch {marker}'], {'user': spec})
    assert e.name == ERR + 'NoSuchUser', e
    assert spec.split(':')[0] in e.message or spec in e.message, e
    client.idle(0.3)
    assert not marker.exists(), 'the command ran although the user did not resolve'
    assert descendants_of(harness.pid) == [], 'a process was spawned'
    assert client.list_sessions() == []
    assert not any(r.exited or r.chunks for r in client.results.values())


@pytest.mark.parametrize('who', ['user', 'bare'])
def test_pty_belongs_to_the_user(p2p_harness, ident, who):
    client = p2p_harness.client()
    uid = ident.uid if who == 'user' else ident.bare_uid
    r = client.run(['/bin/sh', '-c', 'stat -c "%u %g %a %F" "$(tty)"'],
                   {'tty': True, 'user': ident.name if who == 'user' else str(uid)}, timeout=10)
    assert (r.code, r.signal) == (0, 0), r
    tty_gid = grp.getgrnam('tty').gr_gid
    assert r.stdout == f'{uid} {tty_gid} 620 character special file\r\n'.encode(), r


# --- the default user: the caller ------------------------------------------

def test_default_user_is_the_caller(p2p_harness, ident):
    h = p2p_harness
    h.start()
    res = run_as_ok(h, ident.uid, ident.gid, [
        ['exec', [PY, '-c', PROBE]], ['collect'],
        ['exec', ['id', '-u']], ['collect'],
        ['exec', ['id', '-u'], {'user': ident.name}], ['collect'],
        ['exec', ['id', '-u'], {'user': str(ident.uid)}], ['collect'],
    ])
    for r in res:
        assert 'error' not in r, res
    assert res[1]['ok']['code'] == 0, res[1]
    d = json.loads(res[1]['ok']['stdout'])
    st = parse_status(d['status'])
    assert ids(st, 'Uid') == [ident.uid] * 4 and ids(st, 'Gid') == [ident.gid] * 4, st
    # the user's own groups, not the caller's (setpriv --clear-groups)
    assert set(ids(st, 'Groups')) == ident.groups, st['Groups']
    assert_no_privileges(st)
    assert d['cwd'] == ident.home
    assert d['env'] == user_env(ident.name, ident.home, ident.shell)
    for i in (3, 5, 7):
        assert res[i]['ok']['stdout'] == f'{ident.uid}\n', res[i]


def test_user_database_changes_are_seen_at_once(p2p_harness, ident):
    """Lookups are kept for a while (user.c), but not past a change of /etc/passwd or
    /etc/group: a membership or shell changed, or a user added, counts for the very next Exec."""
    client = p2p_harness.client()
    group = ident.name + '-n'
    newcomer = ident.name + 'z'
    tools = {t: _tool(t) for t in ('groupadd', 'groupdel', 'usermod', 'gpasswd', 'useradd',
                                    'userdel')}
    if not all(tools.values()):
        pytest.skip('needs groupadd, groupdel, usermod, gpasswd, useradd and userdel')
    st, _, env = probe(client, {'user': ident.name})   # now kept
    assert set(ids(st, 'Groups')) == ident.groups
    err = exec_error(client, ['true'], {'user': newcomer})
    assert err.name == ERR + 'NoSuchUser', err
    try:
        _run_tool(tools['groupadd'], group)
        gid = grp.getgrnam(group).gr_gid
        _run_tool(tools['usermod'], '--append', '--groups', group, ident.name)
        st, _, _ = probe(client, {'user': ident.name})
        assert set(ids(st, 'Groups')) == ident.groups | {gid}, st['Groups']

        _run_tool(tools['gpasswd'], '--delete', ident.name, group)
        _run_tool(tools['usermod'], '--shell', '/bin/sh', ident.name)
        st, _, env = probe(client, {'user': ident.name})
        assert set(ids(st, 'Groups')) == ident.groups, st['Groups']
        assert env['SHELL'] == '/bin/sh', env

        _run_tool(tools['useradd'], '--no-create-home', newcomer)
        r = client.run(['id', '-un'], {'user': newcomer}, timeout=10)
        assert (r.code, r.stdout) == (0, f'{newcomer}\n'.encode()), r
    finally:
        subprocess.run([tools['usermod'], '--shell', ident.shell, ident.name],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([tools['userdel'], newcomer], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        for g in (group, newcomer):
            subprocess.run([tools['groupdel'], g], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)


def test_user_database_edited_in_place_is_seen_at_once(p2p_harness, ident):
    """The same for a file written in place rather than replaced by a new one, as an editor or
    `>>` does: a group line appended to /etc/group counts for the very next Exec."""
    client = p2p_harness.client()
    st, _, _ = probe(client, {'user': ident.name})   # now kept
    assert set(ids(st, 'Groups')) == ident.groups
    used = {g.gr_gid for g in grp.getgrall()}
    gid = next(g for g in range(61000, 62000) if g not in used)
    with open('/etc/group', 'rb') as f:
        saved = f.read()
    try:
        with open('/etc/group', 'ab') as f:
            f.write(f'{ident.name}-p:x:{gid}:{ident.name}\n'.encode())
        st, _, _ = probe(client, {'user': ident.name})
        assert set(ids(st, 'Groups')) == ident.groups | {gid}, st['Groups']
    finally:
        with open('/etc/group', 'r+b') as f:
            f.write(saved)
            f.truncate()


def test_default_user_of_a_bare_uid_caller(p2p_harness, ident):
    h = p2p_harness
    h.start()
    uid = ident.bare_uid
    res = run_as_ok(h, uid, uid, [['exec', ['/bin/sh', '-c', 'id -u; id -g; pwd; echo "$HOME"']],
                                  ['collect']])
    assert res[1]['ok']['stdout'] == f'{uid}\n{uid}\n/\n/\n', res


@pytest.mark.parametrize('spec', ['root', '0', '0:0', 'nobody', '{bare}'])
def test_non_root_caller_cannot_be_another_user_p2p(p2p_harness, ident, tmpdir_public, spec):
    h = p2p_harness
    h.start()
    spec = spec.format(bare=ident.bare_uid)
    marker = tmpdir_public / 'spawned'
    os.chmod(tmpdir_public, 0o777)
    res = run_as_ok(h, ident.uid, ident.gid, [
        ['exec', ['/bin/sh', '-c', f'touch {marker}'], {'user': spec}], ['list']])
    assert res[0].get('error') == ACCESS_DENIED, res[0]
    assert res[1] == {'ok': []}, res[1]
    time.sleep(0.2)
    assert not marker.exists()


# --- env ---------------------------------------------------------------------

def test_env_entries_over_the_default(p2p_harness, ident):
    client = p2p_harness.client()
    entries = ['FOO=bar baz', 'HOME=/tmp', 'EMPTY=', 'EQ=a=b', 'USER=someone-else']
    _, _, env = probe(client, {'user': ident.name, 'env': entries})
    assert env == user_env(ident.name, ident.home, ident.shell, entries)
    assert 'SANDBOXD_TEST_LEAK' not in env and 'TERM' not in env


@pytest.mark.parametrize('entries', [['NOEQUALS'], ['=value'], ['A=1', 'B'], ['=']],
                         ids=['no-equals', 'empty-key', 'second-bad', 'only-equals'])
def test_env_invalid_entries(p2p_harness, ident, tmpdir_public, entries):
    client = p2p_harness.client()
    marker = tmpdir_public / 'spawned'
    e = exec_error(client, ['/bin/sh', '-c', f'touch {marker}'],
                   {'user': ident.name, 'env': entries})
    assert e.name == INVALID_ARGS, e
    assert "'env'" in e.message, e
    client.idle(0.2)
    assert not marker.exists() and client.list_sessions() == []


def test_term_on_a_pty(p2p_harness, ident):
    client = p2p_harness.client()
    show = ['/bin/sh', '-c', 'echo "[${TERM-unset}]"']
    r = client.run(show, {'tty': True, 'user': ident.name}, timeout=10)
    assert r.stdout == b'[xterm-256color]\r\n', r
    r = client.run(show, {'tty': True, 'user': ident.name, 'env': ['TERM=vt100']}, timeout=10)
    assert r.stdout == b'[vt100]\r\n', r
    r = client.run(show, {'user': ident.name}, timeout=10)
    assert r.stdout == b'[unset]\n', r
    r = client.run(['/usr/bin/env'], {'tty': True, 'user': ident.name}, timeout=10)
    got = sorted(l for l in r.stdout.decode().replace('\r\n', '\n').split('\n') if l)
    want = user_env(ident.name, ident.home, ident.shell, ['TERM=xterm-256color'])
    assert got == sorted(f'{k}={v}' for k, v in want.items()), r


def test_daemon_environment_never_reaches_the_child(p2p_harness, ident):
    h = p2p_harness
    h.start(env={'SANDBOXD_TEST_LEAK': '1', 'LD_LIBRARY_PATH': '/sbxt-leak',
                 'TZ': 'sbxt-leak', 'LANG': 'C.UTF-8'})
    client = h.client()
    for user in (None, ident.name):
        sid, pid = client.exec(['/bin/sleep', '30'], {'user': user} if user else None)
        time.sleep(0.2)
        with open(f'/proc/{pid}/environ', 'rb') as f:
            env = sorted(e.decode() for e in f.read().split(b'\0') if e)
        pw = pwd.getpwnam(user) if user else pwd.getpwuid(0)
        want = user_env(pw.pw_name, pw.pw_dir, pw.pw_shell)
        assert env == sorted(f'{k}={v}' for k, v in want.items()), env
        client.signal(sid, 9)
        client.collect(sid, timeout=5)


LOADER = ['LD_PRELOAD=/sbxt-nonexistent.so', 'LD_LIBRARY_PATH=/sbxt-nonexistent',
          'GLIBC_TUNABLES=glibc.malloc.check=0', 'LD_AUDIT=/sbxt-nonexistent-audit.so']


def test_root_caller_sets_loader_variables_for_anyone(harness, ident):
    client = harness.client()
    names = [e.split('=')[0] for e in LOADER]
    for user in (ident.name, str(ident.bare_uid), 'root'):
        # /usr/bin/env is dynamically linked: ld.so warns about the missing objects on stderr
        r = client.run(['/usr/bin/env'], {'user': user, 'env': LOADER}, timeout=10)
        assert (r.code, r.signal) == (0, 0), (user, r)
        got = [l for l in r.stdout.decode().split('\n') if l.split('=')[0] in names]
        assert sorted(got) == sorted(LOADER), (user, r)


def test_non_root_caller_sets_loader_variables_for_itself(p2p_harness, ident):
    h = p2p_harness
    h.start()
    res = run_as_ok(h, ident.uid, ident.gid, [
        ['exec', ['/usr/bin/printenv', 'LD_LIBRARY_PATH'], {'env': ['LD_LIBRARY_PATH=/sbxt-lib']}],
        ['collect'],
        ['exec', ['/usr/bin/printenv', 'LD_PRELOAD'],
         {'user': ident.name, 'env': ['LD_PRELOAD=/sbxt-nonexistent.so']}],
        ['collect'],
        # As another user the variable is refused first (api.md: before any authorization),
        # and without it the call is not authorized on p2p at all.
        ['exec', ['/usr/bin/true'], {'user': 'nobody', 'env': ['LD_PRELOAD=/x.so']}],
        ['exec', ['/usr/bin/true'], {'user': 'nobody', 'env': ['TERM=dumb']}],
        ['list'],
    ])
    assert res[1]['ok']['stdout'] == '/sbxt-lib\n', res
    assert res[3]['ok']['stdout'] == '/sbxt-nonexistent.so\n', res
    assert res[4].get('error') == INVALID_ARGS and 'LD_PRELOAD' in res[4]['message'], res[4]
    assert res[5].get('error') == ACCESS_DENIED, res[5]
    assert res[6] == {'ok': []}, res[6]


def test_non_root_caller_loader_variables_for_another_user_on_bus(bus_harness, ident):
    """On the bus the variable is refused before polkit is asked (there is no polkit here, so
    asking would be a denial), and the command never runs."""
    h = bus_harness
    h.start()
    res = run_as_ok(h, ident.uid, ident.gid, [
        ['exec', ['/usr/bin/true'], {'user': 'nobody', 'env': ['LD_PRELOAD=/x.so']}], ['list']])
    assert res[0].get('error') == INVALID_ARGS, res[0]
    assert "'env'" in res[0]['message'] and 'LD_PRELOAD' in res[0]['message'], res[0]
    assert res[1] == {'ok': []}, res[1]


# --- rlimits -----------------------------------------------------------------

LIMIT_NAMES = {
    'cpu': 'Max cpu time', 'fsize': 'Max file size', 'data': 'Max data size',
    'stack': 'Max stack size', 'core': 'Max core file size', 'rss': 'Max resident set',
    'nproc': 'Max processes', 'nofile': 'Max open files', 'memlock': 'Max locked memory',
    'as': 'Max address space', 'locks': 'Max file locks', 'sigpending': 'Max pending signals',
    'msgqueue': 'Max msgqueue size', 'nice': 'Max nice priority',
    'rtprio': 'Max realtime priority', 'rttime': 'Max realtime timeout',
}


def _lowered(cur, want_soft, want_hard):
    """A (soft, hard) pair no higher than the current hard limit."""
    if cur[1] == 'unlimited':
        return want_soft, want_hard
    hard = min(int(cur[1]), want_hard)
    return min(want_soft, hard), hard


def test_all_sixteen_rlimits(p2p_harness, ident):
    h = p2p_harness
    client = h.client()
    cur = daemon_limits(h)
    wanted = {
        'cpu': (100, 200), 'fsize': (1 << 30, 1 << 31), 'data': (RLIM_INFINITY, RLIM_INFINITY),
        'stack': (4 << 20, 6 << 20), 'core': (0, 0), 'rss': (1 << 30, 1 << 31),
        'nproc': (500, 600), 'nofile': (100, 200), 'memlock': (65536, 131072),
        'as': (1 << 40, 1 << 41), 'locks': (100, 200), 'sigpending': (100, 200),
        'msgqueue': (8192, 16384), 'nice': (0, 0), 'rtprio': (0, 0),
        'rttime': (1000000, 2000000),
    }
    limits = []
    for name, (s, hd) in wanted.items():
        if (s, hd) != (RLIM_INFINITY, RLIM_INFINITY):
            s, hd = _lowered(cur[LIMIT_NAMES[name]], s, hd)
        elif cur[LIMIT_NAMES[name]][1] != 'unlimited':
            pytest.skip(f'the daemon runs with a finite hard {name}')
        limits.append((name, s, hd))
    assert len(limits) == 16
    for user in (ident.name, 'root'):
        r = client.run(['/bin/cat', '/proc/self/limits'], {'user': user, 'rlimits': limits},
                       timeout=10)
        assert (r.code, r.signal) == (0, 0), (user, r)
        got = proc_limits(r.stdout.decode())
        for name, s, hd in limits:
            show = tuple('unlimited' if v == RLIM_INFINITY else str(v) for v in (s, hd))
            assert got[LIMIT_NAMES[name]] == show, (user, name, got[LIMIT_NAMES[name]], show)


@pytest.mark.parametrize('rlimits', [
    [('nofile', 200, 100)], [('core', 1, 0)], [('cpu', RLIM_INFINITY, 10)],
    [('bogus', 1, 1)], [('NOFILE', 1, 1)], [('RLIMIT_NOFILE', 1, 1)], [('', 1, 1)],
    [('nofile', 10, 10), ('nofile', 20, 20)],
], ids=['soft-above-hard', 'core-soft-above-hard', 'infinite-soft', 'unknown', 'uppercase',
        'prefixed', 'empty-name', 'twice'])
def test_rlimits_invalid(p2p_harness, ident, tmpdir_public, rlimits):
    client = p2p_harness.client()
    marker = tmpdir_public / 'spawned'
    e = exec_error(client, ['/bin/sh', '-c', f'touch {marker}'],
                   {'user': ident.name, 'rlimits': rlimits})
    assert e.name == INVALID_ARGS, e
    assert "'rlimits'" in e.message, e
    client.idle(0.2)
    assert not marker.exists() and client.list_sessions() == []


def test_default_nofile_soft_is_1024(p2p_harness, ident):
    h = p2p_harness
    client = h.client()
    dsoft, dhard = daemon_limits(h)['Max open files']
    want_soft = str(min(1024, int(dsoft)))
    for user in (None, ident.name):
        r = client.run(['/bin/cat', '/proc/self/limits'], {'user': user} if user else None,
                       timeout=10)
        assert proc_limits(r.stdout.decode())['Max open files'] == (want_soft, dhard), r
    # another limit given does not change that
    r = client.run(['/bin/cat', '/proc/self/limits'],
                   {'user': ident.name, 'rlimits': [('core', 0, 0)]}, timeout=10)
    assert proc_limits(r.stdout.decode())['Max open files'] == (want_soft, dhard), r


def test_raising_a_hard_limit_as_non_root_fails_at_setrlimit(p2p_harness, ident, tmpdir_public):
    h = p2p_harness
    client = h.client()
    cur = daemon_limits(h)
    for name in ('memlock', 'msgqueue', 'sigpending', 'nofile', 'nproc'):
        hard = cur[LIMIT_NAMES[name]][1]
        if hard != 'unlimited':
            hard = int(hard)
            break
    else:
        pytest.skip('the daemon has no finite hard limit to exceed')
    marker = tmpdir_public / 'spawned'
    os.chmod(tmpdir_public, 0o777)
    argv = ['/bin/sh', '-c', f'touch {marker}']
    e = exec_error(client, argv, {'user': ident.name, 'rlimits': [(name, hard, hard + 1)]})
    assert e.name == ERR + 'PermissionDenied', e
    assert 'EPERM' in e.message and 'setrlimit' in e.message, e
    assert '/bin/sh' in e.message, e
    client.idle(0.2)
    assert not marker.exists() and client.list_sessions() == []
    # exactly the hard limit it has: fine
    r = client.run(['/bin/cat', '/proc/self/limits'],
                   {'user': ident.name, 'rlimits': [(name, hard, hard)]}, timeout=10)
    assert proc_limits(r.stdout.decode())[LIMIT_NAMES[name]] == (str(hard), str(hard)), r


def test_nproc_one_with_processes_running(p2p_harness, ident):
    """RLIMIT_NPROC is checked by the kernel when the child switches to the user (the
    user's count before the switch against the limit, with '>'; setuid() only flags it) and
    enforced by execve(): nproc=(1,1) runs while the user has at most one other process, and
    fails with EAGAIN at execve once it has two."""
    h = p2p_harness
    client = h.client()
    # nothing of the user's is left from other tests
    assert wait_until(lambda: not _pids_of_uid(ident.uid), 5), _pids_of_uid(ident.uid)
    opts = {'user': ident.name, 'rlimits': [('nproc', 1, 1)]}
    sids = []
    try:
        for running in range(2):
            r = client.run(['/bin/echo', 'ran'], opts, timeout=10)
            assert (r.code, r.signal, r.stdout) == (0, 0, b'ran\n'), (running, r)
            sids.append(client.exec(['/bin/sleep', '30'], {'user': ident.name})[0])
        assert len(_pids_of_uid(ident.uid)) == 2, _pids_of_uid(ident.uid)
        e = exec_error(client, ['/bin/echo', 'ran'], opts)
        assert e.name == ERR + 'ResourceLimit', e
        assert 'EAGAIN' in e.message and 'at execve' in e.message, e
        assert sorted(s[0] for s in client.list_sessions()) == sorted(sids)
        # a higher limit is no obstacle
        r = client.run(['/bin/echo', 'ran'], {'user': ident.name, 'rlimits': [('nproc', 3, 3)]},
                       timeout=10)
        assert r.stdout == b'ran\n', r
    finally:
        for sid in sids:
            client.signal(sid, 9)
            client.collect(sid, timeout=5)


# --- profiles ----------------------------------------------------------------

def test_restricted_profile_as_root(p2p_harness):
    client = p2p_harness.client()
    dst, _, _ = probe(client, {'profile': 'default'})
    assert dst['NoNewPrivs'] == '0' and dst['Seccomp'] == '0', dst
    st, _, _ = probe(client, {'profile': 'restricted'})
    assert st['NoNewPrivs'] == '1'
    assert st['Seccomp'] == '2'
    assert int(st['CapAmb'], 16) == 0
    bit = 1 << CAP_SYS_ADMIN
    for f in ('CapEff', 'CapPrm', 'CapInh', 'CapBnd'):
        assert not int(st[f], 16) & bit, f'CAP_SYS_ADMIN still in {f}: {st[f]}'
        # only CAP_SYS_ADMIN and CAP_SYS_PTRACE (19) go: root keeps the rest
        assert int(st[f], 16) == int(dst[f], 16) & ~bit & ~(1 << 19), (f, st[f], dst[f])
    assert int(dst['CapEff'], 16) & bit, 'the default profile keeps root CAP_SYS_ADMIN'


def test_restricted_profile_as_user(p2p_harness, ident):
    client = p2p_harness.client()
    st, _, _ = probe(client, {'profile': 'restricted', 'user': ident.name})
    assert (st['NoNewPrivs'], st['Seccomp']) == ('1', '2'), st
    assert_no_privileges(st)
    assert not int(st['CapBnd'], 16) & (1 << CAP_SYS_ADMIN), st['CapBnd']
    st, _, _ = probe(client, {'user': ident.name})
    assert (st['NoNewPrivs'], st['Seccomp']) == ('0', '0'), st


NS_CHILD = r'''
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def res(rc):
    return "ok" if rc == 0 else errno.errorcode[ctypes.get_errno()]
out = [res(libc.unshare(0x00020000))]       # CLONE_NEWNS
if sys.argv[1] == "mount":
    out.append(res(libc.mount(b"none", sys.argv[2].encode(), b"tmpfs", 0, None)))
print(" ".join(out))
'''


def test_restricted_profile_blocks_unshare_and_mount(p2p_harness, tmpdir_public):
    client = p2p_harness.client()
    target = tmpdir_public / 'mnt'
    target.mkdir()
    try:
        r = client.run([PY, '-c', NS_CHILD, 'mount', str(target)], {'profile': 'restricted'},
                       timeout=10)
        assert r.stdout == b'EPERM EPERM\n', r
        r = client.run(['unshare', '-m', 'true'], {'profile': 'restricted'}, timeout=10)
        assert r.code not in (0, None) and b'Operation not permitted' in r.stderr, r
        r = client.run(['mount', '-t', 'tmpfs', 'none', str(target)], {'profile': 'restricted'},
                       timeout=10)
        assert r.code not in (0, None), r
        assert not os.path.ismount(target)
        # the same as root without the profile: unshare works (no mount: it would be real)
        r = client.run([PY, '-c', NS_CHILD, 'unshare-only'], {'profile': 'default'}, timeout=10)
        assert r.stdout == b'ok\n', r
        r = client.run(['unshare', '-m', 'true'], timeout=10)
        assert (r.code, r.signal) == (0, 0), r
    finally:
        if os.path.ismount(target):
            subprocess.run(['umount', '-l', str(target)])


TIOCSTI_CHILD = r'''
import errno, fcntl, termios
try:
    fcntl.ioctl(0, termios.TIOCSTI, b" ")
    print("allowed")
except OSError as e:
    print(errno.errorcode[e.errno])
'''


def test_restricted_profile_blocks_tiocsti(p2p_harness, ident):
    client = p2p_harness.client()
    for user in ('root', ident.name):
        r = client.run([PY, '-c', TIOCSTI_CHILD],
                       {'tty': True, 'profile': 'restricted', 'user': user}, timeout=10)
        assert r.stdout == b'EPERM\r\n', (user, r)
    # root without the profile may (CAP_SYS_ADMIN), so the EPERM above is the profile's
    r = client.run([PY, '-c', TIOCSTI_CHILD], {'tty': True, 'user': 'root'}, timeout=10)
    assert r.stdout.endswith(b'allowed\r\n'), r   # after the echo of the faked input


@pytest.mark.parametrize('profile', ['Restricted', 'strict', '', 'default '])
def test_unknown_profile(p2p_harness, ident, profile):
    client = p2p_harness.client()
    e = exec_error(client, ['/bin/true'], {'user': ident.name, 'profile': profile})
    assert e.name == INVALID_ARGS, e
    assert "'profile'" in e.message, e
    assert client.list_sessions() == []


# --- stages ------------------------------------------------------------------

def test_stage_chdir(p2p_harness, ident, tmpdir_public):
    client = p2p_harness.client()
    private = tmpdir_public / 'private'
    private.mkdir(mode=0o700)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700 and private.stat().st_uid == 0
    marker = tmpdir_public / 'spawned'
    os.chmod(tmpdir_public, 0o777)
    argv = ['/bin/sh', '-c', f'touch {marker}']
    e = exec_error(client, argv, {'user': ident.name, 'cwd': str(private)})
    assert e.name == ERR + 'PermissionDenied', e
    assert 'EACCES' in e.message and 'at chdir' in e.message and '/bin/sh' in e.message, e
    e = exec_error(client, argv, {'user': ident.name, 'cwd': str(tmpdir_public / 'missing')})
    assert e.name == ERR + 'BadCwd', e
    assert 'at chdir' in e.message, e
    client.idle(0.2)
    assert not marker.exists() and client.list_sessions() == []
    # root may enter it
    r = client.run(['/bin/pwd'], {'cwd': str(private)}, timeout=10)
    assert r.stdout == f'{private}\n'.encode(), r


def test_stage_execve(p2p_harness, ident, tmpdir_public):
    client = p2p_harness.client()
    secret = tmpdir_public / 'secret'
    secret.mkdir(mode=0o700)
    tool = secret / 'tool'
    tool.write_text('#!/bin/sh\necho ran\n')
    os.chmod(tool, 0o755)
    e = exec_error(client, [str(tool)], {'user': ident.name})
    assert e.name == ERR + 'PermissionDenied', e
    assert 'EACCES' in e.message and 'at execve' in e.message and str(tool) in e.message, e
    e = exec_error(client, ['/sbxt-no-such-command'], {'user': ident.name})
    assert e.name == ERR + 'NotFound', e
    assert 'ENOENT' in e.message and 'at execve' in e.message, e
    plain = tmpdir_public / 'plain'
    plain.write_text('echo no shebang\n')
    os.chmod(plain, 0o644)
    e = exec_error(client, [str(plain)], {'user': ident.name})
    assert e.name == ERR + 'PermissionDenied', e
    assert 'EACCES' in e.message and 'at execve' in e.message, e
    assert client.list_sessions() == []
    r = client.run([str(tool)], timeout=10)   # root: it runs
    assert r.stdout == b'ran\n', r
