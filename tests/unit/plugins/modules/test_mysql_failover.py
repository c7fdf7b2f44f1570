# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import re
import threading

import pymysql
import pytest
import yaml

from ansible_collections.distweb.infra.plugins.doc_fragments import mysql_cluster

from ansible_collections.distweb.infra.plugins.module_utils import mysql_connection
from ansible_collections.distweb.infra.plugins.modules import mysql_failover
from ansible_collections.distweb.infra.tests.unit.plugins.results import failed, ok

U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562'
PHASES = ('connect', 'listen', 'fence', 'stop_io', 'collect', 'decide', 'catchup', 'promote', 'repoint', 'total')


@pytest.fixture
def env(make_cluster, run_main, fake_password):

    class Env(object):
        password = fake_password

        def __init__(self):
            self.cluster = make_cluster('mariadb')

        def setup(self, flavor, version=None):
            self.cluster = make_cluster(flavor, version=version)
            return self.cluster

        def args(self, **overrides):
            args = dict(nodes=self.cluster.nodes(), login_user='admin', login_password=self.password,
                        replication_user='repl', replication_password=self.password)
            args.update(overrides)
            return args

        def run(self, check_mode=False, **overrides):
            result = run_main(mysql_failover.main, self.args(**overrides), check_mode=check_mode)
            assert self.password not in json.dumps(result), 'a password leaked into the result'
            return result

    return Env()


def availability_first(cluster, timeout=10000):
    """Every node falls back to asynchronous replication after ``timeout``
    ms without an acknowledgement (mysql_server_lossless false)."""
    for server in cluster.servers.values():
        server.variables['rpl_semi_sync_master_timeout'] = str(timeout)


def order(cluster, *steps):
    """Assert that the (node, regex) steps happened in this order."""
    positions = []
    for name, pattern in steps:
        index = cluster.index(name, pattern)
        assert index is not None, (name, pattern, cluster.changes())
        positions.append(index)
    assert positions == sorted(positions), (steps, cluster.changes())


# ---------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------

def test_documentation_parses_and_matches_the_argument_spec():
    doc = yaml.safe_load(mysql_failover.DOCUMENTATION)
    doc['options'].update(yaml.safe_load(mysql_cluster.ModuleDocFragment.DOCUMENTATION)['options'])
    doc['options'].update(yaml.safe_load(mysql_cluster.ModuleDocFragment.NODES)['options'])
    spec = mysql_failover.argument_spec()
    assert set(doc['options']) == set(spec)
    for name, option in spec.items():
        assert doc['options'][name].get('default') == option.get('default'), name
        assert doc['options'][name]['type'] == option['type'], name
    assert set(doc['options']['nodes']['suboptions']) == set(spec['nodes']['options'])
    yaml.safe_load(mysql_failover.EXAMPLES)
    returned = yaml.safe_load(mysql_failover.RETURN)
    for key in ('old_primary', 'new_primary', 'repointed', 'excluded', 'lost_gtids', 'phases', 'plan'):
        assert key in returned
    assert spec['replication_password']['no_log'] and spec['login_password']['no_log']


# ---------------------------------------------------------------------------
# Dead primary
# ---------------------------------------------------------------------------

def test_dead_primary_mariadb(env):
    cluster = env.cluster
    cluster.down('server1')
    cluster.make_replica('server2', 'server1', received='0-1-102', applied='0-1-100')
    cluster.make_replica('server3', 'server1', received='0-1-101')
    result = ok(env.run())
    assert result['changed'] is True
    assert (result['old_primary'], result['new_primary']) == ('server1', 'server2')
    assert result['repointed'] == ['server3']
    assert result['excluded'] == [] and result['repoint_failed'] == []
    assert result['lost_gtids'] == ''
    assert result['candidate_position'] == '0-1-102'
    assert set(result['phases']) == set(PHASES)
    assert result['semi_sync']['active'] and result['semi_sync']['source'] == 'settings'
    assert result['semi_sync']['unverified'] == []
    assert any('cannot be fenced' in w for w in result['_warnings'])
    # the candidate applied what it received before anything else happened to it
    assert cluster['server2'].waits[0][0] == '0-1-102'
    order(cluster,
          ('server2', r'^STOP SLAVE IO_THREAD$'), ('server3', r'^STOP SLAVE IO_THREAD$'),
          ('server2', r'MASTER_GTID_WAIT'),
          ('server2', r'^STOP SLAVE$'), ('server2', r'^RESET SLAVE ALL$'),
          ('server2', r'^SET GLOBAL rpl_semi_sync_master_enabled = ON$'), ('server2', r'^SET GLOBAL read_only = 0$'),
          ('server3', r'^STOP SLAVE$'), ('server3', r'^CHANGE MASTER TO'), ('server3', r'^START SLAVE$'))
    # nothing restarted the candidate's IO thread or re-pointed it before the wait
    wait = cluster.index('server2', 'MASTER_GTID_WAIT')
    assert [sql for name, sql in cluster.changes()[:wait] if name == 'server2'] == ['STOP SLAVE IO_THREAD']
    # the end state
    assert cluster['server2'].status is None and cluster['server2'].read_only is False
    status = cluster['server3'].status
    assert (status['Master_Host'], status['Using_Gtid'], status['Slave_IO_Running']) == ('server2', 'Slave_Pos', 'Yes')
    assert cluster['server3'].password == env.password
    change = [q for q in result['queries'] if 'CHANGE MASTER' in q][0]
    assert "MASTER_PASSWORD='********'" in change and 'MASTER_USE_GTID=slave_pos' in change
    assert result['plan'][0] == 'the old primary server1 is unreachable: it cannot be fenced'
    assert 'promote server2: STOP SLAVE; RESET SLAVE ALL; SET GLOBAL rpl_semi_sync_master_enabled = ON; ' \
           'SET GLOBAL read_only = 0' in result['plan']
    # the new primary is a lossless semi-sync source with its replica connected
    semi = cluster['server2']
    assert semi.variables['rpl_semi_sync_master_enabled'] == 'ON'
    assert semi.global_status_value('Rpl_semi_sync_master_status') == 'ON'
    assert semi.global_status_value('Rpl_semi_sync_master_clients') == '1'


def test_dead_primary_most_advanced_by_received_position(env):
    cluster = env.cluster
    cluster.down('server1')
    cluster.make_replica('server2', 'server1', received='0-1-101')
    cluster.make_replica('server3', 'server1', received='0-1-104', applied='0-1-99')
    result = ok(env.run())
    assert result['new_primary'] == 'server3' and result['repointed'] == ['server2']
    assert cluster['server3'].waits == [('0-1-104', 1)]
    assert cluster['server3'].gtid['gtid_slave_pos'] == '0-1-104'


def test_dead_primary_mysql(env):
    cluster = env.setup('mysql')
    cluster.down('server1')
    cluster.make_replica('server2', 'server1', received=U1 + ':1-103', applied=U1 + ':1-101')
    cluster.make_replica('server3', 'server1', received=U1 + ':1-102')
    result = ok(env.run())
    assert result['new_primary'] == 'server2' and result['repointed'] == ['server3']
    assert result['candidate_position'] == U1 + ':1-103'
    order(cluster,
          ('server2', r'^STOP REPLICA IO_THREAD$'), ('server3', r'^STOP REPLICA IO_THREAD$'),
          ('server2', r'WAIT_FOR_EXECUTED_GTID_SET'),
          ('server2', r'^STOP REPLICA$'), ('server2', r'^RESET REPLICA ALL$'),
          ('server2', r'^SET GLOBAL rpl_semi_sync_source_enabled = ON$'),
          ('server2', r'^SET GLOBAL super_read_only = 0$'), ('server2', r'^SET GLOBAL read_only = 0$'),
          ('server3', r'^CHANGE REPLICATION SOURCE TO'), ('server3', r'^START REPLICA$'))
    change = [q for q in result['queries'] if 'CHANGE REPLICATION SOURCE' in q][0]
    assert 'SOURCE_AUTO_POSITION=1' in change and "SOURCE_HOST='server2'" in change
    assert cluster['server3'].status['Source_Host'] == 'server2'


def test_dead_primary_mysql84(env):
    cluster = env.setup('mysql', version='8.4.3')
    cluster.down('server1')
    result = ok(env.run())
    assert result['new_primary'] == 'server2'


# ---------------------------------------------------------------------------
# Reachable primary: fenced first
# ---------------------------------------------------------------------------

