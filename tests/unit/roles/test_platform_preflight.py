# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml and the mysql_server role, run by ansible-playbook on localhost
with the host's facts replaced by another platform's (extra variables beat
the gathered facts): an unsupported platform stops the run at its first
task, before anything is changed, naming the platforms that are supported."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json

import pytest

from ansible_collections.distweb.infra.tests.unit.roles.role_playbook import REPO, run_playbook

UBUNTU = {'distribution': 'Ubuntu', 'distribution_major_version': '24', 'distribution_version': '24.04'}
SUPPORTED = 'it supports Debian 12 (bookworm: MariaDB 10.11, HAProxy 2.6), Debian 13 (trixie: MariaDB 11.8'
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


def run(tmp_path, playbook, facts):
    (tmp_path / 'hosts.yml').write_text('all:\n  children:\n    dbservers:\n      hosts:\n        localhost:\n')
    return run_playbook(tmp_path, playbook, tmp_path / 'hosts.yml', [json.dumps({'ansible_facts': facts})])


def refused_first(result, task):
    out = result.stdout
    assert result.returncode != 0, out[-3000:]
    assert 'Ubuntu 24.04 is not a platform distweb.infra supports' in out, out[-3000:]
    assert SUPPORTED in out
    # the refusal is the first task after the facts, and nothing changed
    tasks = [line for line in out.splitlines() if line.startswith('TASK [')]
    assert tasks[-1].startswith('TASK [%s' % task), tasks
    assert 'changed=0' in out.split('PLAY RECAP')[-1]


def test_site_yml_stops_on_an_unsupported_platform_before_anything_changes(tmp_path):
    result = run(tmp_path, REPO / 'playbooks' / 'site.yml', UBUNTU)
    refused_first(result, "Check that the collection supports this host's platform")
    assert len([line for line in result.stdout.splitlines() if line.startswith('TASK [')]) == 2  # facts, the check


def test_the_mysql_server_role_alone_refuses_an_unsupported_platform(tmp_path):
    (tmp_path / 'role.yml').write_text(ROLE_ALONE)
    result = run(tmp_path, tmp_path / 'role.yml', UBUNTU)
    refused_first(result, "distweb.infra.mysql_server : Check that the collection supports this database node's")


@pytest.mark.parametrize('major', ['12', '13'])
def test_the_supported_platforms_pass_the_check(tmp_path, major):
    facts = {'distribution': 'Debian', 'distribution_major_version': major, 'distribution_version': major + '.1',
             'default_ipv4': {'address': '127.0.0.1'}}  # so the check of every host's facts passes too
    result = run(tmp_path, REPO / 'playbooks' / 'site.yml', facts)
    # the bare inventory fails a later check; the platform check passed
    assert "TASK [Check that the collection supports this host's platform]" in result.stdout
    assert 'is not a platform distweb.infra supports' not in result.stdout
    assert 'TASK [Check the PKI variables]' in result.stdout, result.stdout[-3000:]


def test_a_limited_run_names_the_hosts_whose_facts_it_lacks_before_anything_changes(tmp_path):
    """--limit without a fact cache: the other hosts' addresses are unknown,
    so the preflight stops at once and says what to do (the tiers Molecule
    scenario shows the same on a converged lab)."""
    (tmp_path / 'hosts.yml').write_text('all:\n  children:\n    dbservers:\n      hosts:\n        localhost:\n'
                                        '        db8.invalid:\n        db9.invalid:\n')
    result = run_playbook(tmp_path, REPO / 'playbooks' / 'site.yml', tmp_path / 'hosts.yml',
                          options=['--limit', 'localhost'])
    out = ' '.join(result.stdout.split())
    assert result.returncode != 0, result.stdout[-3000:]
    assert 'No facts are known for db8.invalid, db9.invalid: this run is limited (--limit)' in out, out[-3000:]
    assert 'ansible all -m ansible.builtin.setup' in out
    tasks = [line for line in result.stdout.splitlines() if line.startswith('TASK [')]
    assert tasks[-1].startswith("TASK [Check that every host's facts are known"), tasks
    assert 'changed=0' in result.stdout.split('PLAY RECAP')[-1]
