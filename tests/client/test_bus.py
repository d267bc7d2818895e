# sandboxctl and a real bus (a private dbus-daemon with sandboxd on it): --bus-address, and --address
# given a bus's address by mistake.
import os
import shutil
import signal
import subprocess

import pytest

from conftest import SANDBOXCTL, SANDBOXD, wait_for

DBUS_DAEMON = shutil.which('dbus-daemon')

# A bus of its own for the test: everyone may own names and call anything.
BUS_CONFIG = '''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
'''


def run(*args, input=b''):
    return subprocess.run([SANDBOXCTL] + list(args), input=input, capture_output=True, timeout=30)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def bus(tmp_path):
    """The address of a private dbus-daemon on which sandboxd owns org.example.Sandbox1."""
    if not DBUS_DAEMON:
        pytest.skip('dbus-daemon not installed')
    if not os.access(SANDBOXD, os.X_OK):
        pytest.skip('sandboxd not built: ' + SANDBOXD)
    sock = tmp_path / 'bus.sock'
    address = 'unix:path=%s' % sock
    (tmp_path / 'bus.conf').write_text(BUS_CONFIG.format(socket=sock))
    log = open(tmp_path / 'bus.log', 'wb')
    bus_proc = subprocess.Popen([DBUS_DAEMON, '--config-file=%s' % (tmp_path / 'bus.conf'), '--nofork'],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    daemon = None
    try:
        wait_for(lambda: sock.exists() or bus_proc.poll() is not None, what='the bus socket')
        assert bus_proc.poll() is None, (tmp_path / 'bus.log').read_text()
        daemon = subprocess.Popen([SANDBOXD, '--idle-timeout=0'],
                                  env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address),
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        wait_for(lambda: run('--bus-address=' + address, 'list').returncode == 0 or daemon.poll() is not None,
                 what='sandboxd on the bus')
        assert daemon.poll() is None, (tmp_path / 'bus.log').read_text()
        yield address
    finally:
        log.close()
        if daemon:
            stop(daemon)
        stop(bus_proc)


def test_bus_address(bus):
    r = run('--bus-address=' + bus, 'exec', 'sh', '-c', 'cat; echo err >&2; exit 3', input=b'in\n')
    assert (r.returncode, r.stdout, r.stderr) == (3, b'in\n', b'err\n')


def test_address_of_a_bus(bus):
    # --address is peer-to-peer: a bus daemon would take the calls as its own and answer
    # UnknownMethod. sandboxctl finds out that it is a bus and says what to use instead.
    expected = ('sandboxctl: {a} is the address of a D-Bus bus, not of sandboxd\'s peer-to-peer socket: '
                'use --bus-address={a} to reach org.example.Sandbox1 on that bus\n').format(a=bus).encode()
    for args in (['exec', 'echo', 'hi'], ['list'], ['signal', '1', 'TERM']):
        r = run('--address=' + bus, *args)
        assert (r.returncode, r.stdout, r.stderr) == (1, b'', expected), args

