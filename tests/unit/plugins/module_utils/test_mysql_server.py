# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of module_utils/mysql_server.py."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pymysql
import pytest

from ansible_collections.distweb.infra.plugins.module_utils import mysql_connection
from ansible_collections.distweb.infra.plugins.module_utils import mysql_dialect
from ansible_collections.distweb.infra.plugins.module_utils import mysql_server


# ---------------------------------------------------------------------------
# Status normalisation
# ---------------------------------------------------------------------------

def test_normalize_mariadb_status(status_rows):
    maria_row, dummy = status_rows
    s = mysql_server.normalize_replica_status(maria_row(), 'mariadb', '1.000')
    assert set(s) == set(mysql_server.STATUS_KEYS)
    assert s['configured'] is True
    assert s['flavor'] == 'mariadb'
    assert (s['source_host'], s['source_port'], s['source_user']) == ('server1', 3306, 'repl')
    assert s['io_running'] is True and s['sql_running'] is True
    assert s['io_thread'] == 'Yes' and s['sql_thread'] == 'Yes'
    assert s['using_gtid'] == 'slave_pos' and s['auto_position'] is True
    assert s['gtid_io_pos'] == '0-1-42'
    assert s['executed_gtid_set'] is None
    assert s['heartbeat_period'] == 1.0
    assert s['connect_retry'] == 10
    assert s['sql_delay'] == 0
    assert s['ssl'] is False and s['ssl_verify_server_cert'] is False
    assert s['ssl_ca'] == ''
    assert s['last_io_errno'] == 0 and s['last_io_error'] == ''
    assert s['seconds_behind'] == 0
    assert s['source_server_id'] == 1
    assert s['source_log_file'] == 'mysql-bin.000003'
    assert s['exec_source_log_pos'] == 1234


def test_normalize_mysql_status(status_rows):
    dummy, mysql_row = status_rows
    s = mysql_server.normalize_replica_status(mysql_row(Source_SSL_Allowed='Yes', Source_SSL_CA_File='/ca.pem',
                                                        Source_SSL_Verify_Server_Cert='Yes'), 'mysql', 2.5)
    assert set(s) == set(mysql_server.STATUS_KEYS)
    assert (s['source_host'], s['source_port'], s['source_user']) == ('server1', 3306, 'repl')
    assert s['io_running'] and s['sql_running']
    assert s['using_gtid'] == 'auto_position' and s['auto_position'] is True
    assert s['gtid_io_pos'] == '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5'
    assert s['executed_gtid_set'] == '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5'
    assert s['heartbeat_period'] == 2.5
    assert s['ssl'] is True and s['ssl_verify_server_cert'] is True and s['ssl_ca'] == '/ca.pem'


def test_normalize_same_keys_for_both_flavors(status_rows):
    maria_row, mysql_row = status_rows
    maria = mysql_server.normalize_replica_status(maria_row(), 'mariadb', 1)
    mysql = mysql_server.normalize_replica_status(mysql_row(), 'mysql', 1)
    assert set(maria) == set(mysql)
    for key in ('source_host', 'source_port', 'source_user', 'io_running', 'sql_running', 'auto_position',
                'connect_retry', 'heartbeat_period', 'sql_delay', 'ssl', 'last_io_errno', 'seconds_behind'):
        assert maria[key] == mysql[key], key


def test_normalize_broken_replica(status_rows):
    maria_row, dummy = status_rows
    row = maria_row(Slave_IO_Running='Connecting', Slave_SQL_Running='No', Last_IO_Errno=1045,
                    Last_IO_Error="error connecting to master 'repl@server1:3306' - retry-time: 10  maximum-retries: "
                                  "100000  message: Access denied for user 'repl'@'server2' (using password: YES)",
                    Last_SQL_Errno=1062, Last_SQL_Error='Duplicate entry', Seconds_Behind_Master=None,
                    Using_Gtid='Current_Pos')
    s = mysql_server.normalize_replica_status(row, 'mariadb')
    assert s['io_running'] is False and s['io_thread'] == 'Connecting'
    assert s['sql_running'] is False
    assert s['last_io_errno'] == 1045 and 'Access denied' in s['last_io_error']
    assert s['last_sql_errno'] == 1062
    assert s['seconds_behind'] is None
    assert s['using_gtid'] == 'current_pos'
    assert s['heartbeat_period'] is None
    assert not mysql_server.threads_stopped(s) and not mysql_server.threads_started(s)


