# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared MySQL/MariaDB code for the distweb.infra modules.

The one place for:

* the login options (``mysql_common_argument_spec``) and the connection
  helper (``mysql_connect``), both shared by every module;
* flavor and version detection and the SQL that depends on them
  (``Dialect`` and its subclasses, chosen by ``dialect_for_version``);
* reading replication status into one set of keys for both flavors
  (``normalize_replica_status``) and comparing it with wanted settings;
* waiting for the replication threads (``wait_for_replica``).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math
import os
import re
import threading
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.distweb.infra.plugins.module_utils import topology

try:
    import ssl as ssl_lib
    HAS_SSL = True
except ImportError:  # pragma: no cover - Python without the ssl module
    ssl_lib = None
    HAS_SSL = False

try:
    import pymysql
    from pymysql.cursors import DictCursor
    HAS_PYMYSQL = True
    PYMYSQL_IMPORT_ERROR = None
    MySQLError = pymysql.err.MySQLError
except ImportError:
    pymysql = None
    DictCursor = None
    HAS_PYMYSQL = False
    PYMYSQL_IMPORT_ERROR = traceback.format_exc()

    class MySQLError(Exception):
        """Stand-in so that ``except MySQLError`` works without PyMySQL."""


MASK = '********'

# Where the servers of the supported distributions put their socket.
DEFAULT_SOCKET_PATHS = (
    '/run/mysqld/mysqld.sock',
    '/var/run/mysqld/mysqld.sock',
    '/var/lib/mysql/mysql.sock',
    '/tmp/mysql.sock',
)

# Seconds both replication threads must keep running after a START before
# the modules call replication healthy.
START_SETTLE_SECONDS = 1.0

# Server error numbers the modules make decisions on.
ER_ACCESS_DENIED = 1045
CR_CONN_HOST_ERROR = 2003


class UnsupportedServerError(Exception):
    """The server's flavor or version is not one the collection supports."""


# ---------------------------------------------------------------------------
# Login options and connection
# ---------------------------------------------------------------------------

def mysql_common_argument_spec():
    """Argument spec of the login options shared by every module.

    Documented by the ``distweb.infra.mysql_login`` doc fragment.
    """
    return dict(
        login_user=dict(type='str'),
        login_password=dict(type='str', no_log=True),
        login_host=dict(type='str'),
        login_port=dict(type='int', default=3306),
        login_unix_socket=dict(type='path'),
        config_file=dict(type='path', default='~/.my.cnf'),
        connect_timeout=dict(type='int', default=30),
        login_ssl_ca=dict(type='path'),
        login_ssl_cert=dict(type='path'),
        login_ssl_key=dict(type='path'),
    )


def login_params_from_module(module):
    """Connection settings (for ``mysql_connect``) from the login options."""
    p = module.params
    tls = bool(p.get('login_ssl_ca') or p.get('login_ssl_cert') or p.get('login_ssl_key'))
    return dict(
        user=p.get('login_user'),
        password=p.get('login_password'),
        host=p.get('login_host'),
        port=p.get('login_port'),
        unix_socket=p.get('login_unix_socket'),
        config_file=p.get('config_file'),
        connect_timeout=p.get('connect_timeout'),
        ssl=tls,
        ssl_ca=p.get('login_ssl_ca'),
        ssl_cert=p.get('login_ssl_cert'),
        ssl_key=p.get('login_ssl_key'),
        # With a CA given, the certificate chain is checked; the host name
        # is not (local logins go through a socket or 127.0.0.1).
        ssl_verify_cert=bool(p.get('login_ssl_ca')),
        ssl_verify_identity=False,
        default_socket=True,
    )


def find_default_socket(paths=DEFAULT_SOCKET_PATHS):
    """First existing server socket of ``paths``, or None."""
    for path in paths:
        if os.path.exists(path):
            return path
    return None


def build_ssl_context(ca=None, cert=None, key=None, verify_cert=False, verify_identity=False):
    """TLS context for a client connection.

    ``verify_cert`` checks the server's certificate chain (against ``ca`` or the
    system's CAs), ``verify_identity`` also checks its host name.
    """
    if not HAS_SSL:
        raise ValueError('this Python has no ssl module')
    ctx = ssl_lib.create_default_context(cafile=ca or None)
    if verify_identity:
        ctx.check_hostname = True
        ctx.verify_mode = ssl_lib.CERT_REQUIRED
    elif verify_cert:
        ctx.check_hostname = False
        ctx.verify_mode = ssl_lib.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl_lib.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, keyfile=key or None)
    return ctx


