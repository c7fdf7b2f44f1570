# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The platforms the collection supports, in one place: the operating
systems, and the database server each one ships. The documentation is in
platform.yml beside this file."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible.errors import AnsibleFilterError

# (distribution, major version): what the collection's roles install there.
# The database is the distribution's own package: its flavor, and the
# version series the roles and modules are tested with.
PLATFORMS = {
    ('Debian', '12'): dict(codename='bookworm', database=dict(flavor='mariadb', version='10.11'), haproxy='2.6'),
    ('Debian', '13'): dict(codename='trixie', database=dict(flavor='mariadb', version='11.8'), haproxy='3.0'),
}


def _supported_text():
    return ', '.join('%s %s (%s: %s %s, HAProxy %s)' % (
        dist, major, p['codename'], 'MariaDB' if p['database']['flavor'] == 'mariadb' else p['database']['flavor'],
        p['database']['version'], p['haproxy']) for (dist, major), p in sorted(PLATFORMS.items()))


def platform(facts):
    """What the collection makes of a host, from its facts (``ansible_facts``
    gathered with at least the distribution subset)."""
    if not isinstance(facts, dict):
        raise AnsibleFilterError('platform: expected the host\'s ansible_facts (a dict), got %r' % (facts,))
    dist = facts.get('distribution')
    major = facts.get('distribution_major_version')
    if dist is None or major is None:
        raise AnsibleFilterError('platform: the facts have no distribution and distribution_major_version: '
                                 'gather facts (at least the distribution subset) first')
    found = PLATFORMS.get((str(dist), str(major)))
    name = '%s %s' % (dist, facts.get('distribution_version') or major)
    if found is None:
        return dict(supported=False, name=name, codename=None, database=None, haproxy=None,
                    problem='%s is not a platform distweb.infra supports; it supports %s. Nothing was changed.'
                            % (name, _supported_text()))
    return dict(supported=True, name=name, codename=found['codename'], database=dict(found['database']),
                haproxy=found['haproxy'], problem='')


class FilterModule(object):
    def filters(self):
        return {'platform': platform}