def test_reachable_primary_is_fenced_first(env):
    cluster = env.cluster
    primary = cluster['server1']
    app = primary.add_session('app')
    other = primary.add_session('report', command='Sleep')
    primary.add_session('repl', command='Binlog Dump')
    result = ok(env.run(primary='server1'))
    assert (result['old_primary'], result['new_primary']) == ('server1', 'server2')
    assert result['killed_sessions'] == 2
    assert sorted(primary.killed) == sorted([app, other])
    assert [row['Command'] for row in primary.processlist] == ['Daemon', 'Query', 'Binlog Dump']
    order(cluster,
          ('server1', r'^SET GLOBAL read_only = 1$'), ('server1', r'^KILL CONNECTION'),
          ('server2', r'^STOP SLAVE IO_THREAD$'), ('server3', r'^STOP SLAVE IO_THREAD$'),
          ('server2', r'MASTER_GTID_WAIT'), ('server2', r'^RESET SLAVE ALL$'),
          ('server2', r'^SET GLOBAL read_only = 0$'), ('server3', r'^CHANGE MASTER TO'))
    assert cluster.changes('server1')[0].startswith('SET SESSION lock_wait_timeout')
    # the old primary stays fenced and is not made a replica
    assert primary.read_only is True and primary.status is None
    assert result['semi_sync']['source'] == 'old primary' and result['semi_sync']['active']
    assert result['plan'][0] == 'fence server1: SET GLOBAL read_only = 1, then kill its client sessions'


def test_reachable_primary_mysql_is_fenced_with_super_read_only(env):
    cluster = env.setup('mysql')
    result = ok(env.run(primary='server1', kill_client_sessions=False))
    assert cluster.changes('server1')[1] == 'SET GLOBAL super_read_only = 1'
    assert not any(sql.startswith('KILL') for sql in cluster.changes('server1'))
    assert result['new_primary'] == 'server2'


def test_detected_healthy_primary_is_left_alone(env):
    cluster = env.cluster
    result = ok(env.run())
    assert result['changed'] is False
    assert 'nothing to fail over' in result['msg']
    assert cluster.changes() == []


def test_failover_is_idempotent(env):
    cluster = env.cluster
    cluster.down('server1')
    first = ok(env.run(primary='server1'))
    assert first['changed'] is True
    cluster.log[:] = []
    second = ok(env.run(primary='server1'))
    assert second['changed'] is False and second['new_primary'] == 'server2'
    assert 'already the writable primary' in second['msg']
    assert cluster.changes() == []
    # without naming the old primary: server2 is detected, healthy, left alone
    third = ok(env.run())
    assert third['changed'] is False and cluster.changes() == []


# ---------------------------------------------------------------------------
# Refusals leave the nodes as they were
# ---------------------------------------------------------------------------

def assert_restored(cluster, primary_writable=True):
    for name in ('server2', 'server3'):
        status = cluster[name].status
        assert status['Slave_IO_Running' if cluster.mariadb else 'Replica_IO_Running'] == 'Yes', name
        assert status['Master_Host' if cluster.mariadb else 'Source_Host'] == 'server1'
        assert cluster[name].read_only is True
    assert not any(re.search(r'RESET|CHANGE|read_only = 0', sql)
                   for name, sql in cluster.changes() if name != 'server1')
    if primary_writable is not None:
        assert cluster['server1'].read_only is (not primary_writable)


def test_refusal_after_fencing_restarts_io_threads_and_unfences(env):
    cluster = env.cluster
    primary = cluster['server1']
    primary.set_gtid(binlog_pos='0-1-101')  # a commit no replica received
    primary.gtid['gtid_binlog_state'] = '0-1-101'
    for name in ('server2', 'server3'):
        cluster[name].receives = False  # nor does one receive it when its IO thread restarts
    result = failed(env.run(primary='server1'), 'Refusing to fail over',
                    'the old primary server1 has 0-1-101 that no replica received',
                    'Put back: the IO threads of server2, server3 were started again; server1 was made writable '
                    'again')
    assert result['changed'] is True
    assert result['new_primary'] is None
    order(cluster, ('server1', r'^SET GLOBAL read_only = 1$'), ('server2', r'^STOP SLAVE IO_THREAD$'),
          ('server2', r'^START SLAVE IO_THREAD$'), ('server3', r'^START SLAVE IO_THREAD$'),
          ('server1', r'^SET GLOBAL read_only = 0$'))
    assert_restored(cluster)
    # with allow_data_loss it goes on and says what is lost
    cluster.log[:] = []
    result = ok(env.run(primary='server1', allow_data_loss=True))
    assert result['new_primary'] == 'server2' and result['lost_gtids'] == '0-1-101'
    assert 'LOST GTIDs: 0-1-101' in result['msg']


def test_semi_sync_fallback_while_fenced_is_refused(env):
    cluster = env.cluster
    availability_first(cluster)  # a lossless source never acknowledges without a replica
    primary = cluster['server1']

    def commit_without_ack(server, sql):
        primary.global_status['Rpl_semi_sync_master_no_tx'] = '1'

    cluster['server3'].after.append((r'^STOP SLAVE IO_THREAD$', commit_without_ack))
    failed(env.run(primary='server1'), 'acknowledged 1 commit(s) without a replica', 'allow_data_loss')
    assert_restored(cluster)


def test_semi_sync_off_is_refused_before_anything_changes(env):
    cluster = env.cluster
    cluster['server1'].set_semi_sync(source_enabled=False)
    result = failed(env.run(primary='server1'), 'not enabled on the old primary server1', 'Nothing was changed')
    assert result['changed'] is False and cluster.changes() == []
    result = ok(env.run(primary='server1', allow_data_loss=True))
    assert result['new_primary'] == 'server2' and result['semi_sync']['active'] is False
    assert any('allow_data_loss' in w for w in result['_warnings'])


@pytest.mark.parametrize('settings, words', [
    (dict(timeout=10000), 'falls back to asynchronous replication after 10000 ms'),
    (dict(wait_no_slave=False), 'does not wait with no replica connected'),
    (dict(wait_point='AFTER_COMMIT'), 'wait point AFTER_COMMIT'),
])
def test_dead_primary_of_a_cluster_that_is_not_lossless_is_refused(env, settings, words):
    # the replicas' Rpl_semi_sync_slave_status reads ON (their IO threads
    # retry the dead primary): that proves nothing
    cluster = env.cluster
    for server in cluster.servers.values():
        server.set_semi_sync(source_enabled=server.name == 'server1', replica_enabled=True,
                             replica_status=server.name != 'server1', **settings)
    cluster.down('server1')
    for name in ('server2', 'server3'):
        assert cluster[name].global_status_value('Rpl_semi_sync_slave_status') == 'ON'
    result = failed(env.run(), 'server1 cannot be read and the cluster is not set up for lossless semi-sync',
                    'server2 (%s)' % words, 'server3 (%s)' % words, 'allow_data_loss', 'Nothing was changed')
    assert cluster.changes() == [] and result['changed'] is False
    assert result['semi_sync']['active'] is False and result['semi_sync']['source'] == 'settings'
    # with allow_data_loss it goes on, with a warning
    result = ok(env.run(allow_data_loss=True))
    assert result['new_primary'] == 'server2'
    assert any('not set up for lossless semi-sync' in w and 'going on because allow_data_loss is set' in w
               for w in result['_warnings'])


def test_dead_primary_of_a_lossless_cluster_is_failed_over_whatever_the_replicas_status(env):
    cluster = env.cluster
    cluster.down('server1')
    for name in ('server2', 'server3'):
        # semi-sync enabled on the replica side without restarting the IO thread
        cluster[name].semi_replica_on = False
        assert cluster[name].global_status_value('Rpl_semi_sync_slave_status') == 'OFF'
    result = ok(env.run())
    assert result['new_primary'] == 'server2' and result['semi_sync']['active'] is True
    assert result['semi_sync']['source'] == 'settings'