def format_mysql_error(exc):
    """The server's (or client library's) own message, with its error number."""
    args = getattr(exc, 'args', ())
    if len(args) >= 2 and isinstance(args[0], int):
        return '%s (error %d)' % (args[1], args[0])
    if args:
        return ' '.join(str(a) for a in args)
    return str(exc) or exc.__class__.__name__


def mysql_error_code(exc):
    """Error number of a PyMySQL exception, or None."""
    args = getattr(exc, 'args', ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def mysql_connect(module, params=None, what='the MySQL/MariaDB server'):
    """Open a PyMySQL connection (autocommit, DictCursor) or fail the module.

    ``params`` is a dict with the keys ``user``, ``password``, ``host``,
    ``port``, ``unix_socket``, ``config_file``, ``connect_timeout``, ``ssl``
    (bool: use TLS), ``ssl_ca``, ``ssl_cert``, ``ssl_key``, ``ssl_verify_cert``,
    ``ssl_verify_identity``, ``ssl_disabled`` (bool: no TLS at all, not even
    opportunistic) and ``default_socket`` (bool: when the host is
    ``localhost`` or unset and no socket is given, use the first existing
    socket of ``DEFAULT_SOCKET_PATHS``, as the mysql client does). Missing keys
    mean "not set". Without ``params`` the module's login options are used.

    ``config_file`` is read (PyMySQL's ``read_default_file``, group
    ``[client]``) only if it exists; explicit settings win over it.
    On failure the module fails with the server's own error text.
    """
    if not HAS_PYMYSQL:
        module.fail_json(msg=missing_required_lib('PyMySQL'), exception=PYMYSQL_IMPORT_ERROR)
    if params is None:
        params = login_params_from_module(module)

    kwargs = dict(
        user=params.get('user') or None,
        password=params.get('password') or '',
        connect_timeout=params.get('connect_timeout') or 30,
        cursorclass=DictCursor,
        autocommit=True,
        charset='utf8mb4',
        defer_connect=True,
    )
    if params.get('host'):
        kwargs['host'] = params['host']
    if params.get('port'):
        kwargs['port'] = int(params['port'])
    if params.get('unix_socket'):
        kwargs['unix_socket'] = params['unix_socket']
    config_file = params.get('config_file')
    if config_file:
        config_file = os.path.expanduser(config_file)
        if os.path.isfile(config_file):
            kwargs['read_default_file'] = config_file

    if params.get('ssl'):
        try:
            kwargs['ssl'] = build_ssl_context(
                ca=params.get('ssl_ca'), cert=params.get('ssl_cert'), key=params.get('ssl_key'),
                verify_cert=params.get('ssl_verify_cert'),
                verify_identity=params.get('ssl_verify_identity'))
        except (OSError, ValueError) as exc:
            module.fail_json(msg='Invalid TLS settings for the connection to %s: %s' % (what, exc))
    elif params.get('ssl_disabled'):
        kwargs['ssl_disabled'] = True

    where = params.get('unix_socket') or '%s:%s' % (params.get('host') or 'localhost', params.get('port') or 3306)
    try:
        conn = pymysql.connect(**kwargs)
        if params.get('default_socket') and not conn.unix_socket and conn.host == 'localhost':
            sock = find_default_socket()
            if sock:
                conn.unix_socket = sock
        if conn.unix_socket:
            where = 'unix socket %s' % conn.unix_socket
        else:
            where = '%s:%s' % (conn.host, conn.port)
        conn.connect()
    except MySQLError as exc:
        module.fail_json(msg='Unable to connect to %s (%s): %s' % (what, where, format_mysql_error(exc)),
                         errno=mysql_error_code(exc))
    except (OSError, ValueError) as exc:
        module.fail_json(msg='Unable to connect to %s (%s): %s' % (what, where, exc))
    return conn


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
# Waiting for the replication threads
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Cluster-level modules: several nodes reached over TCP from the control node
# ---------------------------------------------------------------------------

def monotonic():
    """Seconds of a monotonic clock (the one the waiting helpers use)."""
    return time.monotonic()


def pause(seconds):
    """Sleep, on the clock of ``monotonic``."""
    time.sleep(seconds)


def mysql_cluster_argument_spec():
    """Login options of the cluster-level modules (failover, switchover,
    rejoin), which log in to every node over TCP with one administrative
    account. The host and port come from the node options
    (``cluster_node_options``); no socket and no option file are used."""
    return dict(
        login_user=dict(type='str'),
        login_password=dict(type='str', no_log=True),
        login_ssl_ca=dict(type='path'),
        login_ssl_cert=dict(type='path'),
        login_ssl_key=dict(type='path'),
        connect_timeout=dict(type='int', default=5),
    )


def cluster_node_options():
    """Sub-options of one node: ``name``, ``host``, ``port``, and how the
    other nodes reach it for replication (``replication_host``,
    ``replication_port``, default ``host`` and ``port``)."""
    return dict(
        name=dict(type='str', required=True),
        host=dict(type='str', required=True),
        port=dict(type='int', default=3306),
        replication_host=dict(type='str'),
        replication_port=dict(type='int'),
    )


def replication_argument_spec():
    """Options of the replication the cluster-level modules set up when they
    point a node at a (new) primary."""
    return dict(
        replication_user=dict(type='str', required=True),
        replication_password=dict(type='str', required=True, no_log=True),
        replication_ssl=dict(type='bool', default=False),
        replication_ssl_ca=dict(type='path'),
        replication_ssl_verify_server_cert=dict(type='bool', default=False),
        replication_heartbeat_period=dict(type='float', default=1.0),
        replication_connect_retry=dict(type='int', default=10),
    )


def check_cluster_params(params):
    """Problems (list of text) of the login and replication options."""
    problems = []
    if params.get('connect_timeout') is not None and params['connect_timeout'] < 1:
        problems.append('connect_timeout must be at least 1 second')
    if params.get('replication_ssl_verify_server_cert') and not params.get('replication_ssl'):
        problems.append('replication_ssl_verify_server_cert needs replication_ssl=true')
    period = params.get('replication_heartbeat_period')
    if period is not None and not 0 <= period <= 4294967:
        problems.append('replication_heartbeat_period must be between 0 and 4294967 seconds')
    retry = params.get('replication_connect_retry')
    if retry is not None and not 1 <= retry <= 31536000:
        problems.append('replication_connect_retry must be between 1 and 31536000 seconds')
    return problems


def check_node_options(nodes, what='nodes'):
    """Problems (list of text) of a list of node options."""
    problems = []
    seen = set()
    for node in nodes:
        if not node.get('name'):
            problems.append('every entry of %s needs a name' % what)
            continue
        if node['name'] in seen:
            problems.append('the node name %s is given twice in %s' % (node['name'], what))
        seen.add(node['name'])
        if not node.get('host'):
            problems.append('node %s has no host' % node['name'])
        for key in ('port', 'replication_port'):
            if node.get(key) is not None and not 1 <= node[key] <= 65535:
                problems.append('%s of node %s must be between 1 and 65535' % (key, node['name']))
    return problems


def node_login_params(params, host, port):
    """Connection settings (for ``mysql_connect_node``) of one node from the
    cluster login options."""
    tls = bool(params.get('login_ssl_ca') or params.get('login_ssl_cert') or params.get('login_ssl_key'))
    timeout = params.get('connect_timeout') or 5
    return dict(
        user=params.get('login_user'),
        password=params.get('login_password'),
        host=host,
        port=port,
        connect_timeout=timeout,
        # a node that accepts the connection but does not answer must not
        # hang the module; the longest statement it waits for is a
        # GTID wait of one second or SET GLOBAL read_only (lock_wait_timeout)
        read_timeout=max(10, 3 * timeout),
        write_timeout=max(10, 3 * timeout),
        ssl=tls,
        ssl_ca=params.get('login_ssl_ca'),
        ssl_cert=params.get('login_ssl_cert'),
        ssl_key=params.get('login_ssl_key'),
        ssl_verify_cert=bool(params.get('login_ssl_ca')),
        ssl_verify_identity=False,
    )


def mysql_connect_node(params, what='the server'):
    """Open a PyMySQL connection over TCP without failing the module:
    ``(connection, None, None)`` or ``(None, message, error number or
    None)``. No option file is read and no socket used (an option file's
    ``socket`` would send every node's connection to the local server)."""
    if not HAS_PYMYSQL:
        return None, missing_required_lib('PyMySQL'), None
    kwargs = dict(
        user=params.get('user') or None,
        password=params.get('password') or '',
        host=params.get('host'),
        port=int(params.get('port') or 3306),
        connect_timeout=params.get('connect_timeout') or 5,
        cursorclass=DictCursor,
        autocommit=True,
        charset='utf8mb4',
        defer_connect=True,
    )
    # The whole login (the server's greeting, TLS, authentication) is
    # bounded by connect_timeout: a hung server that accepts the TCP
    # connection but never greets costs no more than a dead one. The read
    # and write timeouts apply to the statements sent afterwards.
    after_login = {}
    for key in ('read_timeout', 'write_timeout'):
        if params.get(key):
            after_login[key] = params[key]
        kwargs[key] = kwargs['connect_timeout']
    if params.get('ssl'):
        try:
            kwargs['ssl'] = build_ssl_context(
                ca=params.get('ssl_ca'), cert=params.get('ssl_cert'), key=params.get('ssl_key'),
                verify_cert=params.get('ssl_verify_cert'), verify_identity=params.get('ssl_verify_identity'))
        except (OSError, ValueError) as exc:
            return None, 'Invalid TLS settings for the connection to %s: %s' % (what, exc), None
    where = '%s:%s' % (kwargs['host'], kwargs['port'])
    try:
        conn = pymysql.connect(**kwargs)
        conn.connect()
        # PyMySQL applies these before each read and write on the socket
        conn._read_timeout = after_login.get('read_timeout')  # pylint: disable=protected-access
        conn._write_timeout = after_login.get('write_timeout')  # pylint: disable=protected-access
    except MySQLError as exc:
        return None, 'Unable to connect to %s (%s): %s' % (what, where, format_mysql_error(exc)), \
            mysql_error_code(exc)
    except (OSError, ValueError) as exc:
        return None, 'Unable to connect to %s (%s): %s' % (what, where, exc), None
    return conn, None, None


def is_connection_error(exc):
    """True if a PyMySQL error means the connection is gone or the server
    does not answer (client-side errors 2000-2999, or no error number),
    False for an error the server returned (privileges, syntax, ...)."""
    code = mysql_error_code(exc)
    return not code or 2000 <= code < 3000


def replication_source_settings(params, host, port, dialect):
    """Wanted settings (keyed like CHANGE_SOURCE_KEYS) that point a replica
    at ``host:port`` with the ``replication_*`` options, GTID based
    (MariaDB MASTER_USE_GTID=slave_pos, MySQL SOURCE_AUTO_POSITION=1)."""
    settings = dict(
        source_host=host,
        source_port=int(port),
        source_user=params['replication_user'],
        source_password=params['replication_password'],
        using_gtid=dialect.gtid_mode('slave_pos'),
        heartbeat_period=params.get('replication_heartbeat_period'),
        connect_retry=params.get('replication_connect_retry'),
        ssl=bool(params.get('replication_ssl')),
        ssl_verify_server_cert=bool(params.get('replication_ssl_verify_server_cert')),
    )
    if params.get('replication_ssl_ca'):
        settings['ssl_ca'] = params['replication_ssl_ca']
    if settings['heartbeat_period'] is None:
        settings['heartbeat_period'] = 1.0
    return settings


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


class ClusterNode(object):
    """One node of a cluster-level module: its options, its connection (a
    ``MySQLServer``, or None and ``error`` when unreachable) and the reading
    of its state for the ``topology`` module utils."""

    def __init__(self, name, host, port=3306, replication_host=None, replication_port=None):
        self.name = name
        self.host = host
        self.port = int(port or 3306)
        self.replication_host = replication_host or None
        self.replication_port = int(replication_port) if replication_port else None
        self.server = None
        self.error = None
        # error number of a failed login the server answered (access
        # denied, too many connections, ...): the node is up
        self.refused_code = None

    @classmethod
    def from_options(cls, options):
        return cls(options['name'], options['host'], options.get('port') or 3306,
                   options.get('replication_host'), options.get('replication_port'))

    def __repr__(self):
        return 'ClusterNode(%r, %s:%s)' % (self.name, self.host, self.port)

    @property
    def where(self):
        return '%s:%s' % (self.host, self.port)

    @property
    def source_host(self):
        """The host the other nodes replicate from."""
        return self.replication_host or self.host

    @property
    def source_port(self):
        return self.replication_port or self.port

    @property
    def reachable(self):
        return self.server is not None

    @property
    def dialect(self):
        return self.server.dialect

    def connect(self, params):
        """Log in with the cluster login options; False (and ``error``)
        when the node cannot be reached."""
        conn, error, code = mysql_connect_node(node_login_params(params, self.host, self.port), what=self.name)
        if conn is None:
            self.error = error
            if code and not 2000 <= code < 3000:
                self.refused_code = code
            return False
        self.server = MySQLServer(conn, self.name)
        self.error = None
        try:
            self.server.dialect
        except MySQLError as exc:
            self.lost(exc)
            return False
        return True

    def missing_privileges(self):
        """The privileges of ``dialect.admin_privileges`` the login lacks
        (global grants of the current account, as
        information_schema.USER_PRIVILEGES lists them; ALL PRIVILEGES is
        listed one by one). An empty list when they cannot be read (the
        statements then fail on their own)."""
        try:
            rows = self.server.query(
                "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = "
                "CONCAT(\"'\", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \"'@'\", "
                "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")")
        except MySQLError:
            return []
        granted = set(str(row.get('PRIVILEGE_TYPE') or '').upper() for row in rows)
        if not granted:
            return []
        return [p for p in self.dialect.admin_privileges if p not in granted]

    def lost(self, exc):
        """Mark the node unreachable after a connection error."""
        self.error = 'lost the connection to %s (%s): %s' % (self.name, self.where, format_mysql_error(exc))
        self.close()
        self.server = None

    def base_state(self):
        return dict(name=self.name, host=self.host, port=self.port, replication_host=self.replication_host,
                    replication_port=self.replication_port, reachable=self.reachable, error=self.error)

    def read_state(self, semi_sync=True, history=False):
        """The node state for ``topology`` (see its documentation). Raises
        ``MySQLError`` and ``UnsupportedServerError``; an unreachable node
        gives ``reachable=False``."""
        state = self.base_state()
        if not self.reachable:
            return state
        server = self.server
        info = server.server_info()
        # the positions before the replication status: everything in the
        # binlog read first was received before the status is read, so a
        # busy replica cannot show a binlog GTID its received position lacks
        positions = server.gtid_positions()
        status = server.replica_status()
        state.update(
            flavor=info['flavor'],
            version=info['version'],
            server_id=info['server_id'],
            server_uuid=info.get('server_uuid'),
            read_only=info['read_only'],
            configured=status['configured'],
            source_host=status['source_host'],
            source_port=status['source_port'],
            source_server_id=status['source_server_id'],
            io_running=status['io_running'],
            sql_running=status['sql_running'],
            io_thread=status['io_thread'],
            sql_thread=status['sql_thread'],
            last_io_errno=status['last_io_errno'],
            last_io_error=status['last_io_error'],
            last_sql_errno=status['last_sql_errno'],
            last_sql_error=status['last_sql_error'],
            seconds_behind=status['seconds_behind'],
            heartbeat_period=status['heartbeat_period'],
            connect_retry=status['connect_retry'],
            using_gtid=status['using_gtid'],
            gtid_binlog=positions['binlog'] or '',
            gtid_slave_pos=positions['slave_pos'],
            gtid_received=(status['gtid_io_pos'] or '') if status['configured'] else '',
            gtid_executed=positions['executed'] or '',
        )
        if history and info['flavor'] == 'mariadb':
            state['gtid_binlog_state'] = server.gtid_history()
        if semi_sync:
            state['semi_sync'] = server.semi_sync()
        return state

    def close(self):
        if self.server is not None:
            self.server.close()


# MariaDB/MySQL: KILL of a thread that has already ended
ER_NO_SUCH_THREAD = 1094
# MariaDB/MySQL: lock_wait_timeout passed
ER_LOCK_WAIT_TIMEOUT = 1205


class ClusterOperations(object):
    """The changing steps the cluster-level modules share, each a short list
    of statements of the node's dialect, logged in ``queries`` as
    ``'<node>: <statement>'`` (passwords masked). Server errors are raised
    as ``MySQLError``; nothing here runs in check mode (the modules plan
    instead)."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.queries = []
        self.phases = {}
        self.started = monotonic()
        self.nodes = []  # every ClusterNode the run connects to

    def finish(self, **kwargs):
        """The module's result, with ``kwargs`` added."""
        raise NotImplementedError

    def fail(self, msg, **kwargs):
        result = self.finish(**kwargs)
        self.close()
        self.module.fail_json(msg=msg, **result)

    def close(self):
        for node in self.nodes:
            node.close()

    def abort(self, msg):
        """Fail on an unexpected error (the modules' ``fail``; the failover
        puts back what it changed first)."""
        self.fail(msg)

    # -- bookkeeping ---------------------------------------------------------
    def timed(self, name, since):
        """Add the seconds from ``since`` to now to phase ``name``."""
        self.phases[name] = round(self.phases.get(name, 0.0) + (monotonic() - since), 3)
        return monotonic()

    def privilege_problems(self, nodes):
        """A sentence naming the reachable nodes where the login lacks a
        privilege the operation needs, or None. Checked before anything is
        changed, so that a half-done promotion cannot fail on a grant."""
        problems = []
        for node in nodes:
            if node.reachable:
                missing = node.missing_privileges()
                if missing:
                    problems.append('%s lacks %s' % (node.name, ', '.join(missing)))
        if not problems:
            return None
        return ('The login %s lacks privileges the operation needs: %s. Grant them on the primary (they replicate; '
                'see the module notes, or re-run site.yml with the mysql_cluster role defaults); nothing was changed'
                % (self.params.get('login_user') or 'user', '; '.join(problems)))

    def execute(self, node, statements):
        for statement in statements:
            self.queries.append('%s: %s' % (node.name, statement.display))
            node.server.execute(statement)

    # -- steps ---------------------------------------------------------------
    def fence(self, node, kill_sessions=True, lock_wait=None):
        """Make ``node`` refuse writes (MariaDB read_only=1, MySQL
        super_read_only=1), then kill its client sessions. Returns the
        killed session ids. SET GLOBAL read_only waits for the locks of
        running statements: that wait is bounded by ``lock_wait`` seconds
        (default ``connect_timeout``); when it times out, the client sessions
        are killed first and read_only set once more."""
        dialect = node.dialect
        self.execute(node, [dialect.lock_wait_timeout(lock_wait or self.params.get('connect_timeout') or 5)])
        killed = []
        try:
            self.execute(node, dialect.set_read_only(True))
        except MySQLError as exc:
            # a long statement of a client holds a lock read_only waits for:
            # end the client sessions first, then try once more
            if mysql_error_code(exc) != ER_LOCK_WAIT_TIMEOUT or not kill_sessions:
                raise
            killed.extend(self.kill_client_sessions(node))
            self.execute(node, dialect.set_read_only(True))
        if kill_sessions:
            killed.extend(self.kill_client_sessions(node))
        return killed

    def kill_client_sessions(self, node):
        """Kill the client sessions of ``node``; the ids killed."""
        killed = []
        for session in node.server.client_sessions():
            try:
                self.execute(node, [node.dialect.kill_connection(session['id'])])
                killed.append(session['id'])
            except MySQLError as exc:
                if mysql_error_code(exc) != ER_NO_SUCH_THREAD:
                    raise
        return killed

    def unfence(self, node):
        self.execute(node, node.dialect.set_read_only(False))

    def stop_io(self, node):
        self.execute(node, [node.dialect.stop_replica_io()])

    def start_io(self, node):
        self.execute(node, [node.dialect.start_replica_io()])

    def promote_statements(self, node, semi):
        """What ``promote`` runs on ``node`` whose semi-sync state is
        ``semi`` (``normalize_semi_sync``; None when unknown)."""
        dialect = node.dialect
        statements = [dialect.stop_replica(), dialect.reset_replica_all()]
        if semi_sync_member(semi) and not semi.get('source_enabled'):
            statements.append(dialect.set_semi_sync_source(True, semi.get('source_variable')))
        return statements + dialect.set_read_only(False)

    def promote(self, node):
        """STOP SLAVE; RESET SLAVE ALL; on a node set up for semi-sync,
        switch its source side on before it takes a write (so that no commit
        is acknowledged without a replica); make it writable. The privilege
        check before any change covers each of these statements."""
        self.execute(node, self.promote_statements(node, node.server.semi_sync()))

    def retire_source_statements(self, node, semi):
        """What ``retire_source`` runs (``semi`` as for
        ``promote_statements``)."""
        if semi and semi.get('source_enabled'):
            return [node.dialect.set_semi_sync_source(False, semi.get('source_variable'))]
        return []

    def retire_source(self, node):
        """Switch the semi-sync source side of a demoted node off, so that
        as a replica it does not wait for acknowledgements of what it
        applies. Only once ``node`` is read-only and its client sessions
        are killed: switching it off releases waiting commits."""
        self.execute(node, self.retire_source_statements(node, node.server.semi_sync()))

    def point_at(self, node, primary, running=True, slave_pos=None):
        """Make ``node`` a replica of ``primary`` (a ``ClusterNode``) with the
        ``replication_*`` options and start it: STOP SLAVE (when ``running``),
        on MariaDB SET GLOBAL gtid_slave_pos (when ``slave_pos`` is given),
        CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos (MySQL
        SOURCE_AUTO_POSITION=1), START SLAVE."""
        dialect = node.dialect
        statements = []
        if running:
            statements.append(dialect.stop_replica())
        if slave_pos is not None and dialect.flavor == 'mariadb':
            statements.append(dialect.set_gtid_slave_pos(slave_pos))
        settings = replication_source_settings(self.params, primary.source_host, primary.source_port, dialect)
        statements.append(dialect.change_source(settings))
        statements.append(dialect.start_replica())
        self.execute(node, statements)

    def point_at_statements(self, node, primary, running=True, slave_pos=None):
        """The statements ``point_at`` would run, as text (for plans)."""
        dialect = node.dialect
        shown = []
        if running:
            shown.append(dialect.stop_replica().display)
        if slave_pos is not None and dialect.flavor == 'mariadb':
            shown.append(dialect.set_gtid_slave_pos(slave_pos).display)
        settings = replication_source_settings(self.params, primary.source_host, primary.source_port, dialect)
        shown.append(dialect.change_source(settings).display)
        shown.append(dialect.start_replica().display)
        return shown


class WholeClusterOperations(ClusterOperations):
    """A run acting on every node of O(nodes) (failover, switchover): the
    nodes by name, the plan in words, the killed sessions, the warnings and
    the seconds per phase, all returned by ``finish``."""

    def __init__(self, module, phases):
        super(WholeClusterOperations, self).__init__(module)
        self.nodes = [ClusterNode.from_options(options) for options in self.params['nodes']]
        self.by_name = dict((node.name, node) for node in self.nodes)
        self.killed = []
        self.plan_text = []
        self.warnings = []
        self.result = {}
        for phase in phases:
            self.phases[phase] = 0.0

    def connect_all(self):
        """Log in to every node at once, one thread each, so that the
        slowest node (dead or hung: each login is bounded by
        connect_timeout) costs its own timeout once, not once per node in
        turn. Fails, changing nothing, when a node refused the login: a node
        that answers is not unreachable."""
        errors = []

        def connect(node):
            try:
                node.connect(self.params)
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(exc)  # raised again below, in the module's own thread

        threads = [threading.Thread(target=connect, args=(node,)) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        refused = [node for node in self.nodes if node.refused_code]
        if refused:
            self.fail('Cannot log in to %s: %s. A node that answers is not unreachable; nothing was changed'
                      % (', '.join(node.name for node in refused), '; '.join(node.error for node in refused)))

    def finish(self, **kwargs):
        self.result.update(kwargs)
        self.phases['total'] = round(monotonic() - self.started, 3)
        self.result.update(phases=dict(self.phases), plan=list(self.plan_text), queries=list(self.queries),
                           killed_sessions=len(self.killed))
        for warning in self.warnings:
            self.module.warn(warning)
        return self.result


def run_cluster_operation(operation):
    """The ``main()`` of a cluster-level module: run ``operation`` (a
    ``ClusterOperations``) and exit with its result. A failed query or an
    unsupported server fails through ``operation.abort``; the connections
    are closed either way."""
    try:
        result = operation.run()
    except MySQLError as exc:
        operation.abort('Query failed: %s' % format_mysql_error(exc))
    except UnsupportedServerError as exc:
        operation.abort('A node is not supported: %s' % exc)
    finally:
        operation.close()
    operation.module.exit_json(**result)
