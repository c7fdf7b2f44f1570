"""Replicas survive any crash and replicate again by themselves (issue 15),
on the failover scenario's lab once its failover cases have put it back
(server1 the primary, server2 and server3 its replicas).

Under the app's logged writes through the load balancer and a schema change
on the primary every 1.5 s, a replica's container is killed (SIGKILL to
every process in it: a power cut as the server sees it) in
DISTWEB_KILL_ROUNDS rounds (20 by default), turn about: at a random moment
of the writes, right after a DDL reached it, right after its last restart,
and while it applies a large transaction (labclient.crash_round). After each
start it must replicate again by itself, with no operator step; at the end
every node holds every acknowledged write exactly once, the schema is the
same everywhere and pt-table-checksum finds no difference.

The crash that used to stop a replica for good (a DDL binlogged and
applied, its GTID not yet in gtid_slave_pos) lies in a window that a kill
from outside hits only by luck, so one case puts a replica in exactly that
state on purpose (gtid_slave_pos moved back over a DDL that its binary log
holds) and requires the health endpoint's repair to restart it, without
applying the DDL twice.

The other crash inside a DDL (MariaDB's DDL recovery finishes, at the next
start, a DROP the replica was killed in, and binlogs it under the replica's
own server_id) is made wide on purpose: a DROP TABLE of many tables takes
the replica a second or two, and the container is killed once the tables
start to go. The repair must bring the replica back with every table
dropped and no GTID of its own left in its binary log (which a failover
would take for an errant write)."""

import os
import random
import time

import pytest
from labclient import (
    BULK_TABLE,
    DB_NODES,
    SchemaChanges,
    WriteLoad,
    assert_stored_once,
    container,
    crash_plan,
    crash_round,
    docker,
    drop_writer,
    first_apply_seconds,
    node_sql,
    prepare_crash_rounds,
    primary_position,
    repairs_logged,
    start_node,
    table_checksum,
    wait_for,
    wait_for_gtid,
    wait_until_caught_up,
    writable_nodes,
)

PRIMARY = "server1"
REPLICAS = [n for n in DB_NODES if n != PRIMARY]
ROUNDS = int(os.environ.get("DISTWEB_KILL_ROUNDS", "20"))


@pytest.fixture(scope="module")
def healthy_lab():
    assert writable_nodes() == [PRIMARY], "the failover cases did not leave server1 the primary"
    prepare_crash_rounds(PRIMARY)
    for name in REPLICAS:
        wait_until_caught_up(name, PRIMARY)
    yield
    drop_writer(PRIMARY)


def test_a_replica_a_crash_left_behind_its_binary_log_repairs_itself(healthy_lab):
    # The state a crash between a DDL's commit and its gtid_slave_pos update
    # leaves: the DDL applied and binlogged, gtid_slave_pos one behind. The
    # source sends the DDL again and the SQL thread stops on it (GTID strict
    # mode); the health endpoint's repair must move the position and start
    # replication, without running the DDL twice.
    name = REPLICAS[0]
    before = len(repairs_logged(name))
    changes = SchemaChanges(PRIMARY)
    gtid = changes.one()  # CREATE TABLE
    assert wait_for_gtid(name, gtid)
    domain, server_id, seq_no = (int(x) for x in gtid.split("-"))
    assert node_sql(name, "SELECT @@global.gtid_binlog_pos")[0][0] == gtid, "a write slipped in: try again"
    behind = f"{domain}-{server_id}-{seq_no - 1}"
    node_sql(name, f"STOP SLAVE; SET GLOBAL gtid_slave_pos = '{behind}'; START SLAVE")
    wait_for(lambda: len(repairs_logged(name)) > before, 30, what=f"{name}'s repair")
    wait_until_caught_up(name, PRIMARY)
    assert node_sql(name, "SELECT @@global.gtid_slave_pos")[0][0] == primary_position(PRIMARY)
    assert changes.schema(name) == changes.schema(PRIMARY) != []
    assert f"gtid_slave_pos {behind} -> {gtid}" in repairs_logged(name)[-1]


DROP_DB = "crash_drop"
DROP_TABLES = int(os.environ.get("DISTWEB_DROP_TABLES", "1500"))


def _tables_on_disk(name):
    out = docker("exec", container(name), "sh", "-c", f"ls /var/lib/mysql/{DROP_DB} | grep -c '\\.frm$'",
                 check=False).stdout.strip()
    return int(out or 0)


def _binlog_state(name):
    """A node's gtid_binlog_state as {(domain, server_id): seq_no}."""
    text = node_sql(name, "SELECT @@global.gtid_binlog_state")[0][0]
    return {tuple(int(x) for x in part.split("-")[:2]): int(part.split("-")[2]) for part in text.split(",") if part}


