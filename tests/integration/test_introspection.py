# SPDX-License-Identifier: LGPL-2.1-or-later
"""The installed introspection data is what the daemon answers to Introspect."""

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def canonical(elem):
    """The interface as a comparable structure, attribute order and whitespace aside."""
    return (elem.tag, tuple(sorted(elem.attrib.items())), tuple(canonical(c) for c in elem))


def test_introspection_matches_file(p2p_harness):
    p2p_harness.client()
    out = subprocess.run(
        ['busctl', f'--address=unix:path={p2p_harness.io_socket}', 'introspect', '--xml-interface',
         'org.example.Sandbox1', '/org/example/Sandbox1'],
        check=True, capture_output=True, text=True, timeout=10).stdout
    live = ET.fromstring(out).find("interface[@name='org.example.Sandbox1']")
    installed = ET.parse(REPO / 'dbus' / 'org.example.Sandbox1.xml').getroot()
    assert live is not None, out
    assert [i.get('name') for i in installed.findall('interface')] == ['org.example.Sandbox1']
    assert canonical(installed.find('interface')) == canonical(live)
    # Every method and signal of the contract is there, with its signature.
    sig = {m.get('name'): ''.join(a.get('type') for a in m.findall('arg'))
           for m in live if m.tag in ('method', 'signal')}
    assert sig == {'Exec': 'asa{sv}uu', 'Run': 'asa{sv}iiayaya{sv}', 'RunText': 'asa{sv}iissa{sv}',
                   'GetSession': 'uo',
                   'Signal': 'ui', 'Resize': 'uqq', 'WriteStdin': 'uay',
                   'CloseStdin': 'u', 'Ack': 'ut', 'ListSessions': 'a(uusas)',
                   'Output': 'uuay', 'Exited': 'uii'}


def test_session_introspection_matches_file(p2p_harness):
    c = p2p_harness.client()
    sid, _ = c.exec(['sleep', '30'])
    out = subprocess.run(
        ['busctl', f'--address=unix:path={p2p_harness.io_socket}', 'introspect', '--xml-interface',
         'org.example.Sandbox1', f'/org/example/Sandbox1/session/{sid}'],
        check=True, capture_output=True, text=True, timeout=10).stdout
    live = ET.fromstring(out).find("interface[@name='org.example.Sandbox1.Session']")
    installed = ET.parse(REPO / 'dbus' / 'org.example.Sandbox1.Session.xml').getroot()
    assert live is not None, out
    assert canonical(installed.find('interface')) == canonical(live)
    sig = {m.get('name'): ''.join(a.get('type') for a in m.findall('arg'))
           for m in live if m.tag == 'method'}
    assert sig == {'Signal': 'i', 'Kill': 'i', 'Terminate': 't', 'Resize': 'qq', 'WriteStdin': 'ay',
                   'CloseStdin': '', 'Ack': 't', 'Wait': 'iisa{sv}', 'OpenPidfd': 'h'}
    c.signal(sid, 9)
