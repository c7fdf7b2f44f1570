# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carries a replica's seed (a mariadb-backup xbstream) from the source node
straight to the new replica over mutual TLS, so that the copy never passes
through the control node and nobody else can send or read it.

  receive --port P --peer NAME --cert C --key K --ca CA [--timeout S]
      On the new replica: accept one connection on P whose client
      certificate is signed by CA and names NAME (the source node's
      inventory name, its certificate's common name); write what it sends to
      stdout (into mbstream). Exits 0 after the sender closes, 1 on any
      failure, 2 when nobody connected within S seconds.
  send --host H --port P --peer NAME --cert C --key K --ca CA
      On the source: connect to H:P, check that the server's certificate is
      signed by CA and names NAME (the new replica's inventory name), and
      send stdin (mariadb-backup --stream=xbstream) to it.

Both sides present the node certificates the database servers use (the
mysql_server role's TLS files)."""

from __future__ import absolute_import, division, print_function

import argparse
import socket
import ssl
import sys

CHUNK = 1024 * 1024


def common_name(cert):
    for rdn in cert.get('subject', ()):
        for key, value in rdn:
            if key == 'commonName':
                return value
    return None


def _shutdown(conn):
    """TLS's orderly end (close_notify both ways)."""
    try:
        conn.unwrap()
    except (ssl.SSLError, OSError):  # the peer closed first: the data is through
        pass


def receive(args, out=None):
    out = out or sys.stdout.buffer
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.socket(socket.AF_INET6 if ':' in args.bind else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.bind, args.port))
    listener.listen(1)
    listener.settimeout(args.timeout)
    try:
        while True:
            try:
                raw, address = listener.accept()
            except socket.timeout:
                print('distweb-seed-stream: nobody sent a seed within %s s' % args.timeout, file=sys.stderr)
                return 2
            try:
                # suppress_ragged_eofs off: an EOF without close_notify raises
                conn = context.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
            except (ssl.SSLError, OSError) as exc:  # a stranger: refuse it, keep waiting for the source
                print('distweb-seed-stream: refused %s: %s' % (address[0], exc), file=sys.stderr)
                raw.close()
                continue
            name = common_name(conn.getpeercert())
            if name != args.peer:
                print('distweb-seed-stream: refused %s: its certificate names %r, not %r'
                      % (address[0], name, args.peer), file=sys.stderr)
                conn.close()
                continue
            conn.settimeout(args.timeout)
            total = 0
            with conn:
                # A sender that dies mid-stream closes without TLS's
                # close_notify: recv raises (SSLEOFError) and this exits 1,
                # so a cut stream is never taken for a whole one.
                try:
                    while True:
                        data = conn.recv(CHUNK)
                        if not data:
                            break
                        out.write(data)
                        total += len(data)
                except (ssl.SSLError, OSError) as exc:
                    print('distweb-seed-stream: the seed from %s was cut after %d bytes: %s' % (name, total, exc),
                          file=sys.stderr)
                    return 1
                _shutdown(conn)
            out.flush()
            print('distweb-seed-stream: received %d bytes from %s (%s)' % (total, name, address[0]), file=sys.stderr)
            return 0 if total else 1
    finally:
        listener.close()


def send(args, source=None):
    source = source or sys.stdin.buffer
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    context.check_hostname = False  # the name is checked below: the common name, whatever the address
    raw = socket.create_connection((args.host, args.port), timeout=args.timeout)
    with context.wrap_socket(raw, server_hostname=args.host) as conn:
        name = common_name(conn.getpeercert())
        if name != args.peer:
            print('distweb-seed-stream: %s:%s presents a certificate for %r, not %r: nothing sent'
                  % (args.host, args.port, name, args.peer), file=sys.stderr)
            return 1
        total = 0
        while True:
            data = source.read(CHUNK)
            if not data:
                break
            conn.sendall(data)
            total += len(data)
        _shutdown(conn)  # close_notify: the end of the stream, not a cut
    print('distweb-seed-stream: sent %d bytes to %s' % (total, args.peer), file=sys.stderr)
    return 0 if total else 1


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='mode')
    sub.required = True
    for mode in ('receive', 'send'):
        p = sub.add_parser(mode)
        p.add_argument('--port', type=int, required=True)
        p.add_argument('--peer', required=True, help="the other node's certificate common name")
        p.add_argument('--cert', required=True)
        p.add_argument('--key', required=True)
        p.add_argument('--ca', required=True)
        p.add_argument('--timeout', type=float, default=600)
        if mode == 'receive':
            p.add_argument('--bind', default='0.0.0.0')
        else:
            p.add_argument('--host', required=True)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    try:
        return receive(args) if args.mode == 'receive' else send(args)
    except (OSError, ssl.SSLError) as exc:
        print('distweb-seed-stream: %s failed: %s' % (args.mode, exc), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
