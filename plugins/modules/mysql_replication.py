#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: mysql_replication
short_description: Point a MariaDB/MySQL replica at its primary and keep it replicating
version_added: 0.1.0
description:
  - Runs on the replica host and logs in to the local server (typically as
    C(root) through the unix socket) to configure GTID replication from a primary
    and to start, stop or remove it.
  - Idempotent. It compares the wanted settings with what the replica shows
    (C(SHOW SLAVE STATUS) / C(SHOW REPLICA STATUS)) and issues
    C(CHANGE MASTER TO) / C(CHANGE REPLICATION SOURCE TO) only for settings that
    differ, so a replica that is already set up is never re-pointed and the
    task reports C(changed) only when a statement was run.
  - The replication password cannot be read back from the server. It is taken
    as matching unless the IO thread's last error is C(Access denied) (error
    1045); then the settings are issued again with O(primary_password).
  - Before changing anything it logs in to the primary with the O(primary_user)
    credentials and the same TLS settings the replica will use, and fails if
    that login fails, if the target is this server itself (same C(@@server_id)),
    if the target is read-only (C(@@read_only=1), so not a primary), or if the
    target is of another flavor (MariaDB vs MySQL).
  - After starting replication it waits up to O(wait_timeout) seconds for both
    threads to run and the IO thread to be connected, and fails with the
    server's own C(Last_IO_Error) or C(Last_SQL_Error) otherwise.
  - When settings change on a running replica it runs C(STOP SLAVE),
    C(CHANGE MASTER TO ...), C(START SLAVE) (C(STOP REPLICA),
    C(CHANGE REPLICATION SOURCE TO ...), C(START REPLICA) on MySQL).
  - Supports MariaDB 10.6 to 11.x and MySQL 8.0.23 or later (8.4 included).
    Only the default replication connection (channel) is managed.
author:
  - distweb developers (@distweb)
options:
  primary_host:
    description:
      - Host name or IP address of the primary, as the replica reaches it.
      - Required with O(state=started). Not used with other states.
    type: str
  primary_port:
    description:
      - TCP port of the primary.
    type: int
    default: 3306
  primary_user:
    description:
      - Replication user on the primary (needs C(REPLICATION SLAVE)).
      - Required with O(state=started).
    type: str
  primary_password:
    description:
      - Password of O(primary_user).
      - Required with O(state=started), as the module logs in to the primary
        with it to check the target before pointing the replica at it.
    type: str
  primary_use_gtid:
    description:
      - MariaDB only (C(MASTER_USE_GTID)). V(slave_pos) replicates from the
        GTIDs this server has applied as a replica, V(current_pos) also counts
        its own binlog (for a former primary that becomes a replica).
      - MySQL replicas always use C(SOURCE_AUTO_POSITION=1); this option is
        ignored there.
    type: str
    choices: [slave_pos, current_pos]
    default: slave_pos
  primary_heartbeat_period:
    description:
      - Seconds between heartbeats from the primary when it has nothing to send
        (C(MASTER_HEARTBEAT_PERIOD)), resolution 1 ms. V(0) turns them off.
      - Keep it below the replica's C(slave_net_timeout) so that a dead primary
        is noticed quickly.
    type: float
    default: 1.0
  primary_connect_retry:
    description:
      - Seconds between attempts of the IO thread to reconnect to the primary
        (C(MASTER_CONNECT_RETRY)).
    type: int
    default: 10
  primary_delay:
    description:
      - Seconds the replica stays behind the primary on purpose (C(MASTER_DELAY)).
    type: int
    default: 0
  primary_ssl:
    description:
      - Replicate over TLS (C(MASTER_SSL)). The module's own check login to the
        primary then uses TLS too.
    type: bool
    default: false
  primary_ssl_ca:
    description:
      - CA certificate file on the replica host to verify the primary with
        (C(MASTER_SSL_CA)). Not set means not managed (left as it is); an empty
        string clears it.
    type: path
  primary_ssl_cert:
    description:
      - Client certificate file on the replica host (C(MASTER_SSL_CERT)).
        Not set means not managed; an empty string clears it.
    type: path
  primary_ssl_key:
    description:
      - Private key file of O(primary_ssl_cert) (C(MASTER_SSL_KEY)).
        Not set means not managed; an empty string clears it.
    type: path
  primary_ssl_verify_server_cert:
    description:
      - Verify the primary's certificate and that it names O(primary_host)
        (C(MASTER_SSL_VERIFY_SERVER_CERT)). Needs O(primary_ssl=true).
    type: bool
    default: false
  state:
    description:
      - V(started) configures replication if its settings differ and makes sure
        both threads run and the IO thread is connected.
      - V(stopped) stops both threads and keeps the settings; the C(primary_*)
        options are not used.
      - V(absent) stops the threads and removes the replication settings
        (C(RESET SLAVE ALL) / C(RESET REPLICA ALL)); the C(primary_*) options
        are not used.
    type: str
    choices: [started, stopped, absent]
    default: started
  wait_timeout:
    description:
      - Seconds to wait, with O(state=started), for both threads to run and the
        IO thread to connect to the primary before failing.
      - A thread that stops with an error fails the task at once.
    type: int
    default: 30
