# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json

import pymysql
import pytest

from ansible_collections.distweb.infra.plugins.module_utils import mysql_connection
from ansible_collections.distweb.infra.plugins.modules import mysql_replication

SOCKET = '/run/mysqld/mysqld.sock'
READ_ONLY_SQL = ('SELECT', 'SHOW')


@pytest.fixture
def env(fake_net, fake_clock, make_server, status_rows, fake_password, run_main):
    """A replica (reached through SOCKET) and its primary (server1:3306)."""

    class Env(object):
        password = fake_password

        def __init__(self):
            self.maria_row, self.mysql_row = status_rows
            self.net = fake_net
            self.clock = fake_clock
            self.setup('mariadb')

        def setup(self, flavor, version=None, status='healthy', heartbeat=1.0):
            if status == 'healthy':
                status = self.maria_row() if flavor == 'mariadb' else self.mysql_row()
            self.local = make_server(flavor, version=version, server_id=2, hostname='server2', read_only=True,
                                     status=status, heartbeat=heartbeat if status else None)
            self.local.password = self.password if status else None
            self.primary = make_server(flavor, version=version, server_id=1, hostname='server1', read_only=False,
                                       users={'repl': self.password})
            self.net.servers.clear()
            self.net.add(self.local, socket=SOCKET)
            self.net.add(self.primary, host='server1', port=3306)
            return self

        def args(self, **overrides):
            args = dict(login_unix_socket=SOCKET, config_file='/nonexistent/.my.cnf',
                        primary_host='server1', primary_user='repl', primary_password=self.password)
            args.update(overrides)
            return args

        def run(self, check_mode=False, diff=False, **overrides):
            return run_main(mysql_replication.main, self.args(**overrides), check_mode=check_mode, diff=diff)

        def changes(self):
            """Statements sent to the replica that change something."""
            return self.local.statements()

        def row(self):
            return self.local.status

    return Env()


def assert_no_secret(result, password):
    assert password not in json.dumps(result, default=str)


# ---------------------------------------------------------------------------
# Idempotency decisions (MariaDB)
# ---------------------------------------------------------------------------

def test_fresh_replica_is_configured_and_started(env):
    env.setup('mariadb', status=None)
    result = env.run()
    assert not result.get('failed'), result
    assert result['changed'] is True
    assert env.changes() == [
        'CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USER=%s, MASTER_PASSWORD=%s, '
        'MASTER_USE_GTID=slave_pos, MASTER_HEARTBEAT_PERIOD=1.0, MASTER_CONNECT_RETRY=10, MASTER_DELAY=0, '
        'MASTER_SSL=0, MASTER_SSL_VERIFY_SERVER_CERT=0',
        'START SLAVE',
    ]
    change_params = [params for sql, params in env.local.executed if sql.startswith('CHANGE')][0]
    assert change_params == ('server1', 'repl', env.password)
    assert result['queries'] == [
        "CHANGE MASTER TO MASTER_HOST='server1', MASTER_PORT=3306, MASTER_USER='repl', "
        "MASTER_PASSWORD='********', MASTER_USE_GTID=slave_pos, MASTER_HEARTBEAT_PERIOD=1.0, "
        "MASTER_CONNECT_RETRY=10, MASTER_DELAY=0, MASTER_SSL=0, MASTER_SSL_VERIFY_SERVER_CERT=0",
        'START SLAVE',
    ]
    status = result['status']
    assert status['configured'] and status['io_running'] and status['sql_running']
    assert status['source_host'] == 'server1' and status['using_gtid'] == 'slave_pos'
    assert status['heartbeat_period'] == 1.0 and status['connect_retry'] == 10
    assert result['primary']['server_id'] == 1 and result['primary']['read_only'] is False
    assert 'newly configured' in result['msg']
    assert env.local.password == env.password
    assert_no_secret(result, env.password)


