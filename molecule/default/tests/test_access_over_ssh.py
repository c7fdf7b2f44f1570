"""The default scenario reaches its nodes as real hosts: over SSH, as the
account deploy with the lab's key and sudo (molecule/resources/lab_create.yml,
inventories/lab/group_vars/all/lab.yml). Molecule's converge and idempotence
steps ran that way with the firewall on; here: SSH answers the control node
only (the client container outside the cluster is dropped), passwords and
root are refused, and a switchover and back runs over SSH through the
firewall, losing no acknowledged write. This module runs before the others
(file order), on the seed cluster."""

import json
import re

import pytest
from conftest import PRIMARY, SERVERS, lab_host
from labclient import (
    INVENTORY,
    LAB,
    SUBNET,
    WriteLoad,
    assert_stored_once,
    client,
    docker,
    flat,
    output,
    playbook,
    run,
    secrets_dir,
    slave_status,
    wait_for,
    wait_for_gtid,
    writable_nodes,
)

NODES = ["lb1", *SERVERS]
OCTETS = {"lb1": 10, "server1": 11, "server2": 12, "server3": 13}
CONTROL_NODE = f"{SUBNET}.1"  # the lab network's gateway: this machine as the nodes see it
SSH_DIR = secrets_dir() / "ssh"


def address(name):
    return f"{SUBNET}.{OCTETS[name]}"


def ssh_from_here(name, user, *command, extra=()):
    """ssh from the control node with the lab's key and known_hosts (host key checked)."""
    return run("ssh", "-i", str(SSH_DIR / "id_ed25519"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
               "-o", f"UserKnownHostsFile={SSH_DIR / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
               "-o", "ConnectTimeout=5", *extra, f"{user}@{address(name)}", *command, timeout=60)


def ad_hoc(module_args, *flags):
    """{host: (rc, stdout)} of an ad-hoc command on every node, through the scenario's inventory."""
    result = run("ansible", "-i", str(INVENTORY), "all", "-m", "ansible.builtin.command", "-a", module_args, *flags,
                 env={"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"},
                 timeout=300)
    assert result.stdout.lstrip().startswith("{"), result.stdout[-3000:] + result.stderr[-2000:]
    hosts = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]
    assert set(hosts) >= set(NODES), hosts
    return {name: (outcome.get("rc"), outcome.get("stdout", "").strip()) for name, outcome in hosts.items()}


def dropped(name):
    """Packets the node's firewall has dropped so far."""
    out = docker("exec", f"{LAB}-{name}", "nft", "list", "counter", "inet", "distweb", "dropped").stdout
    return int(re.search(r"packets (\d+)", out)[1])


def test_ansible_logs_in_as_deploy_over_ssh_from_the_control_node():
    # The login user, without become; SSH_CLIENT names the address sshd saw.
    login = ad_hoc("sh -c 'echo $(id -un) $SSH_CLIENT'", "-e", "ansible_become=false")
    for name in NODES:
        rc, out = login[name]
        assert rc == 0 and out.split()[:2] == ["deploy", CONTROL_NODE], (name, login[name])
    # Every task runs as root through sudo.
    became = ad_hoc("id -u")
    assert {name: became[name] for name in NODES} == dict.fromkeys(NODES, (0, "0")), became


@pytest.mark.parametrize("name", NODES)
def test_the_node_is_a_real_ssh_host(name):
    node = lab_host(name)
    deploy = node.user("deploy")
    assert deploy.exists and deploy.shell == "/bin/bash"
    assert node.file("/home/deploy/.ssh/authorized_keys").mode == 0o600
    sudoers = node.file("/etc/sudoers.d/deploy")
    assert sudoers.mode == 0o440 and sudoers.content_string.strip() == "deploy ALL=(ALL:ALL) NOPASSWD: ALL"
    assert node.run("visudo -c").rc == 0
    assert node.service("ssh").is_running
    settings = dict(line.split(" ", 1) for line in node.check_output("sshd -T").splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no" and settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitrootlogin"] == "no"
    # the container made its own host key at first boot: the one the lab's known_hosts holds
    key = node.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
    known = (SSH_DIR / "known_hosts").read_text()
    assert f"{LAB}-{name},{address(name)} ssh-ed25519 {key}" in known


