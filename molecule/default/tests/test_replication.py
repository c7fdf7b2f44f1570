"""Replication you can trust, on real servers: a replica added to the live
cluster under a bounded write load holds every acknowledged row
(pt-table-checksum finds no difference), a re-run and a check-mode run change
nothing, and the replication module refuses what it must refuse."""

import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import types

import pytest
from conftest import (
    PRIMARY,
    assert_replicates_over_verified_tls,
    changed_per_host,
    rows,
    sql,
)
from labclient import (
    INVENTORY,
    LAB,
    PROJECT,
    WriteLoad,
    assert_stored_once,
    changed_tasks,
    lab_secret,
    logged_values,
    playbook,
    replication_state,
    run,
    slave_status,
    table_checksum,
    wait_for,
)

SCENARIO = pathlib.Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
ALL_REPLICAS = ["server2", "server3", "server4"]
ALL_HOSTS = {"lb1", "server1", "server2", "server3", "server4"}
JSON_OUTPUT = {"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}


def timed_playbook(*args, timeout=2400):
    """labclient.playbook, also keeping the monotonic time at which each
    line of the output arrived (``lines``: [(time, line)])."""
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "PYTHONUNBUFFERED": "1"}
    lines = []
    with tempfile.TemporaryFile(mode="w+") as err:
        with subprocess.Popen(["ansible-playbook", "-i", str(INVENTORY), *args], stdout=subprocess.PIPE, stderr=err,
                              text=True, cwd=PROJECT, env=env) as proc:
            killer = threading.Timer(timeout, proc.kill)
            killer.start()
            try:
                for line in proc.stdout:
                    lines.append((time.monotonic(), line))
                proc.wait()
            finally:
                killer.cancel()
        err.seek(0)
        stderr = err.read()
    return types.SimpleNamespace(returncode=proc.returncode, stdout="".join(line for _t, line in lines), stderr=stderr, lines=lines)


def task_started(result, name, after=0.0):
    """When the first banner of task ``name`` printed after ``after`` arrived
    (the task began then), and when the next banner did (it had ended)."""
    banners = [(t, line) for t, line in result.lines if line.startswith("TASK [")]
    for i, (t, line) in enumerate(banners):
        if t >= after and (f" : {name}]" in line or f"[{name}]" in line):
            return t, (banners[i + 1][0] if i + 1 < len(banners) else result.lines[-1][0])
    raise AssertionError(f"no task {name!r} in the run")


@pytest.fixture(scope="module")
def added_replica():
    """server4 joins the running cluster (site.yml re-run) under write load."""
    extra = INVENTORY / "add_replica.yml"
    subprocess.run(["docker", "rm", "-f", f"{LAB}-server4"], capture_output=True, check=False)
    shutil.copy(SCENARIO / "inventory" / "add_replica.yml", extra)
    try:
        created = playbook(str(PROJECT / "molecule" / "resources" / "lab_create.yml"))
        assert created.returncode == 0, created.stdout[-3000:]
        # Bounded (count and time) but long enough for a slow converge: the
        # test checks that it still ran after the replica had joined.
        with WriteLoad(max_writes=40000, max_seconds=1800) as load:
            time.sleep(3)  # the load is flowing before the new node is touched
            converge = timed_playbook("site.yml")
            time.sleep(3)
        assert converge.returncode == 0, converge.stdout[-5000:] + converge.stderr[-2000:]
        yield {"load": load, "converge": converge}
    finally:
        extra.unlink(missing_ok=True)


def _replicated_values(name):
    """The load's values in ``name``'s binary log. A seeded replica's binary
    log starts empty (RESET MASTER once the copy is in place), so it
    holds exactly what the node replicated after the snapshot."""
    directory = os.path.dirname(rows(name, "SELECT @@global.log_bin_basename")[0][0])
    files = [f"{directory}/{row[0]}" for row in rows(name, "SHOW BINARY LOGS")]
    return logged_values(name, " ".join(files))


def test_the_new_replica_was_seeded_while_writes_flowed(added_replica):
    load, converge = added_replica["load"], added_replica["converge"]
    out = converge.stdout
    assert "Seed from a consistent snapshot of the primary" in out
    # the default seed: a physical copy streamed from the primary straight to server4
    assert re.search(r"Send the stream from server1\] \*+\nchanged: \[server4 -> server1", out), \
        out[-3000:]
    assert load.failed == 0, f"{load.failed} writes failed while the replica joined: {load.errors[:5]}"
    # The seeding window, from the task lines as they arrived: the copy
    # began (the snapshot is taken in it) ... replication was started.
    dump_began, _dump_ended = task_started(converge, "Send the stream from server1")
    replication_began, replication_started = task_started(converge, "Replicate from the primary with GTID", after=dump_began)
    acknowledged = [t for t, ok in load.attempts if ok]
    before = sum(1 for t in acknowledged if t < dump_began)
    during = sum(1 for t in acknowledged if dump_began <= t <= replication_began)
    after = sum(1 for t in acknowledged if t > replication_started)
    window = f"{before} acknowledged before the copy, {during} while seeding ({replication_began - dump_began:.1f} s), {after} after"
    assert before > 0 and after > 0, window
    assert during >= 10, window
    # On the servers' side: some acknowledged writes reached server4 in the
    # snapshot, the others only by replication from the snapshot's position.
    replicated = _replicated_values("server4")
    values = [value for _id, value in load.acknowledged]
    via_snapshot = [v for v in values if v not in replicated]
    via_replication = [v for v in values if v in replicated]
    assert via_snapshot and via_replication, f"{len(via_snapshot)} in the snapshot, {len(via_replication)} replicated; {window}"


