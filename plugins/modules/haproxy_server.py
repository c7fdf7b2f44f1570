#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: haproxy_server
short_description: Put one HAProxy backend server in ready, drain or maint state, and wait until it took effect
version_added: 0.1.0
description:
  - Runs on the load balancer itself (in playbooks, C(delegate_to) each
    load balancer) and talks to HAProxy's runtime API on its local admin
    socket O(socket) (C(stats socket ... level admin)).
  - Reads the server's administrative state (C(show servers state)) and
    health (C(show stat)) and sends
    C(set server <backend>/<server> state <ready|drain|maint>) only when the
    administrative state differs from O(state), so it is idempotent.
  - V(drain) stops new connections to the server (except persistent ones) and
    lets the current ones finish; V(maint) takes it out completely (current
    connections still finish unless the configuration says
    C(on-marked-down shutdown-sessions)); V(ready) puts it back in rotation,
    where HAProxy's health checks decide when it takes traffic again.
  - With O(wait), for V(drain) and V(maint) it waits until the server has no
    current sessions and nothing queued, counting those of the servers of
    other backends that track it (C(track <backend>/<server>), such as the
    collection's C(web_writes)); they inherit its drain and maintenance and
    carry traffic of their own. For V(ready) it waits until HAProxy's health
    check reports it C(UP) (a server in slowstart is C(UP) already). It waits
    also when nothing had to be changed, so a re-run after a timeout picks up
    where it stopped.
  - With O(require_others_up), a server is taken out (V(drain), V(maint)) only
    when every other server of the backend is C(UP); otherwise the module
    fails before changing anything and names them. A rolling deploy thus
    never takes a second server out.
author:
  - distweb developers (@distweb)
options:
  socket:
    description:
      - Path of HAProxy's admin socket on the host the module runs on. The
        collection's C(haproxy) role puts it at C(/run/haproxy/admin.sock),
        mode 660, group haproxy, so the module needs root (C(become)) or
        membership of that group.
    type: path
    default: /run/haproxy/admin.sock
  backend:
    description:
      - Name of the backend (C(backend web) in the collection's configuration).
    type: str
    required: true
  server:
    description:
      - Name of the server in O(backend). The collection's C(haproxy) role
        names each server after its inventory host name.
    type: str
    required: true
  state:
    description:
      - The administrative state the server must be in.
    type: str
    required: true
    choices: [ready, drain, maint]
  wait:
    description:
      - Wait until the state took effect (see the description), at most
        O(timeout) seconds, and fail when it did not. Not in check mode.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait when O(wait=true).
    type: int
    default: 60
  require_others_up:
    description:
      - For O(state=drain) and O(state=maint), refuse, changing nothing, when
        any other server of O(backend) (backup servers included) is not
        C(UP) (C(no check) counts as up; C(UP 1/3), a server failing its
        checks, does not). Only checked when the server would change state.
    type: bool
    default: false
  shutdown_sessions:
    description:
      - Only with O(state=maint). Once the server is in maintenance, close
        its current sessions at once (C(shutdown sessions server
        <backend>/<server>)) instead of letting them finish, so that nothing
        more reaches it on a connection opened before (a fenced database
        primary, for instance). The servers that track it get the same.
      - Sent only when the server has current sessions, also when it was in
        maintenance already (a re-run finishes the job; with nothing left to
        close nothing is sent and nothing changes).
      - A configuration with C(on-marked-down shutdown-sessions) closes them
        when the server goes to maintenance already; this option does not
        depend on it.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Only C(show) commands are sent; the result tells which state the
        server would be put in. Nothing is waited for.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - Written for HAProxy 2.6 (Debian bookworm); works with 1.8 or later.
  - HAProxy keeps the state across reloads only with a server-state file
    (C(server-state-file), C(load-server-state-from-file)); without one a
    reload or restart puts every server back to the configuration's state.
  - With several load balancers, run the module against each of them (the
    runtime API is per HAProxy instance).
  - A reload while the module waits starts a new HAProxy process; the old
    one finishes its sessions, which the new one does not count. When the
    server's state is not what the module set any more (a reload without a
    server-state file), the module fails saying so.
seealso:
  - name: HAProxy 2.6 management guide, runtime API
    description: The C(set server), C(show stat) and C(show servers state) commands.
    link: https://docs.haproxy.org/2.6/management.html#9.3
'''

EXAMPLES = r'''
- name: Drain server1 on every load balancer, unless another server is already out
  distweb.infra.haproxy_server:
    backend: web
    server: server1
    state: drain
    require_others_up: true
    timeout: 120
  delegate_to: "{{ item }}"
  loop: "{{ groups['loadbalancers'] }}"
  become: true

- name: Put it back and wait until the health checks see it UP
  distweb.infra.haproxy_server:
    backend: web
    server: server1
    state: ready
  delegate_to: "{{ item }}"
  loop: "{{ groups['loadbalancers'] }}"
  become: true

- name: Fence a database node on a local router, closing its open connections at once
  distweb.infra.haproxy_server:
    socket: /run/distweb-dbrouter/admin.sock
    backend: mysql_primary
    server: server1
    state: maint
    shutdown_sessions: true
    timeout: 10
  become: true

- name: Take a server out for hardware work without waiting for its sessions
  distweb.infra.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: web
    server: server3
    state: maint
    wait: false
'''

RETURN = r'''
backend:
  description: The backend.
  returned: always
  type: str
  sample: web
server:
  description: The server.
  returned: always
  type: str
  sample: server1
previous_state:
  description: The administrative state before the module ran, V(ready), V(drain) or V(maint).
  returned: when the server was found
  type: str
  sample: ready
state:
  description: The administrative state after the module ran (in check mode, the one it would be in).
  returned: when the server was found
  type: str
  sample: drain
status:
  description:
    - HAProxy's status of the server when the module finished (the C(status)
      column of C(show stat)), e.g. C(UP), C(DRAIN), C(MAINT), C(DOWN),
      C(DOWN 1/2), C(no check).
  returned: when the server was found
  type: str
  sample: DRAIN
