"""No failed request when a web server dies or is redeployed, through the
virtual IP from outside the cluster: GETs are retried on another server,
POSTs never sent twice, and a POST held by a hung web server is closed when
the checks mark it down; playbooks/rolling_deploy.yml takes one server out
at a time, and in check mode changes nothing; server states survive a
reload; the runtime API is local only."""

import collections
import json
import re
import subprocess
import threading
import time

import pytest
from labclient import (
    DB_NODES,
    LOAD_BALANCERS,
    VIP_SITE,
    ReadLoad,
    WriteLoad,
    assert_stored_once,
    container,
    docker,
    every_server_up,
    haproxy_api,
    haproxy_servers,
    node_sql,
    playbook,
    slave_status,
    start_node,
    stat_rows,
    wait_for,
    wait_for_gtid,
)

VICTIM = "server3"  # a replica: killing it costs the cluster no primary
PRIMARY = "server1"
SERVERS = list(DB_NODES)
# WriteLoad sends its POSTs one after another from one thread. HAProxy sends
# a POST again only when the connection failed before the request left
# (retries, no L7 retry for POST). This lab sets
# haproxy_shutdown_sessions_on_down: writes (inventories/lab/hosts.yml), so
# POSTs go through web_writes, which closes what is still open on a server
# once the checks mark it down: a write held by a hung server fails then,
# not at the client's timeout. At most two POSTs can fail: the one in flight
# on the killed server, and the next one sent there, still connecting when
# the checks mark it down (each POST sent there waits up to the 1 s connect
# timeout before it goes to another server). With the default, none, it
# would be one.
MAX_FAILED_POSTS = 2


def info_field(answer, field):
    """A field of ``show info`` in an answer, or None."""
    found = re.search(rf"^{field}: (\S+)$", answer, re.M)
    return found.group(1) if found else None


def unit_state(host, unit):
    """What changes when a unit is restarted or reloaded: its main PID, when
    it last became active, and its child processes (nginx's workers, the
    app's gunicorn workers)."""
    show = docker("exec", container(host), "systemctl", "show", unit, "-p", "MainPID", "-p", "ActiveEnterTimestamp",
                  "-p", "ActiveState").stdout
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    assert props.get("ActiveState") == "active" and props.get("MainPID", "0") != "0", f"{unit} on {host}: {props}"
    children = docker("exec", container(host), "cat", f"/proc/{props['MainPID']}/task/{props['MainPID']}/children").stdout
    return props["MainPID"], props["ActiveEnterTimestamp"], sorted(children.split())


def units(servers=tuple(SERVERS)):
    return {(host, unit): unit_state(host, unit) for host in servers for unit in ("foobar", "nginx")}


class HAProxyStates:
    """Samples the web backend's server states on every load balancer in a
    background thread, every ``interval`` seconds (at most ``max_seconds``):
    ``samples`` holds (monotonic time, lb, {server: status})."""

    def __init__(self, interval=0.2, max_seconds=1200):
        self.interval, self.max_seconds = interval, max_seconds
        self.samples, self.errors = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        for lb in LOAD_BALANCERS:
            started = time.monotonic()
            try:
                states = {name: row["status"] for name, row in haproxy_servers(lb).items()}
            except (IndexError, OSError, ValueError, subprocess.SubprocessError) as exc:  # a read during a reload
                self.errors.append((started, lb, repr(exc)))
                continue
            self.samples.append((started, lb, states))

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.sample()
            self._stop.wait(self.interval)

    def of(self, lb):
        return [states for dummy, name, states in self.samples if name == lb]

    def __enter__(self):
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)
        self.sample()


@pytest.fixture(scope="module")
def backend_killed():
    """Kill VICTIM's container under a GET and a POST load through the VIP,
    keep the load on without it, then bring it back (before the next test)."""
    wait_for(every_server_up, 60, what="every server UP on both load balancers")
    with ReadLoad(site=VIP_SITE, workers=4, max_seconds=300) as reads, WriteLoad(site=VIP_SITE, max_seconds=300) as writes:
        wait_for(lambda: len(writes.acknowledged) >= 20 and len(reads.attempts) >= 100, 60, what="the load to flow")
        docker("kill", container(VICTIM))
        wait_for(lambda: all(haproxy_servers(lb)[VICTIM]["status"] == "DOWN" for lb in LOAD_BALANCERS), 30,
                 what=f"{VICTIM} DOWN on both load balancers")
        killed_reads, killed_writes = len(reads.attempts), len(writes.attempts)
        wait_for(lambda: len(reads.attempts) >= killed_reads + 200 and len(writes.attempts) >= killed_writes + 20, 60,
                 what="the load to go on without the dead server")
    print(f"\nbackend kill: GET {reads.failed} failed of {len(reads.attempts)}, "
          f"POST {writes.failed} failed of {len(writes.attempts)}; errors: {(reads.errors + writes.errors)[:5]}")
    start_node(VICTIM)
    return reads, writes


