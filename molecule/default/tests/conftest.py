"""Shared helpers for the lab verification: the tests look into hosts with
``docker exec`` (testinfra's docker backend; the playbooks they run reach
the hosts over SSH, as the scenario's inventory says), the site through the load
balancer's port published on 127.0.0.1."""

import pathlib
import re
import subprocess
import sys
import time

import testinfra

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
from labclient import INVENTORY, LAB, SITE, haproxy_servers, recap, session, slave_status, wait_for  # noqa: E402 (after the path is set)

# test_replication.py adds server4 through this file and removes it when
# done; a run killed half-way leaves it in Molecule's inventory, which
# outlives the scenario's destroy. Start without it.
INVENTORY.joinpath("add_replica.yml").unlink(missing_ok=True)

SERVERS = ["server1", "server2", "server3"]
PRIMARY = "server1"
REPLICAS = ["server2", "server3"]


def lab_host(name):
    return testinfra.get_host(f"docker://{LAB}-{name}")


def sql(name, query, user=None, password=None, host=None, check=True):
    """Run one query with the mariadb client on a lab node (as root through
    the socket, or as ``user`` over TCP to ``host``)."""
    args = ["--batch", "--skip-column-names"]
    if user:
        args += ["-u", user, f"-p{password}", "-h", host]
    args += ["-e", query]
    cmd = lab_host(name).run("mariadb" + " %s" * len(args), *args)
    if check:
        assert cmd.rc == 0, f"{name}: {query}: {cmd.stderr}"
    return cmd


def rows(name, query):
    out = sql(name, query).stdout.strip()
    return [line.split("\t") for line in out.splitlines()] if out else []


def get(path, **kwargs):
    """One request through the load balancer, on a fresh connection."""
    with session() as s:
        return s.get(SITE + path, timeout=10, headers={"Connection": "close"}, **kwargs)


def served_by(n):
    """Send n GET / through the load balancer; return (statuses, counts)."""
    statuses, counts = [], {}
    for _attempt in range(n):
        r = get("/")
        statuses.append(r.status_code)
        who = r.headers.get("X-Served-By", "?")
        counts[who] = counts.get(who, 0) + 1
    return statuses, counts


def haproxy_server_states():
    """{server: status} from the HAProxy runtime API on lb1 (local socket)."""
    return {name: row["status"] for name, row in haproxy_servers("lb1").items()}


def at_full_weight(name):
    """The server is UP on lb1 and out of its slow start (no throttle)."""
    row = haproxy_servers("lb1").get(name, {})
    return row.get("status") == "UP" and row.get("throttle", "") == ""


# haproxy_slowstart, in seconds, as the role's defaults set it for the lab
SLOWSTART = int(re.search(r"^haproxy_slowstart:\s*(\d+)s\s*$",
                          (pathlib.Path(__file__).resolve().parents[3] / "roles/haproxy/defaults/main.yml").read_text(),
                          re.M).group(1))


def back_at_full_weight(name):
    """Wait until the server is UP on lb1 again, then until its slow start
    is surely over. HAProxy can list a server that has just come UP with no
    throttle before its slow start begins (a CI run read that and then saw
    it take 4 of 30 requests), so the whole slow start is waited out after
    the first UP reading, and the throttle checked after it."""
    wait_for(lambda: haproxy_servers("lb1").get(name, {}).get("status") == "UP", what=f"{name} UP again")
    time.sleep(SLOWSTART + 1)
    wait_for(lambda: at_full_weight(name), what=f"{name} at full weight")


def changed_per_host(output):
    """{host: changed count} from a play recap."""
    return {host: counts["changed"] for host, counts in recap(output).items()}


def lab_db_nodes():
    """The lab's database nodes that run now (server4 too once test_replication added it)."""
    names = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    found = [name[len(LAB) + 1:] for name in names.stdout.split() if re.fullmatch(re.escape(LAB) + r"-server\d+", name)]
    return sorted(found)


def replicating_nodes():
    """The running database nodes that are replicas (SHOW SLAVE STATUS has a row)."""
    return [name for name in lab_db_nodes() if slave_status(name)]


# SHOW SLAVE STATUS fields that move with traffic or time; every other field
# is the replica's configuration or health.
def assert_replicates_over_verified_tls(name, primary=PRIMARY):
    """Both threads run in GTID mode from ``primary``, over TLS with the
    primary's certificate verified against a CA, with an account that the
    primary lets in over TLS only."""
    fields = slave_status(name)
    assert fields, f"{name} is not a replica"
    assert fields["Master_Host"] == f"{LAB}-{primary}", fields["Master_Host"]
    assert fields["Slave_IO_Running"] == "Yes", (name, fields.get("Last_IO_Error"))
    assert fields["Slave_SQL_Running"] == "Yes", (name, fields.get("Last_SQL_Error"))
    assert fields["Using_Gtid"] == "Slave_Pos", (name, fields["Using_Gtid"])
    assert fields["Master_SSL_Allowed"] == "Yes", (name, fields["Master_SSL_Allowed"])
    assert fields["Master_SSL_Verify_Server_Cert"] == "Yes", (name, fields["Master_SSL_Verify_Server_Cert"])
    assert fields["Master_SSL_CA_File"], f"{name} verifies the primary's certificate against no CA"
    assert fields["Last_IO_Errno"] == "0", (name, fields["Last_IO_Error"])
    # The primary refuses that account without TLS (REQUIRE SSL or stricter).
    accounts = rows(primary, f"SELECT host, ssl_type FROM mysql.user WHERE user = '{fields['Master_User']}'")
    assert accounts, f"{primary} has no account {fields['Master_User']}"
    assert all(ssl_type in ("ANY", "X509", "SPECIFIED") for _host, ssl_type in accounts), accounts
