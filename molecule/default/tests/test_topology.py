"""The seed topology, verified from outside: balancing, failure of one web
server, replication of a write, replica safety, and the preflight."""

import json
import os
import re
import threading
import time

import pymysql
import pytest
from conftest import (
    PRIMARY,
    REPLICAS,
    SERVERS,
    assert_replicates_over_verified_tls,
    at_full_weight,
    back_at_full_weight,
    get,
    haproxy_server_states,
    lab_host,
    replicating_nodes,
    rows,
    served_by,
    sql,
)
from labclient import SITE, assert_lab_platform, lab_secret, playbook, secrets_dir, session, slave_status, wait_for, wait_for_gtid


def test_the_lab_runs_the_platform_it_was_started_for():
    assert_lab_platform(PRIMARY, "lb1")


def test_every_server_answers_in_equal_shares():
    # A server still in its slow start (after an earlier test's restart) takes a
    # smaller share by design; equal shares are the rule once every one is at full weight.
    wait_for(lambda: all(at_full_weight(name) for name in SERVERS), what="all backends UP at full weight")
    statuses, counts = served_by(30)
    assert statuses == [200] * 30
    assert counts == {name: 10 for name in SERVERS}


def test_nginx_serves_static_files_itself():
    r = get("/static/style.css")
    assert r.status_code == 200
    assert r.headers.get("Content-Type", "").startswith("text/css"), r.headers
    assert r.content, "an empty style sheet"
    assert "X-Served-By" not in r.headers  # answered by nginx, not proxied to the app


def test_health_reports_the_database():
    for _attempt in SERVERS:
        r = get("/health")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "ok"
        assert body["database"]["primary"] is True


def test_a_stopped_nginx_loses_no_request_and_gets_its_share_back():
    victim = lab_host("server2")
    victim.run_expect([0], "systemctl stop nginx")
    try:
        statuses, counts = served_by(30)
        assert statuses == [200] * 30, "a request failed while nginx was down on server2"
        assert "server2" not in counts
        assert sum(counts.values()) == 30
        wait_for(lambda: haproxy_server_states().get("server2") == "DOWN", what="server2 DOWN")
    finally:
        victim.run_expect([0], "systemctl start nginx")
    # Back, then out of its slow start (haproxy_slowstart) at full weight.
    back_at_full_weight("server2")
    # At full weight it can still stand behind the others in HAProxy's
    # weighted round robin for a few rounds (a CI run saw 14/13/3 in the
    # first 30 requests after its slow start): its equal share must come
    # back within a minute, and every request meanwhile is answered.
    samples = []

    def equal_shares():
        samples.append(served_by(30))
        return samples[-1][1] == {name: 10 for name in SERVERS}

    wait_for(equal_shares, 60, interval=0, what="server2's equal share")
    assert all(statuses == [200] * 30 for statuses, _counts in samples), samples


def test_a_record_written_through_the_app_is_on_every_node():
    value = f"molecule-{time.time_ns()}"
    with session() as s:
        r = s.post(SITE + "/api/records", json={"value": value}, timeout=10)
    assert r.status_code == 201, r.text
    record = r.json()
    assert record["gtid"]
    for name in [PRIMARY, *REPLICAS]:
        if name != PRIMARY:
            waited = rows(name, f"SELECT MASTER_GTID_WAIT('{record['gtid']}', 30)")
            assert waited == [["0"]], f"{name} did not apply {record['gtid']}"
        found = rows(name, f"SELECT value FROM foobar.records WHERE id = {int(record['id'])}")
        assert found == [[value]], f"record {record['id']} missing on {name}"


def _admin_connect(name):
    """The lab's admin account (RELOAD, PROCESS) on one node, over TLS."""
    address = lab_host(name).check_output("hostname -i").split()[0]
    return pymysql.connect(host=address, user="distweb_admin", password=lab_secret("mysql_admin"),
                           ssl={"ca": str(secrets_dir() / "pki" / "ca.crt")}, ssl_verify_identity=False,
                           connect_timeout=10, read_timeout=30, write_timeout=30, autocommit=True)


@pytest.fixture()
def lagging_replicas():
    """Every replica the app's routers could send a read to lags: a global
    read lock held on it stops its SQL thread from committing what it
    receives. Stopping the SQL thread would not do: the replica's health
    endpoint then fails it, the routers take it out, and reads go to the
    primary whether or not after_gtid works. With the lock its SQL thread
    still runs, so it stays a healthy replica (lag far under
    mysql_server_health_max_lag) that lacks the new rows. Yields
    {name: connection holding the lock}; the lock goes when the test ends."""
    locks = {}
    try:
        for name in replicating_nodes():
            locks[name] = _admin_connect(name)
            with locks[name].cursor() as cur:
                cur.execute("FLUSH TABLES WITH READ LOCK")
        assert set(REPLICAS) <= set(locks), locks
        yield locks
    finally:
        for conn in locks.values():
            try:
                with conn.cursor() as cur:
                    cur.execute("UNLOCK TABLES")
            finally:
                conn.close()
    position = rows(PRIMARY, "SELECT @@gtid_binlog_pos")[0][0]
    for name in locks:
        assert wait_for_gtid(name, position, timeout=60), f"{name} did not catch up after the lock"
        fields = slave_status(name)
        assert fields["Slave_IO_Running"] == "Yes" and fields["Slave_SQL_Running"] == "Yes", fields


