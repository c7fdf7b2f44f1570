"""The firewall per tier (nftables, the collection's own table), probed from
the client container outside the cluster: the site answers on the VIP, but
a web server's port 80 and every database node's MariaDB and health ports do
not, and what is dropped is counted. Inside, the tiers still talk, and
Docker's name resolution in every container still works."""

import re

import pytest
from labclient import DB_NODES, LOAD_BALANCERS, VIP, client, container, docker

SERVERS = list(DB_NODES)
# Every host of the cluster, each with the collection's firewall.
HOSTS = [*LOAD_BALANCERS, *SERVERS, "monitor"]


def tcp_probe(host, port, seconds=3):
    """Try a TCP connection from the client container to host:port: 0 when
    it opened, 124 when nothing answered within ``seconds`` (dropped), else
    the shell's error (refused, no route, no such name...)."""
    return client("timeout", str(seconds), "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}").returncode


def tcp_answers(host, port, seconds=3):
    """Does a TCP connection from the client container to host:port open?"""
    return tcp_probe(host, port, seconds) == 0


def assert_dropped(host, port):
    """A connection from the client container to host:port is silently
    dropped by host's firewall: it times out (it is not refused, and the name
    resolves), and host's drop counter grows."""
    before = dropped(host)
    assert tcp_probe(host, port) == 124, f"{host}:{port} did not time out: answered, refused or failed otherwise"
    assert dropped(host) > before, f"the packets to {host}:{port} were not counted as dropped"


def dropped(name):
    out = docker("exec", container(name), "nft", "list", "counter", "inet", "distweb", "dropped").stdout
    return int(re.search(r"\bpackets (\d+)", out).group(1))


def test_the_site_answers_on_the_vip_from_outside(client_ca):
    for scheme, port in (("http", 80), ("https", 443)):
        assert tcp_answers(VIP, port), f"{VIP}:{port} does not answer"
    out = client("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", client_ca, f"https://{VIP}/")
    assert out.stdout == "200", out.stdout + out.stderr


@pytest.mark.parametrize("server", SERVERS)
def test_a_web_server_does_not_answer_http_from_outside(server):
    assert_dropped(server, 80)


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("port", [3306, 9201, 4444])
def test_a_database_node_does_not_answer_from_outside(server, port):
    assert_dropped(server, port)


def test_load_balancers_reach_the_web_servers_and_app_servers_the_databases():
    for lb in LOAD_BALANCERS:
        for server in SERVERS:
            out = docker("exec", container(lb), "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                         "-H", "Host: www.foobar.com", f"http://{server}/health", check=False)
            assert out.stdout == "200", f"{lb} -> {server}: {out.stdout} {out.stderr}"
    for server in SERVERS:
        for peer in SERVERS:
            out = docker("exec", container(server), "timeout", "3", "bash", "-c", f"exec 3<>/dev/tcp/{peer}/3306",
                         check=False)
            assert out.returncode == 0, f"{server} cannot reach {peer}:3306"


@pytest.mark.parametrize("name", HOSTS)
def test_ssh_is_accepted_only_from_the_admin_network(name):
    gateway = VIP.rsplit(".", 1)[0] + ".1"  # firewall_admin_networks in the lab
    rules = docker("exec", container(name), "nft", "list", "table", "inet", "distweb").stdout
    ssh = [line.strip() for line in rules.splitlines() if re.search(r"\bdport 22\b", line)]
    assert len(ssh) == 1 and ssh[0].startswith(f"ip saddr {gateway} tcp dport 22 accept"), f"{name}: {ssh}"
    assert_dropped(name, 22)


def test_docker_name_resolution_still_works_in_every_container():
    for name in HOSTS:
        out = docker("exec", container(name), "getent", "hosts", "server1", check=False)
        assert out.returncode == 0 and out.stdout.split()[0] == f"{VIP.rsplit('.', 1)[0]}.11", f"{name}: {out.stdout} {out.stderr}"
        tables = docker("exec", container(name), "nft", "list", "tables").stdout.splitlines()
        assert "table inet distweb" in tables, f"{name}: {tables}"
