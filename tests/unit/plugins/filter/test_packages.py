# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest

from ansible.module_utils import _internal as module_utils_internal

# As in test_ipnet.py: importing controller code must not mark the test
# process as the controller.
_IS_CONTROLLER = module_utils_internal.is_controller
from ansible.errors import AnsibleFilterError  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.distweb.infra.plugins.filter.packages import packages_missing  # noqa: E402  pylint: disable=wrong-import-position

module_utils_internal.is_controller = _IS_CONTROLLER

# As ansible.builtin.package_facts reports them: a list per name.
FACTS = {'packages': {
    'nginx': [{'name': 'nginx', 'version': '1.22.1-9', 'arch': 'amd64', 'source': 'apt'}],
    'mariadb-server': [{'name': 'mariadb-server', 'version': '1:10.11.14-0+deb12u2', 'arch': 'amd64', 'source': 'apt'}],
    'libc6': [{'name': 'libc6', 'version': '2.36-9', 'arch': 'amd64', 'source': 'apt'},
              {'name': 'libc6', 'version': '2.36-9', 'arch': 'i386', 'source': 'apt'}],
}}


def test_only_the_names_not_installed_are_returned_in_order():
    assert packages_missing(['python3-pymysql', 'nginx', 'gunicorn', 'mariadb-server'], FACTS) == \
        ['python3-pymysql', 'gunicorn']


def test_nothing_is_missing_when_every_package_is_installed():
    assert packages_missing(['nginx', 'libc6'], FACTS) == []


def test_a_single_name_is_a_list_of_one():
    assert packages_missing('nginx', FACTS) == []
    assert packages_missing('haproxy', FACTS) == ['haproxy']


@pytest.mark.parametrize('facts', [{}, {'packages': None}, {'packages': 'nginx'}, None, 'facts'])
def test_without_package_facts_every_package_is_missing(facts):
    """A role used without the preflight's package facts still runs apt."""
    assert packages_missing(['nginx', 'haproxy'], facts) == ['nginx', 'haproxy']


@pytest.mark.parametrize('name', ['nginx=1.22.1-9', 'nginx/bookworm-backports', 'nginx:amd64', 'nginx*',
                                  '/tmp/nginx.deb', 'Nginx', ''])
def test_anything_but_a_plain_name_is_left_to_apt(name):
    assert packages_missing([name], FACTS) == [name]


def test_an_empty_entry_in_the_facts_is_not_installed():
    assert packages_missing(['nginx'], {'packages': {'nginx': []}}) == ['nginx']


@pytest.mark.parametrize('names', [None, 3, {'nginx': True}])
def test_names_that_are_not_a_list_are_an_error(names):
    with pytest.raises(AnsibleFilterError, match='expected a list of package names'):
        packages_missing(names, FACTS)
