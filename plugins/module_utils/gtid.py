# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GTID sets (MySQL) and GTID positions (MariaDB): parsing, canonical text
and ordering. Pure Python, no database access.

One API for both flavors. Every function takes GTID text (``str``, ``bytes``
or ``None`` for "nothing") or an object returned by ``parse``, and a
``flavor`` (``'mariadb'`` or ``'mysql'``); without ``flavor`` it is told from
the values (MySQL sets have ``uuid:`` parts, MariaDB positions are
``domain-server_id-seqno``), and when every value is empty any flavor gives
the same answer.

* ``parse(text, flavor=None)`` -> ``MySQLGtidSet`` or ``MariaDBGtidList``
* ``format_gtid(value, flavor=None)`` -> canonical text
* ``contains(a, b)`` -> True if ``a`` has every transaction of ``b``
* ``compare(a, b)`` -> ``'equal'``, ``'ahead'`` (a has all of b and more),
  ``'behind'`` (b has all of a and more) or ``'diverged'`` (each has
  something the other lacks: the servers cannot be put in one line, a split
  brain or an errant write)
* ``subtract(a, b)`` -> text of what ``a`` has and ``b`` lacks (``''`` if none)
* ``union(*values)`` -> text of everything in any of the values
* ``errant(replica, primary)`` -> text of what a replica has that its
  primary lacks (``''`` if none)
* ``most_advanced(values)`` -> index of the value that contains all the
  others, or None when no value does (they cannot be ordered)

Malformed text raises ``GtidError`` (a ``ValueError``) naming the bad token.

Which server variables to pass
------------------------------

Errant transactions (``errant(replica, primary)``):

* MySQL: the replica's ``@@gtid_executed`` and the primary's
  ``@@gtid_executed``.
* MariaDB: the replica's ``@@gtid_binlog_pos`` and the primary's
  ``@@gtid_binlog_pos`` (or, more precise, its ``@@gtid_binlog_state``).
  Without access to the primary, ``errant(replica gtid_binlog_pos, replica
  gtid_slave_pos)`` finds the binlog GTIDs of a domain that replication did
  not bring (written on the replica itself).
* Read the replica's value first and the primary's after it: the primary only
  moves on, so a replica read later than its primary may look ahead of it.

The most advanced replica (``most_advanced``), with the IO threads stopped:

* MariaDB: per replica ``union(Gtid_IO_Pos, @@gtid_slave_pos)`` (what it has
  received, relay log included; ``Gtid_IO_Pos`` alone is empty on a replica
  whose IO thread has not run since the server started).
* MySQL: per replica ``union(Retrieved_Gtid_Set, @@gtid_executed)``.

MariaDB semantics
-----------------

A MariaDB position names only the last GTID of each replication domain (one
per domain in ``gtid_slave_pos``, ``gtid_binlog_pos``, ``gtid_current_pos``,
``Gtid_IO_Pos``); ``gtid_binlog_state`` names the last GTID of each
(domain, server_id) pair, so several per domain. With ``gtid_strict_mode``
sequence numbers grow within a domain, so:

* a GTID ``D-S-N`` is covered by a value that lists a GTID of the same domain
  and server_id with sequence number >= N, or, when it lists none of that
  server_id in domain D, by one whose highest sequence number in D is > N;
  a different server_id at the same sequence number is a conflict (two
  different transactions) and covers nothing;
