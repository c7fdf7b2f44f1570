"""Monitoring: Prometheus scrapes every tier, and alerts reach the lab's
receiver (a webhook in the client container) when a web server's nginx or a
replica's replication stops, and resolve when they are back. The mysqld
exporters' query counters show reads on the replicas and writes on the
primary."""

import re
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
    "MySQLBackupFailed", "MySQLBackupTooOld", "MySQLBackupVerifyFailed", "MySQLBackupMissing",
}


def targets_up():
    return {(labels["job"], labels["instance"]): value for labels, value in prometheus_query("up")}


def every_target_up():
    up = targets_up()
    return all(up.get((job, host)) == 1.0 for job, hosts in TARGETS.items() for host in hosts)


def dropped(name):
    """Packets the host's firewall dropped (its own table's counter)."""
    out = docker("exec", container(name), "nft", "list", "counter", "inet", "distweb", "dropped").stdout
    return int(re.search(r"\bpackets (\d+)", out).group(1))


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
    assert len(expected) == 19 and set(up) == expected, f"not scraped: {sorted(expected - set(up))}, others: {sorted(set(up) - expected)}"
    assert all(up[key] == 1.0 for key in expected), {k: v for k, v in up.items() if v != 1.0}


def test_every_alert_rule_is_loaded():
    with session() as http:
        groups = http.get(f"{PROMETHEUS}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"] if rule["type"] == "alerting"]
    loaded = {rule["name"] for rule in rules}
    assert ALERTS <= loaded, f"missing: {sorted(ALERTS - loaded)}"
    assert all(rule["health"] == "ok" for rule in rules), [r["name"] for r in rules if r["health"] != "ok"]
    assert all(rule["annotations"].get("runbook") for rule in rules)


def test_the_backup_hosts_metrics_reach_prometheus():
    """The converge's first backup on the backup host (the first replica,
    server2): its textfile metrics are scraped, so the backup alerts see a
    good run, a fresh backup and a passed restore test."""
    def scraped():
        return {labels["instance"].split(":")[0]: value
                for labels, value in prometheus_query("distweb_mysql_backup_last_run_success")}
    wait_for(lambda: scraped() == {"server2": 1.0}, 120, interval=2, what="server2's backup metrics in Prometheus")
    age = prometheus_query("time() - distweb_mysql_backup_last_success_timestamp_seconds")
    limit = prometheus_query("distweb_mysql_backup_max_age_seconds")
    assert len(age) == 1 and 0 <= age[0][1] < limit[0][1], (age, limit)
    assert [value for _labels, value in prometheus_query("distweb_mysql_backup_last_verify_success")] == [1.0]


@pytest.mark.parametrize("host,port", [("server1", 9100), ("server1", 9104), ("server1", 9113),
                                       ("server1", 9180), ("lb1", 8405), ("monitor", 9090)])
def test_metrics_are_not_open_to_the_outside(host, port):
    address = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container(host)).stdout.strip()
    before = dropped(host)
    probe = client("timeout", "3", "bash", "-c", f"exec 3<>/dev/tcp/{address}/{port}")
    # 124: timed out, the firewall dropped it (not refused, not answered).
    assert probe.returncode == 124, f"{host}:{port} was not dropped for the client container: {probe.returncode} {probe.stderr}"
    assert dropped(host) > before, f"the packets to {host}:{port} were not counted as dropped"
    inside = docker("exec", container("monitor"), "curl", "-fsS", "-o", "/dev/null", f"http://{address}:{port}/metrics",
                    check=False)
    assert inside.returncode == 0, f"the monitoring host cannot scrape {host}:{port}: {inside.stderr}"


def test_the_apps_metrics_do_not_leak_through_the_site(client_ca):
    for path in ("/metrics", "/metrics/", "//metrics", "/metrics?x=1"):
        out = client("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", client_ca,
                     "--resolve", f"www.foobar.com:443:{VIP}", f"https://www.foobar.com{path}")
        assert out.stdout == "404", f"{path}: {out.stdout} {out.stderr}"


