# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role's alert rules: the template rendered by Ansible itself
with the role's defaults, checked by promtool (``check rules``), run against
the unit tests in tests/prometheus/alerts_test.yml (``test rules``), every
alert labelled and annotated for the operator, and every alert tested both
firing and quiet.

promtool comes from Debian's prometheus package (scripts/lib.sh
ensure_promtool, which scripts/test runs): PROMTOOL, else
.cache/promtool/promtool, else promtool on the PATH. Without one the promtool
tests are skipped, unless DISTWEB_REQUIRE_PROMTOOL=1 (scripts/test) makes that
a failure."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
ROLE = REPO / 'roles' / 'monitoring'
TEMPLATE = ROLE / 'templates' / 'alerts.rules.yml.j2'
PROMTOOL_TESTS = REPO / 'tests' / 'prometheus' / 'alerts_test.yml'
DEFAULTS = [ROLE / 'defaults' / 'main.yml']
RULES_NAME = 'alerts.rules.yml'  # what alerts_test.yml's rule_files names
SEVERITIES = {'critical', 'warning'}
ANNOTATIONS = ('summary', 'description', 'runbook')
PLAYBOOKS = {p.name for p in (REPO / 'playbooks').glob('*.yml')}


def _promtool():
    candidates = [os.environ.get('PROMTOOL'), str(REPO / '.cache' / 'promtool' / 'promtool'), shutil.which('promtool')]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    reason = ('promtool not found: run scripts/test unit (it unpacks Debian\'s prometheus package into '
              '.cache/promtool) or set PROMTOOL')
    if os.environ.get('DISTWEB_REQUIRE_PROMTOOL') == '1':
        pytest.fail(reason + ' (DISTWEB_REQUIRE_PROMTOOL=1)')
    pytest.skip(reason)


def _ansible():
    local = pathlib.Path(sys.executable).parent / 'ansible'
    return str(local) if local.is_file() else shutil.which('ansible') or pytest.fail('the ansible command is missing')


