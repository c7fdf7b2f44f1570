# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest

from ansible_collections.distweb.infra.plugins.module_utils import topology

U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562'
U2 = '4f22ab58-82db-22f2-8f44-d91bb853a673'
U3 = '5a33bc69-93ec-33a3-9a55-ea2cc964b784'
UUIDS = {'server1': U1, 'server2': U2, 'server3': U3}

# the settings the mysql_server role writes with mysql_server_lossless
LOSSLESS = dict(available=True, replica_enabled=True, wait_point='AFTER_SYNC', wait_no_replica=True,
                timeout_ms=topology.LOSSLESS_TIMEOUT_MS)
# the primary: its source side switched on
SEMI_ON = dict(LOSSLESS, source_enabled=True, source_status=True, replica_status=False, yes_tx=100, no_tx=0)
# a replica: its source side off, a semi-sync replica of its primary
SEMI_REPLICA = dict(LOSSLESS, source_enabled=False, source_status=False, replica_status=True, yes_tx=0, no_tx=0)


# ---------------------------------------------------------------------------
# Node states
# ---------------------------------------------------------------------------

def maria_primary(name='server1', binlog='0-1-100', reachable=True, semi=None, **extra):
    values = dict(name=name, host=name, reachable=reachable, flavor='mariadb', server_id=int(name[-1]),
                  read_only=False, gtid_binlog=binlog, gtid_binlog_state=binlog, gtid_slave_pos='',
                  gtid_executed=binlog, semi_sync=dict(SEMI_ON) if semi is None else semi)
    if not reachable:
        values = dict(name=name, host=name, reachable=False, error='connection refused')
    values.update(extra)
    return topology.node_state(**values)


def source_id(source):
    return int(source[-1]) if source[-1].isdigit() else 0


def maria_replica(name, received, applied=None, binlog=None, source='server1', semi=None, **extra):
    applied = received if applied is None else applied
    values = dict(name=name, host=name, reachable=True, flavor='mariadb', server_id=int(name[-1]), read_only=True,
                  configured=True, source_host=source, source_port=3306, source_server_id=source_id(source),
                  io_running=False, sql_running=True, io_thread='No', sql_thread='Yes',
                  gtid_received=received, gtid_slave_pos=applied, gtid_binlog=applied if binlog is None else binlog,
                  gtid_executed=applied, semi_sync=dict(SEMI_REPLICA) if semi is None else semi, seconds_behind=0)
    values.update(extra)
    return topology.node_state(**values)


def mysql_primary(name='server1', executed=U1 + ':1-100', reachable=True, semi=None, **extra):
    values = dict(name=name, host=name, reachable=reachable, flavor='mysql', server_id=int(name[-1]),
                  server_uuid=UUIDS[name], read_only=False, gtid_binlog=executed, gtid_executed=executed,
                  semi_sync=dict(SEMI_ON) if semi is None else semi)
    if not reachable:
        values = dict(name=name, host=name, reachable=False, error='connection refused')
    values.update(extra)
    return topology.node_state(**values)


def mysql_replica(name, received, executed=None, source='server1', **extra):
    executed = received if executed is None else executed
    values = dict(name=name, host=name, reachable=True, flavor='mysql', server_id=int(name[-1]),
                  server_uuid=UUIDS[name], read_only=True, configured=True, source_host=source, source_port=3306,
                  source_server_id=source_id(source), io_running=False, sql_running=True,
                  gtid_received=received, gtid_binlog=executed, gtid_executed=executed,
                  semi_sync=dict(SEMI_REPLICA), seconds_behind=0)
    values.update(extra)
    return topology.node_state(**values)


def dead_primary_maria(*replicas):
    return [maria_primary(reachable=False)] + list(replicas)


def refused(plan, *words):
    assert plan['action'] == topology.REFUSE, plan
    for word in words:
        assert word in plan['reason'], (word, plan['reason'])
    return plan


def failover(plan, candidate, repoint=()):
    assert plan['action'] == topology.FAILOVER, plan
    assert plan['candidate'] == candidate
    assert plan['repoint'] == list(repoint)
    return plan


# ---------------------------------------------------------------------------
# node_state, source_is, find_primary
# ---------------------------------------------------------------------------

def test_node_state_fills_defaults_and_role():
    assert topology.node_state(name='a')['role'] == 'unreachable'
    assert maria_primary()['role'] == 'primary'
    assert maria_replica('server2', '0-1-1')['role'] == 'replica'
    standalone = topology.node_state(name='a', reachable=True, read_only=True)
    assert standalone['role'] == 'standalone'
    assert standalone['last_sql_error'] == '' and standalone['gtid_received'] == ''


def test_source_is_by_host_replication_host_or_server_id():
    replica = maria_replica('server2', '0-1-1', source='db-a.example')
    node = topology.node_state(name='server1', host='10.0.0.1', replication_host='DB-A.example')
    assert topology.source_is(replica, node)
    other_port = topology.node_state(name='server1', host='db-a.example', port=3307)
    assert not topology.source_is(replica, other_port)
    by_id = topology.node_state(name='server1', host='10.0.0.1', server_id=1)
    assert topology.source_is(maria_replica('server2', '0-1-1', source='unknown', source_server_id=1), by_id)
    assert not topology.source_is(maria_primary(), by_id)


