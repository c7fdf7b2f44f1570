# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import re

import pytest
import yaml

from ansible_collections.distweb.infra.plugins.doc_fragments import mysql_cluster

from ansible_collections.distweb.infra.plugins.modules import mysql_rejoin
from ansible_collections.distweb.infra.tests.unit.plugins.results import failed, ok

U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562'
U2 = '4f22ab58-82db-22f2-8f44-d91bb853a673'


@pytest.fixture
def env(make_cluster, run_main, fake_password):
    """After a failover: server2 is the primary (its semi-sync source side
    on), server3 replicates from it, server1 (the old primary) came back, not
    a replica, with ``old_binlog`` and its source side still on."""

    class Env(object):
        password = fake_password

        def setup(self, flavor='mariadb', old_binlog=None, old_read_only=False):
            cluster = self.cluster = make_cluster(flavor)
            old, new = cluster['server1'], cluster['server2']
            new.status = None
            new.read_only = False
            new.switch_source(True)
            if flavor == 'mariadb':
                cluster.set_gtid('server2', '0-2-120', slave_pos='0-1-100', binlog_state='0-1-100,0-2-120')
                cluster.make_replica('server3', 'server2', received='0-2-120')
                cluster.set_gtid('server1', old_binlog or '0-1-100', slave_pos='')
            else:
                executed = U1 + ':1-100,' + U2 + ':1-20'
                cluster.set_gtid('server2', executed)
                cluster.make_replica('server3', 'server2', received=executed)
                cluster.set_gtid('server1', old_binlog or U1 + ':1-100')
            old.read_only = old_read_only
            return cluster

        def args(self, **overrides):
            args = dict(node=dict(name='server1', host='server1'), primary=dict(name='server2', host='server2'),
                        login_user='admin', login_password=self.password,
                        replication_user='repl', replication_password=self.password)
            args.update(overrides)
            return args

        def run(self, check_mode=False, **overrides):
            result = run_main(mysql_rejoin.main, self.args(**overrides), check_mode=check_mode)
            assert self.password not in json.dumps(result), 'a password leaked into the result'
            return result

    return Env()


def test_documentation_parses_and_matches_the_argument_spec():
    doc = yaml.safe_load(mysql_rejoin.DOCUMENTATION)
    doc['options'].update(yaml.safe_load(mysql_cluster.ModuleDocFragment.DOCUMENTATION)['options'])
    spec = mysql_rejoin.argument_spec()
    assert set(doc['options']) == set(spec)
    for name, option in spec.items():
        assert doc['options'][name].get('default') == option.get('default'), name
    yaml.safe_load(mysql_rejoin.EXAMPLES)
    assert 'extra_gtids' in yaml.safe_load(mysql_rejoin.RETURN)


def test_old_primary_rejoins_mariadb(env):
    cluster = env.setup()
    session = cluster['server1'].add_session('app', command='Sleep')
    result = ok(env.run())
    assert result['changed'] is True and result['made_read_only'] is True
    assert result['extra_gtids'] == '' and result['comparison'] == 'behind'
    assert result['start_position'] == '0-1-100'
    changes = cluster.changes('server1')
    # read-only, its client sessions killed, its semi-sync source side off,
    # then pointed at the new primary
    assert changes[0] == 'SET GLOBAL read_only = 1'
    assert changes[1] == 'KILL CONNECTION %d' % session
    assert changes[2] == 'SET GLOBAL rpl_semi_sync_master_enabled = OFF'
    assert changes[3] == "SET GLOBAL gtid_slave_pos = '0-1-100'"
    assert changes[4].startswith("CHANGE MASTER TO MASTER_HOST='server2', MASTER_PORT=3306, MASTER_USER='repl'")
    assert 'MASTER_USE_GTID=slave_pos' in changes[4]
    assert changes[5:] == ['START SLAVE']
    status = cluster['server1'].status
    assert status['Master_Host'] == 'server2'
    assert (status['Slave_IO_Running'], status['Slave_SQL_Running']) == ('Yes', 'Yes')
    assert cluster['server1'].read_only is True
    assert cluster['server1'].variables['rpl_semi_sync_master_enabled'] == 'OFF'
    assert cluster.changes('server2') == []
    assert "MASTER_PASSWORD='********'" in result['queries'][4]
    # it applies what the primary commits (a source side left on would wait
    # for acknowledgements of it forever) and acknowledges it
    assert cluster.commit('server2') == ['0-2-121']
    assert cluster['server1'].gtid['gtid_slave_pos'] == '0-2-121'
    assert cluster['server1'].sql_waiting is None


