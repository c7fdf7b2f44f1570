"""A dead primary costs seconds and no acknowledged write, on real servers.

In order: the primary's container is killed under a write load through the
load balancer and playbooks/failover.yml promotes a replica; every
acknowledged write is on the new primary and the other replica and
pt-table-checksum finds no difference; site.yml refuses to run against the
now wrong inventory; the killed node comes back read-only and
playbooks/rejoin.yml makes it a replica that catches up; a switchover back to
it loses nothing; site.yml then changes nothing; a failover with both
replicas stopped is refused and changes nothing. A sampler reads every
node's read_only ten times a second throughout and must never see two
writable nodes."""

import re
import time

import pytest
from labclient import (
    DB_NODES,
    WritabilitySampler,
    WriteLoad,
    container,
    docker,
    missing_values,
    node_sql,
    playbook,
    slave_status,
    start_node,
    table_checksum,
    wait_for,
    wait_for_gtid,
    writable_nodes,
)

OLD_PRIMARY = "server1"


def output(result):
    return result.stdout[-6000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def sampler():
    with WritabilitySampler() as s:
        wait_for(lambda: len(s.rounds) > 5, 30, what="the sampler's first rounds")
        yield s
    assert s.max_writable <= 1, f"two writable nodes at once: {s.split_brain_rounds()[:5]}"


@pytest.fixture(scope="module")
def failover(sampler):
    """Kill the primary's container under load, then run failover.yml."""
    assert writable_nodes() == [OLD_PRIMARY], "the scenario starts from the inventory's primary"
    with WriteLoad() as load:
        wait_for(lambda: len(load.acknowledged) >= 50, 60, what="the write load to flow")
        killed = time.monotonic()
        docker("kill", container(OLD_PRIMARY))
        started = time.monotonic()
        result = playbook("playbooks/failover.yml")
        finished = time.monotonic()
        back = load.wait_for_success_after(finished, timeout=60)
        time.sleep(2)
    new = [n for n in writable_nodes() if n != OLD_PRIMARY]
    status = playbook("playbooks/status.yml")
    yield {"load": load, "result": result, "killed": killed, "started": started, "finished": finished,
           "back": back, "new": new[0] if len(new) == 1 else None, "status": status}


def test_failover_promoted_one_replica(failover, sampler):
    assert failover["result"].returncode == 0, output(failover["result"])
    assert failover["new"] in ("server2", "server3"), writable_nodes()
    assert re.search(r"Promoted server[23] \(old primary server1\); re-pointed server[23]", failover["result"].stdout)
    assert failover["back"] is not None, "no write succeeded after the failover"
    assert sampler.max_writable <= 1, sampler.split_brain_rounds()[:5]


def test_status_shows_the_new_primary_and_the_dead_node(failover):
    status = failover["status"]
    assert status.returncode == 0, output(status)
    table = status.stdout
    new = failover["new"]
    other = [n for n in DB_NODES if n not in (OLD_PRIMARY, new)][0]
    assert re.search(r"NODE\s+ROLE\s+WRITABLE\s+SOURCE\s+IO\s+SQL\s+LAG\s+SEMI-SYNC", table), table
    assert re.search(rf"{OLD_PRIMARY}\s+UNREACHABLE", table), table
    assert re.search(rf"{new}\s+primary\s+YES", table), table
    assert re.search(rf"{other}\s+replica\s+no\s+{container(new)}:3306\s+Yes\s+Yes", table), table
    assert f"primary: {new}" in table


def test_every_acknowledged_write_survived(failover):
    load, new = failover["load"], failover["new"]
    assert len(load.acknowledged) >= 50
    values = [value for dummy, value in load.acknowledged]
    other = [n for n in DB_NODES if n not in (OLD_PRIMARY, new)][0]
    position = node_sql(new, "SELECT @@gtid_binlog_pos")[0][0]
    assert wait_for_gtid(other, position), f"{other} did not reach {position}"
    assert missing_values(new, values) == [], f"the new primary {new} lacks acknowledged writes"
    assert missing_values(other, values) == [], f"the replica {other} lacks acknowledged writes"
    # the other replica now follows the new primary, read-only
    status = slave_status(other)
    assert status["Master_Host"] == container(new), status
    assert (status["Slave_IO_Running"], status["Slave_SQL_Running"]) == ("Yes", "Yes"), status
    assert node_sql(other, "SELECT @@read_only") == [["1"]]


def test_pt_table_checksum_finds_no_difference(failover):
    new = failover["new"]
    other = [n for n in DB_NODES if n not in (OLD_PRIMARY, new)][0]
    code, report, lines, diffs = table_checksum(new, [other])
    assert code == 0, report
    assert lines and all(fields[2] == "0" for fields in lines), report
    assert diffs == {other: 0}, report


@pytest.fixture(scope="module")
def rejoined(failover):
    start_node(OLD_PRIMARY)
    came_back = node_sql(OLD_PRIMARY, "SELECT @@read_only")[0][0]
    status = node_sql(OLD_PRIMARY, "SHOW SLAVE STATUS")
    # the inventory still names it the primary: site.yml must not make it
    # writable again next to the promoted replica
    stale = playbook("site.yml", "--limit", "dbservers")
    result = playbook("playbooks/rejoin.yml", "-e", f"mysql_cluster_rejoin_node={OLD_PRIMARY}")
    again = playbook("playbooks/rejoin.yml", "-e", f"mysql_cluster_rejoin_node={OLD_PRIMARY}")
    return {"read_only": came_back, "status": status, "stale": stale, "result": result, "again": again}


def test_site_yml_refuses_the_stale_inventory(failover, rejoined):
    stale = rejoined["stale"]
    assert stale.returncode != 0
    assert "the live cluster disagrees" in output(stale), output(stale)
    assert f"{failover['new']} is writable" in output(stale)
    assert re.search(r"server1\s+: ok=\d+\s+changed=0", stale.stdout), stale.stdout[-2000:]


def test_the_killed_node_came_back_read_only_and_not_replicating(rejoined):
    assert rejoined["read_only"] == "1"
    assert rejoined["status"] == []


def test_rejoin_made_it_a_replica_of_the_new_primary(failover, rejoined):
    status = slave_status(OLD_PRIMARY)
    assert status["Master_Host"] == container(failover["new"]), status


def test_rejoin_made_it_a_replica_that_caught_up(failover, rejoined):
    assert rejoined["result"].returncode == 0, output(rejoined["result"])
    assert "changed=1" in rejoined["result"].stdout
    assert rejoined["again"].returncode == 0 and "changed=0" in rejoined["again"].stdout, output(rejoined["again"])
    new = failover["new"]
    position = node_sql(new, "SELECT @@gtid_binlog_pos")[0][0]
    assert wait_for_gtid(OLD_PRIMARY, position), f"{OLD_PRIMARY} did not catch up to {position}"
    values = [value for dummy, value in failover["load"].acknowledged]
    assert missing_values(OLD_PRIMARY, values) == []
    assert node_sql(OLD_PRIMARY, "SELECT @@read_only") == [["1"]]


@pytest.fixture(scope="module")
def switched_back(rejoined, sampler):
    with WriteLoad() as load:
        wait_for(lambda: len(load.acknowledged) >= 30, 60, what="the write load to flow")
        started = time.monotonic()
        result = playbook("playbooks/switchover.yml", "-e", f"mysql_cluster_switchover_target={OLD_PRIMARY}")
        finished = time.monotonic()
        back = load.wait_for_success_after(finished, timeout=60)
        time.sleep(2)
    return {"load": load, "result": result, "started": started, "finished": finished, "back": back}


def test_switchover_back_loses_nothing(switched_back, sampler):
    assert switched_back["result"].returncode == 0, output(switched_back["result"])
    assert writable_nodes() == [OLD_PRIMARY]
    assert switched_back["back"] is not None
    values = [value for dummy, value in switched_back["load"].acknowledged]
    position = node_sql(OLD_PRIMARY, "SELECT @@gtid_binlog_pos")[0][0]
    for name in DB_NODES:
        if name != OLD_PRIMARY:
            assert wait_for_gtid(name, position), name
        assert missing_values(name, values) == [], f"{name} lacks acknowledged writes"
    assert sampler.max_writable <= 1, sampler.split_brain_rounds()[:5]


def test_site_yml_changes_nothing_after_the_round_trip(switched_back):
    # the failover, rejoin and switchover set replication up exactly as the
    # roles do: a run of site.yml finds nothing to change
    result = playbook("site.yml")
    assert result.returncode == 0, output(result)
    recap = result.stdout[result.stdout.index("PLAY RECAP"):]
    assert all(int(n) == 0 for n in re.findall(r"changed=(\d+)", recap)), recap


def test_failover_with_both_replicas_stopped_is_refused(switched_back, sampler):
    replicas = [n for n in DB_NODES if n != OLD_PRIMARY]
    before = {n: node_sql(n, "SELECT @@read_only, @@gtid_binlog_pos")[0] for n in DB_NODES}
    for name in replicas:
        docker("exec", container(name), "systemctl", "stop", "mariadb")
    try:
        result = playbook("playbooks/failover.yml", "-e", f"mysql_cluster_failover_primary={OLD_PRIMARY}")
        assert result.returncode != 0
        assert "Refusing to fail over" in output(result), output(result)
        assert "Nothing was changed" in output(result) or "Put back" in output(result), output(result)
        # the primary is still the writable primary, as before
        assert writable_nodes() == [OLD_PRIMARY]
        assert node_sql(OLD_PRIMARY, "SELECT @@read_only, @@gtid_binlog_pos")[0] == before[OLD_PRIMARY]
    finally:
        for name in replicas:
            docker("exec", container(name), "systemctl", "start", "mariadb")
    for name in replicas:
        wait_for(lambda n=name: node_sql(n, "SELECT @@read_only")[0][0] == "1", 60, what=f"{name} to restart")
        assert node_sql(name, "SELECT @@gtid_binlog_pos")[0][0] == before[name][1]
    assert sampler.max_writable <= 1


def test_check_mode_prints_the_plan_and_changes_nothing(switched_back):
    before = {n: node_sql(n, "SELECT @@read_only, @@gtid_binlog_pos")[0] for n in DB_NODES}
    result = playbook("playbooks/failover.yml", "--check", "-e", f"mysql_cluster_failover_primary={OLD_PRIMARY}")
    assert result.returncode == 0, output(result)
    assert re.search(r"Would promote server[23] \(old primary server1\)", result.stdout), output(result)
    assert "fence server1: SET GLOBAL read_only = 1" in result.stdout
    after = {n: node_sql(n, "SELECT @@read_only, @@gtid_binlog_pos")[0] for n in DB_NODES}
    assert after == before
    assert writable_nodes() == [OLD_PRIMARY]


def test_failover_after_a_fall_back_to_async_is_refused(switched_back):
    # an asynchronous primary may have acknowledged commits no replica has:
    # without allow_data_loss the failover refuses and changes nothing
    before = {n: node_sql(n, "SELECT @@read_only, @@gtid_binlog_pos")[0] for n in DB_NODES}
    node_sql(OLD_PRIMARY, "SET GLOBAL rpl_semi_sync_master_enabled = OFF")
    try:
        result = playbook("playbooks/failover.yml", "-e", f"mysql_cluster_failover_primary={OLD_PRIMARY}")
    finally:
        node_sql(OLD_PRIMARY, "SET GLOBAL rpl_semi_sync_master_enabled = ON")
    assert result.returncode != 0
    assert "Refusing to fail over" in output(result) and "semi-sync" in output(result), output(result)
    assert "allow_data_loss" in output(result)
    assert writable_nodes() == [OLD_PRIMARY]
    after = {n: node_sql(n, "SELECT @@read_only, @@gtid_binlog_pos")[0] for n in DB_NODES}
    assert after == before


def test_a_diverged_node_is_refused_and_rebuilt(switched_back):
    # server3 takes a write of its own (root may write on a read-only server):
    # rejoin must refuse it, listing the GTID, and the documented rebuild
    # path must bring it back clean
    node = "server3"
    server_id = node_sql(node, "SELECT @@server_id")[0][0]
    node_sql(node, "CREATE DATABASE IF NOT EXISTS errant; CREATE TABLE IF NOT EXISTS errant.t (i INT); "
                   "INSERT INTO errant.t VALUES (1)")
    errant = [g for g in node_sql(node, "SELECT @@gtid_binlog_pos")[0][0].split(",") if f"-{server_id}-" in g]
    assert errant, "the local write made no GTID of server3's own"
    refused = playbook("playbooks/rejoin.yml", "-e", f"mysql_cluster_rejoin_node={node}")
    assert refused.returncode != 0
    assert "diverged" in output(refused) or "extra" in output(refused), output(refused)
    assert f"-{server_id}-" in output(refused), output(refused)
    assert "rebuild_replica" in output(refused), output(refused)
    rebuilt = playbook("playbooks/rebuild_replica.yml", "-e", f"rebuild_replica_host={node}")
    assert rebuilt.returncode == 0, output(rebuilt)
    assert node_sql(node, "SHOW DATABASES LIKE 'errant'") == []
    # its binary log was reset: nothing of its own is left (empty output
    # means an empty position)
    assert all(f"-{server_id}-" not in row[0] for row in node_sql(node, "SELECT @@gtid_binlog_pos"))
    again = playbook("playbooks/rejoin.yml", "-e", f"mysql_cluster_rejoin_node={node}")
    assert again.returncode == 0 and "changed=0" in again.stdout, output(again)
    position = node_sql(OLD_PRIMARY, "SELECT @@gtid_binlog_pos")[0][0]
    assert wait_for_gtid(node, position)
