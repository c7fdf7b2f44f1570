# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import copy
import pathlib

import pytest
import yaml

from ansible.module_utils import _internal as module_utils_internal

# Importing controller code (the filter raises ansible.errors exceptions) marks
# the whole test process as the controller, after which modules tested later
# send their warnings to Display instead of their result: keep the flag as it
# was (conftest's module tests rely on it).
_IS_CONTROLLER = module_utils_internal.is_controller
from ansible.errors import AnsibleFilterError  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.distweb.infra.plugins.filter import tier_health  # noqa: E402  pylint: disable=wrong-import-position

module_utils_internal.is_controller = _IS_CONTROLLER

REPO = pathlib.Path(__file__).resolve().parents[4]

GROUPS = {
    'all': ['lb1', 'lb2', 'server1', 'server2', 'server3', 'monitor'],
    'loadbalancers': ['lb1', 'lb2'],
    'webservers': ['server1', 'server2', 'server3'],
    'appservers': ['server1', 'server2', 'server3'],
    'dbservers': ['server1', 'server2', 'server3'],
    'monitoring': ['monitor'],
}
SERVERS = ['server1', 'server2', 'server3']


def sample(value, **labels):
    return {'metric': labels, 'value': [1767225600.123, str(value)]}


def healthy():
    """The answers of a healthy lab, as lists of samples by query name."""
    up = [sample(1, __name__='up', job='node', instance=h) for h in GROUPS['all']]
    up += [sample(1, job='haproxy', instance=h) for h in GROUPS['loadbalancers']]
    up += [sample(1, job=job, instance=h) for h in SERVERS for job in ('nginx', 'app', 'mysqld')]
    up += [sample(1, job=job, instance='monitor') for job in ('prometheus', 'alertmanager')]
    replicas = ['server2', 'server3']
    slave = dict(master_host='172.28.10.11', channel_name='', connection_name='')
    return {
        'up': up,
        'haproxy_servers': [sample(1, instance=lb, job='haproxy', proxy='web', server=s, state='UP')
                            for lb in GROUPS['loadbalancers'] for s in SERVERS],
        'nginx_up': [sample(1, instance=h, job='nginx') for h in SERVERS],
        'request_rate': [sample(2.5, instance=h) for h in SERVERS],
        'error_rate': [sample(0, instance=h) for h in SERVERS],
        'mysql_up': [sample(1, instance=h, job='mysqld') for h in SERVERS],
        'read_only': [sample(0 if h == 'server1' else 1, instance=h, job='mysqld') for h in SERVERS],
        'io_running': [sample(1, instance=h, job='mysqld', **slave) for h in replicas],
        'sql_running': [sample(1, instance=h, job='mysqld', **slave) for h in replicas],
        'seconds_behind': [sample(0, instance=h, job='mysqld', **slave) for h in replicas],
        'semi_sync_status': [sample(1, instance='server1', job='mysqld')] + [
            sample(0, instance=h, job='mysqld') for h in replicas],
        'semi_sync_enabled': [sample(1, instance=h, job='mysqld') for h in SERVERS],
        'disk_free_ratio': [sample(0.62, instance=h) for h in GROUPS['all']],
        'alerts': [],
    }


def rows_of(answers, **kwargs):
    return tier_health.tier_health_rows(answers, GROUPS, **kwargs)


def row(rows, tier, host):
    found = [r for r in rows if r['tier'] == tier and r['host'] == host]
    assert len(found) == 1, (tier, host, rows)
    return found[0]


def replace(answers, name, host, value, **match):
    """Set the value of the series of ``name`` for ``host``."""
    for s in answers[name]:
        if s['metric'].get('instance') == host and all(s['metric'].get(k) == v for k, v in match.items()):
            s['value'][1] = str(value)