def test_second_run_changes_nothing(env):
    env.setup('mariadb', status=None)
    assert env.run()['changed'] is True
    env.local.executed = []
    result = env.run()
    assert result['changed'] is False, result
    assert result['queries'] == []
    assert env.changes() == []
    assert result['msg'] == 'Replication from server1:3306 is running'


def test_matching_running_replica_is_left_alone(env):
    result = env.run()
    assert result['changed'] is False
    assert result['queries'] == []
    assert env.changes() == []
    assert all(sql.startswith(READ_ONLY_SQL) for sql, dummy in env.local.executed)


def test_host_differs_restarts_with_new_host(env):
    env.local.status['Master_Host'] = 'server3'
    result = env.run()
    assert result['changed'] is True
    assert env.changes() == ['STOP SLAVE', 'CHANGE MASTER TO MASTER_HOST=%s, MASTER_PASSWORD=%s, MASTER_HEARTBEAT_PERIOD=1.0', 'START SLAVE']
    assert result['queries'] == ['STOP SLAVE',
                                 "CHANGE MASTER TO MASTER_HOST='server1', MASTER_PASSWORD='********', MASTER_HEARTBEAT_PERIOD=1.0",
                                 'START SLAVE']
    assert env.row()['Master_Host'] == 'server1'
    assert result['status']['source_host'] == 'server1'
    assert 'changed: source_host' in result['msg']


def test_only_differing_settings_are_sent(env):
    env.local.heartbeat = 30.0
    env.local.status['Connect_Retry'] = 60
    result = env.run(primary_delay=0)
    assert result['changed'] is True
    assert env.changes() == [
        'STOP SLAVE',
        'CHANGE MASTER TO MASTER_PASSWORD=%s, MASTER_HEARTBEAT_PERIOD=1.0, MASTER_CONNECT_RETRY=10',
        'START SLAVE']
    assert env.local.heartbeat == 1.0


def test_gtid_mode_differs(env):
    env.local.status['Using_Gtid'] = 'No'
    result = env.run(primary_use_gtid='current_pos')
    assert env.changes() == ['STOP SLAVE', 'CHANGE MASTER TO MASTER_PASSWORD=%s, MASTER_USE_GTID=current_pos, MASTER_HEARTBEAT_PERIOD=1.0',
                             'START SLAVE']
    assert result['status']['using_gtid'] == 'current_pos'


def test_access_denied_reissues_password(env):
    env.local.password = 'old-fake-pw'
    env.local.status.update(Slave_IO_Running='Connecting', Last_IO_Errno=1045,
                            Last_IO_Error="error connecting to master 'repl@server1:3306' - retry-time: 10  "
                                          "message: Access denied for user 'repl'@'server2' (using password: YES)")
    result = env.run()
    assert result['changed'] is True, result
    assert env.changes() == ['STOP SLAVE', 'CHANGE MASTER TO MASTER_PASSWORD=%s, MASTER_HEARTBEAT_PERIOD=1.0', 'START SLAVE']
    assert result['queries'][1] == "CHANGE MASTER TO MASTER_PASSWORD='********', MASTER_HEARTBEAT_PERIOD=1.0"
    assert env.local.password == env.password
    assert result['status']['io_running'] is True
    assert 'password set again' in result['msg']


def test_after_password_reissue_next_run_is_ok(env):
    """A CHANGE without MASTER_HEARTBEAT_PERIOD resets it on the server:
    the module always sends it, so the next run finds nothing to change."""
    env.local.status.update(Slave_IO_Running='Connecting', Last_IO_Errno=1045, Last_IO_Error='Access denied')
    assert env.run()['changed'] is True
    assert env.local.heartbeat == 1.0
    env.local.executed = []
    result = env.run()
    assert result['changed'] is False and env.changes() == []


