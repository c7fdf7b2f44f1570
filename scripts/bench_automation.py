"""Automatic failover figures (see scripts/bench-failover, BENCH_MODE=automatic,
which starts the lab with its automation host). It asserts nothing.

The lab is the failover scenario's layout (inventories/lab-failover): the
seeds' topology and automation1, which runs the automatic failover
(distweb.infra.automation: ansible-rulebook and its watch,
distweb.infra.cluster_watch). Its alerts go to a webhook that this script
runs on the control node, at the lab network's gateway. Two parts, each
under one write load through the load balancer (every write logged) and the
split-brain sampler:

  repetitions (--reps of each kind, interleaved): the automatic failover
    armed (and any hold released), then the primary's container killed
    (``docker kill``) or hung (``docker pause``, unpaused once the failover
    is done), and no human step until the writes are back. Then the old
    primary is rejoined (or rebuilt when it diverged) and switched back to,
    as in bench_failover.py. Per repetition:
      - decided: from the fault to the watch's decision (detection and
        decision: automation_checks failed readings, then no replica hearing
        the primary for the heartbeat window), read from the hold the watch
        writes (its time stamp);
      - started: from the decision to the failover playbook's first notice
        (ansible-rulebook starting the playbook);
      - failover: from that notice to the playbook's last one;
      - to ack: from the fault to the acknowledgement of the first write
        sent after it that was acknowledged (what the outage cost a client);
      - gap: the longest time without an acknowledged write, from the fault;
      - failovers: automatic failovers started during the repetition (one is
        right, two are a defect), failed and lost writes (on the new primary
        and at the end), written twice, the sampler's maximum;
  false alarms (--false-alarm-seconds, default 600): the automatic failover
    armed, the cluster healthy, and transient faults one after another, each
    shorter than the detection window or not a failure of the primary at all:
      pause: the primary's container paused for 0.5 to 2 s;
      loss: 30 % of the packets that reach the primary dropped for 8 s;
      cut: the automation host cut off from the primary (SQL and health
        endpoint) for 10 s, while the replicas still hear it;
      replica: a replica's MariaDB restarted.
    Prints the faults injected, the automatic failovers started (every one a
    false failover), the alerts by name, failed and lost writes.

Load is bounded (at most LOAD_MAX_WRITES writes and REP_MAX_SECONDS seconds
per repetition or run) and goes only to 127.0.0.1 (the load balancer's
published port) and the lab's own containers."""

import argparse
import json
import os
import pathlib
import random
import statistics
import sys
import threading
import time
from http.server import ThreadingHTTPServer

# The bench lab's settings (scripts/bench-failover exports the same), read
# by labclient and bench_failover when they are imported.
ROOT = pathlib.Path(__file__).resolve().parents[1]
for _key, _value in (("DISTWEB_LAB_NAME", "distweb-bench-failover"), ("DISTWEB_LAB_SUBNET_PREFIX", "172.28.50"),
                     ("DISTWEB_LAB_HTTP_PORT", "28090"), ("DISTWEB_LAB_HTTPS_PORT", "28453"),
                     ("DISTWEB_BENCH_INVENTORY", str(ROOT / "inventories" / "lab-failover"))):
    os.environ.setdefault(_key, _value)
sys.path.insert(0, str(ROOT / "molecule" / "resources"))
sys.path.insert(0, str(ROOT / "scripts"))
import alert_receiver  # noqa: E402 (after the path is set)
from alert_receiver import notices  # noqa: E402
from bench_failover import (  # noqa: E402
    LOAD_MAX_WRITES,
    REP_MAX_SECONDS,
    RepFailed,
    caught_up,
    end_router_probes,
    failure_reason,
    fmt,
    longest_gap,
    p90,
    playbook_run,
    rejoin_or_rebuild,
    repair,
    sampler_views,
    single_writable,
    watch_woken,
)
from labclient import (  # noqa: E402
    DB_NODES,
    SUBNET,
    SplitBrainSampler,
    WriteLoad,
    container,
    docker,
    drop_traffic,
    heal,
    missing_values,
    node_address,
    start_node,
    stored_counts,
    wait_for,
    writable_nodes,
)

