# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQL of each supported server flavor and version, chosen in one place.

``dialect_for_version`` reads a ``SELECT VERSION()`` result and returns the
``Dialect`` of that server: ``MariaDBDialect`` (MariaDB 10.6 to 11.x),
``MySQLDialect`` (MySQL 8.0.23 up to 8.3, the REPLICA/SOURCE syntax) or
``MySQL84Dialect`` (MySQL 8.4 and later). Every statement the modules send
that differs between them comes from there, as a ``Statement`` (text,
escaped parameters and a display form with secrets masked). Older servers
raise ``UnsupportedServerError``. No database access here.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re


class UnsupportedServerError(Exception):
    """The server's flavor or version is not one the collection supports."""


# What a secret is shown as in statements and results.
MASK = '********'


# ---------------------------------------------------------------------------
# SQL statements
# ---------------------------------------------------------------------------

def quote_for_display(value):
    """A string literal as it would be sent, for showing statements to users."""
    return "'%s'" % str(value).replace('\\', '\\\\').replace("'", "\\'")


class Statement(object):
    """One SQL statement: text with ``%s`` placeholders, its parameters
    (escaped by PyMySQL when executed) and a display form with secrets masked."""

    def __init__(self, sql, params=None, display=None):
        self.sql = sql
        self.params = tuple(params) if params else None
        self.display = display if display is not None else sql

    def __str__(self):
        return self.display

    def __repr__(self):
        return 'Statement(%r)' % self.display


# Wanted replication settings, keyed like the normalised status:
# (key, kind). Kinds: str (escaped parameter), int, float, bool, gtid.
CHANGE_SOURCE_KEYS = (
    ('source_host', 'str'),
    ('source_port', 'int'),
    ('source_user', 'str'),
    ('source_password', 'secret'),
    ('using_gtid', 'gtid'),
    ('heartbeat_period', 'float'),
    ('connect_retry', 'int'),
    ('sql_delay', 'int'),
    ('ssl', 'bool'),
    ('ssl_ca', 'str'),
    ('ssl_cert', 'str'),
    ('ssl_key', 'str'),
    ('ssl_verify_server_cert', 'bool'),
)


