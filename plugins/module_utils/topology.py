# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the cluster-level modules (failover, switchover, rejoin).

Pure Python, no database access: the modules collect the state of every
node, call one of the ``plan_*`` / ``decide_*`` functions and carry out what
it returns. Everything here can be tested with plain dicts.

Node state
----------

A node is a dict with the keys of ``NODE_DEFAULTS`` (``node_state`` fills in
the missing ones and computes ``role``):

* ``name``, ``host``, ``port``, ``replication_host``, ``replication_port``:
  how the modules and the other nodes reach it;
* ``reachable`` (bool) and ``error`` (why not);
* ``flavor`` (``mariadb`` / ``mysql``), ``server_id``, ``server_uuid``
  (MySQL), ``read_only`` (MySQL: read_only or super_read_only);
* replication as a replica: ``configured``, ``source_host``,
  ``source_port``, ``source_server_id``, ``io_running``, ``sql_running``,
  ``last_io_errno``, ``last_io_error``, ``last_sql_errno``,
  ``last_sql_error``, ``seconds_behind``;
* GTIDs (text as the server shows them):

  - ``gtid_binlog``: MariaDB ``@@gtid_binlog_pos``, MySQL ``@@gtid_executed``;
  - ``gtid_binlog_state``: MariaDB ``@@gtid_binlog_state`` (optional, more
    precise than the position for errant transactions), MySQL
    ``@@gtid_executed`` or None;
  - ``gtid_slave_pos``: MariaDB ``@@gtid_slave_pos``, None on MySQL;
  - ``gtid_received``: MariaDB ``Gtid_IO_Pos``, MySQL ``Retrieved_Gtid_Set``
    (read with the IO thread stopped);
  - ``gtid_executed``: MariaDB ``@@gtid_current_pos``, MySQL ``@@gtid_executed``;

* ``semi_sync``: the normalised semi-sync state (``mysql.SEMI_SYNC_KEYS``:
  ``source_enabled``, ``source_status``, ``replica_enabled``,
  ``replica_status``, ``wait_point``, ``yes_tx``, ``no_tx``, ...) when the node
  was last read, and ``semi_sync_before`` the same read earlier (for the old
  primary before it was fenced, for a replica before its IO thread was
  stopped), or None.

Results
-------

Every ``plan_*`` function returns a dict with ``action`` (``'failover'``,
``'switchover'``, ``'none'`` when there is nothing to do, ``'refuse'``) and
``reason`` (why, in words), plus the keys its docstring lists. Nothing raises
for a bad cluster state; ``ValueError`` is raised only for bad arguments (an
unknown node name).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible_collections.distweb.infra.plugins.module_utils import gtid as gtid_utils

MARIADB = gtid_utils.MARIADB
MYSQL = gtid_utils.MYSQL

FAILOVER = 'failover'
SWITCHOVER = 'switchover'
NONE = 'none'
REFUSE = 'refuse'

AFTER_SYNC = 'AFTER_SYNC'

# rpl_semi_sync_master_timeout / rpl_semi_sync_source_timeout from which a
# semi-sync source is called lossless (it never falls back to asynchronous
# replication): 2^32-1 ms, what the mysql_server role writes when
# mysql_server_lossless is true (its _mysql_server_lossless_timeout_ms).
LOSSLESS_TIMEOUT_MS = 4294967295


def lossless_settings(semi):
    """Whether the semi-sync settings of a node (``normalize_semi_sync``)
    make it a lossless primary when its source side is on: the wait point
    AFTER_SYNC, it waits also with no replica connected, and its timeout
    (``LOSSLESS_TIMEOUT_MS`` or more) never lets it fall back to
    asynchronous replication. Says nothing about whether the source side is
    on now."""
    return bool(semi.get('available') and semi.get('replica_enabled')
                and (semi.get('wait_point') or '') == AFTER_SYNC
                and semi.get('wait_no_replica')
                and (semi.get('timeout_ms') or 0) >= LOSSLESS_TIMEOUT_MS)


NODE_DEFAULTS = dict(
    name=None,
    host=None,
    port=3306,
    replication_host=None,
    replication_port=None,
    reachable=False,
    error=None,
    flavor=None,
    version=None,
    server_id=None,
    server_uuid=None,
    read_only=None,
    role=None,
    configured=False,
    source_host=None,
    source_port=None,
    source_server_id=None,
    io_running=False,
    sql_running=False,
    last_io_errno=0,
    last_io_error='',
    last_sql_errno=0,
    last_sql_error='',
    seconds_behind=None,
    gtid_binlog='',
    gtid_binlog_state=None,
    gtid_slave_pos=None,
    gtid_received='',
    gtid_executed='',
    semi_sync=None,
    semi_sync_before=None,
)


class _Refused(Exception):
    """Internal: stop planning with a reason."""


# ---------------------------------------------------------------------------
# Node states
# ---------------------------------------------------------------------------

def node_state(**values):
    """A node state with every key of ``NODE_DEFAULTS``; unknown keys are
    kept. ``role`` is computed when not given: ``unreachable``, ``replica``
    (replication configured), ``primary`` (writable) or ``standalone``."""
    state = dict(NODE_DEFAULTS)
    state.update(values)
    for key in ('last_io_errno', 'last_sql_errno'):
        state[key] = state[key] or 0
    for key in ('last_io_error', 'last_sql_error', 'gtid_binlog', 'gtid_received', 'gtid_executed'):
        state[key] = state[key] or ''
    if not state.get('role'):
        state['role'] = _role(state)
    return state


def _role(state):
    if not state['reachable']:
        return 'unreachable'
    if state['configured']:
        return 'replica'
    if state['read_only'] is False:
        return 'primary'
    return 'standalone'


