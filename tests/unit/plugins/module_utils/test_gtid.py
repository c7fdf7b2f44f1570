# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest

from ansible_collections.distweb.infra.plugins.module_utils import gtid as g

U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562'
U2 = '4f22ab58-82db-22f2-8f44-d91bb853a673'
U3 = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee'


# ---------------------------------------------------------------------------
# MySQL: parsing and canonical text
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('text, canonical', [
    ('', ''),
    ('   \n ', ''),
    (None, ''),
    (U1 + ':1-5', U1 + ':1-5'),
    (U1 + ':7', U1 + ':7'),
    (U1 + ':7-7', U1 + ':7'),
    (U1 + ':1-5:7-9', U1 + ':1-5:7-9'),
    # intervals merged: overlapping and adjacent, in any order
    (U1 + ':7-9:1-5:6', U1 + ':1-9'),
    (U1 + ':1-5:3-8:10', U1 + ':1-8:10'),
    (U1 + ':5:4:3:2:1', U1 + ':1-5'),
    # the same UUID in two entries
    (U1 + ':1-3,' + U1 + ':4-6', U1 + ':1-6'),
    # sorted by UUID, MySQL's ",\n" separator and spaces accepted
    (U2 + ':1-3,\n' + U1 + ':1-5', U1 + ':1-5,' + U2 + ':1-3'),
    ('  ' + U1 + ' : 1 - 5 ,\n  ' + U2 + ':2\n', U1 + ':1-5,' + U2 + ':2'),
    # UUIDs upper case, without dashes, in braces
    (U1.upper() + ':1', U1 + ':1'),
    (U1.replace('-', '') + ':1', U1 + ':1'),
    ('{' + U1 + '}:1', U1 + ':1'),
    (b'3e11fa47-71ca-11e1-9e33-c80aa9429562:1-2', U1 + ':1-2'),
])
def test_mysql_parse_and_format(text, canonical):
    parsed = g.parse_mysql(text)
    assert str(parsed) == canonical
    assert g.format_gtid(text, 'mysql') == canonical
    # canonical text parses back to the same set
    assert g.parse_mysql(canonical) == parsed
    assert str(g.parse_mysql(canonical)) == canonical


def test_mysql_tags():
    text = U1 + ':1-5:Blue:1-3:7:red:2,' + U1 + ':6-8:blue:4'
    parsed = g.parse_mysql(text)
    assert str(parsed) == U1 + ':1-8:blue:1-4:7:red:2'
    assert parsed.keys() == [(U1, ''), (U1, 'blue'), (U1, 'red')]
    assert parsed.intervals(U1, 'blue') == [(1, 4), (7, 7)]
    assert parsed.count() == 8 + 5 + 1
    # a tag is its own source: untagged 1-3 does not contain tagged 1-3
    assert not g.contains(U1 + ':1-3', U1 + ':tag:1-3')
    assert g.contains(U1 + ':1-3:tag:1-3', U1 + ':tag:2')
    assert g.subtract(U1 + ':1-3:tag:1-3', U1 + ':1-3') == U1 + ':tag:1-3'
    # tagged only
    assert g.format_gtid(U1 + ':x_1:5', 'mysql') == U1 + ':x_1:5'


def test_mysql_set_object():
    empty = g.parse_mysql('')
    assert empty.is_empty() and not empty and empty.count() == 0
    parsed = g.parse_mysql(U1 + ':1-5')
    assert parsed and not parsed.is_empty()
    assert parsed == g.MySQLGtidSet({(U1, ''): [(3, 5), (1, 2)]})
    assert parsed != empty
    assert repr(parsed) == 'MySQLGtidSet(%r)' % (U1 + ':1-5')
    assert g.parse(parsed) is parsed
    assert parsed.flavor == 'mysql'


