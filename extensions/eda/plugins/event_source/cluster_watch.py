# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""distweb.infra.cluster_watch: an Event-Driven Ansible event source that
watches the database cluster from several vantage points and says when its
primary is dead, and only then.

Every ``interval`` seconds it reads every database node, in parallel, from the
automation host: over SQL with the cluster's administrative account
(read_only, the replication status, and what each replica has heard from its
source: received GTIDs, binlog position read, heartbeats, the same signs
``distweb.infra.mysql_failover`` listens for) and through the node's health
endpoint (``GET /``). It judges the cluster (``Judge``) and puts an event on
the queue when the verdict changes:

  {"distweb": {"verdict": ..., "action": "failover"|"alert"|"none",
               "primary": <name>, "reason": <words>, "armed": bool,
               "nodes": {<name>: <what was seen>}, "time": <unix time>}}

The primary is dead only when (1) the automation host has failed to reach
it for ``checks`` checks in a row, (2) the automation host reaches most of the
database nodes (else it is the one cut off: verdict ``isolated``, an alert),
and (3) every replica of it that the automation host reaches has heard
nothing from it for ``heartbeat_window`` seconds (IO thread not connected,
or connected and nothing moved). A primary that its replicas still hear is
``primary_unreachable``: an alert, never a failover.

A dead primary is failed over only when, the last time it answered, every
replica connected to it (its SHOW SLAVE HOSTS) was one of the nodes, by
server_id. Semi-sync needs one replica's acknowledgement, any replica's: a
replica that is none of the nodes may hold a write it acknowledged that no
node has, and a failover to a node would lose it. While the primary lives
that is ``unlisted_replica`` (an alert); once it is dead, an alert
(``primary_dead``, "not failing over: ...") instead of the failover.