def test_the_most_advanced_replica_unreachable_is_refused_naming_it(env):
    # server3 alone received (and acknowledged) the last writes, then it and
    # the primary died: promoting server2 would lose them
    cluster = env.cluster
    cluster['server2'].receives = False
    acknowledged = cluster.commit('server1', 3)
    assert acknowledged == ['0-1-101', '0-1-102', '0-1-103']
    cluster.down('server1')
    cluster.down('server3')
    cluster['server2'].receives = True
    result = failed(env.run(), 'server1 cannot be read, and neither can server3',
                    'may hold the last acknowledged commit', 'Bring it back first', 'allow_data_loss',
                    'Nothing was changed')
    assert result['changed'] is False and cluster.changes() == []
    assert result['semi_sync']['unverified'] == ['server3']
    assert cluster['server2'].read_only is True
    # with the override it proceeds and says what was lost
    result = ok(env.run(allow_data_loss=True))
    assert result['new_primary'] == 'server2'
    assert any('acknowledged commits that only server3 received are lost' in w for w in result['_warnings'])
    assert not cluster['server2'].has_gtids('0-1-101')  # the loss the override accepted


def test_catchup_timeout_undoes_everything(env):
    cluster = env.cluster
    # both received everything; server2 applied more, but its SQL thread is stuck
    cluster.make_replica('server2', 'server1', received='0-1-100', applied='0-1-98')
    cluster.make_replica('server3', 'server1', received='0-1-100', applied='0-1-97')
    cluster['server2'].wait_applies = False
    before = cluster.clock.now
    result = failed(env.run(primary='server1', catchup_timeout=5), 'Refusing to promote server2',
                    'was not applied within 5 s', 'server1 was made writable again')
    assert cluster.clock.now - before >= 5
    assert all(timeout == 1 for dummy, timeout in cluster['server2'].waits)
    assert result['new_primary'] is None
    assert_restored(cluster)


def test_catchup_stops_when_the_sql_thread_fails(env):
    cluster = env.cluster
    cluster.down('server1')
    cluster.make_replica('server2', 'server1', received='0-1-101', applied='0-1-100')
    server2 = cluster['server2']
    server2.wait_applies = False

    def break_sql_thread(server, sql):
        server.status.update(Slave_SQL_Running='No', Last_SQL_Errno=1062, Last_SQL_Error='Duplicate entry')

    server2.after.append((r'MASTER_GTID_WAIT', break_sql_thread))
    failed(env.run(catchup_timeout=30), 'SQL thread stopped with error 1062')
    assert len(server2.waits) == 1
    # started again, it retries the dead primary
    assert cluster['server3'].status['Slave_IO_Running'] == 'Connecting'
    assert cluster['server3'].status['Last_IO_Errno'] == 2003


def test_unorderable_replicas_are_refused_without_changes(env):
    cluster = env.cluster
    cluster.down('server1')
    cluster.make_replica('server2', 'server1', received='0-1-102')
    cluster.make_replica('server3', 'server1', received='0-1-101,1-1-4')
    result = failed(env.run(), 'cannot be put in one line', 'split brain', 'Nothing was changed')
    assert result['changed'] is False and cluster.changes() == []


def test_no_healthy_replica_is_refused(env):
    cluster = env.cluster
    cluster.down('server1')
    cluster.down('server3')
    cluster['server2'].status.update(Slave_SQL_Running='No', Last_SQL_Errno=1146, Last_SQL_Error='no table')
    result = failed(env.run(primary='server1'), 'no healthy replica', 'server2: its SQL thread stopped with error 1146',
                    'server3: unreachable')
    assert cluster.changes() == []
    assert result['excluded'][0]['name'] == 'server2'


def test_refusal_on_a_server_error_while_fencing(env):
    cluster = env.cluster
    cluster['server1'].errors[r'^KILL'] = pymysql.err.OperationalError(1227, 'Access denied; you need the '
                                                                             'CONNECTION ADMIN privilege')
    cluster['server1'].add_session('app')
    failed(env.run(primary='server1'), 'fencing the old primary server1 failed', 'CONNECTION ADMIN')
    assert cluster['server1'].read_only is False
    assert cluster.changes('server2') == [] and cluster.changes('server3') == []


# ---------------------------------------------------------------------------
# Exclusions, preferences, failures after the promotion
# ---------------------------------------------------------------------------

def test_errant_replica_is_excluded_and_keeps_its_io_thread_stopped(env):
    cluster = env.cluster
    cluster.down('server1')
    cluster.set_gtid('server3', '0-1-100,1-3-5', slave_pos='0-1-100')
    result = ok(env.run())
    assert result['new_primary'] == 'server2' and result['repointed'] == []
    assert result['excluded'] == [dict(name='server3', reason='errant transactions (GTIDs the old primary never '
                                                              'had): 1-3-1..1-3-5')]
    # not restarted: it would follow the old primary again when it comes back
    assert cluster.changes('server3') == ['STOP SLAVE IO_THREAD']
    assert result['io_left_stopped'] == ['server3']
    assert cluster['server3'].status['Master_Host'] == 'server1'
    assert cluster['server3'].status['Slave_IO_Running'] == 'No'
    assert any('the IO thread of server3 stays stopped' in w and 'mysql_rejoin' in w for w in result['_warnings'])
    assert any(step.startswith('leave server3 with its IO thread stopped') for step in result['plan'])
    # the old primary comes back: server3 neither follows nor acknowledges it
    cluster.up('server1', read_only=False)
    assert cluster['server3'].status['Slave_IO_Running'] == 'No'
    assert cluster['server3'].global_status_value('Rpl_semi_sync_slave_status') == 'OFF'


def test_a_broken_replica_is_left_with_its_io_thread_stopped(env):
    # server3's SQL thread broke: excluded, its IO thread stopped and left so
    cluster = env.cluster
    cluster.down('server1')
    cluster.make_replica('server3', 'server1', received='0-1-100', Slave_SQL_Running='No', Last_SQL_Errno=1146,
                         Last_SQL_Error='no table')
    result = ok(env.run())
    assert result['new_primary'] == 'server2'
    assert result['io_left_stopped'] == ['server3']
    assert cluster['server3'].status['Slave_IO_Running'] == 'No'


def test_preferred_candidate(env):
    cluster = env.cluster
    cluster.down('server1')
    result = ok(env.run(preferred_candidate='server3'))
    assert result['new_primary'] == 'server3' and result['repointed'] == ['server2']
    assert 'the preferred candidate server3 is the most advanced replica' in result['notes']
    env.cluster = cluster = env.setup('mariadb')
    cluster.down('server1')
    cluster.make_replica('server2', 'server1', received='0-1-105')
    result = ok(env.run(preferred_candidate='server3'))
    assert result['new_primary'] == 'server2'
    assert any('server3 is not promoted: it lacks 0-1-101..0-1-105' in n for n in result['notes'])


def test_repoint_failure_is_reported_not_fatal(env):
    cluster = env.cluster
    cluster.down('server1')
    cluster['server3'].errors[r'^CHANGE MASTER'] = pymysql.err.OperationalError(1201, 'Could not initialize '
                                                                                      'master info structure')
    result = ok(env.run())
    assert result['new_primary'] == 'server2' and result['repointed'] == []
    assert result['repoint_failed'][0]['name'] == 'server3'
    assert 'Could not initialize master info' in result['repoint_failed'][0]['reason']
    assert any('server3 was not re-pointed' in w for w in result['_warnings'])


def test_without_repoint_wait_it_returns_once_replication_is_started(env):
    # the role fences the routers right after the promotion and reads the
    # re-pointed replicas afterwards: the module starts them and returns
    spent = []
    for wait in (True, False):
        env.cluster = cluster = env.setup('mariadb')
        cluster.down('server1')
        before = cluster.clock.now
        result = ok(env.run(repoint_wait=wait, routers_fenced=False))
        spent.append(cluster.clock.now - before)
        assert result['repoint_waited'] is wait
    assert result['promoted'] is True and result['new_primary'] == 'server2'
    assert result['repointed'] == ['server3'] and result['repoint_waited'] is False
    assert 'replication started, not waited for' in result['msg']
    order(cluster, ('server2', r'^SET GLOBAL read_only = 0$'), ('server3', r'^CHANGE MASTER'),
          ('server3', r'^START SLAVE'))
    # the waiting run spent at least the second the replica must keep
    # running; this one did not wait
    assert spent[0] - spent[1] >= 1.0, spent


