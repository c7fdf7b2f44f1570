"""Clients for the lab's fault tests and benchmarks, outside the cluster:
a write load through the load balancer that logs every acknowledged write,
a sampler of every database node's writability, and small helpers. Used by
the Molecule scenarios (molecule/*/tests) and scripts/bench-failover; it
sends traffic only to 127.0.0.1 and the lab's own containers."""

import bisect
import hashlib
import os
import pathlib
import random
import re
import secrets
import subprocess
import threading
import time

import pymysql
import requests
import yaml

LAB = os.environ.get("DISTWEB_LAB_NAME", "distweb-molecule")
SUBNET = os.environ.get("DISTWEB_LAB_SUBNET_PREFIX", "172.28.20")
HTTP_PORT = os.environ.get("DISTWEB_LAB_HTTP_PORT", "18080")
HTTPS_PORT = os.environ.get("DISTWEB_LAB_HTTPS_PORT", "18443")
# The first load balancer's ports, published on loopback.
SITE = f"https://127.0.0.1:{HTTPS_PORT}"
PLAIN_SITE = f"http://127.0.0.1:{HTTP_PORT}"
DB_NODES = {"server1": 11, "server2": 12, "server3": 13}
# The load balancers' virtual IP (inventories/lab), on the lab's network.
VIP = f"{SUBNET}.100"
VIP_SITE = f"https://{VIP}"
LOAD_BALANCERS = ("lb1", "lb2")


def secrets_dir():
    """Where the lab keeps the passwords and CA it generated
    (inventories/lab/group_vars/all/lab.yml)."""
    return pathlib.Path(os.environ.get("DISTWEB_LAB_SECRETS") or os.path.join(os.environ["HOME"], ".distweb", LAB))


def lab_secret(name):
    return secrets_dir().joinpath(name).read_text().split()[0]


def ca_file():
    """The lab CA's certificate, which signed the load balancers' ones."""
    return str(secrets_dir() / "pki" / "ca.crt")


def session():
    """A requests session that trusts the lab CA (and nothing else). It
    ignores the environment, whose REQUESTS_CA_BUNDLE or proxies would
    otherwise win over the lab's CA and send lab traffic elsewhere."""
    s = requests.Session()
    s.trust_env = False
    s.verify = ca_file()
    return s


# The failover lab's automation host (inventories/lab-failover).
AUTOMATION_HOSTS = {"automation1": 31}


def node_address(name):
    return f"{SUBNET}.{DB_NODES[name] if name in DB_NODES else AUTOMATION_HOSTS[name]}"


def container(name):
    return f"{LAB}-{name}"


def docker(*args, check=True, timeout=120, input_text=None):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout,
                          input=input_text)


def node_sql(name, query):
    """Rows of one query run as root over the node's socket (docker exec)."""
    out = docker("exec", container(name), "mariadb", "--batch", "--skip-column-names", "-e", query).stdout.strip()
    return [line.split("\t") for line in out.splitlines()] if out else []


def read_only(name):
    """A node's @@read_only ("1" or "0"), or None when the query failed: a
    woken old primary's guard kills every client session as it fences, the
    session of this probe too."""
    result = docker("exec", container(name), "mariadb", "--batch", "--skip-column-names", "-e",
                    "SELECT @@read_only", check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def slave_status(name):
    """SHOW SLAVE STATUS of a node as {column: value} ({} when it is not a replica)."""
    out = docker("exec", container(name), "mariadb", "-e", "SHOW SLAVE STATUS\\G").stdout
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line and not line.startswith("*"))
    return {key.strip(): value.strip() for key, value in pairs}


# What each lab platform (DISTWEB_LAB_PLATFORM, scripts/lib.sh) must be:
# Debian's release and the MariaDB and HAProxy series it ships.
LAB_PLATFORMS = {"bookworm": ("12", "10.11.", "2.6."), "trixie": ("13", "11.8.", "3.0.")}


def platform_seen(db_node, lb_node):
    """(Debian major version, MariaDB version, HAProxy version) as the lab's
    nodes report them."""
    release = docker("exec", container(db_node), "sh", "-c", ". /etc/os-release && echo $VERSION_ID").stdout.strip()
    mariadb = node_sql(db_node, "SELECT VERSION()")[0][0]
    haproxy = docker("exec", container(lb_node), "haproxy", "-v").stdout.split()[2]
    return release, mariadb, haproxy


def assert_lab_platform(db_node, lb_node):
    """The lab runs the platform it was started for (bookworm unless
    DISTWEB_LAB_PLATFORM says otherwise), with that platform's servers."""
    platform = os.environ.get("DISTWEB_LAB_PLATFORM", "bookworm")
    release, mariadb, haproxy = platform_seen(db_node, lb_node)
    want_release, want_mariadb, want_haproxy = LAB_PLATFORMS[platform]
    assert release == want_release, f"{db_node} runs Debian {release}, the lab was started for {platform}"
    assert mariadb.startswith(want_mariadb) and "MariaDB" in mariadb, mariadb
    assert haproxy.startswith(want_haproxy), haproxy
    print(f"platform {platform}: Debian {release}, MariaDB {mariadb}, HAProxy {haproxy}")


def wait_for(predicate, timeout=60, interval=0.5, what="condition"):
    """The first true value of ``predicate()``, polled every ``interval``
    seconds; an AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_node(name, timeout=120):
    """Start a stopped or killed node's container and wait until its
    MariaDB answers."""
    docker("start", container(name))
    wait_for(lambda: docker("exec", container(name), "mariadb", "-e", "SELECT 1", check=False).returncode == 0,
             timeout, what=f"{name}'s MariaDB to start")


def vip_holders():
    """The load balancers that have the virtual IP on an interface now."""
    holders = []
    for lb in LOAD_BALANCERS:
        out = docker("exec", container(lb), "ip", "-4", "-o", "addr", "show", check=False).stdout
        if f" {VIP}/" in out:
            holders.append(lb)
    return holders


def client(*argv, timeout=120):
    """Run a command in the lab's client container (outside the cluster)."""
    return docker("exec", container("client"), *argv, check=False, timeout=timeout)


LB_SOCKET = "/run/haproxy/admin.sock"


