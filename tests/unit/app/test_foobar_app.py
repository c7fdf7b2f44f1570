"""Unit tests of the foobar WSGI application (roles/app/files/foobar).

The application is called directly through its WSGI entry point; PyMySQL's
connect() is replaced by a fake that simulates a primary and replicas. The
metrics tests read prometheus_client's registry and parse /metrics with its
parsers; its multiprocess mode (chosen at import) runs in a fresh interpreter.
Run: .venv/bin/pytest -q tests/unit/app
"""

import importlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pymysql
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

APP_DIR = Path(__file__).resolve().parents[3] / "roles" / "app" / "files" / "foobar"
# Never leave a __pycache__ in the role's files: the role copies that directory.
sys.dont_write_bytecode = True
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

foobar_app = importlib.import_module("foobar_app")

PRIMARY = {"host": "db1", "port": 3306}
REPLICA_A = {"host": "db2", "port": 3306}
REPLICA_B = {"host": "db3", "port": 3307}


# ---------------------------------------------------------------------------
# A fake PyMySQL


class FakeNode:
    """One simulated database server."""

    def __init__(self, label):
        self.label = label
        self.up = True
        self.has_table = True
        self.rows = {}
        self.next_id = 1
        self.seq = 100
        self.gtid_wait_result = 0
        self.gtid_wait_error = None
        self.insert_error = None
        self.query_error = None
        self.last_gtid_supported = True
        self.statements = []

    def add_row(self, record_id, value, server="web1"):
        self.rows[record_id] = (record_id, value, server, "2024-01-01T00:00:00.000001")
        self.next_id = max(self.next_id, record_id + 1)

    def sql(self, prefix):
        return [s for s in self.statements if s[0].startswith(prefix)]


def _no_table():
    return pymysql.err.ProgrammingError(1146, "Table 'foobar.records' doesn't exist")


class FakeCursor:
    def __init__(self, conn):
        self.conn = conn
        self.node = conn.node
        self.result = []
        self.lastrowid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=None):
        node = self.node
        node.statements.append((sql, args))
        if not node.up:
            raise pymysql.err.OperationalError(2013, "Lost connection to server during query")
        if sql == "SELECT 1":
            self.result = [(1,)]
        elif sql.startswith("INSERT INTO records"):
            if node.insert_error:
                raise node.insert_error
            if not node.has_table:
                raise _no_table()
            value, server = args
            record_id = node.next_id
            node.next_id += 1
            node.add_row(record_id, value, server)
            node.seq += 1
            self.conn.last_gtid = "0-1-%d" % node.seq
            self.lastrowid = record_id
            self.result = []
        elif sql == "SELECT @@last_gtid":
            if not node.last_gtid_supported:
                raise pymysql.err.OperationalError(1193, "Unknown system variable 'last_gtid'")
            self.result = [(self.conn.last_gtid,)]
        elif sql.startswith("SELECT MASTER_GTID_WAIT"):
            if node.gtid_wait_error:
                raise node.gtid_wait_error
            self.result = [(node.gtid_wait_result,)]
        elif sql.startswith("SELECT id, value, server, created_at FROM records WHERE id"):
            if node.query_error:
                raise node.query_error
            if not node.has_table:
                raise _no_table()
            row = node.rows.get(args[0])
            self.result = [row] if row else []
        elif sql.startswith("SELECT id, value, server, created_at FROM records ORDER BY"):
            if node.query_error:
                raise node.query_error
            if not node.has_table:
                raise _no_table()
            limit = args[0]
            self.result = [node.rows[k] for k in sorted(node.rows, reverse=True)][:limit]
        else:
            raise AssertionError("unexpected SQL: %s" % sql)

    def fetchone(self):
        return self.result[0] if self.result else None

    def fetchall(self):
        return list(self.result)


class FakeConnection:
    def __init__(self, node, kwargs):
        self.node = node
        self.kwargs = kwargs
        self.last_gtid = ""
        self.closed = False
        self.commits = 0

    def cursor(self):
        return FakeCursor(self)

    def commit(self):
        self.commits += 1

    def close(self):
        self.closed = True


class FakeDB:
    """Every simulated node, by "host:port", and the log of connections."""

    def __init__(self):
        self.nodes = {}
        self.connections = []

    def __getitem__(self, label):
        if label not in self.nodes:
            self.nodes[label] = FakeNode(label)
        return self.nodes[label]

    def connect(self, **kwargs):
        label = "%s:%d" % (kwargs["host"], kwargs["port"])
        node = self[label]
        if not node.up:
            raise pymysql.err.OperationalError(
                2003, "Can't connect to MySQL server on '%s' (timed out)" % kwargs["host"])
        conn = FakeConnection(node, kwargs)
        self.connections.append(conn)
        return conn

    def connected_to(self):
        return [c.node.label for c in self.connections]


# ---------------------------------------------------------------------------
# Fixtures and helpers


_DEFAULT = object()


def make_config(server_name="web1", primary=_DEFAULT, replicas=(REPLICA_A, REPLICA_B), **db):
    primary = dict(PRIMARY) if primary is _DEFAULT else primary
    database = {
        "name": "foobar",
        "user": "foobar",
        "password": "s3cret",
        "primary": primary,
        "replicas": list(replicas),
        "connect_timeout": 1,
        "read_your_write_timeout": 2,
    }
    database.update(db)
    return {"server_name": server_name, "database": database}


