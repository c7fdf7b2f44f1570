# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A hung server costs no more than a dead one: against a real TCP listener
on loopback that accepts connections and never sends the MySQL greeting (a
paused server), the login gives up after connect_timeout, not after the
longer read timeout meant for statements; a server that does answer is
still heard."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import socket
import struct
import threading
import time

import pytest

from ansible_collections.distweb.infra.plugins.module_utils import mysql_connection


class Listener:
    """A TCP server on 127.0.0.1 that accepts every connection and either
    says nothing (``greet=False``) or sends a MySQL protocol error packet as
    its greeting, as a server refusing the host does (``greet=True``)."""

    def __init__(self, greet):
        self.greet = greet
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            try:
                conn, dummy = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)
            if self.greet:
                body = b'\xff' + struct.pack('<H', 1130) + b'Host is not allowed to connect'
                conn.sendall(struct.pack('<I', len(body))[:3] + b'\x00' + body)

    def close(self):
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent():
    listener = Listener(greet=False)
    yield listener
    listener.close()


def login(port, connect_timeout, read_timeout):
    params = dict(user='admin', password='x', host='127.0.0.1', port=port,
                  connect_timeout=connect_timeout, read_timeout=read_timeout, write_timeout=read_timeout)
    started = time.monotonic()
    result = mysql_connection.mysql_connect_node(params, what='server1')
    return result, time.monotonic() - started


def test_a_server_that_never_greets_is_given_up_after_the_connect_timeout(silent):
    (conn, message, code), took = login(silent.port, connect_timeout=1, read_timeout=60)
    assert conn is None
    assert silent.accepted, 'the listener did not accept the connection'
    assert code is not None and 2000 <= code < 3000 and mysql_connection.is_connection_error(
        mysql_connection.pymysql.err.OperationalError(code, message)), (code, message)
    assert message.startswith('Unable to connect to server1 (127.0.0.1:%d)' % silent.port), message
    # Not a speed limit: which of the two timeouts ended the wait (1 s
    # against 60 s), with a margin no loaded machine reaches.
    assert took < 30, 'the login waited for the read timeout (%.1f s), not the connect timeout' % took


def test_the_servers_own_answer_is_still_read():
    listener = Listener(greet=True)
    try:
        (conn, message, code), dummy = login(listener.port, connect_timeout=5, read_timeout=60)
    finally:
        listener.close()
    assert conn is None and code == 1130, (code, message)
    assert 'Host is not allowed to connect' in message
