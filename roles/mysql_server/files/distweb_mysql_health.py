# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role-aware health endpoint of one MariaDB/MySQL node, and its self-fence guard.

The local database routers on the app servers (role db_router) check every
database node through this endpoint, so that writes go to the one primary
and reads to healthy replicas of it, without the app knowing which is which.

  GET /primary  200 when the server answers and is writable (read_only OFF)
                and, with require_semi_sync (a lossless cluster), semi-sync
                is enabled on it as a source, has not fallen back to
                asynchronous commits, and at least one semi-sync replica is
                connected: a node that cannot acknowledge a write is no
                primary for the routers; nor is a stale one (below).
  GET /replica  200 when the server answers, is read-only, its IO thread is
                connected (exactly 'Yes'; 'Connecting' is not), its SQL
                thread runs, it is at most max_lag seconds behind, and its
                source is the current primary: the source's own endpoint
                (http://<Master_Host>:<port>/primary) answers 200. A replica
                left pointing at an old primary serves no reads.
  GET /         200 with the node's state as JSON (read_only, replication,
                semi-sync figures) and local_primary (its /primary verdict
                without asking other nodes), whatever it is

Every other answer is 503 (404 for an unknown path) with the reason in words.
The node's state is read fresh for each request (one short connection over
the local socket) so that a fenced or promoted node is seen at the routers'
next check. The answers of other nodes' endpoints (a replica's source, the
guard's peers) are asked with a timeout of peer_timeout seconds (0.3, well
under the routers' 1 s check timeout: a dead or frozen old primary must not
make the new primary miss its checks) and kept for peer_cache seconds per
node, so that the routers' checks (several a second from every app server)
do not multiply requests between the nodes.

A writable node is stale when one of its ``peers`` is a primary by its own
reading (``local_primary`` in its GET /: writable, with semi-sync replicas)
and this node has no semi-sync replica connected or no peer replicates from
it (no peer's Master_Host is one of ``names``, this node's names). An old
primary woken after a failover (a paused VM or container) is stale at once,
although its count of semi-sync replicas lags for a heartbeat or two: its
/primary answers 503 from its first request, and the guard fences it.

The guard (a background thread, on when ``guard`` is true; by default when
require_semi_sync is) checks every guard_interval seconds: when this node is
writable and stale, it fences this node: KILL every client session except system threads,
replication (Binlog Dump) and its own, SET GLOBAL read_only=1, and KILL
the client sessions again. It writes one
line to stderr (the journal) when it fences. It never makes a node writable
again and never touches the semi-sync settings (switching semi-sync off
would release commits waiting for an acknowledgement as successful). This is
how an old primary woken after a failover (a paused VM or container) stops
at once. It logs in as guard_user over the local socket, without a password
(MariaDB unix_socket authentication of the OS user the service runs as).