@pytest.mark.parametrize('text, token', [
    ('not-a-uuid:1-5', "'not-a-uuid'"),
    (U1, 'has no transaction numbers'),
    (U1 + ':', "''"),
    (U1 + ':0', "'0'"),
    (U1 + ':0-5', "'0-5'"),
    (U1 + ':5-3', "'5-3'"),
    (U1 + ':1-x', "'1-x'"),
    (U1 + ':1--3', "'1--3'"),
    (U1 + ':-3', "'-3'"),
    (U1 + ':9223372036854775807', "'9223372036854775807'"),
    (U1 + ':1-3,', 'empty entry'),
    (U1 + ':1-3,,' + U2 + ':1', 'empty entry'),
    (U1 + ':tag', "tag 'tag' has no transaction numbers"),
    (U1 + ':a:b:1', "tag 'a' has no transaction numbers"),
    (U1 + ':1:bad-tag:2', "'bad-tag'"),
    (U1 + ':1:1tag:2', "'1tag'"),
    (U1 + ':1:' + 'a' * 33 + ':2', "'" + 'a' * 33 + "'"),
    (U1[:-1] + ':1', "'%s'" % U1[:-1]),
    (U1 + 'f:1', "'%sf'" % U1),
    ('zz' + U1[2:] + ':1', "'zz"),
])
def test_mysql_malformed(text, token):
    with pytest.raises(g.GtidError) as exc:
        g.parse_mysql(text)
    assert token in str(exc.value)
    assert 'Invalid MySQL GTID set' in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_mysql_largest_transaction_number():
    assert g.format_gtid(U1 + ':9223372036854775806', 'mysql') == U1 + ':9223372036854775806'


# ---------------------------------------------------------------------------
# MySQL: ordering and set operations
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('a, b, expected', [
    ('', '', 'equal'),
    (U1 + ':1-5', U1 + ':1-5', 'equal'),
    (U1 + ':1-3:4-5', U1 + ':1-5', 'equal'),
    (U1 + ':1-5,' + U2 + ':1', U2 + ':1,\n' + U1 + ':1-5', 'equal'),
    (U1 + ':1-6', U1 + ':1-5', 'ahead'),
    (U1 + ':1-5,' + U2 + ':1', U1 + ':1-5', 'ahead'),
    (U1 + ':1-5', '', 'ahead'),
    ('', U1 + ':1', 'behind'),
    (U1 + ':1-4', U1 + ':1-5', 'behind'),
    (U1 + ':1-3:5', U1 + ':1-5', 'behind'),
    (U1 + ':1-5', U1 + ':1-4:6', 'diverged'),
    (U1 + ':1-5,' + U2 + ':1', U1 + ':1-6', 'diverged'),
    (U1 + ':1-5', U2 + ':1-5', 'diverged'),
])
def test_mysql_compare(a, b, expected):
    assert g.compare(a, b) == expected
    assert g.compare(a, b, 'mysql') == expected
    reverse = {'ahead': 'behind', 'behind': 'ahead'}.get(expected, expected)
    assert g.compare(b, a) == reverse
    assert g.contains(a, b) is (expected in ('equal', 'ahead'))


@pytest.mark.parametrize('a, b, expected', [
    (U1 + ':1-10', U1 + ':3-4:8', U1 + ':1-2:5-7:9-10'),
    (U1 + ':1-10', U1 + ':1-10', ''),
    (U1 + ':1-10', U1 + ':1-20', ''),
    (U1 + ':1-10', '', U1 + ':1-10'),
    ('', U1 + ':1-10', ''),
    (U1 + ':1-10', U1 + ':5-15', U1 + ':1-4'),
    (U1 + ':5-15', U1 + ':1-10', U1 + ':11-15'),
    (U1 + ':1-3:7-9:20-30', U1 + ':2-8:25', U1 + ':1:9:20-24:26-30'),
    (U1 + ':1-10,' + U2 + ':1-5', U1 + ':1-10', U2 + ':1-5'),
    (U1 + ':1-10,' + U2 + ':1-5', U2 + ':1-2:4', U1 + ':1-10,' + U2 + ':3:5'),
    (U1 + ':1,' + U2 + ':1,' + U3 + ':1', U2 + ':1', U1 + ':1,' + U3 + ':1'),
])
def test_mysql_subtract(a, b, expected):
    assert g.subtract(a, b) == expected
    # what is left is disjoint from b, and b plus it covers a
    assert not g.contains(b, expected) or expected == ''
    assert g.contains(g.union(b, expected), a)


