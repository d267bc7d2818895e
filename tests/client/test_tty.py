# sandboxctl exec --tty in a real terminal (tmux): size, resize, Ctrl-C, exit status, terminal restored.
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
