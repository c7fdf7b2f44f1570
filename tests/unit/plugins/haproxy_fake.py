# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake HAProxy runtime API: a real AF_UNIX stream socket served by a
thread, answering ``show stat``, ``show servers state [<backend>]``,
``set server <b>/<s> state <x>`` and ``shutdown sessions server <b>/<s>``
the way HAProxy 2.6.12 (Debian bookworm) does. The header lines and the row
layout are copied from a real 2.6.12; the values of a server (status, sessions, queue, check, admin flags) come
from the fake's state, which tests change directly or from ``on_stat``, a
callable run before each ``show stat`` is answered (time passing).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import re
import shutil
import socket
import tempfile
import threading

# from a real HAProxy 2.6.12-1+deb12u3
STAT_HEADER = (
    '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,'
    'act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,'
    'check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,'
    'req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,'
    'qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,'
    'check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,'
    'intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,'
    'rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,'
    'agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,'
    'h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,'
    'h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,'
    'h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,'
    'h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,'
)
FRONTEND_ROW = (
    'www,FRONTEND,,,0,4,9978,14,1132,160002368,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,4,,,,0,14,0,0,0,0,,0,4,14,,,'
    '0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,4,14,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,'
    '14,14,1090,160002582,0,0,'
)
SERVER_ROW = (
    'web,server1,0,0,0,2,,6,484,80001056,,0,,0,0,0,0,UP,1,1,0,3,3,6,181,,1,3,1,63,6,,2,0,,2,L7OK,200,1,0,6,0,0,0,0,'
    ',,,6,0,0,,,,,205,,,0,1,2669,6280,,,,Layer7 check passed,,2,2,3,,,,127.0.0.1:8001,,http,,,,,,,,0,6,0,,,0,,0,2,'
    '8005,8007,0,0,0,0,3,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,'
)
BACKEND_ROW = (
    'web,BACKEND,0,0,0,4,998,14,1132,160002368,0,0,,0,0,0,0,UP,2,2,0,,0,295,0,,1,3,0,,14,,1,0,,4,,,,0,14,0,0,0,0,'
    ',,,14,0,0,0,0,0,0,205,,,0,1,2288,5103,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,14,0,0,0,,,0,2,8005,8007,0,,,,,2,0,'
    '0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,593,593,160066303,28195,0,0,'
)
SERVERS_STATE_HEADER = (
    '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight '
    'srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state '
    'srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port '
    'srv_check_addr srv_agent_addr srv_agent_port'
)

FMAINT, CMAINT, FDRAIN = 0x01, 0x04, 0x08

_COLUMNS = STAT_HEADER[2:].split(',')
_SET_RE = re.compile(r'^set server (\S+)/(\S+) state (\S+)$')
_SHUTDOWN_RE = re.compile(r'^shutdown sessions server (\S+)/(\S+)$')


def _row(template, **values):
    fields = template.split(',')
    for name, value in values.items():
        fields[_COLUMNS.index(name)] = '' if value is None else str(value)
    return ','.join(fields)


class FakeServer(object):
    """One backend server: ``healthy`` is what its health checks find;
    ``status`` (if set) overrides the status computed from that and the
    admin flags (for transitions such as ``DOWN 1/2``)."""

    def __init__(self, name, port, healthy=True, admin=0, sessions=0, queue=0, throttle=None, check=True,
                 track=None):
        self.name = name
        self.track = track  # '<backend>/<server>' it tracks (no checks of its own)
        self.port = port
        self.healthy = healthy
        self.admin = admin
        self.sessions = sessions
        self.queue = queue
        self.throttle = throttle
        self.check = check
        self.status = None

    def current_status(self):
        if self.status is not None:
            return self.status
        if self.admin & FMAINT:
            return 'MAINT'
        if not self.check:
            return 'DRAIN' if self.admin & FDRAIN else 'no check'
        if not self.healthy:
            return 'DOWN'
        if self.admin & FDRAIN:
            return 'DRAIN'
        return 'UP'