class Dialect(object):
    """SQL of one server flavor and version range. Use ``dialect_for_version``."""

    # privileges the cluster modules' administrative login needs
    admin_privileges = ()

    flavor = None
    name = None
    change_source_sql = None
    start_replica_sql = None
    stop_replica_sql = None
    reset_replica_all_sql = None
    replica_status_sql = None
    binlog_status_sql = None
    # CHANGE ... TO option names per wanted-settings key
    option_names = {}
    # system variable names that differ between flavors
    semi_sync_source_prefix = None
    semi_sync_replica_prefix = None
    # (source prefix, replica prefix) pairs of the semi-sync variable names
    # this flavor may have, preferred first (see ``semi_sync_names``)
    semi_sync_prefixes = ()
    # lists the replicas connected to this server
    replica_hosts_sql = None
    # global variable/status names that may hold a unique id of the server
    # besides @@server_uuid (MySQL has that one in ``server_info_sql``)
    server_uid_names = ()
    # normalised key (``GTID_POSITION_KEYS``) -> column of gtid_positions_sql(),
    # None where the flavor has no such position
    gtid_position_columns = {}

    def __init__(self, version_string, version):
        self.version_string = version_string
        self.version = tuple(version)

    def __repr__(self):
        return '%s(%r)' % (self.__class__.__name__, self.version_string)

    # -- wanted settings ---------------------------------------------------
    def gtid_mode(self, use_gtid):
        """The ``using_gtid`` value this flavor uses for the wanted GTID mode."""
        raise NotImplementedError

    def gtid_literal(self, mode):
        """Value of the GTID option of CHANGE ... TO for a ``using_gtid`` value."""
        raise NotImplementedError

    def change_source(self, settings):
        """``Statement`` for CHANGE MASTER TO / CHANGE REPLICATION SOURCE TO.

        ``settings`` is keyed like CHANGE_SOURCE_KEYS; keys that are absent
        or None are left out (the server keeps their current values, except
        the heartbeat period, which the servers reset to their default on a
        CHANGE without it: always pass ``heartbeat_period``).
        Strings are sent as escaped parameters; numbers and booleans are
        coerced and range-checked here, as the grammar wants literals.
        """
        clauses = []
        shown = []
        params = []
        for key, kind in CHANGE_SOURCE_KEYS:
            value = settings.get(key)
            if value is None:
                continue
            option = self.option_names[key]
            if kind in ('str', 'secret'):
                clauses.append('%s=%%s' % option)
                params.append(str(value))
                shown.append('%s=%s' % (option, quote_for_display(MASK if kind == 'secret' else value)))
                continue
            if kind == 'int':
                literal = '%d' % int(value)
            elif kind == 'float':
                literal = format_decimal(value)
            elif kind == 'bool':
                literal = '1' if value else '0'
            else:
                literal = self.gtid_literal(value)
            clauses.append('%s=%s' % (option, literal))
            shown.append('%s=%s' % (option, literal))
        if not clauses:
            raise ValueError('nothing to change')
        sql = '%s %s' % (self.change_source_sql, ', '.join(clauses))
        display = '%s %s' % (self.change_source_sql, ', '.join(shown))
        return Statement(sql, params, display)

    # -- simple statements -------------------------------------------------
    def start_replica(self):
        return Statement(self.start_replica_sql)

    def stop_replica(self):
        return Statement(self.stop_replica_sql)

    def reset_replica_all(self):
        return Statement(self.reset_replica_all_sql)

    # -- reading -----------------------------------------------------------
    def server_info_sql(self):
        return ('SELECT @@server_id AS server_id, @@hostname AS hostname, '
                '@@port AS port, @@read_only AS read_only')

    def heartbeat_sql(self):
        """(sql, column) that reads the replica's heartbeat period."""
        raise NotImplementedError

    def received_heartbeats_sql(self):
        """(sql, column) that reads how many heartbeats the replica's IO
        thread has received from its source (a counter)."""
        raise NotImplementedError

    def gtid_positions_sql(self):
        raise NotImplementedError

    def wait_for_gtid_sql(self):
        """SQL (two parameters: GTID position/set, timeout in seconds) that
        waits until the server has applied the position; 0 = reached."""
        raise NotImplementedError

    def wait_for_gtid_function(self):
        """Name of the SQL function of ``wait_for_gtid_sql``."""
        return self.wait_for_gtid_sql().split('(')[0].split()[-1]

    def global_values_sql(self, kind, names):
        """``Statement`` reading the named global variables (``kind``
        'variable') or status values (``kind`` 'status'); names the server
        does not have are simply not in the result."""
        if kind not in ('variable', 'status'):
            raise ValueError('kind must be variable or status, not %r' % (kind,))
        names = list(names)
        if not names:
            raise ValueError('no names given')
        what = 'VARIABLES' if kind == 'variable' else 'STATUS'
        sql = 'SHOW GLOBAL %s WHERE Variable_name IN (%s)' % (what, ', '.join(['%s'] * len(names)))
        display = 'SHOW GLOBAL %s WHERE Variable_name IN (%s)' % (
            what, ', '.join(quote_for_display(name) for name in names))
        return Statement(sql, names, display)

    def semi_sync_names(self):
        """Where the semi-sync settings and counters are:
        {key: (kind, names)} with kind 'variable' (SHOW GLOBAL VARIABLES) or
        'status' (SHOW GLOBAL STATUS) and the candidate names, preferred
        first, written as the server shows them. Keys: ``SEMI_SYNC_KEYS``
        (less ``available`` and ``fallen_back_to_async``)."""
        names = {}
        fields = (
            ('source_enabled', 'variable', 0, 'enabled'),
            ('replica_enabled', 'variable', 1, 'enabled'),
            ('wait_point', 'variable', 0, 'wait_point'),
            ('timeout_ms', 'variable', 0, 'timeout'),
            ('wait_no_replica', 'variable', 0, None),
            ('source_status', 'status', 0, 'status'),
            ('replica_status', 'status', 1, 'status'),
            ('clients', 'status', 0, 'clients'),
            ('yes_tx', 'status', 0, 'yes_tx'),
            ('no_tx', 'status', 0, 'no_tx'),
        )
        for key, kind, side, suffix in fields:
            candidates = []
            for prefixes in self.semi_sync_prefixes:
                if suffix is None:  # MariaDB/old MySQL wait_no_slave, MySQL 8.0.26+ wait_no_replica
                    suffix_here = 'wait_no_replica' if prefixes[0].endswith('source_') else 'wait_no_slave'
                else:
                    suffix_here = suffix
                name = prefixes[side] + suffix_here
                if kind == 'status':
                    name = name[0].upper() + name[1:]
                candidates.append(name)
            names[key] = (kind, tuple(candidates))
        return names

    # -- cluster operations (failover, switchover, rejoin) -------------------
    # STOP/START of the IO (receiver) thread only
    stop_replica_io_sql = None
    start_replica_io_sql = None
    # the IO (receiver) threads: connection id and state (columns ``id``,
    # ``state``)
    replica_io_threads_sql = None
    # statements that make the server refuse / take writes of ordinary users
    read_only_on_sql = ()
    read_only_off_sql = ()
    processlist_sql = 'SHOW PROCESSLIST'
    connection_id_sql = 'SELECT CONNECTION_ID() AS id'
    # Command values of server threads that serve replication or the server
    # itself, never killed when client sessions are
    system_commands = ('binlog dump', 'binlog dump gtid', 'daemon', 'killed', 'slave_io', 'slave_sql',
                       'slave_worker', 'connect', 'register slave')
    system_users = ('system user', 'event_scheduler')

    def stop_replica_io(self):
        return Statement(self.stop_replica_io_sql)

    def start_replica_io(self):
        return Statement(self.start_replica_io_sql)

    def set_read_only(self, read_only):
        """``Statement`` list that makes the server read-only (MySQL: also
        for users with SUPER, super_read_only) or writable."""
        return [Statement(sql) for sql in (self.read_only_on_sql if read_only else self.read_only_off_sql)]

    def set_semi_sync_source(self, enabled, variable=None):
        """``Statement`` switching the semi-sync source side on or off
        (``variable``: the name the server has, ``source_variable`` of
        ``normalize_semi_sync``; default the dialect's first). Off releases
        the commits waiting for an acknowledgement as successful: only on a
        node that is read-only with its client sessions killed."""
        name = variable or self.semi_sync_prefixes[0][0] + 'enabled'
        if not re.match(r'^rpl_semi_sync_(master|source)_enabled$', name):
            raise ValueError('not a semi-sync source variable: %r' % (name,))
        return Statement('SET GLOBAL %s = %s' % (name, 'ON' if enabled else 'OFF'))

    def kill_connection(self, connection_id):
        return Statement('KILL CONNECTION %d' % int(connection_id))

    def lock_wait_timeout(self, seconds):
        """``Statement`` bounding how long this session waits for metadata
        locks (SET GLOBAL read_only waits for them)."""
        return Statement('SET SESSION lock_wait_timeout = %d' % max(1, int(seconds)))

    def wait_for_gtid(self, position, timeout):
        """``Statement`` of ``wait_for_gtid_sql`` with its parameters."""
        timeout = max(0, int(timeout))
        return Statement(self.wait_for_gtid_sql(), [str(position), timeout],
                         self.wait_for_gtid_sql().replace('%s, %s', '%s, %d' % (quote_for_display(position),
                                                                                timeout)))

    def set_gtid_slave_pos(self, position):
        """``Statement`` setting @@gtid_slave_pos (MariaDB only)."""
        raise ValueError('%s has no gtid_slave_pos' % self.name)

    def gtid_history_sql(self):
        """SQL reading the GTIDs in the binary log with as much detail as the
        flavor keeps (column ``gtid_binlog_state``): MariaDB
        @@gtid_binlog_state (last GTID of each domain and server_id), MySQL
        @@gtid_executed."""
        raise NotImplementedError


