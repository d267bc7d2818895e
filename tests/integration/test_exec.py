# SPDX-License-Identifier: LGPL-2.1-or-later
"""Exec: starting commands, typed start errors, argument validation, the
child's environment, fds, signal state and credentials (api.md)."""

import os
import pwd
import subprocess
import time

import pytest

from sandbox_client import DBusError, Var, ERR, DBUS_ERR, RLIM_INFINITY, wait_until

INVALID_ARGS = DBUS_ERR + 'InvalidArgs'
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def exec_error(client, argv, options=None):
    with pytest.raises(DBusError) as ei:
        client.exec(argv, options)
    return ei.value


def assert_still_works(client):
    r = client.run(['/bin/echo', 'still-alive'], timeout=5)
    assert r.stdout == b'still-alive\n' and (r.code, r.signal) == (0, 0), r


def assert_no_session_started(client):
    """A failed Exec leaves nothing behind: no Exited, no listed session."""
    client.idle(0.2)
    assert not any(r.exited or r.chunks for r in client.results.values()), dict(client.results)
    assert client.list_sessions() == []


# --- starting ------------------------------------------------------------

def test_echo_hello(client):
    sid, pid = client.exec(['/bin/echo', 'hello'])
    assert pid > 0
    r = client.collect(sid, timeout=5, linger=0.5)
    assert r.chunks and all(s == 1 for s, _ in r.chunks), r.chunks
    assert r.stdout == b'hello\n'
    assert (r.code, r.signal) == (0, 0)
    assert r.exited == 1, 'Exited must be emitted exactly once'
    assert r.after_exit == [], f'signals after Exited: {r.after_exit}'


def test_argv0_looked_up_in_path(client):
    r = client.run(['echo', 'via', 'PATH'], timeout=5)
    assert r.stdout == b'via PATH\n'
    assert (r.code, r.signal) == (0, 0)


def test_argv_passed_verbatim(client):
    args = ['a b', '', '*', '$HOME', 'ünïcode', '\\n', '--x=y']
    r = client.run(['/usr/bin/printf', '[%s]\\n'] + args, timeout=5)
    assert r.stdout == ''.join(f'[{a}]\n' for a in args).encode()


def test_exec_returns_after_exec(client):
    """The reply comes when the command has really been exec'd: the pid is
    already running the new program."""
    sid, pid = client.exec(['/bin/sleep', '100'])
    exe = os.readlink(f'/proc/{pid}/exe')
    assert exe.endswith('/sleep'), exe

    def cmdline():
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return f.read()
    # The kernel fills in the new arguments a moment after the point of no
    # return of execve (when O_CLOEXEC fds close): allow for that.
    assert wait_until(lambda: cmdline() == b'/bin/sleep\x00100\x00', 1), cmdline()
    client.signal(sid, 9)
    client.collect(sid, timeout=5)


@pytest.mark.parametrize('cmd', ['/nonexistent/no-such-command', 'no-such-command-xyz'])
def test_not_found(client, cmd):
    e = exec_error(client, [cmd, 'arg'])
    assert e.name == ERR + 'NotFound', e
    assert 'ENOENT' in e.message, e
    assert 'execve' in e.message, e
    assert cmd in e.message, e
    assert_no_session_started(client)
    assert_still_works(client)


def test_not_executable_file_is_permission_denied(client, tmpdir_public):
    f = tmpdir_public / 'plain.txt'
    f.write_text('#!/bin/sh\necho should-not-run\n')
    os.chmod(f, 0o644)
    e = exec_error(client, [str(f)])
    assert e.name == ERR + 'PermissionDenied', e
    assert 'EACCES' in e.message and 'execve' in e.message, e
    assert_no_session_started(client)


def test_directory_is_permission_denied(client, tmpdir_public):
    # execve(2) of a directory fails with EACCES on Linux ("not a regular
    # file"); the contract maps EACCES to PermissionDenied. (EISDIR, mapped
    # to NotExecutable, is only for a directory as ELF interpreter.)
    e = exec_error(client, [str(tmpdir_public)])
    assert e.name == ERR + 'PermissionDenied', e
    assert 'EACCES' in e.message, e
    assert_no_session_started(client)


