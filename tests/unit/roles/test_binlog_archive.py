"""The binary log archive of the backup program
(roles/mysql_backup/files/distweb_backup.py: distweb-binlog-archive and
distweb-backup archive-replay) without a database: it follows the one
writable node and waits while there is none or two; it goes on with a
segment only where the server still has the same log, else starts a new
one; it leaves a demoted or unreachable source once what it wrote is
archived (or after a few checks); it prunes what no kept backup needs; and
a replay refuses a segment that begins after the backup and one that never
reaches the point. The nodes' answers and mariadb-binlog are faked; the
Molecule default scenario runs the real ones."""

import importlib.util
import json
import os
import pathlib
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "roles" / "mysql_backup" / "files" / "distweb_backup.py"
spec = importlib.util.spec_from_file_location("distweb_backup_archive", SCRIPT)
backup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(backup)

NODES = [{"name": "db1", "host": "10.0.0.1", "port": 3306}, {"name": "db2", "host": "10.0.0.2", "port": 3306},
         {"name": "db3", "host": "10.0.0.3", "port": 3306}]


@pytest.fixture
def cfg(tmp_path):
    (tmp_path / "backups").mkdir()
    return {
        "dir": str(tmp_path / "backups"), "keep": 2, "client": "mariadb", "binlog_command": "mariadb-binlog",
        "archive": {"dir": str(tmp_path / "backups" / "binlog"), "nodes": NODES, "server_id": 4294967041,
                    "client_config": "/nonexistent.cnf", "metrics_file": str(tmp_path / "archive.prom"),
                    "check_seconds": 5, "max_behind_seconds": 60, "binlog_files": "SHOW BINARY LOGS",
                    "binlog_status": "SHOW MASTER STATUS"},
    }


class Cluster(object):
    """The nodes' answers to the archive's queries: read_only, server id,
    binary log files and position; a node in ``down`` does not answer."""

    def __init__(self, read_only, files=None, status=("mysql-bin.000002", 500)):
        self.read_only, self.down = dict(read_only), set()
        self.files, self.status, self.gtid_lists = files or ["mysql-bin.000001", "mysql-bin.000002"], status, {}

    def __call__(self, cfg, node, query, timeout=10):
        if node["name"] in self.down:
            raise backup.BackupError("%s: Can't connect" % node["name"])
        if query == "SELECT @@global.read_only, @@global.server_id":
            return [["1" if self.read_only[node["name"]] else "0", str(NODES.index(node) + 11)]]
        if query == "SELECT @@global.read_only":
            return [["1" if self.read_only[node["name"]] else "0"]]
        if query == "SHOW BINARY LOGS":
            return [[name, "100"] for name in self.files]
        if query == "SHOW MASTER STATUS":
            return [[self.status[0], str(self.status[1]), "", ""]]
        if query.startswith("SHOW BINLOG EVENTS IN "):
            name = query.split("'")[1]
            return [[name, "4", "Format_desc", "11", "256", "Server ver"],
                    [name, "256", "Gtid_list", "11", "285", "[%s]" % self.gtid_lists.get(name, "")]]
        raise AssertionError(query)


@pytest.fixture
def cluster(monkeypatch):
    found = Cluster({"db1": False, "db2": True, "db3": True})
    monkeypatch.setattr(backup, "node_sql", found)
    return found


def write_segment(cfg, name, files):
    path = pathlib.Path(cfg["archive"]["dir"]) / name
    path.mkdir(parents=True)
    for file_name, size in files:
        (path / file_name).write_bytes(b"x" * size)
    return path


def test_the_archive_follows_the_one_writable_node_and_waits_while_there_is_none_or_two(cfg, cluster):
    assert backup.find_primary(cfg) == (NODES[0], "11")
    cluster.read_only["db1"] = True
    cluster.down.add("db3")
    with pytest.raises(backup.BackupError, match=r"0 writable nodes \(none\); unreachable: db3: Can't connect"):
        backup.find_primary(cfg)
    cluster.read_only.update(db1=False, db2=False)
    with pytest.raises(backup.BackupError, match=r"2 writable nodes \(db1, db2\)"):
        backup.find_primary(cfg)


