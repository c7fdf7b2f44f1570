# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The load balancer's configuration, rendered with Jinja2 from the role's
defaults: which requests HAProxy closes when its checks take a server out
(haproxy_shutdown_sessions_on_down): nothing by default. With ``writes``
the methods HAProxy may not send again go through web_writes, whose servers
track web's and close what is open on them once marked down; reads stay in
web, where nothing is closed. Where HAProxy is installed the rendered
configuration is also checked with ``haproxy -c``."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest
import yaml

from ansible_collections.distweb.infra.tests.unit.roles import role_templates
from ansible_collections.distweb.infra.tests.unit.roles.role_templates import section

SERVERS = [{'name': 'server1', 'address': '10.0.0.11'}, {'name': 'server2', 'address': '10.0.0.12', 'port': 8080}]


def render(**overrides):
    settings = dict(haproxy_backend_servers=SERVERS, hostvars={}, haproxy_tls_enabled=False, haproxy_metrics_port=0)
    settings.update(overrides)
    return role_templates.render('haproxy', 'haproxy.cfg.j2', **settings)


def sections(config):
    """{header: [lines]} of every section (role_templates.section)."""
    return dict((line, section(config, line)) for line in config.splitlines()
                if line.strip() and not line.startswith((' ', '#')))


def test_by_default_nothing_is_closed_on_a_down_server():
    config = sections(render())
    assert 'backend web_writes' not in config
    assert not [line for line in config['backend web'] if 'on-marked-down' in line]


def test_with_writes_writes_are_closed_on_a_down_server_and_reads_are_not():
    config = sections(render(haproxy_shutdown_sessions_on_down='writes'))
    assert 'use_backend web_writes unless { method GET HEAD OPTIONS }' in config['frontend www']
    assert config['frontend www'][-1] == 'default_backend web'
    web, writes = config['backend web'], config['backend web_writes']
    assert not [line for line in web if 'on-marked-down' in line], web
    assert [line for line in writes if line.startswith('default-server') and line.endswith(
        'on-marked-down shutdown-sessions')], writes
    # each write server follows its twin's checks, drain and maintenance
    assert [line for line in writes if line.startswith('server ')] == [
        'server server1 10.0.0.11:80 track web/server1', 'server server2 10.0.0.12:8080 track web/server2']
    assert not [line for line in writes if ' check' in line]
    # the same balancing and retry rules as web (a POST is retried only
    # when its connection failed)
    assert [line for line in writes if line.startswith(('balance', 'retry-on', 'http-request'))] == [
        line for line in web if line.startswith(('balance', 'retry-on', 'http-request'))]


@pytest.mark.parametrize('mode', ['none', 'all'])
def test_none_and_all_keep_one_backend(mode):
    config = sections(render(haproxy_shutdown_sessions_on_down=mode))
    assert 'backend web_writes' not in config
    assert not [line for line in config['frontend www'] if 'use_backend' in line]
    closes = [line for line in config['backend web'] if 'on-marked-down shutdown-sessions' in line]
    assert bool(closes) == (mode == 'all'), config['backend web']


def test_cookie_balancing_is_the_same_in_both_backends():
    config = sections(render(haproxy_balance='cookie', haproxy_shutdown_sessions_on_down='writes'))
    for backend in ('backend web', 'backend web_writes'):
        assert 'cookie SERVERID insert indirect nocache' in config[backend]
        assert [line for line in config[backend] if line.startswith('server ')][0].startswith(
            'server server1 10.0.0.11:80 cookie server1'), config[backend]


def test_the_default_is_in_the_argument_spec():
    spec = yaml.safe_load((role_templates.ROLES / 'haproxy' / 'meta' / 'argument_specs.yml').read_text())
    option = spec['argument_specs']['main']['options']['haproxy_shutdown_sessions_on_down']
    assert option['default'] == 'none' and option['choices'] == ['none', 'writes', 'all']


@pytest.mark.skipif(role_templates.HAPROXY is None, reason='haproxy is not installed here')
@pytest.mark.parametrize('mode', ['none', 'writes', 'all'])
def test_haproxy_accepts_the_configuration(tmp_path, mode):
    done = role_templates.haproxy_check(render(haproxy_shutdown_sessions_on_down=mode,
                                               haproxy_admin_socket=str(tmp_path / 'admin.sock'),
                                               haproxy_server_state_file=str(tmp_path / 'state')), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