def test_find_primary_detects_the_source_of_the_replicas():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-1'), maria_replica('server3', '0-1-1'))
    assert topology.find_primary(nodes) == ('server1', None)
    assert topology.find_primary(nodes, 'server2') == ('server2', None)


def test_find_primary_refuses_replicas_of_different_primaries():
    nodes = [maria_primary(), maria_primary('server4', binlog='0-4-1'),
             maria_replica('server2', '0-1-1'), maria_replica('server3', '0-4-1', source='server4')]
    name, reason = topology.find_primary(nodes)
    assert name is None and 'different primaries' in reason


def test_find_primary_unknown_source_and_no_replicas():
    name, reason = topology.find_primary([maria_replica('server2', '0-1-1', source='elsewhere', source_server_id=9)])
    assert name is None and 'not one of the nodes' in reason
    name, reason = topology.find_primary([topology.node_state(name='a', reachable=True, read_only=True)])
    assert name is None and 'name it in primary' in reason
    assert topology.find_primary([maria_primary()]) == ('server1', None)


def test_unknown_names_raise():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-1'))
    with pytest.raises(ValueError):
        topology.plan_failover(nodes, primary='nope')
    with pytest.raises(ValueError):
        topology.plan_failover(nodes, preferred='nope')
    with pytest.raises(ValueError):
        topology.plan_switchover(nodes, target='nope')
    with pytest.raises(ValueError):
        topology.plan_failover(nodes + [maria_replica('server2', '0-1-1')])


# ---------------------------------------------------------------------------
# Failover: candidate choice
# ---------------------------------------------------------------------------

def test_most_advanced_replica_is_chosen_mariadb():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-101'), maria_replica('server3', '0-1-102', '0-1-100'))
    plan = failover(topology.plan_failover(nodes), 'server3', ['server2'])
    assert plan['old_primary'] == 'server1' and not plan['old_primary_reachable']
    assert plan['wait_position'] == '0-1-102'
    assert plan['lost_gtids'] == ''
    assert plan['stop_io'] == ['server2', 'server3']
    assert plan['semi_sync']['active'] and plan['semi_sync']['source'] == 'settings'
    assert any('cannot be fenced' in w for w in plan['warnings'])


def test_received_joins_io_pos_and_slave_pos():
    # server3's IO thread has not run since a restart: Gtid_IO_Pos is empty
    nodes = dead_primary_maria(maria_replica('server2', '0-1-101'),
                               maria_replica('server3', '', applied='0-1-103'))
    plan = failover(topology.plan_failover(nodes), 'server3', ['server2'])
    assert plan['wait_position'] == '0-1-103'
    assert plan['positions'] == {'server2': '0-1-101', 'server3': '0-1-103'}


def test_most_advanced_over_several_domains():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100,1-1-7'), maria_replica('server3', '0-1-100,1-1-5'))
    failover(topology.plan_failover(nodes), 'server2', ['server3'])


def test_equal_replicas_the_one_that_applied_most_wins():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-102', applied='0-1-90'),
                               maria_replica('server3', '0-1-102', applied='0-1-101'))
    plan = failover(topology.plan_failover(nodes), 'server3', ['server2'])
    assert 'server2, server3 are equally advanced' in plan['notes']


def test_preferred_candidate_honoured_when_among_the_most_advanced():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-102'), maria_replica('server3', '0-1-102'))
    plan = failover(topology.plan_failover(nodes, preferred='server3'), 'server3', ['server2'])
    assert plan['preferred_honoured'] is True
    assert 'the preferred candidate server3 is the most advanced replica' in plan['notes']


def test_preferred_candidate_not_honoured_when_it_lacks_gtids():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-102'), maria_replica('server3', '0-1-101'))
    plan = failover(topology.plan_failover(nodes, preferred='server3'), 'server2', ['server3'])
    assert plan['preferred_honoured'] is False
    assert any('server3 is not promoted: it lacks 0-1-102 that server2 received' in n for n in plan['notes'])


def test_preferred_candidate_not_honoured_when_excluded():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-102'),
                               maria_replica('server3', '0-1-102', last_sql_errno=1062, last_sql_error='Duplicate',
                                             sql_running=False))
    plan = topology.plan_failover(nodes, preferred='server3')
    failover(plan, 'server2')
    assert plan['preferred_honoured'] is False
    assert any('server3 is not promoted: its SQL thread stopped with error 1062' in n for n in plan['notes'])
    plan = topology.plan_failover(nodes, preferred='server1')
    assert any('it is the old primary' in n for n in plan['notes'])


def test_most_advanced_mysql_uses_retrieved_and_executed():
    nodes = [mysql_primary(reachable=False),
             mysql_replica('server2', U1 + ':1-103', executed=U1 + ':1-100'),
             mysql_replica('server3', U1 + ':90-101', executed=U1 + ':1-101')]
    plan = failover(topology.plan_failover(nodes), 'server2', ['server3'])
    assert plan['wait_position'] == U1 + ':1-103'


# ---------------------------------------------------------------------------
# Failover: exclusions and refusals
# ---------------------------------------------------------------------------

