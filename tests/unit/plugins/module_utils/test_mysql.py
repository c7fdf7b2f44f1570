# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import ssl

import pymysql
import pytest
import yaml

from ansible_collections.distweb.infra.plugins.doc_fragments.mysql_login import ModuleDocFragment
from ansible_collections.distweb.infra.plugins.module_utils import mysql_connection
from ansible_collections.distweb.infra.plugins.module_utils import mysql_dialect
from ansible_collections.distweb.infra.plugins.module_utils import mysql_server
from ansible_collections.distweb.infra.plugins.module_utils import mysql_cluster


# ---------------------------------------------------------------------------
# Argument spec and doc fragment
# ---------------------------------------------------------------------------

def test_common_argument_spec_matches_doc_fragment():
    spec = mysql_connection.mysql_common_argument_spec()
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    assert set(spec) == set(doc)
    for name, option in spec.items():
        assert doc[name]['type'] == option['type'], name
        assert doc[name].get('default') == option.get('default'), name
    assert spec['login_password']['no_log'] is True
    assert set(spec) == {'login_user', 'login_password', 'login_host', 'login_port', 'login_unix_socket',
                         'config_file', 'connect_timeout', 'login_ssl_ca', 'login_ssl_cert', 'login_ssl_key'}


def test_argument_spec_is_a_fresh_copy():
    first = mysql_connection.mysql_common_argument_spec()
    first['login_port']['default'] = 1
    assert mysql_connection.mysql_common_argument_spec()['login_port']['default'] == 3306


# ---------------------------------------------------------------------------
# Flavor and version
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('version, cls', [
    ('10.6.16-MariaDB-log', mysql_dialect.MariaDBDialect),
    ('10.11.6-MariaDB-0+deb12u1-log', mysql_dialect.MariaDBDialect),
    ('11.4.2-MariaDB-ubu2404', mysql_dialect.MariaDBDialect),
    ('8.0.23', mysql_dialect.MySQLDialect),
    ('8.0.36-0ubuntu0.22.04.1', mysql_dialect.MySQLDialect),
    ('8.3.0', mysql_dialect.MySQLDialect),
    ('8.4.0', mysql_dialect.MySQL84Dialect),
    ('8.4.3-commercial', mysql_dialect.MySQL84Dialect),
    ('9.1.0', mysql_dialect.MySQL84Dialect),
])
def test_dialect_for_version(version, cls):
    dialect = mysql_dialect.dialect_for_version(version)
    assert type(dialect) is cls  # pylint: disable=unidiomatic-typecheck
    assert dialect.version_string == version


@pytest.mark.parametrize('version', ['10.5.23-MariaDB', '10.3.39-MariaDB-log', '8.0.22', '5.7.44-log', 'nonsense', ''])
def test_unsupported_versions(version):
    with pytest.raises(mysql_dialect.UnsupportedServerError):
        mysql_dialect.dialect_for_version(version)


def test_parse_version():
    assert mysql_dialect.parse_version('10.11.6-MariaDB-log') == (10, 11, 6)
    assert mysql_dialect.parse_version('8.4.0') == (8, 4, 0)


@pytest.mark.parametrize('version, start, stop, reset, status, binlog', [
    ('10.11.6-MariaDB', 'START SLAVE', 'STOP SLAVE', 'RESET SLAVE ALL', 'SHOW SLAVE STATUS', 'SHOW MASTER STATUS'),
    ('8.0.23', 'START REPLICA', 'STOP REPLICA', 'RESET REPLICA ALL', 'SHOW REPLICA STATUS', 'SHOW MASTER STATUS'),
    ('8.4.0', 'START REPLICA', 'STOP REPLICA', 'RESET REPLICA ALL', 'SHOW REPLICA STATUS', 'SHOW BINARY LOG STATUS'),
])
def test_simple_statements_per_flavor(version, start, stop, reset, status, binlog):
    d = mysql_dialect.dialect_for_version(version)
    assert d.start_replica().sql == start
    assert d.stop_replica().sql == stop
    assert d.reset_replica_all().sql == reset
    assert d.replica_status_sql == status
    assert d.binlog_status_sql == binlog
    assert d.start_replica().params is None


