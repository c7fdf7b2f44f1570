"""distweb.infra.mysql_replication_info against the real cluster: roles,
GTID positions, semi-sync state (and a fall back to async), errant
transactions."""

import json
import subprocess
import time

from conftest import PRIMARY, REPLICAS, rows, sql
from labclient import INVENTORY, LAB, run

SOCKET = "login_unix_socket=/run/mysqld/mysqld.sock"


def info(host, extra=""):
    result = run(
        "ansible", "-i", str(INVENTORY), host, "-m", "distweb.infra.mysql_replication_info",
        "-a", f"{SOCKET} {extra}", env={"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-1000:]
    plays = json.loads(result.stdout)["plays"]
    return plays[0]["tasks"][0]["hosts"][host]


def test_roles_positions_and_semi_sync_of_a_healthy_cluster():
    # Nothing writes while the module reads, so the positions it reports
    # must be the servers' own, read here the same way.
    primary = info(PRIMARY)
    assert primary["role"] == "primary" and primary["read_only"] is False
    assert primary["gtid"]["binlog"] == rows(PRIMARY, "SELECT @@global.gtid_binlog_pos")[0][0]
    assert primary["gtid"]["binlog"], "the primary reports no binlog position"
    assert primary["semi_sync"]["source_enabled"] is True and primary["semi_sync"]["source_status"] is True
    assert primary["semi_sync"]["fallen_back_to_async"] is False
    assert primary["semi_sync"]["wait_point"] == "AFTER_SYNC"
    # never falls back (mysql_server_lossless), and only the primary is a
    # semi-sync source
    assert primary["semi_sync"]["lossless"] is True, primary["semi_sync"]
    replicas = _all_replicas()
    assert primary["semi_sync"]["clients"] == len(replicas), primary["semi_sync"]
    assert sorted(r["host"] for r in primary["replicas"]) == sorted(f"{LAB}-{name}" for name in replicas), primary["replicas"]
    for name in REPLICAS:
        replica = info(name)
        assert replica["role"] == "replica" and replica["read_only"] is True
        assert replica["replication"]["io_running"] is True and replica["replication"]["sql_running"] is True
        assert replica["replication"]["source_host"] == f"{LAB}-{PRIMARY}"
        assert replica["gtid"]["slave_pos"] == rows(name, "SELECT @@global.gtid_slave_pos")[0][0]
        # Caught up: what it applied is what the primary wrote.
        assert replica["gtid"]["slave_pos"] == primary["gtid"]["binlog"], (name, replica["gtid"])
        assert replica["gtid"]["received"] == primary["gtid"]["binlog"], (name, replica["gtid"])
        assert replica["semi_sync"]["source_enabled"] is False, (name, replica["semi_sync"])
        assert replica["semi_sync"]["replica_status"] is True, (name, replica["semi_sync"])


def test_errant_transactions_are_reported_against_the_primary():
    replica = "server3"
    primary_state = rows(PRIMARY, "SELECT @@gtid_binlog_state")[0][0]
    clean = info(replica, f"primary_gtid={primary_state}")
    assert clean["errant"]["has_errant"] is False, clean["errant"]
    # A write made on the replica itself (as root, past read_only) is errant.
    sql(replica, "CREATE DATABASE IF NOT EXISTS errant_probe")
    try:
        server_id = rows(replica, "SELECT @@server_id")[0][0]
        own = [gtid for gtid in rows(replica, "SELECT @@global.gtid_binlog_pos")[0][0].split(",") if gtid.split("-")[1] == server_id]
        assert own, "the replica's write got no GTID of its own"
        dirty = info(replica, f"primary_gtid={primary_state}")
        assert dirty["errant"]["has_errant"] is True, dirty["errant"]
        # It names that write (domain-server_id-seq of the replica), nothing of the primary's.
        assert own[0] in dirty["errant"]["errant_transactions"], (own, dirty["errant"])
    finally:
        # Undo without adding more errant GTIDs: drop it with the binlog off,
        # then restore the replica's binlog state to the primary's history.
        sql(replica, "SET SESSION sql_log_bin=0; DROP DATABASE IF EXISTS errant_probe")
        slave_pos = rows(replica, "SELECT @@gtid_slave_pos")[0][0]
        sql(replica, f"STOP SLAVE; RESET MASTER; SET GLOBAL gtid_slave_pos='{slave_pos}'; START SLAVE")


def _all_replicas():
    """The inventory's replicas, plus server4 if test_replication added it."""
    names = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    return REPLICAS + (["server4"] if f"{LAB}-server4" in names.stdout.split() else [])


def test_a_fall_back_to_async_is_visible():
    # The lab's primary never falls back (mysql_server_lossless): a short
    # timeout is set by hand for this test, and the lab's put back after.
    replicas = _all_replicas()
    timeout = rows(PRIMARY, "SELECT @@global.rpl_semi_sync_master_timeout")[0][0]
    assert int(timeout) == 4294967295, timeout
    for name in replicas:
        sql(name, "STOP SLAVE IO_THREAD")
    sql(PRIMARY, "SET GLOBAL rpl_semi_sync_master_timeout = 500")
    try:
        sql(PRIMARY, "CREATE DATABASE IF NOT EXISTS semisync_probe")  # waits 0.5 s, then falls back
        state = info(PRIMARY)
        assert state["semi_sync"]["fallen_back_to_async"] is True, state["semi_sync"]
        assert state["semi_sync"]["source_status"] is False
    finally:
        sql(PRIMARY, f"SET GLOBAL rpl_semi_sync_master_timeout = {timeout}")
        for name in replicas:
            sql(name, "START SLAVE IO_THREAD")
        sql(PRIMARY, "DROP DATABASE IF EXISTS semisync_probe")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and info(PRIMARY)["semi_sync"]["fallen_back_to_async"]:
        # a further commit acknowledged by a caught-up replica turns it back on
        sql(PRIMARY, "CREATE DATABASE IF NOT EXISTS semisync_probe2; DROP DATABASE semisync_probe2")
        time.sleep(1)
    assert info(PRIMARY)["semi_sync"]["fallen_back_to_async"] is False
