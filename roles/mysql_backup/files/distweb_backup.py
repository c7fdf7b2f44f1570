# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Physical backups of the local database server, each one proven to
restore before it counts.

  backup          refuse to start when the file system of <dir> has less
                  free space than twice the server's data directory plus
                  a margin (the copy, then its archive beside it); take a
                  copy of the running server (mariadb-backup, no global
                  lock), prepare it (apply the redo log written while it
                  was taken: a copy that cannot be prepared is no
                  backup), pack and compress it (tar, zstd), record its
                  SHA-256 and GTID position, restore-test it (below), and
                  only then publish it under <dir>/<UTC time>; then remove
                  the oldest beyond the retention count.
  verify [NAME]   restore test of a published backup (default: the latest):
                  the archive's SHA-256 must match, it must unpack, and a
                  throwaway server (no network, its own socket) must start
                  on the unpacked copy and read every table of it.
  list            the published backups, newest first, as JSON.
  metrics         write the metrics file again from the published backups
                  and the last runs' outcomes (the role runs it when the
                  backups come back to a node that had stopped them).
  gtid-at TIME    the GTID position of the last transaction stamped before
                  TIME (UTC, YYYY-MM-DD HH:MM:SS), read from this node's own
                  binary log (a replica's holds the primary's transactions,
                  with their original time stamps, one-second precision).
                  Refused when the log starts after TIME, or holds nothing
                  at or after it (the node may not have it all yet).
  archive         the binary log archive (distweb-binlog-archive.service):
                  keep mariadb-binlog --stop-never copying the binary log
                  of the one writable database node into a directory per
                  stretch of one server's log; follow the new primary after
                  a failover or switchover once the old one's log is
                  archived; wait while there is no writable node, or two.
                  Runs until stopped.
  archive-replay --from GTID --until GTID
                  the archived transactions after --from up to and
                  including --until, as SQL for the client, from the newest
                  stretch that begins at or before --from; refused when none
                  does or it does not reach --until.