def test_all_ok():
    rows = rows_of(healthy())
    assert [(r['tier'], r['host']) for r in rows] == (
        [('load balancer', 'lb1'), ('load balancer', 'lb2')]
        + [('web', h) for h in SERVERS]
        + [('database', '(cluster)')] + [('database', h) for h in SERVERS]
        + [('host', h) for h in GROUPS['all']]
        + [('monitoring', 'monitor'), ('monitoring', 'alerts')])
    assert {r['state'] for r in rows} == {'OK'}, rows
    assert row(rows, 'load balancer', 'lb1')['detail'] == 'web servers 3/3 UP'
    assert row(rows, 'web', 'server2')['detail'] == 'nginx up, app up, 2.5 req/s, 5xx 0.0/s'
    assert row(rows, 'database', '(cluster)')['detail'] == 'primary server1'
    assert row(rows, 'database', 'server1')['detail'] == 'primary, semi-sync ON'
    assert row(rows, 'database', 'server3')['detail'] == 'replica, IO yes, SQL yes, lag 0 s'
    assert row(rows, 'host', 'lb1')['detail'] == 'node up, lowest free space 62%'
    assert row(rows, 'monitoring', 'monitor')['detail'] == 'prometheus up, alertmanager up'
    assert rows[-1] == {'tier': 'monitoring', 'host': 'alerts', 'state': 'OK', 'detail': 'none'}


def test_a_down_server_on_one_load_balancer():
    answers = healthy()
    # promex: one series per state, 1 for the current one (the query keeps those)
    answers['haproxy_servers'] = [s for s in answers['haproxy_servers']
                                  if not (s['metric']['instance'] == 'lb1' and s['metric']['server'] == 'server2')]
    answers['haproxy_servers'].append(sample(1, instance='lb1', proxy='web', server='server2', state='DOWN'))
    rows = rows_of(answers)
    lb1 = row(rows, 'load balancer', 'lb1')
    assert lb1['state'] == 'WARN'
    assert lb1['detail'] == 'web servers 2/3 UP, server2 DOWN'
    assert row(rows, 'load balancer', 'lb2')['state'] == 'OK'


def test_servers_in_maintenance_are_named_and_none_up_is_down():
    answers = healthy()
    answers['haproxy_servers'] = [
        sample(1, instance='lb1', proxy='web', server='server1', state='MAINT'),
        sample(1, instance='lb1', proxy='web', server='server2', state='DRAIN'),
        sample(1, instance='lb1', proxy='web', server='server3', state='DOWN'),
        sample(1, instance='lb2', proxy='web', server='server1', state='UP'),
        sample(1, instance='lb2', proxy='web', server='server2', state='DRAIN'),
        sample(1, instance='lb2', proxy='web', server='server3', state='UP'),
    ]
    rows = rows_of(answers)
    assert row(rows, 'load balancer', 'lb1') == {
        'tier': 'load balancer', 'host': 'lb1', 'state': 'DOWN',
        'detail': 'web servers 0/3 UP, server1 MAINT, server2 DRAIN, server3 DOWN'}
    assert row(rows, 'load balancer', 'lb2')['detail'] == 'web servers 2/3 UP, server2 DRAIN'
    assert row(rows, 'load balancer', 'lb2')['state'] == 'WARN'


def test_haproxy_not_answering():
    answers = healthy()
    replace(answers, 'up', 'lb2', 0, job='haproxy')
    answers['haproxy_servers'] = [s for s in answers['haproxy_servers'] if s['metric']['instance'] != 'lb2']
    lb2 = row(rows_of(answers), 'load balancer', 'lb2')
    assert (lb2['state'], lb2['detail']) == ('DOWN', 'haproxy not answering (up=0)')


def test_a_stopped_replica_thread():
    answers = healthy()
    replace(answers, 'sql_running', 'server3', 0)
    answers['seconds_behind'] = [s for s in answers['seconds_behind'] if s['metric']['instance'] != 'server3']
    rows = rows_of(answers)
    server3 = row(rows, 'database', 'server3')
    assert server3['state'] == 'DOWN'
    assert server3['detail'] == 'replica, IO yes, SQL NO, lag unknown'
    assert row(rows, 'database', 'server2')['state'] == 'OK'
    assert row(rows, 'database', '(cluster)')['state'] == 'OK'

    answers = healthy()
    replace(answers, 'io_running', 'server2', 0)
    assert row(rows_of(answers), 'database', 'server2')['detail'].startswith('replica, IO NO, SQL yes')
    assert row(rows_of(answers), 'database', 'server2')['state'] == 'DOWN'