extends_documentation_fragment:
  - distweb.infra.mysql_login
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - No statement that changes anything is run; the module still reads the
        replica's status and logs in to the primary to check it.
      - RV(queries) lists the statements that would run.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The replication settings before and after; passwords are shown as C(********).
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - Seeding the replica with the primary's data is not done here; with
    MariaDB set C(gtid_slave_pos) to the GTID position of the copy first.
seealso:
  - name: MariaDB CHANGE MASTER TO
    description: The statement the module issues on MariaDB.
    link: https://mariadb.com/kb/en/change-master-to/
  - name: MySQL CHANGE REPLICATION SOURCE TO
    description: The statement the module issues on MySQL.
    link: https://dev.mysql.com/doc/refman/8.4/en/change-replication-source-to.html
'''

EXAMPLES = r'''
- name: Replicate from the primary over TLS, GTID based
  distweb.infra.mysql_replication:
    login_unix_socket: /run/mysqld/mysqld.sock
    primary_host: server1.example.com
    primary_user: repl
    primary_password: "{{ vault_mysql_replication_password }}"
    primary_ssl: true
    primary_ssl_ca: /etc/mysql/ssl/ca.pem
    primary_ssl_verify_server_cert: true
    primary_heartbeat_period: 1
    primary_connect_retry: 5

- name: Re-point a replica at a new primary (what a failover does)
  distweb.infra.mysql_replication:
    primary_host: server2.example.com
    primary_user: repl
    primary_password: "{{ vault_mysql_replication_password }}"
    wait_timeout: 60

- name: A former primary rejoins as a replica
  distweb.infra.mysql_replication:
    primary_host: server2.example.com
    primary_user: repl
    primary_password: "{{ vault_mysql_replication_password }}"
    primary_use_gtid: current_pos

- name: Pause replication, keeping its settings
  distweb.infra.mysql_replication:
    state: stopped

- name: Remove replication (for example on a promoted replica)
  distweb.infra.mysql_replication:
    state: absent
'''

RETURN = r'''
queries:
  description:
    - The statements run, or that would run in check mode, with passwords shown as C(********).
  returned: always
  type: list
  elements: str
  sample:
    - STOP SLAVE
    - CHANGE MASTER TO MASTER_HOST='server2', MASTER_PASSWORD='********'
    - START SLAVE