class ConfigFile:
    def __init__(self, path):
        self.path = path
        self.bumps = 0

    def write(self, data):
        """Write the file and move its mtime forward (coarse clocks would not)."""
        text = data if isinstance(data, str) else json.dumps(data)
        self.path.write_text(text, encoding="utf-8")
        self.bumps += 1
        stamp = 1_700_000_000 + self.bumps * 10
        os.utime(self.path, (stamp, stamp))


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    cfg = ConfigFile(tmp_path / "foobar.json")
    cfg.write(make_config())
    monkeypatch.setenv("FOOBAR_CONFIG", str(cfg.path))
    return cfg


@pytest.fixture
def db(monkeypatch, config_file):
    fake = FakeDB()
    monkeypatch.setattr(foobar_app.pymysql, "connect", fake.connect)
    monkeypatch.setattr(foobar_app, "CONFIG", foobar_app.ConfigStore())
    # Deterministic replica choice: in the configured order.
    monkeypatch.setattr(foobar_app, "replica_order", list)
    # Writes that wrote nothing are retried: briefly, in tests.
    monkeypatch.setattr(foobar_app, "WRITE_RETRY_SECONDS", 0.3)
    monkeypatch.setattr(foobar_app, "WRITE_RETRY_PAUSE", 0.05)
    return fake


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.code = int(status.split()[0])
        self.headers = headers
        self.body = body

    def header(self, name):
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self):
        assert self.header("Content-Type").startswith("application/json")
        return json.loads(self.body.decode("utf-8"))


def call(method, path, query="", body=None, content_length=None):
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
    }
    if body is not None or content_length is not None:
        environ["CONTENT_LENGTH"] = str(len(raw) if content_length is None else content_length)
        environ["CONTENT_TYPE"] = "application/json"
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = status
        captured["headers"] = headers

    chunks = foobar_app.application(environ, start_response)
    return Response(captured["status"], captured["headers"], b"".join(chunks))


# ---------------------------------------------------------------------------
# Routing, status codes, X-Served-By


def test_index_names_the_server(db):
    resp = call("GET", "/")
    assert resp.code == 200
    assert resp.header("Content-Type") == "text/html; charset=utf-8"
    assert b"web1" in resp.body
    assert b"/static/style.css" in resp.body
    assert resp.header("X-Served-By") == "web1"
    assert resp.header("Content-Length") == str(len(resp.body))
    assert db.connections == [], "the home page must not need the database"


def test_index_escapes_the_server_name(db, config_file):
    config_file.write(make_config(server_name="<b>web&1</b>"))
    resp = call("GET", "/")
    assert b"&lt;b&gt;web&amp;1&lt;/b&gt;" in resp.body
    assert b"<b>web" not in resp.body


def test_head_has_headers_but_no_body(db):
    resp = call("HEAD", "/")
    assert resp.code == 200
    assert resp.body == b""
    assert int(resp.header("Content-Length")) > 0
    assert resp.header("X-Served-By") == "web1"


@pytest.mark.parametrize("path", ["/nope", "/api", "/api/records/abc", "/api/records/1/x", "/static/style.css"])
def test_unknown_path_is_404_json(db, path):
    resp = call("GET", path)
    assert resp.code == 404
    assert resp.json()["error"] == "not found"
    assert resp.header("X-Served-By") == "web1"


@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/", "GET, HEAD"),
    ("DELETE", "/health", "GET, HEAD"),
    ("PUT", "/api/records", "GET, HEAD, POST"),
    ("POST", "/api/records/1", "GET, HEAD"),
])
def test_wrong_method_is_405(db, method, path, allow):
    resp = call(method, path, body={"value": "x"})
    assert resp.code == 405
    assert resp.header("Allow") == allow
    assert resp.json()["status"] == 405
    assert resp.header("X-Served-By") == "web1"
    assert db["db1:3306"].sql("INSERT") == []


def test_trailing_slash_is_accepted(db):
    assert call("GET", "/health/").code == 200


def test_unexpected_error_is_500_json_without_traceback(db, monkeypatch):
    def boom(environ, settings):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(foobar_app, "handle_index", boom)
    resp = call("GET", "/")
    assert resp.code == 500
    assert resp.json() == {"error": "internal server error", "status": 500}
    assert b"secret internals" not in resp.body
    assert b"Traceback" not in resp.body
    assert resp.header("X-Served-By") == "web1"


def test_served_by_defaults_to_the_host_name(db, monkeypatch, tmp_path):
    monkeypatch.setenv("FOOBAR_CONFIG", str(tmp_path / "missing.json"))
    monkeypatch.setattr(foobar_app.socket, "gethostname", lambda: "host-x")
    resp = call("GET", "/")
    assert resp.code == 200
    assert resp.header("X-Served-By") == "host-x"


def test_served_by_header_is_sanitised(db, config_file):
    config_file.write(make_config(server_name="web1\r\nSet-Cookie: x=1"))
    resp = call("GET", "/")
    assert resp.header("X-Served-By") == "web1Set-Cookie: x=1"


# ---------------------------------------------------------------------------
# Writes


