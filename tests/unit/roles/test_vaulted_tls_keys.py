# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preflights of the roles that take a TLS key file from the control
node (mysql_server, haproxy), run by ansible-playbook on localhost: the key
may be encrypted with ansible-vault, as a user keeps it in their
repository. Each preflight reads it as its role does (decrypted), so a
vaulted key that matches its certificate passes, and one that does not is
refused with the role's message."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import subprocess

import pytest

cryptography = pytest.importorskip('cryptography')
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from ansible_collections.distweb.infra.tests.unit.roles.role_playbook import (  # noqa: E402  pylint: disable=wrong-import-position
    PREFLIGHT_ALONE, ansible_bin, playbook_env, run_playbook)

VAULT_PASSWORD = 'unit-test-only'


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'db.test')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture()
def files(tmp_path):
    """A certificate, its key and another key, both keys vault-encrypted."""
    env = _env(tmp_path)
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    (tmp_path / 'server.crt').write_bytes(_cert_pem(key))
    (tmp_path / 'ca.crt').write_bytes(_cert_pem(key))
    for name, k in (('server.key', key), ('other.key', other)):
        (tmp_path / name).write_bytes(_key_pem(k))
        subprocess.run([ansible_bin('ansible-vault'), 'encrypt', str(tmp_path / name)], env=env, check=True,
                       capture_output=True)
        assert (tmp_path / name).read_text().startswith('$ANSIBLE_VAULT;')
    for role in ('mysql_server', 'haproxy'):
        (tmp_path / ('%s.yml' % role)).write_text(PREFLIGHT_ALONE.format(role=role))
    (tmp_path / 'hosts.yml').write_text('all:\n  children:\n    dbservers:\n      hosts:\n        localhost:\n'
                                        '    webservers:\n      hosts:\n        localhost:\n')
    return tmp_path


def _env(tmp_path):
    (tmp_path / 'vault-pass').write_text(VAULT_PASSWORD)
    return playbook_env(tmp_path, ANSIBLE_VAULT_PASSWORD_FILE=str(tmp_path / 'vault-pass'))


ROLE_ARGS = {
    'mysql_server': lambda files, key: [
        'mysql_server_id=1', 'mysql_server_tls=true', 'mysql_server_replication_password=unit-repl',
        'mysql_server_monitor_password=unit-mon', 'mysql_server_tls_ca_src=%s' % (files / 'ca.crt'),
        'mysql_server_tls_cert_src=%s' % (files / 'server.crt'), 'mysql_server_tls_key_src=%s' % (files / key)],
    'haproxy': lambda files, key: [
        'haproxy_tls_enabled=true', 'haproxy_tls_certificate_src=%s' % (files / 'server.crt'),
        'haproxy_tls_key_src=%s' % (files / key)],
}
REFUSALS = {'mysql_server': 'is not the private key of', 'haproxy': 'does not belong to'}


def preflight(files, key, role='mysql_server'):
    return run_playbook(files, files / ('%s.yml' % role), files / 'hosts.yml', ROLE_ARGS[role](files, key),
                        env=_env(files))


@pytest.mark.parametrize('role', sorted(ROLE_ARGS))
def test_a_vaulted_key_that_matches_its_certificate_passes(files, role):
    result = preflight(files, 'server.key', role)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert 'the key belongs to the certificate' in result.stdout
    assert 'BEGIN PRIVATE KEY' not in result.stdout + result.stderr


@pytest.mark.parametrize('role', sorted(ROLE_ARGS))
def test_a_vaulted_key_of_another_certificate_is_refused(files, role):
    result = preflight(files, 'other.key', role)
    assert result.returncode != 0
    assert REFUSALS[role] in result.stdout, result.stdout[-4000:]
    assert 'BEGIN PRIVATE KEY' not in result.stdout + result.stderr