def test_normalize_handles_bytes_and_strings(status_rows):
    dummy, mysql_row = status_rows
    row = mysql_row(Source_Host=b'server1', Source_Port='3307', Auto_Position='0', Last_IO_Errno='2003')
    s = mysql_server.normalize_replica_status(row, 'mysql')
    assert s['source_host'] == 'server1' and s['source_port'] == 3307
    assert s['using_gtid'] == 'no' and s['auto_position'] is False
    assert s['last_io_errno'] == 2003


def test_normalize_no_replica():
    s = mysql_server.normalize_replica_status(None, 'mariadb')
    assert set(s) == set(mysql_server.STATUS_KEYS)
    assert s['configured'] is False and s['io_running'] is False and s['sql_running'] is False
    assert mysql_server.threads_stopped(s)


def test_heartbeat_from_show_all_slaves_row(status_rows):
    maria_row, dummy = status_rows
    s = mysql_server.normalize_replica_status(maria_row(Slave_heartbeat_period='5.000'), 'mariadb')
    assert s['heartbeat_period'] == 5.0


def _wanted(**overrides):
    wanted = dict(source_host='server1', source_port=3306, source_user='repl', source_password='fake-pw',
                  using_gtid='slave_pos', heartbeat_period=1.0, connect_retry=10, sql_delay=0, ssl=False,
                  ssl_ca=None, ssl_cert=None, ssl_key=None, ssl_verify_server_cert=False)
    wanted.update(overrides)
    return wanted


def test_compare_matches(status_rows):
    maria_row, dummy = status_rows
    status = mysql_server.normalize_replica_status(maria_row(), 'mariadb', '1.000')
    assert mysql_server.compare_replica_settings(status, _wanted()) == []
    # host names compare case-insensitively, heartbeats to the millisecond
    assert mysql_server.compare_replica_settings(status, _wanted(source_host='SERVER1', heartbeat_period=1.0004)) == []


@pytest.mark.parametrize('override, key', [
    (dict(source_host='server3'), 'source_host'),
    (dict(source_port=3307), 'source_port'),
    (dict(source_user='repl2'), 'source_user'),
    (dict(using_gtid='current_pos'), 'using_gtid'),
    (dict(heartbeat_period=2.0), 'heartbeat_period'),
    (dict(connect_retry=5), 'connect_retry'),
    (dict(sql_delay=3600), 'sql_delay'),
    (dict(ssl=True), 'ssl'),
    (dict(ssl_ca='/etc/ca.pem'), 'ssl_ca'),
    (dict(ssl_verify_server_cert=True), 'ssl_verify_server_cert'),
])
def test_compare_reports_each_difference(status_rows, override, key):
    maria_row, dummy = status_rows
    status = mysql_server.normalize_replica_status(maria_row(), 'mariadb', 1)
    assert mysql_server.compare_replica_settings(status, _wanted(**override)) == [key]


def test_compare_ignores_password_unmanaged_and_unknown(status_rows):
    maria_row, dummy = status_rows
    status = mysql_server.normalize_replica_status(maria_row(), 'mariadb', None)  # heartbeat unknown
    assert mysql_server.compare_replica_settings(status, _wanted(source_password='other', heartbeat_period=9.0)) == []
    assert mysql_server.compare_replica_settings(status, _wanted(ssl_ca=None, ssl_cert=None)) == []
    # an empty string is a wanted value: clear the CA
    status['ssl_ca'] = '/old/ca.pem'
    assert mysql_server.compare_replica_settings(status, _wanted(ssl_ca='')) == ['ssl_ca']


