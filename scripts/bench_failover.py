"""Failover figures for a killed and for a hung primary (see
scripts/bench-failover, which starts the lab). It asserts nothing.

Each repetition runs under one write load through the load balancer (every
write logged, see WriteLoad) and one SplitBrainSampler, both across the
whole repetition, and starts from the same topology (the home primary,
server1 by default, writable; the two others its replicas):

  killed: ``docker kill`` of the primary's container, playbooks/failover.yml,
          the node started again, playbooks/rejoin.yml (or, when the rejoin
          refuses a node that has diverged, playbooks/rebuild_replica.yml),
          then playbooks/switchover.yml back to it;
  hung:   ``docker pause`` of the primary's container, playbooks/failover.yml,
          ``docker unpause`` once the playbook has returned (the woken node
          is watched for WAKE_WATCH seconds: when it becomes read-only, when
          its health endpoint stops answering 200 on /primary), then the
          same rejoin (or rebuild) and switchover back.

Per repetition it prints, as the client writing through the load balancer
saw them:
  - gap: the longest time without an acknowledged write, the first gap
    counted from the fault's injection (not from the last write before it),
    up to the first write acknowledged after the failover playbook ended;
  - to write: from the failover playbook's start to the sending of the first
    write sent after that start that was acknowledged (acknowledged: to its
    acknowledgement, the first of a write sent after the fault);
  - run: the failover playbook's whole run (Ansible start-up included);
  - failed: writes that failed at the client during the repetition;
  - lost: acknowledged writes missing on the new primary right after the
    failover, and acknowledged writes missing on the final primary at the
    end of the repetition (after the rejoin or rebuild and the switchover);
  - twice: written values stored more than once on the final primary;
  - the sampler's maximum of nodes counted as primary at one moment by any
    view (SQL read_only, health endpoint /primary, the routers' write
    backends), per view, and the number of rounds in which some view saw
    more than one;
  - the failover's phases (the role's "seconds per phase") when printed;
  - the longest gap while the switchover ran, and in the rest of the
    repetition after the failover (wake-up, rejoin or rebuild, switchover).
Then per fault kind: median, p90 (nearest rank) and worst of the gap
figures, the total failed and lost writes, and the sampler's maximum.

A repetition in which something failed (a playbook refused, a node did not
come back) is recorded as failed with the reason, the lab is repaired
(every node running, one writable primary, the others rejoined or rebuilt,
the home primary switched back) and the next repetition goes on; when the
lab cannot be repaired the benchmark stops there and prints what it has.

Load is bounded (at most LOAD_MAX_WRITES writes and REP_MAX_SECONDS seconds
per repetition) and goes only to 127.0.0.1 (the load balancer's published
port) and the lab's own containers. Run directly against a kept bench lab
(BENCH_KEEP=1 scripts/bench-failover), the lab's name, subnet and ports
default to the bench lab's."""

import argparse
import json
import math
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

# The bench lab's settings (scripts/bench-failover exports the same), read
# by labclient when it is imported.
for _key, _value in (("DISTWEB_LAB_NAME", "distweb-bench-failover"), ("DISTWEB_LAB_SUBNET_PREFIX", "172.28.50"),
                     ("DISTWEB_LAB_HTTP_PORT", "28090"), ("DISTWEB_LAB_HTTPS_PORT", "28453")):
    os.environ.setdefault(_key, _value)

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "molecule" / "resources"))
import requests  # noqa: E402 (after the path is set)
import yaml  # noqa: E402
from labclient import (  # noqa: E402
    DB_NODES,
    HEALTH_PORT,
    ROUTER_SOCKET,
    ROUTERS,
    SplitBrainSampler,
    WriteLoad,
    container,
    docker,
    missing_values,
    node_address,
    node_sql,
    start_node,
    stored_counts,
    wait_for,
    wait_for_gtid,
    writable_nodes,
)

