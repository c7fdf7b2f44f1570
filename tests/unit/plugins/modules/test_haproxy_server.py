# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest
import yaml

from ansible_collections.distweb.infra.plugins.modules import haproxy_server
from ansible_collections.distweb.infra.tests.unit.plugins.haproxy_fake import (
    FDRAIN,
    FMAINT,
    FakeHAProxy,
    FakeServer,
    web_backend,
)
from ansible_collections.distweb.infra.tests.unit.plugins.results import failed, ok


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(haproxy_server, 'POLL_INTERVAL', 0.01)
    proxy = FakeHAProxy()
    web_backend(proxy)
    yield proxy
    proxy.close()


@pytest.fixture
def run(fake, run_main):
    def run(check_mode=False, diff=False, **args):
        args.setdefault('socket', fake.path)
        args.setdefault('backend', 'web')
        args.setdefault('server', 'server1')
        args.setdefault('timeout', 5)  # a broken test fails in seconds
        return run_main(haproxy_server.main, args, check_mode=check_mode, diff=diff)
    return run


def sessions_end_after(polls):
    """on_stat: every server's sessions drop by one per show stat after ``polls`` reads."""
    seen = []

    def tick(proxy):
        seen.append(1)
        if len(seen) > polls:
            for server in proxy.backends['web']:
                server.sessions = max(server.sessions - 1, 0)
                server.queue = max(server.queue - 1, 0)
    return tick


def test_documentation_matches_the_argument_spec():
    doc = yaml.safe_load(haproxy_server.DOCUMENTATION)
    spec = haproxy_server.argument_spec()
    assert set(doc['options']) == set(spec)
    for name, option in spec.items():
        assert doc['options'][name]['type'] == option['type'], name
        assert doc['options'][name].get('default') == option.get('default'), name
        assert doc['options'][name].get('required', False) == option.get('required', False), name
        assert doc['options'][name].get('choices') == option.get('choices'), name
    assert doc['attributes']['check_mode']['support'] == 'full'
    assert doc['attributes']['diff_mode']['support'] == 'full'
    yaml.safe_load(haproxy_server.EXAMPLES)
    returned = yaml.safe_load(haproxy_server.RETURN)
    for key in ('previous_state', 'state', 'status', 'sessions', 'waited', 'servers'):
        assert key in returned


def test_drain_waits_until_the_sessions_end(fake, run):
    server1 = fake.server('web', 'server1')
    server1.sessions = 3
    server1.queue = 1
    fake.on_stat = sessions_end_after(2)
    result = ok(run(state='drain', require_others_up=True))
    assert result['changed'] is True
    assert (result['previous_state'], result['state'], result['status']) == ('ready', 'drain', 'DRAIN')
    assert result['sessions'] == 0 and result['queue'] == 0 and result['waited'] >= 0
    assert result['servers'] == {'server1': 'DRAIN', 'server2': 'UP', 'server3': 'UP'}
    assert result['command'] == 'set server web/server1 state drain'
    assert result['admin_flags'] == ['FDRAIN']
    assert fake.sets() == ['set server web/server1 state drain']
    # one read before the change, one after it, then polls until 3 sessions were gone
    assert fake.commands.count('show stat') >= 5
    assert 'set from ready to drain; no sessions left after' in result['msg']
    assert server1.admin == FDRAIN


def test_drain_is_idempotent(fake, run):
    ok(run(state='drain'))
    fake.commands[:] = []
    result = ok(run(state='drain', require_others_up=True))
    assert result['changed'] is False and result['previous_state'] == 'drain' and result['state'] == 'drain'
    assert result['command'] is None
    assert fake.sets() == []
    assert 'web/server1 is already drain' in result['msg']


def test_an_unchanged_server_is_still_waited_for(fake, run):
    """A re-run after a timeout waits again rather than reporting success."""
    server1 = fake.server('web', 'server1')
    server1.admin = FDRAIN
    server1.sessions = 2
    fake.on_stat = sessions_end_after(1)
    result = ok(run(state='drain'))
    assert result['changed'] is False and result['sessions'] == 0
    assert fake.sets() == []