def test_a_new_archive_starts_a_segment_at_the_servers_oldest_file(cfg, cluster):
    path, first = backup.archive_start(cfg, NODES[0], "11", cluster.files)
    assert first == "mysql-bin.000001"
    assert backup.SEGMENT.match(os.path.basename(path)).group(1) == "11"


def test_the_archive_goes_on_where_the_server_has_the_same_log(cfg, cluster, monkeypatch):
    segment = write_segment(cfg, "20261201T000000Z-11", [("mysql-bin.000001", 900), ("mysql-bin.000002", 300)])
    write_segment(cfg, "20261202T000000Z-12", [("mysql-bin.000009", 300)])  # another server's
    cluster.gtid_lists["mysql-bin.000002"] = "0-11-40"
    monkeypatch.setattr(backup, "file_gtid_list", lambda cfg, path: backup.parse_position("0-11-40"))
    assert backup.archive_start(cfg, NODES[0], "11", cluster.files) == (str(segment), "mysql-bin.000002")


def test_a_server_whose_log_was_reset_or_purged_gets_a_new_segment(cfg, cluster, monkeypatch, capsys):
    old = write_segment(cfg, "20261201T000000Z-11", [("mysql-bin.000001", 900), ("mysql-bin.000002", 300)])
    # reset: the same name, but it begins at another position
    cluster.gtid_lists["mysql-bin.000002"] = "0-12-7"
    monkeypatch.setattr(backup, "file_gtid_list", lambda cfg, path: backup.parse_position("0-11-40"))
    path, first = backup.archive_start(cfg, NODES[0], "11", cluster.files)
    assert path != str(old) and first == "mysql-bin.000001"
    assert "begins elsewhere than the archived one" in capsys.readouterr().out
    # purged (or reset and not grown back): the last archived file is gone from the server
    path, first = backup.archive_start(cfg, NODES[0], "11", ["mysql-bin.000005", "mysql-bin.000006"])
    assert path != str(old) and first == "mysql-bin.000005"
    assert "no longer has mysql-bin.000002" in capsys.readouterr().out


def test_archived_past_compares_file_and_position(cfg):
    segment = write_segment(cfg, "20261201T000000Z-11", [("mysql-bin.000009", 300), ("mysql-bin.000010", 120)])
    assert backup.archived_past(str(segment), "mysql-bin.000010", 120)
    assert not backup.archived_past(str(segment), "mysql-bin.000010", 121)
    assert backup.archived_past(str(segment), "mysql-bin.000009", 5000)  # rotated past it
    assert not backup.archived_past(str(segment), "mysql-bin.000011", 4)


class Child(object):
    def __init__(self):
        self.returncode, self.terminated = None, False

    def poll(self):
        return self.returncode

    def terminate(self):
        self.terminated, self.returncode = True, -15

    def wait(self, timeout=None):
        return self.returncode


def running(cfg, cluster, segment):
    archiver = backup.Archiver(cfg)
    archiver.child, archiver.source, archiver.segment = Child(), NODES[0], str(segment)
    return archiver


def test_a_demoted_source_is_left_once_its_last_position_is_archived(cfg, cluster, capsys):
    segment = write_segment(cfg, "20261201T000000Z-11", [("mysql-bin.000002", 400)])
    archiver = running(cfg, cluster, segment)
    cluster.status = ("mysql-bin.000002", 400)
    assert archiver.step() is True
    child = archiver.child
    cluster.read_only["db1"] = True  # demoted (a switchover) or fenced
    cluster.status = ("mysql-bin.000002", 500)  # what it wrote last is not archived yet
    assert archiver.step() is False and not child.terminated
    (segment / "mysql-bin.000002").write_bytes(b"x" * 500)
    assert archiver.step() is False and child.terminated and archiver.child is None
    assert "db1 is read-only now: leaving db1" in capsys.readouterr().out


def test_a_demoted_source_whose_last_position_never_arrives_is_left_after_a_few_checks(cfg, cluster, capsys):
    segment = write_segment(cfg, "20261201T000000Z-11", [("mysql-bin.000002", 100)])
    archiver = running(cfg, cluster, segment)
    cluster.read_only["db1"] = True
    for _check in range(backup.ARCHIVE_SOURCE_FAILURES):
        assert archiver.step() is False
    assert archiver.child is None
    assert "(and its last position was not archived)" in capsys.readouterr().out