class FakeHAProxy(object):
    """The runtime API of one fake HAProxy on a UNIX socket of its own."""

    def __init__(self, level='admin'):
        self.level = level
        self.backends = {}   # name -> [FakeServer], in order
        self.order = []
        self.commands = []
        self.on_stat = None
        self.replies = {}    # exact command -> canned reply (overrides)
        self.lock = threading.Lock()
        self.dir = tempfile.mkdtemp(prefix='hpx')
        self.path = os.path.join(self.dir, 'admin.sock')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.running = True
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    # -- test side -------------------------------------------------------------
    def add_backend(self, name, *servers):
        self.backends[name] = list(servers)
        self.order.append(name)
        return self

    def server(self, backend, name):
        return [s for s in self.backends[backend] if s.name == name][0]

    def sets(self):
        """The commands that change something (set server, shutdown sessions)."""
        return [c for c in self.commands if c.startswith(('set ', 'shutdown '))]

    def close(self):
        self.running = False
        try:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes up accept()
            except (OSError, socket.error):
                pass
            self.sock.close()
            self.thread.join(5)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- server side -------------------------------------------------------------
    def _serve(self):
        while self.running:
            try:
                conn, dummy = self.sock.accept()
            except (OSError, socket.error):
                return
            try:
                data = b''
                while not data.endswith(b'\n'):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                command = data.decode('utf-8').strip()
                with self.lock:
                    self.commands.append(command)
                    reply = self.answer(command)
                conn.sendall(reply.encode('utf-8'))
            finally:
                conn.close()

    def answer(self, command):
        if command in self.replies:
            return self.replies[command]
        if command == 'show stat':
            if self.on_stat is not None:
                self.on_stat(self)
            return self.show_stat()
        if command == 'show servers state' or command.startswith('show servers state '):
            backend = command[len('show servers state'):].strip() or None
            if backend is not None and backend not in self.backends:
                return "Can't find backend.\n\n"
            return self.show_servers_state(backend)
        match = _SET_RE.match(command)
        if match:
            if self.level != 'admin':
                return 'Permission denied\n\n'
            backend, name, state = match.groups()
            if backend not in self.backends:
                return 'No such backend.\n\n'
            servers = [s for s in self.backends[backend] if s.name == name]
            if not servers:
                return 'No such server.\n\n'
            server = servers[0]
            if state == 'ready':
                server.admin &= ~(FMAINT | FDRAIN)
            elif state == 'drain':
                server.admin = (server.admin & ~FMAINT) | FDRAIN
            elif state == 'maint':
                server.admin = (server.admin & ~FDRAIN) | FMAINT
            else:
                return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n"
            return '\n'
        match = _SHUTDOWN_RE.match(command)
        if match:
            if self.level != 'admin':
                return 'Permission denied\n\n'
            backend, name = match.groups()
            if backend not in self.backends:
                return 'No such backend.\n\n'
            servers = [s for s in self.backends[backend] if s.name == name]
            if not servers:
                return 'No such server.\n\n'
            servers[0].sessions = 0
            return '\n'
        return 'Unknown command: \'%s\'\n\n' % command.split(' ')[0]

    def show_stat(self):
        lines = [STAT_HEADER, FRONTEND_ROW]
        for iid, backend in enumerate(self.order, 3):
            for sid, server in enumerate(self.backends[backend], 1):
                lines.append(_row(SERVER_ROW, pxname=backend, svname=server.name, qcur=server.queue,
                                  scur=server.sessions, status=server.current_status(), iid=iid, sid=sid,
                                  throttle=server.throttle, addr='127.0.0.1:%d' % server.port,
                                  tracked=server.track,
                                  check_status=('L7OK' if server.healthy else 'L4CON') if server.check else None))
            up = [s for s in self.backends[backend] if s.current_status() in ('UP', 'no check', 'DRAIN')]
            lines.append(_row(BACKEND_ROW, pxname=backend, iid=iid, status='UP' if up else 'DOWN',
                              scur=sum(s.sessions for s in self.backends[backend])))
        return '\n'.join(lines) + '\n\n'

    def show_servers_state(self, backend=None):
        lines = ['1', SERVERS_STATE_HEADER]
        for iid, name in enumerate(self.order, 3):
            if backend is not None and name != backend:
                continue
            for sid, server in enumerate(self.backends[name], 1):
                op_state = 0 if server.current_status().startswith(('DOWN', 'MAINT')) else 2
                lines.append('%d %s %d %s 127.0.0.1 %d %d 1 1 6 15 3 3 6 0 0 0 - %d - 0 0 - - 0'
                             % (iid, name, sid, server.name, op_state, server.admin, server.port))
        return '\n'.join(lines) + '\n\n'


def web_backend(fake, count=3):
    """Backend ``web`` with servers server1..serverN, all UP."""
    servers = [FakeServer('server%d' % i, 8000 + i) for i in range(1, count + 1)]
    fake.add_backend('web', *servers)
    return servers
