# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fake cluster of conftest.py behaves as MariaDB 10.11 does where the
failover's safety depends on it. Read through the collection's own client
code (``ClusterNode.read_state``), as the modules read it."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest

from ansible_collections.distweb.infra.plugins.module_utils import mysql as mysql_utils

LOGIN = dict(login_user='admin', login_password='fake-Repl-pw-1', connect_timeout=5)


def read(name):
    """The node's state as the modules read it, or None when unreachable."""
    node = mysql_utils.ClusterNode(name, name)
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


# ---------------------------------------------------------------------------
# Semi-sync
# ---------------------------------------------------------------------------

def test_the_default_cluster_is_lossless_semi_sync(cluster):
    primary = read('server1')['semi_sync']
    assert (primary['source_enabled'], primary['source_status'], primary['clients']) == (True, True, 2)
    assert primary['wait_point'] == 'AFTER_SYNC'
    for name in ('server2', 'server3'):
        assert read(name)['semi_sync']['replica_status'] is True


def test_stop_io_thread_turns_the_replica_side_off_and_drops_a_client(cluster):
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
    assert state['semi_sync']['no_tx'] == 0 and state['semi_sync']['clients'] == 2
    assert read('server2')['io_thread'] == 'Yes' and read('server2')['last_io_errno'] == 0


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
