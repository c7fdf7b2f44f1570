"""The tiers scenario's hosts (inventories/lab-tiers) and the shared lab
clients. The tests look into hosts with docker exec; the playbooks they run
reach the hosts over SSH, as the scenario's inventory says."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))

# What runs where: each tier on its own hosts.
LOAD_BALANCERS = ["lb1"]
WEB_SERVERS = ["web1", "web2"]
DB_NODES = ["db1", "db2"]
MONITORS = ["mon1"]
HOSTS = [*LOAD_BALANCERS, *WEB_SERVERS, *DB_NODES, *MONITORS]
