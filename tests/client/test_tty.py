# sandboxctl exec in a real terminal (tmux): --tty (size, resize, Ctrl-C, exit status, terminal restored),
# and without --tty the terminal relayed, never handed to the command.
import os
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from conftest import SANDBOXCTL, wait_for

pytestmark = pytest.mark.skipif(not shutil.which('tmux'), reason='tmux not installed')


class Tmux:
    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.socket = str(tmp_path / 'tmux.sock')

    def tmux(self, *args):
        return subprocess.run(['tmux', '-S', self.socket, '-f', '/dev/null'] + list(args),
                              capture_output=True, check=True, timeout=10).stdout.decode()

    def start(self, address, *exec_args):
        """Runs sandboxctl exec -t in a 100x30 terminal, with the terminal's settings recorded before
        and after and the exit status written to a file; the pane stays open afterwards."""
        d = shlex.quote(str(self.dir))
        cmd = ' '.join(shlex.quote(a) for a in [SANDBOXCTL, '--address=' + address, 'exec', '-t'] + list(exec_args))
        script = ('TERM=vt100; export TERM; stty -a > {d}/before; {cmd}; echo $? > {d}/rc.tmp; mv {d}/rc.tmp {d}/rc; '
                  'stty -a > {d}/after; exec sleep 600').format(d=d, cmd=cmd)
        self.tmux('new-session', '-d', '-x', '100', '-y', '30', 'sh -c ' + shlex.quote(script))

    def start_plain(self, address, exec_args, then='', redirect=''):
        """Runs sandboxctl exec without -t at the terminal, sandboxctl's fds 0, 1, 2 on it unless
        `redirect` (shell redirections) says otherwise; writes the exit status to a file, then runs
        the shell code `then`; the pane stays open afterwards."""
        d = shlex.quote(str(self.dir))
        cmd = ' '.join(shlex.quote(a) for a in [SANDBOXCTL, '--address=' + address, 'exec'] + list(exec_args))
        script = ('TERM=vt100; export TERM; cd {d}; {cmd} {redirect}; echo $? > {d}/rc.tmp; '
                  'mv {d}/rc.tmp {d}/rc; {then}; exec sleep 600').format(d=d, cmd=cmd, redirect=redirect,
                                                                        then=then or ':')
        self.tmux('new-session', '-d', '-x', '100', '-y', '30', 'sh -c ' + shlex.quote(script))

    def screen(self):
        return self.tmux('capture-pane', '-p')

    def send(self, *keys):
        self.tmux('send-keys', *keys)

    def run(self, line, marker):
        """Types a line; waits for marker, which should only appear in the output, not the input."""
        self.send(line, 'Enter')
        return wait_for(lambda: marker in self.screen() and self.screen(), what=repr(marker))

    def sandboxctl_pid(self):
        pane = int(self.tmux('display-message', '-p', '#{pane_pid}').strip())
        out = subprocess.run(['pgrep', '-P', str(pane)], capture_output=True).stdout.split()
        return int(out[0])

    def exit_status(self):
        path = self.dir / 'rc'
        wait_for(lambda: path.exists(), what='sandboxctl to exit')
        return int(path.read_text())

    def settings(self, name):
        path = self.dir / name
        wait_for(lambda: path.exists() and path.stat().st_size > 0, what=name)
        return path.read_text()

    def kill(self):
        subprocess.run(['tmux', '-S', self.socket, 'kill-server'], capture_output=True)


@pytest.fixture
def term(tmp_path):
    t = Tmux(tmp_path)
    yield t
    t.kill()


def test_interactive_shell(daemon, term):
    term.start(daemon.address, '--', 'bash', '--norc')
    term.run('echo READY-$((40+2))', 'READY-42')

    screen = term.run('stty size; echo SIZE-$((1+1))', 'SIZE-2')
    assert '30 100' in screen.splitlines()

    # The local $TERM is passed on.
    term.run('echo TERM=$TERM-$((2+2))', 'TERM=vt100-4')

    term.tmux('resize-window', '-x', '120', '-y', '40')
    wait_for(lambda: '40 120' in term.run('stty size; echo AGAIN-$((3+3))', 'AGAIN-6').splitlines(),
             what='the new size')

    # Ctrl-C is a byte to the remote terminal: it interrupts sleep and the shell prompts again.
    term.send('sleep 100', 'Enter')
    time.sleep(0.5)
    start = time.monotonic()
    term.send('C-c')
    term.run('echo BACK-$((5+5))', 'BACK-10')
    assert time.monotonic() - start < 10

    term.send('exit 7', 'Enter')
    assert term.exit_status() == 7
    # Restored: the same settings as before, apart from the first line (speed, rows, columns).
    before = term.settings('before').splitlines()[1:]
    after = term.settings('after').splitlines()[1:]
    assert before == after