def _normalize(nodes):
    states = [node_state(**dict(n)) for n in nodes]
    seen = set()
    for state in states:
        if not state['name']:
            raise ValueError('every node needs a name')
        if state['name'] in seen:
            raise ValueError('node name %r is given twice' % state['name'])
        seen.add(state['name'])
    return states


def _by_name(states, name, what):
    for state in states:
        if state['name'] == name:
            return state
    raise ValueError('%s %r is not one of the nodes (%s)' % (what, name, ', '.join(s['name'] for s in states)))


def cluster_flavor(nodes):
    """The flavor of the reachable nodes; ``_Refused`` when they differ."""
    flavors = sorted(set(n['flavor'] for n in nodes if n['reachable'] and n['flavor']))
    if len(flavors) > 1:
        raise _Refused('the nodes run different flavors (%s): %s' % (
            ', '.join(flavors),
            ', '.join('%s %s' % (n['name'], n['flavor']) for n in nodes if n['reachable'])))
    return flavors[0] if flavors else None


def _lower(value):
    return str(value).strip().lower() if value not in (None, '') else None


def heard_from(first, last):
    """The replicas for which their source is alive: {name: what moved}
    for each replica whose IO thread runs (``Yes``, not ``Connecting``) in
    ``last`` and whose received GTID position, source binlog position or
    heartbeat count moved between the readings ``first`` and ``last``
    ({name: ``MySQLServer.source_signs()``}). A source that is dead, hung
    or cut off from a replica sends nothing, so nothing moves."""
    heard = {}
    for name in sorted(last):
        before, after = first.get(name), last[name]
        if before is None or (after.get('io_thread') or '').lower() != 'yes':
            continue
        moved = []
        for key, label in (('gtid_received', 'received GTIDs'), ('read_position', 'binlog position read'),
                           ('heartbeats', 'heartbeats')):
            if before.get(key) is not None and after.get(key) is not None and before[key] != after[key]:
                moved.append('%s %s -> %s' % (label, before[key], after[key]))
        if moved:
            heard[name] = ', '.join(moved)
    return heard


def source_is(replica, node):
    """True if ``replica`` replicates from ``node``: its source host is the
    node's ``replication_host``, ``host`` or ``name`` and its source port the
    node's (replication) port; or, when no host matches, the server_id the
    IO thread saw is the node's."""
    if not replica['configured']:
        return False
    source_host = _lower(replica['source_host'])
    names = set(_lower(v) for v in (node.get('replication_host'), node.get('host'), node.get('name')) if v)
    ports = set(int(p) for p in (node.get('replication_port'), node.get('port')) if p)
    if source_host and source_host in names:
        return not replica['source_port'] or not ports or int(replica['source_port']) in ports
    if replica['source_server_id'] and node.get('server_id'):
        return int(replica['source_server_id']) == int(node['server_id'])
    return False


def source_of(replica, nodes):
    """The node ``replica`` replicates from, or None."""
    for node in nodes:
        if node['name'] != replica['name'] and source_is(replica, node):
            return node
    return None


def _where(replica):
    return '%s:%s' % (replica['source_host'] or '?', replica['source_port'] or '?')


# ---------------------------------------------------------------------------
# GTID views of a node
# ---------------------------------------------------------------------------

def _merge_mariadb(*values):
    """One MariaDB binlog state from several values: the highest sequence
    number of each (domain, server_id) pair of any of them."""
    seqnos = {}
    for value in values:
        if value in (None, ''):
            continue
        for gtid in gtid_utils.parse_mariadb(value).gtids():
            key = (gtid.domain, gtid.server_id)
            if key not in seqnos or seqnos[key] < gtid.seqno:
                seqnos[key] = gtid.seqno
    return gtid_utils.MariaDBGtidList([gtid_utils.MariaDBGtid(d, s, n) for (d, s), n in seqnos.items()])


def received(state, flavor):
    """Everything the node has received from its source, relay log included:
    MariaDB ``union(Gtid_IO_Pos, @@gtid_slave_pos)``, MySQL
    ``union(Retrieved_Gtid_Set, @@gtid_executed)`` (canonical text).
    Raises ``GtidError`` for malformed or conflicting values."""
    if flavor == MARIADB:
        return gtid_utils.union(state['gtid_received'], state['gtid_slave_pos'] or '', flavor=flavor)
    return gtid_utils.union(state['gtid_received'], state['gtid_executed'] or state['gtid_binlog'], flavor=flavor)


def applied(state, flavor):
    """What the node has applied: MariaDB ``@@gtid_slave_pos``, MySQL
    ``@@gtid_executed``."""
    if flavor == MARIADB:
        return gtid_utils.format_gtid(state['gtid_slave_pos'] or '', flavor)
    return gtid_utils.format_gtid(state['gtid_executed'] or state['gtid_binlog'], flavor)


def history(state, flavor):
    """What the node has in its binary log (parsed): MariaDB its
    ``gtid_binlog_state`` merged with its ``gtid_binlog_pos``, MySQL its
    ``gtid_executed``."""
    if flavor == MARIADB:
        return _merge_mariadb(state['gtid_binlog_state'], state['gtid_binlog'])
    return gtid_utils.parse_mysql(state['gtid_executed'] or state['gtid_binlog'])


def primary_history(state, flavor):
    """Everything a (new or old) primary has: MariaDB its binlog state and
    position merged with its ``gtid_slave_pos`` (a primary seeded from a copy
    has the GTIDs before the copy there only); MySQL its ``gtid_executed``."""
    if flavor == MARIADB:
        return _merge_mariadb(state['gtid_binlog_state'], state['gtid_binlog'], state['gtid_slave_pos'])
    return gtid_utils.parse_mysql(state['gtid_executed'] or state['gtid_binlog'])