def test_unreachable_and_broken_replicas_are_excluded():
    nodes = dead_primary_maria(
        maria_replica('server2', '0-1-100'),
        topology.node_state(name='server3', host='server3', reachable=False, error='timed out'),
        maria_replica('server4', '0-1-100', sql_running=False),
        maria_replica('server5', '0-1-100', source='server9', source_server_id=9),
    )
    # server3 cannot be read: it may hold the last acknowledged commit
    refused(topology.plan_failover(nodes), 'neither can server3', 'allow_data_loss')
    plan = failover(topology.plan_failover(nodes, allow_data_loss=True), 'server2')
    reasons = dict((e['name'], e['reason']) for e in plan['excluded'])
    assert reasons['server3'] == 'unreachable: timed out'
    assert reasons['server4'] == 'its SQL thread is not running'
    assert reasons['server5'].startswith('replicates from server9:3306, not from the old primary server1')


def test_errant_replica_is_excluded_mariadb_without_primary():
    # server3 wrote 1-3-5 itself: in its binlog, not brought by replication
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100'),
                               maria_replica('server3', '0-1-100', binlog='0-1-100,1-3-5'))
    plan = failover(topology.plan_failover(nodes), 'server2')
    assert plan['excluded'] == [dict(name='server3', reason='errant transactions (GTIDs the old primary never had): '
                                                            '1-3-1..1-3-5')]
    # had server3 also received 0-1-101 from the old primary, promoting
    # server2 would lose it: refused
    nodes[2] = maria_replica('server3', '0-1-101', binlog='0-1-101,1-3-5')
    refused(topology.plan_failover(nodes), 'server3 has 0-1-101 that the candidate server2 lacks')


def test_replica_applying_its_relay_log_is_not_errant_mariadb():
    # read while the SQL thread applies 0-1-101: the binlog has it, the
    # in-memory gtid_slave_pos not yet; it was received, so it is not errant
    # (found in the lab: both replicas of a killed primary looked errant)
    nodes = dead_primary_maria(maria_replica('server2', '0-1-102', applied='0-1-100', binlog='0-1-101'),
                               maria_replica('server3', '0-1-101', applied='0-1-100', binlog='0-1-101'))
    plan = failover(topology.plan_failover(nodes), 'server2', repoint=['server3'])
    assert plan['excluded'] == [] and plan['wait_position'] == '0-1-102'


def test_errant_replica_is_excluded_mariadb_against_reachable_primary():
    old = maria_primary(binlog='0-1-100', read_only=True)
    nodes = [old, maria_replica('server2', '0-1-100'),
             maria_replica('server3', '0-1-100', binlog='0-3-101', gtid_binlog_state='0-1-100,0-3-101')]
    plan = failover(topology.plan_failover(nodes, primary='server1'), 'server2')
    assert plan['excluded'][0]['name'] == 'server3'
    assert plan['excluded'][0]['reason'].endswith(': 0-3-101')


def test_errant_replica_is_excluded_mysql_without_primary():
    nodes = [mysql_primary(reachable=False),
             mysql_replica('server2', U1 + ':1-100'),
             mysql_replica('server3', U1 + ':1-100', executed=U1 + ':1-100,' + U3 + ':1-2')]
    plan = failover(topology.plan_failover(nodes), 'server2')
    assert plan['excluded'][0]['name'] == 'server3'
    assert U3 + ':1-2' in plan['excluded'][0]['reason']


def test_former_primary_gtids_are_not_errant_mysql():
    # server2 was the primary once: every node has its GTIDs
    history = U1 + ':1-100,' + U2 + ':1-50'
    nodes = [mysql_primary(reachable=False),
             mysql_replica('server2', U1 + ':1-100', executed=history),
             mysql_replica('server3', U1 + ':1-99', executed=U1 + ':1-99,' + U2 + ':1-50')]
    plan = failover(topology.plan_failover(nodes), 'server2', ['server3'])
    assert plan['excluded'] == []


def test_unorderable_replicas_are_refused():
    # each has something the other lacks: a split brain or errant writes
    nodes = dead_primary_maria(maria_replica('server2', '0-1-102'), maria_replica('server3', '0-1-101,1-1-5'))
    plan = refused(topology.plan_failover(nodes), 'cannot be put in one line', 'split brain')
    assert plan['candidate'] is None
    assert 'server2 has 0-1-102 that server3 lacks' in plan['reason']


def test_unorderable_replicas_are_refused_mysql():
    nodes = [mysql_primary(reachable=False),
             mysql_replica('server2', U1 + ':1-100,' + U2 + ':1'),
             mysql_replica('server3', U1 + ':1-101', executed=U1 + ':1-101')]
    # server2's own GTID U2:1 is errant (nobody else has it): excluded, server3 wins
    plan = topology.plan_failover(nodes)
    assert plan['candidate'] == 'server3'
    nodes[1] = mysql_replica('server2', U1 + ':1-100:102')
    refused(topology.plan_failover(nodes), 'cannot be put in one line')


def test_conflicting_mariadb_positions_are_refused():
    # same sequence number from two servers: two different transactions
    nodes = dead_primary_maria(maria_replica('server2', '0-1-102', applied='0-1-100'),
                               maria_replica('server3', '0-2-102', applied='0-1-100'))
    refused(topology.plan_failover(nodes), 'cannot be put in one line')


def test_no_healthy_replica_is_refused():
    nodes = dead_primary_maria(
        maria_replica('server2', '0-1-100', sql_running=False, last_sql_errno=1146, last_sql_error="Table 't' doesn't exist"),
        topology.node_state(name='server3', reachable=False, error='connection refused'))
    plan = refused(topology.plan_failover(nodes), 'no healthy replica',
                   'server2: its SQL thread stopped with error 1146', 'server3: unreachable')
    assert plan['candidate'] is None


