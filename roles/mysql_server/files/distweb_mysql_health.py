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

The guard (a process of its own, this program with --guard, started by the
endpoint when ``guard`` is true; by default when require_semi_sync is; it
keeps one session open) checks every guard_interval seconds: when this node is
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
again, and writes one line to stderr. The same stop after a crash inside a
DDL, whose completion by DDL recovery the binary log holds under this
node's own server_id, is repaired too (recovered_ddl_repair). It touches no
other error; see crash_repair_position and recovered_ddl_repair for the
proofs and their limits.

Configuration: a JSON file named by $DISTWEB_MYSQL_HEALTH_CONFIG, keys of
DEFAULTS below: {"socket", "user", "password", "bind", "port", "max_lag",
"timeout", "require_semi_sync", "guard", "guard_user", "guard_interval",
"peers" (["host:port", ...] of the other nodes' endpoints), "names" (what
replicas call this node in Master_Host), "peer_timeout",
"peer_cache", "repair", "repair_interval", "sql", "columns"}.

The server's SQL spellings are not in this file: "sql" holds the statements
({"replica_status", "stop_replica", "start_replica", "set_gtid_position",
"crash_repair_positions", "binlog_files", ...}) and "columns" the names of
the replica status columns it reads ({"source_host", "io_running",
"sql_running", "lag", "io_errno", "io_error", "sql_errno", "sql_error",
"relay_log_file", "relay_log_pos"}), both written by the mysql_server role
from its vars/<flavour>.yml. A flavour without "crash_repair_positions"
(null) gets no crash repair, one without the DDL_RECOVERY_SQL_KEYS no
repair after a crash inside a DDL.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import re
import subprocess
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
COLUMN_KEYS = ('source_host', 'io_running', 'sql_running', 'lag', 'io_errno', 'io_error', 'sql_errno', 'sql_error',
               'relay_log_file', 'relay_log_pos')
# The statements of the second crash repair (recovered_ddl_repair); a
# flavour without them (null) gets the first one only.
DDL_RECOVERY_SQL_KEYS = ('binlog_files', 'binlog_events', 'relay_log_events', 'ddl_exec_mode', 'reset_binlog',
                         'set_binlog_state')
# How far back it reads: binary logs (newest first), events per log. DDL
# recovery writes its statements first thing into the log opened at
# startup, so a few events of the last few logs hold them.
RECOVERY_MAX_FILES = 16
RECOVERY_MAX_EVENTS = 200


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


