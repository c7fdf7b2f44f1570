# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json

import pymysql
import pytest
import yaml

from ansible_collections.distweb.infra.plugins.module_utils import mysql_connection
from ansible_collections.distweb.infra.plugins.module_utils import mysql_dialect
from ansible_collections.distweb.infra.plugins.module_utils import mysql_server
from ansible_collections.distweb.infra.plugins.modules import mysql_replication_info as info_module

SOCKET = '/run/mysqld/mysqld.sock'
U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562'
U2 = '4f22ab58-82db-22f2-8f44-d91bb853a673'

VERSIONS = {'mariadb': '10.11.6-MariaDB-0+deb12u1-log', 'mysql80': '8.0.36', 'mysql84': '8.4.3'}


@pytest.fixture
def env(fake_net, make_info_server, status_rows, fake_password, run_main):
    """The local server (through SOCKET) and a primary at server1:3306."""

    class Env(object):
        password = fake_password

        def __init__(self):
            self.maria_row, self.mysql_row = status_rows
            self.net = fake_net
            self.setup('mariadb')

        def setup(self, kind, role='replica', read_only=None, version=None):
            """kind: mariadb, mysql80, mysql84 (or mysql with ``version``)."""
            flavor = 'mariadb' if kind == 'mariadb' else 'mysql'
            version = version or VERSIONS.get(kind)
            status = None
            if role == 'replica':
                status = self.maria_row() if flavor == 'mariadb' else self.mysql_row()
            if read_only is None:
                read_only = role != 'primary'
            self.local = make_info_server(flavor, version=version, server_id=2, hostname='server2',
                                          read_only=read_only, status=status, heartbeat=1.0 if status else None)
            self.primary = make_info_server(flavor, version=version, server_id=1, hostname='server1',
                                            read_only=False, users={'repl': self.password})
            if flavor == 'mariadb':
                self.local.set_gtid(slave_pos='0-1-42', binlog_pos='0-1-42')
                self.primary.set_gtid(slave_pos='', binlog_pos='0-1-45')
            else:
                self.local.set_gtid(executed=U1 + ':1-5', purged='')
                self.primary.set_gtid(executed=U1 + ':1-7', purged='')
            self.net.servers.clear()
            self.net.add(self.local, socket=SOCKET)
            self.net.add(self.primary, host='server1', port=3306)
            return self

        def args(self, **overrides):
            args = dict(login_unix_socket=SOCKET, config_file='/nonexistent/.my.cnf')
            args.update(overrides)
            return args

        def run(self, check_mode=False, **overrides):
            return run_main(info_module.main, self.args(**overrides), check_mode=check_mode)

        def primary_args(self, **overrides):
            args = dict(primary_host='server1', primary_user='repl', primary_password=self.password)
            args.update(overrides)
            return args

    return Env()


def ok(result):
    assert not result.get('failed'), result
    assert result['changed'] is False
    return result


def warnings_about(result, text):
    return [w for w in result['_warnings'] if text in w]


def key_tree(value):
    """Keys of nested dicts (list items by their first element)."""
    if isinstance(value, dict):
        return dict((k, key_tree(v)) for k, v in value.items())
    if isinstance(value, list) and value:
        return [key_tree(value[0])]
    return None


# ---------------------------------------------------------------------------
# Documentation and argument spec
# ---------------------------------------------------------------------------

def test_documentation_matches_argument_spec():
    doc = yaml.safe_load(info_module.DOCUMENTATION)
    spec = info_module.argument_spec()
    own = dict((k, v) for k, v in spec.items() if k not in mysql_connection.mysql_common_argument_spec())
    assert set(doc['options']) == set(own)
    for name, option in own.items():
        assert doc['options'][name]['type'] == option['type'], name
        assert doc['options'][name].get('default') == option.get('default'), name
    assert spec['primary_password']['no_log'] is True
    assert doc['attributes']['check_mode']['support'] == 'full'
    assert doc['attributes']['diff_mode']['support'] == 'none'
    yaml.safe_load(info_module.EXAMPLES)


@pytest.mark.parametrize('kind', ['mariadb', 'mysql80'])
def test_return_documents_every_key(env, kind):
    env.setup(kind, role='replica')
    env.local.add_replica_host(3, 'server3')
    result = ok(env.run(primary_gtid=''))
    doc = yaml.safe_load(info_module.RETURN)
    returned = set(result) - {'changed', '_warnings'}
    assert returned == set(doc)
    for key in ('gtid', 'replication', 'semi_sync', 'errant', 'replicas'):
        value = result[key][0] if key == 'replicas' else result[key]
        assert set(value) == set(doc[key]['contains']), key
    assert set(result['replication']) == set(mysql_server.STATUS_KEYS)
    assert set(result['semi_sync']) == set(mysql_server.SEMI_SYNC_KEYS)