def test_other_io_error_does_not_reissue_change(env):
    """A connect error other than 1045 is no reason to re-send the settings."""
    env.local.status.update(Slave_IO_Running='Connecting', Last_IO_Errno=2003, Last_IO_Error='refused')
    env.local.status_script = [lambda s: None, lambda s: s.status.update(
        Slave_IO_Running='Yes', Last_IO_Errno=0, Last_IO_Error='')]
    result = env.run()
    assert not result.get('failed'), result
    assert result['changed'] is False
    assert env.changes() == []


def test_stopped_threads_are_started_only(env):
    env.local.status.update(Slave_IO_Running='No', Slave_SQL_Running='No')
    result = env.run()
    assert result['changed'] is True
    assert env.changes() == ['START SLAVE']
    assert result['queries'] == ['START SLAVE']
    assert result['status']['io_running'] and result['status']['sql_running']
    assert result['msg'].endswith('(started)')


def test_stopped_sql_thread_is_started(env):
    env.local.status.update(Slave_SQL_Running='No')
    result = env.run()
    assert env.changes() == ['START SLAVE']
    assert result['changed'] is True


def test_state_stopped(env):
    result = env.run(state='stopped')
    assert result['changed'] is True
    assert env.changes() == ['STOP SLAVE']
    assert result['status']['io_thread'] == 'No' and result['status']['sql_thread'] == 'No'
    assert result['status']['source_host'] == 'server1'
    # the settings are kept and a second run does nothing
    env.local.executed = []
    result = env.run(state='stopped')
    assert result['changed'] is False and env.changes() == []


def test_state_stopped_ignores_primary_options(env):
    env.local.status.update(Slave_IO_Running='No', Slave_SQL_Running='No')
    result = env.run(state='stopped', primary_host='elsewhere')
    assert result['changed'] is False and env.changes() == []
    assert env.net.connects == [c for c in env.net.connects if c['unix_socket'] == SOCKET]


def test_state_stopped_not_a_replica(env):
    env.setup('mariadb', status=None)
    result = env.run(state='stopped', primary_host=None, primary_user=None, primary_password=None)
    assert result['changed'] is False and env.changes() == []
    assert result['msg'] == 'This server is not a replica'


def test_state_absent_running(env):
    result = env.run(state='absent')
    assert result['changed'] is True
    assert env.changes() == ['STOP SLAVE', 'RESET SLAVE ALL']
    assert result['status']['configured'] is False
    assert env.row() is None


def test_state_absent_stopped(env):
    env.local.status.update(Slave_IO_Running='No', Slave_SQL_Running='No')
    env.run(state='absent')
    assert env.changes() == ['RESET SLAVE ALL']


def test_state_absent_not_a_replica(env):
    env.setup('mariadb', status=None)
    result = env.run(state='absent')
    assert result['changed'] is False and env.changes() == []


# ---------------------------------------------------------------------------
# Check mode and diff mode
# ---------------------------------------------------------------------------

def test_check_mode_runs_nothing(env):
    env.local.status['Master_Host'] = 'server3'
    result = env.run(check_mode=True)
    assert result['changed'] is True
    assert result['queries'] == ['STOP SLAVE',
                                 "CHANGE MASTER TO MASTER_HOST='server1', MASTER_PASSWORD='********', MASTER_HEARTBEAT_PERIOD=1.0",
                                 'START SLAVE']
    assert env.changes() == []
    assert all(sql.startswith(READ_ONLY_SQL) for sql, dummy in env.local.executed)
    assert all(sql.startswith(READ_ONLY_SQL) for sql, dummy in env.primary.executed)
    assert env.row()['Master_Host'] == 'server3'
    assert result['status']['source_host'] == 'server3'
    assert env.clock.sleeps == []


def test_check_mode_fresh_replica(env):
    env.setup('mariadb', status=None)
    result = env.run(check_mode=True, diff=True)
    assert result['changed'] is True
    assert [q.split(' ')[0] for q in result['queries']] == ['CHANGE', 'START']
    assert env.changes() == [] and env.row() is None
    assert result['diff']['before'] == {'configured': False}
    assert result['diff']['after']['primary_host'] == 'server1'
    assert result['diff']['after']['primary_password'] == '********'