sessions:
  description:
    - Current sessions of the server (C(scur)) when the module finished,
      with those of the servers that track it (RV(trackers)).
  returned: when the server was found
  type: int
  sample: 0
queue:
  description: Requests queued for the server (C(qcur)) when the module finished, with those of its trackers.
  returned: when the server was found
  type: int
  sample: 0
trackers:
  description:
    - The servers of other backends that track this one, as
      C(<backend>/<server>), with their current sessions when the module
      finished.
  returned: when the server was found
  type: dict
  sample: {web_writes/server1: 0}
check_status:
  description: Result of the last health check (C(check_status), e.g. C(L7OK), C(L4CON)); V(null) when not checked.
  returned: when the server was found
  type: str
  sample: L7OK
throttle:
  description: Slowstart percentage of the server's weight when it is ramping up; V(null) otherwise.
  returned: when the server was found
  type: int
  sample: 20
admin_flags:
  description:
    - HAProxy's administrative flags of the server when the module finished
      (C(srv_admin_state) of C(show servers state)); C(FMAINT) and C(FDRAIN)
      are what this module sets, C(IMAINT), C(IDRAIN) (inherited from a
      tracked server), C(RMAINT) (DNS) and C(HMAINT) it cannot change.
  returned: when the server was found
  type: list
  elements: str
  sample: [FDRAIN]
waited:
  description: Seconds spent waiting (0 when not waiting).
  returned: always
  type: float
  sample: 3.5
servers:
  description: Every server of the backend with its HAProxy status, when the module finished.
  returned: when the backend was found
  type: dict
  sample: {server1: DRAIN, server2: UP, server3: UP}
not_up:
  description: With O(require_others_up), the other servers of the backend that are not C(UP), with their status.
  returned: when the module refused because of O(require_others_up)
  type: dict
  sample: {server2: DOWN}
command:
  description: The C(set server) command sent (in check mode, that would be sent); V(null) when none.
  returned: always
  type: str
  sample: set server web/server1 state drain
shutdown_command:
  description:
    - With O(shutdown_sessions=true), the C(shutdown sessions server) commands
      sent, separated by C(; ) (in check mode, that would be sent); V(null)
      when the server and its trackers had no session to close.
  returned: always
  type: str
  sample: shutdown sessions server mysql_primary/server1
sessions_shut_down:
  description:
    - Current sessions the server had when RV(shutdown_command) was sent (in
      check mode, that it has now); V(0) when none was sent.
  returned: always
  type: int
  sample: 12
known_backends:
  description: The backends HAProxy has.
  returned: when O(backend) does not exist
  type: list
  elements: str
  sample: [web]
msg:
  description: What was done or why not, in words.
  returned: always
  type: str
  sample: web/server1 set from ready to drain; no sessions left after 3.5 s
