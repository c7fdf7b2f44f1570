"""The role-aware health endpoint of the database nodes
(roles/mysql_server/files/distweb_mysql_health.py): what it answers for
each node state, and that it answers over HTTP."""

import http.client
import importlib.util
import json
import pathlib
import threading
from http.server import ThreadingHTTPServer

import pymysql
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[3] / "roles" / "mysql_server" / "files" / "distweb_mysql_health.py"
spec = importlib.util.spec_from_file_location("distweb_mysql_health", SCRIPT)
health = importlib.util.module_from_spec(spec)
spec.loader.exec_module(health)

PRIMARY = {"read_only": False, "replica": None}
REPLICA = {"read_only": True, "replica": {"source": "db1", "io_running": "Yes", "sql_running": "Yes", "lag": 0}}


def replica(**changes):
    state = {"read_only": True, "replica": dict(REPLICA["replica"])}
    state["replica"].update(changes)
    return state


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
    ("/replica", replica(io_running="Connecting", lag=None), 200),  # reconnecting: lag unknown
    ("/replica", None, 503),
    ("/", None, 200),
    ("/nope", PRIMARY, 404),
])
def test_judge(path, state, code):
    assert health.judge(path, state, max_lag=30)[0] == code


class FakeCursor:
    def __init__(self, conn):
        self.conn, self.description, self._rows = conn, None, []

    def execute(self, sql):
        if sql == "SELECT @@global.read_only":
            self.description, self._rows = [("read_only",)], [(1 if self.conn.read_only else 0,)]
        elif sql == "SHOW SLAVE STATUS":
            status = self.conn.status
            self.description = [(k,) for k in status] if status else []
            self._rows = [tuple(status.values())] if status else []
        else:
            raise AssertionError(sql)

    def fetchone(self):
        return self._rows[0] if self._rows else None


class FakeConn:
    def __init__(self, read_only, status=None):
        self.read_only, self.status, self.closed = read_only, status, False

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = True


def test_read_state_of_a_replica_and_of_a_primary():
    config = dict(health.DEFAULTS)
    status = {"Master_Host": "db1", "Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 3}
    conns = []

    def connect(**kwargs):
        assert kwargs["unix_socket"] == config["socket"] and kwargs["user"] == "monitor"
        conns.append(FakeConn(True, status))
        return conns[-1]

    assert health.read_state(config, connect) == {
        "read_only": True, "replica": {"source": "db1", "io_running": "Yes", "sql_running": "Yes", "lag": 3}}
    assert conns[0].closed
    assert health.read_state(config, lambda **kw: FakeConn(False)) == {"read_only": False, "replica": None}


@pytest.fixture
def endpoint():
    state = {"conn": FakeConn(False)}

    def connect(**kwargs):
        if state["conn"] is None:
            raise pymysql.err.OperationalError(2002, "Can't connect to local server")
        return state["conn"]

    server = ThreadingHTTPServer(("127.0.0.1", 0), health.make_handler(dict(health.DEFAULTS), connect))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def get(path):
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())

    yield state, get
    server.shutdown()


def test_http_answers_follow_the_server(endpoint):
    state, get = endpoint
    assert get("/primary")[0] == 200
    state["conn"] = FakeConn(True)  # fenced
    code, body = get("/primary")
    assert code == 503 and body["reason"] == "read-only: not the primary"
    state["conn"] = None  # MariaDB down
    code, body = get("/primary")
    assert code == 503 and "does not answer" in body["reason"] and "2002" in body["error"]