def can_repair_recovered_ddl(config):
    """Whether the flavour has the statements of recovered_ddl_repair."""
    return all(config['sql'].get(key) for key in DDL_RECOVERY_SQL_KEYS)


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
    """Asks other nodes' endpoints for /primary (or their state, GET /),
    keeping each answer for ``ttl`` seconds from when it was asked.
    Concurrent askers of one node wait for a single request. An answer that
    took longer than ``ttl`` to come (the asker, or the whole node, was
    frozen while the request was out: a paused VM or container) describes
    the moment it was sent, not now: it is asked again, once. ``fetch`` and
    ``clock`` are for tests."""

    def __init__(self, timeout=1.0, ttl=1.0, fetch=None, clock=None):
        self.timeout, self.ttl = timeout, ttl
        self.fetch = fetch or http_get
        self.clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._entries = {}  # key -> [lock, expires, answer]

    def _kept(self, key, ask):
        with self._lock:
            entry = self._entries.setdefault(key, [threading.Lock(), None, None])
        with entry[0]:
            if entry[1] is not None and self.clock() < entry[1]:
                return entry[2]
            for _attempt in range(2):
                asked = self.clock()
                answer = ask()
                if self.clock() - asked <= self.ttl:
                    break
            entry[1], entry[2] = asked + self.ttl, answer
            return answer

    def is_primary(self, host, port):
        """(True/False, detail)."""
        port = int(port)
        return self._kept((host, port), lambda: self._ask(host, port))

    def state_of(self, host, port):
        """The JSON answer of the node's GET / (None when it does not
        answer), kept like is_primary's."""
        port = int(port)
        return self._kept(('/', host, port), lambda: self._state(host, port))

    def states_of(self, nodes):
        """state_of of every (host, port), asked at the same time: a round
        of the guard waits for the slowest peer, not for the sum of them."""
        answers = [None] * len(nodes)

        def ask(i):
            answers[i] = self.state_of(*nodes[i])

        threads = [threading.Thread(target=ask, args=(i,), daemon=True) for i in range(1, len(nodes))]
        for thread in threads:
            thread.start()
        if nodes:
            ask(0)
        for thread in threads:
            thread.join()
        return answers

    def _state(self, host, port):
        try:
            status, body = self.fetch(host, port, '/', self.timeout)
            return json.loads(body) if status == 200 else None
        except Exception:  # refused, timed out, not our endpoint
            return None

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
    peers = [parse_peer(peer, config['port']) for peer in config.get('peers') or []]
    for (host, port), answer in zip(peers, probe.states_of(peers)):
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

    # A round that starts this much later than its interval says was frozen
    # (a paused VM or container) or starved: its fence line says so.
    PAUSE = 1.0

    def __init__(self, config, connect=None, probe=None, log=None, clock=None):
        self.config = config
        self.connect = connect
        self.probe = probe or PrimaryProbe(config['peer_timeout'], config['peer_cache'])
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.clock = clock or time.monotonic
        self._last_error = None
        self._last_round = None
        self._conn = None  # kept from round to round: a wake costs no login

    def check(self):
        """One round. Returns what it found or did, in words."""
        began = self.clock()
        paused = 0.0
        if self._last_round is not None:
            paused = began - self._last_round - self.config['guard_interval']
        try:
            return self._round(began, paused)
        finally:
            self._last_round = self.clock()

    def _round(self, began, paused):
        if self._conn is None:
            self._conn = _local_admin_connection(self.config, self.connect)
        try:
            cur = self._conn.cursor()
            if read_read_only(cur):
                return 'read-only'
            semi_sync = read_semi_sync(cur)
            read = self.clock()
            peer = elected_elsewhere(self.config, self.probe, {'semi_sync': semi_sync})
            if peer is None:
                return 'writable, no other primary (or replicas follow this one)'
            asked = self.clock()
            # Asking the peers took time: decide on a fresh reading.
            if read_read_only(cur):
                return 'changed while the peers were asked'
            fenced, killed, error = fence(cur)
            if fenced:
                self.log('distweb-mysql-health guard: FENCED this node (read_only=1, %d client session(s) '
                         'killed): it was writable while %s is the primary and no replica follows this node%s'
                         % (killed, peer, self._timing(began, paused, read, asked)))
                return 'fenced'
            self.log('distweb-mysql-health guard: could not fence this node (%d client session(s) killed): %s'
                     % (killed, error))
            return 'fence failed'
        except Exception:  # the server restarted, the session was killed: log in again next round
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:  # already gone
                pass
            raise

    def _timing(self, began, paused, read, asked):
        """How long the fencing round took (reading this node, asking the
        peers, fencing), and the pause before it when the node was frozen
        (or starved) first."""
        now = self.clock()
        took = ' (%d ms: %d reading this node, %d asking the peers, %d fencing' % tuple(
            round(ms * 1000) for ms in (now - began, read - began, asked - read, now - asked))
        if paused >= self.PAUSE:
            took += ', %.1f s after the round was due: this node was frozen or starved' % paused
        return took + ')'

    def run(self, stop=None):
        _run_every(self, self.config['guard_interval'], 'guard', stop)


def parse_gtid_state(text):
    """A MariaDB GTID state (gtid_binlog_state, a Gtid_list event's list:
    '0-11-100,0-13-7') as {(domain, server_id): seq_no}."""
    state = {}
    for part in str(text or '').replace(' ', '').strip('[]').split(','):
        if part:
            domain, server_id, seq_no = (int(number) for number in part.split('-'))
            state[(domain, server_id)] = seq_no
    return state


def format_gtid_state(state):
    """``state`` as gtid_binlog_state text, each domain's entries by seq_no:
    the server takes a domain's last entry for its position."""
    return ','.join('%d-%d-%d' % (domain, server_id, seq_no) for (domain, server_id), seq_no
                    in sorted(state.items(), key=lambda item: (item[0][0], item[1], item[0][1])))


def state_position(state):
    """The position ({domain: (server_id, seq_no)}) a GTID state ends at."""
    position = {}
    for (domain, server_id), seq_no in state.items():
        if domain not in position or seq_no > position[domain][1]:
            position[domain] = (server_id, seq_no)
    return position


def parse_gtid_position(text):
    """A MariaDB GTID position ('0-1-100,1-2-7') as {domain: (server_id, seq_no)}."""
    return state_position(parse_gtid_state(text))


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


_GTID_EVENT = re.compile(r'\bGTID (\d+-\d+-\d+)\b')
# Events that belong to no transaction.
_FILE_EVENTS = frozenset(('Format_desc', 'Gtid_list', 'Binlog_checkpoint', 'Rotate', 'Stop', 'Start_encryption'))


