# SPDX-License-Identifier: LGPL-2.1-or-later
"""The `restricted` profile keeps its command out of other processes (issue 15, item 4; api.md,
"Named profiles"): a Landlock domain per session stops ptrace-equivalent access (/proc/PID/mem)
to processes outside the session and, where the kernel scopes signals (Landlock ABI 6), signals
to them; CAP_SYS_PTRACE is gone from every set. Ordinary commands keep working.

Each attack runs a control beside it, from a default-profile session, that must succeed: it shows
the attack works on this system, so the test would fail on a daemon without the rule.
"""

import ctypes
import os
import signal

import pytest

from sandbox_client import DBusError, pid_alive, wait_until

pytestmark = pytest.mark.root

NOBODY = '65534'
CAP_SYS_ADMIN = 21
CAP_SYS_PTRACE = 19
RESTRICTED = {'profile': 'restricted'}


def landlock_abi():
    """The kernel's Landlock ABI, 0 without Landlock."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    abi = libc.syscall(ctypes.c_long(444), None, ctypes.c_size_t(0), ctypes.c_uint(1))
    return max(abi, 0)


needs_landlock = pytest.mark.skipif(landlock_abi() < 2, reason='no Landlock ABI >= 2 on this kernel')
needs_signal_scope = pytest.mark.skipif(landlock_abi() < 6,
                                        reason='no Landlock signal scoping (ABI 6) on this kernel')

# Prints "opened", or the errno's name: what open(/proc/PID/mem, O_RDWR) does for this process.
OPEN_MEM = r'''
import errno, os, sys
try:
    fd = os.open("/proc/%s/mem" % sys.argv[1], os.O_RDWR)
except OSError as e:
    print(errno.errorcode[e.errno])
else:
    os.close(fd)
    print("opened")
'''

# Prints "sent" or the errno's name: what kill(PID, SIG) does for this process.
KILL = r'''
import errno, os, sys
try:
    os.kill(int(sys.argv[1]), int(sys.argv[2]))
except OSError as e:
    print(errno.errorcode[e.errno])
else:
    print("sent")
'''

# Forks a child that execs sleep (a process of the session's own domain), then opens its memory
# and signals it.
OWN_CHILD = r'''
import errno, os, signal, time
pid = os.fork()
if pid == 0:
    os.execv("/bin/sleep", ["sleep", "30"])
time.sleep(0.2)   # let it exec: before that it is not dumpable
try:
    os.close(os.open("/proc/%d/mem" % pid, os.O_RDWR))
    print("opened")
except OSError as e:
    print(errno.errorcode[e.errno])
os.kill(pid, signal.SIGTERM)
_, st = os.waitpid(pid, 0)
print("killed" if os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGTERM else "not killed")
'''


def python(script, *args):
    return ['/usr/bin/python3', '-c', script, *map(str, args)]


def outcome(client, argv, options):
    r = client.run(argv, options, timeout=10)
    assert (r.code, r.signal) == (0, 0), r
    return r.stdout.decode().strip()


@pytest.fixture
def victim(client):
    """A default-profile session of uid 65534 that sleeps: a process outside any domain."""
    sid, pid = client.exec(['/bin/sleep', '300'], {'user': NOBODY})
    # Until its execve the child is not dumpable (it switched uid), and no one may open its mem.
    assert wait_until(lambda: os.readlink(f'/proc/{pid}/exe') == os.path.realpath('/bin/sleep'), 5)
    yield pid
    if not client.results[sid].exited:     # an attack that got through may have killed it
        try:
            client.signal(sid, signal.SIGKILL)
        except DBusError:
            pass
        client.collect(sid, timeout=10)


def status_caps(client, options):
    r = client.run(['/bin/cat', '/proc/self/status'], options, timeout=5)
    st = dict(l.split(':\t', 1) for l in r.stdout.decode().split('\n') if ':\t' in l)
    return {k: int(st[k], 16) for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')}


# --- the attack: writing into another process of the same user -----------------------------------

@needs_landlock
def test_restricted_cannot_open_mem_of_default_session(client, victim):
    """A restricted session of uid 65534 opened /proc/PID/mem of a default session of the same uid
    for writing, and could have put code into it."""
    assert outcome(client, python(OPEN_MEM, victim), {'user': NOBODY}) == 'opened', \
        'control: a default session of the same uid can open it'
    got = outcome(client, python(OPEN_MEM, victim), {'user': NOBODY, **RESTRICTED})
    assert got in ('EACCES', 'EPERM'), got
    shell = f'(exec 3<>/proc/{victim}/mem) 2>/dev/null && echo opened || echo refused'
    assert outcome(client, ['/bin/sh', '-c', shell], {'user': NOBODY, **RESTRICTED}) == 'refused'


@needs_landlock
def test_restricted_sessions_are_kept_from_each_other(client):
    """Each session has a domain of its own: one restricted session cannot open another's mem."""
    sid, pid = client.exec(['/bin/sleep', '300'], {'user': NOBODY, **RESTRICTED})
    try:
        assert wait_until(lambda: os.readlink(f'/proc/{pid}/exe') == os.path.realpath('/bin/sleep'), 5)
        got = outcome(client, python(OPEN_MEM, pid), {'user': NOBODY, **RESTRICTED})
        assert got in ('EACCES', 'EPERM'), got
        assert outcome(client, python(OPEN_MEM, pid), {'user': NOBODY}) == 'opened', 'control'
    finally:
        client.signal(sid, signal.SIGKILL)
        client.collect(sid, timeout=10)


