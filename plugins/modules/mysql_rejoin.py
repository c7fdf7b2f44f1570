#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: mysql_rejoin
short_description: Make a returning MariaDB/MySQL node (such as an old primary) a replica again, unless it has diverged
version_added: 0.1.0
description:
  - Runs on the control node (C(delegate_to=localhost) or C(hosts=localhost))
    and logs in over TCP to O(node) and O(primary) with one administrative
    account.
  - First, always, it makes O(node) read-only (C(SET GLOBAL read_only=1), MySQL
    C(super_read_only=1)) if it is not, even when it then refuses to rejoin
    it. A node that came back must never take writes next to the primary.
    Only a node that is the primary itself (same C(server_id)) is left alone.
  - Then it compares the GTIDs. The node may replicate from O(primary) only if
    everything in its binary log is in what the primary has (MariaDB the
    node's C(gtid_binlog_state) and C(gtid_binlog_pos) against the primary's
    C(gtid_binlog_state), C(gtid_binlog_pos) and C(gtid_slave_pos), MySQL
    C(gtid_executed) of both). Otherwise it has diverged (writes that never
    reached the primary, typically an old primary's last unreplicated
    commits). Then the module fails, lists them in RV(extra_gtids), and the node
    must be rebuilt from a copy of the primary with the C(rebuild_replica)
    playbook of the collection (C(playbooks/rebuild_replica.yml)).
  - "Otherwise it configures the node as a replica of O(primary) and starts
    it: C(STOP SLAVE) when threads run; on MariaDB C(SET GLOBAL
    gtid_slave_pos) to the node's C(gtid_binlog_pos) (joined with its old
    C(gtid_slave_pos) if the binlog lacks some of it), then
    C(CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos); on MySQL
    C(CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION=1); C(START SLAVE).
    It waits up to O(wait_timeout) seconds until both threads run."
  - Idempotent. A read-only node that already replicates from O(primary)
    (its source host and port are the primary's), with both threads running,
    is left as it is (C(changed=false)); its GTIDs are still checked.
  - O(primary) must be reachable and writable, and not a replica.
  - Supports MariaDB 10.6 to 11.x and MySQL 8.0.23 or later (8.4 included).
    Only the default replication connection (channel) is managed.
author:
  - distweb developers (@distweb)
extends_documentation_fragment:
  - distweb.infra.mysql_cluster
options:
  node:
    description:
      - The node to make a replica.
    type: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the node, for the results.
        type: str
        required: true
      host:
        description:
          - Host name or address the control node logs in to.
        type: str
        required: true
      port:
        description:
          - TCP port of the node.
        type: int
        default: 3306
      replication_host:
        description:
          - Host name or address other nodes replicate from this node with.
            Not used for O(node).
        type: str
      replication_port:
        description:
          - Port other nodes replicate from this node with. Not used for O(node).
        type: int
  primary:
    description:
      - The writable primary to replicate from.
    type: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the primary, for the results.
        type: str
        required: true
      host:
        description:
          - Host name or address the control node logs in to.
        type: str
        required: true
      port:
        description:
          - TCP port of the primary.
        type: int
        default: 3306
      replication_host:
        description:
          - Host name or address O(node) replicates from, when it differs from
            O(primary.host).
        type: str
      replication_port:
        description:
          - Port O(node) replicates from (default O(primary.port)).
        type: int
  wait_timeout:
    description:
      - Seconds to wait for both replication threads to run and the IO
        thread to connect after starting replication.
    type: int
    default: 30
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Only reads; the node is not made read-only either. RV(queries) lists
        the statements that would run, and a diverged node fails as it would.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
requirements:
  - PyMySQL (Python package) on the control node.
notes:
  - "Privileges of O(login_user) on MariaDB 10.11:
    C(GRANT PROCESS, RELOAD, CONNECTION ADMIN, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN,
    SLAVE MONITOR ON *.* TO ...). On MySQL 8: C(REPLICATION CLIENT),
    C(SYSTEM_VARIABLES_ADMIN) and C(REPLICATION_SLAVE_ADMIN)."
  - "MariaDB GTID positions name only the last GTID of each replication domain
    and server_id; a write of the node that the primary's binlog state shows
    as covered by a later transaction of the same server cannot be told
    apart (see the C(gtid) module utils)."
seealso:
  - module: distweb.infra.mysql_failover
  - module: distweb.infra.mysql_switchover
  - module: distweb.infra.mysql_replication
'''

EXAMPLES = r'''
- name: The old primary server1 came back; make it a replica of server2
  distweb.infra.mysql_rejoin:
    node: {name: server1, host: 10.0.0.11}
    primary: {name: server2, host: 10.0.0.12}
    login_user: distweb_admin
    login_password: "{{ vault_mysql_admin_password }}"
    replication_user: repl
    replication_password: "{{ vault_mysql_replication_password }}"
    replication_ssl: true
    replication_ssl_ca: /etc/mysql/ssl/ca.crt
  delegate_to: localhost
  register: rejoin
  ignore_errors: true

- name: Rebuild it when it has diverged
  ansible.builtin.debug:
    msg: >-
      server1 has {{ rejoin.extra_gtids }} that server2 lacks: run
      ansible-playbook distweb.infra.rebuild_replica -e rebuild_replica_host=server1
  when: rejoin.extra_gtids | default('') | length > 0
'''

RETURN = r'''
node:
  description: Name of the node.
  returned: always
  type: str
  sample: server1
primary:
  description: Name of the primary.
  returned: always
  type: str
  sample: server2
made_read_only:
  description: Whether the module made the node read-only (in check mode, would).
  returned: always
  type: bool
  sample: true
extra_gtids:
  description:
    - GTIDs the node has and the primary lacks; C('') when none. When not
      empty the node has diverged and the module failed.
  returned: always
  type: str
  sample: 0-1-1043..0-1-1045
comparison:
  description: The node's GTIDs against the primary's, V(equal), V(behind), V(ahead) or V(diverged); V(null) when not compared.
  returned: always
  type: str
  sample: behind
rebuild_playbook:
  description: The playbook that rebuilds a diverged node (C(playbooks/rebuild_replica.yml) of the collection).
  returned: when the node has diverged
  type: str
  sample: playbooks/rebuild_replica.yml
start_position:
  description: MariaDB, the C(gtid_slave_pos) the node replicates from; V(null) on MySQL or when not set.
  returned: always
  type: str
  sample: 0-1-1042
queries:
  description: "The changing statements run (in check mode, that would run), as C(<node>: <statement>); passwords masked."
  returned: always
  type: list
  elements: str
  sample:
    - "server1: SET GLOBAL read_only = 1"
    - "server1: SET GLOBAL gtid_slave_pos = '0-1-1042'"
    - "server1: CHANGE MASTER TO MASTER_HOST='server2', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='********', ..."
    - "server1: START SLAVE"
msg:
  description: What was done or why not, in words.
  returned: always
  type: str
  sample: server1 replicates from server2 (server2:3306)
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.distweb.infra.plugins.module_utils import gtid as gtid_utils
from ansible_collections.distweb.infra.plugins.module_utils import topology
from ansible_collections.distweb.infra.plugins.module_utils.mysql_connection import MySQLError, format_mysql_error
from ansible_collections.distweb.infra.plugins.module_utils.mysql_server import (
    START_SETTLE_SECONDS,
    threads_stopped,
    wait_for_replica,
)
from ansible_collections.distweb.infra.plugins.module_utils.mysql_cluster import (
    ClusterNode,
    ClusterOperations,
    check_cluster_params,
    check_node_options,
    cluster_node_options,
    mysql_cluster_argument_spec,
    replication_argument_spec,
    run_cluster_operation,
)

REBUILD = 'playbooks/rebuild_replica.yml'


def argument_spec():
    spec = mysql_cluster_argument_spec()
    spec.update(replication_argument_spec())
    spec.update(
        node=dict(type='dict', required=True, options=cluster_node_options()),
        primary=dict(type='dict', required=True, options=cluster_node_options()),
        wait_timeout=dict(type='int', default=30),
    )
    return spec


def check_params(module):
    p = module.params
    problems = check_cluster_params(p) + check_node_options([p['node']], 'node') + \
        check_node_options([p['primary']], 'primary')
    if p['node']['name'] == p['primary']['name']:
        problems.append('node and primary have the same name %s' % p['node']['name'])
    if p['wait_timeout'] < 0:
        problems.append('wait_timeout must not be negative')
    if problems:
        module.fail_json(msg='; '.join(problems))


class Rejoin(ClusterOperations):
    """One run of the module."""

    def __init__(self, module):
        super(Rejoin, self).__init__(module)
        self.node = ClusterNode.from_options(self.params['node'])
        self.primary = ClusterNode.from_options(self.params['primary'])
        self.nodes = [self.node, self.primary]
        self.planned = []
        self.result = dict(changed=False, node=self.node.name, primary=self.primary.name, made_read_only=False,
                           extra_gtids='', comparison=None, start_position=None)

    def finish(self, **kwargs):
        self.result.update(kwargs)
        self.result['queries'] = list(self.queries) + list(self.planned)
        return self.result

    def state(self, node):
        try:
            return node.read_state(semi_sync=False, history=True)
        except MySQLError as exc:
            self.fail('Reading the state of %s (%s) failed: %s' % (node.name, node.where, format_mysql_error(exc)))

    def plan(self, node, statements):
        """Run statements, or in check mode list them."""
        if self.module.check_mode:
            self.planned.extend('%s: %s' % (node.name, s.display) for s in statements)
            return
        self.execute(node, statements)

    def retire(self, node, semi):
        """Switch the semi-sync source side of the read-only node off;
        first its client sessions go, as switching it off would release
        commits waiting for an acknowledgement as successful."""
        if self.retire_source_statements(node, semi):
            self.kill_client_sessions(node)
            self.execute(node, self.retire_source_statements(node, semi))

    def run(self):
        p = self.params
        node, primary = self.node, self.primary
        if not node.connect(p):
            self.fail('Cannot reach %s: %s' % (node.name, node.error))
        primary.connect(p)
        self.require_privileges([node, primary])
        info = node.server.server_info()
        primary_info = None
        if primary.reachable:
            primary_info = primary.server.server_info()
            same_uuid = info.get('server_uuid') and info.get('server_uuid') == primary_info.get('server_uuid')
            if info['server_id'] == primary_info['server_id'] or same_uuid:
                self.fail('%s (%s) and %s (%s) are the same server (server_id %s): nothing was changed'
                          % (node.name, node.where, primary.name, primary.where, info['server_id']))

        # first, always: the node takes no writes
        if not info['read_only']:
            self.plan(node, node.dialect.set_read_only(True))
            self.result.update(made_read_only=True, changed=True)

        if not primary.reachable:
            self.fail('Cannot reach the primary %s: %s%s' % (
                primary.name, primary.error, '; %s was made read-only' % node.name
                if self.result['made_read_only'] and not self.module.check_mode else ''))
        if primary_info is None or primary_info['read_only']:
            self.fail('%s (%s) is read-only: it is not a writable primary' % (primary.name, primary.where))

        # the node first, the primary after it (the primary only moves on)
        node_state = self.state(node)
        primary_state = self.state(primary)
        if primary_state['configured']:
            self.fail('%s is a replica itself (of %s:%s), not the primary' % (
                primary.name, primary_state['source_host'], primary_state['source_port']))
        decision = topology.decide_rejoin(node_state, primary_state)
        self.result.update(extra_gtids=decision['extra_gtids'], comparison=decision['comparison'])
        if not decision['ok']:
            msg = 'Refusing to make %s a replica of %s: %s' % (node.name, primary.name, decision['reason'])
            if decision['extra_gtids']:
                msg += ('. It must be rebuilt from a copy of the primary with the playbook %s '
                        '(ansible-playbook distweb.infra.rebuild_replica -e rebuild_replica_host=<inventory host of %s>)'
                        % (REBUILD, node.name))
            if self.result['made_read_only']:
                msg += '. %s %s read-only' % (node.name, 'would be made' if self.module.check_mode else 'was made')
            self.fail(msg, rebuild_playbook=REBUILD)

        primary_view = dict(primary_state, replication_host=primary.replication_host,
                            replication_port=primary.replication_port)
        healthy = (topology.source_is(node_state, primary_view) and node_state['io_running']
                   and node_state['sql_running'] and not node_state['last_io_errno']
                   and not node_state['last_sql_errno'] and node_state.get('using_gtid', 'no') != 'no')
        where = '%s (%s:%s)' % (primary.name, primary.source_host, primary.source_port)
        semi = node.server.semi_sync()
        if healthy:
            if self.retire_source_statements(node, semi):
                # a replica that is also a semi-sync source waits for
                # acknowledgements of what it applies
                if self.module.check_mode:
                    self.planned.extend('%s: %s' % (node.name, s.display)
                                        for s in self.retire_source_statements(node, semi))
                else:
                    self.retire(node, semi)
                self.result['changed'] = True
            return self.finish(msg='%s already replicates from %s%s' % (
                node.name, where, ' (made read-only)' if self.result['made_read_only'] else ''))

        status = node.server.replica_status()
        running = not threads_stopped(status)
        slave_pos = decision['start_position']
        if node.dialect.flavor == 'mariadb':
            current = node_state['gtid_slave_pos'] or ''
            if slave_pos is not None and gtid_utils.format_gtid(current, 'mariadb') == slave_pos:
                slave_pos = None
            self.result['start_position'] = decision['start_position']
        else:
            slave_pos = None
        if self.module.check_mode:
            self.planned.extend('%s: %s' % (node.name, text)
                                for text in [s.display for s in self.retire_source_statements(node, semi)]
                                + self.point_at_statements(node, primary, running=running, slave_pos=slave_pos))
            return self.finish(changed=True, msg='Would make %s a replica of %s' % (node.name, where))
        try:
            self.retire(node, semi)
            self.point_at(node, primary, running=running, slave_pos=slave_pos)
        except MySQLError as exc:
            self.fail('Making %s a replica of %s failed: %s' % (node.name, primary.name, format_mysql_error(exc)),
                      changed=True)
        self.result['changed'] = True
        ok, dummy, message = wait_for_replica(node.server, p['wait_timeout'], settle=START_SETTLE_SECONDS)
        if not ok:
            self.fail('%s was pointed at %s but does not replicate: %s' % (node.name, where, message))
        return self.finish(msg='%s replicates from %s' % (node.name, where))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_params(module)
    run_cluster_operation(Rejoin(module))


if __name__ == '__main__':
    main()