KINDS = ("killed", "hung")
# The bench lab's inventory (the automatic mode's has an automation host).
INVENTORY = pathlib.Path(os.environ.get("DISTWEB_BENCH_INVENTORY") or ROOT / "inventories" / "lab-single")
# Bounds of one repetition's load and sampler.
REP_MAX_SECONDS = 1200
LOAD_MAX_WRITES = 60000
# Seconds the woken old primary (hung) is watched before the rejoin.
WAKE_WATCH = 10.0
PHASES = re.compile(r"seconds per phase: (\{[^}]*\})")
# The profile_tasks recap: "<role> : <task name> ---- 12.34s".
TASK_TIME = re.compile(r"^(?:distweb\.infra\.\w+ : )?(.+?) -+ (\d+\.\d+)s$", re.MULTILINE)


class RepFailed(Exception):
    """Something in a repetition failed: what, for the report."""


def collapsed(result):
    """A playbook's output with whitespace collapsed (the YAML callback
    folds long messages over several lines)."""
    return " ".join((result.stdout + result.stderr).split())


class Ran:  # pylint: disable=too-few-public-methods
    """What a playbook run left: its exit code and output."""

    def __init__(self, returncode, stdout):
        self.returncode, self.stdout, self.stderr = returncode, stdout, ""


def playbook_run(log_dir, label, path, *args, inventory=INVENTORY, timeout=900):
    """ansible-playbook against the bench lab, its output written to
    ``log_dir/label.log`` as it comes (a long rebuild can be followed
    there). Returns (Ran, seconds it ran)."""
    log = pathlib.Path(log_dir, f"{label}.log")
    started = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(["ansible-playbook", "-i", str(inventory), path, *args], stdout=out,
                                  stderr=subprocess.STDOUT, cwd=ROOT, timeout=timeout, check=False,
                                  env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
                                       # a time stamp per task in the log
                                       "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}).returncode
        except subprocess.TimeoutExpired:
            code = -1
            out.write(f"\nFAILED! => msg: 'bench_failover.py: the playbook did not end within {timeout} s'\n")
    seconds = time.monotonic() - started
    return Ran(code, log.read_text()), seconds


def failure_reason(result):
    """The message of a playbook run's last failed task (the YAML callback's
    ``msg:`` after the last "FAILED! =>"), shortened."""
    text = collapsed(result)
    tail = text[text.rfind("FAILED! =>"):] if "FAILED! =>" in text else text
    found = (re.search(r"msg: '((?:[^']|'')*)'", tail) or re.search(r'msg: "((?:[^"\\]|\\.)*)"', tail)
             or re.search(r"msg: (.*?)(?= [a-z_]+: |$)", tail))
    reason = found.group(1).replace("''", "'") if found else tail[-400:]
    return reason[:600]


def phases_of(result):
    """{phase: seconds} the role printed ("seconds per phase: {...}"), or {}."""
    found = PHASES.findall(collapsed(result))
    if not found:
        return {}
    try:
        return json.loads(found[-1])
    except ValueError:
        return {}


def slowest_tasks(result, count=3):
    """[(task, seconds)] of the slowest tasks of a run (profile_tasks)."""
    recap = result.stdout[result.stdout.rfind("PLAY RECAP"):]
    times = [(name.strip(), float(seconds)) for name, seconds in TASK_TIME.findall(recap)]
    return sorted(times, key=lambda item: -item[1])[:count]


def acked_times(load):
    return sorted(t for t, ok in list(load.attempts) if ok)


def longest_gap(load, start, end, from_start=False, where=False):
    """Longest time without an acknowledged write in [start, end]; the first
    acknowledged write after ``end`` closes the last gap. With
    ``from_start`` the first gap begins at ``start`` itself (the fault),
    else at the last acknowledged write before it. With ``where``:
    (gap, the moment it began)."""
    acked = acked_times(load)
    before = [t for t in acked if t < start][-1:]
    inside = [t for t in acked if start <= t <= end]
    after = [t for t in acked if t > end][:1]
    points = ([start] if from_start else before) + inside + after
    gaps = [(b - a, a) for a, b in zip(points, points[1:])] if after else []
    gap, began = max(gaps, default=(float("nan"), None))
    return (gap, began) if where else gap


def single_writable():
    found = writable_nodes()
    return found[0] if len(found) == 1 else None


def inventory_with_primary(log_dir, primary):
    """A copy of the bench inventory (same group_vars) whose db_primary is
    ``primary`` and db_replicas the others: playbooks/rebuild_replica.yml
    seeds from db_primary and rebuilds only a host of db_replicas."""
    where = pathlib.Path(log_dir, f"inventory-{primary}")
    where.mkdir(parents=True, exist_ok=True)
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())
    db = hosts["all"]["children"]["dbservers"]["children"]
    db["db_primary"] = {"hosts": {primary: None}}
    db["db_replicas"] = {"hosts": {n: None for n in DB_NODES if n != primary}}
    (where / "hosts.yml").write_text("---\n# made by scripts/bench_failover.py for a rebuild\n"
                                     + yaml.safe_dump(hosts, default_flow_style=False))
    link = where / "group_vars"
    if not link.exists():
        link.symlink_to((INVENTORY / "group_vars").resolve())
    return where