def test_mysql_union():
    assert g.union(U1 + ':1-3', U1 + ':4-6', U2 + ':2') == U1 + ':1-6,' + U2 + ':2'
    assert g.union(U1 + ':1-3', '') == U1 + ':1-3'
    assert g.union(flavor='mysql') == ''
    assert g.union('', '', flavor='mysql') == ''
    with pytest.raises(TypeError):
        g.union(U1 + ':1', flavr='mysql')


def test_mysql_errant():
    primary = U1 + ':1-100'
    # a replica behind its primary has nothing errant
    assert g.errant(U1 + ':1-90', primary) == ''
    # a write made on the replica itself
    replica = U1 + ':1-90,' + U2 + ':1-2'
    assert g.errant(replica, primary) == U2 + ':1-2'
    assert g.errant(replica, primary, 'mysql') == U2 + ':1-2'
    # transactions of the primary the primary no longer has (a rebuilt primary)
    assert g.errant(U1 + ':1-100', U1 + ':1-50:60-100') == U1 + ':51-59'


def test_mysql_most_advanced():
    replicas = [U1 + ':1-90', U1 + ':1-100', U1 + ':1-95']
    assert g.most_advanced(replicas) == 1
    # equal sets: the first of them
    assert g.most_advanced([U1 + ':1-100', U1 + ':1-100', U1 + ':1-5']) == 0
    assert g.most_advanced([U1 + ':1-5']) == 0
    # cannot be ordered: one has a transaction the most advanced lacks
    assert g.most_advanced([U1 + ':1-90,' + U2 + ':1', U1 + ':1-100']) is None
    assert g.most_advanced([U1 + ':1-90:92', U1 + ':1-91']) is None
    assert g.most_advanced([]) is None
    assert g.most_advanced(['', '']) == 0
    # a generator works
    assert g.most_advanced(s for s in replicas) == 1


def test_mysql_most_advanced_with_received_sets():
    # what a MySQL replica has: Retrieved_Gtid_Set and @@gtid_executed joined
    a = g.union(U1 + ':50-120', U1 + ':1-100')
    b = g.union(U1 + ':80-110', U1 + ':1-110')
    assert a == U1 + ':1-120'
    assert g.most_advanced([b, a]) == 1


# ---------------------------------------------------------------------------
# MariaDB: parsing and canonical text
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('text, canonical', [
    ('', ''),
    (None, ''),
    (' ', ''),
    ('0-1-100', '0-1-100'),
    ('0-1-100,1-2-5', '0-1-100,1-2-5'),
    ('1-2-5,0-1-100', '0-1-100,1-2-5'),
    (' 0-1-100 ,\n 1-2-5 ', '0-1-100,1-2-5'),
    ('00-001-0100', '0-1-100'),
    ('0-1-0', '0-1-0'),
    ('4294967295-4294967295-18446744073709551615', '4294967295-4294967295-18446744073709551615'),
    # a binlog state: several server_ids per domain
    ('0-2-50,0-1-100,1-3-7', '0-1-100,0-2-50,1-3-7'),
    (b'0-1-5', '0-1-5'),
])
def test_mariadb_parse_and_format(text, canonical):
    parsed = g.parse_mariadb(text)
    assert str(parsed) == canonical
    assert g.format_gtid(text, 'mariadb') == canonical
    assert g.parse_mariadb(canonical) == parsed


def test_mariadb_object():
    state = g.parse_mariadb('0-2-50,0-1-100,1-3-7')
    assert state.domains() == [0, 1]
    assert state.entries(0) == [g.MariaDBGtid(0, 1, 100), g.MariaDBGtid(0, 2, 50)]
    assert state.last(0) == g.MariaDBGtid(0, 1, 100) and state.last(5) is None
    assert state.max_seqno(1) == 7 and state.max_seqno(5) is None
    assert not state.is_position()
    assert str(state.as_position()) == '0-1-100,1-3-7'
    assert state.as_position().is_position()
    assert state.gtids()[0] == (0, 1, 100)
    assert str(g.MariaDBGtid(0, 1, 100)) == '0-1-100'
    assert repr(state) == "MariaDBGtidList('0-1-100,0-2-50,1-3-7')"
    assert state.flavor == 'mariadb' and state and not g.parse_mariadb('')
    assert g.parse(state) is state
    assert state != g.parse_mariadb('0-1-100')