def test_replication_options_are_used(env):
    cluster = env.cluster
    cluster.down('server1')
    nodes = cluster.nodes()
    nodes[1]['replication_host'] = 'db2.internal'
    nodes[1]['replication_port'] = 3307
    result = ok(env.run(nodes=nodes, replication_ssl=True, replication_ssl_ca='/etc/mysql/ssl/ca.crt',
                        replication_ssl_verify_server_cert=True, replication_heartbeat_period=0.5,
                        replication_connect_retry=3))
    change = [q for q in result['queries'] if 'CHANGE MASTER' in q][0]
    for part in ("MASTER_HOST='db2.internal'", 'MASTER_PORT=3307', 'MASTER_SSL=1',
                 "MASTER_SSL_CA='/etc/mysql/ssl/ca.crt'", 'MASTER_SSL_VERIFY_SERVER_CERT=1',
                 'MASTER_HEARTBEAT_PERIOD=0.5', 'MASTER_CONNECT_RETRY=3'):
        assert part in change
    assert cluster['server3'].status['Master_SSL_Allowed'] == 'Yes'


# ---------------------------------------------------------------------------
# Check mode and parameters
# ---------------------------------------------------------------------------

def test_check_mode_changes_nothing(env):
    cluster = env.cluster
    cluster['server1'].add_session('app')
    result = ok(env.run(check_mode=True, primary='server1'))
    assert result['changed'] is True
    assert result['new_primary'] == 'server2' and result['repointed'] == ['server3']
    assert cluster.changes() == []
    assert result['queries'] == []
    assert cluster['server1'].killed == []
    for server in cluster.servers.values():
        for sql, dummy in server.executed:
            assert re.match(r'(?i)\s*(SELECT|SHOW)\b', sql) and 'GTID_WAIT' not in sql.upper(), sql
    assert result['plan'][0].startswith('fence server1')
    assert result['plan'][-1].startswith('(planned from positions read before fencing')


def test_check_mode_refusal_is_reported(env):
    env.cluster.down('server1')
    env.cluster.down('server2')
    env.cluster.down('server3')
    failed(env.run(check_mode=True, primary='server1'), 'no healthy replica')


@pytest.mark.parametrize('overrides, words', [
    (dict(primary='server9'), 'primary server9 is not the name of one of the nodes'),
    (dict(preferred_candidate='nope'), 'preferred_candidate nope'),
    (dict(catchup_timeout=-1), 'catchup_timeout must not be negative'),
    (dict(nodes=[dict(name='a', host='a')]), 'at least two nodes'),
    (dict(nodes=[dict(name='a', host='a'), dict(name='a', host='b')]), 'given twice'),
    (dict(replication_ssl_verify_server_cert=True), 'needs replication_ssl=true'),
    (dict(connect_timeout=0), 'connect_timeout must be at least 1'),
])
def test_bad_parameters(env, overrides, words):
    failed(env.run(**overrides), words)
    assert env.cluster.changes() == []


def test_a_refused_login_is_not_an_unreachable_node(env):
    # the server answered: it is up, and must not be taken for a dead primary
    result = failed(env.run(login_password='wrong', primary='server1'), 'Cannot log in to server1, server2, server3',
                    'Access denied', 'nothing was changed')
    assert result['changed'] is False and env.cluster.changes() == []


def test_fence_kills_sessions_first_when_read_only_waits_for_a_lock(env):
    cluster = env.cluster
    primary = cluster['server1']
    primary.add_session('app')
    primary.errors[r'^SET GLOBAL read_only = 1$'] = pymysql.err.OperationalError(
        1205, 'Lock wait timeout exceeded; try restarting transaction')

    def lock_released(server, sql):
        server.errors.clear()

    primary.after.append((r'^KILL CONNECTION', lock_released))
    result = ok(env.run(primary='server1'))
    assert result['new_primary'] == 'server2' and result['killed_sessions'] == 1
    assert cluster.changes('server1')[:4] == ['SET SESSION lock_wait_timeout = 5', 'SET GLOBAL read_only = 1',
                                              'KILL CONNECTION 8', 'SET GLOBAL read_only = 1']


# ---------------------------------------------------------------------------
# The mysql module utils added for the cluster-level modules
# ---------------------------------------------------------------------------

def test_dialect_statements_per_flavor():
    from ansible_collections.distweb.infra.plugins.module_utils import mysql_dialect
    maria = mysql_dialect.dialect_for_version('10.11.6-MariaDB')
    mysql80 = mysql_dialect.dialect_for_version('8.0.36')
    mysql84 = mysql_dialect.dialect_for_version('8.4.3')
    assert [s.sql for s in maria.set_read_only(True)] == ['SET GLOBAL read_only = 1']
    assert [s.sql for s in maria.set_read_only(False)] == ['SET GLOBAL read_only = 0']
    for dialect in (mysql80, mysql84):
        assert [s.sql for s in dialect.set_read_only(True)] == ['SET GLOBAL super_read_only = 1']
        assert [s.sql for s in dialect.set_read_only(False)] == ['SET GLOBAL super_read_only = 0',
                                                                 'SET GLOBAL read_only = 0']
        assert dialect.stop_replica_io().sql == 'STOP REPLICA IO_THREAD'
        assert dialect.start_replica_io().sql == 'START REPLICA IO_THREAD'
        assert dialect.wait_for_gtid_function() == 'WAIT_FOR_EXECUTED_GTID_SET'
        with pytest.raises(ValueError):
            dialect.set_gtid_slave_pos('0-1-1')
    assert maria.stop_replica_io().sql == 'STOP SLAVE IO_THREAD'
    assert maria.wait_for_gtid_function() == 'MASTER_GTID_WAIT'
    wait = maria.wait_for_gtid("0-1-5", 3)
    assert (wait.sql, wait.params, wait.display) == ('SELECT MASTER_GTID_WAIT(%s, %s) AS result', ('0-1-5', 3),
                                                     "SELECT MASTER_GTID_WAIT('0-1-5', 3) AS result")
    pos = maria.set_gtid_slave_pos('0-1-5')
    assert (pos.sql, pos.params) == ('SET GLOBAL gtid_slave_pos = %s', ('0-1-5',))
    assert maria.kill_connection('12').sql == 'KILL CONNECTION 12'
    assert maria.lock_wait_timeout(0).sql == 'SET SESSION lock_wait_timeout = 1'
    assert maria.gtid_history_sql() == 'SELECT @@gtid_binlog_state AS gtid_binlog_state'
    assert mysql80.gtid_history_sql() == 'SELECT @@gtid_executed AS gtid_binlog_state'


def test_client_sessions_leave_out_server_and_replication_threads(make_cluster):
    from ansible_collections.distweb.infra.plugins.module_utils import mysql_cluster
    cluster = make_cluster('mariadb')
    primary = cluster['server1']
    app = primary.add_session('app')
    primary.add_session('repl', command='Binlog Dump')
    primary.add_session('repl', command='Binlog Dump GTID')
    primary.add_session('event_scheduler', command='Daemon')
    node = mysql_cluster.ClusterNode('server1', 'server1')
    assert node.connect(dict(login_user='admin', login_password='fake-Repl-pw-1'))
    assert [s['id'] for s in node.server.client_sessions()] == [app]
    node.close()


def test_is_connection_error():
    from ansible_collections.distweb.infra.plugins.module_utils import mysql_connection
    assert mysql_connection.is_connection_error(pymysql.err.OperationalError(2013, 'Lost connection'))
    assert mysql_connection.is_connection_error(pymysql.err.InterfaceError(0, ''))
    assert not mysql_connection.is_connection_error(pymysql.err.OperationalError(1045, 'Access denied'))
    assert not mysql_connection.is_connection_error(pymysql.err.OperationalError(1227, 'need SUPER'))


def test_node_login_params_and_tls(fake_net):
    from ansible_collections.distweb.infra.plugins.module_utils import mysql_connection
    params = mysql_connection.node_login_params(dict(login_user='admin', login_password='x', connect_timeout=4),
                                                'db1', 3307)
    assert (params['host'], params['port'], params['ssl'], params['read_timeout']) == ('db1', 3307, False, 12)
    conn, message, code = mysql_connection.mysql_connect_node(params, what='server9')
    assert conn is None and code == 2003 and message.startswith('Unable to connect to server9 (db1:3307)')
    bad = dict(params, ssl=True, ssl_ca='/nonexistent/ca.pem', ssl_verify_cert=True)
    conn, message, code = mysql_connection.mysql_connect_node(bad)
    assert conn is None and code is None and 'Invalid TLS settings' in message
    # the login itself is bounded by the connect timeout (12 s applies after it)
    assert (fake_net.connects[0]['connect_timeout'], fake_net.connects[0]['read_timeout']) == (4, 4)
    assert 'unix_socket' not in fake_net.connects[0] or not fake_net.connects[0]['unix_socket']


