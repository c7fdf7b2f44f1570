#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: mysql_switchover
short_description: Move the MariaDB/MySQL primary role to a replica without losing a write
version_added: 0.1.0
description:
  - A planned change of primary, for maintenance of the primary's host for
    example. Runs on the control node (C(delegate_to=localhost) or
    C(hosts=localhost)) and logs in over TCP to every node of O(nodes) with
    one administrative account.
  - The primary is the node the replicas replicate from; it must be reachable
    (for a dead primary use M(distweb.infra.mysql_failover)) and the only
    writable node.
  - "The steps: (1) make the primary read-only (C(SET GLOBAL read_only=1),
    MySQL C(super_read_only=1)) and kill its client sessions (not the
    replication threads); (2) read its C(gtid_binlog_pos) (MySQL
    C(gtid_executed)); (3) wait on the target with C(MASTER_GTID_WAIT) (MySQL
    C(WAIT_FOR_EXECUTED_GTID_SET)) until it has applied that position;
    (4) promote the target (C(STOP SLAVE), C(RESET SLAVE ALL),
    C(SET GLOBAL read_only=0)); (5) re-point the other healthy replicas to it;
    (6) make the old primary a replica of it (MariaDB: C(SET GLOBAL
    gtid_slave_pos) to its C(gtid_binlog_pos), then C(CHANGE MASTER TO ...
    MASTER_USE_GTID=slave_pos); MySQL C(SOURCE_AUTO_POSITION=1)) and start
    replication; (7) wait until the re-pointed replicas and the old primary
    replicate."
  - Writes are blocked from step (1) to the end of step (4); RV(blocked_seconds)
    is that time. Nothing acknowledged is lost, as the target has applied
    everything the primary had when it became read-only.
  - If the target does not reach the position within O(wait_timeout), the
    old primary is made writable again and the module fails; nothing is lost
    and nothing else was changed (killed client sessions stay killed).
  - "Before changing anything it refuses a target that is unreachable, not a
    replica of the primary, whose threads do not both run, that has errant
    transactions (GTIDs the primary lacks), or that is more than
    O(wait_timeout) seconds behind (C(Seconds_Behind_Master)). Without
    O(target) the most advanced healthy replica is chosen."
  - If the old primary has GTIDs the new primary lacks when it is to become a
    replica (a write by an account that may write to a read-only server), it is
    left read-only and not replicating, with a warning; see
    M(distweb.infra.mysql_rejoin).
  - Idempotent. When O(target) is already the writable primary and every
    reachable replica replicates from it, nothing is done (C(changed=false)).
  - Supports MariaDB 10.6 to 11.x and MySQL 8.0.23 or later (8.4 included).
    Only the default replication connection (channel) is managed.
author:
  - distweb developers (@distweb)
extends_documentation_fragment:
  - distweb.infra.mysql_cluster
  - distweb.infra.mysql_cluster.nodes
options:
  target:
    description:
      - Name of the replica to make the primary.
      - Without it, the most advanced healthy replica (among equals the one
        that has applied most, then the first in O(nodes)).
    type: str
  wait_timeout:
    description:
      - Seconds the target has to apply the primary's last position while
        writes are blocked; also the most a target may lag behind before the
        switchover is refused, and the time the re-pointed replicas have to
        connect to the new primary.
    type: int
    default: 30
  kill_client_sessions:
    description:
      - Kill the client sessions of the old primary after making it read-only.
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Only reads, and returns the plan.
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
    SLAVE MONITOR ON *.* TO ...). On MySQL 8: C(PROCESS), C(RELOAD), C(REPLICATION CLIENT),
    C(SYSTEM_VARIABLES_ADMIN), C(CONNECTION_ADMIN) and C(REPLICATION_SLAVE_ADMIN)."
  - On MariaDB, accounts with C(READ_ONLY ADMIN) (or C(SUPER) before 11.0) can
    still write to a read-only server; the application's accounts must not
    have it.
  - Moving the application's writes to the new primary (the local DB routers)
    is not done here.
seealso:
  - module: distweb.infra.mysql_failover
  - module: distweb.infra.mysql_rejoin