# ---------------------------------------------------------------------------
# Role
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['mariadb', 'mysql80', 'mysql84'])
def test_role_replica(env, kind):
    env.setup(kind, role='replica')
    result = ok(env.run())
    assert result['role'] == 'replica'
    assert result['read_only'] is True
    repl = result['replication']
    assert repl['configured'] is True
    assert repl['io_running'] is True and repl['sql_running'] is True
    assert repl['io_thread'] == 'Yes' and repl['sql_thread'] == 'Yes'
    assert repl['source_host'] == 'server1' and repl['source_port'] == 3306 and repl['source_user'] == 'repl'
    assert repl['seconds_behind'] == 0 and repl['heartbeat_period'] == 1.0
    assert repl['last_io_errno'] == 0 and repl['last_sql_error'] == ''
    assert repl['auto_position'] is True
    assert result['msg'].startswith('server2 (server_id 2, ')
    assert 'is a replica of server1:3306 (IO thread Yes, SQL thread Yes, 0 s behind)' in result['msg']


def test_role_replica_with_stopped_threads_is_still_a_replica(env, status_rows):
    env.setup('mariadb', role='replica')
    env.local.status.update(Slave_IO_Running='No', Slave_SQL_Running='No', Seconds_Behind_Master=None,
                            Last_IO_Errno=2003, Last_IO_Error="error connecting to master 'repl@server1:3306'")
    result = ok(env.run())
    assert result['role'] == 'replica'
    assert result['replication']['io_running'] is False
    assert result['replication']['last_io_errno'] == 2003
    assert result['replication']['seconds_behind'] is None
    assert 'lag unknown' in result['msg']


@pytest.mark.parametrize('kind', ['mariadb', 'mysql80', 'mysql84'])
def test_role_primary_writable(env, kind):
    env.setup(kind, role='primary')
    env.local.add_replica_host(3, 'server3').add_replica_host(4, 'server4', port=3307)
    result = ok(env.run())
    assert result['role'] == 'primary'
    assert result['read_only'] is False and result['super_read_only'] is False
    assert result['replication']['configured'] is False
    assert result['gtid']['received'] is None
    assert result['replicas'] == [
        dict(server_id=3, host='server3', port=3306, source_id=2, uuid=None if kind == 'mariadb' else 'uuid-3'),
        dict(server_id=4, host='server4', port=3307, source_id=2, uuid=None if kind == 'mariadb' else 'uuid-4'),
    ]
    assert 'is a writable primary with 2 replica(s) connected' in result['msg']
    sent = [sql for sql, dummy in env.local.executed]
    assert ('SHOW SLAVE HOSTS' if kind == 'mariadb' else 'SHOW REPLICAS') in sent


def test_role_primary_writable_without_replicas(env):
    env.setup('mariadb', role='none', read_only=False)
    result = ok(env.run())
    assert result['role'] == 'primary'
    assert result['replicas'] == []


@pytest.mark.parametrize('kind', ['mariadb', 'mysql84'])
def test_role_primary_read_only_with_replicas(env, kind):
    # a fenced primary (read_only during a switchover) still has its replicas
    env.setup(kind, role='none', read_only=True)
    env.local.add_replica_host(3, 'server3')
    result = ok(env.run())
    assert result['role'] == 'primary'
    assert result['read_only'] is True
    assert 'is a read-only primary with 1 replica(s) connected' in result['msg']


@pytest.mark.parametrize('kind', ['mariadb', 'mysql80', 'mysql84'])
def test_role_standalone(env, kind):
    env.setup(kind, role='none', read_only=True)
    result = ok(env.run())
    assert result['role'] == 'standalone'
    assert result['replicas'] == []
    assert 'is standalone' in result['msg']


def test_replica_hosts_not_readable(env):
    env.setup('mariadb', role='none', read_only=True)
    env.local.add_replica_host(3, 'server3')
    env.local.errors['SLAVE HOSTS'] = pymysql.err.OperationalError(
        1227, 'Access denied; you need (at least one of) the REPLICATION MASTER ADMIN privilege(s)')
    result = ok(env.run())
    assert result['replicas'] is None
    assert result['role'] == 'standalone'
    assert warnings_about(result, 'Cannot list the replicas connected to this server (SHOW SLAVE HOSTS): '
                                  'Access denied; you need (at least one of) the REPLICATION MASTER ADMIN')
    assert 'an unknown number of' not in result['msg']
    env.local.read_only = False
    result = ok(env.run())
    assert result['role'] == 'primary' and 'an unknown number of replica(s)' in result['msg']