# --- root: no CAP_SYS_PTRACE, and not into the daemon ----------------------------------------------

def test_restricted_root_has_no_cap_sys_ptrace(client):
    caps = status_caps(client, {})
    assert caps['CapEff'] & (1 << CAP_SYS_PTRACE), 'control: a default root session has it'
    caps = status_caps(client, RESTRICTED)
    for field, value in caps.items():
        assert not value & (1 << CAP_SYS_PTRACE), f'CAP_SYS_PTRACE still in {field}: {value:x}'
        assert not value & (1 << CAP_SYS_ADMIN), f'CAP_SYS_ADMIN still in {field}: {value:x}'
    assert caps['CapEff'] != 0, 'the other capabilities of root stay'


def test_restricted_root_cannot_open_daemon_mem(harness):
    client = harness.client()
    daemon = harness.daemon.pid
    assert outcome(client, python(OPEN_MEM, daemon), {}) == 'opened', \
        'control: a default root session can open it'
    got = outcome(client, python(OPEN_MEM, daemon), RESTRICTED)
    assert got in ('EACCES', 'EPERM'), got


# --- signals: only to the session's own processes -------------------------------------------------

@needs_signal_scope
def test_restricted_cannot_signal_outside_its_session(client, victim):
    assert outcome(client, python(KILL, victim, 0), {'user': NOBODY}) == 'sent', \
        'control: a default session of the same uid may signal it'
    got = outcome(client, python(KILL, victim, signal.SIGKILL), {'user': NOBODY, **RESTRICTED})
    assert got == 'EPERM', got
    got = outcome(client, ['/bin/sh', '-c', f'kill -KILL {victim} 2>/dev/null; echo $?'],
                  {'user': NOBODY, **RESTRICTED})
    assert got != '0', got
    assert pid_alive(victim), 'the restricted session killed a process outside it'


@needs_signal_scope
def test_restricted_root_cannot_signal_the_daemon(harness):
    client = harness.client()
    got = outcome(client, python(KILL, harness.daemon.pid, 0), RESTRICTED)
    assert got == 'EPERM', got
    assert outcome(client, python(KILL, harness.daemon.pid, 0), {}) == 'sent', 'control'


@pytest.mark.parametrize('user', ['0', NOBODY])
def test_restricted_reaches_its_own_processes(client, user):
    """Its own children (the same domain) it may still signal and trace; the daemon still signals
    it."""
    opts = {'user': user, **RESTRICTED}
    assert outcome(client, python(OWN_CHILD), opts).split() == ['opened', 'killed']
    assert outcome(client, ['/bin/sh', '-c', 'sleep 30 & kill -TERM $!; wait $!; echo $?'], opts) == '143'
    assert outcome(client, ['/bin/sh', '-c', 'kill -0 0 && kill -0 $$ && echo ok'], opts) == 'ok'

    sid, _ = client.exec(['/bin/sleep', '300'], opts)
    client.signal(sid, signal.SIGTERM)
    r = client.collect(sid, timeout=10)
    assert (r.code, r.signal) == (-1, signal.SIGTERM), r


# --- ordinary commands keep working -----------------------------------------------------------------

ORDINARY = r'''
set -e
d=$(mktemp -d /tmp/sandboxd-restricted.XXXXXX)
cd "$d"
ls / >/dev/null
echo hello > a
mkdir sub other
mv a sub/a                      # a rename into another directory
ln sub/a other/b                # a hard link into another directory
ln -s ../sub/a other/c
cat other/c | tr a-z A-Z | tee upper
mv sub other/                   # a directory into another one
test "$(cat other/sub/a)" = hello
rm -r "$d"
'''


@pytest.mark.parametrize('user', ['0', NOBODY])
def test_ordinary_commands_still_work(client, user):
    r = client.run(['/bin/sh', '-c', ORDINARY], {'user': user, **RESTRICTED}, timeout=10)
    assert (r.code, r.signal) == (0, 0), r
    assert r.stdout == b'HELLO\n', r
    r = client.run(['/bin/ls', '/'], {'user': user, **RESTRICTED}, timeout=5)
    assert (r.code, r.signal) == (0, 0) and b'tmp' in r.stdout.split(), r


def test_restricted_with_few_fds(client):
    """Entering the domain takes fds of the child's own: a small nofile limit still runs."""
    r = client.run(['/bin/sh', '-c', 'echo ok'], {'rlimits': [('nofile', 5, 5)], **RESTRICTED},
                   timeout=5)
    assert (r.code, r.signal) == (0, 0) and r.stdout == b'ok\n', r
