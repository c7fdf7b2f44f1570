# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a MySQL/MariaDB server, and waiting for it.

The one place for:

* reading replication status, semi-sync state and the replicas connected to
  a server into one set of keys for both flavors (``normalize_*``,
  ``STATUS_KEYS``, ``SEMI_SYNC_KEYS``, ``REPLICA_HOST_KEYS``) and comparing
  a status with wanted settings (``compare_replica_settings``);
* ``MySQLServer``: a connection (from ``mysql_connection``) with the queries
  the modules share, in the SQL of the server's dialect (``mysql_dialect``);
* waiting for the replication threads (``wait_for_replica``,
  ``replica_problem``) and for a GTID position (``wait_for_gtid_position``),
  on the clock of ``monotonic`` and ``pause``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math
import time

from ansible_collections.distweb.infra.plugins.module_utils import topology
from ansible_collections.distweb.infra.plugins.module_utils.mysql_connection import MySQLError
from ansible_collections.distweb.infra.plugins.module_utils.mysql_dialect import (
    CHANGE_SOURCE_KEYS,
    Statement,
    dialect_for_version,
)

# Seconds both replication threads must keep running after a START before
# the modules call replication healthy.
START_SETTLE_SECONDS = 1.0


# ---------------------------------------------------------------------------
# Status normalisation
# ---------------------------------------------------------------------------

# normalised key -> candidate column names (lower case), MariaDB's first.
STATUS_COLUMNS = {
    'source_host': ('master_host', 'source_host'),
    'source_port': ('master_port', 'source_port'),
    'source_user': ('master_user', 'source_user'),
    'source_server_id': ('master_server_id', 'source_server_id'),
    'io_state': ('slave_io_state', 'replica_io_state'),
    'io_thread': ('slave_io_running', 'replica_io_running'),
    'sql_thread': ('slave_sql_running', 'replica_sql_running'),
    'sql_state': ('slave_sql_running_state', 'replica_sql_running_state'),
    'connect_retry': ('connect_retry',),
    'sql_delay': ('sql_delay',),
    'sql_remaining_delay': ('sql_remaining_delay',),
    'ssl': ('master_ssl_allowed', 'source_ssl_allowed'),
    'ssl_ca': ('master_ssl_ca_file', 'source_ssl_ca_file'),
    'ssl_cert': ('master_ssl_cert', 'source_ssl_cert'),
    'ssl_key': ('master_ssl_key', 'source_ssl_key'),
    'ssl_verify_server_cert': ('master_ssl_verify_server_cert', 'source_ssl_verify_server_cert'),
    'last_io_errno': ('last_io_errno',),
    'last_io_error': ('last_io_error',),
    'last_sql_errno': ('last_sql_errno',),
    'last_sql_error': ('last_sql_error',),
    'seconds_behind': ('seconds_behind_master', 'seconds_behind_source'),
    'source_log_file': ('master_log_file', 'source_log_file'),
    'read_source_log_pos': ('read_master_log_pos', 'read_source_log_pos'),
    'relay_source_log_file': ('relay_master_log_file', 'relay_source_log_file'),
    'exec_source_log_pos': ('exec_master_log_pos', 'exec_source_log_pos'),
    'gtid_io_pos': ('gtid_io_pos', 'retrieved_gtid_set'),
    'executed_gtid_set': ('executed_gtid_set',),
}

# Keys of a normalised status, for documentation and tests.
STATUS_KEYS = (
    'configured', 'flavor', 'source_host', 'source_port', 'source_user', 'source_server_id',
    'io_state', 'io_thread', 'io_running', 'sql_thread', 'sql_running', 'sql_state',
    'using_gtid', 'auto_position', 'gtid_io_pos', 'executed_gtid_set',
    'connect_retry', 'heartbeat_period', 'sql_delay', 'sql_remaining_delay',
    'ssl', 'ssl_ca', 'ssl_cert', 'ssl_key', 'ssl_verify_server_cert',
    'last_io_errno', 'last_io_error', 'last_sql_errno', 'last_sql_error',
    'seconds_behind', 'source_log_file', 'read_source_log_pos',
    'relay_source_log_file', 'exec_source_log_pos',
)

