# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mutation check of the unit tests of the cluster-level safety logic.

Each entry of ``MUTATIONS`` removes or inverts one safety check of
mysql_failover.py, topology.py, mysql_rejoin.py, mysql_switchover.py, the
cluster operations of module_utils/mysql_cluster.py or the statement of
module_utils/mysql_dialect.py that switches the semi-sync source side.
``python tests/unit/mutations.py [--rev REV] [ID ...]`` takes one snapshot of
plugins/, tests/, meta/ and galaxy.yml (of the working tree, or of the git
revision REV), runs the unit tests that exercise that code on it unchanged
(they must all pass), then applies each mutation alone to its own copy of
the snapshot, runs the same tests there and prints the tests that failed.
It exits non-zero when the unchanged snapshot fails, when a mutation
survives (no test failed) or when its text is no longer found exactly once
(the code moved: update the entry). The checkout itself is never changed.
Slow (minutes): not part of ``scripts/test``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import re
import shutil
import subprocess
import sys
import tempfile

from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COPIED = ('plugins', 'tests', 'meta', 'galaxy.yml')
TESTS = ('tests/unit/plugins/modules', 'tests/unit/plugins/module_utils/test_topology.py',
         'tests/unit/plugins/module_utils/test_mysql_connection.py',
         'tests/unit/plugins/module_utils/test_mysql_dialect.py',
         'tests/unit/plugins/module_utils/test_mysql_server.py',
         'tests/unit/plugins/module_utils/test_mysql_cluster.py',
         'tests/unit/plugins/module_utils/test_gtid.py', 'tests/unit/test_fake_cluster.py')

FAILOVER = 'plugins/modules/mysql_failover.py'
TOPOLOGY = 'plugins/module_utils/topology.py'
REJOIN = 'plugins/modules/mysql_rejoin.py'
SWITCHOVER = 'plugins/modules/mysql_switchover.py'
CLUSTER = 'plugins/module_utils/mysql_cluster.py'
DIALECT = 'plugins/module_utils/mysql_dialect.py'
FILES = dict(FAILOVER=FAILOVER, TOPOLOGY=TOPOLOGY, REJOIN=REJOIN, SWITCHOVER=SWITCHOVER, CLUSTER=CLUSTER,
             DIALECT=DIALECT)

