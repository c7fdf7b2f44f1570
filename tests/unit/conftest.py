# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit test fixtures: a fake MySQL/MariaDB server behind a fake PyMySQL.

The fake records every statement it is sent, answers the read-only queries
the collection uses from its state, and applies STOP/START/CHANGE/RESET to
that state the way a server does (CHANGE and RESET ALL refuse to run while
a replication thread runs), so the modules can be run end to end.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import re
import sys

import pytest

# Make ``ansible_collections.distweb.infra`` importable from this checkout.
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_COLLECTIONS = os.path.join(_REPO, '.collections')
_LINK = os.path.join(_COLLECTIONS, 'ansible_collections', 'distweb', 'infra')
_in_collection_tree = os.path.basename(os.path.dirname(os.path.dirname(_REPO))) == 'ansible_collections'
if not _in_collection_tree:
    if not os.path.lexists(_LINK):
        os.makedirs(os.path.dirname(_LINK), exist_ok=True)
        os.symlink(os.path.join('..', '..', '..'), _LINK)
    if _COLLECTIONS not in sys.path:
        sys.path.insert(0, _COLLECTIONS)
else:
    _ROOT = os.path.dirname(os.path.dirname(os.path.dirname(_REPO)))
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)

import pymysql  # noqa: E402  pylint: disable=wrong-import-position

from ansible.module_utils import basic  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils.common import warnings as ansible_warnings  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils.testing import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.distweb.infra.plugins.module_utils import mysql_connection  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.distweb.infra.plugins.module_utils import mysql_server  # noqa: E402  pylint: disable=wrong-import-position


FAKE_PASSWORD = 'fake-Repl-pw-1'  # a made-up test value, used nowhere else
# rpl_semi_sync_master_timeout the mysql_server role writes with
# mysql_server_lossless (2^32-1 ms: never falling back to asynchronous)
LOSSLESS_TIMEOUT_MS = 4294967295
# a semi-sync wait at least this long (ms) never ends in a test: the fake
# leaves such a commit waiting instead of advancing the clock by it
FOREVER_MS = 24 * 3600 * 1000
ROOT_SOCKET = '/run/mysqld/mysqld.sock'


# ---------------------------------------------------------------------------
# Status rows as the servers show them
# ---------------------------------------------------------------------------

def mariadb_status_row(**overrides):
    """A SHOW SLAVE STATUS row of a healthy MariaDB 10.11 replica."""
    row = {
        'Slave_IO_State': 'Waiting for master to send event',
        'Master_Host': 'server1',
        'Master_User': 'repl',
        'Master_Port': 3306,
        'Connect_Retry': 10,
        'Master_Log_File': 'mysql-bin.000003',
        'Read_Master_Log_Pos': 1234,
        'Relay_Log_File': 'relay-bin.000002',
        'Relay_Log_Pos': 700,
        'Relay_Master_Log_File': 'mysql-bin.000003',
        'Slave_IO_Running': 'Yes',
        'Slave_SQL_Running': 'Yes',
        'Replicate_Do_DB': '',
        'Replicate_Ignore_DB': '',
        'Last_Errno': 0,
        'Last_Error': '',
        'Skip_Counter': 0,
        'Exec_Master_Log_Pos': 1234,
        'Relay_Log_Space': 1000,
        'Until_Condition': 'None',
        'Master_SSL_Allowed': 'No',
        'Master_SSL_CA_File': '',
        'Master_SSL_CA_Path': '',
        'Master_SSL_Cert': '',
        'Master_SSL_Cipher': '',
        'Master_SSL_Key': '',
        'Seconds_Behind_Master': 0,
        'Master_SSL_Verify_Server_Cert': 'No',
        'Last_IO_Errno': 0,
        'Last_IO_Error': '',
        'Last_SQL_Errno': 0,
        'Last_SQL_Error': '',
        'Replicate_Ignore_Server_Ids': '',
        'Master_Server_Id': 1,
        'Master_SSL_Crl': '',
        'Master_SSL_Crlpath': '',
        'Using_Gtid': 'Slave_Pos',
        'Gtid_IO_Pos': '0-1-42',
        'Replicate_Do_Domain_Ids': '',
        'Replicate_Ignore_Domain_Ids': '',
        'Parallel_Mode': 'optimistic',
        'SQL_Delay': 0,
        'SQL_Remaining_Delay': None,
        'Slave_SQL_Running_State': 'Slave has read all relay log; waiting for more updates',
        'Slave_DDL_Groups': 3,
        'Slave_Non_Transactional_Groups': 0,
        'Slave_Transactional_Groups': 39,
    }
    row.update(overrides)
    return row


def mysql_status_row(**overrides):
    """A SHOW REPLICA STATUS row of a healthy MySQL 8.0/8.4 replica."""
    row = {
        'Replica_IO_State': 'Waiting for source to send event',
        'Source_Host': 'server1',
        'Source_User': 'repl',
        'Source_Port': 3306,
        'Connect_Retry': 10,
        'Source_Log_File': 'binlog.000002',
        'Read_Source_Log_Pos': 2000,
        'Relay_Log_File': 'relay.000002',
        'Relay_Log_Pos': 500,
        'Relay_Source_Log_File': 'binlog.000002',
        'Replica_IO_Running': 'Yes',
        'Replica_SQL_Running': 'Yes',
        'Last_Errno': 0,
        'Last_Error': '',
        'Exec_Source_Log_Pos': 2000,
        'Source_SSL_Allowed': 'No',
        'Source_SSL_CA_File': '',
        'Source_SSL_CA_Path': '',
        'Source_SSL_Cert': '',
        'Source_SSL_Cipher': '',
        'Source_SSL_Key': '',
        'Seconds_Behind_Source': 0,
        'Source_SSL_Verify_Server_Cert': 'No',
        'Last_IO_Errno': 0,
        'Last_IO_Error': '',
        'Last_SQL_Errno': 0,
        'Last_SQL_Error': '',
        'Source_Server_Id': 1,
        'Source_UUID': '3e11fa47-71ca-11e1-9e33-c80aa9429562',
        'SQL_Delay': 0,
        'SQL_Remaining_Delay': None,
        'Replica_SQL_Running_State': 'Replica has read all relay log; waiting for more updates',
        'Retrieved_Gtid_Set': '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5',
        'Executed_Gtid_Set': '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5',
        'Auto_Position': 1,
        'Channel_Name': '',
    }
    row.update(overrides)
    return row


# CHANGE ... TO option suffix (after MASTER_/SOURCE_) -> (column suffix, kind)
_CHANGE_COLUMNS = {
    'HOST': ('Host', 'str'),
    'PORT': ('Port', 'int'),
    'USER': ('User', 'str'),
    'CONNECT_RETRY': ('Connect_Retry', 'int'),
    'DELAY': ('SQL_Delay', 'int'),
    'SSL': ('SSL_Allowed', 'yesno'),
    'SSL_CA': ('SSL_CA_File', 'str'),
    'SSL_CERT': ('SSL_Cert', 'str'),
    'SSL_KEY': ('SSL_Key', 'str'),
    'SSL_VERIFY_SERVER_CERT': ('SSL_Verify_Server_Cert', 'yesno'),
}


# what the administrative login of the cluster modules is granted by default,
# MariaDB's and MySQL's names together
ALL_ADMIN_PRIVILEGES = ('PROCESS', 'RELOAD', 'CONNECTION ADMIN', 'READ_ONLY ADMIN', 'REPLICATION SLAVE ADMIN',
                        'REPLICATION MASTER ADMIN', 'SLAVE MONITOR', 'BINLOG MONITOR', 'REPLICATION CLIENT',
                        'SYSTEM_VARIABLES_ADMIN', 'CONNECTION_ADMIN', 'REPLICATION_SLAVE_ADMIN')


