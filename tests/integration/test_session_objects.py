# SPDX-License-Identifier: LGPL-2.1-or-later
"""Session objects (org.example.Sandbox1(5), "Session objects"): /org/example/Sandbox1/session/ID
with interface org.example.Sandbox1.Session, visible only to who may see the session, its
properties through a session's life, PropertiesChanged unicast to the owner, Wait, Kill,
Terminate, OpenPidfd, GetSession, and ended records kept for --retain-sec=. Every test runs on
dbus-daemon, dbus-broker and peer-to-peer unless it says otherwise."""

import array
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conftest import NOBODY_UID  # noqa: E402
from sandbox_client import (  # noqa: E402
    BUS_NAME, INTERFACE, OBJECT_PATH, DBusError, Connection, encode_options, pid_alive, wait_until)
from jeepney.low_level import HeaderFields, MessageType  # noqa: E402

SESSION_INTERFACE = 'org.example.Sandbox1.Session'
PROPS = 'org.freedesktop.DBus.Properties'
UNKNOWN_OBJECT = 'org.freedesktop.DBus.Error.UnknownObject'
NO_SUCH_SESSION = 'org.example.Sandbox1.Error.NoSuchSession'


def path_of(sid):
    return f'{OBJECT_PATH}/session/{sid}'


def props(c, sid):
    (d,) = c.conn.call(path_of(sid), PROPS, 'GetAll', 's', (SESSION_INTERFACE,), destination=BUS_NAME)
    return {k: v[1] for k, v in d.items()}


def scall(c, sid, member, signature=None, body=(), timeout=10.0):
    return c.conn.call(path_of(sid), SESSION_INTERFACE, member, signature, body, destination=BUS_NAME,
                       timeout=timeout)


def start(harness, *args):
    harness.start(*args)
    return harness.client()


def test_properties_through_a_sessions_life(harness):
    c = start(harness)
    sid, pid = c.exec(['sh', '-c', 'read x; echo "$x"; exit 3'], {'tag': 'my-job', 'cwd': '/tmp'})
    assert c._call('GetSession', 'u', (sid,))[0] == path_of(sid)
    p = props(c, sid)
    assert p['Id'] == sid and p['PID'] == pid and p['UID'] == 0 and p['GID'] == 0
    assert p['User'] == 'root' and p['Argv'] == ['sh', '-c', 'read x; echo "$x"; exit 3']
    assert p['Cwd'] == '/tmp' and p['TTY'] is False and p['Profile'] == 'default'
    assert p['Tag'] == 'my-job' and p['State'] == 'running' and p['EndReason'] == ''
    assert (p['ExitCode'], p['ExitSignal'], p['EndTimestamp']) == (-1, 0, 0)
    assert abs(p['StartTimestamp'] / 1e6 - time.time()) < 60
    assert p['Detachable'] is False and p['Detached'] is False and p['ControlGroup'] == ''
    assert p['CPUUsageNSec'] == p['MemoryPeak'] == p['TasksCurrent'] == 2 ** 64 - 1
    if harness.is_bus:
        assert p['Owner'] == c.conn.unique_name
    else:
        assert p['Owner'] == ''
    scall(c, sid, 'WriteStdin', 'ay', (b'hello\n',))
    r = c.collect(sid)
    assert r.code == 3 and r.stream(1) == b'hello\n'
    p = props(c, sid)
    assert p['State'] == 'ended' and p['EndReason'] == 'exited'
    assert (p['ExitCode'], p['ExitSignal']) == (3, 0) and p['EndTimestamp'] >= p['StartTimestamp']
    assert p['OutputOffset'] == 6
    # control methods on an ended record: NoSuchSession, as on the main object
    with pytest.raises(DBusError) as e:
        scall(c, sid, 'Signal', 'i', (15,))
    assert e.value.name == NO_SUCH_SESSION


def test_properties_changed_is_unicast_to_the_owner(harness):
    """The owner gets PropertiesChanged when its session ends; a second
    connection with a match rule for everything does not (on a bus)."""
    c = start(harness)
    spy = None
    if harness.is_bus:
        spy = Connection.open(harness.address, bus=True)
        spy.dbus('AddMatch', 's', ("type='signal'",))
    sid, _ = c.exec(['true'])
    c.collect(sid)
    deadline = time.monotonic() + 3
    changed = []
    while time.monotonic() < deadline and not changed:
        c.idle(0.2)
        changed = [m for m in c.other_signals
                   if m.header.fields.get(HeaderFields.member) == 'PropertiesChanged']
    assert changed, 'no PropertiesChanged to the owner'
    m = changed[0]
    assert m.header.fields.get(HeaderFields.path) == path_of(sid)
    iface, values, invalidated = m.body
    assert iface == SESSION_INTERFACE
    values = {k: v[1] for k, v in values.items()}
    assert values['State'] == 'ended' and values['EndReason'] == 'exited' and values['ExitCode'] == 0
    if harness.is_bus:
        assert m.header.fields.get(HeaderFields.destination) == c.conn.unique_name
        got = []
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            try:
                spy.pump(0.1)
            except TimeoutError:
                pass
            got += [x for _, x in spy.signals
                    if x.header.fields.get(HeaderFields.member) == 'PropertiesChanged']
            spy.signals.clear()
        assert not got, 'PropertiesChanged reached another connection'
        spy.close()