def test_compare_unconfigured_wants_everything():
    status = mysql_server.normalize_replica_status(None, 'mariadb')
    differ = mysql_server.compare_replica_settings(status, _wanted(ssl_ca='/ca.pem'))
    assert 'source_password' not in differ
    assert differ == ['source_host', 'source_port', 'source_user', 'using_gtid', 'heartbeat_period',
                      'connect_retry', 'sql_delay', 'ssl', 'ssl_ca', 'ssl_verify_server_cert']


def test_compare_mysql_auto_position(status_rows):
    dummy, mysql_row = status_rows
    status = mysql_server.normalize_replica_status(mysql_row(), 'mysql', 1.0)
    d = mysql_dialect.dialect_for_version('8.0.36')
    assert mysql_server.compare_replica_settings(status, _wanted(using_gtid=d.gtid_mode('slave_pos'))) == []
    status = mysql_server.normalize_replica_status(mysql_row(Auto_Position=0), 'mysql', 1.0)
    assert mysql_server.compare_replica_settings(status, _wanted(using_gtid='auto_position')) == ['using_gtid']


@pytest.mark.parametrize('value, expected', [(1, True), (0, False), ('ON', True), ('OFF', False), ('1', True),
                                             (b'0', False), (None, False), ('NO_LOCK', True)])
def test_is_on(value, expected):
    assert mysql_server.is_on(value) is expected


# ---------------------------------------------------------------------------
# MySQLServer against the fake server
# ---------------------------------------------------------------------------

def _server(fake_net, fake):
    fake_net.add(fake, socket='/sock')
    conn = fake_net.connect(unix_socket='/sock')
    conn.connect()
    return mysql_server.MySQLServer(conn, 'the local server')


def test_server_status_mariadb(fake_net, make_server, status_rows):
    maria_row, dummy = status_rows
    fake = make_server('mariadb', status=maria_row(), heartbeat=1.0)
    server = _server(fake_net, fake)
    assert server.dialect.flavor == 'mariadb'
    status = server.replica_status()
    assert status['heartbeat_period'] == 1.0 and status['configured']
    sent = [sql for sql, dummy in fake.executed]
    assert sent == ['SELECT VERSION() AS version', 'SHOW SLAVE STATUS',
                    "SHOW GLOBAL STATUS LIKE 'Slave_heartbeat_period'"]


@pytest.mark.parametrize('version', ['8.0.23', '8.4.0'])
def test_server_status_mysql(fake_net, make_server, status_rows, version):
    dummy, mysql_row = status_rows
    fake = make_server('mysql', version=version, status=mysql_row(), heartbeat=2.0)
    server = _server(fake_net, fake)
    status = server.replica_status()
    assert status['heartbeat_period'] == 2.0 and status['using_gtid'] == 'auto_position'
    sent = [sql for sql, dummy in fake.executed]
    assert sent[1] == 'SHOW REPLICA STATUS'
    assert sent[2].startswith('SELECT HEARTBEAT_INTERVAL FROM performance_schema')


def test_server_status_not_a_replica(fake_net, make_server):
    server = _server(fake_net, make_server('mariadb'))
    assert server.replica_status()['configured'] is False


def test_server_status_picks_default_channel(fake_net, make_server, status_rows):
    dummy, mysql_row = status_rows
    fake = make_server('mysql', status=mysql_row())

    rows = [mysql_row(Channel_Name='other', Source_Host='elsewhere'), mysql_row()]
    server = _server(fake_net, fake)
    server.query = lambda sql, params=None: rows if 'STATUS' in sql else [{'HEARTBEAT_INTERVAL': 1}]
    server._dialect = mysql_dialect.dialect_for_version('8.0.36')
    assert server.replica_status()['source_host'] == 'server1'