def test_post_inserts_on_the_primary(db):
    resp = call("POST", "/api/records", body={"value": "hello"})
    assert resp.code == 201
    data = resp.json()
    assert data == {"id": 1, "value": "hello", "server": "web1", "gtid": "0-1-101"}
    assert resp.header("Location") == "/api/records/1"
    assert resp.header("X-Served-By") == "web1"
    primary = db["db1:3306"]
    assert primary.sql("INSERT") == [("INSERT INTO records (value, server) VALUES (%s, %s)", ("hello", "web1"))]
    assert db.connected_to() == ["db1:3306"]
    conn = db.connections[0]
    assert conn.kwargs["autocommit"] is True
    assert conn.kwargs["database"] == "foobar"
    assert conn.kwargs["user"] == "foobar"
    assert conn.kwargs["connect_timeout"] == 1
    assert conn._read_timeout == foobar_app.DEFAULT_QUERY_TIMEOUT
    assert conn.commits == 1
    assert conn.closed


def test_a_missing_table_is_an_error_that_names_the_deploy_and_no_ddl_is_issued(db):
    # The schema belongs to the deploy (mysql_primary_databases' tables): the
    # app never creates it, so no DDL ever reaches a replica from here.
    db["db1:3306"].has_table = False
    resp = call("POST", "/api/records", body={"value": "a"})
    assert resp.code == 503
    assert resp.json()["error"] == foobar_app.MISSING_TABLE_MESSAGE
    assert "site.yml" in foobar_app.MISSING_TABLE_MESSAGE
    # one attempt: a missing table is not a primary that is briefly away
    assert len(db["db1:3306"].sql("INSERT")) == 1
    db["db1:3306"].has_table = True
    assert call("POST", "/api/records", body={"value": "b"}).code == 201
    for node in ("db1:3306", "db2:3306", "db3:3307"):
        assert [s for s in db[node].statements if s[0].split()[0].upper() in ("CREATE", "ALTER", "DROP")] == []


@pytest.mark.parametrize("body,message", [
    (b"not json", "JSON object"),
    (b"\xff\xfe", "JSON object"),
    (b"", "JSON object"),
    (b"[1, 2]", "JSON object"),
    (b"{}", 'missing "value"'),
    (b'{"value": 42}', "must be a string"),
    (b'{"value": null}', "must be a string"),
    (json.dumps({"value": "x" * 256}).encode(), "longer than 255"),
])
def test_post_validation_errors_are_400(db, body, message):
    resp = call("POST", "/api/records", body=body)
    assert resp.code == 400
    data = resp.json()
    assert message in data["error"]
    assert data["status"] == 400
    assert resp.header("X-Served-By") == "web1"
    assert db.connections == []


def test_post_accepts_255_characters(db):
    value = "é" * 255
    resp = call("POST", "/api/records", body={"value": value})
    assert resp.code == 201
    assert resp.json()["value"] == value


def test_post_body_too_large_is_413(db):
    resp = call("POST", "/api/records", body=b"{}", content_length=10_000_000)
    assert resp.code == 413
    assert db.connections == []


def test_post_with_primary_down_is_503(db):
    db["db1:3306"].up = False
    resp = call("POST", "/api/records", body={"value": "hello"})
    assert resp.code == 503
    data = resp.json()
    assert data["status"] == 503
    assert "primary" in data["error"]
    assert b"Traceback" not in resp.body
    assert b"Can't connect" not in resp.body
    assert resp.header("X-Served-By") == "web1"


def test_post_refused_as_read_only_is_retried_then_503(db):
    # a fenced or not yet promoted node: nothing was written, so the write is
    # sent again until WRITE_RETRY_SECONDS have passed
    db["db1:3306"].insert_error = pymysql.err.OperationalError(1290, "--read-only")
    resp = call("POST", "/api/records", body={"value": "hello"})
    assert resp.code == 503
    assert "read-only" not in resp.json()["error"]
    assert len(db.connections) > 1 and all(c.closed for c in db.connections)


def test_post_succeeds_once_the_primary_is_writable_again(db, monkeypatch):
    # the router still sends the write to the old primary for a moment after
    # a switchover: the app retries and the client sees a success
    node = db["db1:3306"]
    node.insert_error = pymysql.err.OperationalError(1290, "--read-only")
    real_sleep = foobar_app.time.sleep

    def sleep_then_promote(seconds):
        node.insert_error = None
        real_sleep(seconds)

    monkeypatch.setattr(foobar_app.time, "sleep", sleep_then_promote)
    resp = call("POST", "/api/records", body={"value": "hello"})
    assert resp.code == 201, resp.body
    assert len(db.connections) == 2


def test_post_whose_connection_broke_after_sending_is_not_retried(db):
    # the INSERT may have committed: sending it again could write it twice
    db["db1:3306"].insert_error = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    resp = call("POST", "/api/records", body={"value": "hello"})
    assert resp.code == 503
    assert len(db.connections) == 1


def test_post_without_a_primary_configured_is_503(db, config_file):
    config_file.write(make_config(primary=None))
    resp = call("POST", "/api/records", body={"value": "hello"})
    assert resp.code == 503
    assert db.connections == []


def test_post_without_last_gtid_support_still_succeeds(db):
    db["db1:3306"].last_gtid_supported = False
    resp = call("POST", "/api/records", body={"value": "hello"})
    assert resp.code == 201
    assert resp.json()["gtid"] is None


# ---------------------------------------------------------------------------
# Reads


def seed(db, *labels):
    for label in labels:
        for i in range(1, 31):
            db[label].add_row(i, "value-%d" % i)


def test_list_reads_from_a_replica(db):
    seed(db, "db1:3306", "db2:3306", "db3:3307")
    resp = call("GET", "/api/records")
    assert resp.code == 200
    data = resp.json()
    assert data["source"] == "replica:db2:3306"
    assert data["served_by"] == "web1"
    assert data["count"] == 20 and data["limit"] == 20
    assert [r["id"] for r in data["records"]][:3] == [30, 29, 28]
    assert db.connected_to() == ["db2:3306"]
    assert db["db1:3306"].statements == []