def test_check_mode_no_change(env):
    result = env.run(check_mode=True)
    assert result['changed'] is False and result['queries'] == []


def test_check_mode_reports_a_failing_replica(env):
    env.local.status.update(Slave_IO_Running='Connecting', Last_IO_Errno=2003, Last_IO_Error='refused')
    result = env.run(check_mode=True)
    assert result['failed'] is True and result['changed'] is False
    assert 'last IO error 2003: refused' in result['msg']
    assert env.changes() == [] and env.clock.sleeps == []


def test_check_mode_access_denied_would_reissue_password(env):
    env.local.status.update(Slave_IO_Running='Connecting', Last_IO_Errno=1045, Last_IO_Error='Access denied')
    result = env.run(check_mode=True)
    assert not result.get('failed') and result['changed'] is True
    assert result['queries'] == ['STOP SLAVE', "CHANGE MASTER TO MASTER_PASSWORD='********', MASTER_HEARTBEAT_PERIOD=1.0", 'START SLAVE']
    assert env.changes() == []


@pytest.mark.parametrize('state, queries', [('stopped', ['STOP SLAVE']),
                                            ('absent', ['STOP SLAVE', 'RESET SLAVE ALL'])])
def test_check_mode_stopped_absent(env, state, queries):
    result = env.run(state=state, check_mode=True, diff=True)
    assert result['changed'] is True
    assert result['queries'] == queries
    assert env.changes() == []
    assert env.row()['Slave_IO_Running'] == 'Yes'
    assert result['diff']['before']['io_thread'] == 'running'
    if state == 'stopped':
        assert result['diff']['after']['io_thread'] == 'stopped'
    else:
        assert result['diff']['after'] == {'configured': False}


def test_diff_masks_passwords(env):
    env.local.status['Master_Host'] = 'server3'
    env.local.status['Master_Port'] = 3307
    result = env.run(diff=True)
    before, after = result['diff']['before'], result['diff']['after']
    assert before['primary_host'] == 'server3' and after['primary_host'] == 'server1'
    assert before['primary_port'] == 3307 and after['primary_port'] == 3306
    assert before['primary_password'] == '********' and after['primary_password'] == '********'
    assert after['io_thread'] == 'running' and after['sql_thread'] == 'running'
    assert_no_secret(result, env.password)


def test_no_diff_without_diff_mode(env):
    result = env.run()
    assert 'diff' not in result


def test_writable_replica_is_warned_about(env):
    env.local.read_only = False
    result = env.run()
    assert result['changed'] is False
    assert any('writable (@@read_only=0)' in w for w in result['_warnings'])
    env.local.read_only = True
    assert not any('writable' in w for w in env.run()['_warnings'])


# ---------------------------------------------------------------------------
# MySQL
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('version', ['8.0.23', '8.0.36', '8.4.0'])
def test_mysql_fresh_replica(env, version):
    env.setup('mysql', version=version, status=None)
    result = env.run()
    assert not result.get('failed'), result
    assert env.changes() == [
        'CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=3306, SOURCE_USER=%s, SOURCE_PASSWORD=%s, '
        'SOURCE_AUTO_POSITION=1, SOURCE_HEARTBEAT_PERIOD=1.0, SOURCE_CONNECT_RETRY=10, SOURCE_DELAY=0, '
        'SOURCE_SSL=0, SOURCE_SSL_VERIFY_SERVER_CERT=0',
        'START REPLICA',
    ]
    assert result['status']['using_gtid'] == 'auto_position'
    assert result['status']['io_running'] and result['status']['sql_running']
    env.local.executed = []
    again = env.run()
    assert again['changed'] is False and env.changes() == []


