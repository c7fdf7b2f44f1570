# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fake cluster of conftest.py behaves as MariaDB 10.11 does where the
failover's safety depends on it. Read through the collection's own client
code (``ClusterNode.read_state``), as the modules read it."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pymysql
import pytest

from ansible_collections.distweb.infra.plugins.module_utils import mysql_cluster

LOGIN = dict(login_user='admin', login_password='fake-Repl-pw-1', connect_timeout=5)


def read(name):
    """The node's state as the modules read it, or None when unreachable."""
    node = mysql_cluster.ClusterNode(name, name)
    if not node.connect(LOGIN):
        return None
    try:
        return node.read_state(semi_sync=True, history=True)
    finally:
        node.close()


def run(server, sql, params=None):
    return server.handle(sql, params)


@pytest.fixture
def cluster(make_cluster):
    return make_cluster('mariadb')


def availability_first(cluster, timeout=10000):
    """The nodes fall back to asynchronous replication after ``timeout``
    ms without an acknowledgement (mysql_server_lossless false)."""
    for server in cluster.servers.values():
        server.variables['rpl_semi_sync_master_timeout'] = str(timeout)


# ---------------------------------------------------------------------------
# Semi-sync
# ---------------------------------------------------------------------------

def test_the_default_cluster_is_lossless_semi_sync(cluster):
    primary = read('server1')['semi_sync']
    assert (primary['source_enabled'], primary['source_status'], primary['clients']) == (True, True, 2)
    settings = (primary['wait_point'], primary['timeout_ms'], primary['wait_no_replica'])
    assert settings == ('AFTER_SYNC', 4294967295, True)
    assert primary['lossless'] is True
    for name in ('server2', 'server3'):
        semi = read(name)['semi_sync']
        assert semi['replica_status'] is True and semi['lossless'] is True
        # the source side is on on the primary only
        assert (semi['source_enabled'], semi['source_status'], semi['clients']) == (False, False, 0)
    assert cluster['server1'].variables['rpl_semi_sync_master_wait_no_slave'] == 'ON'


def test_stop_io_thread_turns_the_replica_side_off_and_drops_a_client(cluster):
    availability_first(cluster)
    run(cluster['server2'], 'STOP SLAVE IO_THREAD')
    assert read('server2')['semi_sync']['replica_status'] is False
    primary = read('server1')['semi_sync']
    assert primary['clients'] == 1 and primary['source_status'] is True
    run(cluster['server3'], 'STOP SLAVE IO_THREAD')
    primary = read('server1')['semi_sync']
    # no replica left: the status stays ON (wait_no_slave) until a commit waits in vain
    assert primary['clients'] == 0 and primary['source_status'] is True
    before = cluster.clock.now
    cluster.commit('server1')
    primary = read('server1')['semi_sync']
    assert primary['source_status'] is False and primary['no_tx'] == 1
    assert cluster.clock.now - before == 10.0  # rpl_semi_sync_master_timeout
    # started again, the replica gets the commit and semi-sync switches ON again
    run(cluster['server2'], 'START SLAVE IO_THREAD')
    assert read('server2')['semi_sync']['replica_status'] is True
    assert cluster['server2'].received() == '0-1-101'
    primary = read('server1')['semi_sync']
    assert primary['source_status'] is True and primary['clients'] == 1
    cluster.commit('server1')
    assert read('server1')['semi_sync']['yes_tx'] == 101


def test_wait_no_slave_off_commits_asynchronously_with_the_status_on(cluster):
    cluster['server1'].wait_no_slave = False
    for name in ('server2', 'server3'):
        run(cluster[name], 'STOP SLAVE IO_THREAD')
    before = cluster.clock.now
    cluster.commit('server1', 2)
    primary = read('server1')['semi_sync']
    assert primary['source_status'] is True and primary['clients'] == 0 and primary['no_tx'] == 2
    assert cluster.clock.now == before