def test_wait_from_owner_and_another_connection(harness):
    c = start(harness)
    other = harness.client()
    sid, _ = c.exec(['sh', '-c', 'sleep 0.5; exit 4'])
    conns = [Connection.open(harness.address, bus=harness.is_bus) for _ in range(3)]
    serials = [k.send(k.make_call(path_of(sid), SESSION_INTERFACE, 'Wait', destination=BUS_NAME))
               for k in conns]
    t0 = time.monotonic()
    code, sig, reason, info = scall(other, sid, 'Wait', timeout=10)
    assert time.monotonic() - t0 > 0.2
    assert (code, sig, reason) == (4, 0, 'exited')
    assert info['id'][1] == sid and info['end-reason'][1] == 'exited'
    from test_reliability import _read_replies
    for k, s in zip(conns, serials):
        (reply,) = _read_replies(k, [s], 5).values()
        assert reply.body[:3] == (4, 0, 'exited')
        k.close()
    # at once on an ended record
    assert scall(c, sid, 'Wait')[:3] == (4, 0, 'exited')


def test_waits_are_bounded_per_connection(harness):
    c = start(harness)
    sid, _ = c.exec(['sleep', '30'])
    k = Connection.open(harness.address, bus=harness.is_bus)
    serials = [k.send(k.make_call(path_of(sid), SESSION_INTERFACE, 'Wait', destination=BUS_NAME))
               for _ in range(70)]
    from test_reliability import _read_replies, reply_error
    time.sleep(0.5)
    c.signal(sid, signal.SIGKILL)
    replies = _read_replies(k, serials, 10)
    assert len(replies) == 70
    errors = [reply_error(m) for m in replies.values()]
    assert errors.count('org.freedesktop.DBus.Error.LimitsExceeded') == 6, errors
    ok = [m for m in replies.values() if not reply_error(m)]
    assert len(ok) == 64 and all(m.body[2] == 'killed' for m in ok)
    k.close()


def test_kill_terminate_and_end_reasons(harness):
    c = start(harness)
    sid, pid = c.exec(['sleep', '30'])
    scall(c, sid, 'Kill', 'i', (signal.SIGKILL,))
    assert scall(c, sid, 'Wait')[:3] == (-1, signal.SIGKILL, 'killed')

    # Terminate: TERM, then KILL after the grace for one that ignores TERM
    sid, pid = c.exec(['sh', '-c', 'trap "" TERM; while :; do sleep 0.05; done'])
    time.sleep(0.2)
    t0 = time.monotonic()
    scall(c, sid, 'Terminate', 't', (500000,))
    code, sig, reason, _ = scall(c, sid, 'Wait', timeout=10)
    took = time.monotonic() - t0
    assert (sig, reason) == (signal.SIGKILL, 'killed') and 0.4 < took < 3, (sig, reason, took)
    # one that obeys TERM ends at once, with the same reason
    sid, pid = c.exec(['sleep', '30'])
    t0 = time.monotonic()
    scall(c, sid, 'Terminate', 't', (10_000_000,))
    assert scall(c, sid, 'Wait')[:3] == (-1, signal.SIGTERM, 'killed')
    assert time.monotonic() - t0 < 2


def test_open_pidfd(harness):
    harness.start()
    c = harness.client(enable_fds=True)
    sid, pid = c.exec(['sleep', '30'])
    (fd,) = scall(c, sid, 'OpenPidfd')
    fd = fd.to_raw_fd() if hasattr(fd, 'to_raw_fd') else fd
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)
    assert scall(c, sid, 'Wait')[:2] == (-1, signal.SIGKILL)


def test_open_pidfd_without_fd_passing_is_not_supported(p2p_harness):
    c = start(p2p_harness)
    sid, pid = c.exec(['sleep', '30'])
    with pytest.raises(DBusError) as e:
        scall(c, sid, 'OpenPidfd')
    assert e.value.name == 'org.freedesktop.DBus.Error.NotSupported'
    c.signal(sid, signal.SIGKILL)


