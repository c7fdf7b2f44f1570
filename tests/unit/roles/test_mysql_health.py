"""The role-aware health endpoint of the database nodes
(roles/mysql_server/files/distweb_mysql_health.py): what it answers for
each node state, how it asks a replica's source whether it is the primary
(and remembers the answer), the self-fence guard's decisions, its config
template, and that it answers over HTTP. No database and no network: the
server and the other nodes' endpoints are fakes."""

import copy
import http.client
import importlib.util
import json
import os
import pathlib
import re
import threading

import jinja2
import pymysql
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "roles" / "mysql_server" / "files" / "distweb_mysql_health.py"
TEMPLATE = ROOT / "roles" / "mysql_server" / "templates" / "mysql-health.json.j2"
spec = importlib.util.spec_from_file_location("distweb_mysql_health", SCRIPT)
health = importlib.util.module_from_spec(spec)
spec.loader.exec_module(health)

# The flavours' SQL and replica status columns, as the role writes them into
# the endpoint's configuration (roles/mysql_server/vars/<flavour>.yml).
VARS = ROOT / "roles" / "mysql_server" / "vars"
FLAVORS = {name: yaml.safe_load((VARS / f"{name}.yml").read_text()) for name in ("mariadb", "mysql-8.4")}


def dialect(flavor="mariadb"):
    return copy.deepcopy({"sql": FLAVORS[flavor]["_mysql_server_flavor_sql"],
                          "columns": FLAVORS[flavor]["_mysql_server_flavor_replica_status_columns"]})


def health_config(flavor="mariadb", **changes):
    """The endpoint's configuration on a node of the flavour (MariaDB: the
    fake server below)."""
    return dict(health.DEFAULTS, **dict(dialect(flavor), **changes))


SEMI_SYNC_OK = {"enabled": True, "clients": 1, "active": True}
PRIMARY = {"read_only": False, "replica": None, "semi_sync": SEMI_SYNC_OK}
REPLICA = {"read_only": True, "replica": {"source": "db1", "io_running": "Yes", "sql_running": "Yes", "lag": 0},
           "semi_sync": {"enabled": False, "clients": 0, "active": False}}


def replica(**changes):
    state = {"read_only": True, "replica": dict(REPLICA["replica"]), "semi_sync": REPLICA["semi_sync"]}
    state["replica"].update(changes)
    return state


def primary(**semi_sync):
    return {"read_only": False, "replica": None, "semi_sync": dict(SEMI_SYNC_OK, **semi_sync)}


def source_ok(host):
    return True, "answers /primary 200"


def source_not_primary(host):
    return False, "answers /primary 503: read-only: not the primary"


# ---------------------------------------------------------------- judge


@pytest.mark.parametrize("path, state, code", [
    ("/primary", PRIMARY, 200),
    ("/primary", REPLICA, 503),
    ("/primary", {"read_only": True, "replica": None}, 503),  # a fenced or restarted old primary
    ("/primary", None, 503),  # the server does not answer
    ("/replica", REPLICA, 200),
    ("/replica", PRIMARY, 503),
    ("/replica", {"read_only": True, "replica": None}, 503),
    ("/replica", replica(sql_running="No"), 503),
    ("/replica", replica(lag=31), 503),
    ("/replica", replica(lag=30), 200),
    ("/replica", replica(io_running="Connecting", lag=None), 503),  # not connected to its source
    ("/replica", replica(io_running="No"), 503),
    ("/replica", None, 503),
    ("/", None, 200),
    ("/nope", PRIMARY, 404),
])
@pytest.mark.parametrize("require_semi_sync", [False, True])
def test_judge(path, state, code, require_semi_sync):
    assert health.judge(path, state, 30, require_semi_sync, source_ok)[0] == code


@pytest.mark.parametrize("state, code, reason", [
    (primary(), 200, "writable primary with 1 semi-sync replica(s) connected"),
    (primary(clients=2), 200, "writable primary with 2 semi-sync replica(s) connected"),
    (primary(clients=0), 503, "writable, but no semi-sync replica is connected: it cannot acknowledge a write"),
    (primary(enabled=False), 503, "writable, but semi-sync is not enabled on it: it is not the elected primary"),
    (primary(enabled=None, clients=None, active=None), 503,
     "writable, but this server has no semi-sync replication: it cannot acknowledge a write"),
    (primary(active=False), 503,
     "writable, but semi-sync has fallen back to asynchronous commits: its writes could be lost"),
    ({"read_only": False, "replica": None}, 503,  # no semi-sync figures at all
     "writable, but this server has no semi-sync replication: it cannot acknowledge a write"),
])
def test_a_lossless_primary_needs_a_connected_semi_sync_replica(state, code, reason):
    assert health.judge("/primary", state, 30, True, source_ok) == (code, reason)


@pytest.mark.parametrize("semi_sync", [dict(SEMI_SYNC_OK, clients=0), dict(SEMI_SYNC_OK, enabled=False), {}])
def test_an_availability_first_primary_needs_only_to_be_writable(semi_sync):
    state = {"read_only": False, "replica": None, "semi_sync": semi_sync}
    assert health.judge("/primary", state, 30, False, source_ok) == (200, "writable primary")


def test_a_connecting_replica_is_not_connected_to_its_source():
    code, reason = health.judge("/replica", replica(io_running="Connecting", lag=None), 30, True, source_ok)
    assert code == 503 and reason == "not connected to its source (IO thread: Connecting)"


def test_a_replica_of_a_node_that_is_not_the_primary_serves_no_reads():
    asked = []

    def source_is_primary(host):
        asked.append(host)
        return source_not_primary(host)

    code, reason = health.judge("/replica", REPLICA, 30, True, source_is_primary)
    assert (code, asked) == (503, ["db1"])
    assert reason == "its source db1 is not the current primary: answers /primary 503: read-only: not the primary"
    code, reason = health.judge("/replica", REPLICA, 30, True, lambda host: (asked.append(host) or True, "ok"))
    assert code == 200 and reason == "healthy replica of the primary db1" and asked == ["db1", "db1"]


@pytest.mark.parametrize("state", [PRIMARY, replica(io_running="Connecting"), replica(sql_running="No"),
                                   replica(lag=31), {"read_only": True, "replica": None}, None])
def test_the_source_is_asked_only_when_the_replica_is_otherwise_healthy(state):
    def source_is_primary(host):
        raise AssertionError("asked the source of an unhealthy replica")

    assert health.judge("/replica", state, 30, True, source_is_primary)[0] == 503


def test_a_replica_whose_source_cannot_be_checked_is_unhealthy():
    assert health.judge("/replica", REPLICA, 30, True, None) == (503, "its source db1 cannot be checked")


# ------------------------------------------------------------- fake server