def test_ready_waits_until_the_health_check_reports_up(fake, run):
    server1 = fake.server('web', 'server1')
    server1.admin = FMAINT
    server1.healthy = False
    steps = []

    def tick(proxy):
        if server1.admin & FMAINT:
            return
        steps.append(1)
        if len(steps) == 2:
            server1.status = 'DOWN 1/2'
        elif len(steps) == 4:
            # up again, in slowstart: HAProxy shows UP and throttles the weight
            server1.status = None
            server1.healthy = True
            server1.throttle = 10
    fake.on_stat = tick
    result = ok(run(state='ready', diff=True))
    assert result['changed'] is True
    assert (result['previous_state'], result['state'], result['status']) == ('maint', 'ready', 'UP')
    assert result['throttle'] == 10 and result['check_status'] == 'L7OK'
    assert len(steps) >= 4
    assert fake.sets() == ['set server web/server1 state ready']
    assert result['diff'] == {'before': {'state': 'maint'}, 'after': {'state': 'ready'},
                              'before_header': 'web/server1', 'after_header': 'web/server1'}
    assert '; UP after' in result['msg']


def test_ready_is_idempotent(fake, run):
    result = ok(run(state='ready', require_others_up=True))
    assert result['changed'] is False and result['previous_state'] == 'ready' and result['status'] == 'UP'
    assert fake.sets() == []


def test_require_others_up_refuses_and_changes_nothing(fake, run):
    fake.server('web', 'server2').healthy = False
    fake.server('web', 'server3').admin = FDRAIN
    result = failed(run(state='drain', require_others_up=True),
                    'Refusing to set web/server1 to drain', 'server2 (DOWN)', 'server3 (DRAIN)', 'Nothing was changed')
    assert result['changed'] is False
    assert result['not_up'] == {'server2': 'DOWN', 'server3': 'DRAIN'}
    assert fake.sets() == []
    assert fake.server('web', 'server1').admin == 0
    failed(run(state='maint', require_others_up=True), 'Refusing to set web/server1 to maint')
    assert fake.sets() == []


def test_require_others_up_counts_a_failing_server_as_not_up(fake, run):
    fake.server('web', 'server2').status = 'UP 1/3'
    result = failed(run(state='drain', require_others_up=True), 'server2 (UP 1/3)')
    assert fake.sets() == [] and result['not_up'] == {'server2': 'UP 1/3'}


def test_require_others_up_does_not_block_putting_a_server_back_or_an_unchanged_one(fake, run):
    fake.server('web', 'server2').healthy = False
    server1 = fake.server('web', 'server1')
    server1.admin = FDRAIN
    result = ok(run(state='drain', require_others_up=True))
    assert result['changed'] is False
    result = ok(run(state='ready', require_others_up=True))
    assert result['changed'] is True and fake.sets() == ['set server web/server1 state ready']


def test_without_require_others_up_a_second_server_may_go(fake, run):
    fake.server('web', 'server2').admin = FMAINT
    result = ok(run(state='maint'))
    assert result['changed'] is True and result['servers']['server2'] == 'MAINT'


def test_check_mode_sends_no_set_command_and_does_not_wait(fake, run):
    fake.server('web', 'server1').sessions = 5
    result = ok(run(state='drain', require_others_up=True, check_mode=True, diff=True, timeout=30))
    assert result['changed'] is True
    assert (result['previous_state'], result['state']) == ('ready', 'drain')
    assert result['status'] == 'UP' and result['sessions'] == 5 and result['waited'] == 0
    assert result['command'] == 'set server web/server1 state drain'
    assert result['msg'].startswith('Would set web/server1 from ready to drain')
    assert result['diff']['before'] == {'state': 'ready'} and result['diff']['after'] == {'state': 'drain'}
    assert fake.sets() == []
    assert all(c.startswith('show ') for c in fake.commands)
    assert fake.server('web', 'server1').admin == 0


def test_check_mode_still_refuses(fake, run):
    fake.server('web', 'server3').healthy = False
    failed(run(state='drain', require_others_up=True, check_mode=True), 'server3 (DOWN)')
    assert fake.sets() == []


def test_check_mode_unchanged(fake, run):
    result = ok(run(state='ready', check_mode=True))
    assert result['changed'] is False and result['command'] is None and fake.sets() == []


def test_timeout_says_what_it_waited_for_and_the_last_values(fake, run):
    server1 = fake.server('web', 'server1')
    server1.sessions = 2
    result = failed(run(state='drain', timeout=1),
                    'Timed out after 1 s waiting for web/server1 to have no current sessions and nothing queued',
                    'status DRAIN', '2 current sessions', '0 queued', 'was set to drain')
    assert result['changed'] is True and result['state'] == 'drain' and result['sessions'] == 2
    assert result['waited'] >= 1


def test_timeout_of_ready_names_the_health_check(fake, run):
    server1 = fake.server('web', 'server1')
    server1.admin = FMAINT
    server1.healthy = False
    result = failed(run(state='ready', timeout=0),
                    "Timed out after 0 s waiting for HAProxy's health check to report web/server1 UP",
                    'status DOWN', 'check L4CON')
    assert result['changed'] is True and result['status'] == 'DOWN'


