# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dns role's preflight, run by ansible-playbook on localhost: good
records pass, and each kind of bad one is refused naming what to fix."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest

from ansible_collections.distweb.infra.tests.unit.roles.role_playbook import run_preflight


def preflight(tmp_path, **extra):
    settings = dict(dns_listen_addresses=['192.0.2.53'])
    settings.update(extra)
    return run_preflight(tmp_path, 'dns', 'dnsservers', settings)


GOOD = [
    {'name': 'www', 'type': 'A', 'value': '192.0.2.10'},
    {'name': '@', 'type': 'AAAA', 'value': '2001:db8::10'},
    {'name': 'shop', 'type': 'CNAME', 'value': 'www.foobar.com.'},
    {'name': '@', 'type': 'MX', 'value': '10 mail.foobar.com.'},
    {'name': '@', 'type': 'TXT', 'value': 'v=spf1 -all'},
]


def test_good_records_pass(tmp_path):
    result = preflight(tmp_path, dns_records=GOOD)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize('record', [
    {'name': 'www', 'type': 'A', 'value': '192.0.2.300'},
    {'name': 'www', 'type': 'A', 'value': '192.0.2.0/24'},
    {'name': 'www', 'type': 'A', 'value': '2001:db8::10'},
    {'name': 'www', 'type': 'AAAA', 'value': '192.0.2.10'},
    {'name': 'www', 'type': 'SRV', 'value': '0 0 443 www'},
    {'name': 'www', 'type': 'MX', 'value': 'mail.foobar.com.'},
    {'name': 'www', 'type': 'TXT', 'value': 'say "hi"'},
    {'name': 'Bad Name', 'type': 'A', 'value': '192.0.2.10'},
    {'name': 'www', 'type': 'A'},
])
def test_a_bad_record_is_refused(tmp_path, record):
    result = preflight(tmp_path, dns_records=GOOD + [record])
    assert result.returncode != 0
    assert 'Each dns_records entry needs name' in result.stdout, result.stdout[-3000:]


def test_without_load_balancers_the_default_record_asks_for_an_address(tmp_path):
    result = preflight(tmp_path)
    assert result.returncode != 0
    assert 'needs a loadbalancers group or' in result.stdout and 'dns_site_address' in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize('settings', [
    {'dns_zone': 'Foobar.com.'}, {'dns_port': 0}, {'dns_listen_addresses': ['ns1']}, {'dns_ttl': 0},
])
def test_bad_settings_are_refused(tmp_path, settings):
    result = preflight(tmp_path, dns_records=GOOD, **settings)
    assert result.returncode != 0
    assert 'dns_zone must be a domain name' in result.stdout, result.stdout[-3000:]