class MariaDBDialect(Dialect):
    """MariaDB 10.6 to 11.x."""

    flavor = 'mariadb'
    name = 'MariaDB'
    change_source_sql = 'CHANGE MASTER TO'
    start_replica_sql = 'START SLAVE'
    stop_replica_sql = 'STOP SLAVE'
    reset_replica_all_sql = 'RESET SLAVE ALL'
    replica_status_sql = 'SHOW SLAVE STATUS'
    binlog_status_sql = 'SHOW MASTER STATUS'
    semi_sync_source_prefix = 'rpl_semi_sync_master_'
    semi_sync_replica_prefix = 'rpl_semi_sync_slave_'
    semi_sync_prefixes = (('rpl_semi_sync_master_', 'rpl_semi_sync_slave_'),)
    replica_hosts_sql = 'SHOW SLAVE HOSTS'
    server_uid_names = ('server_uid',)
    # what the cluster modules' login needs (RESET SLAVE needs RELOAD)
    # (REPLICATION MASTER ADMIN: rpl_semi_sync_master_enabled, switched on a
    # promoted node and off a demoted one)
    admin_privileges = ('PROCESS', 'RELOAD', 'CONNECTION ADMIN', 'READ_ONLY ADMIN', 'REPLICATION SLAVE ADMIN',
                        'REPLICATION MASTER ADMIN', 'SLAVE MONITOR')
    gtid_position_columns = {
        'executed': 'gtid_current_pos',
        'binlog': 'gtid_binlog_pos',
        'slave_pos': 'gtid_slave_pos',
        'purged': None,
    }
    option_names = {
        'source_host': 'MASTER_HOST',
        'source_port': 'MASTER_PORT',
        'source_user': 'MASTER_USER',
        'source_password': 'MASTER_PASSWORD',
        'using_gtid': 'MASTER_USE_GTID',
        'heartbeat_period': 'MASTER_HEARTBEAT_PERIOD',
        'connect_retry': 'MASTER_CONNECT_RETRY',
        'sql_delay': 'MASTER_DELAY',
        'ssl': 'MASTER_SSL',
        'ssl_ca': 'MASTER_SSL_CA',
        'ssl_cert': 'MASTER_SSL_CERT',
        'ssl_key': 'MASTER_SSL_KEY',
        'ssl_verify_server_cert': 'MASTER_SSL_VERIFY_SERVER_CERT',
    }

    def gtid_mode(self, use_gtid):
        if use_gtid not in ('slave_pos', 'current_pos', 'no'):
            raise ValueError('MariaDB GTID mode must be slave_pos, current_pos or no, not %r' % (use_gtid,))
        return use_gtid

    def gtid_literal(self, mode):
        return self.gtid_mode(mode)

    def heartbeat_sql(self):
        return ("SHOW GLOBAL STATUS LIKE 'Slave_heartbeat_period'", 'Value')

    def received_heartbeats_sql(self):
        return ("SHOW GLOBAL STATUS LIKE 'Slave_received_heartbeats'", 'Value')

    def gtid_positions_sql(self):
        return ('SELECT @@gtid_slave_pos AS gtid_slave_pos, @@gtid_binlog_pos AS gtid_binlog_pos, '
                '@@gtid_current_pos AS gtid_current_pos')

    def wait_for_gtid_sql(self):
        return 'SELECT MASTER_GTID_WAIT(%s, %s) AS result'

    stop_replica_io_sql = 'STOP SLAVE IO_THREAD'
    start_replica_io_sql = 'START SLAVE IO_THREAD'
    replica_io_threads_sql = ("SELECT ID AS id FROM information_schema.PROCESSLIST "
                              "WHERE COMMAND = 'Slave_IO'")
    read_only_on_sql = ('SET GLOBAL read_only = 1',)
    read_only_off_sql = ('SET GLOBAL read_only = 0',)

    def set_gtid_slave_pos(self, position):
        return Statement('SET GLOBAL gtid_slave_pos = %s', [str(position)],
                         'SET GLOBAL gtid_slave_pos = %s' % quote_for_display(position))

    def gtid_history_sql(self):
        return 'SELECT @@gtid_binlog_state AS gtid_binlog_state'