# (id, file, what the mutation does, text replaced, replacement)
MUTATIONS = [
    ('F1', 'FAILOVER', 'fence_old_primary: no fencing of a reachable old primary',
     "        if old.reachable:\n            was_read_only = state['read_only']",
     "        if False:\n            was_read_only = state['read_only']"),
    ('F2', 'FAILOVER', 'fence_old_primary: client sessions of the old primary not killed',
     "self.killed = self.fence(old, kill_sessions=p['kill_client_sessions'])",
     'self.killed = self.fence(old, kill_sessions=False)'),
    ('F3', 'FAILOVER', 'fence_old_primary: no check that the fenced old primary is read-only',
     "                if not old.server.server_info()['read_only']:",
     '                if False:'),
    ('F4', 'FAILOVER', 'fence_old_primary: a fencing error taken for an unreachable old primary',
     ('            except MySQLError as exc:\n                if not is_connection_error(exc):\n   '
      '                 if not was_read_only:'),
     '            except MySQLError as exc:\n                if False:\n                    if not was_read_only:'),
    ('F5', 'FAILOVER', 'stop_io_threads: IO threads not stopped',
     '                self.stop_io(node)\n                self.io_stopped.append(node)',
     '                pass'),
    ('F6', 'FAILOVER', 'run: second decision made as unsettled (lost GTIDs only noted)',
     "                                      allow_data_loss=p['allow_data_loss'], settled=True)",
     "                                      allow_data_loss=p['allow_data_loss'], settled=False)"),
    ('F7', 'FAILOVER', 'run: no MASTER_GTID_WAIT before the promotion',
     "ok, message = self.catch_up(candidate, plan['wait_position'], p['catchup_timeout'])",
     'ok, message = True, None'),
    ('F8', 'FAILOVER', 'run: a catch-up that failed does not stop the promotion',
     "        if not ok:\n            self.refuse('Refusing to promote %s",
     "        if False:\n            self.refuse('Refusing to promote %s"),
    ('F9', 'FAILOVER', 'run: check mode acts',
     "        if self.module.check_mode:\n            since = self.timed('decide', since)",
     "        if False:\n            since = self.timed('decide', since)"),
    ('F10', 'FAILOVER', 'run: semi-sync state read before fencing/IO stop not passed on',
     '        after = self.read_states(order=order, before=before_by_name)',
     '        after = self.read_states(order=order)'),
    ('F11', 'FAILOVER', 'run: first (unsettled) refusal ignored',
     ("        if plan['action'] == topology.REFUSE:\n            self.fail('Refusing to fail over"
      ": %s. Nothing was changed.'"),
     "        if False:\n            self.fail('Refusing to fail over: %s. Nothing was changed.'"),
    ('F12', 'FAILOVER', 'run: second (settled) refusal ignored',
     ("        if plan['action'] != topology.FAILOVER:\n            self.refuse('Refusing to fail "
      "over: %s' % plan['reason'])"),
     ("        if plan['action'] == topology.NONE:\n            self.refuse('Refusing to fail over"
      ": %s' % plan['reason'])")),
    ('F13', 'FAILOVER', 'undo: old primary not made writable again',
     '                    self.unfence(self.fenced)',
     '                    pass'),
    ('F14', 'FAILOVER', 'undo: IO threads not started again',
     '                self.start_io(node)\n                started.append(node.name)',
     '                started.append(node.name)'),
    ('F15', 'CLUSTER', 'promote_and_verify: no check that the promoted node is writable',
     "            if node.server.server_info()['read_only']:",
     '            if False:'),
    ('F16', 'FAILOVER', 'run: old primary not read last',
     '        order = [n.name for n in self.nodes if n.name != old.name] + [old.name]',
     '        order = None'),
    ('F17', 'FAILOVER', 'keep_excluded_stopped: excluded replicas of the old primary get their IO thread started again',
     "        self.result['io_left_stopped'] = kept\n",
     ("        self.result['io_left_stopped'] = kept\n        for node in self.io_stopped:\n"
      "            if node.name in kept:\n                self.start_io(node)\n")),
    ('F18', 'FAILOVER', 'run: candidate IO thread restarted with the excluded ones',
     '        self.io_stopped = [n for n in self.io_stopped if n is not candidate]\n',
     ''),
    ('F19', 'CLUSTER', 'wait_replicating: re-pointed replicas not checked',
     '                ok, dummy, message = wait_for_replica(node.server, timeout, settle=START_SETTLE_SECONDS)',
     '                ok, dummy, message = True, None, None'),
    ('T1', 'TOPOLOGY', 'plan_failover: errant replicas not excluded',
     "            if found:\n                errants[state['name']] = found",
     "            if False:\n                errants[state['name']] = found"),
    ('T2', 'TOPOLOGY', '_choose: first healthy replica instead of the most advanced',
     '    best = gtid_utils.most_advanced(values, flavor=flavor)\n    if best is None:\n        return None, []',
     ('    best = gtid_utils.most_advanced(values, flavor=flavor)\n    if best is None:\n        re'
      'turn None, []\n    best = 0')),
    ('T3', 'TOPOLOGY', '_choose: among equals not the one that applied most',
     '    return top[most if most is not None else 0], top',
     '    return top[0], top'),
    ('T4', 'TOPOLOGY', 'semi_sync_verdict: semi-sync not enabled accepted',
     "        if not before.get('source_enabled'):",
     '        if False:'),
    ('T5', 'TOPOLOGY', 'semi_sync_verdict: status OFF (fallen back) accepted',
     "        if not before.get('source_status'):",
     '        if False:'),
    ('T6', 'TOPOLOGY', 'semi_sync_verdict: AFTER_COMMIT accepted (reachable primary)',
     ('        if wait_point and wait_point != AFTER_SYNC:\n            return _verdict(False, '
      "'old primary',"),
     "        if False:\n            return _verdict(False, 'old primary',"),
    ('T7', 'TOPOLOGY', 'semi_sync_verdict: no_tx growth while fenced accepted (a source that can fall back)',
     "                and not (lossless_settings(before) and after.get('source_enabled')):",
     '                and False:'),
    ('T7b', 'TOPOLOGY', 'semi_sync_verdict: no_tx growth accepted although the source side went off (acknowledged)',
     "                and not (lossless_settings(before) and after.get('source_enabled')):",
     '                and not lossless_settings(before):'),
    ('T8', 'TOPOLOGY', 'semi_sync_verdict: a replica whose Rpl_semi_sync_slave_status reads ON stands for lossless',
     "        if not lossless_settings(semi):\n            unsafe.append(",
     "        if not lossless_settings(semi) and not semi.get('replica_status'):\n            unsafe.append("),
    ('T10', 'TOPOLOGY', 'plan_failover: inactive semi-sync not refused',
     "    if not verdict['active']:",
     '    if False:'),
    ('T11', 'TOPOLOGY', 'plan_failover: GTIDs only the old primary has not counted as lost',
     ("    if old['reachable']:\n        missing = gtid_utils.subtract(old['gtid_binlog'], values["
      'index], flavor=flavor)'),
     "    if False:\n        missing = gtid_utils.subtract(old['gtid_binlog'], values[index], flavor=flavor)"),
    ('T12', 'TOPOLOGY', 'plan_failover: GTIDs another node has not counted as lost',
     "        if missing:\n            lost.append(missing)\n            holders.append('%s has %s that the candidate",
     "        if False:\n            lost.append(missing)\n            holders.append('%s has %s that the candidate"),
    ('T13', 'TOPOLOGY', 'plan_failover: refusals (semi-sync, lost GTIDs) ignored',
     "    if refusals:\n        raise _Refused('; '.join(refusals))",
     '    pass'),
    ('T14', 'TOPOLOGY', 'plan_failover: unorderable replicas (split brain) not refused',
     '    index, top = _choose(healthy, values, flavor, preferred, notes)\n    if index is None:',
     ('    index, top = _choose(healthy, values, flavor, preferred, notes)\n    if index is None:\n'
      '        index, top = 0, [0]\n    if False:')),
    ('T15', 'TOPOLOGY', 'plan_failover: another writable node ignored',
     '    writable = _other_writable(states, old)\n    if writable:',
     '    writable = _other_writable(states, old)\n    if False:'),
    ('T16', 'TOPOLOGY', '_candidate_problem: SQL error accepted',
     "    if state['last_sql_errno']:\n        return 'its SQL thread stopped",
     "    if False:\n        return 'its SQL thread stopped"),
    ('T17', 'TOPOLOGY', '_candidate_problem: stopped SQL thread accepted',
     "    if not state['sql_running']:\n        return 'its SQL thread is not running'",
     "    if False:\n        return 'its SQL thread is not running'"),
    ('T18', 'TOPOLOGY', '_candidate_problem: replica of another source accepted',
     "    if not source_is(state, old):\n        return 'replicates from",
     "    if False:\n        return 'replicates from"),
    ('T19', 'TOPOLOGY', 'plan_failover: healthy detected primary failed over',
     '        if connected:\n            plan.update(action=NONE,',
     '        if False:\n            plan.update(action=NONE,'),
    ('T20', 'TOPOLOGY', 'plan_failover: old primary that is a replica accepted',
     "    if old['reachable'] and old['configured']:",
     '    if False:'),
    ('T21', 'TOPOLOGY', 'errant: MariaDB without the old primary finds none',
     ('    if flavor == MARIADB:\n        return gtid_utils.subtract(history(state, flavor), recei'
      'ved(state, flavor), flavor=flavor)'),
     "    if flavor == MARIADB:\n        return ''"),
    ('T22', 'TOPOLOGY', 'errant: against a reachable old primary finds none',
     '        return gtid_utils.subtract(history(state, flavor), primary_history(reference, flavor), flavor=flavor)',
     "        return ''"),
    ('T23', 'TOPOLOGY', 'received: Gtid_IO_Pos ignored (relay log not counted)',
     "        return gtid_utils.union(state['gtid_received'], state['gtid_slave_pos'] or '', flavor=flavor)",
     "        return gtid_utils.format_gtid(state['gtid_slave_pos'] or '', flavor)"),
    ('T24', 'TOPOLOGY', 'decide_rejoin: diverged node accepted',
     "    result['extra_gtids'] = extra\n    if extra:",
     "    result['extra_gtids'] = extra\n    if False:"),
    ('T25', 'TOPOLOGY', 'decide_rejoin: node binlog state ignored (position only)',
     '        mine = history(node, flavor)\n        theirs = primary_history(primary, flavor)',
     ('        mine = history(dict(node, gtid_binlog_state=None), flavor)\n        theirs = primar'
      'y_history(primary, flavor)')),
    ('T26', 'TOPOLOGY', 'plan_failover: lost GTIDs only noted even when settled',
     '    if holders and not settled:',
     '    if holders:'),
    ('T27', 'TOPOLOGY', 'plan_switchover: errant target accepted',
     "            if found:\n                problem = 'errant transactions (GTIDs the primary lacks)",
     "            if False:\n                problem = 'errant transactions (GTIDs the primary lacks)"),
    ('T28', 'TOPOLOGY', 'plan_switchover: target without IO thread accepted',
     "    if state['last_io_errno'] or not state['io_running']:",
     '    if False:'),
    ('T29', 'TOPOLOGY', 'plan_switchover: lagging target accepted',
     '    if max_lag is not None and lag is not None and lag > max_lag:',
     '    if False:'),
    ('T30', 'TOPOLOGY', 'plan_failover: no healthy replica not refused',
     ("    if not healthy:\n        raise _Refused('no healthy replica to promote: %s' % (\n       "
      "     '; '.join('%s: %s' % (e['name'], e['reason']) for e in excluded) or 'there are no oth"
      "er nodes'))"),
     "    if not healthy:\n        healthy = [s for s in others if s['reachable']] or others[:1]"),
    ('T31', 'TOPOLOGY', 'plan_failover: no warning that an unreachable old primary was not fenced',
     "    if not old['reachable']:\n        plan['warnings'].append('the old primary %s is unreachable",
     "    if False:\n        plan['warnings'].append('the old primary %s is unreachable"),
    ('R1', 'REJOIN', 'rejoin: node not made read-only first',
     "        if not info['read_only']:\n            self.plan(node, node.dialect.set_read_only(True))",
     '        if False:\n            self.plan(node, node.dialect.set_read_only(True))'),
    ('R2', 'REJOIN', 'rejoin: diverged node rejoined',
     "        if not decision['ok']:",
     '        if False:'),
    ('R3', 'REJOIN', 'rejoin: gtid_slave_pos not set before CHANGE MASTER',
     "        slave_pos = decision['start_position']",
     '        slave_pos = None'),
    ('R4', 'REJOIN', 'rejoin: replication failure after START not reported',
     "        if not ok:\n            self.fail('%s was pointed at %s but does not replicate",
     "        if False:\n            self.fail('%s was pointed at %s but does not replicate"),
    ('R5', 'REJOIN', 'rejoin: read-only primary accepted',
     "        if primary_info is None or primary_info['read_only']:",
     '        if primary_info is None:'),
    ('S1', 'SWITCHOVER', 'switchover: target not waited for',
     "ok, message = self.catch_up(target, position, p['wait_timeout'])",
     'ok, message = True, None'),
    ('S2', 'SWITCHOVER', 'rejoin_old_primary: diverged old primary rejoined',
     "            if decision['ok']:\n                self.retire_source(old)\n                self.point_at(old, target,",
     '            if True:\n                self.retire_source(old)\n                self.point_at(old, target,'),
    ('S3', 'SWITCHOVER', 'block_writes: primary not fenced',
     "            self.killed = self.fence(old, kill_sessions=p['kill_client_sessions'])",
     '            self.killed = []'),
    ('S4', 'SWITCHOVER', 'block_writes: position not read from the fenced primary',
     "            position = old.server.gtid_positions()['binlog'] or ''",
     "            position = ''"),
    ('F20', 'FAILOVER', 'run: candidate IO thread restarted before MASTER_GTID_WAIT (relay log discarded)',
     '        # (5) let the candidate apply its relay log\n        ok, message = self.catch_up(',
     '        # (5) let the candidate apply its relay log\n        self.start_io(candidate)\n        ok, message = self.catch_up('),
    ('F21', 'FAILOVER', 'run: CHANGE MASTER on the candidate before MASTER_GTID_WAIT (relay log discarded)',
     '        # (5) let the candidate apply its relay log\n        ok, message = self.catch_up(',
     ('        # (5) let the candidate apply its relay log\n        candidate.server.execute(candi'
      'date.dialect.stop_replica())\n        self.point_at(candidate, old, running=False)\n        '
      'ok, message = self.catch_up(')),
    ('T32', 'TOPOLOGY', 'plan_failover: wait for what the candidate applied, not what it received',
     "    plan['wait_position'] = values[index]",
     "    plan['wait_position'] = applied(candidate, flavor)"),
    ('F22', 'FAILOVER', 'run: an unreachable old primary is not listened for through its replicas',
     "        self.listen(plan['old_primary'], before)\n",
     "        pass\n"),
    ('F23', 'FAILOVER', 'listen: a replica that hears the old primary does not stop the failover',
     "        if self.params['allow_live_primary']:\n            self.warnings.append(",
     "        if True:\n            self.warnings.append("),
    ('T34', 'TOPOLOGY', 'heard_from: a replica whose IO thread lost its source still counts as hearing it',
     "        if before is None or (after.get('io_thread') or '').lower() != 'yes':",
     "        if before is None:"),
    ('T33', 'TOPOLOGY', 'plan_failover: the settings of replicas of other sources stand for the old primary',
     "    verdict = semi_sync_verdict(old, [s for s in replicas_of_old if s['name'] not in errants],",
     "    verdict = semi_sync_verdict(old, [s for s in others if s['reachable'] and s['name'] not in errants],"),
    ('S5', 'SWITCHOVER', 'rejoin_old_primary: old primary GTIDs not compared before rejoining it',
     '            old_state = old.read_state(semi_sync=False, history=True)',
     "            old_state = dict(old.read_state(semi_sync=False, history=True), gtid_binlog_state='', gtid_binlog='')"),
    # lossless semi-sync: the settings, the other nodes, the source side
    ('T35', 'TOPOLOGY', 'lossless_settings: the wait point ignored',
     "                and (semi.get('wait_point') or '') == AFTER_SYNC\n",
     '\n'),
    ('T36', 'TOPOLOGY', 'lossless_settings: wait_no_replica ignored',
     "                and semi.get('wait_no_replica')\n",
     '\n'),
    ('T37', 'TOPOLOGY', 'lossless_settings: a timeout that falls back accepted',
     "                and (semi.get('timeout_ms') or 0) >= LOSSLESS_TIMEOUT_MS)",
     '                and True)'),
    ('T38', 'TOPOLOGY', 'lossless_settings: a node that is no semi-sync replica accepted',
     "    return bool(semi.get('available') and semi.get('replica_enabled')\n",
     "    return bool(semi.get('available')\n"),
    ('T39', 'TOPOLOGY', 'semi_sync_verdict: settings that are not lossless accepted (unreachable old primary)',
     '    if unsafe:\n        return _verdict(False,',
     '    if False:\n        return _verdict(False,'),
    ('T40', 'TOPOLOGY', 'semi_sync_verdict: another unreachable node (it may hold the last commit) ignored',
     '    if unreachable:\n        return _verdict(False,',
     '    if False:\n        return _verdict(False,'),
    ('T41', 'TOPOLOGY', 'plan_failover: the unreachable other nodes not passed to the verdict',
     "                                unreachable=[s['name'] for s in others if not s['reachable']])",
     '                                unreachable=[])'),
    ('T42', 'TOPOLOGY', 'semi_sync_verdict: no replica of the old primary read, yet lossless',
     "    if not replicas:\n        return _verdict(False, 'settings',",
     "    if False:\n        return _verdict(False, 'settings',"),
    ('T43', 'TOPOLOGY', 'plan_failover: allow_data_loss does not say what only the unreachable nodes received',
     "                         if verdict['unverified'] else '')",
     "                         if False else '')"),
    ('M1', 'CLUSTER', 'promote: the semi-sync source side of the new primary not switched on',
     "        if semi_sync_member(semi) and not semi.get('source_enabled'):\n            statements.append(",
     "        if False:\n            statements.append("),
    ('M2', 'CLUSTER', 'promote: the source side switched on after the node takes writes',
     '        return statements + dialect.set_read_only(False)',
     '        return statements[:2] + dialect.set_read_only(False) + statements[2:]'),
    ('M3', 'CLUSTER', 'promote: the semi-sync state of the node not read (taken for unknown)',
     '        self.execute(node, self.promote_statements(node, node.server.semi_sync()))',
     '        self.execute(node, self.promote_statements(node, None))'),
    ('M4', 'CLUSTER', 'retire: the source side of a demoted node left on',
     "        if semi and semi.get('source_enabled'):\n            return [node.dialect.set_semi_sync_source(False, ",
     "        if False:\n            return [node.dialect.set_semi_sync_source(False, "),
    ('M4b', 'DIALECT', 'the source side switched by the first name of the dialect, not the one the server has',
     "        name = variable or self.semi_sync_prefixes[0][0] + 'enabled'",
     "        name = self.semi_sync_prefixes[0][0] + 'enabled'"),
    ('M5', 'CLUSTER', 'retire_source: the semi-sync state of the node not read',
     '        self.execute(node, self.retire_source_statements(node, node.server.semi_sync()))',
     '        self.execute(node, self.retire_source_statements(node, None))'),
    ('F24', 'FAILOVER', 'plan: the promotion planned without the semi-sync state of the candidate',
     "self.promote_statements(candidate, by_state[candidate.name].get('semi_sync'))",
     'self.promote_statements(candidate, None)'),
    ('R6', 'REJOIN', 'rejoin: the source side not switched off before CHANGE MASTER',
     '            self.retire(node, semi)\n            self.point_at(',
     '            self.point_at('),
    ('R7', 'REJOIN', 'rejoin: client sessions not killed before the source side goes off',
     '            self.kill_client_sessions(node)\n            self.execute(node, self.retire_source_statements(',
     '            self.execute(node, self.retire_source_statements('),
    ('R8', 'REJOIN', 'rejoin: a healthy replica with its source side on left as it is',
     '                else:\n                    self.retire(node, semi)',
     '                else:\n                    pass'),
    ('R9', 'REJOIN', 'rejoin: check mode switches the source side of a healthy replica off',
     "                if self.module.check_mode:\n                    self.planned.extend('%s: %s' % (node.name, s.display)",
     "                if False:\n                    self.planned.extend('%s: %s' % (node.name, s.display)"),
    ('S6', 'SWITCHOVER', 'rejoin_old_primary: the old primary made a replica with its source side on',
     '                self.retire_source(old)\n',
     ''),
    ('S7', 'CLUSTER', 'read_node: states read without semi-sync (the plans lack the source side)',
     '            return node.read_state(semi_sync=True, history=True)',
     '            return node.read_state(semi_sync=False, history=True)'),
]