class FakeServer:
    """A MariaDB node as the endpoint and the guard see it. Records every
    statement. SET GLOBAL read_only fails (lock wait timeout) while a
    session of ``hung`` (a commit waiting for an acknowledgement, holding
    the commit lock) exists, and ``read_only_blocked`` more times anyway."""

    def __init__(self, read_only=False, clients=0, slave_status=None, flavor="mariadb", processlist=None):
        self.read_only = read_only
        self.slave_status = slave_status
        self.set_clients(clients, flavor)
        # (id, user, command): applications, two replicas, the server's threads
        self.processlist = processlist if processlist is not None else [
            (11, "app", "Query"), (12, "app", "Sleep"), (13, "repl", "Binlog Dump"),
            (14, "repl", "Binlog Dump GTID"), (1, "system user", "Daemon"), (2, "event_scheduler", "Daemon"),
            (3, "system user", "Sleep"), (15, "monitor", "Sleep")]
        self.statements = []
        self.logins = []
        self.killed = []
        self.read_only_blocked = 0
        self.hung = set()
        self.self_kills = []
        self._next_id = 100
        self.server_id = 12
        self.gtid_binlog_pos = ""
        self.gtid_slave_pos = ""
        self.gtid_binlog_state = ""
        self.sql_thread_starts = 0
        # binary logs {name: SHOW BINLOG EVENTS rows}, oldest first; the
        # relay log's rows from the SQL thread's position
        self.binlogs = {"mysql-bin.000001": [binlog_file_start("mysql-bin.000001", "")]}
        self.relay_log = []
        self.ddl_exec_mode = "IDEMPOTENT"
        self.on_stop = None

    def set_clients(self, clients, flavor="mariadb"):
        role = "master" if flavor == "mariadb" else "source"
        if flavor is None:  # no semi-sync at all (MySQL without the plugin)
            self.variables, self.status = {"rpl_semi_sync_slave_enabled": "OFF"}, {}
            return
        self.variables = {"rpl_semi_sync_%s_enabled" % role: "ON", "rpl_semi_sync_slave_enabled": "ON",
                          "rpl_semi_sync_%s_timeout" % role: "4294967295"}
        self.status = {"Rpl_semi_sync_%s_clients" % role: str(clients), "Rpl_semi_sync_%s_status" % role: "ON",
                       "Rpl_semi_sync_slave_status": "OFF"}

    def connect(self, **kwargs):
        self.logins.append(kwargs)
        self._next_id += 1
        return FakeConn(self, self._next_id, kwargs.get("user"))


class FakeCursor:
    def __init__(self, conn):
        self.conn, self.server, self.description, self._rows = conn, conn.server, None, []

    def _answer(self, rows, columns=("Variable_name", "Value")):
        self.description, self._rows = [(c,) for c in columns], list(rows)

    def execute(self, sql, args=None):
        server = self.server
        server.statements.append(sql if args is None else (sql, args))
        if sql == "SELECT @@global.read_only":
            self._answer([(1 if server.read_only else 0,)], ["@@global.read_only"])
        elif sql in ("SHOW SLAVE STATUS", "SHOW REPLICA STATUS"):  # MariaDB, MySQL 8.4
            status = server.slave_status or {}
            self._answer([tuple(status.values())] if status else [], list(status))
        elif sql == "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_%'":
            self._answer(sorted(server.variables.items()))
        elif sql == "SHOW GLOBAL STATUS LIKE 'rpl_semi_sync_%'":
            self._answer(sorted(server.status.items()))
        elif sql == "SELECT CONNECTION_ID()":
            self._answer([(self.conn.thread_id,)], ["CONNECTION_ID()"])
        elif sql == "SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST":
            self._answer(server.processlist + [(self.conn.thread_id, self.conn.user, "Query")],
                         ["ID", "USER", "COMMAND"])
        elif sql == "SET SESSION lock_wait_timeout = 1":
            self._answer([])
        elif sql == "SET GLOBAL read_only = 1":
            if server.read_only_blocked or server.hung & {t[0] for t in server.processlist}:
                server.read_only_blocked = max(0, server.read_only_blocked - 1)
                raise pymysql.err.OperationalError(1205, "Lock wait timeout exceeded; try restarting transaction")
            server.read_only = True
            self._answer([])
        elif sql.startswith("KILL CONNECTION "):
            thread_id = int(sql.rsplit(" ", 1)[1])
            if thread_id == self.conn.thread_id:
                server.self_kills.append(thread_id)
                raise pymysql.err.OperationalError(2013, "Lost connection to server during query")
            before = len(server.processlist)
            server.processlist = [t for t in server.processlist if t[0] != thread_id]
            if len(server.processlist) == before:
                raise pymysql.err.InternalError(1094, "Unknown thread id: %d" % thread_id)
            server.killed.append(thread_id)
            self._answer([])
        elif sql == "SELECT @@global.gtid_binlog_pos, @@global.gtid_slave_pos, @@global.server_id":
            self._answer([(server.gtid_binlog_pos, server.gtid_slave_pos, server.server_id)], ["a", "b", "c"])
        elif sql == "STOP SLAVE":
            server.slave_status = dict(server.slave_status, Slave_IO_Running="No", Slave_SQL_Running="No")
            if server.on_stop:
                server.on_stop()
            self._answer([])
        elif sql == "SET GLOBAL gtid_slave_pos = %s":
            assert server.slave_status["Slave_SQL_Running"] == "No", "gtid_slave_pos is set only when stopped"
            server.gtid_slave_pos = args[0]
            self._answer([])
        elif sql == "SHOW BINARY LOGS":
            self._answer([(name, 1000) for name in server.binlogs], ["Log_name", "File_size"])
        elif sql == "SHOW BINLOG EVENTS IN %s LIMIT %s":
            self._answer(server.binlogs[args[0]][:args[1]], EVENT_COLUMNS)
        elif sql == "SHOW RELAYLOG EVENTS IN %s FROM %s LIMIT 2":
            assert args == (OUT_OF_ORDER["Relay_Log_File"], OUT_OF_ORDER["Relay_Log_Pos"])
            self._answer(server.relay_log[:2], EVENT_COLUMNS)
        elif sql == "SELECT @@global.slave_ddl_exec_mode":
            self._answer([(server.ddl_exec_mode,)], ["@@global.slave_ddl_exec_mode"])
        elif sql == "RESET MASTER":
            assert server.slave_status["Slave_SQL_Running"] == "No"
            server.binlogs = {"mysql-bin.000001": [binlog_file_start("mysql-bin.000001", "")]}
            server.gtid_binlog_pos = server.gtid_binlog_state = ""
            self._answer([])
        elif sql == "SET GLOBAL gtid_binlog_state = %s":
            assert server.gtid_binlog_state == "", "gtid_binlog_state is set only on an empty binary log"
            server.gtid_binlog_state = args[0]
            server.binlogs = {"mysql-bin.000001": [binlog_file_start("mysql-bin.000001", args[0])]}
            self._answer([])
        elif sql == "START SLAVE":
            server.sql_thread_starts += 1
            server.slave_status = dict(server.slave_status, Slave_IO_Running="Yes", Slave_SQL_Running="Yes",
                                       Last_SQL_Errno=0, Last_SQL_Error="")
            self._answer([])
        else:
            raise AssertionError("unexpected statement: %s" % sql)

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def fetchall(self):
        return list(self._rows)


EVENT_COLUMNS = ["Log_name", "Pos", "Event_type", "Server_id", "End_log_pos", "Info"]


def binlog_file_start(name, gtid_list, server_id=12):
    """The first events of a binary log (SHOW BINLOG EVENTS rows), whose
    Gtid_list is the GTID state before it: Format_desc is left out."""
    return (name, 256, "Gtid_list", server_id, 315, "[%s]" % gtid_list)


def gtid_rows(name, gtid, *statements):
    """A transaction of SHOW BINLOG EVENTS rows: a Gtid event, then
    ``statements`` (Query events; "BEGIN" starts a DML transaction)."""
    server_id = int(gtid.split("-")[1])
    rows = [(name, 400, "Gtid", server_id, 442, ("BEGIN GTID %s" if statements[:1] == ("BEGIN",) else "GTID %s") % gtid)]
    rows += [(name, 442, "Query" if statement != "COMMIT" else "Xid", server_id, 500, statement)
             for statement in statements if statement != "BEGIN"]
    return rows


class FakeConn:
    def __init__(self, server, thread_id, user):
        self.server, self.thread_id, self.user, self.closed = server, thread_id, user, False

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = True


# ------------------------------------------------------------- read_state

SLAVE_STATUS = {"Master_Host": "db1", "Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes",
                "Seconds_Behind_Master": 3}


