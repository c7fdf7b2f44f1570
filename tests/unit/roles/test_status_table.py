"""The status table of playbooks/status.yml (roles/mysql_cluster/templates/status.j2)
rendered from what distweb.infra.mysql_replication_info returns: a replica
that stopped says why and what to do."""

import pathlib

import jinja2

TEMPLATE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "mysql_cluster" / "templates" / "status.j2"


def node(name, read_only, sql_thread="Yes", errno=0, error=""):
    replication = {"configured": read_only, "source_host": "server1", "source_port": 3306, "io_thread": "Yes",
                   "sql_thread": sql_thread, "seconds_behind": 0 if sql_thread == "Yes" else None,
                   "last_io_error": "", "last_sql_errno": errno, "last_sql_error": error}
    return {"item": {"name": name}, "role": "replica" if read_only else "primary", "read_only": read_only,
            "replication": replication if read_only else {"configured": False},
            "semi_sync": {"available": True, "lossless": True, "source_enabled": not read_only,
                          "source_status": not read_only, "clients": 1, "replica_enabled": True},
            "gtid": {"binlog": "0-1-100"}}


def render(*nodes):
    env = jinja2.Environment()
    primary = [{"name": n["item"]["name"]} for n in nodes if not n["read_only"]]
    return env.from_string(TEMPLATE.read_text()).render(
        _mysql_cluster_info={"results": list(nodes)}, _mysql_cluster_elected=primary, _mysql_cluster_writable=primary)


def test_a_replica_stopped_by_a_crash_says_it_repairs_itself():
    out = render(node("server1", False), node("server2", True, "No", 1950, "An attempt was made to binlog GTID 0-1-7"),
                 node("server3", True))
    assert "server2 SQL error: An attempt was made to binlog GTID 0-1-7" in out
    assert "server2: stopped on a transaction its binary log already holds" in out
    assert "journalctl -u distweb-mysql-health on server2" in out
    assert "server3" in out and "server3:" not in out  # a healthy replica gets no note


def test_a_replica_stopped_on_an_error_says_how_to_rebuild_it():
    out = render(node("server1", False), node("server3", True, "No", 1062, "Duplicate entry '5' for key 'PRIMARY'"))
    assert "server3 SQL error: Duplicate entry '5'" in out
    assert "server3: serves no reads until it applies again" in out
    assert "playbooks/rebuild_replica.yml -e rebuild_replica_host=server3" in out
    assert "primary: server1" in out