def test_no_get_fails_when_a_web_server_dies(backend_killed):
    reads, dummy = backend_killed
    assert len(reads.attempts) >= 300
    assert reads.failed == 0, f"GETs failed while {VICTIM} died: {reads.errors[:5]}"
    assert set(reads.served_by) == {"server1", "server2", "server3"}, reads.served_by


def test_posts_are_counted_and_never_replayed(backend_killed):
    dummy, writes = backend_killed
    assert len(writes.sent) == len(writes.attempts) >= 40
    # At most the POST in flight on the dead server failed (see MAX_FAILED_POSTS).
    assert writes.failed <= MAX_FAILED_POSTS, f"{writes.failed} POSTs failed: {writes.errors}"
    assert len(writes.acknowledged) == len(writes.attempts) - writes.failed
    # Sent values at most once (none replayed), acknowledged ones exactly once.
    assert_stored_once(PRIMARY, writes)


def test_the_killed_server_comes_back_at_full_weight(backend_killed):
    assert backend_killed
    wait_for(every_server_up, 180, what=f"{VICTIM} back at full weight")
    assert all(haproxy_servers(lb)[VICTIM]["weight"] == haproxy_servers(lb)["server1"]["weight"] for lb in LOAD_BALANCERS)


def test_the_killed_replica_replicates_again(backend_killed):
    # VICTIM is also a database replica, killed while it applied the writes:
    # after the restart it must resume on its own and catch up with the
    # primary, with nothing applied twice and nothing skipped.
    dummy, writes = backend_killed
    primary_pos = node_sql(PRIMARY, "SELECT @@gtid_binlog_pos")[0][0]
    caught_up = wait_for_gtid(VICTIM, primary_pos, timeout=60)
    status = slave_status(VICTIM)
    assert caught_up, (f"{VICTIM} did not reach the primary's {primary_pos}: "
                       f"SQL {status.get('Slave_SQL_Running')} {status.get('Last_SQL_Error')}, "
                       f"IO {status.get('Slave_IO_Running')} {status.get('Last_IO_Error')}")
    assert status.get("Slave_SQL_Running") == "Yes" and status.get("Slave_IO_Running") == "Yes", status
    assert_stored_once(VICTIM, writes)
    count = "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM foobar.records"
    assert node_sql(VICTIM, count) == node_sql(PRIMARY, count)


@pytest.fixture(scope="module")
def backend_hung():
    """Freeze VICTIM's container (docker pause: its nginx and app take
    connections and answer nothing) under a POST load through the VIP, until
    both load balancers mark it DOWN and 20 more writes are acknowledged;
    then thaw it and wait until it is back in rotation."""
    wait_for(every_server_up, 180, what="every server UP at full weight")
    with WriteLoad(site=VIP_SITE, max_seconds=300) as writes:
        wait_for(lambda: len(writes.acknowledged) >= 20, 60, what="the write load to flow")
        docker("pause", container(VICTIM))
        try:
            wait_for(lambda: all(haproxy_servers(lb)[VICTIM]["status"] == "DOWN" for lb in LOAD_BALANCERS), 30,
                     what=f"{VICTIM} DOWN on both load balancers")
            marked = len(writes.acknowledged)
            wait_for(lambda: len(writes.acknowledged) >= marked + 20, 60, what="writes without the hung server")
        finally:
            docker("unpause", container(VICTIM))
    print(f"\nbackend hang: POST {writes.failed} failed of {len(writes.attempts)}; errors: {writes.errors[:5]}")
    wait_for(every_server_up, 180, what=f"{VICTIM} back at full weight")
    return writes


def test_a_write_held_by_a_hung_web_server_fails_when_it_is_marked_down(backend_hung):
    # The load balancer sent a POST to the frozen server before its checks
    # found it hung. HAProxy must not send a POST again, so the write fails
    # either way; web_writes (haproxy_shutdown_sessions_on_down: writes in
    # this lab) closes it when the server is marked DOWN (the client's connection
    # closed without an answer, or HAProxy's own 502), instead of leaving
    # it to the client's 5 s timeout (a ReadTimeout here; HAProxy's own
    # server timeout is 30 s): the client can retry seconds earlier.
    writes = backend_hung
    assert writes.failed == 1, f"{writes.failed} POSTs failed: {writes.errors}"
    closed = [error for dummy, error in writes.errors
              if error == "HTTP 502 from the load balancer" or "RemoteDisconnected" in error]
    assert closed == [error for dummy, error in writes.errors], writes.errors
    assert len(writes.acknowledged) == len(writes.attempts) - 1
    # the closed write may still be stored once the server thaws, never twice
    assert_stored_once(PRIMARY, writes)