def test_no_wait(fake, run):
    fake.server('web', 'server1').sessions = 4
    result = ok(run(state='maint', wait=False))
    assert result['changed'] is True and result['sessions'] == 4 and result['waited'] == 0
    assert result['status'] == 'MAINT'


def test_unknown_server_lists_the_servers(fake, run):
    result = failed(run(state='drain', server='server9'),
                    'Backend "web" of HAProxy (%s) has no server "server9"' % fake.path,
                    'its servers: server1, server2, server3')
    assert fake.sets() == [] and 'known_backends' not in result


def test_unknown_backend_lists_the_backends(fake, run):
    result = failed(run(state='drain', backend='www'), 'no backend "www"', 'its backends: web')
    assert result['known_backends'] == ['web']
    assert fake.sets() == []


def test_missing_socket_names_it(run, tmp_path):
    path = str(tmp_path / 'nope.sock')
    result = failed(run(state='drain', socket=path), 'Cannot connect to the HAProxy admin socket %s' % path,
                    'does not exist')
    assert result['changed'] is False


def test_an_error_reply_to_set_fails(run_main, monkeypatch):
    monkeypatch.setattr(haproxy_server, 'POLL_INTERVAL', 0.01)
    proxy = FakeHAProxy(level='user')
    try:
        web_backend(proxy)
        result = run_main(haproxy_server.main, dict(socket=proxy.path, backend='web', server='server1', state='maint'))
        failed(result, 'refused "set server web/server1 state maint": Permission denied', 'level admin')
        assert result['changed'] is False
    finally:
        proxy.close()


def test_haproxy_that_ignores_the_command_is_reported(fake, run):
    fake.replies['set server web/server1 state drain'] = '\n'   # "done", but nothing happens
    failed(run(state='drain'), 'HAProxy accepted "set server web/server1 state drain" but web/server1 is still ready')


def test_a_failed_read_while_waiting_is_retried(fake, run):
    """HAProxy reloading: one show stat while waiting fails, the next ones work."""
    server1 = fake.server('web', 'server1')
    server1.sessions = 1
    original = fake.answer
    reads = []

    def answer(command):
        if command == 'show stat':
            reads.append(1)
            if len(reads) == 3:
                return 'Unknown command\n\n'
            if len(reads) > 3:
                server1.sessions = 0
        return original(command)

    fake.answer = answer
    result = ok(run(state='drain'))
    assert result['sessions'] == 0 and len(reads) >= 4


def test_a_state_lost_while_waiting_fails_at_once(fake, run):
    """HAProxy reloaded without a server-state file: the drained server is ready again."""
    server1 = fake.server('web', 'server1')
    server1.sessions = 2
    reads = []

    def tick(proxy):
        reads.append(1)
        if len(reads) == 3:
            server1.admin = 0
            server1.sessions = 0
    fake.on_stat = tick
    result = failed(run(state='drain', timeout=30), 'While waiting, web/server1 became ready again',
                    'server-state-file')
    assert result['changed'] is True and result['state'] == 'ready' and result['waited'] < 30


@pytest.mark.parametrize('args,words', [
    (dict(backend='web;x'), 'backend "web;x" has characters'),
    (dict(server='server1 state ready'), 'server "server1 state ready" has characters'),
    (dict(timeout=-1), 'timeout must not be negative'),
])
def test_bad_arguments(fake, run, args, words):
    failed(run(state='drain', **args), words)
    assert fake.commands == []


# -- shutdown_sessions: a fence closes the connections opened before it -------------------

def test_maint_with_shutdown_sessions_closes_them_at_once(fake, run):
    server1 = fake.server('web', 'server1')
    server1.sessions = 7
    result = ok(run(state='maint', shutdown_sessions=True, timeout=1))
    assert result['changed'] is True and (result['previous_state'], result['state']) == ('ready', 'maint')
    assert fake.sets() == ['set server web/server1 state maint', 'shutdown sessions server web/server1']
    assert result['shutdown_command'] == 'shutdown sessions server web/server1'
    assert result['sessions_shut_down'] == 7 and result['sessions'] == 0 and result['status'] == 'MAINT'
    assert 'set from ready to maint; closed its 7 current sessions; no sessions left after' in result['msg']


def test_shutdown_sessions_is_idempotent(fake, run):
    ok(run(state='maint', shutdown_sessions=True))
    fake.commands[:] = []
    result = ok(run(state='maint', shutdown_sessions=True))
    assert result['changed'] is False and fake.sets() == []
    assert result['shutdown_command'] is None and result['sessions_shut_down'] == 0
    assert 'web/server1 is already maint' in result['msg']