def test_text_without_shebang_is_not_executable(client, tmpdir_public):
    # execvp() would run this with /bin/sh; the contract wants ENOEXEC.
    f = tmpdir_public / 'script-without-shebang'
    f.write_text('echo should-not-run\n')
    os.chmod(f, 0o755)
    e = exec_error(client, [str(f)])
    assert e.name == ERR + 'NotExecutable', e
    assert 'ENOEXEC' in e.message and 'execve' in e.message, e
    assert_no_session_started(client)


def test_cwd_missing(client):
    e = exec_error(client, ['/bin/true'], {'cwd': '/nonexistent-sandboxd-dir'})
    assert e.name == ERR + 'BadCwd', e
    assert 'chdir' in e.message and 'ENOENT' in e.message, e
    assert_no_session_started(client)


def test_cwd_is_a_file(client, tmpdir_public):
    f = tmpdir_public / 'file'
    f.write_text('x')
    e = exec_error(client, ['/bin/true'], {'cwd': str(f)})
    assert e.name == ERR + 'BadCwd', e
    assert 'ENOTDIR' in e.message, e
    assert_no_session_started(client)


def test_cwd(client, tmpdir_public):
    r = client.run(['/bin/pwd'], {'cwd': str(tmpdir_public)}, timeout=5)
    assert r.stdout == f'{tmpdir_public}\n'.encode()


def test_default_cwd_is_home(client):
    home = pwd.getpwuid(0).pw_dir
    expect = home if os.path.isdir(home) else '/'
    r = client.run(['/bin/pwd'], timeout=5)
    assert r.stdout == f'{expect}\n'.encode()


@pytest.mark.parametrize('script,code,sig', [
    ('exit 0', 0, 0),
    ('exit 3', 3, 0),
    ('exit 255', 255, 0),
    ('kill -TERM $$', -1, 15),
    ('kill -KILL $$', -1, 9),
])
def test_exit_status(client, script, code, sig):
    r = client.run(['/bin/sh', '-c', script], timeout=5)
    assert (r.code, r.signal) == (code, sig), r


# --- invalid arguments ---------------------------------------------------

INVALID = [
    ('empty-argv', [], {}, 'argv'),
    ('unknown-key', ['/bin/true'], {'no-such-option': Var('s', 'x')}, 'no-such-option'),
    ('tty-as-string', ['/bin/true'], {'tty': Var('s', 'true')}, 'tty'),
    ('cwd-as-array', ['/bin/true'], {'cwd': Var('as', ['/'])}, 'cwd'),
    ('timeout-as-u', ['/bin/sleep', '1'], {'timeout-usec': Var('u', 5)}, 'timeout-usec'),
    ('env-as-string', ['/bin/true'], {'env': Var('s', 'A=b')}, 'env'),
    ('relative-cwd', ['/bin/true'], {'cwd': 'tmp'}, 'cwd'),
    ('rows-0', ['/bin/true'], {'tty': True, 'rows': 0}, 'rows'),
    ('cols-0', ['/bin/true'], {'tty': True, 'cols': 0}, 'cols'),
    ('env-without-equals', ['/bin/true'], {'env': ['NOEQUALS']}, 'env'),
    ('env-empty-key', ['/bin/true'], {'env': ['=value']}, 'env'),
    ('rlimit-bad-name', ['/bin/true'], {'rlimits': [('bogus', 1, 1)]}, 'rlimit'),
    ('rlimit-soft-above-hard', ['/bin/true'], {'rlimits': [('nofile', 200, 100)]}, 'rlimit'),
    ('profile-unknown', ['/bin/true'], {'profile': 'no-such-profile'}, 'profile'),
]