class FakeServer(object):
    """State and behaviour of one fake server."""

    def __init__(self, flavor='mariadb', version=None, server_id=2, hostname='server2', port=3306,
                 read_only=True, status=None, heartbeat=None, users=None, server_uuid=None):
        self.flavor = flavor
        self.version = version or ('10.11.6-MariaDB-0+deb12u1-log' if flavor == 'mariadb' else '8.0.36')
        self.server_id = server_id
        self.hostname = hostname
        self.port = port
        self.read_only = read_only
        self.status = status
        self.heartbeat = heartbeat
        self.received_heartbeats = 0  # Slave_received_heartbeats / COUNT_RECEIVED_HEARTBEATS
        self.users = users  # {user: password}: checked on login when set
        self.server_uuid = server_uuid or ('uuid-%d' % server_id)
        self.password = None  # replication password set by CHANGE
        self.executed = []  # (sql, params) of everything sent
        # column overrides applied by START (default: both threads run)
        self.start_effect = None
        # callables run after each SHOW ... STATUS (to script progress)
        self.status_script = []
        # sql regex -> exception raised instead of running it
        self.errors = {}
        # global privileges of the login (information_schema.USER_PRIVILEGES)
        self.privileges = list(ALL_ADMIN_PRIVILEGES)

    # -- helpers for tests ---------------------------------------------------
    @property
    def mariadb(self):
        return self.flavor == 'mariadb'

    def col(self, suffix):
        return ('Master_' if self.mariadb else 'Source_') + suffix

    @property
    def io_col(self):
        return 'Slave_IO_Running' if self.mariadb else 'Replica_IO_Running'

    @property
    def sql_col(self):
        return 'Slave_SQL_Running' if self.mariadb else 'Replica_SQL_Running'

    def heard(self):
        """The heartbeat count (a lone fake replica hears nothing new)."""
        return self.received_heartbeats

    def statements(self):
        """SQL texts sent, read-only queries left out."""
        return [sql for sql, dummy in self.executed if not re.match(r'(?i)\s*(SELECT|SHOW)\b', sql)]

    def threads_running(self):
        return bool(self.status) and (self.status[self.io_col] != 'No' or self.status[self.sql_col] != 'No')

    # -- the server side -----------------------------------------------------
    def handle(self, sql, params):
        self.executed.append((sql, params))
        for pattern, exc in self.errors.items():
            if re.search(pattern, sql):
                raise exc
        text = sql.strip()
        upper = text.upper()
        if upper == 'SELECT VERSION() AS VERSION':
            return [{'version': self.version}]
        if 'INFORMATION_SCHEMA.USER_PRIVILEGES' in upper:
            return [{'PRIVILEGE_TYPE': name} for name in self.privileges]
        if upper.startswith('SELECT @@SERVER_ID'):
            row = {'server_id': self.server_id, 'hostname': self.hostname, 'port': self.port,
                   'read_only': 1 if self.read_only else 0}
            if 'SERVER_UUID' in upper:
                if self.mariadb:
                    raise pymysql.err.OperationalError(1193, "Unknown system variable 'server_uuid'")
                row['super_read_only'] = 1 if self.read_only else 0
                row['server_uuid'] = self.server_uuid
            return [row]
        if upper in ('SHOW SLAVE STATUS', 'SHOW REPLICA STATUS'):
            if (upper == 'SHOW SLAVE STATUS') != self.mariadb:
                raise pymysql.err.ProgrammingError(1064, 'You have an error in your SQL syntax near STATUS')
            rows = [dict(self.status)] if self.status else []
            if self.status_script:
                step = self.status_script.pop(0)
                step(self)
            return rows
        if upper == "SHOW GLOBAL STATUS LIKE 'SLAVE_HEARTBEAT_PERIOD'":
            assert self.mariadb
            value = self.heartbeat if self.heartbeat is not None else 0
            return [{'Variable_name': 'Slave_heartbeat_period', 'Value': '%.3f' % value}]
        if upper.startswith('SELECT HEARTBEAT_INTERVAL FROM PERFORMANCE_SCHEMA'):
            assert not self.mariadb
            return [{'HEARTBEAT_INTERVAL': self.heartbeat}] if self.status else []
        if upper == "SHOW GLOBAL STATUS LIKE 'SLAVE_RECEIVED_HEARTBEATS'":
            assert self.mariadb
            return [{'Variable_name': 'Slave_received_heartbeats', 'Value': str(self.heard())}]
        if upper.startswith('SELECT COUNT_RECEIVED_HEARTBEATS FROM PERFORMANCE_SCHEMA'):
            assert not self.mariadb
            return [{'COUNT_RECEIVED_HEARTBEATS': self.heard()}] if self.status else []
        if upper in ('STOP SLAVE', 'STOP REPLICA'):
            self._check_syntax(upper, 'STOP SLAVE')
            if self.status:
                self.status[self.io_col] = 'No'
                self.status[self.sql_col] = 'No'
            return []
        if upper in ('START SLAVE', 'START REPLICA'):
            self._check_syntax(upper, 'START SLAVE')
            if not self.status:
                raise pymysql.err.OperationalError(1200, 'Misconfigured slave: MASTER_HOST was not set')
            effect = {self.io_col: 'Yes', self.sql_col: 'Yes', 'Last_IO_Errno': 0, 'Last_IO_Error': '',
                      'Last_SQL_Errno': 0, 'Last_SQL_Error': ''}
            effect.update(self.start_effect or {})
            self.status.update(effect)
            return []
        if upper in ('RESET SLAVE ALL', 'RESET REPLICA ALL'):
            self._check_syntax(upper, 'RESET SLAVE ALL')
            self._refuse_if_running()
            self.status = None
            self.heartbeat = None
            return []
        if upper.startswith('CHANGE MASTER TO ') or upper.startswith('CHANGE REPLICATION SOURCE TO '):
            self._check_syntax(upper, 'CHANGE MASTER TO')
            self._refuse_if_running()
            self._change(text, params)
            return []
        raise AssertionError('the fake server does not know this statement: %r' % sql)

    def _check_syntax(self, upper, mariadb_form):
        if upper.startswith(mariadb_form) != self.mariadb:
            raise pymysql.err.ProgrammingError(1064, 'You have an error in your SQL syntax near %r' % upper)

    def _refuse_if_running(self):
        if self.threads_running():
            raise pymysql.err.OperationalError(
                1198, 'This operation cannot be performed as you have a running slave; run STOP SLAVE first')

    def _change(self, text, params):
        clauses = re.sub(r'(?i)^CHANGE (MASTER|REPLICATION SOURCE) TO ', '', text).split(', ')
        params = list(params or ())
        assert text.count('%s') == len(params), 'placeholders and parameters do not match'
        if not self.status:
            self.status = (mariadb_status_row if self.mariadb else mysql_status_row)(
                **{self.io_col: 'No', self.sql_col: 'No', 'Using_Gtid': 'No', 'Auto_Position': 0,
                   'Connect_Retry': 60, 'Master_Host': '', 'Source_Host': '', 'Master_User': '',
                   'Source_User': '', 'Master_Server_Id': 0, 'Source_Server_Id': 0})
            if self.mariadb:
                self.status.pop('Source_Host', None)
                self.status.pop('Source_User', None)
                self.status.pop('Source_Server_Id', None)
                self.status.pop('Auto_Position', None)
            else:
                for key in ('Master_Host', 'Master_User', 'Master_Server_Id', 'Using_Gtid'):
                    self.status.pop(key, None)
            self.heartbeat = 30.0
        names = [clause.split('=', 1)[0].split('_', 1)[1] for clause in clauses]
        if 'HEARTBEAT_PERIOD' not in names and (self.mariadb or 'HOST' in names or 'PORT' in names):
            # as the servers do: back to slave_net_timeout / 2
            self.heartbeat = 30.0
        for clause in clauses:
            name, value = clause.split('=', 1)
            if value == '%s':
                value = params.pop(0)
            prefix, suffix = name.split('_', 1)
            assert prefix == ('MASTER' if self.mariadb else 'SOURCE'), clause
            if suffix == 'PASSWORD':
                self.password = value
            elif suffix == 'HEARTBEAT_PERIOD':
                self.heartbeat = float(value)
            elif suffix == 'USE_GTID':
                assert self.mariadb
                self.status['Using_Gtid'] = {'slave_pos': 'Slave_Pos', 'current_pos': 'Current_Pos',
                                             'no': 'No'}[value]
            elif suffix == 'AUTO_POSITION':
                assert not self.mariadb
                self.status['Auto_Position'] = int(value)
            else:
                column, kind = _CHANGE_COLUMNS[suffix]
                if column.startswith('SSL') or column in ('Host', 'Port', 'User'):
                    column = self.col(column)
                if kind == 'int':
                    value = int(value)
                elif kind == 'yesno':
                    value = 'Yes' if value == '1' else 'No'
                self.status[column] = value
        self.status['Last_IO_Errno'] = 0
        self.status['Last_IO_Error'] = ''


class FakeCursor(object):
    def __init__(self, conn):
        self.conn = conn
        self.rows = []

    def execute(self, sql, params=None):
        if self.conn.closed:
            raise pymysql.err.InterfaceError(0, 'connection closed')
        self.rows = self.conn.server.handle(sql, params)
        return len(self.rows)

    def fetchall(self):
        return list(self.rows)

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def close(self):
        pass


class FakeConnection(object):
    def __init__(self, net, kwargs):
        self.net = net
        self.kwargs = kwargs
        self.host = kwargs.get('host') or 'localhost'
        self.port = kwargs.get('port') or 3306
        self.unix_socket = kwargs.get('unix_socket')
        self.server = None
        self.closed = False

    def connect(self):
        net = self.net
        key = self.unix_socket if self.unix_socket else (self.host, self.port)
        self.net.connects.append(dict(self.kwargs, unix_socket=self.unix_socket, host=self.host, port=self.port))
        if key in net.errors:
            raise net.errors[key]
        server = net.servers.get(key)
        if server is None:
            if self.unix_socket:
                raise pymysql.err.OperationalError(
                    2003, "Can't connect to MySQL server on 'localhost' ([Errno 2] No such file or directory)")
            raise pymysql.err.OperationalError(
                2003, "Can't connect to MySQL server on '%s' ([Errno 111] Connection refused)" % self.host)
        if server.users is not None:
            user = self.kwargs.get('user')
            if server.users.get(user) != self.kwargs.get('password'):
                raise pymysql.err.OperationalError(
                    1045, "Access denied for user '%s'@'server2' (using password: YES)" % user)
        self.server = server

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = True