def test_the_new_replica_replicates_over_tls_with_gtid(added_replica):
    for name in ALL_REPLICAS:
        assert_replicates_over_verified_tls(name)
        assert rows(name, "SELECT @@read_only") == [["1"]], name


def test_every_acknowledged_write_is_on_every_replica(added_replica):
    load = added_replica["load"]
    assert len(load.acknowledged) >= 50, f"only {len(load.acknowledged)} writes were acknowledged"
    position = rows(PRIMARY, "SELECT @@gtid_binlog_pos")[0][0]
    assert_stored_once(PRIMARY, load)
    for name in ALL_REPLICAS:
        assert rows(name, f"SELECT MASTER_GTID_WAIT('{position}', 60)") == [["0"]], name
        assert_stored_once(name, load)


def test_pt_table_checksum_finds_no_difference(added_replica):
    code, report, lines, checked = table_checksum(PRIMARY, ALL_REPLICAS)
    assert "no slaves were found" not in report.lower() and "no replicas" not in report.lower(), report
    assert code == 0, report
    assert lines, report
    assert all(fields[1] == "0" and fields[2] == "0" for fields in lines), report  # the ERRORS and DIFFS columns
    assert all(chunks > 0 for chunks, _differ in checked.values()), (checked, report)
    assert {name: differ for name, (_chunks, differ) in checked.items()} == dict.fromkeys(ALL_REPLICAS, 0), (checked, report)


def test_the_installed_collection_in_check_mode_reports_no_change(added_replica, tmp_path):
    """The built, installed collection runs by its FQCN, and in check mode
    with diff it reports nothing to change on the grown cluster: check mode
    tells the truth there. (Molecule's idempotence step made a real second
    run on the seed lab; one full run of site.yml costs minutes here, so the
    two checks share one.)"""
    build = run("ansible-galaxy", "collection", "build", str(PROJECT), "--output-path", str(tmp_path))
    assert build.returncode == 0, build.stderr
    tarball = next(tmp_path.glob("distweb-infra-*.tar.gz"))
    collections = tmp_path / "collections"
    install = run(
        "ansible-galaxy", "collection", "install", str(tarball), "-p", str(collections), "--no-deps", "--force"
    )
    assert install.returncode == 0, install.stderr
    installed = collections / "ansible_collections" / "distweb" / "infra"
    assert (installed / "playbooks" / "site.yml").is_file()
    assert not (installed / ".venv").exists() and not (installed / ".collections").exists()
    env = {"ANSIBLE_COLLECTIONS_PATH": str(collections)}
    listed = run("ansible-galaxy", "collection", "list", "distweb.infra", env=env)
    assert str(collections / "ansible_collections") in listed.stdout, listed.stdout

    result = run("ansible-playbook", "-i", str(INVENTORY), "distweb.infra.site", "--check", "--diff", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    changed = changed_per_host(result.stdout)
    assert set(changed) == ALL_HOSTS, changed
    assert changed == dict.fromkeys(changed, 0), (changed, changed_tasks(result.stdout))


def _module_on_server3(extra, *flags):
    """distweb.infra.mysql_replication on server3; (exit code, its result)."""
    result = run(
        "ansible", "-i", str(INVENTORY), "server3", "-m", "distweb.infra.mysql_replication",
        "-a", "login_unix_socket=/run/mysqld/mysqld.sock primary_user=repl primary_ssl=true "
              "primary_ssl_ca=/etc/mysql/tls/ca.crt " + extra,
        *flags, env=JSON_OUTPUT, timeout=300,
    )
    assert result.stdout.lstrip().startswith("{"), result.stdout[-2000:] + result.stderr[-2000:]
    return result, json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]["server3"]


def _assert_refused(result, outcome, before):
    """The module failed, ran no statement, reported no change, and server3
    replicates exactly as before."""
    assert result.returncode != 0 and outcome.get("failed") is True, outcome.get("msg")
    assert outcome.get("changed") is False, outcome.get("msg")
    assert not outcome.get("queries"), outcome.get("queries")
    assert replication_state("server3") == before


def test_the_module_refuses_bad_credentials_and_changes_nothing(added_replica):
    before = replication_state("server3")
    result, outcome = _module_on_server3(f"primary_host={LAB}-{PRIMARY} primary_password=wrong-{secrets.token_hex(4)}")
    assert outcome.get("errno") == 1045 and "Access denied for user 'repl'" in outcome["msg"], outcome.get("msg")
    _assert_refused(result, outcome, before)