def test_decide_role_rule():
    replica = dict(configured=True)
    not_replica = dict(configured=False)
    assert info_module.decide_role(replica, dict(read_only=False), [{'server_id': 3}]) == 'replica'
    assert info_module.decide_role(not_replica, dict(read_only=False), None) == 'primary'
    assert info_module.decide_role(not_replica, dict(read_only=True), [{'server_id': 3}]) == 'primary'
    assert info_module.decide_role(not_replica, dict(read_only=True), []) == 'standalone'
    assert info_module.decide_role(not_replica, dict(read_only=True), None) == 'standalone'


# ---------------------------------------------------------------------------
# Same keys for every flavor
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('role', ['replica', 'primary', 'none'])
def test_same_keys_for_mariadb_and_mysql(env, role):
    trees = {}
    for kind in ('mariadb', 'mysql80', 'mysql84'):
        env.setup(kind, role=role)
        env.local.set_semi_sync()
        env.local.add_replica_host(3, 'server3')
        result = ok(env.run(primary_gtid=''))
        result.pop('_warnings')
        trees[kind] = key_tree(result)
    assert trees['mariadb'] == trees['mysql80'] == trees['mysql84']


@pytest.mark.parametrize('kind', ['mariadb', 'mysql80', 'mysql84'])
def test_server_identity(env, kind):
    env.setup(kind, role='replica')
    result = ok(env.run())
    assert result['server_id'] == 2 and result['hostname'] == 'server2' and result['port'] == 3306
    assert result['version'] == VERSIONS[kind]
    assert result['flavor'] == ('mariadb' if kind == 'mariadb' else 'mysql')
    if kind == 'mariadb':
        assert result['server_uuid'] is None
        assert result['super_read_only'] is False
    else:
        assert result['server_uuid'] == 'uuid-2'
        assert result['super_read_only'] is True


def test_mariadb_server_uid_when_the_server_has_one(env):
    env.setup('mariadb', role='replica')
    env.local.variables['server_uid'] = 'hLHc4QZlbY1khIQIFF1T7A6tj04='
    assert ok(env.run())['server_uuid'] == 'hLHc4QZlbY1khIQIFF1T7A6tj04='
    env.local.variables.clear()
    env.local.global_status['Server_uid'] = 'AABBCCDD='
    assert ok(env.run())['server_uuid'] == 'AABBCCDD='


# ---------------------------------------------------------------------------
# GTID positions
# ---------------------------------------------------------------------------

def test_gtid_mariadb(env):
    env.setup('mariadb', role='replica')
    env.local.set_gtid(slave_pos='0-1-42', binlog_pos='1-2-3,0-1-42', current_pos='0-1-42,1-2-3')
    env.local.status['Gtid_IO_Pos'] = '0-1-44'
    result = ok(env.run())
    assert result['gtid'] == dict(executed='0-1-42,1-2-3', binlog='0-1-42,1-2-3', received='0-1-44',
                                  slave_pos='0-1-42', purged=None)
    assert result['replication']['gtid_io_pos'] == '0-1-44'
    assert result['replication']['using_gtid'] == 'slave_pos'


@pytest.mark.parametrize('kind', ['mysql80', 'mysql84'])
def test_gtid_mysql(env, kind):
    env.setup(kind, role='replica')
    env.local.set_gtid(executed=U2 + ':1-3,\n' + U1 + ':1-5', purged=U1 + ':1-2')
    env.local.status['Retrieved_Gtid_Set'] = U1 + ':3-6'
    result = ok(env.run())
    assert result['gtid'] == dict(executed=U1 + ':1-5,' + U2 + ':1-3', binlog=U1 + ':1-5,' + U2 + ':1-3',
                                  received=U1 + ':3-6', slave_pos=None, purged=U1 + ':1-2')
    assert result['replication']['using_gtid'] == 'auto_position'


def test_gtid_mariadb_replica_without_io_position(env):
    env.setup('mariadb', role='replica')
    env.local.status['Gtid_IO_Pos'] = ''
    assert ok(env.run())['gtid']['received'] == ''


def test_unparseable_gtid_is_shown_as_is(env):
    env.setup('mariadb', role='primary')
    env.local.set_gtid(binlog_pos='0-1-4x', current_pos='0-1-40')
    result = ok(env.run())
    assert result['gtid']['binlog'] == '0-1-4x'
    assert warnings_about(result, "Cannot parse the binlog GTIDs of this server, shown as it is")


