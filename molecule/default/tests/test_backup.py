"""Backups that restore, on real servers: the converge published a
restore-tested backup on the backup host (server2); under a logged write
load a backup is taken, a table dropped on the primary, and the point just
before the drop restored onto server3: every write acknowledged before the
drop is there, none sent after it, and the table is back. Then the latest
backup restored onto server3 and attached as a replica matches the primary
(pt-table-checksum). A corrupted backup fails its restore test and its
restore is refused, and the restore playbook refuses the primary and a
healthy replica. The binary log archive on the backup host holds the
primary's log byte for byte and every acknowledged write of a load, and a
point-in-time restore from it succeeds where the primary's own log no
longer reaches back to the backup. Last, the backups move to another node
with playbooks/backups.yml (as after a failover) and back."""

import json
import secrets
import time

import pytest
from conftest import PRIMARY, REPLICAS, rows, sql
from labclient import (
    WriteLoad,
    assert_stored_once,
    container,
    docker,
    flat,
    gtid_before,
    logged_values,
    output,
    playbook,
    recap,
    slave_status,
    table_checksum,
    wait_for,
)

BACKUP_HOST = "server2"  # the first replica (mysql_backup_host's default)
TARGET = "server3"
BACKUP_DIR = "/var/backups/distweb-mysql"
METRICS = "/var/lib/prometheus/node-exporter/distweb_mysql_backup.prom"
ARCHIVE_DIR = f"{BACKUP_DIR}/binlog"
ARCHIVE_METRICS = "/var/lib/prometheus/node-exporter/distweb_mysql_binlog_archive.prom"
ARCHIVE_SERVER_ID = "4294967041"  # mysql_backup_binlog_server_id's default


def backup_cli(*args, check=True, host=BACKUP_HOST):
    done = docker("exec", container(host), "/usr/local/sbin/distweb-backup", *args, check=False, timeout=900)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def published(host=BACKUP_HOST):
    return json.loads(backup_cli("list", host=host).stdout)