def test_flavor_specific_names():
    maria = mysql_dialect.dialect_for_version('10.11.6-MariaDB')
    mysql = mysql_dialect.dialect_for_version('8.0.36')
    assert maria.flavor == 'mariadb' and mysql.flavor == 'mysql'
    assert maria.semi_sync_source_prefix == 'rpl_semi_sync_master_'
    assert mysql.semi_sync_source_prefix == 'rpl_semi_sync_source_'
    assert 'MASTER_GTID_WAIT' in maria.wait_for_gtid_sql()
    assert 'WAIT_FOR_EXECUTED_GTID_SET' in mysql.wait_for_gtid_sql()
    assert '@@gtid_slave_pos' in maria.gtid_positions_sql()
    assert '@@gtid_executed' in mysql.gtid_positions_sql()
    assert 'server_uuid' not in maria.server_info_sql()
    assert 'server_uuid' in mysql.server_info_sql()
    assert maria.heartbeat_sql() == ("SHOW GLOBAL STATUS LIKE 'Slave_heartbeat_period'", 'Value')
    assert 'performance_schema.replication_connection_configuration' in mysql.heartbeat_sql()[0]


FULL_SETTINGS = dict(
    source_host='server1', source_port=3306, source_user='repl', source_password='fake-pw',
    using_gtid='slave_pos', heartbeat_period=1.0, connect_retry=10, sql_delay=0, ssl=True,
    ssl_ca='/etc/mysql/ssl/ca.pem', ssl_cert='/etc/mysql/ssl/replica.pem', ssl_key='/etc/mysql/ssl/replica.key',
    ssl_verify_server_cert=True,
)


def test_change_master_mariadb():
    d = mysql_dialect.dialect_for_version('10.11.6-MariaDB')
    st = d.change_source(FULL_SETTINGS)
    assert st.sql == (
        'CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USER=%s, MASTER_PASSWORD=%s, '
        'MASTER_USE_GTID=slave_pos, MASTER_HEARTBEAT_PERIOD=1.0, MASTER_CONNECT_RETRY=10, MASTER_DELAY=0, '
        'MASTER_SSL=1, MASTER_SSL_CA=%s, MASTER_SSL_CERT=%s, MASTER_SSL_KEY=%s, MASTER_SSL_VERIFY_SERVER_CERT=1')
    assert st.params == ('server1', 'repl', 'fake-pw', '/etc/mysql/ssl/ca.pem', '/etc/mysql/ssl/replica.pem',
                         '/etc/mysql/ssl/replica.key')
    assert st.display == (
        "CHANGE MASTER TO MASTER_HOST='server1', MASTER_PORT=3306, MASTER_USER='repl', "
        "MASTER_PASSWORD='********', MASTER_USE_GTID=slave_pos, MASTER_HEARTBEAT_PERIOD=1.0, "
        "MASTER_CONNECT_RETRY=10, MASTER_DELAY=0, MASTER_SSL=1, MASTER_SSL_CA='/etc/mysql/ssl/ca.pem', "
        "MASTER_SSL_CERT='/etc/mysql/ssl/replica.pem', MASTER_SSL_KEY='/etc/mysql/ssl/replica.key', "
        "MASTER_SSL_VERIFY_SERVER_CERT=1")
    assert 'fake-pw' not in st.display and 'fake-pw' not in st.sql
    assert str(st) == st.display


def test_change_master_mariadb_current_pos_and_partial():
    d = mysql_dialect.dialect_for_version('11.4.2-MariaDB')
    st = d.change_source(dict(using_gtid='current_pos', heartbeat_period=0.25, ssl=False, source_password=None))
    assert st.sql == 'CHANGE MASTER TO MASTER_USE_GTID=current_pos, MASTER_HEARTBEAT_PERIOD=0.25, MASTER_SSL=0'
    assert st.params is None


