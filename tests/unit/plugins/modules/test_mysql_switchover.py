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

from ansible_collections.distweb.infra.plugins.modules import mysql_switchover
from ansible_collections.distweb.infra.tests.unit.plugins.results import failed, ok

U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562'


@pytest.fixture
def env(make_cluster, run_main, fake_password):

    class Env(object):
        password = fake_password

        def __init__(self):
            self.setup('mariadb')

        def setup(self, flavor, version=None):
            self.cluster = make_cluster(flavor, version=version)

            def takes_time(server, sql):
                server.clock.now += 0.25

            for name in ('server2', 'server3'):
                self.cluster[name].after.append((r'GTID_WAIT|WAIT_FOR_EXECUTED_GTID_SET', takes_time))
            return self.cluster

        def args(self, **overrides):
            args = dict(nodes=self.cluster.nodes(), login_user='admin', login_password=self.password,
                        replication_user='repl', replication_password=self.password)
            args.update(overrides)
            return args

        def run(self, check_mode=False, **overrides):
            result = run_main(mysql_switchover.main, self.args(**overrides), check_mode=check_mode)
            assert self.password not in json.dumps(result), 'a password leaked into the result'
            return result

    return Env()


def order(cluster, *steps):
    positions = []
    for name, pattern in steps:
        index = cluster.index(name, pattern)
        assert index is not None, (name, pattern, cluster.changes())
        positions.append(index)
    assert positions == sorted(positions), (steps, cluster.changes())


def test_documentation_parses_and_matches_the_argument_spec():
    doc = yaml.safe_load(mysql_switchover.DOCUMENTATION)
    doc['options'].update(yaml.safe_load(mysql_cluster.ModuleDocFragment.DOCUMENTATION)['options'])
    doc['options'].update(yaml.safe_load(mysql_cluster.ModuleDocFragment.NODES)['options'])
    spec = mysql_switchover.argument_spec()
    assert set(doc['options']) == set(spec)
    for name, option in spec.items():
        assert doc['options'][name].get('default') == option.get('default'), name
    yaml.safe_load(mysql_switchover.EXAMPLES)
    returned = yaml.safe_load(mysql_switchover.RETURN)
    for key in ('old_primary', 'new_primary', 'blocked_seconds', 'phases', 'plan'):
        assert key in returned


def test_switchover_mariadb(env):
    cluster = env.cluster
    session = cluster['server1'].add_session('app')
    result = ok(env.run(target='server2'))
    assert result['changed'] is True
    assert (result['old_primary'], result['new_primary']) == ('server1', 'server2')
    assert result['repointed'] == ['server3', 'server1'] and result['old_primary_rejoined'] is True
    assert result['position'] == '0-1-100'
    assert result['blocked_seconds'] == 0.25
    assert cluster['server1'].killed == [session]
    assert set(result['phases']) == {'connect', 'fence', 'catchup', 'promote', 'repoint', 'total'}
    order(cluster,
          ('server1', r'^SET GLOBAL read_only = 1$'), ('server1', r'^KILL CONNECTION'),
          ('server2', r"MASTER_GTID_WAIT\('0-1-100'"),
          ('server2', r'^STOP SLAVE$'), ('server2', r'^RESET SLAVE ALL$'),
          ('server2', r'^SET GLOBAL rpl_semi_sync_master_enabled = ON$'), ('server2', r'^SET GLOBAL read_only = 0$'),
          ('server3', r'^STOP SLAVE$'), ('server3', r'^CHANGE MASTER TO'), ('server3', r'^START SLAVE$'),
          ('server1', r'^SET GLOBAL rpl_semi_sync_master_enabled = OFF$'),
          ('server1', r"^SET GLOBAL gtid_slave_pos = '0-1-100'$"), ('server1', r'^CHANGE MASTER TO'),
          ('server1', r'^START SLAVE$'))
    assert 'STOP SLAVE' not in cluster.changes('server1')
    # the end state: one writable primary, everybody else replicates from it
    assert cluster['server2'].read_only is False and cluster['server2'].status is None
    for name in ('server1', 'server3'):
        assert cluster[name].read_only is True
        assert cluster[name].status['Master_Host'] == 'server2'
        assert cluster[name].status['Slave_SQL_Running'] == 'Yes'
    assert cluster['server1'].gtid['gtid_slave_pos'] == '0-1-100'
    # the source side follows the primary role
    assert cluster['server1'].variables['rpl_semi_sync_master_enabled'] == 'OFF'
    assert cluster['server2'].variables['rpl_semi_sync_master_enabled'] == 'ON'
    assert cluster['server3'].variables['rpl_semi_sync_master_enabled'] == 'OFF'
    assert not any('rpl_semi_sync' in sql for sql in cluster.changes('server3'))


