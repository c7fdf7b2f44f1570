# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health of every tier, from Prometheus, as one table (playbooks/status.yml).

``tier_health_rows`` reads the answers of a few instant queries (named as in
``QUERIES``) and makes one row per (tier, host) with a state of OK, WARN or
DOWN; ``table`` renders rows as aligned text lines for ansible.builtin.debug.
Standard library only. The documentation of each filter is in the YAML file of
the same name beside this one (tier_health_rows.yml, table.yml).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math
import re

from ansible.errors import AnsibleFilterError

# The instant queries tier_health_rows reads, by the name it reads them under.
# playbooks/status.yml holds the PromQL of each (status_prometheus_queries).
QUERIES = (
    'up',                  # up: every target, labels job and instance
    'haproxy_servers',     # haproxy_server_status{proxy="web"} == 1: each server's current state label
    'nginx_up',            # nginx_up
    'request_rate',        # sum by (instance) (rate(foobar_http_requests_total[1m]))
    'error_rate',          # the same for code=~"5.."
    'mysql_up',            # mysql_up
    'read_only',           # mysql_global_variables_read_only
    'io_running',          # mysql_slave_status_slave_io_running
    'sql_running',         # mysql_slave_status_slave_sql_running
    'seconds_behind',      # mysql_slave_status_seconds_behind_master
    'semi_sync_status',    # mysql_global_status_rpl_semi_sync_master_status
    'semi_sync_enabled',   # mysql_global_variables_rpl_semi_sync_master_enabled
    'disk_free_ratio',     # min by (instance) (avail / size) of the real file systems
    'alerts',              # ALERTS{alertstate="firing"}
)

COLUMNS = ('tier', 'host', 'state', 'detail')
OK = 'OK'
WARN = 'WARN'
DOWN = 'DOWN'
NO_DATA = 'no data'
# The row of the queries Prometheus did not answer.
API_HOST = '(queries)'

# Tier -> the inventory groups whose hosts it expects (besides every host
# Prometheus reports for it).
TIER_GROUPS = {
    'load balancer': ['loadbalancers'],
    'web': ['webservers', 'appservers'],
    'database': ['dbservers'],
    'host': ['all'],
    'monitoring': ['monitoring'],
}
TIERS = ('load balancer', 'web', 'database', 'host', 'monitoring')


# --- reading the answers ---------------------------------------------------

