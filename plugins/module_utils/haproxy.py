# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client of HAProxy's runtime API (the ``stats socket`` of the
``global`` section), standard library only.

One command per connection: the client connects to the UNIX socket, sends
the command and a newline, and reads until HAProxy closes the connection
(the non-interactive mode of the runtime API). Written against HAProxy 2.6
(Debian bookworm); the commands used exist since 1.8:

* ``show stat``: every proxy and server as CSV (``# pxname,svname,...``);
  a server's ``status`` is its operational state as HAProxy shows it
  (``UP``, ``DOWN``, ``DRAIN``, ``MAINT``, ``NOLB``, ``no check``, and the
  transitions ``UP 1/2``, ``DOWN 1/2``; ``MAINT (via b/s)`` and
  ``MAINT (resolution)``), ``scur`` its current sessions and ``qcur`` its
  queue;
* ``show servers state [<backend>]``: the administrative state, as flags
  (``srv_admin_state``), which ``show stat`` cannot tell apart from health
  (a drained server that fails its checks shows ``DOWN`` there);
* ``set server <backend>/<server> state ready|drain|maint``: needs a socket
  of ``level admin``; HAProxy answers nothing when it did it.

Errors are raised as ``HAProxyError`` (with the socket path and, for an
error reply, the command and HAProxy's words).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import csv
import errno
import re
import socket

DEFAULT_SOCKET = '/run/haproxy/admin.sock'

# the administrative states ``set server ... state`` sets
STATES = ('ready', 'drain', 'maint')

# srv_admin_state flags (include/haproxy/server-t.h, enum srv_admin, 1.7 to 2.6)
ADMIN_FLAGS = (
    (0x01, 'FMAINT'),   # forced maintenance (set server state maint, or "disabled" in the configuration)
    (0x02, 'IMAINT'),   # maintenance inherited from a tracked server
    (0x04, 'CMAINT'),   # "disabled" in the configuration (kept as a marker)
    (0x08, 'FDRAIN'),   # forced drain (set server state drain)
    (0x10, 'IDRAIN'),   # drain inherited from a tracked server
    (0x20, 'RMAINT'),   # maintenance because DNS resolution failed
    (0x40, 'HMAINT'),   # the server's FQDN was set over the runtime API
)
_FMAINT = 0x01
_FDRAIN = 0x08

# srv_op_state (enum srv_state)
OP_STATES = {0: 'stopped', 1: 'starting', 2: 'running', 3: 'stopping'}

# show stat "type" column
TYPE_FRONTEND, TYPE_BACKEND, TYPE_SERVER, TYPE_LISTENER = '0', '1', '2', '3'

# backend and server names as HAProxy accepts them; anything else could
# smuggle a second command (";", newline) into the one sent
_NAME_RE = re.compile(r'^[A-Za-z0-9_.:-]+$')

_RECEIVE_LIMIT = 64 * 1024 * 1024


class HAProxyError(Exception):
    """The runtime API could not be used, or answered with an error.

    ``socket`` is the socket path, ``command`` the command sent (or None
    when the connection itself failed) and ``reply`` HAProxy's answer."""

    def __init__(self, message, socket_path=None, command=None, reply=None):
        super(HAProxyError, self).__init__(message)
        self.socket = socket_path
        self.command = command
        self.reply = reply


def valid_name(name):
    """Whether ``name`` can be a backend or server name in a command."""
    return bool(name) and bool(_NAME_RE.match(name))


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def parse_stat_csv(text):
    """Rows of ``show stat`` output as dicts keyed by the header's names
    (``pxname``, ``svname``, ``status``, ...), values as text. Raises
    ValueError when the text is not that CSV."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith('# pxname,'):
        raise ValueError('not the CSV of show stat: %r' % (text[:200],))
    header = [name.strip() for name in lines[0][2:].split(',')]
    rows = []
    for values in csv.reader(lines[1:]):
        row = {}
        for index, name in enumerate(header):
            if name and name != '-':
                row[name] = values[index] if index < len(values) else ''
        rows.append(row)
    return rows


def parse_servers_state(text):
    """Rows of ``show servers state`` output (format version 1) as dicts
    keyed by the header's names (``be_name``, ``srv_name``,
    ``srv_admin_state``, ...). Raises ValueError for anything else."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != '1':
        raise ValueError('not the output of show servers state (format 1): %r' % (text[:200],))
    header = None
    rows = []
    for line in lines[1:]:
        if line.startswith('#'):
            header = line[1:].split()
            continue
        if header is None:
            raise ValueError('show servers state without a header line: %r' % (text[:200],))
        values = line.split()
        rows.append(dict(zip(header, values)))
    return rows


def admin_flag_names(flags):
    """``srv_admin_state`` as a list of flag names (``['FMAINT', 'CMAINT']``)."""
    flags = _int(flags)
    return [name for bit, name in ADMIN_FLAGS if flags & bit]


def admin_state(flags):
    """The state ``set server ... state`` sets, read back from
    ``srv_admin_state``: ``maint`` (forced maintenance, which a
    ``disabled`` server of the configuration starts in), ``drain`` (forced
    drain) or ``ready``. Inherited maintenance or drain (tracking, DNS) is not
    something ``set server`` changes: see ``admin_flag_names``."""
    flags = _int(flags)
    if flags & _FMAINT:
        return 'maint'
    if flags & _FDRAIN:
        return 'drain'
    return 'ready'


def status_is_up(status):
    """Whether a server's ``show stat`` status means that its health checks
    pass and it takes traffic: ``UP`` (in slowstart too, which the status
    does not show), ``UP (agent)``, or ``no check`` (no health check, so
    HAProxy takes it as up). Not ``UP 1/3`` (up but failing its checks),
    ``DOWN 1/2`` (rising), ``DRAIN``, ``NOLB``, ``MAINT``, ``DOWN``."""
    status = (status or '').strip()
    return status in ('UP', 'no check') or status.startswith('UP (')


class RuntimeAPI(object):
    """HAProxy's runtime API on a local UNIX socket."""

    def __init__(self, path=DEFAULT_SOCKET, timeout=10.0):
        self.path = path
        self.timeout = timeout

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except (socket.error, OSError) as exc:
            sock.close()
            code = getattr(exc, 'errno', None)
            if code == errno.ENOENT:
                reason = 'it does not exist (is HAProxy running, with "stats socket %s level admin"?)' % self.path
            elif code in (errno.EACCES, errno.EPERM):
                reason = ('permission denied (run as root or as a member of the socket\'s group, '
                          'e.g. with become: true)')
            elif code == errno.ECONNREFUSED:
                reason = 'connection refused (HAProxy is not running or not listening on it)'
            elif code == errno.ENOTSOCK:
                reason = 'it is not a socket'
            else:
                reason = str(exc)
            raise HAProxyError('Cannot connect to the HAProxy admin socket %s: %s' % (self.path, reason),
                               socket_path=self.path)
        return sock

    def command(self, command):
        """Send one command, return HAProxy's whole reply as text."""
        if '\n' in command or '\r' in command:
            raise ValueError('one command, one line: %r' % command)
        sock = self._connect()
        chunks = []
        size = 0
        try:
            sock.sendall((command + '\n').encode('utf-8'))
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > _RECEIVE_LIMIT:
                    raise HAProxyError('The reply of HAProxy (%s) to "%s" is larger than %d bytes'
                                       % (self.path, command, _RECEIVE_LIMIT), self.path, command)
        except socket.timeout:
            raise HAProxyError('HAProxy (%s) did not finish answering "%s" within %s seconds'
                               % (self.path, command, self.timeout), self.path, command)
        except (socket.error, OSError) as exc:
            raise HAProxyError('Talking to HAProxy on %s failed (command "%s"): %s' % (self.path, command, exc),
                               self.path, command)
        finally:
            sock.close()
        return b''.join(chunks).decode('utf-8', 'replace')

    def _error(self, command, reply, hint=None):
        words = ' '.join(reply.split()) or 'no answer'
        if len(words) > 300:
            words = words[:300] + '...'
        return HAProxyError('HAProxy (%s) refused "%s": %s%s' % (self.path, command, words, hint or ''),
                            self.path, command, reply)

    def show_stat(self):
        """Every row of ``show stat`` (frontends, backends, servers, listeners)."""
        reply = self.command('show stat')
        try:
            return parse_stat_csv(reply)
        except ValueError:
            raise self._error('show stat', reply)

    def show_servers_state(self, backend=None):
        """Rows of ``show servers state [<backend>]``."""
        command = 'show servers state'
        if backend is not None:
            if not valid_name(backend):
                raise ValueError('invalid backend name %r' % backend)
            command += ' ' + backend
        reply = self.command(command)
        try:
            return parse_servers_state(reply)
        except ValueError:
            raise self._error(command, reply)

    def set_server_state(self, backend, server, state):
        """``set server <backend>/<server> state <state>``; raises
        HAProxyError unless HAProxy answers nothing (done)."""
        if state not in STATES:
            raise ValueError('state must be one of %s, not %r' % (', '.join(STATES), state))
        for name in (backend, server):
            if not valid_name(name):
                raise ValueError('invalid backend or server name %r' % name)
        command = 'set server %s/%s state %s' % (backend, server, state)
        reply = self.command(command)
        if reply.strip():
            hint = None
            if reply.strip().lower().startswith('permission denied'):
                hint = ' (the socket must be a "stats socket ... level admin")'
            raise self._error(command, reply, hint)
        return command

    def backends(self):
        """Names of the backends (proxies with a BACKEND row), in order."""
        return [row['pxname'] for row in self.show_stat() if row.get('type') == TYPE_BACKEND]

    def backend_servers(self, backend):
        """The servers of ``backend`` as a list (configuration order) of dicts:
        ``name``, ``status``, ``sessions`` (scur), ``queue`` (qcur),
        ``weight``, ``check_status``, ``throttle`` (slowstart percentage,
        None when not throttled), ``address``, ``backup``, ``trackers``
        (the servers of other backends that track this one: ``backend``,
        ``name``, ``sessions``, ``queue``; they inherit its checks, drain
        and maintenance, and carry traffic of their own), and from
        ``show servers state`` ``admin_flags`` (int), ``admin_state``
        (ready/drain/maint), ``admin_flag_names`` and ``op_state``.

        Raises HAProxyError when there is no such backend, its ``known``
        attribute listing the backends there are."""
        if not valid_name(backend):
            raise ValueError('invalid backend name %r' % backend)
        rows = self.show_stat()
        if not [row for row in rows if row.get('pxname') == backend and row.get('type') == TYPE_BACKEND]:
            known = [row['pxname'] for row in rows if row.get('type') == TYPE_BACKEND]
            exc = HAProxyError('HAProxy (%s) has no backend "%s"; its backends: %s'
                               % (self.path, backend, ', '.join(known) or 'none'), self.path)
            exc.known = known
            raise exc
        servers = []
        for row in rows:
            if row.get('pxname') != backend or row.get('type') != TYPE_SERVER:
                continue
            name = '%s/%s' % (backend, row.get('svname'))
            trackers = [dict(backend=r.get('pxname'), name=r.get('svname'), sessions=_int(r.get('scur')),
                             queue=_int(r.get('qcur')))
                        for r in rows if r.get('type') == TYPE_SERVER and r.get('tracked') == name]
            servers.append(dict(
                trackers=trackers,
                name=row.get('svname'),
                status=row.get('status', ''),
                sessions=_int(row.get('scur')),
                queue=_int(row.get('qcur')),
                weight=_int(row.get('weight')),
                check_status=row.get('check_status') or None,
                throttle=_int(row.get('throttle')) if row.get('throttle') else None,
                address=row.get('addr') or None,
                backup=row.get('bck') == '1',
            ))
        states = dict((row.get('srv_name'), row) for row in self.show_servers_state(backend))
        for server in servers:
            state = states.get(server['name'], {})
            flags = _int(state.get('srv_admin_state'))
            server.update(admin_flags=flags, admin_state=admin_state(flags),
                          admin_flag_names=admin_flag_names(flags),
                          op_state=OP_STATES.get(_int(state.get('srv_op_state'))) if state else None)
        return servers