def test_a_slow_replica_makes_the_primary_fall_back_to_async(cluster):
    availability_first(cluster)
    for name in ('server2', 'server3'):
        cluster[name].receives = False
    acknowledged = cluster.commit('server1')
    assert acknowledged == ['0-1-101']
    primary = read('server1')['semi_sync']
    assert primary['source_status'] is False and primary['fallen_back_to_async'] is True
    assert primary['clients'] == 2 and primary['no_tx'] == 1
    # the replicas cannot tell
    assert read('server2')['semi_sync']['replica_status'] is True
    assert read('server2')['gtid_received'] == '0-1-100'


def test_a_dead_primary_leaves_its_replicas_connecting_with_semi_sync_on(cluster):
    cluster.down('server1')
    assert read('server1') is None
    for name in ('server2', 'server3'):
        state = read(name)
        assert state['io_thread'] == 'Connecting' and state['io_running'] is False
        assert state['last_io_errno'] == 2003 and "Can't connect to MySQL server on 'server1'" in \
            state['last_io_error']
        assert state['sql_running'] is True
        # what MariaDB shows: ON while the IO thread retries, whatever the dead primary did
        assert state['semi_sync']['replica_status'] is True
    run(cluster['server2'], 'STOP SLAVE IO_THREAD')
    assert read('server2')['semi_sync']['replica_status'] is False


def test_the_replica_side_is_on_even_when_the_primary_had_semi_sync_disabled(cluster):
    cluster['server1'].variables['rpl_semi_sync_master_enabled'] = 'OFF'
    run(cluster['server2'], 'STOP SLAVE')
    run(cluster['server2'], 'START SLAVE')
    assert read('server2')['semi_sync']['replica_status'] is True
    assert read('server1')['semi_sync']['clients'] == 0


def test_a_restarted_primary_takes_its_replicas_back(cluster):
    cluster.down('server1')
    cluster.up('server1')
    state = read('server1')
    assert state['read_only'] is True
    # the source side as the configuration file has it: OFF
    assert state['semi_sync']['source_enabled'] is False and state['semi_sync']['lossless'] is True
    assert state['semi_sync']['no_tx'] == 0 and state['semi_sync']['clients'] == 0
    assert read('server2')['io_thread'] == 'Yes' and read('server2')['last_io_errno'] == 0
    run(cluster['server1'], 'SET GLOBAL rpl_semi_sync_master_enabled = ON')
    assert read('server1')['semi_sync']['clients'] == 2


# ---------------------------------------------------------------------------
# Lossless semi-sync: a commit waits until a replica has it
# ---------------------------------------------------------------------------

def test_lossless_a_commit_no_replica_received_waits_for_one(cluster):
    for name in ('server2', 'server3'):
        cluster[name].receives = False
    before = cluster.clock.now
    assert cluster.commit('server1') == []  # the client has no answer
    assert cluster.clock.now == before
    primary = read('server1')['semi_sync']
    assert primary['source_status'] is True and primary['fallen_back_to_async'] is False
    assert (primary['yes_tx'], primary['no_tx']) == (100, 0)
    # in the binlog (AFTER_SYNC), not acknowledged, its session waits
    server1 = cluster['server1']
    assert server1.has_gtids('0-1-101') and cluster.acknowledged == []
    [entry] = server1.semi_waiting
    row = [r for r in server1.processlist if r['Id'] == entry['session']][0]
    assert row['State'] == 'Waiting for semi-sync ACK from slave'
    # a replica that gets it (its IO thread reconnects) acknowledges it
    cluster['server2'].receives = True
    run(cluster['server2'], 'STOP SLAVE IO_THREAD')
    run(cluster['server2'], 'START SLAVE IO_THREAD')
    assert cluster.acknowledged == [('server1', '0-1-101')] and server1.semi_waiting == []
    assert read('server1')['semi_sync']['yes_tx'] == 101
    assert row['Command'] == 'Sleep'