def rejoin_or_rebuild(node, primary, log_dir, label, notes):
    """Make ``node`` a replica of ``primary``: playbooks/rejoin.yml, and
    when it refuses a node that has diverged, playbooks/rebuild_replica.yml.
    A node still writable next to the primary (the rejoin's check refuses
    it) is noted and made read-only by hand first. Returns what was done
    ("rejoin", "rebuild") and the seconds it took."""
    spent = 0.0
    for attempt in (1, 2):
        result, seconds = playbook_run(log_dir, f"{label}-rejoin{'' if attempt == 1 else '-again'}",
                                       "playbooks/rejoin.yml", "-e", f"mysql_cluster_rejoin_node={node}")
        spent += seconds
        if result.returncode == 0:
            return "rejoin", spent
        text = collapsed(result)
        if "writable now:" in text and attempt == 1:
            notes.append(f"rejoin refused: {node} still writable next to {primary} "
                         f"({failure_reason(result)}); made read-only by hand (SET GLOBAL read_only=1)")
            node_sql(node, "SET GLOBAL read_only = 1")
            continue
        if "rebuild_replica" in text or "Refusing to make" in text:
            extra = re.search(r"extra_gtids['\"]?: ['\"]?([0-9,-]+)", text)
            notes.append(f"rejoin refused, {node} diverged ({failure_reason(result)[:300]})"
                         + (f"; extra GTIDs {extra.group(1)}" if extra else "") + "; rebuilt")
            inventory = inventory_with_primary(log_dir, primary)
            # The rebuild drops the node's databases with its binary log on:
            # on an old primary whose semi-sync source side is still on
            # (lossless, no time-out), that DROP waits for an acknowledgement
            # for ever. Switched off here, by hand, and said so.
            if node_sql(node, "SELECT @@global.rpl_semi_sync_master_enabled") == [["1"]]:
                node_sql(node, "SET GLOBAL rpl_semi_sync_master_enabled = OFF")
                notes.append(f"WORKAROUND: {node} still had its semi-sync source side on (the rebuild's DROP "
                             f"DATABASE would wait for an acknowledgement for ever); switched off by hand "
                             f"before the rebuild")
            result, seconds = playbook_run(log_dir, f"{label}-rebuild", "playbooks/rebuild_replica.yml",
                                           "-e", f"rebuild_replica_host={node}", inventory=inventory)
            spent += seconds
            if result.returncode != 0:
                raise RepFailed(f"rebuild of {node} failed: {failure_reason(result)} (see {label}-rebuild.log)")
            return "rebuild", spent
        raise RepFailed(f"rejoin of {node} failed: {failure_reason(result)} (see {label}-rejoin*.log)")
    raise RepFailed(f"rejoin of {node} refused twice")


def caught_up(node, primary, seconds=120):
    position = node_sql(primary, "SELECT @@gtid_binlog_pos")[0][0]
    if not wait_for_gtid(node, position, seconds):
        raise RepFailed(f"{node} did not reach {primary}'s position {position} within {seconds} s")


def health_primary(name):
    """The status code of a node's health endpoint /primary, None when it
    does not answer."""
    with requests.Session() as http:
        http.trust_env = False
        try:
            return http.get(f"http://{node_address(name)}:{HEALTH_PORT}/primary", timeout=(0.5, 1)).status_code
        except requests.RequestException:
            return None


def read_only(name):
    """@@global.read_only of a node as root over its socket; None when the
    query failed (a guard that fences a node kills every client session,
    this one included)."""
    try:
        rows = node_sql(name, "SELECT @@global.read_only")
    except subprocess.CalledProcessError:
        return None
    return rows[0][0] == "1" if rows else None