def parse_binlog_events(rows):
    """Rows of SHOW BINLOG EVENTS (or SHOW RELAYLOG EVENTS): Log_name, Pos,
    Event_type, Server_id, End_log_pos, Info. Returns (gtid_list, groups):
    the log's Gtid_list (the GTID state before it, text) and its
    transactions, [(gtid, [(event_type, info), ...]), ...]."""
    gtid_list, groups = '', []
    for row in rows:
        event_type, info = row[2], row[5] or ''
        if event_type == 'Gtid_list':
            gtid_list = info.strip().strip('[]')
        elif event_type == 'Gtid':
            found = _GTID_EVENT.search(info)
            groups.append((found.group(1) if found else info, []))
        elif groups and event_type not in _FILE_EVENTS:
            groups[-1][1].append((event_type, info))
    return gtid_list, groups


_USE_DB = r'(?:use `(?:[^`]|``)*`; )?'
_RECOVERED_DROP = re.compile(_USE_DB + r'DROP (?:TABLE|VIEW|TRIGGER|DATABASE|SCHEMA) .*/\* generated by ddl recovery \*/\s*$',
                             re.I | re.S)
_DROP_STATEMENT = _USE_DB + r'DROP (?:TEMPORARY )?(?:TABLE|VIEW|TRIGGER|DATABASE|SCHEMA) '
_DROP = re.compile(_DROP_STATEMENT, re.I)
_DROP_IF_EXISTS = re.compile(_DROP_STATEMENT + 'IF EXISTS ', re.I)
_GENERATED = re.compile(r'\s*/\* generated by (?:ddl recovery|server) \*/\s*$')