def test_unexpected_error_after_stopping_io_threads_puts_them_back(env):
    cluster = env.cluster
    cluster.down('server1')

    def revoke_monitor(server, sql):
        server.errors[r'^SHOW SLAVE STATUS$'] = pymysql.err.OperationalError(
            1227, 'Access denied; you need (at least one of) the SLAVE MONITOR privilege(s)')

    cluster['server3'].after.append((r'^STOP SLAVE IO_THREAD$', revoke_monitor))
    result = failed(env.run(), 'Reading the state of server3', 'SLAVE MONITOR',
                    'Put back: the IO threads of server2, server3 were started again')
    assert result['changed'] is True and result['new_primary'] is None
    assert cluster.changes('server2') == ['STOP SLAVE IO_THREAD', 'START SLAVE IO_THREAD']
    # started again, it retries the dead primary
    assert cluster['server3'].status['Slave_IO_Running'] == 'Connecting'


@pytest.mark.parametrize('flavor, missing', [('mariadb', 'RELOAD'), ('mysql', 'SYSTEM_VARIABLES_ADMIN')])
def test_missing_privilege_is_refused_before_anything_changes(env, flavor, missing):
    # a grant missing on the candidate would fail RESET SLAVE ALL after the
    # old primary was fenced: it is found before the first change
    cluster = env.setup(flavor)
    cluster['server2'].privileges = [p for p in cluster['server2'].privileges if p != missing]
    result = env.run(primary='server1')
    failed(result, 'lacks privileges', 'server2 lacks %s' % missing, 'nothing was changed')
    assert cluster.changes() == []
    assert result['changed'] is False


# ---------------------------------------------------------------------------
# Acknowledged writes, against the replicating fake (MariaDB)
# ---------------------------------------------------------------------------

def test_every_acknowledged_write_survives_a_dead_primary(env):
    cluster = env.cluster
    server2, server3 = cluster['server2'], cluster['server3']
    server2.wait_applies = False  # received, still in its relay log
    server3.receives = False  # a slow link: server2 acknowledges alone
    acknowledged = cluster.commit('server1', 3)
    assert cluster['server1'].global_status_value('Rpl_semi_sync_master_yes_tx') == '103'
    cluster.down('server1')
    server2.wait_applies = True
    server3.receives = True
    result = ok(env.run())
    assert (result['new_primary'], result['repointed']) == ('server2', ['server3'])
    assert result['candidate_position'] == '0-1-103'
    for name in ('server2', 'server3'):
        assert cluster[name].has_gtids(','.join(acknowledged)), (name, cluster[name].gtid)
    assert server2.read_only is False and server2.status is None
    assert (server3.status['Master_Host'], server3.status['Slave_IO_Running']) == ('server2', 'Yes')
    assert [w for w in result['_warnings'] if 'cannot be fenced' not in w] == []
    # the new primary takes writes and its replica acknowledges them
    cluster.commit('server2')
    assert server3.has_gtids('0-2-104')


def test_a_write_during_the_failover_is_refused_or_kept(env):
    cluster = env.cluster
    acknowledged = []
    refused = []

    def client_writes(server, sql):
        try:
            acknowledged.extend(cluster.commit('server1'))
        except Exception as exc:  # pylint: disable=broad-except
            refused.append(exc)

    cluster['server3'].after.append((r'^STOP SLAVE IO_THREAD$', client_writes))
    result = env.run(primary='server1')
    assert not result.get('failed'), result
    # fenced before the IO threads stopped: the write was refused, not lost
    assert acknowledged == [] and len(refused) == 1
    assert cluster['server1'].read_only is True and cluster['server2'].read_only is False


def test_a_dead_primary_of_a_lossless_cluster_is_judged_by_the_settings(env):
    # Rpl_semi_sync_slave_status says nothing of a dead primary: the
    # replicas' lossless settings (read before their IO threads stop) do
    cluster = env.cluster
    cluster.down('server1')
    result = ok(env.run())
    assert result['semi_sync'] == dict(
        active=True, source='settings', unverified=[],
        reason='server1 cannot be read; the cluster is set up for lossless semi-sync (never falls back to '
               'asynchronous replication) and every other node was read, so each acknowledged commit is on one of '
               'server2, server3')
    assert cluster['server3'].global_status_value('Rpl_semi_sync_slave_status') == 'ON'  # re-pointed and started


def test_a_replica_whose_relay_log_was_discarded_is_not_the_most_advanced(env):
    cluster = env.cluster
    cluster.down('server1')
    cluster.make_replica('server2', 'server1', received='0-1-103', applied='0-1-100')
    cluster.make_replica('server3', 'server1', received='0-1-102', applied='0-1-102')
    result = ok(env.run())
    assert result['new_primary'] == 'server2'
    assert cluster['server2'].has_gtids('0-1-103') and cluster['server3'].has_gtids('0-1-103')


def test_a_primary_that_fell_back_to_async_and_died_is_not_failed_over(env):
    # issue 14: an availability-first cluster (mysql_server_lossless false);
    # the replicas' Rpl_semi_sync_slave_status stays ON while their IO
    # threads retry, and says nothing about the primary
    cluster = env.cluster
    availability_first(cluster)
    for name in ('server2', 'server3'):
        cluster[name].receives = False
    acknowledged = cluster.commit('server1')  # acknowledged after the semi-sync timeout, on server1 only
    assert acknowledged == ['0-1-101']
    assert cluster['server1'].global_status_value('Rpl_semi_sync_master_no_tx') == '1'
    cluster.down('server1')
    for name in ('server2', 'server3'):
        assert cluster[name].status['Slave_IO_Running'] == 'Connecting'
        assert cluster[name].global_status_value('Rpl_semi_sync_slave_status') == 'ON'
    result = env.run()
    failed(result, 'not set up for lossless semi-sync', 'allow_data_loss')
    assert not any(not cluster[name].read_only for name in ('server2', 'server3'))
    assert not cluster['server2'].has_gtids(acknowledged[0])


def test_a_lossless_primary_cut_from_its_replicas_acknowledges_nothing_and_is_failed_over_without_loss(env):
    # the same partition in a lossless cluster: the commit waits, is never
    # acknowledged, and the failover loses no acknowledged write
    cluster = env.cluster
    acknowledged = cluster.commit('server1', 2)
    for name in ('server2', 'server3'):
        cluster[name].receives = False
    assert cluster.commit('server1', 3) == []
    assert cluster['server1'].global_status_value('Rpl_semi_sync_master_status') == 'ON'
    cluster.down('server1')
    result = ok(env.run())
    new = cluster[result['new_primary']]
    assert [gtid for dummy, gtid in cluster.acknowledged] == acknowledged
    assert new.has_gtids(','.join(acknowledged)) and not new.has_gtids('0-1-103')
    assert cluster['server1'].unacknowledged == ['0-1-103', '0-1-104', '0-1-105']


@pytest.mark.xfail(strict=True, reason='issue 14: a refusal after the IO threads were stopped starts them again '
                                       '(START SLAVE IO_THREAD) even when the old primary is dead; in MariaDB GTID mode '
                                       'that discards the unapplied relay log, the only copy of acknowledged writes')
def test_a_refusal_keeps_the_relay_logs_of_a_dead_primary_s_replicas(env):
    cluster = env.cluster
    cluster.down('server1')
    cluster.make_replica('server2', 'server1', received='0-1-102', applied='0-1-100')
    cluster['server2'].wait_applies = False
    result = failed(env.run(catchup_timeout=2), 'Refusing to promote server2')
    assert result['new_primary'] is None
    assert cluster['server2'].status['Gtid_IO_Pos'] == '0-1-102'


def test_an_errant_replica_is_not_re_pointed_into_a_strict_mode_stop(env):
    # server3 wrote 0-3-101 itself: replicating 0-2-101 from a new primary
    # would stop its SQL thread with error 1950
    cluster = env.cluster
    cluster.down('server1')
    cluster.set_gtid('server3', '0-3-101', slave_pos='0-1-100', binlog_state='0-1-100,0-3-101')
    result = ok(env.run())
    assert result['new_primary'] == 'server2' and result['repointed'] == []
    assert [e['name'] for e in result['excluded']] == ['server3']
    assert 'errant transactions' in result['excluded'][0]['reason'] and '0-3-101' in result['excluded'][0]['reason']
    assert cluster['server3'].status['Master_Host'] == 'server1'
    assert cluster['server3'].status['Slave_SQL_Running'] == 'Yes'