def haproxy_api(host, command, admin_socket=LB_SOCKET):
    """The answer of an HAProxy runtime API socket inside ``host``'s
    container (docker exec) to one command line (several may be joined with
    ';'): a load balancer's by default, ``admin_socket=ROUTER_SOCKET`` for an
    app server's database router. '' when the socket did not answer (e.g.
    during a reload)."""
    script = ("import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);"
              "s.sendall((sys.argv[2]+'\\n').encode());print(b''.join(iter(lambda: s.recv(65536), b'')).decode())")
    return docker("exec", container(host), "python3", "-c", script, admin_socket, command, check=False).stdout


def stat_rows(answer, backend):
    """{server: {stat field: value}} of one backend in the ``show stat``
    CSV of an answer ({} when the answer has no such table)."""
    lines = answer.splitlines()
    header = next((line.lstrip("# ").split(",") for line in lines if line.startswith("# pxname,")), None)
    if header is None:
        return {}
    servers = {}
    for line in lines:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == backend and row.get("svname") not in ("BACKEND", "FRONTEND"):
            servers[row["svname"]] = row
    return servers


def haproxy_servers(lb="lb1", backend="web", admin_socket=LB_SOCKET):
    """{server: {stat field: value}} of one backend, from ``show stat``;
    a ValueError when the socket gave no table."""
    answer = haproxy_api(lb, "show stat", admin_socket)
    if "# pxname," not in answer:
        raise ValueError(f"no show stat answer from {admin_socket} on {lb}")
    return stat_rows(answer, backend)


def every_server_up():
    """Every web server is UP on every load balancer, out of its slow start."""
    return all(
        row["status"] == "UP" and row.get("throttle", "") == ""
        for lb in LOAD_BALANCERS
        for row in haproxy_servers(lb).values()
    )


# The monitoring host (inventories/lab) and the lab's alert receiver in the
# client container (molecule/resources/alert_receiver.py).
PROMETHEUS = f"http://{SUBNET}.30:9090"
RECEIVER = f"http://{SUBNET}.200:9099/alerts"


def prometheus_query(expr):
    """The result vector of an instant PromQL query: [(labels, float)]."""
    with session() as http:
        reply = http.get(f"{PROMETHEUS}/api/v1/query", params={"query": expr}, timeout=10)
    reply.raise_for_status()
    return [(item["metric"], float(item["value"][1])) for item in reply.json()["data"]["result"]]


def received_alerts(since=0.0):
    """Every alert the lab's receiver got after ``since`` (Unix time), oldest
    first: [(received, status, labels)], one entry per alert of each
    notification ("firing" or "resolved")."""
    with session() as http:
        reply = http.get(RECEIVER, timeout=10)
    reply.raise_for_status()
    return [
        (note["received"], alert["status"], alert["labels"])
        for note in reply.json()
        if note["received"] >= since
        for alert in note.get("alerts", [])
    ]


def wait_for_alert(name, status="firing", since=0.0, timeout=180, **labels):
    """When (Unix time) the receiver first got alert ``name`` in ``status``
    with ``labels``, after ``since``; an AssertionError after ``timeout``."""

    def arrived():
        for received, alert_status, alert_labels in received_alerts(since):
            if (alert_status == status and alert_labels.get("alertname") == name
                    and all(alert_labels.get(k) == v for k, v in labels.items())):
                return received
        return None

    return wait_for(arrived, timeout, interval=1, what=f"{status} alert {name} {labels} at the receiver")


def admin_connect(name, timeout=1.0):
    """A connection to a node as the lab's administrative account, over TLS
    checked against the lab's CA, from this machine (the control node)."""
    return pymysql.connect(
        host=node_address(name),
        user="distweb_admin",
        password=lab_secret("mysql_admin"),
        ssl={"ca": str(secrets_dir() / "pki" / "ca.crt")},
        ssl_verify_identity=False,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        autocommit=True,
    )