def test_raw_mode_while_running(daemon, term):
    term.start(daemon.address, '--', 'sh', '-c', 'read line; echo "GOT:$line"; exit 0')
    time.sleep(0.5)
    term.send('hello', 'Enter')
    assert term.exit_status() == 0
    assert 'GOT:hello' in term.screen()
    assert term.settings('before').splitlines() == term.settings('after').splitlines()


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_terminal_restored_when_killed(daemon, term, sig):
    term.start(daemon.address, '--', 'bash', '--norc')
    term.run('echo READY-$((40+2))', 'READY-42')
    os.kill(term.sandboxctl_pid(), sig)
    assert term.exit_status() == 128 + sig
    assert term.settings('before').splitlines() == term.settings('after').splitlines()


def test_exit_by_signal(daemon, term):
    term.start(daemon.address, '--', 'sh', '-c', 'kill -TERM $$')
    assert term.exit_status() == 143
    assert term.settings('before').splitlines() == term.settings('after').splitlines()


def test_not_found_restores(daemon, term):
    term.start(daemon.address, '--', 'no-such-command-xyz')
    assert term.exit_status() == 127
    assert term.settings('before').splitlines() == term.settings('after').splitlines()
    assert "sandboxctl: failed to run 'no-such-command-xyz': No such file or directory (NotFound)" \
        in term.screen().replace('\n', '')


def test_terminal_not_left_to_the_command(daemon, term):
    # The attack: a child the command leaves behind, in a session of its own, waits for sandboxctl
    # to return and then reads and writes what was sandboxctl's terminal. It must get neither: what
    # is typed next goes to the shell at the terminal, and nothing it writes shows there.
    child = ('sleep 1; read x; echo "got:$x" > {d}/child; sleep 1; echo LEAKED-TO-TERMINAL; '
             'echo LEAKED-TO-TERMINAL >&2').format(d=shlex.quote(str(term.dir)))
    term.start_plain(daemon.address, ['--', 'setsid', '-f', 'sh', '-c', child],
                     then='sleep 4; read line; echo "shell:$line" > shell')
    assert term.exit_status() == 0
    time.sleep(1.5)                     # the child is reading by now
    term.send('typed-secret', 'Enter')
    shell, child_file = term.dir / 'shell', term.dir / 'child'

    def read(path):
        return path.read_text() if path.exists() else ''
    wait_for(lambda: 'typed-secret' in read(shell) + read(child_file), timeout=15, what='someone to read the line')
    assert 'typed-secret' not in read(child_file), 'the command left behind read the terminal'
    assert read(shell) == 'shell:typed-secret\n'
    time.sleep(2)                       # the child has had its time to write
    assert 'LEAKED' not in term.screen()


def test_command_gets_no_terminal(daemon, term):
    # sandboxctl's fds 0, 1 and 2 are the terminal; the command's are not, yet it is still talked to.
    term.start_plain(daemon.address, ['--', 'sh', '-c',
                                      'for i in 0 1 2; do test -t $i && echo tty$i || echo notty$i; done; '
                                      'echo err-line >&2; read line; echo "GOT:$line"'])
    wait_for(lambda: 'err-line' in term.screen(), what='the first output')
    term.send('hello', 'Enter')
    assert term.exit_status() == 0
    lines = term.screen().splitlines()
    for i in range(3):
        assert 'notty%d' % i in lines
        assert 'tty%d' % i not in lines
    assert 'GOT:hello' in lines


def test_terminal_relay_eof(daemon, term):
    # Ctrl-D at the terminal is the command's EOF, as it would be for the command itself.
    term.start_plain(daemon.address, ['--', 'sh', '-c', 'cat; echo "END:$?"'])
    time.sleep(0.5)
    term.send('one', 'Enter')
    wait_for(lambda: term.screen().splitlines().count('one') == 2, what='the line and its copy')
    term.send('C-d')
    assert term.exit_status() == 0
    assert 'END:0' in term.screen().splitlines()


def test_terminal_relayed_file_passed(daemon, term):
    # stdin and stderr on the terminal are relayed; stdout, a file, is still handed over as it is.
    term.start_plain(daemon.address, ['--', 'sh', '-c', 'readlink /proc/self/fd/1; test -t 0 || echo notty0; '
                                      'test -t 2 || echo notty2 >&2'], redirect='> out')
    assert term.exit_status() == 0
    assert (term.dir / 'out').read_text() == '%s\nnotty0\n' % (term.dir / 'out')
    assert 'notty2' in term.screen().splitlines()