def test_lossless_a_primary_without_replicas_acknowledges_nothing(cluster):
    for name in ('server2', 'server3'):
        run(cluster[name], 'STOP SLAVE IO_THREAD')
    assert cluster.commit('server1', 3) == []
    primary = read('server1')['semi_sync']
    assert primary['clients'] == 0 and primary['source_status'] is True and primary['no_tx'] == 0
    assert len(cluster['server1'].semi_waiting) == 3
    # one replica back: every waiting commit is acknowledged at once
    run(cluster['server3'], 'START SLAVE IO_THREAD')
    assert [gtid for dummy, gtid in cluster.acknowledged] == ['0-1-101', '0-1-102', '0-1-103']
    assert cluster.commit('server1') == ['0-1-104']


def test_lossless_killing_a_waiting_session_answers_its_client_with_an_error(cluster):
    for name in ('server2', 'server3'):
        cluster[name].receives = False
    cluster.commit('server1')
    server1 = cluster['server1']
    session = server1.semi_waiting[0]['session']
    run(server1, 'KILL CONNECTION %d' % session)
    assert server1.semi_waiting == [] and cluster.acknowledged == []
    assert server1.unacknowledged == ['0-1-101']
    assert server1.has_gtids('0-1-101')  # committed locally all the same
    assert read('server1')['semi_sync']['no_tx'] == 1


def test_lossless_switching_the_source_side_off_acknowledges_the_waiting_commits(cluster):
    for name in ('server2', 'server3'):
        cluster[name].receives = False
    cluster.commit('server1', 2)
    server1 = cluster['server1']
    run(server1, 'SET GLOBAL rpl_semi_sync_master_enabled = OFF')
    # disable_master -> switch_off: the waiting clients get success
    assert cluster.acknowledged == [('server1', '0-1-101'), ('server1', '0-1-102')]
    assert server1.semi_waiting == []
    semi = read('server1')['semi_sync']
    assert (semi['source_enabled'], semi['source_status'], semi['clients'], semi['no_tx']) == (False, False, 0, 2)
    assert server1.variables['rpl_semi_sync_master_enabled'] == 'OFF'
    # asynchronous from now on
    assert cluster.commit('server1') == ['0-1-103']


def test_switching_the_source_side_on_turns_the_status_on_with_or_without_replicas(cluster):
    server2 = cluster['server2']
    run(server2, 'SET GLOBAL rpl_semi_sync_master_enabled = ON')
    semi = read('server2')['semi_sync']
    assert (semi['source_enabled'], semi['source_status'], semi['clients']) == (True, True, 0)
    run(server2, 'SET GLOBAL rpl_semi_sync_master_enabled = ON')  # again: nothing changes
    assert read('server2')['semi_sync']['source_status'] is True
    # server3 made a replica of server2: counted as a semi-sync client
    run(cluster['server3'], 'STOP SLAVE')
    run(cluster['server3'], 'CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USE_GTID=slave_pos',
        ('server2',))
    run(cluster['server3'], 'START SLAVE')
    assert read('server2')['semi_sync']['clients'] == 1


@pytest.mark.parametrize('flavor, version, sql, known', [
    ('mariadb', None, 'SET GLOBAL rpl_semi_sync_master_enabled = ON', True),
    ('mariadb', None, 'SET GLOBAL rpl_semi_sync_source_enabled = ON', False),
    ('mysql', '8.0.36', 'SET GLOBAL rpl_semi_sync_source_enabled = ON', True),
    ('mysql', '8.0.36', 'SET GLOBAL rpl_semi_sync_master_enabled = ON', False),
    ('mysql', '8.0.23', 'SET GLOBAL rpl_semi_sync_master_enabled = ON', True),
    ('mysql', '8.0.23', 'SET GLOBAL rpl_semi_sync_source_enabled = ON', False),
])
def test_the_source_switch_has_the_name_the_server_has(make_cluster, flavor, version, sql, known):
    cluster = make_cluster(flavor, version=version)
    server2 = cluster['server2']
    if known:
        run(server2, sql)
        assert read('server2')['semi_sync']['source_enabled'] is True
    else:
        with pytest.raises(pymysql.err.OperationalError) as caught:
            run(server2, sql)
        assert caught.value.args[0] == 1193 and 'Unknown system variable' in caught.value.args[1]
        assert read('server2')['semi_sync']['source_enabled'] is False