def raw_samples(name, command, until, seconds):
    """{instance: [(time, value)]}: every scraped sample of a mysqld exporter
    counter (e.g. Com_select) in the ``seconds`` before ``until``."""
    with session() as http:
        reply = http.get(f"{PROMETHEUS}/api/v1/query", timeout=10, params={
            "query": f'{name}{{job="mysqld",command="{command}"}}[{int(seconds)}s]', "time": until})
    reply.raise_for_status()
    return {item["metric"]["instance"]: [(float(t), float(v)) for t, v in item["values"]]
            for item in reply.json()["data"]["result"]}


def growth(samples, quiet_from, start, end):
    """How much a counter grew from the last scrape before ``start`` to the
    first after ``end``, less what it grows by without the load (its rate
    from ``quiet_from`` to ``start``: health checks, the exporter's own
    queries): (growth beyond the baseline, raw growth)."""
    quiet = [(t, v) for t, v in samples if t >= quiet_from]
    t0, v0 = [(t, v) for t, v in samples if t <= start][-1]
    t1, v1 = [(t, v) for t, v in samples if t >= end][0]
    tq, vq = quiet[0]
    assert t0 - tq >= 10, f"too short a quiet window: {t0 - tq}s"
    return v1 - v0 - (v0 - vq) / (t0 - tq) * (t1 - t0), v1 - v0


@pytest.fixture(scope="module")
def read_write_load():
    """The mysqld exporters' SELECT and INSERT counters of every node grown
    over a read and write load through the site, beyond what they grew
    before without it: (acknowledged writes, successful reads, {node: more
    SELECTs}, {node: more INSERTs})."""
    wait_for(every_target_up, 120, what="every scrape target up")
    quiet_from = time.time()
    time.sleep(25)  # the baseline: five scrapes without the load
    start = time.time()
    with WriteLoad(max_seconds=60) as writes, ReadLoad(path="/api/records?limit=1", workers=4, max_seconds=60) as reads:
        time.sleep(15)
    end = time.time()
    time.sleep(12)  # two scrapes later
    read_count = len(reads.attempts) - reads.failed
    write_count = len(writes.acknowledged)
    more = {}
    for command in ("select", "insert"):
        samples = raw_samples("mysql_global_status_commands_total", command, time.time(), time.time() - quiet_from + 10)
        more[command] = {n: growth(samples[n], quiet_from, start, end) for n in SERVERS}
    print(f"\nreads {read_count}, writes {write_count}; SELECTs per node beyond the baseline (raw) {more['select']}; "
          f"INSERTs per node {more['insert']}")
    return (write_count, read_count, {n: extra for n, (extra, dummy) in more["select"].items()},
            {n: raw for n, (dummy, raw) in more["insert"].items()})


def test_writes_go_to_the_primary(read_write_load):
    write_count, read_count, dummy, more_inserts = read_write_load
    assert read_count > 100 and write_count > 20, (read_count, write_count)
    # Every acknowledged write was an INSERT on the primary. MariaDB counts
    # the rows a replica applies from the primary as INSERTs too, so a
    # replica shows as many as the primary, never more: none came from the app.
    assert more_inserts["server1"] >= write_count
    assert all(more_inserts[n] <= more_inserts["server1"] for n in ("server2", "server3"))


def test_reads_go_to_the_replicas(read_write_load):
    dummy, read_count, more_selects, dummy2 = read_write_load
    assert read_count > 100, read_count
    # Beyond what every node sees without the load (health checks, the
    # exporter), the reads were SELECTs on the replicas; the primary saw
    # each write's SELECT @@last_gtid: far fewer than the reads.
    assert more_selects["server2"] + more_selects["server3"] >= 0.9 * read_count, more_selects
    assert more_selects["server1"] < 0.5 * read_count, more_selects


def test_reads_are_shared_by_both_replicas(read_write_load):
    dummy, read_count, more_selects, dummy2 = read_write_load
    assert read_count > 100, read_count
    # Both replicas serve reads (server3 too: it replicates again after
    # test_backends killed it), each more than the primary.
    assert min(more_selects["server2"], more_selects["server3"]) >= 0.25 * read_count, more_selects
    assert more_selects["server1"] < min(more_selects["server2"], more_selects["server3"]), more_selects


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
