# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Assertions on a module run's result, shared by the module tests."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


def ok(result):
    """The run succeeded; its result."""
    assert not result.get('failed'), result
    return result


def failed(result, *words):
    """The run failed with a message naming every one of ``words``; its result."""
    assert result.get('failed'), result
    for word in words:
        assert word in result['msg'], (word, result['msg'])
    return result