def test_no_other_node_is_refused():
    refused(topology.plan_failover([maria_primary(reachable=False)], primary='server1'), 'no healthy replica')


def test_mixed_flavors_are_refused():
    nodes = [maria_primary(reachable=False), maria_replica('server2', '0-1-1'),
             mysql_replica('server3', U1 + ':1')]
    refused(topology.plan_failover(nodes), 'different flavors')


def test_old_primary_that_is_a_replica_is_refused():
    nodes = [maria_replica('server1', '0-2-5', source='server2'), maria_primary('server2', binlog='0-2-5',
                                                                                read_only=True),
             maria_replica('server3', '0-2-5', source='server1')]
    refused(topology.plan_failover(nodes, primary='server1'), 'is a replica itself')


# ---------------------------------------------------------------------------
# Failover: semi-sync and lost GTIDs
# ---------------------------------------------------------------------------

def fenced_primary(semi_before, semi_after=None, binlog='0-1-100'):
    return maria_primary(binlog=binlog, read_only=True, semi_sync=semi_after or semi_before,
                         semi_sync_before=semi_before)


def test_semi_sync_not_enabled_refused_without_allow_data_loss():
    semi = dict(SEMI_ON, source_enabled=False, source_status=False)
    nodes = [fenced_primary(semi), maria_replica('server2', '0-1-100'), maria_replica('server3', '0-1-100')]
    refused(topology.plan_failover(nodes, primary='server1'), 'not enabled on the old primary server1',
            'allow_data_loss')


def test_semi_sync_not_enabled_proceeds_with_allow_data_loss_and_reports_lost_gtids():
    semi = dict(SEMI_ON, source_enabled=False, source_status=False)
    nodes = [fenced_primary(semi, binlog='0-1-103'), maria_replica('server2', '0-1-101'),
             maria_replica('server3', '0-1-100')]
    plan = topology.plan_failover(nodes, primary='server1')
    refused(plan, 'not enabled', 'the old primary server1 has 0-1-102..0-1-103 that no replica received')
    plan = failover(topology.plan_failover(nodes, primary='server1', allow_data_loss=True), 'server2', ['server3'])
    assert plan['lost_gtids'] == '0-1-102..0-1-103'
    assert not plan['semi_sync']['active']
    assert any('allow_data_loss' in w for w in plan['warnings'])


def test_semi_sync_fallen_back_is_refused():
    semi = dict(SEMI_ON, source_status=False)
    nodes = [fenced_primary(semi), maria_replica('server2', '0-1-100')]
    refused(topology.plan_failover(nodes, primary='server1'), 'fell back to asynchronous')


def test_semi_sync_no_tx_grew_is_refused():
    # availability first: a source that falls back after 10 s counts in
    # no_tx the commits it acknowledged without a replica
    before = dict(SEMI_ON, no_tx=3, timeout_ms=10000)
    after = dict(SEMI_ON, no_tx=5, timeout_ms=10000)
    nodes = [fenced_primary(before, after), maria_replica('server2', '0-1-100')]
    refused(topology.plan_failover(nodes, primary='server1'), 'acknowledged 2 commit(s) without a replica',
            'no_tx 3 -> 5')
    nodes = [fenced_primary(before, dict(after, no_tx=3)), maria_replica('server2', '0-1-100')]
    failover(topology.plan_failover(nodes, primary='server1'), 'server2')


def test_a_lossless_primary_s_no_tx_growth_counts_only_while_its_source_side_is_on():
    # killed waits (fencing kills the sessions) grow no_tx unacknowledged
    before = dict(SEMI_ON, no_tx=3)
    nodes = [fenced_primary(before, dict(SEMI_ON, no_tx=5)), maria_replica('server2', '0-1-100')]
    failover(topology.plan_failover(nodes, primary='server1'), 'server2')
    # switched off meanwhile, the waiting commits were acknowledged
    off = dict(SEMI_ON, no_tx=5, source_enabled=False, source_status=False)
    nodes = [fenced_primary(before, off), maria_replica('server2', '0-1-100')]
    refused(topology.plan_failover(nodes, primary='server1'), 'acknowledged 2 commit(s) without a replica')


def test_semi_sync_no_tx_of_killed_waiting_sessions_on_a_lossless_primary_is_no_loss():
    # a lossless source acknowledges nothing without a replica: its no_tx
    # grows when the fence kills sessions waiting for an acknowledgement,
    # whose clients got an error
    nodes = [fenced_primary(dict(SEMI_ON, no_tx=3), dict(SEMI_ON, no_tx=5)), maria_replica('server2', '0-1-100')]
    plan = failover(topology.plan_failover(nodes, primary='server1'), 'server2')
    assert plan['semi_sync']['active'] and plan['semi_sync']['source'] == 'old primary'


def test_semi_sync_after_commit_is_refused():
    nodes = [fenced_primary(dict(SEMI_ON, wait_point='AFTER_COMMIT')), maria_replica('server2', '0-1-100')]
    refused(topology.plan_failover(nodes, primary='server1'), 'AFTER_COMMIT')


