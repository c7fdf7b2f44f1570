#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: mysql_replication_info
short_description: Report the replication role, GTID positions, semi-sync state and errant transactions of a MariaDB/MySQL server
version_added: 0.1.0
description:
  - Runs on a database host and logs in to the local server (typically as
    C(root) through the unix socket) to read, without changing anything, what
    a failover or switchover needs to know about it.
  - Returns the same keys for MariaDB and MySQL. Values a flavor does not have
    are V(null) (for example RV(gtid.slave_pos) on MySQL) or V(false) (for
    example RV(super_read_only) on MariaDB).
  - "The role is decided in this order: V(replica) if a replication source is
    configured (C(SHOW SLAVE STATUS) / C(SHOW REPLICA STATUS) names a source
    host, whether or not its threads run); else V(primary) if the server is
    writable (C(@@read_only=0), and C(@@super_read_only=0) on MySQL) or at
    least one replica is connected to it (C(SHOW SLAVE HOSTS) /
    C(SHOW REPLICAS)); else V(standalone)."
  - With O(primary_gtid), or with O(primary_host) to read it from the primary
    itself, it reports the errant transactions of this server, the GTIDs it
    has that the primary lacks (MariaDB C(@@gtid_binlog_pos), MySQL
    C(@@gtid_executed), of both servers). A replica with errant transactions
    must not be promoted or re-pointed without a decision about them.
  - Warns when semi-synchronous replication is enabled on the primary but
    not active (it fell back to asynchronous replication,
    so acknowledged commits may exist on this server only), when no
    semi-sync replica is connected to a primary that waits for one, and when
    errant transactions are found.
  - Supports MariaDB 10.6 to 11.x and MySQL 8.0.23 or later (8.4 included).
    Only the default replication connection (channel) is reported.
author:
  - distweb developers (@distweb)
options:
  primary_gtid:
    description:
      - The primary's GTIDs to find errant transactions against, read after
        this server's (an older value can make this server look ahead).
      - MariaDB the primary's C(@@gtid_binlog_pos) (or, more precise, its
        C(@@gtid_binlog_state)); MySQL the primary's C(@@gtid_executed).
      - Mutually exclusive with O(primary_host).
    type: str
  primary_host:
    description:
      - Host name or IP address of the primary. When set, the module logs in
        to it after reading the local server and reads its GTIDs itself
        (MariaDB C(@@gtid_binlog_pos), MySQL C(@@gtid_executed)).
      - Any account can read them; the replication user will do.
      - Mutually exclusive with O(primary_gtid).
    type: str
  primary_port:
    description:
      - TCP port of the primary.
    type: int
    default: 3306
  primary_user:
    description:
      - User to log in to the primary with. Required with O(primary_host).
    type: str
  primary_password:
    description:
      - Password of O(primary_user).
    type: str
  primary_ssl:
    description:
      - Log in to the primary over TLS. Setting O(primary_ssl_ca),
        O(primary_ssl_cert), O(primary_ssl_key) or
        O(primary_ssl_verify_server_cert) turns TLS on as well.
    type: bool
    default: false
  primary_ssl_ca:
    description:
      - CA certificate file to verify the primary's certificate chain with.
    type: path
  primary_ssl_cert:
    description:
      - Client certificate file for the login to the primary.
    type: path
  primary_ssl_key:
    description:
      - Private key file of O(primary_ssl_cert).
    type: path
  primary_ssl_verify_server_cert:
    description:
      - Verify the primary's certificate (against O(primary_ssl_ca) or the
        system's CAs) and that it names O(primary_host).
    type: bool
    default: false
extends_documentation_fragment:
  - distweb.infra.mysql_login
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - The module only reads; it runs the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - "MariaDB GTID positions name only the last GTID of each domain, so errant
    transactions are found per domain: a domain in which this server's binlog
    has a higher sequence number than the primary's, or the same sequence
    number from another server_id. A write on a replica whose sequence number
    is below the primary's current one cannot be seen in positions (in
    C(gtid_strict_mode) it stops the replica's SQL thread instead);
    O(primary_gtid) set to the primary's C(@@gtid_binlog_state) finds it."
  - The account needs C(REPLICATION CLIENT) (MySQL, MariaDB before 10.5),
    C(SLAVE MONITOR) and C(REPLICATION MASTER ADMIN) (MariaDB 10.5 and later),
    or C(SUPER), to read the replication status and the connected replicas.
    Without the right to list connected replicas RV(replicas) is V(null) and
    a warning says so.