def test_shutdown_sessions_without_sessions_sends_only_the_state(fake, run):
    result = ok(run(state='maint', shutdown_sessions=True))
    assert fake.sets() == ['set server web/server1 state maint']
    assert result['changed'] is True and result['shutdown_command'] is None


def test_a_server_already_in_maint_with_sessions_gets_them_closed(fake, run):
    """Someone put it in maint without closing its sessions (no on-marked-down shutdown-sessions)."""
    server1 = fake.server('web', 'server1')
    server1.admin = FMAINT
    server1.sessions = 2
    result = ok(run(state='maint', shutdown_sessions=True))
    assert result['changed'] is True and result['command'] is None
    assert fake.sets() == ['shutdown sessions server web/server1']
    assert result['sessions'] == 0 and result['sessions_shut_down'] == 2
    assert 'is already maint; closed its 2 current sessions' in result['msg']


def test_shutdown_sessions_in_check_mode_sends_nothing(fake, run):
    server1 = fake.server('web', 'server1')
    server1.sessions = 3
    result = ok(run(state='maint', shutdown_sessions=True, check_mode=True))
    assert result['changed'] is True and fake.sets() == []
    assert result['shutdown_command'] == 'shutdown sessions server web/server1' and result['sessions_shut_down'] == 3
    assert result['msg'].startswith('Would set web/server1 from ready to maint; would close its 3 current sessions')
    server1.admin = FMAINT
    result = ok(run(state='maint', shutdown_sessions=True, check_mode=True))
    assert result['changed'] is True and fake.sets() == [] and server1.sessions == 3
    assert 'is already maint; would close its 3 current sessions' in result['msg']


def test_shutdown_sessions_refused_by_haproxy_fails(fake, run):
    fake.server('web', 'server1').sessions = 1
    fake.replies['shutdown sessions server web/server1'] = 'Permission denied\n\n'
    result = failed(run(state='maint', shutdown_sessions=True),
                    'refused "shutdown sessions server web/server1": Permission denied')
    assert result['changed'] is True and result['state'] == 'maint'


@pytest.mark.parametrize('state', ['ready', 'drain'])
def test_shutdown_sessions_goes_with_maint_only(fake, run, state):
    failed(run(state=state, shutdown_sessions=True), 'shutdown_sessions goes with state=maint only')
    assert fake.commands == []


# -- servers that track this one (the load balancer's web_writes) ---------------------------

@pytest.fixture
def writes(fake):
    """Backend web_writes: each server tracks its twin in web."""
    servers = [FakeServer('server%d' % i, 8000 + i, check=False, track='web/server%d' % i) for i in (1, 2, 3)]
    fake.add_backend('web_writes', *servers)
    return servers


def test_drain_waits_for_the_sessions_of_the_servers_that_track_it(fake, run, writes):
    # a write still open on server1 through web_writes: the rolling deploy
    # must not restart server1 before it ended
    writes[0].sessions = 2
    reads = []

    def tick(proxy):
        reads.append(1)
        if len(reads) > 3:
            writes[0].sessions = max(writes[0].sessions - 1, 0)
    fake.on_stat = tick
    result = ok(run(state='drain'))
    assert len(reads) >= 5, 'it returned before the tracker had no session left'
    assert result['sessions'] == 0 and result['trackers'] == {'web_writes/server1': 0}
    assert fake.sets() == ['set server web/server1 state drain']


def test_a_timeout_names_the_sessions_of_a_tracker(fake, run, writes):
    writes[0].sessions = 4
    result = failed(run(state='drain', timeout=0), 'Timed out after 0 s')
    assert '4 current sessions (4 through web_writes/server1)' in result['msg']
    assert result['sessions'] == 4 and result['trackers'] == {'web_writes/server1': 4}


def test_shutdown_sessions_closes_those_of_the_trackers_too(fake, run, writes):
    fake.server('web', 'server1').sessions = 1
    writes[0].sessions = 3
    result = ok(run(state='maint', shutdown_sessions=True, timeout=1))
    assert fake.sets() == ['set server web/server1 state maint', 'shutdown sessions server web/server1',
                           'shutdown sessions server web_writes/server1']
    assert result['sessions_shut_down'] == 4 and result['sessions'] == 0
    assert 'closed its 4 current sessions' in result['msg']


def test_shutdown_sessions_of_a_tracker_alone(fake, run, writes):
    writes[0].sessions = 2
    result = ok(run(state='maint', shutdown_sessions=True, timeout=1))
    assert fake.sets() == ['set server web/server1 state maint', 'shutdown sessions server web_writes/server1']
    assert result['shutdown_command'] == 'shutdown sessions server web_writes/server1'