def test_the_worst_replication_channel_counts():
    answers = healthy()
    answers['io_running'].append(sample(0, instance='server2', connection_name='archive'))
    answers['seconds_behind'].append(sample(120, instance='server3', connection_name='archive'))
    rows = rows_of(answers)
    assert row(rows, 'database', 'server2')['state'] == 'DOWN'
    assert row(rows, 'database', 'server3')['detail'] == 'replica, IO yes, SQL yes, lag 120 s'


def test_a_replica_behind_and_a_read_only_node_not_replicating():
    answers = healthy()
    replace(answers, 'seconds_behind', 'server2', 45)
    answers['io_running'] = [s for s in answers['io_running'] if s['metric']['instance'] != 'server3']
    answers['sql_running'] = [s for s in answers['sql_running'] if s['metric']['instance'] != 'server3']
    rows = rows_of(answers)
    assert (row(rows, 'database', 'server2')['state'], row(rows, 'database', 'server2')['detail']) == (
        'WARN', 'replica, IO yes, SQL yes, lag 45 s')
    assert row(rows_of(answers, lag_seconds=60), 'database', 'server2')['state'] == 'OK'
    assert (row(rows, 'database', 'server3')['state'], row(rows, 'database', 'server3')['detail']) == (
        'WARN', 'read-only, not replicating (no replica status)')


def test_no_writable_primary():
    answers = healthy()
    replace(answers, 'read_only', 'server1', 1)
    rows = rows_of(answers)
    cluster = row(rows, 'database', '(cluster)')
    assert (cluster['state'], cluster['detail']) == ('DOWN', 'NO WRITABLE PRIMARY, writes fail')
    # server1 is read-only and replicates from nobody
    assert row(rows, 'database', 'server1')['state'] == 'WARN'


def test_no_writable_primary_because_it_is_gone():
    answers = healthy()
    replace(answers, 'up', 'server1', 0, job='mysqld')
    for name in ('mysql_up', 'read_only', 'semi_sync_status', 'semi_sync_enabled'):
        answers[name] = [s for s in answers[name] if s['metric']['instance'] != 'server1']
    rows = rows_of(answers)
    assert row(rows, 'database', '(cluster)')['state'] == 'DOWN'
    assert row(rows, 'database', 'server1') == {
        'tier': 'database', 'host': 'server1', 'state': 'DOWN', 'detail': 'mysqld exporter not answering (up=0)'}


def test_two_writable_nodes():
    answers = healthy()
    replace(answers, 'read_only', 'server2', 0)
    rows = rows_of(answers)
    cluster = row(rows, 'database', '(cluster)')
    assert (cluster['state'], cluster['detail']) == ('DOWN', 'SPLIT BRAIN, 2 writable (server1, server2)')
    assert row(rows, 'database', 'server1')['state'] == 'DOWN'
    assert row(rows, 'database', 'server2')['state'] == 'DOWN'
    assert 'SPLIT BRAIN' in row(rows, 'database', 'server2')['detail']
    assert row(rows, 'database', 'server3')['state'] == 'OK'


@pytest.mark.parametrize('status, enabled, state, detail', [
    (1, 1, 'OK', 'semi-sync ON'),
    (0, 1, 'WARN', 'semi-sync FELL BACK TO ASYNC'),
    (0, 0, 'OK', 'async (semi-sync off)'),
    (0, None, 'WARN', 'async'),
    (None, None, 'OK', 'semi-sync no data'),
])
def test_semi_sync_of_the_primary(status, enabled, state, detail):
    answers = healthy()
    answers['semi_sync_status'] = [] if status is None else [sample(status, instance='server1')]
    answers['semi_sync_enabled'] = [] if enabled is None else [sample(enabled, instance='server1')]
    server1 = row(rows_of(answers), 'database', 'server1')
    assert (server1['state'], server1['detail']) == (state, 'primary, ' + detail)