def test_other_uids_see_no_object(harness):
    """Another uid gets UnknownObject for the path, NoSuchSession from
    GetSession, and no node in the tree; the owner sees it."""
    c = start(harness)
    sid, _ = c.exec(['sleep', '30'])
    res = harness.run_as([
        ['call', BUS_NAME, path_of(sid), PROPS, 'GetAll', 's', [SESSION_INTERFACE]],
        ['call', BUS_NAME, path_of(sid), SESSION_INTERFACE, 'Signal', 'i', [9]],
        ['call', BUS_NAME, f'{OBJECT_PATH}/session', 'org.freedesktop.DBus.Introspectable',
         'Introspect', '', []],
        ['call', BUS_NAME, OBJECT_PATH, INTERFACE, 'GetSession', 'u', [sid]],
    ])
    assert res[0].get('error') == UNKNOWN_OBJECT, res[0]
    assert res[1].get('error') == UNKNOWN_OBJECT, res[1]
    assert 'ok' in res[2] and f'name="{sid}"' not in str(res[2]['ok']), res[2]
    assert res[3].get('error') == NO_SUCH_SESSION, res[3]
    assert pid_alive(c.list_sessions()[0][1])
    intro = c.conn.call(f'{OBJECT_PATH}/session', 'org.freedesktop.DBus.Introspectable', 'Introspect',
                        destination=BUS_NAME)[0]
    assert f'<node name="{sid}"/>' in intro, intro
    c.signal(sid, signal.SIGKILL)


def test_ended_records_are_retained_then_dropped(harness):
    c = start(harness, '--retain-sec=1')
    sid, _ = c.exec(['true'])
    c.collect(sid)
    assert props(c, sid)['State'] == 'ended'
    assert c.list_sessions() == []
    assert wait_until(lambda: _gone(c, sid), 4)
    with pytest.raises(DBusError) as e:
        c._call('GetSession', 'u', (sid,))
    assert e.value.name == NO_SUCH_SESSION


def _gone(c, sid):
    try:
        props(c, sid)
        return False
    except DBusError as e:
        return e.name == UNKNOWN_OBJECT


def test_ended_records_are_bounded_per_uid(harness):
    """At most 64 ended records per owner uid: the oldest go first."""
    c = start(harness, '--retain-sec=600', '--max-sessions-per-user=1024')
    sids = []
    for _ in range(70):
        sid, _ = c.exec(['true'])
        c.collect(sid)
        sids.append(sid)
    kept = [s for s in sids if not _gone(c, s)]
    assert kept == sids[6:], (len(kept), kept[:3])


def test_records_outlive_their_owner(harness):
    c = start(harness)
    k = harness.client()
    sid, _ = k.exec(['true'])
    k.collect(sid)
    k.close()
    harness.clients.remove(k)
    time.sleep(0.3)
    p = props(c, sid)
    assert p['State'] == 'ended' and p['Owner'] == ''
    assert scall(c, sid, 'Wait')[2] == 'exited'


def test_waiter_is_told_when_the_owner_leaves(harness):
    """A connection waiting on another's session gets PropertiesChanged for
    Owner when the owner disconnects, then the Wait answer (owner-gone)."""
    c = start(harness)
    owner = harness.client()
    sid, pid = owner.exec(['sleep', '30'])
    k = Connection.open(harness.address, bus=harness.is_bus)
    serial = k.send(k.make_call(path_of(sid), SESSION_INTERFACE, 'Wait', destination=BUS_NAME))
    time.sleep(0.3)
    owner.close()
    harness.clients.remove(owner)
    deadline = time.monotonic() + 10
    while serial not in k.replies and time.monotonic() < deadline:
        k.pump(deadline - time.monotonic())
    reply = k.replies.pop(serial)[1]
    assert reply.body[:3] == (-1, signal.SIGHUP, 'owner-gone'), reply.body
    changed = [m.body[1] for _, m in k.signals if m.header.fields.get(HeaderFields.member) == 'PropertiesChanged']
    assert any('Owner' in d and d['Owner'][1] == '' for d in changed), changed
    assert any('State' in d and d['State'][1] == 'ended' for d in changed), changed
    k.close()


def test_bad_input_on_session_objects(harness):
    """Bad arguments name the field; paths that are not a session's id in its one decimal
    spelling are UnknownObject, never another session."""
    c = start(harness)
    sid, _ = c.exec(['sleep', '30'])
    for member, sig, body, field in (('Signal', 'i', (0,), "'signal'"), ('Kill', 'i', (65,), "'signal'"),
                                     ('Resize', 'qq', (0, 80), "'rows'")):
        with pytest.raises(DBusError) as e:
            scall(c, sid, member, sig, body)
        assert e.value.name == 'org.freedesktop.DBus.Error.InvalidArgs' and field in e.value.message, \
            (member, e.value.message)
    for tail in ('0', f'0{sid}', f'{sid}x', '4294967296', 'abc', f'{sid}/x'):
        with pytest.raises(DBusError) as e:
            c.conn.call(f'{OBJECT_PATH}/session/{tail}', PROPS, 'GetAll', 's', (SESSION_INTERFACE,),
                        destination=BUS_NAME)
        assert e.value.name == UNKNOWN_OBJECT, (tail, e.value.name)
    assert props(c, sid)['State'] == 'running'
    c.signal(sid, signal.SIGKILL)
