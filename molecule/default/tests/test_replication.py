"""Replication you can trust, on real servers: a replica added to the live
cluster under a bounded write load holds every acknowledged row
(pt-table-checksum finds no difference), a re-run and a check-mode run change
nothing, and the replication module refuses what it must refuse."""

import os
import pathlib
import re
import secrets
import shutil
import subprocess
import time

import pytest
from conftest import PRIMARY, changed_per_host, lab_host, rows, sql
from labclient import INVENTORY, LAB, PROJECT, WriteLoad, lab_secret, playbook, run, table_checksum

SCENARIO = pathlib.Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
ALL_REPLICAS = ["server2", "server3", "server4"]


def ansible(host, module, module_args):
    return run("ansible", "-i", str(INVENTORY), host, "-m", module, "-a", module_args, timeout=300)


@pytest.fixture(scope="module")
def added_replica():
    """server4 joins the running cluster (site.yml re-run) under write load."""
    extra = INVENTORY / "add_replica.yml"
    subprocess.run(["docker", "rm", "-f", f"{LAB}-server4"], capture_output=True, check=False)
    shutil.copy(SCENARIO / "inventory" / "add_replica.yml", extra)
    try:
        created = playbook(str(PROJECT / "molecule" / "resources" / "lab_create.yml"))
        assert created.returncode == 0, created.stdout[-3000:]
        with WriteLoad() as load:
            time.sleep(3)  # the load is flowing before the new node is touched
            converge = playbook("site.yml")
            time.sleep(3)
        assert converge.returncode == 0, converge.stdout[-5000:] + converge.stderr[-2000:]
        yield {"load": load, "converge": converge}
    finally:
        extra.unlink(missing_ok=True)


def test_the_new_replica_was_seeded_while_writes_flowed(added_replica):
    load, out = added_replica["load"], added_replica["converge"].stdout
    assert "Seed from a consistent snapshot of the primary" in out
    assert re.search(r"Dump the primary at a consistent GTID position\] \*+\nchanged: \[server4", out), out[-3000:]
    assert len(load.acknowledged) >= 50, "the write load did not run during the join"
    assert load.failed == 0, f"{load.failed} writes failed while the replica joined"


def test_the_new_replica_replicates_over_tls_with_gtid(added_replica):
    status = lab_host("server4").check_output("mariadb -e 'SHOW SLAVE STATUS\\G'")
    for line in ("Slave_IO_Running: Yes", "Slave_SQL_Running: Yes", "Using_Gtid: Slave_Pos",
                 "Master_SSL_Allowed: Yes", "Master_SSL_Verify_Server_Cert: Yes"):
        assert line in status, status
    assert rows("server4", "SELECT @@read_only") == [["1"]]


def test_every_acknowledged_write_is_on_every_replica(added_replica):
    load = added_replica["load"]
    position = rows(PRIMARY, "SELECT @@gtid_binlog_pos")[0][0]
    ids = ",".join(str(i) for i, _value in load.acknowledged)
    for name in ALL_REPLICAS:
        assert rows(name, f"SELECT MASTER_GTID_WAIT('{position}', 60)") == [["0"]], name
        found = rows(name, f"SELECT COUNT(*) FROM foobar.records WHERE id IN ({ids})")
        assert found == [[str(len(load.acknowledged))]], f"{name} lacks acknowledged writes"


def test_pt_table_checksum_finds_no_difference(added_replica):
    code, report, lines, diffs = table_checksum(PRIMARY, ALL_REPLICAS)
    assert "no slaves were found" not in report.lower() and "no replicas" not in report.lower(), report
    assert code == 0, report
    assert lines, report
    assert all(fields[2] == "0" for fields in lines), report  # the DIFFS column
    assert diffs == {name: 0 for name in ALL_REPLICAS}, report


