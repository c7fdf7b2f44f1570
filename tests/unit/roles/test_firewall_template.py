# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall role's ruleset, rendered with Jinja2 for a sample inventory:
each tier gets its accept rules, from the right sources, and nothing outside
the collection's own table is touched."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pathlib
import re

import jinja2
import jinja2.nativetypes
import pytest
import yaml

from ansible.module_utils import _internal as module_utils_internal

# Importing controller code (the filter raises ansible.errors exceptions) marks
# the whole test process as the controller, after which modules tested later
# send their warnings to Display instead of their result: keep the flag as it
# was (conftest's module tests rely on it).
_IS_CONTROLLER = module_utils_internal.is_controller
from ansible_collections.distweb.infra.plugins.filter import ipnet  # noqa: E402  pylint: disable=wrong-import-position

module_utils_internal.is_controller = _IS_CONTROLLER

ROLE = pathlib.Path(__file__).resolve().parents[3] / 'roles' / 'firewall'

# lb1 and lb2 are load balancers; server1 and server2 are web, app and
# database nodes at once (the seeds' layout); the monitoring group is empty.
GROUPS = {
    'loadbalancers': ['lb1', 'lb2'],
    'webservers': ['server1', 'server2'],
    'appservers': ['server1', 'server2'],
    'dbservers': ['server1', 'server2'],
    'db_primary': ['server1'],
    'db_replicas': ['server2'],
    'monitoring': [],
}
ADDRESSES = {'lb1': '10.0.0.10', 'lb2': '10.0.0.20', 'server1': '10.0.0.11', 'server2': '10.0.0.12'}
GROUPS['all'] = sorted(ADDRESSES)
SETTINGS = {
    'firewall_admin_networks': ['192.0.2.0/28', '2001:db8::/64'],
    'firewall_control_nodes': ['172.28.10.1'],
    'firewall_extra_rules': [
        {'proto': 'udp', 'ports': [161, 161], 'sources': ['192.0.2.0/28'], 'comment': 'snmp "admin"',
         'groups': ['dbservers']},
        {'proto': 'tcp', 'ports': [8443], 'sources': ['0.0.0.0/0']},
    ],
}


def _extract(item, container, morekeys=None):
    value = container[item]
    for key in morekeys or []:
        value = value[key]
    return value


def _union(first, second):
    result = list(first)
    result.extend(item for item in second if item not in result)
    return result


def _environment(native=False):
    # Ansible's template settings: trim_blocks, chained undefined attributes.
    cls = jinja2.nativetypes.NativeEnvironment if native else jinja2.Environment
    env = cls(trim_blocks=True, undefined=jinja2.ChainableUndefined, keep_trailing_newline=True)
    env.filters.update({
        'extract': _extract,
        'union': _union,
        'combine': lambda a, b: dict(a, **b),
        'regex_replace': lambda value, pattern, repl: re.sub(pattern, repl, value),
        'comment': lambda text: '#\n# %s\n#' % text,
    })
    env.filters.update({'distweb.infra.' + name: f for name, f in ipnet.FilterModule().filters().items()})
    env.tests['match'] = lambda value, pattern: re.match(pattern, value) is not None
    return env


def host_vars(host, groups=None, addresses=None, **overrides):
    """The variables of ``host`` as the role sees them: the inventory, the
    facts, then vars/main.yml and defaults/main.yml resolved in order."""
    groups = GROUPS if groups is None else groups
    addresses = ADDRESSES if addresses is None else addresses
    hostvars = {h: ({'ansible_facts': {'default_ipv4': {'address': a}}} if a else {}) for h, a in addresses.items()}
    variables = {
        'inventory_hostname': host,
        'group_names': sorted(g for g, members in groups.items() if host in members and g != 'all'),
        'groups': groups,
        'hostvars': hostvars,
        'ansible_managed': 'Ansible managed',
        'ansible_connection': 'community.docker.docker',
    }
    native = _environment(native=True)
    layers = [yaml.safe_load((ROLE / 'vars' / 'main.yml').read_text()),
              yaml.safe_load((ROLE / 'defaults' / 'main.yml').read_text())]
    for layer in layers:
        for name, value in layer.items():
            if name in overrides or name in SETTINGS:
                value = overrides.get(name, SETTINGS.get(name))
            elif isinstance(value, str) and '{' in value:
                value = native.from_string(value).render(variables)
            variables[name] = value
    return variables