_INT_KEYS = ('source_port', 'source_server_id', 'connect_retry', 'sql_delay', 'sql_remaining_delay',
             'last_io_errno', 'last_sql_errno', 'seconds_behind', 'read_source_log_pos',
             'exec_source_log_pos')


def _text(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return str(value)


def _to_int(value):
    value = _text(value)
    if value is None or value.strip() == '':
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _to_float(value):
    value = _text(value)
    if value is None or value.strip() == '':
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _yes(value):
    value = _text(value)
    return value is not None and value.strip().lower() in ('yes', '1', 'on', 'true', 'ignored')


def is_on(value):
    """A server variable (1/0, ON/OFF, b'1', ...) as a bool."""
    value = _text(value)
    if value is None:
        return False
    return value.strip().upper() not in ('', '0', 'OFF', 'NO', 'FALSE')


def empty_replica_status(flavor=None):
    """Normalised status of a server that is not a replica."""
    status = dict((key, None) for key in STATUS_KEYS)
    status.update(configured=False, flavor=flavor, io_running=False, sql_running=False,
                  io_thread='No', sql_thread='No', auto_position=False, using_gtid='no',
                  last_io_errno=0, last_io_error='', last_sql_errno=0, last_sql_error='')
    return status


def normalize_replica_status(row, flavor, heartbeat_period=None):
    """One set of keys (``STATUS_KEYS``) for a MariaDB or MySQL status row.

    ``row`` is a row of SHOW SLAVE STATUS / SHOW REPLICA STATUS as a dict (or
    None for a server that is not a replica); ``heartbeat_period`` comes from a
    separate query, as neither flavor shows it there.
    """
    if not row:
        return empty_replica_status(flavor)
    lower = dict((str(k).lower(), v) for k, v in row.items())
    status = empty_replica_status(flavor)
    for key, names in STATUS_COLUMNS.items():
        value = None
        for name in names:
            if name in lower:
                value = lower[name]
                break
        if key in _INT_KEYS:
            value = _to_int(value)
        elif key in ('ssl', 'ssl_verify_server_cert'):
            value = _yes(value)
        else:
            value = _text(value)
        status[key] = value
    for key in ('last_io_errno', 'last_sql_errno'):
        status[key] = status[key] or 0
    for key in ('last_io_error', 'last_sql_error', 'ssl_ca', 'ssl_cert', 'ssl_key', 'source_host',
                'source_user'):
        status[key] = status[key] or ''
    status['io_thread'] = status['io_thread'] or 'No'
    status['sql_thread'] = status['sql_thread'] or 'No'
    status['io_running'] = status['io_thread'].lower() == 'yes'
    status['sql_running'] = status['sql_thread'].lower() == 'yes'
    if 'using_gtid' in lower:
        mode = (_text(lower['using_gtid']) or 'no').strip().lower()
        status['using_gtid'] = mode if mode in ('slave_pos', 'current_pos') else 'no'
    elif 'auto_position' in lower:
        status['using_gtid'] = 'auto_position' if is_on(lower['auto_position']) else 'no'
    status['auto_position'] = status['using_gtid'] != 'no'
    if heartbeat_period is None and 'slave_heartbeat_period' in lower:
        heartbeat_period = lower['slave_heartbeat_period']
    status['heartbeat_period'] = _to_float(heartbeat_period)
    status['configured'] = bool(status['source_host'])
    return status


def threads_stopped(status):
    """True if neither replication thread runs (or tries to connect)."""
    return status['io_thread'].lower() == 'no' and status['sql_thread'].lower() == 'no'


def threads_started(status):
    """True if both threads run; the IO thread may still be connecting."""
    return status['io_thread'].lower() != 'no' and status['sql_thread'].lower() != 'no'


def compare_replica_settings(status, wanted):
    """Keys of ``wanted`` (keyed like CHANGE_SOURCE_KEYS) that differ from a
    normalised ``status``. None values in ``wanted`` are not managed, the
    password cannot be read back and is never reported, and a setting the
    server does not show (None in ``status``) is taken as matching."""
    if not status.get('configured'):
        return [key for key, dummy in CHANGE_SOURCE_KEYS
                if wanted.get(key) is not None and key != 'source_password']
    differ = []
    for key, kind in CHANGE_SOURCE_KEYS:
        want = wanted.get(key)
        if want is None or kind == 'secret':
            continue
        have = status.get(key)
        if have is None:
            continue
        if kind == 'str':
            same = str(have) == str(want)
            if key == 'source_host':
                same = str(have).lower() == str(want).lower()
        elif kind == 'int':
            same = int(have) == int(want)
        elif kind == 'float':
            same = abs(float(have) - float(want)) < 0.0005
        elif kind == 'bool':
            same = bool(have) == bool(want)
        else:
            same = have == want
        if not same:
            differ.append(key)
    return differ


# Keys of ``normalize_semi_sync``.
SEMI_SYNC_KEYS = (
    'available', 'source_enabled', 'replica_enabled', 'source_status', 'replica_status',
    'fallen_back_to_async', 'clients', 'wait_point', 'timeout_ms', 'wait_no_replica', 'lossless', 'yes_tx', 'no_tx',
    'source_variable',
)

# Keys of ``MySQLServer.gtid_positions``.
GTID_POSITION_KEYS = ('executed', 'binlog', 'slave_pos', 'purged')

# Keys of ``normalize_replica_host``.
REPLICA_HOST_KEYS = ('server_id', 'host', 'port', 'source_id', 'uuid')


def normalize_semi_sync(dialect, variables, status):
    """One set of keys (``SEMI_SYNC_KEYS``) for the semi-sync state of either
    flavor, from {name (any case): value} of the global variables and status
    values named by ``dialect.semi_sync_names()``.

    Missing names (MySQL without the semi-sync plugins) read as disabled,
    counters and settings as None. ``fallen_back_to_async`` is true when the
    source side is enabled but not active: commits are then acknowledged
    without waiting for a replica.
    """
    variables = dict((str(k).lower(), v) for k, v in (variables or {}).items())
    status = dict((str(k).lower(), v) for k, v in (status or {}).items())
    found = {}
    available = False
    enabled_variable = None
    for key, (kind, names) in dialect.semi_sync_names().items():
        source = variables if kind == 'variable' else status
        value = None
        for name in names:
            if name.lower() in source:
                value = source[name.lower()]
                if kind == 'variable':
                    available = True
                if key == 'source_enabled':
                    enabled_variable = name
                break
        found[key] = value
    wait_point = _text(found['wait_point'])
    result = dict(
        available=available,
        source_enabled=is_on(found['source_enabled']),
        replica_enabled=is_on(found['replica_enabled']),
        source_status=is_on(found['source_status']),
        replica_status=is_on(found['replica_status']),
        clients=_to_int(found['clients']),
        wait_point=wait_point.strip().upper() if wait_point and wait_point.strip() else None,
        timeout_ms=_to_int(found['timeout_ms']),
        wait_no_replica=is_on(found['wait_no_replica']),
        yes_tx=_to_int(found['yes_tx']),
        no_tx=_to_int(found['no_tx']),
    )
    # the name the server has (MySQL before 8.0.26, or with the old plugin:
    # rpl_semi_sync_master_enabled), for switching the source side
    result['source_variable'] = enabled_variable
    result['fallen_back_to_async'] = result['source_enabled'] and not result['source_status']
    result['lossless'] = topology.lossless_settings(result)
    return result


def semi_sync_member(semi):
    """Whether a node is set up for semi-sync (``normalize_semi_sync``): a
    semi-sync replica, so its source side goes on when it is promoted."""
    return bool(semi and semi.get('available') and semi.get('replica_enabled'))


def normalize_replica_host(row):
    """One set of keys (``REPLICA_HOST_KEYS``) for a row of SHOW SLAVE HOSTS
    (MariaDB) or SHOW REPLICAS (MySQL)."""
    lower = dict((str(k).lower(), v) for k, v in row.items())

    def pick(*names):
        for name in names:
            if name in lower:
                return lower[name]
        return None

    return dict(
        server_id=_to_int(pick('server_id')),
        host=_text(pick('host')) or '',
        port=_to_int(pick('port')),
        source_id=_to_int(pick('master_id', 'source_id')),
        uuid=_text(pick('replica_uuid', 'slave_uuid')) or None,
    )


# ---------------------------------------------------------------------------
# A connected server
# ---------------------------------------------------------------------------

class MySQLServer(object):
    """A connection plus the helpers the modules share.

    Errors of the server are raised as PyMySQL's ``MySQLError``
    (use ``format_mysql_error``); unsupported versions as
    ``UnsupportedServerError``.
    """

    def __init__(self, connection, what='the server'):
        self.connection = connection
        self.what = what
        self._dialect = None
        self._version = None

    def query(self, sql, params=None):
        """All rows (dicts) of a read-only query."""
        cursor = self.connection.cursor()
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
            return list(cursor.fetchall() or [])
        finally:
            cursor.close()

    def query_one(self, sql, params=None):
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, statement):
        """Run a ``Statement`` (or plain SQL text)."""
        if not isinstance(statement, Statement):
            statement = Statement(statement)
        cursor = self.connection.cursor()
        try:
            if statement.params is None:
                cursor.execute(statement.sql)
            else:
                cursor.execute(statement.sql, statement.params)
        finally:
            cursor.close()

    @property
    def version(self):
        if self._version is None:
            row = self.query_one('SELECT VERSION() AS version')
            self._version = _text(list(row.values())[0]) if row else ''
        return self._version

    @property
    def dialect(self):
        if self._dialect is None:
            self._dialect = dialect_for_version(self.version)
        return self._dialect

    def server_info(self):
        """server_id, hostname, port, read_only (bool), version, flavor
        (and server_uuid, super_read_only on MySQL)."""
        row = self.query_one(self.dialect.server_info_sql()) or {}
        info = dict((str(k).lower(), v) for k, v in row.items())
        result = dict(
            server_id=_to_int(info.get('server_id')),
            hostname=_text(info.get('hostname')),
            port=_to_int(info.get('port')),
            read_only=is_on(info.get('read_only')) or is_on(info.get('super_read_only')),
            version=self.version,
            flavor=self.dialect.flavor,
        )
        if 'server_uuid' in info:
            result['server_uuid'] = _text(info.get('server_uuid'))
            result['super_read_only'] = is_on(info.get('super_read_only'))
        return result

    def raw_replica_status(self):
        """The status row of the default connection/channel, or None."""
        rows = self.query(self.dialect.replica_status_sql)
        if not rows:
            return None
        for row in rows:
            lower = dict((str(k).lower(), v) for k, v in row.items())
            if not _text(lower.get('channel_name')):
                return row
        return rows[0]

    def heartbeat_period(self):
        sql, column = self.dialect.heartbeat_sql()
        try:
            row = self.query_one(sql)
        except MySQLError:
            return None
        if not row:
            return None
        lower = dict((str(k).lower(), v) for k, v in row.items())
        return _to_float(lower.get(column.lower()))

    def source_signs(self):
        """What this replica has heard from its source so far: its IO
        thread's state, the received GTID position, the source binlog
        position read and the count of heartbeats received. Any of the last
        three moving while the IO thread runs means the source is alive for
        this replica (see ``topology.heard_from``)."""
        status = self.replica_status()
        sql, column = self.dialect.received_heartbeats_sql()
        row = self.query_one(sql)
        lower = dict((str(k).lower(), v) for k, v in (row or {}).items())
        return dict(io_thread=status['io_thread'], gtid_received=status['gtid_io_pos'] or '',
                    read_position='%s:%s' % (status['source_log_file'] or '', status['read_source_log_pos'] or 0),
                    heartbeats=_to_int(lower.get(column.lower())))

    def replica_status(self):
        """Normalised replication status (``STATUS_KEYS``)."""
        row = self.raw_replica_status()
        if row is None:
            return empty_replica_status(self.dialect.flavor)
        heartbeat = None
        lower_keys = set(str(k).lower() for k in row)
        if 'slave_heartbeat_period' not in lower_keys:
            heartbeat = self.heartbeat_period()
        return normalize_replica_status(row, self.dialect.flavor, heartbeat)

    def global_values(self, kind, names):
        """{lower-case name: text value} of the named global variables
        (``kind`` 'variable') or status values (``kind`` 'status') that the
        server has."""
        names = list(names)
        if not names:
            return {}
        statement = self.dialect.global_values_sql(kind, names)
        values = {}
        for row in self.query(statement.sql, statement.params):
            lower = dict((str(k).lower(), v) for k, v in row.items())
            name = _text(lower.get('variable_name'))
            if name is not None:
                values[name.lower()] = _text(lower.get('value'))
        return values

    def semi_sync(self):
        """Normalised semi-sync state (``SEMI_SYNC_KEYS``)."""
        names = self.dialect.semi_sync_names()
        wanted = {'variable': [], 'status': []}
        for kind, candidates in names.values():
            wanted[kind].extend(candidates)
        return normalize_semi_sync(self.dialect, self.global_values('variable', wanted['variable']),
                                   self.global_values('status', wanted['status']))

    def gtid_positions(self):
        """GTID positions (``GTID_POSITION_KEYS``) as the server shows them:
        ``executed`` (MariaDB @@gtid_current_pos, MySQL @@gtid_executed),
        ``binlog`` (MariaDB @@gtid_binlog_pos, MySQL @@gtid_executed),
        ``slave_pos`` (MariaDB @@gtid_slave_pos, MySQL None) and ``purged``
        (MySQL @@gtid_purged, MariaDB None)."""
        row = self.query_one(self.dialect.gtid_positions_sql()) or {}
        lower = dict((str(k).lower(), v) for k, v in row.items())
        positions = {}
        for key in GTID_POSITION_KEYS:
            column = self.dialect.gtid_position_columns.get(key)
            positions[key] = (_text(lower.get(column)) or '') if column else None
        return positions

    def replica_hosts(self):
        """Replicas connected to this server (``REPLICA_HOST_KEYS``)."""
        return [normalize_replica_host(row) for row in self.query(self.dialect.replica_hosts_sql)]

    def server_uid(self):
        """A unique id of the server: MySQL @@server_uuid; on MariaDB the
        value of ``server_uid`` (global variable or status) when the server
        has one, else None."""
        if self.dialect.flavor == 'mysql':
            return self.server_info().get('server_uuid')
        names = list(self.dialect.server_uid_names)
        if not names:
            return None
        for kind in ('variable', 'status'):
            values = self.global_values(kind, names)
            for name in names:
                if values.get(name.lower()):
                    return values[name.lower()]
        return None

    def connection_id(self):
        row = self.query_one(self.dialect.connection_id_sql) or {}
        return _to_int(list(row.values())[0]) if row else None

    def replica_io_thread_ids(self):
        """Connection ids of this replica's IO (receiver) threads."""
        ids = []
        for row in self.query(self.dialect.replica_io_threads_sql):
            lower = dict((str(k).lower(), v) for k, v in row.items())
            thread_id = _to_int(lower.get('id'))
            if thread_id is not None:
                ids.append(thread_id)
        return ids

    def client_sessions(self):
        """Sessions of clients (``{id, user, host, command}``): every thread
        of SHOW PROCESSLIST except this connection, the server's own threads
        and replication threads (binlog dump threads feeding replicas
        included)."""
        own = self.connection_id()
        sessions = []
        for row in self.query(self.dialect.processlist_sql):
            lower = dict((str(k).lower(), v) for k, v in row.items())
            thread_id = _to_int(lower.get('id'))
            user = (_text(lower.get('user')) or '').strip().lower()
            command = (_text(lower.get('command')) or '').strip().lower()
            if thread_id is None or thread_id == own:
                continue
            if user in self.dialect.system_users or command in self.dialect.system_commands:
                continue
            sessions.append(dict(id=thread_id, user=_text(lower.get('user')), host=_text(lower.get('host')),
                                 command=_text(lower.get('command'))))
        return sessions

    def gtid_history(self):
        """MariaDB @@gtid_binlog_state, MySQL @@gtid_executed (text)."""
        row = self.query_one(self.dialect.gtid_history_sql()) or {}
        lower = dict((str(k).lower(), v) for k, v in row.items())
        return _text(lower.get('gtid_binlog_state')) or ''

    def wait_for_gtid(self, position, timeout):
        """Run MASTER_GTID_WAIT / WAIT_FOR_EXECUTED_GTID_SET: True when the
        position was applied, False when ``timeout`` (whole seconds) passed,
        None when the server returned NULL (an error, such as a bad position)."""
        statement = self.dialect.wait_for_gtid(position, timeout)
        row = self.query_one(statement.sql, statement.params) or {}
        value = list(row.values())[0] if row else None
        value = _to_int(value)
        if value is None:
            return None
        return value == 0

    def close(self):
        try:
            self.connection.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# Waiting for the replication threads and for GTID positions
