# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logging in to MySQL/MariaDB, shared by every module of the collection.

The one place for:

* the login options of the modules that act on the local server
  (``mysql_common_argument_spec``, documented by the
  ``distweb.infra.mysql_login`` doc fragment) and the connection helper that
  fails the module (``mysql_connect``);
* the login of the cluster-level modules, which reach each node over TCP and
  must not fail on an unreachable one (``node_login_params``,
  ``mysql_connect_node``);
* the TLS context of a client connection (``build_ssl_context``);
* the server's errors: their text (``format_mysql_error``), their number
  (``mysql_error_code``), the numbers the modules decide on (``ER_*``) and
  whether an error means the server is gone (``is_connection_error``).

PyMySQL is imported here only: its error class is ``MySQLError`` (a
stand-in without PyMySQL, so that ``except MySQLError`` always works).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import ssl as ssl_lib
    HAS_SSL = True
except ImportError:  # pragma: no cover - Python without the ssl module
    ssl_lib = None
    HAS_SSL = False

try:
    import pymysql
    from pymysql.cursors import DictCursor
    HAS_PYMYSQL = True
    PYMYSQL_IMPORT_ERROR = None
    MySQLError = pymysql.err.MySQLError
except ImportError:
    pymysql = None
    DictCursor = None
    HAS_PYMYSQL = False
    PYMYSQL_IMPORT_ERROR = traceback.format_exc()

    class MySQLError(Exception):
        """Stand-in so that ``except MySQLError`` works without PyMySQL."""


# Where the servers of the supported distributions put their socket.
DEFAULT_SOCKET_PATHS = (
    '/run/mysqld/mysqld.sock',
    '/var/run/mysqld/mysqld.sock',
    '/var/lib/mysql/mysql.sock',
    '/tmp/mysql.sock',
)

# Server (and client library) error numbers the modules make decisions on.
ER_ACCESS_DENIED = 1045
CR_CONN_HOST_ERROR = 2003
# MariaDB/MySQL: KILL of a thread that has already ended
ER_NO_SUCH_THREAD = 1094
# MariaDB/MySQL: lock_wait_timeout passed
ER_LOCK_WAIT_TIMEOUT = 1205


# ---------------------------------------------------------------------------
# Login options and connection
# ---------------------------------------------------------------------------

def mysql_common_argument_spec():
    """Argument spec of the login options shared by every module.

    Documented by the ``distweb.infra.mysql_login`` doc fragment.
    """
    return dict(
        login_user=dict(type='str'),
        login_password=dict(type='str', no_log=True),
        login_host=dict(type='str'),
        login_port=dict(type='int', default=3306),
        login_unix_socket=dict(type='path'),
        config_file=dict(type='path', default='~/.my.cnf'),
        connect_timeout=dict(type='int', default=30),
        login_ssl_ca=dict(type='path'),
        login_ssl_cert=dict(type='path'),
        login_ssl_key=dict(type='path'),
    )


def login_tls(params):
    """The TLS connection settings of a login from its ``login_ssl_ca``,
    ``login_ssl_cert`` and ``login_ssl_key`` options: TLS when any is set;
    with a CA given, the certificate chain is checked, the host name is not
    (local logins go through a socket or 127.0.0.1, the cluster modules'
    logins use the inventory's addresses)."""
    return dict(
        ssl=bool(params.get('login_ssl_ca') or params.get('login_ssl_cert') or params.get('login_ssl_key')),
        ssl_ca=params.get('login_ssl_ca'),
        ssl_cert=params.get('login_ssl_cert'),
        ssl_key=params.get('login_ssl_key'),
        ssl_verify_cert=bool(params.get('login_ssl_ca')),
        ssl_verify_identity=False,
    )


def login_params_from_module(module):
    """Connection settings (for ``mysql_connect``) from the login options."""
    p = module.params
    params = dict(
        user=p.get('login_user'),
        password=p.get('login_password'),
        host=p.get('login_host'),
        port=p.get('login_port'),
        unix_socket=p.get('login_unix_socket'),
        config_file=p.get('config_file'),
        connect_timeout=p.get('connect_timeout'),
        default_socket=True,
    )
    params.update(login_tls(p))
    return params


