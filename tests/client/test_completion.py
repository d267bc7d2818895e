# The bash completion of sandboxctl, driven the way bash drives it.
import os
import subprocess

import pytest

from conftest import ROOT

BASH_COMPLETION = '/usr/share/bash-completion/bash_completion'
SCRIPT = os.path.join(ROOT, 'shell-completion/bash/sandboxctl')


def complete(*words):
    prog = '''
source {bc}
source {script}
COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
compopt() {{ :; }}
_sandboxctl
printf '%s\\n' "${{COMPREPLY[@]}}"
'''.format(bc=BASH_COMPLETION, script=SCRIPT)
    r = subprocess.run(['bash', '-c', prog, 'bash', 'sandboxctl'] + list(words),
                       capture_output=True, timeout=10, check=True)
    return sorted(set(r.stdout.decode().split()))


def test_syntax():
    subprocess.run(['bash', '-n', SCRIPT], check=True)


@pytest.mark.skipif(not os.path.exists(BASH_COMPLETION), reason='bash-completion not installed')
def test_complete():
    assert complete('') == sorted(['exec', 'run', 'shell', 'list', 'status', 'wait', 'signal', 'kill',
                                   'terminate'])
    assert complete('-H', 'somehost', 'sh') == ['shell']
    assert complete('shell', '--esc') == ['--escape=']
    assert complete('--ad') == ['--address=']
    assert complete('exec', '--pro') == ['--profile=']
    assert complete('exec', '--profile', '') == ['default', 'restricted']
    assert complete('exec', '--rlimit', 'nof') == ['nofile=']
    assert complete('signal', '1', 'TE') == ['TERM']
    assert 'echo' in complete('exec', 'ech')