def watch_woken(name, woke, seconds=WAKE_WATCH):
    """Seconds after ``woke`` until the node was read-only, and until its
    /primary stopped answering 200 (None: not within ``seconds``)."""
    fenced_sql = fenced_http = None
    deadline = woke + seconds
    while time.monotonic() < deadline and (fenced_sql is None or fenced_http is None):
        if fenced_sql is None and read_only(name):
            fenced_sql = time.monotonic() - woke
        if fenced_http is None and health_primary(name) != 200:
            fenced_http = time.monotonic() - woke
        time.sleep(0.1)
    return fenced_sql, fenced_http


def every_node_running():
    for name in DB_NODES:
        state = docker("inspect", "-f", "{{.State.Status}}", container(name), check=False).stdout.strip()
        if state == "paused":
            docker("unpause", container(name), check=False)
        elif state != "running":
            start_node(name)


def repair(home, log_dir, label, notes):
    """After a failed repetition: every node running, one writable primary,
    the others replicas of it (rejoined or rebuilt), the home primary
    switched back. A RepFailed when that cannot be done."""
    every_node_running()
    time.sleep(2)
    found = writable_nodes()
    if len(found) != 1:
        raise RepFailed(f"repair: {len(found)} writable nodes ({found}); cannot tell the primary")
    primary = found[0]
    for node in DB_NODES:
        if node != primary:
            done, dummy = rejoin_or_rebuild(node, primary, log_dir, f"{label}-repair-{node}", notes)
            caught_up(node, primary)
    if primary != home:
        result, dummy = playbook_run(log_dir, f"{label}-repair-switchover", "playbooks/switchover.yml",
                                     "-e", f"mysql_cluster_switchover_target={home}")
        if result.returncode != 0:
            raise RepFailed(f"repair: switchover back to {home} failed: {failure_reason(result)}")
    notes.append(f"lab repaired (primary {home})")


def end_router_probes():
    """Stop the sampler's router probes inside the containers: stopping the
    sampler kills the ``docker exec`` clients only, and each probe would
    otherwise run on until its own count ends (the sampler's whole time
    bound). Found by their arguments in this lab's router containers only,
    ended by process id."""
    for router in ROUTERS:
        listing = docker("exec", container(router), "ps", "-eo", "pid,args", check=False).stdout
        pids = [line.split()[0] for line in listing.splitlines()[1:]
                if "python3 -c" in line and f"{ROUTER_SOCKET} " in line and "show stat" in line]
        if pids:
            docker("exec", container(router), "kill", *pids, check=False)


def sampler_views(sampler, fault):
    """(max nodes counted as primary at one moment by any view, {view: max},
    [(seconds after the fault, {view: nodes})] of the rounds in which some
    view saw more than one)."""
    per_view = {"sql": 0, "http": 0, "routers": 0}
    split = []
    for when, dummy in list(sampler.rounds):
        seen = sampler.primaries(when)
        for view, names in seen.items():
            per_view[view] = max(per_view.get(view, 0), len(names))
        if any(len(names) > 1 for names in seen.values()):
            split.append((round(when - fault, 2), seen))
    return max(per_view.values(), default=0), per_view, split


