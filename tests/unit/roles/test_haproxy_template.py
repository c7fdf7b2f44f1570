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


ACME = '127.0.0.1:8402'


def test_no_acme_exception_by_default():
    config = render(haproxy_tls_enabled=True, haproxy_tls_bundle_file='/etc/haproxy/certs/site.pem')
    assert 'acme' not in config
    assert 'http-request redirect scheme https code 301 unless { ssl_fc }' in sections(config)['frontend www']


def test_acme_challenges_go_to_the_responder_and_are_not_redirected():
    config = sections(render(haproxy_tls_enabled=True, haproxy_tls_bundle_file='/etc/haproxy/certs/site.pem',
                             haproxy_acme_challenge_server=ACME, haproxy_shutdown_sessions_on_down='writes'))
    www = config['frontend www']
    assert 'acl acme_challenge path_beg /.well-known/acme-challenge/' in www
    # declared before the redirect that uses it; everything else is still redirected
    assert www.index('acl acme_challenge path_beg /.well-known/acme-challenge/') < www.index(
        'http-request redirect scheme https code 301 unless { ssl_fc } || acme_challenge')
    # the first use_backend rule: a challenge that is a write (never) would not reach web_writes
    uses = [line for line in www if line.startswith('use_backend')]
    assert uses == ['use_backend acme if acme_challenge', 'use_backend web_writes unless { method GET HEAD OPTIONS }']
    assert config['backend acme'] == ['server acme 127.0.0.1:8402']


def test_acme_challenges_reach_the_responder_without_https_too():
    config = sections(render(haproxy_acme_challenge_server='[2001:db8::5]:80'))
    assert not [line for line in config['frontend www'] if 'redirect' in line]
    assert 'use_backend acme if acme_challenge' in config['frontend www']
    assert config['backend acme'] == ['server acme [2001:db8::5]:80']


@pytest.mark.skipif(role_templates.HAPROXY is None, reason='haproxy is not installed here')
def test_haproxy_accepts_the_acme_exception(tmp_path):
    done = role_templates.haproxy_check(render(haproxy_acme_challenge_server=ACME,
                                               haproxy_admin_socket=str(tmp_path / 'admin.sock'),
                                               haproxy_server_state_file=str(tmp_path / 'state')), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_reload_answers_idle_connections_and_ends_in_bounded_time():
    # the live proof is the edge scenario's
    # test_a_connection_kept_alive_across_a_reload_gets_its_next_answer
    config = sections(render(haproxy_hard_stop_after='90s'))
    assert 'option idle-close-on-response' in config['defaults']
    assert 'hard-stop-after 90s' in config['global']