def render(host, **kwargs):
    variables = host_vars(host, **kwargs)
    template = _environment().from_string((ROLE / 'templates' / 'firewall.nft.j2').read_text())
    return template.render(variables)


def rules(text):
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith('#')]


def test_sources_come_from_the_facts_of_each_tier():
    variables = host_vars('server1')
    assert variables['firewall_web_sources'] == ['10.0.0.10', '10.0.0.20']
    assert variables['firewall_db_sources'] == ['10.0.0.11', '10.0.0.12', '172.28.10.1']
    assert variables['firewall_exporter_sources'] == []
    assert host_vars('lb1')['firewall_vrrp_sources'] == ['10.0.0.20']
    assert host_vars('lb2')['firewall_vrrp_sources'] == ['10.0.0.10']


def test_a_host_without_facts_is_named_not_left_out():
    # The preflight refuses the name (not an address) with a message saying why.
    variables = host_vars('server1', addresses=dict(ADDRESSES, lb2=None))
    assert variables['firewall_web_sources'] == ['10.0.0.10', 'lb2']
    assert ipnet.ip_invalid(variables['firewall_web_sources']) == ['lb2']


def test_load_balancer_rules():
    lines = rules(render('lb1'))
    assert 'meta nfproto ipv4 tcp dport { 80, 443 } accept comment "load balancer: the site"' in lines
    assert 'meta nfproto ipv6 tcp dport { 80, 443 } accept comment "load balancer: the site"' in lines
    assert 'ip saddr { 10.0.0.20 } meta l4proto vrrp accept comment ' \
           '"load balancer: vrrp from the other load balancers"' in lines
    text = '\n'.join(lines)
    assert 'dport { 3306, 9201 }' not in text
    assert 'web server' not in text
    assert '10.0.0.10 } meta l4proto vrrp' not in text


def test_web_app_and_database_node_gets_the_union_of_its_tiers():
    lines = rules(render('server1'))
    assert 'ip saddr { 10.0.0.10, 10.0.0.20 } tcp dport 80 accept comment "web server: http from the load balancers"' \
        in lines
    assert 'ip saddr { 10.0.0.11, 10.0.0.12, 172.28.10.1 } tcp dport { 3306, 9201 } accept comment ' \
           '"database: from the app servers, database nodes and control nodes"' in lines
    text = '\n'.join(lines)
    assert 'dport { 80, 443 }' not in text
    assert 'vrrp' not in text
    # nobody may scrape the exporters while the monitoring group is empty
    assert not [line for line in lines if 'dport { 9100, 9104, 9113 }' in line]
    assert '# exporters: from the monitoring hosts: no sources, nobody is accepted' in render('server1')


def test_the_seed_stream_port_is_open_between_database_nodes_only():
    # server1 accepts a replica seed from server2 alone: not from itself, the
    # load balancers, the app servers as such or the control node
    seed = [line for line in rules(render('server1')) if 'tcp dport 4444' in line]
    assert seed == ['ip saddr { 10.0.0.12 } tcp dport 4444 accept comment '
                    '"database: a replica seed streamed from another database node"']
    assert 'dport 4444' not in render('lb1')