def test_rejoin_is_idempotent(env):
    cluster = env.setup()
    ok(env.run())
    cluster.log[:] = []
    result = ok(env.run())
    assert result['changed'] is False and result['made_read_only'] is False
    assert 'already replicates from server2' in result['msg']
    assert cluster.changes() == []


def test_diverged_old_primary_is_refused_but_made_read_only(env):
    cluster = env.setup(old_binlog='0-1-103')
    result = failed(env.run(), 'Refusing to make server1 a replica of server2', '0-1-101..0-1-103',
                    'playbooks/rebuild_replica.yml', 'server1 was made read-only')
    assert result['extra_gtids'] == '0-1-101..0-1-103'
    assert result['comparison'] == 'diverged'
    assert result['rebuild_playbook'] == 'playbooks/rebuild_replica.yml'
    assert result['changed'] is True
    assert cluster.changes() == [('server1', 'SET GLOBAL read_only = 1')]
    assert cluster['server1'].read_only is True and cluster['server1'].status is None


def test_diverged_old_primary_mysql(env):
    cluster = env.setup('mysql', old_binlog=U1 + ':1-102')
    result = failed(env.run(), U1 + ':101-102', 'rebuild')
    assert result['extra_gtids'] == U1 + ':101-102'
    assert cluster.changes() == [('server1', 'SET GLOBAL super_read_only = 1')]


def test_old_primary_rejoins_mysql(env):
    cluster = env.setup('mysql', old_read_only=True)
    result = ok(env.run())
    assert result['made_read_only'] is False and result['start_position'] is None
    changes = cluster.changes('server1')
    assert changes[0] == 'SET GLOBAL rpl_semi_sync_source_enabled = OFF'
    assert changes[1].startswith("CHANGE REPLICATION SOURCE TO SOURCE_HOST='server2'")
    assert 'SOURCE_AUTO_POSITION=1' in changes[1]
    assert changes[2:] == ['START REPLICA']


def test_replica_of_another_node_is_stopped_and_re_pointed(env):
    cluster = env.setup()
    cluster.make_replica('server3', 'server9', received='0-2-110')
    cluster.set_gtid('server3', '0-2-110', slave_pos='0-2-110')
    result = ok(env.run(node=dict(name='server3', host='server3')))
    changes = cluster.changes('server3')
    assert changes[0] == 'STOP SLAVE'
    assert changes[1].startswith("CHANGE MASTER TO MASTER_HOST='server2'")
    assert changes[2] == 'START SLAVE'
    assert result['made_read_only'] is False


def test_check_mode_changes_nothing(env):
    cluster = env.setup()
    result = ok(env.run(check_mode=True))
    assert result['changed'] is True and result['made_read_only'] is True
    assert cluster.changes() == []
    assert result['queries'][0] == 'server1: SET GLOBAL read_only = 1'
    assert result['queries'][1] == 'server1: SET GLOBAL rpl_semi_sync_master_enabled = OFF'
    assert result['queries'][2] == "server1: SET GLOBAL gtid_slave_pos = '0-1-100'"
    assert cluster['server1'].variables['rpl_semi_sync_master_enabled'] == 'ON'
    for server in cluster.servers.values():
        for sql, dummy in server.executed:
            assert re.match(r'(?i)\s*(SELECT|SHOW)\b', sql), sql
    cluster = env.setup(old_binlog='0-1-105')
    failed(env.run(check_mode=True), '0-1-101..0-1-105', 'would be made read-only')
    assert cluster.changes() == []


def test_same_server_is_refused_without_changes(env):
    cluster = env.setup()
    failed(env.run(primary=dict(name='again', host='server1')), 'are the same server', 'nothing was changed')
    assert cluster.changes() == []


def test_unreachable_primary_still_fences_the_node(env):
    cluster = env.setup()
    cluster.down('server2')
    failed(env.run(), 'Cannot reach the primary server2', 'server1 was made read-only')
    assert cluster.changes() == [('server1', 'SET GLOBAL read_only = 1')]


def test_read_only_primary_is_refused(env):
    cluster = env.setup()
    cluster['server2'].read_only = True
    failed(env.run(), 'server2 (server2:3306) is read-only')
    assert cluster.changes() == [('server1', 'SET GLOBAL read_only = 1')]


def test_unreachable_node_fails(env):
    cluster = env.setup()
    cluster.down('server1')
    failed(env.run(), 'Cannot reach server1')
    assert cluster.changes() == []


