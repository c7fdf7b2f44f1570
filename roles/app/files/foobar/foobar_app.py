"""foobar: the demo WSGI application of distweb.infra.

A small, dependency-light web application (Python standard library plus
PyMySQL, and prometheus_client for its metrics if it is installed) that shows
which web server answered and stores short records in a replicated MariaDB
cluster: writes go to the primary, reads to a replica, and a caller can ask
for read-your-write consistency.

Endpoints
    GET  /                    HTML page naming the server that answered.
    GET  /health              JSON health of the database nodes (200 or 503).
    GET  /live                200 whenever this process answers; it asks no
                              database. The load balancer's check: a
                              database failover is every web server's
                              outage at once, and taking them all out of
                              rotation would only add the checks' rise time
                              to it (and stop the pages that still
                              work).
    POST /api/records         {"value": "..."} -> inserted on the primary (201).
    GET  /api/records?limit=N newest records, read from a replica.
    GET  /api/records/<id>    one record, read from a replica.
    GET  /metrics             Prometheus metrics of the requests (text format,
                              or OpenMetrics if asked for); 503 without
                              prometheus_client. nginx keeps it off the
                              public site.

    GET parameters for reads: after_gtid=<gtid> (wait until the replica has
    applied that GTID, else read from the primary) and consistency=primary
    (read from the primary directly).

Every response carries the header ``X-Served-By: <server_name>``.

Configuration is a JSON file named by the environment variable FOOBAR_CONFIG
(default /etc/foobar/foobar.json). It is re-read whenever its modification
time (or size, or inode) changes, so the database nodes can be moved by
rewriting the file: no restart is needed.

Metrics: foobar_http_requests_total{endpoint, method, code},
foobar_http_request_duration_seconds{endpoint, method} (histogram) and
foobar_http_request_errors_total{endpoint} (responses of status 500 and up,
unhandled exceptions included). ``endpoint`` is the route template
(/, /health, /live, /api/records, /api/records/{id}, /static, /metrics) or
"other", never the raw path, and ``method`` an HTTP method or "other", so the
number of series stays bounded. Under a server with several worker processes
(gunicorn), set PROMETHEUS_MULTIPROC_DIR to an empty directory writable by the
application, and emptied at every start: each process writes its samples
there and /metrics adds them up. Without the variable the samples stay in the
process (prometheus_client's default registry).

Run it with any WSGI server, e.g. ``gunicorn foobar_app:application``.
"""

import html
import json
import logging
import os
import random
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from urllib.parse import parse_qs

import pymysql

try:
    import prometheus_client
    from prometheus_client import exposition as prometheus_exposition
    from prometheus_client import multiprocess as prometheus_multiprocess
except ImportError:  # the application works without it; /metrics says so
    prometheus_client = None

__version__ = "1.0.0"

DEFAULT_CONFIG_PATH = "/etc/foobar/foobar.json"
DEFAULT_PORT = 3306
DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_READ_YOUR_WRITE_TIMEOUT = 2.0
# Longest a single statement may take once connected (read/write timeout).
DEFAULT_QUERY_TIMEOUT = 5.0

MAX_VALUE_LENGTH = 255
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_BODY_BYTES = 64 * 1024

ER_NO_SUCH_TABLE = 1146
# The server refused the statement because it is read-only: nothing was
# written, so the write may be sent again (to the node the router now says
# is the primary).
ER_READ_ONLY = (1290, 1836)
# How long a write keeps trying while the primary is not reachable or not
# writable (a failover, a switchover, the routers re-checking after a reload).
WRITE_RETRY_SECONDS = 3.0
WRITE_RETRY_PAUSE = 0.1