@pytest.mark.parametrize('version', ['8.0.23', '8.4.0'])
def test_mysql_host_differs(env, version):
    env.setup('mysql', version=version)
    env.local.status['Source_Host'] = 'server3'
    result = env.run()
    assert env.changes() == [
        'STOP REPLICA',
        'CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PASSWORD=%s, SOURCE_HEARTBEAT_PERIOD=1.0',
        'START REPLICA']
    assert result['queries'][1] == ("CHANGE REPLICATION SOURCE TO SOURCE_HOST='server1', SOURCE_PASSWORD='********', "
                                    "SOURCE_HEARTBEAT_PERIOD=1.0")


def test_mysql_absent_and_stopped(env):
    env.setup('mysql', version='8.4.0')
    env.run(state='stopped')
    assert env.changes() == ['STOP REPLICA']
    env.local.executed = []
    env.run(state='absent')
    assert env.changes() == ['RESET REPLICA ALL']


def test_mysql_ignores_use_gtid(env):
    env.setup('mysql')
    result = env.run(primary_use_gtid='current_pos')
    assert result['changed'] is False
    assert any('ignored on MySQL' in w for w in result['_warnings'])


def test_mysql_auto_position_off_is_fixed(env):
    env.setup('mysql')
    env.local.status['Auto_Position'] = 0
    env.run()
    assert env.changes() == ['STOP REPLICA',
                             'CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, SOURCE_HEARTBEAT_PERIOD=1.0',
                             'START REPLICA']


# ---------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------

def test_tls_settings(env, monkeypatch):
    contexts = []

    def fake_ctx(**kwargs):
        contexts.append(kwargs)
        return 'CTX'

    monkeypatch.setattr(mysql_connection, 'build_ssl_context', fake_ctx)
    result = env.run(primary_ssl=True, primary_ssl_ca='/etc/mysql/ssl/ca.pem',
                     primary_ssl_verify_server_cert=True)
    assert env.changes() == [
        'STOP SLAVE',
        'CHANGE MASTER TO MASTER_PASSWORD=%s, MASTER_HEARTBEAT_PERIOD=1.0, MASTER_SSL=1, MASTER_SSL_CA=%s, '
        'MASTER_SSL_VERIFY_SERVER_CERT=1',
        'START SLAVE']
    primary_login = [c for c in env.net.connects if c['host'] == 'server1'][0]
    assert primary_login['ssl'] == 'CTX'
    assert contexts == [dict(ca='/etc/mysql/ssl/ca.pem', cert=None, key=None, verify_cert=True,
                             verify_identity=True)]
    assert result['status']['ssl'] is True and result['status']['ssl_ca'] == '/etc/mysql/ssl/ca.pem'
    env.local.executed = []
    assert env.run(primary_ssl=True, primary_ssl_ca='/etc/mysql/ssl/ca.pem',
                   primary_ssl_verify_server_cert=True)['changed'] is False


def test_no_tls_means_no_tls_for_the_check_login(env):
    env.run()
    primary_login = [c for c in env.net.connects if c['host'] == 'server1'][0]
    assert primary_login['ssl_disabled'] is True
    assert primary_login['user'] == 'repl' and primary_login['password'] == env.password
    assert 'read_default_file' not in primary_login


def test_verify_needs_ssl(env):
    result = env.run(primary_ssl_verify_server_cert=True)
    assert result['failed'] and 'needs primary_ssl=true' in result['msg']
    assert env.local.executed == []


# ---------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------

def test_pointed_at_itself(env):
    env.primary.server_id = 2
    env.local.status['Master_Host'] = 'server3'
    result = env.run()
    assert result['failed'] is True
    assert 'same server_id (2)' in result['msg'] and 'Nothing was changed' in result['msg']
    assert result['changed'] is False
    assert env.changes() == []


def test_pointed_at_itself_mysql_uuid(env):
    env.setup('mysql', status=None)
    env.primary.server_id = 5
    env.primary.server_uuid = env.local.server_uuid
    result = env.run()
    assert result['failed'] and 'same server_id' in result['msg']
    assert env.changes() == []