def test_mariadb_position_mode():
    assert str(g.parse_mariadb('0-1-100,1-2-5', position=True)) == '0-1-100,1-2-5'
    with pytest.raises(g.GtidError) as exc:
        g.parse_mariadb('0-1-100,0-2-50', position=True)
    assert 'domain 0 is listed more than once (0-1-100, 0-2-50)' in str(exc.value)


@pytest.mark.parametrize('text, token', [
    ('0-1', "'0-1'"),
    ('0-1-2-3', "'0-1-2-3'"),
    ('0-1-x', "'0-1-x'"),
    ('0-1--5', "'0-1--5'"),
    ('-1-1-5', "'-1-1-5'"),
    ('0 - 1 - 5', "'0 - 1 - 5'"),
    ('0-1-5,', 'empty entry'),
    (',0-1-5', 'empty entry'),
    ('0-1-5,,1-1-5', 'empty entry'),
    ('4294967296-1-5', "'4294967296-1-5' is out of range"),
    ('0-4294967296-5', "'0-4294967296-5' is out of range"),
    ('0-1-18446744073709551616', "'0-1-18446744073709551616' is out of range"),
    ('0-1-5,0-1-6', 'Two GTIDs of domain 0 and server_id 1: 0-1-5 and 0-1-6'),
])
def test_mariadb_malformed(text, token):
    with pytest.raises(g.GtidError) as exc:
        g.parse_mariadb(text)
    assert token in str(exc.value)
    assert 'Invalid MariaDB GTID position' in str(exc.value)


def test_mariadb_same_gtid_twice_is_fine():
    assert str(g.parse_mariadb('0-1-5,0-1-5')) == '0-1-5'


# ---------------------------------------------------------------------------
# MariaDB: ordering and set operations
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('a, b, expected', [
    ('', '', 'equal'),
    ('0-1-100', '0-1-100', 'equal'),
    ('0-1-100,1-2-5', '1-2-5,0-1-100', 'equal'),
    ('0-1-101', '0-1-100', 'ahead'),
    # a later GTID of another server in strict mode includes the earlier ones
    ('0-2-101', '0-1-100', 'ahead'),
    ('0-1-100,1-2-5', '0-1-100', 'ahead'),
    ('0-1-100', '', 'ahead'),
    ('0-1-90', '0-1-100', 'behind'),
    ('', '0-1-1', 'behind'),
    ('0-1-100', '0-1-100,1-2-1', 'behind'),
    # same sequence number, different server: two different transactions
    ('0-2-100', '0-1-100', 'diverged'),
    # ahead in one domain, behind in another
    ('0-1-101,1-2-5', '0-1-100,1-2-6', 'diverged'),
    ('0-1-100,1-2-5', '0-1-100,2-3-1', 'diverged'),
])
def test_mariadb_compare(a, b, expected):
    assert g.compare(a, b) == expected
    assert g.compare(a, b, 'mariadb') == expected
    reverse = {'ahead': 'behind', 'behind': 'ahead'}.get(expected, expected)
    assert g.compare(b, a) == reverse
    assert g.contains(a, b) is (expected in ('equal', 'ahead'))


def test_mariadb_binlog_state_is_more_precise():
    # the primary's binlog state says server 2 wrote up to 90 in domain 0:
    # the replica's 0-2-101 is not there although 101 < 200
    state = '0-1-200,0-2-90'
    assert not g.contains(state, '0-2-101')
    assert g.errant('0-2-101', state) == '0-2-101'
    # ... while the primary's position alone cannot tell
    assert g.contains('0-1-200', '0-2-101')
    assert g.errant('0-2-101', '0-1-200') == ''
    # a state that has server 2 up to 120 covers it
    assert g.contains('0-1-200,0-2-120', '0-2-101')
    # a state compared with its own position
    assert g.compare('0-1-200,0-2-90', '0-1-200') == 'equal'