class MySQLDialect(Dialect):
    """MySQL 8.0.23 up to 8.3: the REPLICA/SOURCE syntax."""

    flavor = 'mysql'
    name = 'MySQL'
    change_source_sql = 'CHANGE REPLICATION SOURCE TO'
    start_replica_sql = 'START REPLICA'
    stop_replica_sql = 'STOP REPLICA'
    reset_replica_all_sql = 'RESET REPLICA ALL'
    replica_status_sql = 'SHOW REPLICA STATUS'
    binlog_status_sql = 'SHOW MASTER STATUS'
    semi_sync_source_prefix = 'rpl_semi_sync_source_'
    semi_sync_replica_prefix = 'rpl_semi_sync_replica_'
    admin_privileges = ('PROCESS', 'RELOAD', 'REPLICATION CLIENT', 'SYSTEM_VARIABLES_ADMIN', 'CONNECTION_ADMIN',
                        'REPLICATION_SLAVE_ADMIN')
    # 8.0.26+ plugins first; the older rpl_semi_sync_master/slave plugins
    # (the only ones before 8.0.26) may still be the ones installed
    semi_sync_prefixes = (('rpl_semi_sync_source_', 'rpl_semi_sync_replica_'),
                          ('rpl_semi_sync_master_', 'rpl_semi_sync_slave_'))
    replica_hosts_sql = 'SHOW REPLICAS'
    gtid_position_columns = {
        'executed': 'gtid_executed',
        'binlog': 'gtid_executed',
        'slave_pos': None,
        'purged': 'gtid_purged',
    }
    option_names = {
        'source_host': 'SOURCE_HOST',
        'source_port': 'SOURCE_PORT',
        'source_user': 'SOURCE_USER',
        'source_password': 'SOURCE_PASSWORD',
        'using_gtid': 'SOURCE_AUTO_POSITION',
        'heartbeat_period': 'SOURCE_HEARTBEAT_PERIOD',
        'connect_retry': 'SOURCE_CONNECT_RETRY',
        'sql_delay': 'SOURCE_DELAY',
        'ssl': 'SOURCE_SSL',
        'ssl_ca': 'SOURCE_SSL_CA',
        'ssl_cert': 'SOURCE_SSL_CERT',
        'ssl_key': 'SOURCE_SSL_KEY',
        'ssl_verify_server_cert': 'SOURCE_SSL_VERIFY_SERVER_CERT',
    }

    def gtid_mode(self, use_gtid):
        # MySQL replicas of this collection always use GTID auto-positioning;
        # MariaDB's slave_pos/current_pos have no MySQL counterpart.
        return 'no' if use_gtid == 'no' else 'auto_position'

    def gtid_literal(self, mode):
        return '0' if self.gtid_mode(mode) == 'no' else '1'

    def server_info_sql(self):
        return ('SELECT @@server_id AS server_id, @@hostname AS hostname, @@port AS port, '
                '@@read_only AS read_only, @@super_read_only AS super_read_only, '
                '@@server_uuid AS server_uuid')

    def heartbeat_sql(self):
        return ("SELECT HEARTBEAT_INTERVAL FROM performance_schema.replication_connection_configuration "
                "WHERE CHANNEL_NAME = ''", 'HEARTBEAT_INTERVAL')

    def received_heartbeats_sql(self):
        return ("SELECT COUNT_RECEIVED_HEARTBEATS FROM performance_schema.replication_connection_status "
                "WHERE CHANNEL_NAME = ''", 'COUNT_RECEIVED_HEARTBEATS')

    def gtid_positions_sql(self):
        return 'SELECT @@gtid_executed AS gtid_executed, @@gtid_purged AS gtid_purged'

    def wait_for_gtid_sql(self):
        return 'SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s) AS result'

    stop_replica_io_sql = 'STOP REPLICA IO_THREAD'
    start_replica_io_sql = 'START REPLICA IO_THREAD'
    replica_io_threads_sql = ("SELECT PROCESSLIST_ID AS id FROM performance_schema.threads "
                              "WHERE NAME IN ('thread/sql/replica_io', 'thread/sql/slave_io') "
                              "AND PROCESSLIST_ID IS NOT NULL")
    # super_read_only=1 turns read_only on too; read_only=0 turns both off
    read_only_on_sql = ('SET GLOBAL super_read_only = 1',)
    read_only_off_sql = ('SET GLOBAL super_read_only = 0', 'SET GLOBAL read_only = 0')

    def gtid_history_sql(self):
        return 'SELECT @@gtid_executed AS gtid_binlog_state'


