# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The database flavour as a role concept: the mysql_server role's
vars/<flavour>.yml files are the YAML side's one place for the flavour's
names, SQL spellings and privileges. Each defines the same keys, agrees with
the modules' SQL (plugins/module_utils/mysql_dialect.py), and MariaDB's
gives the grants and statements the roles had before; no task file or
playbook spells a replication statement or a MariaDB path itself."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pathlib
import re

import pytest
import yaml

from ansible_collections.distweb.infra.plugins.module_utils.mysql_dialect import dialect_for_version

REPO = pathlib.Path(__file__).resolve().parents[3]
VARS = REPO / 'roles' / 'mysql_server' / 'vars'
FLAVOR_FILES = sorted(p for p in VARS.glob('*.yml') if p.name != 'main.yml')
# each flavour file, and a VERSION() of the server it describes
SERVERS = {'mariadb.yml': '10.11.14-MariaDB-0+deb12u2', 'mysql-8.4.yml': '8.4.6'}


def load(path):
    return yaml.safe_load(path.read_text())


def key_paths(value, prefix=''):
    """Every key of a nested dict, as 'a.b.c'."""
    paths = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            paths.add(prefix + key)
            paths |= key_paths(inner, prefix + key + '.')
    return paths


def test_there_is_a_file_per_flavour_and_the_spec_offers_each():
    assert [p.name for p in FLAVOR_FILES] == sorted(SERVERS)
    spec = load(REPO / 'roles' / 'mysql_server' / 'meta' / 'argument_specs.yml')
    option = spec['argument_specs']['main']['options']['mysql_server_flavor']
    assert option['choices'] == ['mariadb', 'mysql'] and option['default'] == 'mariadb'
    assert {p.name.split('-')[0].split('.')[0] for p in FLAVOR_FILES} == set(option['choices'])


def test_every_flavour_file_defines_the_same_keys():
    keys = {p.name: key_paths(load(p)) for p in FLAVOR_FILES}
    first = keys[FLAVOR_FILES[0].name]
    for name, found in keys.items():
        assert found == first, '%s: missing %s, extra %s' % (name, sorted(first - found), sorted(found - first))
    # internal variables of the mysql_server role, none of them empty
    for path in FLAVOR_FILES:
        for key, value in load(path).items():
            assert key.startswith('_mysql_server_flavor_'), (path.name, key)
            assert value not in (None, '', [], {}), (path.name, key)


@pytest.mark.parametrize('path', FLAVOR_FILES, ids=lambda p: p.name)
def test_the_flavour_file_agrees_with_the_modules_dialect(path):
    flavor = load(path)
    dialect = dialect_for_version(SERVERS[path.name])
    assert flavor['_mysql_server_flavor_name'] == dialect.name
    sql = flavor['_mysql_server_flavor_sql']
    assert sql['replica_status'] == dialect.replica_status_sql
    assert sql['start_replica'] == dialect.start_replica_sql
    assert sql['stop_replica'] == dialect.stop_replica_sql
    assert sql['reset_replica_all'] == dialect.reset_replica_all_sql
    assert flavor['_mysql_server_flavor_semi_sync_source_enabled'] == dialect.semi_sync_prefixes[0][0] + 'enabled'
    # the administrative account holds every privilege the modules check
    assert set(dialect.admin_privileges) <= set(flavor['_mysql_server_flavor_privileges']['admin'])
    # the health endpoint's statements have %s placeholders only where it passes a value
    assert sql['set_gtid_position'].count('%s') == 1
    # the dump position pattern has one group
    assert re.compile(flavor['_mysql_server_flavor_dump_position_pattern']).groups == 1