status:
  description:
    - Replication status of the local server after the task (before it in check
      mode), with the same keys for MariaDB and MySQL.
  returned: always
  type: dict
  contains:
    configured:
      description: Whether the server is set up as a replica.
      type: bool
      returned: always
    flavor:
      description: V(mariadb) or V(mysql).
      type: str
      returned: always
    source_host:
      description: Host of the primary.
      type: str
      returned: always
    source_port:
      description: Port of the primary.
      type: int
      returned: always
    source_user:
      description: Replication user.
      type: str
      returned: always
    source_server_id:
      description: server_id of the primary as seen by the IO thread.
      type: int
      returned: always
    io_thread:
      description: C(Slave_IO_Running) / C(Replica_IO_Running) as shown (V(Yes), V(No), V(Connecting), ...).
      type: str
      returned: always
    io_running:
      description: Whether the IO thread runs and is connected.
      type: bool
      returned: always
    sql_thread:
      description: C(Slave_SQL_Running) / C(Replica_SQL_Running) as shown.
      type: str
      returned: always
    sql_running:
      description: Whether the SQL thread runs.
      type: bool
      returned: always
    using_gtid:
      description: V(slave_pos), V(current_pos) (MariaDB), V(auto_position) (MySQL) or V(no).
      type: str
      returned: always
    auto_position:
      description: Whether replication positions by GTID.
      type: bool
      returned: always
    gtid_io_pos:
      description: GTIDs received (MariaDB C(Gtid_IO_Pos), MySQL C(Retrieved_Gtid_Set)).
      type: str
      returned: always
    connect_retry:
      description: Seconds between reconnection attempts.
      type: int
      returned: always
    heartbeat_period:
      description: Heartbeat period in seconds.
      type: float
      returned: always
    sql_delay:
      description: Configured delay in seconds.
      type: int
      returned: always
    ssl:
      description: Whether replication uses TLS.
      type: bool
      returned: always
    ssl_ca:
      description: CA file of the replication connection.
      type: str
      returned: always
    ssl_cert:
      description: Client certificate of the replication connection.
      type: str
      returned: always
    ssl_key:
      description: Client key of the replication connection.
      type: str
      returned: always
    ssl_verify_server_cert:
      description: Whether the primary's certificate is verified.
      type: bool
      returned: always
    last_io_errno:
      description: Error number of the IO thread's last error, 0 if none.
      type: int
      returned: always
    last_io_error:
      description: The IO thread's last error.
      type: str
      returned: always
    last_sql_errno:
      description: Error number of the SQL thread's last error, 0 if none.
      type: int
      returned: always
    last_sql_error:
      description: The SQL thread's last error.
      type: str
      returned: always
    seconds_behind:
      description: Replication lag in seconds, null when the threads do not run.
      type: int
      returned: always
  sample:
    configured: true
    flavor: mariadb
    source_host: server1
    source_port: 3306
    source_user: repl
    io_thread: "Yes"
    io_running: true
    sql_thread: "Yes"
    sql_running: true
    using_gtid: slave_pos
    auto_position: true
    gtid_io_pos: 0-1-42
    connect_retry: 10
    heartbeat_period: 1.0
    sql_delay: 0
    ssl: true
    last_io_errno: 0
    last_io_error: ""
    last_sql_errno: 0
    last_sql_error: ""
    seconds_behind: 0
primary:
  description: What the module found on the primary when it checked it.
  returned: when O(state=started)
  type: dict
  contains:
    server_id:
      description: C(@@server_id) of the primary.
      type: int
    hostname:
      description: C(@@hostname) of the primary.
      type: str
    port:
      description: C(@@port) of the primary.
      type: int
    read_only:
      description: Whether the primary is read-only (always false on success).
      type: bool
    version:
      description: C(VERSION()) of the primary.
      type: str
    flavor:
      description: V(mariadb) or V(mysql).
      type: str
  sample:
    server_id: 1
    hostname: server1
    port: 3306
    read_only: false
    version: 10.11.6-MariaDB-0+deb12u1-log
    flavor: mariadb
msg:
  description: What the module found or did, in words.
  returned: always
  type: str
  sample: Replication from server1:3306 is running
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.distweb.infra.plugins.module_utils.mysql_connection import (
    ER_ACCESS_DENIED,
    MySQLError,
    format_mysql_error,
    mysql_common_argument_spec,
    mysql_connect,
)
from ansible_collections.distweb.infra.plugins.module_utils.mysql_dialect import MASK, UnsupportedServerError
from ansible_collections.distweb.infra.plugins.module_utils.mysql_server import (
    MySQLServer,
    START_SETTLE_SECONDS,
    compare_replica_settings,
    threads_started,
    threads_stopped,
    wait_for_replica,
)

# option name -> wanted-settings key (module_utils CHANGE_SOURCE_KEYS)
OPTION_KEYS = (
    ('primary_host', 'source_host'),
    ('primary_port', 'source_port'),
    ('primary_user', 'source_user'),
    ('primary_password', 'source_password'),
    ('primary_use_gtid', 'using_gtid'),
    ('primary_heartbeat_period', 'heartbeat_period'),
    ('primary_connect_retry', 'connect_retry'),
    ('primary_delay', 'sql_delay'),
    ('primary_ssl', 'ssl'),
    ('primary_ssl_ca', 'ssl_ca'),
    ('primary_ssl_cert', 'ssl_cert'),
    ('primary_ssl_key', 'ssl_key'),
    ('primary_ssl_verify_server_cert', 'ssl_verify_server_cert'),
)