def test_web_servers_down_and_5xx():
    answers = healthy()
    replace(answers, 'nginx_up', 'server1', 0)
    replace(answers, 'up', 'server2', 0, job='app')
    replace(answers, 'error_rate', 'server3', 0.5)
    rows = rows_of(answers)
    assert row(rows, 'web', 'server1') == {
        'tier': 'web', 'host': 'server1', 'state': 'DOWN', 'detail': 'nginx DOWN, app up, 2.5 req/s, 5xx 0.0/s'}
    assert row(rows, 'web', 'server2')['state'] == 'DOWN'
    assert row(rows, 'web', 'server2')['detail'].startswith('app DOWN (metrics not answering), nginx up')
    assert row(rows, 'web', 'server3') == {
        'tier': 'web', 'host': 'server3', 'state': 'WARN', 'detail': '5xx 0.5/s (20%), nginx up, app up, 2.5 req/s'}
    # a quiet server is not judged by its share of 5xx
    assert row(rows_of(answers, min_request_rate=5), 'web', 'server3')['state'] == 'OK'


def test_a_full_disk_and_a_dead_host():
    answers = healthy()
    replace(answers, 'disk_free_ratio', 'server2', 0.04)
    replace(answers, 'up', 'lb2', 0, job='node')
    rows = rows_of(answers)
    assert (row(rows, 'host', 'server2')['state'], row(rows, 'host', 'server2')['detail']) == (
        'WARN', 'node up, lowest free space 4%')
    assert row(rows, 'host', 'lb2')['state'] == 'DOWN'


def test_missing_data():
    answers = healthy()
    # server3 not scraped at all; nothing about disks; nginx_up never answered
    for name, samples in answers.items():
        answers[name] = [s for s in samples if s['metric'].get('instance') != 'server3']
    answers['disk_free_ratio'] = []
    answers['request_rate'] = []
    answers['error_rate'] = []
    del answers['semi_sync_enabled']
    answers['nginx_up'] = {'status': 'error', 'errorType': 'timeout', 'error': 'query timed out'}
    rows = rows_of(answers)
    for tier in ('web', 'database', 'host'):
        assert row(rows, tier, 'server3') == {'tier': tier, 'host': 'server3', 'state': 'WARN', 'detail': 'no data'}
    assert row(rows, 'host', 'lb1') == {
        'tier': 'host', 'host': 'lb1', 'state': 'OK', 'detail': 'node up, free space no data'}
    assert row(rows, 'web', 'server1') == {
        'tier': 'web', 'host': 'server1', 'state': 'WARN', 'detail': 'nginx no data, app up, req/s no data'}
    api = row(rows, 'monitoring', '(queries)')
    assert api['state'] == 'WARN'
    assert api['detail'] == '2/14 queries failed - nginx_up (query timed out); semi_sync_enabled (not queried)'


def test_a_host_prometheus_does_not_know_and_one_the_inventory_does_not():
    answers = healthy()
    answers['up'].append(sample(1, job='node', instance='backup1'))
    groups = dict(GROUPS, all=GROUPS['all'] + ['bastion'])
    rows = tier_health.tier_health_rows(answers, groups)
    assert [r['host'] for r in rows if r['tier'] == 'host'][-2:] == ['bastion', 'backup1']
    assert row(rows, 'host', 'bastion')['state'] == 'WARN'
    assert row(rows, 'host', 'backup1')['state'] == 'OK'
    # without the inventory, the hosts are those Prometheus reports
    rows = tier_health.tier_health_rows(healthy())
    assert [r['host'] for r in rows if r['tier'] == 'load balancer'] == ['lb1', 'lb2']


def test_nothing_answered_is_one_row():
    unreachable = {'results': [{'item': {'key': name, 'value': 'x'}, 'unreachable': True, 'changed': False,
                                'msg': 'Failed to connect to the host via ssh: timeout\nmore'}
                               for name in tier_health.QUERIES]}
    assert tier_health.tier_health_rows(unreachable, GROUPS) == [{
        'tier': 'monitoring', 'host': '(queries)', 'state': 'DOWN',
        'detail': 'no query answered - Failed to connect to the host via ssh - timeout'}]
    refused = {'results': [{'item': {'key': name}, 'status': -1, 'failed': True,
                            'msg': 'Status code was -1 and not [200]: Request failed: '
                                   '<urlopen error [Errno 111] Connection refused>'} for name in tier_health.QUERIES]}
    assert tier_health.tier_health_rows(refused, GROUPS)[0]['detail'] == (
        'no query answered - [Errno 111] Connection refused')
    assert tier_health.tier_health_rows({}, GROUPS)[0]['detail'] == 'no query answered - not queried'
    assert tier_health.tier_health_rows(dict.fromkeys(tier_health.QUERIES), GROUPS)[0]['state'] == 'DOWN'