def test_replica_as_primary_is_refused(env):
    cluster = env.setup()
    failed(env.run(primary=dict(name='server3', host='server3')), 'server3 (server3:3306) is read-only')
    cluster['server3'].read_only = False
    failed(env.run(primary=dict(name='server3', host='server3')), 'server3 is a replica itself')


@pytest.mark.parametrize('overrides, words', [
    (dict(primary=dict(name='server1', host='server2')), 'same name'),
    (dict(wait_timeout=-5), 'wait_timeout must not be negative'),
])
def test_bad_parameters(env, overrides, words):
    env.setup()
    failed(env.run(**overrides), words)


def test_missing_privilege_is_refused(env):
    cluster = env.setup(old_read_only=True)
    cluster['server1'].privileges = [p for p in cluster['server1'].privileges if p != 'REPLICATION SLAVE ADMIN']
    result = env.run()
    assert result.get('failed') and 'server1 lacks REPLICATION SLAVE ADMIN' in result['msg'], result
    assert cluster.changes('server1') == [] and cluster.changes('server2') == []


# ---------------------------------------------------------------------------
# Against the replicating fake (MariaDB): failover, then the old primary returns
# ---------------------------------------------------------------------------

@pytest.fixture
def after_failover(make_cluster, run_main, fake_password):
    """server1 wrote ``unreplicated`` transactions to its binlog that no
    replica received (lossless: never acknowledged, their clients waited),
    then died; server2 was promoted (as mysql_failover does), server3
    re-pointed to it, and server2 took writes. Returns the cluster, the
    unreplicated GTIDs and those written on server2."""

    def make(unreplicated=0, new_writes=3):
        cluster = make_cluster('mariadb')
        for name in ('server2', 'server3'):
            cluster[name].receives = False
        assert cluster.commit('server1', unreplicated) == []
        lost = [entry['gtid'] for entry in cluster['server1'].semi_waiting]
        cluster.down('server1')
        server2, server3 = cluster['server2'], cluster['server3']
        for sql in ('STOP SLAVE', 'RESET SLAVE ALL', 'SET GLOBAL rpl_semi_sync_master_enabled = ON',
                    'SET GLOBAL read_only = 0'):
            server2.handle(sql, None)
        server3.receives = True
        server3.handle('STOP SLAVE', None)
        server3.handle('CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USE_GTID=slave_pos', ('server2',))
        server3.handle('START SLAVE', None)
        written = cluster.commit('server2', new_writes)
        assert server3.has_gtids(','.join(written))
        cluster.up('server1')  # restarts read-only
        cluster.log[:] = []
        return cluster, lost, written

    return make


def test_returning_old_primary_catches_up_from_the_new_one(env, after_failover):
    cluster, dummy, written = after_failover()
    env.cluster = cluster
    result = ok(env.run())
    assert result['changed'] is True and result['made_read_only'] is False
    assert result['start_position'] == '0-1-100'
    server1 = cluster['server1']
    assert (server1.status['Slave_IO_Running'], server1.status['Slave_SQL_Running']) == ('Yes', 'Yes')
    assert server1.has_gtids(','.join(written)) and server1.gtid['gtid_slave_pos'] == '0-2-103'
    assert server1.global_status_value('Rpl_semi_sync_slave_status') == 'ON'
    # restarted, its source side is off (as its configuration says): left alone
    assert not any('rpl_semi_sync' in sql for sql in cluster.changes('server1'))
    # and it goes on replicating
    cluster.commit('server2')
    assert server1.has_gtids('0-2-104')


def test_returning_old_primary_with_unreplicated_commits_is_refused(env, after_failover):
    cluster, lost, dummy = after_failover(unreplicated=2)
    env.cluster = cluster
    assert lost == ['0-1-101', '0-1-102']
    assert cluster.acknowledged == [('server2', gtid) for gtid in ('0-2-101', '0-2-102', '0-2-103')]
    assert cluster['server1'].unacknowledged == lost  # their clients never got an answer
    result = failed(env.run(), 'Refusing to make server1 a replica of server2', '0-1-101..0-1-102', 'rebuilt')
    assert result['comparison'] == 'diverged' and result['extra_gtids'] == '0-1-101..0-1-102'
    assert cluster.changes() == []  # it came back read-only
    server1 = cluster['server1']
    assert server1.read_only is True and server1.status is None
    assert server1.has_gtids('0-1-102')  # kept for whoever rebuilds it


def test_rejoin_fails_when_the_primary_purged_what_the_node_needs(env, after_failover):
    cluster, dummy, dummy = after_failover(new_writes=30)
    env.cluster = cluster
    cluster.purge_binlogs('server2', '0-2-120')
    result = failed(env.run(wait_timeout=5), 'server1 was pointed at server2', 'does not replicate', 'error 1236',
                    'required binlog files have been purged')
    assert result['changed'] is True
    assert cluster['server1'].status['Slave_IO_Running'] == 'No' and cluster['server1'].read_only is True