def _write(s, value):
    r = s.post(SITE + "/api/records", json={"value": value}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_caller_reads_its_own_write_while_the_replicas_lag(lagging_replicas):
    value = f"read-your-write-{time.time_ns()}"
    with session() as s:
        record = _write(s, value)
        assert record["gtid"]
        for name in lagging_replicas:
            assert rows(name, f"SELECT COUNT(*) FROM foobar.records WHERE id = {int(record['id'])}") == [["0"]], name
        # Without after_gtid the read goes to a replica, which lacks the row:
        # what a caller would get if after_gtid were ignored.
        plain = s.get(f"{SITE}/api/records/{record['id']}", timeout=30)
        assert plain.status_code == 404, plain.text
        assert plain.json()["source"].startswith("replica:"), plain.text
        # With it, the replica waits read_your_write_timeout for the GTID,
        # cannot get there, and the primary serves the read.
        back = s.get(f"{SITE}/api/records/{record['id']}", params={"after_gtid": record["gtid"]}, timeout=30)
    assert back.status_code == 200, back.text
    assert back.json()["value"] == value
    assert back.json()["source"] == "primary", back.text


def test_a_read_after_gtid_waits_for_a_replica_that_catches_up(lagging_replicas):
    value = f"read-your-write-{time.time_ns()}"
    with session() as s:
        record = _write(s, value)
    answer = {}

    def read_back():
        with session() as s:
            answer["r"] = s.get(f"{SITE}/api/records/{record['id']}", params={"after_gtid": record["gtid"]}, timeout=60)

    reader = threading.Thread(target=read_back, daemon=True)
    reader.start()

    def waiting():
        for conn in lagging_replicas.values():
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE %s",
                            (f"%MASTER_GTID_WAIT('{record['gtid']}'%",))
                if cur.fetchone()[0]:
                    return True
        return False

    try:
        # A replica is in MASTER_GTID_WAIT for the caller's write: let it apply.
        wait_for(waiting, timeout=30, interval=0.01, what="the read to wait on a replica")
    finally:
        for conn in lagging_replicas.values():
            with conn.cursor() as cur:
                cur.execute("UNLOCK TABLES")
        reader.join(timeout=90)
    back = answer["r"]
    assert back.status_code == 200, back.text
    assert back.json()["value"] == value
    assert back.json()["source"].startswith("replica:"), back.text


def test_replicas_are_read_only_and_replicate_with_gtid_over_verified_tls():
    for name in REPLICAS:
        assert rows(name, "SELECT @@read_only") == [["1"]]
        assert_replicates_over_verified_tls(name)
    assert rows(PRIMARY, "SELECT @@read_only") == [["0"]]
    assert slave_status(PRIMARY) == {}


def _app_credentials():
    config = json.loads(lab_host("server2").file("/etc/foobar/foobar.json").content_string)
    return config["database"]["user"], config["database"]["password"]


def test_app_user_cannot_write_on_a_replica_and_has_no_super():
    user, password = _app_credentials()
    value = f"must-fail-{time.time_ns()}"
    for name in REPLICAS:
        address = lab_host(name).check_output("hostname -i").split()[0]
        denied = sql(
            name,
            f"INSERT INTO foobar.records (value, server) VALUES ('{value}', 'test')",
            user=user,
            password=password,
            host=address,
            check=False,
        )
        assert denied.rc != 0
        # Logged in, and refused for read_only (not for a password or a grant).
        assert "ERROR 1290" in denied.stderr and "--read-only" in denied.stderr, denied.stderr
        assert rows(name, f"SELECT COUNT(*) FROM foobar.records WHERE value = '{value}'") == [["0"]], name
    # Every account of that name, on every node: nothing global beyond
    # login, and what it has on its own database only.
    for name in [PRIMARY, *REPLICAS]:
        hosts = [host for (host,) in rows(name, f"SELECT host FROM mysql.user WHERE user = '{user}'")]
        assert hosts, f"{name} has no account {user}"
        for host in hosts:
            grants = [re.sub(r" IDENTIFIED BY PASSWORD '[^']*'", "", grant)  # no hash in a message
                      for (grant,) in rows(name, f"SHOW GRANTS FOR '{user}'@'{host}'")]
            on_all = [grant for grant in grants if " ON *.* " in grant]
            assert len(on_all) == 1 and on_all[0].startswith("GRANT USAGE ON *.* TO"), (name, host, grants)
            others = [grant for grant in grants if grant not in on_all]
            assert others and all(" ON `foobar`." in grant for grant in others), (name, host, grants)
            assert not any(word in grant for grant in grants for word in ("SUPER", "READ_ONLY ADMIN")), grants


def test_a_bad_variable_stops_the_run_before_any_host_changes():
    lb = lab_host("lb1")
    before = lb.file("/etc/haproxy/haproxy.cfg").sha256sum
    run = playbook(os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "site.yml"), "-e", "haproxy_balance=bogus")
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "haproxy_balance" in out and "roundrobin, leastconn, source, cookie" in out, out[-3000:]
    recap = out[out.index("PLAY RECAP"):]
    assert "changed=0" in recap and all(
        "changed=0" in line for line in recap.splitlines() if "ok=" in line
    ), recap
    # Only the preflight play ran, and it ran checks only: no role touched any
    # host. The lab's CA and certificates are made there too, on the control
    # node only (distweb.infra.pki delegates every task to localhost), so that
    # the roles' checks can read them.
    assert out.count("PLAY [") == 1, out[-3000:]
    tasks = re.findall(r"^TASK \[((?:[\w.]+ : )?)([^\]]*)\]", out, re.M)
    assert tasks, out[-3000:]
    not_checks = [
        name for role, name in tasks
        if role != "distweb.infra.pki : "
        and not name.startswith(("Gathering Facts", "Check", "Validating arguments", "Read the", "Make the private CA"))
    ]
    assert not not_checks, f"the preflight ran tasks that are not checks: {not_checks}"
    assert lb.file("/etc/haproxy/haproxy.cfg").sha256sum == before