def render(dest, *extra_vars):
    """Render the template with ansible.builtin.template on localhost, the
    role's defaults given as extra vars (their values as the role sees them),
    then ``extra_vars`` (key=value or JSON)."""
    args = [_ansible(), 'localhost', '-i', 'localhost,', '-c', 'local', '-o',
            '-m', 'ansible.builtin.template', '-a', 'src=%s dest=%s' % (TEMPLATE, dest),
            '-e', 'ansible_python_interpreter=%s' % sys.executable]
    for path in DEFAULTS:
        if path.is_file():
            args += ['-e', '@%s' % path]
    for extra in extra_vars:
        args += ['-e', extra]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_LOCAL_TEMP=str(dest.parent / '.ansible-tmp'),
               ANSIBLE_REMOTE_TEMP=str(dest.parent / '.ansible-tmp'), ANSIBLE_NOCOLOR='1')
    result = subprocess.run(args, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, 'ansible could not render %s:\n%s%s' % (TEMPLATE.name, result.stdout, result.stderr)
    return dest


def promtool(*args, cwd=None):
    result = subprocess.run([_promtool()] + list(args), cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope='module')
def rendered(tmp_path_factory):
    """The rendered rule file, with a copy of alerts_test.yml beside it."""
    work = tmp_path_factory.mktemp('alert_rules')
    render(work / RULES_NAME)
    shutil.copy(str(PROMTOOL_TESTS), str(work / PROMTOOL_TESTS.name))
    return work / RULES_NAME


def load_rules(path):
    data = yaml.safe_load(path.read_text())
    return [rule for group in data['groups'] for rule in group['rules']]


def alerts_of(path):
    return [rule for rule in load_rules(path) if 'alert' in rule]


def promtool_cases():
    """{alert name: [exp_alerts of each alert_rule_test]} of alerts_test.yml."""
    cases = {}
    for test in yaml.safe_load(PROMTOOL_TESTS.read_text())['tests']:
        for case in test.get('alert_rule_test') or []:
            cases.setdefault(case['alertname'], []).append(case.get('exp_alerts') or [])
    return cases


def test_the_template_starts_with_ansible_managed():
    assert TEMPLATE.read_text().splitlines()[0] == '{{ ansible_managed | comment }}'


def test_prometheus_templates_survive_ansible(rendered):
    text = rendered.read_text()
    assert text.startswith('#\n# Ansible managed')
    assert '{{ $labels.instance }}' in text and '{{ $value | humanizePercentage }}' in text
    assert '{%' not in text and 'monitoring_alert_' not in ''.join(
        line for line in text.splitlines() if not line.lstrip().startswith('#'))


def test_promtool_check_rules(rendered):
    code, output = promtool('check', 'rules', str(rendered))
    assert code == 0, output
    assert 'SUCCESS: %d rules found' % len(load_rules(rendered)) in output, output


def test_promtool_unit_tests(rendered):
    code, output = promtool('test', 'rules', PROMTOOL_TESTS.name, cwd=str(rendered.parent))
    assert code == 0, output


def test_every_alert_has_severity_summary_description_and_runbook(rendered):
    alerts = alerts_of(rendered)
    assert alerts, 'no alerts in the rule file'
    for rule in alerts:
        name = rule['alert']
        assert rule.get('labels', {}).get('severity') in SEVERITIES, '%s: severity must be one of %s' % (name, SEVERITIES)
        annotations = rule.get('annotations', {})
        for key in ANNOTATIONS:
            assert str(annotations.get(key, '')).strip(), '%s has no %s' % (name, key)
        assert '\n' not in annotations['runbook'], '%s: the runbook is one line' % name
        for playbook in re.findall(r'playbooks/([\w.-]+\.yml)', annotations['runbook']):
            assert playbook in PLAYBOOKS, '%s: the runbook names playbooks/%s, which does not exist' % (name, playbook)


def test_alert_names_are_unique(rendered):
    names = [rule['alert'] for rule in alerts_of(rendered)]
    assert len(names) == len(set(names)), names


def test_every_alert_is_tested_firing_and_quiet(rendered):
    names = {rule['alert'] for rule in alerts_of(rendered)}
    cases = promtool_cases()
    # a misspelt alertname would pass every "must not fire" case unnoticed
    assert set(cases) <= names, 'alerts_test.yml tests unknown alerts: %s' % sorted(set(cases) - names)
    for name in sorted(names):
        assert any(cases.get(name, [])), '%s: no promtool case where it fires' % name
        assert any(not exp for exp in cases.get(name, [])), '%s: no promtool case where it must not fire' % name
    for name, expectations in cases.items():
        for exp in expectations:
            for alert in exp:
                assert 'summary' in alert.get('exp_annotations', {}), '%s: a firing case without its summary' % name
                assert alert.get('exp_labels', {}).get('severity') in SEVERITIES, name


def test_every_threshold_variable_is_used_and_defined():
    template = TEMPLATE.read_text()
    used = set(re.findall(r'\bmonitoring_alert_\w+', template))
    defined = set()
    for path in DEFAULTS:
        if path.is_file():
            defined |= {name for name in (yaml.safe_load(path.read_text()) or {}) if name.startswith('monitoring_alert_')}
    assert used == defined, 'used only: %s; defined only: %s' % (sorted(used - defined), sorted(defined - used))


def test_thresholds_come_from_the_variables(tmp_path):
    path = render(tmp_path / RULES_NAME,
                  'monitoring_alert_replication_lag_seconds=99 monitoring_alert_5xx_ratio=0.2 '
                  'monitoring_alert_haproxy_server_down_for=20s monitoring_alert_tls_days=7 '
                  'monitoring_alert_disk_free_ratio=0.05',
                  '{"monitoring_alert_disk_ignored_fstypes": ["tmpfs", "ramfs"]}')
    rules = {rule['alert']: rule for rule in alerts_of(path)}
    assert re.search(r'>\s*99$', rules['MySQLReplicationLag']['expr'])
    assert ') > 0.2' in rules['HAProxyHigh5xxRatio']['expr']
    assert 'more than 20%' in rules['HAProxyHigh5xxRatio']['annotations']['description']
    assert rules['HAProxyServerDown']['for'] == '20s'
    assert '< 7 * 86400' in rules['TLSCertificateExpiringSoon']['expr']
    assert ') < 0.05' in rules['DiskAlmostFull']['expr']
    assert 'fstype!~"tmpfs|ramfs"' in rules['DiskAlmostFull']['expr']
    code, output = promtool('check', 'rules', str(path))
    assert code == 0, output