def snapshot(target, rev=None):
    """Copy what the tests need, from the working tree or a git revision."""
    os.makedirs(target)
    if rev is None:
        for name in COPIED:
            source = os.path.join(REPO, name)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(target, name), symlinks=True,
                                ignore=shutil.ignore_patterns('__pycache__', 'output'))
            else:
                shutil.copy2(source, os.path.join(target, name))
        return
    archive = subprocess.run(['git', '-C', REPO, 'archive', rev] + list(COPIED), stdout=subprocess.PIPE, check=True)
    subprocess.run(['tar', '-x', '-C', target], input=archive.stdout, check=True)


def run_tests(work):
    """(failed test ids, problem or None) of the unit tests in ``work``."""
    command = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-rf', '--tb=no'] + list(TESTS)
    proc = subprocess.run(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    failed = sorted(set(re.findall(r'^FAILED (\S+)', proc.stdout, re.M)))
    if proc.returncode not in (0, 1):
        return failed, 'pytest exited with %d: %s' % (proc.returncode, proc.stdout[-2000:])
    return failed, None


def run_one(base, mutation):
    """(id, what, failed tests or None, problem or None)."""
    ident, where, what, old, new = mutation
    work = os.path.join(tempfile.mkdtemp(prefix='distweb-mutation-%s-' % ident), 'tree')
    try:
        shutil.copytree(base, work, symlinks=True)
        path = os.path.join(work, FILES[where])
        with open(path) as handle:
            text = handle.read()
        found = text.count(old)
        if found != 1:
            return ident, what, None, 'its text is found %d times in %s' % (found, FILES[where])
        with open(path, 'w') as handle:
            handle.write(text.replace(old, new))
        failed, problem = run_tests(work)
        return ident, what, failed, problem
    finally:
        shutil.rmtree(os.path.dirname(work), ignore_errors=True)


def main(argv):
    rev = None
    if argv[:1] == ['--rev']:
        rev, argv = argv[1], argv[2:]
    wanted = set(argv)
    chosen = [m for m in MUTATIONS if not wanted or m[0] in wanted]
    top = tempfile.mkdtemp(prefix='distweb-mutations-')
    try:
        base = os.path.join(top, 'base')
        snapshot(base, rev)
        failed, problem = run_tests(base)
        if failed or problem:
            print('the unchanged snapshot fails, so no mutation can be judged: %s' % (problem or ', '.join(failed)))
            return 2
        bad = 0
        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            for ident, what, failed, problem in pool.map(lambda m: run_one(base, m), chosen):
                if problem:
                    bad += 1
                    print('%s  %s: BROKEN, %s' % (ident, what, problem))
                elif not failed:
                    bad += 1
                    print('%s  %s: SURVIVED (no test failed)' % (ident, what))
                else:
                    print('%s  %s: caught by %s' % (ident, what,
                                                    ', '.join(name.split('::', 1)[1] for name in failed)))
        print('%d mutation(s), %d survived or broken' % (len(chosen), bad))
        return 1 if bad else 0
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
