"""The backup program (roles/mysql_backup/files/distweb_backup.py) without a
database: the copy's GTID position (a replica's applied position first, both
file names), a pack that unpacks to the same bytes, a damaged archive
refused before anything is unpacked, a run refused before the copy when
the backup directory's file system has no room for it, and a run that
publishes only whole, tested backups, keeps the newest mysql_backup_keep,
and reports each outcome in the metrics. The backup tool, the client, the
free space and the throwaway server are faked here; the Molecule default
scenario runs the real ones."""

import importlib.util
import json
import os
import pathlib
import shutil
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "roles" / "mysql_backup" / "files" / "distweb_backup.py"
spec = importlib.util.spec_from_file_location("distweb_backup", SCRIPT)
backup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(backup)

needs_zstd = pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd is not installed here")


@pytest.fixture
def cfg(tmp_path):
    (tmp_path / "backups").mkdir()
    return {
        "dir": str(tmp_path / "backups"), "keep": 2, "max_age_seconds": 3600, "compress_level": 1,
        "verify_start_timeout": 5, "metrics_file": str(tmp_path / "metrics" / "backup.prom"),
        "socket": "/nonexistent.sock", "backup_command": "mariadb-backup", "binlog_info": "mariadb_backup_binlog_info",
        "client": "mariadb", "server_binary": "/usr/sbin/mariadbd", "server_user": "root",
    }


def metrics(cfg):
    return dict(line.split() for line in open(cfg["metrics_file"]) if not line.startswith("#"))


def test_a_replica_copy_takes_the_applied_position_of_the_slave_info(tmp_path, cfg):
    (tmp_path / "xtrabackup_binlog_info").write_text("mysql-bin.000001\t328\t0-1-30\n")
    (tmp_path / "xtrabackup_slave_info").write_text("SET GLOBAL gtid_slave_pos = '0-1-31';\nCHANGE MASTER TO master_use_gtid = slave_pos;\n")
    assert backup.position(str(tmp_path), cfg, replica=True) == "0-1-31"
    assert backup.position(str(tmp_path), cfg, replica=False) == "0-1-30"


def test_the_flavour_file_name_wins_and_a_copy_without_any_fails(tmp_path, cfg):
    (tmp_path / "mariadb_backup_binlog_info").write_text("mysql-bin.000002 4 0-1-40,1-2-3\n")
    (tmp_path / "xtrabackup_binlog_info").write_text("mysql-bin.000001 4 0-1-1\n")
    assert backup.position(str(tmp_path), cfg, replica=True) == "0-1-40,1-2-3"
    with pytest.raises(backup.BackupError, match="neither mariadb_backup_binlog_info nor xtrabackup_binlog_info"):
        backup.position(str(tmp_path / "missing"), cfg, replica=False)