def test_read_state_of_a_replica():
    server = FakeServer(read_only=True, clients=0, slave_status=SLAVE_STATUS)
    config = health_config()
    assert health.read_state(config, server.connect) == {
        "read_only": True, "replica": {"source": "db1", "io_running": "Yes", "sql_running": "Yes", "lag": 3,
                                       "io_error": None, "sql_error": None},
        "semi_sync": {"enabled": True, "clients": 0, "active": True}}
    login = server.logins[0]
    assert login["unix_socket"] == config["socket"] and login["user"] == "monitor"


def test_read_state_of_a_mysql_replica_reads_the_flavours_statement_and_columns():
    status = {"Source_Host": "db1", "Replica_IO_Running": "Yes", "Replica_SQL_Running": "No",
              "Seconds_Behind_Source": None, "Last_SQL_Errno": 1062, "Last_SQL_Error": "Duplicate entry"}
    server = FakeServer(read_only=True, clients=0, slave_status=status, flavor="mysql8")
    state = health.read_state(health_config("mysql-8.4"), server.connect)
    assert state["replica"] == {"source": "db1", "io_running": "Yes", "sql_running": "No", "lag": None,
                                "io_error": None, "sql_error": "error 1062: Duplicate entry"}
    assert "SHOW REPLICA STATUS" in server.statements and "SHOW SLAVE STATUS" not in server.statements


def test_the_crash_repair_runs_only_for_a_flavour_that_has_one():
    assert health.can_repair(health_config("mariadb"))
    assert not health.can_repair(health_config("mariadb", repair=False))
    # MariaDB's gtid_slave_pos repair has no MySQL counterpart
    assert not health.can_repair(health_config("mysql-8.4"))


def test_the_endpoint_has_no_sql_of_its_own_for_replication():
    code = "\n".join(line for line in SCRIPT.read_text().splitlines() if not line.lstrip().startswith("#"))
    statements = re.findall(r"['\"](?:SHOW|STOP|START|RESET|CHANGE)\s+(?:SLAVE|MASTER|REPLICA|BINARY)[^'\"]*['\"]", code)
    assert statements == []
    assert "gtid_slave_pos = %s" not in code


@pytest.mark.parametrize("flavor, expected", [
    ("mariadb", {"enabled": True, "clients": 2, "active": True}),  # rpl_semi_sync_master_*
    ("mysql8", {"enabled": True, "clients": 2, "active": True}),  # rpl_semi_sync_source_*
    (None, {"enabled": None, "clients": None, "active": None}),  # no semi-sync source side at all
])
def test_read_state_reads_semi_sync_under_either_name(flavor, expected):
    server = FakeServer(clients=2, flavor=flavor)
    assert health.read_state(health_config(), server.connect) == {
        "read_only": False, "replica": None, "semi_sync": expected}


def test_read_state_closes_its_connection():
    conns = []

    def connect(**kwargs):
        conns.append(FakeServer().connect(**kwargs))
        return conns[-1]

    health.read_state(health_config(), connect)
    assert conns[0].closed


def test_semi_sync_figures_off():
    server = FakeServer(clients=0)
    server.variables["rpl_semi_sync_master_enabled"] = "OFF"
    server.status["Rpl_semi_sync_master_status"] = "OFF"
    assert health.read_state(health_config(), server.connect)["semi_sync"] == {
        "enabled": False, "clients": 0, "active": False}


# ------------------------------------------------------------- the probe


