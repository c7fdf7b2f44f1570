"""Replicas after a restart and after a crash: prints figures, asserts nothing.

Run by scripts/bench-replication on its lab (distweb-bench) after the lag
phases; it can also be run directly against a kept bench lab
(BENCH_KEEP=1 scripts/bench-replication).

1. A replica's MariaDB is restarted (systemctl restart) RESTARTS times; each
   time, once it replicates again, one row is written on the primary and the
   time until the replica has applied it is measured (MASTER_GTID_WAIT on a
   connection opened beforehand, so no process start-up is counted).
2. Under the app's logged writes through the load balancer and a DDL on the
   primary every 1.5 s, the replicas' containers are killed in ROUNDS rounds,
   turn about at a random moment, right after a DDL, right after a restart
   and inside a 100,000-row transaction (labclient.crash_round), each
   started again; a replica that does not replicate again by itself within
   90 s is broken. Afterwards every acknowledged write is counted on every
   node.

Load is bounded (the write load stops after 1,800 s; the DDL after 900
statements) and goes only to 127.0.0.1 and the lab's own containers."""

import argparse
import os
import pathlib
import random
import statistics
import sys
import time

for _key, _value in (("DISTWEB_LAB_NAME", "distweb-bench"), ("DISTWEB_LAB_SUBNET_PREFIX", "172.28.30"),
                     ("DISTWEB_LAB_HTTP_PORT", "28080"), ("DISTWEB_LAB_HTTPS_PORT", "28443")):
    os.environ.setdefault(_key, _value)

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "molecule" / "resources"))
from labclient import (  # noqa: E402 (after the path is set)
    DB_NODES,
    SchemaChanges,
    WriteLoad,
    container,
    crash_plan,
    crash_round,
    docker,
    drop_writer,
    first_apply_seconds,
    prepare_crash_rounds,
    stored_counts,
    wait_for,
    wait_until_caught_up,
)


def spread(values):
    if not values:
        return "none"
    return f"median {statistics.median(values):.3f} s, worst {max(values):.3f} s ({len(values)})"


def restarts(primary, name, count):
    seconds = []
    for _n in range(count):
        docker("exec", container(name), "systemctl", "restart", "mariadb", timeout=300)
        wait_until_caught_up(name, primary)
        seconds.append(first_apply_seconds(primary, name))
    return seconds


def kill_loop(primary, replicas, rounds, seed):
    randomly = random.Random(seed)
    results = []
    with WriteLoad(max_seconds=1800) as load, SchemaChanges(primary) as changes:
        wait_for(lambda: len(load.acknowledged) >= 20, 60, what="the write load to flow")
        for n, (name, moment) in enumerate(crash_plan(replicas, rounds)):
            result = dict(crash_round(name, moment, primary, changes, randomly), name=name, moment=moment)
            results.append(result)
            print(f"  round {n + 1}: {name} killed {moment}: "
                  f"{'BROKEN: ' + result['error'] if result['error'] else 'replicates again'} "
                  f"({result['seconds']} s from its start, {result['repairs']} crash repair(s))", flush=True)
            if result["error"]:
                break
    acknowledged = [value for _id, value in load.acknowledged]
    missing = {}
    for name in DB_NODES:
        if name in replicas:
            try:
                wait_until_caught_up(name, primary)
            except AssertionError:
                pass
        counts = stored_counts(name, acknowledged)
        missing[name] = sum(1 for value in acknowledged if counts.get(value) != 1)
    return results, load, changes, missing


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primary", default="server1")
    parser.add_argument("--restarts", type=int, default=5, help="clean restarts of a replica")
    parser.add_argument("--rounds", type=int, default=20, help="crash rounds (container kills)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    replicas = [n for n in DB_NODES if n != args.primary]
    prepare_crash_rounds(args.primary)
    for name in replicas:
        wait_until_caught_up(name, args.primary)

    print(f"restarting {replicas[0]}'s MariaDB {args.restarts} times", flush=True)
    first = restarts(args.primary, replicas[0], args.restarts)
    print(f"killing the replicas' containers in {args.rounds} rounds (seed {args.seed})", flush=True)
    results, load, changes, missing = kill_loop(args.primary, replicas, args.rounds, args.seed)
    drop_writer(args.primary)
    broken = [r for r in results if r["error"]]
    rows = [
        ("first transaction applied after a restart", spread(first)),
        ("crash rounds / container kills", f"{len(results)} / {sum(r['kills'] for r in results)}"),
        ("broken replicas over the kill loop", f"{len(broken)}"),
        ("crash repairs by the health endpoint", f"{sum(r['repairs'] for r in results)}"),
        ("replica start to caught up", spread([r["seconds"] for r in results])),
        ("writes acknowledged / failed", f"{len(load.acknowledged)} / {load.failed} (at most one a kill: the "
                                         "killed container is also a web server)"),
        ("DDL statements on the primary", f"{len(changes.done)} ({len(changes.errors)} failed)"),
        ("acknowledged writes not stored exactly once", ", ".join(f"{n} {c}" for n, c in missing.items())),
    ]
    print()
    for name, value in rows:
        print(f"{name:<44} {value}")


if __name__ == "__main__":
    main()