# The schema belongs to the deploy (mysql_primary_databases' tables, created
# once on the primary): this process issues no DDL. A missing table is an
# error that says so, never something created by the first request.
MISSING_TABLE_MESSAGE = (
    "the records table is missing: the deploy creates it (run site.yml; "
    "mysql_primary_databases lists its definition)"
)
INSERT_SQL = "INSERT INTO records (value, server) VALUES (%s, %s)"
SELECT_ONE_SQL = "SELECT id, value, server, created_at FROM records WHERE id = %s"
SELECT_MANY_SQL = (
    "SELECT id, value, server, created_at FROM records ORDER BY id DESC LIMIT %s"
)
GTID_WAIT_SQL = "SELECT MASTER_GTID_WAIT(%s, %s)"
LAST_GTID_SQL = "SELECT @@last_gtid"

# A MariaDB GTID position: domain-server-sequence, comma separated per domain.
GTID_RE = re.compile(r"[0-9]+-[0-9]+-[0-9]+(,[ ]*[0-9]+-[0-9]+-[0-9]+)*")
RECORD_PATH_RE = re.compile(r"/api/records/([0-9]{1,18})")
HEADER_UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f]")

# Errors that mean "this database node could not serve the request".
DB_ERRORS = (pymysql.MySQLError, OSError)