# ---------------------------------------------------------------------------

def monotonic():
    """Seconds of a monotonic clock (the one the waiting helpers use)."""
    return time.monotonic()


def pause(seconds):
    """Sleep, on the clock of ``monotonic``."""
    time.sleep(seconds)


def replica_problem(status):
    """A hard problem visible in a status (a stopped thread), or None."""
    if not status['configured']:
        return 'replication is not configured'
    if status['sql_thread'].lower() == 'no' and status['last_sql_errno']:
        return 'the SQL thread stopped with error %d: %s' % (status['last_sql_errno'], status['last_sql_error'])
    if status['io_thread'].lower() == 'no' and status['last_io_errno']:
        return 'the IO thread stopped with error %d: %s' % (status['last_io_errno'], status['last_io_error'])
    if status['sql_thread'].lower() == 'no' or status['io_thread'].lower() == 'no':
        return 'replication threads are not running (IO thread: %s, SQL thread: %s)' % (
            status['io_thread'], status['sql_thread'])
    return None


def wait_for_replica(server, timeout, interval=0.5, sleep=None, clock=None, settle=0):
    """Poll ``server.replica_status()`` until both threads run and the IO
    thread has connected to the primary.

    Returns ``(ok, status, message)``. A stopped thread counts only when seen
    on two polls in a row (the first poll after START may still show the
    previous error). A connecting IO thread is waited for until ``timeout``;
    the message then carries its last error. With ``settle`` (seconds, use it
    right after START) both threads must still run that long later, so that
    an SQL thread that fails on the first event it applies is caught.
    """
    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    deadline = clock() + max(0, timeout)
    seen_problem = None
    running_since = None
    while True:
        status = server.replica_status()
        if status['io_running'] and status['sql_running']:
            now = clock()
            if running_since is None:
                running_since = now
            if now - running_since >= settle or now >= deadline:
                return True, status, None
            sleep(min(interval, settle - (now - running_since)))
            continue
        running_since = None
        problem = replica_problem(status)
        if problem and (problem == seen_problem or not status['configured']):
            return False, status, 'Replication failed: %s' % problem
        seen_problem = problem
        if clock() >= deadline:
            if problem:
                return False, status, 'Replication failed: %s' % problem
            if status['last_io_errno']:
                message = ('the IO thread has not connected to the primary within %ss: error %d: %s'
                           % (timeout, status['last_io_errno'], status['last_io_error']))
            else:
                message = ('the replication threads are not running after %ss (IO thread: %s, SQL thread: %s)'
                           % (timeout, status['io_thread'], status['sql_thread']))
            return False, status, 'Replication failed: %s' % message
        sleep(interval)


def wait_for_gtid_position(server, position, timeout, interval=1):
    """Wait until the replica ``server`` has applied ``position``
    (MASTER_GTID_WAIT / WAIT_FOR_EXECUTED_GTID_SET in slices of ``interval``
    whole seconds), checking between the slices that its SQL thread still
    runs. Returns ``(ok, message)``."""
    deadline = time.monotonic() + max(0, timeout)
    while True:
        remaining = deadline - time.monotonic()
        chunk = int(max(0, min(interval, math.ceil(remaining))))
        reached = server.wait_for_gtid(position, chunk)
        if reached:
            return True, None
        if reached is None:
            return False, '%s returned NULL for the position %s' % (
                server.dialect.wait_for_gtid_function(), position)
        status = server.replica_status()
        if status['last_sql_errno']:
            return False, 'the SQL thread stopped with error %d: %s' % (
                status['last_sql_errno'], status['last_sql_error'])
        if not status['sql_running']:
            return False, 'the SQL thread is not running'
        if time.monotonic() >= deadline:
            return False, 'the position %s was not applied within %s s' % (position, timeout)
