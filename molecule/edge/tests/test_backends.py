"""No failed request when a web server dies or is redeployed, through the
virtual IP from outside the cluster: GETs are retried on another server,
POSTs never sent twice; playbooks/rolling_deploy.yml takes one server out
at a time; server states survive a reload; the runtime API is local only."""

import collections
import re

import pytest
from labclient import (
    LOAD_BALANCERS,
    VIP_SITE,
    ReadLoad,
    WriteLoad,
    container,
    docker,
    every_server_up,
    haproxy_servers,
    node_sql,
    playbook,
    start_node,
    wait_for,
)

VICTIM = "server3"  # a replica: killing it costs the cluster no primary


def assert_every_write_stored_once(load):
    """Every acknowledged POST is stored exactly once: none was lost and
    none was replayed by a retry."""
    values = [value for _id, value in load.acknowledged]
    assert values, "no write was acknowledged"
    quoted = ",".join(f"'{v}'" for v in values)
    rows = node_sql("server1", f"SELECT value, COUNT(*) FROM foobar.records WHERE value IN ({quoted}) GROUP BY value")
    counts = {value: int(n) for value, n in rows}
    assert [v for v in values if counts.get(v) != 1] == [], "an acknowledged write is missing or stored twice"


@pytest.fixture(scope="module")
def backend_killed():
    """Kill VICTIM's container under a GET and a POST load through the VIP,
    keep the load on without it, then bring it back (before the next test)."""
    wait_for(every_server_up, 60, what="every server UP on both load balancers")
    with ReadLoad(site=VIP_SITE, workers=4, max_seconds=300) as reads, WriteLoad(site=VIP_SITE, max_seconds=300) as writes:
        wait_for(lambda: len(writes.acknowledged) >= 20 and len(reads.attempts) >= 100, 60, what="the load to flow")
        docker("kill", container(VICTIM))
        wait_for(lambda: all(haproxy_servers(lb)[VICTIM]["status"] == "DOWN" for lb in LOAD_BALANCERS), 30,
                 what=f"{VICTIM} DOWN on both load balancers")
        killed_reads, killed_writes = len(reads.attempts), len(writes.attempts)
        wait_for(lambda: len(reads.attempts) >= killed_reads + 200 and len(writes.attempts) >= killed_writes + 20, 60,
                 what="the load to go on without the dead server")
    print(f"\nbackend kill: GET {reads.failed} failed of {len(reads.attempts)}, "
          f"POST {writes.failed} failed of {len(writes.attempts)}; errors: {(reads.errors + writes.errors)[:5]}")
    start_node(VICTIM)
    wait_for(every_server_up, 180, what=f"{VICTIM} back at full weight")
    return reads, writes


def test_no_get_fails_when_a_web_server_dies(backend_killed):
    reads, dummy = backend_killed
    assert len(reads.attempts) >= 300
    assert reads.failed == 0, f"GETs failed while {VICTIM} died: {reads.errors[:5]}"
    assert set(reads.served_by) >= {"server1", "server2"}


def test_posts_are_counted_and_never_replayed(backend_killed):
    dummy, writes = backend_killed
    # A POST in flight on the dead server may fail (it is not sent again);
    # the count is reported above. Every acknowledged one is stored once.
    assert writes.failed <= len(writes.attempts)
    assert_every_write_stored_once(writes)


def test_rolling_deploy_fails_no_request():
    wait_for(every_server_up, 120, what="every server UP at full weight")
    with ReadLoad(site=VIP_SITE, workers=4, max_seconds=900) as reads, WriteLoad(site=VIP_SITE, max_seconds=900) as writes:
        wait_for(lambda: len(writes.acknowledged) >= 20, 60, what="the load to flow")
        result = playbook("playbooks/rolling_deploy.yml")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # Each server was drained and put back on both load balancers, one at a time.
    for server in ("server1", "server2", "server3"):
        for lb in LOAD_BALANCERS:
            assert re.search(rf"^changed: \[{server} -> {lb}\b", result.stdout, re.M), f"{server} was not drained on {lb}"
    print(f"\nrolling deploy: GET {reads.failed} failed of {len(reads.attempts)}, "
          f"POST {writes.failed} failed of {len(writes.attempts)}")
    assert len(reads.attempts) >= 300 and len(writes.attempts) >= 50
    assert reads.failed == 0, f"GETs failed during the rolling deploy: {reads.errors[:5]}"
    assert writes.failed == 0, f"POSTs failed during the rolling deploy: {writes.errors[:5]}"
    assert_every_write_stored_once(writes)
    assert set(reads.served_by) == {"server1", "server2", "server3"}
    assert every_server_up() or wait_for(every_server_up, 60, what="every server back")


def test_rolling_deploy_check_mode_drains_nothing():
    result = playbook("playbooks/rolling_deploy.yml", "--check")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    states = {lb: {name: row["status"] for name, row in haproxy_servers(lb).items()} for lb in LOAD_BALANCERS}
    assert states == {lb: {"server1": "UP", "server2": "UP", "server3": "UP"} for lb in LOAD_BALANCERS}


def test_a_drained_server_stays_drained_across_a_reload():
    lb = "lb1"

    def api(command):
        script = ("import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect('/run/haproxy/admin.sock');"
                  "s.sendall((sys.argv[1]+'\\n').encode());print(b''.join(iter(lambda: s.recv(65536), b'')).decode())")
        return docker("exec", container(lb), "python3", "-c", script, command).stdout

    api("set server web/server2 state drain")
    try:
        assert haproxy_servers(lb)["server2"]["status"] == "DRAIN"
        docker("exec", container(lb), "systemctl", "reload", "haproxy")
        wait_for(lambda: haproxy_servers(lb)["server1"]["status"] == "UP", 10, what="the new HAProxy process")
        assert haproxy_servers(lb)["server2"]["status"] == "DRAIN"
    finally:
        api("set server web/server2 state ready")
    wait_for(lambda: haproxy_servers(lb)["server2"]["status"] == "UP", 10, what="server2 ready again")


def test_the_runtime_api_is_a_local_socket_only():
    for lb in LOAD_BALANCERS:
        listening = docker("exec", container(lb), "ss", "-Hltn").stdout
        ports = collections.Counter(line.split()[3] for line in listening.splitlines())
        public = sorted(addr for addr in ports if not addr.startswith(("127.", "[::1]")))
        # The site on every address; on the host's own address only, the
        # metrics for the monitoring hosts (HAProxy's 8405, the node
        # exporter's 9100; test_monitoring checks that nobody else gets in).
        own = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container(lb)).stdout.strip()
        assert public == sorted(["0.0.0.0:443", "0.0.0.0:80", f"{own}:8405", f"{own}:9100"]), f"{lb} listens on {public}"
        mode = docker("exec", container(lb), "stat", "-c", "%a %U %G", "/run/haproxy/admin.sock").stdout.split()
        assert mode == ["660", "root", "haproxy"], mode