@pytest.mark.parametrize("query,limit", [("limit=5", 5), ("limit=100", 100), ("limit=500", 100), ("limit=", 20)])
def test_list_limit(db, query, limit):
    seed(db, "db2:3306")
    resp = call("GET", "/api/records", query=query)
    assert resp.code == 200
    assert resp.json()["limit"] == limit
    assert db["db2:3306"].sql("SELECT id")[0][1] == (limit,)


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=-3", "limit=1.5"])
def test_list_bad_limit_is_400(db, query):
    resp = call("GET", "/api/records", query=query)
    assert resp.code == 400
    assert db.connections == []


def test_get_one_from_a_replica(db):
    seed(db, "db2:3306")
    resp = call("GET", "/api/records/7")
    assert resp.code == 200
    data = resp.json()
    assert data["id"] == 7 and data["value"] == "value-7"
    assert data["source"] == "replica:db2:3306"
    assert data["served_by"] == "web1"
    assert resp.header("X-Served-By") == "web1"


def test_get_missing_record_is_404(db):
    resp = call("GET", "/api/records/999")
    assert resp.code == 404
    assert resp.json()["source"] == "replica:db2:3306"


def test_read_before_any_write_finds_nothing(db):
    for label in ("db1:3306", "db2:3306", "db3:3307"):
        db[label].has_table = False
    resp = call("GET", "/api/records")
    assert resp.code == 200
    assert resp.json()["records"] == []
    assert call("GET", "/api/records/1").code == 404


def test_unreachable_replica_is_skipped(db):
    seed(db, "db3:3307")
    db["db2:3306"].up = False
    resp = call("GET", "/api/records/3")
    assert resp.code == 200
    assert resp.json()["source"] == "replica:db3:3307"


def test_failing_replica_query_moves_to_the_next_replica(db):
    seed(db, "db3:3307")
    db["db2:3306"].query_error = pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
    resp = call("GET", "/api/records/3")
    assert resp.code == 200
    assert resp.json()["source"] == "replica:db3:3307"
    assert db.connected_to() == ["db2:3306", "db3:3307"]
    assert all(c.closed for c in db.connections)


def test_all_replicas_down_falls_back_to_the_primary(db):
    seed(db, "db1:3306")
    db["db2:3306"].up = False
    db["db3:3307"].up = False
    resp = call("GET", "/api/records")
    assert resp.code == 200
    assert resp.json()["source"] == "primary"
    assert db.connected_to() == ["db1:3306"]


def test_no_replicas_configured_reads_the_primary(db, config_file):
    config_file.write(make_config(replicas=()))
    seed(db, "db1:3306")
    resp = call("GET", "/api/records/2")
    assert resp.json()["source"] == "primary"


def test_every_node_down_is_503(db):
    for label in ("db1:3306", "db2:3306", "db3:3307"):
        db[label].up = False
    resp = call("GET", "/api/records")
    assert resp.code == 503
    assert resp.json()["status"] == 503
    assert resp.header("X-Served-By") == "web1"


def test_replica_choice_is_random(monkeypatch):
    nodes = [foobar_app.Node("r%d" % i) for i in range(5)]
    seen = set()
    for _attempt in range(50):
        order = foobar_app.replica_order(nodes)
        assert sorted(n.host for n in order) == [n.host for n in nodes]
        seen.add(order[0].host)
    assert len(seen) > 1


# ---------------------------------------------------------------------------
# Read-your-write


def test_after_gtid_waits_on_the_replica_then_reads_there(db):
    seed(db, "db2:3306")
    resp = call("GET", "/api/records/5", query="after_gtid=0-1-101")
    assert resp.code == 200
    assert resp.json()["source"] == "replica:db2:3306"
    replica = db["db2:3306"]
    assert replica.sql("SELECT MASTER_GTID_WAIT") == [("SELECT MASTER_GTID_WAIT(%s, %s)", ("0-1-101", 2.0))]
    # The wait comes before the read, on the same connection.
    assert replica.statements[0][0].startswith("SELECT MASTER_GTID_WAIT")
    assert db.connected_to() == ["db2:3306"]
    # The greeting is bounded by the connect timeout; the statements leave room for the wait.
    conn = db.connections[0]
    assert conn.kwargs["read_timeout"] == 1
    assert conn._read_timeout >= 2.0 + 1


def test_after_gtid_timeout_reads_from_the_primary(db):
    seed(db, "db1:3306", "db2:3306")
    db["db2:3306"].gtid_wait_result = -1
    resp = call("GET", "/api/records/5", query="after_gtid=0-1-101")
    assert resp.code == 200
    assert resp.json()["source"] == "primary"
    assert db.connected_to() == ["db2:3306", "db1:3306"]
    # The lagging replica was not asked for the record, nor was another replica.
    assert db["db2:3306"].sql("SELECT id") == []
    assert db["db3:3307"].statements == []


def test_after_gtid_null_result_reads_from_the_primary(db):
    seed(db, "db1:3306")
    db["db2:3306"].gtid_wait_result = None
    assert call("GET", "/api/records", query="after_gtid=0-1-5").json()["source"] == "primary"


