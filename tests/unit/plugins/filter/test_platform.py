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

from ansible_collections.distweb.infra.plugins.filter.platform import platform  # noqa: E402  pylint: disable=wrong-import-position

module_utils_internal.is_controller = _IS_CONTROLLER


@pytest.mark.parametrize('major, version, codename, database, haproxy', [
    ('12', '12.8', 'bookworm', '10.11', '2.6'),
    ('13', '13.2', 'trixie', '11.8', '3.0'),
])
def test_the_supported_debian_releases(major, version, codename, database, haproxy):
    found = platform({'distribution': 'Debian', 'distribution_major_version': major,
                      'distribution_version': version})
    assert found == {'supported': True, 'name': 'Debian %s' % version, 'codename': codename,
                     'database': {'flavor': 'mariadb', 'version': database}, 'haproxy': haproxy, 'problem': ''}


@pytest.mark.parametrize('facts, name', [
    ({'distribution': 'Debian', 'distribution_major_version': '11', 'distribution_version': '11.11'}, 'Debian 11.11'),
    ({'distribution': 'Ubuntu', 'distribution_major_version': '24', 'distribution_version': '24.04'}, 'Ubuntu 24.04'),
    ({'distribution': 'RedHat', 'distribution_major_version': '9'}, 'RedHat 9'),
])
def test_another_platform_is_refused_with_what_is_supported(facts, name):
    found = platform(facts)
    assert found['supported'] is False and found['database'] is None
    assert found['problem'].startswith('%s is not a platform distweb.infra supports' % name)
    assert 'Debian 12 (bookworm: MariaDB 10.11, HAProxy 2.6)' in found['problem']
    assert 'Debian 13 (trixie: MariaDB 11.8, HAProxy 3.0)' in found['problem']
    assert found['problem'].endswith('Nothing was changed.')


@pytest.mark.parametrize('facts, text', [
    ({}, 'gather facts'),
    ({'distribution': 'Debian'}, 'gather facts'),
    ('Debian 12', "expected the host's ansible_facts"),
    (None, "expected the host's ansible_facts"),
])
def test_facts_it_cannot_read_are_an_error(facts, text):
    with pytest.raises(AnsibleFilterError, match=text):
        platform(facts)