@pytest.mark.parametrize('version', ['8.0.23', '8.4.0'])
def test_change_replication_source_mysql(version):
    d = mysql_dialect.dialect_for_version(version)
    st = d.change_source(FULL_SETTINGS)
    assert st.sql == (
        'CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=3306, SOURCE_USER=%s, SOURCE_PASSWORD=%s, '
        'SOURCE_AUTO_POSITION=1, SOURCE_HEARTBEAT_PERIOD=1.0, SOURCE_CONNECT_RETRY=10, SOURCE_DELAY=0, '
        'SOURCE_SSL=1, SOURCE_SSL_CA=%s, SOURCE_SSL_CERT=%s, SOURCE_SSL_KEY=%s, SOURCE_SSL_VERIFY_SERVER_CERT=1')
    assert "SOURCE_PASSWORD='********'" in st.display
    assert d.gtid_mode('slave_pos') == 'auto_position'
    assert d.gtid_mode('current_pos') == 'auto_position'
    assert d.change_source(dict(using_gtid='no')).sql == 'CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION=0'


def test_change_source_values_are_parameters_not_sql():
    """A hostile value stays a parameter; PyMySQL escapes it into one literal."""
    d = mysql_dialect.dialect_for_version('10.11.6-MariaDB')
    hostile = "x', MASTER_PASSWORD='y"
    st = d.change_source(dict(source_host=hostile, source_port='3307'))
    assert st.sql == 'CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3307'
    assert st.params == (hostile,)
    conn = pymysql.connections.Connection(defer_connect=True)
    conn.server_status = 0
    rendered = st.sql % tuple(conn.escape(p) for p in st.params)
    assert rendered == "CHANGE MASTER TO MASTER_HOST='x\\', MASTER_PASSWORD=\\'y', MASTER_PORT=3307"
    assert st.display == "CHANGE MASTER TO MASTER_HOST='x\\', MASTER_PASSWORD=\\'y', MASTER_PORT=3307"


def test_change_source_rejects_bad_values():
    d = mysql_dialect.dialect_for_version('10.11.6-MariaDB')
    with pytest.raises(ValueError):
        d.change_source({})
    with pytest.raises(ValueError):
        d.change_source(dict(source_port='3306; DROP TABLE x'))
    with pytest.raises(ValueError):
        d.change_source(dict(using_gtid='slave_pos, MASTER_HOST=evil'))


@pytest.mark.parametrize('value, text', [(1.0, '1.0'), (1, '1.0'), (0.5, '0.5'), (2.25, '2.25'), (0, '0.0'),
                                         (30, '30.0'), (0.001, '0.001')])
def test_format_decimal(value, text):
    assert mysql_dialect.format_decimal(value) == text


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
# Connection helper
# ---------------------------------------------------------------------------

class FakeModule(object):
    def __init__(self, params=None):
        self.params = dict((k, v.get('default')) for k, v in mysql_connection.mysql_common_argument_spec().items())
        self.params.update(params or {})
        self.params['config_file'] = self.params['config_file'] if params and 'config_file' in params \
            else '/nonexistent/.my.cnf'

    def fail_json(self, **kwargs):
        raise RuntimeError(kwargs)


def _fail_args(excinfo):
    return excinfo.value.args[0]


def test_connect_socket(fake_net, make_server):
    fake_net.add(make_server('mariadb'), socket='/run/mysqld/mysqld.sock')
    conn = mysql_connection.mysql_connect(FakeModule(dict(login_unix_socket='/run/mysqld/mysqld.sock', login_user='root')))
    kwargs = fake_net.connects[-1]
    assert kwargs['unix_socket'] == '/run/mysqld/mysqld.sock'
    assert kwargs['user'] == 'root' and kwargs['password'] == ''
    assert kwargs['cursorclass'] is pymysql.cursors.DictCursor
    assert kwargs['autocommit'] is True
    assert kwargs['connect_timeout'] == 30
    assert 'read_default_file' not in kwargs and 'ssl' not in kwargs
    assert conn.server is not None