def test_a_registered_uri_loop_is_read():
    answers = healthy()
    registered = {'changed': False, 'msg': 'All items completed', 'results': []}
    for name, samples in answers.items():
        registered['results'].append({
            'item': {'key': name, 'value': 'promql'}, 'status': 200, 'changed': False, 'failed': False,
            'json': {'status': 'success', 'data': {'resultType': 'vector', 'result': samples}}})
    # an HTTP 400 with Prometheus's own message
    registered['results'][1] = {'item': {'key': 'haproxy_servers'}, 'status': 400, 'failed': True,
                                'msg': 'Status code was 400 and not [200]: HTTP Error 400: Bad Request',
                                'json': {'status': 'error', 'errorType': 'bad_data', 'error': 'parse error'}}
    rows = tier_health.tier_health_rows(registered, GROUPS)
    assert row(rows, 'database', 'server1')['state'] == 'OK'
    assert row(rows, 'load balancer', 'lb1') == {
        'tier': 'load balancer', 'host': 'lb1', 'state': 'WARN', 'detail': 'haproxy up, web servers no data'}
    assert row(rows, 'monitoring', '(queries)')['detail'] == '1/14 queries failed - haproxy_servers (parse error)'
    assert tier_health.tier_health_rows(registered, GROUPS) == rows


def test_nan_and_garbage_values_are_no_data():
    answers = healthy()
    replace(answers, 'request_rate', 'server1', 'NaN')
    replace(answers, 'seconds_behind', 'server2', '+Inf')
    answers['error_rate'] = [s for s in answers['error_rate'] if s['metric']['instance'] != 'server1']
    answers['mysql_up'].append({'metric': {'instance': 'server3'}})
    answers['up'].append('garbage')
    rows = rows_of(answers)
    assert row(rows, 'web', 'server1')['detail'] == 'nginx up, app up, req/s no data'
    assert row(rows, 'database', 'server2')['detail'].endswith('lag unknown')


def test_firing_alerts_are_listed():
    answers = healthy()
    answers['alerts'] = [
        sample(1, alertname='MySQLReplicationStopped', alertstate='firing', instance='server3', thread='io',
               severity='critical'),
        sample(1, alertname='MySQLReplicationStopped', alertstate='firing', instance='server3', thread='sql',
               severity='critical'),
        sample(1, alertname='InstanceDown', alertstate='firing', instance='server2', job='node', severity='warning'),
        sample(1, alertname='MySQLNoWritablePrimary', alertstate='firing', severity='critical'),
    ]
    rows = rows_of(answers)
    assert rows[-1] == {
        'tier': 'monitoring', 'host': 'alerts', 'state': 'DOWN',
        'detail': 'InstanceDown (server2), MySQLNoWritablePrimary, MySQLReplicationStopped (server3)'}
    answers['alerts'] = answers['alerts'][2:3]
    assert rows_of(answers)[-1]['state'] == 'WARN'
    answers['alerts'] = None
    assert rows_of(answers)[-1] == {'tier': 'monitoring', 'host': 'alerts', 'state': 'WARN', 'detail': 'no data'}


def test_monitoring_hosts():
    answers = healthy()
    replace(answers, 'up', 'monitor', 0, job='alertmanager')
    assert row(rows_of(answers), 'monitoring', 'monitor') == {
        'tier': 'monitoring', 'host': 'monitor', 'state': 'DOWN', 'detail': 'prometheus up, alertmanager DOWN'}