def argument_spec():
    spec = mysql_common_argument_spec()
    spec.update(
        primary_host=dict(type='str'),
        primary_port=dict(type='int', default=3306),
        primary_user=dict(type='str'),
        primary_password=dict(type='str', no_log=True),
        primary_use_gtid=dict(type='str', default='slave_pos', choices=['slave_pos', 'current_pos']),
        primary_heartbeat_period=dict(type='float', default=1.0),
        primary_connect_retry=dict(type='int', default=10),
        primary_delay=dict(type='int', default=0),
        primary_ssl=dict(type='bool', default=False),
        primary_ssl_ca=dict(type='path'),
        primary_ssl_cert=dict(type='path'),
        primary_ssl_key=dict(type='path'),
        primary_ssl_verify_server_cert=dict(type='bool', default=False),
        state=dict(type='str', default='started', choices=['started', 'stopped', 'absent']),
        wait_timeout=dict(type='int', default=30),
    )
    return spec


def check_params(module):
    p = module.params
    problems = []
    if not 1 <= p['primary_port'] <= 65535:
        problems.append('primary_port must be between 1 and 65535')
    if not 0 <= p['primary_heartbeat_period'] <= 4294967:
        problems.append('primary_heartbeat_period must be between 0 and 4294967 seconds')
    if not 1 <= p['primary_connect_retry'] <= 31536000:
        problems.append('primary_connect_retry must be between 1 and 31536000 seconds')
    if not 0 <= p['primary_delay'] <= 2147483647:
        problems.append('primary_delay must be between 0 and 2147483647 seconds')
    if p['wait_timeout'] < 0:
        problems.append('wait_timeout must not be negative')
    if p['state'] == 'started':
        for option in ('primary_host', 'primary_user', 'primary_password'):
            if p[option] is None:
                problems.append('%s is required with state=started' % option)
        if p['primary_host'] == '':
            problems.append('primary_host must not be empty')
        if p['primary_ssl_verify_server_cert'] and not p['primary_ssl']:
            problems.append('primary_ssl_verify_server_cert needs primary_ssl=true')
    if problems:
        module.fail_json(msg='; '.join(problems))


def thread_view(value):
    value = (value or 'No').lower()
    return {'yes': 'running', 'no': 'stopped'}.get(value, value)


def settings_view(status):
    """Replication settings as shown in the diff, named like the options."""
    if not status['configured']:
        return {'configured': False}
    return dict(
        configured=True,
        io_thread=thread_view(status['io_thread']),
        sql_thread=thread_view(status['sql_thread']),
        primary_host=status['source_host'],
        primary_port=status['source_port'],
        primary_user=status['source_user'],
        primary_password=MASK,
        primary_use_gtid=status['using_gtid'],
        primary_heartbeat_period=status['heartbeat_period'],
        primary_connect_retry=status['connect_retry'],
        primary_delay=status['sql_delay'],
        primary_ssl=status['ssl'],
        primary_ssl_ca=status['ssl_ca'],
        primary_ssl_cert=status['ssl_cert'],
        primary_ssl_key=status['ssl_key'],
        primary_ssl_verify_server_cert=status['ssl_verify_server_cert'],
    )


