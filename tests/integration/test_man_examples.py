# SPDX-License-Identifier: LGPL-2.1-or-later
"""The examples of the manual pages, run against the real daemon.

Every <programlisting> in man/*.xml whose role starts with "test-" is run;
the format is described in the comment at the top of
man/org.example.Sandbox1.xml. In short:

- Listings are grouped by the <example> they are in; each example gets a
  fresh daemon (the harness fixtures of conftest.py) and its listings run in
  document order.
- role words: "test-p2p" (peer-to-peer daemon; the path
  /run/sandboxd/io.socket is replaced by its socket), "test-bus" (private
  system bus; $DBUS_SYSTEM_BUS_ADDRESS points at it), "test-daemon" (the one
  command starts /usr/libexec/sandboxd: the daemon is started by the p2p
  harness with the same options), plus "fails" (commands must exit non-zero)
  and "background" (commands are left running until they have started a
  session).
- "# " or "$ " starts a command (a trailing backslash continues it); the
  lines after it are its output, stdout and stderr together, matched exactly,
  where <replaceable>X</replaceable> stands for any one word. No lines after a
  command: it must print nothing.

The commands find sandboxctl (build/src/client) and busctl on $PATH.
"""

import os
import re
import shlex
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import REPO
from sandbox_client import wait_until

MAN_DIR = REPO / 'man'
PAGES = ['org.example.Sandbox1.xml', 'sandboxd.xml']
SANDBOXCTL = os.environ.get('SANDBOXCTL') or str(REPO / 'build' / 'src' / 'client' / 'sandboxctl')

SOCKET_PLACEHOLDER = '/run/sandboxd/io.socket'
DAEMON_PLACEHOLDER = '/usr/libexec/sandboxd'
WILDCARD = '\x00'     # what <replaceable> becomes in the extracted text
TRANSPORTS = {'test-p2p', 'test-bus', 'test-daemon'}
FLAGS = {'fails', 'background'}
COMMAND_TIMEOUT = 30


# --- extraction ---------------------------------------------------------

def _text(el):
    """The text of a listing, with each <replaceable> as WILDCARD."""
    parts = [el.text or '']
    for child in el:
        parts.append(WILDCARD if child.tag == 'replaceable' else _text(child))
        parts.append(child.tail or '')
    return ''.join(parts)


def _parse_listing(text):
    """[(command, [expected output lines])] of one listing."""
    steps = []
    lines = text.strip('\n').split('\n')
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(('# ', '$ ')):
            cmd = line[2:]
            while cmd.endswith('\\'):
                i += 1
                assert i < len(lines), f'continuation at the end of the listing: {cmd!r}'
                cmd += '\n' + lines[i]
            assert WILDCARD not in cmd, f'<replaceable> in a tested command: {cmd!r}'
            steps.append((cmd, []))
        else:
            assert steps, f'output before the first command: {line!r}'
            steps[-1][1].append(line.rstrip())
        i += 1
    return steps


class Listing:
    def __init__(self, role, steps):
        words = role.split()
        self.transport = words[0]
        self.flags = set(words[1:])
        assert self.transport in TRANSPORTS, f'unknown role {role!r}'
        assert self.flags <= FLAGS, f'unknown role words in {role!r}'
        self.steps = steps


class Example:
    def __init__(self, page, title, listings):
        self.page = page
        self.title = title
        self.listings = listings

    @property
    def id(self):
        return f'{self.page}:{self.title}'

    @property
    def transport(self):
        kinds = {'bus' if l.transport == 'test-bus' else 'p2p' for l in self.listings}
        assert len(kinds) == 1, f'{self.id}: mixes bus and p2p listings'
        return kinds.pop()


def _tree(page):
    # ElementTree does not load the external DTD, and the pages use only the
    # predefined entities.
    return ET.parse(MAN_DIR / page).getroot()


def collect_examples():
    examples = []
    for page in PAGES:
        root = _tree(page)
        for ex in root.iter('example'):
            listings = [Listing(pl.get('role'), _parse_listing(_text(pl)))
                        for pl in ex.iter('programlisting')
                        if (pl.get('role') or '').startswith('test-')]
            if listings:
                title = ' '.join((ex.findtext('title') or '?').split())
                examples.append(Example(page, title, listings))
    return examples


EXAMPLES = collect_examples()


# --- running ------------------------------------------------------------

def _pattern(expected_line):
    return re.compile(r'\S+'.join(re.escape(p) for p in expected_line.split(WILDCARD)))