def test_check_mode_leaves_semi_sync_and_relay_logs_alone(env):
    cluster = env.cluster
    cluster.down('server1')
    cluster.make_replica('server2', 'server1', received='0-1-102', applied='0-1-100')
    cluster['server2'].wait_applies = False
    result = ok(env.run(check_mode=True))
    assert result['new_primary'] == 'server2' and cluster.changes() == []
    assert cluster['server2'].status['Gtid_IO_Pos'] == '0-1-102'
    assert cluster['server2'].status['Slave_IO_Running'] == 'Connecting'
    assert cluster['server2'].global_status_value('Rpl_semi_sync_slave_status') == 'ON'


def test_an_old_primary_made_writable_again_while_fenced_is_refused(env):
    cluster = env.cluster

    def writable_again(server, sql):
        server.read_only = False  # another tool, or an operator, turned it back

    cluster['server1'].after.append((r'^SET GLOBAL read_only = 1$', writable_again))
    result = failed(env.run(primary='server1'), 'server1 is still writable after SET GLOBAL read_only = 1')
    assert result['new_primary'] is None
    assert cluster.changes('server2') == [] and cluster.changes('server3') == []
    assert not any(not cluster[name].read_only for name in ('server2', 'server3'))


def test_a_promoted_node_that_stays_read_only_stops_the_run(env):
    cluster = env.cluster
    cluster.down('server1')

    def read_only_again(server, sql):
        server.read_only = True

    cluster['server2'].after.append((r'^SET GLOBAL read_only = 0$', read_only_again))
    result = failed(env.run(), 'Promoting server2 failed', 'still read-only after the promotion', 'finish by hand')
    assert result['changed'] is True and result['new_primary'] is None and result['promoted'] is True
    assert not any('CHANGE MASTER' in sql for sql in cluster.changes('server3'))


def test_a_late_write_on_the_fenced_old_primary_is_seen(env):
    # read_only does not stop a user with SUPER / READ_ONLY ADMIN: the old
    # primary is read after the replicas, so a write that got in while they
    # were read is still found
    cluster = env.cluster
    late = []

    def privileged_write(server, sql):
        if server.status and server.status['Slave_IO_Running'] == 'No' and not late:
            late.append(cluster.commit('server1', privileged=True))

    cluster['server2'].after.append((r'^SHOW SLAVE STATUS$', privileged_write))
    result = failed(env.run(primary='server1'), 'Refusing to fail over', '0-1-101')
    # no replica connected: the write waited for an acknowledgement...
    assert late == [[]]
    assert result['new_primary'] is None and cluster['server1'].has_gtids('0-1-101')
    assert cluster['server1'].read_only is False  # put back: the write is kept where it is
    # ...which came once the IO threads were started again
    assert cluster.acknowledged == [('server1', '0-1-101')]
    assert cluster['server2'].has_gtids('0-1-101') and cluster['server3'].has_gtids('0-1-101')


def test_a_replica_of_another_source_says_nothing_of_the_old_primary(env):
    cluster = env.cluster
    cluster.down('server1')
    # server3 replicates from a node outside the cluster, set up to fall
    # back to asynchronous replication: its settings are not server1's
    cluster['server3'].set_semi_sync(source_enabled=False, replica_enabled=True, replica_status=True, timeout=10000,
                                     wait_no_slave=False)
    cluster.make_replica('server3', 'server9', received='0-1-100')
    result = ok(env.run(primary='server1'))
    assert result['new_primary'] == 'server2' and result['semi_sync']['active'] is True
    assert [e['name'] for e in result['excluded']] == ['server3']
    assert cluster.changes('server3') == []


def test_a_replica_the_new_primary_cannot_serve_is_reported(env):
    # server3 lags; the candidate server2 has purged the binlog server3 needs
    cluster = env.cluster
    cluster.down('server1')
    cluster.make_replica('server2', 'server1', received='0-1-130')
    cluster.make_replica('server3', 'server1', received='0-1-100')
    cluster.purge_binlogs('server2', '0-1-120')
    result = ok(env.run(catchup_timeout=5))
    assert result['new_primary'] == 'server2' and result['repointed'] == []
    assert [e['name'] for e in result['repoint_failed']] == ['server3']
    assert 'error 1236' in result['repoint_failed'][0]['reason']
    assert 'required binlog files have been purged' in result['repoint_failed'][0]['reason']
    assert any('server3 was not re-pointed to the new primary server2' in w for w in result['_warnings'])
    assert 'Promoted server2 (old primary server1); re-pointing failed for server3' in result['msg']


def test_nodes_are_logged_in_to_at_once(env, monkeypatch):
    # Every login waits at a barrier for all three: logged in one after
    # another, the first would wait alone and the barrier would break.
    from ansible_collections.distweb.infra.plugins.module_utils import mysql_cluster
    barrier = threading.Barrier(3, timeout=10)
    real_connect = mysql_cluster.ClusterNode.connect

    def connect(node, params):
        barrier.wait()
        return real_connect(node, params)

    monkeypatch.setattr(mysql_cluster.ClusterNode, 'connect', connect)
    result = ok(env.run(primary='server1'))
    assert result['new_primary'] in ('server2', 'server3')
    assert not barrier.broken


def test_an_unsupported_node_fails_the_run_from_its_login_thread(env, monkeypatch):
    # an error raised while logging in to one node (in its own thread)
    # reaches the module and fails the run before anything changes
    from ansible_collections.distweb.infra.plugins.module_utils import mysql_dialect
    from ansible_collections.distweb.infra.plugins.module_utils import mysql_cluster
    real_connect = mysql_cluster.ClusterNode.connect

    def connect(node, params):
        if node.name == 'server3':
            raise mysql_dialect.UnsupportedServerError('MySQL 5.7 is not supported')
        return real_connect(node, params)

    monkeypatch.setattr(mysql_cluster.ClusterNode, 'connect', connect)
    result = failed(env.run(primary='server1'), 'A node is not supported: MySQL 5.7 is not supported')
    assert result['changed'] is False and env.cluster.changes() == []


# ---------------------------------------------------------------------------
# An old primary that only this node cannot reach
# ---------------------------------------------------------------------------

def cut_from_control_node(cluster, name='server1'):
    """The node is up and its replicas still replicate from it; only the
    control node's connections to it fail (a partition of one observer)."""
    cluster.net.errors[(name, 3306)] = pymysql.err.OperationalError(
        2003, "Can't connect to MySQL server on '%s' (timed out)" % name)


def live_primary_cluster(env):
    """server1 the primary of server2 and server3, cut from this node only."""
    cluster = env.cluster
    cut_from_control_node(cluster)
    return cluster


def test_an_old_primary_alive_for_its_replicas_is_not_failed_over(env):
    cluster = live_primary_cluster(env)
    result = failed(env.run(primary='server1'), 'Refusing to fail over: the old primary server1 cannot be reached',
                    'alive for its replicas', 'server2 (heartbeats', 'server3 (heartbeats', 'allow_live_primary',
                    'Nothing was changed')
    assert result['changed'] is False and cluster.changes() == []
    assert set(result['heard_from_old_primary']) == {'server2', 'server3'}
    assert cluster['server1'].read_only is False and cluster['server2'].status['Slave_IO_Running'] == 'Yes'


def test_check_mode_tells_the_same_refusal(env):
    cluster = live_primary_cluster(env)
    failed(env.run(check_mode=True, primary='server1'), 'alive for its replicas', 'Nothing was changed')
    assert cluster.changes() == []


def test_allow_live_primary_goes_on_with_a_warning(env):
    cluster = live_primary_cluster(env)
    result = ok(env.run(primary='server1', allow_live_primary=True))
    assert result['new_primary'] in ('server2', 'server3')
    assert any('alive for' in w and 'allow_live_primary' in w for w in result['_warnings'])
    assert cluster[result['new_primary']].read_only is False


def test_liveness_window_zero_does_not_listen(env):
    cluster = live_primary_cluster(env)
    result = ok(env.run(primary='server1', liveness_window=0))
    assert 'heard_from_old_primary' not in result
    assert cluster[result['new_primary']].read_only is False