def metric(name, path=METRICS):
    """A metric's value in a textfile on the backup host; with labels,
    ``name`` is written as in the file (name{label="value"})."""
    text = docker("exec", container(BACKUP_HOST), "cat", path).stdout
    values = [line.split()[1] for line in text.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, text
    return float(values[0])


def archive_segment(server):
    """The newest segment of ``server``'s binary log in the archive."""
    server_id = rows(server, "SELECT @@global.server_id")[0][0]
    names = docker("exec", container(BACKUP_HOST), "ls", ARCHIVE_DIR).stdout.split()
    mine = sorted(name for name in names if name.endswith(f"-{server_id}"))
    assert mine, f"no segment of {server} (server id {server_id}) in {names}"
    return f"{ARCHIVE_DIR}/{mine[-1]}"


def archived_size(segment, name):
    done = docker("exec", container(BACKUP_HOST), "stat", "-c", "%s", f"{segment}/{name}", check=False)
    return int(done.stdout) if done.returncode == 0 else -1


# The byte of a binary log the server sets while it writes the file (the
# in-use flag of its format description event; 1-based): the archive's copy
# of the file being written has it clear, as the file has once closed.
IN_USE_FLAG_BYTE = 22


def log_digest(name, path, size, writing=False):
    """SHA-256 of a binary log's first ``size`` bytes, without the in-use
    flag's byte for a file still being written."""
    part = (f"head -c {size} {path}" if not writing else
            f"{{ head -c {IN_USE_FLAG_BYTE - 1} {path}; tail -c +{IN_USE_FLAG_BYTE + 1} {path} | head -c {size - IN_USE_FLAG_BYTE}; }}")
    return docker("exec", container(name), "sh", "-c", f"{part} | sha256sum").stdout.split()[0]


def test_the_converge_published_a_restore_tested_backup():
    backups = published()
    assert backups, "no backup was published during the converge"
    latest = backups[0]
    assert latest["host"] == BACKUP_HOST, latest
    assert latest["from_read_only"] is True, "the backup was not taken on a replica"
    assert latest["verified"]["tables"] > 0, latest  # foobar.records, read whole by the restore test
    for timer in ("distweb-backup.timer", "distweb-backup-verify.timer"):
        assert docker("exec", container(BACKUP_HOST), "systemctl", "is-enabled", timer).stdout.strip() == "enabled", timer
        assert docker("exec", container(BACKUP_HOST), "systemctl", "is-active", timer).stdout.strip() == "active", timer
    # the scheduled restore test, started as its timer would
    verify = docker("exec", container(BACKUP_HOST), "systemctl", "start", "distweb-backup-verify.service", check=False, timeout=900)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert published()[0]["verified_at"] >= latest["verified_at"]
    assert metric("distweb_mysql_backup_last_run_success") == 1
    assert metric("distweb_mysql_backup_last_success_timestamp_seconds") == latest["finished"]
    # a replica's copy, as the inventory expects: MySQLBackupOnPrimary stays quiet
    assert metric("distweb_mysql_backup_last_from_primary") == 0
    assert metric("distweb_mysql_backup_replica_expected") == 1


def test_the_restore_refuses_the_primary_and_a_healthy_replica():
    for target, says in ((PRIMARY, "is writable: it is a primary"), (TARGET, "is a healthy replica")):
        before = rows(target, "SELECT @@gtid_binlog_pos, @@gtid_slave_pos, @@read_only")
        result = playbook("playbooks/restore.yml", "-e", f"restore_target={target}")
        assert result.returncode != 0, output(result)
        assert says in flat(result), output(result)
        assert "Nothing was changed" in flat(result), output(result)
        assert rows(target, "SELECT @@gtid_binlog_pos, @@gtid_slave_pos, @@read_only") == before


def test_the_restore_in_check_mode_says_what_it_would_do_and_does_nothing():
    before = rows(TARGET, "SELECT @@gtid_slave_pos, @@read_only"), slave_status(TARGET).get("Master_Host")
    result = playbook("playbooks/restore.yml", "--check", "-e", f"restore_target={TARGET}", "-e", "restore_force=true")
    assert result.returncode == 0, output(result)
    assert f"{TARGET} would get backup" in flat(result), output(result)
    assert (rows(TARGET, "SELECT @@gtid_slave_pos, @@read_only")[0][1], slave_status(TARGET).get("Master_Host")) == (
        before[0][0][1], before[1])
    assert slave_status(TARGET).get("Slave_SQL_Running") == "Yes"


@pytest.fixture(scope="module")
def dropped():
    """Under a logged write load: a backup, more writes and rows of a probe
    table, the probe table dropped on the primary, more writes. Returns the
    load, the monotonic times around the drop and the GTID just before the
    drop."""
    table = f"foobar.pitr_probe_{secrets.token_hex(3)}"
    sql(PRIMARY, f"CREATE TABLE {table} (id INT PRIMARY KEY, note VARCHAR(64))")
    sql(PRIMARY, f"INSERT INTO {table} VALUES (1, 'before the backup')")
    with WriteLoad(max_writes=20000, max_seconds=600) as load:
        time.sleep(2)
        backup = docker("exec", container(BACKUP_HOST), "systemctl", "start", "distweb-backup.service", check=False, timeout=900)
        assert backup.returncode == 0, backup.stdout + backup.stderr
        sql(PRIMARY, f"INSERT INTO {table} VALUES (2, 'after the backup')")
        time.sleep(3)
        # the drop 0.2 s into a new UTC second: restore_until_time of that
        # second is the moment just before it (the binary log's time stamps
        # are whole seconds)
        time.sleep(1.2 - time.time() % 1.0)
        second = int(time.time())
        second_started = time.monotonic() - (time.time() - second)
        drop_started = time.monotonic()
        sql(PRIMARY, f"DROP TABLE {table}")
        drop_done = time.monotonic()
        time.sleep(3)
    until = gtid_before(PRIMARY, "DROP TABLE", table.split(".")[1])
    return {"load": load, "drop_started": drop_started, "drop_done": drop_done, "until": until, "table": table,
            "second": second, "second_started": second_started}


def assert_restored_up_to(dropped, acknowledged_before, sent_after):
    """The target holds the probe table's rows and every write of the load
    acknowledged before ``acknowledged_before``, and none sent after
    ``sent_after`` (monotonic times)."""
    load = dropped["load"]
    assert rows(TARGET, f"SELECT id, note FROM {dropped['table']} ORDER BY id") == [["1", "before the backup"], ["2", "after the backup"]]
    assert rows(TARGET, "SELECT @@read_only") == [["1"]]
    assert slave_status(TARGET) == {}, "the restored node still replicates"
    present = {row[0] for row in rows(TARGET, "SELECT value FROM foobar.records")}
    before = [value for (sent, answered, ok), value in zip(load.answers, load.sent) if ok and answered < acknowledged_before]
    after = [value for (sent, _answered, _ok), value in zip(load.answers, load.sent) if sent > sent_after]
    assert len(before) > 20 and len(after) > 5, (len(before), len(after))
    lost = [value for value in before if value not in present]
    assert lost == [], f"{len(lost)} writes acknowledged before the point are missing: {lost[:5]}"
    replayed = [value for value in after if value in present]
    assert replayed == [], f"{len(replayed)} writes sent after the point were restored: {replayed[:5]}"


def test_a_point_in_time_restore_brings_back_the_dropped_table_and_nothing_after(dropped):
    result = playbook("playbooks/restore.yml", "-e", f"restore_target={TARGET}", "-e", f"restore_until_gtid={dropped['until']}",
                      "-e", "restore_force=true")
    assert result.returncode == 0, output(result)
    assert_restored_up_to(dropped, dropped["drop_started"], dropped["drop_done"])


def test_a_point_in_time_restore_by_time_stops_before_that_second(dropped):
    # the second the drop began in: every transaction stamped before it is
    # replayed, the drop and everything sent from that second on is not
    moment = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(dropped["second"]))
    result = playbook("playbooks/restore.yml", "-e", f"restore_target={TARGET}", "-e", json.dumps({"restore_until_time": moment}),
                      "-e", "restore_force=true")
    assert result.returncode == 0, output(result)
    assert_restored_up_to(dropped, dropped["second_started"], dropped["second_started"])
    # a time and a GTID together are refused before anything is touched
    both = playbook("playbooks/restore.yml", "-e", f"restore_target={TARGET}", "-e", json.dumps({"restore_until_time": moment}),
                    "-e", f"restore_until_gtid={dropped['until']}", "-e", "restore_force=true")
    assert both.returncode != 0 and "not both. Nothing was changed" in flat(both), output(both)