def test_a_node_without_semi_sync_does_not_know_the_switch(cluster):
    server2 = cluster['server2']
    server2.variables = {}
    with pytest.raises(pymysql.err.OperationalError) as caught:
        run(server2, 'SET GLOBAL rpl_semi_sync_master_enabled = ON')
    assert caught.value.args[0] == 1193


def test_lossless_a_replica_with_its_source_side_on_stops_applying(cluster):
    # with log_slave_updates it binlogs what it applies and, a semi-sync
    # source with no replica of its own, waits for an acknowledgement forever
    server2 = cluster['server2']
    run(server2, 'SET GLOBAL rpl_semi_sync_master_enabled = ON')
    cluster.commit('server1', 2)  # server3 acknowledges them
    assert [gtid for dummy, gtid in cluster.acknowledged] == ['0-1-101', '0-1-102']
    state = read('server2')
    assert state['gtid_received'] == '0-1-102'
    # the first one binlogged, not committed; the next one not applied
    assert state['gtid_slave_pos'] == '0-1-100'
    assert server2.has_gtids('0-1-101') and not server2.has_gtids('0-1-102')
    assert server2.status['Slave_SQL_Running_State'] == 'Waiting for semi-sync ACK from slave'
    before = cluster.clock.now
    assert run(server2, 'SELECT MASTER_GTID_WAIT(%s, %s) AS result', ('0-1-102', 2)) == [{'result': -1}]
    assert cluster.clock.now - before == 2
    # switched off, it commits and goes on
    run(server2, 'SET GLOBAL rpl_semi_sync_master_enabled = OFF')
    assert read('server2')['gtid_slave_pos'] == '0-1-102' and server2.has_gtids('0-1-102')
    assert server2.sql_waiting is None


def test_lossless_a_replica_with_its_source_side_on_applies_while_a_replica_of_its_own_acknowledges(cluster):
    server2, server3 = cluster['server2'], cluster['server3']
    run(server2, 'SET GLOBAL rpl_semi_sync_master_enabled = ON')
    run(server3, 'STOP SLAVE')
    run(server3, 'CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USE_GTID=slave_pos', ('server2',))
    run(server3, 'START SLAVE')
    cluster.commit('server1', 2)
    assert read('server2')['gtid_slave_pos'] == '0-1-102' and read('server3')['gtid_slave_pos'] == '0-1-102'
    assert server2.sql_waiting is None


def test_stop_slave_ends_the_wait_of_the_sql_thread(cluster):
    server2 = cluster['server2']
    run(server2, 'SET GLOBAL rpl_semi_sync_master_enabled = ON')
    cluster.commit('server1')
    assert server2.sql_waiting is not None and read('server2')['gtid_slave_pos'] == '0-1-100'
    run(server2, 'STOP SLAVE')
    assert server2.sql_waiting is None and read('server2')['gtid_slave_pos'] == '0-1-101'


def test_availability_first_a_replica_with_its_source_side_on_lags_by_the_timeout(cluster):
    availability_first(cluster)
    server2 = cluster['server2']
    run(server2, 'SET GLOBAL rpl_semi_sync_master_enabled = ON')
    before = cluster.clock.now
    cluster.commit('server1')
    assert cluster.clock.now - before == 10.0
    semi = read('server2')['semi_sync']
    assert semi['source_status'] is False and semi['lossless'] is False
    assert read('server2')['gtid_slave_pos'] == '0-1-101'