# ---------------------------------------------------------------------------
# Semi-synchronous replication
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['mariadb', 'mysql80', 'mysql84'])
def test_semi_sync_healthy_primary(env, kind):
    env.setup(kind, role='primary')
    env.local.set_semi_sync(source_enabled=True, clients=2, yes_tx=1520, no_tx=0, timeout=5000)
    result = ok(env.run())
    assert result['semi_sync'] == dict(available=True, source_enabled=True, replica_enabled=False,
                                       source_status=True, replica_status=False, fallen_back_to_async=False,
                                       clients=2, wait_point='AFTER_SYNC', timeout_ms=5000, wait_no_replica=True,
                                       lossless=False, yes_tx=1520, no_tx=0,
                                       source_variable=('rpl_semi_sync_master_enabled' if kind == 'mariadb'
                                                        else 'rpl_semi_sync_source_enabled'))
    assert result['_warnings'] == []


@pytest.mark.parametrize('kind', ['mariadb', 'mysql80', 'mysql84'])
def test_semi_sync_lossless_primary(env, kind):
    # what the mysql_server role writes with mysql_server_lossless
    env.setup(kind, role='primary')
    env.local.set_semi_sync(source_enabled=True, replica_enabled=True, replica_status=False, clients=1)
    semi = ok(env.run())['semi_sync']
    assert (semi['timeout_ms'], semi['wait_no_replica'], semi['lossless']) == (4294967295, True, True)
    assert semi['fallen_back_to_async'] is False


@pytest.mark.parametrize('change', [dict(timeout=4294967294), dict(wait_no_slave=False),
                                    dict(wait_point='AFTER_COMMIT'), dict(replica_enabled=False)])
def test_semi_sync_not_lossless(env, change):
    env.setup('mariadb', role='primary')
    settings = dict(source_enabled=True, replica_enabled=True, replica_status=False, clients=1)
    settings.update(change)
    env.local.set_semi_sync(**settings)
    assert ok(env.run())['semi_sync']['lossless'] is False


@pytest.mark.parametrize('kind', ['mariadb', 'mysql80', 'mysql84'])
def test_semi_sync_fallen_back_to_async(env, kind):
    env.setup(kind, role='primary')
    env.local.set_semi_sync(source_enabled=True, source_status=False, clients=0, yes_tx=100, no_tx=3)
    result = ok(env.run())
    semi = result['semi_sync']
    assert semi['source_enabled'] is True and semi['source_status'] is False
    assert semi['fallen_back_to_async'] is True
    assert semi['no_tx'] == 3
    name = ('Rpl_semi_sync_master_status' if kind == 'mariadb'
            else 'Rpl_semi_sync_source_status or Rpl_semi_sync_master_status')
    found = warnings_about(result, 'fell back to asynchronous replication')
    assert len(found) == 1
    assert ('(%s=OFF)' % name) in found[0]
    assert '3 commit(s) not acknowledged' in found[0]


def test_semi_sync_fallen_back_on_a_replica_is_not_reported(env):
    # every node has the source side enabled, ready for a failover; on a
    # replica it serves no writes, so OFF there is not a fallback
    env.setup('mariadb', role='replica')
    env.local.set_semi_sync(source_enabled=True, source_status=False, replica_enabled=True)
    result = ok(env.run())
    assert result['semi_sync']['fallen_back_to_async'] is False
    assert result['semi_sync']['source_status'] is False
    assert result['semi_sync']['replica_enabled'] is True and result['semi_sync']['replica_status'] is True
    assert result['_warnings'] == []


def test_semi_sync_primary_without_semi_sync_replicas(env):
    env.setup('mariadb', role='primary')
    env.local.set_semi_sync(source_enabled=True, clients=0, timeout=10000)
    result = ok(env.run())
    assert result['semi_sync']['fallen_back_to_async'] is False
    assert warnings_about(result, 'no semi-sync replica is connected: the next commit waits up to 10000 ms')


def test_semi_sync_disabled(env):
    env.setup('mariadb', role='primary')
    env.local.set_semi_sync(source_enabled=False, wait_point='AFTER_COMMIT')
    semi = ok(env.run())['semi_sync']
    assert semi['available'] is True and semi['source_enabled'] is False
    assert semi['fallen_back_to_async'] is False and semi['wait_point'] == 'AFTER_COMMIT'


@pytest.mark.parametrize('kind', ['mysql80', 'mysql84'])
def test_semi_sync_mysql_without_plugin(env, kind):
    env.setup(kind, role='primary')
    result = ok(env.run())
    assert result['semi_sync'] == dict(available=False, source_enabled=False, replica_enabled=False,
                                       source_status=False, replica_status=False, fallen_back_to_async=False,
                                       clients=None, wait_point=None, timeout_ms=None, wait_no_replica=False,
                                       lossless=False, yes_tx=None, no_tx=None, source_variable=None)
    assert result['_warnings'] == []


def test_semi_sync_mysql_old_plugin_names(env):
    env.setup('mysql', role='primary', version='8.0.23')
    env.local.set_semi_sync(source_enabled=True, source_status=False, clients=0)
    assert 'rpl_semi_sync_master_enabled' in env.local.variables
    result = ok(env.run())
    assert result['semi_sync']['fallen_back_to_async'] is True
    assert warnings_about(result, '(Rpl_semi_sync_source_status or Rpl_semi_sync_master_status=OFF)')


