# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class ModuleDocFragment(object):

    # Login options shared by every MySQL/MariaDB module of the collection;
    # they match mysql_common_argument_spec() in plugins/module_utils/mysql_connection.py.
    DOCUMENTATION = r'''
options:
  login_user:
    description:
      - The user name to log in to the local MySQL/MariaDB server with.
      - If not set, the one from O(config_file), else the name of the user the
        module runs as (C(root) logs in through the socket on Debian's MariaDB).
    type: str
  login_password:
    description:
      - The password of O(login_user).
      - If not set, the one from O(config_file), else none.
    type: str
  login_host:
    description:
      - Host name or IP address of the server to log in to.
      - If not set, the one from O(config_file), else C(localhost).
      - As with the C(mysql) client, C(localhost) means the local socket when
        O(login_unix_socket) is not set and one of the usual sockets
        (C(/run/mysqld/mysqld.sock), C(/var/run/mysqld/mysqld.sock),
        C(/var/lib/mysql/mysql.sock), C(/tmp/mysql.sock)) exists; use
        C(127.0.0.1) to force TCP.
    type: str
  login_port:
    description:
      - TCP port of the server, used when the connection is not through a socket.
    type: int
    default: 3306
  login_unix_socket:
    description:
      - Path of the server's unix socket. When set, O(login_host) and
        O(login_port) are not used.
    type: path
  config_file:
    description:
      - A client option file whose C([client]) group supplies the login settings
        that are not given as options (C(user), C(password), C(host), C(socket),
        C(ssl-ca), ...).
      - Read only if it exists.
    type: path
    default: ~/.my.cnf
  connect_timeout:
    description:
      - Seconds to wait for the connection to the server to be established.
    type: int
    default: 30
  login_ssl_ca:
    description:
      - CA certificate file to verify the server's certificate with. Setting it
        turns on TLS for the login connection and the check of the certificate
        chain (not of the host name).
    type: path
  login_ssl_cert:
    description:
      - Client certificate file for the login connection. Setting it turns on TLS.
    type: path
  login_ssl_key:
    description:
      - Private key file of O(login_ssl_cert).
    type: path
requirements:
  - PyMySQL (Python package) on the host the module runs on.
notes:
  - Connection errors fail the task with the server's own message
    (for example C(Access denied for user ...) or C(Can't connect to ...)).
'''
