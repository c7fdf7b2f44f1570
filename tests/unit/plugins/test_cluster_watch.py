"""The automatic failover's decisions (extensions/eda/plugins/event_source/
cluster_watch.py): when the primary is dead and when it only looks dead
from the automation host, the hold that allows one failover, the operator's
switch, and the alerts. Observations are made up; no database."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
PLUGIN = ROOT / "extensions" / "eda" / "plugins" / "event_source" / "cluster_watch.py"
spec = importlib.util.spec_from_file_location("cluster_watch", PLUGIN)
watch_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(watch_mod)

NAMES = ["db1", "db2", "db3"]


def signs(n, io="Yes"):
    return {"io_thread": io, "gtid_received": "0-1-%d" % n, "read_position": "bin.1:%d" % n, "heartbeats": n}


def primary(read_only=False, uptime=86400):
    return {"reachable": True, "read_only": read_only, "source": None, "io_thread": "No", "sql_thread": "No",
            "signs": None, "uptime": uptime}


def replica(n, source="db1", io="Yes"):
    return {"reachable": True, "read_only": True, "source": source, "io_thread": io, "sql_thread": "Yes",
            "signs": signs(n, io), "uptime": 86400}


DOWN = {"reachable": False}


class Clock(object):
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def setup(tmp_path):
    clock = Clock()
    config = dict(watch_mod.DEFAULTS, nodes=[{"name": n, "host": n} for n in NAMES], state_dir=str(tmp_path),
                  checks=3, heartbeat_window=3.0, period=600.0)
    return watch_mod.Watch(config, clock=clock), clock, tmp_path


def run(watch, clock, rounds, make, step=0.5):
    """``rounds`` observations, ``make(i)`` giving each, ``step`` s apart;
    every event."""
    events = []
    for i in range(rounds):
        clock.t += step
        events.extend(watch.step(make(i)))
    return events


def healthy(i):
    return {"db1": primary(), "db2": replica(i), "db3": replica(i)}


def actions(events):
    return [(e["distweb"]["verdict"], e["distweb"]["action"]) for e in events]


def test_a_healthy_cluster_is_one_event_and_no_action(setup):
    watch, clock, _tmp = setup
    events = run(watch, clock, 10, healthy)
    assert actions(events) == [("healthy", "none")]
    assert events[0]["distweb"]["primary"] == "db1"
    assert events[0]["distweb"]["armed"] is True


def test_a_dead_primary_is_failed_over_once_and_held(setup):
    watch, clock, tmp = setup
    run(watch, clock, 4, healthy)
    last_heard = clock.t
    # db1 gone for everyone: the replicas' IO threads stop hearing anything
    events = run(watch, clock, 20, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"),
                                              "db3": replica(3, io="Connecting")})
    failovers = [e for e in events if e["distweb"]["action"] == "failover"]
    assert len(failovers) == 1
    assert failovers[0]["distweb"]["primary"] == "db1"
    hold = json.loads((tmp / "hold.json").read_text())
    assert hold["primary"] == "db1"
    # not before a whole heartbeat window without a word from db1
    assert failovers[0]["distweb"]["time"] - last_heard >= 3.0
    # listening before that, quietly: no alert for a primary about to be failed over
    assert [v for v, a in actions(events)] == ["degraded", "suspect", "primary_dead"]


def test_a_primary_that_replicas_still_hear_is_never_failed_over(setup):
    watch, clock, tmp = setup
    run(watch, clock, 4, healthy)
    # only the automation host lost db1: the replicas keep receiving
    events = run(watch, clock, 40, lambda i: {"db1": DOWN, "db2": replica(10 + i), "db3": replica(10 + i)})
    assert ("primary_unreachable", "alert") in actions(events)
    assert all(a != "failover" for _verdict, a in actions(events))
    assert "still hear it" in events[-1]["distweb"]["reason"]
    assert not (tmp / "hold.json").exists()


def test_one_replica_still_hearing_is_enough_to_refuse(setup):
    watch, clock, _tmp = setup
    run(watch, clock, 4, healthy)
    events = run(watch, clock, 40, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"), "db3": replica(10 + i)})
    assert all(a != "failover" for _verdict, a in actions(events))


def test_connected_but_silent_counts_as_lost(setup):
    """A hung primary: the IO thread still says Yes until slave_net_timeout,
    but nothing moves."""
    watch, clock, _tmp = setup
    run(watch, clock, 4, healthy)
    events = run(watch, clock, 20, lambda i: {"db1": DOWN, "db2": replica(3), "db3": replica(3)})
    assert ("primary_dead", "failover") in actions(events)


def test_an_isolated_automation_host_only_alerts(setup):
    watch, clock, tmp = setup
    run(watch, clock, 4, healthy)
    events = run(watch, clock, 40, lambda i: {"db1": DOWN, "db2": DOWN, "db3": DOWN})
    assert actions(events) == [("isolated", "alert")]
    assert not (tmp / "hold.json").exists()


def test_a_blip_shorter_than_the_checks_changes_nothing(setup):
    watch, clock, _tmp = setup
    run(watch, clock, 4, healthy)
    events = run(watch, clock, 2, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"),
                                             "db3": replica(3, io="Connecting")})
    events += run(watch, clock, 10, healthy)
    assert all(a == "none" for _verdict, a in actions(events))


def test_while_held_a_second_dead_primary_is_an_alert(setup):
    watch, clock, tmp = setup
    run(watch, clock, 4, healthy)
    run(watch, clock, 20, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"),
                                     "db3": replica(3, io="Connecting")})
    # the failover made db2 the primary; db1 rejoined: healthy again, within the period
    run(watch, clock, 10, lambda i: {"db2": primary(), "db1": replica(100 + i, "db2"), "db3": replica(100 + i, "db2")})
    assert (tmp / "hold.json").exists()
    events = run(watch, clock, 20, lambda i: {"db2": DOWN, "db1": replica(3, "db2", "Connecting"),
                                              "db3": replica(3, "db2", "Connecting")})
    assert ("primary_dead", "alert") in actions(events)
    assert all(a != "failover" for _verdict, a in actions(events))
    assert "held since the automatic failover of db1" in [e for e in events if e["distweb"]["action"] == "alert"][0][
        "distweb"]["reason"]


def test_the_hold_is_released_once_healthy_after_the_period(setup):
    watch, clock, tmp = setup
    run(watch, clock, 4, healthy)
    run(watch, clock, 20, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"),
                                     "db3": replica(3, io="Connecting")})
    clock.t += 600
    events = run(watch, clock, 2, lambda i: {"db2": primary(), "db1": replica(100 + i, "db2"),
                                             "db3": replica(100 + i, "db2")})
    assert ("rearmed", "alert") in actions(events)
    assert not (tmp / "hold.json").exists()
    events = run(watch, clock, 20, lambda i: {"db2": DOWN, "db1": replica(3, "db2", "Connecting"),
                                              "db3": replica(3, "db2", "Connecting")})
    assert ("primary_dead", "failover") in actions(events)


def test_a_restarted_watch_reads_the_hold_and_does_not_fire_again(setup):
    watch, clock, tmp = setup
    run(watch, clock, 4, healthy)
    run(watch, clock, 20, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"),
                                     "db3": replica(3, io="Connecting")})
    again = watch_mod.Watch(dict(watch.config), clock=clock)
    events = run(again, clock, 20, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"),
                                              "db3": replica(3, io="Connecting")})
    assert all(a != "failover" for _verdict, a in actions(events))


def test_disarmed_by_the_operator_only_alerts(setup):
    watch, clock, tmp = setup
    (tmp / "disarmed").write_text("maintenance until 18:00 (alice)\n")
    run(watch, clock, 4, healthy)
    events = run(watch, clock, 20, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"),
                                              "db3": replica(3, io="Connecting")})
    alerts = [e["distweb"] for e in events if e["distweb"]["action"] == "alert"]
    assert [a["verdict"] for a in alerts] == ["primary_dead"]
    assert "maintenance until 18:00 (alice)" in alerts[0]["reason"]
    assert alerts[0]["armed"] is False
    assert not (tmp / "hold.json").exists()


def test_two_writable_nodes_are_an_alert(setup):
    watch, clock, _tmp = setup
    events = run(watch, clock, 3, lambda i: {"db1": primary(), "db2": primary(), "db3": replica(i)})
    assert actions(events) == [("degraded", "none"), ("two_primaries", "alert")]


def test_a_woken_old_primary_writable_for_one_reading_is_no_alert(setup):
    """Seen on the lab: unpaused after its failover, the old primary reads
    writable once before its guard fences it."""
    watch, clock, _tmp = setup
    run(watch, clock, 4, lambda i: {"db2": primary(), "db1": DOWN, "db3": replica(i, "db2")})
    events = run(watch, clock, 1, lambda i: {"db2": primary(), "db1": primary(), "db3": replica(10, "db2")})
    events += run(watch, clock, 4, lambda i: {"db2": primary(), "db1": replica(0, None, "No"),
                                              "db3": replica(11 + i, "db2")})
    assert all(a == "none" for _verdict, a in actions(events)), actions(events)


def test_a_replica_of_another_source_does_not_speak_for_the_primary(setup):
    """Only the replicas of the primary are asked whether they hear it."""
    watch, clock, _tmp = setup
    run(watch, clock, 4, healthy)
    events = run(watch, clock, 20, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"),
                                              "db3": replica(10 + i, source="elsewhere")})
    assert ("primary_dead", "failover") in actions(events)


def test_bad_settings_are_refused(tmp_path):
    path = tmp_path / "watch.json"
    path.write_text(json.dumps({"nodes": [], "checks": 0, "state_dir": ""}))
    with pytest.raises(ValueError) as err:
        watch_mod.load_config(str(path))
    assert "nodes" in str(err.value) and "checks" in str(err.value) and "state_dir" in str(err.value)


def test_the_same_node_dying_again_after_healing_is_a_new_incident(setup):
    """Held after db1's failover; db1 rejoined and was made the primary
    again by hand; it dies again within the period: an alert, not silence."""
    watch, clock, tmp = setup
    run(watch, clock, 4, healthy)
    run(watch, clock, 20, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"),
                                     "db3": replica(3, io="Connecting")})
    run(watch, clock, 10, lambda i: healthy(100 + i))
    assert json.loads((tmp / "hold.json").read_text())["healthy_at"] > 0
    events = run(watch, clock, 20, lambda i: {"db1": DOWN, "db2": replica(3, io="Connecting"),
                                              "db3": replica(3, io="Connecting")})
    assert [a for _verdict, a in actions(events) if a != "none"] == ["alert"]
    assert ("primary_dead", "alert") in actions(events)


def test_a_restarted_primary_that_came_back_read_only_is_an_alert(setup):
    """Every node starts read-only: a restarted primary takes no write until
    an operator makes it the primary again; the watch says so, once."""
    watch, clock, tmp = setup
    run(watch, clock, 4, healthy)
    events = run(watch, clock, 10, lambda i: {"db1": primary(read_only=True, uptime=3 + i), "db2": replica(10 + i),
                                              "db3": replica(10 + i)})
    assert [a for v, a in actions(events)] == ["none", "alert"], actions(events)
    assert actions(events)[-1] == ("primary_restarted", "alert")
    assert "site.yml" in events[-1]["distweb"]["reason"]
    assert not (tmp / "hold.json").exists()


def test_a_long_running_primary_read_only_for_a_moment_is_no_failover(setup):
    """A switchover makes the old primary read-only before the new one is
    writable; that node has not restarted."""
    watch, clock, tmp = setup
    run(watch, clock, 4, healthy)
    events = run(watch, clock, 10, lambda i: {"db1": primary(read_only=True), "db2": replica(10 + i),
                                              "db3": replica(10 + i)})
    assert all(a == "none" for _verdict, a in actions(events)), actions(events)
    assert not (tmp / "hold.json").exists()


# ---------------------------------------------------------------------------
# A replica of the primary that is none of the nodes
# ---------------------------------------------------------------------------

def with_ids(seen, hosts):
    """``seen`` with server_ids (db1 1, db2 2, db3 3) and the primary's
    replicas (SHOW SLAVE HOSTS) as ``hosts``: [(server_id, host)]."""
    seen = {name: dict(obs, server_id=i + 1) if obs.get("reachable") else obs
            for i, (name, obs) in enumerate(sorted(seen.items()))}
    if seen["db1"].get("reachable"):
        seen["db1"]["replica_hosts"] = [{"server_id": s, "host": h} for s, h in hosts]
    return seen


LISTED = [(2, "db2"), (3, "db3")]
WITH_STRANGER = LISTED + [(99, "analytics")]


def test_the_primary_s_replicas_that_are_nodes_change_nothing(setup):
    watch, clock, _tmp = setup
    events = run(watch, clock, 6, lambda i: with_ids(healthy(i), LISTED))
    assert actions(events) == [("healthy", "none")]
    events = run(watch, clock, 20, lambda i: with_ids({"db1": DOWN, "db2": replica(5, io="Connecting"),
                                                       "db3": replica(5, io="Connecting")}, []))
    assert ("primary_dead", "failover") in actions(events)


def test_a_replica_that_is_no_node_is_an_alert_and_a_dead_primary_then_no_failover(setup):
    # it may have acknowledged a write (semi-sync needs one acknowledgement,
    # any replica's) that no node has: the failover would lose it
    watch, clock, tmp = setup
    events = run(watch, clock, 6, lambda i: with_ids(healthy(i), WITH_STRANGER))
    assert actions(events) == [("unlisted_replica", "alert")]
    reason = events[0]["distweb"]["reason"]
    assert "db1 has replicas that are none of the nodes (server_id 99 at analytics)" in reason, reason
    assert "mysql_cluster_nodes" in reason
    events = run(watch, clock, 20, lambda i: with_ids({"db1": DOWN, "db2": replica(5, io="Connecting"),
                                                       "db3": replica(5, io="Connecting")}, []))
    assert all(a != "failover" for _verdict, a in actions(events)), actions(events)
    assert not (tmp / "hold.json").exists()
    # the page for a dead primary that is not failed over, saying why
    last = events[-1]["distweb"]
    assert (last["verdict"], last["action"]) == ("primary_dead", "alert"), last
    assert "none of its replicas (db2, db3) has heard it" in last["reason"]
    assert "not failing over: when it last answered, it had replicas that are none of the nodes (server_id 99 at " \
        "analytics)" in last["reason"], last["reason"]
    assert "not_safe" not in last


def test_once_that_replica_is_gone_the_cluster_is_healthy_again(setup):
    watch, clock, _tmp = setup
    run(watch, clock, 4, lambda i: with_ids(healthy(i), WITH_STRANGER))
    events = run(watch, clock, 4, lambda i: with_ids(healthy(10 + i), LISTED))
    assert actions(events) == [("healthy", "none")]


def test_an_unread_list_of_replicas_keeps_the_last_one_read(setup):
    # a refused SHOW SLAVE HOSTS (replica_hosts None) proves nothing either way
    watch, clock, _tmp = setup
    run(watch, clock, 4, lambda i: with_ids(healthy(i), WITH_STRANGER))
    events = run(watch, clock, 4, lambda i: dict(with_ids(healthy(10 + i), []),
                                                 db1=dict(primary(), server_id=1, replica_hosts=None)))
    assert events == [] or all(v == "unlisted_replica" for v, _a in actions(events))
    assert watch.judge.unlisted == [(99, "analytics")]


class FakeServer(object):
    """What the observer reads of one node (a fake connection's answers)."""

    def __init__(self, read_only, hosts=None, hosts_error=None):
        self.read_only, self.hosts, self.hosts_error = read_only, hosts or [], hosts_error

    def server_info(self):
        return {"server_id": 7, "read_only": self.read_only}

    def query_one(self, sql):
        return {"Variable_name": "Uptime", "Value": "100"}

    def replica_status(self):
        return {}

    def replica_hosts(self):
        if self.hosts_error:
            raise self.hosts_error
        return [{"server_id": s, "host": h, "port": 3306, "source_id": 7, "uuid": None} for s, h in self.hosts]


def observed(monkeypatch, server):
    observer = watch_mod.Observer(dict(watch_mod.DEFAULTS, nodes=[{"name": "db1", "host": "db1"}]))
    monkeypatch.setattr(observer, "_server", lambda node: server)
    return observer._sql({"name": "db1", "host": "db1"})


def test_the_observer_reads_a_writable_node_s_replicas(monkeypatch):
    seen = observed(monkeypatch, FakeServer(False, [(99, "analytics")]))
    assert seen["reachable"] and seen["server_id"] == 7
    assert seen["replica_hosts"] == [{"server_id": 99, "host": "analytics"}]
    # a read-only node's are not read
    assert observed(monkeypatch, FakeServer(True, [(99, "analytics")]))["replica_hosts"] is None


def test_a_refused_list_of_replicas_leaves_the_node_reachable(monkeypatch):
    seen = observed(monkeypatch, FakeServer(False, hosts_error=watch_mod.MySQLError(1227, "Access denied")))
    assert seen["reachable"] is True and seen["replica_hosts"] is None
