# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of module_utils/mysql_connection.py."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import ssl

import pymysql
import pytest
import yaml

from ansible_collections.distweb.infra.plugins.doc_fragments.mysql_login import ModuleDocFragment
from ansible_collections.distweb.infra.plugins.module_utils import mysql_connection


# ---------------------------------------------------------------------------
# Argument spec and doc fragment
# ---------------------------------------------------------------------------

def test_common_argument_spec_matches_doc_fragment():
    spec = mysql_connection.mysql_common_argument_spec()
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    assert set(spec) == set(doc)
    for name, option in spec.items():
        assert doc[name]['type'] == option['type'], name
        assert doc[name].get('default') == option.get('default'), name
    assert spec['login_password']['no_log'] is True
    assert set(spec) == {'login_user', 'login_password', 'login_host', 'login_port', 'login_unix_socket',
                         'config_file', 'connect_timeout', 'login_ssl_ca', 'login_ssl_cert', 'login_ssl_key'}


def test_argument_spec_is_a_fresh_copy():
    first = mysql_connection.mysql_common_argument_spec()
    first['login_port']['default'] = 1
    assert mysql_connection.mysql_common_argument_spec()['login_port']['default'] == 3306


# ---------------------------------------------------------------------------
# Connection helper
# ---------------------------------------------------------------------------

class FakeModule(object):
    def __init__(self, params=None):
        self.params = dict((k, v.get('default')) for k, v in mysql_connection.mysql_common_argument_spec().items())
        self.params.update(params or {})
        self.params['config_file'] = self.params['config_file'] if params and 'config_file' in params \
            else '/nonexistent/.my.cnf'

    def fail_json(self, **kwargs):
        raise RuntimeError(kwargs)


def _fail_args(excinfo):
    return excinfo.value.args[0]


def test_connect_socket(fake_net, make_server):
    fake_net.add(make_server('mariadb'), socket='/run/mysqld/mysqld.sock')
    conn = mysql_connection.mysql_connect(FakeModule(dict(login_unix_socket='/run/mysqld/mysqld.sock', login_user='root')))
    kwargs = fake_net.connects[-1]
    assert kwargs['unix_socket'] == '/run/mysqld/mysqld.sock'
    assert kwargs['user'] == 'root' and kwargs['password'] == ''
    assert kwargs['cursorclass'] is pymysql.cursors.DictCursor
    assert kwargs['autocommit'] is True
    assert kwargs['connect_timeout'] == 30
    assert 'read_default_file' not in kwargs and 'ssl' not in kwargs
    assert conn.server is not None


def test_connect_localhost_uses_default_socket(fake_net, make_server, monkeypatch):
    fake_net.add(make_server('mariadb'), socket='/var/run/mysqld/mysqld.sock')
    monkeypatch.setattr(mysql_connection, 'find_default_socket', lambda *a: '/var/run/mysqld/mysqld.sock')
    mysql_connection.mysql_connect(FakeModule())
    assert fake_net.connects[-1]['unix_socket'] == '/var/run/mysqld/mysqld.sock'


def test_connect_tcp_when_host_given(fake_net, make_server, monkeypatch):
    fake_net.add(make_server('mariadb'), host='127.0.0.1', port=3307)
    monkeypatch.setattr(mysql_connection, 'find_default_socket', lambda *a: '/var/run/mysqld/mysqld.sock')
    mysql_connection.mysql_connect(FakeModule(dict(login_host='127.0.0.1', login_port=3307, login_password='fake-pw')))
    kwargs = fake_net.connects[-1]
    assert kwargs['unix_socket'] is None and kwargs['host'] == '127.0.0.1' and kwargs['port'] == 3307
    assert kwargs['password'] == 'fake-pw'


def test_find_default_socket(tmp_path):
    sock = tmp_path / 'mysqld.sock'
    assert mysql_connection.find_default_socket((str(sock),)) is None
    sock.write_text('')
    assert mysql_connection.find_default_socket(('/nonexistent/sock', str(sock))) == str(sock)


