# SPDX-License-Identifier: LGPL-2.1-or-later
"""sandboxd as a guest agent in a real VM: one QEMU boot (systemd as PID 1, the project's
install over the host's root), the checks of guest_check.py run in it, one test item per check.

Run as root:  BUILD_DIR=build /usr/bin/python3 -m pytest tests/vm

BUILD_DIR (default: build) is built with ninja and installed with `meson install --destdir`.
Needs what tools/install-deps.sh installs (QEMU, qboot, busybox-static, the cached kernel);
without them every test skips and says what is missing. SANDBOXD_VM_OUT=DIR keeps the console
log, the guest's journal and results.jsonl there (otherwise in pytest's basetemp).
"""

import os
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run_vm  # noqa: E402

# In the order the guest runs them (guest_check.py); each is one test below.
CHECKS = [
    'boot',                  # systemd is PID 1, detect-virt says qemu, cgroup v2
    'vsock_socket_active',   # sandboxd-vsock.socket active on vsock port 5000
    'nothing_else_runs',     # no other unit or process of the project after boot
    'cid1_refused',          # nobody on CID 1 (vsock loopback) refused before authentication
    'cid1_refusal_logged',   # ... and the daemon says so in the journal
    'allow_cid_dropin',      # a drop-in adds --vsock-allow-cid=1 and a short --idle-timeout
    'allow_cid_option',      # sandboxd knows --vsock-allow-cid
    'vsock_activation',      # a vsock connection starts sandboxd.service; commands run as root
    'pipes_and_exit_codes',
    'output_complete',
    'pty_session',
    'signals',
    'sandboxctl_over_vsock', # sandboxctl --address=vsock:cid=1,... relays stdio, exit codes, -tt
    'fd_passing',            # refused on vsock, and the daemon keeps serving
    'idle_exit',             # the daemon exits when idle, the socket stays
    'second_activation',     # and a new connection starts it again
    'journal_sessions',      # every session's start and end entries in the journal
]


class Boot(dict):
    """run_vm.run()'s answer; short in pytest's tracebacks."""
    def __repr__(self):
        return f"<the VM boot: {len(self['results'])} results in {self['out']}>"


@pytest.fixture(scope='session')
def vm(tmp_path_factory):
    try:
        run_vm.prerequisites()
    except run_vm.Unavailable as e:
        pytest.skip(f'no VM guest here: {e}')
    out = Path(os.environ.get('SANDBOXD_VM_OUT') or tmp_path_factory.mktemp('vm'))
    out.mkdir(parents=True, exist_ok=True)
    builddir = Path(os.environ.get('BUILD_DIR', run_vm.REPO / 'build'))
    t = time.monotonic()
    res = Boot(run_vm.run(out, builddir))
    res['total'] = time.monotonic() - t
    res['out'] = out
    res['by_name'] = {r.get('check'): r for r in res['results']}
    sys.stderr.write(f"\ntests/vm: prepared in {res['prepare_seconds']:.1f} s, QEMU ran "
                     f"{res['seconds']:.1f} s, {res['total']:.1f} s in all; output in {out}\n")
    return res


def _why_missing(vm):
    if vm['timed_out']:
        how = f"the guest was killed after {run_vm.BOOT_TIMEOUT:.0f} s"
    else:
        how = f"QEMU exited ({vm['returncode']}) after {vm['seconds']:.0f} s"
    got = [r.get('check') for r in vm['results']]
    return (f"{how}; the guest reported {got}. QEMU said: {vm['qemu_output'][-500:]!r}\n"
            f"console ({vm['out']}/console.log), last lines:\n" + vm['console'][-3000:])


def test_guest_ran_to_the_end(vm):
    """The guest booted, ran every check, and powered itself off in time."""
    assert 'done' in vm['by_name'], _why_missing(vm)
    assert not vm['timed_out'], _why_missing(vm)
    assert vm['returncode'] == 0, _why_missing(vm)


@pytest.mark.parametrize('name', CHECKS)
def test_in_guest(vm, name):
    r = vm['by_name'].get(name)
    if r is None:
        pytest.fail(f'the guest never reported {name!r}: ' + _why_missing(vm))
    assert r['ok'], f"{name} failed in the guest: {r['detail']}  (journal: {vm['out']}/out/journal.txt)"