class Replication(object):
    """One run of the module against the local server."""

    def __init__(self, module, local):
        self.module = module
        self.local = local
        self.dialect = local.dialect
        self.queries = []
        self.ran = False
        self.primary_info = None

    # -- helpers -------------------------------------------------------------
    def result(self, **kwargs):
        result = dict(changed=self.ran or (self.module.check_mode and bool(self.queries)),
                      queries=list(self.queries))
        result.update(kwargs)
        return result

    def fail(self, msg, **kwargs):
        kwargs.setdefault('status', self.safe_status())
        if self.primary_info is not None:
            kwargs.setdefault('primary', self.primary_info)
        self.module.fail_json(msg=msg, **self.result(**kwargs))

    def safe_status(self):
        try:
            return self.local.replica_status()
        except MySQLError:
            return None

    def wanted_settings(self):
        p = self.module.params
        wanted = dict((key, p[option]) for option, key in OPTION_KEYS)
        wanted['using_gtid'] = self.dialect.gtid_mode(p['primary_use_gtid'])
        return wanted

    def run(self, statements, restart_if_failed=None):
        """Run statements (not in check mode). If ``restart_if_failed`` (the
        CHANGE after our own STOP) fails, start replication again with the
        settings it had before failing."""
        for statement in statements:
            self.queries.append(statement.display)
        if self.module.check_mode:
            return
        for statement in statements:
            try:
                self.local.execute(statement)
            except MySQLError as exc:
                msg = 'Statement failed on the local server: %s: %s' % (statement.display, format_mysql_error(exc))
                if statement is restart_if_failed:
                    try:
                        self.local.execute(self.dialect.start_replica())
                        msg += '; replication was started again with its previous settings'
                    except MySQLError as exc2:
                        msg += '; starting replication again failed too: %s' % format_mysql_error(exc2)
                self.ran = True
                self.fail(msg)
            self.ran = True

    # -- the primary ---------------------------------------------------------
    def check_primary(self, local_info):
        """Log in to the target and fail, before changing anything, if it is
        unreachable, this server itself, read-only or of another flavor."""
        p = self.module.params
        where = '%s:%s' % (p['primary_host'], p['primary_port'])
        params = dict(
            user=p['primary_user'], password=p['primary_password'],
            host=p['primary_host'], port=p['primary_port'],
            connect_timeout=p['connect_timeout'],
            ssl=p['primary_ssl'], ssl_disabled=not p['primary_ssl'],
            ssl_ca=p['primary_ssl_ca'], ssl_cert=p['primary_ssl_cert'], ssl_key=p['primary_ssl_key'],
            ssl_verify_cert=p['primary_ssl_verify_server_cert'],
            ssl_verify_identity=p['primary_ssl_verify_server_cert'],
            default_socket=False, config_file=None,
        )
        conn = mysql_connect(self.module, params, what='the primary with the primary_* credentials')
        primary = MySQLServer(conn, 'the primary')
        try:
            info = primary.server_info()
        except UnsupportedServerError as exc:
            self.fail('The primary %s is not supported: %s' % (where, exc))
        except MySQLError as exc:
            self.fail('Reading the settings of the primary %s failed: %s' % (where, format_mysql_error(exc)))
        finally:
            primary.close()
        self.primary_info = info

        same_uuid = local_info.get('server_uuid') and local_info.get('server_uuid') == info.get('server_uuid')
        if info['server_id'] == local_info['server_id'] or same_uuid:
            self.fail(
                'Refusing to replicate from %s: it has the same server_id (%s) as this server (%s:%s, target '
                'reports %s:%s). It is this server itself, or a server with a duplicate server_id. Nothing '
                'was changed.' % (where, info['server_id'], local_info['hostname'], local_info['port'],
                                  info['hostname'], info['port']))
        if info['flavor'] != local_info['flavor']:
            self.fail('Refusing to replicate from %s: it runs %s and this server runs %s. Nothing was changed.'
                      % (where, info['version'], local_info['version']))
        if info['read_only']:
            self.fail(
                'Refusing to replicate from %s (%s, server_id %s): it is read-only (@@read_only=1), so it is '
                'not a writable primary. Nothing was changed.' % (where, info['hostname'], info['server_id']))
        return info

    # -- states --------------------------------------------------------------
    def started(self, before):
        p = self.module.params
        if self.dialect.flavor == 'mysql' and p['primary_use_gtid'] != 'slave_pos':
            self.module.warn('primary_use_gtid is ignored on MySQL, which always uses SOURCE_AUTO_POSITION=1')
        local_info = self.local.server_info()
        self.check_primary(local_info)
        if not local_info['read_only']:
            self.module.warn('This replica is writable (@@read_only=0): set read_only=1 on replicas so that '
                             'only the primary takes writes')

        wanted = self.wanted_settings()
        differ = compare_replica_settings(before, wanted)
        password_rejected = before['configured'] and before['last_io_errno'] == ER_ACCESS_DENIED
        statements = []
        restart_if_failed = None
        reconfigure = bool(differ or password_rejected or not before['configured'])
        if reconfigure:
            change = dict((key, wanted[key]) for key in differ)
            change['source_password'] = wanted['source_password']
            # a CHANGE without it resets the heartbeat period to the default
            change['heartbeat_period'] = wanted['heartbeat_period']
            change_statement = self.dialect.change_source(change)
            if not threads_stopped(before):
                statements.append(self.dialect.stop_replica())
                restart_if_failed = change_statement
            statements.append(change_statement)
            statements.append(self.dialect.start_replica())
        elif not threads_started(before):
            statements.append(self.dialect.start_replica())

        predicted = dict(before)
        predicted.update((key, value) for key, value in wanted.items() if value is not None)
        predicted.update(configured=True, io_thread='Yes', sql_thread='Yes')
        where = '%s:%s' % (p['primary_host'], p['primary_port'])

        if self.module.check_mode:
            if not statements and not (before['io_running'] and before['sql_running']) and (
                    before['last_io_errno'] or before['last_sql_errno']):
                # nothing would be run, and what runs is failing: not ok
                self.fail('Replication is not healthy (IO thread: %s, SQL thread: %s): last IO error %d: %s; '
                          'last SQL error %d: %s' % (before['io_thread'], before['sql_thread'],
                                                     before['last_io_errno'], before['last_io_error'],
                                                     before['last_sql_errno'], before['last_sql_error']),
                          status=before)
            self.run(statements)
            if statements:
                msg = 'Would run %d statement(s) to replicate from %s' % (len(statements), where)
            else:
                msg = 'Replication from %s is running' % where
            return self.result(msg=msg, status=before, primary=self.primary_info,
                               diff=dict(before=settings_view(before), after=settings_view(predicted)))

        self.run(statements, restart_if_failed=restart_if_failed)
        ok, after, message = wait_for_replica(self.local, p['wait_timeout'],
                                              settle=START_SETTLE_SECONDS if statements else 0)
        diff = dict(before=settings_view(before), after=settings_view(after))
        if not ok:
            self.fail(message, status=after, diff=diff)
        msg = 'Replication from %s is running' % where
        if not before['configured']:
            msg += ' (newly configured)'
        elif differ:
            msg += ' (changed: %s)' % ', '.join(differ)
        elif password_rejected:
            msg += ' (password set again after access denied)'
        elif statements:
            msg += ' (started)'
        return self.result(msg=msg, status=after, primary=self.primary_info, diff=diff)

    def stopped(self, before):
        statements = [] if threads_stopped(before) else [self.dialect.stop_replica()]
        self.run(statements)
        after = before if self.module.check_mode else self.local.replica_status()
        predicted = dict(after)
        if self.module.check_mode:
            predicted.update(io_thread='No', sql_thread='No')
        elif not threads_stopped(after):
            self.fail('Replication threads still run after %s (IO thread: %s, SQL thread: %s)'
                      % (self.dialect.stop_replica_sql, after['io_thread'], after['sql_thread']), status=after)
        if not before['configured']:
            msg = 'This server is not a replica'
        else:
            msg = 'Replication is stopped'
        return self.result(msg=msg, status=after,
                           diff=dict(before=settings_view(before), after=settings_view(predicted)))

    def absent(self, before):
        statements = []
        if before['configured'] or not threads_stopped(before):
            if not threads_stopped(before):
                statements.append(self.dialect.stop_replica())
            statements.append(self.dialect.reset_replica_all())
        self.run(statements)
        after = before if self.module.check_mode else self.local.replica_status()
        if not self.module.check_mode and after['configured']:
            self.fail('Replication settings are still there after %s' % self.dialect.reset_replica_all_sql,
                      status=after)
        return self.result(msg='Replication is removed' if statements else 'This server is not a replica',
                           status=after,
                           diff=dict(before=settings_view(before), after={'configured': False}))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[('state', 'started', ('primary_host', 'primary_user', 'primary_password'))],
        supports_check_mode=True,
    )
    check_params(module)

    local = MySQLServer(mysql_connect(module, what='the local server'), 'the local server')
    try:
        try:
            replication = Replication(module, local)
        except UnsupportedServerError as exc:
            module.fail_json(msg='The local server is not supported: %s' % exc)
        except MySQLError as exc:
            module.fail_json(msg='Query failed on the local server: %s' % format_mysql_error(exc))
        state = module.params['state']
        try:
            before = local.replica_status()
            result = getattr(replication, state)(before)
        except MySQLError as exc:
            replication.fail('Query failed on the local server: %s' % format_mysql_error(exc))
        if not module._diff:
            result.pop('diff', None)
        module.exit_json(**result)
    finally:
        local.close()


if __name__ == '__main__':
    main()
