# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mysql_cluster role's work on the database routers, run for real with
ansible-playbook: playbooks/failover.yml, rejoin.yml and switchover.yml
against fake HAProxy runtime APIs (one per app server, reached with a local
connection) and stub database modules that answer what each scenario says.

What is checked is the role's flow, not the database modules: the plan
(check mode) comes first and a plan with nothing to do touches no router; the
old primary is fenced (maint, sessions shut down) on every router before the
real failover; a refusal puts each router back to the state it had; an
unreachable router makes the failover refuse only when the fence is
required; check mode changes no router; rejoin and switchover put their node
back (ready). The scenarios run in parallel, a few seconds in all."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading

import pytest

from ansible_collections.distweb.infra.tests.unit.plugins.haproxy_fake import (
    FDRAIN,
    FMAINT,
    FakeHAProxy,
    FakeServer,
)

ROOT = pathlib.Path(__file__).resolve().parents[3]
STUBBED = ('mysql_failover', 'mysql_switchover', 'mysql_rejoin', 'mysql_replication_info')
ANSIBLE_PLAYBOOK = shutil.which('ansible-playbook', path=os.path.dirname(sys.executable) + os.pathsep
                                + os.environ.get('PATH', ''))

STUB = '''#!/usr/bin/python
# A stand-in for distweb.infra.%(name)s: answers from the scenario file,
# logs each call (check or real, and the arguments that matter here).
import json
import os
from ansible.module_utils.basic import AnsibleModule, _load_params
NAME = '%(name)s'
def main():
    raw = _load_params()
    spec = dict((k, dict(type='raw', no_log='password' in k)) for k in raw if not k.startswith('_ansible'))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    with open(os.environ['DISTWEB_STUB_SCENARIO']) as f:
        answers = json.load(f).get(NAME, {})
    mode = 'check' if module.check_mode else 'real'
    if NAME == 'mysql_replication_info':
        answer = answers.get(module.params['login_host'], {})
    else:
        # a failover's first run (routers_fenced false) may have its own answer
        first = '_first' if module.params.get('routers_fenced') is False else ''
        answer = answers.get(mode + first, answers.get(mode, {'changed': False, 'msg': 'no answer for this call'}))
    with open(os.environ['DISTWEB_STUB_LOG'], 'a') as f:
        kept = dict((k, module.params.get(k)) for k in ('liveness_window', 'target', 'presumed_unreachable',
                                                       'routers_fenced', 'repoint_wait', 'login_host')
                    if k in module.params)
        f.write(json.dumps(dict(module=NAME, mode=mode, **kept)) + '\\n')
    answer = dict(answer)
    if answer.pop('failed', False):
        module.fail_json(**answer)
    module.exit_json(**answer)
if __name__ == '__main__':
    main()
'''

PLAN = {'changed': True, 'old_primary': 's1', 'new_primary': 's2', 'msg': 'Would promote s2 (old primary s1)',
        'plan': ['fence s1', 'promote s2'], 'unreachable_nodes': ['s1']}
PROMOTED = {'changed': True, 'old_primary': 's1', 'new_primary': 's2', 'msg': 'Promoted s2', 'plan': []}
# the first run, when the routers must fence the old primary first
FENCE_FIRST = {'changed': False, 'routers_fence_first': True, 'old_primary': 's1', 'new_primary': 's2',
               'unreachable_nodes': ['s1'], 'plan': ['fence s1', 'promote s2'],
               'msg': 'Would promote s2 (old primary s1), once the database routers have fenced s1. Nothing was changed'}
# the first run, when the routers may follow: it failed over
LOSSLESS = {'active': True, 'source': 'settings', 'reason': 'set up for lossless semi-sync'}
FOLLOWED = {'changed': True, 'promoted': True, 'routers_fence_first': False, 'old_primary': 's1', 'new_primary': 's2',
            'unreachable_nodes': ['s1'], 'semi_sync': LOSSLESS, 'msg': 'Promoted s2 (old primary s1)', 'plan': []}
NOTHING_TO_DO = {'changed': False, 'old_primary': 's1', 'new_primary': 's2', 'msg': 's2 is the primary already'}


