# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which of a role's packages a host still lacks, from its package facts.
The documentation is in packages_missing.yml beside this file."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

# A plain Debian package name (Debian policy 5.6.1). Anything else (a version
# pin, a release, an architecture, a wildcard or a .deb file) is left to apt.
_PLAIN_NAME = re.compile(r'^[a-z0-9][a-z0-9+.-]+$')


def packages_missing(names, facts):
    """The names of ``names`` that ``facts`` (a host's ``ansible_facts``) do
    not show installed. Without package facts every name is missing, so a
    role used without them still asks apt about each package."""
    if isinstance(names, string_types):
        names = [names]
    if not isinstance(names, (list, tuple)):
        raise AnsibleFilterError('packages_missing: expected a list of package names, got %r' % (names,))
    installed = facts.get('packages') if isinstance(facts, dict) else None
    if not isinstance(installed, dict):
        return list(names)
    return [name for name in names
            if not (isinstance(name, string_types) and _PLAIN_NAME.match(name) and installed.get(name))]


class FilterModule(object):
    def filters(self):
        return {'packages_missing': packages_missing}
