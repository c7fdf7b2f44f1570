# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of module_utils/mysql_dialect.py."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pymysql
import pytest

from ansible_collections.distweb.infra.plugins.module_utils import mysql_dialect


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
# The semi-sync source side (switched with the primary role)
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
