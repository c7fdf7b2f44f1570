"""Monitoring: Prometheus scrapes every tier, and alerts reach the lab's
receiver (a webhook in the client container) when a web server's nginx or a
replica's replication stops, and resolve when they are back. The mysqld
exporters' query counters show reads on the replicas and writes on the
primary."""

import time

import pytest
from labclient import (
    DB_NODES,
    LOAD_BALANCERS,
    PROMETHEUS,
    VIP,
    ReadLoad,
    WriteLoad,
    client,
    container,
    docker,
    every_server_up,
    node_sql,
    prometheus_query,
    session,
    slave_status,
    wait_for,
    wait_for_alert,
)

SERVERS = list(DB_NODES)
HOSTS = [*LOAD_BALANCERS, *SERVERS, "monitor"]
# job -> the hosts Prometheus must scrape for it.
TARGETS = {
    "node": HOSTS,
    "mysqld": SERVERS,
    "nginx": SERVERS,
    "app": SERVERS,
    "haproxy": list(LOAD_BALANCERS),
    "prometheus": ["monitor"],
    "alertmanager": ["monitor"],
}
ALERTS = {
    "InstanceDown", "HAProxyServerDown", "HAProxyBackendAllDown", "MySQLReplicationStopped",
    "MySQLReplicationLag", "MySQLNoWritablePrimary", "MySQLSplitBrain", "MySQLSemiSyncAsync",
    "HAProxyHigh5xxRatio", "DiskAlmostFull", "DiskFillingUp", "TLSCertificateExpiringSoon",
}


def targets_up():
    return {(labels["job"], labels["instance"]): value for labels, value in prometheus_query("up")}


def every_target_up():
    up = targets_up()
    return all(up.get((job, host)) == 1.0 for job, hosts in TARGETS.items() for host in hosts)


def counter(name, command):
    """{instance: value} of a mysqld exporter counter, e.g. Com_select."""
    return {labels["instance"]: value
            for labels, value in prometheus_query(f'{name}{{job="mysqld",command="{command}"}}')}


def test_every_target_is_up():
    try:
        wait_for(every_target_up, 120, what="every scrape target up")
    except AssertionError as exc:
        down = sorted(key for key, value in targets_up().items() if value != 1.0)
        raise AssertionError(f"{exc}; down: {down}") from None
    up = targets_up()
    expected = {(job, host) for job, hosts in TARGETS.items() for host in hosts}
    assert expected <= set(up), f"not scraped: {sorted(expected - set(up))}"
    assert all(up[key] == 1.0 for key in expected), {k: v for k, v in up.items() if v != 1.0}


def test_every_alert_rule_is_loaded():
    with session() as http:
        groups = http.get(f"{PROMETHEUS}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"] if rule["type"] == "alerting"]
    loaded = {rule["name"] for rule in rules}
    assert ALERTS <= loaded, f"missing: {sorted(ALERTS - loaded)}"
    assert all(rule["health"] == "ok" for rule in rules), [r["name"] for r in rules if r["health"] != "ok"]
    assert all(rule["annotations"].get("runbook") for rule in rules)


@pytest.mark.parametrize("host,port", [("server1", 9100), ("server1", 9104), ("server1", 9113),
                                       ("server1", 9180), ("lb1", 8405), ("monitor", 9090)])
def test_metrics_are_not_open_to_the_outside(host, port):
    address = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container(host)).stdout.strip()
    probe = client("timeout", "3", "bash", "-c", f"exec 3<>/dev/tcp/{address}/{port}")
    assert probe.returncode != 0, f"{host}:{port} answers the client container"
    inside = docker("exec", container("monitor"), "curl", "-fsS", "-o", "/dev/null", f"http://{address}:{port}/metrics",
                    check=False)
    assert inside.returncode == 0, f"the monitoring host cannot scrape {host}:{port}: {inside.stderr}"