def test_connect_localhost_uses_default_socket(fake_net, make_server, monkeypatch):
    fake_net.add(make_server('mariadb'), socket='/var/run/mysqld/mysqld.sock')
    monkeypatch.setattr(mysql_connection, 'find_default_socket', lambda *a: '/var/run/mysqld/mysqld.sock')
    mysql_connection.mysql_connect(FakeModule())
    assert fake_net.connects[-1]['unix_socket'] == '/var/run/mysqld/mysqld.sock'


def test_connect_tcp_when_host_given(fake_net, make_server, monkeypatch):
    fake_net.add(make_server('mariadb'), host='127.0.0.1', port=3307)
    monkeypatch.setattr(mysql_connection, 'find_default_socket', lambda *a: '/var/run/mysqld/mysqld.sock')
    mysql_connection.mysql_connect(FakeModule(dict(login_host='127.0.0.1', login_port=3307, login_password='fake-pw')))
    kwargs = fake_net.connects[-1]
    assert kwargs['unix_socket'] is None and kwargs['host'] == '127.0.0.1' and kwargs['port'] == 3307
    assert kwargs['password'] == 'fake-pw'


def test_find_default_socket(tmp_path):
    sock = tmp_path / 'mysqld.sock'
    assert mysql_connection.find_default_socket((str(sock),)) is None
    sock.write_text('')
    assert mysql_connection.find_default_socket(('/nonexistent/sock', str(sock))) == str(sock)


def test_connect_config_file_only_if_it_exists(fake_net, make_server, tmp_path):
    fake_net.add(make_server('mariadb'), socket='/s')
    cnf = tmp_path / 'my.cnf'
    mysql_connection.mysql_connect(FakeModule(dict(login_unix_socket='/s', config_file=str(cnf))))
    assert 'read_default_file' not in fake_net.connects[-1]
    cnf.write_text('[client]\nuser=root\n')
    mysql_connection.mysql_connect(FakeModule(dict(login_unix_socket='/s', config_file=str(cnf))))
    assert fake_net.connects[-1]['read_default_file'] == str(cnf)


def test_connect_error_shows_server_message(fake_net, make_server):
    fake_net.add(make_server('mariadb'), socket='/s')
    fake_net.errors['/s'] = pymysql.err.OperationalError(
        1045, "Access denied for user 'root'@'localhost' (using password: NO)")
    with pytest.raises(RuntimeError) as excinfo:
        mysql_connection.mysql_connect(FakeModule(dict(login_unix_socket='/s')), what='the local server')
    failed = _fail_args(excinfo)
    assert failed['msg'] == ("Unable to connect to the local server (unix socket /s): Access denied for user "
                             "'root'@'localhost' (using password: NO) (error 1045)")
    assert failed['errno'] == 1045


def test_connect_unreachable(fake_net):
    with pytest.raises(RuntimeError) as excinfo:
        mysql_connection.mysql_connect(FakeModule(dict(login_host='db9')))
    assert "Can't connect to MySQL server on 'db9'" in _fail_args(excinfo)['msg']
    assert 'db9:3306' in _fail_args(excinfo)['msg']


def test_connect_without_pymysql(monkeypatch):
    monkeypatch.setattr(mysql_connection, 'HAS_PYMYSQL', False)
    with pytest.raises(RuntimeError) as excinfo:
        mysql_connection.mysql_connect(FakeModule())
    assert 'PyMySQL' in _fail_args(excinfo)['msg']


def test_connect_login_tls(fake_net, make_server, monkeypatch):
    fake_net.add(make_server('mariadb'), socket='/s')
    calls = []

    def fake_ctx(**kwargs):
        calls.append(kwargs)
        return 'CTX'

    monkeypatch.setattr(mysql_connection, 'build_ssl_context', fake_ctx)
    mysql_connection.mysql_connect(FakeModule(dict(login_unix_socket='/s', login_ssl_ca='/ca.pem', login_ssl_cert='/c.pem',
                                                   login_ssl_key='/c.key')))
    assert fake_net.connects[-1]['ssl'] == 'CTX'
    assert calls == [dict(ca='/ca.pem', cert='/c.pem', key='/c.key', verify_cert=True, verify_identity=False)]