'''

EXAMPLES = r'''
- name: Make server2 the primary
  distweb.infra.mysql_switchover:
    nodes:
      - {name: server1, host: 10.0.0.11}
      - {name: server2, host: 10.0.0.12}
      - {name: server3, host: 10.0.0.13}
    target: server2
    login_user: distweb_admin
    login_password: "{{ vault_mysql_admin_password }}"
    replication_user: repl
    replication_password: "{{ vault_mysql_replication_password }}"
    replication_ssl: true
    replication_ssl_ca: /etc/mysql/ssl/ca.crt
  delegate_to: localhost
  run_once: true
  register: switchover

- name: Show how long writes were blocked
  ansible.builtin.debug:
    msg: "{{ switchover.old_primary }} -> {{ switchover.new_primary }}, writes blocked {{ switchover.blocked_seconds }} s"

- name: Plan a switchover to the most advanced replica, changing nothing
  distweb.infra.mysql_switchover:
    nodes: "{{ db_nodes }}"
    login_user: distweb_admin
    login_password: "{{ vault_mysql_admin_password }}"
    replication_user: repl
    replication_password: "{{ vault_mysql_replication_password }}"
  check_mode: true
  delegate_to: localhost
'''

RETURN = r'''
old_primary:
  description: Name of the primary before the switchover (the current one when nothing was to do).
  returned: always
  type: str
  sample: server1
new_primary:
  description: Name of the primary after the switchover (in check mode, the one it would be); V(null) when refused.
  returned: always
  type: str
  sample: server2
repointed:
  description: Replicas now replicating from the new primary, the old primary included when it became one.
  returned: always
  type: list
  elements: str
  sample: [server3, server1]
repoint_failed:
  description: Replicas (or the old primary) that could not be pointed at the new primary or did not start replicating.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the node.
      type: str
    reason:
      description: What went wrong.
      type: str
  sample: []
excluded:
  description: Nodes left as they are, and why.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the node.
      type: str
    reason:
      description: Why it was left alone.
      type: str
  sample: []
old_primary_rejoined:
  description: Whether the old primary now replicates from the new primary.
  returned: always
  type: bool
  sample: true
position:
  description: The old primary's GTIDs when it became read-only, which the target applied before its promotion.
  returned: always
  type: str
  sample: 0-1-1042
blocked_seconds:
  description:
    - Seconds writes were blocked, from C(read_only) on the old primary to
      C(read_only=0) on the new one; V(0) when nothing was done.
  returned: always
  type: float
  sample: 0.41
phases:
  description:
    - Seconds per phase; keys V(connect), V(fence), V(catchup), V(promote),
      V(repoint) (other replicas and old primary, until they replicate) and
      V(total).
  returned: always
  type: dict
  sample: {connect: 0.03, fence: 0.01, catchup: 0.35, promote: 0.02, repoint: 2.1, total: 2.51}
plan:
  description: The steps, in words, with the statements per node (passwords masked).
  returned: always
  type: list
  elements: str
  sample:
    - "make server1 read-only: SET GLOBAL read_only = 1, then kill its client sessions"
    - "read the GTID position of server1 and wait up to 30 s until server2 has applied it (MASTER_GTID_WAIT)"
    - "promote server2: STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0"
notes:
  description: Remarks on the decision.
  returned: always
  type: list
  elements: str
  sample: []
killed_sessions:
  description: Number of client sessions killed on the old primary.
  returned: always
  type: int
  sample: 3
queries:
  description: "The changing statements run, as C(<node>: <statement>), in order; passwords masked."
  returned: always
  type: list
  elements: str
  sample: ["server1: SET GLOBAL read_only = 1"]
msg:
  description: What was done or why not, in words.
  returned: always
  type: str
  sample: Switched the primary from server1 to server2 (writes blocked 0.41 s)
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.distweb.infra.plugins.module_utils import topology
from ansible_collections.distweb.infra.plugins.module_utils.mysql_connection import MySQLError, format_mysql_error
from ansible_collections.distweb.infra.plugins.module_utils.mysql_server import monotonic
from ansible_collections.distweb.infra.plugins.module_utils.mysql_cluster import (
    WholeClusterOperations,
    check_cluster_params,
    check_node_options,
    cluster_node_options,
    mysql_cluster_argument_spec,
    replication_argument_spec,
    run_cluster_operation,
)

PHASES = ('connect', 'fence', 'catchup', 'promote', 'repoint')


