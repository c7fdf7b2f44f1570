# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of module_utils/mysql_cluster.py."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest

from ansible_collections.distweb.infra.plugins.module_utils import mysql_cluster
from ansible_collections.distweb.infra.plugins.module_utils import mysql_dialect


# ---------------------------------------------------------------------------
# The semi-sync source side follows the primary role
# ---------------------------------------------------------------------------

SEMI_MEMBER = dict(available=True, replica_enabled=True, source_enabled=False)


class _Node(object):
    def __init__(self, version='10.11.6-MariaDB'):
        self.name = 'server2'
        self.dialect = mysql_dialect.dialect_for_version(version)


class _Module(object):
    params = {}


@pytest.mark.parametrize('semi, switched', [
    (SEMI_MEMBER, True),
    (dict(SEMI_MEMBER, source_enabled=True), False),  # on already
    (dict(SEMI_MEMBER, replica_enabled=False), False),  # not set up for semi-sync
    (None, False),  # unknown
])
def test_promote_statements(semi, switched):
    ops = mysql_cluster.ClusterOperations(_Module())
    sql = [s.sql for s in ops.promote_statements(_Node(), semi)]
    expected = ['STOP SLAVE', 'RESET SLAVE ALL'] + (['SET GLOBAL rpl_semi_sync_master_enabled = ON'] if switched
                                                    else []) + ['SET GLOBAL read_only = 0']
    assert sql == expected
    sql = [s.sql for s in ops.promote_statements(_Node('8.0.36'), semi)]
    # on before the node takes a write
    assert sql[-2:] == ['SET GLOBAL super_read_only = 0', 'SET GLOBAL read_only = 0']
    assert ('SET GLOBAL rpl_semi_sync_source_enabled = ON' in sql) is switched


@pytest.mark.parametrize('semi, retired', [
    (dict(SEMI_MEMBER, source_enabled=True), True),
    (dict(SEMI_MEMBER, source_enabled=True, replica_enabled=False), True),  # on, whatever else
    (SEMI_MEMBER, False),
    (None, False),
])
def test_retire_source_statements(semi, retired):
    ops = mysql_cluster.ClusterOperations(_Module())
    sql = [s.sql for s in ops.retire_source_statements(_Node(), semi)]
    assert sql == (['SET GLOBAL rpl_semi_sync_master_enabled = OFF'] if retired else [])