class FakeEndpoints:
    """The other nodes' health endpoints: (host, port) -> status, or an
    exception to raise. Counts the requests."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def fetch(self, host, port, path, timeout):
        """An answer is the node's /primary status, or {"primary": status,
        "source": host it replicates from (IO thread running)}."""
        self.calls.append((host, port, path, timeout))
        answer = self.answers.get((host, port), ConnectionRefusedError(111, "Connection refused"))
        if isinstance(answer, Exception):
            raise answer
        source = None
        if isinstance(answer, dict):
            answer, source = answer["primary"], answer.get("source")
        if path == "/":
            replica = {"source": source, "io_running": "Yes", "sql_running": "Yes", "lag": 0} if source else None
            return 200, json.dumps({"status": 200, "reason": "state", "local_primary": answer == 200,
                                    "state": {"read_only": answer != 200, "replica": replica}}).encode()
        reason = "writable primary" if answer == 200 else "read-only: not the primary"
        return answer, json.dumps({"status": answer, "reason": reason}).encode()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_probe_answers_and_remembers_each_node_for_the_ttl():
    endpoints = FakeEndpoints({("db1", 9201): 200, ("db2", 9201): 503})
    clock = Clock()
    probe = health.PrimaryProbe(timeout=1.0, ttl=1.0, fetch=endpoints.fetch, clock=clock)
    assert probe.is_primary("db1", 9201) == (True, "answers /primary 200")
    assert endpoints.calls == [("db1", 9201, "/primary", 1.0)]
    for _check in range(3):  # the routers' checks within the second: no new request
        clock.now += 0.3
        assert probe.is_primary("db1", 9201)[0] is True
    assert len(endpoints.calls) == 1
    assert probe.is_primary("db2", "9201") == (False, "answers /primary 503: read-only: not the primary")
    assert len(endpoints.calls) == 2  # each node has its own entry
    clock.now += 0.2  # 1.1 s after the first answer: asked again, and the new answer counts
    endpoints.answers[("db1", 9201)] = 503
    assert probe.is_primary("db1", 9201)[0] is False
    assert len(endpoints.calls) == 3


def test_probe_remembers_failures_too():
    endpoints = FakeEndpoints({("db1", 9201): TimeoutError("timed out")})
    clock = Clock()
    probe = health.PrimaryProbe(fetch=endpoints.fetch, clock=clock)
    assert probe.is_primary("db1", 9201) == (False, "its health endpoint db1:9201 does not answer (timed out)")
    clock.now += 0.5
    assert probe.is_primary("db1", 9201)[0] is False
    assert len(endpoints.calls) == 1
    assert probe.is_primary("db3", 9201)[1].startswith("its health endpoint db3:9201 does not answer")


def test_probe_asks_once_for_concurrent_checks():
    release = threading.Event()
    calls = []

    def fetch(host, port, path, timeout):
        calls.append(host)
        release.wait(5)
        return 200, b"{}"

    probe = health.PrimaryProbe(fetch=fetch)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(probe.is_primary("db1", 9201))) for _thread in range(5)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == ["db1"] and len(answers) == 5 and all(a[0] for a in answers)


def test_http_get_reads_a_real_endpoint_and_times_out(endpoint):
    _server, _get, port = endpoint
    assert health.http_get("127.0.0.1", port, "/primary", 1.0)[0] == 200
    with pytest.raises(OSError):
        health.http_get("127.0.0.1", 1, "/primary", 1.0)  # nothing listens on port 1


@pytest.mark.parametrize("peer, expected", [
    ("db2:9202", ("db2", 9202)),
    ("10.0.0.12:9201", ("10.0.0.12", 9201)),
    ("db2", ("db2", 9201)),
    ("[2001:db8::12]:9203", ("2001:db8::12", 9203)),
    ("[2001:db8::12]", ("2001:db8::12", 9201)),
])
def test_parse_peer(peer, expected):
    assert health.parse_peer(peer, 9201) == expected


def test_the_source_is_asked_on_its_own_health_port():
    endpoints = FakeEndpoints({("10.0.0.11", 9301): 200, ("db9", 9201): 200})
    probe = health.PrimaryProbe(fetch=endpoints.fetch)
    config = health_config(peers=["10.0.0.11:9301", "10.0.0.12:9201"])
    check = health.source_checker(config, probe)
    assert check("10.0.0.11")[0] is True  # a peer: its port from the peers list
    assert check("db9")[0] is True  # not a peer: this node's health port
    assert [c[:2] for c in endpoints.calls] == [("10.0.0.11", 9301), ("db9", 9201)]
    assert check("")[0] is False and check(None)[0] is False


# ------------------------------------------------------------- the guard

PEERS = ["db2:9201", "db3:9201"]


def make_guard(server, answers, peers=None, clock=None):
    peers = PEERS if peers is None else peers
    endpoints = FakeEndpoints(answers)
    lines = []
    config = health_config(require_semi_sync=True, guard=True, peers=peers, names=["db1", "10.0.0.11"])
    clock = clock or Clock()
    guard = health.Guard(config, connect=server.connect, probe=health.PrimaryProbe(fetch=endpoints.fetch, clock=clock),
                         log=lines.append, clock=clock)
    return guard, endpoints, lines


def writes_that_unfence_or_touch_semi_sync(server):
    return [s for s in server.statements
            if ("read_only" in s and s.startswith("SET") and not s.endswith("read_only = 1"))
            or ("semi_sync" in s and not s.startswith("SHOW"))]


def test_the_guard_fences_a_writable_node_without_replicas_when_another_is_primary():
    server = FakeServer(read_only=False, clients=0)
    guard, endpoints, lines = make_guard(server, {("db2", 9201): 503, ("db3", 9201): 200})
    assert guard.check() == "fenced"
    assert server.read_only is True
    # every client session, and only those: not the replicas' binlog dumps,
    # not the server's threads, not the guard's own session
    assert sorted(server.killed) == [11, 12, 15]
    assert [t[2] for t in server.processlist] == ["Binlog Dump", "Binlog Dump GTID", "Daemon", "Daemon", "Sleep"]
    assert server.self_kills == []
    # the sessions first (a commit waiting for an acknowledgement would hold
    # read_only up), then read_only, then the sessions once more
    set_ro = server.statements.index("SET GLOBAL read_only = 1")
    kills = [i for i, s in enumerate(server.statements) if s.startswith("KILL")]
    listings = [i for i, s in enumerate(server.statements) if s.startswith("SELECT ID")]
    assert kills[0] < set_ro < listings[-1], server.statements
    assert lines == ["distweb-mysql-health guard: FENCED this node (read_only=1, 3 client session(s) killed): "
                     "it was writable while db3:9201 is the primary and no replica follows this node "
                     "(0 ms: 0 reading this node, 0 asking the peers, 0 fencing)"]
    assert writes_that_unfence_or_touch_semi_sync(server) == []
    # logs in as the guard account over the socket, without a password
    login = server.logins[0]
    assert (login["user"], login["password"], login["unix_socket"]) == ("distweb-health", "", "/run/mysqld/mysqld.sock")
    assert login["autocommit"] is True


def test_the_guard_never_fences_a_node_its_replicas_follow():
    # another node claims to be primary too, but a replica follows this one
    server = FakeServer(read_only=False, clients=1)
    guard, endpoints, lines = make_guard(server, {("db2", 9201): 200, ("db3", 9201): {"primary": 503, "source": "db1"}})
    assert guard.check() == "writable, no other primary (or replicas follow this one)"
    assert server.read_only is False and server.killed == [] and lines == []
    assert not any(s.startswith(("SET", "KILL")) for s in server.statements)


def test_a_woken_old_primary_is_fenced_although_its_replica_count_is_stale():
    # paused through a failover: it still counts two semi-sync replicas,
    # but they follow the new primary db2 now
    server = FakeServer(read_only=False, clients=2)
    guard, endpoints, lines = make_guard(server, {("db2", 9201): 200, ("db3", 9201): {"primary": 503, "source": "db2"}})
    assert guard.check() == "fenced"
    assert server.read_only is True
    assert "db2:9201 is the primary" in lines[0]


def test_the_fence_line_says_the_node_was_frozen_before_the_round():
    # a round, then the node is paused for 12 s, then the next round fences
    clock = Clock()
    server = FakeServer(read_only=False, clients=2)
    guard, endpoints, lines = make_guard(server, {("db2", 9201): {"primary": 503, "source": "db1"},
                                                  ("db3", 9201): {"primary": 503, "source": "db1"}}, clock=clock)
    assert guard.check() == "writable, no other primary (or replicas follow this one)"
    clock.now += 12.2
    endpoints.answers = {("db2", 9201): 200, ("db3", 9201): {"primary": 503, "source": "db2"}}
    assert guard.check() == "fenced"
    assert lines[0].endswith("0 fencing, 12.0 s after the round was due: this node was frozen or starved)"), lines


def test_an_answer_that_came_back_after_a_freeze_is_asked_again():
    # the request went out before the node froze; the peer's answer (no
    # other primary) waited in the socket until the node woke 12 s later:
    # it tells of the moment it was sent, so the probe asks once more
    clock = Clock()
    answers = iter([(503, b'{"reason": "before"}'), (200, b'{"reason": "after"}')])
    asked = []

    def fetch(host, port, path, timeout):
        asked.append(clock.now)
        if len(asked) == 1:
            clock.now += 12
        return next(answers)

    probe = health.PrimaryProbe(fetch=fetch, clock=clock, ttl=1.0)
    assert probe.is_primary("db2", 9201) == (True, "answers /primary 200")
    assert asked == [1000.0, 1012.0]
    # kept for ttl from when it was asked, then asked again
    clock.now += 0.5
    assert probe.is_primary("db2", 9201)[0] is True and len(asked) == 2
    clock.now += 0.6
    probe.is_primary("db2", 9201)
    assert len(asked) == 3


def test_the_guard_asks_its_peers_at_the_same_time():
    # each peer answers only once both requests are out: asked one after
    # the other, the first would time out at the barrier
    barrier = threading.Barrier(2, timeout=5)
    inner = FakeEndpoints({("db2", 9201): 200, ("db3", 9201): {"primary": 503, "source": "db2"}})

    def fetch(host, port, path, timeout):
        barrier.wait()
        return inner.fetch(host, port, path, timeout)

    probe = health.PrimaryProbe(fetch=fetch)
    answers = probe.states_of([("db2", 9201), ("db3", 9201)])
    assert [a["local_primary"] for a in answers] == [True, False]
    assert probe.states_of([]) == []


def test_a_node_without_semi_sync_replicas_is_fenced_even_if_a_replica_names_it():
    # a replica points at it but is not connected as a semi-sync replica:
    # it cannot acknowledge a write, and db3 is the primary
    server = FakeServer(read_only=False, clients=0)
    guard, endpoints, lines = make_guard(server, {("db2", 9201): {"primary": 503, "source": "db1"},
                                                  ("db3", 9201): 200})
    assert guard.check() == "fenced"


def test_primary_answers_503_on_a_stale_old_primary_and_200_on_the_elected_one():
    endpoints = FakeEndpoints({("db2", 9201): 200, ("db3", 9201): {"primary": 503, "source": "db2"}})
    probe = health.PrimaryProbe(fetch=endpoints.fetch)
    config = health_config(require_semi_sync=True, peers=PEERS, names=["db1"])
    state = {"read_only": False, "replica": None, "semi_sync": {"enabled": True, "clients": 2, "active": True}}
    code, reason = health.judge("/primary", state, 30, True, None,
                                lambda: health.elected_elsewhere(config, probe, state))
    assert (code, reason) == (503, "writable, but db2:9201 is the elected primary and no replica follows this node: "
                                   "a stale old primary")
    # the same node once db3 follows it again: the elected primary
    endpoints.answers[("db3", 9201)] = {"primary": 503, "source": "db1"}
    probe = health.PrimaryProbe(fetch=endpoints.fetch)
    code, reason = health.judge("/primary", state, 30, True, None,
                                lambda: health.elected_elsewhere(config, probe, state))
    assert code == 200, reason
    # and without require_semi_sync the stale check applies too
    endpoints.answers[("db3", 9201)] = {"primary": 503, "source": "db2"}
    probe = health.PrimaryProbe(fetch=endpoints.fetch)
    assert health.judge("/primary", state, 30, False, None,
                        lambda: health.elected_elsewhere(config, probe, state))[0] == 503


def test_the_guard_leaves_a_lone_primary_alone_while_no_other_node_is_primary():
    server = FakeServer(read_only=False, clients=0)
    guard, endpoints, lines = make_guard(server, {("db2", 9201): 503, ("db3", 9201): TimeoutError("timed out")})
    assert guard.check() == "writable, no other primary (or replicas follow this one)"
    assert server.read_only is False and server.killed == [] and lines == []
    assert sorted(c[:2] for c in endpoints.calls) == [("db2", 9201), ("db3", 9201)]


def test_the_guard_does_nothing_on_a_read_only_node_and_never_unfences():
    server = FakeServer(read_only=True, clients=0)
    guard, endpoints, lines = make_guard(server, {("db2", 9201): 200})
    assert guard.check() == "read-only"
    assert server.read_only is True and endpoints.calls == [] and lines == []
    assert server.statements == ["SELECT @@global.read_only"]


def test_a_fenced_node_stays_fenced():
    server = FakeServer(read_only=False, clients=0)
    guard, endpoints, lines = make_guard(server, {("db2", 9201): 200})
    assert guard.check() == "fenced"
    # the other node goes away, this one gets a replica: still fenced
    endpoints.answers.clear()
    server.set_clients(1)
    for _round in range(3):
        assert guard.check() == "read-only"
    assert server.read_only is True and len(lines) == 1
    assert writes_that_unfence_or_touch_semi_sync(server) == []


def test_the_guard_decides_on_a_fresh_reading_after_asking_the_peers():
    server = FakeServer(read_only=False, clients=0)
    guard, endpoints, lines = make_guard(server, {("db2", 9201): 200})
    fetch = guard.probe.fetch

    def fenced_meanwhile(host, port, path, timeout):  # an operator fences it while the peers are asked
        server.read_only = True
        return fetch(host, port, path, timeout)

    guard.probe.fetch = fenced_meanwhile
    assert guard.check() == "changed while the peers were asked"
    assert server.killed == [] and not any(s.startswith(("SET", "KILL")) for s in server.statements)


def test_a_commit_waiting_for_an_acknowledgement_does_not_stop_the_fence():
    server = FakeServer(read_only=False, clients=0)
    server.hung = {11}  # SET GLOBAL read_only waits for the lock of a commit waiting for an acknowledgement
    guard, endpoints, lines = make_guard(server, {("db2", 9201): 200})
    assert guard.check() == "fenced"
    assert server.read_only is True
    # the hung sessions were killed first (their commits end unacknowledged),
    # so read_only was set at the first attempt
    assert server.statements.count("SET GLOBAL read_only = 1") == 1
    assert sorted(server.killed) == [11, 12, 15] and "3 client session(s) killed" in lines[0]


def test_a_fence_that_cannot_set_read_only_says_so_and_is_tried_again():
    server = FakeServer(read_only=False, clients=0)
    server.read_only_blocked = 3
    guard, endpoints, lines = make_guard(server, {("db2", 9201): 200})
    assert guard.check() == "fence failed"
    assert server.read_only is False and lines[0].startswith("distweb-mysql-health guard: could not fence")
    assert "Lock wait timeout" in lines[0]
    assert guard.check() == "fenced" and server.read_only is True


def test_the_guard_loop_logs_each_kind_of_error_once_and_stops():
    stop = threading.Event()
    attempts = []
    lines = []

    def connect(**kwargs):
        attempts.append(1)
        if len(attempts) >= 4:
            stop.set()
        raise pymysql.err.OperationalError(2002, "Can't connect to local server")

    config = health_config(guard=True, guard_interval=0.001, peers=PEERS)
    guard = health.Guard(config, connect=connect, probe=health.PrimaryProbe(fetch=FakeEndpoints({}).fetch),
                         log=lines.append)
    thread = threading.Thread(target=guard.run, args=(stop,), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and len(attempts) >= 4
    assert lines == ["distweb-mysql-health guard: (2002, \"Can't connect to local server\")"]


def test_load_config_turns_the_guard_on_with_require_semi_sync(tmp_path):
    path = tmp_path / "health.json"
    path.write_text(json.dumps(dict(dialect(), require_semi_sync=True)))
    assert health.load_config(str(path))["guard"] is True
    path.write_text(json.dumps(dict(dialect(), require_semi_sync=True, guard=False)))
    assert health.load_config(str(path))["guard"] is False
    path.write_text(json.dumps(dialect()))
    assert health.load_config(str(path))["guard"] is False


@pytest.mark.parametrize("missing", ["sql", "columns"])
def test_a_config_without_the_flavours_sql_is_refused(tmp_path, missing):
    path = tmp_path / "health.json"
    written = dialect()
    del written[missing]
    path.write_text(json.dumps(written))
    with pytest.raises(health.ConfigError, match="names no complete SQL dialect"):
        health.load_config(str(path))
    written = dialect()
    del written[missing]["replica_status" if missing == "sql" else "lag"]
    path.write_text(json.dumps(written))
    with pytest.raises(health.ConfigError, match=r"missing: %s\.%s" % (missing, "replica_status" if missing == "sql" else "lag")):
        health.load_config(str(path))


@pytest.mark.parametrize("guard_on", [True, False])
def test_main_starts_the_guard_only_when_configured(monkeypatch, tmp_path, guard_on):
    path = tmp_path / "health.json"
    path.write_text(json.dumps(dict(dialect(), require_semi_sync=True, guard=guard_on, port=0)))
    monkeypatch.setenv("DISTWEB_MYSQL_HEALTH_CONFIG", str(path))
    started = []

    class FakeGuard:
        def __init__(self, config, probe=None):
            self.probe = probe

        def run(self):
            started.append(self.probe)

    class FakeHTTPServer:
        served = 0

        def __init__(self, address, handler):
            pass

        def serve_forever(self):
            FakeHTTPServer.served += 1
            raise KeyboardInterrupt

    monkeypatch.setattr(health, "Guard", FakeGuard)
    monkeypatch.setattr(health, "Repair", lambda config: FakeGuard(config, probe="repair"))
    monkeypatch.setattr(health, "HealthHTTPServer", FakeHTTPServer)
    monkeypatch.setattr(health, "start_guard", lambda: started.append("guard process"))
    monkeypatch.setattr(health, "follow_parent", lambda parent: started.append("follows %d" % parent))
    health.main([])
    for thread in threading.enumerate():
        if thread.name == "repair":
            thread.join(5)
    # the repair runs whatever the guard does (it is on by default); the
    # guard runs in a process of its own
    assert sorted(started) == (["guard process", "repair"] if guard_on else ["repair"])
    assert FakeHTTPServer.served == 1
    # that process (--guard) runs the guard alone: no endpoint, no repair
    started.clear()
    health.main(["--guard"])
    for thread in threading.enumerate():
        if thread.name == "parent-watch":
            thread.join(5)
    assert sorted(started, key=str) == [None, "follows %d" % os.getppid()] and FakeHTTPServer.served == 1


def test_the_endpoint_ends_when_its_guard_process_ends(monkeypatch):
    # the guard is this program with --guard; when it exits, so does the
    # endpoint (systemd's Restart=always starts both again)
    launched, exits, lines = [], [], []

    class FakeChild:
        def __init__(self, argv):
            launched.append(argv)

        def wait(self):
            return 3

    monkeypatch.setattr(health.subprocess, "Popen", FakeChild)
    monkeypatch.setattr(health.os, "_exit", exits.append)
    health.start_guard(log=lines.append)
    for thread in threading.enumerate():
        if thread.name == "guard-watch":
            thread.join(5)
    assert launched == [[health.sys.executable, os.path.abspath(health.__file__), "--guard"]]
    assert exits == [1]
    assert lines == ["distweb-mysql-health: the guard process ended (exit 3); stopping the endpoint with it"]


def test_the_guard_process_ends_when_its_endpoint_is_gone():
    parents = iter([41, 41, 1])  # the endpoint (41) ends: the guard is re-parented
    exits = []
    health.follow_parent(41, interval=0, getppid=lambda: next(parents), exit_now=exits.append)
    assert exits == [0]


def test_the_guard_keeps_its_session_and_logs_in_again_after_losing_it():
    server = FakeServer(read_only=True, clients=0)
    guard, endpoints, lines = make_guard(server, {})
    assert guard.check() == "read-only" and guard.check() == "read-only"
    assert len(server.logins) == 1

    def lost():
        raise pymysql.err.OperationalError(2013, "Lost connection")

    guard._conn.cursor = lost
    with pytest.raises(pymysql.err.OperationalError):
        guard.check()
    assert guard._conn is None
    assert guard.check() == "read-only" and len(server.logins) == 2


# ------------------------------------------------------------- over HTTP


def test_a_client_gone_before_the_answer_costs_no_traceback(capsys):
    server = health.HealthHTTPServer(("127.0.0.1", 0), health.make_handler(health_config()))
    try:
        for error in (ConnectionResetError(104, "Connection reset by peer"), BrokenPipeError(32, "Broken pipe")):
            try:
                raise error
            except OSError:
                server.handle_error(None, ("127.0.0.1", 1))
        assert capsys.readouterr().err == ""
        try:
            raise ValueError("a real fault")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 1))
        assert "ValueError: a real fault" in capsys.readouterr().err
    finally:
        server.server_close()


@pytest.fixture
def endpoint():
    state = {"server": FakeServer(read_only=False, clients=1)}
    endpoints = FakeEndpoints({("db1", 9201): 200})

    def connect(**kwargs):
        if state["server"] is None:
            raise pymysql.err.OperationalError(2002, "Can't connect to local server")
        return state["server"].connect(**kwargs)

    config = health_config(require_semi_sync=True)
    probe = health.PrimaryProbe(fetch=endpoints.fetch)
    server = health.HealthHTTPServer(("127.0.0.1", 0), health.make_handler(config, connect, probe))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def get(path):
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())

    state["endpoints"] = endpoints
    yield state, get, server.server_address[1]
    server.shutdown()


def test_http_answers_follow_the_server(endpoint):
    state, get, _port = endpoint
    assert get("/primary")[0] == 200
    # GET / gives the local verdict without asking other nodes
    calls = len(state["endpoints"].calls)
    code, body = get("/")
    assert code == 200 and body["local_primary"] is True and len(state["endpoints"].calls) == calls
    state["server"].set_clients(0)  # the replicas left
    code, body = get("/primary")
    assert code == 503 and "no semi-sync replica is connected" in body["reason"]
    assert body["state"]["semi_sync"] == {"enabled": True, "clients": 0, "active": True}
    assert get("/")[1]["local_primary"] is False
    state["server"] = FakeServer(read_only=True)  # fenced
    code, body = get("/primary")
    assert code == 503 and body["reason"] == "read-only: not the primary"
    state["server"] = None  # MariaDB down
    code, body = get("/primary")
    assert code == 503 and "does not answer" in body["reason"] and "2002" in body["error"]


def test_http_replica_asks_its_source(endpoint):
    state, get, _port = endpoint
    state["server"] = FakeServer(read_only=True, slave_status=dict(SLAVE_STATUS, Seconds_Behind_Master=0))
    code, body = get("/replica")
    assert code == 200 and body["reason"] == "healthy replica of the primary db1"
    assert get("/replica")[0] == 200
    assert state["endpoints"].calls == [("db1", 9201, "/primary", 1.0)]  # the second check used the cache
    code, body = get("/")
    assert code == 200 and body["state"]["replica"]["source"] == "db1"
    assert body["state"]["semi_sync"]["enabled"] is True


# ------------------------------------------------------------- config template


def render_config(host, hostvars, **overrides):
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["bool"] = lambda value: value if isinstance(value, bool) else str(value).lower() in ("true", "yes", "1")
    env.filters["to_nice_json"] = lambda value, indent=4: json.dumps(value, indent=indent, sort_keys=True)
    variables = {
        "ansible_managed": "Ansible managed", "inventory_hostname": host, "ansible_facts": {},
        "groups": {"dbservers": sorted(hostvars)}, "hostvars": hostvars,
        "mysql_server_group": "dbservers", "mysql_server_socket": "/run/mysqld/mysqld.sock",
        "mysql_server_monitor_user": "monitor", "mysql_server_monitor_password": "secret",
        "mysql_server_health_bind_address": "0.0.0.0", "mysql_server_health_port": 9201,
        "mysql_server_health_max_lag": 30, "mysql_server_semi_sync": True, "mysql_server_lossless": True,
        "_mysql_server_health_user": "distweb-health", "mysql_server_report_host": host,
        "_mysql_server_flavor_sql": FLAVORS["mariadb"]["_mysql_server_flavor_sql"],
        "_mysql_server_flavor_replica_status_columns": FLAVORS["mariadb"]["_mysql_server_flavor_replica_status_columns"],
    }
    variables.update(overrides)
    return json.loads(env.from_string(TEMPLATE.read_text()).render(variables))


HOSTVARS = {
    "server1": {"ansible_host": "10.0.0.11"},
    "server2": {"ansible_host": "10.0.0.12", "mysql_server_health_port": 9301},
    "server3": {},  # no ansible_host: its inventory name
    "server4": {"ansible_host": "2001:db8::14"},
}


def test_config_template_names_every_other_node_as_a_peer():
    config = render_config("server1", HOSTVARS)
    assert config["peers"] == ["10.0.0.12:9301", "server3:9201", "[2001:db8::14]:9201"]
    assert config["require_semi_sync"] is True and config["guard"] is True
    assert config["guard_user"] == "distweb-health"
    # what replicas call it (their Master_Host), each name once
    assert render_config("server1", HOSTVARS, ansible_host="10.0.0.11")["names"] == ["server1", "10.0.0.11"]
    assert render_config("server3", HOSTVARS)["peers"] == [
        "10.0.0.11:9201", "10.0.0.12:9301", "[2001:db8::14]:9201"]
    # every value the endpoint reads is one it knows
    assert set(config) - {"_comment"} <= set(health.DEFAULTS)
    # the flavour's SQL and columns, complete
    assert config["sql"]["replica_status"] == "SHOW SLAVE STATUS"
    assert config["columns"]["source_host"] == "Master_Host"
    assert config["sql"]["crash_repair_positions"] and health.can_repair(dict(health.DEFAULTS, **config))
    assert [health.parse_peer(p, 9201) for p in config["peers"]] == [
        ("10.0.0.12", 9301), ("server3", 9201), ("2001:db8::14", 9201)]


@pytest.mark.parametrize("semi_sync, lossless", [(True, False), (False, True), (False, False)])
def test_config_template_requires_semi_sync_only_when_lossless(semi_sync, lossless):
    config = render_config("server1", HOSTVARS, mysql_server_semi_sync=semi_sync, mysql_server_lossless=lossless)
    assert config["require_semi_sync"] is False and config["guard"] is False


# ------------------------------------------------------------ crash repair

OUT_OF_ORDER = {"Master_Host": "db1", "Slave_IO_Running": "Yes", "Slave_SQL_Running": "No",
                "Seconds_Behind_Master": None, "Last_SQL_Errno": 1950,
                "Last_SQL_Error": "An attempt was made to binlog GTID 0-11-101 which would create an out-of-order "
                                  "sequence number with existing GTID 0-11-101, and gtid strict mode is enabled",
                "Last_IO_Errno": 0, "Last_IO_Error": "", "Relay_Log_File": "relay-bin.000002", "Relay_Log_Pos": 670}


@pytest.mark.parametrize("binlog, slave, expected", [
    # a DDL binlogged and applied, its GTID not yet in gtid_slave_pos
    ("0-11-101", "0-11-100", "0-11-101"),
    # several domains: only the one behind moves
    ("0-11-101,1-11-7", "0-11-100,1-11-7", "0-11-101,1-11-7"),
    # a domain gtid_slave_pos has never seen
    ("0-11-5", "", "0-11-5"),
    # the failover's new primary wrote the last GTID: still replicated
    ("0-13-204", "0-11-200", "0-13-204"),
    # nothing is behind
    ("0-11-100", "0-11-100", None),
    ("0-11-99", "0-11-100", None),
    ("", "0-11-100", None),
    # this node wrote it itself (an old primary): a rejoin or rebuild, not a repair
    ("0-12-101", "0-11-100", None),
    ("0-11-101,1-12-3", "0-11-100", None),
])
def test_crash_repair_position(binlog, slave, expected):
    assert health.crash_repair_position(binlog, slave, 12) == expected


def make_repair(server):
    lines = []
    config = health_config()
    return health.Repair(config, connect=server.connect, log=lines.append), lines


def test_a_replica_stopped_by_a_crash_after_a_ddl_is_repaired_and_started():
    server = FakeServer(read_only=True, slave_status=dict(OUT_OF_ORDER))
    server.gtid_binlog_pos, server.gtid_slave_pos = "0-11-101", "0-11-100"
    repair, lines = make_repair(server)
    assert repair.check() == "repaired"
    assert server.gtid_slave_pos == "0-11-101" and server.sql_thread_starts == 1
    changes = [s for s in server.statements if not (isinstance(s, str) and s.startswith(("SELECT", "SHOW")))]
    assert changes == ["STOP SLAVE", ("SET GLOBAL gtid_slave_pos = %s", ("0-11-101",)), "START SLAVE"]
    assert lines == ["distweb-mysql-health repair: REPAIRED replication after a crash: gtid_slave_pos 0-11-100 -> "
                     "0-11-101 (the binary log holds those transactions: they were applied before the crash)"]
    login = server.logins[0]
    assert (login["user"], login["password"]) == ("distweb-health", "")
    # running again: nothing more to do
    assert repair.check() == "nothing to repair" and server.sql_thread_starts == 1


@pytest.mark.parametrize("status", [
    dict(OUT_OF_ORDER, Last_SQL_Errno=1062, Last_SQL_Error="Duplicate entry '5' for key 'PRIMARY'"),
    dict(OUT_OF_ORDER, Slave_SQL_Running="Yes"),  # the error is old, the thread runs
    dict(OUT_OF_ORDER, Last_SQL_Errno=0, Last_SQL_Error=""),  # stopped by hand (a failover, an operator)
])
def test_the_repair_touches_no_other_stop(status):
    server = FakeServer(read_only=True, slave_status=status)
    server.gtid_binlog_pos, server.gtid_slave_pos = "0-11-101", "0-11-100"
    repair, lines = make_repair(server)
    assert repair.check() == "nothing to repair"
    assert server.gtid_slave_pos == "0-11-100" and lines == []
    assert all(s in ("SELECT @@global.read_only", "SHOW SLAVE STATUS") for s in server.statements)


def test_the_repair_leaves_a_writable_node_alone():
    server = FakeServer(read_only=False, slave_status=dict(OUT_OF_ORDER))
    repair, lines = make_repair(server)
    assert repair.check() == "writable: not a replica"
    assert server.statements == ["SELECT @@global.read_only"]


def test_a_replica_holding_its_own_writes_is_refused_and_said_once():
    server = FakeServer(read_only=True, slave_status=dict(OUT_OF_ORDER))
    server.gtid_binlog_pos, server.gtid_slave_pos = "0-12-101", "0-11-100"  # 12 is this node
    repair, lines = make_repair(server)
    assert repair.check() == "refused"
    assert repair.check() == "refused"
    assert server.gtid_slave_pos == "0-11-100" and server.sql_thread_starts == 0
    assert len(lines) == 1 and "not repaired; rejoin or rebuild this replica" in lines[0]
    assert "0-12-101" in lines[0]


# --------------------------------------------- crash in a DDL: ddl recovery

RECOVERED_DROP = "use `foobar`; DROP TABLE IF EXISTS `t1`,`t2` /* generated by ddl recovery */"
SOURCE_DROP = "use `foobar`; DROP TABLE `t1`,`t2`,`t3`"
ALTER = "use `foobar`; ALTER TABLE t1 ADD COLUMN extra INT"


def recovered(own_statements, source_statement=SOURCE_DROP, before="0-13-7,0-11-100", slave="0-11-100",
              source_gtid="0-11-101", restarts=0):
    """A replica (server_id 12) killed while it applied the source's
    ``source_gtid``, whose ddl recovery binlogged ``own_statements`` (rows of
    gtid_rows, or statements: one transaction each) at its next start,
    restarted ``restarts`` times more; its SQL thread stopped on the
    source's transaction (GTID strict mode)."""
    server = FakeServer(read_only=True, slave_status=dict(OUT_OF_ORDER))
    logs = {"mysql-bin.000006": [binlog_file_start("mysql-bin.000006", "0-13-7,0-11-90")]
            + gtid_rows("mysql-bin.000006", "0-11-91", "BEGIN", "INSERT", "COMMIT")}
    rows, seq_no, state = [binlog_file_start("mysql-bin.000007", before)], int(slave.rsplit("-", 1)[1]), before
    for statement in own_statements:
        seq_no += 1
        rows += statement if isinstance(statement, list) else gtid_rows("mysql-bin.000007", "0-12-%d" % seq_no, statement)
        state = "%s,0-12-%d" % (before, seq_no)
    logs["mysql-bin.000007"] = rows
    for number in range(8, 8 + restarts):
        logs["mysql-bin.%06d" % number] = [binlog_file_start("mysql-bin.%06d" % number, state)]
    server.binlogs = logs
    server.gtid_binlog_pos, server.gtid_slave_pos, server.gtid_binlog_state = "0-12-%d" % seq_no, slave, state
    server.relay_log = gtid_rows("relay-bin.000002", source_gtid, source_statement)
    return server