def test_mariadb_gives_the_grants_and_statements_of_before():
    flavor = load(VARS / 'mariadb.yml')
    privileges = {name: '*.*:' + ','.join(names) for name, names in flavor['_mysql_server_flavor_privileges'].items()}
    assert privileges == {
        # and, for the binary log archive, BINLOG MONITOR (the primary's log files and position)
        'replication': '*.*:REPLICATION SLAVE,BINLOG MONITOR',
        'monitor': '*.*:PROCESS,BINLOG MONITOR,SLAVE MONITOR',
        # and, for the repair after a crash inside a DDL, RELOAD (RESET
        # MASTER), BINLOG MONITOR and REPLICATION MASTER ADMIN (gtid_binlog_state)
        'health': '*.*:PROCESS,RELOAD,CONNECTION ADMIN,READ_ONLY ADMIN,SLAVE MONITOR,REPLICATION SLAVE ADMIN,'
                  'BINLOG MONITOR,REPLICATION MASTER ADMIN',
        'admin': '*.*:PROCESS,RELOAD,CONNECTION ADMIN,READ_ONLY ADMIN,REPLICATION SLAVE ADMIN,REPLICATION MASTER ADMIN,'
                 'SLAVE MONITOR,BINLOG MONITOR',
    }
    assert flavor['_mysql_server_flavor_sql'] == {
        'replica_status': 'SHOW SLAVE STATUS', 'start_replica': 'START SLAVE', 'stop_replica': 'STOP SLAVE',
        'reset_replica_all': 'RESET SLAVE ALL', 'reset_binlog': 'RESET MASTER',
        'set_gtid_position': 'SET GLOBAL gtid_slave_pos = %s',
        'crash_repair_positions': 'SELECT @@global.gtid_binlog_pos, @@global.gtid_slave_pos, @@global.server_id',
        'binlog_files': 'SHOW BINARY LOGS', 'binlog_events': 'SHOW BINLOG EVENTS IN %s LIMIT %s',
        'binlog_status': 'SHOW MASTER STATUS',
        'relay_log_events': 'SHOW RELAYLOG EVENTS IN %s FROM %s LIMIT 2',
        'ddl_exec_mode': 'SELECT @@global.slave_ddl_exec_mode', 'set_binlog_state': 'SET GLOBAL gtid_binlog_state = %s',
        'semi_sync_replica_off': 'SET GLOBAL rpl_semi_sync_slave_enabled = OFF',
        'pitr_source': 'CHANGE MASTER TO master_host = %(host)s, master_port = %(port)s, master_user = %(user)s, '
                       'master_password = %(password)s, master_use_gtid = slave_pos, master_ssl = %(ssl)s, '
                       'master_ssl_ca = %(ca)s, master_ssl_verify_server_cert = %(verify)s',
        'pitr_start_until': 'START SLAVE UNTIL master_gtid_pos = %(until)s',
        'pitr_applied': 'SELECT @@global.gtid_slave_pos AS pos, @@global.gtid_binlog_pos AS binlog_pos'}
    assert flavor['_mysql_server_flavor_packages'] + [flavor['_mysql_server_flavor_backup_package']] == [
        'mariadb-server', 'mariadb-client', 'mariadb-backup']
    assert flavor['_mysql_server_flavor_service'] == 'mariadb'
    assert flavor['_mysql_server_flavor_config_dir'] + '/60-distweb.cnf' == '/etc/mysql/mariadb.conf.d/60-distweb.cnf'
    assert flavor['_mysql_server_flavor_server_binary'] == '/usr/sbin/mariadbd'
    assert flavor['_mysql_server_flavor_dump_position_options'] == ['--gtid', '--master-data=2']
    header = "-- SET GLOBAL gtid_slave_pos='0-11-42,1-12-7';"
    assert re.search(flavor['_mysql_server_flavor_dump_position_pattern'], header).group(1) == '0-11-42,1-12-7'


def test_the_defaults_read_the_flavour():
    defaults = {role: load(REPO / 'roles' / role / 'defaults' / 'main.yml')
                for role in ('mysql_server', 'mysql_primary', 'mysql_cluster')}
    assert defaults['mysql_server']['mysql_server_flavor'] == 'mariadb'
    for role, name, key in [('mysql_server', 'mysql_server_packages', '_mysql_server_flavor_packages'),
                            ('mysql_server', 'mysql_server_service', '_mysql_server_flavor_service'),
                            ('mysql_server', 'mysql_server_config_file', '_mysql_server_flavor_config_dir'),
                            ('mysql_primary', 'mysql_primary_monitor_priv', '_mysql_server_flavor_privileges.monitor'),
                            ('mysql_cluster', 'mysql_cluster_admin_priv', '_mysql_server_flavor_privileges.admin')]:
        assert key in defaults[role][name], (role, name)


# ---------------------------------------------------------------- no SQL of a flavour in the tasks

# replication statements and keywords of MariaDB (and old MySQL), its
# semi-sync variables, and its paths and programs
FLAVOUR_SPECIFIC = re.compile(
    r'\b(?:SLAVE|MASTER)\b|\brpl_semi_sync_(?:master|slave)_\w+|\bgtid_slave_pos\s*=|/usr/sbin/mariadbd\b'
    r'|mariadb\.conf\.d|\bmariadb-(?:dump|backup)\b|\bmbstream\b')
TASK_FILES = sorted(
    [p for d in ('tasks', 'handlers') for p in (REPO / 'roles').glob('*/%s/*.yml' % d)]
    + list((REPO / 'playbooks').glob('*.yml')) + [REPO / 'site.yml'])


def code_lines(path):
    """(number, line) of a YAML file, comments and Jinja comments left out."""
    text = re.sub(r'\{#.*?#\}', lambda m: '\n' * m.group(0).count('\n'), path.read_text(), flags=re.S)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.lstrip().startswith('#'):
            yield number, re.sub(r'\s#\s.*$', '', line)


def test_the_checker_sees_what_it_looks_for():
    for line in ('  query: STOP SLAVE', '    - RESET MASTER', '    priv: "*.*:REPLICATION SLAVE"',
                 '    variable: rpl_semi_sync_master_enabled', '    validate: /usr/sbin/mariadbd --help',
                 '      - mariadb-dump', '    query: SET GLOBAL gtid_slave_pos = %s'):
        assert FLAVOUR_SPECIFIC.search(line), line
    for line in ('  query: "{{ _mysql_server_flavor_sql.stop_replica }}"',
                 '      semi_sync_enabled: mysql_global_variables_rpl_semi_sync_master_enabled',
                 '    name: "{{ mysql_server_service }}"'):
        assert not FLAVOUR_SPECIFIC.search(line), line


def test_no_task_file_or_playbook_spells_a_flavours_sql_or_paths():
    assert len(TASK_FILES) > 20
    found = ['%s:%d: %s' % (path.relative_to(REPO), number, line.strip())
             for path in TASK_FILES for number, line in code_lines(path) if FLAVOUR_SPECIFIC.search(line)]
    assert found == [], 'use the flavour vars (roles/mysql_server/vars/<flavour>.yml):\n' + '\n'.join(found)