class FakeNet(object):
    """Where fake connections go: sockets and (host, port) pairs."""

    def __init__(self):
        self.servers = {}
        self.errors = {}
        self.connects = []

    def add(self, server, socket=None, host=None, port=3306):
        if socket:
            self.servers[socket] = server
        if host:
            self.servers[(host, port)] = server
        return server

    def connect(self, **kwargs):
        return FakeConnection(self, kwargs)


class FakeClock(object):
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

@pytest.fixture
def fake_net(monkeypatch):
    """A FakeNet that PyMySQL's connect() goes to."""
    net = FakeNet()
    monkeypatch.setattr(mysql_connection.pymysql, 'connect', net.connect)
    monkeypatch.setattr(mysql_connection, 'find_default_socket', lambda *a, **k: None)
    return net


@pytest.fixture
def fake_clock(monkeypatch):
    """Time as seen by module_utils (mysql_server's clock, which the waiting
    helpers and the cluster operations read): sleeping advances it at once."""
    clock = FakeClock()
    monkeypatch.setattr(mysql_server, 'time', clock)
    return clock


@pytest.fixture
def make_server():
    return FakeServer


@pytest.fixture
def status_rows():
    """The status row builders: (mariadb_status_row, mysql_status_row)."""
    return mariadb_status_row, mysql_status_row


@pytest.fixture
def fake_password():
    return FAKE_PASSWORD