@pytest.mark.parametrize('a, b, expected', [
    ('0-1-100', '0-1-100', ''),
    ('0-1-100', '0-1-120', ''),
    ('0-1-105', '0-1-100', '0-1-101..0-1-105'),
    ('0-1-101', '0-1-100', '0-1-101'),
    # reported with a's server_id
    ('0-2-105', '0-1-100', '0-2-101..0-2-105'),
    # a domain b does not have: from 1
    ('0-1-100,1-2-5', '0-1-100', '1-2-1..1-2-5'),
    ('1-2-1', '', '1-2-1'),
    ('', '0-1-5', ''),
    # conflict at the same sequence number: that GTID
    ('0-2-100', '0-1-100', '0-2-100'),
    # several domains, sorted
    ('0-1-110,1-1-20,2-3-4', '2-3-4,1-1-18,0-1-100', '0-1-101..0-1-110,1-1-19..1-1-20'),
    # a binlog state on the left: its older GTIDs inside the range are not repeated
    ('0-1-100,0-2-50', '0-1-10', '0-1-11..0-1-100'),
    # ... and listed when the range does not include them
    ('0-1-100,0-2-50', '0-1-100,0-2-40', '0-2-50'),
])
def test_mariadb_subtract(a, b, expected):
    assert g.subtract(a, b) == expected
    assert g.subtract(a, b, 'mariadb') == expected


def test_mariadb_subtract_objects():
    ranges = g.parse_mariadb('0-2-105,1-1-3').subtract(g.parse_mariadb('0-1-100,1-1-3'))
    assert ranges.ranges == [g.MariaDBGtidRange(0, 2, 101, 105)]
    assert ranges.count() == 5 and ranges and not ranges.is_empty()
    assert repr(ranges) == "MariaDBGtidRanges('0-2-101..0-2-105')"
    assert ranges == g.MariaDBGtidRanges([g.MariaDBGtidRange(0, 2, 101, 105)])
    assert ranges != g.MariaDBGtidRanges()
    assert not g.MariaDBGtidRanges() and g.MariaDBGtidRanges().count() == 0
    assert g.flavor_of(ranges) == 'mariadb'
    with pytest.raises(g.GtidError):
        g.parse(ranges)


def test_mariadb_errant():
    # pass the replica's @@gtid_binlog_pos and the primary's @@gtid_binlog_pos
    primary = '0-1-100'
    assert g.errant('0-1-95', primary) == ''
    assert g.errant('0-1-100', primary) == ''
    # the replica wrote 2 transactions of its own after replicating 0-1-100
    assert g.errant('0-2-102', primary) == '0-2-101..0-2-102'
    # ... in its own domain
    assert g.errant('0-1-100,2-2-3', primary) == '2-2-1..2-2-3'
    # the replica's binlog against its own slave_pos (no access to the primary)
    assert g.errant('0-2-102', '0-1-100') == '0-2-101..0-2-102'
    assert g.errant('0-1-100', '0-1-100') == ''
    # a replica ahead of a primary it should follow (the old primary came back)
    assert g.errant('0-1-120', '0-3-110') == '0-1-111..0-1-120'


def test_mariadb_union():
    assert g.union('0-1-100', '0-1-90,1-2-5') == '0-1-100,1-2-5'
    assert g.union('0-1-100', '0-2-110') == '0-2-110'
    # Gtid_IO_Pos is empty until the IO thread runs: the slave_pos counts
    assert g.union('', '0-1-100', flavor='mariadb') == '0-1-100'
    # a union is a position
    assert g.union('0-1-100,0-2-50') == '0-1-100'
    with pytest.raises(g.GtidError) as exc:
        g.union('0-1-100', '0-2-100')
    assert '0-1-100 and 0-2-100' in str(exc.value)