@pytest.mark.parametrize('argv,options,field', [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_args(client, argv, options, field):
    e = exec_error(client, argv, options)
    assert e.name == INVALID_ARGS, e
    assert field.lower() in e.message.lower(), f'message does not name {field!r}: {e}'
    assert_no_session_started(client)
    assert_still_works(client)


def test_overlong_argument(client):
    """A 1 MiB argument can never be exec'd (MAX_ARG_STRLEN): a clean error."""
    e = exec_error(client, ['/bin/echo', 'x' * (1 << 20)])
    assert e.name in (INVALID_ARGS, ERR + 'BadArgs'), e
    if e.name == ERR + 'BadArgs':
        assert 'E2BIG' in e.message, e
    assert_still_works(client)


def test_huge_argv(client):
    """4 MiB of arguments: an error or a run, never a crash."""
    try:
        r = client.run(['/bin/true'] + ['y' * 1000] * 4096, timeout=10)
        assert (r.code, r.signal) == (0, 0)
    except DBusError as e:
        assert e.name in (INVALID_ARGS, ERR + 'BadArgs'), e
    assert_still_works(client)


def test_no_such_user(client):
    for user in ('no-such-user-sandboxd', 'root:no-such-group-sandboxd'):
        e = exec_error(client, ['/bin/true'], {'user': user})
        assert e.name == ERR + 'NoSuchUser', e
    assert_still_works(client)


# --- the child's world ---------------------------------------------------

def _env_lines(out, tty):
    text = out.decode()
    if tty:
        text = text.replace('\r\n', '\n')
    return sorted(l for l in text.split('\n') if l)


def _default_env(pw):
    return [f'PATH={DEFAULT_PATH}', f'HOME={pw.pw_dir}', f'USER={pw.pw_name}',
            f'LOGNAME={pw.pw_name}', f'SHELL={pw.pw_shell}']


def test_environment_is_exactly_the_default(client):
    pw = pwd.getpwuid(0)
    r = client.run(['/usr/bin/env'], timeout=5)
    assert _env_lines(r.stdout, False) == sorted(_default_env(pw))
    assert b'SANDBOXD_TEST_LEAK' not in r.stdout


def test_environment_on_pty_has_term(client):
    pw = pwd.getpwuid(0)
    r = client.run(['/usr/bin/env'], {'tty': True}, timeout=5)
    assert _env_lines(r.stdout, True) == sorted(_default_env(pw) + ['TERM=xterm-256color'])


def test_environment_entries(client):
    pw = pwd.getpwuid(0)
    r = client.run(['/usr/bin/env'], {'env': ['FOO=bar baz', 'HOME=/tmp', 'EMPTY=', 'EQ=a=b']},
                   timeout=5)
    expect = [e for e in _default_env(pw) if not e.startswith('HOME=')]
    expect += ['FOO=bar baz', 'HOME=/tmp', 'EMPTY=', 'EQ=a=b']
    assert _env_lines(r.stdout, False) == sorted(expect)


def test_term_from_env_on_pty(client):
    r = client.run(['/bin/sh', '-c', 'echo "[$TERM]"'], {'tty': True, 'env': ['TERM=vt100']},
                   timeout=5)
    assert r.stdout == b'[vt100]\r\n'


def test_path_lookup_uses_session_path(client, tmpdir_public):
    tool = tmpdir_public / 'my-sandbox-tool'
    tool.write_text('#!/bin/sh\necho found-in-session-path\n')
    os.chmod(tool, 0o755)
    r = client.run(['my-sandbox-tool'], {'env': [f'PATH={tmpdir_public}:/usr/bin:/bin']},
                   timeout=5)
    assert r.stdout == b'found-in-session-path\n'
    e = exec_error(client, ['my-sandbox-tool'])
    assert e.name == ERR + 'NotFound', e


def _status_fields(pid):
    with open(f'/proc/{pid}/status') as f:
        return dict(l.rstrip('\n').split(':\t', 1) for l in f if ':\t' in l)


@pytest.mark.root
@pytest.mark.parametrize('tty', [False, True], ids=['pipes', 'pty'])
def test_child_fds_signals_and_session(client, tty):
    sid, pid = client.exec(['/bin/sleep', '100'], {'tty': tty})
    time.sleep(0.3)   # let the dynamic loader finish
    fds = sorted(os.listdir(f'/proc/{pid}/fd'), key=int)
    targets = {fd: os.readlink(f'/proc/{pid}/fd/{fd}') for fd in fds}
    assert fds == ['0', '1', '2'], f'child has extra fds: {targets}'
    st = _status_fields(pid)
    assert st['SigBlk'].strip() == '0000000000000000', st['SigBlk']
    assert st['SigIgn'].strip() == '0000000000000000', st['SigIgn']
    with open(f'/proc/{pid}/stat') as f:
        s = f.read()
    state, ppid, pgrp, session, tty_nr, tpgid = s[s.rindex(')') + 2:].split()[:6]
    assert int(pgrp) == pid, 'the command leads its own process group'
    assert int(session) == pid, 'the command leads its own session'
    if tty:
        assert int(tty_nr) != 0, 'no controlling terminal'
        assert int(tpgid) == pid, 'not the foreground process group of its terminal'
        assert all(t.startswith('/dev/pts/') for t in targets.values()), targets
    else:
        assert int(tty_nr) == 0, 'a pipe session has no controlling terminal'
        assert not any(t.startswith('/dev/pts/') for t in targets.values()), targets
    client.signal(sid, 9)
    r = client.collect(sid, timeout=5)
    assert (r.code, r.signal) == (-1, 9)


@pytest.mark.root
def test_session_leader_seen_from_inside(client):
    r = client.run(['/bin/cat', '/proc/self/stat'], {'tty': True}, timeout=5)
    fields = r.stdout.decode()
    rest = fields[fields.rindex(')') + 2:].split()
    pid, pgrp, session, tty_nr = int(fields.split()[0]), int(rest[2]), int(rest[3]), int(rest[4])
    assert r.pid == pid
    assert pgrp == pid and session == pid and tty_nr != 0


def test_user_option(client):
    nobody = pwd.getpwnam('nobody')
    script = 'id -u; id -g; pwd; echo "$HOME $USER $LOGNAME"'
    expect_cwd = nobody.pw_dir if os.path.isdir(nobody.pw_dir) else '/'
    for user, gid in (('nobody', nobody.pw_gid), (str(nobody.pw_uid), nobody.pw_gid),
                      ('nobody:root', 0), (f'{nobody.pw_uid}:0', 0)):
        r = client.run(['/bin/sh', '-c', script], {'user': user}, timeout=5)
        assert r.stdout.decode().split('\n')[:4] == [
            str(nobody.pw_uid), str(gid), expect_cwd,
            f'{nobody.pw_dir} {nobody.pw_name} {nobody.pw_name}'], (user, r)


def test_rlimits(client):
    r = client.run(['/bin/sh', '-c', 'ulimit -n; ulimit -Hn; ulimit -c'],
                   {'rlimits': [('nofile', 100, 200), ('core', RLIM_INFINITY, RLIM_INFINITY)]},
                   timeout=5)
    assert r.stdout == b'100\n200\nunlimited\n', r


def _status_of_child(client, profile):
    opts = {} if profile is None else {'profile': profile}
    r = client.run(['/bin/cat', '/proc/self/status'], opts, timeout=5)
    return dict(l.split(':\t', 1) for l in r.stdout.decode().split('\n') if ':\t' in l)


@pytest.mark.root
def test_profiles(client):
    for profile in (None, 'default'):
        st = _status_of_child(client, profile)
        assert st['NoNewPrivs'].strip() == '0', (profile, st['NoNewPrivs'])
        assert int(st['CapBnd'], 16) & (1 << 21), 'default profile keeps CAP_SYS_ADMIN for root'
    st = _status_of_child(client, 'restricted')
    assert st['NoNewPrivs'].strip() == '1'
    assert st['Seccomp'].strip() == '2', 'restricted runs with a seccomp filter'
    for field in ('CapEff', 'CapPrm', 'CapInh', 'CapBnd', 'CapAmb'):
        assert not int(st[field], 16) & (1 << 21), f'CAP_SYS_ADMIN still in {field}'
    assert int(st['CapAmb'], 16) == 0


@pytest.mark.root
def test_restricted_profile_blocks_unshare(client):
    if subprocess.run(['/usr/bin/unshare', '--user', '/bin/true']).returncode != 0:
        pytest.skip('user namespaces not available here')
    r = client.run(['/usr/bin/unshare', '--user', '/bin/true'], {'profile': 'restricted'},
                   timeout=5)
    assert r.code not in (0, None), r
    r = client.run(['/usr/bin/unshare', '--user', '/bin/true'], timeout=5)
    assert (r.code, r.signal) == (0, 0), r


TIOCSTI_CHILD = r'''
import errno, fcntl, termios
try:
    fcntl.ioctl(0, termios.TIOCSTI, b" ")
    print("allowed")
except OSError as e:
    print(errno.errorcode[e.errno])
'''


@pytest.mark.root
def test_restricted_profile_blocks_tiocsti(client):
    r = client.run(['/usr/bin/python3', '-c', TIOCSTI_CHILD], {'tty': True, 'profile': 'restricted'},
                   timeout=5)
    assert r.stdout.strip() == b'EPERM', r


def test_cwd_not_accessible_is_permission_denied(client, tmpdir_public):
    private = tmpdir_public / 'private'
    private.mkdir(mode=0o700)
    e = exec_error(client, ['/bin/true'], {'user': 'nobody', 'cwd': str(private)})
    # EACCES is PermissionDenied in the contract's table, whatever the stage.
    assert e.name == ERR + 'PermissionDenied', e
    assert 'EACCES' in e.message and 'chdir' in e.message, e
    assert_still_works(client)


def test_path_lookup_skips_non_executable(client, tmpdir_public):
    first, second = tmpdir_public / 'a', tmpdir_public / 'b'
    first.mkdir()
    second.mkdir()
    (first / 'the-tool').write_text('#!/bin/sh\necho wrong\n')
    os.chmod(first / 'the-tool', 0o644)
    (second / 'the-tool').write_text('#!/bin/sh\necho right\n')
    os.chmod(second / 'the-tool', 0o755)
    r = client.run(['the-tool'], {'env': [f'PATH={first}:{second}:/usr/bin:/bin']}, timeout=5)
    assert r.stdout == b'right\n', r
    # only a non-executable match: EACCES, as execvp(3) reports it
    e = exec_error(client, ['the-tool'], {'env': [f'PATH={first}:/usr/bin:/bin']})
    assert e.name == ERR + 'PermissionDenied', e
    assert 'EACCES' in e.message, e


def test_killed_by_segv_reports_the_signal(client):
    r = client.run(['/bin/sh', '-c', 'kill -SEGV $$'], {'rlimits': [('core', 0, 0)]}, timeout=5)
    assert (r.code, r.signal) == (-1, 11), r


@pytest.mark.parametrize('options,allowed', [
    ({'cwd': '/' + 'd' * (1 << 20)}, (INVALID_ARGS, ERR + 'BadArgs', ERR + 'BadCwd')),
    ({'user': 'u' * (1 << 20)}, (INVALID_ARGS, ERR + 'NoSuchUser')),
    ({'env': ['K=' + 'v' * (1 << 20)]}, (INVALID_ARGS, ERR + 'BadArgs')),
    ({'env': ['K' * (1 << 20) + '=v']}, (INVALID_ARGS, ERR + 'BadArgs')),
    ({'env': [f'K{i}=v' for i in range(100000)]}, (INVALID_ARGS, ERR + 'BadArgs', None)),
], ids=['cwd', 'user', 'env-value', 'env-key', 'env-many'])
def test_overlong_option(client, options, allowed):
    """Over-long strings: a clean, typed error (None: may also run), never a crash."""
    try:
        r = client.run(['/bin/true'], options, timeout=10)
        assert None in allowed, f'accepted: {r}'
    except DBusError as e:
        assert e.name in allowed, e
    assert_still_works(client)


@pytest.mark.root
def test_pty_usable_by_session_user(client):
    """The session's user can reopen its own terminal (by name and /dev/tty)."""
    r = client.run(['/bin/sh', '-c', 'echo a > "$(tty)" && echo b > /dev/tty && echo ok'],
                   {'tty': True, 'user': 'nobody'}, timeout=5)
    assert r.stdout == b'a\r\nb\r\nok\r\n', r
