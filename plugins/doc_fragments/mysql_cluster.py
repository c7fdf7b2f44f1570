# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class ModuleDocFragment(object):

    # Options shared by the cluster modules (mysql_failover, mysql_switchover,
    # mysql_rejoin), which log in to several nodes from the control node and
    # point replicas at a primary; they match mysql_cluster_argument_spec()
    # and replication_argument_spec() in plugins/module_utils/mysql_cluster.py.
    DOCUMENTATION = r'''
options:
  login_user:
    description:
      - Administrative account to log in to every database node with.
    type: str
  login_password:
    description:
      - Password of O(login_user).
    type: str
  login_ssl_ca:
    description:
      - CA certificate file on the control node to verify the nodes'
        certificates with. Setting it turns on TLS for the logins and the
        check of the certificate chain (not of the host name).
    type: path
  login_ssl_cert:
    description:
      - Client certificate file for the logins. Setting it turns on TLS.
    type: path
  login_ssl_key:
    description:
      - Private key file of O(login_ssl_cert).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection to a node. A node that cannot be
        reached in that time counts as unreachable.
      - Statements wait at most three times as long (at least 10 seconds) for
        an answer, so a node that hangs cannot hang the operation.
    type: int
    default: 5
  replication_user:
    description:
      - Replication account replicas log in to their primary with (needs
        C(REPLICATION SLAVE) there).
    type: str
    required: true
  replication_password:
    description:
      - Password of O(replication_user).
    type: str
    required: true
  replication_ssl:
    description:
      - Replicate over TLS (C(MASTER_SSL=1) / C(SOURCE_SSL=1)).
      - Sent on every C(CHANGE MASTER TO), so V(false) turns TLS off on a
        re-pointed replica that had it.
    type: bool
    default: false
  replication_ssl_ca:
    description:
      - CA certificate file on the replica hosts to verify the primary with
        (C(MASTER_SSL_CA)). Not set means left as it is.
    type: path
  replication_ssl_verify_server_cert:
    description:
      - Verify the primary's certificate and that it names its replication
        host (C(MASTER_SSL_VERIFY_SERVER_CERT)). Needs O(replication_ssl=true).
    type: bool
    default: false
  replication_heartbeat_period:
    description:
      - Seconds between heartbeats from the primary (C(MASTER_HEARTBEAT_PERIOD)),
        keep it below C(slave_net_timeout).
    type: float
    default: 1.0
  replication_connect_retry:
    description:
      - Seconds between reconnection attempts of the IO threads
        (C(MASTER_CONNECT_RETRY)).
    type: int
    default: 10
'''

    # The node list of the modules acting on the whole cluster
    # (mysql_failover, mysql_switchover); matches cluster_node_options().
    NODES = r'''
options:
  nodes:
    description:
      - Every node of the cluster, the primary included (for a failover, the
        failed one).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the node, unique; the other options and the results name
            nodes by it.
        type: str
        required: true
      host:
        description:
          - Host name or address the control node logs in to.
        type: str
        required: true
      port:
        description:
          - TCP port of the node.
        type: int
        default: 3306
      replication_host:
        description:
          - Host name or address the other nodes replicate from this node
            with, when it differs from O(nodes[].host). Also used to tell which
            node a replica replicates from.
        type: str
      replication_port:
        description:
          - Port the other nodes replicate from this node with (default
            O(nodes[].port)).
        type: int
'''