The repair (a background thread, on when ``repair`` is true) checks every
repair_interval seconds whether this node is a replica whose SQL thread
stopped because a crash left gtid_slave_pos behind its own binary log (a
DDL's GTID is recorded after the DDL commits, not with it). It then moves
gtid_slave_pos to what the binary log proves applied and starts replication
again, and writes one line to stderr. It touches no other error; see
crash_repair_position for the proof and its limit.

Configuration: a JSON file named by $DISTWEB_MYSQL_HEALTH_CONFIG, keys of
DEFAULTS below: {"socket", "user", "password", "bind", "port", "max_lag",
"timeout", "require_semi_sync", "guard", "guard_user", "guard_interval",
"peers" (["host:port", ...] of the other nodes' endpoints), "names" (what
replicas call this node in Master_Host), "peer_timeout",
"peer_cache", "repair", "repair_interval", "sql", "columns"}.

The server's SQL spellings are not in this file: "sql" holds the statements
({"replica_status", "stop_replica", "start_replica", "set_gtid_position",
"crash_repair_positions", ...}) and "columns" the names of the replica
status columns it reads ({"source_host", "io_running", "sql_running", "lag",
"io_errno", "io_error", "sql_errno", "sql_error"}), both written by the
mysql_server role from its vars/<flavour>.yml. A flavour without
"crash_repair_positions" (null) gets no crash repair.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import sys
import threading
import time

try:
    import http.client
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
except ImportError:  # pragma: no cover - Python 2 is not supported
    sys.exit('distweb-mysql-health needs Python 3.7 or later')

DEFAULTS = {
    'socket': '/run/mysqld/mysqld.sock',
    'user': 'monitor',
    'password': '',
    'bind': '0.0.0.0',
    'port': 9201,
    'max_lag': 30,
    'timeout': 2,
    'require_semi_sync': False,
    'guard': None,  # None: on when require_semi_sync is
    'guard_user': 'distweb-health',
    'guard_interval': 0.2,
    'peers': [],
    'names': [],
    # well under the routers' check timeout (1 s): a dead or frozen peer
    # (the old primary, after a failover) costs the new primary's /primary
    # this long, and no router check is missed for it
    'peer_timeout': 0.3,
    'peer_cache': 1.0,
    'repair': True,
    'repair_interval': 1.0,
    # the flavour's SQL and replica status columns: required (see above)
    'sql': None,
    'columns': None,
}

# What the endpoint reads of "sql" and "columns".
SQL_KEYS = ('replica_status', 'stop_replica', 'start_replica', 'set_gtid_position', 'crash_repair_positions')
COLUMN_KEYS = ('source_host', 'io_running', 'sql_running', 'lag', 'io_errno', 'io_error', 'sql_errno', 'sql_error')


class ConfigError(Exception):
    """The configuration file lacks what the endpoint needs."""


# The replica's SQL thread stopped on a GTID that its own binary log already
# holds (MariaDB's ER_GTID_STRICT_OUT_OF_ORDER): see crash_repair_position.
ER_GTID_STRICT_OUT_OF_ORDER = 1950

# Source-side semi-sync names: MariaDB (and MySQL before 8.0.26), then MySQL 8.
SEMI_SYNC_ENABLED = ('rpl_semi_sync_master_enabled', 'rpl_semi_sync_source_enabled')
SEMI_SYNC_CLIENTS = ('rpl_semi_sync_master_clients', 'rpl_semi_sync_source_clients')
SEMI_SYNC_STATUS = ('rpl_semi_sync_master_status', 'rpl_semi_sync_source_status')

# Sessions the guard never kills: replicas reading the binary log, and the
# server's own threads.
KEEP_COMMANDS = frozenset(('Binlog Dump', 'Binlog Dump GTID', 'Daemon',
                           'Slave_IO', 'Slave_SQL', 'Slave_worker'))
SYSTEM_USERS = frozenset(('system user', 'event_scheduler'))


def load_config(path=None):
    if path is None:
        path = os.environ.get('DISTWEB_MYSQL_HEALTH_CONFIG')
    config = dict(DEFAULTS)
    if path:
        with open(path) as handle:
            config.update(json.load(handle))
    if config['guard'] is None:
        config['guard'] = bool(config['require_semi_sync'])
    missing = ['sql.' + key for key in SQL_KEYS if key not in (config['sql'] or {})]
    missing += ['columns.' + key for key in COLUMN_KEYS if not (config['columns'] or {}).get(key)]
    if missing or not (config['sql'] or {}).get('replica_status'):
        raise ConfigError('%s names no complete SQL dialect (missing: %s): the mysql_server role writes it from its '
                          'vars/<flavour>.yml' % (path or 'the configuration', ', '.join(missing) or 'sql.replica_status'))
    return config


def can_repair(config):
    """Whether the crash repair runs: asked for, and the flavour has one."""
    return bool(config['repair'] and config['sql'].get('crash_repair_positions'))


def _on(value):
    """A server's ON/OFF (or 1/0) as a bool; None when absent."""
    if value is None:
        return None
    return str(value).strip().upper() in ('ON', '1', 'YES', 'TRUE')


def _first(values, names):
    for name in names:
        if name in values:
            return values[name]
    return None


def read_read_only(cur):
    # Alone in its query: see the sampler trap in the platform notes.
    cur.execute('SELECT @@global.read_only')
    return bool(int(cur.fetchone()[0]))


def read_semi_sync(cur):
    """The source side of semi-sync: enabled, connected semi-sync replicas,
    and whether it is active (OFF: fallen back to asynchronous commits).
    Each figure is None when the server has no such variable."""
    cur.execute("SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_%'")
    variables = dict((str(name).lower(), value) for name, value in cur.fetchall())
    cur.execute("SHOW GLOBAL STATUS LIKE 'rpl_semi_sync_%'")
    status = dict((str(name).lower(), value) for name, value in cur.fetchall())
    clients = _first(status, SEMI_SYNC_CLIENTS)
    return {
        'enabled': _on(_first(variables, SEMI_SYNC_ENABLED)),
        'clients': None if clients is None else int(clients),
        'active': _on(_first(status, SEMI_SYNC_STATUS)),
    }


def _last_error(status, errno_column, error_column):
    """'error <n>: <text>' from the replica status, or None when there is none."""
    errno = int(status.get(errno_column) or 0)
    if not errno:
        return None
    return 'error %d: %s' % (errno, status.get(error_column) or '')


def read_state(config, connect=None):
    """The node's role as a dict. ``connect`` makes a DB-API connection
    (tests pass a fake one)."""
    if connect is None:
        import pymysql
        connect = pymysql.connect
    conn = connect(unix_socket=config['socket'], user=config['user'], password=config['password'],
                   connect_timeout=config['timeout'], read_timeout=config['timeout'])
    try:
        cur = conn.cursor()
        read_only = read_read_only(cur)
        columns = config['columns']
        cur.execute(config['sql']['replica_status'])
        row = cur.fetchone()
        replica = None
        if row is not None:
            status = dict(zip([d[0] for d in cur.description], row))
            replica = {
                'source': status.get(columns['source_host']),
                'io_running': status.get(columns['io_running']),
                'sql_running': status.get(columns['sql_running']),
                'lag': status.get(columns['lag']),
                'io_error': _last_error(status, columns['io_errno'], columns['io_error']),
                'sql_error': _last_error(status, columns['sql_errno'], columns['sql_error']),
            }
        semi_sync = read_semi_sync(cur)
    finally:
        conn.close()
    return {'read_only': read_only, 'replica': replica, 'semi_sync': semi_sync}


def _because(error):
    return ' (%s)' % error if error else ''


def judge(path, state, max_lag, require_semi_sync=False, source_is_primary=None, elsewhere=None):
    """(HTTP status, reason) for ``path`` given the node's ``state`` (None
    when the server did not answer). ``source_is_primary(host)`` answers
    (True/False, detail) for a replica's source; it is asked last, only when
    everything else is healthy. ``elsewhere()`` answers the peer that is the
    elected primary when this node is a stale one (``elected_elsewhere``),
    else None; asked last for /primary."""
    if path == '/':
        return 200, 'state'
    if path not in ('/primary', '/replica'):
        return 404, 'unknown path %s; use /primary, /replica or /' % path
    if state is None:
        return 503, 'the database server does not answer'
    if path == '/primary':
        if state['read_only']:
            return 503, 'read-only: not the primary'
        if not require_semi_sync:
            other = elsewhere() if elsewhere is not None else None
            if other:
                return 503, ('writable, but %s is the elected primary and no replica follows this node: a stale '
                             'old primary' % other)
            return 200, 'writable primary'
        semi_sync = state.get('semi_sync') or {}
        if semi_sync.get('enabled') is None:
            return 503, 'writable, but this server has no semi-sync replication: it cannot acknowledge a write'
        if not semi_sync['enabled']:
            return 503, 'writable, but semi-sync is not enabled on it: it is not the elected primary'
        if not semi_sync.get('clients'):
            return 503, 'writable, but no semi-sync replica is connected: it cannot acknowledge a write'
        if semi_sync.get('active') is False:
            return 503, 'writable, but semi-sync has fallen back to asynchronous commits: its writes could be lost'
        if elsewhere is not None:
            other = elsewhere()
            if other:
                return 503, ('writable, but %s is the elected primary and no replica follows this node: a stale '
                             'old primary' % other)
        return 200, 'writable primary with %d semi-sync replica(s) connected' % semi_sync['clients']
    if not state['read_only']:
        return 503, 'writable: not a replica'
    replica = state['replica']
    if replica is None:
        return 503, 'read-only but not replicating'
    if replica['sql_running'] != 'Yes':
        return 503, 'the SQL thread does not run%s' % _because(replica.get('sql_error'))
    if replica['io_running'] != 'Yes':
        return 503, 'not connected to its source (IO thread: %s)%s' % (
            replica['io_running'], _because(replica.get('io_error')))
    if replica['lag'] is not None and int(replica['lag']) > max_lag:
        return 503, '%s s behind its primary (more than %s s)' % (replica['lag'], max_lag)
    if source_is_primary is None:
        return 503, 'its source %s cannot be checked' % replica['source']
    is_primary, detail = source_is_primary(replica['source'])
    if not is_primary:
        return 503, 'its source %s is not the current primary: %s' % (replica['source'], detail)
    return 200, 'healthy replica of the primary %s' % replica['source']


def parse_peer(peer, default_port):
    """'host:port', '[v6]:port' or 'host' as (host, port)."""
    peer = str(peer).strip()
    if peer.startswith('['):
        host, _bracket, rest = peer[1:].partition(']')
        return host, int(rest[1:]) if rest.startswith(':') else int(default_port)
    if peer.count(':') == 1:
        host, port = peer.split(':')
        return host, int(port)
    return peer, int(default_port)


def http_get(host, port, path, timeout):
    """(status, body) of GET http://host:port/path. Raises when the node
    does not answer within ``timeout`` seconds."""
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request('GET', path)
        response = conn.getresponse()
        return response.status, response.read(4096)
    finally:
        conn.close()


class PrimaryProbe(object):
    """Asks other nodes' endpoints for /primary, keeping each node's answer
    for ``ttl`` seconds. Concurrent askers of one node wait for a single
    request. ``fetch`` and ``clock`` are for tests."""

    def __init__(self, timeout=1.0, ttl=1.0, fetch=None, clock=None):
        self.timeout, self.ttl = timeout, ttl
        self.fetch = fetch or http_get
        self.clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._entries = {}  # (host, port) -> [lock, expires, answer]

    def is_primary(self, host, port):
        """(True/False, detail)."""
        key = (host, int(port))
        host, port = key
        with self._lock:
            entry = self._entries.setdefault(key, [threading.Lock(), None, None])
        with entry[0]:
            if entry[1] is not None and self.clock() < entry[1]:
                return entry[2]
            answer = self._ask(host, port)
            entry[1], entry[2] = self.clock() + self.ttl, answer
            return answer

    def state_of(self, host, port):
        """The JSON answer of the node's GET / (None when it does not
        answer), kept for ``ttl`` seconds like is_primary's."""
        key = ('/', host, int(port))
        with self._lock:
            entry = self._entries.setdefault(key, [threading.Lock(), None, None])
        with entry[0]:
            if entry[1] is not None and self.clock() < entry[1]:
                return entry[2]
            try:
                status, body = self.fetch(host, int(port), '/', self.timeout)
                answer = json.loads(body) if status == 200 else None
            except Exception:  # refused, timed out, not our endpoint
                answer = None
            entry[1], entry[2] = self.clock() + self.ttl, answer
            return answer

    def _ask(self, host, port):
        try:
            status, body = self.fetch(host, port, '/primary', self.timeout)
        except Exception as exc:  # refused, timed out, unresolvable: not a primary
            return False, 'its health endpoint %s:%s does not answer (%s)' % (host, port, exc)
        if status == 200:
            return True, 'answers /primary 200'
        try:
            reason = json.loads(body)['reason']
        except Exception:  # not our endpoint, or no reason given
            reason = 'no reason given'
        return False, 'answers /primary %s: %s' % (status, reason)


def elected_elsewhere(config, probe, state):
    """Whether another node is the elected primary and this writable one
    is stale: a peer is a primary by its own reading (``local_primary`` of
    its GET /) and this node has no semi-sync replica connected or no peer
    replicates from it (its Master_Host is none of ``names``). The second
    covers an old primary woken after a failover, whose count of semi-sync
    replicas stays stale for a heartbeat or two. Returns the peer (host:port)
    that is primary, or None."""
    names = set(str(n) for n in config.get('names') or [])
    other = None
    followed = False
    for peer in config.get('peers') or []:
        host, port = parse_peer(peer, config['port'])
        answer = probe.state_of(host, port)
        if not answer:
            continue
        if answer.get('local_primary'):
            other = other or '%s:%s' % (host, port)
        replica = (answer.get('state') or {}).get('replica') or {}
        if replica.get('source') in names and replica.get('io_running') == 'Yes':
            followed = True
    clients = ((state or {}).get('semi_sync') or {}).get('clients')
    if other and (not clients or not followed):
        return other
    return None


def _peer_ports(config):
    ports = {}
    for peer in config.get('peers') or []:
        host, port = parse_peer(peer, config['port'])
        ports[host] = port
    return ports


def source_checker(config, probe):
    """``source_is_primary(host)`` for judge(): the source's endpoint on its
    port from ``peers`` (the health port of this node otherwise)."""
    ports = _peer_ports(config)

    def source_is_primary(host):
        if not host:
            return False, 'no source host'
        return probe.is_primary(host, ports.get(host, config['port']))

    return source_is_primary


def kill_clients(cur):
    """KILL every client session except system threads, replication and
    this one. Returns how many were killed."""
    cur.execute('SELECT CONNECTION_ID()')
    own = int(cur.fetchone()[0])
    cur.execute('SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST')
    killed = 0
    for thread_id, user, command in cur.fetchall():
        if int(thread_id) == own or command in KEEP_COMMANDS or user in SYSTEM_USERS:
            continue
        try:
            cur.execute('KILL CONNECTION %d' % int(thread_id))
            killed += 1
        except Exception:  # gone meanwhile
            pass
    return killed


def fence(cur, attempts=3):
    """Kill the client sessions, SET GLOBAL read_only=1, kill them again.
    A commit waiting for a semi-sync acknowledgement holds the commit lock
    that read_only waits for, for ever on a lossless node: its session goes
    first (which ends its wait, unacknowledged), so that read_only is set
    at once; a commit that slips in between bounds the wait (1 s) and its
    session is killed before the next attempt. Returns (fenced, killed,
    error)."""
    cur.execute('SET SESSION lock_wait_timeout = 1')
    killed, error = kill_clients(cur), None
    for _attempt in range(attempts):
        try:
            cur.execute('SET GLOBAL read_only = 1')
        except Exception as exc:
            error = exc
            killed += kill_clients(cur)
            continue
        killed += kill_clients(cur)
        return True, killed, None
    return False, killed, error


def _local_admin_connection(config, connect=None):
    """The guard's account over the local socket. No password: unix_socket
    authentication of the service's OS user."""
    if connect is None:
        import pymysql
        connect = pymysql.connect
    return connect(unix_socket=config['socket'], user=config['guard_user'], password='',
                   connect_timeout=config['timeout'], read_timeout=config['timeout'] + 2, autocommit=True)


def _run_every(worker, interval, name, stop=None):
    """worker.check() every interval seconds until stop is set; each kind of
    error is logged once, not at every round."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            worker.check()
            worker._last_error = None
        except Exception as exc:  # the server restarts, a peer misbehaves: try again
            message = str(exc)
            if message != worker._last_error:
                worker.log('distweb-mysql-health %s: %s' % (name, message))
            worker._last_error = message
        stop.wait(interval)


class Guard(object):
    """Fences this node when it is writable, has no semi-sync replica and
    another node answers /primary 200. Never un-fences."""

    def __init__(self, config, connect=None, probe=None, log=None):
        self.config = config
        self.connect = connect
        self.probe = probe or PrimaryProbe(config['peer_timeout'], config['peer_cache'])
        self.peers = [parse_peer(p, config['port']) for p in config.get('peers') or []]
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._last_error = None

    def check(self):
        """One round. Returns what it found or did, in words."""
        conn = _local_admin_connection(self.config, self.connect)
        try:
            cur = conn.cursor()
            if read_read_only(cur):
                return 'read-only'
            peer = elected_elsewhere(self.config, self.probe, {'semi_sync': read_semi_sync(cur)})
            if peer is None:
                return 'writable, no other primary (or replicas follow this one)'
            # Asking the peers took time: decide on a fresh reading.
            if read_read_only(cur):
                return 'changed while the peers were asked'
            fenced, killed, error = fence(cur)
            if fenced:
                self.log('distweb-mysql-health guard: FENCED this node (read_only=1, %d client session(s) '
                         'killed): it was writable while %s is the primary and no replica follows this node'
                         % (killed, peer))
                return 'fenced'
            self.log('distweb-mysql-health guard: could not fence this node (%d client session(s) killed): %s'
                     % (killed, error))
            return 'fence failed'
        finally:
            conn.close()

    def run(self, stop=None):
        _run_every(self, self.config['guard_interval'], 'guard', stop)


def parse_gtid_position(text):
    """A MariaDB GTID position ('0-1-100,1-2-7') as {domain: (server_id, seq_no)}."""
    position = {}
    for part in str(text or '').replace(' ', '').split(','):
        if not part:
            continue
        domain, server_id, seq_no = (int(number) for number in part.split('-'))
        position[domain] = (server_id, seq_no)
    return position


def format_gtid_position(position):
    return ','.join('%d-%d-%d' % (domain, server_id, seq_no)
                    for domain, (server_id, seq_no) in sorted(position.items()))


def crash_repair_position(binlog_pos, slave_pos, own_server_id):
    """The gtid_slave_pos that a replica must have after a crash, or None
    when nothing is to be repaired or it cannot be repaired safely.

    A replica binlogs what it applies (log_slave_updates) and, with
    sync_binlog=1, its binary log is what crash recovery keeps: a
    transaction in the binary log is applied, one that is not is rolled
    back. mysql.gtid_slave_pos follows a DML transaction atomically, but a
    DDL is recorded there after it commits, so a crash in between leaves a
    DDL binlogged and applied whose GTID gtid_slave_pos lacks. The replica
    then asks its source for that GTID again and its SQL thread stops (GTID
    strict mode: the binary log already has it) before applying anything.

    Per domain, when the binary log is ahead of gtid_slave_pos with a GTID
    that another server wrote (it came by replication; this node writes no
    GTID of its own while it is a replica), gtid_slave_pos takes the binary
    log's GTID. The source proves the rest when the replica reconnects: it
    serves the new position only if the GTID is in its own binary log, else
    the IO thread stops with an error that names it. A binary log ahead
    with a GTID of this node's own server_id is a write made here (an old
    primary): no repair, that needs a rejoin or a rebuild."""
    binlog = parse_gtid_position(binlog_pos)
    repaired = parse_gtid_position(slave_pos)
    changed = False
    for domain, (server_id, seq_no) in binlog.items():
        recorded = repaired.get(domain)
        if recorded is not None and seq_no <= recorded[1]:
            continue
        if int(server_id) == int(own_server_id):
            return None
        repaired[domain] = (server_id, seq_no)
        changed = True
    return format_gtid_position(repaired) if changed else None


class Repair(object):
    """Restarts replication on a replica whose SQL thread stopped because a
    crash left gtid_slave_pos behind its binary log (crash_repair_position).
    Touches nothing else: any other error stays for status.yml, the /replica
    endpoint and the MySQLReplicationStopped alert to report."""

    def __init__(self, config, connect=None, log=None):
        self.config = config
        self.connect = connect
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._last_error = None
        self._refused = None

    def check(self):
        """One round. Returns what it found or did, in words."""
        conn = _local_admin_connection(self.config, self.connect)
        try:
            cur = conn.cursor()
            if not read_read_only(cur):
                return 'writable: not a replica'
            sql, columns = self.config['sql'], self.config['columns']
            cur.execute(sql['replica_status'])
            row = cur.fetchone()
            if row is None:
                return 'not replicating'
            status = dict(zip([d[0] for d in cur.description], row))
            if status.get(columns['sql_running']) == 'Yes' or \
                    int(status.get(columns['sql_errno']) or 0) != ER_GTID_STRICT_OUT_OF_ORDER:
                self._refused = None
                return 'nothing to repair'
            cur.execute(sql['crash_repair_positions'])
            binlog_pos, slave_pos, server_id = cur.fetchone()
            repaired = crash_repair_position(binlog_pos, slave_pos, server_id)
            if repaired is None:
                reason = ('the SQL thread stopped on a GTID its binary log holds, but the binary log (%s) is not '
                          'ahead of gtid_slave_pos (%s) with replicated transactions only: not repaired; rejoin '
                          'or rebuild this replica' % (binlog_pos, slave_pos))
                if reason != self._refused:
                    self.log('distweb-mysql-health repair: %s' % reason)
                self._refused = reason
                return 'refused'
            cur.execute(sql['stop_replica'])
            cur.execute(sql['set_gtid_position'], (repaired,))
            cur.execute(sql['start_replica'])
            self.log('distweb-mysql-health repair: REPAIRED replication after a crash: gtid_slave_pos %s -> %s '
                     '(the binary log holds those transactions: they were applied before the crash)'
                     % (slave_pos, repaired))
            return 'repaired'
        finally:
            conn.close()

    def run(self, stop=None):
        _run_every(self, self.config['repair_interval'], 'repair', stop)


def make_handler(config, connect=None, probe=None):
    probe = probe or PrimaryProbe(config['peer_timeout'], config['peer_cache'])
    source_is_primary = source_checker(config, probe)

    class Handler(BaseHTTPRequestHandler):
        server_version = 'distweb-mysql-health'

        def do_GET(self):  # noqa: N802 (http.server's name)
            path = self.path.split('?', 1)[0]
            state = None
            error = None
            if path in ('/', '/primary', '/replica'):
                try:
                    state = read_state(config, connect)
                except Exception as exc:  # any failure to read means unhealthy
                    error = str(exc)
            code, reason = judge(path, state, config['max_lag'], config['require_semi_sync'],
                                 source_is_primary, lambda: elected_elsewhere(config, probe, state))
            body = {'status': code, 'reason': reason, 'state': state}
            if path == '/':
                # this node's own verdict on /primary, without asking the
                # peers (they ask this: no question goes round in circles)
                body['local_primary'] = state is not None and judge(
                    '/primary', state, config['max_lag'], config['require_semi_sync'])[0] == 200
            if error:
                body['error'] = error
            data = (json.dumps(body, default=str) + '\n').encode('utf-8')
            self.send_response(code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.send_header('Connection', 'close')
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):  # the routers check several times a second
            pass

    return Handler


def main():
    try:
        config = load_config()
    except ConfigError as error:
        sys.exit('distweb-mysql-health: %s' % error)
    probe = PrimaryProbe(config['peer_timeout'], config['peer_cache'])
    if config['guard']:
        guard = Guard(config, probe=probe)
        threading.Thread(target=guard.run, name='guard', daemon=True).start()
    if can_repair(config):
        repair = Repair(config)
        threading.Thread(target=repair.run, name='repair', daemon=True).start()
    server = ThreadingHTTPServer((config['bind'], int(config['port'])), make_handler(config, probe=probe))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