class MySQL84Dialect(MySQLDialect):
    """MySQL 8.4 and later: SHOW MASTER STATUS is gone."""

    binlog_status_sql = 'SHOW BINARY LOG STATUS'


VERSION_RE = re.compile(r'^\s*(\d+)\.(\d+)\.(\d+)')


def parse_version(version_string):
    """(major, minor, patch) of a VERSION() string."""
    match = VERSION_RE.match(version_string or '')
    if not match:
        raise UnsupportedServerError('Cannot parse the server version %r' % (version_string,))
    return tuple(int(part) for part in match.groups())


def dialect_for_version(version_string):
    """The ``Dialect`` for a ``SELECT VERSION()`` result; raises
    ``UnsupportedServerError`` for flavors/versions the collection does not support."""
    version = parse_version(version_string)
    if 'mariadb' in version_string.lower():
        if version < (10, 6, 0):
            raise UnsupportedServerError(
                'MariaDB %s is not supported: 10.6 or later is needed' % version_string)
        return MariaDBDialect(version_string, version)
    if version < (8, 0, 23):
        raise UnsupportedServerError(
            'MySQL %s is not supported: 8.0.23 or later is needed' % version_string)
    if version >= (8, 4, 0):
        return MySQL84Dialect(version_string, version)
    return MySQLDialect(version_string, version)


def format_decimal(value):
    """A float as a plain SQL decimal literal (millisecond resolution)."""
    text = '%.3f' % float(value)
    text = text.rstrip('0')
    if text.endswith('.'):
        text += '0'
    return text