def _shorten(text, limit=300):
    """``text`` cut in the middle to about ``limit`` characters: a long
    statement's start and its end (its comment) both stay in a log line."""
    text = str(text)
    if len(text) <= limit:
        return text
    return '%s ... %s' % (text[:limit * 2 // 3], text[-(limit // 3):])


def _statement(text):
    return _GENERATED.sub('', text.strip())


def own_past(gtid_list, applied, own_server_id):
    """Whether a log's Gtid_list holds a GTID of this server past ``applied``
    (a position): the node's own transactions began in an earlier log."""
    for (domain, server_id), seq_no in parse_gtid_state(gtid_list).items():
        if server_id == int(own_server_id) and seq_no > applied.get(domain, (None, -1))[1]:
            return True
    return False


def recovered_ddl_repair(tail, slave_pos, own_server_id, source_gtid, source_statement, idempotent_ddl):
    """What to do with a replica whose DDL crash recovery wrote statements
    into its binary log under its own server_id, or why not to touch it.

    A replica killed while its SQL thread applies a DDL (a DROP TABLE of
    several tables half done, an ALTER TABLE past its point of no return)
    finishes that DDL at its next start (MariaDB's DDL log) and binlogs what
    it finished as a statement of its own: a new GTID of this server's
    server_id, with the sequence number the source's DDL has. gtid_slave_pos
    stays before the DDL; the source sends it again, and GTID strict mode
    stops the SQL thread (ER_GTID_STRICT_OUT_OF_ORDER). crash_repair_position
    refuses this (a GTID of the node's own); this is the case it refuses
    that can be told from a write made here.

    ``tail`` is [(gtid_list, groups)] (parse_binlog_events) of the binary
    logs that hold what was written past gtid_slave_pos, oldest first; the
    first log's Gtid_list is the state before it. ``source_gtid`` and
    ``source_statement`` are the source's next transaction, where the SQL
    thread stopped (the relay log). The node's own transactions past
    gtid_slave_pos must all be single statements, in the one domain, and the
    binary log must have been at gtid_slave_pos before them; then:

    * all are DROPs generated by ddl recovery and the source's transaction
      is a DROP that can run again (IF EXISTS, or slave_ddl_exec_mode
      IDEMPOTENT): the source's DROP is applied again, for what recovery did
      not finish (it drops only the tables the statement had reached);
    * one statement, the source's own (an ALTER TABLE finished by recovery):
      the source's transaction is recorded as applied.

    Returns (plan, None) with plan {'binlog_state', 'slave_pos', 'action',
    'local'}: the repair empties the binary log (RESET MASTER), sets
    gtid_binlog_state and gtid_slave_pos to the plan's, and starts
    replication; no GTID of this node's is left to look like an errant
    write. Or (None, reason)."""
    own = int(own_server_id)
    applied = parse_gtid_position(slave_pos)
    if not tail:
        return None, 'no binary log was read'
    base = parse_gtid_state(tail[0][0])
    local = []
    for gtid, events in [group for _gtid_list, groups in tail for group in groups]:
        try:
            domain, server_id, seq_no = (int(number) for number in gtid.split('-'))
        except ValueError:
            return None, 'an event group without a GTID (%s) follows gtid_slave_pos' % gtid
        if server_id != own:
            return None, 'GTID %s of server %d follows this node\'s own past gtid_slave_pos' % (gtid, server_id)
        statements = [info for event_type, info in events if event_type == 'Query']
        if len(events) != 1 or len(statements) != 1:
            return None, 'its own GTID %s is a transaction, not one DDL statement' % gtid
        local.append((domain, seq_no, statements[0]))
    if not local:
        return None, 'its binary log holds nothing of its own past gtid_slave_pos'
    domains = set(domain for domain, _seq_no, _statement in local)
    if len(domains) != 1:
        return None, 'its own GTIDs past gtid_slave_pos are in several domains'
    domain = domains.pop()
    before = state_position(base).get(domain)
    if before != applied.get(domain):
        return None, ('its binary log was not at gtid_slave_pos before its own GTIDs (%s against %s)'
                      % (format_gtid_state(base) or 'empty', slave_pos or 'empty'))
    try:
        source_domain, source_server, source_seq = (int(number) for number in str(source_gtid).split('-'))
    except ValueError:
        return None, 'the source\'s next transaction in the relay log has no GTID (%s)' % source_gtid
    if (source_domain, source_seq) != (domain, (before[1] if before else 0) + 1) or source_server == own:
        return None, ('the source\'s next transaction (%s) is not the one after gtid_slave_pos (%s)'
                      % (source_gtid, slave_pos))
    statements = [statement for _domain, _seq_no, statement in local]
    if all(_RECOVERED_DROP.match(statement) for statement in statements) and _DROP.match(source_statement):
        if not (idempotent_ddl or _DROP_IF_EXISTS.match(source_statement)):
            return None, ('the source\'s DROP would fail on what recovery dropped (slave_ddl_exec_mode is not '
                          'IDEMPOTENT)')
        return {'binlog_state': format_gtid_state(base), 'slave_pos': slave_pos, 'action': 'applied again',
                'local': statements}, None
    if len(statements) == 1 and _statement(statements[0]) == _statement(source_statement):
        state = dict(base)
        state[(domain, source_server)] = source_seq
        position = dict(applied)
        position[domain] = (source_server, source_seq)
        return {'binlog_state': format_gtid_state(state), 'slave_pos': format_gtid_position(position),
                'action': 'recorded as applied', 'local': statements}, None
    return None, ('its own statements (%s) are not ddl recovery\'s completion of the source\'s %s'
                  % (_shorten('; '.join(statements)), _shorten(source_statement, 200)))


def read_recovery_tail(cur, sql, slave_pos, own_server_id):
    """The binary logs that hold this node's own GTIDs past gtid_slave_pos,
    oldest first, as recovered_ddl_repair wants them; None when they are
    more than RECOVERY_MAX_FILES logs or RECOVERY_MAX_EVENTS events a log
    (not the few statements of a recovery)."""
    applied = parse_gtid_position(slave_pos)
    cur.execute(sql['binlog_files'])
    names = [row[0] for row in cur.fetchall()]
    tail = []
    for name in reversed(names[-RECOVERY_MAX_FILES:]):
        cur.execute(sql['binlog_events'], (name, RECOVERY_MAX_EVENTS))
        rows = cur.fetchall()
        if len(rows) >= RECOVERY_MAX_EVENTS:
            return None
        gtid_list, groups = parse_binlog_events(rows)
        tail.insert(0, (gtid_list, groups))
        if not own_past(gtid_list, applied, own_server_id):
            return tail
    return None


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
                plan, why = None, 'the recovered-DDL repair is not in this flavour'
                if can_repair_recovered_ddl(self.config):
                    plan, why = self._recovered_ddl_plan(cur, status, slave_pos, server_id)
                if plan is not None:
                    return self._apply(cur, plan, binlog_pos, slave_pos)
                reason = ('the SQL thread stopped on a GTID its binary log holds, but the binary log (%s) is not '
                          'ahead of gtid_slave_pos (%s) with replicated transactions only, nor with ddl '
                          'recovery\'s completion of the source\'s next DDL (%s): not repaired; rejoin or rebuild '
                          'this replica' % (binlog_pos, slave_pos, why))
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

    def _recovered_ddl_plan(self, cur, status, slave_pos, server_id):
        sql, columns = self.config['sql'], self.config['columns']
        tail = read_recovery_tail(cur, sql, slave_pos, server_id)
        if tail is None:
            return None, ('more than %d binary logs or %d events a log past gtid_slave_pos'
                          % (RECOVERY_MAX_FILES, RECOVERY_MAX_EVENTS))
        relay_file, relay_pos = status.get(columns['relay_log_file']), status.get(columns['relay_log_pos'])
        if not relay_file or relay_pos is None:
            return None, 'the replica status names no relay log position'
        cur.execute(sql['relay_log_events'], (relay_file, int(relay_pos)))
        _gtid_list, groups = parse_binlog_events(cur.fetchall())
        if not groups:
            return None, 'the relay log holds no transaction at the SQL thread\'s position'
        source_gtid, events = groups[0]
        source_statement = events[0][1] if events and events[0][0] == 'Query' else ''
        cur.execute(sql['ddl_exec_mode'])
        idempotent = str(cur.fetchone()[0]).upper() == 'IDEMPOTENT'
        return recovered_ddl_repair(tail, slave_pos, server_id, source_gtid, source_statement, idempotent)

    def _apply(self, cur, plan, binlog_pos, slave_pos):
        sql = self.config['sql']
        cur.execute(sql['stop_replica'])
        # what the plan was made from must not have moved meanwhile (an
        # operator's statement, another repair): the binary log goes next
        cur.execute(sql['crash_repair_positions'])
        if tuple(cur.fetchone()[:2]) != (binlog_pos, slave_pos):
            cur.execute(sql['start_replica'])
            return 'changed while planned'
        cur.execute(sql['reset_binlog'])
        cur.execute(sql['set_binlog_state'], (plan['binlog_state'],))
        cur.execute(sql['set_gtid_position'], (plan['slave_pos'],))
        cur.execute(sql['start_replica'])
        self.log('distweb-mysql-health repair: REPAIRED replication after a crash in a DDL: ddl recovery had '
                 'binlogged %s under this node\'s server_id (binary log %s, gtid_slave_pos %s); binary log emptied, '
                 'gtid_binlog_state %s, gtid_slave_pos %s: the source\'s DDL %s'
                 % (_shorten('; '.join(plan['local'])), binlog_pos, slave_pos, plan['binlog_state'], plan['slave_pos'],
                    plan['action']))
        return 'repaired'

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


class HealthHTTPServer(ThreadingHTTPServer):
    """The endpoint's HTTP server. A client that closes its connection before
    the answer is written (a router's check that has seen enough, or timed
    out) is no error of the endpoint's: it costs no traceback in the
    journal, where one for every such check would bury the guard's and the
    repair's lines."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        ThreadingHTTPServer.handle_error(self, request, client_address)


def start_guard(log=None):
    """The guard in a process of its own (this program with --guard): the
    endpoint's request threads, many at once when a frozen node wakes up
    to a queue of router checks, do not hold it back on the interpreter
    lock. When it ends, the endpoint ends too, and systemd starts both
    again: a node is never left without its guard."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--guard'])

    def watch():
        code = child.wait()
        log('distweb-mysql-health: the guard process ended (exit %s); stopping the endpoint with it' % code)
        os._exit(1)

    threading.Thread(target=watch, name='guard-watch', daemon=True).start()
    return child


def follow_parent(parent, interval=1.0, getppid=None, exit_now=None):
    """In the guard's process: end when the endpoint that started it is
    gone (its parent changes), so that a guard never outlives its endpoint
    outside systemd either (systemd ends the whole unit anyway)."""
    getppid = getppid or os.getppid
    exit_now = exit_now or os._exit
    while getppid() == parent:
        time.sleep(interval)
    exit_now(0)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = load_config()
    except ConfigError as error:
        sys.exit('distweb-mysql-health: %s' % error)
    if argv[:1] == ['--guard']:
        threading.Thread(target=follow_parent, args=(os.getppid(),), name='parent-watch', daemon=True).start()
        Guard(config).run()
        return
    probe = PrimaryProbe(config['peer_timeout'], config['peer_cache'])
    if config['guard']:
        start_guard()
    if can_repair(config):
        repair = Repair(config)
        threading.Thread(target=repair.run, name='repair', daemon=True).start()
    server = HealthHTTPServer((config['bind'], int(config['port'])), make_handler(config, probe=probe))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