def test_after_gtid_error_reads_from_the_primary(db):
    seed(db, "db1:3306")
    db["db2:3306"].gtid_wait_error = pymysql.err.OperationalError(2013, "Lost connection")
    resp = call("GET", "/api/records", query="after_gtid=0-1-5")
    assert resp.code == 200
    assert resp.json()["source"] == "primary"


def test_after_gtid_skips_unreachable_replicas_before_waiting(db):
    seed(db, "db3:3307")
    db["db2:3306"].up = False
    resp = call("GET", "/api/records/1", query="after_gtid=0-1-5")
    assert resp.json()["source"] == "replica:db3:3307"
    assert len(db["db3:3307"].sql("SELECT MASTER_GTID_WAIT")) == 1


def test_after_gtid_uses_the_configured_timeout(db, config_file):
    config_file.write(make_config(read_your_write_timeout=0.5))
    seed(db, "db2:3306")
    call("GET", "/api/records/1", query="after_gtid=0-1-5")
    assert db["db2:3306"].sql("SELECT MASTER_GTID_WAIT")[0][1] == ("0-1-5", 0.5)


def test_after_gtid_accepts_multi_domain_positions(db):
    seed(db, "db2:3306")
    resp = call("GET", "/api/records/1", query="after_gtid=0-1-5%2C1-2-9")
    assert resp.code == 200
    assert db["db2:3306"].sql("SELECT MASTER_GTID_WAIT")[0][1][0] == "0-1-5,1-2-9"


@pytest.mark.parametrize("gtid", ["abc", "0-1", "1-2-3; DROP TABLE records", "0-1-5,"])
def test_bad_after_gtid_is_400(db, gtid):
    resp = call("GET", "/api/records", query="after_gtid=" + gtid.replace(";", "%3B").replace(" ", "+"))
    assert resp.code == 400
    assert db.connections == []


def test_empty_after_gtid_is_ignored(db):
    seed(db, "db2:3306")
    resp = call("GET", "/api/records", query="after_gtid=")
    assert resp.json()["source"] == "replica:db2:3306"
    assert db["db2:3306"].sql("SELECT MASTER_GTID_WAIT") == []


def test_consistency_primary_reads_from_the_primary(db):
    seed(db, "db1:3306")
    resp = call("GET", "/api/records/4", query="consistency=primary")
    assert resp.code == 200
    assert resp.json()["source"] == "primary"
    assert db.connected_to() == ["db1:3306"]


def test_consistency_primary_wins_over_after_gtid(db):
    seed(db, "db1:3306")
    resp = call("GET", "/api/records", query="consistency=primary&after_gtid=0-1-5")
    assert resp.json()["source"] == "primary"
    assert db.connected_to() == ["db1:3306"]


def test_bad_consistency_is_400(db):
    assert call("GET", "/api/records", query="consistency=strong").code == 400


def test_write_then_read_your_write(db):
    """The documented flow: POST, then GET with the returned gtid."""
    created = call("POST", "/api/records", body={"value": "mine"}).json()
    db["db2:3306"].gtid_wait_result = -1  # the replica lags behind
    resp = call("GET", "/api/records/%d" % created["id"], query="after_gtid=" + created["gtid"])
    assert resp.code == 200
    data = resp.json()
    assert data["value"] == "mine" and data["source"] == "primary"


# ---------------------------------------------------------------------------
# Configuration reload


def test_config_is_reloaded_when_the_file_changes(db, config_file):
    assert call("GET", "/").header("X-Served-By") == "web1"
    config_file.write(make_config(server_name="web9"))
    assert call("GET", "/").header("X-Served-By") == "web9"


def test_failover_moves_writes_without_a_restart(db, config_file):
    call("POST", "/api/records", body={"value": "before"})
    config_file.write(make_config(primary=REPLICA_A, replicas=[REPLICA_B]))
    call("POST", "/api/records", body={"value": "after"})
    assert [s[1][0] for s in db["db1:3306"].sql("INSERT")] == ["before"]
    assert [s[1][0] for s in db["db2:3306"].sql("INSERT")] == ["after"]


def test_config_is_parsed_only_when_it_changes(db, config_file, monkeypatch):
    calls = []
    real = foobar_app.parse_config
    monkeypatch.setattr(foobar_app, "parse_config", lambda data: calls.append(1) or real(data))
    for _request in range(5):
        call("GET", "/")
    assert len(calls) == 1
    config_file.write(make_config(server_name="web2"))
    call("GET", "/")
    call("GET", "/")
    assert len(calls) == 2


def test_invalid_config_keeps_the_previous_one(db, config_file):
    assert call("GET", "/").header("X-Served-By") == "web1"
    config_file.write('{"server_name": "half-writ')
    resp = call("GET", "/")
    assert resp.code == 200
    assert resp.header("X-Served-By") == "web1"
    config_file.write(make_config(server_name="web3"))
    assert call("GET", "/").header("X-Served-By") == "web3"


def test_invalid_config_values_keep_the_previous_one(db, config_file):
    call("GET", "/")
    config_file.write(make_config(primary={"host": "db1", "port": "not-a-port"}))
    assert call("GET", "/").header("X-Served-By") == "web1"


def test_config_defaults():
    settings = foobar_app.parse_config({"database": {"primary": {"host": "db1"}}})
    assert settings.primary == foobar_app.Node("db1", 3306)
    assert settings.replicas == ()
    assert settings.connect_timeout == 1.0
    assert settings.read_your_write_timeout == 2.0
    assert settings.server_name