def test_heartbeat_query_error_is_unknown(fake_net, make_server, status_rows):
    maria_row, dummy = status_rows
    fake = make_server('mariadb', status=maria_row())
    fake.errors[r'Slave_heartbeat_period'] = pymysql.err.OperationalError(1227, 'Access denied; you need PROCESS')
    server = _server(fake_net, fake)
    assert server.replica_status()['heartbeat_period'] is None


@pytest.mark.parametrize('flavor, read_only, expected', [('mariadb', True, True), ('mariadb', False, False),
                                                         ('mysql', True, True), ('mysql', False, False)])
def test_server_info(fake_net, make_server, flavor, read_only, expected):
    server = _server(fake_net, make_server(flavor, server_id=7, hostname='db7', read_only=read_only))
    info = server.server_info()
    assert info['server_id'] == 7 and info['hostname'] == 'db7' and info['port'] == 3306
    assert info['read_only'] is expected
    assert info['flavor'] == flavor
    assert ('server_uuid' in info) is (flavor == 'mysql')


def test_server_unsupported_version(fake_net, make_server):
    server = _server(fake_net, make_server('mariadb', version='10.5.9-MariaDB'))
    with pytest.raises(mysql_dialect.UnsupportedServerError):
        server.dialect  # pylint: disable=pointless-statement


def test_execute_passes_parameters(fake_net, make_server):
    fake = make_server('mariadb')
    server = _server(fake_net, fake)
    server.execute(server.dialect.change_source(dict(source_host='server1', source_password='fake-pw')))
    sql, params = fake.executed[-1]
    assert sql == 'CHANGE MASTER TO MASTER_HOST=%s, MASTER_PASSWORD=%s'
    assert params == ('server1', 'fake-pw')
    assert fake.password == 'fake-pw'


def test_query_errors_propagate(fake_net, make_server):
    fake = make_server('mariadb')
    fake.errors['STOP'] = pymysql.err.OperationalError(1227, 'Access denied; you need the SUPER privilege')
    server = _server(fake_net, fake)
    with pytest.raises(mysql_connection.MySQLError) as exc:
        server.execute(server.dialect.stop_replica())
    assert mysql_connection.format_mysql_error(exc.value) == 'Access denied; you need the SUPER privilege (error 1227)'
    assert mysql_connection.mysql_error_code(exc.value) == 1227


# ---------------------------------------------------------------------------
# Waiting for replication
# ---------------------------------------------------------------------------

class ScriptedServer(object):
    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.polls = 0

    def replica_status(self):
        self.polls += 1
        if len(self.statuses) > 1:
            return self.statuses.pop(0)
        return self.statuses[0]


def _st(status_rows, **overrides):
    maria_row, dummy = status_rows
    return mysql_server.normalize_replica_status(maria_row(**overrides), 'mariadb', 1)


def test_wait_running_at_once(status_rows, fake_clock):
    ok, status, message = mysql_server.wait_for_replica(ScriptedServer([_st(status_rows)]), 30)
    assert ok and message is None and status['io_running']
    assert fake_clock.sleeps == []


def test_wait_until_connected(status_rows, fake_clock):
    connecting = _st(status_rows, Slave_IO_Running='Connecting')
    server = ScriptedServer([connecting, connecting, _st(status_rows)])
    ok, dummy, message = mysql_server.wait_for_replica(server, 30)
    assert ok and message is None and server.polls == 3
    assert fake_clock.sleeps == [0.5, 0.5]


def test_wait_io_error_until_timeout(status_rows, fake_clock):
    failing = _st(status_rows, Slave_IO_Running='Connecting', Last_IO_Errno=2003,
                  Last_IO_Error="error connecting to master 'repl@server1:3306' - retry-time: 10  "
                                "message: Can't connect to MySQL server on 'server1' (111 \"Connection refused\")")
    ok, status, message = mysql_server.wait_for_replica(ScriptedServer([failing]), 5)
    assert not ok
    assert message.startswith('Replication failed: the IO thread has not connected to the primary within 5s: '
                              'error 2003: ')
    assert "Can't connect to MySQL server on 'server1'" in message
    assert sum(fake_clock.sleeps) == pytest.approx(5.0)
    assert status['last_io_errno'] == 2003