def test_semi_sync_unreachable_primary_of_a_lossless_cluster_all_others_read():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100'), maria_replica('server3', '0-1-100'))
    plan = failover(topology.plan_failover(nodes), 'server2', ['server3'])
    assert plan['semi_sync'] == dict(
        active=True, source='settings', unverified=[],
        reason='server1 cannot be read; the cluster is set up for lossless semi-sync (never falls back to '
               'asynchronous replication) and every other node was read, so each acknowledged commit is on one of '
               'server2, server3')
    assert plan['lost_gtids'] == ''
    assert not any('allow_data_loss' in w for w in plan['warnings'])


def test_semi_sync_replicas_status_is_no_evidence_either_way():
    # Rpl_semi_sync_slave_status OFF (the IO thread stopped before the read)
    # does not stop a lossless cluster's failover...
    off = dict(SEMI_REPLICA, replica_status=False)
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100', semi=off, semi_sync_before=off))
    failover(topology.plan_failover(nodes), 'server2')
    # ...and ON does not make an availability-first one proceed
    on = dict(SEMI_REPLICA, replica_status=True, timeout_ms=10000)
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100', semi=on, semi_sync_before=on),
                               maria_replica('server3', '0-1-100', semi=on, semi_sync_before=on))
    plan = refused(topology.plan_failover(nodes),
                   'server1 cannot be read and the cluster is not set up for lossless semi-sync',
                   'server2 (falls back to asynchronous replication after 10000 ms)', 'allow_data_loss')
    assert plan['semi_sync']['active'] is False and plan['semi_sync']['source'] == 'settings'


@pytest.mark.parametrize('change, words', [
    (dict(timeout_ms=10000), 'falls back to asynchronous replication after 10000 ms'),
    (dict(timeout_ms=topology.LOSSLESS_TIMEOUT_MS - 1), 'falls back to asynchronous replication after 4294967294 ms'),
    (dict(wait_no_replica=False), 'does not wait with no replica connected'),
    (dict(wait_point='AFTER_COMMIT'), 'wait point AFTER_COMMIT'),
    (dict(replica_enabled=False), 'not a semi-sync replica'),
    (dict(available=False), 'semi-sync not available'),
])
def test_semi_sync_unreachable_primary_of_a_cluster_that_is_not_lossless_is_refused(change, words):
    # one replica is enough: the settings stand for the old primary's
    semi = dict(SEMI_REPLICA, **change)
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100'), maria_replica('server3', '0-1-100', semi=semi))
    plan = refused(topology.plan_failover(nodes), 'not set up for lossless semi-sync', 'server3 (%s)' % words,
                   'allow_data_loss')
    assert 'server2 (' not in plan['reason']
    plan = failover(topology.plan_failover(nodes, allow_data_loss=True), 'server2', ['server3'])
    assert not plan['semi_sync']['active']
    assert any('going on because allow_data_loss is set' in w for w in plan['warnings'])


def test_semi_sync_unreachable_primary_and_an_unreachable_replica_is_refused():
    # a lossless primary acknowledges a commit once one replica has it: the
    # one that cannot be read may be the only one with the last of them
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100'),
                               topology.node_state(name='server3', host='server3', reachable=False, error='timed out'),
                               maria_replica('server4', '0-1-100'))
    plan = refused(topology.plan_failover(nodes), 'server1 cannot be read, and neither can server3',
                   'may hold the last acknowledged commit', 'Bring it back first', 'allow_data_loss')
    assert plan['semi_sync']['unverified'] == ['server3'] and plan['semi_sync']['active'] is False
    assert plan['lost_gtids'] == ''
    # with allow_data_loss it goes on and says what may be lost
    plan = failover(topology.plan_failover(nodes, allow_data_loss=True), 'server2', ['server4'])
    assert plan['semi_sync']['unverified'] == ['server3']
    warning = [w for w in plan['warnings'] if 'allow_data_loss' in w]
    assert len(warning) == 1
    assert 'acknowledged commits that only server3 received are lost' in warning[0]
    assert 'a rejoin of it names them as extra GTIDs' in warning[0]


def test_semi_sync_unreachable_primary_and_replicas_names_them_all():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100'),
                               topology.node_state(name='server3', host='server3', reachable=False),
                               topology.node_state(name='server4', host='server4', reachable=False))
    plan = refused(topology.plan_failover(nodes), 'neither can server3, server4', 'Bring them back first')
    assert plan['semi_sync']['unverified'] == ['server3', 'server4']
    plan = failover(topology.plan_failover(nodes, allow_data_loss=True), 'server2')
    assert any('only server3, server4 received are lost (a rejoin of them' in w for w in plan['warnings'])


def test_semi_sync_a_lossless_verdict_needs_a_replica_of_the_old_primary():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100', source='server9', source_server_id=9))
    plan = topology.plan_failover(nodes, primary='server1')
    assert plan['action'] == topology.REFUSE
    assert topology.semi_sync_verdict(nodes[0], []) == dict(
        active=False, source='settings', unverified=[],
        reason='server1 cannot be read and no reachable replica replicated from it')


def test_semi_sync_settings_of_a_node_outside_the_old_primary_s_tree_say_nothing_of_it():
    # server5 replicates from a node outside the cluster, asynchronously
    outside = dict(SEMI_REPLICA, timeout_ms=10000, wait_no_replica=False)
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100'),
                               maria_replica('server5', '0-1-100', source='server9', source_server_id=9, semi=outside))
    plan = failover(topology.plan_failover(nodes), 'server2')
    assert plan['semi_sync']['active'] is True
    assert [e['name'] for e in plan['excluded']] == ['server5']


