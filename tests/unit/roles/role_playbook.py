# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the tests that run a role's tasks (its preflight, mostly) with
ansible-playbook on localhost, through the collection's ansible.cfg."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[3]


def ansible_bin(name):
    """An Ansible command of this Python's environment, else from PATH."""
    local = pathlib.Path(sys.executable).parent / name
    return str(local) if local.is_file() else name


def playbook_env(tmp_path, **extra):
    """The environment of an ansible-playbook run under ``tmp_path``."""
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                ANSIBLE_LOCAL_TEMP=str(tmp_path / '.ansible-tmp'), ANSIBLE_REMOTE_TEMP=str(tmp_path / '.ansible-tmp'),
                **extra)


def run_playbook(tmp_path, playbook, inventory, extra_vars=(), env=None, options=()):
    """ansible-playbook ``playbook`` on ``inventory`` over the local
    connection, each of ``extra_vars`` (``k=v`` or JSON) given with -e and
    ``options`` (such as ``--limit``) as they are; the finished process."""
    args = [ansible_bin('ansible-playbook'), '-i', str(inventory), str(playbook), '-c', 'local',
            '-e', 'ansible_python_interpreter=%s' % sys.executable, *options]
    for extra in extra_vars:
        args += ['-e', extra]
    return subprocess.run(args, env=env or playbook_env(tmp_path), cwd=str(REPO), capture_output=True, text=True,
                          timeout=300, check=False)


PREFLIGHT_ALONE = """
- name: Run the {role} preflight
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Preflight only
      ansible.builtin.include_role:
        name: distweb.infra.{role}
        tasks_from: preflight
"""


def run_preflight(tmp_path, role, group, settings):
    """The ``role``'s preflight alone on localhost, a host of ``group``,
    with ``settings`` as extra variables; the finished process."""
    (tmp_path / 'hosts.yml').write_text('all:\n  children:\n    %s:\n      hosts:\n        localhost:\n' % group)
    (tmp_path / ('%s.yml' % role)).write_text(PREFLIGHT_ALONE.format(role=role))
    return run_playbook(tmp_path, tmp_path / ('%s.yml' % role), tmp_path / 'hosts.yml', [json.dumps(settings)])