def test_a_replica_killed_inside_a_drop_that_ddl_recovery_finishes_repairs_itself(healthy_lab):
    name = REPLICAS[-1]
    before = len(repairs_logged(name))
    tables = [f"t{i}" for i in range(DROP_TABLES)]
    repaired, left_at_kill = [], []
    with WriteLoad(max_seconds=600) as load:
        wait_for(lambda: len(load.acknowledged) >= 20, 60, what="the write load to flow")
        # a kill that lands after the last table went needs no repair: again
        while not repaired and len(left_at_kill) < 3:
            ddl = "".join(f"CREATE TABLE {DROP_DB}.{t} (id INT PRIMARY KEY);" for t in tables)
            docker("exec", "-i", container(PRIMARY), "mariadb", input_text=f"CREATE DATABASE IF NOT EXISTS {DROP_DB};{ddl}")
            assert wait_for_gtid(name, primary_position(PRIMARY))
            # the DROP waits in the relay log until the SQL thread is started
            # again, so that the kill can watch the tables go
            node_sql(name, "STOP SLAVE SQL_THREAD")
            node_sql(PRIMARY, f"DROP TABLE {', '.join(f'{DROP_DB}.{t}' for t in tables)}")
            drop_gtid = primary_position(PRIMARY)
            node_sql(name, "START SLAVE SQL_THREAD")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                left = _tables_on_disk(name)
                if left < DROP_TABLES * 0.9:
                    break
            docker("kill", container(name))
            left_at_kill.append(left)
            start_node(name)
            # without the repair the replica stops here for good
            wait_until_caught_up(name, PRIMARY, timeout=120)
            repaired = [line for line in repairs_logged(name)[before:] if "after a crash in a DDL" in line]
        drop_applied = wait_for_gtid(name, drop_gtid)
    print(f"\ntables left when killed: {left_at_kill} of {DROP_TABLES}; repairs: {repaired}")
    assert repaired, f"no kill landed inside the DROP on {name} (tables left when killed: {left_at_kill})"
    assert "generated by ddl recovery" in repaired[-1] and "the source's DDL applied again" in repaired[-1]
    assert drop_applied
    # every table gone (the source's DROP ran again for those recovery had
    # not reached), on disk and in the server
    assert _tables_on_disk(name) == 0
    assert node_sql(name, f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DROP_DB}'") == [["0"]]
    # no GTID of the replica's own beyond what the primary has: nothing a
    # failover would take for an errant write
    primary_state = _binlog_state(PRIMARY)
    for key, seq_no in _binlog_state(name).items():
        assert key in primary_state and seq_no <= primary_state[key], (key, seq_no, primary_state)
    node_sql(PRIMARY, f"DROP DATABASE {DROP_DB}")
    for node in DB_NODES:
        assert_stored_once(node, load)
    assert load.failed <= len(left_at_kill), load.errors[:5]


def test_replicas_killed_at_any_moment_replicate_again(healthy_lab):
    rounds = []
    seed = int(os.environ.get("DISTWEB_KILL_SEED", time.time()))
    randomly = random.Random(seed)
    with WriteLoad(max_seconds=1800) as load, SchemaChanges(PRIMARY) as changes:
        wait_for(lambda: len(load.acknowledged) >= 20, 60, what="the write load to flow")
        for name, moment in crash_plan(REPLICAS, ROUNDS):
            result = crash_round(name, moment, PRIMARY, changes, randomly)
            rounds.append(dict(result, name=name, moment=moment))
            if result["error"]:
                break
            # its first new transaction after the restart: applied at once,
            # not held for acknowledgements a replica never gets
            rounds[-1]["first_apply"] = first_apply_seconds(PRIMARY, name)
    kills = sum(r["kills"] for r in rounds)
    broken = [f"round {i} ({r['name']}, killed {r['moment']}): {r['error']}" for i, r in enumerate(rounds) if r["error"]]
    print(f"\n{len(rounds)} rounds (seed {seed}), {kills} kills, broken replicas: {len(broken)}, "
          f"crash repairs: {sum(r['repairs'] for r in rounds)}, acknowledged writes: {len(load.acknowledged)}, "
          f"failed writes: {load.failed}, DDL statements: {len(changes.done)}")
    print("failed writes:", [e[1] for e in load.errors])
    print("seconds from start to caught up:", sorted(r["seconds"] for r in rounds))
    print("first transaction applied after a restart, seconds:", sorted(r.get("first_apply", 0) for r in rounds))
    assert broken == []
    assert len(rounds) == ROUNDS
    assert changes.errors == [] and len(changes.done) >= ROUNDS // 4
    # A replica down costs no write: the other one acknowledges. The killed
    # container is also a web server, and the POST in flight on it when it
    # dies fails (HAProxy does not send a POST again): at most one a kill.
    assert load.failed <= kills, load.errors[:5]
    # None of them is a web server's own 502 for an app server that does not
    # listen yet: nginx starts once the app listens (nginx_start_after), so
    # the load balancer's connection to a booting server is refused and the
    # write goes to another server.
    assert [e for e in load.errors if e[1].endswith("from nginx")] == []
    position = primary_position(PRIMARY)
    for name in REPLICAS:
        assert wait_for_gtid(name, position), name
        assert changes.schema(name) == changes.schema(PRIMARY), name
        # a restarted replica is no semi-sync source: nothing it applies waits
        assert node_sql(name, "SELECT @@global.rpl_semi_sync_master_enabled")[0][0] == "0", name
    for name in DB_NODES:
        assert_stored_once(name, load)
    bulk_rows = {name: node_sql(name, f"SELECT COUNT(*) FROM {BULK_TABLE}")[0][0] for name in DB_NODES}
    assert len(set(bulk_rows.values())) == 1, bulk_rows
    code, report, _lines, checked = table_checksum(PRIMARY, REPLICAS)
    assert code == 0, report
    for name in REPLICAS:
        chunks, differ = checked[name]
        assert chunks > 0 and differ == 0, (name, checked, report)