def changes_made(server):
    return [s for s in server.statements if not (isinstance(s, str) and s.startswith(("SELECT", "SHOW")))
            and not (isinstance(s, tuple) and s[0].startswith("SHOW"))]


@pytest.mark.parametrize("restarts", [0, 2])
def test_a_drop_that_ddl_recovery_finished_is_applied_again_and_no_own_gtid_is_left(restarts):
    # DROP TABLE t1, t2, t3 killed after two of the tables: recovery
    # finishes (and binlogs, as this node's) the drop of those two only
    server = recovered([RECOVERED_DROP], restarts=restarts)
    repair, lines = make_repair(server)
    assert repair.check() == "repaired"
    assert changes_made(server) == [
        "STOP SLAVE", "RESET MASTER", ("SET GLOBAL gtid_binlog_state = %s", ("0-13-7,0-11-100",)),
        ("SET GLOBAL gtid_slave_pos = %s", ("0-11-100",)), "START SLAVE"]
    # the source's DROP of all three runs again (slave_ddl_exec_mode IDEMPOTENT)
    assert server.gtid_slave_pos == "0-11-100" and server.sql_thread_starts == 1
    assert "0-12-" not in server.gtid_binlog_state
    assert len(lines) == 1 and "REPAIRED replication after a crash in a DDL" in lines[0]
    assert RECOVERED_DROP in lines[0] and "the source's DDL applied again" in lines[0]