Every run writes Prometheus metrics for the node exporter's textfile
collector: when the last good backup finished, whether the last run
succeeded, its size and duration, whether it copied a writable server,
whether the inventory names this node a replica, how old a backup may get,
and whether the last verification passed; the archive writes its own (how
far behind the primary it is, which node it follows). The settings are in a JSON file (--config,
written by the distweb.infra.mysql_backup role)."""

from __future__ import absolute_import, division, print_function

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ARCHIVE = 'backup.tar.zst'
INFO = 'info.json'
# Free space a backup needs besides twice the data directory: the redo log
# the copy's prepare applies, the restore test's server files, the logs.
SPACE_MARGIN = 256 * 1024 * 1024
SYSTEM_SCHEMAS = ('mysql', 'information_schema', 'performance_schema', 'sys')


class BackupError(Exception):
    pass


def log(message):
    print(message, flush=True)


def run(argv, log_file=None, **kwargs):
    """Run argv; on failure raise BackupError with the tail of its output."""
    if log_file:
        with open(log_file, 'ab') as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)
        if done.returncode != 0:
            with open(log_file, 'rb') as got:
                tail = got.read()[-2000:].decode('utf-8', 'replace')
            raise BackupError('%s failed (exit %d): %s' % (argv[0], done.returncode, tail))
        return done
    done = subprocess.run(argv, capture_output=True, check=False, **kwargs)
    if done.returncode != 0:
        raise BackupError('%s failed (exit %d): %s' % (
            argv[0], done.returncode, (done.stderr or done.stdout)[-2000:].decode('utf-8', 'replace')))
    return done


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as data:
        for block in iter(lambda: data.read(1024 * 1024), b''):
            digest.update(block)
    return digest.hexdigest()


def published(cfg):
    """Names of the published backups (directories with an info file), oldest first."""
    names = []
    for name in os.listdir(cfg['dir']):
        if not name.startswith('.') and os.path.isfile(os.path.join(cfg['dir'], name, INFO)):
            names.append(name)
    return sorted(names)


def read_info(cfg, name):
    """A published backup's info; its name is its directory's (a copied or
    renamed backup is listed, chosen and restored by the name it has)."""
    with open(os.path.join(cfg['dir'], name, INFO)) as data:
        info = json.load(data)
    info['name'] = name
    return info


def write_json(path, value):
    with open(path + '.new', 'w') as out:
        json.dump(value, out, indent=2, sort_keys=True)
        out.write('\n')
    os.replace(path + '.new', path)


def sql(cfg, query, socket_path=None):
    """Rows of a query on a local server (tab-separated, no headers)."""
    done = run([cfg['client'], '--socket=%s' % (socket_path or cfg['socket']), '--batch', '--skip-column-names',
                '--execute', query])
    return [line.split('\t') for line in done.stdout.decode().splitlines()]


def position(copy_dir, cfg, replica):
    """The copy's GTID position. On a replica, the applied position the
    backup tool recorded with --slave-info (its gtid_slave_pos at the
    copy's consistent point); else, or when that is missing, the last field
    of its binlog info. Each file under the flavour's name or the older
    xtrabackup_ one (MariaDB 10.11 writes those)."""
    def first(names):
        for name in names:
            try:
                with open(os.path.join(copy_dir, name)) as data:
                    return data.read()
            except OSError:
                continue
        return None
    if replica:
        slave_info = first([cfg['binlog_info'].replace('binlog_info', 'slave_info'), 'xtrabackup_slave_info']) or ''
        found = re.search(r"gtid_slave_pos\s*=\s*'([0-9,-]*)'", slave_info)
        if found and found.group(1):
            return found.group(1)
    binlog_info = first([cfg['binlog_info'], 'xtrabackup_binlog_info'])
    if binlog_info is None:
        raise BackupError('the copy has neither %s nor xtrabackup_binlog_info' % cfg['binlog_info'])
    fields = binlog_info.split()
    return fields[-1] if len(fields) >= 3 else ''


def after(position, until):
    """Whether a GTID position is past ``until`` (a GTID, or a position: one
    GTID per domain) in one of its domains: such a backup cannot be rolled
    forward to it."""
    have = parse_position(position)
    for domain, gtid in parse_position(until).items():
        if domain in have and int(have[domain].split('-')[2]) > int(gtid.split('-')[2]):
            return True
    return False


def pack(copy_dir, archive, cfg):
    """tar | zstd of the prepared copy; zstd adds its own frame checksum."""
    with open(archive, 'wb') as out:
        tar = subprocess.Popen(['tar', '-C', copy_dir, '-cf', '-', '.'], stdout=subprocess.PIPE)
        zstd = subprocess.run(['zstd', '-q', '-T0', '-%d' % cfg['compress_level'], '-c'],
                              stdin=tar.stdout, stdout=out, stderr=subprocess.PIPE, check=False)
        tar.stdout.close()
        if tar.wait() != 0 or zstd.returncode != 0:
            raise BackupError('packing the copy failed: %s' % zstd.stderr.decode('utf-8', 'replace')[-500:])


def unpack(archive, target):
    os.makedirs(target)
    zstd = subprocess.Popen(['zstd', '-q', '-d', '-c', archive], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tar = subprocess.run(['tar', '-C', target, '-xf', '-'], stdin=zstd.stdout, capture_output=True, check=False)
    zstd.stdout.close()
    zstd_error = zstd.stderr.read().decode('utf-8', 'replace')
    if zstd.wait() != 0 or tar.returncode != 0:
        raise BackupError('the archive does not unpack: %s %s' % (
            zstd_error[-500:], tar.stderr.decode('utf-8', 'replace')[-500:]))


def restore_test(cfg, archive, expected_sha256, work):
    """Prove that an archive restores: checksum, unpack, start a throwaway
    server on it (no network, its own socket and pid file), read every
    table. Returns {tables, rows}."""
    got = sha256(archive)
    if got != expected_sha256:
        raise BackupError('checksum mismatch: %s has SHA-256 %s, the backup recorded %s' % (
            archive, got, expected_sha256))
    data = os.path.join(work, 'data')
    unpack(archive, data)
    run(['chown', '-R', cfg['server_user'], work])
    sock = os.path.join(work, 'mysqld.sock')
    server = subprocess.Popen([
        cfg['server_binary'], '--no-defaults', '--user=%s' % cfg['server_user'], '--datadir=%s' % data,
        '--socket=%s' % sock, '--pid-file=%s' % os.path.join(work, 'mysqld.pid'), '--skip-networking',
        '--skip-grant-tables', '--skip-log-bin', '--skip-slave-start', '--innodb-buffer-pool-size=64M',
        '--log-error=%s' % os.path.join(work, 'mysqld.err')], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + cfg['verify_start_timeout']
        while True:
            if server.poll() is not None:
                raise BackupError('the server would not start on the restored copy: %s' % tail(
                    os.path.join(work, 'mysqld.err')))
            if os.path.exists(sock) and can_connect(sock):
                break
            if time.monotonic() > deadline:
                raise BackupError('the server did not start on the restored copy within %ds: %s' % (
                    cfg['verify_start_timeout'], tail(os.path.join(work, 'mysqld.err'))))
            time.sleep(0.5)
        tables = sql(cfg, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'"
                          " AND TABLE_SCHEMA NOT IN (%s)" % ', '.join("'%s'" % s for s in SYSTEM_SCHEMAS), sock)
        rows = 0
        for schema, table in tables:
            # reads each table through an index (a damaged page it meets fails
            # the query); not a full CHECK TABLE, which would take far longer
            rows += int(sql(cfg, 'SELECT COUNT(*) FROM `%s`.`%s`' % (schema.replace('`', '``'), table.replace('`', '``')),
                            sock)[0][0])
        return {'tables': len(tables), 'rows': rows}
    finally:
        server.terminate()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def can_connect(path):
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def tail(path, size=1500):
    try:
        with open(path, 'rb') as data:
            return data.read()[-size:].decode('utf-8', 'replace')
    except OSError:
        return '(no log)'


def tree_bytes(path):
    """Sum of the sizes of the files under path (a file removed while it is
    walked, such as a temporary table's, counts nothing)."""
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                continue
    return total


def check_space(cfg):
    """Refuse a backup the file system of cfg['dir'] has no room for: the
    copy takes about the size of the server's data directory, and its
    archive up to as much again (the compression is not known before), then
    the restore test's unpacked copy takes the copy's place."""
    datadir = sql(cfg, 'SELECT @@datadir')[0][0]
    if not os.path.isdir(datadir):
        raise BackupError('the server\'s data directory %s (@@datadir) is not a directory here' % datadir)
    data_bytes = tree_bytes(datadir)
    needed = 2 * data_bytes + SPACE_MARGIN
    stat = os.statvfs(cfg['dir'])
    free = stat.f_bavail * stat.f_frsize
    if free < needed:
        raise BackupError(
            'not enough free space in %s: %d bytes free, %d bytes needed (twice the %d bytes in the data directory %s, '
            'for the copy and its archive, plus a %d-byte margin); nothing was copied' % (
                cfg['dir'], free, needed, data_bytes, datadir, SPACE_MARGIN))
    log('%d bytes free in %s, %d needed' % (free, cfg['dir'], needed))


def write_textfile(path, lines):
    """Replace a textfile collector's file at once, readable by the
    exporter's account, and so are the directories made for it: the
    archive's service runs with umask 0077, which must not leave the
    collector's directory unreadable to the node exporter."""
    mask = os.umask(0o022)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    finally:
        os.umask(mask)
    with open(path + '.new', 'w') as out:
        out.write('\n'.join(lines) + '\n')
    os.chmod(path + '.new', 0o644)
    os.replace(path + '.new', path)


def metrics(cfg, ok=None, duration=None, verified=None):
    """Write the textfile collector's metrics from the published backups and
    this run's outcome (None: not a run of that kind, keep the last value)."""
    path = cfg.get('metrics_file')
    if not path:
        return
    state_path = os.path.join(cfg['dir'], '.state.json')
    state = {}
    if os.path.exists(state_path):
        with open(state_path) as data:
            state = json.load(data)
    if ok is not None:
        state['last_run_success'] = 1 if ok else 0
        state['last_run_timestamp'] = time.time()
        if duration is not None and ok:
            state['last_duration_seconds'] = duration
    if verified is not None:
        state['last_verify_success'] = 1 if verified else 0
    write_json(state_path, state)
    names = published(cfg)
    latest = read_info(cfg, names[-1]) if names else None
    lines = [
        '# HELP distweb_mysql_backup_max_age_seconds How old the latest backup may get before it is overdue.',
        '# TYPE distweb_mysql_backup_max_age_seconds gauge',
        'distweb_mysql_backup_max_age_seconds %d' % cfg['max_age_seconds'],
        '# HELP distweb_mysql_backup_count Published backups kept.',
        '# TYPE distweb_mysql_backup_count gauge',
        'distweb_mysql_backup_count %d' % len(names),
        '# HELP distweb_mysql_backup_replica_expected 1 when the inventory names this node a replica.',
        '# TYPE distweb_mysql_backup_replica_expected gauge',
        'distweb_mysql_backup_replica_expected %d' % (1 if cfg.get('replica_expected') else 0),
    ]
    if latest:
        lines += [
            '# HELP distweb_mysql_backup_last_success_timestamp_seconds When the latest published backup was finished.',
            '# TYPE distweb_mysql_backup_last_success_timestamp_seconds gauge',
            'distweb_mysql_backup_last_success_timestamp_seconds %d' % latest['finished'],
            '# HELP distweb_mysql_backup_last_size_bytes Size of the latest backup archive.',
            '# TYPE distweb_mysql_backup_last_size_bytes gauge',
            'distweb_mysql_backup_last_size_bytes %d' % latest['archive_bytes'],
            '# HELP distweb_mysql_backup_last_from_primary 1 when the latest backup copied a writable server.',
            '# TYPE distweb_mysql_backup_last_from_primary gauge',
            'distweb_mysql_backup_last_from_primary %d' % (0 if latest.get('from_read_only') else 1),
        ]
    for key, name, text in (
            ('last_run_success', 'distweb_mysql_backup_last_run_success', '1 when the last backup run published a backup.'),
            ('last_duration_seconds', 'distweb_mysql_backup_last_duration_seconds', 'Seconds the last good backup took.'),
            ('last_verify_success', 'distweb_mysql_backup_last_verify_success',
             '1 when the last restore test (distweb-backup verify) passed.')):
        if key in state:
            lines += ['# HELP %s %s' % (name, text), '# TYPE %s gauge' % name, '%s %s' % (name, state[key])]
    write_textfile(path, lines)


def do_backup(cfg):
    started = time.time()
    stamp = datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    check_space(cfg)
    work = tempfile.mkdtemp(prefix='.work-%s-' % stamp, dir=cfg['dir'])
    os.chmod(work, 0o750)
    shutil.chown(work, group=cfg['server_user'])
    try:
        copy = os.path.join(work, 'copy')
        log_file = os.path.join(work, 'backup.log')
        read_only = sql(cfg, 'SELECT @@global.read_only')[0][0] == '1'
        log('copying the running server (%s)' % ('a read-only replica' if read_only else 'the writable primary'))
        argv = [cfg['backup_command'], '--backup', '--target-dir=%s' % copy, '--user=root', '--socket=%s' % cfg['socket']]
        run(argv + (['--slave-info'] if read_only else []), log_file)
        log('preparing the copy')
        run([cfg['backup_command'], '--prepare', '--target-dir=%s' % copy], log_file)
        gtid = position(copy, cfg, read_only)
        # read first by a restore (distweb.infra.mysql_replica, seed_backup.yml)
        with open(os.path.join(copy, 'distweb_backup_gtid'), 'w') as out:
            out.write(gtid + '\n')
        copied = time.time()
        archive = os.path.join(work, ARCHIVE)
        log('packing the copy')
        pack(copy, archive, cfg)
        data_bytes = tree_bytes(copy)
        shutil.rmtree(copy)
        digest = sha256(archive)
        with open(archive + '.sha256', 'w') as out:
            out.write('%s  %s\n' % (digest, ARCHIVE))
        log('restore test of the archive')
        checked = restore_test(cfg, archive, digest, os.path.join(work, 'verify'))
        shutil.rmtree(os.path.join(work, 'verify'), ignore_errors=True)
        info = {
            'name': stamp, 'host': socket.gethostname(), 'started': int(started), 'copied': int(copied),
            'finished': int(time.time()), 'gtid': gtid, 'from_read_only': read_only, 'sha256': digest,
            'archive_bytes': os.path.getsize(archive), 'data_bytes': data_bytes, 'verified': checked,
            'verified_at': int(time.time()),
        }
        write_json(os.path.join(work, INFO), info)
        final = os.path.join(cfg['dir'], stamp)
        os.rename(work, final)
        os.chmod(final, 0o750)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for old in published(cfg)[:-cfg['keep']]:
        log('removing %s (keeping the %d newest)' % (old, cfg['keep']))
        shutil.rmtree(os.path.join(cfg['dir'], old))
    prune_archive(cfg)
    log('published %s: GTID %s, %d bytes of data in a %d-byte archive, %d tables and %d rows restored in the test' % (
        stamp, gtid, data_bytes, info['archive_bytes'], checked['tables'], checked['rows']))
    return info


# A binary log event's header as mariadb-binlog prints it (TZ=UTC), and the
# two events that carry GTIDs: a transaction's own, and the list of every
# domain's last GTID at the start of a log file.
EVENT_HEADER = re.compile(r'^#(\d{6}) +(\d{1,2}:\d{2}:\d{2}) server id \d+ +end_log_pos \d+')
EVENT_GTID = re.compile(r'\sGTID (\d+)-(\d+)-(\d+)')
EVENT_GTID_LIST = re.compile(r'\sGtid list \[([0-9,\- ]*)\]')


def parse_position(text):
    """{domain: 'domain-server-seq'} of a GTID position."""
    found = {}
    for item in (text or '').replace(' ', '').split(','):
        if item:
            found[item.split('-')[0]] = item
    return found


def gtid_at(cfg, moment):
    """The GTID position (one GTID per domain, comma-separated) of the last
    transaction whose events this node's binary log stamps before
    ``moment`` (datetime, UTC)."""
    if moment > datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None):
        raise BackupError('%s is in the future (UTC)' % moment)
    stop = moment.strftime('%Y-%m-%d %H:%M:%S')
    base = os.path.dirname(sql(cfg, 'SELECT @@global.log_bin_basename')[0][0])
    files = [os.path.join(base, row[0]) for row in sql(cfg, 'SHOW BINARY LOGS')]
    if not files:
        raise BackupError('this node writes no binary log')
    # read as it comes: the log up to the point may be days of writes
    reader = subprocess.Popen([cfg['binlog_command'], '--base64-output=decode-rows', '--stop-datetime=%s' % stop] + files,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, TZ='UTC'))
    state, seen = {}, 0
    for raw in reader.stdout:
        line = raw.decode(errors='replace')
        header = EVENT_HEADER.match(line)
        if not header:
            continue
        stamp = datetime.datetime.strptime('%s %s' % header.groups(), '%y%m%d %H:%M:%S')
        if stamp >= moment:  # mariadb-binlog stops here; the file's own header may be later
            continue
        seen += 1
        listed = EVENT_GTID_LIST.search(line)
        if listed and not state:
            state = parse_position(listed.group(1))
        gtid = EVENT_GTID.search(line)
        if gtid:
            state[gtid.group(1)] = '-'.join(gtid.groups())
    errors = reader.stderr.read()
    if reader.wait() != 0:
        raise BackupError('%s failed (exit %d): %s' % (cfg['binlog_command'], reader.returncode,
                                                       errors[-2000:].decode('utf-8', 'replace')))
    if not seen:
        raise BackupError('the binary log of this node (%s and on) begins after %s: it cannot say what was '
                          'written before; name a GTID instead' % (os.path.basename(files[0]), stop))
    whole = parse_position(sql(cfg, 'SELECT @@global.gtid_binlog_pos')[0][0])
    if state == whole:
        raise BackupError('this node has no transaction stamped at or after %s yet (its last: %s): it may not '
                          'have all of those before it; wait for one, or name a GTID' % (stop, ','.join(sorted(whole.values()))))
    if not state:
        raise BackupError('no GTID before %s in the binary log of this node' % stop)
    return ','.join(state[domain] for domain in sorted(state, key=int))