@pytest.mark.parametrize("name", NODES)
def test_ssh_answers_the_control_node_and_refuses_root_and_passwords(name):
    as_deploy = ssh_from_here(name, "deploy", "sudo", "-n", "id", "-u")
    assert as_deploy.returncode == 0 and as_deploy.stdout.strip() == "0", as_deploy.stderr
    as_root = ssh_from_here(name, "root", "true")
    assert as_root.returncode == 255 and "Permission denied (publickey)" in as_root.stderr, as_root.stderr
    # the server offers public keys only: a password is never asked for
    password = ssh_from_here(name, "deploy", "true", extra=("-o", "PubkeyAuthentication=no"))
    assert password.returncode == 255 and "Permission denied (publickey)." in password.stderr, password.stderr


def test_the_firewall_accepts_ssh_from_the_control_node_only():
    for name in NODES:
        chain = docker("exec", f"{LAB}-{name}", "nft", "list", "chain", "inet", "distweb", "input").stdout
        ssh_rules = [line.strip() for line in chain.splitlines() if "dport 22 " in line]
        assert len(ssh_rules) == 1, (name, chain)
        assert re.match(rf"ip saddr (\{{ )?{re.escape(CONTROL_NODE)}( \}})? tcp dport 22 accept", ssh_rules[0]), ssh_rules
        assert "policy drop;" in chain, (name, chain)
        rules = [line.strip() for line in chain.splitlines() if line.strip() not in ("", "}")]
        assert rules[-1] == 'counter name "dropped" drop', (name, chain)


@pytest.mark.parametrize("name", NODES)
def test_ssh_from_the_client_outside_is_dropped(name):
    before = dropped(name)
    # a real ssh client in the client container: the connection times out
    # (dropped), it is neither refused nor answered
    tried = client("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-o", "StrictHostKeyChecking=no",
                   "-o", "UserKnownHostsFile=/dev/null", f"deploy@{address(name)}", "true", timeout=30)
    assert tried.returncode == 255, tried
    assert "Connection timed out" in tried.stderr, tried.stderr
    assert dropped(name) > before


@pytest.fixture(scope="module")
def switched_over_and_back():
    """A switchover to server2 and back to server1, over SSH (the routers'
    sockets are reached through delegate_to with sudo), under a write load."""
    with WriteLoad(max_writes=20000, max_seconds=600) as load:
        wait_for(lambda: len(load.acknowledged) >= 20, 60, what="the write load to flow")
        there = playbook("playbooks/switchover.yml", "-e", "mysql_cluster_switchover_target=server2")
        primary_between = writable_nodes()
        back = playbook("playbooks/switchover.yml", "-e", f"mysql_cluster_switchover_target={PRIMARY}")
        count = len(load.acknowledged)
        wait_for(lambda: len(load.acknowledged) >= count + 20, 60, what="writes after the switchover back")
    return {"there": there, "between": primary_between, "back": back, "load": load}


def test_a_switchover_and_back_runs_over_ssh_and_loses_nothing(switched_over_and_back):
    run_there, run_back = switched_over_and_back["there"], switched_over_and_back["back"]
    assert run_there.returncode == 0, output(run_there)
    assert "server2 is ready in the database routers of: server1, server2, server3" in flat(run_there), output(run_there)
    assert switched_over_and_back["between"] == ["server2"]
    assert run_back.returncode == 0, output(run_back)
    assert f"{PRIMARY} is ready in the database routers of: server1, server2, server3" in flat(run_back), output(run_back)
    # the lab as it was: server1 the primary, the others its replicas, every write on every node
    assert writable_nodes() == [PRIMARY]
    position = docker("exec", f"{LAB}-{PRIMARY}", "mariadb", "-BNe", "SELECT @@gtid_binlog_pos").stdout.strip()
    for name in SERVERS:
        if name != PRIMARY:
            assert slave_status(name).get("Master_Host") == f"{LAB}-{PRIMARY}", name
            assert wait_for_gtid(name, position), name
        assert_stored_once(name, switched_over_and_back["load"])