def _mariadb_extra(mine, theirs):
    """What the MariaDB binlog state ``mine`` has that ``theirs`` lacks, as
    ranges. Finer than ``gtid.subtract`` where ``theirs`` has an older GTID
    of the same domain and server_id: the range then starts right after it
    (an old primary's unreplicated commits, when the new primary went on in
    the same domain)."""
    ranges = []
    for domain in mine.domains():
        for gtid in mine.entries(domain):
            if theirs.covers(gtid):
                continue
            same = [g.seqno for g in theirs.entries(domain) if g.server_id == gtid.server_id]
            top = theirs.max_seqno(domain)
            if same:
                first = same[0] + 1
            elif top is None:
                first = 1
            elif top < gtid.seqno:
                first = top + 1
            else:
                first = gtid.seqno
            ranges.append(gtid_utils.MariaDBGtidRange(domain, gtid.server_id, min(first, gtid.seqno), gtid.seqno))
    return str(gtid_utils.MariaDBGtidRanges(ranges))


def _own_mysql_gtids(state):
    """The GTIDs of a MySQL node's gtid_executed written by the node itself
    (its own server_uuid)."""
    executed = gtid_utils.parse_mysql(state['gtid_executed'] or state['gtid_binlog'])
    uuid = _lower(state['server_uuid'])
    if not uuid:
        return gtid_utils.MySQLGtidSet()
    own = {}
    for key in executed.keys():
        if key[0] == uuid:
            own[key] = executed.intervals(key[0], key[1])
    return gtid_utils.MySQLGtidSet(own)


def errant(state, flavor, reference=None, others=()):
    """GTIDs the node wrote itself that its primary lacks (canonical text,
    ``''`` when none).

    ``reference`` is the state of the (old) primary when it can be read: the
    node's binlog is compared with everything the primary has. Without it:

    * MariaDB: the node's binlog against what it received from its primary
      (``Gtid_IO_Pos`` joined with ``gtid_slave_pos``): the binlog GTIDs
      replication did not bring. Not ``gtid_slave_pos`` alone, which a
      replica applying its relay log updates just after the binlog, so that
      a busy replica would look errant while it applies;
    * MySQL: the GTIDs with the node's own server_uuid that none of
      ``others`` (the other reachable nodes) has; a node that was primary
      before keeps its old GTIDs on every node it replicated to.
    """
    if reference is not None and reference['reachable']:
        return gtid_utils.subtract(history(state, flavor), primary_history(reference, flavor), flavor=flavor)
    if flavor == MARIADB:
        return gtid_utils.subtract(history(state, flavor), received(state, flavor), flavor=flavor)
    own = _own_mysql_gtids(state)
    if own.is_empty():
        return ''
    seen = gtid_utils.MySQLGtidSet()
    for other in others:
        if other['name'] == state['name'] or not other['reachable']:
            continue
        seen = seen.union(gtid_utils.parse_mysql(other['gtid_executed'] or other['gtid_binlog']))
        seen = seen.union(gtid_utils.parse_mysql(other['gtid_received']))
    return str(own.subtract(seen))


def clean_received(state, flavor, errant_text):
    """``received`` less the node's errant GTIDs (MySQL, where gtid_executed
    holds them; MariaDB positions never do)."""
    value = received(state, flavor)
    if flavor == MYSQL and errant_text:
        value = gtid_utils.subtract(value, errant_text, flavor=flavor)
    return value


def _join(values, flavor):
    """Union of GTID texts, or the texts joined when they cannot be united
    (conflicting MariaDB positions)."""
    values = [v for v in values if v]
    if not values:
        return ''
    try:
        return gtid_utils.union(*values, flavor=flavor)
    except gtid_utils.GtidError:
        return ','.join(values)


# ---------------------------------------------------------------------------
# Semi-sync
# ---------------------------------------------------------------------------

