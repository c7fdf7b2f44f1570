# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.distweb.infra.plugins.module_utils import haproxy as h
from ansible_collections.distweb.infra.tests.unit.plugins.haproxy_fake import (
    BACKEND_ROW,
    FRONTEND_ROW,
    SERVER_ROW,
    SERVERS_STATE_HEADER,
    STAT_HEADER,
    FakeHAProxy,
    FakeServer,
    web_backend,
)


@pytest.fixture
def fake():
    proxy = FakeHAProxy()
    yield proxy
    proxy.close()


# ---------------------------------------------------------------------------
# Parsing what HAProxy 2.6 prints
# ---------------------------------------------------------------------------

def test_parse_stat_csv_of_haproxy_2_6():
    rows = h.parse_stat_csv('\n'.join([STAT_HEADER, FRONTEND_ROW, SERVER_ROW, BACKEND_ROW]) + '\n\n')
    assert [(r['pxname'], r['svname'], r['type']) for r in rows] == [
        ('www', 'FRONTEND', '0'), ('web', 'server1', '2'), ('web', 'BACKEND', '1')]
    server = rows[1]
    assert server['status'] == 'UP' and server['scur'] == '0' and server['qcur'] == '0'
    assert server['throttle'] == '63' and server['check_status'] == 'L7OK'
    assert server['addr'] == '127.0.0.1:8001' and server['check_desc'] == 'Layer7 check passed'
    assert '-' not in server and '' not in server


@pytest.mark.parametrize('text', ['', 'Unknown command\n', 'No such proxy.\n\n'])
def test_parse_stat_csv_refuses_anything_else(text):
    with pytest.raises(ValueError):
        h.parse_stat_csv(text)


def test_parse_servers_state():
    text = '1\n%s\n3 web 1 server1 127.0.0.1 2 8 1 1 9 15 3 3 6 0 0 0 - 8001 - 0 0 - - 0\n\n' % SERVERS_STATE_HEADER
    rows = h.parse_servers_state(text)
    assert len(rows) == 1
    assert rows[0]['be_name'] == 'web' and rows[0]['srv_name'] == 'server1'
    assert rows[0]['srv_admin_state'] == '8' and rows[0]['srv_op_state'] == '2'
    with pytest.raises(ValueError):
        h.parse_servers_state("Can't find backend.\n\n")


@pytest.mark.parametrize('flags,state,names', [
    (0, 'ready', []),
    (8, 'drain', ['FDRAIN']),
    (1, 'maint', ['FMAINT']),
    (5, 'maint', ['FMAINT', 'CMAINT']),     # "disabled" in the configuration
    (4, 'ready', ['CMAINT']),               # a disabled server set ready: the marker stays
    (0x10, 'ready', ['IDRAIN']),            # inherited: not what set server changes
    (0x20, 'ready', ['RMAINT']),
    ('9', 'maint', ['FMAINT', 'FDRAIN']),
])
def test_admin_state(flags, state, names):
    assert h.admin_state(flags) == state
    assert h.admin_flag_names(flags) == names


@pytest.mark.parametrize('status,up', [
    ('UP', True), ('no check', True), ('UP (agent)', True),
    ('UP 1/3', False), ('DOWN 1/2', False), ('DOWN', False), ('DRAIN', False), ('NOLB', False),
    ('MAINT', False), ('MAINT (via web/server2)', False), ('MAINT (resolution)', False), ('', False), (None, False),
])
def test_status_is_up(status, up):
    assert h.status_is_up(status) is up


@pytest.mark.parametrize('name,ok', [('web', True), ('be_web-2.x:1', True), ('web;x', False),
                                     ('web x', False), ('web\nshow', False), ('', False)])
def test_valid_name(name, ok):
    assert h.valid_name(name) is ok


# ---------------------------------------------------------------------------
# The client against a fake HAProxy on a real UNIX socket
# ---------------------------------------------------------------------------

def test_backend_servers(fake):
    web_backend(fake)
    fake.server('web', 'server2').admin = 8
    fake.server('web', 'server2').sessions = 3
    fake.server('web', 'server3').healthy = False
    fake.add_backend('other', FakeServer('o1', 9001, check=False))
    api = h.RuntimeAPI(fake.path)
    servers = api.backend_servers('web')
    assert [s['name'] for s in servers] == ['server1', 'server2', 'server3']
    assert [s['status'] for s in servers] == ['UP', 'DRAIN', 'DOWN']
    assert [s['admin_state'] for s in servers] == ['ready', 'drain', 'ready']
    assert servers[1]['sessions'] == 3 and servers[1]['queue'] == 0
    assert servers[1]['admin_flag_names'] == ['FDRAIN']
    assert servers[2]['check_status'] == 'L4CON' and servers[2]['op_state'] == 'stopped'
    assert api.backends() == ['web', 'other']
    assert api.backend_servers('other')[0]['status'] == 'no check'
    assert fake.commands[:2] == ['show stat', 'show servers state web']


def test_unknown_backend_lists_the_known_ones(fake):
    web_backend(fake)
    with pytest.raises(h.HAProxyError) as caught:
        h.RuntimeAPI(fake.path).backend_servers('webx')
    assert 'no backend "webx"' in str(caught.value) and 'its backends: web' in str(caught.value)
    assert caught.value.known == ['web']