def test_the_latest_backup_attached_as_a_replica_matches_the_primary(dropped):
    # server3 holds the point-in-time copy and replicates from nobody: not a
    # healthy replica, so no force is needed.
    result = playbook("playbooks/restore.yml", "-e", f"restore_target={TARGET}")
    assert result.returncode == 0, output(result)
    status = slave_status(TARGET)
    assert status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes", status
    position = rows(PRIMARY, "SELECT @@gtid_binlog_pos")[0][0]
    assert rows(TARGET, f"SELECT MASTER_GTID_WAIT('{position}', 120)") == [["0"]]
    assert rows(TARGET, f"SHOW TABLES IN foobar LIKE '{dropped['table'].split('.')[1]}'") == [], "the drop was not replayed"
    assert_stored_once(TARGET, dropped["load"])
    code, report, lines, checked = table_checksum(PRIMARY, REPLICAS)
    assert code == 0, report
    assert lines and all(fields[1] == "0" and fields[2] == "0" for fields in lines), report
    assert {name: differ for name, (chunks, differ) in checked.items() if chunks > 0} == dict.fromkeys(REPLICAS, 0), (checked, report)


def test_a_point_the_primary_never_wrote_leaves_the_target_replicating_from_nobody(dropped):
    """A typo in the GTID: the replay never reaches it. Once restore_timeout
    is over the playbook fails and says why, and the target does not go on
    following the primary past the backup; then it is attached again."""
    domain, server, seq = rows(PRIMARY, "SELECT @@gtid_binlog_pos")[0][0].split(",")[0].split("-")
    never = f"{domain}-{server}-{int(seq) + 1000000}"
    result = playbook("playbooks/restore.yml", "-e", f"restore_target={TARGET}", "-e", f"restore_until_gtid={never}",
                      "-e", "restore_force=true", "-e", "restore_timeout=10")
    assert result.returncode != 0, output(result)
    assert f"The replay to {never} failed" in flat(result) and "replicates from nobody" in flat(result), output(result)
    assert slave_status(TARGET) == {}, "the target still replicates after a failed replay"
    assert rows(TARGET, "SELECT @@read_only") == [["1"]]

    attached = playbook("playbooks/restore.yml", "-e", f"restore_target={TARGET}")
    assert attached.returncode == 0, output(attached)
    assert slave_status(TARGET).get("Slave_SQL_Running") == "Yes"