def _number(text):
    """A sample value as a float, None for NaN, infinities and garbage."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    if math.isnan(value) or math.isinf(value):
        return None
    return value


def _api_answer(value):
    """(samples, error) from one answer: a list of samples, Prometheus's JSON
    answer or one ansible.builtin.uri result. samples is None on error."""
    if value is None:
        return None, 'no answer'
    if isinstance(value, (list, tuple)):
        return list(value), None
    if not isinstance(value, dict):
        return None, 'unexpected answer %r' % (value,)
    if value.get('status') in ('success', 'error'):
        # Prometheus's JSON: {"status": "success", "data": {"resultType": "vector", "result": [...]}}
        if value['status'] == 'error':
            return None, _first_line(value.get('error')) or 'Prometheus answered an error'
        data = value.get('data')
        if not isinstance(data, dict) or data.get('resultType', 'vector') != 'vector':
            return None, 'not an instant vector'
        return list(data.get('result') or []), None
    # An ansible.builtin.uri result: Prometheus's answer (its error message
    # too, on an HTTP error), else the module's message.
    body = value.get('json')
    if isinstance(body, dict) and body.get('status') in ('success', 'error'):
        return _api_answer(body)
    return None, _first_line(value.get('msg')) or 'no answer'


def _first_line(text):
    """The first line of an error message, shortened, without ': ' (the
    default callback quotes list items with one, which breaks the columns)."""
    lines = str(text or '').strip().splitlines()
    if not lines:
        return ''
    line = re.sub(r'^Status code was -?\d+ and not \[[^]]*\]: (Request failed: )?', '', lines[0])
    # urllib's URLError as uri reports it: '<(function) error [Errno 111] Connection refused>'
    line = re.sub(r'^<\w+ error (.*)>$', r'\1', line)
    return line.replace(': ', ' - ')[:160]


def _answers(results):
    """{query name: (samples, error)} from what tier_health_rows was given."""
    if isinstance(results, dict) and isinstance(results.get('results'), list):
        # a registered loop of ansible.builtin.uri over the queries (dict2items)
        answers = {}
        for result in results['results']:
            if not isinstance(result, dict):
                continue
            item = result.get('item')
            name = item.get('key') if isinstance(item, dict) else item
            if isinstance(name, str):
                answers[name] = _api_answer(result)
        return answers
    if not isinstance(results, dict):
        raise AnsibleFilterError('tier_health_rows: expected a dict of query answers, got %s' % type(results).__name__)
    return dict((name, _api_answer(value)) for name, value in results.items())


class _Samples(object):
    """The samples of one query: values by instance (and by other labels)."""

    def __init__(self, answer):
        samples, self.error = answer if answer else (None, 'not queried')
        self.ok = samples is not None
        self.samples = []
        for sample in samples or []:
            if not isinstance(sample, dict):
                continue
            labels = sample.get('metric') or {}
            value = sample.get('value')
            number = _number(value[1]) if isinstance(value, (list, tuple)) and len(value) == 2 else None
            self.samples.append((labels if isinstance(labels, dict) else {}, number))

    def where(self, **labels):
        return [(found, value) for found, value in self.samples if all(found.get(k) == v for k, v in labels.items())]

    def value(self, pick=None, **labels):
        """The value of the first matching series (or ``pick`` of all, e.g.
        min), None without one."""
        values = [value for dummy, value in self.where(**labels) if value is not None]
        if not values:
            return None
        return pick(values) if pick else values[0]

    def instances(self, **labels):
        return [found['instance'] for found, dummy in self.where(**labels) if found.get('instance')]


# --- formatting ------------------------------------------------------------

def _rate(value, unit='/s'):
    if value is None:
        return NO_DATA
    return ('%.1f' if value >= 0.05 or value == 0 else '%.2f') % value + unit


def _flag(value, yes='yes', no='NO'):
    return NO_DATA if value is None else (yes if value >= 1 else no)


def _row(tier, host, state, details):
    return {'tier': tier, 'host': host, 'state': state, 'detail': ', '.join(d for d in details if d)}


def _hosts(tier, groups, tier_groups, *found):
    """The tier's inventory hosts in inventory order, then the others
    Prometheus reported, sorted."""
    hosts = []
    for group in tier_groups.get(tier, []):
        for host in (groups or {}).get(group) or []:
            if host not in hosts:
                hosts.append(host)
    extra = set()
    for names in found:
        extra.update(n for n in names if n not in hosts)
    return hosts + sorted(extra)


# --- the tiers -------------------------------------------------------------

def _load_balancer_rows(q, hosts):
    rows = []
    for host in hosts:
        up = q['up'].value(job='haproxy', instance=host)
        servers = q['haproxy_servers'].where(instance=host)
        if up is None and not servers:
            rows.append(_row('load balancer', host, WARN, [NO_DATA]))
            continue
        if up == 0:
            rows.append(_row('load balancer', host, DOWN, ['haproxy not answering (up=0)']))
            continue
        states = {}
        for labels, value in servers:
            name = labels.get('server') or '?'
            state = labels.get('state') or ('UP' if value == 1 else 'DOWN')
            if value == 1 and (name not in states or state != 'UP'):
                states[name] = state
        if not states:
            rows.append(_row('load balancer', host, WARN, ['haproxy up', 'web servers ' + NO_DATA]))
            continue
        up_servers = sorted(n for n, s in states.items() if s == 'UP')
        others = sorted((n, s) for n, s in states.items() if s != 'UP')
        state = OK if not others else (DOWN if not up_servers else WARN)
        details = ['web servers %d/%d UP' % (len(up_servers), len(states))]
        details.extend('%s %s' % (n, s) for n, s in others)
        rows.append(_row('load balancer', host, state, details))
    return rows


def _web_rows(q, hosts, error_ratio, min_request_rate):
    rows = []
    for host in hosts:
        nginx_target = q['up'].value(job='nginx', instance=host)
        nginx_up = q['nginx_up'].value(instance=host)
        app_target = q['up'].value(job='app', instance=host)
        requests = q['request_rate'].value(instance=host)
        errors = q['error_rate'].value(instance=host)
        if nginx_target is None and nginx_up is None and app_target is None:
            rows.append(_row('web', host, WARN, [NO_DATA]))
            continue
        down, warn, details = [], [], []
        if nginx_target == 0:
            down.append('nginx exporter not answering (up=0)')
        elif nginx_up == 0:
            down.append('nginx DOWN')
        elif nginx_up is None:
            warn.append('nginx ' + NO_DATA)
        else:
            details.append('nginx up')
        if app_target == 0:
            down.append('app DOWN (metrics not answering)')
        elif app_target is None:
            warn.append('app ' + NO_DATA)
        else:
            details.append('app up')
        details.append(_rate(requests, ' req/s') if requests is not None else 'req/s ' + NO_DATA)
        if requests is not None or errors is not None:
            # no 5xx series yet is no 5xx at all once requests are counted
            errors = errors if errors is not None else 0.0
            if requests and requests >= min_request_rate and errors / requests > error_ratio:
                warn.append('5xx %s (%.0f%%)' % (_rate(errors), 100.0 * errors / requests))
            else:
                details.append('5xx %s' % _rate(errors))
        state = DOWN if down else (WARN if warn else OK)
        rows.append(_row('web', host, state, down + warn + details))
    return rows


def _database_rows(q, hosts, lag_seconds):
    rows = []
    writable = [h for h in hosts if q['read_only'].value(instance=h) == 0]
    known = [h for h in hosts if q['read_only'].value(instance=h) is not None]
    if hosts:
        if len(writable) == 1:
            rows.append(_row('database', '(cluster)', OK, ['primary ' + writable[0]]))
        elif len(writable) > 1:
            rows.append(_row('database', '(cluster)', DOWN,
                             ['SPLIT BRAIN, %d writable (%s)' % (len(writable), ', '.join(writable))]))
        elif known:
            rows.append(_row('database', '(cluster)', DOWN, ['NO WRITABLE PRIMARY, writes fail']))
        else:
            rows.append(_row('database', '(cluster)', WARN, ['primary ' + NO_DATA]))
    for host in hosts:
        target = q['up'].value(job='mysqld', instance=host)
        mysql_up = q['mysql_up'].value(instance=host)
        read_only = q['read_only'].value(instance=host)
        if target is None and mysql_up is None and read_only is None:
            rows.append(_row('database', host, WARN, [NO_DATA]))
            continue
        if target == 0:
            rows.append(_row('database', host, DOWN, ['mysqld exporter not answering (up=0)']))
            continue
        if mysql_up == 0:
            rows.append(_row('database', host, DOWN, ['MariaDB not answering (mysql_up=0)']))
            continue
        if read_only is None:
            rows.append(_row('database', host, WARN, ['role ' + NO_DATA]))
            continue
        if read_only == 0:
            rows.append(_primary_row(q, host, len(writable) > 1))
        else:
            rows.append(_replica_row(q, host, lag_seconds))
    return rows


def _primary_row(q, host, split_brain):
    status = q['semi_sync_status'].value(instance=host)
    enabled = q['semi_sync_enabled'].value(instance=host)
    state = DOWN if split_brain else OK
    details = ['primary' + (', SPLIT BRAIN' if split_brain else '')]
    if status == 1:
        details.append('semi-sync ON')
    elif status == 0 and enabled == 0:
        details.append('async (semi-sync off)')
    elif status == 0:
        details.append('semi-sync FELL BACK TO ASYNC' if enabled == 1 else 'async')
        state = DOWN if split_brain else WARN
    else:
        details.append('semi-sync ' + NO_DATA)
    return _row('database', host, state, details)


def _replica_row(q, host, lag_seconds):
    # the worst of every replication channel
    io = q['io_running'].value(min, instance=host)
    sql = q['sql_running'].value(min, instance=host)
    lag = q['seconds_behind'].value(max, instance=host)
    details = ['replica']
    if io is None and sql is None:
        if q['io_running'].ok and q['sql_running'].ok:
            return _row('database', host, WARN, ['read-only, not replicating (no replica status)'])
        return _row('database', host, WARN, ['replica', 'threads ' + NO_DATA])
    details.append('IO %s' % _flag(io))
    details.append('SQL %s' % _flag(sql))
    details.append('lag %s' % ('%d s' % lag if lag is not None else 'unknown'))
    if io == 0 or sql == 0:
        state = DOWN
    elif io is None or sql is None or (lag is not None and lag > lag_seconds):
        state = WARN
    else:
        state = OK
    return _row('database', host, state, details)


def _host_rows(q, hosts, disk_free_ratio):
    rows = []
    for host in hosts:
        up = q['up'].value(job='node', instance=host)
        free = q['disk_free_ratio'].value(instance=host)
        if up is None:
            rows.append(_row('host', host, WARN, [NO_DATA]))
        elif up == 0:
            rows.append(_row('host', host, DOWN, ['node exporter not answering (up=0)']))
        elif free is None:
            rows.append(_row('host', host, OK, ['node up', 'free space ' + NO_DATA]))
        else:
            state = WARN if free < disk_free_ratio else OK
            rows.append(_row('host', host, state, ['node up', 'lowest free space %.0f%%' % (100.0 * free)]))
    return rows


def _monitoring_rows(q, hosts):
    rows = []
    for host in hosts:
        states, details = [], []
        for job in ('prometheus', 'alertmanager'):
            up = q['up'].value(job=job, instance=host)
            states.append(up)
            details.append('%s %s' % (job, NO_DATA if up is None else ('up' if up == 1 else 'DOWN')))
        if all(s is None for s in states):
            state = WARN
        elif any(s == 0 for s in states):
            state = DOWN
        elif any(s is None for s in states):
            state = WARN
        else:
            state = OK
        rows.append(_row('monitoring', host, state, details))
    alerts = q['alerts']
    if not alerts.ok:
        rows.append(_row('monitoring', 'alerts', WARN, [NO_DATA]))
        return rows
    firing, critical = [], False
    for labels, dummy in alerts.samples:
        name = labels.get('alertname') or '?'
        text = name + (' (%s)' % labels['instance'] if labels.get('instance') else '')
        if text not in firing:
            firing.append(text)
        critical = critical or labels.get('severity') == 'critical'
    firing.sort()
    state = OK if not firing else (DOWN if critical else WARN)
    rows.append(_row('monitoring', 'alerts', state, [', '.join(firing) if firing else 'none']))
    return rows


def _api_row(answers):
    """A row for the queries Prometheus did not answer, or None."""
    failed = [(name, answers.get(name, (None, 'not queried'))[1]) for name in QUERIES
              if answers.get(name, (None, 'not queried'))[0] is None]
    if not failed:
        return None
    errors = sorted(set(error for dummy, error in failed))
    if len(failed) == len(QUERIES):
        return _row('monitoring', API_HOST, DOWN, ['no query answered - ' + '; '.join(errors)])
    return _row('monitoring', API_HOST, WARN, ['%d/%d queries failed - %s' % (
        len(failed), len(QUERIES), '; '.join('%s (%s)' % (name, error) for name, error in failed))])


def _positive(value, name):
    number = _number(value)
    if number is None or number < 0:
        raise AnsibleFilterError('tier_health_rows: %s must be a number of 0 or more, got %r' % (name, value))
    return number


def tier_health_rows(results, groups=None, lag_seconds=30, disk_free_ratio=0.10, error_ratio=0.05,
                     min_request_rate=1, tier_groups=None):
    """One row per (tier, host): dicts with tier, host, state (OK, WARN,
    DOWN) and detail, from the answers of the QUERIES."""
    if groups is not None and not isinstance(groups, dict):
        raise AnsibleFilterError('tier_health_rows: groups must be a dict of group names to host lists')
    if tier_groups is not None and not isinstance(tier_groups, dict):
        raise AnsibleFilterError('tier_health_rows: tier_groups must be a dict of tiers to group names')
    lag_seconds = _positive(lag_seconds, 'lag_seconds')
    disk_free_ratio = _positive(disk_free_ratio, 'disk_free_ratio')
    error_ratio = _positive(error_ratio, 'error_ratio')
    min_request_rate = _positive(min_request_rate, 'min_request_rate')
    mapping = dict(TIER_GROUPS)
    mapping.update(tier_groups or {})

    answers = _answers(results)
    api = _api_row(answers)
    if api is not None and api['state'] == DOWN:
        # Prometheus did not answer at all: one row says so, not a table of "no data".
        return [api]
    q = dict((name, _Samples(answers.get(name))) for name in QUERIES)

    def jobs(*names):
        return [i for job in names for i in q['up'].instances(job=job)]

    rows = _load_balancer_rows(q, _hosts('load balancer', groups, mapping, jobs('haproxy'),
                                         q['haproxy_servers'].instances()))
    rows += _web_rows(q, _hosts('web', groups, mapping, jobs('nginx', 'app'), q['nginx_up'].instances()),
                      error_ratio, min_request_rate)
    rows += _database_rows(q, _hosts('database', groups, mapping, jobs('mysqld'), q['mysql_up'].instances(),
                                     q['read_only'].instances()), lag_seconds)
    rows += _host_rows(q, _hosts('host', groups, mapping, jobs('node')), disk_free_ratio)
    if api is not None:
        rows.append(api)
    rows += _monitoring_rows(q, _hosts('monitoring', groups, mapping, jobs('prometheus', 'alertmanager')))
    return rows


# --- rendering -------------------------------------------------------------

def _cell(value):
    if value is None:
        return '-'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def table(rows, columns=None, header=None, separator='  '):
    """Rows (lists, or dicts read by ``columns``) as text lines with aligned
    columns, a header line first when there is one."""
    if rows is None:
        rows = []
    if isinstance(rows, (str, dict)) or not hasattr(rows, '__iter__'):
        raise AnsibleFilterError('table: expected a list of rows, got %s' % type(rows).__name__)
    rows = list(rows)
    if not isinstance(separator, str):
        raise AnsibleFilterError('table: separator must be a string')
    if columns is not None:
        if isinstance(columns, str) or not hasattr(columns, '__iter__'):
            raise AnsibleFilterError('table: columns must be a list of keys')
        columns = list(columns)
    elif rows and isinstance(rows[0], dict):
        columns = list(rows[0])
    if header is None and columns is not None:
        header = [str(c).upper() for c in columns]
    cells = []
    for row in rows:
        if isinstance(row, dict):
            if columns is None:
                raise AnsibleFilterError('table: rows of dicts need columns')
            cells.append([_cell(row.get(c)) for c in columns])
        elif isinstance(row, str) or not hasattr(row, '__iter__'):
            raise AnsibleFilterError('table: a row must be a list or a dict, got %r' % (row,))
        else:
            cells.append([_cell(c) for c in row])
    if header is not None:
        if isinstance(header, str) or not hasattr(header, '__iter__'):
            raise AnsibleFilterError('table: header must be a list')
        cells.insert(0, [_cell(c) for c in header])
    if not cells:
        return []
    count = max(len(r) for r in cells)
    cells = [r + [''] * (count - len(r)) for r in cells]
    widths = [max(len(r[i]) for r in cells) for i in range(count)]
    return [separator.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]


class FilterModule(object):
    """distweb.infra tier health filters."""

    def filters(self):
        return {
            'table': table,
            'tier_health_rows': tier_health_rows,
        }