def test_tier_groups_and_bad_arguments():
    answers = healthy()
    rows = tier_health.tier_health_rows(answers, dict(GROUPS, edge=['lb9']), tier_groups={'load balancer': ['edge']})
    assert [r['host'] for r in rows if r['tier'] == 'load balancer'] == ['lb9', 'lb1', 'lb2']
    with pytest.raises(AnsibleFilterError, match='expected a dict'):
        tier_health.tier_health_rows(['up'])
    with pytest.raises(AnsibleFilterError, match='groups must be a dict'):
        tier_health.tier_health_rows(answers, ['lb1'])
    with pytest.raises(AnsibleFilterError, match='lag_seconds'):
        tier_health.tier_health_rows(answers, GROUPS, lag_seconds='soon')
    with pytest.raises(AnsibleFilterError, match='tier_groups'):
        tier_health.tier_health_rows(answers, GROUPS, tier_groups=['web'])


def test_no_line_is_quoted_by_the_default_callback():
    """The YAML callback quotes a list item holding ': ' (or ' #'), which
    shifts that line of the table by one column."""
    answers = healthy()
    replace(answers, 'read_only', 'server2', 0)
    replace(answers, 'sql_running', 'server3', 0)
    answers['nginx_up'] = {'status': 'error', 'error': 'bad_data: parse error: unexpected'}
    answers['alerts'] = [sample(1, alertname='InstanceDown', instance='server2')]
    del answers['disk_free_ratio']
    for rows in (rows_of(answers), rows_of({'up': None}), rows_of({})):
        for line in tier_health.table(rows, list(tier_health.COLUMNS)):
            assert ': ' not in line and ' #' not in line, line


def test_the_input_is_not_changed():
    answers = healthy()
    before = copy.deepcopy(answers)
    rows_of(answers)
    assert answers == before


def test_table_aligns_columns():
    rows = [{'tier': 'load balancer', 'host': 'lb1', 'state': 'OK', 'detail': 'web servers 3/3 UP'},
            {'tier': 'web', 'host': 'server1', 'state': 'DOWN', 'detail': None}]
    assert tier_health.table(rows, ['tier', 'host', 'state', 'detail']) == [
        'TIER           HOST     STATE  DETAIL',
        'load balancer  lb1      OK     web servers 3/3 UP',
        'web            server1  DOWN   -',
    ]
    assert tier_health.table(rows, ['host', 'state'], header=['Host', 'State'], separator=' | ') == [
        'Host    | State',
        'lb1     | OK',
        'server1 | DOWN',
    ]
    # dict rows: the first row's keys by default
    assert tier_health.table(rows[:1])[0] == 'TIER           HOST  STATE  DETAIL'


def test_table_of_lists():
    assert tier_health.table([['server1', 'primary', 1.0], ['server22', 'replica']], header=['NODE', 'ROLE', 'N']) == [
        'NODE      ROLE     N',
        'server1   primary  1',
        'server22  replica',
    ]
    assert tier_health.table([['a', 'b']]) == ['a  b']
    assert tier_health.table([]) == []
    assert tier_health.table(None) == []


@pytest.mark.parametrize('rows, kwargs, message', [
    ('text', {}, 'expected a list of rows'),
    ({'a': 1}, {}, 'expected a list of rows'),
    ([1], {}, 'a row must be a list or a dict'),
    ([['a']], {'columns': 'tier'}, 'columns must be a list'),
    ([['a']], {'header': 'TIER'}, 'header must be a list'),
    ([['a']], {'separator': 3}, 'separator must be a string'),
    ([['a'], {'a': 1}], {}, 'rows of dicts need columns'),
])
def test_table_refuses_what_is_not_a_table(rows, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        tier_health.table(rows, **kwargs)


def test_the_playbook_asks_every_query_the_filter_reads():
    plays = yaml.safe_load((REPO / 'playbooks' / 'status.yml').read_text())
    queries = [p for p in plays if 'status_prometheus_queries' in p.get('vars', {})]
    assert len(queries) == 1
    assert list(queries[0]['vars']['status_prometheus_queries']) == list(tier_health.QUERIES)


def test_the_filters_are_registered_and_documented():
    assert set(tier_health.FilterModule().filters()) == {'table', 'tier_health_rows'}
    for name in tier_health.FilterModule().filters():
        doc = yaml.safe_load((REPO / 'plugins' / 'filter' / (name + '.yml')).read_text())
        assert doc['DOCUMENTATION']['name'] == name
        assert set(doc) == {'DOCUMENTATION', 'EXAMPLES', 'RETURN'}