def test_a_dead_node_s_waiting_clients_get_no_answer_and_its_sql_thread_s_commit_survives(cluster):
    server1, server2 = cluster['server1'], cluster['server2']
    for name in ('server2', 'server3'):
        cluster[name].receives = False
    cluster.commit('server1')
    cluster.down('server1')
    assert server1.unacknowledged == ['0-1-101'] and cluster.acknowledged == []
    cluster.up('server1')
    assert server1.semi_waiting == [] and len(server1.processlist) == 2
    # a replica waiting for its own acknowledgement, restarted: crash
    # recovery commits what it binlogged
    server2.receives = True
    run(server2, 'SET GLOBAL rpl_semi_sync_master_enabled = ON')
    run(server2, 'STOP SLAVE IO_THREAD')
    run(server2, 'START SLAVE IO_THREAD')
    assert server2.sql_waiting is not None
    cluster.down('server2')
    cluster.up('server2')
    assert server2.sql_waiting is None and server2.gtid['gtid_slave_pos'] == '0-1-101'
    assert server2.variables['rpl_semi_sync_master_enabled'] == 'OFF'


# ---------------------------------------------------------------------------
# Relay logs, MASTER_GTID_WAIT, GTID strict mode, purged binlogs
# ---------------------------------------------------------------------------

def test_master_gtid_wait_applies_the_relay_log_and_keeps_errant_gtids(cluster):
    cluster.down('server1')
    server3 = cluster.make_replica('server3', 'server1', received='0-1-104', applied='0-1-100')
    cluster.set_gtid('server3', '0-1-100,1-3-5', slave_pos='0-1-100', binlog_state='0-1-100,1-3-5')
    # the SQL thread may be no further than the position waited for
    assert run(server3, 'SELECT MASTER_GTID_WAIT(%s, %s) AS result', ('0-1-102', 1)) == [{'result': 0}]
    assert server3.gtid['gtid_slave_pos'] == '0-1-102'
    assert run(server3, 'SELECT MASTER_GTID_WAIT(%s, %s) AS result', ('0-1-104', 1)) == [{'result': 0}]
    assert server3.gtid['gtid_slave_pos'] == '0-1-104'
    assert server3.gtid['gtid_binlog_pos'] == '0-1-104,1-3-5'
    assert server3.gtid['gtid_binlog_state'] == '0-1-104,1-3-5'
    # a position not received is not reached: the wait times out
    before = cluster.clock.now
    assert run(server3, 'SELECT MASTER_GTID_WAIT(%s, %s) AS result', ('0-1-105', 3)) == [{'result': -1}]
    assert cluster.clock.now - before == 3


def test_a_stuck_sql_thread_times_the_wait_out(cluster):
    server2 = cluster.make_replica('server2', 'server1', received='0-1-100', applied='0-1-99')
    server2.wait_applies = False
    assert run(server2, 'SELECT MASTER_GTID_WAIT(%s, %s) AS result', ('0-1-100', 1)) == [{'result': -1}]
    assert server2.gtid['gtid_slave_pos'] == '0-1-99'


@pytest.mark.parametrize('statements', [
    ['STOP SLAVE IO_THREAD', 'START SLAVE IO_THREAD'],
    ['STOP SLAVE', 'START SLAVE'],
    ['STOP SLAVE', ('CHANGE MASTER TO MASTER_HOST=%s', ('server1',))],
])
def test_restarting_the_io_thread_discards_the_relay_log(cluster, statements):
    cluster.down('server1')
    server2 = cluster.make_replica('server2', 'server1', received='0-1-102', applied='0-1-100')
    server2.wait_applies = False
    for sql in statements:
        run(server2, *(sql if isinstance(sql, tuple) else (sql,)))
    # fetched again from gtid_slave_pos, from a source that is gone
    assert server2.received() == '0-1-100'
    assert read('server2')['gtid_received'] == '0-1-100'


