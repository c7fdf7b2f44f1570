"""The seed topology, verified from outside: balancing, failure of one web
server, replication of a write, replica safety, and the preflight."""

import json
import os
import re
import time


from conftest import PRIMARY, REPLICAS, SERVERS, at_full_weight, get, haproxy_server_states, lab_host, rows, served_by, sql
from labclient import SITE, playbook, session, slave_status, wait_for


def test_every_server_answers_in_equal_shares():
    wait_for(lambda: set(haproxy_server_states().values()) == {"UP"}, what="all backends UP")
    statuses, counts = served_by(30)
    assert statuses == [200] * 30
    assert counts == {name: 10 for name in SERVERS}


def test_nginx_serves_static_files_itself():
    r = get("/static/style.css")
    assert r.status_code == 200
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
    wait_for(lambda: at_full_weight("server2"), what="server2 UP again at full weight")
    statuses, counts = served_by(30)
    assert statuses == [200] * 30
    assert counts == {name: 10 for name in SERVERS}


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


def test_a_caller_reads_its_own_write():
    with session() as s:
        r = s.post(SITE + "/api/records", json={"value": "read-your-write"}, timeout=10)
        assert r.status_code == 201
        record = r.json()
        back = s.get(f"{SITE}/api/records/{record['id']}", params={"after_gtid": record["gtid"]}, timeout=10)
    assert back.status_code == 200, back.text
    assert back.json()["value"] == "read-your-write"


def test_replicas_are_read_only_and_replicate_with_gtid():
    for name in REPLICAS:
        assert rows(name, "SELECT @@read_only") == [["1"]]
        fields = slave_status(name)
        assert fields["Slave_IO_Running"] == "Yes", fields.get("Last_IO_Error")
        assert fields["Slave_SQL_Running"] == "Yes", fields.get("Last_SQL_Error")
        assert fields["Using_Gtid"] == "Slave_Pos"
    assert rows(PRIMARY, "SELECT @@read_only") == [["0"]]


def _app_credentials():
    config = json.loads(lab_host("server2").file("/etc/foobar/foobar.json").content_string)
    return config["database"]["user"], config["database"]["password"]


def test_app_user_cannot_write_on_a_replica_and_has_no_super():
    user, password = _app_credentials()
    for name in REPLICAS:
        address = lab_host(name).check_output("hostname -i").split()[0]
        denied = sql(
            name,
            "INSERT INTO foobar.records (value, server) VALUES ('must-fail', 'test')",
            user=user,
            password=password,
            host=address,
            check=False,
        )
        assert denied.rc != 0
        assert "read-only" in denied.stderr or "1290" in denied.stderr, denied.stderr
    grants = rows(
        PRIMARY,
        "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES "
        f"WHERE GRANTEE LIKE '''{user}''@%'",
    )
    assert ["SUPER"] not in grants and ["READ_ONLY ADMIN"] not in grants
    assert grants == [["USAGE"]] * len(grants)  # global: nothing beyond login


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
