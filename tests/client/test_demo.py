# tools/demo.sh as a new user runs it: quiet build, daemon log in a file, quoted echo, exit status.
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from conftest import BUILD, ROOT, SANDBOXCTL, SANDBOXD

DEMO = os.path.join(ROOT, 'tools/demo.sh')

# Lines sandboxd logs for a session and at its start and end (besides whatever is in the log file).
DAEMON_LINE = re.compile(r'Session \d+ (started|ended)|Received SIG|Landlock ABI')

pytestmark = pytest.mark.skipif(
    not (os.access(SANDBOXD, os.X_OK) and os.access(SANDBOXCTL, os.X_OK)), reason='not built')


class Demo:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout.decode()
        self.stderr = proc.stderr.decode()
        self.output = self.stdout + self.stderr
        paths = re.findall(r'its log is in (\S+)', self.output)
        self.log_path = paths[0] if paths else None
        # Printed once at the start and once at the end, and the same file both times.
        self.log_mentions = paths

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def assert_no_daemon_lines(self):
        assert not DAEMON_LINE.search(self.output), self.output
        for line in self.log().splitlines():
            assert line.strip() not in self.output, (line, self.output)


@pytest.fixture
def demo():
    """Runs tools/demo.sh on the build the tests use, without a terminal; removes what it leaves."""
    made = []

    def run(*args, builddir=BUILD, check_started=True):
        env = dict(os.environ, BUILDDIR=builddir)
        proc = subprocess.run([DEMO] + list(args), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=120)
        d = Demo(proc)
        if d.log_path:
            made.append(os.path.dirname(d.log_path))
        if check_started:
            assert d.log_path, d.output
            assert len(d.log_mentions) == 2 and d.log_mentions[0] == d.log_mentions[1], d.output
        return d

    yield run
    for d in made:
        if d.startswith('/tmp/sandboxd-demo.'):
            shutil.rmtree(d, ignore_errors=True)


def fake_build(tmp_path, command):
    """A build directory whose build.ninja runs command each time, with the real binaries in it."""
    b = tmp_path / 'build'
    for rel, target in (('src/daemon/sandboxd', SANDBOXD), ('src/client/sandboxctl', SANDBOXCTL)):
        (b / rel).parent.mkdir(parents=True, exist_ok=True)
        (b / rel).symlink_to(os.path.abspath(target))
    (b / 'build.ninja').write_text(
        'rule step\n  command = {}\nbuild never-made: step\ndefault never-made\n'.format(command))
    return str(b)


def test_command_runs_quietly_with_its_log_in_a_file(demo):
    d = demo('--', 'sh', '-c', 'echo hi; exit 3')
    assert d.rc == 3, d.output
    assert d.stdout == 'hi\n'
    assert "+ sandboxctl exec -- sh -c 'echo hi; exit 3'\n" in d.stderr
    d.assert_no_daemon_lines()
    # The build (already done) says nothing: no ninja lines, nothing but the demo's own lines.
    assert 'ninja' not in d.output
    for line in d.stderr.splitlines():
        assert line.startswith(('demo: ', '+ sandboxctl ')), line
    log = d.log()
    assert re.search(r"^Session 1 started .*'sh -c echo hi; exit 3'", log, re.M), log
    assert re.search(r'^Session 1 ended: .*code 3, signal 0', log, re.M), log


@pytest.mark.parametrize('argv', [
    ['printf', '%s|', "it's", '', 'a b', '$HOME', '*', 'x"y', 'plain-word_1.2'],
    ['sh', '-c', 'printf "%s|" "$@"', 'sh', '--flag=x y', "'"],
])
def test_echo_keeps_quoting(demo, argv):
    d = demo('--', *argv)
    assert d.rc == 0, d.output
    echoed = [line for line in d.stderr.splitlines() if line.startswith('+ ')]
    assert len(echoed) == 1 and echoed[0].startswith('+ sandboxctl exec -- '), d.stderr
    words = echoed[0][len('+ sandboxctl exec -- '):]
    # Typed back into a shell, the echoed line is the same command.
    typed = subprocess.run(['bash', '-c', "printf '%s\\0' " + words], capture_output=True, check=True)
    assert typed.stdout.decode().split('\0')[:-1] == argv, words
    # Words that need no quotes get none; those that do are quoted as a whole.
    assert words.split(' ', 1)[0] == argv[0]
    if 'a b' in argv:
        assert " 'a b' " in words, words
    expected = argv[2:] if argv[0] == 'printf' else argv[4:]
    assert d.stdout == ''.join(a + '|' for a in expected)