# ---------------------------------------------------------------------------
# The semi-sync source side of the node goes off (it is no primary)
# ---------------------------------------------------------------------------

def test_a_commit_waiting_on_the_old_primary_is_answered_with_an_error_not_acknowledged(env, make_cluster):
    # server1's replicas got 0-1-101 asynchronously (their semi-sync side
    # was not on), so its client still waits for an acknowledgement; then
    # server2 was promoted by hand
    cluster = env.cluster = make_cluster('mariadb')
    server1, server2, server3 = cluster['server1'], cluster['server2'], cluster['server3']
    server2.semi_replica_on = server3.semi_replica_on = False
    assert cluster.commit('server1') == []
    assert server2.has_gtids('0-1-101')
    waiting = server1.semi_waiting[0]['session']
    for sql in ('STOP SLAVE', 'RESET SLAVE ALL', 'SET GLOBAL rpl_semi_sync_master_enabled = ON',
                'SET GLOBAL read_only = 0'):
        server2.handle(sql, None)
    server3.handle('STOP SLAVE', None)
    server3.handle('CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USE_GTID=slave_pos', ('server2',))
    server3.handle('START SLAVE', None)
    cluster.log[:] = []
    result = ok(env.run())
    assert result['changed'] is True
    changes = cluster.changes('server1')
    assert changes[:4] == ['SET GLOBAL read_only = 1', 'KILL CONNECTION %d' % waiting,
                           'SET GLOBAL rpl_semi_sync_master_enabled = OFF', "SET GLOBAL gtid_slave_pos = '0-1-101'"]
    assert changes[4].startswith('CHANGE MASTER TO')
    # killed first: its client got an error; switching the source side off
    # first would have told it "committed"
    assert cluster.acknowledged == [] and server1.unacknowledged == ['0-1-101']
    assert server1.status['Master_Host'] == 'server2'


def test_a_healthy_replica_with_its_source_side_on_gets_it_switched_off(env):
    cluster = env.setup()
    server3 = cluster['server3']
    server3.switch_source(True)
    session = server3.add_session('report', command='Sleep')
    # as a semi-sync source without replicas it waits for acknowledgements
    # of what it applies, forever
    assert cluster.commit('server2') == ['0-2-121']
    assert server3.sql_waiting is not None and server3.gtid['gtid_slave_pos'] == '0-2-120'
    cluster.log[:] = []
    result = ok(env.run(node=dict(name='server3', host='server3')))
    assert result['changed'] is True and result['made_read_only'] is False
    assert 'already replicates from server2' in result['msg']
    assert cluster.changes() == [('server3', 'KILL CONNECTION %d' % session),
                                 ('server3', 'SET GLOBAL rpl_semi_sync_master_enabled = OFF')]
    assert server3.variables['rpl_semi_sync_master_enabled'] == 'OFF'
    assert server3.gtid['gtid_slave_pos'] == '0-2-121' and server3.sql_waiting is None
    # once off, a second run changes nothing
    cluster.log[:] = []
    result = ok(env.run(node=dict(name='server3', host='server3')))
    assert result['changed'] is False and cluster.changes() == []


def test_check_mode_lists_the_source_side_of_a_healthy_replica_without_switching_it(env):
    cluster = env.setup()
    cluster['server3'].switch_source(True)
    result = ok(env.run(check_mode=True, node=dict(name='server3', host='server3')))
    assert result['changed'] is True
    assert result['queries'] == ['server3: SET GLOBAL rpl_semi_sync_master_enabled = OFF']
    assert cluster.changes() == []
    assert cluster['server3'].variables['rpl_semi_sync_master_enabled'] == 'ON'


def test_a_healthy_replica_with_its_source_side_off_is_left_alone(env):
    cluster = env.setup()
    cluster['server3'].add_session('report', command='Sleep')
    result = ok(env.run(node=dict(name='server3', host='server3')))
    assert result['changed'] is False and cluster.changes() == []
    assert cluster['server3'].killed == []


def test_a_node_without_semi_sync_is_pointed_at_the_primary_without_it(env):
    cluster = env.setup()
    server1 = cluster['server1']
    server1.variables = {}
    server1.global_status = {}
    ok(env.run())
    assert not any('rpl_semi_sync' in sql or sql.startswith('KILL') for sql in cluster.changes('server1'))
    assert server1.status['Master_Host'] == 'server2'