A dead primary is failed over (``action: failover``) only when armed: not
disarmed by the operator (the file ``<state_dir>/disarmed``, written by the
automation role) and no hold. Firing writes the hold (``<state_dir>/hold.json``)
before the event is put on the queue, so a restarted rulebook does not fire
again; while held, a dead primary is an alert. The hold is released when the
cluster has been healthy again (one writable primary, every other node
replicating from it) and ``period`` seconds have passed since the failover,
or by the operator (playbooks/automation.yml removes the file).
"""

from __future__ import (absolute_import, division, print_function)

import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

__metaclass__ = type

DOCUMENTATION = r'''
---
short_description: Watch the distweb database cluster and say when its primary is dead
description:
  - Reads every database node over SQL and through its health endpoint from
    the automation host, and each replica's view of its primary.
  - Puts an event on the queue when its verdict changes; a dead primary is
    an event with C(action=failover) once per hold (see the module's text).
options:
  config:
    description:
      - Path of the JSON settings file written by the distweb.infra.automation
        role (nodes, login, intervals, state directory). It holds the
        administrative password: keep it readable by the rulebook's user only.
    type: str
    required: true
'''

EXAMPLES = r'''
- name: distweb automatic failover
  hosts: all
  sources:
    - distweb.infra.cluster_watch:
        config: /etc/distweb-automation/watch.json
  rules:
    - name: Fail over a dead primary
      condition: event.distweb.action == "failover"
      action:
        run_playbook:
          name: distweb.infra.auto_failover
'''


def _import_collection():
    """ansible-rulebook loads this file by its path; make the collection's
    module_utils importable from the collection tree it lies in
    (<root>/ansible_collections/distweb/infra/extensions/eda/plugins/event_source)."""
    parts = os.path.dirname(os.path.abspath(__file__)).split(os.sep)
    if len(parts) > 7 and parts[-7] == 'ansible_collections':
        root = os.sep.join(parts[:-7])
        if root not in sys.path:
            sys.path.insert(0, root)


_import_collection()

# pylint: disable=wrong-import-position
from ansible_collections.distweb.infra.plugins.module_utils import topology  # noqa: E402
from ansible_collections.distweb.infra.plugins.module_utils.mysql_connection import (  # noqa: E402
    MySQLError, format_mysql_error, mysql_connect_node, node_login_params)
from ansible_collections.distweb.infra.plugins.module_utils.mysql_server import MySQLServer  # noqa: E402

DEFAULTS = dict(interval=0.5, checks=3, heartbeat_window=3.0, period=3600.0, timeout=1.0,
                realert_after=300.0, health_port=9201, restart_window=300.0)
# The verdicts a failover answers (once per hold, when armed).
FAILING = ('primary_dead',)
HOLD_FILE = 'hold.json'
DISARMED_FILE = 'disarmed'
ALERTING = ('isolated', 'two_primaries', 'primary_unreachable', 'primary_restarted', 'rearmed', 'no_primary',
            'unlisted_replica')


def load_config(path):
    with open(path) as handle:
        config = json.load(handle)
    merged = dict(DEFAULTS)
    merged.update(config)
    problems = []
    if not merged.get('nodes'):
        problems.append('nodes: at least one database node is needed')
    for key in ('interval', 'heartbeat_window', 'timeout'):
        if float(merged[key]) <= 0:
            problems.append('%s must be above 0' % key)
    if int(merged['checks']) < 1:
        problems.append('checks must be at least 1')
    if not merged.get('state_dir'):
        problems.append('state_dir: a directory for the hold is needed')
    if problems:
        raise ValueError('%s: %s' % (path, '; '.join(problems)))
    return merged


class Judge(object):
    """The cluster's verdict from one round of observations at a time.

    ``observe(t, seen)`` takes {name: observation} where an observation is
    {reachable, read_only, source (a node name or None), io_thread,
    sql_thread, signs (``MySQLServer.source_signs()``)}, and returns
    {verdict, primary, reason}. Verdicts: healthy, degraded, no_primary,
    primary_restarted (it answers, read-only as every node starts, it
    started less than restart_window seconds ago, and no node is writable,
    for ``checks`` readings: an alert),
    two_primaries, isolated, suspect (the primary cannot be reached and its
    replicas heard it within the heartbeat window: listening, for up to two
    windows), primary_unreachable (they still hear it after that),
    unlisted_replica (the primary has a replica that is none of the nodes),
    primary_dead (with ``not_safe``, the reason, when it had such a replica:
    the watch does not fire it)."""

    def __init__(self, names, checks, heartbeat_window, restart_window=300.0):
        self.names = list(names)
        self.restart_window = float(restart_window)
        self.checks = int(checks)
        self.window = float(heartbeat_window)
        self.failures = dict((name, 0) for name in self.names)
        self.lost_since = {}
        self.split_rounds = 0
        self.restarted_rounds = 0
        self.last_heard = {}
        self.signs = {}
        self.primary = None
        self.server_ids = {}  # node: its server_id, as last read
        # the primary's replicas that are none of the nodes (server_id,
        # host), as last read while it answered; None: never read
        self.unlisted = None

    def _listen(self, t, seen):
        """Remember when each replica last heard its source."""
        now_signs = dict((name, obs['signs']) for name, obs in seen.items()
                         if obs.get('reachable') and obs.get('signs') is not None)
        heard = topology.heard_from(self.signs, now_signs)
        for name in now_signs:
            if name in heard or name not in self.last_heard:
                self.last_heard[name] = t
        for name in list(self.last_heard):
            if name not in now_signs:
                del self.last_heard[name]  # unreadable: its view counts again from its next reading
        self.signs = now_signs

    def observe(self, t, seen):
        for name in self.names:
            if seen.get(name, {}).get('reachable'):
                self.failures[name] = 0
                self.lost_since.pop(name, None)
            else:
                self.failures[name] += 1
                self.lost_since.setdefault(name, t)
        self._listen(t, seen)
        reachable = [n for n in self.names if seen.get(n, {}).get('reachable')]
        writable = [n for n in reachable if seen[n].get('read_only') is False]
        for name in reachable:
            if seen[name].get('server_id') is not None:
                self.server_ids[name] = seen[name]['server_id']
        if len(writable) == 1:
            if writable[0] != self.primary:
                self.unlisted = None
            self.primary = writable[0]
            self._read_unlisted(seen[self.primary])
        if len(reachable) * 2 <= len(self.names):
            return self._verdict('isolated', 'the automation host reaches only %d of %d database nodes (%s): it is '
                                 'the one cut off, or most of the cluster is down; nothing is done'
                                 % (len(reachable), len(self.names), ', '.join(reachable) or 'none'))
        self.split_rounds = self.split_rounds + 1 if len(writable) > 1 else 0
        if self.split_rounds >= 2:
            return self._verdict('two_primaries', 'writable: %s, in %d readings in a row'
                                 % (', '.join(writable), self.split_rounds))
        if len(writable) > 1:
            # one reading: an old primary woken after a failover is writable
            # until its guard fences it (a fraction of a second), and
            # acknowledges nothing meanwhile (no replica of its own)
            return self._verdict('degraded', 'writable in this reading: %s' % ', '.join(writable))
        if self.primary is None:
            return self._verdict('no_primary', 'no writable node has been seen yet')
        primary = self.primary
        if self.failures[primary] >= self.checks:
            replicas = [n for n in reachable if seen[n].get('source') == primary]
            if not replicas:
                return self._verdict('primary_unreachable', '%s cannot be reached, and no reachable node replicates '
                                     'from it to tell whether it is alive' % primary)
            hearing = ['%s (%.1f s ago)' % (n, t - self.last_heard[n]) for n in replicas
                       if t - self.last_heard.get(n, t) < self.window]
            if hearing and t - self.lost_since[primary] < 2 * self.window:
                return self._verdict('suspect', '%s cannot be reached from the automation host; its replicas heard '
                                     'it lately: %s; listening' % (primary, ', '.join(hearing)))
            if hearing:
                return self._verdict('primary_unreachable', '%s cannot be reached from the automation host, but its '
                                     'replicas still hear it: %s' % (primary, ', '.join(hearing)))
            verdict = self._verdict('primary_dead', '%s: %d failed checks from the automation host, and none of '
                                    'its replicas (%s) has heard it for %.1f s' % (
                                        primary, self.failures[primary], ', '.join(replicas), self.window))
            if self.unlisted:
                # the watch does not fire it (Watch.step): an alert
                verdict['not_safe'] = (
                    'when it last answered, it had replicas that are none of the nodes (%s); one of them may hold a '
                    'write it acknowledged that no node has, and a failover would lose it. Fail over by hand once '
                    'that replica is known to have nothing more' % self._unlisted_text())
            return verdict
        if primary not in writable:
            restarted = (not writable and seen.get(primary, {}).get('read_only')
                         and (seen[primary].get('uptime') or 0) < self.restart_window)
            self.restarted_rounds = self.restarted_rounds + 1 if restarted else 0
            if self.restarted_rounds >= self.checks:
                # every node starts read-only, the semi-sync source side off:
                # a primary that restarted takes no write until an operator
                # makes it the primary again (the failover refuses it: its
                # semi-sync state before the restart cannot be read)
                return self._verdict('primary_restarted', '%s restarted %s s ago and came back read-only, as every '
                                     'node starts, and no other node is writable: no node takes writes. Make it the '
                                     'writable primary again with site.yml (its mysql_primary role)'
                                     % (primary, seen[primary].get('uptime')))
            return self._verdict('degraded', '%s is read-only or unreadable, and no other node is writable' % primary)
        if self.unlisted:
            return self._verdict('unlisted_replica', '%s has replicas that are none of the nodes (%s): a write that '
                                 'only one of them acknowledged would be lost by a failover, so the automatic '
                                 'failover will not fire while they replicate. List them in mysql_cluster_nodes '
                                 '(and so in the watch), or stop them' % (primary, self._unlisted_text()))
        lagging = [n for n in self.names if n != primary and not (
            seen.get(n, {}).get('reachable') and seen[n].get('source') == primary
            and seen[n].get('io_thread') == 'Yes' and seen[n].get('sql_thread') == 'Yes')]
        if lagging:
            return self._verdict('degraded', 'not replicating from %s: %s' % (primary, ', '.join(lagging)))
        return self._verdict('healthy', '%s is the primary; every other node replicates from it' % primary)

    def _read_unlisted(self, obs):
        """Keep the primary's replicas (its SHOW SLAVE HOSTS, read this
        round) whose server_id is none of the nodes'. An unread list keeps
        what was read last."""
        hosts = obs.get('replica_hosts')
        if hosts is None:
            return
        known = set(self.server_ids.values())
        self.unlisted = [(h.get('server_id'), h.get('host') or '') for h in hosts if h.get('server_id') not in known]

    def _unlisted_text(self):
        return ', '.join('server_id %s%s' % (server_id, ' at %s' % host if host else '')
                         for server_id, host in self.unlisted)

    def _verdict(self, verdict, reason):
        return {'verdict': verdict, 'primary': self.primary, 'reason': reason}


class Watch(object):
    """Turns verdicts into events: fires a failover once per hold, alerts on
    changes, and keeps the hold and the operator's switch in ``state_dir``."""

    def __init__(self, config, judge=None, clock=time.time):
        self.config = config
        self.judge = judge or Judge([n['name'] for n in config['nodes']], config['checks'],
                                    config['heartbeat_window'], config['restart_window'])
        self.clock = clock
        self.state_dir = config['state_dir']
        self.last = None
        self.alerted = {}

    def _path(self, name):
        return os.path.join(self.state_dir, name)

    def hold(self):
        try:
            with open(self._path(HOLD_FILE)) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def _write_hold(self, hold):
        tmp = self._path(HOLD_FILE + '.tmp')
        with open(tmp, 'w') as handle:
            json.dump(hold, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._path(HOLD_FILE))

    def disarmed(self):
        """The operator's reason, or None when armed."""
        try:
            with open(self._path(DISARMED_FILE)) as handle:
                return handle.read().strip() or 'disarmed by the operator'
        except OSError:
            return None

    def step(self, seen):
        """Events for one round of observations."""
        t = self.clock()
        verdict = self.judge.observe(t, seen)
        events = []
        hold = self.hold()
        disarmed = self.disarmed()
        if hold and verdict['verdict'] == 'healthy' and not hold.get('healthy_at'):
            # the incident is over: a primary dead from now on is a new one
            hold = dict(hold, healthy_at=t)
            self._write_hold(hold)
        if hold and verdict['verdict'] == 'healthy' and t - float(hold.get('at', 0)) >= float(self.config['period']):
            os.remove(self._path(HOLD_FILE))
            events.append(self._event(dict(verdict, verdict='rearmed', reason='the cluster is healthy again and %s s '
                                           'have passed since the failover of %s: armed again'
                                           % (self.config['period'], hold.get('primary'))), 'alert', t, seen, True))
            hold = None
        armed = hold is None and disarmed is None
        not_safe = verdict.pop('not_safe', None)
        if verdict['verdict'] in FAILING and armed and not not_safe:
            self._write_hold({'primary': verdict['primary'], 'at': t, 'reason': verdict['reason']})
            events.append(self._event(verdict, 'failover', t, seen, True))
        elif (verdict['verdict'] in FAILING and hold and hold.get('primary') == verdict['primary']
              and not hold.get('healthy_at')):
            # the failover fired for this very incident (running, done or
            # refused: the failover playbook reports which)
            if self.last != verdict['verdict']:
                events.append(self._event(verdict, 'none', t, seen, armed))
        elif verdict['verdict'] in FAILING:
            why = not_safe or disarmed or 'held since the automatic failover of %s at %s; re-armed when the cluster ' \
                'is healthy and %s s have passed, or by playbooks/automation.yml' % (
                    hold.get('primary'), time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(float(hold.get('at', 0)))),
                    self.config['period'])
            verdict = dict(verdict, reason='%s; not failing over: %s' % (verdict['reason'], why))
            events.extend(self._alert_once(verdict, t, seen, armed))
        elif verdict['verdict'] in ALERTING:
            events.extend(self._alert_once(verdict, t, seen, armed))
        elif self.last is None or verdict['verdict'] != self.last:
            events.append(self._event(verdict, 'none', t, seen, armed))
        self.last = verdict['verdict']
        return events

    def _alert_once(self, verdict, t, seen, armed):
        """An alert when the verdict changes, or again after realert_after."""
        key = (verdict['verdict'], verdict['primary'])
        if self.last == verdict['verdict'] and t - self.alerted.get(key, 0) < float(self.config['realert_after']):
            return []
        self.alerted[key] = t
        return [self._event(verdict, 'alert', t, seen, armed)]

    def _event(self, verdict, action, t, seen, armed):
        return {'distweb': dict(verdict, action=action, armed=armed, time=t, nodes=seen)}