def collection(base):
    """A collection tree at base: the checkout, the database modules stubbed."""
    infra = base / 'ansible_collections' / 'distweb' / 'infra'
    (infra / 'plugins' / 'modules').mkdir(parents=True)
    for name in ('roles', 'playbooks', 'meta', 'galaxy.yml'):
        (infra / name).symlink_to(ROOT / name)
    for entry in (ROOT / 'plugins').iterdir():
        if entry.name != 'modules':
            (infra / 'plugins' / entry.name).symlink_to(entry)
    for entry in (ROOT / 'plugins' / 'modules').iterdir():
        if entry.stem not in STUBBED:
            (infra / 'plugins' / 'modules' / entry.name).symlink_to(entry)
    for name in STUBBED:
        (infra / 'plugins' / 'modules' / (name + '.py')).write_text(STUB % dict(name=name))


class Scenario(object):
    """Two app servers (r1, r2) with a fake router each, and optionally r3
    that cannot be reached; database nodes s1 (old primary) and s2."""

    def __init__(self, base, name, answers, unreachable_router=False, states=None, replica=False):
        self.replica = replica  # a third database node, s3
        self.dir = base / name
        self.dir.mkdir()
        self.routers = {}
        for router in ('r1', 'r2'):
            fake = FakeHAProxy()
            fake.add_backend('mysql_primary', FakeServer('s1', 3306, sessions=3), FakeServer('s2', 3307))
            for (where, node), admin in (states or {}).items():
                if where == router:
                    fake.server('mysql_primary', node).admin = admin
            self.routers[router] = fake
        self.answers = answers
        self.unreachable_router = unreachable_router
        self.runs = []

    def inventory(self):
        routers = dict((name, dict(ansible_connection='local', db_router_admin_socket=fake.path))
                       for name, fake in self.routers.items())
        if self.unreachable_router:
            routers['r3'] = dict(ansible_connection='ssh', ansible_host='127.0.0.1', ansible_port=1,
                                 ansible_ssh_timeout=2)
        nodes = dict(s1=dict(ansible_host='127.0.0.1', mysql_cluster_address='127.0.0.11'),
                     s2=dict(ansible_host='127.0.0.1', mysql_cluster_address='127.0.0.12'))
        if self.replica:
            nodes['s3'] = dict(ansible_host='127.0.0.1', mysql_cluster_address='127.0.0.13')
        return dict(all=dict(
            vars=dict(ansible_python_interpreter=sys.executable,
                      mysql_cluster_admin_password='stub-admin-password',
                      mysql_server_replication_password='stub-repl-password',
                      mysql_cluster_login_ssl_ca=''),
            children=dict(
                dbservers=dict(hosts=nodes),
                appservers=dict(hosts=routers))))

    def admin(self, router, node):
        return self.routers[router].server('mysql_primary', node).admin

    def changes(self, router):
        return self.routers[router].sets()

    def run(self, playbook, *args, **answers):
        scenario = dict(self.answers, **answers)
        number = len(self.runs)
        (self.dir / 'scenario.json').write_text(json.dumps(scenario))
        (self.dir / 'inventory.json').write_text(json.dumps(self.inventory()))
        log = self.dir / ('calls%d.log' % number)
        log.write_text('')
        for fake in self.routers.values():
            fake.commands[:] = []
        env = dict(os.environ,
                   ANSIBLE_CONFIG=str(self.dir.parent / 'ansible.cfg'),
                   DISTWEB_STUB_SCENARIO=str(self.dir / 'scenario.json'),
                   DISTWEB_STUB_LOG=str(log))
        done = subprocess.run([ANSIBLE_PLAYBOOK, str(ROOT / 'playbooks' / (playbook + '.yml')),
                               '-i', str(self.dir / 'inventory.json')] + list(args),
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        run = dict(rc=done.returncode, out=' '.join((done.stdout + done.stderr).split()), calls=calls,
                   changes=dict((name, list(fake.sets())) for name, fake in self.routers.items()))
        self.runs.append(run)
        return run

    def close(self):
        for fake in self.routers.values():
            fake.close()


def failover_twice(s):
    # a listen that stays good far longer than the fence takes: the plan's
    # listen is fresh
    s.run('failover', '-e', 'mysql_cluster_liveness_max_age=600')
    s.run('failover', mysql_failover={'real_first': NOTHING_TO_DO})


def refusal(s):
    s.run('failover', mysql_failover={'real_first': FENCE_FIRST, 'real': dict(
        failed=True, changed=False, promoted=False, msg='Refusing to fail over: a reason. Nothing was changed.')})


def promotion_failed(s):
    s.run('failover', mysql_failover={'real_first': FENCE_FIRST, 'real': dict(
        failed=True, changed=True, promoted=True, new_primary=None, msg='Promoting s2 failed: a reason. Finish by hand.')})


def module_crashed(s):
    # a result the module did not make (a traceback, a lost connection to
    # its host): no promoted, whatever the message says
    s.run('failover', mysql_failover={'real_first': FENCE_FIRST, 'real': dict(
        failed=True, changed=False, msg='MODULE FAILURE. Nothing was changed')})


def routers_follow(s):
    s.run('failover', '-e', 'mysql_cluster_liveness_max_age=600')


def routers_follow_repointed(s):
    # s3 was re-pointed without waiting (repoint_wait false) and does not
    # connect: read after the fence, a warning; the failover stands
    s.run('failover', '-e', 'mysql_cluster_liveness_max_age=600', '-e', 'mysql_cluster_catchup_timeout=1')


def routers_follow_failed(s):
    s.run('failover', mysql_failover={'real_first': dict(
        failed=True, changed=True, promoted=True, old_primary='s1', new_primary=None, semi_sync=LOSSLESS,
        msg='Promoting s2 failed: a reason. Finish by hand.')})


def routers_follow_check(s):
    s.run('failover', '--check')


def unreachable_required(s):
    s.run('failover', '-e', 'mysql_server_lossless=false')


def unreachable_lossless(s):
    # a listen good for less than any fence takes: the failover listens again
    s.run('failover', '-e', 'mysql_cluster_liveness_max_age=0.001')


def short_window(s):
    # a window that a live primary's heartbeats may not fill
    s.run('failover', '-e', json.dumps(dict(mysql_cluster_liveness_window=0.6,
                                            mysql_cluster_replication_heartbeat_period=0.5)))


def bad_settings(s):
    # two settings wrong at once: both are named, nothing runs
    s.run('failover', '-e', json.dumps(dict(mysql_cluster_failover_primary='nope',
                                            mysql_cluster_router_socket='relative/path')))


def check_mode(s):
    s.run('failover', '--check')


def rejoin(s):
    s.run('rejoin', '-e', 'mysql_cluster_rejoin_node=s1')


def switchover(s):
    s.run('switchover')


SCENARIOS = {
    'failover_twice': (failover_twice, dict(mysql_failover={'real_first': FENCE_FIRST, 'real': PROMOTED}), {}),
    'routers_follow': (routers_follow, dict(mysql_failover={'real_first': FOLLOWED}), {}),
    'routers_follow_repointed': (routers_follow_repointed, dict(
        mysql_failover={'real_first': dict(FOLLOWED, repointed=['s3'], repoint_waited=False)},
        mysql_replication_info={'127.0.0.13': dict(
            replication=dict(io_running=False, sql_running=True),
            msg='s3 is a replica of 127.0.0.12:3306 (IO thread Connecting, SQL thread Yes, lag unknown)')}),
        dict(replica=True)),
    'routers_follow_failed': (routers_follow_failed, {}, {}),
    'routers_follow_check': (routers_follow_check, dict(mysql_failover={'check': dict(
        PLAN, routers_fence_first=False, semi_sync=LOSSLESS)}), {}),
    'refusal': (refusal, {}, dict(states={('r2', 's1'): FDRAIN})),
    'promotion_failed': (promotion_failed, {}, {}),
    'module_crashed': (module_crashed, {}, {}),
    'unreachable_required': (unreachable_required, dict(mysql_failover={'check': PLAN, 'real': PROMOTED}),
                             dict(unreachable_router=True)),
    'unreachable_lossless': (unreachable_lossless, dict(mysql_failover={'real_first': FENCE_FIRST, 'real': PROMOTED}),
                             dict(unreachable_router=True)),
    'check_mode': (check_mode, dict(mysql_failover={'check': PLAN}), {}),
    'bad_settings': (bad_settings, dict(mysql_failover={'real_first': FOLLOWED}), {}),
    'short_window': (short_window, dict(mysql_failover={'check': PLAN, 'real': PROMOTED}), {}),
    'rejoin': (rejoin, dict(
        # s1 woke up writable next to s2; s2 is the one its replicas follow
        mysql_replication_info={'127.0.0.11': dict(read_only=False, replicas=[]),
                                '127.0.0.12': dict(read_only=False, replicas=['s3'])},
        mysql_rejoin={'real': dict(changed=True, msg='s1 is a replica of s2')}),
        dict(states={('r1', 's1'): FMAINT, ('r2', 's1'): FMAINT})),
    'switchover': (switchover, dict(mysql_switchover={
        'check': dict(changed=True, old_primary='s1', new_primary='s2', msg='Would switch over to s2'),
        'real': dict(changed=True, old_primary='s1', new_primary='s2', msg='Switched over to s2')}),
        dict(states={('r1', 's2'): FMAINT})),
}


@pytest.fixture(scope='module')
def scenarios():
    if ANSIBLE_PLAYBOOK is None:
        pytest.skip('ansible-playbook is not installed')
    base = pathlib.Path(tempfile.mkdtemp(prefix='routers'))
    collection(base)
    (base / 'ansible.cfg').write_text('[defaults]\ncollections_path = %s\nretry_files_enabled = false\n'
                                      'stdout_callback = ansible.builtin.default\n' % base)
    done = {}
    errors = []

    def play(name):
        steps, answers, options = SCENARIOS[name]
        s = Scenario(base, name, answers, **options)
        done[name] = s
        try:
            steps(s)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append('%s: %r' % (name, exc))

    threads = [threading.Thread(target=play, args=(name,)) for name in SCENARIOS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors, errors
        yield done
    finally:
        for s in done.values():
            s.close()
        shutil.rmtree(str(base), ignore_errors=True)


def calls(run, mode=None):
    return [c for c in run['calls'] if c['module'] != 'mysql_replication_info' and (mode is None or c['mode'] == mode)]


def runs(run):
    """Each call of a cluster module: check or real, and for the failover
    whether it was its first run (the routers not fenced yet)."""
    return [c['mode'] + ('/first' if c.get('routers_fenced') is False else '') for c in calls(run)]


def test_the_old_primary_is_fenced_on_every_router_before_the_failover(scenarios):
    s = scenarios['failover_twice']
    first = s.runs[0]
    assert first['rc'] == 0, first['out']
    # the first run said the routers must fence first, and changed nothing
    assert runs(first) == ['real/first', 'real']
    for router in ('r1', 'r2'):
        assert first['changes'][router] == ['set server mysql_primary/s1 state maint',
                                            'shutdown sessions server mysql_primary/s1']
        assert s.admin(router, 's1') == FMAINT and s.admin(router, 's2') == 0
    assert 'Fenced s1 (maint, sessions shut down) at the database routers of: r1, r2; not fenced: none' in first['out']
    # the plan listened less than a window before: the failover does not listen again
    assert [str(c['liveness_window']) for c in calls(first)] == ['1.2', '0']
    # and gives the node the plan could not reach a short login
    assert [c.get('presumed_unreachable') for c in calls(first)] == [None, ['s1']]


def test_a_second_failover_touches_no_router(scenarios):
    second = scenarios['failover_twice'].runs[1]
    assert second['rc'] == 0, second['out']
    assert runs(second) == ['real/first']
    assert second['changes'] == {'r1': [], 'r2': []}
    assert re.search(r'localhost : ok=\d+ changed=0 unreachable=0 failed=0', second['out'])
    assert 's2 is the primary already' in second['out']


def test_a_refused_failover_puts_each_router_back_as_it_was(scenarios):
    s = scenarios['refusal']
    run = s.runs[0]
    assert run['rc'] != 0
    assert runs(run) == ['real/first', 'real']
    assert s.admin('r1', 's1') == 0 and s.admin('r2', 's1') == FDRAIN
    assert run['changes']['r2'][-1] == 'set server mysql_primary/s1 state drain'
    assert 'Refusing to fail over: a reason. Nothing was changed. Routers put back: r1, r2' in run['out']


def test_a_failed_promotion_leaves_the_old_primary_fenced(scenarios):
    s = scenarios['promotion_failed']
    run = s.runs[0]
    assert run['rc'] != 0
    assert s.admin('r1', 's1') == FMAINT and s.admin('r2', 's1') == FMAINT
    assert 'The old primary s1 stays fenced at the database routers (r1, r2)' in run['out']


def test_a_failover_that_did_not_say_whether_it_promoted_leaves_the_old_primary_fenced(scenarios):
    # only the module's own promoted=false puts the routers back, never the
    # wording of a message
    s = scenarios['module_crashed']
    run = s.runs[0]
    assert run['rc'] != 0
    assert runs(run) == ['real/first', 'real']
    assert s.admin('r1', 's1') == FMAINT and s.admin('r2', 's1') == FMAINT
    assert 'The old primary s1 stays fenced at the database routers (r1, r2)' in run['out']


def test_without_lossless_semi_sync_an_unreachable_router_makes_it_refuse(scenarios):
    s = scenarios['unreachable_required']
    run = s.runs[0]
    assert run['rc'] != 0
    # the fence is required: the first run only plans
    assert runs(run) == ['check/first']
    assert s.admin('r1', 's1') == 0 and s.admin('r2', 's1') == 0
    assert 'Refusing to fail over: the database routers of r3 could not be fenced' in run['out']
    assert 'Routers put back: r1, r2' in run['out']


def test_with_lossless_semi_sync_it_goes_on_naming_the_unreachable_router(scenarios):
    s = scenarios['unreachable_lossless']
    run = s.runs[0]
    assert run['rc'] == 0, run['out']
    assert runs(run) == ['real/first', 'real']
    assert s.admin('r1', 's1') == FMAINT and s.admin('r2', 's1') == FMAINT
    assert 'not fenced: r3' in run['out'] and 'WARNING: the database routers of r3 could not be fenced' in run['out']
    # the fence took longer than the window: the failover listens again
    assert [str(c['liveness_window']) for c in calls(run)] == ['1.2', '1.2']


def test_check_mode_changes_no_router_and_says_which_it_would_fence(scenarios):
    s = scenarios['check_mode']
    run = s.runs[0]
    assert run['rc'] == 0, run['out']
    assert runs(run) == ['check/first']
    assert run['changes'] == {'r1': [], 'r2': []}
    assert s.admin('r1', 's1') == 0 and s.admin('r2', 's1') == 0
    assert 'Would fence s1 (maint, sessions shut down) at the database routers of: r1, r2' in run['out']
    assert 'Would promote s2 (old primary s1)' in run['out']


def test_when_the_routers_may_follow_one_run_fails_over_and_they_fence_after_it(scenarios):
    s = scenarios['routers_follow']
    run = s.runs[0]
    assert run['rc'] == 0, run['out']
    assert runs(run) == ['real/first']
    for router in ('r1', 'r2'):
        assert run['changes'][router] == ['set server mysql_primary/s1 state maint',
                                          'shutdown sessions server mysql_primary/s1']
        assert s.admin(router, 's1') == FMAINT and s.admin(router, 's2') == 0
    assert re.search(r'Fail over when the routers may follow, else plan \(changing nothing\)\] \*+ changed: ',
                     run['out']), run['out']
    assert 'Fenced s1 (maint, sessions shut down, their end not waited for: it is unreachable and lossless ' \
           'semi-sync leaves it nothing to acknowledge, after the promotion) at the database routers of: r1, r2; ' \
           'not fenced: none' in run['out']
    assert 'Promoted s2 (old primary s1)' in run['out']


def test_when_the_routers_follow_the_re_pointed_replicas_are_read_after_the_fence(scenarios):
    s = scenarios['routers_follow_repointed']
    run = s.runs[0]
    assert run['rc'] == 0, run['out']
    # the failover returned without waiting for s3 ...
    first = [c for c in run['calls'] if c['module'] == 'mysql_failover']
    assert [(c['mode'], c['routers_fenced'], c['repoint_wait']) for c in first] == [('real', False, False)]
    # ... the routers fenced s1, then s3 was read until the catch-up timeout
    for router in ('r1', 'r2'):
        assert s.admin(router, 's1') == FMAINT
    reads = [c for c in run['calls'] if c['module'] == 'mysql_replication_info']
    # (one read, then one a second for the 1 s)
    assert [c['login_host'] for c in reads] == ['127.0.0.13'] * 2
    assert 'WARNING: s3 did not start replicating from the new primary s2 within 1 s (s3 is a replica of ' \
           '127.0.0.12:3306 (IO thread Connecting' in run['out'], run['out']
    # in the plain case (nothing re-pointed) nothing is read and nothing warned
    plain = scenarios['routers_follow'].runs[0]
    assert [c['module'] for c in plain['calls']] == ['mysql_failover']
    assert 'did not start replicating' not in plain['out']


def test_when_the_routers_were_to_follow_a_failed_promotion_they_fence_all_the_same(scenarios):
    s = scenarios['routers_follow_failed']
    run = s.runs[0]
    assert run['rc'] != 0
    assert runs(run) == ['real/first']
    assert s.admin('r1', 's1') == FMAINT and s.admin('r2', 's1') == FMAINT
    assert 'Promoting s2 failed: a reason. Finish by hand. The old primary s1 stays fenced at the database ' \
           'routers (r1, r2)' in run['out']


def test_check_mode_says_the_routers_would_follow(scenarios):
    s = scenarios['routers_follow_check']
    run = s.runs[0]
    assert run['rc'] == 0, run['out']
    assert runs(run) == ['check/first']
    assert run['changes'] == {'r1': [], 'r2': []}
    assert 'Would fence s1 (maint, sessions shut down, their end not waited for: it is unreachable and lossless ' \
           'semi-sync leaves it nothing to acknowledge, after the promotion) at the database routers of: r1, r2' \
           in run['out']


def test_wrong_settings_are_all_named_before_anything_runs(scenarios):
    run = scenarios['bad_settings'].runs[0]
    assert run['rc'] != 0
    assert calls(run) == [] and run['changes'] == {'r1': [], 'r2': []}
    assert "mysql_cluster_failover_primary ('nope'), mysql_cluster_failover_candidate (''), " \
           "mysql_cluster_switchover_target ('') and, for a rejoin, mysql_cluster_rejoin_node ('') must each be " \
           "empty or one of the nodes: s1, s2." in run['out']
    assert "mysql_cluster_router_socket must be an absolute path (got 'relative/path')" in run['out']
    assert 'mysql_cluster_nodes must list' not in run['out'] and 'liveness_window' not in run['out']


def test_a_rejoined_node_is_put_back_in_every_router(scenarios):
    s = scenarios['rejoin']
    run = s.runs[0]
    assert run['rc'] == 0, run['out']
    assert s.admin('r1', 's1') == 0 and s.admin('r2', 's1') == 0
    assert 's1 is ready in the database routers of: r1, r2' in run['out']


def test_a_switchover_makes_its_target_ready_first_and_switches_to_it(scenarios):
    s = scenarios['switchover']
    run = s.runs[0]
    assert run['rc'] == 0, run['out']
    assert [(c['mode'], c.get('target')) for c in calls(run)] == [('check', None), ('real', 's2')]
    assert s.admin('r1', 's2') == 0
    assert run['changes'] == {'r1': ['set server mysql_primary/s2 state ready'], 'r2': []}
    assert 's2 is ready in the database routers of: r1, r2' in run['out']


def test_a_liveness_window_under_two_heartbeats_stops_before_anything(scenarios):
    s = scenarios['short_window']
    run = s.runs[0]
    assert run['rc'] != 0
    assert calls(run) == [] and run['changes'] == {'r1': [], 'r2': []}
    assert 'mysql_cluster_liveness_window (0.6 s) must be at least two heartbeat periods' in run['out']
