"""Monitoring figures (see scripts/bench-monitoring, which starts the lab).

It prints, asserting nothing:
  - the time from a failure to its alert at the lab's receiver, and from the
    repair to the "resolved" notification: nginx stopped on a web server
    (HAProxyServerDown, from each load balancer) and replication stopped on
    a replica (MySQLReplicationStopped), ROUNDS times each;
  - what the monitoring stack costs: CPU (share of one core, over the last
    2 minutes) and resident memory of each exporter, Prometheus and
    Alertmanager, and how long each scrape takes, from Prometheus itself."""

import argparse
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "molecule" / "resources"))
from labclient import (  # noqa: E402 (after the path is set)
    LOAD_BALANCERS,
    container,
    docker,
    every_server_up,
    node_sql,
    prometheus_query,
    slave_status,
    wait_for,
    wait_for_alert,
)


def dead_backend():
    wait_for(every_server_up, 180, what="every server UP")
    wait_for(lambda: not prometheus_query('ALERTS{alertname="HAProxyServerDown"}'), 180,
             what="no HAProxyServerDown pending or firing")
    since = time.time()
    docker("exec", container("server2"), "systemctl", "stop", "nginx")
    try:
        fired = max(wait_for_alert("HAProxyServerDown", since=since, instance=lb, server="server2")
                    for lb in LOAD_BALANCERS)
    finally:
        docker("exec", container("server2"), "systemctl", "start", "nginx")
    repaired = time.time()
    resolved = max(wait_for_alert("HAProxyServerDown", status="resolved", since=repaired, instance=lb,
                                  server="server2", timeout=240) for lb in LOAD_BALANCERS)
    return fired - since, resolved - repaired


def stopped_replication():
    wait_for(lambda: not prometheus_query('ALERTS{alertname="MySQLReplicationStopped"}'), 180,
             what="no MySQLReplicationStopped pending or firing")
    since = time.time()
    node_sql("server3", "STOP SLAVE")
    try:
        fired = wait_for_alert("MySQLReplicationStopped", since=since, instance="server3")
    finally:
        node_sql("server3", "START SLAVE")
    repaired = time.time()
    wait_for(lambda: slave_status("server3").get("Slave_SQL_Running") == "Yes", 60, what="server3 replicating")
    resolved = wait_for_alert("MySQLReplicationStopped", status="resolved", since=repaired, instance="server3",
                              timeout=240)
    return fired - since, resolved - repaired


def timings(what, measure, rounds):
    fired, resolved = [], []
    for n in range(rounds):
        f, r = measure()
        print(f"  {what} round {n + 1}: alert after {f:5.1f} s, resolved after {r:5.1f} s", flush=True)
        fired.append(f)
        resolved.append(r)
    print(f"{what:40s} alert at the receiver: median {statistics.median(fired):5.1f} s "
          f"(max {max(fired):5.1f});  resolved: median {statistics.median(resolved):5.1f} s "
          f"(max {max(resolved):5.1f})", flush=True)


def cost():
    cpu = prometheus_query("rate(process_cpu_seconds_total[2m])")
    rss = prometheus_query("process_resident_memory_bytes")
    scrape = prometheus_query("avg_over_time(scrape_duration_seconds[2m])")
    samples = prometheus_query("scrape_samples_scraped")

    def by_job(result):
        jobs = {}
        for labels, value in result:
            jobs.setdefault(labels.get("job", "?"), []).append(value)
        return jobs

    cpu, rss, scrape, samples = by_job(cpu), by_job(rss), by_job(scrape), by_job(samples)
    print(f"\n{'job':14s} {'targets':>7s} {'CPU % of a core':>16s} {'RSS MiB':>16s} "
          f"{'scrape ms':>10s} {'series':>7s}")
    for job in sorted(set(scrape)):
        c = cpu.get(job, [])
        m = rss.get(job, [])
        cpu_text = f"{100 * statistics.mean(c):6.2f} (max {100 * max(c):5.2f})" if c else "-"
        rss_text = f"{statistics.mean(m) / 2**20:6.1f} (max {max(m) / 2**20:5.1f})" if m else "-"
        print(f"{job:14s} {len(scrape[job]):7d} {cpu_text:>16s} {rss_text:>16s} "
              f"{1000 * statistics.mean(scrape[job]):10.1f} {int(statistics.mean(samples.get(job, [0]))):7d}")
    # The nginx exporter publishes no process metrics: ask ps on each web server.
    for job, binary, hosts in (("nginx", "prometheus-nginx-exporter", ("server1", "server2", "server3")),):
        cpu_share, rss_mib = [], []
        for host in hosts:
            out = docker("exec", container(host), "ps", "-C", binary, "-o", "times=,etimes=,rss=", check=False).stdout.split()
            if len(out) == 3 and int(out[1]) > 0:
                cpu_share.append(100 * int(out[0]) / int(out[1]))
                rss_mib.append(int(out[2]) / 1024)
        if cpu_share:
            print(f"{job + ' (ps)':14s} {len(cpu_share):7d} {statistics.mean(cpu_share):6.2f} (max {max(cpu_share):5.2f}) "
                  f"{statistics.mean(rss_mib):6.1f} (max {max(rss_mib):5.1f})   CPU since start")
    print("(-: no process metrics; haproxy and the app serve theirs from HAProxy and gunicorn themselves)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    timings("nginx stopped on server2 (HAProxyServerDown)", dead_backend, args.rounds)
    timings("replication stopped on server3", stopped_replication, args.rounds)
    cost()


if __name__ == "__main__":
    main()