def test_connect_config_file_only_if_it_exists(fake_net, make_server, tmp_path):
    fake_net.add(make_server('mariadb'), socket='/s')
    cnf = tmp_path / 'my.cnf'
    mysql_connection.mysql_connect(FakeModule(dict(login_unix_socket='/s', config_file=str(cnf))))
    assert 'read_default_file' not in fake_net.connects[-1]
    cnf.write_text('[client]\nuser=root\n')
    mysql_connection.mysql_connect(FakeModule(dict(login_unix_socket='/s', config_file=str(cnf))))
    assert fake_net.connects[-1]['read_default_file'] == str(cnf)


def test_connect_error_shows_server_message(fake_net, make_server):
    fake_net.add(make_server('mariadb'), socket='/s')
    fake_net.errors['/s'] = pymysql.err.OperationalError(
        1045, "Access denied for user 'root'@'localhost' (using password: NO)")
    with pytest.raises(RuntimeError) as excinfo:
        mysql_connection.mysql_connect(FakeModule(dict(login_unix_socket='/s')), what='the local server')
    failed = _fail_args(excinfo)
    assert failed['msg'] == ("Unable to connect to the local server (unix socket /s): Access denied for user "
                             "'root'@'localhost' (using password: NO) (error 1045)")
    assert failed['errno'] == 1045


def test_connect_unreachable(fake_net):
    with pytest.raises(RuntimeError) as excinfo:
        mysql_connection.mysql_connect(FakeModule(dict(login_host='db9')))
    assert "Can't connect to MySQL server on 'db9'" in _fail_args(excinfo)['msg']
    assert 'db9:3306' in _fail_args(excinfo)['msg']


def test_connect_without_pymysql(monkeypatch):
    monkeypatch.setattr(mysql_connection, 'HAS_PYMYSQL', False)
    with pytest.raises(RuntimeError) as excinfo:
        mysql_connection.mysql_connect(FakeModule())
    assert 'PyMySQL' in _fail_args(excinfo)['msg']


def test_connect_login_tls(fake_net, make_server, monkeypatch):
    fake_net.add(make_server('mariadb'), socket='/s')
    calls = []

    def fake_ctx(**kwargs):
        calls.append(kwargs)
        return 'CTX'

    monkeypatch.setattr(mysql_connection, 'build_ssl_context', fake_ctx)
    mysql_connection.mysql_connect(FakeModule(dict(login_unix_socket='/s', login_ssl_ca='/ca.pem', login_ssl_cert='/c.pem',
                                                   login_ssl_key='/c.key')))
    assert fake_net.connects[-1]['ssl'] == 'CTX'
    assert calls == [dict(ca='/ca.pem', cert='/c.pem', key='/c.key', verify_cert=True, verify_identity=False)]


def test_connect_primary_params_disable_tls(fake_net, make_server):
    fake_net.add(make_server('mariadb', server_id=1), host='server1')
    mysql_connection.mysql_connect(FakeModule(), dict(host='server1', port=3306, user='repl', password='fake-pw',
                                                      ssl=False, ssl_disabled=True, default_socket=False))
    kwargs = fake_net.connects[-1]
    assert kwargs['ssl_disabled'] is True and kwargs['host'] == 'server1'
    assert 'read_default_file' not in kwargs


def test_connect_bad_tls_files(fake_net):
    with pytest.raises(RuntimeError) as excinfo:
        mysql_connection.mysql_connect(FakeModule(dict(login_ssl_cert='/nonexistent/cert.pem')), what='the local server')
    assert _fail_args(excinfo)['msg'].startswith('Invalid TLS settings for the connection to the local server')


def test_build_ssl_context_modes():
    ctx = mysql_connection.build_ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE and ctx.check_hostname is False
    ctx = mysql_connection.build_ssl_context(verify_cert=True)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is False
    ctx = mysql_connection.build_ssl_context(verify_cert=True, verify_identity=True)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True


def test_format_mysql_error_variants():
    assert mysql_connection.format_mysql_error(pymysql.err.OperationalError(2003, "Can't connect")) == "Can't connect (error 2003)"
    assert mysql_connection.format_mysql_error(ValueError('bad')) == 'bad'
    assert mysql_connection.format_mysql_error(ValueError()) == 'ValueError'
    assert mysql_connection.mysql_error_code(ValueError('x')) is None