def test_a_restarted_io_thread_fetches_again_from_a_live_source(cluster):
    server2 = cluster.make_replica('server2', 'server1', received='0-1-100', applied='0-1-99')
    server2.wait_applies = False
    run(server2, 'STOP SLAVE IO_THREAD')
    cluster.commit('server1', 2)
    assert server2.received() == '0-1-100'
    run(server2, 'START SLAVE IO_THREAD')
    assert server2.received() == '0-1-102'


def test_start_slave_from_a_gtid_the_source_lacks_fails_with_1236(cluster):
    # server1 came back with a commit the new primary server2 never got
    server2 = cluster['server2']
    run(server2, 'STOP SLAVE')
    run(server2, 'RESET SLAVE ALL')
    server2.read_only = False
    cluster.commit('server2', 3)
    old = cluster['server1']
    cluster.set_gtid('server1', '0-1-101', slave_pos='', binlog_state='0-1-101')
    old.read_only = True
    run(old, 'SET GLOBAL gtid_slave_pos = %s', ('0-1-101',))
    run(old, 'CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USE_GTID=slave_pos', ('server2',))
    run(old, 'START SLAVE')
    state = read('server1')
    assert state['io_thread'] == 'No' and state['last_io_errno'] == 1236
    assert ("connecting slave requested to start from GTID 0-1-101, which is not in the master's binlog. Since the "
            "master's binlog contains GTIDs with higher sequence numbers") in state['last_io_error']
    assert state['semi_sync']['replica_status'] is False


def test_start_slave_after_the_source_purged_what_it_needs_fails_with_1236(cluster):
    server3 = cluster['server3']
    run(server3, 'STOP SLAVE')
    cluster.commit('server1', 20)
    cluster.purge_binlogs('server1', '0-1-110')
    run(server3, 'START SLAVE')
    state = read('server3')
    assert state['last_io_errno'] == 1236 and 'required binlog files have been purged' in state['last_io_error']
    assert state['gtid_slave_pos'] == '0-1-100'
    # server2 is past the purge point: it connects
    run(cluster['server2'], 'STOP SLAVE')
    run(cluster['server2'], 'START SLAVE')
    assert read('server2')['io_thread'] == 'Yes' and read('server2')['gtid_slave_pos'] == '0-1-120'


def test_strict_mode_stops_the_sql_thread_on_an_errant_gtid_with_1950(cluster):
    # server3 wrote 0-3-101 itself (errant, same domain), then the primary commits
    cluster.set_gtid('server3', '0-3-101', slave_pos='0-1-100', binlog_state='0-1-100,0-3-101')
    cluster.commit('server1')
    state = read('server3')
    assert state['sql_running'] is False and state['last_sql_errno'] == 1950
    assert ('An attempt was made to binlog GTID 0-1-101 which would create an out-of-order sequence number with '
            'existing GTID 0-3-101, and gtid strict mode is enabled') in state['last_sql_error']
    assert state['gtid_slave_pos'] == '0-1-100' and state['gtid_received'] == '0-1-101'
    assert read('server2')['gtid_slave_pos'] == '0-1-101'


def test_a_replica_of_an_unknown_host_retries(cluster):
    cluster.make_replica('server3', 'server9', received='0-1-100')
    run(cluster['server3'], 'STOP SLAVE')
    run(cluster['server3'], 'START SLAVE')
    state = read('server3')
    assert state['io_thread'] == 'Connecting' and state['last_io_errno'] == 2005


def test_an_alias_is_an_address_of_the_same_node(cluster):
    cluster.alias('server2', 'db2.internal', 3307)
    server3 = cluster['server3']
    run(server3, 'STOP SLAVE')
    run(server3, 'CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3307', ('db2.internal',))
    run(server3, 'START SLAVE')
    assert server3.source() is cluster['server2']
    assert read('server3')['io_thread'] == 'Yes'