def test_semi_sync_queries_are_parameters(env):
    env.setup('mariadb', role='primary')
    env.local.set_semi_sync()
    ok(env.run())
    shows = [(sql, params) for sql, params in env.local.executed if sql.startswith('SHOW GLOBAL')]
    assert shows[0][0].startswith('SHOW GLOBAL VARIABLES WHERE Variable_name IN (%s')
    assert 'rpl_semi_sync_master_enabled' in shows[0][1]
    assert 'Rpl_semi_sync_master_status' in shows[1][1]


# ---------------------------------------------------------------------------
# Errant transactions
# ---------------------------------------------------------------------------

def test_errant_not_checked_without_a_primary(env):
    env.setup('mariadb', role='replica')
    errant = ok(env.run())['errant']
    assert errant == dict(checked=False, local_gtid='0-1-42', primary_gtid=None, primary_gtid_from=None,
                          errant_transactions=None, has_errant=None, comparison=None)


def test_errant_none_from_primary_gtid_mariadb(env):
    env.setup('mariadb', role='replica')
    result = ok(env.run(primary_gtid='0-1-45'))
    assert result['errant'] == dict(checked=True, local_gtid='0-1-42', primary_gtid='0-1-45',
                                    primary_gtid_from='primary_gtid', errant_transactions='', has_errant=False,
                                    comparison='behind')
    assert result['_warnings'] == []


def test_errant_found_from_primary_gtid_mariadb(env):
    env.setup('mariadb', role='replica')
    # two local writes on the replica after it replicated 0-1-42, one in domain 1
    env.local.set_gtid(slave_pos='0-1-42', binlog_pos='0-2-43,1-2-1')
    result = ok(env.run(primary_gtid='0-1-42'))
    errant = result['errant']
    assert errant['errant_transactions'] == '0-2-43,1-2-1'
    assert errant['has_errant'] is True
    assert errant['comparison'] == 'ahead'
    assert errant['local_gtid'] == '0-2-43,1-2-1'
    assert warnings_about(result, 'errant transactions, GTIDs the primary (primary_gtid) lacks: 0-2-43,1-2-1')
    assert result['msg'].endswith('; it has errant transactions: 0-2-43,1-2-1')


def test_errant_mariadb_conflict_at_the_same_seqno(env):
    env.setup('mariadb', role='replica')
    env.local.set_gtid(binlog_pos='0-2-45')
    errant = ok(env.run(primary_gtid='0-1-45'))['errant']
    assert errant['errant_transactions'] == '0-2-45' and errant['comparison'] == 'diverged'


def test_errant_mariadb_against_the_primary_binlog_state(env):
    env.setup('mariadb', role='replica')
    env.local.set_gtid(binlog_pos='0-2-43')
    # the primary moved on to 0-1-60: its position alone hides the replica's write
    assert ok(env.run(primary_gtid='0-1-60'))['errant']['has_errant'] is False
    # its gtid_binlog_state shows server 2 never wrote 0-2-43 there
    errant = ok(env.run(primary_gtid='0-1-60,0-2-10'))['errant']
    assert errant['has_errant'] is True and errant['errant_transactions'] == '0-2-43'
    assert errant['primary_gtid'] == '0-1-60,0-2-10'


@pytest.mark.parametrize('kind', ['mysql80', 'mysql84'])
def test_errant_from_primary_gtid_mysql(env, kind):
    env.setup(kind, role='replica')
    env.local.set_gtid(executed=U1 + ':1-5,\n' + U2 + ':1-2')
    result = ok(env.run(primary_gtid=U1 + ':1-7'))
    errant = result['errant']
    assert errant['errant_transactions'] == U2 + ':1-2'
    assert errant['has_errant'] is True and errant['comparison'] == 'diverged'
    assert errant['primary_gtid'] == U1 + ':1-7'
    assert warnings_about(result, U2 + ':1-2')
    env.local.set_gtid(executed=U1 + ':1-5')
    errant = ok(env.run(primary_gtid=U1.upper() + ':1-7'))['errant']
    assert errant['errant_transactions'] == '' and errant['has_errant'] is False
    assert errant['comparison'] == 'behind'


def test_errant_on_the_primary_itself(env):
    env.setup('mariadb', role='primary')
    errant = ok(env.run(primary_gtid='0-1-42'))['errant']
    assert errant['has_errant'] is False and errant['comparison'] == 'equal'