def test_every_host_gets_ssh_from_the_admin_networks_and_the_basics():
    for host in ADDRESSES:
        lines = rules(render(host))
        assert lines[:7] == [
            'table inet distweb',
            'delete table inet distweb',
            'table inet distweb {',
            'counter dropped {',
            'comment "packets dropped by the distweb firewall"',
            '}',
            'chain input {',
        ]
        assert 'type filter hook input priority filter; policy drop;' in lines
        assert 'iif "lo" accept' in lines
        assert 'ct state established,related accept' in lines
        assert 'meta l4proto { icmp, ipv6-icmp } accept' in lines
        assert 'ip saddr { 192.0.2.0/28 } tcp dport 22 accept comment "ssh from the admin networks"' in lines
        assert 'ip6 saddr { 2001:db8::/64 } tcp dport 22 accept comment "ssh from the admin networks"' in lines
        # whatever is not accepted is dropped and counted, last
        assert lines[-3:] == ['counter name "dropped" drop', '}', '}']


def test_extra_rules_follow_their_groups():
    db = rules(render('server2'))
    lb = rules(render('lb1'))
    snmp = 'ip saddr { 192.0.2.0/28 } udp dport 161 accept comment "extra: snmp \'admin\'"'
    assert snmp in db
    assert snmp not in lb
    for lines in (db, lb):
        assert 'meta nfproto ipv4 tcp dport 8443 accept comment "extra: rule 2"' in lines


def test_only_the_collections_table_is_touched():
    for host in ADDRESSES:
        text = render(host)
        assert 'flush' not in text
        statements = [line for line in rules(text) if re.match(r'(table|delete|add|create|destroy|flush|list)\b', line)]
        assert statements == ['table inet distweb', 'delete table inet distweb', 'table inet distweb {']


def test_the_table_name_is_a_variable():
    text = render('server1', firewall_table='edge')
    statements = [line for line in rules(text) if re.match(r'(table|delete)\b', line)]
    assert statements == ['table inet edge', 'delete table inet edge', 'table inet edge {']
    assert 'distweb' not in '\n'.join(rules(text)).replace('distweb firewall', '')


@pytest.mark.parametrize('host', ['lb1', 'server1'])
def test_no_empty_sets(host):
    assert '{ }' not in render(host)
    assert '{  }' not in render(host)


def test_monitoring_hosts_get_prometheus_alertmanager_and_gossip():
    groups = dict(GROUPS, monitoring=['mon1', 'mon2'], all=sorted([*ADDRESSES, 'mon1', 'mon2']))
    addresses = dict(ADDRESSES, mon1='10.0.0.30', mon2='10.0.0.31')
    lines = rules(render('mon1', groups=groups, addresses=addresses))
    assert ('ip saddr { 10.0.0.30, 10.0.0.31, 192.0.2.0/28 } tcp dport { 9090, 9093 } accept '
            'comment "monitoring: prometheus and alertmanager"') in lines
    assert 'ip saddr { 10.0.0.31 } tcp dport 9094 accept comment "monitoring: alertmanager cluster (tcp)"' in lines
    assert 'ip saddr { 10.0.0.31 } udp dport 9094 accept comment "monitoring: alertmanager cluster (udp)"' in lines
    # Every host's exporters, HAProxy's and the app's metrics: the monitoring hosts only.
    exporters = 'ip saddr { 10.0.0.30, 10.0.0.31 } tcp dport { 8405, 9100, 9104, 9113, 9180 } accept'
    assert any(line.startswith(exporters) for line in rules(render('server1', groups=groups, addresses=addresses)))
    # Hosts outside the monitoring group get no Prometheus or Alertmanager rule.
    assert not [line for line in rules(render('server1', groups=groups, addresses=addresses)) if '9090' in line]


def test_dns_hosts_answer_queries_from_anyone_and_no_other_host_does():
    groups = dict(GROUPS, dnsservers=['ns1'], all=sorted([*ADDRESSES, 'ns1']))
    addresses = dict(ADDRESSES, ns1='10.0.0.53')
    lines = rules(render('ns1', groups=groups, addresses=addresses))
    for proto in ('udp', 'tcp'):
        for family in ('ipv4', 'ipv6'):
            assert (f'meta nfproto {family} {proto} dport 53 accept comment '
                    f'"dns: queries for the site zone ({proto})"') in lines
    for host in ADDRESSES:
        assert 'dport 53' not in render(host, groups=groups, addresses=addresses)