seealso:
  - module: distweb.infra.mysql_replication
  - name: MariaDB Global Transaction ID
    description: GTID positions, domains and gtid_strict_mode.
    link: https://mariadb.com/kb/en/gtid/
  - name: MySQL GTID sets
    description: The GTID set format, tags included.
    link: https://dev.mysql.com/doc/refman/8.4/en/replication-gtids-concepts.html
'''

EXAMPLES = r'''
- name: Read the replication state of every database host
  distweb.infra.mysql_replication_info:
    login_unix_socket: /run/mysqld/mysqld.sock
  register: db_info

- name: Fail when semi-sync on the primary fell back to asynchronous replication
  ansible.builtin.assert:
    that: not db_info.semi_sync.fallen_back_to_async
    fail_msg: "{{ inventory_hostname }} acknowledges commits no replica has"

- name: Look for errant transactions on the replicas, reading the primary's GTIDs
  distweb.infra.mysql_replication_info:
    primary_host: server1.example.com
    primary_user: repl
    primary_password: "{{ vault_mysql_replication_password }}"
    primary_ssl_ca: /etc/mysql/ssl/ca.pem
  register: replica_info
  when: inventory_hostname in groups['mysql_replicas']

- name: The same against a GTID position gathered from the primary before
  distweb.infra.mysql_replication_info:
    primary_gtid: "{{ hostvars[groups['mysql_primary'][0]].db_info.gtid.binlog }}"
  register: replica_info

- name: Stop before promoting a replica with errant transactions
  ansible.builtin.assert:
    that: not replica_info.errant.has_errant
    fail_msg: "{{ inventory_hostname }} has errant transactions: {{ replica_info.errant.errant_transactions }}"
'''

RETURN = r'''
role:
  description:
    - V(replica), V(primary) or V(standalone), decided as the description says.
  returned: always
  type: str
  sample: replica
server_id:
  description: C(@@server_id).
  returned: always
  type: int
  sample: 2
server_uuid:
  description:
    - MySQL C(@@server_uuid); MariaDB C(server_uid) when the server has one
      (global variable or status value), else V(null).
  returned: always
  type: str
  sample: 3e11fa47-71ca-11e1-9e33-c80aa9429562
version:
  description: C(VERSION()).
  returned: always
  type: str
  sample: 10.11.6-MariaDB-0+deb12u1-log
flavor:
  description: V(mariadb) or V(mysql).
  returned: always
  type: str
  sample: mariadb
read_only:
  description: Whether the server refuses writes of ordinary users (C(@@read_only), or C(@@super_read_only) on MySQL).
  returned: always
  type: bool
  sample: true
super_read_only:
  description:
    - MySQL C(@@super_read_only). Always V(false) on MariaDB, which has no
      such variable (users with C(SUPER) / C(READ ONLY ADMIN) can write to a
      read-only MariaDB).
  returned: always
  type: bool
  sample: false
hostname:
  description: C(@@hostname).
  returned: always
  type: str
  sample: server2
port:
  description: C(@@port).
  returned: always
  type: int
  sample: 3306