def test_mariadb_most_advanced():
    # per replica: union(Gtid_IO_Pos, @@gtid_slave_pos)
    replicas = [g.union('0-1-90', '0-1-88'), g.union('0-1-100', '0-1-95'), g.union('', '0-1-97')]
    assert g.most_advanced(replicas) == 1
    assert g.most_advanced(['0-1-100', '0-1-100']) == 0
    assert g.most_advanced(['0-1-100,1-1-5', '0-1-100', '1-1-4']) == 0
    # unorderable: ahead in different domains, or a conflict
    assert g.most_advanced(['0-1-100,1-1-5', '0-1-101,1-1-4']) is None
    assert g.most_advanced(['0-1-100', '0-2-100']) is None
    assert g.most_advanced(['0-1-100', '0-2-100', '0-1-101']) == 2


# ---------------------------------------------------------------------------
# Flavor handling
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('value, flavor', [
    ('', None),
    (None, None),
    ('0-1-5', 'mariadb'),
    ('0-1-5,1-1-1', 'mariadb'),
    (U1 + ':1', 'mysql'),
    (U1, 'mysql'),
    ('{' + U1 + '}', 'mysql'),
    (g.parse_mysql(''), 'mysql'),
    (g.parse_mariadb(''), 'mariadb'),
])
def test_flavor_of(value, flavor):
    assert g.flavor_of(value) == flavor


@pytest.mark.parametrize('value', ['x', 'abc', '0-1-5;1-1-1', '0.1.5'])
def test_flavor_of_garbage(value):
    with pytest.raises(g.GtidError) as exc:
        g.flavor_of(value)
    assert repr(value) in str(exc.value)


def test_mixed_flavors_are_refused():
    with pytest.raises(g.GtidError) as exc:
        g.compare('0-1-5', U1 + ':1-5')
    assert 'both MySQL and MariaDB' in str(exc.value)
    with pytest.raises(g.GtidError):
        g.most_advanced(['0-1-5', '', U1 + ':1'])
    with pytest.raises(g.GtidError):
        g.contains(g.parse_mariadb('0-1-5'), g.parse_mysql(U1 + ':1'))
    # an explicit flavor that does not match the text
    with pytest.raises(g.GtidError) as exc:
        g.compare('0-1-5', '0-1-6', 'mysql')
    assert "'0-1-5'" in str(exc.value)
    with pytest.raises(g.GtidError) as exc:
        g.format_gtid(U1 + ':1', 'mariadb')
    assert 'Invalid MariaDB GTID position' in str(exc.value)
    with pytest.raises(g.GtidError) as exc:
        g.parse(g.parse_mysql(U1 + ':1'), 'mariadb')
    assert 'mysql GTID value was given where mariadb was expected' in str(exc.value)
    with pytest.raises(g.GtidError) as exc:
        g.parse('0-1-5', 'oracle')
    assert "Unknown GTID flavor 'oracle'" in str(exc.value)


def test_empty_values_either_flavor():
    for flavor in (None, 'mysql', 'mariadb'):
        assert g.compare('', '', flavor) == 'equal'
        assert g.subtract('', None, flavor) == ''
        assert g.errant(None, None, flavor) == ''
        assert g.contains('', '', flavor) is True
        assert g.format_gtid('', flavor) == ''


def test_parse_detects_flavor():
    assert isinstance(g.parse('0-1-5'), g.MariaDBGtidList)
    assert isinstance(g.parse(U1 + ':1'), g.MySQLGtidSet)
    assert isinstance(g.parse(''), g.MySQLGtidSet)
    assert isinstance(g.parse('', 'mariadb'), g.MariaDBGtidList)
    assert g.detect_flavor('', None, '0-1-1') == 'mariadb'
    assert g.detect_flavor() is None


def test_parsed_and_text_values_mix():
    assert g.compare(g.parse_mysql(U1 + ':1-5'), U1 + ':1-4') == 'ahead'
    assert g.subtract('0-1-5', g.parse_mariadb('0-1-3')) == '0-1-4..0-1-5'
    assert g.most_advanced([g.parse_mariadb('0-1-3'), '0-1-4']) == 1


def test_gtid_error_is_a_value_error():
    assert issubclass(g.GtidError, ValueError)
    with pytest.raises(ValueError):
        g.parse('0-1-x')