def argument_spec():
    spec = mysql_cluster_argument_spec()
    spec.update(replication_argument_spec())
    spec.update(
        nodes=dict(type='list', elements='dict', required=True, options=cluster_node_options()),
        target=dict(type='str'),
        wait_timeout=dict(type='int', default=30),
        kill_client_sessions=dict(type='bool', default=True),
    )
    return spec


def check_params(module):
    p = module.params
    problems = check_cluster_params(p) + check_node_options(p['nodes'])
    names = [n['name'] for n in p['nodes']]
    if p['target'] is not None and p['target'] not in names:
        problems.append('target %s is not the name of one of the nodes (%s)' % (p['target'], ', '.join(names)))
    if p['wait_timeout'] < 0:
        problems.append('wait_timeout must not be negative')
    if len(names) < 2:
        problems.append('nodes must list at least two nodes')
    if problems:
        module.fail_json(msg='; '.join(problems))


class Switchover(WholeClusterOperations):
    """One run of the module."""

    def __init__(self, module):
        super(Switchover, self).__init__(module, PHASES)
        self.fenced = None
        self.result = dict(changed=False, old_primary=None, new_primary=None, repointed=[], repoint_failed=[],
                           excluded=[], old_primary_rejoined=False, position='', blocked_seconds=0.0, notes=[],
                           killed_sessions=0)

    def read_states(self):
        """Every node's state (in node order); the primary is read again
        after its replicas (it only moves on)."""
        states = [self.read_node(node) for node in self.nodes]
        primary_name, dummy = topology.find_primary(states)
        if primary_name is not None and self.by_name[primary_name].reachable:
            states = [self.read_node(node) if node.name == primary_name else state
                      for node, state in zip(self.nodes, states)]
        return states

    def describe(self, plan, states):
        old = self.by_name[plan['old_primary']]
        target = self.by_name[plan['target']]
        by_state = dict((s['name'], s) for s in states)
        p = self.params
        text = ['make %s read-only: %s%s' % (old.name, '; '.join(s.display for s in old.dialect.set_read_only(True)),
                                             ', then kill its client sessions' if p['kill_client_sessions'] else ''),
                'read the GTID position of %s and wait up to %s s until %s has applied it (%s)' % (
                    old.name, p['wait_timeout'], target.name, target.dialect.wait_for_gtid_function()),
                'promote %s: %s' % (target.name, '; '.join(
                    s.display for s in self.promote_statements(target, by_state[target.name].get('semi_sync'))))]
        for name in plan['repoint']:
            text.append('re-point %s to %s (%s:%s): %s' % (
                name, target.name, target.source_host, target.source_port,
                '; '.join(self.point_at_statements(self.by_name[name], target))))
        slave_pos = '<its gtid_binlog_pos>' if old.dialect.flavor == 'mariadb' else None
        text.append('make %s a replica of %s: %s' % (old.name, target.name, '; '.join(
            [s.display for s in self.retire_source_statements(old, by_state[old.name].get('semi_sync'))]
            + self.point_at_statements(old, target, running=False, slave_pos=slave_pos))))
        for entry in plan['excluded']:
            text.append('leave %s as it is: %s' % (entry['name'], entry['reason']))
        return text

    def undo(self):
        if self.fenced is None:
            return ''
        try:
            self.unfence(self.fenced)
            self.fenced = None
            return ''
        except MySQLError as exc:
            return '; BUT making %s writable again failed: %s' % (self.fenced.name, format_mysql_error(exc))

    def block_writes(self, old, was_read_only):
        """Make the primary ``old`` refuse writes and kill its client
        sessions, then read its GTID position: what the target must apply.
        When that fails, make it writable again (unless it was read-only
        before) and fail, nothing promoted."""
        p = self.params
        try:
            self.killed = self.fence(old, kill_sessions=p['kill_client_sessions'])
            if not was_read_only:
                self.fenced = old
            position = old.server.gtid_positions()['binlog'] or ''
        except MySQLError as exc:
            if not was_read_only:
                self.fenced = old
            self.fail('Making the primary %s read-only failed: %s. Nothing was promoted%s'
                      % (old.name, format_mysql_error(exc), self.undo()), changed=bool(self.queries))
        return position

    def rejoin_old_primary(self, old, target):
        """Make the old primary a replica of ``target`` (its semi-sync source
        side off first) if it has nothing the new primary lacks. Returns
        None, or why not."""
        try:
            old_state = old.read_state(semi_sync=False, history=True)
            new_state = target.read_state(semi_sync=False, history=True)
            decision = topology.decide_rejoin(old_state, new_state)
            if decision['ok']:
                self.retire_source(old)
                self.point_at(old, target, running=not (old_state['io_thread'].lower() == 'no'
                                                        and old_state['sql_thread'].lower() == 'no'),
                              slave_pos=decision['start_position'])
                return None
            return decision['reason']
        except MySQLError as exc:
            return format_mysql_error(exc)

    def report(self, old, target, blocked, repointed, failed):
        """The result of a switchover to ``target``: the nodes that replicate
        from it (``repointed``, the old primary among them when it was
        rejoined) and those that do not (``failed``, warned about)."""
        for entry in failed:
            self.warnings.append('%s does not replicate from the new primary %s: %s'
                                 % (entry['name'], target.name, entry['reason']))
        msg = 'Switched the primary from %s to %s (writes blocked %.3f s)' % (old.name, target.name, blocked)
        if repointed:
            msg += '; replicating from it: %s' % ', '.join(repointed)
        if failed:
            msg += '; not replicating from it: %s' % ', '.join(e['name'] for e in failed)
        return self.finish(msg=msg, repointed=repointed, repoint_failed=failed,
                           old_primary_rejoined=old.name in repointed)

    def run(self):
        p = self.params
        since = monotonic()
        self.log_in()
        states = self.read_states()
        since = self.timed('connect', since)

        plan = topology.plan_switchover(states, target=p['target'], max_lag=p['wait_timeout'])
        self.result.update(old_primary=plan['old_primary'], excluded=plan['excluded'], notes=plan['notes'])
        self.warnings.extend(plan['warnings'])
        if plan['action'] == topology.NONE:
            return self.finish(msg=plan['reason'], new_primary=plan['target'])
        if plan['action'] == topology.REFUSE:
            self.fail('Refusing to switch over: %s. Nothing was changed.' % plan['reason'])
        self.plan_text = self.describe(plan, states)
        if self.module.check_mode:
            return self.finish(changed=True, new_primary=plan['target'],
                               repointed=plan['repoint'] + [plan['old_primary']],
                               msg='Would switch the primary from %s to %s' % (plan['old_primary'], plan['target']))

        old = self.by_name[plan['old_primary']]
        target = self.by_name[plan['target']]
        was_read_only = dict((s['name'], s) for s in states)[old.name]['read_only']

        # (1) writes stop here
        blocked_since = monotonic()
        position = self.block_writes(old, was_read_only)
        self.result['position'] = position
        since = self.timed('fence', since)

        # (2), (3) the target applies everything the primary has
        ok, message = self.catch_up(target, position, p['wait_timeout'])
        since = self.timed('catchup', since)
        if not ok:
            undo = self.undo()
            self.fail('%s did not reach the position of the primary %s (%s): %s. %s is writable again; nothing was '
                      'lost and nothing else was changed%s' % (
                          target.name, old.name, position, message, old.name, undo),
                      changed=bool(self.queries))

        # (4) promote: writes flow again
        self.fenced = None
        self.promote_and_verify(target, 'The old primary %s stays read-only' % old.name)
        blocked = round(monotonic() - blocked_since, 3)
        since = self.timed('promote', since)
        self.result.update(changed=True, new_primary=target.name, blocked_seconds=blocked)

        # (5) the other replicas
        started, failed = self.repoint(plan['repoint'], target, states)

        # (6) the old primary becomes a replica, if it has nothing the new one lacks
        problem = self.rejoin_old_primary(old, target)
        if problem is None:
            started.append(old)
        else:
            failed.append(dict(name=old.name, reason=problem))

        # (7) wait until they replicate
        repointed, not_replicating = self.wait_replicating(started, p['wait_timeout'])
        failed.extend(not_replicating)
        since = self.timed('repoint', since)
        return self.report(old, target, blocked, repointed, failed)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_params(module)
    run_cluster_operation(Switchover(module))


if __name__ == '__main__':
    main()