def test_the_binlog_archive_holds_the_primarys_log_and_every_acknowledged_write():
    """distweb-binlog-archive on the backup host copies the primary's
    binary log as it is written: under a logged write load, the archive
    reaches the primary's position, its files are the primary's byte for
    byte, every acknowledged write is in them, and the archive is no
    replica of the primary (SHOW SLAVE HOSTS) and cost the load nothing."""
    assert docker("exec", container(BACKUP_HOST), "systemctl", "is-active", "distweb-binlog-archive.service").stdout.strip() == "active"
    with WriteLoad(max_writes=400, max_seconds=30) as load:
        time.sleep(8)
    assert load.failed == 0, load.errors[:5]
    name, pos = rows(PRIMARY, "SHOW MASTER STATUS")[0][:2]
    segment = archive_segment(PRIMARY)
    wait_for(lambda: archived_size(segment, name) >= int(pos), timeout=60, what=f"the archive reaching {name}:{pos}")
    log_dir = rows(PRIMARY, "SELECT @@global.log_bin_basename")[0][0].rsplit("/", 1)[0]
    files = rows(PRIMARY, "SHOW BINARY LOGS")
    for file_name, size in files:
        writing = file_name == name
        size = int(pos) if writing else int(size)
        assert log_digest(BACKUP_HOST, f"{segment}/{file_name}", size, writing) == log_digest(
            PRIMARY, f"{log_dir}/{file_name}", size, writing), f"the archived {file_name} differs from the primary's in its first {size} bytes"
    values = logged_values(BACKUP_HOST, f"{segment}/*")
    missing = [value for _id, value in load.acknowledged if value not in values]
    assert load.acknowledged and missing == [], f"{len(missing)} acknowledged writes are not in the archive: {missing[:5]}"
    # no replica to the primary, and the backup host's own replication is untouched
    readers = {row[0] for row in rows(PRIMARY, "SHOW SLAVE HOSTS")}
    assert ARCHIVE_SERVER_ID not in readers and rows(BACKUP_HOST, "SELECT @@global.server_id")[0][0] in readers, readers
    assert slave_status(BACKUP_HOST).get("Slave_IO_Running") == "Yes"
    assert metric(f'distweb_mysql_binlog_archive_up{{source="{PRIMARY}"}}', ARCHIVE_METRICS) == 1
    # MySQLBinlogArchiveBehind stays quiet
    assert metric("distweb_mysql_binlog_archive_behind_seconds", ARCHIVE_METRICS) <= metric(
        "distweb_mysql_binlog_archive_max_behind_seconds", ARCHIVE_METRICS)


def test_a_point_in_time_restore_from_the_archive_needs_no_log_on_the_primary(dropped):
    """The primary's binary log purged past the backup (a primary rebuilt,
    or binlog_expire_logs_seconds shorter than the backups' age): a replay
    from the primary fails and says why, one from the archive brings back
    the table and every write acknowledged before the drop, and nothing
    after it. Then a new backup, and the target is a replica again."""
    sql(PRIMARY, "FLUSH BINARY LOGS")

    def purged():
        # a file a dump thread still reads is kept (with a warning): again until they moved on
        sql(PRIMARY, "PURGE BINARY LOGS BEFORE NOW()")
        return len(rows(PRIMARY, "SHOW BINARY LOGS")) == 1

    wait_for(purged, timeout=60, interval=1, what="the primary's binary log purged to its current file")
    refused = playbook("playbooks/restore.yml", "-e", f"restore_target={TARGET}", "-e", f"restore_until_gtid={dropped['until']}",
                       "-e", "restore_force=true", "-e", "restore_timeout=60")
    assert refused.returncode != 0, output(refused)
    # the replica's own words (1236), and where else to replay from
    assert "binlog files have been purged" in flat(refused), output(refused)
    assert "-e restore_binlog_from=archive" in flat(refused), output(refused)

    result = playbook("playbooks/restore.yml", "-e", f"restore_target={TARGET}", "-e", f"restore_until_gtid={dropped['until']}",
                      "-e", "restore_force=true", "-e", "restore_binlog_from=archive")
    assert result.returncode == 0, output(result)
    assert_restored_up_to(dropped, dropped["drop_started"], dropped["drop_done"])

    # the primary's log no longer reaches back to the last backup either: a
    # new one, then the target replicates again
    backup = docker("exec", container(BACKUP_HOST), "systemctl", "start", "distweb-backup.service", check=False, timeout=900)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    attached = playbook("playbooks/restore.yml", "-e", f"restore_target={TARGET}")
    assert attached.returncode == 0, output(attached)
    assert slave_status(TARGET).get("Slave_SQL_Running") == "Yes"