def prune_archive(cfg, margin=3600):
    """Remove the archived binary log files no kept backup needs: those
    last written more than ``margin`` seconds before the oldest kept
    backup started, up to the first one that is newer. The last file of
    each server's newest segment stays (the archive may go on with it);
    older segments of a server are never written again and go whole."""
    names = published(cfg)
    if not names or not cfg.get('archive'):
        return
    before = read_info(cfg, names[0])['started'] - margin
    newest = {}
    for path in segments(cfg):
        newest[SEGMENT.match(os.path.basename(path)).group(1)] = path
    for path in segments(cfg):
        files = segment_files(path)
        for name in files[:-1] if path in newest.values() else files:
            if os.path.getmtime(os.path.join(path, name)) >= before:
                break
            log('removing the archived %s of %s (older than every kept backup)' % (name, os.path.basename(path)))
            os.remove(os.path.join(path, name))
        if path not in newest.values() and not segment_files(path):
            shutil.rmtree(path)


# The binary log archive: a copy of the primary's binary log, kept beside
# the backups as the primary writes it, for point-in-time restores that
# need no primary. One directory ("segment") per stretch of one server's
# log, named <UTC start>-<server id>; a server whose log was reset (a
# rebuilt node) or purged past the archive starts a new one.
SEGMENT = re.compile(r'^\d{8}T\d{6}Z-(\d+)$')
BINLOG_NAME = re.compile(r'^[A-Za-z0-9_.-]+\.(\d+)$')
# Checks of the source in a row that may fail before the archive leaves it.
ARCHIVE_SOURCE_FAILURES = 3


