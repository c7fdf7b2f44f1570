# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster-level modules (failover, switchover, rejoin): several nodes
reached over TCP from the control node with one administrative login.

The one place for:

* their options: the cluster login (``mysql_cluster_argument_spec``), a node
  (``cluster_node_options``) and the replication they set up
  (``replication_argument_spec``), all documented by the
  ``distweb.infra.mysql_cluster`` doc fragment, and their checks;
* ``ClusterNode``: one node, its connection and the reading of its state
  for the ``topology`` module utils (which make the decisions);
* ``ClusterOperations``: the changing steps they share (fence, promote,
  point a replica at a primary, ...), and ``WholeClusterOperations``, the
  phases of a run acting on every node (failover, switchover);
* ``run_cluster_operation``: their ``main()``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import threading

from ansible_collections.distweb.infra.plugins.module_utils.mysql_connection import (
    ER_LOCK_WAIT_TIMEOUT,
    ER_NO_SUCH_THREAD,
    MySQLError,
    format_mysql_error,
    is_connection_error,
    mysql_connect_node,
    mysql_error_code,
    node_login_params,
)
from ansible_collections.distweb.infra.plugins.module_utils.mysql_dialect import UnsupportedServerError
from ansible_collections.distweb.infra.plugins.module_utils.mysql_server import (
    START_SETTLE_SECONDS,
    MySQLServer,
    monotonic,
    pause,
    semi_sync_member,
    wait_for_gtid_position,
    wait_for_replica,
)


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Nodes and the steps of the operations
# ---------------------------------------------------------------------------

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
        # (monotonic seconds, source_signs()) read right after the login
        self.first_signs = None
        # this node's own login timeout, instead of connect_timeout
        self.connect_timeout = None

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
        if self.connect_timeout:
            params = dict(params, connect_timeout=self.connect_timeout)
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

    def require_privileges(self, nodes):
        """Fail, naming the reachable nodes of ``nodes`` where the login
        lacks a privilege the operation needs. Checked before anything is
        changed, so that a half-done promotion cannot fail on a grant."""
        problems = []
        for node in nodes:
            if node.reachable:
                missing = node.missing_privileges()
                if missing:
                    problems.append('%s lacks %s' % (node.name, ', '.join(missing)))
        if problems:
            self.fail('The login %s lacks privileges the operation needs: %s. Grant them on the primary (they '
                      'replicate; see the module notes, or re-run site.yml with the mysql_cluster role defaults); '
                      'nothing was changed' % (self.params.get('login_user') or 'user', '; '.join(problems)))

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
        """Stop the IO thread of ``node``, its connection to the source
        killed first. A thread waiting for a hung source does not notice a
        STOP for about 2 s (the server signals it again every 2 s until it
        reacts); KILL closes its socket at once. The STOP follows
        ``IO_KILL_SETTLE`` seconds after the KILL: sent at once, it meets the
        thread before it has reacted and waits the 2 s again. Nothing in the
        process list shows the reaction (the thread stays "Killed", in the
        state it was in), hence a fixed pause. Measured on MariaDB 11.8, two
        replicas of a paused source stopped at once: STOP right after the
        KILL 2.0 s in 7 of 8 stops, 10 ms after it 2 ms in 8 of 8. A thread
        gone meanwhile is no error."""
        killed = False
        for thread_id in node.server.replica_io_thread_ids():
            try:
                self.execute(node, [node.dialect.kill_connection(thread_id)])
                killed = True
            except MySQLError as exc:
                if mysql_error_code(exc) != ER_NO_SUCH_THREAD:
                    raise
        if killed:
            pause(IO_KILL_SETTLE)
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


# Seconds between the KILL of an IO thread's connection and its STOP
# (ClusterOperations.stop_io): 10 ms sufficed when measured; five times that
# for a loaded machine.
IO_KILL_SETTLE = 0.05


