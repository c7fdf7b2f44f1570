# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mysql_server role's database flavour (mysql_server_flavor), run by
ansible-playbook on localhost with a supported platform's facts: MySQL is
refused before anything changes, saying why; MariaDB passes, and the
preflight loads the flavour's vars (in check mode too, changing nothing)
for the defaults and the other roles to read."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import re

import pytest

from ansible_collections.distweb.infra.tests.unit.roles.role_playbook import run_playbook

ROLE_ALONE = """
- name: The mysql_server role alone
  hosts: dbservers
  gather_facts: true
  roles:
    - role: distweb.infra.mysql_server
      mysql_server_id: 1
      mysql_server_tls: false
      mysql_server_replication_password: unit-repl
      mysql_server_monitor_password: unit-mon
"""

PREFLIGHT = """
- name: The mysql_server preflight, as site.yml's first play runs it
  hosts: dbservers
  gather_facts: true
  check_mode: true
  tasks:
    - name: Check the database node variables
      ansible.builtin.include_role:
        name: distweb.infra.mysql_server
        tasks_from: preflight
        public: true  # its defaults, for the task below
      vars:
        mysql_server_id: 1
        mysql_server_tls: false
        mysql_server_replication_password: unit-repl
        mysql_server_monitor_password: unit-mon

    - name: Show what the other roles read
      ansible.builtin.debug:
        msg: "FLAVOUR {{ {'packages': mysql_server_packages, 'service': mysql_server_service,
          'config_file': mysql_server_config_file, 'version': _mysql_server_flavor_version,
          'stop': _mysql_server_flavor_sql.stop_replica,
          'monitor': _mysql_server_flavor_privileges.monitor | join(',')} | to_json }} END"
"""


def debian(major):
    return {'distribution': 'Debian', 'distribution_major_version': major, 'distribution_version': major + '.1'}


def run(tmp_path, playbook, facts, *extra):
    (tmp_path / 'hosts.yml').write_text('all:\n  children:\n    dbservers:\n      hosts:\n        localhost:\n')
    (tmp_path / 'play.yml').write_text(playbook)
    return run_playbook(tmp_path, tmp_path / 'play.yml', tmp_path / 'hosts.yml',
                        [json.dumps({'ansible_facts': facts})] + list(extra))


@pytest.mark.parametrize('major, mariadb', [('13', 'mariadb 11.8')])
def test_mysql_is_refused_before_anything_changes(tmp_path, major, mariadb):
    result = run(tmp_path, ROLE_ALONE, debian(major), 'mysql_server_flavor=mysql')
    out = result.stdout
    assert result.returncode != 0, out[-3000:]
    tasks = [line for line in out.splitlines() if line.startswith('TASK [')]
    assert tasks[-1].startswith('TASK [distweb.infra.mysql_server : Check that this platform can install the '
                                'database flavour'), tasks
    assert 'changed=0' in out.split('PLAY RECAP')[-1]
    message = ' '.join(out.split())
    assert 'mysql_server_flavor mysql cannot be installed here' in message
    assert "own database (%s; set mysql_server_flavor to mariadb)" % mariadb in message
    assert 'Neither Debian 12 nor Debian 13 ships a mysql 8.4 server package' in message
    assert 'Only its SQL dialect' in message and 'is unit-tested' in message
    assert 'Nothing was changed.' in message


def test_an_unknown_flavour_is_refused_by_the_argument_spec(tmp_path):
    result = run(tmp_path, ROLE_ALONE, debian('12'), 'mysql_server_flavor=postgresql')
    assert result.returncode != 0
    assert 'mysql_server_flavor' in result.stdout and 'postgresql' in result.stdout
    assert 'changed=0' in result.stdout.split('PLAY RECAP')[-1]


@pytest.mark.parametrize('major, version', [('12', '10.11'), ('13', '11.8')])
def test_mariadb_passes_and_its_vars_are_loaded_in_check_mode(tmp_path, major, version):
    result = run(tmp_path, PREFLIGHT, debian(major))
    out = result.stdout
    assert result.returncode == 0, out[-3000:]
    assert 'changed=0' in out.split('PLAY RECAP')[-1]
    # the callback folds long lines (at spaces)
    shown = json.loads(re.sub(r'\s*\n\s*', ' ', out.split('FLAVOUR ', 1)[1].split(' END', 1)[0]))
    assert shown == {'packages': ['mariadb-server', 'mariadb-client', 'mariadb-backup', 'python3-pymysql'],
                     'service': 'mariadb', 'config_file': '/etc/mysql/mariadb.conf.d/60-distweb.cnf',
                     'version': version, 'stop': 'STOP SLAVE', 'monitor': 'PROCESS,BINLOG MONITOR,SLAVE MONITOR'}


PRIMARY_PREFLIGHT_ALONE = """
- name: The mysql_primary preflight without the mysql_server one before it
  hosts: dbservers
  gather_facts: false
  tasks:
    - name: Check the primary's variables
      ansible.builtin.include_role:
        name: distweb.infra.mysql_primary
        tasks_from: preflight
"""


def test_the_primary_refuses_to_grant_without_the_flavours_privilege_names(tmp_path):
    # the privilege defaults would read '*.*:' (nothing) without them
    (tmp_path / 'hosts.yml').write_text('all:\n  children:\n    dbservers:\n      children:\n        db_primary:\n'
                                        '          hosts:\n            localhost:\n')
    (tmp_path / 'play.yml').write_text(PRIMARY_PREFLIGHT_ALONE)
    result = run_playbook(tmp_path, tmp_path / 'play.yml', tmp_path / 'hosts.yml',
                          [json.dumps({'mysql_primary_replication_hosts': ['127.0.0.1']})])
    out = result.stdout
    assert result.returncode != 0, out[-3000:]
    tasks = [line for line in out.splitlines() if line.startswith('TASK [')]
    assert tasks[-1].startswith("TASK [distweb.infra.mysql_primary : Check that the database flavour's names are loaded"), tasks
    assert "run the mysql_server role's preflight" in ' '.join(out.split())
    assert 'changed=0' in out.split('PLAY RECAP')[-1]