def test_set_server_state(fake):
    web_backend(fake)
    api = h.RuntimeAPI(fake.path)
    assert api.set_server_state('web', 'server1', 'drain') == 'set server web/server1 state drain'
    assert fake.server('web', 'server1').admin == 8
    with pytest.raises(h.HAProxyError) as caught:
        api.set_server_state('web', 'nope', 'maint')
    assert 'refused "set server web/nope state maint": No such server.' in str(caught.value)
    with pytest.raises(ValueError):
        api.set_server_state('web', 'server1;shutdown sessions server web/server2', 'maint')
    with pytest.raises(ValueError):
        api.set_server_state('web', 'server1', 'stopped')


def test_a_socket_of_level_user_is_refused_with_a_hint():
    fake = FakeHAProxy(level='user')
    try:
        web_backend(fake)
        with pytest.raises(h.HAProxyError) as caught:
            h.RuntimeAPI(fake.path).set_server_state('web', 'server1', 'maint')
        assert 'Permission denied' in str(caught.value) and 'level admin' in str(caught.value)
    finally:
        fake.close()


def test_missing_socket(tmp_path):
    path = str(tmp_path / 'admin.sock')
    with pytest.raises(h.HAProxyError) as caught:
        h.RuntimeAPI(path).command('show stat')
    assert path in str(caught.value) and 'does not exist' in str(caught.value)
    assert caught.value.socket == path


def test_socket_nobody_listens_on():
    """A socket file left behind by a stopped HAProxy."""
    import shutil
    import socket
    import tempfile
    directory = tempfile.mkdtemp(prefix='hpx')
    path = os.path.join(directory, 'admin.sock')
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stale.bind(path)
        stale.close()
        with pytest.raises(h.HAProxyError) as caught:
            h.RuntimeAPI(path).command('show stat')
        assert 'connection refused' in str(caught.value) and path in str(caught.value)
    finally:
        shutil.rmtree(directory)


def as_unprivileged(call):
    """``call()`` as a user the socket's permissions apply to: run as root
    (which may open any socket, as in CI), in a forked child that has dropped
    to the user and group nobody. Returns ('returned', value) or
    (exception class name, message)."""
    if os.geteuid() != 0:
        try:
            return 'returned', call()
        except Exception as exc:  # pylint: disable=broad-except
            return type(exc).__name__, str(exc)
    import pickle
    import pwd
    try:
        nobody = pwd.getpwnam('nobody')
        uid, gid = nobody.pw_uid, nobody.pw_gid
    except KeyError:
        uid = gid = 65534
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        outcome = ('ChildFailed', 'the child did not report')
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            assert os.geteuid() == uid and os.getegid() == gid
            try:
                outcome = ('returned', call())
            except Exception as exc:  # pylint: disable=broad-except
                outcome = (type(exc).__name__, str(exc))
        finally:
            os.write(write_end, pickle.dumps(outcome))
            os._exit(0)  # pylint: disable=protected-access
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    dummy, status = os.waitpid(pid, 0)
    assert status == 0
    return pickle.loads(b''.join(chunks))


def test_socket_without_permission(fake):
    web_backend(fake)
    # anyone may reach the socket's directory; the socket itself is the owner's, read only
    os.chmod(fake.dir, 0o755)
    os.chmod(fake.path, stat.S_IRUSR)
    kind, message = as_unprivileged(lambda: h.RuntimeAPI(fake.path).command('show stat'))
    assert kind == 'HAProxyError', (kind, message)
    assert 'permission denied' in message and fake.path in message
    assert fake.commands == []
    # the same user, allowed to write to the socket, gets the answer
    os.chmod(fake.path, 0o777)
    kind, reply = as_unprivileged(lambda: h.RuntimeAPI(fake.path).command('show stat'))
    assert kind == 'returned', (kind, reply)
    assert reply.startswith('# pxname,svname') and fake.commands == ['show stat']


def test_socket_permission_error_message(monkeypatch, tmp_path):
    """Root can open any socket, so the EACCES of connect() is faked."""
    import errno
    import socket

    class Refusing(object):
        def __init__(self, *args):
            pass

        def settimeout(self, timeout):
            pass

        def connect(self, path):
            raise OSError(errno.EACCES, 'Permission denied')

        def close(self):
            pass

    monkeypatch.setattr(h.socket, 'socket', Refusing)
    assert socket.socket is Refusing  # the same module object: undone by monkeypatch
    with pytest.raises(h.HAProxyError) as caught:
        h.RuntimeAPI('/run/haproxy/admin.sock').command('show stat')
    assert str(caught.value).startswith('Cannot connect to the HAProxy admin socket /run/haproxy/admin.sock: '
                                        'permission denied')
    assert 'become' in str(caught.value)


def test_an_error_reply_to_show_stat(fake):
    fake.replies['show stat'] = 'Permission denied\n\n'
    with pytest.raises(h.HAProxyError) as caught:
        h.RuntimeAPI(fake.path).show_stat()
    assert 'refused "show stat": Permission denied' in str(caught.value)


def test_multi_line_commands_are_refused(fake):
    with pytest.raises(ValueError):
        h.RuntimeAPI(fake.path).command('show stat\nshutdown frontend www')
    assert fake.commands == []