def result_of(rest):
    """The JSON result after ' => ' at the end of a printed result line
    (after the item, which may hold braces itself), or {}."""
    for found in re.finditer(r"=> \{", rest):
        try:
            return json.loads(rest[found.start() + 3:])
        except ValueError:
            continue
    return {}


def plan(output):
    """The results a playbook run printed (-v, JSON results), in order:
    [(task, status, host, delegated to, result)]."""
    events, task = [], None
    for line in output.splitlines():
        header = re.match(r"^(TASK|RUNNING HANDLER) \[(.+)\] \*+$", line)
        if header:
            task = header.group(2) if header.group(1) == "TASK" else f"handler {header.group(2)}"
            continue
        found = re.match(r"^(ok|changed|skipping|failed|fatal): \[([\w.-]+)(?: -> ([\w.-]+)[^\]]*)?\](.*)$", line)
        if found:
            status, host, delegate, rest = found.groups()
            events.append((task, status, host, delegate, result_of(rest)))
    return events


def test_rolling_deploy_fails_no_request():
    wait_for(every_server_up, 180, what="every server UP at full weight")
    before = units()
    with HAProxyStates() as states:
        with ReadLoad(site=VIP_SITE, workers=4, max_seconds=900) as reads, WriteLoad(site=VIP_SITE, max_seconds=900) as writes:
            wait_for(lambda: len(writes.acknowledged) >= 20, 60, what="the load to flow")
            result = playbook("playbooks/rolling_deploy.yml", "-v",
                              env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    print(f"\nrolling deploy: GET {reads.failed} failed of {len(reads.attempts)}, "
          f"POST {writes.failed} failed of {len(writes.attempts)}; {len(states.samples)} HAProxy samples")
    assert len(reads.attempts) >= 300 and len(writes.attempts) >= 50
    assert reads.failed == 0, f"GETs failed during the rolling deploy: {reads.errors[:5]}"
    assert writes.failed == 0, f"POSTs failed during the rolling deploy: {writes.errors[:5]}"
    assert_stored_once(PRIMARY, writes)
    assert set(reads.served_by) == set(SERVERS), reads.served_by
    # Each server was drained on both load balancers, and never two at once.
    for lb in LOAD_BALANCERS:
        seen = states.of(lb)
        assert len(seen) >= 20, f"too few samples of {lb}: {len(seen)}; errors {states.errors[:3]}"
        out = [sorted(name for name, status in sample.items() if not status.startswith("UP")) for sample in seen]
        assert all(len(names) <= 1 for names in out), f"{lb} had several servers out at once: {[n for n in out if len(n) > 1][:3]}"
        drained = {name for sample in seen for name, status in sample.items() if status.startswith("DRAIN")}
        assert drained == set(SERVERS), f"{lb} showed drained only {sorted(drained)}"
    # The drains ran one server after the other, each drained and put back on
    # both load balancers before the next one.
    order = [(task, host, delegate) for task, status, host, delegate, dummy in plan(result.stdout)
             if status == "changed" and task.startswith(("Drain the server", "Put the server back"))]
    expected = [(task, server, lb) for server in SERVERS
                for task in ("Drain the server on every load balancer and wait until its sessions end",
                             "Put the server back on every load balancer and wait until each sees it UP")
                for lb in LOAD_BALANCERS]
    assert order == expected, order
    # And each app and nginx was restarted (a new main process, new workers).
    after = units()
    for key, (pid, since, children) in after.items():
        if key[1] == "foobar":
            assert pid != before[key][0] and since != before[key][1], f"{key} was not restarted: {before[key]} {after[key]}"
        else:
            assert not set(children) & set(before[key][2]), f"{key} was not reloaded (same workers)"
    assert every_server_up() or wait_for(every_server_up, 60, what="every server back")


def test_rolling_deploy_check_mode_drains_nothing():
    wait_for(every_server_up, 180, what="every server UP at full weight")
    before = units()
    with HAProxyStates() as states:
        result = playbook("playbooks/rolling_deploy.yml", "--check", "-v",
                          env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    events = plan(result.stdout)
    # The plan, server after server: every load balancer can spare it, it
    # would be drained on each, the app restarted and nginx reloaded, its
    # health checked as it is, and it is already ready on each. Nothing else
    # would change (the roles are converged).
    steps = [(task, status, host, delegate) for task, status, host, delegate, dummy in events
             if not task.startswith(("distweb.infra.", "Check the variables", "Gather"))]
    expected = []
    for server in SERVERS:
        expected += [("Check that every load balancer can spare the server", "ok", server, lb) for lb in LOAD_BALANCERS]
        expected += [("Drain the server on every load balancer and wait until its sessions end", "changed", server, lb)
                     for lb in LOAD_BALANCERS]
        expected += [("Restart the app for the new code", "changed", server, None),
                     ("Reload nginx", "changed", server, None),
                     ("Wait until the server answers /health through its own nginx", "ok", server, None)]
        expected += [("Put the server back on every load balancer and wait until each sees it UP", "ok", server, lb)
                     for lb in LOAD_BALANCERS]
    assert steps == expected, "\n".join(map(str, steps))
    for task, status, host, delegate, res in events:
        if task.startswith("Check that every") or task.startswith("Drain the server"):
            assert res.get("msg", "").startswith(f"Would set web/{host} from ready to drain "), (task, host, delegate, res)
            assert res.get("state") == "drain" and res.get("previous_state") == "ready", res
        if task.startswith("Put the server back"):
            assert res.get("msg", "").startswith(f"web/{host} is already ready "), (task, host, delegate, res)
        if task.startswith("distweb.infra."):
            assert status in ("ok", "skipping"), f"{task} on {host} would change: {res}"
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", result.stdout, re.M))
    assert {server: recap.get(server) for server in SERVERS} == dict.fromkeys(SERVERS, "3"), recap
    # Nothing was restarted or reloaded, and no load balancer ever showed a
    # server drained, in maintenance or down meanwhile ("UP 1/2", one health
    # check missed on a busy machine, is still UP and in the rotation).
    assert units() == before
    for lb in LOAD_BALANCERS:
        seen = states.of(lb)
        assert len(seen) >= 10, f"too few samples of {lb}: {len(seen)}; errors {states.errors[:3]}"
        assert all(sorted(sample) == SERVERS for sample in seen), seen[:3]
        changed = [sample for sample in seen if not all(status.startswith("UP") for status in sample.values())]
        assert changed == [], f"{lb} showed a server out of the rotation: {changed[:3]}"


def test_a_drained_server_stays_drained_across_a_reload():
    lb = "lb1"
    old_pid = info_field(haproxy_api(lb, "show info"), "Pid")
    assert old_pid, "no Pid in show info"

    def from_a_new_process():
        answer = haproxy_api(lb, "show info;show stat")
        return answer if info_field(answer, "Pid") not in (None, old_pid) else None

    assert haproxy_api(lb, "set server web/server2 state drain").strip() == ""
    try:
        assert haproxy_servers(lb)["server2"]["status"] == "DRAIN"
        docker("exec", container(lb), "systemctl", "reload", "haproxy")
        # A new HAProxy process answers the socket, and in that same answer
        # server2 is still drained (loaded from the server-state file).
        answer = wait_for(from_a_new_process, 30, interval=0.2, what="a new HAProxy process")
        print(f"\nHAProxy on {lb}: Pid {old_pid} -> {info_field(answer, 'Pid')}, uptime {info_field(answer, 'Uptime_sec')} s")
        assert stat_rows(answer, "web").get("server2", {}).get("status") == "DRAIN", answer[-2000:]
        assert "server1" in stat_rows(answer, "web")
    finally:
        haproxy_api(lb, "set server web/server2 state ready")
    wait_for(lambda: haproxy_servers(lb)["server2"]["status"] == "UP", 30, what="server2 ready again")


def test_the_runtime_api_is_a_local_socket_only():
    for lb in LOAD_BALANCERS:
        listening = docker("exec", container(lb), "ss", "-Hltnp").stdout
        ports = collections.Counter(line.split()[3] for line in listening.splitlines())
        public = sorted(addr for addr in ports if not addr.startswith(("127.", "[::1]")))
        # The site on every address; on the host's own address only, the
        # metrics for the monitoring hosts (HAProxy's 8405, the node
        # exporter's 9100; test_monitoring checks that nobody else gets in);
        # and sshd, Ansible's way in on real hosts (the firewall lets in the
        # control node only: molecule/default's test_access_over_ssh).
        own = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container(lb)).stdout.strip()
        assert public == sorted(["0.0.0.0:443", "0.0.0.0:80", f"{own}:8405", f"{own}:9100", "0.0.0.0:22", "[::]:22"]), \
            f"{lb} listens on {public}"
        # (sshd's own socket, or systemd's where ssh.socket activates it)
        ssh = [line for line in listening.splitlines() if line.split()[3].endswith(":22")]
        assert ssh and all('(("sshd",' in line or '(("systemd",' in line for line in ssh), ssh
        mode = docker("exec", container(lb), "stat", "-c", "%a %U %G", "/run/haproxy/admin.sock").stdout.split()
        assert mode == ["660", "root", "haproxy"], mode