'''

import time

try:
    from time import monotonic as _monotonic
except ImportError:  # Python 2
    from time import time as _monotonic

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.distweb.infra.plugins.module_utils.haproxy import (
    DEFAULT_SOCKET,
    STATES,
    HAProxyError,
    RuntimeAPI,
    status_is_up,
    valid_name,
)

# seconds between two polls while waiting
POLL_INTERVAL = 0.5
# seconds one runtime API command may take
COMMAND_TIMEOUT = 10


def argument_spec():
    return dict(
        socket=dict(type='path', default=DEFAULT_SOCKET),
        backend=dict(type='str', required=True),
        server=dict(type='str', required=True),
        state=dict(type='str', required=True, choices=list(STATES)),
        wait=dict(type='bool', default=True),
        timeout=dict(type='int', default=60),
        require_others_up=dict(type='bool', default=False),
        shutdown_sessions=dict(type='bool', default=False),
    )


class ServerState(object):
    """One run of the module."""

    def __init__(self, module, api=None):
        self.module = module
        self.params = module.params
        self.api = api or RuntimeAPI(self.params['socket'], timeout=COMMAND_TIMEOUT)
        self.name = '%s/%s' % (self.params['backend'], self.params['server'])
        self.result = dict(changed=False, backend=self.params['backend'], server=self.params['server'],
                           waited=0.0, command=None, shutdown_command=None, sessions_shut_down=0)

    def fail(self, msg, **kwargs):
        self.result.update(kwargs)
        self.module.fail_json(msg=msg, **self.result)

    def read(self):
        """(this server, every server of the backend), both as
        RuntimeAPI.backend_servers gives them; raises HAProxyError when
        either is missing."""
        p = self.params
        servers = self.api.backend_servers(p['backend'])
        self.result['servers'] = dict((s['name'], s['status']) for s in servers)
        mine = [s for s in servers if s['name'] == p['server']]
        if not mine:
            raise HAProxyError('Backend "%s" of HAProxy (%s) has no server "%s"; its servers: %s'
                               % (p['backend'], p['socket'], p['server'],
                                  ', '.join(s['name'] for s in servers) or 'none'), p['socket'])
        return mine[0], servers

    def read_or_fail(self):
        try:
            return self.read()
        except HAProxyError as exc:
            known = getattr(exc, 'known', None)
            self.fail(str(exc), **(dict(known_backends=known) if known is not None else {}))

    @staticmethod
    def totals(server):
        """(sessions, queued) of the server and the servers that track it."""
        trackers = server.get('trackers', [])
        return (server['sessions'] + sum(t['sessions'] for t in trackers),
                server['queue'] + sum(t['queue'] for t in trackers))

    def report(self, server):
        sessions, queue = self.totals(server)
        self.result.update(status=server['status'], sessions=sessions, queue=queue,
                           check_status=server['check_status'], throttle=server['throttle'],
                           admin_flags=server['admin_flag_names'],
                           trackers=dict(('%s/%s' % (t['backend'], t['name']), t['sessions'])
                                         for t in server.get('trackers', [])))

    @classmethod
    def describe(cls, server):
        sessions, queue = cls.totals(server)
        tracked = ''.join(' (%d through %s/%s)' % (t['sessions'], t['backend'], t['name'])
                          for t in server.get('trackers', []) if t['sessions'])
        return 'status %s, check %s, %d current sessions%s, %d queued, admin flags %s' % (
            server['status'], server['check_status'] or 'none', sessions, tracked, queue,
            ','.join(server['admin_flag_names']) or 'none')

    def done_waiting(self, server):
        if self.params['state'] == 'ready':
            return status_is_up(server['status'])
        return self.totals(server) == (0, 0)

    def wait(self, server):
        """Poll until done_waiting or the timeout; return the last read."""
        p = self.params
        start = _monotonic()
        deadline = start + max(p['timeout'], 0)
        last_error = None
        while True:
            if server is not None and self.done_waiting(server):
                self.result['waited'] = round(_monotonic() - start, 1)
                return server
            now = _monotonic()
            if now >= deadline:
                break
            time.sleep(min(POLL_INTERVAL, max(deadline - now, 0)))
            try:
                # HAProxy may be reloading: a failed read is retried until the timeout
                server, dummy = self.read()
                last_error = None
            except HAProxyError as exc:
                last_error = exc
                continue
            if server['admin_state'] != p['state']:
                self.report(server)
                self.result['state'] = server['admin_state']
                self.fail('While waiting, %s became %s again (%s): HAProxy was reloaded or restarted without '
                          'keeping server states (server-state-file), or someone else changed it'
                          % (self.name, server['admin_state'], self.describe(server)))
        self.result['waited'] = round(_monotonic() - start, 1)
        if p['state'] == 'ready':
            what = 'HAProxy\'s health check to report %s UP' % self.name
        else:
            what = '%s to have no current sessions and nothing queued (%s)' % (self.name, p['state'])
        last = []
        if server is not None:
            self.report(server)
            last.append('last read: ' + self.describe(server))
        if last_error is not None:
            last.append('last error: %s' % last_error)
        self.fail('Timed out after %d s waiting for %s; %s (%s %s %s)'
                  % (p['timeout'], what, '; '.join(last), self.name,
                     'was set to' if self.result['changed'] else 'was already', p['state']))

    def run(self):
        p = self.params
        wanted = p['state']
        server, servers = self.read_or_fail()
        previous = server['admin_state']
        self.result.update(previous_state=previous, state=previous)
        self.report(server)
        if self.module._diff:
            self.result['diff'] = dict(before=dict(state=previous), after=dict(state=wanted),
                                       before_header=self.name, after_header=self.name)
        change = previous != wanted

        if change and wanted in ('drain', 'maint') and p['require_others_up']:
            not_up = dict((s['name'], s['status']) for s in servers
                          if s['name'] != p['server'] and not status_is_up(s['status']))
            if not_up:
                self.fail('Refusing to set %s to %s: other servers of backend %s are not UP: %s. Nothing was changed.'
                          % (self.name, wanted, p['backend'],
                             ', '.join('%s (%s)' % (name, status) for name, status in sorted(not_up.items()))),
                          not_up=not_up)

        if change:
            self.result['command'] = 'set server %s state %s' % (self.name, wanted)
            if self.module.check_mode:
                self.result.update(changed=True, state=wanted)
                return self.finish('Would set %s from %s to %s%s (%s)' % (
                    self.name, previous, wanted, self.shut_down(server), self.describe(server)))
            try:
                self.api.set_server_state(p['backend'], p['server'], wanted)
            except HAProxyError as exc:
                self.fail(str(exc))
            self.result.update(changed=True, state=wanted)
            server, servers = self.read_or_fail()
            self.report(server)
            if server['admin_state'] != wanted:
                self.fail('HAProxy accepted "%s" but %s is still %s (%s)'
                          % (self.result['command'], self.name, server['admin_state'], self.describe(server)))
            msg = '%s set from %s to %s' % (self.name, previous, wanted)
        else:
            msg = '%s is already %s' % (self.name, wanted)
        shut = self.shut_down(server)
        if shut:
            msg += shut
            if not self.module.check_mode:
                server, servers = self.read_or_fail()
                self.report(server)

        if p['wait'] and not self.module.check_mode:
            server = self.wait(server)
            self.report(server)
            if wanted == 'ready':
                msg += '; UP after %s s' % self.result['waited']
            else:
                msg += '; no sessions left after %s s' % self.result['waited']
        return self.finish('%s (%s)' % (msg, self.describe(server)))

    def shut_down(self, server):
        """With shutdown_sessions, close the current sessions of the server
        and of the servers that track it (in check mode, only say so); the
        words to add to the message, '' when there was nothing to close."""
        total = self.totals(server)[0]
        if not self.params['shutdown_sessions'] or total == 0:
            return ''
        names = ([self.name] if server['sessions'] else []) + [
            '%s/%s' % (t['backend'], t['name']) for t in server.get('trackers', []) if t['sessions']]
        commands = ['shutdown sessions server %s' % name for name in names]
        self.result.update(changed=True, shutdown_command='; '.join(commands), sessions_shut_down=total)
        if self.module.check_mode:
            return '; would close its %d current sessions' % total
        for command in commands:
            try:
                reply = self.api.command(command)
            except HAProxyError as exc:
                self.fail(str(exc))
            if reply.strip():
                self.fail('HAProxy (%s) refused "%s": %s' % (self.params['socket'], command, ' '.join(reply.split())))
        return '; closed its %d current sessions' % total

    def finish(self, msg):
        self.result['msg'] = msg
        return self.result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    problems = ['%s "%s" has characters HAProxy does not allow in names' % (key, p[key])
                for key in ('backend', 'server') if not valid_name(p[key])]
    if p['timeout'] < 0:
        problems.append('timeout must not be negative')
    if p['shutdown_sessions'] and p['state'] != 'maint':
        problems.append('shutdown_sessions goes with state=maint only (a %s server keeps its sessions)' % p['state'])
    if problems:
        module.fail_json(msg='; '.join(problems))
    result = ServerState(module).run()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