def test_switchover_chooses_the_most_advanced_replica(env):
    cluster = env.cluster
    cluster.make_replica('server2', 'server1', received='0-1-100', applied='0-1-98')
    cluster.make_replica('server3', 'server1', received='0-1-100', applied='0-1-100')
    result = ok(env.run())
    assert result['new_primary'] == 'server3'


def test_switchover_is_idempotent(env):
    cluster = env.cluster
    ok(env.run(target='server2'))
    cluster.log[:] = []
    result = ok(env.run(target='server2'))
    assert result['changed'] is False and result['new_primary'] == 'server2'
    assert 'already the primary' in result['msg']
    assert cluster.changes() == []
    assert result['blocked_seconds'] == 0.0


def test_target_not_catching_up_undoes_the_read_only(env):
    cluster = env.cluster
    cluster.make_replica('server2', 'server1', received='0-1-100', applied='0-1-98')
    cluster['server2'].wait_applies = False  # its SQL thread does not get to apply 0-1-99..0-1-100
    result = failed(env.run(target='server2', wait_timeout=3), 'server2 did not reach the position of the primary',
                    'server1 is writable again', 'nothing was lost')
    assert cluster['server1'].read_only is False
    assert cluster.changes('server1')[-1] == 'SET GLOBAL read_only = 0'
    assert not any(re.search(r'RESET|CHANGE|STOP SLAVE$', sql) for name, sql in cluster.changes())
    assert cluster['server2'].status['Master_Host'] == 'server1'
    assert result['new_primary'] is None


def test_lagging_target_is_refused_before_anything_changes(env):
    cluster = env.cluster
    cluster['server3'].status['Seconds_Behind_Master'] = 300
    failed(env.run(target='server3', wait_timeout=30), 'server3 is 300 s behind', 'Nothing was changed')
    assert cluster.changes() == []


def test_errant_target_is_refused(env):
    cluster = env.cluster
    cluster.set_gtid('server3', '0-1-100,1-3-2', slave_pos='0-1-100')
    failed(env.run(target='server3'), 'errant transactions', '1-3-1..1-3-2')
    assert cluster.changes() == []


def test_unreachable_primary_is_refused(env):
    env.cluster.down('server1')
    failed(env.run(), 'is unreachable', 'mysql_failover')


def test_old_primary_with_a_late_write_is_not_rejoined(env):
    cluster = env.cluster

    def late_write(server, sql):
        # an account allowed to write to a read-only server wrote after the wait
        cluster['server1'].set_gtid(binlog_pos='0-1-101')
        cluster['server1'].gtid['gtid_binlog_state'] = '0-1-101'

    cluster['server2'].after.append((r'^RESET SLAVE ALL$', late_write))
    result = ok(env.run(target='server2'))
    assert result['new_primary'] == 'server2' and result['old_primary_rejoined'] is False
    assert result['repoint_failed'][0]['name'] == 'server1'
    assert '0-1-101' in result['repoint_failed'][0]['reason']
    assert not any('CHANGE' in sql for sql in cluster.changes('server1'))
    assert cluster['server1'].read_only is True


def test_switchover_mysql(env):
    cluster = env.setup('mysql')
    result = ok(env.run(target='server2'))
    assert result['position'] == U1 + ':1-100'
    order(cluster,
          ('server1', r'^SET GLOBAL super_read_only = 1$'),
          ('server2', r'WAIT_FOR_EXECUTED_GTID_SET'),
          ('server2', r'^RESET REPLICA ALL$'), ('server2', r'^SET GLOBAL rpl_semi_sync_source_enabled = ON$'),
          ('server2', r'^SET GLOBAL read_only = 0$'),
          ('server3', r'^CHANGE REPLICATION SOURCE TO'), ('server1', r'^SET GLOBAL rpl_semi_sync_source_enabled = OFF$'),
          ('server1', r'^CHANGE REPLICATION SOURCE TO'), ('server1', r'^START REPLICA$'))
    assert not any('gtid_slave_pos' in sql for name, sql in cluster.changes())
    assert cluster['server1'].status['Source_Host'] == 'server2'
    assert cluster['server1'].status['Auto_Position'] == 1