def _replication_password():
    return lab_secret("mysql_replication")


def test_the_module_refuses_a_read_only_target(added_replica):
    before = replication_state("server3")
    result, outcome = _module_on_server3(f"primary_host={LAB}-server2 primary_password={_replication_password()}")
    assert outcome["msg"].startswith(f"Refusing to replicate from {LAB}-server2:3306 "), outcome["msg"]
    assert "it is read-only (@@read_only=1)" in outcome["msg"], outcome["msg"]
    _assert_refused(result, outcome, before)


def test_the_module_refuses_to_point_a_replica_at_itself(added_replica):
    before = replication_state("server3")
    result, outcome = _module_on_server3(f"primary_host={LAB}-server3 primary_password={_replication_password()}")
    assert outcome["msg"].startswith(f"Refusing to replicate from {LAB}-server3:3306: it has the same server_id"), outcome["msg"]
    assert "It is this server itself" in outcome["msg"], outcome["msg"]
    _assert_refused(result, outcome, before)


def test_the_module_refuses_a_primary_it_cannot_reach(added_replica):
    # lb1 runs no database server: nothing answers on its port 3306.
    before = replication_state("server3")
    result, outcome = _module_on_server3(f"primary_host={LAB}-lb1 primary_password=x connect_timeout=3")
    assert outcome.get("errno") == 2003, outcome.get("msg")
    assert f"({LAB}-lb1:3306): Can't connect to MySQL server on '{LAB}-lb1'" in outcome["msg"], outcome["msg"]
    _assert_refused(result, outcome, before)


def test_check_and_diff_mode_show_a_change_without_making_it(added_replica):
    password = _replication_password()
    before = replication_state("server3")
    assert before["Slave_heartbeat_period"] != "7.000", before
    result, outcome = _module_on_server3(
        f"primary_host={LAB}-{PRIMARY} primary_password={password} primary_ssl_verify_server_cert=true primary_heartbeat_period=7",
        "--check", "--diff",
    )
    assert result.returncode == 0, outcome.get("msg")
    assert outcome["changed"] is True, outcome
    diff = outcome["diff"]
    assert diff["before"]["primary_heartbeat_period"] == float(before["Slave_heartbeat_period"]), diff
    assert diff["after"]["primary_heartbeat_period"] == 7.0, diff
    assert any("MASTER_HEARTBEAT_PERIOD=7" in query for query in outcome["queries"]), outcome["queries"]
    assert password not in result.stdout and password not in result.stderr
    assert replication_state("server3") == before, "check mode changed the replica"


def test_a_broken_replica_is_rebuilt_by_one_playbook_run(added_replica):
    # Break server4: a write of its own (errant) and replication pointed at a
    # position the primary never had, so its IO thread fails.
    sql("server4", "CREATE DATABASE IF NOT EXISTS broken_replica_probe")
    sql("server4", "STOP SLAVE; SET GLOBAL gtid_slave_pos='0-1-999999999'; START SLAVE")
    wait_for(lambda: slave_status("server4").get("Slave_IO_Running") == "No", timeout=120, what="server4's IO thread to fail")

    result = playbook("playbooks/rebuild_replica.yml", "-e", "rebuild_replica_host=server4")
    assert result.returncode == 0, result.stdout[-4000:]

    assert_replicates_over_verified_tls("server4")
    assert rows("server4", "SHOW DATABASES LIKE 'broken_replica_probe'") == []
    # Its binary log holds nothing but what it replicated since the rebuild.
    binlog_pos = rows("server4", "SELECT @@gtid_binlog_pos")
    assert binlog_pos in ([], rows("server4", "SELECT @@gtid_slave_pos")), "the rebuilt replica has GTIDs of its own"
    position = rows(PRIMARY, "SELECT @@gtid_binlog_pos")[0][0]
    assert rows("server4", f"SELECT MASTER_GTID_WAIT('{position}', 60)") == [["0"]]
    assert rows("server4", "SELECT COUNT(*) FROM foobar.records") == rows(PRIMARY, "SELECT COUNT(*) FROM foobar.records")
    assert_stored_once("server4", added_replica["load"])


def test_the_rebuild_playbook_refuses_the_primary(added_replica):
    position = rows(PRIMARY, "SELECT @@gtid_binlog_pos")
    result = playbook("playbooks/rebuild_replica.yml", "-e", f"rebuild_replica_host={PRIMARY}")
    assert result.returncode != 0
    flat = " ".join((result.stdout + result.stderr).split())
    assert "rebuild_replica_host to one host of the db_replicas group" in flat, result.stdout[-2000:]
    assert rows(PRIMARY, "SELECT @@read_only") == [["0"]]
    assert slave_status(PRIMARY) == {}
    assert rows(PRIMARY, "SELECT @@gtid_binlog_pos") == position, "the refused rebuild wrote on the primary"
