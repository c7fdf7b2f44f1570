"""Edge figures (see scripts/bench-edge, which starts the lab).

Through the virtual IP, as a client on this machine sees it (GETs from four
threads and POSTs from one, both bounded), it prints failed / total
requests while:
  - server3's container is killed (and the load goes on 15 s without it);
  - playbooks/rolling_deploy.yml redeploys every web server;
  - the load balancer holding the VIP is killed;
and the VIP move time: from the kill to the VIP on the other load balancer,
and to the first successful request through it. It asserts nothing."""

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "molecule" / "resources"))
from labclient import (  # noqa: E402 (after the path is set)
    LOAD_BALANCERS,
    VIP_SITE,
    ReadLoad,
    WriteLoad,
    container,
    docker,
    every_server_up,
    playbook,
    start_node,
    vip_holders,
    wait_for,
)


def report(what, reads, writes):
    print(f"{what:38s} GET {reads.failed:4d} failed of {len(reads.attempts):6d}   "
          f"POST {writes.failed:3d} failed of {len(writes.attempts):5d}", flush=True)


def backend_kill():
    wait_for(every_server_up, 120, what="every server UP")
    with ReadLoad(site=VIP_SITE, max_seconds=300) as reads, WriteLoad(site=VIP_SITE, max_seconds=300) as writes:
        wait_for(lambda: len(reads.attempts) >= 200, 60, what="the load")
        docker("kill", container("server3"))
        time.sleep(15)
    report("web server killed (server3)", reads, writes)
    start_node("server3")
    wait_for(every_server_up, 180, what="server3 back")


def rolling_deploy(log_dir):
    wait_for(every_server_up, 120, what="every server UP")
    with ReadLoad(site=VIP_SITE, max_seconds=900) as reads, WriteLoad(site=VIP_SITE, max_seconds=900) as writes:
        wait_for(lambda: len(reads.attempts) >= 200, 60, what="the load")
        started = time.monotonic()
        result = playbook("playbooks/rolling_deploy.yml")
        took = time.monotonic() - started
    pathlib.Path(log_dir, "rolling_deploy.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"rolling_deploy.yml failed; see {log_dir}/rolling_deploy.log")
    report(f"rolling deploy ({took:.0f} s)", reads, writes)


def load_balancer_kill():
    holder = vip_holders()[0]
    other = next(lb for lb in LOAD_BALANCERS if lb != holder)
    with ReadLoad(site=VIP_SITE, max_seconds=300, timeout=3) as reads, WriteLoad(site=VIP_SITE, max_seconds=300, timeout=3) as writes:
        wait_for(lambda: len(reads.attempts) >= 200, 60, what="the load")
        killed = time.monotonic()
        docker("kill", container(holder))
        moved = wait_for(lambda: time.monotonic() if vip_holders() == [other] else None, 60, interval=0.05,
                         what="the VIP to move")
        back = reads.wait_for_success_after(moved, timeout=60)
        time.sleep(10)
    report(f"load balancer killed ({holder})", reads, writes)
    print(f"{'VIP move time, kill to VIP on ' + other:38s} {moved - killed:.2f} s")
    print(f"{'kill to first GET answered through it':38s} {back - killed:.2f} s", flush=True)
    docker("start", container(holder))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", default=".")
    args = parser.parse_args()
    backend_kill()
    rolling_deploy(args.log_dir)
    load_balancer_kill()


if __name__ == "__main__":
    main()
