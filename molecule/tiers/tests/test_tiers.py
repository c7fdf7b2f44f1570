"""inventories/example's layout, each tier on its own hosts: every host runs
its own tier's services and nothing of the others', the site answers through
the load balancer from both web servers, a write crosses from a web server
to the database nodes on other hosts, the monitor scrapes every host, and
site.yml --limit works as the README says: with the fact cache the converge
filled it changes nothing, without one it stops before any change and says
why."""

import os
import time

import pytest
from conftest import DB_NODES, HOSTS, LOAD_BALANCERS, MONITORS, WEB_SERVERS
from labclient import SITE, container, docker, flat, node_sql, output, playbook, prometheus_query, recap, session, wait_for

# Units each tier runs, and packages of the other tiers it must not have.
UNITS = {
    "lb": ["haproxy", "distweb-firewall", "prometheus-node-exporter"],
    "web": ["nginx", "foobar", "distweb-dbrouter", "distweb-firewall", "prometheus-node-exporter"],
    "db": ["mariadb", "distweb-mysql-health", "distweb-firewall", "prometheus-node-exporter",
           "prometheus-mysqld-exporter"],
    "mon": ["prometheus", "prometheus-alertmanager", "distweb-firewall", "prometheus-node-exporter"],
}
FOREIGN_PACKAGES = {
    "lb": ["nginx", "mariadb-server", "prometheus"],
    "web": ["mariadb-server", "prometheus", "keepalived"],
    "db": ["nginx", "haproxy", "prometheus"],
    "mon": ["nginx", "haproxy", "mariadb-server"],
}
TIER = {**dict.fromkeys(LOAD_BALANCERS, "lb"), **dict.fromkeys(WEB_SERVERS, "web"),
        **dict.fromkeys(DB_NODES, "db"), **dict.fromkeys(MONITORS, "mon")}


def firewall_files():
    """{web server: sha256sum of its ruleset file}."""
    return {name: docker("exec", container(name), "sha256sum", "/etc/distweb/firewall.nft").stdout for name in WEB_SERVERS}


def installed(name, package):
    out = docker("exec", container(name), "dpkg-query", "-W", "-f", "${db:Status-Status}", package, check=False)
    return out.returncode == 0 and out.stdout.strip() == "installed"


@pytest.mark.parametrize("name", HOSTS)
def test_each_host_runs_its_own_tier_and_nothing_of_the_others(name):
    tier = TIER[name]
    states = {unit: docker("exec", container(name), "systemctl", "is-active", unit, check=False).stdout.strip()
              for unit in UNITS[tier]}
    assert states == dict.fromkeys(UNITS[tier], "active"), (name, states)
    present = [package for package in FOREIGN_PACKAGES[tier] if installed(name, package)]
    assert present == [], f"{name} ({tier}) has another tier's packages: {present}"


def test_the_site_answers_from_both_web_servers_and_writes_reach_both_database_nodes():
    """Through the load balancer's published port, the lab CA verifying it:
    both web servers answer, and the eight records written through them are
    on the primary and on the replica (other hosts), each once."""
    marker = f"tiers-{time.time_ns()}"
    served = set()
    with session() as http:
        for n in range(8):
            reply = http.post(f"{SITE}/api/records", json={"value": f"{marker}-{n}"},
                              headers={"Connection": "close"}, timeout=10)
            assert reply.status_code == 201, reply.text[:500]
            served.add(reply.json()["server"])
    assert served == set(WEB_SERVERS), served
    query = f"SELECT COUNT(*) FROM foobar.records WHERE value LIKE '{marker}-%'"
    for node in DB_NODES:
        wait_for(lambda node=node: node_sql(node, query) == [["8"]], 30, what=f"the 8 records on {node}")


def test_the_monitor_scrapes_every_host():
    def every_node_exporter_up():
        up = {labels["instance"].split(":")[0]: value
              for labels, value in prometheus_query('up{job="node"}')}
        return len(up) == len(HOSTS) and all(value == 1 for value in up.values())
    wait_for(every_node_exporter_up, 120, interval=2, what="every host's node exporter up in Prometheus")

    def every_mysqld_up():
        # mysql_up comes from a later scrape than node's up: Prometheus may not have it yet
        mysqld = prometheus_query('mysql_up')
        return len(mysqld) == len(DB_NODES) and all(value == 1 for _labels, value in mysqld)
    wait_for(every_mysqld_up, 120, interval=2, what="mysql_up = 1 for every database node in Prometheus")


def test_a_limited_run_with_the_fact_cache_changes_nothing():
    """The converge filled the fact cache (molecule.yml sets it, as the
    README advises); a run limited to the web servers reads the other
    hosts' addresses from it and finds nothing to change."""
    assert os.environ.get("ANSIBLE_CACHE_PLUGIN") == "ansible.builtin.jsonfile", "the scenario sets the fact cache"
    cached = os.listdir(os.environ["ANSIBLE_CACHE_PLUGIN_CONNECTION"])  # a file per host, its name ending in the host's
    assert all(any(entry == name or entry.endswith("_" + name) for entry in cached) for name in HOSTS), cached
    result = playbook("site.yml", "--limit", "webservers")
    assert result.returncode == 0, output(result)
    counts = recap(result.stdout)
    assert set(counts) == set(WEB_SERVERS), counts
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), output(result)


def test_a_limited_run_without_facts_of_the_other_hosts_stops_before_any_change():
    """Without a fact cache, --limit leaves the other hosts' facts
    ungathered: their addresses, from which the web servers' firewall rules
    and database routers are built, are unknown. The preflight stops the run
    at once, names those hosts and says what to do; nothing was changed."""
    before = firewall_files()
    result = playbook("site.yml", "--limit", "webservers", env={"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.memory"})
    assert result.returncode != 0, output(result)
    text = flat(result)
    assert "No facts are known for db1, db2, lb1, mon1: this run is limited" in text, output(result)
    assert "fact cache" in text and "nothing was changed" in text, output(result)
    assert "PLAY [Firewall per tier" not in result.stdout, "the run went past the preflight"
    counts = recap(result.stdout)
    assert set(counts) == set(WEB_SERVERS) and all(c["changed"] == 0 for c in counts.values()), counts
    assert firewall_files() == before