def binlog_key(name):
    match = BINLOG_NAME.match(name)
    return (name.rsplit('.', 1)[0], int(match.group(1))) if match else (name, -1)


def node_sql(cfg, node, query, timeout=10):
    """Rows of a query on a database node, as the archive's account."""
    archive = cfg['archive']
    argv = [cfg['client'], '--defaults-file=%s' % archive['client_config'], '--host=%s' % node['host'],
            '--port=%d' % node['port'], '--connect-timeout=3', '--batch', '--skip-column-names', '--execute', query]
    try:
        done = subprocess.run(argv, capture_output=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BackupError('%s did not answer within %d s' % (node['name'], timeout))
    if done.returncode != 0:
        raise BackupError('%s: %s' % (node['name'], done.stderr.decode('utf-8', 'replace').strip()[-300:]))
    return [line.split('\t') for line in done.stdout.decode().splitlines()]


def find_primary(cfg):
    """(node, server id) of the one writable node of the cluster. None
    writable, or more than one, is refused: the archive waits rather than
    follow the wrong one."""
    writable, failed = [], []
    for node in cfg['archive']['nodes']:
        try:
            read_only, server_id = node_sql(cfg, node, 'SELECT @@global.read_only, @@global.server_id')[0][:2]
        except (BackupError, IndexError, ValueError) as error:
            failed.append(str(error))
            continue
        if read_only == '0':
            writable.append((node, server_id))
    if len(writable) != 1:
        raise BackupError('%s writable nodes (%s)%s: archiving nothing until there is one' % (
            len(writable), ', '.join(node['name'] for node, _server_id in writable) or 'none',
            ('; unreachable: ' + '; '.join(failed)) if failed else ''))
    return writable[0]


def segments(cfg, server_id=None):
    """Segment directories (paths) of the archive, oldest first; only one
    server's with ``server_id``."""
    root = cfg['archive']['dir']
    if not os.path.isdir(root):
        return []
    found = []
    for name in sorted(os.listdir(root)):
        match = SEGMENT.match(name)
        if match and (server_id is None or match.group(1) == str(server_id)):
            found.append(os.path.join(root, name))
    return found


def segment_files(path):
    return sorted((name for name in os.listdir(path) if BINLOG_NAME.match(name)), key=binlog_key)


def file_gtid_list(cfg, path):
    """The Gtid list event at the start of a binary log file (the position
    before its first transaction) as {domain: gtid}; None when the file
    does not hold one (yet)."""
    reader = subprocess.Popen([cfg['binlog_command'], path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for raw in reader.stdout:
            listed = EVENT_GTID_LIST.search(raw.decode(errors='replace'))
            if listed:
                return parse_position(listed.group(1))
    finally:
        reader.kill()
        reader.wait()
    return None


def server_gtid_list(cfg, node, name):
    """The Gtid list event at the start of one of a node's binary log files."""
    if not BINLOG_NAME.match(name):
        raise BackupError('unexpected binary log name %r' % name)
    for row in node_sql(cfg, node, "SHOW BINLOG EVENTS IN '%s' LIMIT 4" % name):
        if len(row) > 5 and row[2] == 'Gtid_list':
            return parse_position(row[5].strip('[]'))
    return None


def archive_start(cfg, node, server_id, server_files):
    """(segment path, first file to fetch): go on with the newest segment of
    this server when its last file is still on the server and begins at the
    same position there (fetched again whole: it may have been cut short);
    else a new segment from the server's oldest file."""
    if not server_files:
        raise BackupError('%s writes no binary log' % node['name'])
    for path in reversed(segments(cfg, server_id)):
        files = segment_files(path)
        if not files:
            continue
        last = files[-1]
        if last not in server_files:
            log('%s no longer has %s (reset or purged): a new segment' % (node['name'], last))
        else:
            ours = file_gtid_list(cfg, os.path.join(path, last))
            if ours is None or ours == server_gtid_list(cfg, node, last):
                return path, last
            log('%s of %s begins elsewhere than the archived one (its log was reset): a new segment' % (last, node['name']))
        break
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    return os.path.join(cfg['archive']['dir'], '%s-%s' % (stamp, server_id)), server_files[0]


def archived_past(path, name, pos):
    """Whether the segment holds a binary log up to (name, pos)."""
    files = segment_files(path)
    if not files or binlog_key(files[-1]) > binlog_key(name):
        return bool(files)
    return files[-1] == name and os.path.getsize(os.path.join(path, name)) >= pos


def archive_metrics(cfg, up, behind, source=''):
    archive = cfg['archive']
    path = archive.get('metrics_file')
    if not path:
        return
    lines = [
        '# HELP distweb_mysql_binlog_archive_up 1 while the archive copies the binary log of the one writable node.',
        '# TYPE distweb_mysql_binlog_archive_up gauge',
        'distweb_mysql_binlog_archive_up{source="%s"} %d' % (source, 1 if up else 0),
        '# HELP distweb_mysql_binlog_archive_behind_seconds Seconds since the newest position of the primary known to be archived.',
        '# TYPE distweb_mysql_binlog_archive_behind_seconds gauge',
        'distweb_mysql_binlog_archive_behind_seconds %.1f' % behind,
        '# HELP distweb_mysql_binlog_archive_max_behind_seconds How far behind the archive may fall before it is late.',
        '# TYPE distweb_mysql_binlog_archive_max_behind_seconds gauge',
        'distweb_mysql_binlog_archive_max_behind_seconds %d' % archive['max_behind_seconds'],
        '# HELP distweb_mysql_binlog_archive_updated_timestamp_seconds When the archive last checked itself.',
        '# TYPE distweb_mysql_binlog_archive_updated_timestamp_seconds gauge',
        'distweb_mysql_binlog_archive_updated_timestamp_seconds %d' % time.time(),
    ]
    write_textfile(path, lines)


class Archiver(object):
    """Keeps one mariadb-binlog --stop-never copying the writable node's
    binary log into a segment, and checks it every check_seconds: that its
    source is still writable (a demoted or fenced primary is left once the
    archive has all it wrote), and how far behind the archive is."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.check = cfg['archive']['check_seconds']
        self.child = self.source = self.segment = self.errors = None
        self.samples = []
        self.covered_at = self.moved_at = time.time()
        self.held = None
        self.failures = self.demoted = 0

    def start(self):
        node, server_id = find_primary(self.cfg)
        server_files = [row[0] for row in node_sql(self.cfg, node, self.cfg['archive']['binlog_files'])]
        segment, first = archive_start(self.cfg, node, server_id, server_files)
        os.makedirs(segment, exist_ok=True)
        archive = self.cfg['archive']
        argv = [self.cfg['binlog_command'], '--defaults-file=%s' % archive['client_config'], '--host=%s' % node['host'],
                '--port=%d' % node['port'], '--read-from-remote-server', '--raw', '--stop-never',
                '--stop-never-slave-server-id=%d' % archive['server_id'], '--result-file=%s/' % segment, first]
        self.errors = tempfile.TemporaryFile()
        self.child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.errors)
        self.source, self.segment, self.samples, self.failures, self.demoted = node, segment, [], 0, 0
        log('archiving the binary log of %s (server id %s) from %s into %s' % (node['name'], server_id, first, segment))

    def stop(self, why):
        log('%s: leaving %s' % (why, self.source['name']))
        if self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(10)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        self.child = None

    def status(self):
        read_only = node_sql(self.cfg, self.source, 'SELECT @@global.read_only')[0][0] == '1'
        status = node_sql(self.cfg, self.source, self.cfg['archive']['binlog_status'])[0]
        return read_only, status[0], int(status[1])

    def step(self):
        """One check; True while the archive copies from a writable node."""
        if self.child is None:
            self.start()
        elif self.child.poll() is not None:
            self.errors.seek(0)
            errors = self.errors.read().decode('utf-8', 'replace').strip()[-500:]
            code, self.child = self.child.returncode, None
            raise BackupError('%s ended (exit %d): %s' % (self.cfg['binlog_command'], code, errors))
        now = time.time()
        try:
            read_only, name, pos = self.status()
            self.failures = 0
        except (BackupError, IndexError, ValueError) as error:
            self.failures += 1
            if self.failures >= ARCHIVE_SOURCE_FAILURES:
                self.stop('%d checks in a row failed (%s)' % (self.failures, error))
            return False
        self.samples.append((now, name, pos))
        while self.samples and archived_past(self.segment, self.samples[0][1], self.samples[0][2]):
            self.covered_at = self.samples.pop(0)[0]
        files = segment_files(self.segment)
        held = (files[-1], os.path.getsize(os.path.join(self.segment, files[-1]))) if files else None
        if held != self.held or not self.samples:
            self.held, self.moved_at = held, now
        elif now - self.moved_at > self.cfg['archive']['max_behind_seconds']:
            # the source answers and writes on, but the copy has not grown
            # by a byte (a stuck connection): a new one. A copy that moves,
            # however far behind, is left to catch up.
            self.stop('%s:%d, read %d s ago, is still not archived and the copy has not grown since' % (
                self.samples[0][1], self.samples[0][2], now - self.samples[0][0]))
            return False
        if read_only:
            # what it wrote before it was demoted is archived first, for
            # a few checks at most
            self.demoted += 1
            if not self.samples or self.demoted >= ARCHIVE_SOURCE_FAILURES:
                self.stop('%s is read-only now%s' % (self.source['name'], '' if not self.samples else
                                                     ' (and its last position was not archived)'))
            return False
        self.demoted = 0
        return True

    def run(self):
        said = None
        while True:
            up = False
            try:
                up = self.step()
            except BackupError as error:
                if str(error) != said:  # once per reason, not every check of a long wait
                    log(str(error))
                said = str(error)
            else:
                said = None
            archive_metrics(self.cfg, up, time.time() - self.covered_at, self.source['name'] if up else '')
            time.sleep(self.check)


def archive_replay(cfg, start, until, out=None):
    """Write to ``out`` (stdout) the archived transactions after the GTID
    position ``start`` up to and including ``until``, as SQL for the
    client, from the newest segment that begins at or before ``start`` in
    every domain it holds. Refused when no segment does, or when the one
    chosen does not reach ``until``."""
    start_at, until_at = parse_position(start), parse_position(until)
    for path in reversed(segments(cfg)):
        files = segment_files(path)
        if not files:
            continue
        begins = file_gtid_list(cfg, os.path.join(path, files[0]))
        if begins is None:
            continue
        if any(domain not in start_at or int(gtid.split('-')[2]) > int(start_at[domain].split('-')[2])
               for domain, gtid in begins.items()):
            continue
        break
    else:
        raise BackupError('no archived binary log begins at or before %s (segments: %s); restore an older backup'
                          % (start, ', '.join(os.path.basename(path) for path in segments(cfg)) or 'none'))
    if not until_at:
        raise BackupError('no GTID to stop at')
    log_file = tempfile.TemporaryFile()
    done = subprocess.run([cfg['binlog_command'], '--start-position=%s' % start, '--stop-position=%s' % until]
                          + [os.path.join(path, name) for name in files],
                          stdout=out or sys.stdout, stderr=log_file, check=False)
    log_file.seek(0)
    errors = log_file.read().decode('utf-8', 'replace')
    if done.returncode != 0 or 'Did not reach stop position' in errors:
        raise BackupError('%s of %s did not reach %s: %s' % (
            cfg['binlog_command'], os.path.basename(path), until, errors.strip()[-1000:]))
    return path


def do_verify(cfg, name):
    names = published(cfg)
    if not names:
        raise BackupError('no backup in %s' % cfg['dir'])
    name = name or names[-1]
    if name not in names:
        raise BackupError('no backup named %s in %s (there are: %s)' % (name, cfg['dir'], ', '.join(names)))
    info = read_info(cfg, name)
    work = tempfile.mkdtemp(prefix='.verify-', dir=cfg['dir'])
    os.chmod(work, 0o750)
    shutil.chown(work, group=cfg['server_user'])
    try:
        checked = restore_test(cfg, os.path.join(cfg['dir'], name, ARCHIVE), info['sha256'], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info['verified'], info['verified_at'] = checked, int(time.time())
    write_json(os.path.join(cfg['dir'], name, INFO), info)
    log('%s restores: %d tables, %d rows' % (name, checked['tables'], checked['rows']))
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default='/etc/distweb/backup.json')
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('backup')
    verify = sub.add_parser('verify')
    verify.add_argument('name', nargs='?')
    listing = sub.add_parser('list')
    listing.add_argument('--until', default='', help='only backups at or before this GTID (domain-server-sequence)')
    sub.add_parser('metrics')
    at = sub.add_parser('gtid-at')
    at.add_argument('time', help='UTC, YYYY-MM-DD HH:MM:SS')
    sub.add_parser('archive')
    replay = sub.add_parser('archive-replay')
    replay.add_argument('--from', dest='start', required=True, help='the GTID position the target holds')
    replay.add_argument('--until', required=True, help='the last GTID to replay (one per domain)')
    args = parser.parse_args(argv)
    with open(args.config) as data:
        cfg = json.load(data)
    if args.command == 'archive':
        Archiver(cfg).run()
    if args.command == 'archive-replay':
        try:
            archive_replay(cfg, args.start, args.until)
        except BackupError as error:
            print('archive-replay: %s' % error, file=sys.stderr)  # stdout is the SQL alone
            return 1
        return 0
    if args.command == 'gtid-at':
        try:
            moment = datetime.datetime.strptime(args.time, '%Y-%m-%d %H:%M:%S')
            print(gtid_at(cfg, moment))
        except (ValueError, BackupError) as error:
            print('gtid-at: %s' % error, file=sys.stderr)  # stdout is the answer alone
            return 1
        return 0
    if args.command == 'list':
        infos = [read_info(cfg, name) for name in reversed(published(cfg))]
        if args.until:
            infos = [info for info in infos if not after(info.get('gtid', ''), args.until)]
        print(json.dumps(infos, indent=2))
        return 0
    if args.command == 'metrics':
        metrics(cfg)
        return 0
    started = time.monotonic()
    try:
        if args.command == 'backup':
            do_backup(cfg)
            metrics(cfg, ok=True, duration=time.monotonic() - started, verified=True)
        else:
            do_verify(cfg, args.name)
            metrics(cfg, verified=True)
    except (BackupError, OSError, ValueError, KeyError) as exc:
        if args.command == 'backup':
            metrics(cfg, ok=False)
        else:
            metrics(cfg, verified=False)
        print('distweb-backup %s failed: %s' % (args.command, exc), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