@pytest.mark.parametrize('script,status', [('exit 0', 0), ('exit 3', 3), ('exit 255', 255),
                                           ('kill -TERM $$', 128 + 15)])
def test_exit_status_is_passed_on(demo, script, status):
    d = demo('--', 'sh', '-c', script)
    assert d.rc == status, d.output


def test_without_double_dash(demo):
    d = demo('echo', 'a b')
    assert d.rc == 0 and d.stdout == 'a b\n', d.output
    assert "+ sandboxctl exec -- echo 'a b'\n" in d.stderr


def test_build_output_hidden_on_success_shown_with_v(demo, tmp_path):
    b = fake_build(tmp_path, 'echo BUILD-OUTPUT-MARKER')
    d = demo('--', 'true', builddir=b)
    assert d.rc == 0, d.output
    assert 'BUILD-OUTPUT-MARKER' not in d.output
    d.assert_no_daemon_lines()
    # It is kept, beside the daemon's log.
    with open(os.path.join(os.path.dirname(d.log_path), 'build.log')) as f:
        assert 'BUILD-OUTPUT-MARKER' in f.read()

    d = demo('-v', '--', 'true', builddir=b)
    assert d.rc == 0, d.output
    assert 'BUILD-OUTPUT-MARKER' in d.output
    d.assert_no_daemon_lines()


def test_build_output_shown_on_failure(demo, tmp_path):
    b = fake_build(tmp_path, 'echo BUILD-BROKE-HERE; exit 1')
    d = demo('--', 'echo', 'never-run', builddir=b, check_started=False)
    assert d.rc != 0
    assert 'BUILD-BROKE-HERE' in d.stderr
    assert 'never-run' not in d.stdout and 'serving' not in d.output
    shutil.rmtree(re.search(r'output in (/tmp/sandboxd-demo\.[^/\s]+)/', d.stderr).group(1))


def test_verbose_on_the_real_build(demo):
    d = demo('-v', '--', 'true')
    assert d.rc == 0, d.output
    assert 'ninja: Entering directory' in d.output
    d.assert_no_daemon_lines()


@pytest.mark.skipif(not shutil.which('tmux'), reason='tmux not installed')
def test_interactive_prompt_is_clean_and_fast(tmp_path):
    """On a terminal: a shell prompt at column 0 in under a second, no daemon line in the terminal."""
    sock = str(tmp_path / 'tmux.sock')
    tmux = ['tmux', '-S', sock, '-f', '/dev/null']
    cmd = 'BUILDDIR={} {}; echo "demo-rc=$?"; sleep 60'.format(shlex.quote(BUILD), shlex.quote(DEMO))

    def pane():
        return subprocess.run(tmux + ['capture-pane', '-p'], capture_output=True,
                              check=True).stdout.decode()

    def after_echo(text):
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith('+ sandboxctl exec -t -- bash'):
                return [x for x in lines[i + 1:] if x.strip()]
        return []

    start = time.monotonic()
    subprocess.run(tmux + ['new-session', '-d', '-x', '120', '-y', '40', '-c', ROOT, cmd], check=True)
    try:
        while not after_echo(pane()):
            assert time.monotonic() - start < 10, pane()
            time.sleep(0.01)
        elapsed = time.monotonic() - start
        time.sleep(0.3)  # anything the daemon wrote late would be there by now
        text = pane()
        prompt = after_echo(text)
        assert len(prompt) == 1 and re.fullmatch(r'\S.*[#$]', prompt[0]), text
        assert elapsed < 1.0, 'prompt after {:.2f} s'.format(elapsed)

        subprocess.run(tmux + ['send-keys', 'echo typed-$((6*7)); exit 5', 'Enter'], check=True)
        deadline = time.monotonic() + 10
        while 'demo-rc=' not in pane():
            assert time.monotonic() < deadline, pane()
            time.sleep(0.05)
        text = pane()
        assert 'typed-42' in text and 'demo-rc=5' in text, text
        assert not DAEMON_LINE.search(text), text
        log_path = re.findall(r'its log is in (\S+)', text)
        assert len(log_path) == 2 and log_path[0] == log_path[1], text
        with open(log_path[0]) as f:
            log = f.read()
        assert re.search(r"^Session 1 started .*'bash'", log, re.M), log
        assert re.search(r'^Session 1 ended: .*code 5', log, re.M), log
        shutil.rmtree(os.path.dirname(log_path[0]))
    finally:
        subprocess.run(tmux + ['kill-server'], capture_output=True)
