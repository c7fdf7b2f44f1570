# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest

from ansible.module_utils import _internal as module_utils_internal

# Importing controller code (the filter raises ansible.errors exceptions) marks
# the whole test process as the controller, after which modules tested later
# send their warnings to Display instead of their result: keep the flag as it
# was (conftest's module tests rely on it).
_IS_CONTROLLER = module_utils_internal.is_controller
from ansible.errors import AnsibleFilterError  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.distweb.infra.plugins.filter import ipnet  # noqa: E402  pylint: disable=wrong-import-position

module_utils_internal.is_controller = _IS_CONTROLLER


@pytest.mark.parametrize('address, networks, expected', [
    ('10.20.0.7', ['10.20.0.0/16'], True),
    ('10.20.0.7', ['10.20.0.7'], True),
    ('10.20.0.7', ['10.20.0.8', '10.21.0.0/16'], False),
    ('10.20.0.7', [], False),
    ('10.20.0.7', '10.0.0.0/8', True),
    ('10.20.0.7', ['0.0.0.0/0'], True),
    # host bits in a network are ignored
    ('10.1.2.200', ['10.1.2.3/24'], True),
    # the other family never matches
    ('10.20.0.7', ['::/0'], False),
    ('2001:db8::5', ['2001:db8::/32'], True),
    ('2001:db8::5', ['0.0.0.0/0'], False),
    # sshd on a dual-stack socket shows IPv4 clients as IPv4-mapped addresses
    ('::ffff:172.28.10.1', ['172.28.10.1'], True),
    ('::ffff:172.28.10.1', ['172.28.11.0/24'], False),
    (' 10.0.0.1 ', ['10.0.0.0/8'], True),
])
def test_ip_in_networks(address, networks, expected):
    assert ipnet.ip_in_networks(address, networks) is expected


@pytest.mark.parametrize('address', ['', 'lb1', '10.0.0.0/8', '300.1.1.1', None, 17])
def test_ip_in_networks_refuses_what_is_not_an_address(address):
    with pytest.raises(AnsibleFilterError, match='not an IP address'):
        ipnet.ip_in_networks(address, ['10.0.0.0/8'])


def test_ip_in_networks_names_a_bad_network():
    with pytest.raises(AnsibleFilterError, match="'10.0.0.0/33'"):
        ipnet.ip_in_networks('10.0.0.1', ['10.0.0.0/8', '10.0.0.0/33'])


def test_ip_invalid_names_the_bad_entries_in_order():
    entries = ['10.0.0.0/8', '10.0.0.0/33', 'lb1', '2001:db8::1', '', None, 3, True, {'a': 1}, '192.0.2.1/24']
    assert ipnet.ip_invalid(entries) == ['10.0.0.0/33', 'lb1', '', None, 3, True, {'a': 1}]


def test_ip_invalid_of_a_single_string_and_of_nothing():
    assert ipnet.ip_invalid('10.0.0.1') == []
    assert ipnet.ip_invalid('nope') == ['nope']
    assert ipnet.ip_invalid(None) == []
    assert ipnet.ip_invalid([]) == []


def test_ip_invalid_refuses_a_non_list():
    with pytest.raises(AnsibleFilterError, match='expected a list'):
        ipnet.ip_invalid(5)


def test_ip_networks_normalises_and_drops_what_is_covered():
    entries = ['192.0.2.1', '10.1.2.3/8', '10.20.0.0/16', '192.0.2.1/32', '2001:db8::/32', '2001:db8:1::/48',
               '172.16.0.128/25', '172.16.0.0/25', '192.0.2.2']
    # adjacent networks stay apart, so the set reads like the list
    assert ipnet.ip_networks(entries) == ['10.0.0.0/8', '172.16.0.0/25', '172.16.0.128/25', '192.0.2.1', '192.0.2.2',
                                          '2001:db8::/32']
    assert ipnet.ip_networks(entries, 4) == ['10.0.0.0/8', '172.16.0.0/25', '172.16.0.128/25', '192.0.2.1',
                                             '192.0.2.2']
    assert ipnet.ip_networks(entries, '6') == ['2001:db8::/32']
    assert ipnet.ip_networks(['0.0.0.0/0', '::/0', '10.0.0.1']) == ['0.0.0.0/0', '::/0']
    assert ipnet.ip_networks([], 4) == []


def test_ip_networks_refuses_bad_entries_and_versions():
    with pytest.raises(AnsibleFilterError, match="'lb1'"):
        ipnet.ip_networks(['10.0.0.1', 'lb1'])
    with pytest.raises(AnsibleFilterError, match='version must be 4 or 6'):
        ipnet.ip_networks(['10.0.0.1'], 5)


def test_the_filters_are_registered():
    assert set(ipnet.FilterModule().filters()) == {'ip_in_networks', 'ip_invalid', 'ip_networks'}