def one_repetition(kind, number, home, log_dir):
    """One repetition of fault ``kind``; returns its figures (``error`` set
    when it failed)."""
    label = f"{kind}{number}"
    notes = []
    f = {"kind": kind, "rep": number, "primary": home, "notes": notes, "error": None}
    primary = single_writable()
    if primary != home:
        raise RepFailed(f"the repetition should start with {home} as the only writable node; "
                        f"writable: {writable_nodes()}")
    fault = started = finished = None
    marks = {}  # monotonic moments that split the repetition's failed writes
    with SplitBrainSampler(nodes=tuple(DB_NODES), max_seconds=REP_MAX_SECONDS) as sampler, \
            WriteLoad(pause=0.01, max_writes=LOAD_MAX_WRITES, max_seconds=REP_MAX_SECONDS) as load:
        try:
            wait_for(lambda: len(load.acknowledged) >= 30, 60, what="the write load")
            time.sleep(1)  # the sampler has readings of every source
            # The fault is in place when docker returns (killed, or frozen).
            docker("kill" if kind == "killed" else "pause", container(primary))
            fault = time.monotonic()
            marks["fault"] = fault
            started = time.monotonic()
            result, f["playbook_run"] = playbook_run(log_dir, f"{label}-failover", "playbooks/failover.yml")
            finished = time.monotonic()
            f["phases"] = phases_of(result)
            f["slowest_tasks"] = slowest_tasks(result)
            if result.returncode != 0:
                raise RepFailed(f"failover failed: {failure_reason(result)} (see {label}-failover.log)")
            back = load.wait_for_success_after(started, timeout=120)
            if back is None:
                raise RepFailed("no write acknowledged within 120 s of the failover playbook's start")
            f["to_write"] = back - started
            load.wait_for_success_after(finished, timeout=60)
            # when the client got the first acknowledgement of a write sent
            # after the fault: what the outage cost, to the reply
            acked_at = load.first_answer_after(fault)
            f["to_ack"] = acked_at - started if acked_at is not None else None
            f["gap"] = longest_gap(load, fault, max(finished, back), from_start=True)
            marks["failover_end"] = max(finished, back)
            new = [n for n in writable_nodes() if n != primary]
            if len(new) != 1:
                raise RepFailed(f"after the failover, writable nodes other than {primary}: {new}")
            new = new[0]
            f["new_primary"] = new
            acked = [v for dummy, v in list(load.acknowledged)]
            f["lost_failover"] = len(missing_values(new, acked))

            if kind == "hung":
                docker("unpause", container(primary))
                woke = time.monotonic()
                f["woken_read_only_after"], f["woken_http_fenced_after"] = watch_woken(primary, woke)
                if f["woken_read_only_after"] is None:
                    notes.append(f"woken {primary} still writable (read_only=0) {WAKE_WATCH:.0f} s after unpause")
                if f["woken_http_fenced_after"] is None:
                    notes.append(f"woken {primary} still answered 200 on /primary {WAKE_WATCH:.0f} s after unpause")
            else:
                start_node(primary)
                f["restarted_read_only"] = read_only(primary)
                if not f["restarted_read_only"]:
                    notes.append(f"restarted {primary} came back writable (read_only=0)")

            f["rejoin"], f["rejoin_seconds"] = rejoin_or_rebuild(primary, new, log_dir, label, notes)
            caught_up(primary, new)

            load.wait_for_success_after(time.monotonic(), timeout=60)
            sw_started = time.monotonic()
            marks["switchover"] = sw_started
            result, f["switchover_run"] = playbook_run(log_dir, f"{label}-switchover", "playbooks/switchover.yml",
                                                       "-e", f"mysql_cluster_switchover_target={primary}")
            sw_finished = time.monotonic()
            if result.returncode != 0:
                raise RepFailed(f"switchover back to {primary} failed: {failure_reason(result)} "
                                f"(see {label}-switchover.log)")
            load.wait_for_success_after(sw_finished, timeout=60)
            time.sleep(1)
            f["switchover_gap"], began = longest_gap(load, sw_started, sw_finished, where=True)
            f["switchover_gap_at"] = began - sw_started if began is not None else None
            f["rest_gap"], began = longest_gap(load, finished, sw_finished, where=True)
            f["rest_gap_at"] = began - finished if began is not None else None
        except (RepFailed, AssertionError) as exc:
            f["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 (a benchmark goes on and says what broke)
            f["error"] = f"{type(exc).__name__}: {exc}"
    # the load and the sampler have stopped
    end_router_probes()
    f["failed"] = load.failed
    # failed writes by part: before the fault, the failover (to the first
    # write after it), wake-up/rejoin/rebuild, the switchover and after
    edges = [float("-inf")] + [marks[k] for k in ("fault", "failover_end", "switchover") if k in marks] + [float("inf")]
    f["failed_by_part"] = [load.failed_between(a, b) for a, b in zip(edges, edges[1:])]
    f["acknowledged"] = len(load.acknowledged)
    f["load_errors"] = [e for dummy, e in load.errors[:3]]
    if f["error"] is None:
        final = writable_nodes()
        f["final_primary"] = final
        if len(final) == 1:
            acked = [v for dummy, v in load.acknowledged]
            counts = stored_counts(final[0], load.sent)
            f["lost_end"] = sum(1 for v in acked if counts.get(v, 0) == 0)
            f["twice"] = sum(1 for n in counts.values() if n > 1)
        else:
            f["error"] = f"at the end, writable nodes: {final}"
    f["sampler_rounds"] = len(sampler.rounds)
    origin = fault if fault is not None else (sampler.rounds[0][0] if sampler.rounds else time.monotonic())
    f["sampler_max"], f["sampler_per_view"], split = sampler_views(sampler, origin)
    f["split_rounds"] = len(split)
    f["split_first"] = split[:5]
    if sampler.expired:
        notes.append("the sampler reached its time bound before the repetition ended")
    if len(load.attempts) >= LOAD_MAX_WRITES:
        notes.append("the write load reached its bound before the repetition ended")
    return f


def fmt(value, digits=2, unit=" s"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def print_rep(f):
    lost = f"lost {f.get('lost_failover', 'n/a')} after the failover / {f.get('lost_end', 'n/a')} at the end"
    line = (f"{f['kind']:6s} rep {f['rep']:2d}: gap {fmt(f.get('gap'))}, to write {fmt(f.get('to_write'))} "
            f"(acknowledged {fmt(f.get('to_ack'))}), "
            f"run {fmt(f.get('playbook_run'))}; failed {f['failed']} of {f['acknowledged'] + f['failed']} "
            f"({'/'.join(str(n) for n in f['failed_by_part'])} before the fault/failover/rejoin/switchover), {lost}, "
            f"twice {f.get('twice', 'n/a')}; primaries at once {f['sampler_max']} "
            f"(sql {f['sampler_per_view']['sql']}, http {f['sampler_per_view']['http']}, "
            f"routers {f['sampler_per_view']['routers']}; {f['split_rounds']} split rounds of {f['sampler_rounds']}); "
            f"{f.get('rejoin', 'no rejoin')} {fmt(f.get('rejoin_seconds'))}, "
            f"switchover gap {fmt(f.get('switchover_gap'))} (from {fmt(f.get('switchover_gap_at'))} after its start), "
            f"longest gap after the failover {fmt(f.get('rest_gap'))} (from {fmt(f.get('rest_gap_at'))} after it ended)")
    if f["kind"] == "hung" and "woken_read_only_after" in f:
        line += (f"; woken node read-only after {fmt(f['woken_read_only_after'])}, "
                 f"/primary not 200 after {fmt(f['woken_http_fenced_after'])}")
    print(line, flush=True)
    if f.get("phases"):
        print("    failover phases (s): " + ", ".join(f"{k} {v}" for k, v in f["phases"].items()), flush=True)
    if f.get("slowest_tasks"):
        print("    slowest failover tasks: " + "; ".join(f"{name} {seconds:.2f} s" for name, seconds in f["slowest_tasks"]),
              flush=True)
    for note in f["notes"]:
        print(f"    note: {note}", flush=True)
    if f["error"]:
        print(f"!!! {f['kind']} rep {f['rep']} FAILED: {f['error']}", flush=True)
    lost_any = max(f.get("lost_failover") or 0, f.get("lost_end") or 0)
    if lost_any:
        print(f"!!! {f['kind']} rep {f['rep']} LOST {lost_any} acknowledged writes", flush=True)
    if f.get("twice"):
        print(f"!!! {f['kind']} rep {f['rep']} stored {f['twice']} written values more than once", flush=True)
    if f["sampler_max"] > 1:
        print(f"!!! {f['kind']} rep {f['rep']}: the sampler saw {f['sampler_max']} primaries at once "
              f"({f['split_rounds']} rounds); the first (seconds after the fault, primaries by view):", flush=True)
        for when, seen in f["split_first"]:
            print(f"      {when:8.2f}  {seen}", flush=True)


def p90(values):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def summary(rows):
    print()
    print("per fault kind (median / p90 / worst over the repetitions that got there; p90 by nearest rank):")
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        failed_reps = [r for r in mine if r["error"]]
        print(f"  {kind}: {len(mine)} repetitions, {len(failed_reps)} failed"
              + (f" ({', '.join(str(r['rep']) for r in failed_reps)})" if failed_reps else ""))
        for key, label in (("gap", "longest write gap from the fault (s)"),
                           ("to_write", "playbook start to first write (s)"),
                           ("to_ack", "playbook start to first acknowledgement (s)"),
                           ("playbook_run", "failover playbook run (s)"),
                           ("switchover_gap", "switchover write gap (s)"),
                           ("rest_gap", "longest gap after the failover (s)"),
                           ("rejoin_seconds", "rejoin or rebuild (s)")):
            values = [r[key] for r in mine if r.get(key) is not None and not math.isnan(r[key])]
            if values:
                print(f"    {label:40s} {statistics.median(values):7.2f} / {p90(values):7.2f} / {max(values):7.2f}"
                      f"   (n={len(values)})")
        phases = {}
        for r in mine:
            for name, seconds in (r.get("phases") or {}).items():
                phases.setdefault(name, []).append(seconds)
        if phases:
            print("    failover phases, median / worst (s): "
                  + ", ".join(f"{k} {statistics.median(v):.2f}/{max(v):.2f}" for k, v in phases.items()))
        print(f"    failed writes, total                     {sum(r['failed'] for r in mine)}"
              f" (of {sum(r['failed'] + r['acknowledged'] for r in mine)} sent); from the fault to the first"
              f" write after the failover {sum(r['failed_by_part'][1] for r in mine if len(r['failed_by_part']) > 1)}")
        print(f"    lost after the failover / at the end     {sum(r.get('lost_failover') or 0 for r in mine)}"
              f" / {sum(r.get('lost_end') or 0 for r in mine)}")
        print(f"    stored more than once, total             {sum(r.get('twice') or 0 for r in mine)}")
        print(f"    most primaries at once (sampler)         {max(r['sampler_max'] for r in mine)}"
              f" (sql {max(r['sampler_per_view']['sql'] for r in mine)},"
              f" http {max(r['sampler_per_view']['http'] for r in mine)},"
              f" routers {max(r['sampler_per_view']['routers'] for r in mine)});"
              f" split rounds {sum(r['split_rounds'] for r in mine)} of {sum(r['sampler_rounds'] for r in mine)}")
        rebuilt = sum(1 for r in mine if r.get("rejoin") == "rebuild")
        print(f"    old primary rebuilt (diverged) in        {rebuilt} of {len(mine)}")
        if kind == "hung":
            woken = [r["woken_read_only_after"] for r in mine if r.get("woken_read_only_after") is not None]
            stayed = sum(1 for r in mine if "woken_read_only_after" in r and r["woken_read_only_after"] is None)
            if woken:
                print(f"    woken node read-only after, median/worst {statistics.median(woken):.2f} / {max(woken):.2f} s")
            if stayed:
                print(f"    woken node still writable {WAKE_WATCH:.0f} s after unpause in {stayed} repetitions")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="repetitions per fault kind")
    parser.add_argument("--kinds", default=",".join(KINDS), help="fault kinds, comma separated (killed,hung)")
    parser.add_argument("--home", default="server1", help="the primary every repetition starts from")
    parser.add_argument("--log-dir", default=".")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown fault kinds: {sorted(unknown)}")
    pathlib.Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    print(f"bench-failover: {args.reps} repetitions of {', '.join(kinds)} (interleaved), "
          f"{os.cpu_count()} cores, lab {os.environ['DISTWEB_LAB_NAME']}", flush=True)
    rows = []
    stop = None
    for number in range(1, args.reps + 1):
        for kind in kinds:
            try:
                f = one_repetition(kind, number, args.home, args.log_dir)
            except RepFailed as exc:  # the repetition could not start
                f = None
                failure = str(exc)
                print(f"!!! {kind} rep {number} could not start: {failure}", flush=True)
            if f is not None:
                rows.append(f)
                print_rep(f)
                failure = f["error"]
            if failure:
                notes = []
                try:
                    repair(args.home, args.log_dir, f"{kind}{number}", notes)
                    print(f"    repaired: {'; '.join(notes)}", flush=True)
                except (RepFailed, AssertionError) as exc:
                    stop = f"{kind} rep {number}: {failure}; repair failed: {exc}"
                    break
            pathlib.Path(args.log_dir, "results.json").write_text(json.dumps(rows, indent=1, default=str))
        if stop:
            print(f"!!! stopped: {stop}", flush=True)
            break
    summary(rows)


if __name__ == "__main__":
    main()
