# SPDX-License-Identifier: LGPL-2.1-or-later
"""Common D-Bus client libraries on the peer-to-peer socket, as they are used for a bus: python's
dbus-next (its proxy asks the driver for the name's owner and matches signals by sender) and
GDBus proxies (python3-gi). Each runs in a child process of Debian's python3 and reports JSON."""

import json
import subprocess
import textwrap

import pytest

PY = '/usr/bin/python3'

DBUS_NEXT = textwrap.dedent(r'''
    import asyncio, json, logging, sys
    logged = []
    class Keep(logging.Handler):
        def emit(self, record):
            logged.append(record.getMessage())
    logging.getLogger().addHandler(Keep())
    from dbus_next.aio import MessageBus
    async def main():
        bus = await MessageBus(bus_address=sys.argv[1]).connect()
        intro = await bus.introspect('org.example.Sandbox1', '/org/example/Sandbox1')
        obj = bus.get_proxy_object('org.example.Sandbox1', '/org/example/Sandbox1', intro)
        iface = obj.get_interface('org.example.Sandbox1')
        loop = asyncio.get_running_loop()
        done = {}
        out = {}
        def on_output(sid, stream, data):
            out[sid] = out.get(sid, 0) + len(data)
        def on_exited(sid, code, sig):
            done[sid] = (code, sig)
        iface.on_output(on_output)
        iface.on_exited(on_exited)
        version = await iface.get_version()
        sid, pid = await iface.call_exec(['head', '-c', str(8 << 20), '/dev/zero'], {})
        for _ in range(200):
            if sid in done:
                break
            await asyncio.sleep(0.05)
        text = await iface.call_run_text(['echo', 'hi'], {})
        print(json.dumps({'version': version, 'exited': done.get(sid), 'bytes': out.get(sid, 0),
                          'runtext': [text[0], text[2]], 'logged': logged}))
    asyncio.run(main())
''')

GDBUS = textwrap.dedent(r'''
    import json, sys
    from gi.repository import Gio, GLib
    conn = Gio.DBusConnection.new_for_address_sync(
        sys.argv[1], Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT, None, None)
    # On a connection that is not to a message bus, a proxy has no name.
    proxy = Gio.DBusProxy.new_sync(conn, Gio.DBusProxyFlags.NONE, None, None,
                                   '/org/example/Sandbox1', 'org.example.Sandbox1', None)
    loop = GLib.MainLoop()
    got = {'bytes': 0, 'exited': None}
    def on_signal(p, sender, name, params):
        if name == 'Output':
            got['bytes'] += len(params[2])
        elif name == 'Exited':
            got['exited'] = [params[1], params[2]]
            loop.quit()
    proxy.connect('g-signal', on_signal)
    sid, pid = proxy.call_sync('Exec', GLib.Variant('(asa{sv})', (['sh', '-c', 'echo hello; exit 3'], {})),
                               Gio.DBusCallFlags.NONE, 5000, None)
    GLib.timeout_add(5000, loop.quit)
    loop.run()
    text = proxy.call_sync('RunText', GLib.Variant('(asa{sv})', (['echo', 'x'], {})),
                           Gio.DBusCallFlags.NONE, 5000, None)
    version = proxy.get_cached_property('Version')
    print(json.dumps({'exited': got['exited'], 'bytes': got['bytes'], 'runtext': [text[0], text[2]],
                      'version': version.unpack() if version else None}))
''')


def run_script(script, address):
    r = subprocess.run([PY, '-c', script, address], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_dbus_next_proxy(p2p_harness):
    """dbus-next's proxy works on the socket with nothing logged: GetNameOwner is answered, and
    signals (8 MiB of Output, spliced ones included) carry the name as their sender."""
    pytest.importorskip('dbus_next')
    p2p_harness.start()
    res = run_script(DBUS_NEXT, p2p_harness.address)
    assert res['logged'] == [], res['logged']
    assert res['version'] == '0.1'
    assert res['exited'] == [0, 0] and res['bytes'] == 8 << 20, res
    assert res['runtext'] == [0, 'hi\n']


def test_gdbus_proxy(p2p_harness):
    pytest.importorskip('gi')
    p2p_harness.start()
    res = run_script(GDBUS, p2p_harness.address)
    assert res['exited'] == [3, 0] and res['bytes'] == 6, res
    assert res['runtext'] == [0, 'x\n']
    assert res['version'] == '0.1'


def test_driver_calls(p2p_harness):
    """What libraries ask the bus driver first, answered as a bus would."""
    c = p2p_harness.client()
    dbus = c.conn.dbus
    assert dbus('GetNameOwner', 's', ('org.example.Sandbox1',)) == ('org.example.Sandbox1',)
    assert dbus('NameHasOwner', 's', ('org.example.Sandbox1',)) == (True,)
    assert dbus('NameHasOwner', 's', ('org.example.Other',)) == (False,)
    assert set(dbus('ListNames')[0]) == {'org.freedesktop.DBus', 'org.example.Sandbox1'}
    assert dbus('StartServiceByName', 'su', ('org.example.Sandbox1', 0)) == (2,)
    assert len(dbus('GetId')[0]) == 32
    from sandbox_client import DBusError
    with pytest.raises(DBusError) as e:
        dbus('GetNameOwner', 's', ('org.example.Other',))
    assert e.value.name == 'org.freedesktop.DBus.Error.NameHasNoOwner'