def find_default_socket(paths=DEFAULT_SOCKET_PATHS):
    """First existing server socket of ``paths``, or None."""
    for path in paths:
        if os.path.exists(path):
            return path
    return None


def build_ssl_context(ca=None, cert=None, key=None, verify_cert=False, verify_identity=False):
    """TLS context for a client connection.

    ``verify_cert`` checks the server's certificate chain (against ``ca`` or the
    system's CAs), ``verify_identity`` also checks its host name.
    """
    if not HAS_SSL:
        raise ValueError('this Python has no ssl module')
    ctx = ssl_lib.create_default_context(cafile=ca or None)
    if verify_identity:
        ctx.check_hostname = True
        ctx.verify_mode = ssl_lib.CERT_REQUIRED
    elif verify_cert:
        ctx.check_hostname = False
        ctx.verify_mode = ssl_lib.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl_lib.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, keyfile=key or None)
    return ctx


def format_mysql_error(exc):
    """The server's (or client library's) own message, with its error number."""
    args = getattr(exc, 'args', ())
    if len(args) >= 2 and isinstance(args[0], int):
        return '%s (error %d)' % (args[1], args[0])
    if args:
        return ' '.join(str(a) for a in args)
    return str(exc) or exc.__class__.__name__


def mysql_error_code(exc):
    """Error number of a PyMySQL exception, or None."""
    args = getattr(exc, 'args', ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def mysql_connect(module, params=None, what='the MySQL/MariaDB server'):
    """Open a PyMySQL connection (autocommit, DictCursor) or fail the module.

    ``params`` is a dict with the keys ``user``, ``password``, ``host``,
    ``port``, ``unix_socket``, ``config_file``, ``connect_timeout``, ``ssl``
    (bool: use TLS), ``ssl_ca``, ``ssl_cert``, ``ssl_key``, ``ssl_verify_cert``,
    ``ssl_verify_identity``, ``ssl_disabled`` (bool: no TLS at all, not even
    opportunistic) and ``default_socket`` (bool: when the host is
    ``localhost`` or unset and no socket is given, use the first existing
    socket of ``DEFAULT_SOCKET_PATHS``, as the mysql client does). Missing keys
    mean "not set". Without ``params`` the module's login options are used.

    ``config_file`` is read (PyMySQL's ``read_default_file``, group
    ``[client]``) only if it exists; explicit settings win over it.
    On failure the module fails with the server's own error text.
    """
    if not HAS_PYMYSQL:
        module.fail_json(msg=missing_required_lib('PyMySQL'), exception=PYMYSQL_IMPORT_ERROR)
    if params is None:
        params = login_params_from_module(module)

    kwargs = dict(
        user=params.get('user') or None,
        password=params.get('password') or '',
        connect_timeout=params.get('connect_timeout') or 30,
        cursorclass=DictCursor,
        autocommit=True,
        charset='utf8mb4',
        defer_connect=True,
    )
    if params.get('host'):
        kwargs['host'] = params['host']
    if params.get('port'):
        kwargs['port'] = int(params['port'])
    if params.get('unix_socket'):
        kwargs['unix_socket'] = params['unix_socket']
    config_file = params.get('config_file')
    if config_file:
        config_file = os.path.expanduser(config_file)
        if os.path.isfile(config_file):
            kwargs['read_default_file'] = config_file

    if params.get('ssl'):
        try:
            kwargs['ssl'] = build_ssl_context(
                ca=params.get('ssl_ca'), cert=params.get('ssl_cert'), key=params.get('ssl_key'),
                verify_cert=params.get('ssl_verify_cert'),
                verify_identity=params.get('ssl_verify_identity'))
        except (OSError, ValueError) as exc:
            module.fail_json(msg='Invalid TLS settings for the connection to %s: %s' % (what, exc))
    elif params.get('ssl_disabled'):
        kwargs['ssl_disabled'] = True

    where = params.get('unix_socket') or '%s:%s' % (params.get('host') or 'localhost', params.get('port') or 3306)
    try:
        conn = pymysql.connect(**kwargs)
        if params.get('default_socket') and not conn.unix_socket and conn.host == 'localhost':
            sock = find_default_socket()
            if sock:
                conn.unix_socket = sock
        if conn.unix_socket:
            where = 'unix socket %s' % conn.unix_socket
        else:
            where = '%s:%s' % (conn.host, conn.port)
        conn.connect()
    except MySQLError as exc:
        module.fail_json(msg='Unable to connect to %s (%s): %s' % (what, where, format_mysql_error(exc)),
                         errno=mysql_error_code(exc))
    except (OSError, ValueError) as exc:
        module.fail_json(msg='Unable to connect to %s (%s): %s' % (what, where, exc))
    return conn


# ---------------------------------------------------------------------------
# Cluster-level modules: one node reached over TCP from the control node
# ---------------------------------------------------------------------------

def node_login_params(params, host, port):
    """Connection settings (for ``mysql_connect_node``) of one node from the
    cluster login options."""
    timeout = params.get('connect_timeout') or 5
    login = dict(
        user=params.get('login_user'),
        password=params.get('login_password'),
        host=host,
        port=port,
        connect_timeout=timeout,
        # a node that accepts the connection but does not answer must not
        # hang the module; the longest statement it waits for is a
        # GTID wait of one second or SET GLOBAL read_only (lock_wait_timeout)
        read_timeout=max(10, 3 * timeout),
        write_timeout=max(10, 3 * timeout),
    )
    login.update(login_tls(params))
    return login


def mysql_connect_node(params, what='the server'):
    """Open a PyMySQL connection over TCP without failing the module:
    ``(connection, None, None)`` or ``(None, message, error number or
    None)``. No option file is read and no socket used (an option file's
    ``socket`` would send every node's connection to the local server)."""
    if not HAS_PYMYSQL:
        return None, missing_required_lib('PyMySQL'), None
    kwargs = dict(
        user=params.get('user') or None,
        password=params.get('password') or '',
        host=params.get('host'),
        port=int(params.get('port') or 3306),
        connect_timeout=params.get('connect_timeout') or 5,
        cursorclass=DictCursor,
        autocommit=True,
        charset='utf8mb4',
        defer_connect=True,
    )
    # The whole login (the server's greeting, TLS, authentication) is
    # bounded by connect_timeout: a hung server that accepts the TCP
    # connection but never greets costs no more than a dead one. The read
    # and write timeouts apply to the statements sent afterwards.
    after_login = {}
    for key in ('read_timeout', 'write_timeout'):
        if params.get(key):
            after_login[key] = params[key]
        kwargs[key] = kwargs['connect_timeout']
    if params.get('ssl'):
        try:
            kwargs['ssl'] = build_ssl_context(
                ca=params.get('ssl_ca'), cert=params.get('ssl_cert'), key=params.get('ssl_key'),
                verify_cert=params.get('ssl_verify_cert'), verify_identity=params.get('ssl_verify_identity'))
        except (OSError, ValueError) as exc:
            return None, 'Invalid TLS settings for the connection to %s: %s' % (what, exc), None
    where = '%s:%s' % (kwargs['host'], kwargs['port'])
    try:
        conn = pymysql.connect(**kwargs)
        conn.connect()
        # PyMySQL applies these before each read and write on the socket
        conn._read_timeout = after_login.get('read_timeout')  # pylint: disable=protected-access
        conn._write_timeout = after_login.get('write_timeout')  # pylint: disable=protected-access
    except MySQLError as exc:
        return None, 'Unable to connect to %s (%s): %s' % (what, where, format_mysql_error(exc)), \
            mysql_error_code(exc)
    except (OSError, ValueError) as exc:
        return None, 'Unable to connect to %s (%s): %s' % (what, where, exc), None
    return conn, None, None


def is_connection_error(exc):
    """True if a PyMySQL error means the connection is gone or the server
    does not answer (client-side errors 2000-2999, or no error number),
    False for an error the server returned (privileges, syntax, ...)."""
    code = mysql_error_code(exc)
    return not code or 2000 <= code < 3000