@pytest.mark.parametrize('kind, bad, token', [
    ('mariadb', '0-1-x', "'0-1-x'"),
    ('mariadb', U1 + ':1-5', 'Invalid MariaDB GTID position'),
    ('mysql80', U1 + ':5-1', "'5-1'"),
    ('mysql84', '0-1-5', "'0-1-5'"),
])
def test_errant_malformed_primary_gtid_fails(env, kind, bad, token):
    env.setup(kind, role='replica')
    result = env.run(primary_gtid=bad)
    assert result['failed'] is True
    assert result['msg'].startswith('The primary GTIDs (primary_gtid) cannot be used: ')
    assert token in result['msg']


@pytest.mark.parametrize('kind', ['mariadb', 'mysql80', 'mysql84'])
def test_errant_read_from_the_primary(env, kind):
    env.setup(kind, role='replica')
    if kind == 'mariadb':
        env.local.set_gtid(binlog_pos='0-1-42,1-2-7')
    else:
        env.local.set_gtid(executed=U1 + ':1-5,' + U2 + ':1-7')
    result = ok(env.run(**env.primary_args()))
    errant = result['errant']
    assert errant['primary_gtid_from'] == 'server1:3306'
    assert errant['primary_gtid'] == ('0-1-45' if kind == 'mariadb' else U1 + ':1-7')
    assert errant['errant_transactions'] == ('1-2-1..1-2-7' if kind == 'mariadb' else U2 + ':1-7')
    assert errant['has_errant'] is True
    # the local GTIDs are read before the primary's
    local_gtid_reads = [sql for sql, dummy in env.local.executed if sql.startswith('SELECT @@gtid')]
    primary_gtid_reads = [sql for sql, dummy in env.primary.executed if sql.startswith('SELECT @@gtid')]
    assert len(local_gtid_reads) == 1 and len(primary_gtid_reads) == 1
    connect = [c for c in env.net.connects if c.get('host') == 'server1'][-1]
    assert connect['user'] == 'repl' and connect['password'] == env.password
    assert 'ssl' not in connect
    assert 'read_default_file' not in connect
    assert env.password not in json.dumps(result, default=str)
    # nothing but reads on either server
    assert env.local.statements() == [] and env.primary.statements() == []


def test_errant_read_order_local_first(env, monkeypatch):
    env.setup('mariadb', role='replica')
    order = []
    original = mysql_server.MySQLServer.gtid_positions

    def spy(self):
        order.append(self.what)
        return original(self)

    monkeypatch.setattr(mysql_server.MySQLServer, 'gtid_positions', spy)
    ok(env.run(**env.primary_args()))
    assert order == ['the local server', 'the primary']


def test_errant_primary_over_tls(env, monkeypatch):
    env.setup('mariadb', role='replica')
    contexts = []

    def fake_context(**kwargs):
        contexts.append(kwargs)
        return 'TLS-CONTEXT'

    monkeypatch.setattr(mysql_connection, 'build_ssl_context', fake_context)
    ok(env.run(**env.primary_args(primary_ssl_ca='/etc/mysql/ssl/ca.pem', primary_ssl_verify_server_cert=True)))
    connect = [c for c in env.net.connects if c.get('host') == 'server1'][-1]
    assert connect['ssl'] == 'TLS-CONTEXT'
    assert contexts == [dict(ca='/etc/mysql/ssl/ca.pem', cert=None, key=None, verify_cert=True,
                             verify_identity=True)]


def test_errant_primary_verify_cert_turns_tls_on(env, monkeypatch):
    env.setup('mariadb', role='replica')
    contexts = []
    monkeypatch.setattr(mysql_connection, 'build_ssl_context', lambda **kwargs: contexts.append(kwargs) or 'CTX')
    ok(env.run(**env.primary_args(primary_ssl_verify_server_cert=True)))
    assert contexts == [dict(ca=None, cert=None, key=None, verify_cert=True, verify_identity=True)]
    contexts[:] = []
    ok(env.run(**env.primary_args(primary_ssl=True)))
    assert contexts == [dict(ca=None, cert=None, key=None, verify_cert=False, verify_identity=False)]


def test_errant_primary_login_fails(env):
    env.setup('mariadb', role='replica')
    result = env.run(**env.primary_args(primary_password='wrong-one'))
    assert result['failed'] is True
    assert result['msg'] == (
        "Unable to connect to the primary server1:3306 with the primary_* credentials (server1:3306): Access "
        "denied for user 'repl'@'server2' (using password: YES) (error 1045)")
    assert result['errno'] == 1045


def test_errant_primary_unreachable(env):
    env.setup('mariadb', role='replica')
    result = env.run(**env.primary_args(primary_host='server9'))
    assert result['failed'] is True
    assert "Can't connect to MySQL server on 'server9'" in result['msg']