def at_once(nodes, step):
    """Run ``step(node)`` for each of ``nodes``, one thread each, and wait
    for all: {node name: the exception it raised, or None}. For steps that
    may each wait out a timeout (a dead or hung node), so that the run
    waits once, not once per node; the caller acts on the exceptions in its
    own thread."""
    raised = {}

    def run(node):
        try:
            step(node)
            raised[node.name] = None
        except Exception as exc:  # pylint: disable=broad-except
            raised[node.name] = exc

    threads = [threading.Thread(target=run, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return raised


class WholeClusterOperations(ClusterOperations):
    """A run acting on every node of O(nodes) (failover, switchover): the
    nodes by name, the plan in words, the killed sessions, the warnings and
    the seconds per phase, all returned by ``finish``; and the phases both
    runs go through: ``log_in``, ``read_node``, ``catch_up`` (the new
    primary applies what it must have), ``promote_and_verify`` and
    ``repoint`` then ``wait_replicating`` (``repoint_and_wait``)."""

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

    def connect_all(self, signs=False):
        """Log in to every node at once (``at_once``), so that the slowest
        node (dead or hung: each login is bounded by connect_timeout) costs
        its own timeout once, not once per node in turn. With ``signs``,
        each node that answers is read at once for ``first_signs`` (seconds
        since start, ``source_signs()``), the first reading of what it hears
        from its source, taken while the slower logins still wait. Fails,
        changing nothing, when a node refused the login: a node that answers
        is not unreachable."""

        def connect(node):
            if node.connect(self.params) and signs:
                try:
                    node.first_signs = (monotonic(), node.server.source_signs())
                except MySQLError:
                    node.first_signs = None  # read again later; read_node reports what is wrong

        errors = [exc for exc in at_once(self.nodes, connect).values() if exc is not None]
        if errors:
            raise errors[0]
        refused = [node for node in self.nodes if node.refused_code]
        if refused:
            self.fail('Cannot log in to %s: %s. A node that answers is not unreachable; nothing was changed'
                      % (', '.join(node.name for node in refused), '; '.join(node.error for node in refused)))

    # -- the phases of a run ---------------------------------------------------
    def log_in(self, signs=False):
        """Log in to every node (``connect_all``, ``signs`` passed on) and
        check the privileges of the login on those that answered: fails,
        changing nothing, when a node refused the login or the login lacks a
        privilege."""
        self.connect_all(signs=signs)
        self.require_privileges(self.nodes)

    def read_node(self, node):
        """The state of ``node`` for ``topology`` (semi-sync and GTID
        history included). A node whose connection breaks becomes
        unreachable; any other server error, or a server the collection
        does not support, ends the run through ``abort``."""
        try:
            return node.read_state(semi_sync=True, history=True)
        except MySQLError as exc:
            if not is_connection_error(exc):
                self.abort('Reading the state of %s (%s) failed: %s'
                           % (node.name, node.where, format_mysql_error(exc)))
            node.lost(exc)
            return node.base_state()
        except UnsupportedServerError as exc:
            self.abort('%s (%s) is not supported: %s' % (node.name, node.where, exc))

    def catch_up(self, node, position, timeout):
        """Wait up to ``timeout`` seconds until ``node`` has applied the GTID
        ``position`` (``wait_for_gtid_position``): ``(ok, message)``, a
        server error being a message."""
        try:
            return wait_for_gtid_position(node.server, position, timeout)
        except MySQLError as exc:
            return False, format_mysql_error(exc)

    def promote_and_verify(self, node, left_as_is, **result):
        """``promote`` ``node`` and check that it takes writes. When either
        fails, the run fails (changed, with ``result``) saying that
        ``left_as_is`` (a sentence: what stays as it is) and that the rest is
        to be finished by hand."""
        try:
            self.promote(node)
            if node.server.server_info()['read_only']:
                raise MySQLError('%s is still read-only after the promotion' % node.name)
        except MySQLError as exc:
            self.fail('Promoting %s failed: %s. %s; finish by hand.' % (node.name, format_mysql_error(exc), left_as_is),
                      changed=True, **result)

    def repoint(self, names, primary, states):
        """Make the nodes ``names`` replicas of ``primary`` (``point_at``,
        with STOP SLAVE first unless both threads were stopped in their
        ``states``). Returns ``(nodes pointed, failures)``, a failure being
        ``{name, reason}``."""
        by_state = dict((s['name'], s) for s in states)
        started = []
        failed = []
        for name in names:
            node = self.by_name[name]
            state = by_state[name]
            try:
                self.point_at(node, primary, running=state['sql_running'] or state['io_running'])
                started.append(node)
            except MySQLError as exc:
                failed.append(dict(name=name, reason=format_mysql_error(exc)))
        return started, failed

    def wait_replicating(self, nodes, timeout):
        """Wait up to ``timeout`` seconds for each of ``nodes`` (just
        pointed at a primary) until both its threads run and stay running
        (``wait_for_replica``). Returns ``(names replicating, failures)``."""
        replicating = []
        failed = []
        for node in nodes:
            try:
                ok, dummy, message = wait_for_replica(node.server, timeout, settle=START_SETTLE_SECONDS)
            except MySQLError as exc:
                ok, message = False, format_mysql_error(exc)
            if ok:
                replicating.append(node.name)
            else:
                failed.append(dict(name=node.name, reason=message))
        return replicating, failed

    def repoint_and_wait(self, names, primary, states, timeout):
        """``repoint`` then ``wait_replicating``: ``(names replicating,
        failures)``."""
        started, failed = self.repoint(names, primary, states)
        replicating, not_replicating = self.wait_replicating(started, timeout)
        return replicating, failed + not_replicating

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