def test_a_second_run_changes_nothing(added_replica):
    result = playbook("site.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    changed = changed_per_host(result.stdout)
    assert "server4" in changed
    assert changed == dict.fromkeys(changed, 0), changed


def test_check_mode_on_the_grown_cluster_reports_no_change(added_replica):
    result = playbook("site.yml", "--check")
    assert result.returncode == 0, result.stdout[-3000:]
    changed = changed_per_host(result.stdout)
    assert "server4" in changed
    assert changed == dict.fromkeys(changed, 0), changed


def _module_on_server3(extra):
    return ansible(
        "server3",
        "distweb.infra.mysql_replication",
        "login_unix_socket=/run/mysqld/mysqld.sock primary_user=repl primary_ssl=true "
        "primary_ssl_ca=/etc/mysql/tls/ca.crt " + extra,
    )


def _replication_source(name):
    status = lab_host(name).check_output("mariadb -e 'SHOW SLAVE STATUS\\G'")
    return re.search(r"Master_Host: (\S+)", status).group(1)


def test_the_module_refuses_bad_credentials_and_changes_nothing(added_replica):
    before = _replication_source("server3")
    result = _module_on_server3(f"primary_host={LAB}-{PRIMARY} primary_password=wrong-{secrets.token_hex(4)}")
    assert result.returncode != 0
    assert "Access denied" in result.stdout, result.stdout[-2000:]
    assert _replication_source("server3") == before


def _replication_password():
    return lab_secret("mysql_replication")


def test_the_module_refuses_a_read_only_target(added_replica):
    result = _module_on_server3(f"primary_host={LAB}-server2 primary_password={_replication_password()}")
    assert result.returncode != 0
    assert "read_only" in result.stdout or "read-only" in result.stdout, result.stdout[-2000:]
    assert _replication_source("server3") == f"{LAB}-{PRIMARY}"


def test_the_module_refuses_to_point_a_replica_at_itself(added_replica):
    result = _module_on_server3(f"primary_host={LAB}-server3 primary_password={_replication_password()}")
    assert result.returncode != 0
    assert "itself" in result.stdout, result.stdout[-2000:]
    assert _replication_source("server3") == f"{LAB}-{PRIMARY}"


def test_the_module_refuses_a_primary_it_cannot_reach(added_replica):
    # lb1 runs no database server: the connection is refused inside the lab.
    result = _module_on_server3(f"primary_host={LAB}-lb1 primary_password=x connect_timeout=3")
    assert result.returncode != 0
    assert "Can't connect" in result.stdout or "connect" in result.stdout.lower(), result.stdout[-2000:]
    assert _replication_source("server3") == f"{LAB}-{PRIMARY}"


def test_check_and_diff_mode_show_a_change_without_making_it(added_replica):
    password = _replication_password()
    result = run(
        "ansible", "-i", str(INVENTORY), "server3", "-m", "distweb.infra.mysql_replication",
        "-a",
        f"login_unix_socket=/run/mysqld/mysqld.sock primary_host={LAB}-{PRIMARY} primary_user=repl "
        f"primary_password={password} primary_ssl=true primary_ssl_ca=/etc/mysql/tls/ca.crt "
        "primary_ssl_verify_server_cert=true primary_heartbeat_period=7",
        "--check", "--diff",
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert "CHANGED" in result.stdout, result.stdout[-2000:]
    assert "heartbeat" in result.stdout.lower()
    assert password not in result.stdout and password not in result.stderr
    heartbeat = rows("server3", "SHOW GLOBAL STATUS LIKE 'Slave_heartbeat_period'")[0][1]
    assert float(heartbeat) == 1.0, "check mode changed the replica"


def test_a_broken_replica_is_rebuilt_by_one_playbook_run(added_replica):
    # Break server4: a write of its own (errant) and replication pointed at a
    # position the primary never had, so its IO thread fails.
    sql("server4", "CREATE DATABASE IF NOT EXISTS broken_replica_probe")
    sql("server4", "STOP SLAVE; SET GLOBAL gtid_slave_pos='0-1-999999999'; START SLAVE")
    time.sleep(2)
    assert "Slave_IO_Running: Yes" not in lab_host("server4").check_output("mariadb -e 'SHOW SLAVE STATUS\\G'")

    result = playbook("playbooks/rebuild_replica.yml", "-e", "rebuild_replica_host=server4")
    assert result.returncode == 0, result.stdout[-4000:]

    status = lab_host("server4").check_output("mariadb -e 'SHOW SLAVE STATUS\\G'")
    assert "Slave_IO_Running: Yes" in status and "Slave_SQL_Running: Yes" in status, status
    assert rows("server4", "SHOW DATABASES LIKE 'broken_replica_probe'") == []
    # Its binary log holds nothing but what it replicated since the rebuild.
    binlog_pos = rows("server4", "SELECT @@gtid_binlog_pos")
    assert binlog_pos in ([], rows("server4", "SELECT @@gtid_slave_pos")), "the rebuilt replica has GTIDs of its own"
    position = rows(PRIMARY, "SELECT @@gtid_binlog_pos")[0][0]
    assert rows("server4", f"SELECT MASTER_GTID_WAIT('{position}', 60)") == [["0"]]
    assert rows("server4", "SELECT COUNT(*) FROM foobar.records") == rows(PRIMARY, "SELECT COUNT(*) FROM foobar.records")


def test_the_rebuild_playbook_refuses_the_primary(added_replica):
    result = playbook("playbooks/rebuild_replica.yml", "-e", f"rebuild_replica_host={PRIMARY}")
    assert result.returncode != 0
    flat = " ".join((result.stdout + result.stderr).split())
    assert "rebuild_replica_host to one host of the db_replicas group" in flat, result.stdout[-2000:]
    assert rows(PRIMARY, "SELECT @@read_only") == [["0"]]