def test_errant_primary_of_another_flavor(env, make_info_server):
    env.setup('mariadb', role='replica')
    other = make_info_server('mysql', server_id=1, hostname='server1', read_only=False,
                             users={'repl': env.password})
    env.net.add(other, host='server1', port=3306)
    result = env.run(**env.primary_args())
    assert result['failed'] is True
    assert 'runs 8.0.36 and this server runs 10.11.6-MariaDB' in result['msg']


def test_errant_primary_read_only_warns(env):
    env.setup('mariadb', role='replica')
    env.primary.read_only = True
    result = ok(env.run(**env.primary_args()))
    assert warnings_about(result, 'The primary server1:3306 (server_id 1) is read-only')


def test_errant_primary_query_fails(env):
    env.setup('mariadb', role='replica')
    env.primary.errors['@@gtid_'] = pymysql.err.OperationalError(1045, 'Access denied')
    result = env.run(**env.primary_args())
    assert result['failed'] is True
    assert result['msg'] == 'Reading the GTIDs of the primary server1:3306 failed: Access denied (error 1045)'


def test_primary_gtid_and_primary_host_are_exclusive(env):
    result = env.run(primary_gtid='0-1-1', **env.primary_args())
    assert result['failed'] is True
    assert 'mutually exclusive' in result['msg']


def test_primary_host_needs_a_user(env):
    result = env.run(primary_host='server1')
    assert result['failed'] is True
    assert 'primary_user' in result['msg']


@pytest.mark.parametrize('args, msg', [
    (dict(primary_host='server1', primary_user='repl', primary_port=0), 'primary_port must be between 1 and 65535'),
    (dict(primary_host='', primary_user='repl'), 'primary_host must not be empty'),
])
def test_bad_options(env, args, msg):
    result = env.run(**args)
    assert result['failed'] is True and result['msg'] == msg


# ---------------------------------------------------------------------------
# Failures and check mode
# ---------------------------------------------------------------------------

def test_local_connection_error(env):
    env.net.servers.clear()
    result = env.run()
    assert result['failed'] is True
    assert result['msg'].startswith('Unable to connect to the local server (unix socket %s): ' % SOCKET)
    assert "Can't connect to MySQL server" in result['msg']


def test_local_access_denied(env):
    env.local.users = {'monitor': 'secret-1'}
    result = env.run(login_user='monitor', login_password='nope')
    assert result['failed'] is True
    assert "Access denied for user 'monitor'" in result['msg']


def test_local_query_error(env):
    env.setup('mariadb', role='replica')
    env.local.errors['SHOW SLAVE STATUS'] = pymysql.err.OperationalError(
        1227, 'Access denied; you need (at least one of) the SUPER, SLAVE MONITOR privilege(s)')
    result = env.run()
    assert result['failed'] is True
    assert result['msg'] == ('Query failed on the local server: Access denied; you need (at least one of) the '
                             'SUPER, SLAVE MONITOR privilege(s) (error 1227)')


def test_unsupported_server(env, make_info_server):
    env.net.servers.clear()
    env.net.add(make_info_server('mariadb', version='10.5.9-MariaDB'), socket=SOCKET)
    result = env.run()
    assert result['failed'] is True
    assert result['msg'].startswith('The local server is not supported: MariaDB 10.5.9-MariaDB is not supported')


@pytest.mark.parametrize('kind', ['mariadb', 'mysql84'])
def test_check_mode_reads_the_same(env, kind):
    env.setup(kind, role='replica')
    env.local.set_semi_sync()
    normal = ok(env.run(primary_gtid=''))
    checked = ok(env.run(check_mode=True, primary_gtid=''))
    assert checked == normal
    assert env.local.statements() == []


def test_only_reads_are_sent(env):
    env.setup('mariadb', role='replica')
    ok(env.run(**env.primary_args()))
    sent = [sql for sql, dummy in env.local.executed]
    assert all(sql.split()[0] in ('SELECT', 'SHOW') for sql in sent), sent


# ---------------------------------------------------------------------------
# What module_utils (mysql_dialect.py, mysql_server.py) gained for this module
# ---------------------------------------------------------------------------

MYSQL_WAIT_NO_REPLICA = ('rpl_semi_sync_source_wait_no_replica', 'rpl_semi_sync_master_wait_no_slave')


