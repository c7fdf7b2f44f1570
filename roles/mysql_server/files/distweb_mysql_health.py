# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role-aware health endpoint of one MariaDB/MySQL node.

The local database routers on the app servers (role db_router) check every
database node through this endpoint, so that writes go to the one writable
node and reads to healthy replicas, without the app knowing which is which.

  GET /primary  200 when the server answers and is writable (read_only OFF)
  GET /replica  200 when the server answers, is read-only, its SQL thread
                runs and it is at most max_lag seconds behind (unknown lag,
                e.g. while the IO thread reconnects, counts as healthy)
  GET /         200 with the node's state as JSON, whatever it is

Every other answer is 503 with the reason. The state is read fresh for each
request (one short connection over the local socket) so that a fenced or
promoted node is seen at the routers' next check.

Configuration: a JSON file named by $DISTWEB_MYSQL_HEALTH_CONFIG:
{"socket", "user", "password", "bind", "port", "max_lag"}.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import sys

try:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
except ImportError:  # pragma: no cover - Python 2 is not supported
    sys.exit('distweb-mysql-health needs Python 3.7 or later')

DEFAULTS = {
    'socket': '/run/mysqld/mysqld.sock',
    'user': 'monitor',
    'password': '',
    'bind': '0.0.0.0',
    'port': 9201,
    'max_lag': 30,
    'timeout': 2,
}


def load_config(path=None):
    if path is None:
        path = os.environ.get('DISTWEB_MYSQL_HEALTH_CONFIG')
    config = dict(DEFAULTS)
    if path:
        with open(path) as handle:
            config.update(json.load(handle))
    return config


def read_state(config, connect=None):
    """The node's role as a dict. ``connect`` makes a DB-API connection
    (tests pass a fake one)."""
    if connect is None:
        import pymysql
        connect = pymysql.connect
    conn = connect(unix_socket=config['socket'], user=config['user'], password=config['password'],
                   connect_timeout=config['timeout'], read_timeout=config['timeout'])
    try:
        cur = conn.cursor()
        cur.execute('SELECT @@global.read_only')
        read_only = bool(int(cur.fetchone()[0]))
        cur.execute('SHOW SLAVE STATUS')
        row = cur.fetchone()
        replica = None
        if row is not None:
            status = dict(zip([d[0] for d in cur.description], row))
            replica = {
                'source': status.get('Master_Host'),
                'io_running': status.get('Slave_IO_Running'),
                'sql_running': status.get('Slave_SQL_Running'),
                'lag': status.get('Seconds_Behind_Master'),
            }
    finally:
        conn.close()
    return {'read_only': read_only, 'replica': replica}


def judge(path, state, max_lag):
    """(HTTP status, reason) for ``path`` given the node's ``state`` (None
    when the server did not answer)."""
    if path == '/':
        return 200, 'state'
    if path not in ('/primary', '/replica'):
        return 404, 'unknown path %s; use /primary, /replica or /' % path
    if state is None:
        return 503, 'the database server does not answer'
    if path == '/primary':
        if state['read_only']:
            return 503, 'read-only: not the primary'
        return 200, 'writable primary'
    if not state['read_only']:
        return 503, 'writable: not a replica'
    replica = state['replica']
    if replica is None:
        return 503, 'read-only but not replicating'
    if replica['sql_running'] != 'Yes':
        return 503, 'the SQL thread does not run'
    if replica['lag'] is not None and int(replica['lag']) > max_lag:
        return 503, '%s s behind its primary (more than %s s)' % (replica['lag'], max_lag)
    return 200, 'healthy replica'


def make_handler(config, connect=None):
    class Handler(BaseHTTPRequestHandler):
        server_version = 'distweb-mysql-health'

        def do_GET(self):  # noqa: N802 (http.server's name)
            path = self.path.split('?', 1)[0]
            state = None
            error = None
            if path in ('/', '/primary', '/replica'):
                try:
                    state = read_state(config, connect)
                except Exception as exc:  # any failure to read means unhealthy
                    error = str(exc)
            code, reason = judge(path, state, config['max_lag'])
            body = {'status': code, 'reason': reason, 'state': state}
            if error:
                body['error'] = error
            data = (json.dumps(body, default=str) + '\n').encode('utf-8')
            self.send_response(code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.send_header('Connection', 'close')
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):  # the routers check several times a second
            pass

    return Handler


def main():
    config = load_config()
    server = ThreadingHTTPServer((config['bind'], int(config['port'])), make_handler(config))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