def test_check_mode_changes_nothing(env):
    cluster = env.cluster
    result = ok(env.run(check_mode=True, target='server3'))
    assert result['changed'] is True and result['new_primary'] == 'server3'
    assert result['repointed'] == ['server2', 'server1']
    assert cluster.changes() == [] and result['queries'] == []
    assert result['plan'][0] == 'make server1 read-only: SET GLOBAL read_only = 1, then kill its client sessions'
    assert any(step.startswith('make server1 a replica of server3: SET GLOBAL rpl_semi_sync_master_enabled = OFF; '
                               "SET GLOBAL gtid_slave_pos = '<its gtid_binlog_pos>'; CHANGE MASTER TO")
               for step in result['plan'])
    assert 'promote server3: STOP SLAVE; RESET SLAVE ALL; SET GLOBAL rpl_semi_sync_master_enabled = ON; ' \
           'SET GLOBAL read_only = 0' in result['plan']
    assert cluster['server1'].variables['rpl_semi_sync_master_enabled'] == 'ON'


@pytest.mark.parametrize('overrides, words', [
    (dict(target='server9'), 'target server9 is not the name of one of the nodes'),
    (dict(wait_timeout=-1), 'wait_timeout must not be negative'),
])
def test_bad_parameters(env, overrides, words):
    failed(env.run(**overrides), words)


def test_missing_privilege_is_refused_before_the_primary_is_fenced(env):
    # without RELOAD the promotion (RESET SLAVE ALL) would fail with the old
    # primary already read-only: refused before anything is changed
    cluster = env.setup('mariadb')
    cluster['server3'].privileges = [p for p in cluster['server3'].privileges if p != 'RELOAD']
    result = failed(env.run(target='server2'), 'server3 lacks RELOAD', 'nothing was changed')
    assert cluster.changes() == [] and result['changed'] is False
    assert cluster['server1'].read_only is False


def test_switchover_loses_no_acknowledged_write(env):
    cluster = env.cluster
    cluster['server3'].receives = False  # lagging: server2 acknowledges alone
    acknowledged = cluster.commit('server1', 5)
    cluster['server3'].receives = True
    result = ok(env.run(target='server2'))
    assert result['position'] == '0-1-105'
    assert result['old_primary_rejoined'] is True and result['repointed'] == ['server3', 'server1']
    for name in ('server1', 'server2', 'server3'):
        assert cluster[name].has_gtids(','.join(acknowledged)), name
    # the old primary replicates from the new one and acknowledges its commits
    written = cluster.commit('server2', 2)
    assert written == ['0-2-106', '0-2-107']
    for name in ('server1', 'server3'):
        assert cluster[name].has_gtids(','.join(written)), name
        # applied: no source side left on waits for acknowledgements of it
        assert cluster[name].gtid['gtid_slave_pos'] == '0-2-107', name
    assert cluster['server2'].global_status_value('Rpl_semi_sync_master_yes_tx') == '2'
    assert not cluster['server1'].status['Last_IO_Errno'] and not cluster['server1'].status['Last_SQL_Errno']


def test_the_old_primary_s_waiting_commits_are_killed_before_its_source_side_goes_off(env):
    # server3 lags and server2's semi-sync side is off: server1's client waits
    cluster = env.cluster
    cluster['server2'].semi_replica_on = False
    cluster['server3'].receives = False
    assert cluster.commit('server1') == []
    result = ok(env.run(target='server2'))
    assert result['new_primary'] == 'server2' and result['old_primary_rejoined'] is True
    # the fence killed the waiting session: its client got an error
    assert cluster['server1'].unacknowledged == ['0-1-101'] and cluster.acknowledged == []
    order(cluster, ('server1', r'^KILL CONNECTION'), ('server1', r'^SET GLOBAL rpl_semi_sync_master_enabled = OFF$'),
          ('server1', r'^CHANGE MASTER TO'))
    assert cluster['server2'].has_gtids('0-1-101')  # nothing lost either


def test_an_old_primary_that_is_not_rejoined_keeps_its_source_side(env):
    cluster = env.cluster

    def late_write(server, sql):
        cluster['server1'].set_gtid(binlog_pos='0-1-101')
        cluster['server1'].gtid['gtid_binlog_state'] = '0-1-101'

    cluster['server2'].after.append((r'^RESET SLAVE ALL$', late_write))
    result = ok(env.run(target='server2'))
    assert result['old_primary_rejoined'] is False
    assert not any('rpl_semi_sync' in sql for sql in cluster.changes('server1'))
    assert cluster['server1'].read_only is True