KINDS = ("killed", "hung")
AUTOMATION = "automation1"
RECEIVER_PORT = 9098  # distweb_lab_automation_receiver_port in inventories/lab-failover
HOLD = "/var/lib/distweb-automation/hold.json"  # automation_state_dir, the watch's hold
STARTED, DONE, REFUSED = "DistwebAutomaticFailover", "DistwebAutomaticFailoverDone", "DistwebAutomaticFailoverRefused"
FAULT_TABLE = "distweb_faults"  # labclient's table for injected faults (heal removes it)
FALSE_ALARM_FAULTS = ("pause", "loss", "cut", "replica")


def switch(log_dir, label, **settings):
    """playbooks/automation.yml with these extra variables."""
    result, dummy = playbook_run(log_dir, label, "playbooks/automation.yml", "-e", json.dumps(settings))
    if result.returncode != 0:
        raise RepFailed(f"playbooks/automation.yml {settings} failed: {failure_reason(result)}")


def arm(log_dir, label):
    switch(log_dir, f"{label}-arm", automation_failover_armed=True, automation_release_hold=True)


def hold_time():
    """The watch's decision time (Unix time) from its hold, None without one."""
    found = docker("exec", container(AUTOMATION), "cat", HOLD, check=False)
    if found.returncode != 0:
        return None
    try:
        return float(json.loads(found.stdout)["at"])
    except (ValueError, KeyError, TypeError):
        return None


