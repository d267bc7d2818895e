# sandboxctl's completion, more: the signal names offered are those sandboxctl accepts (bash and
# zsh), and zsh's completion loads, is installed, and completes verbs and options (typed in tmux).
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import BUILD, ROOT, SANDBOXCTL, ctl_argv, wait_for
from test_completion import BASH_COMPLETION, complete

ZSH_DIR = os.path.join(ROOT, 'shell-completion/zsh')
ZSH_SCRIPT = os.path.join(ZSH_DIR, '_sandboxctl')
# Where no daemon listens: sandboxctl then fails to connect (1) unless the line is bad (2).
NOWHERE = '--address=unix:path=/nonexistent/sandboxd.socket'
EXIT_FAILED, EXIT_USAGE = 1, 2

needs_bash_completion = pytest.mark.skipif(not os.path.exists(BASH_COMPLETION),
                                           reason='bash-completion not installed')
needs_zsh = pytest.mark.skipif(not shutil.which('zsh'), reason='zsh not installed')
needs_ctl = pytest.mark.skipif(not os.access(SANDBOXCTL, os.X_OK), reason='sandboxctl not built')


_accepted = {}


def accepted(verb, name):
    if (verb, name) not in _accepted:
        r = subprocess.run([SANDBOXCTL, NOWHERE, verb, '1', name], capture_output=True, timeout=10)
        assert r.returncode in (EXIT_FAILED, EXIT_USAGE), (name, r)
        _accepted[verb, name] = r.returncode == EXIT_FAILED
    return _accepted[verb, name]


def rt_names(upto=40):
    return ['RTMIN+%d' % k for k in range(upto + 1)] + ['RTMAX-%d' % k for k in range(upto + 1)]


def candidate_names():
    """Every signal-like word bash, zsh and kill(1) know, other systems' names, and the real-time
    names past their range."""
    words = set(subprocess.run(['bash', '-c', 'compgen -A signal; kill -l'], capture_output=True,
                               check=True).stdout.decode().split())
    if shutil.which('zsh'):
        words |= set(subprocess.run(['zsh', '-fc', 'print -l $signals'], capture_output=True,
                                    check=True).stdout.decode().split())
    names = {re.sub(r'^SIG', '', w) for w in words if not re.fullmatch(r'\d+\)?', w)}
    others = {'CLD', 'IOT', 'POLL', 'EMT', 'INFO', 'LOST', 'UNUSED', 'THR', 'JUNK', 'NONE', 'ZERR'}
    return names | others | set(rt_names())


def expected_signals(verb, offered):
    """What completion should offer, given what it offers: the words sandboxctl accepts of the
    candidates and of the offered ones, as (plain names, real-time ones with +N or -N)."""
    names = {n for n in candidate_names() | set(offered) if accepted(verb, n)}
    rt = {n for n in names if re.fullmatch(r'RTM(IN\+|AX-)\d+', n)}
    # RTMIN+0 and RTMAX-0 are RTMIN and RTMAX, which completion offers instead.
    return names - rt, rt - {'RTMIN+0', 'RTMAX-0'}


@pytest.fixture(scope='module')
def probe():
    if not os.access(SANDBOXCTL, os.X_OK):
        pytest.skip('sandboxctl not built')
    # The probe itself tells accepted from rejected.
    for verb in ('signal', 'kill'):
        assert accepted(verb, 'TERM') and accepted(verb, 'sigterm') and accepted(verb, 'RTMIN+3')
        assert not accepted(verb, 'DEBUG') and not accepted(verb, 'EXIT')
    return expected_signals


# --- bash ---

@needs_bash_completion
@pytest.mark.parametrize('verb', ['signal', 'kill'])
def test_bash_signals_are_sandboxctls(probe, verb):
    offered = complete(verb, '1', '')
    offered_rt = complete(verb, '1', 'RTMIN+') + complete(verb, '1', 'RTMAX-')
    plain, rt = probe(verb, offered + offered_rt)
    assert offered == sorted(plain)
    for bad in ('DEBUG', 'ERR', 'EXIT', 'RETURN'):
        assert bad not in offered
    assert not [o for o in offered if 'JUNK' in o]
    assert sorted(offered_rt) == sorted(rt)
    assert complete(verb, '1', 'RTMIN+') == sorted(n for n in rt if n.startswith('RTMIN+'))
    for typed in ('SIGTE', 'te', 'sigte', 'SIGRTMIN+1', 'rtmax-2'):
        for o in complete(verb, '1', typed):
            assert o.lower().startswith(typed.lower()) and accepted(verb, o), (typed, o)
    assert complete(verb, '1', 'SIGTE') == ['SIGTERM']
    assert complete(verb, '1', 'te') == ['term']
    assert complete(verb, '1', 'SIGRTMAX-5') == ['SIGRTMAX-5']