def test_read_only_target(env):
    env.primary.read_only = True
    env.local.status['Master_Host'] = 'server3'
    result = env.run()
    assert result['failed'] is True
    assert 'read-only (@@read_only=1)' in result['msg']
    assert result['changed'] is False and env.changes() == []


def test_read_only_target_fails_even_when_settings_match(env):
    env.primary.read_only = True
    result = env.run()
    assert result['failed'] and env.changes() == []


def test_unreachable_primary(env):
    env.net.errors[('server1', 3306)] = pymysql.err.OperationalError(
        2003, "Can't connect to MySQL server on 'server1' ([Errno 113] No route to host)")
    env.local.status['Master_Host'] = 'server3'
    result = env.run()
    assert result['failed'] is True
    assert result['msg'] == ("Unable to connect to the primary with the primary_* credentials (server1:3306): "
                             "Can't connect to MySQL server on 'server1' ([Errno 113] No route to host) (error 2003)")
    assert env.changes() == []


def test_bad_credentials(env):
    result = env.run(primary_password='wrong-fake-pw')
    assert result['failed'] is True
    assert "Access denied for user 'repl'" in result['msg'] and '(error 1045)' in result['msg']
    assert env.changes() == []
    assert 'wrong-fake-pw' not in result['msg']


def test_other_flavor_target(env):
    env.primary.flavor = 'mysql'
    env.primary.version = '8.0.36'
    result = env.run()
    assert result['failed'] and 'runs 8.0.36' in result['msg']
    assert env.changes() == []


def test_io_error_after_start(env):
    env.local.status['Master_Host'] = 'server3'
    env.local.start_effect = {'Slave_IO_Running': 'Connecting', 'Last_IO_Errno': 2003,
                              'Last_IO_Error': "error connecting to master 'repl@server1:3306' - retry-time: 10  "
                                               "message: Can't connect to MySQL server on 'server1' (113)"}
    result = env.run(wait_timeout=10)
    assert result['failed'] is True
    assert result['changed'] is True
    assert result['msg'].startswith('Replication failed: the IO thread has not connected to the primary within '
                                    '10s: error 2003: ')
    assert "Can't connect to MySQL server on 'server1'" in result['msg']
    assert result['queries'][-1] == 'START SLAVE'
    assert result['status']['last_io_errno'] == 2003
    assert sum(env.clock.sleeps) == pytest.approx(10.0)


def test_access_denied_after_start(env):
    env.local.start_effect = {'Slave_IO_Running': 'Connecting', 'Last_IO_Errno': 1045,
                              'Last_IO_Error': "message: Access denied for user 'repl'@'server2'"}
    env.local.status.update(Slave_IO_Running='No', Slave_SQL_Running='No')
    result = env.run(wait_timeout=3)
    assert result['failed'] and 'error 1045' in result['msg'] and 'Access denied' in result['msg']


def test_io_thread_stops_after_start(env):
    env.local.status.update(Slave_IO_Running='No', Slave_SQL_Running='No')
    env.local.start_effect = {'Slave_IO_Running': 'No', 'Last_IO_Errno': 1236,
                              'Last_IO_Error': 'Got fatal error 1236 from master when reading data from binary log'}
    result = env.run(wait_timeout=300)
    assert result['failed'] and 'IO thread stopped with error 1236' in result['msg']
    assert len(env.clock.sleeps) == 1


def test_sql_thread_error_after_start(env):
    env.local.status.update(Slave_SQL_Running='No', Last_SQL_Errno=1062, Last_SQL_Error='Duplicate entry')
    env.local.start_effect = {'Slave_SQL_Running': 'No', 'Last_SQL_Errno': 1062,
                              'Last_SQL_Error': "Could not execute Write_rows_v1 event; Duplicate entry '7'"}
    result = env.run()
    assert result['failed'] is True and result['changed'] is True
    assert env.changes() == ['START SLAVE']
    assert "SQL thread stopped with error 1062: Could not execute Write_rows_v1 event; Duplicate entry '7'" \
        in result['msg']


