# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IP address and network filters of the firewall role, in one place.

Standard library only (``ipaddress``). The documentation of each filter is in
the YAML file of the same name beside this one (ip_in_networks.yml,
ip_networks.yml, ip_invalid.yml), as ansible-core does for its own filters.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import ipaddress

from ansible.errors import AnsibleFilterError


def _entries(value, name):
    """A list of entries from a list or a single string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise AnsibleFilterError('%s: expected a list of IP addresses or networks, got %r' % (name, value))


def _network(entry):
    """``entry`` as an ip_network (host bits cleared), or None if it is not an
    IP address or network. Whitespace around it is ignored."""
    if not isinstance(entry, str):
        return None
    text = entry.strip()
    if not text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _address(entry):
    """``entry`` as an ip_address, or None. An IPv4-mapped IPv6 address
    (``::ffff:192.0.2.1``, as sshd shows IPv4 clients on a dual-stack socket)
    is the IPv4 address."""
    if not isinstance(entry, str):
        return None
    try:
        address = ipaddress.ip_address(entry.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_invalid(value):
    """The entries of ``value`` that are not IP addresses or networks."""
    return [entry for entry in _entries(value, 'ip_invalid') if _network(entry) is None]


def ip_networks(value, version=None):
    """Valid and normalised networks of ``value``: host bits cleared, a
    network inside another one of the list left out (nftables refuses
    overlapping set elements), a single address written without its prefix
    length, IPv4 before IPv6, each family sorted. ``version`` (4 or 6) keeps
    one family. An entry that is not an IP address or network is an error."""
    if version not in (None, 4, 6, '4', '6'):
        raise AnsibleFilterError('ip_networks: version must be 4 or 6, got %r' % (version,))
    bad = ip_invalid(value)
    if bad:
        raise AnsibleFilterError('ip_networks: not an IP address or network: %s' % ', '.join(map(repr, bad)))
    networks = [_network(entry) for entry in _entries(value, 'ip_networks')]
    result = []
    for family in (4, 6):
        if version is not None and int(version) != family:
            continue
        mine = sorted(set(n for n in networks if n.version == family))
        for network in mine:
            if any(other != network and network.subnet_of(other) for other in mine):
                continue
            if network.prefixlen == network.max_prefixlen:
                result.append(str(network.network_address))
            else:
                result.append(str(network))
    return result


def ip_in_networks(address, networks):
    """Whether ``address`` lies in one of ``networks``."""
    parsed = _address(address)
    if parsed is None:
        raise AnsibleFilterError('ip_in_networks: not an IP address: %r' % (address,))
    bad = ip_invalid(networks)
    if bad:
        raise AnsibleFilterError('ip_in_networks: not an IP address or network: %s' % ', '.join(map(repr, bad)))
    return any(parsed in network for network in (_network(entry) for entry in _entries(networks, 'ip_in_networks'))
               if network.version == parsed.version)


class FilterModule(object):
    """distweb.infra IP address filters."""

    def filters(self):
        return {
            'ip_in_networks': ip_in_networks,
            'ip_invalid': ip_invalid,
            'ip_networks': ip_networks,
        }
