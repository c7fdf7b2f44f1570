# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The haproxy role's preflight, run by ansible-playbook on localhost: the
ACME challenge responder is address:port or nothing, and anything else is
refused naming the variable, before any host is changed."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest

from ansible_collections.distweb.infra.tests.unit.roles.role_playbook import run_preflight


def preflight(tmp_path, **extra):
    settings = dict(haproxy_backend_servers=[{'name': 'web1', 'address': '192.0.2.11'}], haproxy_tls_enabled=False)
    settings.update(extra)
    return run_preflight(tmp_path, 'haproxy', 'loadbalancers', settings)


@pytest.mark.parametrize('server', ['', '127.0.0.1:8402', 'acme.example.net:80', '[2001:db8::5]:8402'])
def test_an_acme_responder_as_address_and_port_passes(tmp_path, server):
    result = preflight(tmp_path, haproxy_acme_challenge_server=server)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize('server', ['127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', 'http://127.0.0.1:8402',
                                    '2001:db8::5:8402', '127.0.0.1:84 02'])
def test_anything_else_is_refused_naming_the_variable(tmp_path, server):
    result = preflight(tmp_path, haproxy_acme_challenge_server=server)
    out = ' '.join(result.stdout.split())
    assert result.returncode != 0, out[-3000:]
    assert 'haproxy_acme_challenge_server must be address:port' in out, out[-3000:]
    assert 'changed=0' in out.rsplit('PLAY RECAP', maxsplit=1)[-1]