def test_sql_thread_failing_just_after_start(env):
    """Both threads run at the first look, the SQL thread fails a moment later."""
    env.local.status.update(Slave_IO_Running='No', Slave_SQL_Running='No')

    def fail_sql(server):
        server.status.update(Slave_SQL_Running='No', Last_SQL_Errno=1950,
                             Last_SQL_Error='An attempt was made to binlog GTID 0-1-7 which would create an '
                                            'out-of-order sequence number')

    env.local.status_script = [lambda s: None, lambda s: None, fail_sql]
    result = env.run()
    assert result['failed'] is True and result['changed'] is True
    assert 'SQL thread stopped with error 1950' in result['msg']


def test_running_replica_needs_no_settling(env):
    result = env.run()
    assert result['changed'] is False and env.clock.sleeps == []


def test_broken_replica_is_never_ok(env):
    """Settings match and threads 'run', but the IO thread cannot connect."""
    env.local.status.update(Slave_IO_Running='Connecting', Last_IO_Errno=2003, Last_IO_Error='refused')
    result = env.run(wait_timeout=2)
    assert result['failed'] is True and result['changed'] is False
    assert 'error 2003: refused' in result['msg']


def test_change_failure_restarts_replication(env):
    env.local.status['Master_Host'] = 'server3'
    env.local.errors[r'^CHANGE'] = pymysql.err.OperationalError(1201, 'Could not initialize master info structure')
    result = env.run()
    assert result['failed'] is True and result['changed'] is True
    assert 'Could not initialize master info structure (error 1201)' in result['msg']
    assert 'started again with its previous settings' in result['msg']
    assert env.changes() == ['STOP SLAVE', 'CHANGE MASTER TO MASTER_HOST=%s, MASTER_PASSWORD=%s, MASTER_HEARTBEAT_PERIOD=1.0', 'START SLAVE']
    assert env.row()['Master_Host'] == 'server3'
    assert_no_secret(result, env.password)


def test_start_failure_reports_server_error(env):
    env.local.status.update(Slave_IO_Running='No', Slave_SQL_Running='No')
    env.local.errors[r'^START'] = pymysql.err.OperationalError(1227, 'Access denied; you need SUPER')
    result = env.run()
    assert result['failed'] and result['msg'] == ('Statement failed on the local server: START SLAVE: '
                                                  'Access denied; you need SUPER (error 1227)')


def test_local_login_failure(env):
    env.net.errors[SOCKET] = pymysql.err.OperationalError(
        1698, "Access denied for user 'root'@'localhost'")
    result = env.run()
    assert result['failed'] is True
    assert result['msg'] == ("Unable to connect to the local server (unix socket %s): Access denied for user "
                             "'root'@'localhost' (error 1698)" % SOCKET)


def test_unsupported_local_server(env):
    env.setup('mariadb', version='10.5.20-MariaDB')
    result = env.run()
    assert result['failed'] and 'MariaDB 10.5.20-MariaDB is not supported' in result['msg']


def test_local_query_error(env):
    env.local.errors[r'SHOW SLAVE STATUS'] = pymysql.err.OperationalError(
        1227, 'Access denied; you need (at least one of) the SUPER, REPLICATION CLIENT privilege(s)')
    result = env.run(state='stopped')
    assert result['failed'] and result['msg'].startswith('Query failed on the local server: Access denied')


@pytest.mark.parametrize('missing', ['primary_host', 'primary_user', 'primary_password'])
def test_started_needs_primary_options(env, missing):
    result = env.run(**{missing: None})
    assert result['failed'] and missing in result['msg']
    assert env.local.executed == []


@pytest.mark.parametrize('option, value', [('primary_port', 0), ('primary_port', 70000),
                                           ('primary_heartbeat_period', -1), ('primary_connect_retry', 0),
                                           ('primary_delay', -5), ('wait_timeout', -1)])
def test_bad_values(env, option, value):
    result = env.run(**{option: value})
    assert result['failed'] and option in result['msg']