def test_an_unreachable_source_is_left_after_a_few_failed_checks(cfg, cluster, capsys):
    segment = write_segment(cfg, "20261201T000000Z-11", [("mysql-bin.000002", 500)])
    archiver = running(cfg, cluster, segment)
    child = archiver.child
    cluster.down.add("db1")
    for _check in range(backup.ARCHIVE_SOURCE_FAILURES - 1):
        assert archiver.step() is False and archiver.child is child
    assert archiver.step() is False and child.terminated and archiver.child is None
    assert "3 checks in a row failed (db1: Can't connect): leaving db1" in capsys.readouterr().out


def test_a_copy_that_stops_growing_while_the_source_writes_on_is_started_again(cfg, cluster, capsys, monkeypatch):
    segment = write_segment(cfg, "20261201T000000Z-11", [("mysql-bin.000002", 500)])
    archiver = running(cfg, cluster, segment)
    child = archiver.child
    cluster.status = ("mysql-bin.000002", 900)  # the primary writes on
    clock = [1000.0]
    monkeypatch.setattr(backup.time, "time", lambda: clock[0])
    assert archiver.step() is True
    # far behind but moving: left to catch up
    for size in (550, 600, 650):
        clock[0] += 40
        (segment / "mysql-bin.000002").write_bytes(b"x" * size)
        assert archiver.step() is True and archiver.child is child
    # not a byte more for max_behind_seconds: stuck
    clock[0] += cfg["archive"]["max_behind_seconds"]
    assert archiver.step() is True and archiver.child is child
    clock[0] += 1
    assert archiver.step() is False and child.terminated and archiver.child is None
    assert ("mysql-bin.000002:900, read 181 s ago, is still not archived and the copy has not grown since: leaving db1"
            in capsys.readouterr().out)


def test_an_ended_mariadb_binlog_is_reported_and_started_again(cfg, cluster, monkeypatch):
    segment = write_segment(cfg, "20261201T000000Z-11", [("mysql-bin.000002", 500)])
    archiver = running(cfg, cluster, segment)
    archiver.child.returncode = 1
    archiver.errors = open(os.devnull, "rb")
    with pytest.raises(backup.BackupError, match=r"mariadb-binlog ended \(exit 1\)"):
        archiver.step()
    started = []
    monkeypatch.setattr(archiver, "start", lambda: started.append(True) or setattr(archiver, "child", Child()))
    assert archiver.step() is True and started


def test_the_metrics_say_how_far_behind_the_archive_is(cfg, cluster):
    segment = write_segment(cfg, "20261201T000000Z-11", [("mysql-bin.000002", 500)])
    archiver = running(cfg, cluster, segment)
    archiver.covered_at = time.time() - 1000
    assert archiver.step() is True
    assert time.time() - archiver.covered_at < 5  # position 500 of 000002 is archived
    cluster.status = ("mysql-bin.000003", 4)
    before = archiver.covered_at
    archiver.step()
    assert archiver.covered_at == before  # not yet
    backup.archive_metrics(cfg, True, 12.5, "db1")
    text = open(cfg["archive"]["metrics_file"]).read()
    assert 'distweb_mysql_binlog_archive_up{source="db1"} 1\n' in text
    assert "distweb_mysql_binlog_archive_behind_seconds 12.5\n" in text
    assert "distweb_mysql_binlog_archive_max_behind_seconds 60\n" in text


def test_the_metrics_directory_it_makes_stays_readable_to_the_exporter(cfg, tmp_path):
    cfg["archive"]["metrics_file"] = str(tmp_path / "prometheus" / "node-exporter" / "archive.prom")
    mask = os.umask(0o077)  # as the archive's service runs
    try:
        backup.archive_metrics(cfg, True, 0.0, "db1")
    finally:
        os.umask(mask)
    for path in (tmp_path / "prometheus", tmp_path / "prometheus" / "node-exporter"):
        assert path.stat().st_mode & 0o777 == 0o755, oct(path.stat().st_mode)
    assert (tmp_path / "prometheus" / "node-exporter" / "archive.prom").stat().st_mode & 0o777 == 0o644


def publish(cfg, name, started):
    path = pathlib.Path(cfg["dir"]) / name
    path.mkdir()
    (path / "info.json").write_text(json.dumps({"started": started, "gtid": "0-11-1"}))