@needs_zstd
def test_a_pack_unpacks_to_the_same_files(tmp_path, cfg):
    copy = tmp_path / "copy"
    (copy / "foobar").mkdir(parents=True)
    (copy / "foobar" / "records.ibd").write_bytes(os.urandom(200000))
    (copy / "ibdata1").write_bytes(b"x" * 100000)
    backup.pack(str(copy), str(tmp_path / "a.tar.zst"), cfg)
    backup.unpack(str(tmp_path / "a.tar.zst"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "foobar" / "records.ibd").read_bytes() == (copy / "foobar" / "records.ibd").read_bytes()
    assert (tmp_path / "out" / "ibdata1").read_bytes() == b"x" * 100000


def test_a_damaged_archive_is_refused_before_it_is_unpacked(tmp_path, cfg):
    archive = tmp_path / "backup.tar.zst"
    archive.write_bytes(b"not what was recorded")
    with pytest.raises(backup.BackupError, match="checksum mismatch"):
        backup.restore_test(cfg, str(archive), "0" * 64, str(tmp_path / "work"))
    assert not (tmp_path / "work").exists()


@needs_zstd
def test_an_archive_that_does_not_unpack_fails_even_with_a_matching_checksum(tmp_path, cfg):
    archive = tmp_path / "backup.tar.zst"
    archive.write_bytes(b"\x28\xb5\x2f\xfd garbage")
    with pytest.raises(backup.BackupError, match="does not unpack"):
        backup.restore_test(cfg, str(archive), backup.sha256(str(archive)), str(tmp_path / "work"))


@pytest.fixture
def fake_server(monkeypatch, tmp_path):
    """mariadb-backup writes a copy with its binlog info, the client says
    read_only=1 and that the data directory (``datadir``, 4000 bytes) is
    tmp_path/datadir, the backup directory's file system has ``free`` bytes
    free (plenty), the restore test passes; ``fail`` makes the next copy
    fail; ``copies`` counts the copies started."""
    datadir = tmp_path / "datadir"
    (datadir / "foobar").mkdir(parents=True)
    (datadir / "ibdata1").write_bytes(b"d" * 3000)
    (datadir / "foobar" / "records.ibd").write_bytes(b"r" * 1000)
    state = {"fail": False, "seq": 0, "copies": 0, "datadir": str(datadir), "free": 1 << 40}
    real_statvfs = os.statvfs

    def run(argv, log_file=None, **kwargs):
        if "--backup" in argv:
            state["copies"] += 1
            if state["fail"]:
                raise backup.BackupError("mariadb-backup failed (exit 1): disk full")
            target = next(a.split("=", 1)[1] for a in argv if a.startswith("--target-dir="))
            os.makedirs(target)
            state["seq"] += 1
            with open(os.path.join(target, "xtrabackup_binlog_info"), "w") as out:
                out.write("mysql-bin.000001 4 0-1-%d\n" % state["seq"])
            with open(os.path.join(target, "ibdata1"), "wb") as out:
                out.write(b"data" * 1000)
        return None

    times = iter(range(1796000000, 1796100000, 60))
    monkeypatch.setattr(backup, "run", run)

    def statvfs(path):
        if os.path.realpath(path) != os.path.realpath(state["dir"]):
            return real_statvfs(path)
        return types.SimpleNamespace(f_bavail=state["free"], f_frsize=1)

    state["dir"] = str(tmp_path / "backups")
    monkeypatch.setattr(backup, "sql", lambda cfg, query, socket_path=None: [
        [state["datadir"] + "/"] if "@@datadir" in query else ["1"]])
    monkeypatch.setattr(backup.os, "statvfs", statvfs)
    monkeypatch.setattr(backup, "restore_test", lambda cfg, archive, digest, work: {"tables": 1, "rows": 7})
    monkeypatch.setattr(backup.time, "time", lambda: next(times))
    return state


@needs_zstd
def test_backups_are_published_whole_and_the_oldest_beyond_keep_removed(cfg, fake_server):
    names = []
    for _round in range(3):
        assert backup.main(["--config", write_cfg(cfg), "backup"]) == 0
        names.append(backup.published(cfg)[-1])
    assert backup.published(cfg) == names[1:], "keep is 2"
    info = backup.read_info(cfg, names[-1])
    assert info["gtid"] == "0-1-3" and info["from_read_only"] is True and info["verified"] == {"tables": 1, "rows": 7}
    assert open(os.path.join(cfg["dir"], names[-1], "backup.tar.zst.sha256")).read().split()[0] == info["sha256"]
    assert [n for n in os.listdir(cfg["dir"]) if n.startswith(".work")] == []
    assert sorted(os.listdir(os.path.join(cfg["dir"], names[-1]))) == ["backup.tar.zst", "backup.tar.zst.sha256", "info.json"]
    got = metrics(cfg)
    assert got["distweb_mysql_backup_last_run_success"] == "1" and got["distweb_mysql_backup_count"] == "2"
    assert got["distweb_mysql_backup_last_success_timestamp_seconds"] == str(info["finished"])


@needs_zstd
def test_the_metrics_command_writes_the_file_again_as_the_last_runs_left_it(cfg, fake_server):
    # what the role runs when the backups come back to a node whose metrics
    # file it removed when they moved away
    assert backup.main(["--config", write_cfg(cfg), "backup"]) == 0
    before = metrics(cfg)
    os.remove(cfg["metrics_file"])
    assert backup.main(["--config", write_cfg(cfg), "metrics"]) == 0
    assert metrics(cfg) == before
    assert before["distweb_mysql_backup_count"] == "1" and before["distweb_mysql_backup_last_run_success"] == "1"


@needs_zstd
def test_a_backup_of_a_writable_server_is_marked_in_the_metrics(cfg, fake_server, monkeypatch):
    # a replica's backup: not from the primary (fake_server's read_only is 1)
    assert backup.main(["--config", write_cfg(cfg), "backup"]) == 0
    got = metrics(cfg)
    assert got["distweb_mysql_backup_last_from_primary"] == "0" and got["distweb_mysql_backup_replica_expected"] == "0"
    # the backup host, a replica as the inventory has it, made the primary
    cfg["replica_expected"] = True
    monkeypatch.setattr(backup, "sql", lambda cfg, query, socket_path=None: [
        [fake_server["datadir"] + "/"] if "@@datadir" in query else ["0"]])
    assert backup.main(["--config", write_cfg(cfg), "backup"]) == 0
    got = metrics(cfg)
    assert got["distweb_mysql_backup_last_from_primary"] == "1" and got["distweb_mysql_backup_replica_expected"] == "1"


@needs_zstd
def test_a_failed_backup_publishes_nothing_keeps_the_older_ones_and_says_so(cfg, fake_server, capsys):
    assert backup.main(["--config", write_cfg(cfg), "backup"]) == 0
    good = backup.published(cfg)
    fake_server["fail"] = True
    assert backup.main(["--config", write_cfg(cfg), "backup"]) == 1
    assert "disk full" in capsys.readouterr().err
    assert backup.published(cfg) == good
    assert [n for n in os.listdir(cfg["dir"]) if n.startswith(".work")] == []
    got = metrics(cfg)
    assert got["distweb_mysql_backup_last_run_success"] == "0"
    assert got["distweb_mysql_backup_last_success_timestamp_seconds"] == str(backup.read_info(cfg, good[-1])["finished"])


@needs_zstd
def test_a_backup_with_room_for_it_runs_on(cfg, fake_server, capsys):
    fake_server["free"] = 2 * 4000 + backup.SPACE_MARGIN
    assert backup.main(["--config", write_cfg(cfg), "backup"]) == 0
    assert fake_server["copies"] == 1 and len(backup.published(cfg)) == 1
    assert "%d bytes free in %s, %d needed" % (fake_server["free"], cfg["dir"], 2 * 4000 + backup.SPACE_MARGIN) in capsys.readouterr().out


def test_a_backup_without_room_for_it_is_refused_before_the_copy(cfg, fake_server, capsys):
    needed = 2 * 4000 + backup.SPACE_MARGIN
    fake_server["free"] = needed - 1
    assert backup.main(["--config", write_cfg(cfg), "backup"]) == 1
    err = capsys.readouterr().err
    assert "not enough free space in %s: %d bytes free, %d bytes needed" % (cfg["dir"], needed - 1, needed) in err
    assert "twice the 4000 bytes in the data directory %s/" % fake_server["datadir"] in err
    assert fake_server["copies"] == 0, "the copy must not start"
    assert backup.published(cfg) == []
    assert sorted(os.listdir(cfg["dir"])) == [".state.json"], "nothing but the metrics' state is written"
    got = metrics(cfg)
    assert got["distweb_mysql_backup_last_run_success"] == "0" and got["distweb_mysql_backup_count"] == "0"


def test_a_data_directory_that_is_not_there_is_refused_rather_than_counted_empty(cfg, fake_server, capsys):
    fake_server["datadir"] = os.path.join(fake_server["datadir"], "missing")
    assert backup.main(["--config", write_cfg(cfg), "backup"]) == 1
    assert "data directory %s/ (@@datadir) is not a directory here" % fake_server["datadir"] in capsys.readouterr().err
    assert fake_server["copies"] == 0


def test_verify_of_a_missing_backup_names_the_ones_there_and_marks_the_metric(cfg, capsys):
    os.makedirs(os.path.join(cfg["dir"], "20260101T000000Z"))
    with open(os.path.join(cfg["dir"], "20260101T000000Z", "info.json"), "w") as out:
        json.dump({"name": "20260101T000000Z", "finished": 1, "archive_bytes": 1, "sha256": "0" * 64}, out)
    assert backup.main(["--config", write_cfg(cfg), "verify", "20991231T000000Z"]) == 1
    assert "no backup named 20991231T000000Z" in capsys.readouterr().err
    assert metrics(cfg)["distweb_mysql_backup_last_verify_success"] == "0"


def write_cfg(cfg):
    path = os.path.join(os.path.dirname(cfg["dir"]), "backup.json")
    with open(path, "w") as out:
        json.dump(cfg, out)
    return path


def test_list_until_keeps_only_backups_at_or_before_the_point(cfg, capsys):
    for name, gtid in (("20260101T000000Z", "0-1-10"), ("20260102T000000Z", "0-1-20,1-2-5"), ("20260103T000000Z", "0-1-30")):
        os.makedirs(os.path.join(cfg["dir"], name))
        with open(os.path.join(cfg["dir"], name, "info.json"), "w") as out:
            json.dump({"name": name, "gtid": gtid}, out)
    assert backup.main(["--config", write_cfg(cfg), "list", "--until", "0-1-20"]) == 0
    assert [b["name"] for b in json.loads(capsys.readouterr().out)] == ["20260102T000000Z", "20260101T000000Z"]
    assert backup.main(["--config", write_cfg(cfg), "list", "--until", "0-1-9"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert backup.main(["--config", write_cfg(cfg), "list"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    # a point in another domain: no backup is past it there
    assert backup.after("0-1-30", "2-1-1") is False and backup.after("0-1-30,2-1-5", "2-1-4") is True


def test_a_backup_is_listed_by_its_directory_name(cfg, capsys):
    os.makedirs(os.path.join(cfg["dir"], "20260105T000000Z"))
    with open(os.path.join(cfg["dir"], "20260105T000000Z", "info.json"), "w") as out:
        json.dump({"name": "20260101T000000Z", "gtid": "0-1-1"}, out)  # copied from another backup
    assert backup.main(["--config", write_cfg(cfg), "list"]) == 0
    assert [b["name"] for b in json.loads(capsys.readouterr().out)] == ["20260105T000000Z"]


# ------------------------------------------------------------ gtid-at TIME

# A binary log as mariadb-binlog prints it (TZ=UTC), GTIDs 11 to 13 after
# the file's Gtid list of 0-1-10.
BINLOG = """# at 4
#261203 10:00:00 server id 1  end_log_pos 256 CRC32 0x0c8e1e5b  Start: binlog v 4, server v 11.8.3-MariaDB-log created 261203 10:00:00
# at 256
#261203 10:00:00 server id 1  end_log_pos 299 CRC32 0x4c1c4a5d 	Gtid list [0-1-10]
# at 299
#261203 10:00:05 server id 1  end_log_pos 341 CRC32 0x1a2b3c4d 	GTID 0-1-11 trans
BEGIN
#261203 10:00:05 server id 1  end_log_pos 372 CRC32 0x5e6f7a8b 	Xid = 51
COMMIT/*!*/;
# at 372
#261203 10:00:07 server id 3  end_log_pos 414 CRC32 0x11223344 	GTID 0-3-12 trans
#261203 10:00:07 server id 3  end_log_pos 445 CRC32 0x55667788 	Xid = 52
# at 445
#261203 10:00:09 server id 1  end_log_pos 487 CRC32 0x99aabbcc 	GTID 0-1-13 ddl
DROP TABLE foobar.records
"""

# The fake mariadb-binlog: prints the log above up to the first event
# stamped at or after --stop-datetime, as the real one does.
FAKE_BINLOG = r'''#!/usr/bin/env python3
import datetime, re, sys
stop = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--stop-datetime="))
stop = datetime.datetime.strptime(stop, "%Y-%m-%d %H:%M:%S")
for line in open(sys.argv[0] + ".log"):
    found = re.match(r"^#(\d{6}) +(\d{1,2}:\d\d:\d\d) server id", line)
    if found and datetime.datetime.strptime(" ".join(found.groups()), "%y%m%d %H:%M:%S") >= stop:
        break
    sys.stdout.write(line)
'''


@pytest.fixture
def binlog(monkeypatch, tmp_path, cfg):
    tool = tmp_path / "fake-binlog"
    tool.write_text(FAKE_BINLOG)
    tool.chmod(0o755)
    (tmp_path / "fake-binlog.log").write_text(BINLOG)
    cfg["binlog_command"] = str(tool)
    answers = {"SELECT @@global.log_bin_basename": [["/var/lib/mysql/mysql-bin"]],
               "SHOW BINARY LOGS": [["mysql-bin.000001", "487"]],
               "SELECT @@global.gtid_binlog_pos": [["0-1-13"]]}
    monkeypatch.setattr(backup, "sql", lambda cfg, query, socket_path=None: answers[query])
    return answers


def at(text):
    return backup.datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("moment, position", [
    ("2026-12-03 10:00:07", "0-1-11"),  # 12 is stamped 10:00:07 itself: not before
    ("2026-12-03 10:00:08", "0-3-12"),
    ("2026-12-03 10:00:09", "0-3-12"),  # the drop at 10:00:09 is left out
    ("2026-12-03 10:00:03", "0-1-10"),  # before any transaction of the file: its Gtid list
])
def test_gtid_at_is_the_last_transaction_stamped_before_the_time(binlog, cfg, moment, position):
    assert backup.gtid_at(cfg, at(moment)) == position


def test_gtid_at_refuses_a_time_the_log_cannot_answer(binlog, cfg):
    with pytest.raises(backup.BackupError, match="begins after 2026-12-03 09:59:59: it cannot say"):
        backup.gtid_at(cfg, at("2026-12-03 09:59:59"))
    # after the last transaction the node has: it may lag behind the primary
    with pytest.raises(backup.BackupError, match="no transaction stamped at or after 2026-12-03 10:00:10 yet"):
        backup.gtid_at(cfg, at("2026-12-03 10:00:10"))
    with pytest.raises(backup.BackupError, match="in the future"):
        backup.gtid_at(cfg, at("2099-01-01 00:00:00"))


def test_gtid_at_on_the_command_line(binlog, cfg, tmp_path, capsys):
    path = tmp_path / "backup.json"
    path.write_text(json.dumps(cfg))
    assert backup.main(["--config", str(path), "gtid-at", "2026-12-03 10:00:08"]) == 0
    assert capsys.readouterr().out == "0-3-12\n"
    assert backup.main(["--config", str(path), "gtid-at", "yesterday"]) == 1
    assert "does not match format" in capsys.readouterr().err


def test_a_backup_past_any_domain_of_a_position_cannot_roll_forward_to_it():
    assert backup.after("0-1-30,1-2-7", "0-1-30,1-2-6") is True
    assert backup.after("0-1-30,1-2-6", "0-1-31,1-2-6") is False
    assert backup.after("0-1-30", "1-2-1") is False