def test_wait_sql_error_fails_fast(status_rows, fake_clock):
    broken = _st(status_rows, Slave_SQL_Running='No', Last_SQL_Errno=1062,
                 Last_SQL_Error="Could not execute Write_rows_v1 event on table app.t; Duplicate entry '1'")
    ok, dummy, message = mysql_server.wait_for_replica(ScriptedServer([broken]), 300)
    assert not ok
    assert message == ("Replication failed: the SQL thread stopped with error 1062: Could not execute Write_rows_v1 "
                       "event on table app.t; Duplicate entry '1'")
    assert fake_clock.sleeps == [0.5]


def test_wait_io_thread_stopped_fails_fast(status_rows, fake_clock):
    broken = _st(status_rows, Slave_IO_Running='No', Last_IO_Errno=1236,
                 Last_IO_Error='Got fatal error 1236 from master when reading data from binary log')
    ok, dummy, message = mysql_server.wait_for_replica(ScriptedServer([broken]), 300)
    assert not ok and 'IO thread stopped with error 1236' in message
    assert len(fake_clock.sleeps) == 1


def test_wait_ignores_one_stale_error(status_rows, fake_clock):
    stale = _st(status_rows, Slave_SQL_Running='No', Last_SQL_Errno=1062, Last_SQL_Error='old')
    ok, dummy, dummy2 = mysql_server.wait_for_replica(ScriptedServer([stale, _st(status_rows)]), 30)
    assert ok


def test_wait_settle_catches_late_sql_failure(status_rows, fake_clock):
    running = _st(status_rows)
    broken = _st(status_rows, Slave_SQL_Running='No', Last_SQL_Errno=1062, Last_SQL_Error='Duplicate entry')
    server = ScriptedServer([running, broken, broken])
    ok, dummy, message = mysql_server.wait_for_replica(server, 30, settle=1.0)
    assert not ok and 'error 1062' in message


def test_wait_settle_accepts_stable_running(status_rows, fake_clock):
    server = ScriptedServer([_st(status_rows)])
    ok, dummy, dummy2 = mysql_server.wait_for_replica(server, 30, settle=1.0)
    assert ok and server.polls == 3
    assert sum(fake_clock.sleeps) == pytest.approx(1.0)


def test_wait_settle_never_beyond_timeout(status_rows, fake_clock):
    server = ScriptedServer([_st(status_rows)])
    ok, dummy, dummy2 = mysql_server.wait_for_replica(server, 0, settle=1.0)
    assert ok and server.polls == 1


def test_wait_not_configured(fake_clock):
    ok, dummy, message = mysql_server.wait_for_replica(ScriptedServer([mysql_server.empty_replica_status('mariadb')]), 30)
    assert not ok and message == 'Replication failed: replication is not configured'
    assert fake_clock.sleeps == []


def test_wait_zero_timeout_polls_once(status_rows, fake_clock):
    connecting = _st(status_rows, Slave_IO_Running='Connecting')
    server = ScriptedServer([connecting])
    ok, dummy, message = mysql_server.wait_for_replica(server, 0)
    assert not ok and server.polls == 1
    assert 'IO thread: Connecting' in message


# ---------------------------------------------------------------------------
# Semi-sync membership
# ---------------------------------------------------------------------------

SEMI_MEMBER = dict(available=True, replica_enabled=True, source_enabled=False)


@pytest.mark.parametrize('semi, member', [
    (None, False), ({}, False),
    (SEMI_MEMBER, True),
    (dict(SEMI_MEMBER, source_enabled=True), True),
    (dict(SEMI_MEMBER, replica_enabled=False), False),
    (dict(SEMI_MEMBER, available=False), False),
])
def test_semi_sync_member(semi, member):
    assert mysql_server.semi_sync_member(semi) is member