def test_a_dead_primary_is_heard_by_nobody(env):
    cluster = env.cluster
    cluster.down('server1')
    result = ok(env.run(primary='server1'))
    assert result['heard_from_old_primary'] == {}
    assert result['new_primary'] in ('server2', 'server3')


def slow_old_primary_login(monkeypatch, cluster, seconds, name='server1'):
    """The login to ``name`` fails after ``seconds`` on the fake clock, and
    only once the other nodes have logged in and taken their first
    reading (as a login that waits out its timeout does)."""
    from ansible_collections.distweb.infra.plugins.module_utils import mysql_cluster
    real_connect = mysql_cluster.ClusterNode.connect
    others_read = threading.Event()
    readings = []
    real_signs = mysql_cluster.MySQLServer.source_signs

    def source_signs(server):
        signs = real_signs(server)
        readings.append(server)
        if len(readings) >= len(cluster.nodes()) - 1:
            others_read.set()
        return signs

    def connect(node, params):
        if node.name != name:
            return real_connect(node, params)
        assert others_read.wait(10), 'the other nodes were not read while this login waited'
        cluster.clock.now += seconds
        return real_connect(node, params)

    monkeypatch.setattr(mysql_cluster.MySQLServer, 'source_signs', source_signs)
    monkeypatch.setattr(mysql_cluster.ClusterNode, 'connect', connect)


def test_the_liveness_window_runs_while_the_old_primary_login_waits(env, monkeypatch):
    # the replicas are first read as they log in; a 2 s login to the dead
    # old primary leaves 0.5 s of the 2.5 s window to listen
    cluster = env.cluster
    cluster.down('server1')
    slow_old_primary_login(monkeypatch, cluster, 2.0)
    result = ok(env.run(primary='server1', liveness_window=2.5))
    assert result['heard_from_old_primary'] == {}
    assert result['phases']['listen'] == pytest.approx(0.5, abs=0.01)
    assert result['new_primary'] in ('server2', 'server3')


def test_a_login_slower_than_the_window_still_listens_once_more(env, monkeypatch):
    # the window is over by the time the old primary's login gave up: the
    # replicas are read once more, and a primary they still hear is not
    # failed over
    cluster = live_primary_cluster(env)
    slow_old_primary_login(monkeypatch, cluster, 5.0)
    result = failed(env.run(primary='server1', liveness_window=2.5), 'alive for its replicas', 'Nothing was changed')
    assert result['phases']['listen'] == pytest.approx(0.0, abs=0.01)
    assert cluster.changes() == []


def test_the_io_threads_are_stopped_at_once(env, monkeypatch):
    # each STOP SLAVE IO_THREAD waits for a replica whose IO thread hangs on
    # the old primary; the two wait together, not one after the other
    from ansible_collections.distweb.infra.plugins.module_utils import mysql_cluster
    cluster = env.cluster
    cluster.down('server1')
    both = threading.Barrier(2, timeout=10)
    real_stop = mysql_cluster.WholeClusterOperations.stop_io

    def stop_io(operation, node):
        both.wait()  # breaks (and fails the run) unless both stop at once
        return real_stop(operation, node)

    monkeypatch.setattr(mysql_cluster.WholeClusterOperations, 'stop_io', stop_io)
    result = ok(env.run(primary='server1'))
    assert not both.broken
    assert result['new_primary'] in ('server2', 'server3')


def test_a_node_presumed_unreachable_gets_a_short_login(env, monkeypatch):
    cluster = env.cluster
    cluster.down('server1')
    timeouts = {}
    real_connect = cluster.net.connect

    def connect(**kwargs):
        timeouts[kwargs['host']] = kwargs['connect_timeout']
        return real_connect(**kwargs)

    monkeypatch.setattr(mysql_connection.pymysql, 'connect', connect)
    plan = ok(env.run(check_mode=True, primary='server1', connect_timeout=2))
    assert plan['unreachable_nodes'] == ['server1']
    assert set(timeouts.values()) == {2}
    timeouts.clear()
    result = ok(env.run(primary='server1', connect_timeout=2, presumed_unreachable=plan['unreachable_nodes']))
    hosts = dict((n['name'], n['host']) for n in cluster.nodes())
    assert timeouts[hosts['server1']] == 0.5
    assert timeouts[hosts['server2']] == 2 and timeouts[hosts['server3']] == 2
    assert result['unreachable_nodes'] == ['server1'] and result['new_primary'] in ('server2', 'server3')


def test_a_node_presumed_unreachable_that_answers_is_fenced(env):
    # back in time for the short login: it is read and fenced as usual
    cluster = env.cluster
    result = ok(env.run(primary='server1', presumed_unreachable=['server1']))
    assert result['unreachable_nodes'] == []
    assert cluster['server1'].read_only is True


@pytest.mark.parametrize('overrides, message', [
    (dict(presumed_unreachable=['server9']), 'presumed_unreachable names server9, which is not one of the nodes'),
    (dict(presumed_unreachable_timeout=0), 'presumed_unreachable_timeout must be more than 0 seconds'),
])
def test_bad_presumed_unreachable_options_are_refused(env, overrides, message):
    failed(env.run(**overrides), message)
    assert env.cluster.changes() == []


def hung(cluster, name='server1'):
    """The node hangs: logins to it time out, and its replicas' IO threads
    stay connected (``Yes``) but hear nothing more from it."""
    cut_from_control_node(cluster, name)
    cluster[name].alive = False


@pytest.mark.parametrize('flavor', ['mariadb', 'mysql'])
def test_each_io_thread_connection_is_killed_before_its_stop(env, flavor):
    # a thread waiting for a hung source ignores STOP for seconds; KILL of
    # its connection wakes it at once
    cluster = env.setup(flavor)
    hung(cluster)
    stop = 'STOP SLAVE IO_THREAD' if flavor == 'mariadb' else 'STOP REPLICA IO_THREAD'
    result = ok(env.run(primary='server1'))
    for name in ('server2', 'server3'):
        order(cluster, (name, r'^KILL CONNECTION 900$'), (name, '^%s$' % stop))
        assert cluster[name].io_killed == 1
    assert result['new_primary'] in ('server2', 'server3')


def test_the_stop_follows_the_kill_after_the_settle_time(env):
    # STOP sent before the killed thread has reacted waits 2 s on MariaDB,
    # and nothing shows the reaction: the STOP follows IO_KILL_SETTLE later
    from ansible_collections.distweb.infra.plugins.module_utils.mysql_cluster import IO_KILL_SETTLE
    cluster = env.cluster
    hung(cluster)
    result = ok(env.run(primary='server1'))
    # both replicas paused at once, on the fake clock that both threads
    # advance: between one and two settle times, not two seconds
    assert IO_KILL_SETTLE <= result['phases']['stop_io'] <= 2 * IO_KILL_SETTLE + 0.01
    for name in ('server2', 'server3'):
        order(cluster, (name, r'^KILL CONNECTION 900$'), (name, r'^STOP SLAVE IO_THREAD$'))


def test_an_io_thread_gone_before_its_kill_is_no_error(env):
    cluster = env.cluster
    hung(cluster)
    cluster['server2'].errors[r'^KILL CONNECTION 900$'] = pymysql.err.InternalError(1094, 'Unknown thread id: 900')
    result = ok(env.run(primary='server1'))
    assert cluster.index('server2', r'^STOP SLAVE IO_THREAD$') is not None
    assert result['new_primary'] in ('server2', 'server3')


def test_a_refused_kill_of_an_io_thread_refuses_the_failover(env):
    cluster = env.cluster
    hung(cluster)
    cluster['server2'].errors[r'^KILL CONNECTION 900$'] = pymysql.err.OperationalError(
        1095, 'You are not owner of thread 900')
    result = failed(env.run(primary='server1'), 'Refusing to fail over: stopping the IO thread of server2 failed',
                    'not owner of thread 900')
    # server3's IO thread (stopped at the same time) is started again
    order(cluster, ('server3', r'^STOP SLAVE IO_THREAD$'), ('server3', r'^START SLAVE IO_THREAD$'))
    assert 'Put back: the IO threads of server3 were started again' in result['msg']
    assert result['new_primary'] is None


def test_a_negative_liveness_window_is_refused(env):
    failed(env.run(liveness_window=-1), 'liveness_window must not be negative')
    assert env.cluster.changes() == []


# ---------------------------------------------------------------------------
# The semi-sync source side follows the primary role
# ---------------------------------------------------------------------------