@needs_bash_completion
def test_bash_no_signal_after_the_signal():
    assert complete('signal', '1', 'TERM', '') == []
    assert complete('kill', '1', 'TERM', '') == []


# --- zsh: the file ---

@needs_zsh
def test_zsh_loads_without_error():
    prog = '''
autoload -U compinit; compinit -u; fpath=({dir} $fpath); compinit -u
[[ $_comps[sandboxctl] == _sandboxctl ]] || {{ print -u2 "not registered: $_comps[sandboxctl]"; exit 1; }}
autoload +X _sandboxctl
whence -w _sandboxctl
'''.format(dir=ZSH_DIR)
    r = subprocess.run(['zsh', '-fc', prog], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stderr == b'', r.stderr.decode()
    assert r.stdout.decode().strip() == '_sandboxctl: function'
    r = subprocess.run(['zsh', '-n', ZSH_SCRIPT], capture_output=True, timeout=10)
    assert r.returncode == 0 and r.stderr == b'', r.stderr.decode()


@needs_ctl
def test_zsh_covers_every_verb_and_option_of_help():
    help_text = subprocess.run([SANDBOXCTL, '--help'], capture_output=True, check=True).stdout.decode()
    with open(ZSH_SCRIPT) as f:
        script = f.read()
    verbs = help_verbs()
    assert 'exec' in verbs and 'terminate' in verbs, help_text
    for verb in verbs:
        assert re.search(r"'{}:".format(verb), script), verb
    for opt in set(re.findall(r'(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])\b', help_text)):
        assert re.search(r"[{{()',* ]{}[\[=+,}} ]".format(re.escape(opt)), script), opt


def test_zsh_completion_is_installed():
    if not os.path.exists(os.path.join(BUILD, 'build.ninja')):
        pytest.skip('not configured: ' + BUILD)
    r = subprocess.run(['meson', 'introspect', '--installed', BUILD], capture_output=True, check=True)
    installed = {os.path.realpath(k): v for k, v in json.loads(r.stdout).items()}
    assert installed[os.path.realpath(ZSH_SCRIPT)].endswith('/share/zsh/site-functions/_sandboxctl')
    bash = os.path.realpath(os.path.join(ROOT, 'shell-completion/bash/sandboxctl'))
    assert installed[bash].endswith('/share/bash-completion/completions/sandboxctl')


# --- zsh: typed, in tmux ---

class ZshTerminal:
    """An interactive zsh -f in tmux with the completion from the tree; completes what is typed."""

    def __init__(self, tmp):
        self.tmux = ['tmux', '-S', os.path.join(tmp, 'tmux.sock'), '-f', '/dev/null']
        # sandboxctl as typed is the one built, as for the ids it lists.
        env = 'env -i HOME={} TERM=xterm PATH={}:/usr/bin:/bin'.format(
            tmp, os.path.dirname(os.path.abspath(SANDBOXCTL)))
        subprocess.run(self.tmux + ['new-session', '-d', '-x', '200', '-y', '60', env + ' zsh -f'],
                       check=True)
        self.keys("PS1='%% '; fpath=({} $fpath); autoload -U compinit; compinit -u; "
                  "LISTMAX=0; clear".format(ZSH_DIR), 'Enter')
        self.wait(lambda text: text.strip() == '%')

    def keys(self, *keys):
        subprocess.run(self.tmux + ['send-keys'] + list(keys), check=True)

    def pane(self):
        # -N: trailing spaces are kept, so a completed word shows its space.
        r = subprocess.run(self.tmux + ['capture-pane', '-p', '-N'], capture_output=True, check=True)
        return '\n'.join(line.rstrip() if i else line
                         for i, line in enumerate(r.stdout.decode().splitlines()))

    def wait(self, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            text = self.pane()
            if predicate(text):
                return text
            assert time.monotonic() < deadline, text
            time.sleep(0.02)

    def complete(self, line):
        """(the line after one Tab, the words of the list shown, first word of each row)."""
        subprocess.run(self.tmux + ['send-keys', '-l', line], check=True)
        self.wait(lambda text: text.splitlines()[0].rstrip() == '% ' + line.rstrip())
        before = self.pane()
        self.keys('Tab')
        try:
            text = self.wait(lambda t: t != before, timeout=3)
        except AssertionError:
            text = before  # nothing to complete
        # Settle: the list is drawn after the line.
        while True:
            time.sleep(0.2)
            again = self.pane()
            if again == text:
                break
            text = again
        lines = [x for x in text.splitlines() if x.strip()]
        # Line editor keys, read in order (C-c would be a signal, racing the keys after it).
        self.keys('C-u', 'C-l')
        self.wait(lambda t: t.strip() == '%')
        return lines[0][2:], lines[1:]

    def close(self):
        subprocess.run(self.tmux + ['kill-server'], capture_output=True)


@pytest.fixture(scope='module')
def zsh_term(tmp_path_factory):
    if not shutil.which('zsh') or not shutil.which('tmux'):
        pytest.skip('zsh or tmux not installed')
    t = ZshTerminal(str(tmp_path_factory.mktemp('zsh')))
    yield t
    t.close()


def listed(rows):
    return sorted(w for row in rows for w in row.split())


def first_words(rows):
    return sorted(row.split()[0] for row in rows)


def help_verbs():
    help_text = subprocess.run([SANDBOXCTL, '--help'], capture_output=True, check=True).stdout.decode()
    return re.findall(r'^  ([a-z]+) ', help_text.split('Verbs:')[1], re.M)


@needs_ctl
def test_zsh_verbs(zsh_term):
    line, rows = zsh_term.complete('sandboxctl ')
    assert first_words(rows) == sorted(help_verbs())
    assert set(first_words(rows)) >= {'exec', 'run', 'list', 'status', 'wait', 'signal', 'kill',
                                      'terminate'}
    line, rows = zsh_term.complete('sandboxctl ter')
    assert line == 'sandboxctl terminate ' and rows == []


def test_zsh_options(zsh_term):
    line, rows = zsh_term.complete('sandboxctl --')
    assert first_words(rows) == sorted(['--address', '--bus-address', '--help', '--host', '--machine',
                                        '--system', '--version'])
    assert zsh_term.complete('sandboxctl --ad')[0] == 'sandboxctl --address='
    assert zsh_term.complete('sandboxctl exec --pro')[0] == 'sandboxctl exec --profile='
    assert listed(zsh_term.complete('sandboxctl exec --profile=')[1]) == ['default', 'restricted']
    assert zsh_term.complete('sandboxctl exec --rlimit=nof')[0] == 'sandboxctl exec --rlimit=nofile='
    assert zsh_term.complete('sandboxctl run --max')[0] == 'sandboxctl run --max-output='
    assert zsh_term.complete('sandboxctl list --no')[0] == 'sandboxctl list --no-legend '
    assert zsh_term.complete('sandboxctl terminate --gr')[0] == 'sandboxctl terminate --grace='
    assert zsh_term.complete('sandboxctl shell --pro')[0] == 'sandboxctl shell --profile='
    assert zsh_term.complete('sandboxctl exec --esc')[0] == 'sandboxctl exec --escape='
    assert zsh_term.complete('sandboxctl exec --escape=n')[0] == 'sandboxctl exec --escape=none '
    # The command: a command name, then the command's own completion, after "--" too.
    assert zsh_term.complete('sandboxctl exec -- mountpoi')[0] == 'sandboxctl exec -- mountpoint '
    assert zsh_term.complete('sandboxctl exec -t -- ls --col')[0] == 'sandboxctl exec -t -- ls --color='
    assert zsh_term.complete('sandboxctl run -e A=1 ls --col')[0] == 'sandboxctl run -e A=1 ls --color='


@needs_ctl
@pytest.mark.parametrize('verb', ['signal', 'kill'])
def test_zsh_signals_are_sandboxctls(zsh_term, probe, verb):
    offered = listed(zsh_term.complete('sandboxctl {} 1 '.format(verb))[1])
    offered_rt = listed(zsh_term.complete('sandboxctl {} 1 RTMIN+'.format(verb))[1])
    offered_rt += listed(zsh_term.complete('sandboxctl {} 1 RTMAX-'.format(verb))[1])
    plain, rt = probe(verb, offered + offered_rt)
    assert offered == sorted(plain)
    assert sorted(offered_rt) == sorted(rt)
    # The same as bash's.
    if os.path.exists(BASH_COMPLETION):
        assert offered == complete(verb, '1', '')
    assert zsh_term.complete('sandboxctl {} 1 SIGTE'.format(verb))[0] == \
        'sandboxctl {} 1 SIGTERM '.format(verb)
    assert zsh_term.complete('sandboxctl {} 1 ter'.format(verb))[0] == 'sandboxctl {} 1 term '.format(verb)


@needs_ctl
def test_zsh_session_ids(zsh_term, daemon):
    """The ids come from `list` on the daemon the line names."""
    procs = [subprocess.Popen(ctl_argv(daemon.address, 'exec', '--', 'sleep', '60'),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) for _ in range(2)]
    try:
        def ids():
            r = subprocess.run(ctl_argv(daemon.address, 'list', '--no-legend'), capture_output=True)
            found = sorted(line.split()[0] for line in r.stdout.decode().splitlines() if line.strip())
            return found if len(found) == 2 else None
        expected = wait_for(ids, what='two sessions')
        for verb in ('wait', 'kill', 'status', 'terminate'):
            line, rows = zsh_term.complete('sandboxctl --address={} {} '.format(daemon.address, verb))
            assert listed(rows) == expected, (verb, line, rows)
    finally:
        for p in procs:
            p.kill()
            p.wait()
