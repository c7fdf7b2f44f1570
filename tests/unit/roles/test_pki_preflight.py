# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pki role's preflight, run by ansible-playbook on localhost: the keys
it writes are unencrypted, so its directory is outside the inventory by
default, and one inside the inventory is refused unless asked for."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json

from ansible_collections.distweb.infra.tests.unit.roles.role_playbook import playbook_env, run_playbook

PLAYBOOK = """
- name: Run the pki preflight
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Preflight only
      ansible.builtin.include_role:
        name: distweb.infra.pki
        tasks_from: preflight
        public: true
    - name: Show where the keys go
      ansible.builtin.debug:
        msg: "PKI_DIR={{ pki_dir }}"
"""


def preflight(tmp_path, **extra):
    inventory = tmp_path / 'my-inventory'
    inventory.mkdir(exist_ok=True)
    (inventory / 'hosts.yml').write_text('all:\n  hosts:\n    localhost:\n')
    (tmp_path / 'pki.yml').write_text(PLAYBOOK)
    home = tmp_path / 'home'
    home.mkdir(exist_ok=True)
    result = run_playbook(tmp_path, tmp_path / 'pki.yml', inventory / 'hosts.yml',
                          [json.dumps(dict(pki_enabled=True, **extra))], env=playbook_env(tmp_path, HOME=str(home)))
    return result, inventory, home


def test_the_default_directory_is_outside_the_inventory(tmp_path):
    result, inventory, home = preflight(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    shown = [line for line in result.stdout.splitlines() if 'PKI_DIR=' in line][0].split('PKI_DIR=')[1].strip('" ')
    assert shown.startswith(str(home / '.distweb' / 'pki' / 'my-inventory-')), shown
    assert not shown.startswith(str(inventory))


def test_a_directory_inside_the_inventory_is_refused(tmp_path):
    result, inventory, dummy = preflight(tmp_path, pki_dir='{{ inventory_dir }}/tls')
    assert result.returncode != 0
    assert 'is inside the inventory directory' in result.stdout, result.stdout[-3000:]
    assert 'pki_dir_inside_inventory: true' in result.stdout
    assert not (inventory / 'tls').exists()


def test_a_directory_inside_the_inventory_passes_when_asked_for(tmp_path):
    result, dummy, dummy = preflight(tmp_path, pki_dir='{{ inventory_dir }}/tls', pki_dir_inside_inventory=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_directory_beside_the_inventory_with_a_common_prefix_passes(tmp_path):
    result, dummy, dummy = preflight(tmp_path, pki_dir=str(tmp_path / 'my-inventory-keys'))
    assert result.returncode == 0, result.stdout[-3000:]