def _count(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def semi_sync_verdict(old_primary, replicas, unreachable=()):
    """Was lossless semi-sync active on the old primary when it stopped?

    Returns a dict: ``active`` (bool), ``source`` (``'old primary'`` or
    ``'settings'``: where the evidence comes from), ``reason`` (in words)
    and ``unverified`` (nodes that could not be read and may hold an
    acknowledged commit the others lack).

    * Reachable old primary: its state read before it was fenced
      (``semi_sync_before``, else ``semi_sync``) must show the source side
      enabled (``source_enabled``) and active (``source_status``), the wait
      point must not be ``AFTER_COMMIT``, and its ``no_tx`` counter (commits
      not acknowledged by a replica) must not have grown between the two
      reads, unless its settings are ``lossless_settings`` and its source
      side is still on (then no_tx grows only for sessions killed while they
      waited, whose clients got an error: measured on MariaDB 10.11, KILL of
      a session waiting for an acknowledgement commits it locally and counts
      it in no_tx; switching the source side off would acknowledge them).
    * Unreachable old primary: what its replicas report of their semi-sync
      link proves nothing (``Rpl_semi_sync_slave_status`` stays ON while the
      IO thread retries, also after the primary fell back to asynchronous
      replication). The nodes are set up alike, so the settings of the
      reachable ``replicas`` stand for the old primary's: each must be
      ``lossless_settings`` (AFTER_SYNC, waiting with no replica, never
      falling back). Such a primary acknowledges a commit only once a
      replica has it, so every acknowledged commit is on some replica, and
      then every node in ``unreachable`` (names of the other nodes that
      could not be read) may hold the last of them: there must be none.
    """
    if old_primary is not None and old_primary['reachable']:
        before = old_primary['semi_sync_before'] or old_primary['semi_sync']
        after = old_primary['semi_sync'] or before
        if not before:
            return _verdict(False, 'old primary',
                            'the semi-sync state of the old primary %s could not be read' % old_primary['name'])
        if not before.get('source_enabled'):
            return _verdict(False, 'old primary',
                            'semi-sync replication is not enabled on the old primary %s (asynchronous '
                            'replication: acknowledged commits may exist on it only)' % old_primary['name'])
        if not before.get('source_status'):
            return _verdict(False, 'old primary',
                            'semi-sync replication on the old primary %s fell back to asynchronous replication '
                            '(status OFF): acknowledged commits may exist on it only' % old_primary['name'])
        wait_point = (before.get('wait_point') or '').upper()
        if wait_point and wait_point != AFTER_SYNC:
            return _verdict(False, 'old primary',
                            'the old primary %s waits for replicas at %s, not AFTER_SYNC: other clients may '
                            'have seen commits no replica has' % (old_primary['name'], wait_point))
        no_before, no_after = _count(before.get('no_tx')), _count(after.get('no_tx'))
        # A lossless source never acknowledges without a replica: its no_tx
        # grows only when a session waiting for an acknowledgement is killed
        # (as fencing does), and that client got an error, not an OK.
        if no_before is not None and no_after is not None and no_after > no_before \
                and not (lossless_settings(before) and after.get('source_enabled')):
            return _verdict(False, 'old primary',
                            'the old primary %s acknowledged %d commit(s) without a replica while it was '
                            'fenced (no_tx %d -> %d)' % (old_primary['name'], no_after - no_before,
                                                         no_before, no_after))
        if after.get('source_enabled') is False or after.get('source_status') is False:
            if no_before is None or no_after is None:
                return _verdict(False, 'old primary',
                                'semi-sync replication on the old primary %s went off while it was fenced'
                                % old_primary['name'])
        return _verdict(True, 'old primary',
                        'semi-sync replication was active on the old primary %s (%s)'
                        % (old_primary['name'], wait_point or 'wait point unknown'))

    name = old_primary['name'] if old_primary is not None else 'the old primary'
    if not replicas:
        return _verdict(False, 'settings', '%s cannot be read and no reachable replica replicated from it' % name)
    unsafe = []
    for replica in replicas:
        semi = replica['semi_sync_before'] or replica['semi_sync'] or {}
        if not lossless_settings(semi):
            unsafe.append('%s (%s)' % (replica['name'], _settings_text(semi)))
    if unsafe:
        return _verdict(False, 'settings',
                        '%s cannot be read and the cluster is not set up for lossless semi-sync: %s. Such a '
                        'primary may have fallen back to asynchronous replication and acknowledged commits no '
                        'replica has' % (name, '; '.join(unsafe)))
    if unreachable:
        return _verdict(False, 'settings',
                        '%s cannot be read, and neither can %s, which may hold the last acknowledged commit '
                        '(a lossless primary acknowledges a commit once one replica has it): promoting another '
                        'node could lose it. Bring %s back first' % (name, ', '.join(unreachable),
                                                                     'it' if len(unreachable) == 1 else 'them'),
                        unverified=list(unreachable))
    return _verdict(True, 'settings',
                    '%s cannot be read; the cluster is set up for lossless semi-sync (never falls back to '
                    'asynchronous replication) and every other node was read, so each acknowledged commit is on '
                    'one of %s' % (name, ', '.join(r['name'] for r in replicas)))


def _verdict(active, source, reason, unverified=()):
    return dict(active=active, source=source, reason=reason, unverified=list(unverified))


def _settings_text(semi):
    if not semi or not semi.get('available'):
        return 'semi-sync not available'
    if not semi.get('replica_enabled'):
        return 'not a semi-sync replica'
    parts = []
    if (semi.get('wait_point') or '') != AFTER_SYNC:
        parts.append('wait point %s' % (semi.get('wait_point') or 'unknown'))
    if not semi.get('wait_no_replica'):
        parts.append('does not wait with no replica connected')
    if (semi.get('timeout_ms') or 0) < LOSSLESS_TIMEOUT_MS:
        parts.append('falls back to asynchronous replication after %s ms' % semi.get('timeout_ms'))
    return ', '.join(parts) or 'lossless'


# ---------------------------------------------------------------------------
# Finding the primary
# ---------------------------------------------------------------------------

def _replicas_of(states, primary):
    return [s for s in states if s['reachable'] and s['name'] != primary['name'] and source_is(s, primary)]


def find_primary(nodes, primary=None):
    """The name of the primary: ``primary`` when given (it must be a node),
    else the node the reachable replicas replicate from.
    ``(name, None)`` or ``(None, reason)``."""
    states = _normalize(nodes)
    if primary:
        _by_name(states, primary, 'primary')
        return primary, None
    replicas = [s for s in states if s['reachable'] and s['configured']]
    if not replicas:
        writable = [s for s in states if s['reachable'] and s['read_only'] is False]
        if len(writable) == 1:
            return writable[0]['name'], None
        return None, 'no reachable node is a replica, so the primary cannot be told; name it in primary'
    sources = {}
    unknown = []
    for replica in replicas:
        source = source_of(replica, states)
        if source is None:
            unknown.append('%s replicates from %s, which is not one of the nodes' % (replica['name'], _where(replica)))
            continue
        sources.setdefault(source['name'], []).append(replica['name'])
    top = [name for name in sources if not _by_name(states, name, 'node')['configured']]
    if len(top) == 1:
        return top[0], None
    if not sources:
        return None, '; '.join(unknown)
    if len(top) > 1:
        return None, 'the replicas replicate from different primaries (%s)' % '; '.join(
            '%s from %s' % (', '.join(sorted(sources[name])), name) for name in sorted(top))
    return None, 'every source of the replicas is a replica itself (%s)' % ', '.join(sorted(sources))


def _other_writable(states, old):
    return [s for s in states
            if s['name'] != old['name'] and s['reachable'] and s['read_only'] is False and not s['configured']]


# ---------------------------------------------------------------------------
# Failover
# ---------------------------------------------------------------------------

def _exclude(excluded, state, reason):
    excluded.append(dict(name=state['name'], reason=reason))


def _candidate_problem(state, old, flavor):
    """Why a node other than the old primary can be neither promoted nor
    re-pointed, or None."""
    if not state['reachable']:
        return 'unreachable: %s' % (state['error'] or 'no connection')
    if state['flavor'] and flavor and state['flavor'] != flavor:
        return 'runs %s, the cluster %s' % (state['flavor'], flavor)
    if not state['configured']:
        return 'not a replica (no replication configured)'
    if not source_is(state, old):
        return 'replicates from %s, not from the old primary %s' % (_where(state), old['name'])
    if state['last_sql_errno']:
        return 'its SQL thread stopped with error %s: %s' % (state['last_sql_errno'], state['last_sql_error'])
    if not state['sql_running']:
        return 'its SQL thread is not running'
    return None


def _order_problem(states, values, flavor):
    """A pair that cannot be ordered, in words."""
    for i in range(len(states)):
        for j in range(i + 1, len(states)):
            if gtid_utils.compare(values[i], values[j], flavor=flavor) == gtid_utils.DIVERGED:
                return '%s has %s that %s lacks and %s has %s that %s lacks' % (
                    states[i]['name'], gtid_utils.subtract(values[i], values[j], flavor=flavor), states[j]['name'],
                    states[j]['name'], gtid_utils.subtract(values[j], values[i], flavor=flavor), states[i]['name'])
    return 'their GTID sets cannot be ordered'


def _choose(healthy, values, flavor, preferred, notes):
    """(candidate index, top indexes) of the most advanced healthy replica."""
    best = gtid_utils.most_advanced(values, flavor=flavor)
    if best is None:
        return None, []
    top = [i for i, value in enumerate(values)
           if gtid_utils.compare(value, values[best], flavor=flavor) == gtid_utils.EQUAL]
    if preferred is not None:
        for i in top:
            if healthy[i]['name'] == preferred:
                notes.append('the preferred candidate %s is the most advanced replica' % preferred)
                return i, top
    # among equals, the one that has applied most (the shortest catch-up)
    applied_values = [applied(healthy[i], flavor) for i in top]
    most = gtid_utils.most_advanced(applied_values, flavor=flavor)
    return top[most if most is not None else 0], top


def plan_failover(nodes, primary=None, preferred=None, allow_data_loss=False, settled=True):
    """Decide a failover.

    ``nodes``: node states (see the module documentation); ``primary``: the
    name of the failed (old) primary, else the node the replicas replicate
    from; ``preferred``: name of a replica to promote if it is among the most
    advanced; ``allow_data_loss``: proceed although semi-sync was not active
    or GTIDs that a node holds would not be on the new primary; ``settled``:
    false for states read while the positions may still move (old primary
    not fenced, IO threads running: a first look, or check mode), when the
    GTIDs the candidate lacks are only noted, not refused or reported.

    Returns a dict: ``action`` (``failover``, ``none``, ``refuse``),
    ``reason``, ``old_primary`` (name or None), ``old_primary_reachable``,
    ``primary_given``, ``candidate`` (name or None), ``wait_position`` (the
    candidate's received GTIDs: what it must apply before promotion),
    ``repoint`` (names of the replicas to re-point, in node order),
    ``stop_io`` (names of the reachable replicas of the old primary),
    ``excluded`` (list of ``{name, reason}``), ``lost_gtids`` (GTIDs the old
    primary, if reachable, or another reachable node has that the candidate
    lacks; ``''`` when none), ``semi_sync`` (``semi_sync_verdict``),
    ``preferred_honoured`` (bool or None), ``notes`` and ``warnings``
    (lists of text), ``positions`` ({name: received GTIDs}).

    Rules, in order:

    * a node other than the old primary that is writable and not a replica
      means a failover already happened (``none``, when every reachable
      replica replicates from it) or two primaries (``refuse``);
    * without ``primary``, a reachable, writable detected primary whose
      replicas' IO threads are connected needs no failover (``none``);
    * unreachable nodes, nodes that are not replicas of the old primary,
      replicas whose SQL thread stopped (with an error or not) and replicas
      with errant transactions are excluded; none left -> ``refuse``;
    * the received GTIDs of the others must be in one line
      (``gtid.most_advanced``), else ``refuse`` (possible split brain);
    * the most advanced is chosen; ``preferred`` only when it is among the
      most advanced (catching a preferred replica up from the most advanced
      one first is not done); among equals the one that applied most;
    * semi-sync not active on the old primary -> ``refuse`` unless
      ``allow_data_loss``;
    * GTIDs the old primary (reachable) or any other reachable node has and
      the candidate lacks -> ``refuse`` unless ``allow_data_loss``; they are
      reported in ``lost_gtids``.
    """
    states = _normalize(nodes)
    plan = dict(action=REFUSE, reason=None, old_primary=None, old_primary_reachable=False,
                primary_given=bool(primary), candidate=None, wait_position='', repoint=[], stop_io=[],
                excluded=[], lost_gtids='', semi_sync=None, preferred_honoured=None, notes=[], warnings=[],
                positions={})
    if preferred is not None:
        _by_name(states, preferred, 'preferred_candidate')
    return _refusable(plan, _plan_failover, states, plan, primary, preferred, allow_data_loss, settled)


def _refusable(plan, decide, *args):
    """``decide(*args)``, or ``plan`` turned into a refusal with the reason
    when it raises ``_Refused`` or meets unusable GTID values."""
    try:
        return decide(*args)
    except _Refused as exc:
        plan.update(action=REFUSE, reason=str(exc))
    except gtid_utils.GtidError as exc:
        plan.update(action=REFUSE, reason='GTID values cannot be used: %s' % exc)
    return plan


def _plan_failover(states, plan, primary, preferred, allow_data_loss, settled):
    flavor = cluster_flavor(states)
    old_name, problem = find_primary(states, primary)
    if old_name is None:
        raise _Refused('cannot tell the old primary: %s' % problem)
    old = _by_name(states, old_name, 'primary')
    plan['old_primary'] = old_name
    plan['old_primary_reachable'] = bool(old['reachable'])

    # a primary elsewhere already?
    writable = _other_writable(states, old)
    if writable:
        names = ', '.join(s['name'] for s in writable)
        if len(writable) == 1 and not (old['reachable'] and old['read_only'] is False):
            new = writable[0]
            lagging = [s['name'] for s in states
                       if s['reachable'] and s['configured'] and s['name'] != new['name'] and not source_is(s, new)]
            if not lagging:
                plan.update(action=NONE, candidate=new['name'],
                            reason='%s is already the writable primary and every reachable replica replicates from '
                                   'it: the failover from %s is done' % (new['name'], old_name))
                return plan
            raise _Refused('%s is writable and not a replica, but %s still replicate(s) from elsewhere: a previous '
                           'failover did not finish; re-point them (distweb.infra.mysql_rejoin) or make %s read-only'
                           % (new['name'], ', '.join(lagging), new['name']))
        raise _Refused('more than one writable primary: %s%s are writable and not replicas. Make all but one '
                       'read-only by hand first' % (names, (' and the old primary %s' % old_name)
                                                    if old['reachable'] and old['read_only'] is False else ''))

    if old['reachable'] and old['configured']:
        raise _Refused('%s is a replica itself (of %s), not a primary' % (old_name, _where(old)))

    replicas_of_old = _replicas_of(states, old)
    plan['stop_io'] = [s['name'] for s in replicas_of_old]
    if not primary and old['reachable'] and old['read_only'] is False:
        connected = [s['name'] for s in replicas_of_old if s['io_running']]
        if connected:
            plan.update(action=NONE,
                        reason='the primary %s is reachable and writable and %s replicate(s) from it: nothing to fail '
                               'over (name it in primary to force a failover, or use distweb.infra.mysql_switchover)'
                               % (old_name, ', '.join(connected)))
            return plan
        # alive and writable, only its replication is broken: a failover
        # would throw away a working primary (and whatever it has that the
        # replicas lack)
        raise _Refused('the primary %s answers and is writable; only its replicas are not connected to it (IO '
                       'threads: %s): repair replication (START SLAVE on them, see playbooks/status.yml) instead. '
                       'Name it in primary to fail over all the same'
                       % (old_name, ', '.join('%s %s' % (s['name'], s['io_thread'] or 'No') for s in replicas_of_old)
                          or 'none replicates from it'))
    if not old['reachable']:
        plan['warnings'].append('the old primary %s is unreachable (%s) and cannot be fenced: make sure it cannot '
                                'take writes (the nodes start read-only after a restart)'
                                % (old_name, old['error'] or 'no connection'))

    # exclusions
    excluded = plan['excluded']
    healthy = []
    errants = {}
    others = [s for s in states if s['name'] != old_name]
    for state in others:
        problem = _candidate_problem(state, old, flavor)
        if problem is None or state['reachable']:
            try:
                found = errant(state, flavor, reference=old, others=others)
            except gtid_utils.GtidError as exc:
                found = None
                problem = problem or 'its GTIDs cannot be used: %s' % exc
            if found:
                errants[state['name']] = found
                problem = problem or 'errant transactions (GTIDs the old primary never had): %s' % found
        if problem:
            _exclude(excluded, state, problem)
        else:
            healthy.append(state)
        if state['reachable'] and not state['read_only'] and state['configured']:
            plan['warnings'].append('%s is a writable replica (read_only=0): only the primary should take writes'
                                    % state['name'])
    if not healthy:
        raise _Refused('no healthy replica to promote: %s' % (
            '; '.join('%s: %s' % (e['name'], e['reason']) for e in excluded) or 'there are no other nodes'))

    values = []
    ordered = []
    for state in healthy:
        try:
            values.append(received(state, flavor))
            ordered.append(state)
        except gtid_utils.GtidError as exc:
            _exclude(excluded, state, 'its received GTIDs conflict: %s' % exc)
    healthy = ordered
    if not healthy:
        raise _Refused('no healthy replica to promote: %s' % '; '.join(
            '%s: %s' % (e['name'], e['reason']) for e in excluded))
    plan['positions'] = dict((s['name'], v) for s, v in zip(healthy, values))

    notes = plan['notes']
    index, top = _choose(healthy, values, flavor, preferred, notes)
    if index is None:
        raise _Refused('the replicas cannot be put in one line, %s: possible split brain or errant writes; '
                       'nothing was promoted' % _order_problem(healthy, values, flavor))
    candidate = healthy[index]
    if preferred is not None:
        plan['preferred_honoured'] = candidate['name'] == preferred
        if candidate['name'] != preferred:
            pref = _by_name(states, preferred, 'preferred_candidate')
            why = [e['reason'] for e in excluded if e['name'] == preferred]
            if preferred == old_name:
                why = ['it is the old primary']
            elif not why:
                missing = gtid_utils.subtract(values[index], plan['positions'][pref['name']], flavor=flavor)
                why = ['it lacks %s that %s received (catching it up from another replica first is not done)'
                       % (missing, candidate['name'])]
            notes.append('the preferred candidate %s is not promoted: %s' % (preferred, why[0]))
    plan['candidate'] = candidate['name']
    plan['wait_position'] = values[index]
    plan['repoint'] = [s['name'] for s in healthy if s['name'] != candidate['name']]
    if len(top) > 1:
        notes.append('%s are equally advanced' % ', '.join(healthy[i]['name'] for i in top))

    # semi-sync
    verdict = semi_sync_verdict(old, [s for s in replicas_of_old if s['name'] not in errants],
                                unreachable=[s['name'] for s in others if not s['reachable']])
    plan['semi_sync'] = verdict
    refusals = []
    if not verdict['active']:
        if allow_data_loss:
            lost_with = ('; acknowledged commits that only %s received are lost (a rejoin of %s names them as '
                         'extra GTIDs and refuses it)' % (', '.join(verdict['unverified']),
                                                          'it' if len(verdict['unverified']) == 1 else 'them')
                         if verdict['unverified'] else '')
            plan['warnings'].append('%s; going on because allow_data_loss is set%s' % (verdict['reason'], lost_with))
        else:
            refusals.append('%s. Set allow_data_loss to fail over all the same' % verdict['reason'])

    # GTIDs the candidate would not have
    lost = []
    holders = []
    if old['reachable']:
        missing = gtid_utils.subtract(old['gtid_binlog'], values[index], flavor=flavor)
        if missing:
            lost.append(missing)
            holders.append('the old primary %s has %s that no replica received (use '
                           'distweb.infra.mysql_switchover while it is up: it waits for the replicas)'
                           % (old_name, missing))
    for state in others:
        if state['name'] == candidate['name'] or not state['reachable']:
            continue
        try:
            theirs = clean_received(state, flavor, errants.get(state['name']))
        except gtid_utils.GtidError:
            continue
        missing = gtid_utils.subtract(theirs, values[index], flavor=flavor)
        if missing:
            lost.append(missing)
            holders.append('%s has %s that the candidate %s lacks' % (state['name'], missing, candidate['name']))
    if holders and not settled:
        notes.append('for now %s; checked again once the old primary is fenced and the IO threads are stopped'
                     % '; '.join(holders))
        holders = []
        lost = []
    plan['lost_gtids'] = _join(lost, flavor)
    if holders:
        if allow_data_loss:
            plan['warnings'].append('GTIDs will be lost: %s; going on because allow_data_loss is set'
                                    % '; '.join(holders))
        else:
            refusals.append('the candidate %s would lose GTIDs: %s. Set allow_data_loss to fail over all the same'
                            % (candidate['name'], '; '.join(holders)))
    if refusals:
        raise _Refused('; '.join(refusals))

    plan['action'] = FAILOVER
    plan['reason'] = 'promote %s, the most advanced healthy replica (%s)%s' % (
        candidate['name'], values[index] or 'no GTIDs',
        ', and re-point %s' % ', '.join(plan['repoint']) if plan['repoint'] else '')
    return plan


# ---------------------------------------------------------------------------
# Switchover
# ---------------------------------------------------------------------------

def plan_switchover(nodes, target=None, max_lag=None):
    """Decide a planned switchover from the current primary to ``target``
    (a name) or, without it, to the most advanced healthy replica.

    Returns a dict: ``action`` (``switchover``, ``none``, ``refuse``),
    ``reason``, ``old_primary``, ``target``, ``repoint`` (names of the
    other healthy replicas), ``excluded`` (list of ``{name, reason}``: left
    as they are, still replicating from the old primary, which becomes a
    replica of the target), ``notes`` and ``warnings``.

    The primary must be reachable (else use a failover) and the only
    writable node; the target must be a reachable replica of it with both
    threads running, no errant transactions, and at most ``max_lag``
    seconds behind (``Seconds_Behind_Master``) when given. A target that is
    already the writable primary, with every reachable replica replicating
    from it, gives ``none``.
    """
    states = _normalize(nodes)
    plan = dict(action=REFUSE, reason=None, old_primary=None, target=None, repoint=[], excluded=[], notes=[],
                warnings=[])
    if target is not None:
        _by_name(states, target, 'target')
    return _refusable(plan, _plan_switchover, states, plan, target, max_lag)


def _switchover_problem(state, primary, flavor):
    problem = _candidate_problem(state, primary, flavor)
    if problem:
        return problem
    if state['last_io_errno'] or not state['io_running']:
        return 'its IO thread is not connected to %s%s' % (
            primary['name'], (' (error %s: %s)' % (state['last_io_errno'], state['last_io_error']))
            if state['last_io_errno'] else '')
    return None


def _plan_switchover(states, plan, target, max_lag):
    flavor = cluster_flavor(states)
    writable = [s for s in states if s['reachable'] and s['read_only'] is False and not s['configured']]
    primary_name, problem = find_primary(states)
    if target is not None:
        tgt = _by_name(states, target, 'target')
        if tgt['reachable'] and tgt['read_only'] is False and not tgt['configured'] and len(writable) == 1:
            elsewhere = [s['name'] for s in states
                         if s['reachable'] and s['configured'] and not source_is(s, tgt)]
            if not elsewhere:
                plan.update(action=NONE, old_primary=target, target=target,
                            reason='%s is already the primary' % target)
                return plan
    if primary_name is None:
        raise _Refused('cannot tell the primary: %s' % problem)
    primary = _by_name(states, primary_name, 'primary')
    plan['old_primary'] = primary_name
    if not primary['reachable']:
        raise _Refused('the primary %s is unreachable (%s): use distweb.infra.mysql_failover'
                       % (primary_name, primary['error'] or 'no connection'))
    if len(writable) > 1:
        raise _Refused('more than one writable primary: %s' % ', '.join(s['name'] for s in writable))
    if writable and writable[0]['name'] != primary_name:
        raise _Refused('%s is writable but the replicas replicate from %s' % (writable[0]['name'], primary_name))
    if primary['read_only'] is not False:
        plan['warnings'].append('the primary %s is already read-only (an interrupted switchover?)' % primary_name)
    if target == primary_name:
        plan.update(action=NONE, target=target, reason='%s is already the primary' % target)
        return plan

    healthy = []
    for state in states:
        if state['name'] == primary_name:
            continue
        problem = _switchover_problem(state, primary, flavor)
        if problem is None:
            found = errant(state, flavor, reference=primary)
            if found:
                problem = 'errant transactions (GTIDs the primary lacks): %s' % found
        if problem:
            _exclude(plan['excluded'], state, problem)
        else:
            healthy.append(state)
    if target is not None:
        reasons = [e['reason'] for e in plan['excluded'] if e['name'] == target]
        if reasons:
            raise _Refused('the target %s cannot be promoted: %s' % (target, reasons[0]))
        chosen = _by_name(states, target, 'target')
    else:
        if not healthy:
            raise _Refused('no healthy replica to promote: %s' % (
                '; '.join('%s: %s' % (e['name'], e['reason']) for e in plan['excluded']) or 'no replicas'))
        values = [received(s, flavor) for s in healthy]
        index, dummy = _choose(healthy, values, flavor, None, plan['notes'])
        if index is None:
            raise _Refused('the replicas cannot be put in one line, %s' % _order_problem(healthy, values, flavor))
        chosen = healthy[index]
    lag = chosen['seconds_behind']
    if max_lag is not None and lag is not None and lag > max_lag:
        raise _Refused('the target %s is %s s behind the primary, more than the %s s writes may be blocked'
                       % (chosen['name'], lag, max_lag))
    plan['target'] = chosen['name']
    plan['repoint'] = [s['name'] for s in healthy if s['name'] != chosen['name']]
    for entry in plan['excluded']:
        state = _by_name(states, entry['name'], 'node')
        if state['reachable'] and source_is(state, primary):
            plan['warnings'].append('%s is left as it is (%s); it keeps replicating from %s, which becomes a '
                                    'replica of %s' % (state['name'], entry['reason'], primary_name, chosen['name']))
    plan['action'] = SWITCHOVER
    plan['reason'] = 'switch the primary from %s to %s%s' % (
        primary_name, chosen['name'], ', re-point %s' % ', '.join(plan['repoint']) if plan['repoint'] else '')
    return plan


# ---------------------------------------------------------------------------
# Rejoin
# ---------------------------------------------------------------------------

def decide_rejoin(node, primary):
    """May ``node`` (for example an old primary that came back) replicate
    from ``primary``?

    Only if everything in its binary log is in what the primary has
    (MariaDB: the node's ``gtid_binlog_state``/``gtid_binlog_pos`` against
    the primary's binlog state, position and ``gtid_slave_pos``; MySQL:
    ``gtid_executed`` of both). Pass the node's state read before the
    primary's.

    Returns a dict: ``ok`` (bool), ``extra_gtids`` (what the node has and the
    primary lacks, ``''`` when none), ``comparison`` (node against primary:
    ``equal``, ``behind``, ``ahead``, ``diverged``), ``start_position``
    (MariaDB: the ``gtid_slave_pos`` to set before replicating: the node's
    ``gtid_binlog_pos``, or its union with the old ``gtid_slave_pos`` when the
    binlog lacks some of it; None on MySQL) and ``reason``.
    """
    node = node_state(**dict(node))
    primary = node_state(**dict(primary))
    result = dict(ok=False, extra_gtids='', comparison=None, start_position=None, reason=None)
    if node['flavor'] and primary['flavor'] and node['flavor'] != primary['flavor']:
        result['reason'] = '%s runs %s and %s runs %s' % (node['name'], node['flavor'], primary['name'],
                                                          primary['flavor'])
        return result
    flavor = node['flavor'] or primary['flavor'] or gtid_utils.detect_flavor(
        node['gtid_binlog'], primary['gtid_binlog']) or MARIADB
    try:
        mine = history(node, flavor)
        theirs = primary_history(primary, flavor)
        if flavor == MARIADB:
            extra = _mariadb_extra(mine, theirs)
        else:
            extra = gtid_utils.subtract(mine, theirs, flavor=flavor)
        result['comparison'] = gtid_utils.compare(mine, theirs, flavor=flavor)
        if flavor == MARIADB:
            binlog = gtid_utils.format_gtid(node['gtid_binlog'], flavor)
            slave_pos = node['gtid_slave_pos'] or ''
            if gtid_utils.contains(binlog, slave_pos, flavor=flavor):
                result['start_position'] = binlog
            else:
                result['start_position'] = gtid_utils.union(binlog, slave_pos, flavor=flavor)
    except gtid_utils.GtidError as exc:
        result['reason'] = 'the GTIDs of %s and %s cannot be compared: %s' % (node['name'], primary['name'], exc)
        return result
    result['extra_gtids'] = extra
    if extra:
        result['reason'] = ('%s has GTIDs that %s does not have: %s. It has diverged (writes that were never '
                            'replicated) and must be rebuilt from a copy of the primary, not rejoined'
                            % (node['name'], primary['name'], extra))
        return result
    result['ok'] = True
    result['reason'] = '%s has nothing that %s lacks (%s)' % (node['name'], primary['name'], result['comparison'])
    return result
