#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: mysql_failover
short_description: Promote the most advanced replica when the MariaDB/MySQL primary has failed, losing no acknowledged write
version_added: 0.1.0
description:
  - Runs on the control node (C(delegate_to=localhost) or C(hosts=localhost))
    and logs in over TCP to every node of O(nodes) with one administrative
    account.
  - "The steps, in this order:
    (1) fence the old primary if it can be reached: C(SET GLOBAL read_only=1)
    (MySQL C(super_read_only=1)), then kill its client sessions (not the
    replication threads serving the replicas);
    (2) stop the IO threads of its replicas, all at once (C(STOP SLAVE IO_THREAD) /
    C(STOP REPLICA IO_THREAD), each once C(KILL) has closed its connection to the
    old primary: a thread waiting on a hung source otherwise takes 2 s to stop),
    so that the received positions stop moving;
    (3) collect every node's GTID positions and replication state;
    (4) decide (see below), and refuse by failing without promoting anything;
    (5) wait on the chosen replica with C(MASTER_GTID_WAIT)
    (MySQL C(WAIT_FOR_EXECUTED_GTID_SET)) until it has applied everything it
    received; its IO thread is not restarted and C(CHANGE MASTER) is not run on
    it before, as both would discard its relay log;
    (6) promote it: C(STOP SLAVE), C(RESET SLAVE ALL), C(SET GLOBAL read_only=0);
    (7) re-point every other healthy replica to it (C(CHANGE MASTER TO ...
    MASTER_USE_GTID=slave_pos) / C(SOURCE_AUTO_POSITION=1)) and start
    replication."
  - "The decision (the C(topology) module utils): replicas that cannot be
    reached, that do not replicate from the old primary, whose SQL thread
    stopped, or that have errant transactions (GTIDs in their binlog the old
    primary never had; without the old primary, MariaDB binlog GTIDs that
    C(gtid_slave_pos) does not cover, MySQL GTIDs of their own server_uuid no
    other node has) are excluded: after the promotion an excluded replica
    of the old primary keeps its IO thread stopped (listed in
    RV(io_left_stopped)), so that it can neither serve reads from nor
    acknowledge commits of an old primary that comes back. The received GTIDs of
    the others (MariaDB C(Gtid_IO_Pos) joined with C(gtid_slave_pos), MySQL
    C(Retrieved_Gtid_Set) joined with C(gtid_executed)) must be in one line,
    else it refuses (a possible split brain). The most advanced one is
    promoted."
  - It refuses, unless O(allow_data_loss=true), when lossless semi-sync
    replication was not active on the old primary (not enabled, fallen back to
    asynchronous replication, wait point C(AFTER_COMMIT), or its count of
    commits not acknowledged by a replica grew while it was fenced), as an
    asynchronous primary can have acknowledged commits no replica received.
  - An unreachable old primary cannot be asked, and a replica's
    C(Rpl_semi_sync_slave_status) stays ON while its IO thread retries, so it
    proves nothing. Then the module relies on the cluster's settings instead
    (the nodes are set up alike); every reachable replica must be set up for
    lossless semi-sync (C(AFTER_SYNC), waiting also with no replica, a timeout
    of C(4294967295) ms, that is never falling back to asynchronous
    replication; the mysql_server role's C(mysql_server_lossless)). Such a
    primary acknowledges a commit only once a replica has it, so every
    acknowledged write is on some replica; hence every other node must be
    reachable too, as a replica that cannot be read may hold the last
    acknowledged transaction, and the module refuses, naming it, unless
    O(allow_data_loss=true).
  - It also refuses, unless O(allow_data_loss=true), when the chosen replica
    lacks GTIDs that the old primary (if reachable) or another reachable node
    has; they are returned in RV(lost_gtids).
  - "A refusal is a failure that leaves the nodes as they were: the IO threads
    the module stopped are started again and the old primary, if the module
    fenced it, is made writable again (killed client sessions stay killed).
    The same is done when the chosen replica does not apply its relay log
    within O(catchup_timeout). After the promotion nothing is undone; a
    replica that cannot be re-pointed is reported in RV(repoint_failed) and
    with a warning."
  - Idempotent. When a node other than the old primary is already the
    writable primary and every reachable replica replicates from it, nothing
    is done (C(changed=false)). Without O(primary), a detected primary that is
    reachable, writable and has connected replicas is not failed over either;
    one that is reachable and writable while none of its replicas is
    connected (their IO threads stopped) is refused, as its replication
    needs repair, not a new primary.
  - The old primary, when fenced, stays read-only and is not made a replica;
    bring it back with M(distweb.infra.mysql_rejoin), which refuses it if it
    has GTIDs the new primary lacks.
  - Supports MariaDB 10.6 to 11.x and MySQL 8.0.23 or later (8.4 included).
    Only the default replication connection (channel) is managed.
author:
  - distweb developers (@distweb)
extends_documentation_fragment:
  - distweb.infra.mysql_cluster
  - distweb.infra.mysql_cluster.nodes
options:
  primary:
    description:
      - Name of the failed (old) primary.
      - Without it, the node the reachable replicas replicate from. A detected
        primary that is still reachable and writable, with replicas connected,
        is then left alone; naming it here forces the failover.
    type: str
  preferred_candidate:
    description:
      - Name of the replica to promote when it is among the most advanced
        ones (it received every GTID the most advanced one did).
      - A preferred replica that lacks GTIDs is not caught up from another
        replica first; the most advanced one is promoted instead and
        RV(notes) says why.
    type: str
  allow_data_loss:
    description:
      - Fail over although lossless semi-sync was not active on the old
        primary, or although the promoted replica lacks GTIDs that the old
        primary or another reachable node has (they are reported in
        RV(lost_gtids)).
    type: bool
    default: false
  allow_live_primary:
    description:
      - Fail over although an old primary that this node cannot reach is
        still alive for one of its replicas (see O(liveness_window)).
      - Only for an old primary that was stopped or cut off from every app
        server by other means, or two nodes take writes.
    type: bool
    default: false
  liveness_window:
    description:
      - When the old primary cannot be reached from this node, watch for
        this many seconds what its replicas hear from it (received GTIDs,
        binlog position, heartbeats) before anything is changed; if one of
        them hears it, the failover is refused (the primary is alive, only
        this node's view of it is cut).
      - The window starts at each replica's first reading, taken right
        after its login, so it runs while the login to an unreachable old
        primary waits out O(connect_timeout); it costs what it exceeds that
        wait by.
      - Keep it above two replication heartbeat periods
        (O(replication_heartbeat_period)). V(0) turns the check off.
    type: float
    default: 2.5
  presumed_unreachable:
    description:
      - Nodes found unreachable moments ago (by the plan, RV(unreachable_nodes)).
        Their login gets O(presumed_unreachable_timeout) instead of
        O(connect_timeout), so that a dead or hung old primary does not cost
        the whole timeout a second time. One that came back still answers in
        that time on a local network, and is fenced.
    type: list
    elements: str
    default: []
  presumed_unreachable_timeout:
    description:
      - Seconds the login to a node of O(presumed_unreachable) may take,
        the server's greeting included.
    type: float
    default: 0.5
  routers_fenced:
    description:
      - Whether the caller has already taken the old primary out of the
        application's database routers (or there are none).
      - V(false), the routers are to fence it afterwards. Then fail over in this
        run only when nothing a router may still send the old primary can be
        acknowledged, that is when it cannot be reached from here and the
        cluster's settings prove lossless semi-sync (RV(semi_sync) from
        V(settings)). Such a primary acknowledges no commit once its
        replicas' IO threads are stopped, which step (2) does before the
        promotion. Otherwise change nothing and return
        RV(routers_fence_first=true) with the plan, for the caller to fence
        the routers and run the module again. This spares a dead or hung
        primary a second run, and keeps the routers' fence out of the write
        outage.
    type: bool
    default: true
  catchup_timeout:
    description:
      - Seconds to wait for the chosen replica to apply what it received
        before promoting it; when it does not, nothing is promoted and the
        nodes are put back as they were.
      - Also the time each re-pointed replica has to connect to the new
        primary.
    type: int
    default: 30
  repoint_wait:
    description:
      - Wait, after starting replication on each re-pointed replica, until
        both its threads run and keep running for a second (up to
        O(catchup_timeout)); one that does not is reported in
        RV(repoint_failed).
      - V(false) returns as soon as replication is started on them, for a
        caller with more urgent work after the promotion (the role
        distweb.infra.mysql_cluster fences the database routers first, then
        reads them). RV(repointed) then lists the replicas replication was
        started on, and RV(repoint_waited) is V(false). A lossless new
        primary acknowledges no write before one of them has connected, so
        not waiting loses nothing.
    type: bool
    default: true
  kill_client_sessions:
    description:
      - Kill the client sessions of the old primary after making it
        read-only, so that no open transaction of a client commits there.
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Only reads. The old primary is not fenced and no IO thread is
        stopped, so the plan is made from positions that may still move; the
        check for GTIDs the candidate would lose is only noted in RV(notes).
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
  - An unreachable old primary cannot be fenced. The collection's servers start
    read-only, so a crashed primary that restarts takes no writes; one that is
    only cut off from the control node is still heard by its replicas, and the
    failover is refused (O(liveness_window)).
  - Every node is logged in to at once; an unreachable one costs up to
    O(connect_timeout) seconds once (O(presumed_unreachable_timeout) for a
    node named in O(presumed_unreachable)). Only a node that cannot be connected to (or
    stops answering) counts as unreachable; a node that refuses the login
    (wrong password, missing grant, too many connections) fails the module
    before anything changes, as it is up and could still take writes.
  - Moving the application's writes to the new primary (the local DB routers)
    is not done here; O(routers_fenced) says whether that may follow the
    promotion.
seealso:
  - module: distweb.infra.mysql_switchover
  - module: distweb.infra.mysql_rejoin
  - module: distweb.infra.mysql_replication_info
  - name: MariaDB MASTER_GTID_WAIT
    description: The wait for the relay log to be applied.
    link: https://mariadb.com/kb/en/master_gtid_wait/
'''

EXAMPLES = r'''
- name: Fail over from the dead primary server1
  distweb.infra.mysql_failover:
    nodes:
      - {name: server1, host: 10.0.0.11}
      - {name: server2, host: 10.0.0.12}
      - {name: server3, host: 10.0.0.13}
    primary: server1
    login_user: distweb_admin
    login_password: "{{ vault_mysql_admin_password }}"
    login_ssl_ca: /etc/distweb/ca.crt
    replication_user: repl
    replication_password: "{{ vault_mysql_replication_password }}"
    replication_ssl: true
    replication_ssl_ca: /etc/mysql/ssl/ca.crt
  delegate_to: localhost
  run_once: true
  register: failover

- name: Show what would be done, changing nothing
  distweb.infra.mysql_failover:
    nodes: "{{ groups['db'] | map('extract', hostvars) | map(attribute='db_node') | list }}"
    login_user: distweb_admin
    login_password: "{{ vault_mysql_admin_password }}"
    replication_user: repl
    replication_password: "{{ vault_mysql_replication_password }}"
    preferred_candidate: server2
  check_mode: true
  delegate_to: localhost
  run_once: true

- name: Fail over although replication was asynchronous (writes may be lost)
  distweb.infra.mysql_failover:
    nodes: "{{ db_nodes }}"
    primary: server1
    allow_data_loss: true
    login_user: distweb_admin
    login_password: "{{ vault_mysql_admin_password }}"
    replication_user: repl
    replication_password: "{{ vault_mysql_replication_password }}"
  delegate_to: localhost
'''

RETURN = r'''
old_primary:
  description: Name of the old (failed) primary, given or detected; V(null) when it could not be told.
  returned: always
  type: str
  sample: server1
new_primary:
  description:
    - Name of the promoted replica (in check mode the one that would be
      promoted, when nothing was to do the current primary). V(null) when
      refused.
  returned: always
  type: str
  sample: server2
promoted:
  description:
    - Whether this run promoted a node (also in a failure after the
      promotion, when nothing is undone).
  returned: always
  type: bool
  sample: true
routers_fence_first:
  description:
    - With O(routers_fenced=false), whether the database routers must fence
      the old primary before a failover (it can be reached, or lossless
      semi-sync does not stand for it); then nothing was changed and the
      module is to be run again once they have. With V(false) the routers may
      fence it after the promotion (in check mode, would).
  returned: when O(routers_fenced=false) and there is a failover to do
  type: bool
  sample: false
unreachable_nodes:
  description:
    - Names of the nodes that could not be logged in to (or stopped
      answering while they were first read).
  returned: always
  type: list
  elements: str
  sample: [server1]
repointed:
  description:
    - Names of the replicas now replicating from the new primary (in check
      mode, that would be); with O(repoint_wait=false), those replication
      was started on.
  returned: always
  type: list
  elements: str
  sample: [server3]
repoint_waited:
  description:
    - Whether RV(repointed) lists replicas seen replicating from the new
      primary (V(true)), or only those replication was started on
      (O(repoint_wait=false)).
  returned: always
  type: bool
  sample: true
repoint_failed:
  description: Replicas that could not be re-pointed or did not start replicating from the new primary.
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
  description: Nodes that were neither promoted nor re-pointed, and why.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the node.
      type: str
    reason:
      description: Why it was excluded.
      type: str
  sample:
    - name: server3
      reason: "errant transactions (GTIDs the old primary never had): 0-3-17"
lost_gtids:
  description:
    - GTIDs the old primary (when reachable) or another reachable node had and
      the new primary lacks; C('') when none, which is the normal case.
      Non-empty only with O(allow_data_loss=true) (or in the message of a
      refusal).
  returned: always
  type: str
  sample: ""
io_left_stopped:
  description:
    - Excluded replicas of the old primary whose IO thread the module stopped
      and left stopped after the promotion (bring them back with
      M(distweb.infra.mysql_rejoin) or rebuild them).
  returned: after a promotion
  type: list
  elements: str
  sample: [server3]
heard_from_old_primary:
  description:
    - When the old primary could not be reached from this node, the replicas
      that still heard it during O(liveness_window), each with what moved
      (received GTIDs, binlog position read, heartbeats). Non-empty only in
      a refusal or with O(allow_live_primary=true).
  returned: when the old primary could not be reached and a replica of it was watched
  type: dict
  sample: {"server2": "heartbeats 118 -> 120"}
candidate_position:
  description:
    - The GTIDs the new primary had received and was waited for before its
      promotion (MariaDB position, MySQL GTID set).
  returned: always
  type: str
  sample: 0-1-1042
semi_sync:
  description: Whether lossless semi-sync was active on the old primary, and how that was told.
  returned: when the decision was made
  type: dict
  contains:
    active:
      description: Whether it was active.
      type: bool
    source:
      description:
        - V(old primary) (read from it) or V(settings) (it was unreachable; the replicas' semi-sync settings
          stand for it).
      type: str
    reason:
      description: The evidence, in words.
      type: str
    unverified:
      description: Nodes that could not be read and may hold an acknowledged commit the others lack.
      type: list
      elements: str
  sample:
    active: true
    source: settings
    reason: >-
      server1 cannot be read; the cluster is set up for lossless semi-sync (never falls back to asynchronous
      replication) and every other node was read, so each acknowledged commit is on one of server2, server3
    unverified: []
phases:
  description:
    - Seconds spent per phase; keys V(connect), V(fence), V(stop_io),
      V(collect), V(decide), V(catchup), V(promote), V(repoint) (including the
      wait for the re-pointed replicas to connect) and V(total). Writes are
      possible again on the new primary after V(promote).
  returned: always
  type: dict
  sample: {connect: 0.02, fence: 0.01, stop_io: 0.01, collect: 0.03, decide: 0.0, catchup: 0.2, promote: 0.02,
           repoint: 1.05, total: 1.34}
plan:
  description: The steps, in words, with the statements per node (passwords masked).
  returned: always
  type: list
  elements: str
  sample:
    - "fence server1: SET GLOBAL read_only = 1, then kill its client sessions"
    - "stop the IO threads of server2, server3: STOP SLAVE IO_THREAD, each once KILL has closed its connection to
      server1"
    - "wait up to 30 s until server2 has applied 0-1-1042 (MASTER_GTID_WAIT)"
    - "promote server2: STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0"
    - "re-point server3 to server2:3306: STOP SLAVE; CHANGE MASTER TO MASTER_HOST='server2', ...; START SLAVE"
notes:
  description: Remarks on the decision (preferred candidate honoured or not, equally advanced replicas, ...).
  returned: always
  type: list
  elements: str
  sample: [the preferred candidate server2 is the most advanced replica]
killed_sessions:
  description: Number of client sessions killed on the old primary.
  returned: always
  type: int
  sample: 12
queries:
  description: "The changing statements run, as C(<node>: <statement>), in order; passwords masked."
  returned: always
  type: list
  elements: str
  sample: ["server1: SET GLOBAL read_only = 1", "server2: STOP SLAVE IO_THREAD"]
msg:
  description: What was done or why not, in words.
  returned: always
  type: str
  sample: Promoted server2 (old primary server1); re-pointed server3
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.distweb.infra.plugins.module_utils import topology
from ansible_collections.distweb.infra.plugins.module_utils.mysql_connection import (
    MySQLError,
    format_mysql_error,
    is_connection_error,
)
from ansible_collections.distweb.infra.plugins.module_utils.mysql_server import monotonic, pause
from ansible_collections.distweb.infra.plugins.module_utils.mysql_cluster import (
    WholeClusterOperations,
    at_once,
    check_cluster_params,
    check_node_options,
    cluster_node_options,
    mysql_cluster_argument_spec,
    replication_argument_spec,
    run_cluster_operation,
)


PHASES = ('connect', 'listen', 'fence', 'stop_io', 'collect', 'decide', 'catchup', 'promote', 'repoint')


def argument_spec():
    spec = mysql_cluster_argument_spec()
    spec.update(replication_argument_spec())
    spec.update(
        nodes=dict(type='list', elements='dict', required=True, options=cluster_node_options()),
        primary=dict(type='str'),
        preferred_candidate=dict(type='str'),
        allow_data_loss=dict(type='bool', default=False),
        allow_live_primary=dict(type='bool', default=False),
        liveness_window=dict(type='float', default=2.5),
        presumed_unreachable=dict(type='list', elements='str', default=[]),
        presumed_unreachable_timeout=dict(type='float', default=0.5),
        routers_fenced=dict(type='bool', default=True),
        catchup_timeout=dict(type='int', default=30),
        repoint_wait=dict(type='bool', default=True),
        kill_client_sessions=dict(type='bool', default=True),
    )
    return spec


def check_params(module):
    p = module.params
    problems = check_cluster_params(p) + check_node_options(p['nodes'])
    names = [n['name'] for n in p['nodes']]
    for option in ('primary', 'preferred_candidate'):
        if p[option] is not None and p[option] not in names:
            problems.append('%s %s is not the name of one of the nodes (%s)' % (option, p[option], ', '.join(names)))
    for name in p['presumed_unreachable']:
        if name not in names:
            problems.append('presumed_unreachable names %s, which is not one of the nodes (%s)'
                            % (name, ', '.join(names)))
    if p['presumed_unreachable_timeout'] <= 0:
        problems.append('presumed_unreachable_timeout must be more than 0 seconds')
    if p['catchup_timeout'] < 0:
        problems.append('catchup_timeout must not be negative')
    if p['liveness_window'] < 0:
        problems.append('liveness_window must not be negative')
    if len(names) < 2:
        problems.append('nodes must list at least two nodes')
    if problems:
        module.fail_json(msg='; '.join(problems))


class Failover(WholeClusterOperations):
    """One run of the module."""

    def __init__(self, module):
        super(Failover, self).__init__(module, PHASES)
        self.fenced = None  # the node this run made read-only
        self.promoted = False
        self.io_stopped = []  # nodes whose IO thread this run stopped
        self.result = dict(changed=False, old_primary=None, new_primary=None, repointed=[], repoint_failed=[],
                           repoint_waited=self.params['repoint_wait'],
                           excluded=[], lost_gtids='', candidate_position='', notes=[], killed_sessions=0,
                           unreachable_nodes=[])
        for name in self.params['presumed_unreachable']:
            self.by_name[name].connect_timeout = self.params['presumed_unreachable_timeout']

    def finish(self, **kwargs):
        self.result['promoted'] = self.promoted
        return super(Failover, self).finish(**kwargs)

    # -- reading -------------------------------------------------------------
    def read_states(self, order=None, before=None):
        """Node states (in node order), read in ``order`` (names). A node
        whose connection breaks becomes unreachable. ``before``: earlier
        states whose semi-sync reads become ``semi_sync_before``."""
        states = {}
        for name in order or [n.name for n in self.nodes]:
            states[name] = self.read_node(self.by_name[name])
        result = []
        for node in self.nodes:
            state = states[node.name]
            if before is not None and before.get(node.name):
                state['semi_sync_before'] = before[node.name].get('semi_sync')
            result.append(state)
        return result

    # -- plan text -----------------------------------------------------------
    def describe(self, plan, states, settled):
        by_state = dict((s['name'], s) for s in states)
        old = self.by_name[plan['old_primary']]
        text = []
        if old.reachable:
            dialect = old.dialect
            text.append('fence %s: %s%s' % (old.name, '; '.join(s.display for s in dialect.set_read_only(True)),
                                            ', then kill its client sessions'
                                            if self.params['kill_client_sessions'] else ''))
        else:
            text.append('the old primary %s is unreachable: it cannot be fenced' % old.name)
        stop = [name for name in plan['stop_io'] if self.by_name[name].reachable]
        if stop:
            text.append('stop the IO threads of %s: %s, each once KILL has closed its connection to %s'
                        % (', '.join(stop), self.by_name[stop[0]].dialect.stop_replica_io_sql, old.name))
        text.append('collect the GTID positions and replication state of every reachable node')
        candidate = self.by_name[plan['candidate']]
        dialect = candidate.dialect
        text.append('wait up to %s s until %s has applied %s (%s)' % (
            self.params['catchup_timeout'], candidate.name, plan['wait_position'] or 'nothing',
            dialect.wait_for_gtid_function()))
        text.append('promote %s: %s' % (candidate.name, '; '.join(
            s.display for s in self.promote_statements(candidate, by_state[candidate.name].get('semi_sync')))))
        for name in plan['repoint']:
            node = self.by_name[name]
            text.append('re-point %s to %s (%s:%s): %s' % (
                name, candidate.name, candidate.source_host, candidate.source_port,
                '; '.join(self.point_at_statements(node, candidate,
                                                   running=by_state[name]['sql_running']
                                                   or by_state[name]['io_running']))))
        for entry in plan['excluded']:
            if entry['name'] in plan['stop_io'] and self.by_name[entry['name']].reachable:
                text.append('leave %s with its IO thread stopped, so that it neither follows nor acknowledges the '
                            'old primary (%s)' % (entry['name'], entry['reason']))
            else:
                text.append('leave %s as it is: %s' % (entry['name'], entry['reason']))
        if not self.params['routers_fenced']:
            why = self.routers_fence_first(plan)
            text.append('the database routers fence %s %s' % (
                old.name, 'before the promotion: %s' % why if why else
                'after the promotion: it acknowledges nothing once its replicas\' IO threads are stopped'))
        if old.reachable:
            text.append('%s stays read-only; bring it back with distweb.infra.mysql_rejoin' % old.name)
        if not settled:
            text.append('(planned from positions read before fencing; decided again after step 3)')
        return text

    # -- undo ------------------------------------------------------------------
    def undo(self):
        """Start the IO threads this run stopped and make the old primary
        writable again if this run fenced it. Returns (what was put back,
        what could not be)."""
        done = []
        problems = []
        started = []
        for node in self.io_stopped:
            if not node.reachable:
                problems.append('the IO thread of %s could not be started again: %s' % (node.name, node.error))
                continue
            try:
                self.start_io(node)
                started.append(node.name)
            except MySQLError as exc:
                problems.append('starting the IO thread of %s failed: %s' % (node.name, format_mysql_error(exc)))
        if started:
            done.append('the IO threads of %s were started again' % ', '.join(started))
        self.io_stopped = []
        if self.fenced is not None:
            if not self.fenced.reachable:
                problems.append('%s could not be made writable again: %s' % (self.fenced.name, self.fenced.error))
            else:
                try:
                    self.unfence(self.fenced)
                    done.append('%s was made writable again%s' % (
                        self.fenced.name, ' (its killed client sessions stay killed)' if self.killed else ''))
                except MySQLError as exc:
                    problems.append('making %s writable again failed: %s'
                                    % (self.fenced.name, format_mysql_error(exc)))
            self.fenced = None
        return done, problems

    def abort(self, msg):
        """Fail on an unexpected error: before the promotion, putting back
        what this run changed (as a refusal does)."""
        if self.promoted:
            self.fail(msg, changed=True)
        self.refuse(msg)

    def refuse(self, msg, **kwargs):
        """Fail without promoting, after putting back what this run changed."""
        done, problems = self.undo()
        changed = bool(self.queries)
        if done:
            msg += '. Put back: %s' % '; '.join(done)
        elif not changed:
            msg += '. Nothing was changed'
        if problems:
            msg += '. BUT: %s' % '; '.join(problems)
        self.fail(msg, changed=changed, **kwargs)

    # -- is the old primary alive for someone else? -------------------------
    def listen(self, old_name, states):
        """An old primary this node cannot reach may still be alive for its
        replicas (and so for the app servers): only this node's view is
        cut. Read what each of its replicas hears from it for
        ``liveness_window`` seconds and refuse, changing nothing, as soon as
        one of them hears it, unless ``allow_live_primary``."""
        old = self.by_name[old_name]
        window = self.params['liveness_window']
        if old.reachable or window <= 0:
            return
        old_state = [s for s in states if s['name'] == old_name][0]
        watched = [self.by_name[s['name']] for s in states
                   if s['reachable'] and s['name'] != old_name and topology.source_is(s, old_state)]
        if not watched:
            return
        # The first reading of each replica: the one taken right after its
        # login (connect_all), while the login to the old primary still
        # waited out its timeout, so that the window overlaps that wait; or
        # one taken now. Each replica is listened to for the whole window
        # from its first reading, and read at least once more.
        first = {}
        read_at = []
        for node in watched:
            if node.first_signs is not None:
                read_at.append(node.first_signs[0])
                first[node.name] = node.first_signs[1]
            else:
                read_at.append(monotonic())
                first[node.name] = node.server.source_signs()
        deadline = max(read_at) + window
        while True:
            pause(min(0.25, max(0.0, deadline - monotonic())))
            heard = topology.heard_from(first, dict((node.name, node.server.source_signs()) for node in watched))
            if heard or monotonic() >= deadline:
                break
        self.result['heard_from_old_primary'] = heard
        if not heard:
            return
        what = '; '.join('%s (%s)' % (name, moved) for name, moved in sorted(heard.items()))
        if self.params['allow_live_primary']:
            self.warnings.append('the old primary %s cannot be reached from here but is alive for %s; going on '
                                 'because allow_live_primary is set: make sure it takes no writes'
                                 % (old_name, what))
            return
        self.fail('Refusing to fail over: the old primary %s cannot be reached from here (%s), but it is alive for '
                  'its replicas: %s. Promoting another node now would leave two primaries. Find out why this node '
                  'cannot reach it; if it must go, stop it or cut it off from the app servers first, or set '
                  'allow_live_primary. Nothing was changed.' % (old_name, old.error, what),
                  heard_from_old_primary=heard)

    def routers_fence_first(self, plan):
        """Why the database routers must fence the old primary of ``plan``
        before the promotion, or None when they may do it after: it cannot
        be reached, and lossless semi-sync by the settings stands for it, so
        it acknowledges nothing once its replicas' IO threads are stopped
        (step 2), whichever router sends it a write."""
        old = self.by_name[plan['old_primary']]
        semi = plan['semi_sync'] or {}
        if old.reachable:
            return 'it answers here, and may acknowledge writes until it is fenced'
        if not (semi.get('active') and semi.get('source') == 'settings'):
            return 'lossless semi-sync does not stand for it: %s' % (semi.get('reason') or 'not known')
        return None

    # -- the steps -----------------------------------------------------------
    def fence_old_primary(self, old, state):
        """Make a reachable old primary (``state``: as read before) refuse
        writes and kill its client sessions; refuse when that fails or it is
        still writable. One that stops answering is treated as unreachable."""
        p = self.params
        if old.reachable:
            was_read_only = state['read_only']
            try:
                self.killed = self.fence(old, kill_sessions=p['kill_client_sessions'])
                if not was_read_only:
                    self.fenced = old
                if not old.server.server_info()['read_only']:
                    self.refuse('Refusing to fail over: %s is still writable after %s'
                                % (old.name, '; '.join(s.display for s in old.dialect.set_read_only(True))))
            except MySQLError as exc:
                if not is_connection_error(exc):
                    if not was_read_only:
                        self.fenced = old
                    self.refuse('Refusing to fail over: fencing the old primary %s failed: %s'
                                % (old.name, format_mysql_error(exc)))
                old.lost(exc)
                self.warnings.append('the old primary %s stopped answering while it was fenced (%s): it is treated '
                                     'as unreachable and may not be read-only' % (old.name, old.error))

    def stop_io_threads(self, names, before_by_name):
        """Stop the IO threads of the replicas ``names`` of the old
        primary (those running in ``before_by_name``), so that they neither
        receive nor acknowledge anything more from it."""
        # At once: a replica whose IO thread waits on a hung primary takes
        # seconds to stop (the server signals the thread again every 2 s).
        nodes = [self.by_name[name] for name in names
                 if self.by_name[name].reachable
                 and (before_by_name[name].get('io_thread') or 'No').lower() != 'no']
        raised = at_once(nodes, self.stop_io)
        # every thread stopped is known (and put back by a refusal) before
        # any failure is acted on
        self.io_stopped.extend(node for node in nodes if raised[node.name] is None)
        for node in nodes:
            exc = raised[node.name]
            if exc is None:
                continue
            if not isinstance(exc, MySQLError):
                raise exc
            if not is_connection_error(exc):
                self.refuse('Refusing to fail over: stopping the IO thread of %s failed: %s'
                            % (node.name, format_mysql_error(exc)))
            node.lost(exc)

    def keep_excluded_stopped(self, repoint, candidate):
        """The replicas left out of the failover (not in ``repoint``) keep
        their IO thread stopped: running, it would follow the old primary
        again if that came back, serve reads from its stream and acknowledge
        its commits."""
        kept = [node.name for node in self.io_stopped if node.name not in repoint and node.reachable]
        if kept:
            self.warnings.append('the IO thread of %s stays stopped (it was left out of the failover): make it a '
                                 'replica of %s with distweb.infra.mysql_rejoin or rebuild it'
                                 % (', '.join(kept), candidate.name))
        self.result['io_left_stopped'] = kept
        self.io_stopped = []

    def report(self, plan, old, candidate, repointed, failed):
        """The result of a failover that promoted ``candidate``: the
        replicas ``repointed`` and those ``failed`` (warned about)."""
        for entry in failed:
            self.warnings.append('%s was not re-pointed to the new primary %s: %s'
                                 % (entry['name'], candidate.name, entry['reason']))
        msg = 'Promoted %s (old primary %s)' % (candidate.name, old.name)
        if repointed:
            msg += '; re-pointed %s%s' % (', '.join(repointed), '' if self.params['repoint_wait'] else
                                          ' (replication started, not waited for)')
        if failed:
            msg += '; re-pointing failed for %s' % ', '.join(e['name'] for e in failed)
        if plan['lost_gtids']:
            msg += '; LOST GTIDs: %s' % plan['lost_gtids']
        return self.finish(msg=msg, repointed=repointed, repoint_failed=failed)

    # -- the run -------------------------------------------------------------
    def run(self):
        p = self.params
        since = monotonic()
        self.log_in(signs=p['liveness_window'] > 0)
        before = self.read_states()
        self.result['unreachable_nodes'] = [node.name for node in self.nodes if not node.reachable]
        since = self.timed('connect', since)

        plan = topology.plan_failover(before, primary=p['primary'], preferred=p['preferred_candidate'],
                                      allow_data_loss=p['allow_data_loss'], settled=False)
        self.result.update(old_primary=plan['old_primary'], excluded=plan['excluded'], notes=plan['notes'])
        self.warnings.extend(plan['warnings'])
        if plan['action'] == topology.NONE:
            return self.finish(msg=plan['reason'], new_primary=plan['candidate'])
        if plan['action'] == topology.REFUSE:
            self.fail('Refusing to fail over: %s. Nothing was changed.' % plan['reason'],
                      semi_sync=plan['semi_sync'])
        self.listen(plan['old_primary'], before)
        since = self.timed('listen', since)
        fence_first = None
        if not p['routers_fenced']:
            fence_first = self.routers_fence_first(plan)
            self.result['routers_fence_first'] = fence_first is not None
        self.plan_text = self.describe(plan, before, settled=False)
        if self.module.check_mode or fence_first:
            since = self.timed('decide', since)
            msg = 'Would promote %s (old primary %s)%s' % (
                plan['candidate'], plan['old_primary'],
                '; would re-point %s' % ', '.join(plan['repoint']) if plan['repoint'] else '')
            if fence_first and not self.module.check_mode:
                msg += ', once the database routers have fenced %s (%s). Nothing was changed' % (
                    plan['old_primary'], fence_first)
            return self.finish(changed=self.module.check_mode, new_primary=plan['candidate'],
                               repointed=plan['repoint'], candidate_position=plan['wait_position'],
                               semi_sync=plan['semi_sync'], msg=msg)

        old = self.by_name[plan['old_primary']]
        before_by_name = dict((s['name'], s) for s in before)

        # (1) fence the old primary
        self.fence_old_primary(old, before_by_name[old.name])
        since = self.timed('fence', since)

        # (2) stop the IO threads of its replicas
        self.stop_io_threads(plan['stop_io'], before_by_name)
        since = self.timed('stop_io', since)

        # (3) collect: the replicas first, the (fenced) old primary last
        order = [n.name for n in self.nodes if n.name != old.name] + [old.name]
        after = self.read_states(order=order, before=before_by_name)
        since = self.timed('collect', since)

        # (4) decide
        plan = topology.plan_failover(after, primary=old.name, preferred=p['preferred_candidate'],
                                      allow_data_loss=p['allow_data_loss'], settled=True)
        self.result.update(excluded=plan['excluded'], notes=plan['notes'], lost_gtids=plan['lost_gtids'],
                           semi_sync=plan['semi_sync'])
        for warning in plan['warnings']:
            if warning not in self.warnings:
                self.warnings.append(warning)
        since = self.timed('decide', since)
        if plan['action'] != topology.FAILOVER:
            self.refuse('Refusing to fail over: %s' % plan['reason'])
        fence_first = None if p['routers_fenced'] else self.routers_fence_first(plan)
        if fence_first:
            self.refuse('Refusing to fail over before the database routers have fenced %s: %s, which the first '
                        'reading did not show. Run it again' % (old.name, fence_first))
        self.plan_text = self.describe(plan, after, settled=True)
        candidate = self.by_name[plan['candidate']]
        self.result.update(candidate_position=plan['wait_position'])

        # (5) let the candidate apply its relay log
        ok, message = self.catch_up(candidate, plan['wait_position'], p['catchup_timeout'])
        since = self.timed('catchup', since)
        if not ok:
            self.refuse('Refusing to promote %s: it did not apply the GTIDs it received (%s): %s'
                        % (candidate.name, plan['wait_position'], message))

        # (6) promote
        self.io_stopped = [n for n in self.io_stopped if n is not candidate]
        self.fenced = None
        self.promoted = True
        self.promote_and_verify(candidate, 'The old primary %s stays fenced and the IO threads of %s stay stopped' % (
            old.name, ', '.join(n.name for n in self.io_stopped) or 'no replica'), new_primary=None)
        since = self.timed('promote', since)
        self.result.update(changed=True, new_primary=candidate.name)

        # (7) re-point the other replicas (and wait for them, unless the
        # caller has more urgent work: repoint_wait)
        if p['repoint_wait']:
            repointed, failed = self.repoint_and_wait(plan['repoint'], candidate, after, p['catchup_timeout'])
        else:
            started, failed = self.repoint(plan['repoint'], candidate, after)
            repointed = [node.name for node in started]
        self.keep_excluded_stopped(plan['repoint'], candidate)
        since = self.timed('repoint', since)
        return self.report(plan, old, candidate, repointed, failed)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_params(module)
    run_cluster_operation(Failover(module))


if __name__ == '__main__':
    main()