gtid:
  description:
    - GTID positions of the server in canonical form (see the
      C(distweb.infra) C(gtid) module utils), or as the server shows them
      when they cannot be parsed (with a warning).
  returned: always
  type: dict
  contains:
    executed:
      description:
        - Everything this server has executed. MariaDB C(@@gtid_current_pos),
          MySQL C(@@gtid_executed).
      type: str
      returned: always
    binlog:
      description:
        - What is in this server's binary log. MariaDB C(@@gtid_binlog_pos),
          MySQL C(@@gtid_executed). The value to compare between servers for
          errant transactions.
      type: str
      returned: always
    received:
      description:
        - What the IO thread has received from the source, relay log included.
          MariaDB C(Gtid_IO_Pos), MySQL C(Retrieved_Gtid_Set). V(null) when
          no replication is configured.
      type: str
      returned: always
    slave_pos:
      description:
        - MariaDB C(@@gtid_slave_pos), what replication has applied. V(null) on MySQL.
      type: str
      returned: always
    purged:
      description:
        - MySQL C(@@gtid_purged), the GTIDs no longer in the binary log. V(null) on MariaDB.
      type: str
      returned: always
  sample:
    executed: 0-1-42
    binlog: 0-1-42
    received: 0-1-42
    slave_pos: 0-1-42
    purged: null
replication:
  description:
    - Replication status of this server as a replica (default connection /
      channel), with the same keys for both flavors; C(configured=false) and
      mostly V(null) values when it is not a replica.
  returned: always
  type: dict
  contains:
    configured:
      description: Whether a replication source is configured.
      type: bool
      returned: always
    flavor:
      description: V(mariadb) or V(mysql).
      type: str
      returned: always
    source_host:
      description: Host of the source (primary).
      type: str
      returned: always
    source_port:
      description: Port of the source.
      type: int
      returned: always
    source_user:
      description: Replication user.
      type: str
      returned: always
    source_server_id:
      description: server_id of the source as seen by the IO thread.
      type: int
      returned: always
    io_thread:
      description: C(Slave_IO_Running) / C(Replica_IO_Running) as shown (V(Yes), V(No), V(Connecting)).
      type: str
      returned: always
    io_running:
      description: Whether the IO thread runs and is connected to the source.
      type: bool
      returned: always
    io_state:
      description: C(Slave_IO_State) / C(Replica_IO_State), what the IO thread does.
      type: str
      returned: always
    sql_thread:
      description: C(Slave_SQL_Running) / C(Replica_SQL_Running) as shown.
      type: str
      returned: always
    sql_running:
      description: Whether the SQL (applier) thread runs.
      type: bool
      returned: always
    sql_state:
      description: C(Slave_SQL_Running_State) / C(Replica_SQL_Running_State).
      type: str
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
      description: GTIDs received, as the server shows them (MariaDB C(Gtid_IO_Pos), MySQL C(Retrieved_Gtid_Set)).
      type: str
      returned: always
    executed_gtid_set:
      description: MySQL C(Executed_Gtid_Set) of the status; V(null) on MariaDB.
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
    sql_remaining_delay:
      description: Seconds left of the delay of the event waiting to be applied, or V(null).
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
      description: Whether the source's certificate is verified.
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
      description: Replication lag in seconds, V(null) when the threads do not run.
      type: int
      returned: always
    source_log_file:
      description: Binary log file of the source the IO thread reads.
      type: str
      returned: always
    read_source_log_pos:
      description: Position in RV(replication.source_log_file) the IO thread has read up to.
      type: int
      returned: always
    relay_source_log_file:
      description: Binary log file of the source of the last event applied.
      type: str
      returned: always
    exec_source_log_pos:
      description: Position in RV(replication.relay_source_log_file) applied up to.
      type: int
      returned: always
  sample:
    configured: true
    flavor: mariadb
    source_host: server1
    source_port: 3306
    source_user: repl
    source_server_id: 1
    io_thread: "Yes"
    io_running: true
    io_state: Waiting for master to send event
    sql_thread: "Yes"
    sql_running: true
    sql_state: Slave has read all relay log; waiting for more updates
    using_gtid: slave_pos
    auto_position: true
    gtid_io_pos: 0-1-42
    executed_gtid_set: null
    connect_retry: 10
    heartbeat_period: 1.0
    sql_delay: 0
    sql_remaining_delay: null
    ssl: true
    ssl_ca: /etc/mysql/ssl/ca.pem
    ssl_cert: ""
    ssl_key: ""
    ssl_verify_server_cert: true
    last_io_errno: 0
    last_io_error: ""
    last_sql_errno: 0
    last_sql_error: ""
    seconds_behind: 0
    source_log_file: mysql-bin.000003
    read_source_log_pos: 1234
    relay_source_log_file: mysql-bin.000003
    exec_source_log_pos: 1234