* ``subtract(a, b)`` reports per domain the range ``D-S-(b's highest
  seqno + 1)..D-S-(a's seqno)`` with ``a``'s server_id (``D-S-N`` alone for
  a single GTID). The range is an estimate of what is missing: a position
  does not say which server wrote the GTIDs before its last one.

A position cannot show a write made on a replica whose sequence number is
below its primary's current one (the primary moved on past it); the
replica's SQL thread then stops with an out-of-order GTID error in strict
mode. Comparing against the primary's ``gtid_binlog_state`` finds it.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re
from collections import namedtuple

MARIADB = 'mariadb'
MYSQL = 'mysql'
FLAVORS = (MARIADB, MYSQL)

EQUAL = 'equal'
AHEAD = 'ahead'
BEHIND = 'behind'
DIVERGED = 'diverged'

MAX_UINT32 = 2 ** 32 - 1
MAX_UINT64 = 2 ** 64 - 1
# MySQL transaction numbers are 1 .. 2^63 - 2 (2^63 - 1 is reserved)
MAX_MYSQL_GNO = 2 ** 63 - 2


class GtidError(ValueError):
    """Malformed GTID text, or values that cannot be used together."""


def _text(value):
    if value is None:
        return ''
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return str(value)


def _shorten(text, limit=120):
    text = ' '.join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


# ---------------------------------------------------------------------------
# MySQL GTID sets
# ---------------------------------------------------------------------------

_UUID_DASHED_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
_UUID_PLAIN_RE = re.compile(r'^[0-9a-f]{32}$')
_TAG_RE = re.compile(r'^[a-z_][a-z0-9_]{0,31}$')
_INTERVAL_RE = re.compile(r'^(\d+)(?:\s*-\s*(\d+))?$')


def _normalize_uuid(token):
    value = token.strip().lower()
    if value.startswith('{') and value.endswith('}'):
        value = value[1:-1]
    if _UUID_DASHED_RE.match(value):
        return value
    if _UUID_PLAIN_RE.match(value):
        return '%s-%s-%s-%s-%s' % (value[0:8], value[8:12], value[12:16], value[16:20], value[20:32])
    return None


def _merge_intervals(intervals):
    """Sorted, merged (overlapping and adjacent joined) list of (start, end)."""
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _subtract_intervals(left, right):
    """Parts of the merged intervals ``left`` not in the merged ``right``."""
    result = []
    j = 0
    for start, end in left:
        current = start
        while j < len(right) and right[j][1] < current:
            j += 1
        k = j
        while k < len(right) and right[k][0] <= end:
            if right[k][0] > current:
                result.append((current, right[k][0] - 1))
            current = max(current, right[k][1] + 1)
            if current > end:
                break
            k += 1
        if current <= end:
            result.append((current, end))
    return result


def _format_interval(interval):
    start, end = interval
    return '%d' % start if start == end else '%d-%d' % (start, end)


class MySQLGtidSet(object):
    """A MySQL GTID set: per source (server UUID and, from MySQL 8.4, an
    optional tag) the transaction numbers it holds, as merged intervals.

    ``str()`` gives the canonical text: sources sorted by UUID (lower case),
    untagged intervals first, then each tag (lower case) in order, intervals
    merged, entries joined by ``,`` without spaces, e.g.
    ``3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:blue:1-3``.
    """

    flavor = MYSQL

    def __init__(self, intervals=None):
        """``intervals``: {(uuid, tag): [(start, end), ...]}; tag '' for none."""
        collected = {}
        for key, values in (intervals or {}).items():
            collected.setdefault(key, []).extend(values)
        self._sets = {}
        for key, values in collected.items():
            merged = _merge_intervals(values)
            if merged:
                self._sets[key] = merged

    # -- parsing -------------------------------------------------------------
    @classmethod
    def parse(cls, text):
        text = _text(text)
        if not text.strip():
            return cls()
        collected = {}
        for entry in text.split(','):
            if not entry.strip():
                raise GtidError('Invalid MySQL GTID set %r: empty entry (stray comma)' % _shorten(text))
            parts = entry.split(':')
            uuid = _normalize_uuid(parts[0])
            if uuid is None:
                raise GtidError('Invalid MySQL GTID set %r: %r is not a server UUID'
                                % (_shorten(text), parts[0].strip()))
            if len(parts) < 2:
                raise GtidError('Invalid MySQL GTID set %r: %r has no transaction numbers'
                                % (_shorten(text), entry.strip()))
            tag = ''
            tag_has_interval = True
            for part in parts[1:]:
                token = part.strip()
                match = _INTERVAL_RE.match(token)
                if match:
                    start = int(match.group(1))
                    end = int(match.group(2)) if match.group(2) is not None else start
                    if start < 1 or end > MAX_MYSQL_GNO or end < start:
                        raise GtidError(
                            'Invalid MySQL GTID set %r: bad interval %r in %r (transaction numbers go from 1 '
                            'to %d, the end not below the start)'
                            % (_shorten(text), token, entry.strip(), MAX_MYSQL_GNO))
                    collected.setdefault((uuid, tag), []).append((start, end))
                    tag_has_interval = True
                    continue
                if _TAG_RE.match(token.lower()):
                    if not tag_has_interval:
                        raise GtidError('Invalid MySQL GTID set %r: tag %r has no transaction numbers'
                                        % (_shorten(text), tag))
                    tag = token.lower()
                    tag_has_interval = False
                    continue
                raise GtidError('Invalid MySQL GTID set %r: %r in %r is neither an interval nor a tag'
                                % (_shorten(text), token, entry.strip()))
            if not tag_has_interval:
                raise GtidError('Invalid MySQL GTID set %r: tag %r has no transaction numbers'
                                % (_shorten(text), tag))
        return cls(collected)

    # -- views ---------------------------------------------------------------
    def keys(self):
        """The (uuid, tag) sources, sorted."""
        return sorted(self._sets)

    def intervals(self, uuid, tag=''):
        """Merged (start, end) intervals of one source (a copy)."""
        return list(self._sets.get((uuid.lower(), tag.lower()), []))

    def count(self):
        """Number of transactions in the set."""
        return sum(end - start + 1 for values in self._sets.values() for start, end in values)

    def is_empty(self):
        return not self._sets

    def __bool__(self):
        return bool(self._sets)

    __nonzero__ = __bool__

    def __eq__(self, other):
        return isinstance(other, MySQLGtidSet) and self._sets == other._sets

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __str__(self):
        entries = []
        current_uuid = None
        pieces = []
        for uuid, tag in self.keys():
            if uuid != current_uuid:
                if pieces:
                    entries.append(':'.join(pieces))
                pieces = [uuid]
                current_uuid = uuid
            if tag:
                pieces.append(tag)
            pieces.extend(_format_interval(interval) for interval in self._sets[(uuid, tag)])
        if pieces:
            entries.append(':'.join(pieces))
        return ','.join(entries)

    def __repr__(self):
        return 'MySQLGtidSet(%r)' % str(self)

    # -- set operations ------------------------------------------------------
    def subtract(self, other):
        """A new set with the transactions of this one that ``other`` lacks."""
        result = {}
        for key, values in self._sets.items():
            rest = _subtract_intervals(values, other._sets.get(key, []))
            if rest:
                result[key] = rest
        return MySQLGtidSet(result)

    def union(self, other):
        combined = dict((key, list(values)) for key, values in self._sets.items())
        for key, values in other._sets.items():
            combined.setdefault(key, []).extend(values)
        return MySQLGtidSet(combined)

    def contains(self, other):
        """True if every transaction of ``other`` is in this set."""
        return other.subtract(self).is_empty()


# ---------------------------------------------------------------------------
# MariaDB GTID positions and binlog states
# ---------------------------------------------------------------------------

class MariaDBGtid(namedtuple('MariaDBGtid', ['domain', 'server_id', 'seqno'])):
    """One MariaDB GTID, ``domain-server_id-seqno``."""

    __slots__ = ()

    def __str__(self):
        return '%d-%d-%d' % (self.domain, self.server_id, self.seqno)


class MariaDBGtidRange(namedtuple('MariaDBGtidRange', ['domain', 'server_id', 'first', 'last'])):
    """GTIDs ``first`` .. ``last`` of a domain, attributed to one server_id;
    shown as ``D-S-N`` for one GTID, ``D-S-FIRST..D-S-LAST`` for several."""

    __slots__ = ()

    def count(self):
        return self.last - self.first + 1

    def __str__(self):
        if self.first == self.last:
            return '%d-%d-%d' % (self.domain, self.server_id, self.last)
        return '%d-%d-%d..%d-%d-%d' % (self.domain, self.server_id, self.first,
                                       self.domain, self.server_id, self.last)


class MariaDBGtidRanges(object):
    """What one MariaDB value has that another lacks (``subtract``)."""

    flavor = MARIADB

    def __init__(self, ranges=()):
        self.ranges = sorted(ranges, key=lambda r: (r.domain, r.first, r.server_id))

    def count(self):
        return sum(r.count() for r in self.ranges)

    def is_empty(self):
        return not self.ranges

    def __bool__(self):
        return bool(self.ranges)

    __nonzero__ = __bool__

    def __eq__(self, other):
        return isinstance(other, MariaDBGtidRanges) and self.ranges == other.ranges

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __str__(self):
        return ','.join(str(r) for r in self.ranges)

    def __repr__(self):
        return 'MariaDBGtidRanges(%r)' % str(self)


_MARIADB_GTID_RE = re.compile(r'^(\d+)-(\d+)-(\d+)$')


class MariaDBGtidList(object):
    """A MariaDB GTID position (one GTID per domain) or binlog state (one per
    domain and server_id).

    ``str()`` gives the canonical text: GTIDs sorted by domain, then server_id,
    joined by ``,`` without spaces, e.g. ``0-1-100,1-2-5``.
    """

    flavor = MARIADB

    def __init__(self, gtids=()):
        self._seqnos = {}  # (domain, server_id) -> seqno
        for gtid in gtids:
            key = (gtid.domain, gtid.server_id)
            if key in self._seqnos and self._seqnos[key] != gtid.seqno:
                raise GtidError('Two GTIDs of domain %d and server_id %d: %d-%d-%d and %s'
                                % (gtid.domain, gtid.server_id, gtid.domain, gtid.server_id,
                                   self._seqnos[key], gtid))
            self._seqnos[key] = gtid.seqno

    # -- parsing -------------------------------------------------------------
    @classmethod
    def parse(cls, text, position=False):
        """Parse ``D-S-N[,D-S-N...]``. With ``position``, more than one GTID
        per domain is an error (a position, not a binlog state)."""
        text = _text(text)
        if not text.strip():
            return cls()
        gtids = []
        for token in text.split(','):
            token = token.strip()
            if not token:
                raise GtidError('Invalid MariaDB GTID position %r: empty entry (stray comma)' % _shorten(text))
            match = _MARIADB_GTID_RE.match(token)
            if not match:
                raise GtidError('Invalid MariaDB GTID position %r: %r is not domain-server_id-seqno '
                                '(three non-negative integers)' % (_shorten(text), token))
            domain, server_id, seqno = (int(group) for group in match.groups())
            if domain > MAX_UINT32 or server_id > MAX_UINT32 or seqno > MAX_UINT64:
                raise GtidError('Invalid MariaDB GTID position %r: %r is out of range (domain and server_id '
                                'up to %d, seqno up to %d)' % (_shorten(text), token, MAX_UINT32, MAX_UINT64))
            gtids.append(MariaDBGtid(domain, server_id, seqno))
        try:
            result = cls(gtids)
        except GtidError as exc:
            raise GtidError('Invalid MariaDB GTID position %r: %s' % (_shorten(text), exc))
        if position:
            for domain in result.domains():
                entries = result.entries(domain)
                if len(entries) > 1:
                    raise GtidError('Invalid MariaDB GTID position %r: domain %d is listed more than once (%s)'
                                    % (_shorten(text), domain, ', '.join(str(g) for g in entries)))
        return result

    # -- views ---------------------------------------------------------------
    def gtids(self):
        """All GTIDs, sorted by domain and server_id."""
        return [MariaDBGtid(d, s, n) for (d, s), n in sorted(self._seqnos.items())]

    def domains(self):
        return sorted(set(d for d, s in self._seqnos))

    def entries(self, domain):
        """GTIDs of one domain, highest sequence number first."""
        found = [MariaDBGtid(d, s, n) for (d, s), n in self._seqnos.items() if d == domain]
        return sorted(found, key=lambda g: (g.seqno, g.server_id), reverse=True)

    def last(self, domain):
        """The GTID of ``domain`` with the highest sequence number, or None."""
        found = self.entries(domain)
        return found[0] if found else None

    def max_seqno(self, domain):
        gtid = self.last(domain)
        return gtid.seqno if gtid is not None else None

    def is_position(self):
        """True if there is at most one GTID per domain."""
        return len(self.domains()) == len(self._seqnos)

    def as_position(self):
        """A position: the last GTID of each domain."""
        return MariaDBGtidList([self.last(d) for d in self.domains()])

    def is_empty(self):
        return not self._seqnos

    def __bool__(self):
        return bool(self._seqnos)

    __nonzero__ = __bool__

    def __eq__(self, other):
        return isinstance(other, MariaDBGtidList) and self._seqnos == other._seqnos

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __str__(self):
        return ','.join(str(g) for g in self.gtids())

    def __repr__(self):
        return 'MariaDBGtidList(%r)' % str(self)

    # -- ordering ------------------------------------------------------------
    def covers(self, gtid):
        """True if this value has the transaction ``gtid`` (see the module
        documentation for the rule)."""
        same_server = self._seqnos.get((gtid.domain, gtid.server_id))
        if same_server is not None:
            return same_server >= gtid.seqno
        top = self.max_seqno(gtid.domain)
        return top is not None and top > gtid.seqno

    def contains(self, other):
        return all(self.covers(gtid) for gtid in other.gtids())

    def subtract(self, other):
        """``MariaDBGtidRanges`` of what this value has and ``other`` lacks."""
        ranges = []
        for domain in self.domains():
            uncovered = [g for g in self.entries(domain) if not other.covers(g)]
            if not uncovered:
                continue
            top = uncovered[0]
            below = other.max_seqno(domain)
            if below is None:
                first = 1
            elif below < top.seqno:
                first = below + 1
            else:
                first = top.seqno
            first = min(first, top.seqno)
            ranges.append(MariaDBGtidRange(domain, top.server_id, first, top.seqno))
            for gtid in uncovered[1:]:
                if not first <= gtid.seqno <= top.seqno:
                    ranges.append(MariaDBGtidRange(domain, gtid.server_id, gtid.seqno, gtid.seqno))
        return MariaDBGtidRanges(ranges)

    def union(self, other):
        """A position with the highest GTID of each domain of both values.
        Raises ``GtidError`` when both have a different GTID with the same,
        highest sequence number in a domain (they conflict)."""
        result = []
        for domain in sorted(set(self.domains()) | set(other.domains())):
            mine, theirs = self.last(domain), other.last(domain)
            if mine is None or theirs is None:
                result.append(mine or theirs)
            elif mine.seqno == theirs.seqno and mine.server_id != theirs.server_id:
                raise GtidError('Cannot join %s and %s: two different transactions with the same sequence '
                                'number in domain %d' % (mine, theirs, domain))
            else:
                result.append(mine if mine.seqno >= theirs.seqno else theirs)
        return MariaDBGtidList(result)


# ---------------------------------------------------------------------------
# The API for both flavors
# ---------------------------------------------------------------------------

_MARIADB_TEXT_RE = re.compile(r'^[\d\s,-]+$')
_UUID_START_RE = re.compile(r'^[\s{]*[0-9a-fA-F]{8}')

_CLASSES = {MARIADB: MariaDBGtidList, MYSQL: MySQLGtidSet}


def parse_mysql(text):
    """``MySQLGtidSet`` of a MySQL GTID set text (``@@gtid_executed``,
    ``Retrieved_Gtid_Set``, ...). Whitespace and newlines around the parts
    are allowed; UUIDs may be upper case, without dashes or in braces; MySQL
    8.4 tags (``uuid:tag:1-5``) are supported."""
    return MySQLGtidSet.parse(text)


def parse_mariadb(text, position=False):
    """``MariaDBGtidList`` of a MariaDB GTID position or binlog state text
    (``@@gtid_binlog_pos``, ``@@gtid_binlog_state``, ``Gtid_IO_Pos``, ...).
    With ``position``, more than one GTID per domain is an error."""
    return MariaDBGtidList.parse(text, position=position)


def flavor_of(value):
    """``'mysql'``, ``'mariadb'`` or None (empty: either) for one value."""
    if isinstance(value, (MySQLGtidSet, MariaDBGtidList, MariaDBGtidRanges)):
        return value.flavor
    text = _text(value).strip()
    if not text:
        return None
    if _MARIADB_TEXT_RE.match(text):
        return MARIADB
    if ':' in text or _UUID_START_RE.search(text):
        return MYSQL
    raise GtidError('Invalid GTID value %r: neither a MySQL GTID set (uuid:1-5,...) nor a MariaDB GTID '
                    'position (domain-server_id-seqno,...)' % _shorten(text))


def detect_flavor(*values):
    """The flavor the values are written in (None if all are empty);
    ``GtidError`` if they mix flavors."""
    found = None
    for value in values:
        flavor = flavor_of(value)
        if flavor is None:
            continue
        if found is not None and flavor != found:
            raise GtidError('GTID values of both MySQL and MariaDB were given: %s'
                            % ', '.join(repr(_shorten(str(v))) for v in values))
        found = flavor
    return found


def _check_flavor(flavor):
    if flavor not in FLAVORS:
        raise GtidError('Unknown GTID flavor %r: use mariadb or mysql' % (flavor,))


def parse(value, flavor=None):
    """``MySQLGtidSet`` or ``MariaDBGtidList`` of a text (an already parsed
    value is returned as it is, after checking its flavor)."""
    if flavor is None:
        flavor = flavor_of(value) or MYSQL
    _check_flavor(flavor)
    if isinstance(value, (MySQLGtidSet, MariaDBGtidList)):
        if value.flavor != flavor:
            raise GtidError('A %s GTID value was given where %s was expected: %s' % (value.flavor, flavor, value))
        return value
    if isinstance(value, MariaDBGtidRanges):
        raise GtidError('GTID ranges (a subtract result) cannot be used as a position: %s' % value)
    return _CLASSES[flavor].parse(value)


def _parse_all(values, flavor):
    if flavor is None:
        flavor = detect_flavor(*values) or MYSQL
    _check_flavor(flavor)
    return [parse(value, flavor) for value in values]


def format_gtid(value, flavor=None):
    """The canonical text of a GTID set / position (``''`` when empty)."""
    return str(parse(value, flavor))


def contains(a, b, flavor=None):
    """True if ``a`` has every transaction of ``b`` (a is a superset of b)."""
    a, b = _parse_all([a, b], flavor)
    return a.contains(b)


def compare(a, b, flavor=None):
    """``'equal'``, ``'ahead'`` (a has all of b and more), ``'behind'`` (b has all of a and more) or
    ``'diverged'`` (neither contains the other)."""
    a, b = _parse_all([a, b], flavor)
    a_has_b = a.contains(b)
    b_has_a = b.contains(a)
    if a_has_b and b_has_a:
        return EQUAL
    if a_has_b:
        return AHEAD
    if b_has_a:
        return BEHIND
    return DIVERGED


def subtract(a, b, flavor=None):
    """Canonical text of what ``a`` has and ``b`` lacks, ``''`` if nothing.
    MySQL: a GTID set. MariaDB: per domain ``D-S-N`` or ``D-S-FIRST..D-S-LAST``
    (see the module documentation)."""
    a, b = _parse_all([a, b], flavor)
    return str(a.subtract(b))


def union(*values, **kwargs):
    """Canonical text of everything in any of ``values`` (``flavor=`` as a
    keyword). MySQL: the union of the sets. MariaDB: a position with the
    highest GTID of each domain."""
    flavor = kwargs.pop('flavor', None)
    if kwargs:
        raise TypeError('union() got unexpected keyword arguments: %s' % ', '.join(sorted(kwargs)))
    parsed = _parse_all(list(values), flavor)
    if not parsed:
        return ''
    result = parsed[0]
    for value in parsed[1:]:
        result = result.union(value)
    if isinstance(result, MariaDBGtidList):
        result = result.as_position()
    return str(result)


def errant(replica_executed, primary_executed, flavor=None):
    """GTIDs the replica has that the primary lacks, as canonical text
    (``''`` when none).

    Pass the replica's value first and the primary's read after it:
    MySQL ``@@gtid_executed`` of both; MariaDB ``@@gtid_binlog_pos`` of both
    (the primary's ``@@gtid_binlog_state`` is more precise), or the replica's
    ``@@gtid_binlog_pos`` and its own ``@@gtid_slave_pos`` when the primary
    cannot be reached.
    """
    return subtract(replica_executed, primary_executed, flavor)


def most_advanced(values, flavor=None):
    """Index in ``values`` of the first value that contains every other one,
    or None when there is none (the values diverged and cannot be ordered)
    or ``values`` is empty. See the module documentation for the variables
    to pass."""
    values = list(values)
    if not values:
        return None
    parsed = _parse_all(values, flavor)
    for index, candidate in enumerate(parsed):
        if all(candidate.contains(other) for other in parsed):
            return index
    return None