def test_the_promoted_node_s_source_side_goes_on_before_it_takes_writes(env):
    cluster = env.cluster
    result = ok(env.run(primary='server1'))
    assert result['new_primary'] == 'server2'
    order(cluster, ('server2', r'^RESET SLAVE ALL$'), ('server2', r'^SET GLOBAL rpl_semi_sync_master_enabled = ON$'),
          ('server2', r'^SET GLOBAL read_only = 0$'))
    # the others' source sides stay as they were: the fenced old primary's on
    # (read-only, bring it back with mysql_rejoin), server3's off
    assert not any('rpl_semi_sync' in sql for name, sql in cluster.changes() if name != 'server2')
    assert cluster['server3'].variables['rpl_semi_sync_master_enabled'] == 'OFF'
    # a write on the new primary returns once server3 has it
    assert cluster.commit('server2') == ['0-2-101'] and cluster['server3'].has_gtids('0-2-101')


def test_a_write_on_the_new_primary_waits_while_no_replica_is_re_pointed(env):
    cluster = env.cluster
    cluster['server3'].errors[r'^CHANGE MASTER'] = pymysql.err.OperationalError(1201, 'Could not initialize '
                                                                                      'master info structure')
    cluster.down('server1')
    result = ok(env.run())
    assert result['new_primary'] == 'server2' and result['repoint_failed'][0]['name'] == 'server3'
    # lossless: no replica, no acknowledgement (the documented price)
    assert cluster.commit('server2') == []
    assert cluster['server2'].semi_waiting


@pytest.mark.parametrize('how', ['no semi-sync', 'not a semi-sync replica', 'source side already on'])
def test_promotion_touches_the_source_side_only_of_a_semi_sync_replica_whose_source_is_off(env, how):
    cluster = env.cluster
    for server in cluster.servers.values():
        if how == 'no semi-sync':
            server.variables = {}
            server.global_status = {}
        elif how == 'not a semi-sync replica':
            server.variables['rpl_semi_sync_slave_enabled'] = 'OFF'
    if how == 'source side already on':
        cluster['server2'].variables['rpl_semi_sync_master_enabled'] = 'ON'
    result = ok(env.run(primary='server1', allow_data_loss=True))
    assert result['new_primary'] == 'server2' and cluster['server2'].read_only is False
    assert not any('rpl_semi_sync' in sql for dummy, sql in cluster.changes())
    assert 'promote server2: STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0' in result['plan']


def test_check_mode_plans_the_source_side_without_switching_it(env):
    cluster = env.cluster
    cluster.down('server1')
    result = ok(env.run(check_mode=True))
    assert 'promote server2: STOP SLAVE; RESET SLAVE ALL; SET GLOBAL rpl_semi_sync_master_enabled = ON; ' \
           'SET GLOBAL read_only = 0' in result['plan']
    assert cluster.changes() == [] and result['queries'] == []
    assert cluster['server2'].variables['rpl_semi_sync_master_enabled'] == 'OFF'


def test_a_refusal_starts_the_io_threads_again_and_leaves_none_stopped(env):
    cluster = env.cluster
    cluster['server2'].wait_applies = False
    cluster.make_replica('server2', 'server1', received='0-1-100', applied='0-1-99')
    cluster['server3'].status.update(Slave_SQL_Running='No', Last_SQL_Errno=1146, Last_SQL_Error='no table')
    result = failed(env.run(primary='server1', catchup_timeout=2), 'Refusing to promote server2',
                    'the IO threads of server2, server3 were started again')
    assert 'io_left_stopped' not in result or result['io_left_stopped'] == []
    for name in ('server2', 'server3'):
        assert cluster[name].status['Slave_IO_Running'] == 'Yes', name
        assert cluster.changes(name)[-1] == 'START SLAVE IO_THREAD'
    assert not any('rpl_semi_sync' in sql for dummy, sql in cluster.changes())


@pytest.mark.parametrize('version', ['8.0.36', '8.4.3'])
def test_mysql_promotion_switches_the_source_side_on_by_its_name(env, version):
    cluster = env.setup('mysql', version=version)
    cluster.down('server1')
    result = ok(env.run())
    assert result['new_primary'] == 'server2'
    order(cluster, ('server2', r'^RESET REPLICA ALL$'), ('server2', r'^SET GLOBAL rpl_semi_sync_source_enabled = ON$'),
          ('server2', r'^SET GLOBAL super_read_only = 0$'))
    assert cluster['server2'].global_status_value('Rpl_semi_sync_source_status') == 'ON'


def test_mysql_promotion_with_the_older_semi_sync_plugin_names(env):
    # the source side is switched by the name the server has (the older
    # rpl_semi_sync_master plugin, the only one before MySQL 8.0.26)
    cluster = env.setup('mysql', version='8.0.23')
    assert 'rpl_semi_sync_master_enabled' in cluster['server2'].variables
    cluster.down('server1')
    result = ok(env.run())
    assert result['new_primary'] == 'server2'
    assert cluster['server2'].global_status_value('Rpl_semi_sync_master_status') == 'ON'


# ---------------------------------------------------------------------------
# routers_fenced=false: the database routers fence the old primary after the
# promotion when nothing they send it can be acknowledged, else first
# ---------------------------------------------------------------------------

def test_with_the_routers_unfenced_a_dead_lossless_primary_is_failed_over_in_one_run(env):
    cluster = env.cluster
    cluster.down('server1')
    result = ok(env.run(routers_fenced=False))
    assert result['changed'] is True and result['promoted'] is True
    assert result['routers_fence_first'] is False
    assert result['new_primary'] == 'server2' and cluster['server2'].read_only is False
    assert 'the database routers fence server1 after the promotion: it acknowledges nothing once its replicas\' ' \
           'IO threads are stopped' in result['plan']
    # its replicas stopped listening to it before the promotion
    order(cluster, ('server2', r'^STOP SLAVE IO_THREAD$'), ('server3', r'^STOP SLAVE IO_THREAD$'),
          ('server2', r'^SET GLOBAL read_only = 0$'))


def test_with_the_routers_unfenced_check_mode_says_they_follow_and_changes_nothing(env):
    cluster = env.cluster
    cluster.down('server1')
    result = ok(env.run(check_mode=True, routers_fenced=False))
    assert result['changed'] is True and result['promoted'] is False
    assert result['routers_fence_first'] is False
    assert result['msg'].startswith('Would promote server2 (old primary server1)')
    assert cluster.changes() == []


def test_with_the_routers_unfenced_a_reachable_old_primary_waits_for_them(env):
    cluster = env.cluster
    result = ok(env.run(primary='server1', routers_fenced=False))
    assert result['changed'] is False and result['promoted'] is False
    assert result['routers_fence_first'] is True
    assert 'once the database routers have fenced server1 (it answers here' in result['msg']
    assert 'Nothing was changed' in result['msg']
    assert cluster.changes() == [] and cluster['server1'].read_only is False
    # the run that follows the routers' fence fails over
    result = ok(env.run(primary='server1'))
    assert result['promoted'] is True and 'routers_fence_first' not in result


@pytest.mark.parametrize('check_mode', [False, True])
def test_with_the_routers_unfenced_an_availability_first_cluster_waits_for_them(env, check_mode):
    cluster = env.cluster
    availability_first(cluster)
    cluster.down('server1')
    result = ok(env.run(check_mode=check_mode, routers_fenced=False, allow_data_loss=True))
    assert result['routers_fence_first'] is True and result['promoted'] is False
    assert result['changed'] is check_mode
    assert any(line.startswith('the database routers fence server1 before the promotion: lossless '
                               'semi-sync does not stand for it') for line in result['plan']), result['plan']
    assert cluster.changes() == []


def test_with_the_routers_unfenced_a_replica_lost_during_the_run_stops_it_before_the_promotion(env):
    # allow_data_loss lets the decision go on without server3, which may
    # still hear the old primary: the routers must fence it first after all
    cluster = env.cluster
    cluster.down('server1')

    def lost(server, sql):
        cluster.down('server3')

    cluster['server3'].after.append((r'^STOP SLAVE IO_THREAD$', lost))
    result = failed(env.run(routers_fenced=False, allow_data_loss=True),
                    'Refusing to fail over before the database routers have fenced server1',
                    'lossless semi-sync does not stand for it', 'Run it again')
    assert result['promoted'] is False
    assert cluster['server2'].read_only is True and cluster['server2'].status['Slave_IO_Running'] != 'No'