replicas:
  description:
    - Replicas connected to this server (C(SHOW SLAVE HOSTS) / C(SHOW REPLICAS)),
      V(null) when the account may not list them.
  returned: always
  type: list
  elements: dict
  contains:
    server_id:
      description: server_id of the replica.
      type: int
    host:
      description: The replica's C(report_host), empty when it does not set one.
      type: str
    port:
      description: The replica's C(report_port) (or its port).
      type: int
    source_id:
      description: server_id of the server it replicates from (this one).
      type: int
    uuid:
      description: The replica's server UUID (MySQL), V(null) on MariaDB.
      type: str
  sample:
    - server_id: 2
      host: server2
      port: 3306
      source_id: 1
      uuid: null
semi_sync:
  description:
    - State of semi-synchronous replication, from the global variables and
      status values (MariaDB C(rpl_semi_sync_master_*) / C(rpl_semi_sync_slave_*),
      MySQL C(rpl_semi_sync_source_*) / C(rpl_semi_sync_replica_*) or, with the
      older plugins, C(rpl_semi_sync_master_*) / C(rpl_semi_sync_slave_*)).
  returned: always
  type: dict
  contains:
    available:
      description: Whether the server has semi-sync variables (always on MariaDB; on MySQL only with a plugin installed).
      type: bool
      returned: always
    source_enabled:
      description: Whether the source side is enabled (C(rpl_semi_sync_master_enabled) / C(rpl_semi_sync_source_enabled)).
      type: bool
      returned: always
    replica_enabled:
      description: Whether the replica side is enabled (C(rpl_semi_sync_slave_enabled) / C(rpl_semi_sync_replica_enabled)).
      type: bool
      returned: always
    source_status:
      description:
        - Whether the source side is active (C(Rpl_semi_sync_master_status) /
          C(Rpl_semi_sync_source_status)). V(false) while enabled means it
          fell back to asynchronous replication.
      type: bool
      returned: always
    replica_status:
      description: Whether the replica side is active (C(Rpl_semi_sync_slave_status) / C(Rpl_semi_sync_replica_status)).
      type: bool
      returned: always
    fallen_back_to_async:
      description:
        - V(true) when the source side is enabled but not active on the
          primary (role V(primary)). Commits are then acknowledged to clients
          without waiting for a replica, so a failover can lose them. A
          warning is issued too.
        - Always V(false) on a replica or a read-only standalone node, whose
          source side serves no writes.
      type: bool
      returned: always
    clients:
      description: Semi-sync replicas connected (C(Rpl_semi_sync_master_clients) / C(Rpl_semi_sync_source_clients)), V(null) if unknown.
      type: int
      returned: always
    wait_point:
      description: V(AFTER_SYNC) (lossless) or V(AFTER_COMMIT), V(null) if unknown.
      type: str
      returned: always
    timeout_ms:
      description: Milliseconds a commit waits for an acknowledgement before semi-sync falls back to asynchronous.
      type: int
      returned: always
    wait_no_replica:
      description:
        - Whether the source side keeps waiting while no semi-sync replica is connected
          (C(rpl_semi_sync_master_wait_no_slave) / C(rpl_semi_sync_source_wait_no_replica)).
      type: bool
      returned: always
    lossless:
      description:
        - Whether the settings make this node, as a primary, acknowledge a commit only once a replica has it and
          never fall back to asynchronous replication (C(AFTER_SYNC), waiting with no replica connected, a timeout
          of C(4294967295) ms or more, the replica side enabled; the mysql_server role's C(mysql_server_lossless)).
        - Says nothing about whether the source side is on now.
      type: bool
      returned: always
    source_variable:
      description:
        - The name of the source side's switch on this server (C(rpl_semi_sync_master_enabled) or
          C(rpl_semi_sync_source_enabled)), V(null) without semi-sync.
      type: str
      returned: always
    yes_tx:
      description: Commits acknowledged by a replica since the server started or the counters were flushed.
      type: int
      returned: always
    no_tx:
      description: Commits not acknowledged by a replica (done asynchronously).
      type: int
      returned: always
  sample:
    available: true
    source_enabled: true
    replica_enabled: false
    source_status: false
    replica_status: false
    fallen_back_to_async: true
    clients: 0
    wait_point: AFTER_SYNC
    timeout_ms: 10000
    wait_no_replica: true
    lossless: false
    source_variable: rpl_semi_sync_master_enabled
    yes_tx: 1520
    no_tx: 3
