"""Replicas survive any crash and replicate again by themselves (issue 15),
on the failover scenario's lab once its failover cases have put it back
(server1 the primary, server2 and server3 its replicas).

Under the app's logged writes through the load balancer and a schema change
on the primary now and then, a replica's container is killed (SIGKILL to
every process in it, a power cut as the server sees it) at least
DISTWEB_KILL_ROUNDS times (20 by default), turn about: at a random moment
of the writes, right after a DDL reached it, right after its last restart,
and while it applies a large transaction. After each start it must
replicate again by itself, with no operator step; at the end every node
holds every acknowledged write exactly once, the schema is the same
everywhere and pt-table-checksum finds no difference.

The crash that used to stop a replica for good (a DDL binlogged and
applied, its GTID not yet in gtid_slave_pos) lies in a window of
microseconds that a kill from outside hits only by luck, so one case puts
a replica in exactly that state on purpose (gtid_slave_pos moved back over
a DDL that its binary log holds) and requires the health endpoint's repair
to restart it, without applying the DDL twice."""

import os
import random
import secrets
import threading
import time

import pytest
from labclient import (
    DB_NODES,
    WriteLoad,
    admin_connect,
    assert_stored_once,
    container,
    docker,
    node_sql,
    slave_status,
    start_node,
    table_checksum,
    wait_for,
    wait_for_gtid,
    writable_nodes,
)

PRIMARY = "server1"
REPLICAS = [n for n in DB_NODES if n != PRIMARY]
ROUNDS = int(os.environ.get("DISTWEB_KILL_ROUNDS", "20"))
MOMENTS = ("during the writes", "right after a DDL", "right after its restart", "inside a large transaction")
DDL_PREFIX = "crash_ddl_"
# Each run its own table names, so that the case runs again on a kept lab.
RUN = secrets.token_hex(3)
BULK_ROWS = 100000


def primary_position():
    return node_sql(PRIMARY, "SELECT @@global.gtid_binlog_pos")[0][0]


def replicating(name):
    status = slave_status(name)
    return (status.get("Slave_IO_Running"), status.get("Slave_SQL_Running")) == ("Yes", "Yes")