def test_a_binary_log_that_moves_while_the_repair_plans_is_left_alone():
    server = recovered([RECOVERED_DROP])

    def written_meanwhile():
        server.gtid_binlog_pos = "0-12-102"
    server.on_stop = written_meanwhile
    repair, lines = make_repair(server)
    assert repair.check() == "changed while planned" and lines == []
    assert changes_made(server) == ["STOP SLAVE", "START SLAVE"]
    assert server.gtid_slave_pos == "0-11-100" and "0-12-101" in server.gtid_binlog_state


def test_an_alter_that_ddl_recovery_finished_is_recorded_as_applied():
    server = recovered([ALTER], source_statement=ALTER)
    repair, _lines = make_repair(server)
    assert repair.check() == "repaired"
    assert ("SET GLOBAL gtid_binlog_state = %s", ("0-13-7,0-11-101",)) in server.statements
    assert server.gtid_slave_pos == "0-11-101" and server.gtid_binlog_state == "0-13-7,0-11-101"


def test_a_drop_that_cannot_run_twice_is_refused():
    server = recovered([RECOVERED_DROP])
    server.ddl_exec_mode = "STRICT"
    repair, lines = make_repair(server)
    assert repair.check() == "refused" and changes_made(server) == []
    assert "slave_ddl_exec_mode is not IDEMPOTENT" in lines[0]
    # with IF EXISTS it can
    server = recovered([RECOVERED_DROP], source_statement="DROP TABLE IF EXISTS `t1` /* generated by server */")
    server.ddl_exec_mode = "STRICT"
    assert make_repair(server)[0].check() == "repaired"


