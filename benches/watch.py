#!/usr/bin/env python3
"""The cost of `arca watch` on a busy database: a WAL-mode SQLite database
of SIZE (default 1 GiB) takes RATE (default 1,000) small transactions a
second from a writer process while `arca watch DB --every N` runs for each
interval N; for each, the CPU time arca used, the snapshots it took and the
bytes they added to the repository, per interval, and how long one
snapshot took (which bounds how small the interval can go).

    python3 benches/watch.py [--arca PATH] [--size-mib 1024] [--rate 1000]
                             [--intervals 5,30,300] [--periods 4]
                             [--work DIR] [--out FILE.md]

Each interval runs for PERIODS intervals (at least 60 s) against a fresh
repository, after one first snapshot that is not counted. CPU is the user +
system time of the watch process (from /proc), read when it exits.
"""

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PASSWORD = "bench"


def log(msg):
    print("[watch] %s" % msg, file=sys.stderr, flush=True)


def make_db(path, size_mib):
    """A trade log filled to size_mib: rows of about 200 bytes."""
    if os.path.exists(path):
        return
    tmp = path + ".part"
    for p in (tmp, tmp + "-wal", tmp + "-shm"):
        if os.path.exists(p):
            os.unlink(p)
    db = sqlite3.connect(tmp, isolation_level=None)
    db.executescript("""
        PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
        CREATE TABLE trades (id INTEGER PRIMARY KEY, ts REAL NOT NULL, symbol TEXT NOT NULL,
          qty REAL NOT NULL, price REAL NOT NULL, note TEXT NOT NULL);
        CREATE INDEX trades_symbol ON trades(symbol, ts);
    """)
    rows = size_mib * 1024 * 1024 // 260
    batch = 50_000
    done = 0
    while done < rows:
        n = min(batch, rows - done)
        db.execute("BEGIN")
        db.execute(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?) "
            "INSERT INTO trades (ts, symbol, qty, price, note) SELECT "
            "1.7e9 + i, 'SYM' || (abs(random()) % 500), abs(random()) % 10000 / 7.0, "
            "abs(random()) % 100000 / 13.0, hex(randomblob(80)) FROM k", (n,))
        db.execute("COMMIT")
        done += n
    db.execute("PRAGMA journal_mode = WAL")
    db.close()
    os.rename(tmp, path)


WRITER = r"""
import sqlite3, sys, time, random
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA busy_timeout = 60000")
db.execute("PRAGMA synchronous = NORMAL")
rate = float(sys.argv[2])
top = db.execute("SELECT max(id) FROM trades").fetchone()[0]
start = time.monotonic()
n = 0
while True:
    n += 1
    db.execute("BEGIN IMMEDIATE")
    if n % 2:
        db.execute("INSERT INTO trades (ts, symbol, qty, price, note) VALUES (?, ?, ?, ?, ?)",
                   (time.time(), "SYM%d" % random.randrange(500), random.random() * 1000,
                    random.random() * 5000, "%032x" % random.getrandbits(128)))
    else:
        db.execute("UPDATE trades SET price = ?, note = ? WHERE id = ?",
                   (random.random() * 5000, "%032x" % random.getrandbits(128),
                    random.randrange(1, top)))
    db.execute("COMMIT")
    ahead = start + n / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
"""


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


def cpu_seconds(pid):
    """user + system seconds of a live process and its reaped children."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # utime, stime, cutime, cstime: fields 14-17 (1-based), here from index 11.
    return sum(int(x) for x in fields[11:15]) / ticks


def snapshots(arca, env):
    out = subprocess.run([arca, "--json", "snapshots"], env=env, capture_output=True,
                         check=True).stdout
    return json.loads(out)


def run_interval(arca, work, db, every, periods, rate):
    repo = os.path.join(work, "repo-%ds" % every)
    shutil.rmtree(repo, ignore_errors=True)
    env = dict(os.environ, ARCA_REPOSITORY=repo, ARCA_PASSWORD=PASSWORD,
               ARCA_CACHE_DIR=os.path.join(work, "cache"))
    subprocess.run([arca, "-q", "init"], env=env, check=True)
    # The first snapshot stores the whole database; not counted.
    subprocess.run([arca, "-q", "snapshot", db], env=env, check=True)
    base = du(repo)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, db, str(rate)])
    duration = max(60, every * periods)
    watch = subprocess.Popen([arca, "watch", db, "--every", "%ds" % every], env=env,
                             stdout=subprocess.DEVNULL)
    time.sleep(duration)
    cpu = cpu_seconds(watch.pid)
    watch.send_signal(signal.SIGTERM)
    watch.wait()
    writer.kill()
    writer.wait()
    snaps = snapshots(arca, env)[1:]
    added = du(repo) - base
    n = max(1, len(snaps))
    took = [(s.get("summary") or {}).get("duration_ms") for s in snaps]
    took = [t / 1000 for t in took if t is not None]
    return {
        "every": every, "duration": duration, "snapshots": len(snaps),
        "cpu_per_interval": cpu / (duration / every),
        "cpu_share": cpu / duration,
        "bytes_per_snapshot": added / n,
        "bytes_per_interval": added / (duration / every),
        "snapshot_seconds": statistics.median(took) if took else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arca", default=os.path.join(ROOT, "target/release/arca"))
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--intervals", default="5,30,300")
    ap.add_argument("--periods", type=int, default=4)
    ap.add_argument("--work", default=os.path.join(ROOT, "target/watch-bench"))
    ap.add_argument("--out")
    args = ap.parse_args()
    try:
        intervals = [int(x) for x in args.intervals.split(",") if x]
    except ValueError:
        ap.error("--intervals takes whole seconds, comma-separated")
    if not intervals or min(intervals) <= 0 or args.periods <= 0 or args.size_mib <= 0:
        ap.error("intervals, periods and size must be positive")
    os.makedirs(args.work, exist_ok=True)
    db = os.path.join(args.work, "trades-%dmib.db" % args.size_mib)
    log("making a %d MiB database" % args.size_mib)
    make_db(db, args.size_mib)
    rows = []
    for every in intervals:
        log("interval %ds" % every)
        rows.append(run_interval(args.arca, args.work, db, every, args.periods, args.rate))
        log("  %s" % rows[-1])
    lines = [
        "# arca watch on a %d MiB WAL-mode database at %g transactions/s" % (
            args.size_mib, args.rate),
        "",
        "| every | run s | snapshots | CPU s per interval | CPU share | MB added per interval "
        "| MB per snapshot | one snapshot s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append("| %ds | %d | %d | %.2f | %.1f %% | %.2f | %.2f | %s |" % (
            r["every"], r["duration"], r["snapshots"], r["cpu_per_interval"],
            100 * r["cpu_share"], r["bytes_per_interval"] / 1e6,
            r["bytes_per_snapshot"] / 1e6,
            "%.2f" % r["snapshot_seconds"] if r["snapshot_seconds"] is not None else "–"))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