def wait_until_caught_up(name, timeout=90):
    """The replica runs both threads and has applied what the primary has
    now; else an AssertionError with its replication errors."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replicating(name) and wait_for_gtid(name, primary_position(), timeout=5):
            return
        time.sleep(0.5)
    status = slave_status(name)
    raise AssertionError(f"{name} does not replicate again: IO {status.get('Slave_IO_Running')} "
                         f"({status.get('Last_IO_Error')}), SQL {status.get('Slave_SQL_Running')} "
                         f"({status.get('Last_SQL_Error')})")


def repairs_logged(name):
    """The health endpoint's repair lines in the node's journal since its
    container last started."""
    out = docker("exec", container(name), "journalctl", "-b", "-u", "distweb-mysql-health", "--no-pager", "-o", "cat",
                 check=False).stdout
    return [line for line in out.splitlines() if "repair: REPAIRED" in line]


class SchemaChanges:
    """DDL on the primary now and then, as real traffic has it: create a
    table, add a column to it, drop the one before; every statement the
    primary acknowledged is logged with its GTID. Bounded in count and
    time."""

    def __init__(self, interval=1.5, max_seconds=900, max_statements=900):
        self.interval, self.max_seconds, self.max_statements = interval, max_seconds, max_statements
        self.done = []  # (statement, gtid)
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._n = 3  # the first table is number 1: "drop the one before" names table 0, never created

    def one(self):
        """Run the next DDL now; return its GTID."""
        with self._lock:
            n = self._n
            self._n += 1
            table = f"foobar.{DDL_PREFIX}{RUN}_{n // 3}"
            statement = (f"CREATE TABLE {table} (id INT PRIMARY KEY, note VARCHAR(20))",
                         f"ALTER TABLE {table} ADD COLUMN extra INT",
                         f"DROP TABLE IF EXISTS foobar.{DDL_PREFIX}{RUN}_{n // 3 - 1}")[n % 3]
            conn = admin_connect(PRIMARY, timeout=10)
            try:
                with conn.cursor() as cur:
                    cur.execute(statement)
                    cur.execute("SELECT @@last_gtid")
                    gtid = cur.fetchone()[0]
            finally:
                conn.close()
            self.done.append((statement, gtid))
            return gtid

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline and self._n < self.max_statements:
            try:
                self.one()
            except Exception as exc:  # noqa: BLE001 - logged and asserted on
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)


def schema(name):
    """The DDL tables and their columns on a node."""
    return node_sql(name, "SELECT table_name, GROUP_CONCAT(column_name ORDER BY ordinal_position) "
                          "FROM information_schema.columns WHERE table_schema = 'foobar' "
                          f"AND table_name LIKE '{DDL_PREFIX}%' GROUP BY table_name ORDER BY table_name")


def kill(name, kills):
    docker("kill", container(name))
    kills.append(name)


def bulk_insert():
    """One large transaction on the primary: BULK_ROWS rows in one INSERT."""
    conn = admin_connect(PRIMARY, timeout=120)
    try:
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO foobar.crash_bulk (note) SELECT CONCAT('bulk-', seq) FROM seq_1_to_{BULK_ROWS}")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def healthy_lab():
    assert writable_nodes() == [PRIMARY], "the failover cases did not leave server1 the primary"
    for name in REPLICAS:
        wait_until_caught_up(name)
    node_sql(PRIMARY, "CREATE TABLE IF NOT EXISTS foobar.crash_bulk "
                      "(id BIGINT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB")
    for name in REPLICAS:
        wait_until_caught_up(name)


def test_a_replica_a_crash_left_behind_its_binary_log_repairs_itself(healthy_lab):
    # The state a crash between a DDL's commit and its gtid_slave_pos update
    # leaves: the DDL applied and binlogged, gtid_slave_pos one behind. The
    # source sends the DDL again and the SQL thread stops on it (GTID strict
    # mode); the health endpoint's repair must move the position and start
    # replication, without running the DDL twice.
    name = REPLICAS[0]
    before = len(repairs_logged(name))
    changes = SchemaChanges()
    gtid = changes.one()  # CREATE TABLE
    assert wait_for_gtid(name, gtid)
    domain, server_id, seq_no = (int(x) for x in gtid.split("-"))
    assert node_sql(name, "SELECT @@global.gtid_binlog_pos")[0][0] == gtid, "a write slipped in: try again"
    node_sql(name, f"STOP SLAVE; SET GLOBAL gtid_slave_pos = '{domain}-{server_id}-{seq_no - 1}'; START SLAVE")
    wait_for(lambda: len(repairs_logged(name)) > before, 30, what=f"{name}'s repair")
    wait_until_caught_up(name)
    assert node_sql(name, "SELECT @@global.gtid_slave_pos")[0][0] == primary_position()
    assert schema(name) == schema(PRIMARY)
    assert f"gtid_slave_pos {domain}-{server_id}-{seq_no - 1} -> {gtid}" in repairs_logged(name)[-1]


def test_replicas_killed_at_any_moment_replicate_again(healthy_lab):
    rounds, broken, first_applies, kills = [], [], [], []
    randomly = random.Random(int(os.environ.get("DISTWEB_KILL_SEED", time.time())))
    with WriteLoad(max_seconds=1800) as load, SchemaChanges() as changes:
        wait_for(lambda: len(load.acknowledged) >= 20, 60, what="the write load to flow")
        for n in range(ROUNDS):
            name, moment = REPLICAS[n % len(REPLICAS)], MOMENTS[(n // len(REPLICAS)) % len(MOMENTS)]
            if moment == "during the writes":
                time.sleep(randomly.uniform(0.1, 2.0))
                kill(name, kills)
            elif moment == "right after a DDL":
                gtid = changes.one()
                wait_for(lambda g=gtid: wait_for_gtid(name, g, timeout=1), 30, interval=0,
                         what=f"the DDL {gtid} on {name}")
                kill(name, kills)
            elif moment == "right after its restart":
                kill(name, kills)
                start_node(name)
                time.sleep(randomly.uniform(0.0, 0.5))
                kill(name, kills)
            else:
                bulk = threading.Thread(target=bulk_insert, daemon=True)
                bulk.start()
                time.sleep(randomly.uniform(0.3, 1.5))
                kill(name, kills)
                bulk.join(120)
            started = time.monotonic()
            start_node(name)
            try:
                wait_until_caught_up(name)
            except AssertionError as exc:
                broken.append(f"round {n} ({name}, killed {moment}): {exc}")
                break
            rounds.append((name, moment, round(time.monotonic() - started, 1), len(repairs_logged(name))))
            # its first new transaction after the restart: applied at once,
            # not held for acknowledgements a replica never gets
            first_applies.append(first_apply_seconds(name))
    repairs = sum(r[3] for r in rounds)
    print(f"\n{len(rounds)} rounds, {len(kills)} kills, broken replicas: {len(broken)}, crash repairs: {repairs}, "
          f"acknowledged writes: {len(load.acknowledged)}, failed writes: {load.failed}, "
          f"DDL statements: {len(changes.done)}")
    print("seconds from start to caught up:", sorted(r[2] for r in rounds))
    print("first transaction applied after a restart, seconds:", sorted(first_applies))
    assert broken == []
    assert len(rounds) == ROUNDS
    assert changes.errors == [] and len(changes.done) >= ROUNDS // 4
    # A replica down costs no write: the other one acknowledges. The killed
    # container is also a web server, and the POST in flight on it when it
    # dies fails (HAProxy does not send a POST again): at most one a kill.
    assert load.failed <= len(kills), load.errors[:5]
    position = primary_position()
    for name in DB_NODES:
        if name != PRIMARY:
            assert wait_for_gtid(name, position), name
            assert schema(name) == schema(PRIMARY), name
            # a restarted replica is no semi-sync source: nothing it applies waits
            assert node_sql(name, "SELECT @@global.rpl_semi_sync_master_enabled")[0][0] == "0", name
        assert_stored_once(name, load)
    bulk_rows = {name: node_sql(name, "SELECT COUNT(*) FROM foobar.crash_bulk")[0][0] for name in DB_NODES}
    assert len(set(bulk_rows.values())) == 1, bulk_rows
    code, report, _lines, checked = table_checksum(PRIMARY, REPLICAS)
    assert code == 0, report
    for name in REPLICAS:
        chunks, differ = checked[name]
        assert chunks > 0 and differ == 0, (name, checked, report)


def first_apply_seconds(name):
    """Seconds from a commit on the primary until the replica has applied it."""
    conn = admin_connect(PRIMARY, timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO foobar.crash_bulk (note) VALUES ('first after restart')")
            cur.execute("SELECT @@last_gtid")
            gtid = cur.fetchone()[0]
    finally:
        conn.close()
    committed = time.monotonic()
    assert wait_for_gtid(name, gtid, timeout=30), f"{name} did not apply {gtid}"
    return round(time.monotonic() - committed, 3)