def test_connect_primary_params_disable_tls(fake_net, make_server):
    fake_net.add(make_server('mariadb', server_id=1), host='server1')
    mysql_connection.mysql_connect(FakeModule(), dict(host='server1', port=3306, user='repl', password='fake-pw',
                                                      ssl=False, ssl_disabled=True, default_socket=False))
    kwargs = fake_net.connects[-1]
    assert kwargs['ssl_disabled'] is True and kwargs['host'] == 'server1'
    assert 'read_default_file' not in kwargs


def test_connect_bad_tls_files(fake_net):
    with pytest.raises(RuntimeError) as excinfo:
        mysql_connection.mysql_connect(FakeModule(dict(login_ssl_cert='/nonexistent/cert.pem')), what='the local server')
    assert _fail_args(excinfo)['msg'].startswith('Invalid TLS settings for the connection to the local server')


def test_build_ssl_context_modes():
    ctx = mysql_connection.build_ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE and ctx.check_hostname is False
    ctx = mysql_connection.build_ssl_context(verify_cert=True)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is False
    ctx = mysql_connection.build_ssl_context(verify_cert=True, verify_identity=True)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True


def test_format_mysql_error_variants():
    assert mysql_connection.format_mysql_error(pymysql.err.OperationalError(2003, "Can't connect")) == "Can't connect (error 2003)"
    assert mysql_connection.format_mysql_error(ValueError('bad')) == 'bad'
    assert mysql_connection.format_mysql_error(ValueError()) == 'ValueError'
    assert mysql_connection.mysql_error_code(ValueError('x')) is None


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
# The semi-sync source side follows the primary role
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('version, name', [
    ('10.11.6-MariaDB', 'rpl_semi_sync_master_enabled'),
    ('11.8.2-MariaDB', 'rpl_semi_sync_master_enabled'),
    ('8.0.36', 'rpl_semi_sync_source_enabled'),
    ('8.4.3', 'rpl_semi_sync_source_enabled'),
])
def test_set_semi_sync_source(version, name):
    dialect = mysql_dialect.dialect_for_version(version)
    assert dialect.set_semi_sync_source(True).sql == 'SET GLOBAL %s = ON' % name
    assert dialect.set_semi_sync_source(False).sql == 'SET GLOBAL %s = OFF' % name


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


class _Node(object):
    def __init__(self, version='10.11.6-MariaDB'):
        self.name = 'server2'
        self.dialect = mysql_dialect.dialect_for_version(version)


class _Module(object):
    params = {}


@pytest.mark.parametrize('semi, switched', [
    (SEMI_MEMBER, True),
    (dict(SEMI_MEMBER, source_enabled=True), False),  # on already
    (dict(SEMI_MEMBER, replica_enabled=False), False),  # not set up for semi-sync
    (None, False),  # unknown
])
def test_promote_statements(semi, switched):
    ops = mysql_cluster.ClusterOperations(_Module())
    sql = [s.sql for s in ops.promote_statements(_Node(), semi)]
    expected = ['STOP SLAVE', 'RESET SLAVE ALL'] + (['SET GLOBAL rpl_semi_sync_master_enabled = ON'] if switched
                                                    else []) + ['SET GLOBAL read_only = 0']
    assert sql == expected
    sql = [s.sql for s in ops.promote_statements(_Node('8.0.36'), semi)]
    # on before the node takes a write
    assert sql[-2:] == ['SET GLOBAL super_read_only = 0', 'SET GLOBAL read_only = 0']
    assert ('SET GLOBAL rpl_semi_sync_source_enabled = ON' in sql) is switched


@pytest.mark.parametrize('semi, retired', [
    (dict(SEMI_MEMBER, source_enabled=True), True),
    (dict(SEMI_MEMBER, source_enabled=True, replica_enabled=False), True),  # on, whatever else
    (SEMI_MEMBER, False),
    (None, False),
])
def test_retire_source_statements(semi, retired):
    ops = mysql_cluster.ClusterOperations(_Module())
    sql = [s.sql for s in ops.retire_source_statements(_Node(), semi)]
    assert sql == (['SET GLOBAL rpl_semi_sync_master_enabled = OFF'] if retired else [])