class Observer(object):
    """Reads every node from the automation host, keeping one connection
    per node (a failed one is dropped and made again next round)."""

    def __init__(self, config):
        self.config = config
        self.nodes = config['nodes']
        self.servers = {}
        self.pool = ThreadPoolExecutor(max_workers=max(2, 2 * len(self.nodes)))
        self.names = {}
        for node in self.nodes:
            for key in ('name', 'host', 'replication_host'):
                if node.get(key):
                    self.names[node[key]] = node['name']

    def _server(self, node):
        server = self.servers.get(node['name'])
        if server is not None:
            return server
        login = dict(self.config.get('login') or {})
        login['connect_timeout'] = self.config['timeout']
        params = node_login_params(login, node['host'], int(node.get('port', 3306)))
        params['read_timeout'] = params['write_timeout'] = self.config['timeout']
        conn, error, dummy = mysql_connect_node(params, node['name'])
        if conn is None:
            raise MySQLError(error)
        server = self.servers[node['name']] = MySQLServer(conn, node['name'])
        return server

    def _sql(self, node):
        try:
            server = self._server(node)
            info = server.server_info()
            read_only = info['read_only']
            uptime = server.query_one("SHOW GLOBAL STATUS LIKE 'Uptime'") or {}
            status = server.replica_status()
            replicating = bool(status.get('source_host'))
            signs = server.source_signs() if replicating else None
            return {'reachable': True, 'read_only': read_only, 'uptime': int(uptime.get('Value') or 0),
                    'server_id': info.get('server_id'),
                    'replica_hosts': None if read_only else self._replica_hosts(server),
                    'source': self.names.get(status.get('source_host'), status.get('source_host')) if replicating else None,
                    'io_thread': status.get('io_thread'), 'sql_thread': status.get('sql_thread'), 'signs': signs}
        except (MySQLError, OSError, ValueError) as exc:
            server = self.servers.pop(node['name'], None)
            if server is not None:
                try:
                    server.connection.close()
                except Exception:  # pylint: disable=broad-except
                    pass
            return {'reachable': False, 'error': format_mysql_error(exc) if isinstance(exc, MySQLError) else str(exc)}

    @staticmethod
    def _replica_hosts(server):
        """The replicas connected to a writable node (server_id, host), or
        None when they cannot be read (a refused query: the node itself
        still counts as read)."""
        try:
            return [dict(server_id=h['server_id'], host=h['host']) for h in server.replica_hosts()]
        except MySQLError:
            return None

    def _health(self, node):
        url = 'http://%s:%s/' % (node['host'], node.get('health_port', self.config['health_port']))
        try:
            with urllib.request.urlopen(url, timeout=self.config['timeout']) as answer:  # nosec - the nodes' own endpoint
                body = json.loads(answer.read().decode('utf-8'))
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read().decode('utf-8'))
            except ValueError:
                return {'answers': True, 'server_up': False}
        except (OSError, ValueError):
            return {'answers': False, 'server_up': False}
        return {'answers': True, 'server_up': body.get('state') is not None}

    def observe(self):
        sql = dict((n['name'], self.pool.submit(self._sql, n)) for n in self.nodes)
        health = dict((n['name'], self.pool.submit(self._health, n)) for n in self.nodes)
        seen = {}
        for node in self.nodes:
            obs = sql[node['name']].result()
            obs['health'] = health[node['name']].result()
            # the health endpoint is the second path: a node whose endpoint
            # reads its server alive is alive, whatever its SQL port did
            if not obs['reachable'] and obs['health']['server_up']:
                obs['reachable'] = True
                obs['signs'] = None
            seen[node['name']] = obs
        return seen


async def main(queue, args):
    """The event source: ``args['config']`` is the settings file."""
    config = load_config(args['config'])
    os.makedirs(config['state_dir'], exist_ok=True)
    observer = Observer(config)
    watch = Watch(config)
    loop = asyncio.get_running_loop()
    while True:
        started = time.monotonic()
        seen = await loop.run_in_executor(None, observer.observe)
        for event in watch.step(seen):
            # one line per event in the service's journal
            found = event['distweb']
            sys.stderr.write('distweb cluster_watch: %s (%s) primary=%s armed=%s: %s\n' % (
                found['verdict'], found['action'], found['primary'], found['armed'], found['reason']))
            sys.stderr.flush()
            await queue.put(event)
        await asyncio.sleep(max(0.0, float(config['interval']) - (time.monotonic() - started)))


if __name__ == '__main__':
    class _PrintQueue(object):
        async def put(self, event):
            print(json.dumps(event, default=str), flush=True)

    asyncio.run(main(_PrintQueue(), {'config': sys.argv[1]}))