errant:
  description:
    - Errant transactions of this server against the primary's GTIDs given
      by O(primary_gtid) or read with O(primary_host).
  returned: always
  type: dict
  contains:
    checked:
      description: Whether a comparison was made (O(primary_gtid) or O(primary_host) given).
      type: bool
      returned: always
    local_gtid:
      description: This server's GTIDs compared (MariaDB C(@@gtid_binlog_pos), MySQL C(@@gtid_executed)).
      type: str
      returned: always
    primary_gtid:
      description: The primary's GTIDs used, canonical; V(null) when not checked.
      type: str
      returned: always
    primary_gtid_from:
      description: V(primary_gtid) (the option) or C(host:port) of the primary read; V(null) when not checked.
      type: str
      returned: always
    errant_transactions:
      description:
        - GTIDs this server has that the primary lacks, empty when none;
          V(null) when not checked. MySQL a GTID set; MariaDB per domain
          C(D-S-N) or C(D-S-FIRST..D-S-LAST) (the range between the primary's
          sequence number and this server's, with this server's last server_id).
      type: str
      returned: always
    has_errant:
      description: Whether RV(errant.errant_transactions) is not empty; V(null) when not checked.
      type: bool
      returned: always
    comparison:
      description:
        - This server against the primary, V(equal), V(behind) (normal for a
          replica), V(ahead) or V(diverged) (each has GTIDs the other lacks);
          V(null) when not checked.
      type: str
      returned: always
  sample:
    checked: true
    local_gtid: 0-1-42,1-2-3
    primary_gtid: 0-1-45
    primary_gtid_from: server1:3306
    errant_transactions: 1-2-1..1-2-3
    has_errant: true
    comparison: diverged
msg:
  description: What the module found, in words.
  returned: always
  type: str
  sample: server2 (server_id 2, 10.11.6-MariaDB-0+deb12u1-log) is a replica of server1:3306 (IO thread Yes, SQL thread Yes, 0 s behind)
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.distweb.infra.plugins.module_utils import gtid as gtid_utils
from ansible_collections.distweb.infra.plugins.module_utils.mysql_connection import (
    MySQLError,
    format_mysql_error,
    mysql_common_argument_spec,
    mysql_connect,
)
from ansible_collections.distweb.infra.plugins.module_utils.mysql_dialect import UnsupportedServerError
from ansible_collections.distweb.infra.plugins.module_utils.mysql_server import MySQLServer


def argument_spec():
    spec = mysql_common_argument_spec()
    spec.update(
        primary_gtid=dict(type='str'),
        primary_host=dict(type='str'),
        primary_port=dict(type='int', default=3306),
        primary_user=dict(type='str'),
        primary_password=dict(type='str', no_log=True),
        primary_ssl=dict(type='bool', default=False),
        primary_ssl_ca=dict(type='path'),
        primary_ssl_cert=dict(type='path'),
        primary_ssl_key=dict(type='path'),
        primary_ssl_verify_server_cert=dict(type='bool', default=False),
    )
    return spec


def decide_role(status, info, replicas):
    """replica / primary / standalone, by the rule in DOCUMENTATION."""
    if status['configured']:
        return 'replica'
    if not info['read_only'] or replicas:
        return 'primary'
    return 'standalone'


