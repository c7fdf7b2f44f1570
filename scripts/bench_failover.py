"""Failover figures (see scripts/bench-failover, which starts the lab).

Per repetition it prints, as the client writing through the load balancer
saw them:
  - the write outage after the primary's container is killed: from the kill
    to the first acknowledged write, split into the time before
    playbooks/failover.yml started and the time from its start;
  - the acknowledged writes missing on the new primary afterwards;
  - the switchover's write-blocked time: the longest gap between two
    acknowledged writes while playbooks/switchover.yml ran;
then the median and the worst over the repetitions. It asserts nothing."""

import argparse
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "molecule" / "resources"))
from labclient import (  # noqa: E402 (after the path is set)
    DB_NODES,
    SplitBrainSampler,
    WriteLoad,
    container,
    docker,
    missing_values,
    node_sql,
    playbook,
    start_node,
    wait_for,
    wait_for_gtid,
    writable_nodes,
)


def checked(result, what, log_dir, rep):
    pathlib.Path(log_dir, f"rep{rep}-{what}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"{what} failed in repetition {rep}; see {log_dir}/rep{rep}-{what}.log")


def longest_gap(load, start, end):
    """Longest time without an acknowledged write in [start, end] (the
    first acknowledged write after end closes the last gap)."""
    acked = [t for t, ok in load.attempts if ok]
    before = [t for t in acked if t < start]
    inside = [t for t in acked if start <= t <= end]
    after = [t for t in acked if t > end][:1]
    points = before[-1:] + inside + after
    return max((b - a for a, b in zip(points, points[1:])), default=float("nan"))


def one_repetition(rep, log_dir):
    primary = writable_nodes()
    if len(primary) != 1:
        sys.exit(f"expected one writable node, found {primary}")
    primary = primary[0]
    figures = {}

    with WriteLoad(pause=0.01) as load:
        wait_for(lambda: len(load.acknowledged) >= 30, 60, what="the write load")
        docker("kill", container(primary))
        # the container is gone when docker kill returns: requests sent
        # before may still have been answered by it
        killed = time.monotonic()
        started = time.monotonic()
        result = playbook("playbooks/failover.yml")
        finished = time.monotonic()
        back = load.wait_for_success_after(killed, timeout=120)
        time.sleep(1)
    checked(result, "failover", log_dir, rep)
    new = [n for n in writable_nodes() if n != primary][0]
    figures["outage"] = back - killed
    figures["before_playbook"] = started - killed
    figures["playbook_to_write"] = back - started
    figures["playbook_run"] = finished - started
    figures["failed_writes"] = load.failed
    values = [v for dummy, v in load.acknowledged]
    figures["lost"] = len(missing_values(new, values))

    start_node(primary)
    checked(playbook("playbooks/rejoin.yml", "-e", f"mysql_cluster_rejoin_node={primary}"), "rejoin", log_dir, rep)
    position = node_sql(new, "SELECT @@gtid_binlog_pos")[0][0]
    if not wait_for_gtid(primary, position, 120):
        sys.exit(f"{primary} did not catch up after the rejoin")

    with WriteLoad(pause=0.01) as load:
        wait_for(lambda: len(load.acknowledged) >= 30, 60, what="the write load")
        started = time.monotonic()
        result = playbook("playbooks/switchover.yml", "-e", f"mysql_cluster_switchover_target={primary}")
        finished = time.monotonic()
        load.wait_for_success_after(finished, timeout=60)
        time.sleep(1)
    checked(result, "switchover", log_dir, rep)
    figures["switchover_blocked"] = longest_gap(load, started, finished)
    figures["switchover_failed_writes"] = load.failed
    values = [v for dummy, v in load.acknowledged]
    figures["switchover_lost"] = len(missing_values(primary, values))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--log-dir", default=".")
    args = parser.parse_args()
    rows = []
    with SplitBrainSampler(nodes=tuple(DB_NODES)) as sampler:
        for rep in range(1, args.reps + 1):
            began = time.monotonic() - sampler.rounds[0][0] if sampler.rounds else 0.0
            f = one_repetition(rep, args.log_dir)
            rows.append(f)
            print(f"rep {rep} (from {began:.1f} s on the sampler's clock): write outage {f['outage']:.2f} s (before the playbook {f['before_playbook']:.2f} s, "
                  f"playbook start to first write {f['playbook_to_write']:.2f} s; playbook run {f['playbook_run']:.2f} s), "
                  f"failed writes {f['failed_writes']}, lost {f['lost']}; switchover blocked "
                  f"{f['switchover_blocked']:.2f} s, failed writes {f['switchover_failed_writes']}, "
                  f"lost {f['switchover_lost']}", flush=True)
    print()
    print(f"over {len(rows)} repetitions (median / worst):")
    for key, label in [("outage", "write outage, kill to first write (s)"),
                       ("before_playbook", "  before the playbook started (s)"),
                       ("playbook_to_write", "  playbook start to first write (s)"),
                       ("playbook_run", "failover playbook run (s)"),
                       ("failed_writes", "failed writes during the failover"),
                       ("lost", "acknowledged writes lost (failover)"),
                       ("switchover_blocked", "switchover write-blocked time (s)"),
                       ("switchover_failed_writes", "failed writes during the switchover"),
                       ("switchover_lost", "acknowledged writes lost (switchover)")]:
        values = [r[key] for r in rows]
        print(f"  {label:40s} {statistics.median(values):8.2f} / {max(values):8.2f}")
    print(f"  most primaries seen at once by any view (read_only, /primary, routers; sampler, "
          f"{len(sampler.rounds)} rounds): {sampler.max_writable}")
    split = sampler.split_brain_rounds()
    if split:
        start = sampler.rounds[0][0]
        print(f"  rounds with more than one primary in a view: {len(split)}; the first ones "
              f"(seconds since the sampler started, primaries by view):")
        for when, seen in split[:10]:
            print(f"    {when - start:8.2f}  {seen}")


if __name__ == "__main__":
    main()