def test_the_apps_metrics_do_not_leak_through_the_site(client_ca):
    for path in ("/metrics", "/metrics/", "//metrics", "/metrics?x=1"):
        out = client("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", client_ca,
                     "--resolve", f"www.foobar.com:443:{VIP}", f"https://www.foobar.com{path}")
        assert out.stdout == "404", f"{path}: {out.stdout} {out.stderr}"


def test_reads_go_to_the_replicas_and_writes_to_the_primary():
    wait_for(every_target_up, 120, what="every scrape target up")
    selects, inserts = counter("mysql_global_status_commands_total", "select"), counter("mysql_global_status_commands_total", "insert")
    with WriteLoad(max_seconds=60) as writes, ReadLoad(path="/api/records?limit=1", workers=4, max_seconds=60) as reads:
        time.sleep(10)
    time.sleep(12)  # two scrapes later
    selects_after = counter("mysql_global_status_commands_total", "select")
    inserts_after = counter("mysql_global_status_commands_total", "insert")
    read_count = len(reads.attempts) - reads.failed
    write_count = len(writes.acknowledged)
    assert read_count > 100 and write_count > 20, (read_count, write_count)
    more_selects = {n: selects_after[n] - selects[n] for n in SERVERS}
    more_inserts = {n: inserts_after[n] - inserts[n] for n in SERVERS}
    print(f"reads {read_count}, writes {write_count}; SELECTs per node {more_selects}; INSERTs per node {more_inserts}")
    # Every acknowledged write was an INSERT on the primary. MariaDB counts
    # the rows a replica applies from the primary as INSERTs too, so a
    # replica shows as many as the primary, never more: none came from the app.
    assert more_inserts["server1"] >= write_count
    assert all(more_inserts[n] <= more_inserts["server1"] for n in ("server2", "server3"))
    # The reads were SELECTs on the replicas (both, or the one the router
    # still finds healthy). The primary saw only what every node sees (health
    # checks) and each write's SELECT @@last_gtid: far fewer than the reads.
    assert more_selects["server2"] + more_selects["server3"] >= 0.9 * read_count
    assert more_selects["server1"] < 0.5 * read_count


def test_a_stopped_nginx_raises_the_backend_alert_and_it_resolves():
    wait_for(every_server_up, 120, what="every web server UP on every load balancer")
    since = time.time()
    docker("exec", container("server2"), "systemctl", "stop", "nginx")
    try:
        for lb in LOAD_BALANCERS:
            fired = wait_for_alert("HAProxyServerDown", since=since, timeout=120, instance=lb, server="server2")
            print(f"HAProxyServerDown from {lb} at the receiver {fired - since:.1f}s after nginx stopped")
    finally:
        docker("exec", container("server2"), "systemctl", "start", "nginx")
    restarted = time.time()
    for lb in LOAD_BALANCERS:
        resolved = wait_for_alert("HAProxyServerDown", status="resolved", since=restarted, timeout=180,
                                  instance=lb, server="server2")
        print(f"resolved from {lb} {resolved - restarted:.1f}s after nginx started")
    wait_for(every_server_up, 120, what="every web server UP again")


def test_stopped_replication_raises_the_replication_alert():
    # server2: test_backends killed server3's container earlier.
    replica = "server2"
    status = slave_status(replica)
    assert status.get("Slave_SQL_Running") == "Yes" and status.get("Slave_IO_Running") == "Yes", status
    since = time.time()
    node_sql(replica, "STOP SLAVE")
    try:
        fired = wait_for_alert("MySQLReplicationStopped", since=since, timeout=120, instance=replica)
        print(f"MySQLReplicationStopped at the receiver {fired - since:.1f}s after STOP SLAVE")
    finally:
        node_sql(replica, "START SLAVE")
    restarted = time.time()
    wait_for(lambda: slave_status(replica).get("Slave_SQL_Running") == "Yes", 60, what=f"{replica} replicating again")
    wait_for_alert("MySQLReplicationStopped", status="resolved", since=restarted, timeout=180, instance=replica)