LOG = logging.getLogger("foobar")
if not LOG.handlers:
    # gunicorn sends stderr to the journal; give the app its own log lines there.
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("foobar[%(process)d] %(levelname)s %(message)s"))
    LOG.addHandler(_handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False


# ---------------------------------------------------------------------------
# Configuration


class Node:
    """One database server: host and port."""

    __slots__ = ("host", "port")

    def __init__(self, host, port=DEFAULT_PORT):
        self.host = host
        self.port = port

    @property
    def label(self):
        return "%s:%d" % (self.host, self.port)

    def __eq__(self, other):
        return isinstance(other, Node) and (self.host, self.port) == (other.host, other.port)

    def __hash__(self):
        return hash((self.host, self.port))

    def __repr__(self):
        return "Node(%r, %r)" % (self.host, self.port)


class Settings:
    """The parsed configuration file."""

    def __init__(self, server_name=None, db_name=None, db_user=None, db_password=None,
                 primary=None, replicas=(), connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                 read_your_write_timeout=DEFAULT_READ_YOUR_WRITE_TIMEOUT,
                 query_timeout=DEFAULT_QUERY_TIMEOUT):
        self.server_name = server_name or socket.gethostname()
        self.db_name = db_name
        self.db_user = db_user
        self.db_password = db_password
        self.primary = primary
        self.replicas = tuple(replicas)
        self.connect_timeout = connect_timeout
        self.read_your_write_timeout = read_your_write_timeout
        self.query_timeout = query_timeout

    @property
    def database_configured(self):
        return self.primary is not None or bool(self.replicas)


def _parse_node(data, where):
    if not isinstance(data, dict):
        raise ValueError("%s must be an object with host and port" % where)
    host = data.get("host")
    if not isinstance(host, str) or not host:
        raise ValueError("%s.host must be a non-empty string" % where)
    port = data.get("port", DEFAULT_PORT)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("%s.port must be an integer between 1 and 65535" % where)
    return Node(host, port)


def _parse_seconds(data, key, default):
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError("database.%s must be a positive number of seconds" % key)
    return float(value)


def parse_config(data):
    """Turn the decoded JSON document into Settings; raise ValueError if invalid."""
    if not isinstance(data, dict):
        raise ValueError("the configuration must be a JSON object")
    server_name = data.get("server_name")
    if server_name is not None and not isinstance(server_name, str):
        raise ValueError("server_name must be a string")
    db = data.get("database") or {}
    if not isinstance(db, dict):
        raise ValueError("database must be an object")
    for key in ("name", "user", "password"):
        if db.get(key) is not None and not isinstance(db[key], str):
            raise ValueError("database.%s must be a string" % key)
    primary = db.get("primary")
    primary = _parse_node(primary, "database.primary") if primary else None
    replicas = db.get("replicas") or []
    if not isinstance(replicas, list):
        raise ValueError("database.replicas must be a list")
    replicas = [_parse_node(r, "database.replicas[%d]" % i) for i, r in enumerate(replicas)]
    return Settings(
        server_name=server_name,
        db_name=db.get("name"),
        db_user=db.get("user"),
        db_password=db.get("password"),
        primary=primary,
        replicas=replicas,
        connect_timeout=_parse_seconds(db, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        read_your_write_timeout=_parse_seconds(
            db, "read_your_write_timeout", DEFAULT_READ_YOUR_WRITE_TIMEOUT),
        query_timeout=_parse_seconds(db, "query_timeout", DEFAULT_QUERY_TIMEOUT),
    )


class ConfigStore:
    """Holds the current Settings and reloads them when the file changes.

    Each call to get() costs one os.stat(). The file is parsed again only when
    its identity (path, mtime, size, inode) differs from the last one seen. A
    file that cannot be read or parsed keeps the last good settings in force
    (a half-written file never takes the site down); without any good
    settings yet, the application runs without a database.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None
        self._path = None
        self._settings = None

    def get(self):
        path = os.environ.get("FOOBAR_CONFIG") or DEFAULT_CONFIG_PATH
        try:
            st = os.stat(path)
            key = (path, st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            st = None
            key = (path, None, None, None)
        settings = self._settings
        if key == self._key and settings is not None:
            return settings
        with self._lock:
            if key == self._key and self._settings is not None:
                return self._settings
            if st is None:
                self._fallback(path, "the configuration file %s cannot be read" % path)
            else:
                try:
                    with open(path, encoding="utf-8") as handle:
                        self._settings = parse_config(json.load(handle))
                    self._path = path
                    LOG.info("loaded configuration from %s", path)
                except (OSError, ValueError) as exc:
                    self._fallback(path, "the configuration file %s is invalid: %s" % (path, exc))
            self._key = key
            return self._settings

    def _fallback(self, path, reason):
        if self._settings is not None and self._path == path:
            LOG.error("%s; keeping the previous configuration", reason)
        else:
            LOG.error("%s; running without a database", reason)
            self._settings = Settings()
            self._path = path


CONFIG = ConfigStore()


# ---------------------------------------------------------------------------
# Database access


class DatabaseUnavailable(Exception):
    """No database node could serve the request."""


def connect(settings, node, read_timeout=None):
    """Open a new connection to one node (autocommit on).

    The server's greeting must arrive within connect_timeout too, so a node
    that accepts TCP but never answers costs no more than a dead one. The
    statements then get their own, longer limit (read_timeout, default
    query_timeout); PyMySQL has no public setter for it, hence _read_timeout,
    which PyMySQL 1.0 to 1.2 read before every receive.
    """
    conn = pymysql.connect(
        host=node.host,
        port=node.port,
        user=settings.db_user,
        password=settings.db_password or "",
        database=settings.db_name,
        charset="utf8mb4",
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.connect_timeout,
        write_timeout=settings.query_timeout,
        autocommit=True,
    )
    conn._read_timeout = read_timeout or settings.query_timeout
    return conn


def _close(conn):
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # closing a broken connection must never fail a request
        pass


def _error_code(exc):
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def ping(settings, node):
    """True if the node accepts a connection and answers SELECT 1."""
    conn = None
    try:
        conn = connect(settings, node, read_timeout=settings.connect_timeout)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
        return True
    except DB_ERRORS as exc:
        LOG.warning("health: %s is unreachable: %s", node.label, exc)
        return False
    finally:
        _close(conn)


def check_nodes(settings, nodes):
    """Ping every node in parallel; return {node: bool}.

    Running the checks side by side bounds the time of /health by one
    connect timeout, however many nodes are down.
    """
    results = {}
    unique = list(dict.fromkeys(nodes))
    if len(unique) == 1:
        results[unique[0]] = ping(settings, unique[0])
        return results

    def worker(node):
        results[node] = ping(settings, node)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in unique]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + settings.connect_timeout * 2 + 1
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {node: results.get(node, False) for node in unique}


def insert_record(settings, value):
    """Insert on the primary; return (id, gtid). Raises DatabaseUnavailable.

    A failed connection and a read-only refusal mean nothing was written:
    they are tried again for up to WRITE_RETRY_SECONDS. Any other failure
    (for example a connection lost after the INSERT was sent, which may have
    committed) is never retried."""
    node = settings.primary
    if node is None:
        raise DatabaseUnavailable("no primary database is configured")
    deadline = time.monotonic() + WRITE_RETRY_SECONDS
    while True:
        try:
            return _insert_once(settings, node, value)
        except _NotWritten as exc:
            if time.monotonic() + WRITE_RETRY_PAUSE > deadline:
                LOG.error("write to primary %s failed: %s", node.label, exc.__cause__)
                raise DatabaseUnavailable("the primary database is unavailable") from exc.__cause__
            time.sleep(WRITE_RETRY_PAUSE)


class _NotWritten(Exception):
    """A write that certainly wrote nothing (safe to send again)."""


def _insert_once(settings, node, value):
    conn = None
    try:
        try:
            conn = connect(settings, node)
        except DB_ERRORS as exc:
            raise _NotWritten() from exc
        record_id = _insert(conn, settings, value)
        return record_id, _last_gtid(conn)
    except DB_ERRORS as exc:
        if _error_code(exc) in ER_READ_ONLY:
            raise _NotWritten() from exc
        if _error_code(exc) == ER_NO_SUCH_TABLE:
            LOG.error("write to primary %s failed: %s", node.label, MISSING_TABLE_MESSAGE)
            raise DatabaseUnavailable(MISSING_TABLE_MESSAGE) from exc
        LOG.error("write to primary %s failed: %s", node.label, exc)
        raise DatabaseUnavailable("the primary database is unavailable") from exc
    finally:
        _close(conn)


def _insert(conn, settings, value):
    with conn.cursor() as cur:
        cur.execute(INSERT_SQL, (value, settings.server_name))
        record_id = cur.lastrowid
    conn.commit()
    return record_id


def _last_gtid(conn):
    """The GTID of this session's last transaction (MariaDB), or None."""
    try:
        with conn.cursor() as cur:
            cur.execute(LAST_GTID_SQL)
            row = cur.fetchone()
    except pymysql.MySQLError as exc:
        # The write is committed: a server without @@last_gtid only loses
        # read-your-write through a replica (consistency=primary still works).
        LOG.warning("cannot read @@last_gtid: %s", exc)
        return None
    gtid = row[0] if row else None
    if isinstance(gtid, bytes):
        gtid = gtid.decode("ascii", "replace")
    return gtid or None


def replica_order(replicas):
    """Replicas in the order to try them: random, so reads spread out."""
    return random.sample(list(replicas), len(replicas))


def read(settings, query, after_gtid=None, consistency=None):
    """Run query(conn) on a replica or the primary; return (result, source).

    Without after_gtid, replicas are tried in random order and the first that
    answers serves the read; if none does, the primary does. With after_gtid,
    the first replica that accepts a connection waits up to
    read_your_write_timeout seconds for that GTID with MASTER_GTID_WAIT; if it
    gets there (0) it serves the read, otherwise (-1, NULL, error) the primary
    does. consistency="primary" reads from the primary directly.
    """
    if consistency != "primary":
        read_timeout = settings.query_timeout
        if after_gtid:
            read_timeout += settings.read_your_write_timeout
        for node in replica_order(settings.replicas):
            conn = None
            try:
                try:
                    conn = connect(settings, node, read_timeout=read_timeout)
                except DB_ERRORS as exc:
                    LOG.warning("replica %s is unreachable: %s", node.label, exc)
                    continue
                try:
                    if after_gtid:
                        with conn.cursor() as cur:
                            cur.execute(GTID_WAIT_SQL, (after_gtid, settings.read_your_write_timeout))
                            row = cur.fetchone()
                        status = row[0] if row else None
                        if status != 0:
                            LOG.info("replica %s did not reach %s in %ss (%r): reading from the primary",
                                     node.label, after_gtid, settings.read_your_write_timeout, status)
                            break
                    return query(conn), "replica:%s" % node.label
                except DB_ERRORS as exc:
                    LOG.warning("read from replica %s failed: %s", node.label, exc)
                    if after_gtid:
                        break
                    continue
            finally:
                _close(conn)
    return query_primary(settings, query), "primary"


def query_primary(settings, query):
    node = settings.primary
    if node is None:
        raise DatabaseUnavailable("no database node could serve the read")
    conn = None
    try:
        conn = connect(settings, node)
        return query(conn)
    except DB_ERRORS as exc:
        LOG.error("read from primary %s failed: %s", node.label, exc)
        raise DatabaseUnavailable("no database node could serve the read") from exc
    finally:
        _close(conn)


def _record(row):
    created = row[3]
    if hasattr(created, "isoformat"):
        created = created.isoformat()
    elif isinstance(created, bytes):
        created = created.decode("ascii", "replace")
    return {"id": row[0], "value": row[1], "server": row[2], "created_at": created}


def fetch_one(record_id):
    def query(conn):
        try:
            with conn.cursor() as cur:
                cur.execute(SELECT_ONE_SQL, (record_id,))
                row = cur.fetchone()
        except pymysql.MySQLError as exc:
            if _error_code(exc) == ER_NO_SUCH_TABLE:
                return None  # nothing was ever written
            raise
        return _record(row) if row else None
    return query


def fetch_many(limit):
    def query(conn):
        try:
            with conn.cursor() as cur:
                cur.execute(SELECT_MANY_SQL, (limit,))
                rows = cur.fetchall()
        except pymysql.MySQLError as exc:
            if _error_code(exc) == ER_NO_SUCH_TABLE:
                return []
            raise
        return [_record(row) for row in rows]
    return query


# ---------------------------------------------------------------------------
# Metrics

# Label values: a route template or "other", never the raw path (every
# distinct value is one more series in Prometheus, kept forever).
ENDPOINTS = ("/", "/health", "/live", "/api/records", "/api/records/{id}", "/static", "/metrics")
OTHER = "other"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Seconds, from a page that needs no database to the longest waits (write
# retries of 3 s, queries of up to 5 s).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _normalise_path(path):
    path = path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


def match_endpoint(path):
    """(endpoint label, handler arguments) of a request path."""
    path = _normalise_path(path)
    if path in ENDPOINTS:
        return path, ()
    match = RECORD_PATH_RE.fullmatch(path)
    if match:
        return "/api/records/{id}", (int(match.group(1)),)
    if path.startswith("/static/"):
        return "/static", ()
    return OTHER, ()


def method_label(environ):
    method = (environ.get("REQUEST_METHOD") or "GET").upper()
    return method if method in METHODS else OTHER


class Metrics:
    """The request metrics, in prometheus_client.

    Without multiproc_dir the samples live in this process and /metrics shows
    ``registry``. With it (PROMETHEUS_MULTIPROC_DIR, read by prometheus_client
    when it is imported) every process writes its samples to files in that
    directory and /metrics adds up the files of all of them, so any gunicorn
    worker answers for all.
    """

    def __init__(self, registry=None, multiproc_dir=None):
        self.registry = prometheus_client.REGISTRY if registry is None else registry
        self.multiproc_dir = multiproc_dir
        self.requests = prometheus_client.Counter(
            "foobar_http_requests_total", "HTTP requests answered, by route, method and status code.",
            ("endpoint", "method", "code"), registry=self.registry)
        self.duration = prometheus_client.Histogram(
            "foobar_http_request_duration_seconds", "Time taken to answer HTTP requests, by route and method.",
            ("endpoint", "method"), buckets=DURATION_BUCKETS, registry=self.registry)
        self.errors = prometheus_client.Counter(
            "foobar_http_request_errors_total",
            "HTTP requests answered with a status of 500 or more (unhandled errors included), by route.",
            ("endpoint",), registry=self.registry)
        # Zero from the start, so that rates and ratios exist before the first error.
        for endpoint in ENDPOINTS + (OTHER,):
            self.errors.labels(endpoint)

    def observe(self, endpoint, method, code, seconds, error=False):
        self.requests.labels(endpoint, method, str(code)).inc()
        self.duration.labels(endpoint, method).observe(seconds)
        if error or code >= 500:
            self.errors.labels(endpoint).inc()

    def exposition(self, accept=None):
        """(body, content type) of every metric, in the format asked for."""
        if self.multiproc_dir:
            registry = prometheus_client.CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)
        else:
            registry = self.registry
        encoder, content_type = prometheus_exposition.choose_encoder(accept)
        return encoder(registry), content_type


def setup_metrics():
    """(Metrics or None, why not). Never raises: without metrics the
    application still serves, and /metrics answers 503 with the reason."""
    if prometheus_client is None:
        return None, "prometheus_client is not installed"
    # prometheus_client chose its storage when it was imported, from the
    # same variables (the lower-case name is its deprecated spelling).
    multiproc = "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", os.environ.get("prometheus_multiproc_dir"))
    if multiproc and not (multiproc_dir and os.path.isdir(multiproc_dir)):
        reason = "PROMETHEUS_MULTIPROC_DIR (%r) is not a directory" % multiproc_dir
        LOG.error("metrics disabled: %s", reason)
        return None, reason
    try:
        return Metrics(multiproc_dir=multiproc_dir if multiproc else None), None
    except Exception as exc:  # e.g. the directory is not writable
        LOG.exception("metrics disabled")
        return None, "the metrics could not be set up: %s" % exc.__class__.__name__


METRICS, METRICS_UNAVAILABLE = setup_metrics()
_METRICS_ERROR_LOGGED = False


def record_request(endpoint, method, code, seconds, error=False):
    """Count one request; a failure to do so is logged once, never raised."""
    global _METRICS_ERROR_LOGGED
    metrics = METRICS
    if metrics is None:
        return
    try:
        metrics.observe(endpoint, method, code, seconds, error)
    except Exception:  # a full disk must not turn answers into errors
        if not _METRICS_ERROR_LOGGED:
            _METRICS_ERROR_LOGGED = True
            LOG.exception("cannot record request metrics (logged once per process)")


# ---------------------------------------------------------------------------
# HTTP


class HTTPError(Exception):
    def __init__(self, status, message, headers=None, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
        self.extra = extra


def _status_line(code):
    return "%d %s" % (code, HTTPStatus(code).phrase)


def json_response(code, payload, headers=None):
    body = (json.dumps(payload, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    hdrs = [("Content-Type", "application/json; charset=utf-8"),
            ("Cache-Control", "no-store")]
    return code, hdrs + list(headers or []), body


def text_response(code, text):
    body = text.encode("utf-8")
    return code, [("Content-Type", "text/plain; charset=utf-8"),
                  ("Cache-Control", "no-store")], body


def html_response(code, text):
    body = text.encode("utf-8")
    return code, [("Content-Type", "text/html; charset=utf-8"),
                  ("Cache-Control", "no-store")], body


def header_value(text):
    """Make text safe as a header value (latin-1, no control characters)."""
    text = HEADER_UNSAFE_RE.sub("", str(text))
    return text.encode("latin-1", "replace").decode("latin-1")


def query_params(environ):
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)


def _param(params, name):
    values = params.get(name)
    return values[-1] if values else None


def read_body(environ):
    length = environ.get("CONTENT_LENGTH") or ""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if length.strip():
        try:
            size = int(length)
        except ValueError:
            raise HTTPError(400, "invalid Content-Length") from None
        if size < 0:
            raise HTTPError(400, "invalid Content-Length")
        if size > MAX_BODY_BYTES:
            raise HTTPError(413, "request body larger than %d bytes" % MAX_BODY_BYTES)
        return stream.read(size) if size else b""
    if environ.get("wsgi.input_terminated"):
        data = stream.read(MAX_BODY_BYTES + 1)
        if len(data) > MAX_BODY_BYTES:
            raise HTTPError(413, "request body larger than %d bytes" % MAX_BODY_BYTES)
        return data
    return b""


def parse_record_body(environ):
    raw = read_body(environ)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise HTTPError(400, 'the body must be a JSON object like {"value": "..."}') from None
    if not isinstance(data, dict):
        raise HTTPError(400, 'the body must be a JSON object like {"value": "..."}')
    if "value" not in data:
        raise HTTPError(400, 'missing "value"')
    value = data["value"]
    if not isinstance(value, str):
        raise HTTPError(400, '"value" must be a string')
    if len(value) > MAX_VALUE_LENGTH:
        raise HTTPError(400, '"value" is longer than %d characters' % MAX_VALUE_LENGTH)
    return value


def read_options(environ):
    """(after_gtid, consistency) from the query string, validated."""
    params = query_params(environ)
    after_gtid = (_param(params, "after_gtid") or "").strip() or None
    if after_gtid is not None and not GTID_RE.fullmatch(after_gtid):
        raise HTTPError(400, "after_gtid must be a MariaDB GTID position such as 0-1-42")
    consistency = (_param(params, "consistency") or "").strip() or None
    if consistency not in (None, "primary", "replica"):
        raise HTTPError(400, "consistency must be 'primary' or 'replica'")
    return after_gtid, consistency


# Route handlers: (environ, settings) -> (code, headers, body)


INDEX_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>foobar &middot; {server}</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
<h1>Hello from foobar</h1>
<p>This page was served by <strong class="server">{server}</strong>.</p>
<p class="hint">Reload the page: the load balancer spreads requests over every web server.</p>
<ul>
<li><a href="/health">/health</a> &mdash; state of the database nodes</li>
<li><a href="/api/records">/api/records</a> &mdash; the latest records</li>
</ul>
</main>
<footer>foobar {version}</footer>
</body>
</html>
"""


def handle_index(environ, settings):
    page = INDEX_TEMPLATE.format(server=html.escape(settings.server_name), version=__version__)
    return html_response(200, page)


def handle_health(environ, settings):
    nodes = ([settings.primary] if settings.primary else []) + list(settings.replicas)
    results = check_nodes(settings, nodes) if nodes else {}
    primary_up = bool(settings.primary and results.get(settings.primary))
    replicas = {node.label: bool(results.get(node)) for node in settings.replicas}
    if primary_up:
        status, code = "ok", 200
    elif any(replicas.values()):
        status, code = "degraded", 200
    else:
        status, code = "down", 503
    return json_response(code, {
        "status": status,
        "server": settings.server_name,
        "database": {"primary": primary_up, "replicas": replicas},
    })


def handle_live(environ, settings):
    return json_response(200, {"status": "alive", "server": settings.server_name})


def handle_create(environ, settings):
    value = parse_record_body(environ)
    try:
        record_id, gtid = insert_record(settings, value)
    except DatabaseUnavailable as exc:
        raise HTTPError(503, str(exc)) from None
    return json_response(201, {
        "id": record_id,
        "value": value,
        "server": settings.server_name,
        "gtid": gtid,
    }, headers=[("Location", "/api/records/%d" % record_id)])


def handle_list(environ, settings):
    params = query_params(environ)
    raw_limit = _param(params, "limit")
    limit = DEFAULT_LIMIT
    if raw_limit not in (None, ""):
        try:
            limit = int(raw_limit)
        except ValueError:
            raise HTTPError(400, "limit must be an integer") from None
        if limit < 1:
            raise HTTPError(400, "limit must be at least 1")
        limit = min(limit, MAX_LIMIT)
    after_gtid, consistency = read_options(environ)
    try:
        records, source = read(settings, fetch_many(limit), after_gtid, consistency)
    except DatabaseUnavailable as exc:
        raise HTTPError(503, str(exc)) from None
    return json_response(200, {
        "records": records,
        "count": len(records),
        "limit": limit,
        "source": source,
        "served_by": settings.server_name,
    })


def handle_get(environ, settings, record_id):
    after_gtid, consistency = read_options(environ)
    try:
        record, source = read(settings, fetch_one(record_id), after_gtid, consistency)
    except DatabaseUnavailable as exc:
        raise HTTPError(503, str(exc)) from None
    if record is None:
        raise HTTPError(404, "record %d not found" % record_id, source=source)
    record.update(source=source, served_by=settings.server_name)
    return json_response(200, record)


def handle_metrics(environ, settings):
    if METRICS is None:
        return text_response(503, "metrics unavailable: %s\n" % METRICS_UNAVAILABLE)
    try:
        body, content_type = METRICS.exposition(environ.get("HTTP_ACCEPT"))
    except Exception:
        LOG.exception("cannot collect the metrics")
        return text_response(503, "metrics unavailable: they could not be collected\n")
    return 200, [("Content-Type", content_type), ("Cache-Control", "no-store")], body


def route(environ):
    """Return (handler, allowed methods, extra args) for the request path."""
    path = _normalise_path(environ.get("PATH_INFO"))
    endpoint, args = match_endpoint(path)
    # Looked up at each request (not a module-level table) so that the
    # handlers can be replaced, in tests for instance.
    handlers = {
        "/": {"GET": handle_index},
        "/health": {"GET": handle_health},
        "/live": {"GET": handle_live},
        "/api/records": {"GET": handle_list, "POST": handle_create},
        "/api/records/{id}": {"GET": handle_get},
        "/metrics": {"GET": handle_metrics},
    }.get(endpoint)
    if handlers is None:
        raise HTTPError(404, "not found", path=path)
    return handlers, args


def dispatch(environ, settings):
    try:
        handlers, args = route(environ)
        method = (environ.get("REQUEST_METHOD") or "GET").upper()
        handler = handlers.get("GET" if method == "HEAD" else method)
        if handler is None:
            allowed = sorted(set(handlers) | ({"HEAD"} if "GET" in handlers else set()))
            raise HTTPError(405, "method %s not allowed" % method,
                            headers=[("Allow", ", ".join(allowed))])
        return handler(environ, settings, *args)
    except HTTPError as exc:
        payload = {"error": exc.message, "status": exc.status}
        payload.update(exc.extra)
        return json_response(exc.status, payload, headers=exc.headers)


def application(environ, start_response):
    """The WSGI entry point."""
    started = time.perf_counter()
    endpoint, _args = match_endpoint(environ.get("PATH_INFO"))
    method = method_label(environ)
    server_name = None
    unhandled = False
    try:
        try:
            settings = CONFIG.get()
            server_name = settings.server_name
            code, headers, body = dispatch(environ, settings)
        except Exception:  # the client gets a JSON error, the log gets the traceback
            LOG.exception("unhandled error on %s %s",
                          environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            unhandled = True
            code, headers, body = json_response(500, {"error": "internal server error", "status": 500})
        headers.append(("Content-Length", str(len(body))))
        headers.append(("X-Served-By", header_value(server_name or socket.gethostname())))
        if (environ.get("REQUEST_METHOD") or "").upper() == "HEAD":
            body = b""
        start_response(_status_line(code), headers)
    except Exception:  # the WSGI server answers 500 for us: count it as such
        record_request(endpoint, method, 500, time.perf_counter() - started, error=True)
        raise
    record_request(endpoint, method, code, time.perf_counter() - started, error=unhandled)
    return [body]


if __name__ == "__main__":  # a quick local run: python3 foobar_app.py [port]
    from wsgiref.simple_server import make_server

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with make_server("127.0.0.1", port, application) as httpd:
        LOG.info("serving on http://127.0.0.1:%d/", port)
        httpd.serve_forever()