@pytest.mark.parametrize("own, source, why", [
    # a write made on this node: a transaction, not one statement
    ([gtid_rows("mysql-bin.000007", "0-12-101", "BEGIN", "INSERT", "COMMIT")], SOURCE_DROP,
     "is a transaction, not one DDL statement"),
    # a DDL run here by hand, not ddl recovery's
    (["use `foobar`; DROP TABLE `t1`"], SOURCE_DROP, "are not ddl recovery's completion"),
    (["use `foobar`; CREATE TABLE x (id INT)"], SOURCE_DROP, "are not ddl recovery's completion"),
    # a recovered drop while the source's next transaction is no drop
    ([RECOVERED_DROP], ALTER, "are not ddl recovery's completion"),
    ([RECOVERED_DROP], "BEGIN", "are not ddl recovery's completion"),
    # an ALTER that is not the source's
    (["use `foobar`; ALTER TABLE t1 DROP COLUMN extra"], ALTER, "are not ddl recovery's completion"),
    # two statements of its own: only drops may be several
    ([ALTER, ALTER], ALTER, "are not ddl recovery's completion"),
    # a replicated transaction after its own: not a recovery at startup
    ([RECOVERED_DROP, gtid_rows("mysql-bin.000007", "0-11-102", "BEGIN", "INSERT", "COMMIT")], SOURCE_DROP,
     "of server 11 follows"),
])
def test_anything_but_ddl_recoverys_completion_of_the_sources_ddl_is_refused(own, source, why):
    server = recovered(own, source_statement=source)
    repair, lines = make_repair(server)
    assert repair.check() == "refused" and changes_made(server) == []
    assert why in lines[0] and "rejoin or rebuild this replica" in lines[0]