def test_semi_sync_verdict_of_an_unreachable_primary_reads_nothing_of_its_replicas_status():
    old = maria_primary(reachable=False)
    lossless = maria_replica('server2', '0-1-100', semi=dict(SEMI_REPLICA, replica_status=False))
    assert topology.semi_sync_verdict(old, [lossless])['active'] is True
    fallen = maria_replica('server2', '0-1-100', semi=dict(SEMI_REPLICA, replica_status=True, timeout_ms=10000))
    assert topology.semi_sync_verdict(old, [fallen])['active'] is False
    assert topology.semi_sync_verdict(old, [lossless], unreachable=['server3'])['active'] is False


# ---------------------------------------------------------------------------
# lossless_settings
# ---------------------------------------------------------------------------

def test_lossless_settings_needs_all_four():
    assert topology.lossless_settings(dict(LOSSLESS)) is True
    assert topology.lossless_settings(dict(SEMI_ON)) is True and topology.lossless_settings(dict(SEMI_REPLICA))
    # a larger timeout is no less lossless
    assert topology.lossless_settings(dict(LOSSLESS, timeout_ms=2 ** 64 - 1)) is True


@pytest.mark.parametrize('change', [
    dict(wait_point='AFTER_COMMIT'), dict(wait_point=None),
    dict(wait_no_replica=False), dict(wait_no_replica=None),
    dict(timeout_ms=topology.LOSSLESS_TIMEOUT_MS - 1), dict(timeout_ms=10000), dict(timeout_ms=None),
    dict(replica_enabled=False),
    dict(available=False),
])
def test_lossless_settings_each_condition_alone_makes_it_false(change):
    assert topology.lossless_settings(dict(LOSSLESS, **change)) is False


def test_lossless_settings_says_nothing_of_the_source_side_now():
    assert topology.lossless_settings(dict(LOSSLESS, source_enabled=False, source_status=False)) is True
    assert topology.lossless_settings({}) is False


def test_candidate_missing_gtids_of_a_reachable_node_is_refused():
    # server3 received more but its SQL thread broke: promoting server2 would lose 0-1-103..105
    nodes = dead_primary_maria(
        maria_replica('server2', '0-1-102'),
        maria_replica('server3', '0-1-105', applied='0-1-100', sql_running=False, last_sql_errno=1032,
                      last_sql_error="Can't find record"))
    plan = refused(topology.plan_failover(nodes), 'the candidate server2 would lose GTIDs',
                   'server3 has 0-1-103..0-1-105 that the candidate server2 lacks')
    assert plan['lost_gtids'] == '0-1-103..0-1-105'
    plan = failover(topology.plan_failover(nodes, allow_data_loss=True), 'server2')
    assert plan['lost_gtids'] == '0-1-103..0-1-105'
    assert plan['excluded'][0]['name'] == 'server3'


def test_old_primary_ahead_is_refused_then_lost_gtids_reported():
    nodes = [fenced_primary(dict(SEMI_ON), binlog='0-1-101'), maria_replica('server2', '0-1-100')]
    refused(topology.plan_failover(nodes, primary='server1'), 'mysql_switchover')
    plan = failover(topology.plan_failover(nodes, primary='server1', allow_data_loss=True), 'server2')
    assert plan['lost_gtids'] == '0-1-101'


def test_unsettled_positions_only_note_the_difference():
    nodes = [maria_primary(binlog='0-1-103'), maria_replica('server2', '0-1-101', io_running=True)]
    plan = failover(topology.plan_failover(nodes, primary='server1', settled=False), 'server2')
    assert plan['lost_gtids'] == ''
    assert any('checked again once the old primary is fenced' in n for n in plan['notes'])


def test_mysql_lost_gtids_of_reachable_old_primary():
    semi = dict(SEMI_ON, source_enabled=False)
    nodes = [mysql_primary(executed=U1 + ':1-105', read_only=True, semi_sync=semi),
             mysql_replica('server2', U1 + ':1-103'), mysql_replica('server3', U1 + ':1-100')]
    refused(topology.plan_failover(nodes, primary='server1'), 'not enabled')
    plan = failover(topology.plan_failover(nodes, primary='server1', allow_data_loss=True), 'server2', ['server3'])
    assert plan['lost_gtids'] == U1 + ':104-105'


# ---------------------------------------------------------------------------
# Failover: nothing to do, or two primaries
# ---------------------------------------------------------------------------

def test_failover_already_done_is_none():
    nodes = [maria_primary(reachable=False), maria_primary('server2', binlog='0-2-5'),
             maria_replica('server3', '0-2-5', source='server2')]
    plan = topology.plan_failover(nodes, primary='server1')
    assert plan['action'] == topology.NONE
    assert plan['candidate'] == 'server2'
    assert 'already the writable primary' in plan['reason']


def test_failover_already_done_and_old_primary_rejoined_is_none():
    nodes = [maria_replica('server1', '0-2-5', source='server2'), maria_primary('server2', binlog='0-2-5'),
             maria_replica('server3', '0-2-5', source='server2')]
    assert topology.plan_failover(nodes, primary='server1')['action'] == topology.NONE