def test_the_archive_keeps_what_the_oldest_kept_backup_needs(cfg):
    now = time.time()
    publish(cfg, "20261202T000000Z", int(now - 86400))
    old = write_segment(cfg, "20261120T000000Z-12", [("mysql-bin.000001", 10), ("mysql-bin.000002", 10)])
    current = write_segment(cfg, "20261125T000000Z-11",
                            [("mysql-bin.000001", 10), ("mysql-bin.000002", 10), ("mysql-bin.000003", 10), ("mysql-bin.000004", 10)])
    ages = {"mysql-bin.000001": 5 * 86400, "mysql-bin.000002": 2 * 86400, "mysql-bin.000003": 86400 - 600,
            "mysql-bin.000004": 9 * 86400}
    for segment in (old, current):
        for name in backup.segment_files(str(segment)):
            os.utime(segment / name, (now - ages[name], now - ages[name]))
    newer = write_segment(cfg, "20261130T000000Z-12", [("mysql-bin.000001", 10)])
    os.utime(newer / "mysql-bin.000001", (now - 7 * 86400, now - 7 * 86400))
    backup.prune_archive(cfg)
    # server 12's older segment is gone whole; its newest keeps its last file
    assert not old.exists() and backup.segment_files(str(newer)) == ["mysql-bin.000001"]
    # the files before the oldest backup (less an hour) go; from the first newer one on, all stay
    assert backup.segment_files(str(current)) == ["mysql-bin.000003", "mysql-bin.000004"]


def fake_binlog(monkeypatch, lists, stderr=b""):
    monkeypatch.setattr(backup, "file_gtid_list", lambda cfg, path: backup.parse_position(lists[os.path.basename(os.path.dirname(path))]))
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        kwargs["stderr"].write(stderr)
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(backup.subprocess, "run", run)
    return calls


def test_a_replay_reads_the_newest_segment_that_begins_at_or_before_the_backup(cfg, monkeypatch, tmp_path):
    write_segment(cfg, "20261120T000000Z-11", [("mysql-bin.000001", 10), ("mysql-bin.000002", 10)])
    write_segment(cfg, "20261125T000000Z-12", [("mysql-bin.000003", 10)])
    calls = fake_binlog(monkeypatch, {"20261120T000000Z-11": "", "20261125T000000Z-12": "0-11-90"})
    with open(tmp_path / "out.sql", "wb") as out:
        chosen = backup.archive_replay(cfg, "0-11-50", "0-11-70", out)
    assert os.path.basename(chosen) == "20261120T000000Z-11"
    assert calls[0][:3] == ["mariadb-binlog", "--start-position=0-11-50", "--stop-position=0-11-70"]
    assert [os.path.basename(path) for path in calls[0][3:]] == ["mysql-bin.000001", "mysql-bin.000002"]
    with open(tmp_path / "out.sql", "wb") as out:
        assert os.path.basename(backup.archive_replay(cfg, "0-11-95", "0-12-120", out)) == "20261125T000000Z-12"


def test_a_replay_refuses_an_archive_that_begins_after_the_backup_or_misses_the_point(cfg, monkeypatch, tmp_path):
    write_segment(cfg, "20261125T000000Z-12", [("mysql-bin.000003", 10)])
    fake_binlog(monkeypatch, {"20261125T000000Z-12": "0-11-90,1-12-3"})
    with open(tmp_path / "out.sql", "wb") as out:
        with pytest.raises(backup.BackupError, match="no archived binary log begins at or before 0-11-50"):
            backup.archive_replay(cfg, "0-11-50", "0-11-95", out)
        # a domain the backup has nothing of, begun before the segment: its first transactions are missing
        with pytest.raises(backup.BackupError, match="no archived binary log begins at or before 0-11-95"):
            backup.archive_replay(cfg, "0-11-95", "0-11-99", out)
    fake_binlog(monkeypatch, {"20261125T000000Z-12": "0-11-90"},
                stderr=b"WARNING: Did not reach stop position 0-11-500 before end of input")
    with open(tmp_path / "out.sql", "wb") as out:
        with pytest.raises(backup.BackupError, match="did not reach 0-11-500"):
            backup.archive_replay(cfg, "0-11-95", "0-11-500", out)