def test_config_path_defaults_to_etc(monkeypatch):
    monkeypatch.delenv("FOOBAR_CONFIG", raising=False)
    seen = []

    def fake_stat(path):
        seen.append(path)
        raise FileNotFoundError(path)

    monkeypatch.setattr(foobar_app.os, "stat", fake_stat)
    store = foobar_app.ConfigStore()
    settings = store.get()
    assert seen == ["/etc/foobar/foobar.json"]
    assert not settings.database_configured


# ---------------------------------------------------------------------------
# Health


def test_health_ok(db):
    resp = call("GET", "/health")
    assert resp.code == 200
    assert resp.json() == {
        "status": "ok",
        "server": "web1",
        "database": {"primary": True, "replicas": {"db2:3306": True, "db3:3307": True}},
    }
    assert resp.header("X-Served-By") == "web1"
    assert resp.header("Cache-Control") == "no-store"
    assert sorted(db.connected_to()) == ["db1:3306", "db2:3306", "db3:3307"]
    for conn in db.connections:
        assert conn.kwargs["connect_timeout"] == 1
        assert conn.kwargs["read_timeout"] == 1
        assert conn._read_timeout == 1
        assert conn.node.statements == [("SELECT 1", None)]
        assert conn.closed


def test_health_ok_with_a_replica_down(db):
    db["db3:3307"].up = False
    resp = call("GET", "/health")
    assert resp.code == 200
    data = resp.json()
    assert data["status"] == "ok"
    assert data["database"]["replicas"] == {"db2:3306": True, "db3:3307": False}


def test_health_degraded_when_only_the_primary_is_down(db):
    db["db1:3306"].up = False
    resp = call("GET", "/health")
    assert resp.code == 200
    data = resp.json()
    assert data["status"] == "degraded"
    assert data["database"]["primary"] is False


def test_health_down_when_no_node_answers(db):
    for label in ("db1:3306", "db2:3306", "db3:3307"):
        db[label].up = False
    resp = call("GET", "/health")
    assert resp.code == 503
    assert resp.json() == {
        "status": "down",
        "server": "web1",
        "database": {"primary": False, "replicas": {"db2:3306": False, "db3:3307": False}},
    }
    assert resp.header("X-Served-By") == "web1"


def test_live_answers_while_no_database_node_does(db):
    # the load balancer's check: a database outage is not this server's
    assert call("GET", "/live").code == 200
    assert db.connections == []  # it asked no database node (/health would)
    for label in ("db1:3306", "db2:3306", "db3:3307"):
        db[label].up = False
    resp = call("GET", "/live")
    assert resp.code == 200
    assert resp.json() == {"status": "alive", "server": "web1"}
    assert resp.header("X-Served-By") == "web1"
    assert call("POST", "/live").code == 405


def test_health_down_without_database_config(db, config_file):
    config_file.write({"server_name": "web1"})
    resp = call("GET", "/health")
    assert resp.code == 503
    assert resp.json()["database"] == {"primary": False, "replicas": {}}


def test_health_primary_only(db, config_file):
    config_file.write(make_config(replicas=()))
    resp = call("GET", "/health")
    assert resp.code == 200
    assert resp.json()["status"] == "ok"


def test_health_uses_the_configured_connect_timeout(db, config_file):
    config_file.write(make_config(connect_timeout=0.25))
    call("GET", "/health")
    assert {c.kwargs["connect_timeout"] for c in db.connections} == {0.25}


# ---------------------------------------------------------------------------
# Metrics (prometheus_client)

@pytest.fixture
def metrics(db, monkeypatch):
    """A fresh Metrics in a registry of its own (the default one keeps the
    counts of every other test)."""
    fresh = foobar_app.Metrics(registry=CollectorRegistry())
    monkeypatch.setattr(foobar_app, "METRICS", fresh)
    return fresh


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels) or 0.0


def requests_total(metrics, endpoint, method="GET", code="200"):
    return sample(metrics, "foobar_http_requests_total", endpoint=endpoint, method=method, code=code)


def errors_total(metrics, endpoint):
    return sample(metrics, "foobar_http_request_errors_total", endpoint=endpoint)


def observations(metrics, endpoint, method="GET"):
    return sample(metrics, "foobar_http_request_duration_seconds_count", endpoint=endpoint, method=method)


def series(metrics, family):
    """The label sets of every sample of a family (histogram: without le)."""
    found = set()
    for metric in metrics.registry.collect():
        if metric.name == family:
            for s in metric.samples:
                found.add(tuple(sorted((k, v) for k, v in s.labels.items() if k != "le")))
    return found


def test_requests_are_counted_per_endpoint_method_and_code(metrics):
    assert call("GET", "/").code == 200
    assert call("GET", "/").code == 200
    assert call("HEAD", "/").code == 200
    assert call("POST", "/api/records", body={"value": "x"}).code == 201
    assert call("GET", "/api/records/1").code == 404
    assert call("DELETE", "/health").code == 405
    assert requests_total(metrics, "/") == 2
    assert requests_total(metrics, "/", method="HEAD") == 1
    assert requests_total(metrics, "/api/records", method="POST", code="201") == 1
    assert requests_total(metrics, "/api/records/{id}", code="404") == 1
    assert requests_total(metrics, "/health", method="DELETE", code="405") == 1
    assert observations(metrics, "/") == 2
    assert observations(metrics, "/", method="HEAD") == 1
    assert observations(metrics, "/api/records", method="POST") == 1
    assert observations(metrics, "/api/records/{id}") == 1
    assert observations(metrics, "/health", method="DELETE") == 1
    # 4xx are the client's doing, not errors of the application
    assert all(errors_total(metrics, e) == 0 for e in foobar_app.ENDPOINTS + ("other",))