class Info(object):
    """One run of the module against the local server."""

    def __init__(self, module, local):
        self.module = module
        self.local = local
        self.dialect = local.dialect
        self.flavor = self.dialect.flavor

    def canonical(self, value, what):
        """A GTID value in canonical form, or as shown when it cannot be parsed."""
        if value is None:
            return None
        try:
            return gtid_utils.format_gtid(value, self.flavor)
        except gtid_utils.GtidError as exc:
            self.module.warn('Cannot parse %s of this server, shown as it is: %s' % (what, exc))
            return value

    def read_replicas(self):
        try:
            return self.local.replica_hosts()
        except MySQLError as exc:
            self.module.warn('Cannot list the replicas connected to this server (%s): %s. The role is decided '
                             'without them.' % (self.dialect.replica_hosts_sql, format_mysql_error(exc)))
            return None

    def read_server_uuid(self, info):
        if 'server_uuid' in info:
            return info['server_uuid']
        try:
            return self.local.server_uid()
        except MySQLError:
            return None

    # -- errant transactions ---------------------------------------------------
    def primary_params(self):
        p = self.module.params
        tls = bool(p['primary_ssl'] or p['primary_ssl_ca'] or p['primary_ssl_cert'] or p['primary_ssl_key']
                   or p['primary_ssl_verify_server_cert'])
        return dict(
            user=p['primary_user'], password=p['primary_password'],
            host=p['primary_host'], port=p['primary_port'],
            connect_timeout=p['connect_timeout'],
            ssl=tls, ssl_ca=p['primary_ssl_ca'], ssl_cert=p['primary_ssl_cert'], ssl_key=p['primary_ssl_key'],
            ssl_verify_cert=bool(p['primary_ssl_ca'] or p['primary_ssl_verify_server_cert']),
            ssl_verify_identity=p['primary_ssl_verify_server_cert'],
            default_socket=False, config_file=None,
        )

    def read_primary_gtid(self):
        """(GTIDs, where) of the primary, read from it now."""
        p = self.module.params
        where = '%s:%s' % (p['primary_host'], p['primary_port'])
        conn = mysql_connect(self.module, self.primary_params(),
                             what='the primary %s with the primary_* credentials' % where)
        primary = MySQLServer(conn, 'the primary')
        try:
            try:
                info = primary.server_info()
                if info['flavor'] != self.flavor:
                    self.module.fail_json(
                        msg='The primary %s runs %s and this server runs %s: their GTIDs cannot be compared'
                            % (where, info['version'], self.local.version))
                if info['read_only']:
                    self.module.warn('The primary %s (server_id %s) is read-only: it may not be the primary, '
                                     'and errant transactions are looked for against it all the same'
                                     % (where, info['server_id']))
                positions = primary.gtid_positions()
            except UnsupportedServerError as exc:
                self.module.fail_json(msg='The primary %s is not supported: %s' % (where, exc))
            except MySQLError as exc:
                self.module.fail_json(msg='Reading the GTIDs of the primary %s failed: %s'
                                          % (where, format_mysql_error(exc)))
        finally:
            primary.close()
        return positions['binlog'], where

    def errant(self, local_binlog):
        p = self.module.params
        result = dict(checked=False, local_gtid=local_binlog, primary_gtid=None, primary_gtid_from=None,
                      errant_transactions=None, has_errant=None, comparison=None)
        if p['primary_gtid'] is not None:
            primary_value, where = p['primary_gtid'], 'primary_gtid'
        elif p['primary_host']:
            primary_value, where = self.read_primary_gtid()
        else:
            return result
        try:
            primary_gtid = gtid_utils.format_gtid(primary_value, self.flavor)
        except gtid_utils.GtidError as exc:
            self.module.fail_json(msg='The primary GTIDs (%s) cannot be used: %s' % (where, exc))
        try:
            found = gtid_utils.errant(local_binlog, primary_gtid, self.flavor)
            comparison = gtid_utils.compare(local_binlog, primary_gtid, self.flavor)
        except gtid_utils.GtidError as exc:
            self.module.fail_json(msg='Cannot compare the GTIDs of this server with the primary\'s: %s' % exc)
        result.update(checked=True, primary_gtid=primary_gtid, primary_gtid_from=where,
                      errant_transactions=found, has_errant=bool(found), comparison=comparison)
        if found:
            self.module.warn('This server has errant transactions, GTIDs the primary (%s) lacks: %s. Do not '
                             'promote it or re-point it before deciding what to do with them.' % (where, found))
        return result

    # -- semi-sync -------------------------------------------------------------
    def semi_sync(self, role):
        semi = self.local.semi_sync()
        # Only a primary serves writes: a read-only standalone node (say, a new
        # replica before it is set up) has nothing to fall back from.
        semi['fallen_back_to_async'] = bool(semi['fallen_back_to_async'] and role == 'primary')
        status_name = ' or '.join(self.dialect.semi_sync_names()['source_status'][1])
        if semi['fallen_back_to_async']:
            self.module.warn(
                'Semi-synchronous replication is enabled on this %s but not active (%s=OFF): it fell back to '
                'asynchronous replication, so commits are acknowledged before any replica has them and a '
                'failover can lose them (%s semi-sync replica(s) connected, %s commit(s) not acknowledged by a '
                'replica so far)' % (role, status_name, semi['clients'], semi['no_tx']))
        elif role == 'primary' and semi['source_enabled'] and semi['clients'] == 0:
            self.module.warn(
                'Semi-synchronous replication is enabled on this primary but no semi-sync replica is connected: '
                'the next commit waits up to %s ms for one and then falls back to asynchronous replication'
                % semi['timeout_ms'])
        return semi

    # -- everything ------------------------------------------------------------
    def run(self):
        info = self.local.server_info()
        status = self.local.replica_status()
        positions = self.local.gtid_positions()
        replicas = self.read_replicas()
        role = decide_role(status, info, replicas)

        gtid = dict(
            executed=self.canonical(positions['executed'], 'the executed GTIDs'),
            binlog=self.canonical(positions['binlog'], 'the binlog GTIDs'),
            received=self.canonical(status['gtid_io_pos'] or '', 'the received GTIDs')
            if status['configured'] else None,
            slave_pos=self.canonical(positions['slave_pos'], '@@gtid_slave_pos'),
            purged=self.canonical(positions['purged'], '@@gtid_purged'),
        )
        errant = self.errant(gtid['binlog'])
        semi = self.semi_sync(role)

        name = '%s (server_id %s, %s)' % (info['hostname'], info['server_id'], info['version'])
        if role == 'replica':
            lag = status['seconds_behind']
            msg = '%s is a replica of %s:%s (IO thread %s, SQL thread %s, %s)' % (
                name, status['source_host'], status['source_port'], status['io_thread'], status['sql_thread'],
                'lag unknown' if lag is None else '%s s behind' % lag)
        elif role == 'primary':
            msg = '%s is a %s primary with %s replica(s) connected' % (
                name, 'read-only' if info['read_only'] else 'writable',
                'an unknown number of' if replicas is None else len(replicas))
        else:
            msg = '%s is standalone: read-only, no replication configured, no replica connected' % name
        if errant['has_errant']:
            msg += '; it has errant transactions: %s' % errant['errant_transactions']

        return dict(
            changed=False,
            msg=msg,
            role=role,
            server_id=info['server_id'],
            server_uuid=self.read_server_uuid(info),
            version=info['version'],
            flavor=info['flavor'],
            read_only=info['read_only'],
            super_read_only=bool(info.get('super_read_only', False)),
            hostname=info['hostname'],
            port=info['port'],
            gtid=gtid,
            replication=status,
            replicas=replicas,
            semi_sync=semi,
            errant=errant,
        )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('primary_gtid', 'primary_host')],
        required_by={'primary_host': ('primary_user',)},
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p['primary_port'] <= 65535:
        module.fail_json(msg='primary_port must be between 1 and 65535')
    if p['primary_host'] == '':
        module.fail_json(msg='primary_host must not be empty')

    local = MySQLServer(mysql_connect(module, what='the local server'), 'the local server')
    try:
        try:
            result = Info(module, local).run()
        except UnsupportedServerError as exc:
            module.fail_json(msg='The local server is not supported: %s' % exc)
        except MySQLError as exc:
            module.fail_json(msg='Query failed on the local server: %s' % format_mysql_error(exc))
        module.exit_json(**result)
    finally:
        local.close()


if __name__ == '__main__':
    main()