def test_unfinished_failover_is_refused():
    nodes = [maria_primary(reachable=False), maria_primary('server2', binlog='0-2-5'),
             maria_replica('server3', '0-1-5')]
    refused(topology.plan_failover(nodes, primary='server1'), 'did not finish', 'server3')


def test_two_writable_primaries_are_refused():
    nodes = [maria_primary(), maria_primary('server2', binlog='0-2-5'), maria_replica('server3', '0-1-5')]
    refused(topology.plan_failover(nodes, primary='server1'), 'more than one writable primary', 'server2',
            'old primary server1')


def test_healthy_detected_primary_is_not_failed_over():
    nodes = [maria_primary(), maria_replica('server2', '0-1-100', io_running=True),
             maria_replica('server3', '0-1-100', io_running=True)]
    plan = topology.plan_failover(nodes, settled=False)
    assert plan['action'] == topology.NONE and 'nothing to fail over' in plan['reason']
    # named, it is failed over (forced)
    plan = topology.plan_failover(nodes, primary='server1', settled=False)
    failover(plan, 'server2', ['server3'])


def test_writable_replica_is_warned_about():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100', read_only=False))
    plan = failover(topology.plan_failover(nodes), 'server2')
    assert any('server2 is a writable replica' in w for w in plan['warnings'])


def test_malformed_gtids_exclude_the_node():
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100'), maria_replica('server3', 'garbage'))
    plan = topology.plan_failover(nodes)
    assert plan['candidate'] == 'server2'
    assert 'server3' in [e['name'] for e in plan['excluded']]


# ---------------------------------------------------------------------------
# Switchover
# ---------------------------------------------------------------------------

def live_cluster(**overrides):
    nodes = [maria_primary(binlog='0-1-100'),
             maria_replica('server2', '0-1-100', io_running=True, seconds_behind=0),
             maria_replica('server3', '0-1-99', io_running=True, seconds_behind=1)]
    for index, changes in overrides.items():
        nodes[int(index[-1]) - 1] = topology.node_state(**dict(nodes[int(index[-1]) - 1], **changes))
    return nodes


def test_switchover_to_the_most_advanced_replica():
    plan = topology.plan_switchover(live_cluster())
    assert plan['action'] == topology.SWITCHOVER
    assert (plan['old_primary'], plan['target'], plan['repoint']) == ('server1', 'server2', ['server3'])


def test_switchover_to_a_given_target():
    plan = topology.plan_switchover(live_cluster(), target='server3')
    assert (plan['target'], plan['repoint']) == ('server3', ['server2'])


def test_switchover_target_already_primary_is_none():
    nodes = [maria_replica('server1', '0-2-5', source='server2', io_running=True),
             maria_primary('server2', binlog='0-2-5'),
             maria_replica('server3', '0-2-5', source='server2', io_running=True)]
    plan = topology.plan_switchover(nodes, target='server2')
    assert plan['action'] == topology.NONE
    plan = topology.plan_switchover(live_cluster(), target='server1')
    assert plan['action'] == topology.NONE


def test_switchover_refuses_a_lagging_target():
    refused(topology.plan_switchover(live_cluster(server3=dict(seconds_behind=120)), target='server3', max_lag=30),
            '120 s behind')


def test_switchover_refuses_a_target_without_io_thread():
    refused(topology.plan_switchover(live_cluster(server2=dict(io_running=False, last_io_errno=2003,
                                                               last_io_error='cannot connect')),
                                     target='server2'), 'IO thread is not connected', 'error 2003')


def test_switchover_refuses_an_errant_target_and_excludes_errant_replicas():
    nodes = live_cluster(server3=dict(gtid_binlog='0-1-99,1-3-4', gtid_binlog_state='0-1-99,1-3-4'))
    refused(topology.plan_switchover(nodes, target='server3'), 'errant transactions', '1-3-1..1-3-4')
    plan = topology.plan_switchover(nodes)
    assert plan['target'] == 'server2' and plan['repoint'] == []
    assert any('server3 is left as it is' in w for w in plan['warnings'])


def test_switchover_refuses_an_unreachable_primary():
    nodes = [maria_primary(reachable=False), maria_replica('server2', '0-1-100', io_running=True)]
    refused(topology.plan_switchover(nodes), 'mysql_failover')


def test_switchover_refuses_two_writable_nodes_and_no_healthy_replica():
    nodes = live_cluster()
    nodes.append(maria_primary('server4', binlog='0-4-1'))
    refused(topology.plan_switchover(nodes), 'more than one writable primary')
    nodes = live_cluster(server2=dict(sql_running=False), server3=dict(reachable=False))
    refused(topology.plan_switchover(nodes), 'no healthy replica')


def test_switchover_mysql():
    nodes = [mysql_primary(executed=U1 + ':1-100'),
             mysql_replica('server2', U1 + ':1-100', io_running=True),
             mysql_replica('server3', U1 + ':1-100', executed=U1 + ':1-98', io_running=True)]
    plan = topology.plan_switchover(nodes)
    assert plan['target'] == 'server2'


# ---------------------------------------------------------------------------
# Rejoin
# ---------------------------------------------------------------------------