def test_duration_histogram_observes_the_time_taken(metrics, monkeypatch):
    def slow_index(environ, settings):
        foobar_app.time.sleep(0.03)
        return foobar_app.html_response(200, "slow")

    monkeypatch.setattr(foobar_app, "handle_index", slow_index)
    assert call("GET", "/").code == 200
    name = "foobar_http_request_duration_seconds"
    assert sample(metrics, name + "_bucket", endpoint="/", method="GET", le="0.025") == 0
    assert sample(metrics, name + "_bucket", endpoint="/", method="GET", le="10.0") == 1
    assert sample(metrics, name + "_bucket", endpoint="/", method="GET", le="+Inf") == 1
    assert sample(metrics, name + "_sum", endpoint="/", method="GET") >= 0.03


def test_histogram_buckets_span_5ms_to_10s(metrics):
    call("GET", "/")
    family = [m for m in metrics.registry.collect() if m.name == "foobar_http_request_duration_seconds"][0]
    bounds = sorted({float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")})
    assert bounds[0] == 0.005
    assert bounds[-2:] == [10.0, float("inf")]


def test_5xx_responses_count_as_errors(metrics, db):
    for label in ("db1:3306", "db2:3306", "db3:3307"):
        db[label].up = False
    assert call("GET", "/health").code == 503
    assert call("POST", "/api/records", body={"value": "x"}).code == 503
    assert errors_total(metrics, "/health") == 1
    assert errors_total(metrics, "/api/records") == 1
    assert requests_total(metrics, "/health", code="503") == 1
    assert errors_total(metrics, "/") == 0


def test_unhandled_exception_counts_as_a_500_error(metrics, monkeypatch):
    def boom(environ, settings):
        raise RuntimeError("bug")

    monkeypatch.setattr(foobar_app, "handle_get", boom)
    assert call("GET", "/api/records/7").code == 500
    assert requests_total(metrics, "/api/records/{id}", code="500") == 1
    assert errors_total(metrics, "/api/records/{id}") == 1
    assert observations(metrics, "/api/records/{id}") == 1


def test_exception_escaping_to_the_server_counts_as_an_error(metrics):
    def broken_start_response(status, headers, exc_info=None):
        raise OSError("client went away")

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": io.BytesIO()}
    with pytest.raises(OSError):
        foobar_app.application(environ, broken_start_response)
    assert requests_total(metrics, "/", code="500") == 1
    assert errors_total(metrics, "/") == 1


def test_error_counter_starts_at_zero_for_every_endpoint(metrics):
    labels = {dict(s)["endpoint"] for s in series(metrics, "foobar_http_request_errors")}
    assert labels == set(foobar_app.ENDPOINTS) | {"other"}


@pytest.mark.parametrize("path,endpoint", [
    ("/", "/"),
    ("/health", "/health"),
    ("/health/", "/health"),
    ("/api/records", "/api/records"),
    ("/api/records/42", "/api/records/{id}"),
    ("/static/style.css", "/static"),
    ("/metrics", "/metrics"),
    ("/metrics/", "/metrics"),
    ("/nope", "other"),
    ("/api/records/abc", "other"),
    ("/api/records/1/x", "other"),
    ("/staticfoo", "other"),
    ("/../../etc/passwd", "other"),
    ("", "/"),
])
def test_endpoint_label_is_the_route_template(metrics, path, endpoint):
    resp = call("GET", path)
    assert requests_total(metrics, endpoint, code=str(resp.code)) == 1
    assert errors_total(metrics, endpoint) == 0


def test_unknown_method_is_labelled_other(metrics):
    assert call("BREW", "/").code == 405
    assert call("get", "/").code == 200
    assert requests_total(metrics, "/", method="other", code="405") == 1
    assert requests_total(metrics, "/", method="GET") == 1


def test_label_cardinality_is_bounded(metrics):
    for i in range(200):
        call(["GET", "POST", "X-%d" % i, "PROPFIND"][i % 4], "/random/%d/%s" % (i, "x" * (i % 7)),
             query="q=%d" % i)
        call("GET", "/api/records/%d" % (i + 1000))
        call("GET", "/static/file-%d.css" % i)
    endpoints = set(foobar_app.ENDPOINTS) | {"other"}
    methods = set(foobar_app.METHODS) | {"other"}
    for family in ("foobar_http_requests", "foobar_http_request_duration_seconds", "foobar_http_request_errors"):
        for labels in series(metrics, family):
            labels = dict(labels)
            assert labels["endpoint"] in endpoints
            assert labels.get("method", "GET") in methods
    # 600 requests on 600 different paths: a handful of series
    assert len(series(metrics, "foobar_http_requests")) <= 6
    assert len(series(metrics, "foobar_http_request_duration_seconds")) <= 5


def test_metrics_endpoint_serves_the_text_format(metrics):
    call("GET", "/")
    call("GET", "/nope")
    resp = call("GET", "/metrics")
    assert resp.code == 200
    assert resp.header("Content-Type").startswith("text/plain; version=0.0.4")
    assert resp.header("X-Served-By") == "web1"
    families = {f.name: f for f in text_string_to_metric_families(resp.body.decode("utf-8"))}
    assert families["foobar_http_requests"].type == "counter"
    assert families["foobar_http_request_duration_seconds"].type == "histogram"
    assert families["foobar_http_request_errors"].type == "counter"
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in families["foobar_http_requests"].samples}
    key = ("foobar_http_requests_total", (("code", "200"), ("endpoint", "/"), ("method", "GET")))
    assert got[key] == 1
    key = ("foobar_http_requests_total", (("code", "404"), ("endpoint", "other"), ("method", "GET")))
    assert got[key] == 1
    # The scrape itself is counted once it is answered.
    assert requests_total(metrics, "/metrics") == 1


def test_metrics_endpoint_speaks_openmetrics_when_asked(metrics):
    call("GET", "/")
    accept = "application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5"
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "HTTP_ACCEPT": accept,
               "wsgi.input": io.BytesIO()}
    captured = {}
    body = b"".join(foobar_app.application(environ, lambda s, h, e=None: captured.update(s=s, h=h)))
    assert captured["s"] == "200 OK"
    assert dict(captured["h"])["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_parser.text_string_to_metric_families(body.decode("utf-8"))}
    assert families["foobar_http_request_duration_seconds"].type == "histogram"


def test_metrics_head_and_wrong_method(metrics):
    assert call("HEAD", "/metrics").code == 200
    assert call("POST", "/metrics", body={}).code == 405


def test_metrics_without_prometheus_client_is_503(db, monkeypatch):
    monkeypatch.setattr(foobar_app, "METRICS", None)
    monkeypatch.setattr(foobar_app, "METRICS_UNAVAILABLE", "prometheus_client is not installed")
    resp = call("GET", "/metrics")
    assert resp.code == 503
    assert resp.header("Content-Type") == "text/plain; charset=utf-8"
    assert resp.body == b"metrics unavailable: prometheus_client is not installed\n"
    assert call("GET", "/").code == 200


def test_a_failure_to_record_never_fails_the_request(metrics, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(metrics, "observe", broken)
    monkeypatch.setattr(foobar_app, "_METRICS_ERROR_LOGGED", False)
    assert call("GET", "/").code == 200
    assert call("GET", "/").code == 200
    assert foobar_app._METRICS_ERROR_LOGGED


def test_a_failure_to_collect_is_503(metrics, monkeypatch):
    def broken(accept=None):
        raise OSError("unreadable")

    monkeypatch.setattr(metrics, "exposition", broken)
    resp = call("GET", "/metrics")
    assert resp.code == 503
    assert b"unreadable" not in resp.body
    assert errors_total(metrics, "/metrics") == 1


# The multiprocess mode is chosen by prometheus_client when it is imported:
# these run the application in a fresh interpreter.

_CHILD_PRELUDE = """
import io, os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, {app_dir!r})
{before_import}
import foobar_app

def get(path, method="GET"):
    environ = {{"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO()}}
    out = {{}}
    body = b"".join(foobar_app.application(environ, lambda s, h, e=None: out.update(status=s)))
    return out["status"], body
"""


def run_app_script(tmp_path, script, env=None, before_import=""):
    code = _CHILD_PRELUDE.format(app_dir=str(APP_DIR), before_import=before_import) + textwrap.dedent(script)
    full_env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    full_env["FOOBAR_CONFIG"] = str(tmp_path / "missing.json")
    full_env.update(env or {})
    result = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_multiprocess_mode_adds_up_every_worker(tmp_path):
    """Like gunicorn --preload: the module is imported once, workers are
    forked from it, and any worker's /metrics shows the sum of all."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    out = run_app_script(tmp_path, """
        children = []
        for n in (2, 3):
            pid = os.fork()
            if pid == 0:
                for _ in range(n):
                    get("/")
                get("/health")  # no database: 503
                os._exit(0)
            children.append(pid)
        for pid in children:
            assert os.waitpid(pid, 0)[1] == 0
        status, body = get("/metrics")
        assert status == "200 OK", status
        sys.stdout.write(body.decode())
    """, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(out) for s in f.samples}
    assert samples[("foobar_http_requests_total", (("code", "200"), ("endpoint", "/"), ("method", "GET")))] == 5
    assert samples[("foobar_http_requests_total", (("code", "503"), ("endpoint", "/health"), ("method", "GET")))] == 2
    assert samples[("foobar_http_request_errors_total", (("endpoint", "/health"),))] == 2
    assert samples[("foobar_http_request_duration_seconds_count", (("endpoint", "/"), ("method", "GET")))] == 5
    assert {p.name.split("_")[0] for p in metrics_dir.iterdir()} >= {"counter", "histogram"}


def test_missing_multiprocess_directory_disables_metrics_only(tmp_path):
    out = run_app_script(tmp_path, """
        print(get("/")[0])
        print(get("/metrics")[0])
        print(get("/metrics")[1].decode().strip())
    """, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "absent")})
    lines = out.splitlines()
    assert lines[0] == "200 OK"
    assert lines[1] == "503 Service Unavailable"
    assert lines[2].startswith("metrics unavailable: PROMETHEUS_MULTIPROC_DIR")
    assert not (tmp_path / "absent").exists()


def test_the_application_works_without_prometheus_client(tmp_path):
    out = run_app_script(tmp_path, """
        print(get("/")[0])
        print(get("/health")[0])
        status, body = get("/metrics")
        print(status)
        print(body.decode().strip())
    """, before_import="sys.modules['prometheus_client'] = None  # as if not installed")
    assert out.splitlines() == [
        "200 OK",
        "503 Service Unavailable",
        "503 Service Unavailable",
        "metrics unavailable: prometheus_client is not installed",
    ]