@pytest.mark.parametrize('version, hosts, source, status_name, wait_no_replica', [
    ('10.11.6-MariaDB', 'SHOW SLAVE HOSTS', ('rpl_semi_sync_master_enabled',), ('Rpl_semi_sync_master_status',),
     ('rpl_semi_sync_master_wait_no_slave',)),
    ('8.0.36', 'SHOW REPLICAS', ('rpl_semi_sync_source_enabled', 'rpl_semi_sync_master_enabled'),
     ('Rpl_semi_sync_source_status', 'Rpl_semi_sync_master_status'), MYSQL_WAIT_NO_REPLICA),
    ('8.4.0', 'SHOW REPLICAS', ('rpl_semi_sync_source_enabled', 'rpl_semi_sync_master_enabled'),
     ('Rpl_semi_sync_source_status', 'Rpl_semi_sync_master_status'), MYSQL_WAIT_NO_REPLICA),
])
def test_dialect_names(version, hosts, source, status_name, wait_no_replica):
    dialect = mysql_dialect.dialect_for_version(version)
    assert dialect.replica_hosts_sql == hosts
    names = dialect.semi_sync_names()
    # lossless is derived from the others
    assert set(names) == set(mysql_server.SEMI_SYNC_KEYS) - {'available', 'fallen_back_to_async', 'lossless',
                                                             'source_variable'}
    assert names['source_enabled'] == ('variable', source)
    assert names['wait_no_replica'] == ('variable', wait_no_replica)
    assert names['source_status'] == ('status', status_name)
    replica_side = names['replica_enabled'][1][0]
    assert replica_side == ('rpl_semi_sync_slave_enabled' if 'MariaDB' in version else 'rpl_semi_sync_replica_enabled')
    assert set(dialect.gtid_position_columns) == set(mysql_server.GTID_POSITION_KEYS)


def test_global_values_sql():
    dialect = mysql_dialect.dialect_for_version('10.11.6-MariaDB')
    statement = dialect.global_values_sql('status', ['Rpl_semi_sync_master_status', "odd'name"])
    assert statement.sql == 'SHOW GLOBAL STATUS WHERE Variable_name IN (%s, %s)'
    assert statement.params == ('Rpl_semi_sync_master_status', "odd'name")
    assert str(statement) == "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'odd\\'name')"
    with pytest.raises(ValueError):
        dialect.global_values_sql('session', ['x'])
    with pytest.raises(ValueError):
        dialect.global_values_sql('variable', [])


def test_normalize_semi_sync_values():
    dialect = mysql_dialect.dialect_for_version('8.0.36')
    semi = mysql_server.normalize_semi_sync(
        dialect,
        {'RPL_SEMI_SYNC_MASTER_ENABLED': '1', 'rpl_semi_sync_master_wait_point': 'after_commit',
         'rpl_semi_sync_master_timeout': '250'},
        {'Rpl_semi_sync_master_status': b'OFF', 'Rpl_semi_sync_master_clients': '0',
         'Rpl_semi_sync_master_no_tx': '12'})
    assert semi == dict(available=True, source_enabled=True, replica_enabled=False, source_status=False,
                        replica_status=False, fallen_back_to_async=True, clients=0, wait_point='AFTER_COMMIT',
                        timeout_ms=250, wait_no_replica=False, lossless=False, yes_tx=None, no_tx=12,
                        source_variable='rpl_semi_sync_master_enabled')
    semi = mysql_server.normalize_semi_sync(
        mysql_dialect.dialect_for_version('10.11.6-MariaDB'),
        {'rpl_semi_sync_master_enabled': 'OFF', 'rpl_semi_sync_slave_enabled': 'ON',
         'rpl_semi_sync_master_wait_point': 'AFTER_SYNC', 'rpl_semi_sync_master_timeout': '4294967295',
         'rpl_semi_sync_master_wait_no_slave': 'ON'}, {})
    assert (semi['wait_no_replica'], semi['lossless'], semi['source_enabled']) == (True, True, False)
    # the 8.0.26+ names win when both plugins' names are there
    semi = mysql_server.normalize_semi_sync(
        dialect, {'rpl_semi_sync_source_enabled': 'ON', 'rpl_semi_sync_master_enabled': 'OFF'},
        {'Rpl_semi_sync_source_status': 'ON'})
    assert semi['source_enabled'] is True and semi['source_status'] is True
    assert mysql_server.normalize_semi_sync(dialect, None, None)['available'] is False
    semi = mysql_server.normalize_semi_sync(
        dialect, {'rpl_semi_sync_source_wait_no_replica': 'ON', 'rpl_semi_sync_master_wait_no_slave': 'OFF'}, {})
    assert semi['wait_no_replica'] is True


def test_normalize_replica_host():
    assert mysql_server.normalize_replica_host({'Server_id': '3', 'Host': '', 'Port': 3306, 'Master_id': 1}) == \
        dict(server_id=3, host='', port=3306, source_id=1, uuid=None)
    assert mysql_server.normalize_replica_host(
        {'Server_Id': 3, 'Host': 'server3', 'Port': '3307', 'Source_Id': 1, 'Replica_UUID': 'u-3'}) == \
        dict(server_id=3, host='server3', port=3307, source_id=1, uuid='u-3')