def test_rejoin_old_primary_behind_the_new_one_mariadb():
    old = maria_primary(binlog='0-1-100', read_only=True)
    new = maria_primary('server2', binlog='0-2-120', gtid_binlog_state='0-1-100,0-2-120', gtid_slave_pos='0-1-100')
    decision = topology.decide_rejoin(old, new)
    assert decision['ok'] and decision['extra_gtids'] == ''
    assert decision['comparison'] == 'behind'
    assert decision['start_position'] == '0-1-100'


def test_rejoin_diverged_old_primary_mariadb():
    # the old primary committed 0-1-101..103 that no replica received
    old = maria_primary(binlog='0-1-103', read_only=True)
    new = maria_primary('server2', binlog='0-2-120', gtid_binlog_state='0-1-100,0-2-120', gtid_slave_pos='0-1-100')
    decision = topology.decide_rejoin(old, new)
    assert not decision['ok']
    assert decision['extra_gtids'] == '0-1-101..0-1-103'
    assert 'must be rebuilt' in decision['reason']


def test_rejoin_binlog_state_finds_what_the_position_hides():
    # the node's position shows a later GTID of server 2, its binlog state
    # still shows its own 0-1-101 that the primary never had
    node = maria_replica('server1', '0-2-130', binlog='0-2-130', gtid_binlog_state='0-1-101,0-2-130',
                         source='server2')
    new = maria_primary('server2', binlog='0-2-130', gtid_binlog_state='0-1-100,0-2-130')
    decision = topology.decide_rejoin(node, new)
    assert not decision['ok'] and decision['extra_gtids'] == '0-1-101'
    # with only positions it could not be seen
    node = dict(node, gtid_binlog_state=None)
    assert topology.decide_rejoin(node, dict(new, gtid_binlog_state=None))['ok']


def test_rejoin_start_position_keeps_slave_pos_the_binlog_lacks():
    node = maria_replica('server3', '0-1-100', binlog='', applied='0-1-100', gtid_binlog_state='')
    new = maria_primary('server2', binlog='0-2-120', gtid_binlog_state='0-1-100,0-2-120')
    decision = topology.decide_rejoin(node, new)
    assert decision['ok'] and decision['start_position'] == '0-1-100'


def test_rejoin_mysql():
    old = mysql_primary(executed=U1 + ':1-100', read_only=True)
    new = mysql_primary('server2', executed=U1 + ':1-100,' + U2 + ':1-20')
    decision = topology.decide_rejoin(old, new)
    assert decision['ok'] and decision['start_position'] is None and decision['comparison'] == 'behind'
    old = mysql_primary(executed=U1 + ':1-102', read_only=True)
    decision = topology.decide_rejoin(old, new)
    assert not decision['ok'] and decision['extra_gtids'] == U1 + ':101-102'
    assert decision['comparison'] == 'diverged'


def test_rejoin_flavor_mismatch_and_bad_gtids():
    decision = topology.decide_rejoin(maria_primary(), mysql_primary('server2'))
    assert not decision['ok'] and 'runs mariadb' in decision['reason']
    decision = topology.decide_rejoin(maria_primary(binlog='x-y'), maria_primary('server2'))
    assert not decision['ok'] and 'cannot be compared' in decision['reason']


def test_semi_sync_after_commit_cluster_is_refused_for_unreachable_primary():
    semi = dict(SEMI_REPLICA, wait_point='AFTER_COMMIT')
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100', semi=semi))
    refused(topology.plan_failover(nodes), 'AFTER_COMMIT')
    # the source side is off on a replica (only the primary has it on): its
    # settings still stand for the old primary's
    nodes = dead_primary_maria(maria_replica('server2', '0-1-100', semi=dict(semi, source_enabled=True)))
    refused(topology.plan_failover(nodes), 'AFTER_COMMIT')


# ---------------------------------------------------------------------------
# heard_from: is the old primary alive for one of its replicas?
# ---------------------------------------------------------------------------

def signs(io_thread='Yes', gtid='0-1-100', position='mysql-bin.000003:1234', heartbeats=10):
    return dict(io_thread=io_thread, gtid_received=gtid, read_position=position, heartbeats=heartbeats)


def test_heard_from_names_each_replica_and_what_moved():
    first = {'server2': signs(), 'server3': signs(), 'server4': signs()}
    last = {'server2': signs(heartbeats=12), 'server3': signs(gtid='0-1-105', position='mysql-bin.000003:2000'),
            'server4': signs()}
    assert topology.heard_from(first, last) == {
        'server2': 'heartbeats 10 -> 12',
        'server3': 'received GTIDs 0-1-100 -> 0-1-105, binlog position read mysql-bin.000003:1234 -> '
                   'mysql-bin.000003:2000',
    }


def test_heard_from_needs_a_connected_io_thread_at_the_end():
    # a replica whose IO thread lost its source during the window (Connecting,
    # stopped) does not hear it now, whatever arrived before
    first = {'server2': signs(), 'server3': signs()}
    last = {'server2': signs(io_thread='Connecting', heartbeats=11), 'server3': signs(io_thread='No', gtid='0-1-101')}
    assert topology.heard_from(first, last) == {}


def test_heard_from_ignores_unknown_counters_and_new_names():
    first = {'server2': signs(heartbeats=None)}
    last = {'server2': signs(heartbeats=5), 'server3': signs(heartbeats=7)}
    assert topology.heard_from(first, last) == {}