class _Load:
    """A bounded load through the load balancer: ``workers`` threads send
    requests until stopped, at most ``max_requests`` each and ``max_seconds``
    in all. Every attempt is logged as (monotonic time, ok, what failed)."""

    def __init__(self, max_requests, max_seconds, pause, timeout, site, workers=1):
        self.max_requests, self.max_seconds, self.pause, self.timeout = max_requests, max_seconds, pause, timeout
        self.site = site
        self.attempts, self.errors = [], []
        # (sent, answered, ok) per request: when an acknowledgement arrived
        self.answers = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _worker in range(workers)]

    @property
    def failed(self):
        return sum(1 for _t, ok in self.attempts if not ok)

    def _one(self, http, n):
        """Send request number n; return None when it succeeded, else what went wrong."""
        raise NotImplementedError

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        with session() as http:
            for n in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                started = time.monotonic()
                try:
                    error = self._one(http, n)
                except (requests.RequestException, ValueError, KeyError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                self.attempts.append((started, error is None))
                self.answers.append((started, time.monotonic(), error is None))
                if error is not None:
                    self.errors.append((started, error))
                    http.close()
                time.sleep(self.pause)

    def first_answer_after(self, moment):
        """Monotonic time at which the first successful request sent after
        ``moment`` was answered (None: none yet)."""
        return min((answered for sent, answered, ok in list(self.answers) if ok and sent >= moment), default=None)

    def first_success_after(self, moment):
        """Monotonic time of the first successful request sent after ``moment``."""
        return next((t for t, ok in sorted(self.attempts) if ok and t >= moment), None)

    def last_success_before(self, moment):
        return next((t for t, ok in reversed(sorted(self.attempts)) if ok and t <= moment), None)

    def failed_between(self, start, end):
        return sum(1 for t, ok in self.attempts if not ok and start <= t <= end)

    def wait_for_success_after(self, moment, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.first_success_after(moment)
            if found is not None:
                return found
            time.sleep(0.05)
        return None

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def answered_by(response):
    """Who made an answer when the app did not (the app sets X-Served-By on
    every answer of its own): " from nginx" when a web server's nginx made it
    (its Server header), which for an error means its app server did not
    answer; " from the load balancer" when neither made it, which for a 503
    means HAProxy had no web server in rotation; else ""."""
    if "X-Served-By" in response.headers:
        return ""
    if response.headers.get("Server", "").startswith("nginx"):
        return " from nginx"
    return " from the load balancer"


class WriteLoad(_Load):
    """POSTs of new records, one after another; every value sent is kept in
    ``sent`` (before the request leaves, so a write that was stored but
    not acknowledged is still known), every acknowledged write as
    (id, value) in ``acknowledged``."""

    def __init__(self, max_writes=20000, max_seconds=600, pause=0.02, timeout=5, site=SITE):
        super().__init__(max_writes, max_seconds, pause, timeout, site)
        self.acknowledged = []
        self.sent = []

    def _one(self, http, n):
        value = f"load-{n}-{secrets.token_hex(4)}"
        self.sent.append(value)
        r = http.post(self.site + "/api/records", json={"value": value}, timeout=self.timeout)
        if r.status_code != 201:
            return f"HTTP {r.status_code}{answered_by(r)}"
        self.acknowledged.append((r.json()["id"], value))
        return None


class ReadLoad(_Load):
    """GETs of ``path`` from ``workers`` threads at once; counts the servers
    that answered (X-Served-By)."""

    def __init__(self, path="/", workers=4, max_requests=20000, max_seconds=600, pause=0.01, timeout=10, site=SITE):
        super().__init__(max_requests, max_seconds, pause, timeout, site, workers)
        self.path = path
        self.served_by = {}

    def _one(self, http, n):
        r = http.get(self.site + self.path, timeout=self.timeout)
        if r.status_code != 200:
            return f"HTTP {r.status_code}"
        who = r.headers.get("X-Served-By", "?")
        self.served_by[who] = self.served_by.get(who, 0) + 1
        return None


# The app servers of the lab layouts: each runs a local database router
# (roles/db_router) whose write backend is sampled by SplitBrainSampler.
ROUTERS = ("server1", "server2", "server3")
ROUTER_SOCKET = "/run/distweb-dbrouter/admin.sock"
HEALTH_PORT = 9201

# Run inside a router's container: prints, every ``interval`` seconds and
# at most ``count`` times, the server of the router's write backend
# (mysql_primary) it sends writes to: the first one, in the order of the
# configuration, whose state is UP (roles/db_router: balance first).
_ROUTER_PROBE = r"""
import csv, io, socket, sys, time
path, interval, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
for _ in range(count):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(1)
        s.connect(path)
        s.sendall(b"show stat\n")
        data = b"".join(iter(lambda: s.recv(65536), b"")).decode()
        s.close()
        rows = csv.DictReader(io.StringIO(data.lstrip("# ")))
        up = [r["svname"] for r in rows if r["pxname"] == "mysql_primary"
              and r["svname"] not in ("FRONTEND", "BACKEND") and r["status"].startswith("UP")]
        print("UP " + " ".join(up[:1]), flush=True)
    except Exception as exc:
        print("ERR %s" % exc, flush=True)
    time.sleep(interval)
"""


class SplitBrainSampler:
    """Watches, from outside the cluster, every view of "which node is the
    primary" that a write can follow, and keeps one snapshot per round:

    * ``sql``: each database node's ``@@global.read_only`` (True when
      writable), read over a connection of its own as the lab's
      administrative account;
    * ``http``: each node's health endpoint, ``GET :9201/primary`` (True on
      200, the answer the routers follow);
    * ``routers``: the nodes each app server's database router sends writes
      to (its write backend's servers that are UP), read on the router's
      runtime API inside its container.

    Every source is read by a thread of its own, so a hung or dead node
    slows nothing else down. A source that cannot be read (refused, timed
    out, its session killed by a fence, or no fresh reading for ``stale``
    seconds) is ``None``, unknown: never counted as read-only. A node whose
    connection fails is reconnected at once on the next reading.

    Bounded: it stops after ``max_seconds``, and then says so
    (``expired``); ``assert_covered`` fails for any window it did not
    sample, so a sampler that stopped cannot pass a test silently."""

    def __init__(self, nodes=tuple(DB_NODES), routers=ROUTERS, interval=0.1, stale=0.5, max_seconds=3600):
        self.nodes, self.routers = list(nodes), list(routers)
        self.interval, self.stale, self.max_seconds = interval, stale, max_seconds
        # (monotonic time, {"sql": {node: bool|None}, "http": {...}, "routers": {router: tuple|None}})
        self.rounds = []
        self.expired = False
        self._history = {}  # (kind, name) -> ([monotonic times], [values]), every reading in order
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = None
        self._procs = {}
        self._threads = [threading.Thread(target=self._rounds, daemon=True)]
        self._threads += [threading.Thread(target=self._sql, args=(n,), daemon=True) for n in self.nodes]
        self._threads += [threading.Thread(target=self._http, args=(n,), daemon=True) for n in self.nodes]
        self._threads += [threading.Thread(target=self._router, args=(r,), daemon=True) for r in self.routers]

    # -- the sources -----------------------------------------------------------
    def _note(self, kind, name, value):
        with self._lock:
            now = time.monotonic()
            times, values = self._history.setdefault((kind, name), ([], []))
            times.append(now)
            values.append(value)

    def _running(self):
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _sql(self, name):
        conn = None
        while self._running():
            started = time.monotonic()
            # A session killed by a fence is replaced at once: one retry on
            # a new connection before the node counts as unknown.
            for attempt in (1, 2):
                try:
                    if conn is None:
                        conn = admin_connect(name, timeout=1.0)
                    with conn.cursor() as cur:
                        cur.execute("SELECT @@global.read_only")
                        self._note("sql", name, int(cur.fetchone()[0]) == 0)
                    break
                except (pymysql.MySQLError, OSError):
                    if conn is not None:
                        try:
                            conn.close()
                        except (pymysql.MySQLError, OSError):
                            pass
                    conn = None
                    if attempt == 2:
                        self._note("sql", name, None)
            self._pace(started)
        if conn is not None:
            conn.close()

    def _pace(self, started):
        """Wait for a source's next reading: one interval after the last
        one began, and never less than half an interval after it ended. A
        reading that hung (a frozen node answers the moment it wakes) is
        not followed by another within the same millisecond: two readings
        that close would make primaries() count a node writable for a
        millisecond as one writable for a whole reading interval."""
        self._stop.wait(max(self.interval / 2, self.interval - (time.monotonic() - started)))

    def _http(self, name):
        url = f"http://{node_address(name)}:{HEALTH_PORT}/primary"
        with requests.Session() as http:
            http.trust_env = False
            while self._running():
                started = time.monotonic()
                try:
                    self._note("http", name, http.get(url, timeout=(0.5, 0.5)).status_code == 200)
                except requests.RequestException:
                    self._note("http", name, None)
                    http.close()
                self._pace(started)

    def _router(self, name):
        while self._running():
            left = max(1, int((self._deadline - time.monotonic()) / self.interval))
            # Popen is managed by hand: the with-statement would wait for the
            # probe to end, and the stop closes it from another thread.
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                ["docker", "exec", container(name), "python3", "-c", _ROUTER_PROBE,
                 ROUTER_SOCKET, str(self.interval), str(left)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._procs[name] = proc
            for line in proc.stdout:
                if line.startswith("UP"):
                    self._note("routers", name, tuple(line.split()[1:]))
                else:
                    self._note("routers", name, None)
                if not self._running():
                    break
            proc.kill()
            proc.wait()
            self._note("routers", name, None)
            self._stop.wait(0.5)  # the container is down: try again shortly

    # -- the rounds --------------------------------------------------------------
    def _fresh(self, kind, name, now):
        """A source's latest reading, or None when it is older than ``stale``."""
        times, values = self._history.get((kind, name), ([], []))
        if not times or now - times[-1] > self.stale:
            return None
        return values[-1]

    def _rounds(self):
        while self._running():
            now = time.monotonic()
            with self._lock:
                snapshot = {
                    "sql": {n: self._fresh("sql", n, now) for n in self.nodes},
                    "http": {n: self._fresh("http", n, now) for n in self.nodes},
                    "routers": {r: self._fresh("routers", r, now) for r in self.routers},
                }
            self.rounds.append((now, snapshot))
            self._stop.wait(self.interval)
        if not self._stop.is_set():
            self.expired = True

    # -- what was seen ---------------------------------------------------------
    def _around(self, kind, name, moment):
        """(the reading of a source at or before ``moment``, the first one
        after it): None for a reading that is unknown, missing, or older
        than ``stale``; with no later reading yet, the earlier one stands."""
        with self._lock:  # the readers append to both lists under it
            times, values = self._history.get((kind, name), ([], []))
            i = bisect.bisect_right(times, moment)
            before = values[i - 1] if i > 0 and moment - times[i - 1] <= self.stale else None
            after = values[i] if i < len(values) else before
        return before, after

    def primaries(self, moment):
        """The nodes acting as primary at ``moment``, by each view: SQL
        (writable), health endpoint (200 on /primary), routers (nodes a
        router sends writes to, unless known to be read-only or no primary
        by their health endpoint then). A node
        counts only when its readings on both sides of the moment say so:
        the sources are read one after another, so a node fenced a few
        milliseconds before another was promoted (a switchover) is not taken
        for a second primary, while two primaries that overlap for longer
        than one reading interval (0.1 s) are."""
        seen = {}
        for kind in ("sql", "http"):
            seen[kind] = sorted(n for n in self.nodes if self._around(kind, n, moment) == (True, True))
        routed = set()
        for router in self.routers:
            before, after = self._around("routers", router, moment)
            targets = set(before or ()) & set(after or ())
            # A node's own router is stale by its checks' fall time once the
            # node wakes up or starts again (it was frozen or down with it):
            # it counts only while the node is seen writable on both sides.
            if router in targets and self._around("sql", router, moment) != (True, True):
                targets.discard(router)
            routed.update(targets)
        # A router pointing at a node that is read-only, or that its own
        # health endpoint reports as no primary (with lossless semi-sync: no
        # semi-sync replica, so no commit there can be acknowledged), costs
        # failed writes, not a second primary: only the others count.
        seen["routers"] = sorted(n for n in routed
                                 if False not in self._around("sql", n, moment) + self._around("http", n, moment))
        return seen

    @property
    def max_writable(self):
        """The most nodes any one view saw as primary at one round's moment."""
        return max((len(names) for when, dummy in self.rounds for names in self.primaries(when).values()),
                   default=0)

    def split_brain_rounds(self, rounds=None):
        """[(time, {view: nodes})] of the rounds (all, or those given) at
        whose moment some view saw more than one primary."""
        found = []
        for when, dummy in self.rounds if rounds is None else rounds:
            seen = self.primaries(when)
            if any(len(names) > 1 for names in seen.values()):
                found.append((when, seen))
        return found

    def between(self, start, end):
        return [(t, snap) for t, snap in self.rounds if start <= t <= end]

    def assert_covered(self, start, end, live=None, what="the operation"):
        """The sampler read every source of the ``live`` nodes and routers
        (all by default) in most rounds of [start, end], and saw no split
        brain there. Returns the window's rounds."""
        live = list(self.nodes if live is None else live)
        window = self.between(start, end)
        expected = max(3, int((end - start) / self.interval * 0.5))
        assert not self.expired or self.rounds[-1][0] >= end, f"the sampler stopped before the end of {what}"
        assert len(window) >= expected, f"{len(window)} sampler rounds during {what}, expected {expected} or more"
        for kind in ("sql", "http", "routers"):
            names = [n for n in live if n in window[0][1][kind]]
            for name in names:
                known = sum(1 for dummy, snap in window if snap[kind][name] is not None)
                assert known >= len(window) // 2, \
                    f"the sampler could read {kind} of {name} in only {known} of {len(window)} rounds of {what}"
        split = self.split_brain_rounds(window)
        assert split == [], f"more than one primary during {what}: {split[:5]}"
        return window

    def __enter__(self):
        self._deadline = time.monotonic() + self.max_seconds
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for proc in list(self._procs.values()):
            proc.kill()
        for thread in self._threads:
            thread.join(timeout=30)


def writable_nodes():
    """Names of the nodes that answer and are writable, read once."""
    found = []
    for name in DB_NODES:
        try:
            conn = admin_connect(name)
        except pymysql.MySQLError:
            continue
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@global.read_only")
                if int(cur.fetchone()[0]) == 0:
                    found.append(name)
        finally:
            conn.close()
    return found


def logged_values(name, paths):
    """The write load's values in binary log files on node ``name``
    (``paths``: a shell word list, globs allowed), decoded row by row."""
    out = docker("exec", container(name), "sh", "-c", f"mariadb-binlog --base64-output=decode-rows -v {paths}", timeout=300).stdout
    return set(re.findall(r"^###   @2='(load-[^']*)'$", out, re.M))


def missing_values(name, values):
    """The acknowledged values a node lacks (foobar.records)."""
    present = {row[0] for row in node_sql(name, "SELECT value FROM foobar.records")}
    return [v for v in values if v not in present]


def stored_counts(name, values):
    """{value: how many rows of foobar.records hold it} on one node, for
    every value given (0 for a value it lacks)."""
    counts = dict.fromkeys(values, 0)
    for value, n in node_sql(name, "SELECT value, COUNT(*) FROM foobar.records GROUP BY value"):
        if value in counts:
            counts[value] = int(n)
    return counts


def assert_stored_once(name, load):
    """On node ``name``: every write ``load`` sent is stored at most once
    (none replayed by a retry), and every acknowledged one exactly once
    (none lost)."""
    counts = stored_counts(name, load.sent)
    acknowledged = [value for _id, value in load.acknowledged]
    assert acknowledged, "no write was acknowledged"
    twice = [v for v, n in counts.items() if n > 1]
    assert twice == [], f"{name} stores {len(twice)} written values more than once: {twice[:5]}"
    lost = [v for v in acknowledged if counts.get(v) != 1]
    assert lost == [], f"{name} lacks {len(lost)} acknowledged writes: {lost[:5]}"


# SHOW SLAVE STATUS columns that move on their own (positions, states,
# counters): left out when judging whether an operation changed a node.
VOLATILE_SLAVE_FIELDS = frozenset((
    "Slave_IO_State", "Master_Log_File", "Read_Master_Log_Pos", "Relay_Log_Pos", "Relay_Master_Log_File",
    "Exec_Master_Log_Pos", "Relay_Log_Space", "Seconds_Behind_Master", "Gtid_IO_Pos", "SQL_Remaining_Delay",
    "Slave_SQL_Running_State", "Slave_DDL_Groups", "Slave_Non_Transactional_Groups", "Slave_Transactional_Groups",
))
_STATE_VARIABLES = ("read_only", "gtid_strict_mode", "gtid_slave_pos", "gtid_binlog_pos",
                    "rpl_semi_sync_master_enabled", "rpl_semi_sync_slave_enabled",
                    "rpl_semi_sync_master_wait_point", "rpl_semi_sync_master_timeout")


def replication_state(name):
    """Everything that says how a node replicates, as one comparable dict,
    to judge "changed nothing": SHOW SLAVE STATUS without its moving
    positions (threads, errors, source, TLS, GTID mode), read_only, the GTID
    positions and semi-sync settings (each variable read alone: see the
    sampler trap in the platform notes), the semi-sync statuses, the
    heartbeat period in force, and a digest of master.info past its
    positions (it holds the password, which no status shows)."""
    state = {key: value for key, value in slave_status(name).items() if key not in VOLATILE_SLAVE_FIELDS}
    for var in _STATE_VARIABLES:
        rows = node_sql(name, f"SELECT @@global.{var}")
        state["@@" + var] = rows[0][0] if rows else ""  # an empty GTID position prints nothing
    for key, value in node_sql(name, "SHOW GLOBAL STATUS WHERE Variable_name IN "
                                     "('Rpl_semi_sync_master_status', 'Rpl_semi_sync_slave_status', "
                                     "'Slave_heartbeat_period')"):
        state[key] = value
    info = docker("exec", container(name), "cat", "/var/lib/mysql/master.info", check=False)
    settings = "\n".join(info.stdout.splitlines()[3:]) if info.returncode == 0 else "no master.info"
    state["master.info settings"] = hashlib.sha256(settings.encode()).hexdigest()
    return state


def router_states(routers=ROUTERS):
    """{router: {backend: {server: status}}} of every app server's database
    router, for comparing before and after an operation."""
    return {
        # the status word only: "UP 1/2" is UP with a check failed, noise
        # of the checks rather than a change of state
        router: {backend: {server: (row["status"].split() or [""])[0] for server, row in
                           haproxy_servers(router, backend, admin_socket=ROUTER_SOCKET).items()}
                 for backend in ("mysql_primary", "mysql_replicas")}
        for router in routers
    }


FAULT_TABLE = "distweb_faults"


def drop_traffic(name, sources, ports):
    """Inside node ``name``'s container, drop TCP packets from ``sources``
    (lab addresses) to ``ports``, in an nftables table of the tests' own
    (never the firewall's, never a flush of the ruleset: Docker's DNS lives
    there). Established connections stall too. Undone by heal(name), or by
    the container's restart (the table is not saved)."""
    addresses = ", ".join(sources)
    portlist = ", ".join(str(p) for p in ports)
    rules = (f"table inet {FAULT_TABLE} {{\n chain input {{\n  type filter hook input priority -50;\n"
             f"  ip saddr {{ {addresses} }} tcp dport {{ {portlist} }} drop\n }}\n}}\n")
    heal(name)
    docker("exec", "-i", container(name), "nft", "-f", "-", input_text=rules)


def heal(name):
    """Remove the tests' nftables table from a node, if it has one."""
    docker("exec", container(name), "nft", "delete", "table", "inet", FAULT_TABLE, check=False)


def gtid_before(primary, *words):
    """The GTID of the transaction just before the one whose statement
    contains all ``words``, read from the primary's binary logs (SHOW
    BINLOG EVENTS), as an operator finds a point-in-time restore's point
    with mariadb-binlog; exactly one such statement must be there."""
    previous, current, found = None, None, []
    for (log, *_size) in node_sql(primary, "SHOW BINARY LOGS"):
        for event in node_sql(primary, f"SHOW BINLOG EVENTS IN '{log}'"):
            kind, info = event[2], event[5]
            if kind == "Gtid":
                previous, current = current, info.split()[-1]
            elif all(word in info for word in words):
                found.append(previous)
    assert len(found) == 1, f"{len(found)} statements with {words} in {primary}'s binary logs"
    return found[0]


def wait_for_gtid(name, gtid, timeout=60):
    """Wait until a node has applied ``gtid`` (MASTER_GTID_WAIT); True if so."""
    result = node_sql(name, f"SELECT MASTER_GTID_WAIT('{gtid}', {int(timeout)})")
    return bool(result) and result[0][0] == "0"


def primary_position(primary):
    return node_sql(primary, "SELECT @@global.gtid_binlog_pos")[0][0]


def replicating(name):
    """Both replication threads of a node run."""
    status = slave_status(name)
    return (status.get("Slave_IO_Running"), status.get("Slave_SQL_Running")) == ("Yes", "Yes")


def wait_until_caught_up(name, primary, timeout=90):
    """Wait until replica ``name`` runs both threads and has applied what
    ``primary`` has now; else an AssertionError with its replication errors."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replicating(name) and wait_for_gtid(name, primary_position(primary), timeout=5):
            return
        time.sleep(0.5)
    status = slave_status(name)
    raise AssertionError(f"{name} does not replicate again: IO {status.get('Slave_IO_Running')} "
                         f"({status.get('Last_IO_Error')}), SQL {status.get('Slave_SQL_Running')} "
                         f"({status.get('Last_SQL_Error')})")


def repairs_logged(name):
    """The health endpoint's crash-repair lines in a node's journal (kept
    across the container's restarts; a container has no boot of its own)."""
    out = docker("exec", container(name), "journalctl", "-u", "distweb-mysql-health", "--no-pager", "-o", "cat",
                 check=False).stdout
    return [line for line in out.splitlines() if "repair: REPAIRED" in line]


class SchemaChanges:
    """DDL on the primary now and then, as real traffic has it: create a
    table, add a column to it, drop the one before (tables
    ``<database>.<prefix><run>_<n>``, a run of its own each time); every
    statement the primary acknowledged is logged with its GTID in ``done``.
    ``one()`` runs the next one at once; as a context manager it runs one
    every ``interval`` seconds in a thread, bounded in count and time."""

    def __init__(self, primary, database="foobar", prefix="crash_ddl_", interval=1.5, max_seconds=900,
                 max_statements=900):
        self.primary, self.database, self.prefix = primary, database, prefix
        self.interval, self.max_seconds, self.max_statements = interval, max_seconds, max_statements
        self.run_id = secrets.token_hex(3)
        self.done, self.errors = [], []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._n = 3  # the first table is number 1: "drop the one before" names table 0, never created

    def _table(self, k):
        return f"{self.database}.{self.prefix}{self.run_id}_{k}"

    def one(self):
        """Run the next DDL now; return its GTID."""
        with self._lock:
            n = self._n
            self._n += 1
            k = n // 3
            statement = (f"CREATE TABLE {self._table(k)} (id INT PRIMARY KEY, note VARCHAR(20))",
                         f"ALTER TABLE {self._table(k)} ADD COLUMN extra INT",
                         f"DROP TABLE IF EXISTS {self._table(k - 1)}")[n % 3]
            conn = writer_connect(self.primary, self.primary)
            try:
                with conn.cursor() as cur:
                    cur.execute(statement)
                    cur.execute("SELECT @@last_gtid")
                    gtid = cur.fetchone()[0]
            finally:
                conn.close()
            self.done.append((statement, gtid))
            return gtid

    def schema(self, name):
        """This run's DDL tables and their columns on node ``name``."""
        return node_sql(name, "SELECT table_name, GROUP_CONCAT(column_name ORDER BY ordinal_position) "
                              f"FROM information_schema.columns WHERE table_schema = '{self.database}' "
                              f"AND table_name LIKE '{self.prefix}{self.run_id}%' GROUP BY table_name "
                              "ORDER BY table_name")

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline and self._n < self.max_statements:
            try:
                self.one()
            except Exception as exc:  # noqa: BLE001 - logged, the caller asserts on it
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)


_WRITER = {}


def writer_connect(name, primary, timeout=10):
    """A connection to node ``name`` as a test account that may change
    foobar's schema and rows (the lab's administrative account has no data
    privileges). The account is made on ``primary`` the first time (it
    reaches the replicas by replication); drop_writer removes it."""
    if primary not in _WRITER:
        password = secrets.token_hex(16)
        node_sql(primary, f"CREATE OR REPLACE USER 'crashtest'@'%' IDENTIFIED BY '{password}'; "
                          "GRANT ALL ON foobar.* TO 'crashtest'@'%'")
        _WRITER[primary] = password
    return pymysql.connect(host=node_address(name), user="crashtest", password=_WRITER[primary], database="foobar",
                           ssl={"ca": str(secrets_dir() / "pki" / "ca.crt")}, ssl_verify_identity=False,
                           connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout, autocommit=True)


def drop_writer(primary):
    node_sql(primary, "DROP USER IF EXISTS 'crashtest'@'%'")
    _WRITER.pop(primary, None)


KILL_MOMENTS = ("during the writes", "right after a DDL", "right after its restart", "inside a large transaction")
BULK_TABLE = "foobar.crash_bulk"


def crash_plan(replicas, rounds):
    """(replica, moment) of each crash round: the replicas in turn, each
    moment of KILL_MOMENTS for every replica before the next moment."""
    return [(replicas[n % len(replicas)], KILL_MOMENTS[(n // len(replicas)) % len(KILL_MOMENTS)])
            for n in range(rounds)]


def prepare_crash_rounds(primary):
    """The table crash rounds fill with large transactions."""
    node_sql(primary, f"CREATE TABLE IF NOT EXISTS {BULK_TABLE} "
                      "(id BIGINT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB")


def _bulk_insert(primary, rows):
    """One large transaction on the primary: ``rows`` rows in one INSERT."""
    conn = writer_connect(primary, primary, timeout=120)
    try:
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {BULK_TABLE} (note) SELECT CONCAT('bulk-', seq) FROM seq_1_to_{int(rows)}")
    finally:
        conn.close()


def crash_round(name, moment, primary, changes, randomly=random, bulk_rows=100000):
    """Kill replica ``name``'s container (SIGKILL to every process in it) at
    ``moment`` (one of KILL_MOMENTS), start it and wait until it replicates
    again by itself and has caught up. Returns {"kills", "seconds" (from
    the start to caught up), "repairs" (crash repairs its health endpoint
    logged in the round), "error" (None, or why it does not replicate)}."""
    kills, repairs_before = 1, len(repairs_logged(name))
    if moment == "during the writes":
        time.sleep(randomly.uniform(0.1, 2.0))
        docker("kill", container(name))
    elif moment == "right after a DDL":
        gtid = changes.one()
        wait_for(lambda: wait_for_gtid(name, gtid, timeout=1), 30, interval=0, what=f"the DDL {gtid} on {name}")
        docker("kill", container(name))
    elif moment == "right after its restart":
        docker("kill", container(name))
        start_node(name)
        time.sleep(randomly.uniform(0.0, 0.5))
        docker("kill", container(name))
        kills = 2
    elif moment == "inside a large transaction":
        bulk = threading.Thread(target=_bulk_insert, args=(primary, bulk_rows), daemon=True)
        bulk.start()
        time.sleep(randomly.uniform(0.3, 1.5))
        docker("kill", container(name))
        bulk.join(120)
    else:
        raise ValueError(f"unknown moment {moment!r}: one of {KILL_MOMENTS}")
    started = time.monotonic()
    start_node(name)
    error = None
    try:
        wait_until_caught_up(name, primary)
    except AssertionError as exc:
        error = str(exc)
    return {"kills": kills, "seconds": round(time.monotonic() - started, 1),
            "repairs": len(repairs_logged(name)) - repairs_before, "error": error}


def first_apply_seconds(primary, name):
    """Seconds from a commit on the primary until replica ``name`` has
    applied it (MASTER_GTID_WAIT on a connection opened beforehand)."""
    source, replica = writer_connect(primary, primary), admin_connect(name, timeout=40)
    try:
        with source.cursor() as cur:
            cur.execute(f"INSERT INTO {BULK_TABLE} (note) VALUES ('first after restart')")
            committed = time.monotonic()
            cur.execute("SELECT @@last_gtid")
            gtid = cur.fetchone()[0]
        with replica.cursor() as cur:
            cur.execute("SELECT MASTER_GTID_WAIT(%s, 30)", (gtid,))
            assert int(cur.fetchone()[0]) == 0, f"{name} did not apply {gtid} in 30 s"
        return round(time.monotonic() - committed, 3)
    finally:
        source.close()
        replica.close()


PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or pathlib.Path(__file__).resolve().parents[2])
# Molecule's inventory; outside Molecule DISTWEB_LAB_INVENTORY (a bench lab's,
# such as inventories/lab-failover), else the lab of scripts/lab.
INVENTORY = pathlib.Path(
    os.environ["MOLECULE_EPHEMERAL_DIRECTORY"] + "/inventory"
    if os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    else os.environ.get("DISTWEB_LAB_INVENTORY") or PROJECT / "inventories" / "lab"
)


def run(*args, env=None, timeout=1200):
    """Run an Ansible command (or any) from the project, output without colour."""
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=PROJECT,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", **(env or {})},
    )


def playbook(*args, env=None):
    """ansible-playbook against the scenario's (or the lab's) inventory."""
    return run("ansible-playbook", "-i", str(INVENTORY), *args, env=env)


def recap(output):
    """{host: {"ok": n, "changed": n, "failed": n, ...}} of a run's PLAY RECAP."""
    text = output[output.index("PLAY RECAP"):]
    return {host: {key: int(n) for key, n in re.findall(r"(\w+)=(\d+)", counts)}
            for host, counts in re.findall(r"^(\S+)\s+:\s+(.*)$", text, re.M)}


def changed_tasks(output):
    """The tasks a run reported changed, as "TASK [...]: changed: [host]"
    lines, each with the diff lines printed for it (--diff): what an
    assertion on changed_per_host should show when it fails."""
    found, task, diff = [], "", []
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task, diff = line.rstrip(" *"), []
        elif line.startswith("changed: "):
            found += [f"{task}: {line}"] + ["    " + d for d in diff]
            diff = []
        elif line.startswith(("ok: ", "skipping: ", "included: ")):
            diff = []
        elif line.startswith(("---", "+++", "@@", "-", "+")):
            diff.append(line)
    return "\n".join(found[:200])


def table_checksum(primary, replicas, database="foobar"):
    """Run pt-table-checksum on ``primary`` against the replicas it sees
    (SHOW SLAVE HOSTS) and return (tool exit code, report, rows of the
    tool's table for ``database``, {replica: (chunks it checksummed, chunks
    that differ)}): a replica that checksummed nothing shows 0 chunks, not
    0 differences. A temporary account is made for the tool and dropped
    afterwards."""
    installed = docker("exec", "-e", "DEBIAN_FRONTEND=noninteractive", container(primary),
                       "sh", "-c", "command -v pt-table-checksum || apt-get install -y -q percona-toolkit",
                       check=False, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    password = secrets.token_hex(16)
    node_sql(primary, f"CREATE OR REPLACE USER 'checksum'@'%' IDENTIFIED BY '{password}'")
    node_sql(primary, "GRANT SELECT, PROCESS, SUPER, REPLICATION SLAVE, BINLOG MONITOR, BINLOG ADMIN, SLAVE MONITOR, "
                      "REPLICATION MASTER ADMIN ON *.* TO 'checksum'@'%'")
    node_sql(primary, "GRANT ALL ON percona.* TO 'checksum'@'%'")
    try:
        # Every replica replicates straight from the primary (no chain), so the
        # tool's statement-based checksums are safe with the replicas' ROW
        # binlogs: its binlog_format check guards chained replicas only.
        tool = docker("exec", container(primary), "pt-table-checksum", "--no-version-check",
                      "--no-check-binlog-format", "--recursion-method=hosts", f"--databases={database}",
                      "--replicate=percona.checksums", f"h={container(primary)},u=checksum,p={password}",
                      check=False, timeout=600)
        report = tool.stdout + tool.stderr
        lines = [line.split() for line in tool.stdout.splitlines() if f"{database}." in line]
        # The checksums reach the replicas through replication: wait for them.
        position = node_sql(primary, "SELECT @@gtid_binlog_pos")[0][0]
        checked = {}
        for name in replicas:
            assert node_sql(name, f"SELECT MASTER_GTID_WAIT('{position}', 120)") == [["0"]], name
            chunks, differ = node_sql(
                name,
                f"SELECT COUNT(*), COALESCE(SUM(master_cnt <> this_cnt OR master_crc <> this_crc "
                f"OR ISNULL(master_crc) <> ISNULL(this_crc)), 0) FROM percona.checksums WHERE db = '{database}'")[0]
            checked[name] = (int(chunks), int(differ))
        return tool.returncode, report, lines, checked
    finally:
        node_sql(primary, "DROP USER IF EXISTS 'checksum'@'%'")
        node_sql(primary, "DROP DATABASE IF EXISTS percona")


# ---------------------------------------------------------------------------
# Putting a fault test's lab back (the failover scenario's cases share one
# converged lab and repair it between cases instead of converging again).
# ---------------------------------------------------------------------------

def output(result):
    """The end of a run's output, for an assertion's message."""
    return result.stdout[-6000:] + result.stderr[-3000:]


def flat(result):
    """The whole output with whitespace collapsed: the YAML callback folds
    long messages over several lines."""
    return " ".join((result.stdout + result.stderr).split())


def inventory_naming(primary, tmp_path_factory):
    """A copy of the scenario's inventory naming ``primary`` the primary
    (db_primary) and the other nodes replicas: what an operator updates
    after a failover, so that rebuild_replica.yml seeds from the live
    primary."""
    work = tmp_path_factory.mktemp("inventory")
    # Molecule's inventory file is "hosts", a checked-in one's "hosts.yml"
    source = next(INVENTORY / name for name in ("hosts", "hosts.yml") if (INVENTORY / name).is_file())
    for entry in INVENTORY.iterdir():
        if entry == source or entry.is_dir():
            continue
        (work / entry.name).write_text(entry.read_text())
    (work / "group_vars").symlink_to((INVENTORY / "group_vars").resolve())
    hosts = yaml.safe_load(source.read_text())
    groups = hosts["all"]["children"]["dbservers"]["children"]
    groups["db_primary"]["hosts"] = {primary: None}
    groups["db_replicas"]["hosts"] = {n: None for n in DB_NODES if n != primary}
    (work / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return work


def bring_back(node, primary, tmp_path_factory):
    """Make ``node`` (started, read-only or not) a replica of ``primary``:
    rejoin.yml, or, when it refuses a diverged node, rebuild_replica.yml
    against an inventory naming the live primary."""
    result = playbook("playbooks/rejoin.yml", "-e", f"mysql_cluster_rejoin_node={node}")
    if result.returncode != 0:
        assert "rebuild_replica" in flat(result), output(result)
        inventory = inventory_naming(primary, tmp_path_factory)
        rebuilt = run("ansible-playbook", "-i", str(inventory), "playbooks/rebuild_replica.yml",
                      "-e", f"rebuild_replica_host={node}")
        assert rebuilt.returncode == 0, output(rebuilt)
        result = playbook("playbooks/rejoin.yml", "-e", f"mysql_cluster_rejoin_node={node}")
    assert result.returncode == 0, output(result)
    position = node_sql(primary, "SELECT @@gtid_binlog_pos")[0][0]
    assert wait_for_gtid(node, position), f"{node} did not catch up to {position}"


def restore_lab(tmp_path_factory, home="server1"):
    """Put the lab back as the inventory has it after a case: every
    container running, every node other than the live primary a healthy
    replica of it (rejoin, or rebuild when it diverged), then the primary
    switched back to ``home``. Called at the start of each case, as pytest
    tears module fixtures down only at the end of the module."""
    for name in DB_NODES:
        if not container_running(name):
            start_node(name)
    writable = writable_nodes()
    if not writable:  # a primary that restarted read-only
        make_primary_again(home)
        writable = writable_nodes()
    if len(writable) > 1:  # a woken old primary that did not fence itself
        writable = [n for n in writable
                    if any(slave_status(r).get("Master_Host") == container(n) for r in DB_NODES if r != n)]
    assert len(writable) == 1, f"cannot tell the live primary: writable {writable_nodes()}"
    primary = writable[0]
    for name in DB_NODES:
        if name == primary:
            continue
        status = slave_status(name)
        healthy = (status.get("Master_Host") == container(primary)
                   and (status.get("Slave_IO_Running"), status.get("Slave_SQL_Running")) == ("Yes", "Yes"))
        if not healthy:
            bring_back(name, primary, tmp_path_factory)
    if primary != home:
        result = playbook("playbooks/switchover.yml", "-e", f"mysql_cluster_switchover_target={home}")
        assert result.returncode == 0, output(result)
    assert writable_nodes() == [home]
    for name in (n for n in DB_NODES if n != home):
        wait_for(lambda n=name: slave_status(n).get("Slave_IO_Running") == "Yes", 60, what=f"{name} to replicate")


def make_primary_again(name):
    """What site.yml's mysql_primary role does to a primary that restarted
    (read-only, the semi-sync source side off, as every node starts), done
    directly over SQL as the lab's administrative account: semi-sync source
    on, then writable. Only for a node its replicas still replicate from."""
    sources = {slave_status(n).get("Master_Host") for n in DB_NODES if n != name}
    assert sources == {container(name)}, f"the replicas replicate from {sources}, not {name}"
    conn = admin_connect(name, timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL rpl_semi_sync_master_enabled = ON")
            cur.execute("SET GLOBAL read_only = OFF")
    finally:
        conn.close()


def container_running(name):
    found = docker("inspect", "-f", "{{.State.Running}}", container(name), check=False)
    return found.stdout.strip() == "true" if found.returncode == 0 else None


def sampling(allowed=()):
    """A started SplitBrainSampler; when it ends, no round with two
    primaries in any view, outside the ``allowed`` (start, end) windows
    (a list the caller may fill while it runs)."""
    with SplitBrainSampler() as s:
        wait_for(lambda: len(s.rounds) > 5 and all(
            v is not None for kind in ("sql", "http", "routers") for v in s.rounds[-1][1][kind].values()),
            60, what="the sampler to read every node and router")
        yield s
    assert not s.expired, "the sampler reached its time limit before the tests ended"
    split = [r for r in s.split_brain_rounds() if not any(start <= r[0] <= end for start, end in allowed)]
    assert split == [], f"more than one primary at once: {split[:5]}"