@pytest.mark.parametrize("changes, why", [
    # the binary log was behind or ahead of gtid_slave_pos before
    (dict(before="0-13-7,0-11-99"), "was not at gtid_slave_pos"),
    (dict(before="0-13-7,0-11-100", slave="0-11-99", source_gtid="0-11-100"), "was not at gtid_slave_pos"),
    # the relay log's next transaction is not the one after gtid_slave_pos
    (dict(source_gtid="0-11-105"), "is not the one after gtid_slave_pos"),
    (dict(source_gtid="1-11-101"), "is not the one after gtid_slave_pos"),
])
def test_a_recovery_that_does_not_line_up_with_the_positions_is_refused(changes, why):
    server = recovered([RECOVERED_DROP], **changes)
    repair, lines = make_repair(server)
    assert repair.check() == "refused" and changes_made(server) == []
    assert why in lines[0]


def test_the_recovery_repair_reads_no_more_than_its_bound():
    server = recovered([RECOVERED_DROP] * health.RECOVERY_MAX_EVENTS)
    repair, lines = make_repair(server)
    assert repair.check() == "refused" and changes_made(server) == []
    assert "events a log past gtid_slave_pos" in lines[0]


def test_parse_binlog_events_of_a_real_recovery():
    # SHOW BINLOG EVENTS of a MariaDB 10.11 replica killed in a DROP TABLE
    rows = [("mysql-bin.000033", 4, "Format_desc", 13, 256, "Server ver: 10.11.18-MariaDB-0+deb12u1-log, Binlog ver: 4"),
            ("mysql-bin.000033", 256, "Gtid_list", 13, 315, "[0-2887526413-3401,0-2887526411-3406]"),
            ("mysql-bin.000033", 315, "Binlog_checkpoint", 13, 358, "mysql-bin.000033"),
            ("mysql-bin.000033", 358, "Gtid", 13, 400, "GTID 0-2887526413-3407"),
            ("mysql-bin.000033", 400, "Query", 13, 529,
             "use `foobar`; DROP TABLE IF EXISTS `sim_p` /* generated by ddl recovery */")]
    gtid_list, groups = health.parse_binlog_events(rows)
    assert gtid_list == "0-2887526413-3401,0-2887526411-3406"
    assert groups == [("0-2887526413-3407", [("Query", rows[-1][5])])]
    assert health.format_gtid_state(health.parse_gtid_state("[0-11-3406,0-13-3401,1-11-4]")) == "0-13-3401,0-11-3406,1-11-4"
    assert health.state_position(health.parse_gtid_state(gtid_list)) == {0: (2887526411, 3406)}


def test_the_recovery_repair_runs_only_for_a_flavour_that_has_it():
    assert health.can_repair_recovered_ddl(health_config("mariadb"))
    assert not health.can_repair_recovered_ddl(health_config("mysql-8.4"))


def test_a_stopped_replica_says_why():
    state = health.read_state(health_config(), FakeServer(read_only=True, slave_status=OUT_OF_ORDER).connect)
    code, reason = health.judge("/replica", state, 30, True, source_ok)
    assert code == 503
    assert reason.startswith("the SQL thread does not run (error 1950: An attempt was made to binlog GTID 0-11-101")


def test_peers_that_do_not_answer_cost_a_primary_less_than_a_router_check():
    # After a failover the old primary is dead or frozen: the new primary's
    # /primary asks it (and the other peer) before answering. Were that to
    # take the routers' whole check timeout, the new primary would miss
    # checks, and the routers would hold its writes back or mark it down.
    router = (ROOT / "roles" / "db_router" / "templates" / "dbrouter.cfg.j2").read_text()
    found = re.search(r"timeout check (\d+(?:\.\d+)?)(ms|s)\b", router)
    assert found, "the router template sets no check timeout"
    check = float(found.group(1)) / (1000 if found.group(2) == "ms" else 1)
    # a three-node cluster: both peers silent, asked one after the other
    assert 2 * health.DEFAULTS["peer_timeout"] < check


def test_a_long_recovered_drop_keeps_its_comment_in_the_log_line():
    drop = "DROP TABLE IF EXISTS %s /* generated by ddl recovery */" % ",".join("`crash_drop`.`t%d`" % i for i in range(900))
    server = recovered([drop])
    repair, lines = make_repair(server)
    assert repair.check() == "repaired"
    assert "DROP TABLE IF EXISTS `crash_drop`.`t0`" in lines[0] and "generated by ddl recovery" in lines[0]
    assert len(lines[0]) < 1000