def one_repetition(kind, number, home, log_dir):
    """One automatic failover of a ``kind`` fault; its figures (``error``
    set when it failed)."""
    label = f"auto-{kind}{number}"
    notes = []
    f = {"kind": kind, "rep": number, "primary": home, "notes": notes, "error": None}
    if single_writable() != home:
        raise RepFailed(f"the repetition should start with {home} as the only writable node; "
                        f"writable: {writable_nodes()}")
    arm(log_dir, label)
    since = time.time()
    fault = None
    with SplitBrainSampler(nodes=tuple(DB_NODES), max_seconds=REP_MAX_SECONDS) as sampler, \
            WriteLoad(pause=0.01, max_writes=LOAD_MAX_WRITES, max_seconds=REP_MAX_SECONDS) as load:
        try:
            wait_for(lambda: len(load.acknowledged) >= 30, 60, what="the write load")
            time.sleep(1)  # the sampler has readings of every source
            fault_wall = time.time()
            docker("kill" if kind == "killed" else "pause", container(home))
            fault = time.monotonic()
            end = wait_for(lambda: notices(since, DONE) or notices(since, REFUSED), 180, interval=0.2,
                           what="the automatic failover's last notice")
            if notices(since, REFUSED):
                raise RepFailed(f"the automatic failover refused: {notices(since, REFUSED)[0][2]}")
            started = notices(since, STARTED)
            decided = hold_time()
            f["decided"] = decided - fault_wall if decided is not None else None
            f["started"] = started[0][0] - decided if started and decided is not None else None
            f["failover"] = end[0][0] - started[0][0] if started else None
            back = load.wait_for_success_after(fault, timeout=120)
            if back is None:
                raise RepFailed("no write acknowledged within 120 s of the failover's end")
            acked_at = load.first_answer_after(fault)
            f["to_ack"] = acked_at - fault if acked_at is not None else None
            f["gap"] = longest_gap(load, fault, back, from_start=True)
            new = [n for n in writable_nodes() if n != home]
            if len(new) != 1:
                raise RepFailed(f"after the failover, writable nodes other than {home}: {new}")
            new = new[0]
            f["new_primary"] = new
            f["lost_failover"] = len(missing_values(new, [v for dummy, v in list(load.acknowledged)]))
            if kind == "hung":
                docker("unpause", container(home))
                f["woken_read_only_after"], dummy = watch_woken(home, time.monotonic())
            else:
                start_node(home)
            f["rejoin"], f["rejoin_seconds"] = rejoin_or_rebuild(home, new, log_dir, label, notes)
            caught_up(home, new)
            result, dummy = playbook_run(log_dir, f"{label}-switchover", "playbooks/switchover.yml",
                                         "-e", f"mysql_cluster_switchover_target={home}")
            if result.returncode != 0:
                raise RepFailed(f"switchover back to {home} failed: {failure_reason(result)}")
            load.wait_for_success_after(time.monotonic(), timeout=60)
        except (RepFailed, AssertionError) as exc:
            f["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 (a benchmark goes on and says what broke)
            f["error"] = f"{type(exc).__name__}: {exc}"
    end_router_probes()
    f["failovers"] = len(notices(since, STARTED))
    f["failed"], f["acknowledged"] = load.failed, len(load.acknowledged)
    f["load_errors"] = [e for dummy, e in load.errors[:3]]
    final = writable_nodes()
    if f["error"] is None and len(final) == 1:
        counts = stored_counts(final[0], load.sent)
        f["lost_end"] = sum(1 for dummy, v in load.acknowledged if counts.get(v, 0) == 0)
        f["twice"] = sum(1 for n in counts.values() if n > 1)
    elif f["error"] is None:
        f["error"] = f"at the end, writable nodes: {final}"
    origin = fault if fault is not None else time.monotonic()
    f["sampler_max"], f["sampler_per_view"], split = sampler_views(sampler, origin)
    f["split_rounds"], f["sampler_rounds"], f["split_first"] = len(split), len(sampler.rounds), split[:3]
    return f


def inject(fault, primary, randomly):
    """One transient fault; returns what was done, for the report."""
    if fault == "pause":
        seconds = randomly.uniform(0.5, 2.0)
        docker("pause", container(primary))
        try:
            time.sleep(seconds)
        finally:
            docker("unpause", container(primary))
        return f"pause {seconds:.1f} s"
    if fault == "loss":
        rules = (f"table inet {FAULT_TABLE} {{\n chain input {{\n  type filter hook input priority -50;\n"
                 "  numgen random mod 100 < 30 drop\n }\n}\n")
        docker("exec", "-i", container(primary), "nft", "-f", "-", input_text=rules)
        try:
            time.sleep(8)
        finally:
            heal(primary)
        return "loss 30 % for 8 s"
    if fault == "cut":
        drop_traffic(primary, [node_address(AUTOMATION)], [3306, 9201])
        try:
            time.sleep(10)
        finally:
            heal(primary)
        return "automation host cut off from the primary for 10 s"
    replica = randomly.choice([n for n in DB_NODES if n != primary])
    docker("exec", container(replica), "systemctl", "restart", "mariadb")
    return f"{replica}'s MariaDB restarted"


def false_alarms(seconds, home, log_dir, seed):
    """Transient faults for ``seconds`` with the automatic failover armed;
    its figures."""
    randomly = random.Random(seed)
    f = {"seconds": seconds, "seed": seed, "faults": [], "error": None}
    if single_writable() != home:
        raise RepFailed(f"the run should start with {home} as the only writable node; writable: {writable_nodes()}")
    arm(log_dir, "false-alarms")
    since = time.time()
    with SplitBrainSampler(nodes=tuple(DB_NODES), max_seconds=seconds + 300) as sampler, \
            WriteLoad(pause=0.01, max_writes=LOAD_MAX_WRITES * 3, max_seconds=seconds + 300) as load:
        try:
            wait_for(lambda: len(load.acknowledged) >= 30, 60, what="the write load")
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                fault = FALSE_ALARM_FAULTS[len(f["faults"]) % len(FALSE_ALARM_FAULTS)]
                f["faults"].append((fault, inject(fault, home, randomly)))
                # the watch settles (healthy again) before the next fault
                time.sleep(randomly.uniform(8, 15))
            # a failover fired by the last fault would start within this
            time.sleep(20)
        except Exception as exc:  # noqa: BLE001 (a benchmark goes on and says what broke)
            f["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            heal(home)
    end_router_probes()
    f["failovers"] = notices(since, STARTED)
    f["alerts"] = {}
    for dummy, name, dummy_summary in notices(since):
        f["alerts"][name] = f["alerts"].get(name, 0) + 1
    f["failed"], f["acknowledged"] = load.failed, len(load.acknowledged)
    f["load_errors"] = sorted({e for dummy, e in load.errors})[:5]
    final = writable_nodes()
    f["final_primary"] = final
    if len(final) == 1:
        counts = stored_counts(final[0], load.sent)
        f["lost"] = sum(1 for dummy, v in load.acknowledged if counts.get(v, 0) == 0)
        f["twice"] = sum(1 for n in counts.values() if n > 1)
    f["sampler_max"], f["sampler_per_view"], split = sampler_views(sampler, sampler.rounds[0][0] if sampler.rounds
                                                                   else time.monotonic())
    f["split_rounds"], f["sampler_rounds"] = len(split), len(sampler.rounds)
    return f


def print_rep(f):
    print(f"{f['kind']:6s} rep {f['rep']:2d}: decided {fmt(f.get('decided'))} after the fault, playbook started "
          f"{fmt(f.get('started'))} later, failover {fmt(f.get('failover'))}; fault to first acknowledgement "
          f"{fmt(f.get('to_ack'))}, gap {fmt(f.get('gap'))}; automatic failovers {f['failovers']}; failed "
          f"{f['failed']} of {f['failed'] + f['acknowledged']}, lost {f.get('lost_failover', 'n/a')} after the "
          f"failover / {f.get('lost_end', 'n/a')} at the end, twice {f.get('twice', 'n/a')}; primaries at once "
          f"{f['sampler_max']} ({f['split_rounds']} split rounds of {f['sampler_rounds']}); "
          f"{f.get('rejoin', 'no rejoin')} {fmt(f.get('rejoin_seconds'))}", flush=True)
    for note in f["notes"]:
        print(f"    note: {note}", flush=True)
    if f["error"]:
        print(f"!!! {f['kind']} rep {f['rep']} FAILED: {f['error']}", flush=True)
    if f["failovers"] != 1:
        print(f"!!! {f['kind']} rep {f['rep']}: {f['failovers']} automatic failovers", flush=True)
    if max(f.get("lost_failover") or 0, f.get("lost_end") or 0):
        print(f"!!! {f['kind']} rep {f['rep']} LOST acknowledged writes", flush=True)


def summary(rows):
    print()
    print("automatic failover, per fault kind (median / p90 / worst; p90 by nearest rank):")
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        failed_reps = [r["rep"] for r in mine if r["error"]]
        print(f"  {kind}: {len(mine)} repetitions, {len(failed_reps)} failed {failed_reps or ''}")
        for key, label in (("decided", "fault to the watch's decision (s)"),
                           ("started", "decision to the playbook's start (s)"),
                           ("failover", "failover playbook (s)"),
                           ("to_ack", "fault to first acknowledgement (s)"),
                           ("gap", "longest write gap from the fault (s)")):
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                print(f"    {label:40s} {statistics.median(values):7.2f} / {p90(values):7.2f} / {max(values):7.2f}"
                      f"   (n={len(values)})")
        print(f"    automatic failovers per repetition       {sorted({r['failovers'] for r in mine})}")
        print(f"    failed writes / lost after the failover / lost at the end / twice: "
              f"{sum(r['failed'] for r in mine)} / {sum(r.get('lost_failover') or 0 for r in mine)} / "
              f"{sum(r.get('lost_end') or 0 for r in mine)} / {sum(r.get('twice') or 0 for r in mine)}")
        print(f"    most primaries at once (sampler)         {max(r['sampler_max'] for r in mine)}; split rounds "
              f"{sum(r['split_rounds'] for r in mine)} of {sum(r['sampler_rounds'] for r in mine)}")


def print_false_alarms(f):
    kinds = {}
    for kind, dummy in f["faults"]:
        kinds[kind] = kinds.get(kind, 0) + 1
    print()
    print(f"false alarms: {f['seconds']} s of transient faults (seed {f['seed']}), automatic failover armed")
    print(f"  faults injected: {len(f['faults'])} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
    print(f"  automatic failovers started (false failovers): {len(f['failovers'])}")
    for when, dummy, summary_text in f["failovers"]:
        print(f"    !!! {time.strftime('%H:%M:%S', time.gmtime(when))} {summary_text}")
    print(f"  alerts: {', '.join(f'{k} {n}' for k, n in sorted(f['alerts'].items())) or 'none'}")
    print(f"  writes: {f['acknowledged']} acknowledged, {f['failed']} failed {f['load_errors']}, "
          f"lost {f.get('lost', 'n/a')}, twice {f.get('twice', 'n/a')}; writable at the end: {f['final_primary']}")
    print(f"  most primaries at once (sampler): {f['sampler_max']} ({f['split_rounds']} split rounds of "
          f"{f['sampler_rounds']})")
    if f["error"]:
        print(f"!!! the run stopped: {f['error']}")


def save(log_dir, results):
    pathlib.Path(log_dir, "results-automatic.json").write_text(json.dumps(results, indent=1, default=str))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="repetitions per fault kind")
    parser.add_argument("--kinds", default=",".join(KINDS), help="fault kinds, comma separated (killed,hung)")
    parser.add_argument("--false-alarm-seconds", type=int, default=600, help="0: no false-alarm run")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--home", default="server1")
    parser.add_argument("--log-dir", default=".")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    if set(kinds) - set(KINDS):
        parser.error(f"unknown fault kinds: {sorted(set(kinds) - set(KINDS))}")
    pathlib.Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    seed = args.seed if args.seed is not None else int(time.time())
    print(f"bench-failover (automatic): {args.reps} repetitions of {', '.join(kinds) or 'nothing'}, then "
          f"{args.false_alarm_seconds} s of transient faults; {os.cpu_count()} cores, lab "
          f"{os.environ['DISTWEB_LAB_NAME']}", flush=True)
    server = ThreadingHTTPServer((f"{SUBNET}.1", RECEIVER_PORT), alert_receiver.Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows, results = [], {}
    try:
        for number in range(1, args.reps + 1):
            for kind in kinds:
                try:
                    f = one_repetition(kind, number, args.home, args.log_dir)
                except RepFailed as exc:
                    f = {"kind": kind, "rep": number, "error": str(exc), "could_not_start": True}
                    print(f"!!! {kind} rep {number} could not start: {exc}", flush=True)
                else:
                    rows.append(f)
                    print_rep(f)
                if f["error"]:
                    notes = []
                    repair(args.home, args.log_dir, f"auto-{kind}{number}", notes)
                    print(f"    repaired: {'; '.join(notes)}", flush=True)
                results["repetitions"] = rows
                save(args.log_dir, results)
        summary(rows)
        if args.false_alarm_seconds > 0:
            results["false_alarms"] = false_alarms(args.false_alarm_seconds, args.home, args.log_dir, seed)
            print_false_alarms(results["false_alarms"])
    finally:
        save(args.log_dir, results)
        try:
            switch(args.log_dir, "disarm", automation_failover_armed=False,
                   automation_disarm_reason="the benchmark ended")
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()