@pytest.fixture
def module_exit(monkeypatch):
    """Make exit_json/fail_json raise, carrying the result (warnings of the
    run under ``_warnings``)."""
    monkeypatch.setattr(ansible_warnings, '_global_warnings', {})

    def exit_json(self, **kwargs):
        kwargs.setdefault('changed', False)
        kwargs['_warnings'] = list(ansible_warnings.get_warning_messages())
        raise AnsibleExitJson(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs['msg'] = msg
        kwargs['failed'] = True
        kwargs.setdefault('changed', False)
        raise AnsibleFailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    return AnsibleExitJson, AnsibleFailJson


# Keys of a module's result that Ansible's executor reads as the task's fate
# (a truthy "unreachable" marks the host unreachable, "skipped" the task
# skipped), whatever the module meant by them.
RESERVED_RESULT_KEYS = ('unreachable', 'skipped')


def reserved_keys_absent(result):
    """``result``, after checking that it holds none of RESERVED_RESULT_KEYS."""
    clash = [key for key in RESERVED_RESULT_KEYS if key in result]
    assert not clash, 'the result has %s, which Ansible reads as the task\'s fate' % ', '.join(clash)
    return result


@pytest.fixture
def run_main(module_exit):
    """run_main(main, args, check_mode=False, diff=False) -> result dict
    (with ``failed: True`` when the module failed)."""
    exit_exc, fail_exc = module_exit

    def run(main, args, check_mode=False, diff=False):
        args = dict(args)
        if check_mode:
            args['_ansible_check_mode'] = True
        if diff:
            args['_ansible_diff'] = True
        ansible_warnings._global_warnings.clear()
        with patch_module_args(args):
            try:
                main()
            except (exit_exc, fail_exc) as exc:
                return reserved_keys_absent(exc.args[0])
        raise AssertionError('the module returned without exit_json or fail_json')

    return run


# ---------------------------------------------------------------------------
# A fake server that also answers what mysql_replication_info reads
# ---------------------------------------------------------------------------

class FakeInfoServer(FakeServer):
    """FakeServer plus GTID positions, global variables/status (semi-sync) and
    the list of connected replicas. Everything else is FakeServer's."""

    def __init__(self, *args, **kwargs):
        super(FakeInfoServer, self).__init__(*args, **kwargs)
        if self.mariadb:
            self.gtid = {'gtid_slave_pos': '', 'gtid_binlog_pos': '', 'gtid_current_pos': ''}
        else:
            self.gtid = {'gtid_executed': '', 'gtid_purged': ''}
        self.variables = {}  # SHOW GLOBAL VARIABLES: name -> value
        self.global_status = {}  # SHOW GLOBAL STATUS: name -> value
        self.replica_hosts = []  # rows of SHOW SLAVE HOSTS / SHOW REPLICAS

    # -- helpers for tests ---------------------------------------------------
    def set_gtid(self, **positions):
        """MariaDB: slave_pos, binlog_pos, current_pos (defaults to the
        binlog position); MySQL: executed, purged."""
        for key, value in positions.items():
            self.gtid['gtid_' + key] = value
        if self.mariadb and 'current_pos' not in positions and 'binlog_pos' in positions:
            self.gtid['gtid_current_pos'] = positions['binlog_pos']
        return self

    def semi_sync_prefixes(self):
        if self.mariadb or tuple(int(x) for x in self.version.split('-')[0].split('.')[:3]) < (8, 0, 26):
            return 'rpl_semi_sync_master_', 'rpl_semi_sync_slave_'
        return 'rpl_semi_sync_source_', 'rpl_semi_sync_replica_'

    def semi_sync_wait_no_replica_name(self):
        """rpl_semi_sync_master_wait_no_slave (MariaDB, the older MySQL
        plugins), rpl_semi_sync_source_wait_no_replica (MySQL 8.0.26+)."""
        source, dummy = self.semi_sync_prefixes()
        return source + ('wait_no_replica' if source.endswith('source_') else 'wait_no_slave')

    def set_semi_sync(self, source_enabled=True, replica_enabled=False, source_status=None, replica_status=None,
                      clients=0, wait_point='AFTER_SYNC', timeout=LOSSLESS_TIMEOUT_MS, yes_tx=0, no_tx=0,
                      wait_no_slave=True):
        """Variables and status values as the server (or, on MySQL, its
        installed semi-sync plugins) shows them. ``source_status`` defaults to
        ``source_enabled``, ``replica_status`` to ``replica_enabled``. The
        timeout and wait_no_slave default to what the mysql_server role writes
        with mysql_server_lossless (never falling back to asynchronous
        replication); pass ``timeout=10000`` for an availability-first node."""
        source, replica = self.semi_sync_prefixes()

        def on(flag):
            return 'ON' if flag else 'OFF'

        self.variables.update({
            source + 'enabled': on(source_enabled),
            source + 'timeout': str(timeout),
            source + 'wait_point': wait_point,
            self.semi_sync_wait_no_replica_name(): on(wait_no_slave),
            replica + 'enabled': on(replica_enabled),
        })
        self.global_status.update({
            'R' + source[1:] + 'status': on(source_enabled if source_status is None else source_status),
            'R' + source[1:] + 'clients': str(clients),
            'R' + source[1:] + 'yes_tx': str(yes_tx),
            'R' + source[1:] + 'no_tx': str(no_tx),
            'R' + replica[1:] + 'status': on(replica_enabled if replica_status is None else replica_status),
        })
        return self

    def add_replica_host(self, server_id, host='', port=3306, source_id=None):
        if self.mariadb:
            row = {'Server_id': server_id, 'Host': host, 'Port': port, 'Master_id': source_id or self.server_id}
        else:
            row = {'Server_Id': server_id, 'Host': host, 'Port': port, 'Source_Id': source_id or self.server_id,
                   'Replica_UUID': 'uuid-%d' % server_id}
        self.replica_hosts.append(row)
        return self

    # -- the server side -----------------------------------------------------
    def handle(self, sql, params):
        upper = sql.strip().upper()
        mine = (upper.startswith('SELECT @@GTID_') or upper.startswith('SHOW GLOBAL VARIABLES WHERE')
                or upper.startswith('SHOW GLOBAL STATUS WHERE')
                or upper in ('SHOW SLAVE HOSTS', 'SHOW REPLICA HOSTS', 'SHOW REPLICAS'))
        if not mine:
            return super(FakeInfoServer, self).handle(sql, params)
        self.executed.append((sql, params))
        for pattern, exc in self.errors.items():
            if re.search(pattern, sql):
                raise exc
        if upper.startswith('SELECT @@GTID_'):
            row = {}
            for name, alias in re.findall(r'(?i)@@(\w+) AS (\w+)', sql):
                if name.lower() not in self.gtid:
                    raise pymysql.err.OperationalError(1193, "Unknown system variable '%s'" % name)
                row[alias] = self.gtid[name.lower()]
            return [row]
        if upper.startswith('SHOW GLOBAL'):
            assert sql.count('%s') == len(params or ()), 'placeholders and parameters do not match'
            source = self.variables if upper.startswith('SHOW GLOBAL VARIABLES') else self.global_status
            wanted = set(str(p).lower() for p in params)
            return [{'Variable_name': name, 'Value': value} for name, value in sorted(source.items())
                    if name.lower() in wanted]
        # the list of connected replicas
        if self.mariadb and upper == 'SHOW REPLICAS':
            raise pymysql.err.ProgrammingError(1064, 'You have an error in your SQL syntax near REPLICAS')
        if not self.mariadb and upper != 'SHOW REPLICAS' and (upper == 'SHOW REPLICA HOSTS' or
                                                              not self.version.startswith('8.0')):
            raise pymysql.err.ProgrammingError(1064, 'You have an error in your SQL syntax near HOSTS')
        return [dict(row) for row in self.replica_hosts]


@pytest.fixture
def make_info_server():
    """FakeInfoServer: a FakeServer that also has GTID positions, semi-sync
    variables/status and connected replicas."""
    return FakeInfoServer


# ---------------------------------------------------------------------------
# A fake cluster for the cluster-level modules (failover, switchover, rejoin)
# ---------------------------------------------------------------------------
#
# The nodes of a FakeCluster replicate from each other the way MariaDB 10.11
# (and 11.8) does, so that a module that does the wrong thing ends with the
# wrong data, not only with the wrong statements:
#
# * replication: a replica's IO thread connects to the node its
#   Master_Host/Master_Port name (resolved through the cluster's addresses),
#   asks for the GTIDs after its gtid_slave_pos and receives the rest of the
#   source's binlog (Gtid_IO_Pos). Its SQL thread applies the relay log
#   (gtid_slave_pos, and with log_slave_updates its own binlog, whose other
#   domains and errant GTIDs stay). ``commit()`` writes on a primary and
#   delivers to the connected replicas;
# * a source that is down: the IO thread of its replicas shows
#   ``Connecting`` with error 2003 and keeps retrying; the node coming back
#   (``up()``) lets them reconnect;
# * GTID strict mode (the collection's setting): the source refuses a
#   replica asking for a GTID its binlog does not have (error 1236, IO
#   thread stopped), or one it has purged (1236); the SQL thread stops with
#   error 1950 when it would binlog a GTID out of order (the replica's binlog
#   already has a higher sequence number in the domain: errant writes);
# * relay logs: in GTID mode START SLAVE, START SLAVE IO_THREAD and
#   CHANGE MASTER discard the relay log the SQL thread has not applied yet
#   (the IO thread fetches again from gtid_slave_pos; see orchestrator
#   pull request 1264: "In MariaDB GTID, stopping and starting IO thread
#   actually deletes relay logs"). With the source gone, what was only there
#   is lost;
# * MASTER_GTID_WAIT: the SQL thread applies what was received (when
#   ``wait_applies``) up to the position and no further (the slowest it
#   may be), then the wait returns 0 if gtid_slave_pos reached the position
#   in each of its domains, else -1 after the timeout;
# * semi-sync (MariaDB's semisync_master.cc / semisync_slave.cc):
#   Rpl_semi_sync_slave_status goes ON when the IO thread starts with
#   rpl_semi_sync_slave_enabled and OFF when it stops (STOP SLAVE
#   [IO_THREAD], RESET SLAVE ALL, an IO error); it stays ON while the IO
#   thread is ``Connecting`` to a dead source, and it says nothing about
#   whether the source was enabled. Rpl_semi_sync_master_clients counts the
#   semi-sync replicas connected right now (0 while the source side is
#   OFF). Rpl_semi_sync_master_status does not change when replicas leave.
#   A commit that no semi-sync replica acknowledges waits (also with none
#   connected while rpl_semi_sync_master_wait_no_slave is ON) up to
#   rpl_semi_sync_master_timeout: a timeout that ends in a test (the
#   availability-first 10000 ms) moves the fake clock by it, switches the
#   status OFF and acknowledges the commit to its client all the same
#   (no_tx counts it). With wait_no_slave OFF and no replica connected
#   commits go asynchronous at once while the status stays ON (no_tx). A
#   semi-sync replica that has received the last commit switches it ON
#   again;
# * lossless semi-sync (the role's timeout of 4294967295 ms, any of
#   FOREVER_MS or more): the wait does not end in a test. The commit is in
#   the binlog (AFTER_SYNC: written and synced before the wait, so the
#   replicas that connect receive it) but its client has no answer:
#   ``commit()`` leaves it out of what it returns, it is in
#   ``semi_waiting`` and its session shows "Waiting for semi-sync ACK from
#   slave" in the process list. It is acknowledged (yes_tx) once a
#   semi-sync replica receives it (one that connects, or whose IO thread
#   starts, fetches it). KILL CONNECTION of its session ends the wait with
#   an error to the client: not acknowledged (``unacknowledged``), though
#   the transaction stays committed (no_tx). The node dying drops it alike;
#   ``FakeCluster.acknowledged`` lists every commit a client was told
#   succeeded, when it was told;
# * the SQL thread of a replica whose own source side is ON waits alike
#   for what it applies (with log_slave_updates it binlogs it): with a
#   timeout that ends, the replica lags by the timeout and its source side
#   goes OFF; with the lossless timeout and no semi-sync replica of its own
#   it stops applying: the transactions are in its binlog, gtid_slave_pos
#   does not move, MASTER_GTID_WAIT times out, Slave_SQL_Running_State
#   reads "Waiting for semi-sync ACK from slave". STOP SLAVE (it kills the
#   SQL thread's wait) or the source side going OFF lets them commit;
# * SET GLOBAL rpl_semi_sync_master_enabled (MySQL 8.0.26+:
#   rpl_semi_sync_source_enabled; a name the node does not have fails with
#   error 1193) = ON switches the source side on with the status ON at
#   once, replicas or not (enable_master); = OFF switches it off
#   (disable_master, switch_off): every commit waiting for an
#   acknowledgement returns success to its client (acknowledged, no_tx
#   counts it) and a waiting SQL thread goes on;
# * a restart (``up()``) takes the source side's switch from the
#   configuration file, which the mysql_server role writes OFF
#   (``semi_source_configured``); clients waiting when the node died never
#   got an answer, and a transaction its SQL thread had binlogged is
#   committed by crash recovery.
#
# The MySQL flavor keeps the simpler model (START makes both threads run;
# the waits reach the position); the IO thread ``Connecting`` to a source
# that is down and the semi-sync status rules apply to both.

CLUSTER_UUIDS = {
    'server1': '3e11fa47-71ca-11e1-9e33-c80aa9429562',
    'server2': '4f22ab58-82db-22f2-8f44-d91bb853a673',
    'server3': '5a33bc69-93ec-33a3-9a55-ea2cc964b784',
    'server4': '6b44cd70-a4fd-44b4-ab66-fb3dd075c895',
}

_READ_ONLY_RE = re.compile(r'(?i)^SET GLOBAL (super_read_only|read_only) = ([01])$')
_KILL_RE = re.compile(r'(?i)^KILL CONNECTION (\d+)$')
_IO_THREADS_RE = re.compile(r"(?i)^SELECT (?:ID|PROCESSLIST_ID) AS id FROM "
                            r"(?:information_schema\.PROCESSLIST WHERE COMMAND = 'Slave_IO'|performance_schema\.threads )")
# the connection id of a fake replica's IO thread
IO_THREAD_ID = 900
_SEMI_SOURCE_RE = re.compile(r'(?i)^SET GLOBAL (rpl_semi_sync_(?:master|source)_enabled) = (ON|OFF|1|0)$')

# MariaDB error numbers the fake produces
ER_CONNECT = 2003  # CR_CONN_HOST_ERROR
ER_UNKNOWN_HOST = 2005  # CR_UNKNOWN_HOST
ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236
ER_GTID_STRICT_OUT_OF_ORDER = 1950


def gtid_position(text):
    """{domain: (server_id, seqno)} of a MariaDB GTID position (the highest
    sequence number per domain when a domain is listed twice)."""
    position = {}
    for domain, server_id, seqno in gtid_triples(text):
        if domain not in position or position[domain][1] < seqno:
            position[domain] = (server_id, seqno)
    return position


def gtid_triples(text):
    """[(domain, server_id, seqno)] of a MariaDB GTID list text."""
    triples = []
    for part in (text or '').replace(' ', '').split(','):
        if part:
            domain, server_id, seqno = part.split('-')
            triples.append((int(domain), int(server_id), int(seqno)))
    return triples


def gtid_state(text):
    """{(domain, server_id): seqno} of a MariaDB binlog state text."""
    state = {}
    for domain, server_id, seqno in gtid_triples(text):
        state[(domain, server_id)] = max(state.get((domain, server_id), 0), seqno)
    return state


def position_text(position):
    return ','.join('%d-%d-%d' % (domain, server_id, seqno)
                    for domain, (server_id, seqno) in sorted(position.items()))


def state_text(state):
    return ','.join('%d-%d-%d' % (domain, server_id, seqno)
                    for (domain, server_id), seqno in sorted(state.items(), key=lambda item: (item[0][0], item[1])))


class FakeClusterServer(FakeInfoServer):
    """FakeInfoServer plus what the cluster-level modules send: read_only,
    the process list and KILL, STOP/START of the IO thread alone, the GTID
    waits and SET GLOBAL gtid_slave_pos; and, as a node of a FakeCluster
    (``cluster``), replication to and from the other nodes (see above).

    Every statement that is not a plain read is appended, as (name, sql), to
    the ``log`` shared by the servers of one cluster, in the order sent.
    """

    def __init__(self, name, flavor='mariadb', log=None, clock=None, **kwargs):
        kwargs.setdefault('hostname', name)
        kwargs.setdefault('server_uuid', CLUSTER_UUIDS.get(name))
        super(FakeClusterServer, self).__init__(flavor, **kwargs)
        self.name = name
        self.log = log if log is not None else []
        self.clock = clock
        self.cluster = None
        self.alive = True
        if self.mariadb:
            self.gtid['gtid_binlog_state'] = ''
        # the SQL thread applies what the IO thread received (at
        # MASTER_GTID_WAIT, START and when a commit arrives); when false it
        # is stuck: the waits time out
        self.wait_applies = True
        # the IO thread gets what its source commits (false: the network to
        # the source is slow, nothing new arrives, no acknowledgement)
        self.receives = True
        # (domain, server_id) -> seqno of the GTIDs received and not yet
        # discarded (the relay log's share of the source's binlog state)
        self.relay_state = {}
        # the binlog state at the start of the oldest binlog file left
        # (MariaDB: GTIDs at or before it have been purged)
        self.purged = ''
        self.strict_mode = True  # gtid_strict_mode
        # semi-sync: the source side's state (m_state) and the replica
        # side's rpl_semi_sync_slave_status
        self.semi_source_on = False
        self.semi_replica_on = False
        # the source side's switch in the configuration file (what a
        # restart starts with): the mysql_server role writes OFF
        self.semi_source_configured = False
        # commits waiting for an acknowledgement that does not come (see
        # the rules above): {'gtid': ..., 'session': thread id}
        self.semi_waiting = []
        # GTIDs whose client got an error instead of an answer (its session
        # was killed, the node died) although the transaction is committed
        self.unacknowledged = []
        # the SQL thread waits for an acknowledgement of what it applied:
        # the gtid_slave_pos it reaches once the wait ends, or None
        self.sql_waiting = None
        self.waits = []  # (position, timeout)
        self.own_id = 7
        self.processlist = [
            {'Id': 1, 'User': 'system user', 'Host': '', 'db': None, 'Command': 'Daemon', 'Time': 10,
             'State': 'InnoDB purge coordinator', 'Info': None},
            {'Id': self.own_id, 'User': 'admin', 'Host': 'control:40000', 'db': None, 'Command': 'Query',
             'Time': 0, 'State': 'starting', 'Info': 'SHOW PROCESSLIST'},
        ]
        self.killed = []
        self.io_killed = 0  # kills of the IO thread's connection
        self.session_vars = {}
        # (regex, callable(server, sql)) run after a matching statement
        self.after = []

    # -- helpers for tests ---------------------------------------------------
    def add_session(self, user='app', command='Query', host='10.0.0.5:41000'):
        thread_id = max(row['Id'] for row in self.processlist) + 1
        self.processlist.append({'Id': thread_id, 'User': user, 'Host': host, 'db': 'app', 'Command': command,
                                 'Time': 0, 'State': '', 'Info': None})
        return thread_id

    def changes(self):
        return [sql for name, sql in self.log if name == self.name]

    def set_semi_sync(self, source_enabled=True, replica_enabled=False, source_status=None, replica_status=None,
                      clients=0, wait_point='AFTER_SYNC', timeout=LOSSLESS_TIMEOUT_MS, yes_tx=0, no_tx=0,
                      wait_no_slave=True):
        """As FakeInfoServer's; the statuses given are the starting point
        the semi-sync rules then change (``clients`` is counted from the
        cluster when the server is in one)."""
        super(FakeClusterServer, self).set_semi_sync(
            source_enabled=source_enabled, replica_enabled=replica_enabled, source_status=source_status,
            replica_status=replica_status, clients=clients, wait_point=wait_point, timeout=timeout, yes_tx=yes_tx,
            no_tx=no_tx, wait_no_slave=wait_no_slave)
        self.semi_source_on = bool(source_enabled if source_status is None else source_status)
        self.semi_replica_on = bool(replica_enabled if replica_status is None else replica_status)
        return self

    @property
    def wait_no_slave(self):
        """rpl_semi_sync_master_wait_no_slave (ON unless set OFF)."""
        return self.variables.get(self.semi_sync_wait_no_replica_name(), 'ON') == 'ON'

    @wait_no_slave.setter
    def wait_no_slave(self, value):
        self.variables[self.semi_sync_wait_no_replica_name()] = 'ON' if value else 'OFF'

    @property
    def io_state(self):
        return self.status[self.io_col] if self.status else 'No'

    @property
    def sql_running(self):
        return bool(self.status) and self.status[self.sql_col] == 'Yes'

    def received(self):
        """Gtid_IO_Pos (MariaDB) / Retrieved_Gtid_Set (MySQL), '' when not a replica."""
        if not self.status:
            return ''
        return self.status['Gtid_IO_Pos' if self.mariadb else 'Retrieved_Gtid_Set']

    def heard(self):
        """The heartbeat count, read once per heartbeat period: it grows
        while the IO thread is connected to a source that is up (whether or
        not the control node can reach that source)."""
        source = self.source()
        if self.status and self.status.get(self.io_col) == 'Yes' and source is not None and source.alive:
            self.received_heartbeats += 1
        return self.received_heartbeats

    def source(self):
        """The FakeClusterServer this replica's Master_Host:Master_Port
        names (up or down), or None."""
        if not self.status or self.cluster is None:
            return None
        return self.cluster.resolve(self.status[self.col('Host')], self.status[self.col('Port')])

    def semi_sync_names(self):
        """(variable of the source side's switch, status of the source side,
        status of the replica side, the counters' prefix)."""
        source, replica = self.semi_sync_prefixes()
        return source + 'enabled', 'R' + source[1:] + 'status', 'R' + replica[1:] + 'status', 'R' + source[1:]

    def semi_source_enabled(self):
        enabled, dummy, dummy, dummy = self.semi_sync_names()
        return self.variables.get(enabled) == 'ON'

    def semi_replica_enabled(self):
        source, replica = self.semi_sync_prefixes()
        return self.variables.get(replica + 'enabled') == 'ON'

    def semi_clients(self):
        """The semi-sync replicas connected to this node now."""
        if self.cluster is None or not self.semi_source_enabled():
            return 0
        return len([r for r in self.cluster.replicas_of(self) if r.io_state == 'Yes' and r.semi_replica_on])

    def count(self, counter, by=1):
        dummy, dummy, dummy, prefix = self.semi_sync_names()
        name = prefix + counter
        self.global_status[name] = str(int(self.global_status.get(name) or 0) + by)

    def timeout_ms(self):
        source, dummy = self.semi_sync_prefixes()
        return int(self.variables.get(source + 'timeout') or 10000)

    def timeout_seconds(self):
        return self.timeout_ms() / 1000.0

    def semi_sync_commit(self, acknowledged):
        """What one commit (or a replicated transaction written to the
        binlog) does to the source side of semi-sync: ``acknowledged`` is
        whether a semi-sync replica received it in time. True when the
        commit returns, False when it waits for an acknowledgement that
        does not come in a test (lossless; the caller records the wait)."""
        if not self.semi_source_enabled():
            return True
        if not self.semi_source_on:
            self.count('no_tx')
            if acknowledged:
                self.semi_source_on = True  # a replica caught up: switched ON again
            return True
        if acknowledged:
            self.count('yes_tx')
            return True
        if self.semi_clients() == 0 and not self.wait_no_slave:
            self.count('no_tx')  # asynchronous, the status stays ON
            return True
        if self.timeout_ms() >= FOREVER_MS:
            return False  # lossless: it waits
        # "Timeout waiting for reply of binlog": switched OFF, the client
        # gets its commit all the same
        if self.clock is not None:
            self.clock.now += self.timeout_seconds()
        self.semi_source_on = False
        self.count('no_tx')
        return True

    def semi_reply(self, replica):
        """``replica`` (a semi-sync replica of this node whose IO thread
        runs) has received what it has: the waits it covers end."""
        if not self.semi_source_enabled() or not replica.semi_replica_on or not replica.receives:
            return
        for entry in [w for w in self.semi_waiting if replica.has_received(w['gtid'])]:
            self.end_wait(entry, acknowledged=True)
        if self.sql_waiting is not None and all(replica.has_received(g) for g in self.sql_waiting['gtids']):
            self.count('yes_tx')
            self.end_sql_wait()

    def end_wait(self, entry, acknowledged, client_told=True):
        """A client's commit stops waiting: acknowledged by a replica
        (yes_tx) or not (no_tx); ``client_told``: it gets success."""
        self.semi_waiting.remove(entry)
        self.count('yes_tx' if acknowledged else 'no_tx')
        for row in self.processlist:
            if row['Id'] == entry['session']:
                row.update(Command='Sleep', State='')
        if client_told:
            self.cluster.acknowledged.append((self.name, entry['gtid']))
        else:
            self.unacknowledged.append(entry['gtid'])

    def end_sql_wait(self):
        """The SQL thread's transactions commit; it goes on applying."""
        waiting, self.sql_waiting = self.sql_waiting, None
        self.gtid['gtid_slave_pos'] = waiting['slave_pos']
        self.update_current_pos()
        if self.status:
            self.status['Slave_SQL_Running_State'] = 'Slave has read all relay log; waiting for more updates'
        self.apply_if_running()

    def switch_source(self, enabled):
        """SET GLOBAL rpl_semi_sync_master_enabled = ON / OFF."""
        name, dummy, dummy, dummy = self.semi_sync_names()
        was = self.semi_source_enabled()
        self.variables[name] = 'ON' if enabled else 'OFF'
        if enabled and not was:
            self.semi_source_on = True  # enable_master: ON at once, replicas or not
        elif not enabled and was:
            # disable_master -> switch_off: the waiting commits return success
            self.semi_source_on = False
            for entry in list(self.semi_waiting):
                self.end_wait(entry, acknowledged=False)
            if self.sql_waiting is not None:
                self.count('no_tx')
                self.end_sql_wait()

    def global_status_value(self, name):
        """A SHOW GLOBAL STATUS value as the server would show it now."""
        self.refresh_semi_sync()
        return self.global_status[name]

    def refresh_semi_sync(self):
        """The semi-sync status values as SHOW GLOBAL STATUS shows them now."""
        enabled, source_status, replica_status, prefix = self.semi_sync_names()
        if enabled not in self.variables:
            return
        self.global_status[source_status] = 'ON' if (self.semi_source_enabled() and self.semi_source_on
                                                     and self.alive) else 'OFF'
        self.global_status[replica_status] = 'ON' if self.semi_replica_on else 'OFF'
        if self.cluster is not None:
            self.global_status[prefix + 'clients'] = str(self.semi_clients())

    # -- replication (MariaDB) -------------------------------------------------
    def binlog_state(self):
        state = gtid_state(self.gtid.get('gtid_binlog_state', ''))
        for domain, (server_id, seqno) in gtid_position(self.gtid['gtid_binlog_pos']).items():
            state[(domain, server_id)] = max(state.get((domain, server_id), 0), seqno)
        return state

    def write_binlog(self, triples):
        """Append GTIDs to the binlog (state and position)."""
        state = self.binlog_state()
        position = gtid_position(self.gtid['gtid_binlog_pos'])
        for domain, server_id, seqno in triples:
            state[(domain, server_id)] = max(state.get((domain, server_id), 0), seqno)
            position[domain] = (server_id, seqno)
        self.gtid['gtid_binlog_state'] = state_text(state)
        self.gtid['gtid_binlog_pos'] = position_text(position)
        self.update_current_pos()

    def update_current_pos(self):
        current = gtid_position(self.gtid['gtid_slave_pos'])
        for domain, (server_id, seqno) in gtid_position(self.gtid['gtid_binlog_pos']).items():
            if domain not in current or current[domain][1] < seqno:
                current[domain] = (server_id, seqno)
        self.gtid['gtid_current_pos'] = position_text(current)

    def dump_problem(self, request):
        """Why this (MariaDB, gtid_strict_mode) source refuses a replica
        asking for the GTIDs after ``request`` ({domain: (server_id,
        seqno)}), or None."""
        state = self.binlog_state()
        for domain, (server_id, seqno) in sorted(request.items()):
            if state.get((domain, server_id), -1) >= seqno:
                continue
            higher = [n for (d, dummy), n in state.items() if d == domain and n > seqno]
            message = ("Error: connecting slave requested to start from GTID %d-%d-%d, which is not in the "
                       "master's binlog" % (domain, server_id, seqno))
            if higher and self.strict_mode:
                message += (". Since the master's binlog contains GTIDs with higher sequence numbers, it probably "
                            "means that the slave has diverged due to executing extra erroneous transactions")
            return message
        for domain, (server_id, seqno) in sorted(gtid_position(self.purged).items()):
            wanted = request.get(domain)
            if wanted is None or wanted[1] < seqno:
                return ('Could not find GTID state requested by slave in any binlog files. Probably the slave state '
                        'is too old and required binlog files have been purged.')
        return None

    def discard_relay_log(self):
        """In GTID mode the unapplied relay log is thrown away: the IO thread
        fetches again from gtid_slave_pos."""
        if not self.mariadb or not self.status or self.status.get('Using_Gtid', 'No') == 'No':
            return
        self.status['Gtid_IO_Pos'] = self.gtid['gtid_slave_pos'] if self.status['Using_Gtid'] == 'Slave_Pos' \
            else self.gtid['gtid_current_pos']
        self.relay_state = {}

    def io_error(self, errno, message, connecting):
        self.status.update({self.io_col: 'Connecting' if connecting else 'No', 'Last_IO_Errno': errno,
                            'Last_IO_Error': message})
        self.status[self.mariadb and 'Slave_IO_State' or 'Replica_IO_State'] = \
            'Reconnecting after a failed master event read' if connecting else ''
        if not connecting:
            self.semi_replica_on = False  # the IO thread ended

    def start_io(self):
        """The IO thread starts: semi-sync replica status from the setting,
        then it connects."""
        self.semi_replica_on = self.semi_replica_enabled()
        self.connect_io()

    def connect_io(self, request=None):
        """The IO thread (re)connects to its source and fetches."""
        source = self.source()
        host, port = self.status[self.col('Host')], self.status[self.col('Port')]
        user = self.status[self.col('User')]
        if source is None:
            self.io_error(ER_UNKNOWN_HOST, "error connecting to master '%s@%s:%s' - retry-time: %s  maximum-retries: "
                          "100000  message: Unknown server host '%s' (-2)" % (
                              user, host, port, self.status['Connect_Retry'], host), connecting=True)
            return
        if not source.alive:
            self.io_error(ER_CONNECT, "error connecting to master '%s@%s:%s' - retry-time: %s  maximum-retries: "
                          "100000  message: Can't connect to MySQL server on '%s' (111 \"Connection refused\")" % (
                              user, host, port, self.status['Connect_Retry'], host), connecting=True)
            return
        using_gtid = not self.mariadb or self.status.get('Using_Gtid', 'No') != 'No'
        if self.mariadb and source.mariadb and using_gtid:
            if request is None:
                request = gtid_position(self.status['Gtid_IO_Pos'])
            problem = source.dump_problem(request)
            if problem:
                self.io_error(ER_MASTER_FATAL_ERROR_READING_BINLOG,
                              "Got fatal error 1236 from master when reading data from binary log: '%s'" % problem,
                              connecting=False)
                return
        self.status.update({self.io_col: 'Yes', 'Last_IO_Errno': 0, 'Last_IO_Error': '',
                            self.col('Server_Id'): source.server_id})
        self.status['Slave_IO_State' if self.mariadb else 'Replica_IO_State'] = \
            'Waiting for master to send event' if self.mariadb else 'Waiting for source to send event'
        if self.mariadb and source.mariadb and using_gtid and self.receives:
            self.fetch(source, request)
        if self.semi_replica_on and source.semi_source_enabled() and not source.semi_source_on and self.receives \
                and self.has_received_all(source):
            source.semi_source_on = True  # try_switch_on: this replica has the last commit

    def has_received_all(self, source):
        if not self.mariadb:
            return True
        mine = gtid_position(self.received())
        return all(mine.get(domain, (0, -1))[1] >= seqno
                   for domain, (dummy, seqno) in gtid_position(source.gtid['gtid_binlog_pos']).items())

    def fetch(self, source, request):
        """Receive the source's binlog after ``request`` (MariaDB)."""
        received = dict(request)
        for (domain, server_id), seqno in source.binlog_state().items():
            after = request.get(domain)
            if after is None or seqno > after[1]:
                self.relay_state[(domain, server_id)] = max(self.relay_state.get((domain, server_id), 0), seqno)
        for domain, last in gtid_position(source.gtid['gtid_binlog_pos']).items():
            if domain not in received or received[domain][1] < last[1]:
                received[domain] = last
        self.status['Gtid_IO_Pos'] = position_text(received)
        source.semi_reply(self)
        self.apply_if_running()

    def receive(self, triples):
        """Events of a commit on the source arrive in the relay log."""
        received = gtid_position(self.received())
        for domain, server_id, seqno in triples:
            received[domain] = (server_id, seqno)
            self.relay_state[(domain, server_id)] = max(self.relay_state.get((domain, server_id), 0), seqno)
        self.status['Gtid_IO_Pos'] = position_text(received)
        source = self.source()
        if source is not None and self.io_state == 'Yes':
            source.semi_reply(self)
        self.apply_if_running()

    def has_received(self, gtids):
        """True if this replica received every GTID of ``gtids`` (MariaDB)."""
        mine = gtid_position(self.received())
        return all(mine.get(domain, (0, -1))[1] >= seqno for domain, dummy, seqno in gtid_triples(gtids))

    def apply_if_running(self):
        if self.wait_applies and self.sql_running:
            self.apply_relay_log()

    def apply_relay_log(self, limit=None):
        """The SQL thread applies everything received (MariaDB, with
        log_slave_updates and gtid_strict_mode); with ``limit`` (a
        position), no further than it in each of its domains and nothing of
        other domains: a slow SQL thread a MASTER_GTID_WAIT has just seen
        reach the position."""
        if not self.mariadb or not self.sql_running or self.sql_waiting is not None:
            return
        received = gtid_position(self.received())
        if limit is not None:
            bound = gtid_position(limit)
            received = dict((domain, last) for domain, last in received.items() if domain in bound)
            for domain, (server_id, seqno) in bound.items():
                if domain in received and received[domain][1] > seqno:
                    received[domain] = (server_id, seqno)
        slave_pos = gtid_position(self.gtid['gtid_slave_pos'])
        binlog = gtid_position(self.gtid['gtid_binlog_pos'])
        written = []
        for domain, (server_id, seqno) in sorted(received.items()):
            current = slave_pos.get(domain)
            if current is not None and current[1] >= seqno:
                continue
            pending = sorted((n, s) for (d, s), n in self.relay_state.items()
                             if d == domain and (current is None or n > current[1]))
            first_seqno, first_server = (current[1] + 1 if current else (pending[0][0] if pending else seqno),
                                         pending[0][1] if pending else server_id)
            mine = binlog.get(domain)
            if self.strict_mode and mine is not None and mine[1] >= first_seqno:
                message = ('An attempt was made to binlog GTID %d-%d-%d which would create an out-of-order sequence '
                           'number with existing GTID %d-%d-%d, and gtid strict mode is enabled'
                           % (domain, first_server, first_seqno, domain, mine[0], mine[1]))
                self.status.update({self.sql_col: 'No', 'Last_SQL_Errno': ER_GTID_STRICT_OUT_OF_ORDER,
                                    'Last_SQL_Error': message, 'Last_Errno': ER_GTID_STRICT_OUT_OF_ORDER,
                                    'Last_Error': message})
                break
            slave_pos[domain] = (server_id, seqno)
            written.extend((domain, s, min(n, seqno) if s == server_id else n)
                           for n, s in pending if s == server_id or n <= seqno)
            written.append((domain, server_id, seqno))
        if written:
            batch = sorted(written, key=lambda t: (t[0], t[2]))
            self.write_binlog(batch)
            replicas = self.cluster.replicas_of(self) if self.cluster is not None else []
            for replica in replicas:
                if replica.io_state == 'Yes' and replica.receives:
                    replica.receive(batch)
            if self.semi_sync_commit(acknowledged=any(r.io_state == 'Yes' and r.semi_replica_on and r.receives
                                                      for r in replicas)):
                self.gtid['gtid_slave_pos'] = position_text(slave_pos)
                self.update_current_pos()
            else:
                # binlogged, waiting for an acknowledgement before it commits
                self.sql_waiting = dict(slave_pos=position_text(slave_pos),
                                        gtids=['%d-%d-%d' % (d, slave_pos[d][0], slave_pos[d][1])
                                               for d in sorted(set(t[0] for t in batch))])
                self.status['Slave_SQL_Running_State'] = 'Waiting for semi-sync ACK from slave'

    def has_gtids(self, text):
        """True if every GTID of ``text`` is in this node's binlog (MariaDB)."""
        state = self.binlog_state()
        return all(state.get((domain, server_id), 0) >= seqno for domain, server_id, seqno in gtid_triples(text))

    def wait_reached(self, position):
        slave_pos = gtid_position(self.gtid['gtid_slave_pos'])
        return all(slave_pos.get(domain, (0, -1))[1] >= seqno
                   for domain, (dummy, seqno) in gtid_position(position).items())

    # -- the server side -----------------------------------------------------
    def handle(self, sql, params):
        if not self.alive:
            raise pymysql.err.OperationalError(2013, 'Lost connection to MySQL server during query')
        text = sql.strip()
        upper = text.upper()
        plain_read = re.match(r'(?i)\s*(SELECT|SHOW)\b', text) and 'GTID_WAIT' not in upper \
            and 'WAIT_FOR_EXECUTED_GTID_SET' not in upper
        if not plain_read:
            shown = text
            if params:
                shown = text % tuple(repr(p) if isinstance(p, str) else p for p in params)
            self.log.append((self.name, shown))
        if upper.startswith('SHOW GLOBAL STATUS'):
            self.refresh_semi_sync()
        mine = (_READ_ONLY_RE.match(text) or _KILL_RE.match(text) or _SEMI_SOURCE_RE.match(text)
                or _IO_THREADS_RE.match(text)
                or upper.startswith('SET SESSION ')
                or upper in ('SHOW PROCESSLIST', 'SELECT CONNECTION_ID() AS ID', 'STOP SLAVE IO_THREAD',
                             'START SLAVE IO_THREAD', 'STOP REPLICA IO_THREAD', 'START REPLICA IO_THREAD')
                or upper.startswith('SELECT MASTER_GTID_WAIT(') or upper.startswith('SELECT WAIT_FOR_EXECUTED_GTID_SET(')
                or upper.startswith('SET GLOBAL GTID_SLAVE_POS'))
        if not mine:
            rows = super(FakeClusterServer, self).handle(sql, params)
            self._replication_effects(upper)
        else:
            self.executed.append((sql, params))
            for pattern, exc in self.errors.items():
                if re.search(pattern, sql):
                    raise exc
            rows = self._cluster_handle(text, upper, params)
        for pattern, action in list(self.after):
            if re.search(pattern, text):
                action(self, text)
        return rows

    def _replication_effects(self, upper):
        """What START/STOP/CHANGE/RESET (run by FakeServer) do to the
        replication between the nodes."""
        if upper in ('START SLAVE', 'START REPLICA') and self.start_effect is None:
            self.discard_relay_log()
            self.start_io()
        elif upper in ('STOP SLAVE', 'STOP REPLICA', 'RESET SLAVE ALL', 'RESET REPLICA ALL'):
            self.semi_replica_on = False
            if self.sql_waiting is not None:
                # the SQL thread is killed in its wait: what it binlogged commits
                self.count('no_tx')
                self.end_sql_wait()
            if upper.startswith('RESET'):
                self.relay_state = {}
        elif upper.startswith('CHANGE MASTER TO ') or upper.startswith('CHANGE REPLICATION SOURCE TO '):
            self.discard_relay_log()

    def _cluster_handle(self, text, upper, params):
        match = _READ_ONLY_RE.match(text)
        if match:
            name, value = match.group(1).lower(), match.group(2) == '1'
            if name == 'super_read_only':
                assert not self.mariadb, 'MariaDB has no super_read_only'
                if value:
                    self.read_only = True
            else:
                self.read_only = value
            return []
        if _IO_THREADS_RE.match(text):
            assert ('information_schema' in text) == self.mariadb, text
            running = bool(self.status) and self.status.get(self.io_col) == 'Yes'
            return [{'id': IO_THREAD_ID}] if running else []
        match = _KILL_RE.match(text)
        if match and int(match.group(1)) == IO_THREAD_ID:
            if not (self.status and self.status.get(self.io_col) == 'Yes'):
                raise pymysql.err.InternalError(1094, 'Unknown thread id: %d' % IO_THREAD_ID)
            # the IO thread's connection is cut: it reconnects (still running)
            self.io_killed += 1
            return []
        if match:
            thread_id = int(match.group(1))
            rows = [row for row in self.processlist if row['Id'] == thread_id]
            if not rows:
                raise pymysql.err.InternalError(1094, 'Unknown thread id: %d' % thread_id)
            self.processlist.remove(rows[0])
            self.killed.append(thread_id)
            for entry in [w for w in self.semi_waiting if w['session'] == thread_id]:
                self.end_wait(entry, acknowledged=False, client_told=False)
            return []
        match = _SEMI_SOURCE_RE.match(text)
        if match:
            name, dummy, dummy, dummy = self.semi_sync_names()
            if match.group(1).lower() != name or name not in self.variables:
                raise pymysql.err.OperationalError(1193, "Unknown system variable '%s'" % match.group(1))
            self.switch_source(match.group(2).upper() in ('ON', '1'))
            return []
        if upper.startswith('SET SESSION '):
            name, value = text[len('SET SESSION '):].split('=', 1)
            self.session_vars[name.strip().lower()] = value.strip()
            return []
        if upper == 'SHOW PROCESSLIST':
            return [dict(row) for row in self.processlist]
        if upper == 'SELECT CONNECTION_ID() AS ID':
            return [{'id': self.own_id}]
        if upper.endswith('IO_THREAD'):
            if (upper.split(' ')[1] == 'SLAVE') != self.mariadb:
                raise pymysql.err.ProgrammingError(1064, 'You have an error in your SQL syntax near %r' % upper)
            if not self.status:
                raise pymysql.err.OperationalError(1200, 'Misconfigured slave: MASTER_HOST was not set')
            if upper.startswith('START'):
                if self.status[self.io_col] == 'No':
                    self.status[self.io_col] = 'Yes'
                    if self.cluster is not None:
                        self.discard_relay_log()
                        self.start_io()
            else:
                self.status[self.io_col] = 'No'
                self.status['Slave_IO_State' if self.mariadb else 'Replica_IO_State'] = ''
                self.semi_replica_on = False
            return []
        if upper.startswith('SELECT MASTER_GTID_WAIT(') or upper.startswith('SELECT WAIT_FOR_EXECUTED_GTID_SET('):
            assert upper.startswith('SELECT MASTER_GTID_WAIT(') == self.mariadb, text
            position, timeout = params
            assert isinstance(timeout, int)
            self.waits.append((position, timeout))
            if self.mariadb and self.cluster is not None:
                if self.wait_applies:
                    self.apply_relay_log(limit=position)
                if self.wait_reached(position):
                    return [{'result': 0}]
            elif self.wait_applies:
                if self.mariadb:
                    self.gtid['gtid_slave_pos'] = position
                    self.gtid['gtid_binlog_pos'] = position
                    self.gtid['gtid_current_pos'] = position
                else:
                    self.gtid['gtid_executed'] = position
                    if self.status:
                        self.status['Executed_Gtid_Set'] = position
                return [{'result': 0}]
            if self.clock is not None:
                self.clock.now += max(timeout, 0.001)
            return [{'result': -1 if self.mariadb else 1}]
        if upper.startswith('SET GLOBAL GTID_SLAVE_POS'):
            assert self.mariadb
            self._refuse_if_running()
            self.gtid['gtid_slave_pos'] = params[0]
            self.update_current_pos()
            return []
        raise AssertionError('the fake cluster server does not know this statement: %r' % text)


class FakeCluster(object):
    """Fake servers reachable as ``<name>:3306`` through a FakeNet, with one
    statement log. The default layout: server1 the writable primary with
    lossless semi-sync active, server2 and server3 healthy semi-sync replicas
    of it that have received and applied everything."""

    def __init__(self, net, clock, flavor='mariadb', names=('server1', 'server2', 'server3'), version=None):
        self.net = net
        self.clock = clock
        self.flavor = flavor
        self.log = []
        self.servers = {}
        self.addresses = {}  # (host, port) -> name: how the nodes reach each other
        self.names = list(names)
        primary = self.names[0]
        for index, name in enumerate(self.names):
            server = FakeClusterServer(name, flavor, log=self.log, clock=clock, version=version,
                                       server_id=index + 1, read_only=name != primary, heartbeat=None,
                                       users={'admin': FAKE_PASSWORD})
            server.cluster = self
            self.servers[name] = server
            self.alias(name, name, 3306)
        # (node, GTID) of every commit a client was told succeeded, in order
        self.acknowledged = []
        self.primary_gtid = '0-1-100' if flavor == 'mariadb' else '%s:1-100' % CLUSTER_UUIDS[primary]
        self.set_gtid(primary, self.primary_gtid, slave_pos='')
        # as on the collection's nodes (mysql_server_lossless): every node a
        # semi-sync replica with the lossless settings (AFTER_SYNC,
        # wait_no_slave, the timeout that never ends); the source side
        # switched on on the primary only
        self.servers[primary].set_semi_sync(source_enabled=True, replica_enabled=True, yes_tx=100, no_tx=0)
        for name in self.names[1:]:
            self.servers[name].set_semi_sync(source_enabled=False, replica_enabled=True, replica_status=True)
            self.make_replica(name, primary, received=self.primary_gtid, applied=self.primary_gtid)

    def __getitem__(self, name):
        return self.servers[name]

    @property
    def mariadb(self):
        return self.flavor == 'mariadb'

    def alias(self, name, host, port=3306):
        """Make node ``name`` reachable as ``host:port`` too (for the
        control node and the other nodes)."""
        self.addresses[(host, int(port))] = name
        if self.servers[name].alive:
            self.net.add(self.servers[name], host=host, port=int(port))

    def resolve(self, host, port):
        name = self.addresses.get((host, int(port or 3306)))
        return self.servers[name] if name else None

    def replicas_of(self, server):
        return [r for r in self.servers.values() if r is not server and r.status and r.source() is server]

    def set_gtid(self, name, binlog, slave_pos=None, binlog_state=None):
        """Binlog GTIDs of a node (MariaDB gtid_binlog_pos, MySQL
        gtid_executed) and, MariaDB, its gtid_slave_pos and binlog state."""
        server = self.servers[name]
        if self.mariadb:
            server.set_gtid(binlog_pos=binlog)
            if slave_pos is not None:
                server.gtid['gtid_slave_pos'] = slave_pos
            server.gtid['gtid_binlog_state'] = binlog_state if binlog_state is not None else binlog
            server.update_current_pos()
        else:
            server.set_gtid(executed=binlog)
            if server.status:
                server.status['Executed_Gtid_Set'] = binlog
        return server

    def make_replica(self, name, source, received, applied=None, **overrides):
        """Make ``name`` a running replica of ``source`` that has received
        ``received`` and applied ``applied`` (default: all of it). A source
        that is down leaves its IO thread ``Connecting`` (error 2003)."""
        server = self.servers[name]
        applied = received if applied is None else applied
        source_id = self.servers[source].server_id if source in self.servers else 99
        if self.mariadb:
            row = mariadb_status_row(Master_Host=source, Master_Server_Id=source_id, Gtid_IO_Pos=received,
                                     **overrides)
        else:
            row = mysql_status_row(Source_Host=source, Source_Server_Id=source_id, Retrieved_Gtid_Set=received,
                                   Executed_Gtid_Set=applied, Source_UUID=CLUSTER_UUIDS.get(source, ''),
                                   **overrides)
        server.status = row
        server.heartbeat = 1.0
        server.password = FAKE_PASSWORD
        server.read_only = True
        server.relay_state = gtid_state(received) if self.mariadb else {}
        server.semi_replica_on = server.semi_replica_enabled() and row[server.io_col] != 'No'
        self.set_gtid(name, applied, slave_pos=applied)
        if source in self.servers and not self.servers[source].alive and row[server.io_col] == 'Yes':
            server.connect_io()
        return server

    def commit(self, name, count=1, domain=0, privileged=False):
        """``count`` transactions committed by clients (without SUPER) on
        ``name`` (a MariaDB primary), one client each: written to its
        binlog, sent to its connected replicas (those that ``receives``),
        semi-sync as the server does it. Returns the GTIDs acknowledged to
        their clients now; a commit that waits for an acknowledgement
        (lossless semi-sync, no semi-sync replica has it) is left waiting in
        ``semi_waiting`` with its session. A read-only node refuses them
        (error 1290), unless ``privileged`` (a user with SUPER / READ_ONLY
        ADMIN, whom read_only does not stop in MariaDB 10.11)."""
        assert self.mariadb, 'commit() models MariaDB'
        server = self.servers[name]
        assert server.alive, '%s is down' % name
        if server.read_only and not privileged:
            raise pymysql.err.OperationalError(
                1290, 'The MariaDB server is running with the --read-only option so it cannot execute this statement')
        done = []
        for dummy in range(count):
            top = max([n for (d, dummy_id), n in server.binlog_state().items() if d == domain] or [0])
            triple = (domain, server.server_id, top + 1)
            server.write_binlog([triple])
            receivers = [r for r in self.replicas_of(server) if r.io_state == 'Yes' and r.receives]
            for replica in receivers:
                replica.receive([triple])
            gtid = '%d-%d-%d' % triple
            if server.semi_sync_commit(acknowledged=any(r.semi_replica_on for r in receivers)):
                done.append(gtid)
                self.acknowledged.append((name, gtid))
            else:
                session = server.add_session('app')
                for row in server.processlist:
                    if row['Id'] == session:
                        row.update(State='Waiting for semi-sync ACK from slave', Info='COMMIT')
                server.semi_waiting.append(dict(gtid=gtid, session=session))
        return done

    def down(self, name):
        """The node dies (connections refused); its replicas' IO threads
        keep retrying (``Connecting``, error 2003)."""
        server = self.servers[name]
        replicas = [r for r in self.replicas_of(server) if r.io_state == 'Yes']
        server.alive = False
        # the clients of waiting commits lose their connection: no answer
        server.unacknowledged.extend(entry['gtid'] for entry in server.semi_waiting)
        server.semi_waiting = []
        for key, other in list(self.net.servers.items()):
            if other is server:
                del self.net.servers[key]
        for replica in replicas:
            replica.connect_io()

    def up(self, name, read_only=True):
        """The node restarts (read-only, as the collection's nodes start):
        the semi-sync source side as its configuration says (OFF), counters
        from zero, no client sessions; its replicas reconnect."""
        server = self.servers[name]
        server.alive = True
        server.read_only = read_only
        for (host, port), alias in self.addresses.items():
            if alias == name:
                self.net.add(server, host=host, port=port)
        enabled, dummy, dummy, prefix = server.semi_sync_names()
        if enabled in server.variables:
            server.variables[enabled] = 'ON' if server.semi_source_configured else 'OFF'
        server.semi_source_on = server.semi_source_enabled()
        for counter in ('yes_tx', 'no_tx'):
            server.global_status[prefix + counter] = '0'
        server.processlist = [row for row in server.processlist if row['Id'] in (1, server.own_id)]
        if server.sql_waiting is not None:
            # crash recovery commits what the SQL thread had binlogged
            server.gtid['gtid_slave_pos'] = server.sql_waiting['slave_pos']
            server.update_current_pos()
            server.sql_waiting = None
        if server.status and server.io_state != 'No':
            server.start_io()
        for replica in self.replicas_of(server):
            if replica.io_state == 'Connecting':
                replica.connect_io()

    def purge_binlogs(self, name, before):
        """PURGE BINARY LOGS on ``name``: the oldest binlog file left starts
        at the GTID state ``before``."""
        self.servers[name].purged = before

    def nodes(self):
        return [dict(name=name, host=name, port=3306) for name in self.names]

    def changes(self, name=None):
        """(name, sql) of every statement that is not a plain read, in order;
        with ``name``, that node's SQL only."""
        if name is None:
            return list(self.log)
        return [sql for node, sql in self.log if node == name]

    def index(self, name, pattern):
        """Position in the log of the first statement of ``name`` matching
        ``pattern`` (a regex), or None."""
        for i, (node, sql) in enumerate(self.log):
            if node == name and re.search(pattern, sql):
                return i
        return None


@pytest.fixture
def make_cluster(fake_net, fake_clock):
    """make_cluster(flavor='mariadb', names=(...), version=None) -> FakeCluster."""

    def make(flavor='mariadb', names=('server1', 'server2', 'server3'), version=None):
        return FakeCluster(fake_net, fake_clock, flavor=flavor, names=names, version=version)

    return make
