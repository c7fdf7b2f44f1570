# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The database router's configuration and unit, rendered with Jinja2 from the
role's defaults: writes go to one node only (balance first, no server
maxconn to overflow), and the server states (a failover's fence) are saved
before every reload and stop and loaded by the next process. Where HAProxy is
installed the rendered configuration is also checked with ``haproxy -c``."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

import pytest
import yaml

from ansible_collections.distweb.infra.tests.unit.roles import role_templates
from ansible_collections.distweb.infra.tests.unit.roles.role_templates import section

ROLE = role_templates.ROLES / 'db_router'

NODES = [{'name': 'server1', 'address': '10.0.0.11', 'port': 3306},
         {'name': 'server2', 'address': '10.0.0.12', 'port': 3306},
         {'name': 'server3', 'address': '10.0.0.13'}]


def render(name, **overrides):
    settings = dict(db_router_nodes=NODES)
    settings.update(overrides)
    return role_templates.render('db_router', name, **settings)


def test_writes_go_to_the_first_up_node_only():
    primary = section(render('dbrouter.cfg.j2'), 'backend mysql_primary')
    assert 'balance first' in primary
    servers = [line for line in primary if line.startswith('server ')]
    # configuration order is the order "first" follows, the same on every router
    assert [line.split()[1] for line in servers] == ['server1', 'server2', 'server3']


def test_no_server_limit_lets_first_overflow_to_a_second_node():
    config = render('dbrouter.cfg.j2')
    for header in ('backend mysql_primary', 'defaults'):
        for line in section(config, header):
            if line.startswith(('server ', 'default-server ')):
                assert not re.search(r'\b(maxconn|maxqueue)\b', line), line


def test_reads_are_not_affected():
    replicas = section(render('dbrouter.cfg.j2'), 'backend mysql_replicas')
    assert 'balance leastconn' in replicas


def test_server_states_are_kept_across_reloads():
    config = render('dbrouter.cfg.j2', db_router_server_state_file='/var/lib/haproxy/x.state')
    assert 'server-state-file /var/lib/haproxy/x.state' in section(config, 'global')
    assert 'load-server-state-from-file global' in section(config, 'defaults')
    unit = render('dbrouter.service.j2', db_router_server_state_file='/var/lib/haproxy/x.state')
    save = ("/bin/sh -c 'echo \"show servers state\" | /usr/bin/socat -t 5 stdio "
            "unix-connect:/run/distweb-dbrouter/admin.sock > /var/lib/haproxy/x.state.new && "
            "mv /var/lib/haproxy/x.state.new /var/lib/haproxy/x.state || rm -f /var/lib/haproxy/x.state.new'")
    reloads = [line.split('=', 1)[1] for line in unit.splitlines() if line.startswith('ExecReload=')]
    # checked first, saved next, the new process started last (it loads the file)
    assert reloads[1:] == [save, '/bin/kill -USR2 $MAINPID'] and ' -c ' in reloads[0]
    assert 'ExecStop=' + save in unit.splitlines()
    assert 'socat' in yaml.safe_load((ROLE / 'defaults' / 'main.yml').read_text())['db_router_packages']


@pytest.mark.skipif(role_templates.HAPROXY is None, reason='haproxy is not installed here')
def test_haproxy_accepts_the_configuration(tmp_path):
    # user/group haproxy may not exist here: the helper checks the rest
    done = role_templates.haproxy_check(render('dbrouter.cfg.j2', db_router_admin_socket=str(tmp_path / 'admin.sock'),
                                               db_router_server_state_file=str(tmp_path / 'state')), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