def test_a_corrupted_backup_fails_its_restore_test():
    latest = published()[0]["name"]
    copy = f"{BACKUP_DIR}/20000101T000000Z"  # the oldest name: the next backup's retention removes it
    archive = f"{copy}/backup.tar.zst"
    docker("exec", container(BACKUP_HOST), "cp", "-a", f"{BACKUP_DIR}/{latest}", copy)
    try:
        # one byte changed in the middle of the archive
        docker("exec", container(BACKUP_HOST), "python3", "-c",
               "import os,sys; p=sys.argv[1]; f=open(p,'r+b'); f.seek(os.path.getsize(p)//2); b=f.read(1); "
               "f.seek(-1,1); f.write(bytes([b[0]^0xff])); f.close()", archive)
        failed = backup_cli("verify", "20000101T000000Z", check=False)
        assert failed.returncode == 1 and "checksum mismatch" in failed.stderr, failed.stdout + failed.stderr
        assert metric("distweb_mysql_backup_last_verify_success") == 0

        # a restore of it is refused before the target is touched
        before = rows(TARGET, "SELECT @@gtid_slave_pos"), slave_status(TARGET).get("Master_Host")
        result = playbook("playbooks/restore.yml", "-e", f"restore_target={TARGET}", "-e", "restore_backup=20000101T000000Z",
                          "-e", "restore_force=true")
        assert result.returncode != 0 and "Check the backup archive's checksum" in flat(result), output(result)
        assert slave_status(TARGET).get("Slave_SQL_Running") == "Yes" and slave_status(TARGET).get("Master_Host") == before[1]

        # the checksums rewritten to match: unpacking (zstd's own check) or the server still catches it
        docker("exec", container(BACKUP_HOST), "sh", "-ec",
               f"cd {copy}; sha256sum backup.tar.zst > backup.tar.zst.sha256; "
               f"python3 -c \"import json,hashlib; i=json.load(open('info.json')); "
               f"i['sha256']=hashlib.sha256(open('backup.tar.zst','rb').read()).hexdigest(); json.dump(i,open('info.json','w'))\"")
        failed = backup_cli("verify", "20000101T000000Z", check=False)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "does not unpack" in failed.stderr or "would not start" in failed.stderr or "failed" in failed.stderr, failed.stderr
    finally:
        docker("exec", container(BACKUP_HOST), "rm", "-rf", copy)
    backup_cli("verify")
    assert metric("distweb_mysql_backup_last_verify_success") == 1


def timer_states(name):
    """{timer: "enabled active"} of the two backup timers on ``name``."""
    return {timer: " ".join(docker("exec", container(name), "systemctl", verb, timer, check=False).stdout.strip()
                            for verb in ("is-enabled", "is-active"))
            for timer in ("distweb-backup.timer", "distweb-backup-verify.timer")}


def has_metrics(name):
    return docker("exec", container(name), "test", "-e", METRICS, check=False).returncode == 0


def test_the_backups_move_with_mysql_backup_host_and_back():
    # After a failover that made the backup host the primary, the operator
    # fixes the inventory and runs playbooks/backups.yml: the backups move
    # to the new mysql_backup_host, which takes its first one at once, and
    # the old host stops taking them but keeps what it published. Here the
    # move is to the other replica, then back.
    kept = published()
    moved = playbook("playbooks/backups.yml", "-e", f"mysql_backup_host={TARGET}")
    assert moved.returncode == 0, output(moved)
    assert recap(moved.stdout)[PRIMARY]["changed"] == 0, recap(moved.stdout)
    assert set(timer_states(BACKUP_HOST).values()) == {"disabled inactive"}, timer_states(BACKUP_HOST)
    assert not has_metrics(BACKUP_HOST), "the old backup host still exports backup metrics"
    assert published() == kept, "the old backup host's backups were not kept"
    assert set(timer_states(TARGET).values()) == {"enabled active"}, timer_states(TARGET)
    first = published(TARGET)
    assert len(first) == 1 and first[0]["host"] == TARGET and first[0]["from_read_only"] is True, first
    assert has_metrics(TARGET)

    back = playbook("playbooks/backups.yml")
    assert back.returncode == 0, output(back)
    assert set(timer_states(BACKUP_HOST).values()) == {"enabled active"}, timer_states(BACKUP_HOST)
    # its metrics are back at once, from the backups it kept (no new one taken)
    assert published() == kept
    assert metric("distweb_mysql_backup_count") == len(kept)
    assert metric("distweb_mysql_backup_last_success_timestamp_seconds") == kept[0]["finished"]
    assert set(timer_states(TARGET).values()) == {"disabled inactive"}, timer_states(TARGET)
    assert not has_metrics(TARGET)
    # and a run more changes nothing
    again = playbook("playbooks/backups.yml")
    assert again.returncode == 0, output(again)
    assert {host: c["changed"] for host, c in recap(again.stdout).items()} == dict.fromkeys(recap(again.stdout), 0)
