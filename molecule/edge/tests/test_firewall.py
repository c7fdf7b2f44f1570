"""The firewall per tier (nftables, the collection's own table), probed from
the client container outside the cluster: the site answers on the VIP, but
a web server's port 80 and every database node's MariaDB and health ports do
not, and what is dropped is counted. Inside, the tiers still talk, and
Docker's name resolution in every container still works."""

import re

import pytest
from labclient import DB_NODES, LOAD_BALANCERS, VIP, client, container, docker

SERVERS = list(DB_NODES)


def tcp_answers(host, port, seconds=3):
    """Does a TCP connection from the client container to host:port open?"""
    probe = client("timeout", str(seconds), "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}")
    return probe.returncode == 0


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
    before = dropped(server)
    assert not tcp_answers(server, 80)
    assert dropped(server) > before, "the dropped packets were not counted"


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("port", [3306, 9201])
def test_a_database_node_does_not_answer_from_outside(server, port):
    assert not tcp_answers(server, port)


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


def test_ssh_is_accepted_only_from_the_admin_network():
    gateway = VIP.rsplit(".", 1)[0] + ".1"  # firewall_admin_networks in the lab
    for name in [*LOAD_BALANCERS, *SERVERS]:
        rules = docker("exec", container(name), "nft", "list", "table", "inet", "distweb").stdout
        ssh = [line.strip() for line in rules.splitlines() if "dport 22 " in line]
        assert len(ssh) == 1 and ssh[0].startswith(f"ip saddr {gateway} tcp dport 22 accept"), f"{name}: {ssh}"
    before = dropped("server1")
    assert not tcp_answers("server1", 22)
    assert dropped("server1") > before, "SSH from outside was not dropped"


def test_docker_name_resolution_still_works_in_every_container():
    for name in [*LOAD_BALANCERS, *SERVERS]:
        out = docker("exec", container(name), "getent", "hosts", "server1", check=False)
        assert out.returncode == 0 and out.stdout.split()[0].endswith(".11"), f"{name}: {out.stdout} {out.stderr}"
    tables = docker("exec", container("server1"), "nft", "list", "tables").stdout.split("\n")
    assert "table inet distweb" in tables
