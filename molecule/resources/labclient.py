"""Clients for the lab's fault tests and benchmarks, outside the cluster:
a write load through the load balancer that logs every acknowledged write,
a sampler of every database node's writability, and small helpers. Used by
the Molecule scenarios (molecule/*/tests) and scripts/bench-failover; it
sends traffic only to 127.0.0.1 and the lab's own containers."""

import os
import pathlib
import secrets
import subprocess
import threading
import time

import pymysql
import requests

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


def node_address(name):
    return f"{SUBNET}.{DB_NODES[name]}"


def container(name):
    return f"{LAB}-{name}"


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def node_sql(name, query):
    """Rows of one query run as root over the node's socket (docker exec)."""
    out = docker("exec", container(name), "mariadb", "--batch", "--skip-column-names", "-e", query).stdout.strip()
    return [line.split("\t") for line in out.splitlines()] if out else []


def slave_status(name):
    """SHOW SLAVE STATUS of a node as {column: value} ({} when it is not a replica)."""
    out = docker("exec", container(name), "mariadb", "-e", "SHOW SLAVE STATUS\\G").stdout
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line and not line.startswith("*"))
    return {key.strip(): value.strip() for key, value in pairs}


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


def haproxy_servers(lb="lb1", backend="web"):
    """{server: {stat field: value}} of one backend, from ``show stat`` on a
    load balancer's local runtime API socket (docker exec)."""
    script = (
        "import socket;s=socket.socket(socket.AF_UNIX);"
        "s.connect('/run/haproxy/admin.sock');s.sendall(b'show stat\\n');"
        "print(b''.join(iter(lambda: s.recv(65536), b'')).decode())"
    )
    out = docker("exec", container(lb), "python3", "-c", script).stdout
    lines = out.strip().splitlines()
    header = lines[0].lstrip("# ").split(",")
    servers = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == backend and row.get("svname") not in ("BACKEND", "FRONTEND"):
            servers[row["svname"]] = row
    return servers


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
                if error is not None:
                    self.errors.append((started, error))
                    http.close()
                time.sleep(self.pause)

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
            return f"HTTP {r.status_code}"
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


class WritabilitySampler:
    """Reads @@read_only of every database node in rounds, several times a
    second, over one connection per node (a node that stops answering is
    reconnected in the background, so it does not slow the rounds). A round
    takes a few milliseconds, so each is a snapshot: ``max_writable`` is the
    most nodes seen writable in one round."""

    def __init__(self, nodes=tuple(DB_NODES), interval=0.1, max_seconds=900):
        self.nodes, self.interval, self.max_seconds = list(nodes), interval, max_seconds
        self.rounds = []  # (monotonic time, sorted writable names, sorted unreachable names)
        self._conns = {}
        self._reconnecting = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _reconnect(self, name):
        try:
            conn = admin_connect(name, timeout=1.0)
        except pymysql.MySQLError:
            conn = None
        with self._lock:
            if conn is not None:
                self._conns[name] = conn
            self._reconnecting.discard(name)

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            writable, unreachable = [], []
            for name in self.nodes:
                with self._lock:
                    conn = self._conns.get(name)
                    if conn is None and name not in self._reconnecting:
                        self._reconnecting.add(name)
                        threading.Thread(target=self._reconnect, args=(name,), daemon=True).start()
                if conn is None:
                    unreachable.append(name)
                    continue
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT @@global.read_only")
                        if int(cur.fetchone()[0]) == 0:
                            writable.append(name)
                except pymysql.MySQLError:
                    unreachable.append(name)
                    with self._lock:
                        self._conns.pop(name, None)
            self.rounds.append((started, sorted(writable), sorted(unreachable)))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    @property
    def max_writable(self):
        return max((len(w) for dummy, w, dummy2 in self.rounds), default=0)

    def split_brain_rounds(self):
        return [(t, w) for t, w, dummy in self.rounds if len(w) > 1]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)
        for conn in self._conns.values():
            try:
                conn.close()
            except pymysql.MySQLError:
                pass


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


def wait_for_gtid(name, gtid, timeout=60):
    """Wait until a node has applied ``gtid`` (MASTER_GTID_WAIT); True if so."""
    result = node_sql(name, f"SELECT MASTER_GTID_WAIT('{gtid}', {int(timeout)})")
    return bool(result) and result[0][0] == "0"


PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or pathlib.Path(__file__).resolve().parents[2])
INVENTORY = pathlib.Path(
    os.environ["MOLECULE_EPHEMERAL_DIRECTORY"] + "/inventory"
    if os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    else PROJECT / "inventories" / "lab"
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


def table_checksum(primary, replicas, database="foobar"):
    """Run pt-table-checksum on ``primary`` against the replicas it sees
    (SHOW SLAVE HOSTS) and return (tool exit code, report, rows of the
    tool's table for ``database``, {replica: differing chunks}). A temporary
    account is made for the tool and dropped afterwards."""
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
        diffs = {}
        for name in replicas:
            diffs[name] = int(node_sql(
                name,
                "SELECT COUNT(*) FROM percona.checksums WHERE master_cnt <> this_cnt OR master_crc <> this_crc "
                "OR ISNULL(master_crc) <> ISNULL(this_crc)")[0][0])
        return tool.returncode, report, lines, diffs
    finally:
        node_sql(primary, "DROP USER IF EXISTS 'checksum'@'%'")
        node_sql(primary, "DROP DATABASE IF EXISTS percona")