def _check_output(cmd, expected, actual):
    got = actual.rstrip('\n').split('\n') if actual.strip() else []
    got = [l.rstrip() for l in got]
    msg = (f'command:\n{cmd}\n--- the page shows:\n'
           + '\n'.join(l.replace(WILDCARD, '<WORD>') for l in expected)
           + f'\n--- it printed:\n{actual}')
    assert len(got) == len(expected), msg
    for e, g in zip(expected, got):
        assert _pattern(e).fullmatch(g), msg


def _env(harness):
    path = [str(Path(SANDBOXCTL).parent), '/usr/local/sbin', '/usr/local/bin',
            '/usr/sbin', '/usr/bin', '/sbin', '/bin']
    env = {
        'PATH': ':'.join(path),
        'LANG': 'C.UTF-8',
        'SYSTEMD_PAGER': 'cat',
        'SYSTEMD_COLORS': '0',
        'HOME': '/root',
    }
    if harness.is_bus:
        env['DBUS_SYSTEM_BUS_ADDRESS'] = harness.bus_address
    else:
        # Never reach the host's system bus by accident.
        env['DBUS_SYSTEM_BUS_ADDRESS'] = f'unix:path={harness.tmp}/no-such-bus'
    return env


def _substitute(cmd, harness):
    return cmd.replace(SOCKET_PLACEHOLDER, str(harness.io_socket))


def _start_daemon(harness, listing):
    assert len(listing.steps) == 1, 'a test-daemon listing has exactly one command'
    cmd, expected = listing.steps[0]
    assert not expected, 'a test-daemon listing shows no output'
    argv = shlex.split(cmd.replace('\\\n', ' '))
    assert argv[0] == DAEMON_PLACEHOLDER, f'not the installed daemon: {argv[0]}'
    listen = f'--listen=unix:path={SOCKET_PLACEHOLDER}'
    # The p2p harness itself passes --listen=unix:path=<its socket> and --no-bus.
    assert listen in argv[1:] and '--no-bus' in argv[1:], \
        f'test-daemon needs {listen} --no-bus: {cmd}'
    extra = [a for a in argv[1:] if a not in (listen, '--no-bus')]
    harness.start(*extra)


def _n_sessions(watcher):
    return len(watcher.list_sessions())


def _run_listing(harness, listing, background, watcher_box):
    env = _env(harness)
    for cmd, expected in listing.steps:
        real = _substitute(cmd, harness)
        if 'background' in listing.flags:
            if watcher_box[0] is None:
                watcher_box[0] = harness.client()
            before = _n_sessions(watcher_box[0])
            log = open(harness.tmp / f'background-{len(background)}.log', 'wb')
            p = subprocess.Popen(['/bin/sh', '-c', real], env=env, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            background.append((p, log))
            assert wait_until(lambda: p.poll() is not None
                              or _n_sessions(watcher_box[0]) > before, 10), \
                f'no session appeared for: {cmd}'
            assert p.poll() is None, f'exited early ({p.returncode}): {cmd}\n' \
                + (harness.tmp / f'background-{len(background) - 1}.log').read_text(errors='replace')
            assert not expected, 'a background command shows no output'
            continue
        r = subprocess.run(['/bin/sh', '-c', real], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=COMMAND_TIMEOUT)
        out = r.stdout.decode(errors='replace').replace(str(harness.io_socket), SOCKET_PLACEHOLDER)
        if 'fails' in listing.flags:
            assert r.returncode != 0, f'should have failed:\n{cmd}\n{out}'
        else:
            assert r.returncode == 0, f'exit status {r.returncode}:\n{cmd}\n{out}'
        _check_output(cmd, expected, out)


@pytest.mark.root
@pytest.mark.parametrize('example', EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_man_example(example, request):
    if not os.access(SANDBOXCTL, os.X_OK):
        pytest.skip(f'sandboxctl not built: {SANDBOXCTL}')
    harness = request.getfixturevalue('daemon_bus_harness' if example.transport == 'bus'
                                      else 'p2p_harness')
    background = []
    watcher = [None]
    try:
        for listing in example.listings:
            if listing.transport == 'test-daemon':
                _start_daemon(harness, listing)
                continue
            if harness.daemon is None:
                harness.start()
            _run_listing(harness, listing, background, watcher)
        harness.assert_alive()
    finally:
        for p, log in background:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait(5)
            log.close()


def test_pages_have_tested_examples():
    """Each page has tested examples, and no tested listing is outside an <example>."""
    for page in PAGES:
        root = _tree(page)
        in_examples = {id(pl) for ex in root.iter('example') for pl in ex.iter('programlisting')}
        tested = [pl for pl in root.iter('programlisting')
                  if (pl.get('role') or '').startswith('test-')]
        assert tested, f'{page}: no tested example'
        assert all(id(pl) in in_examples for pl in tested), \
            f'{page}: a tested listing outside <example>'
