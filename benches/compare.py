#!/usr/bin/env python3
"""Driver for benches/compare.sh: generates the datasets, runs every tool's
steps under /usr/bin/time, verifies restores, measures the machine's limits
and writes the report. Standard library only. Run it through compare.sh,
which installs the peers and builds arca first."""

import argparse
import datetime
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse

GEN_VERSION = "3"  # bump when a generator changes: datasets are regenerated
PASSWORD = "compare-bench-password"
MIB = 1 << 20
STEPS = ["init", "snapshot", "resnapshot", "change", "restore", "check"]
STEP_LABEL = {
    "init": "init",
    "snapshot": "first snapshot",
    "resnapshot": "unchanged re-snapshot",
    "change": "snapshot after change",
    "restore": "restore latest",
    "check": "full-data check",
}
ALL_DATASETS = ["trades-db", "random", "smallfiles", "history", "generated"]
ALL_TOOLS = ["arca", "restic", "borg", "rustic"]
HISTORY_VERSIONS = ["4.2.%d" % i for i in range(1, 11)]
# libsqlite3-sys releases: each carries the SQLite amalgamation (sqlite3.c,
# about 9 MB, twice: SQLite's and SQLCipher's) and generated bindings, all
# generated files that change between releases.
GENERATED_VERSIONS = ["0.30.1", "0.31.0", "0.32.0", "0.33.0", "0.34.0", "0.35.0",
                      "0.36.0", "0.37.0", "0.38.0", "0.39.0"]
# Datasets of successive releases, snapshotted in order at one path into
# --repos fresh repositories per tool.
RELEASES = {"history": ("Django releases", HISTORY_VERSIONS),
            "generated": ("libsqlite3-sys releases (large generated files)",
                          GENERATED_VERSIONS)}


def log(msg):
    print("[compare] " + msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    """Run a helper command (not measured); raise on failure."""
    return subprocess.run(cmd, check=True, **kw)


def out(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def du(path):
    if not os.path.exists(path):
        return 0
    r = subprocess.run(["du", "-sb", path], capture_output=True, text=True)
    try:
        return int(r.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


def tree_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(root, f)).st_size
    return total


def rmtree(path):
    if os.path.lexists(path):
        sh(["rm", "-rf", path])


def copy_tree(src, dst):
    """Replace dst with a copy of src (cp -a keeps mtimes)."""
    rmtree(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    sh(["cp", "-a", src, dst])


# --------------------------------------------------------------------------
# Datasets. Each lives in WORK/data/<name>/ with a stamp "GEN_VERSION scale";
# the snapshot path is always WORK/live/<name>.
# --------------------------------------------------------------------------

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "MSFT", "NVDA", "AMZN", "TSLA",
           "EURUSD", "GBPUSD", "USDJPY", "ES-FUT", "NQ-FUT", "CL-FUT", "GC-FUT",
           "ZN-FUT", "SPY", "QQQ", "IWM", "TLT"] + ["SYM%03d" % i for i in range(60)]
VENUES = ["XNAS", "XNYS", "ARCX", "BATS", "IEXG", "CME", "EBS", "LMAX", "COINB", "KRKN"]
STRATEGIES = ["mm-core", "stat-arb-3", "momentum-x", "mean-rev-2", "basis", "vwap-exec",
              "twap-exec", "pairs-7", "hedge", "manual"]
TRADERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
NOTES = ["", "", "", "", "", "partial fill", "client request", "rebalance",
         "hedge leg for basket", "risk reduce after news", "auto-hedged by engine",
         "price improvement vs NBBO", "late report corrected", "cross with internal flow",
         "split across venues per SOR", "manual override by desk head, see ticket"]
ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "IOC", "FOK"]
STATUSES = ["new", "partially_filled", "filled", "cancelled", "rejected"]


def ts_str(t):
    return datetime.datetime.utcfromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def trade_rows(rng, start_id, n, t0, n_orders):
    t = t0
    for i in range(start_id, start_id + n):
        t += rng.random() * 0.05
        sym = rng.choice(SYMBOLS)
        note = rng.choice(NOTES)
        if note and rng.random() < 0.3:
            note += " #%d" % rng.randrange(10 ** 6)
        yield (i, ts_str(t), sym, rng.choice("BS"), round(rng.lognormvariate(3, 1.2), 4),
               round(rng.uniform(1, 5000), 4), rng.choice(VENUES), rng.choice(STRATEGIES),
               rng.randrange(1, max(2, n_orders)), rng.choice(TRADERS),
               round(rng.random() * 3, 6), note)


def order_rows(rng, start_id, n, t0):
    t = t0
    for i in range(start_id, start_id + n):
        t += rng.random() * 0.1
        created = ts_str(t)
        yield (i, created, created, rng.choice(SYMBOLS), rng.choice("BS"),
               rng.choice(ORDER_TYPES), round(rng.lognormvariate(3, 1.2), 4),
               round(rng.uniform(1, 5000), 4), rng.choice(STATUSES), rng.choice(VENUES),
               rng.choice(STRATEGIES), "%016x" % rng.getrandbits(64), rng.choice(NOTES))


def gen_trades_db(ddir, scale):
    """A ~1 GiB × scale SQLite database (day1/trades.db) and its next-day
    version (day2/trades.db): trades appended, orders and positions updated."""
    target = int(1024 * MIB * scale)
    os.makedirs(ddir + "/day1", exist_ok=True)
    os.makedirs(ddir + "/day2", exist_ok=True)
    path1, path2 = ddir + "/day1/trades.db", ddir + "/day2/trades.db"
    for p in (path1, path2):
        if os.path.exists(p):
            os.unlink(p)
    rng = random.Random(20240611)
    db = sqlite3.connect(path1, isolation_level=None)
    db.executescript("""
        PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA page_size=4096;
        CREATE TABLE trades (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, symbol TEXT NOT NULL,
          side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL, venue TEXT NOT NULL,
          strategy TEXT NOT NULL, order_id INTEGER NOT NULL, trader TEXT NOT NULL,
          fee REAL NOT NULL, note TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL,
          updated_at TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
          type TEXT NOT NULL, qty REAL NOT NULL, limit_price REAL, status TEXT NOT NULL,
          venue TEXT NOT NULL, strategy TEXT NOT NULL, client_order_id TEXT NOT NULL,
          note TEXT);
        CREATE TABLE positions (id INTEGER PRIMARY KEY, account TEXT NOT NULL,
          symbol TEXT NOT NULL, qty REAL NOT NULL, avg_price REAL NOT NULL,
          unrealized_pnl REAL NOT NULL, updated_at TEXT NOT NULL, UNIQUE(account, symbol));
    """)
    t0 = 1_700_000_000.0
    n_trades = n_orders = 0
    batch = 20_000
    # Fill until the tables reach ~60 % of the target; the indexes add the rest.
    while True:
        db.execute("BEGIN")
        db.executemany("INSERT INTO trades VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       trade_rows(rng, n_trades + 1, batch, t0 + n_trades * 0.025,
                                  n_orders + batch))
        n_trades += batch
        db.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       order_rows(rng, n_orders + 1, batch // 2, t0 + n_orders * 0.05))
        n_orders += batch // 2
        db.execute("COMMIT")
        size = db.execute("PRAGMA page_count").fetchone()[0] * 4096
        if size >= target * 0.6:
            break
    accounts = ["ACC%04d" % i for i in range(max(10, int(2000 * scale)))]
    db.execute("BEGIN")
    db.executemany("INSERT INTO positions (account, symbol, qty, avg_price, unrealized_pnl,"
                   " updated_at) VALUES (?,?,?,?,?,?)",
                   ((a, s, round(rng.uniform(-1e4, 1e4), 2), round(rng.uniform(1, 5000), 4),
                     round(rng.gauss(0, 1e4), 2), ts_str(t0)) for a in accounts
                    for s in rng.sample(SYMBOLS, 12)))
    db.execute("COMMIT")
    db.executescript("""
        CREATE INDEX trades_symbol_ts ON trades(symbol, ts);
        CREATE INDEX trades_order ON trades(order_id);
        CREATE INDEX orders_status ON orders(status, updated_at);
        CREATE INDEX orders_symbol_created ON orders(symbol, created_at);
        CREATE UNIQUE INDEX orders_client ON orders(client_order_id);
        CREATE INDEX positions_symbol ON positions(symbol);
    """)
    db.close()

    # The next day: +2.5 % trades and +2.5 % orders, 1 % of orders and 30 % of
    # positions updated in place.
    shutil.copyfile(path1, path2)
    db = sqlite3.connect(path2, isolation_level=None)
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
    day = t0 + n_trades * 0.025 + 86400
    add_t, add_o = int(n_trades * 0.025), int(n_orders * 0.025)
    db.execute("BEGIN")
    db.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   order_rows(rng, n_orders + 1, add_o, day))
    db.executemany("INSERT INTO trades VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   trade_rows(rng, n_trades + 1, add_t, day, n_orders + add_o))
    db.executemany("UPDATE orders SET status=?, updated_at=? WHERE id=?",
                   ((rng.choice(STATUSES), ts_str(day + k), rng.randrange(1, n_orders + 1))
                    for k in range(n_orders // 100)))
    n_pos = db.execute("SELECT max(id) FROM positions").fetchone()[0]
    db.executemany("UPDATE positions SET qty=qty+?, unrealized_pnl=?, updated_at=? WHERE id=?",
                   ((round(rng.uniform(-500, 500), 2), round(rng.gauss(0, 1e4), 2),
                     ts_str(day), i) for i in sorted(rng.sample(range(1, n_pos + 1),
                                                                int(n_pos * 0.3)))))
    db.execute("COMMIT")
    db.close()


def gen_random(ddir, scale):
    """4 incompressible files totalling 512 MiB × scale."""
    base = ddir + "/base"
    os.makedirs(base, exist_ok=True)
    rng = random.Random(77)
    each = max(MIB, int(128 * MIB * scale))
    for i in range(4):
        with open("%s/r%d.bin" % (base, i), "wb") as f:
            left = each
            while left:
                n = min(left, 16 * MIB)
                f.write(rng.randbytes(n))
                left -= n


def change_random(live, scale):
    """Overwrite 8 MiB in the middle of r0.bin, append 8 MiB to r1.bin (× scale)."""
    rng = random.Random(78)
    n = max(64 << 10, int(8 * MIB * scale))
    p0 = live + "/r0.bin"
    with open(p0, "r+b") as f:
        f.seek(os.path.getsize(p0) // 2 - n // 2)
        f.write(rng.randbytes(n))
    with open(live + "/r1.bin", "ab") as f:
        f.write(rng.randbytes(n))


WORDS = ("the of and order fill cancel venue price qty symbol account ledger balance "
         "config value timeout retry host port user path file error warning info debug "
         "request response status 200 404 500 true false null id name type").split()


def small_content(rng):
    size = rng.randint(200, 8192)
    if rng.random() < 0.6:  # text-like
        parts, n = [], 0
        while n < size:
            w = rng.choice(WORDS) + (" " if rng.random() < 0.9 else "\n")
            parts.append(w)
            n += len(w)
        return "".join(parts).encode()[:size]
    return rng.randbytes(size)


def gen_smallfiles(ddir, scale):
    """100,000 × scale files of 200 B – 8 KiB in a tree of depth 4-6."""
    base = ddir + "/base"
    os.makedirs(base, exist_ok=True)
    rng = random.Random(4242)
    n = max(100, int(100_000 * scale))
    made = set()
    for i in range(n):
        depth = rng.randint(4, 6)
        d = os.path.join(base, *("l%d_%d" % (k, rng.randrange(4)) for k in range(depth)))
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        ext = ".txt" if rng.random() < 0.6 else ".dat"
        with open("%s/f%06d%s" % (d, i, ext), "wb") as f:
            f.write(small_content(rng))


def change_smallfiles(live, scale):
    """Modify 1,000 files, delete 1,000, add 1,000 (× scale), deterministically."""
    files = []
    for root, dirs, names in os.walk(live):
        dirs.sort()
        files.extend(os.path.join(root, x) for x in sorted(names))
    k = max(1, int(1000 * scale))
    rng = random.Random(4343)
    picked = rng.sample(files, 2 * k)
    for p in picked[:k]:
        with open(p, "wb") as f:
            f.write(small_content(rng))
    for p in picked[k:]:
        os.unlink(p)
    for i in range(k):
        d = os.path.dirname(rng.choice(files))
        os.makedirs(d, exist_ok=True)
        with open("%s/new%06d.txt" % (d, i), "wb") as f:
            f.write(small_content(rng))


def release_versions(name, scale):
    # A smoke run (--scale < 0.5) uses the first 3 releases only.
    versions = RELEASES[name][1]
    return versions if scale >= 0.5 else versions[:3]


def sdist_url(version):
    """The sdist's URL from PyPI's JSON API: the release's own document, else
    the project's (some mirrors serve only that one, with relative URLs)."""
    for api in ("https://pypi.org/pypi/Django/%s/json" % version,
                "https://pypi.org/pypi/Django/json"):
        r = subprocess.run(["curl", "-sfL", api], capture_output=True)
        if r.returncode != 0:
            continue
        meta = json.loads(r.stdout)
        files = meta["urls"] if "/%s/" % version in api else meta["releases"].get(version, [])
        for u in files:
            if u["packagetype"] == "sdist":
                return urllib.parse.urljoin(api, u["url"])
    raise RuntimeError("no sdist of Django %s found on PyPI" % version)


def fetch_releases(ddir, versions, archive_of, url_of):
    """Each release's archive (downloaded once, cached under tarballs/),
    extracted into releases/<version>/ without its top-level directory."""
    tars, rels = ddir + "/tarballs", ddir + "/releases"
    os.makedirs(tars, exist_ok=True)
    os.makedirs(rels, exist_ok=True)
    for v in versions:
        archive = "%s/%s" % (tars, archive_of(v))
        if not os.path.exists(archive):
            url = url_of(v)
            log("downloading %s" % url)
            sh(["curl", "-sfL", "-o", archive + ".part", url])
            os.rename(archive + ".part", archive)
        dst = "%s/%s" % (rels, v)
        if not os.path.isdir(dst):
            os.makedirs(dst + ".part", exist_ok=True)
            sh(["tar", "-xzf", archive, "--strip-components=1", "-C", dst + ".part"])
            os.rename(dst + ".part", dst)


def gen_history(ddir, scale):
    """Django releases from PyPI (sdists)."""
    fetch_releases(ddir, release_versions("history", scale), lambda v: "Django-%s.tar.gz" % v,
                   sdist_url)


def gen_generated(ddir, scale):
    """libsqlite3-sys crates from crates.io."""
    fetch_releases(ddir, release_versions("generated", scale),
                   lambda v: "libsqlite3-sys-%s.crate" % v,
                   lambda v: "https://static.crates.io/crates/libsqlite3-sys/"
                             "libsqlite3-sys-%s.crate" % v)


GENERATORS = {"trades-db": gen_trades_db, "random": gen_random,
              "smallfiles": gen_smallfiles, "history": gen_history,
              "generated": gen_generated}


def ensure_dataset(work, name, scale):
    ddir = "%s/data/%s" % (work, name)
    stamp = ddir + "/.stamp"
    want = "%s %s\n" % (GEN_VERSION, scale)
    if os.path.exists(stamp) and open(stamp).read() == want:
        return ddir
    if name not in RELEASES:  # release datasets keep their downloads
        rmtree(ddir)
    os.makedirs(ddir, exist_ok=True)
    log("generating dataset %s (scale %s)" % (name, scale))
    t = time.time()
    GENERATORS[name](ddir, scale)
    with open(stamp, "w") as f:
        f.write(want)
    log("  %s: %.1f MiB in %.0f s" % (name, tree_bytes(ddir) / MIB, time.time() - t))
    return ddir


def initial_tree(ddir, name, scale):
    """The directory holding the dataset's initial version."""
    if name == "trades-db":
        return ddir + "/day1"
    if name in RELEASES:
        return "%s/releases/%s" % (ddir, release_versions(name, scale)[0])
    return ddir + "/base"


def apply_change(ddir, name, live, scale):
    if name == "trades-db":
        shutil.copyfile(ddir + "/day2/trades.db", live + "/trades.db")
    elif name == "random":
        change_random(live, scale)
    elif name == "smallfiles":
        change_smallfiles(live, scale)


# --------------------------------------------------------------------------
# Tools: how each one does every step, with its repository and cache kept in
# WORK/tools/<tool>/.
# --------------------------------------------------------------------------

class Tool:
    def __init__(self, name, work, arca_bin):
        self.name = name
        self.base = "%s/tools/%s" % (work, name)
        self.repo = self.base + "/repo"
        self.cache = self.base + "/cache"
        self.arca = arca_bin
        self.archive_no = 0
        self.last_archive = None
        self.restic_v2 = False
        env = dict(os.environ)
        env["HOME"] = self.base + "/home"  # nothing may touch the real ~/
        env["XDG_CACHE_HOME"] = self.cache
        env["XDG_CONFIG_HOME"] = self.base + "/config"
        if name == "arca":
            env.update(ARCA_PASSWORD=PASSWORD, ARCA_CACHE_DIR=self.cache)
        elif name == "restic":
            env.update(RESTIC_REPOSITORY=self.repo, RESTIC_PASSWORD=PASSWORD,
                       RESTIC_CACHE_DIR=self.cache)
            self.restic_v2 = "--repository-version" in out(["restic", "init", "--help"])
        elif name == "borg":
            env.update(BORG_REPO=self.repo, BORG_PASSPHRASE=PASSWORD,
                       BORG_BASE_DIR=self.base + "/borgbase", BORG_CACHE_DIR=self.cache,
                       BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
                       BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
                       BORG_DISPLAY_PASSPHRASE="no")
        elif name == "rustic":
            env.update(RUSTIC_REPOSITORY=self.repo, RUSTIC_PASSWORD=PASSWORD,
                       RUSTIC_CACHE_DIR=self.cache, RUSTIC_NO_PROGRESS="true")
        self.env = env

    def reset(self):
        """Delete repository and cache: every run starts from nothing."""
        rmtree(self.base)
        for d in (self.base + "/home", self.base + "/config", self.cache):
            os.makedirs(d, exist_ok=True)
        self.archive_no = 0
        self.last_archive = None

    def version(self):
        cmd = {"arca": [self.arca, "--version"], "restic": ["restic", "version"],
               "borg": ["borg", "--version"], "rustic": ["rustic", "--version"]}[self.name]
        return out(cmd).splitlines()[0] if out(cmd) else "?"

    def cmd_init(self):
        n = self.name
        if n == "arca":
            return [self.arca, "-r", self.repo, "--no-progress", "init"]
        if n == "restic":
            return ["restic", "init"] + (["--repository-version", "2"] if self.restic_v2 else [])
        if n == "borg":
            return ["borg", "init", "-e", "repokey-blake2"]
        return ["rustic", "init"]

    def cmd_snapshot(self, path):
        n = self.name
        if n == "arca":
            return [self.arca, "-r", self.repo, "--no-progress", "snapshot", path]
        if n == "restic":
            return ["restic", "backup", path]
        if n == "borg":
            self.archive_no += 1
            self.last_archive = "a%02d" % self.archive_no
            return ["borg", "create", "::" + self.last_archive, path]
        return ["rustic", "backup", path]

    def cmd_restore(self, target):
        n = self.name
        if n == "arca":
            return [self.arca, "-r", self.repo, "--no-progress", "restore", "latest",
                    "--target", target]
        if n == "restic":
            return ["restic", "restore", "latest", "--target", target]
        if n == "borg":  # extracts below the current directory (cwd=target)
            return ["borg", "extract", "::" + self.last_archive]
        return ["rustic", "restore", "latest", target]

    def cmd_check(self):
        n = self.name
        if n == "arca":
            return [self.arca, "-r", self.repo, "--no-progress", "check", "--read-data"]
        if n == "restic":
            return ["restic", "check", "--read-data"]
        if n == "borg":
            return ["borg", "check", "--verify-data"]
        return ["rustic", "check", "--read-data"]


def available(name, arca_bin):
    if name == "arca":
        return os.access(arca_bin, os.X_OK)
    return shutil.which(name) is not None


def measure(cmd, env, logfile, cwd=None):
    """Run cmd under /usr/bin/time; its output is appended to logfile.
    Returns a dict: ok, wall, user, sys, rss_kib."""
    subprocess.run(["sync"])
    tfile = logfile + ".time"
    with open(logfile, "ab") as lf:
        lf.write(("\n$ %s\n" % " ".join(cmd)).encode())
        lf.flush()
        r = subprocess.run(["/usr/bin/time", "-o", tfile, "-f", "%e %U %S %M"] + cmd,
                           env=env, cwd=cwd, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL)
    res = {"ok": r.returncode == 0, "exit": r.returncode}
    try:
        last = open(tfile).read().strip().splitlines()[-1].split()
        res.update(wall=float(last[0]), user=float(last[1]), sys=float(last[2]),
                   rss_kib=int(last[3]))
    except (OSError, IndexError, ValueError):
        res["ok"] = False
    return res


def find_restored(target, live):
    """Where the tool put the live tree below target: under its full path
    (arca, restic, borg) or directly (a tool that strips it)."""
    for cand in (os.path.join(target, live.lstrip("/")),
                 os.path.join(target, os.path.basename(live)), target):
        if os.path.isdir(cand) and os.listdir(cand):
            return cand
    return None


def verify(live, target, logfile):
    """Byte-compare the restored tree with the live tree (diff -r)."""
    got = find_restored(target, live)
    if got is None:
        return False, "nothing restored below %s" % target
    with open(logfile, "ab") as lf:
        lf.write(("\n$ diff -rq --no-dereference %s %s\n" % (live, got)).encode())
        lf.flush()
        r = subprocess.run(["diff", "-rq", "--no-dereference", live, got], stdout=lf,
                           stderr=lf)
    return r.returncode == 0, ("identical" if r.returncode == 0 else
                               "differs from the live tree (see %s)" % logfile)


# --------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------

def run_dataset(tool, name, ddir, work, scale, rnd, rows, verdicts, repo_no=1):
    live = "%s/live/%s" % (work, name)
    copy_tree(initial_tree(ddir, name, scale), live)
    tool.reset()
    logdir = "%s/logs/r%d" % (work, rnd)
    os.makedirs(logdir, exist_ok=True)
    logfile = "%s/%s-%s%s.log" % (logdir, name, tool.name,
                                  "-%d" % repo_no if repo_no > 1 else "")
    if os.path.exists(logfile):
        os.unlink(logfile)
    target = "%s/restore/%s" % (work, tool.name)
    failed_hard = False

    def record(step, res, data_bytes):
        row = {"round": rnd, "repo": repo_no, "dataset": name, "tool": tool.name,
               "step": step,
               "status": "ok" if res.get("ok") else ("SKIPPED" if res.get("skipped")
                                                      else "FAILED"),
               "wall": res.get("wall"), "user": res.get("user"), "sys": res.get("sys"),
               "rss_kib": res.get("rss_kib"), "repo_bytes": du(tool.repo),
               "data_bytes": data_bytes, "log": logfile}
        rows.append(row)
        log("r%d.%d %-10s %-7s %-13s %-7s %8s s" % (rnd, repo_no, name, tool.name, step,
                                                   row["status"],
                                                   "-" if row["wall"] is None else
                                                   "%.2f" % row["wall"]))
        return row["status"] == "ok"

    if name in RELEASES:
        vers = release_versions(name, scale)
        if not record("init", measure(tool.cmd_init(), tool.env, logfile), 0):
            for v in vers:
                record("snapshot " + v, {"skipped": True}, 0)
            return
        for i, v in enumerate(vers):
            if i:  # replace the directory's contents with release v (untimed)
                for e in os.listdir(live):
                    rmtree(os.path.join(live, e))
                sh(["cp", "-a", "%s/releases/%s/." % (ddir, v), live + "/"])
            record("snapshot " + v, measure(tool.cmd_snapshot(live), tool.env, logfile),
                   tree_bytes(live))
        rmtree(tool.base)
        return

    for step in STEPS:
        if failed_hard:
            record(step, {"skipped": True}, 0)
            continue
        if step == "init":
            ok = record(step, measure(tool.cmd_init(), tool.env, logfile), 0)
            if ok and tool.name == "restic":  # the format in use, for the log
                with open(logfile, "ab") as lf:
                    subprocess.run(["restic", "cat", "config"], env=tool.env, stdout=lf,
                                   stderr=lf)
            failed_hard = not ok
        elif step in ("snapshot", "resnapshot", "change"):
            if step == "change":
                apply_change(ddir, name, live, scale)  # untimed
            ok = record(step, measure(tool.cmd_snapshot(live), tool.env, logfile),
                        tree_bytes(live))
            failed_hard = failed_hard or (step == "snapshot" and not ok)
        elif step == "restore":
            rmtree(target)
            os.makedirs(target)
            ok = record(step, measure(tool.cmd_restore(target), tool.env, logfile,
                                      cwd=target), tree_bytes(live))
            good, why = verify(live, target, logfile) if ok else (False, "restore failed")
            verdicts.append({"round": rnd, "dataset": name, "tool": tool.name,
                             "ok": good, "detail": why})
            if not good:
                log("!!! RESTORE VERIFICATION FAILED: %s %s r%d: %s" % (tool.name, name,
                                                                         rnd, why))
            rmtree(target)
        elif step == "check":
            record(step, measure(tool.cmd_check(), tool.env, logfile), du(tool.repo))
    rmtree(tool.base)  # free the disk; sizes are recorded


# --------------------------------------------------------------------------
# Machine limits
# --------------------------------------------------------------------------

def timed_shell(script):
    t = time.perf_counter()
    r = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return time.perf_counter() - t, r.returncode, r.stdout


def machine_limits(work, datasets, dirs, scale):
    lim = {"read": {}, "zstd": {}, "b3": {}}
    cores = os.cpu_count() or 1
    ldir = work + "/limits"
    os.makedirs(ldir, exist_ok=True)
    for name in datasets:
        d = dirs[name]
        tree = d + "/releases" if name in RELEASES else initial_tree(d, name, scale)
        size = tree_bytes(tree)
        cat = "find %s -type f -print0 | xargs -0 cat > /dev/null" % shq(tree)
        timed_shell(cat)  # warm the page cache
        wall, _, _ = timed_shell(cat)
        lim["read"][name] = {"bytes": size, "wall": wall, "mbps": size / 1e6 / wall}
        # zstd -3 on a sample: the dataset's files concatenated, up to 64 MiB.
        sample = "%s/sample-%s.bin" % (ldir, name)
        timed_shell("find %s -type f -print0 | sort -z | xargs -0 cat | head -c %d > %s"
                    % (shq(tree), 64 * MIB, shq(sample)))
        _, rc, text = timed_shell("zstd -b3 -e3 -T1 %s 2>&1" % shq(sample))
        m = re.findall(r"\(x?\s*([\d.]+)\),\s*([\d.]+)\s*MB/s", text.replace("\r", "\n"))
        if rc == 0 and m:
            ratio, mbps = float(m[-1][0]), float(m[-1][1])
            lim["zstd"][name] = {"ratio": ratio, "mbps": mbps, "mbps_all": mbps * cores,
                                 "sample": os.path.getsize(sample)}
        os.unlink(sample)
    if shutil.which("b3sum"):
        f = ldir + "/b3.bin"
        n = max(16 * MIB, int(512 * MIB * scale))
        if not os.path.exists(f) or os.path.getsize(f) != n:
            with open(f, "wb") as fh:
                rng = random.Random(3)
                left = n
                while left:
                    k = min(left, 16 * MIB)
                    fh.write(rng.randbytes(k))
                    left -= k
        for label, threads in (("1 thread", ["--num-threads", "1"]), ("all threads", [])):
            timed_shell("b3sum %s %s > /dev/null" % (" ".join(threads), shq(f)))
            wall, rc, _ = timed_shell("b3sum %s %s > /dev/null" % (" ".join(threads), shq(f)))
            if rc == 0:
                lim["b3"][label] = n / 1e6 / wall
        os.unlink(f)
    return lim


def shq(s):
    return "'" + s.replace("'", "'\\''") + "'"


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.2f"):
    return "–" if v is None else spec % v


def summarize(rows, dataset, tool, step):
    rs = [r for r in rows if r["dataset"] == dataset and r["tool"] == tool
          and r["step"] == step]
    if not rs:
        return None
    ok = [r for r in rs if r["status"] == "ok"]
    bad = [r for r in rs if r["status"] != "ok"]
    s = {"n": len(rs), "ok": len(ok), "bad": bad,
         "wall": med([r["wall"] for r in ok]),
         "cpu": med([r["user"] + r["sys"] for r in ok if r["user"] is not None]),
         "rss": med([r["rss_kib"] / 1024 for r in ok if r["rss_kib"] is not None]),
         "repo": med([r["repo_bytes"] / MIB for r in rs]),
         "data": med([r["data_bytes"] for r in ok])}
    s["mbps"] = (s["data"] / 1e6 / s["wall"]) if s["wall"] and s["data"] else None
    return s


def status_cell(s):
    if s is None:
        return "–"
    if s["ok"] == 0:
        st = s["bad"][0]["status"]
        return "**%s** (`%s`)" % (st, s["bad"][0]["log"]) if st == "FAILED" else st
    return None


def report(args, meta, rows, verdicts, lim, tools, datasets):
    L = []
    w = L.append
    w("# arca vs. peers: whole-process comparison")
    w("")
    w("- Command: `%s`" % args.cmdline)
    w("- Date: %s" % meta["date"])
    w("- Machine: %s cores (`nproc`), %s, %.1f GiB RAM; kernel %s" % (
        meta["nproc"], meta["cpu"], meta["ram_gib"], meta["kernel"]))
    w("- Versions: " + "; ".join("%s: `%s`" % (t, v) for t, v in meta["versions"].items()))
    w("- Rounds: %d (tool order rotated each round; figures are medians over rounds). "
      "Scale: %s. Work dir: `%s`." % (args.rounds, args.scale, args.work))
    w("- Every tool encrypts, with its default compression: arca (zstd level 2); restic "
      "repository %s (compression auto); borg `repokey-blake2` (lz4); rustic (zstd). "
      "Each tool's repository and cache are deleted before its init, so rounds are "
      "independent; `sync` runs before every step." % meta.get("restic_repo", "?"))
    w("- **The page cache is warm for every tool**: the datasets are far smaller than RAM, "
      "so reads come from memory, not from the disk. Restores write to %s."
      % meta.get("restore_fs", "disk"))
    for s in meta.get("skipped", []):
        w("- Skipped: %s" % s)
    w("")
    bad_verify = [v for v in verdicts if not v["ok"]]
    if bad_verify:
        w("## !!! RESTORE VERIFICATION FAILURES !!!")
        w("")
        for v in bad_verify:
            w("- **%s / %s / round %d: %s**" % (v["tool"], v["dataset"], v["round"],
                                               v["detail"]))
        w("")
    elif verdicts:
        w("Restores verified: all %d restores are byte-identical to the live tree "
          "(`diff -r`, outside timing)." % len(verdicts))
        w("")

    peers = [t for t in tools if t != "arca"]
    for d in datasets:
        if d in RELEASES:
            continue
        w("## %s" % d)
        w("")
        dbytes = med([r["data_bytes"] for r in rows if r["dataset"] == d
                      and r["step"] == "snapshot" and r["status"] == "ok"])
        if dbytes:
            w("Dataset: %.1f MiB. MB/s = dataset bytes / wall (check: repository bytes / "
              "wall). CPU = user + sys. RSS = peak resident set. Repo = `du -sb` after "
              "the step." % (dbytes / MIB))
            w("")
        head = "| step |" + "".join(" %s wall s | MB/s | CPU s | RSS MiB | repo MiB |" % t
                                    for t in tools)
        w(head)
        w("|---|" + "---:|" * (5 * len(tools)))
        for step in STEPS:
            cells = []
            for t in tools:
                s = summarize(rows, d, t, step)
                bad = status_cell(s)
                if bad:
                    cells += [bad, "", "", "", ""]
                    continue
                cells += [fmt(s["wall"]) + ("" if s["ok"] == s["n"] else
                                           " (%d/%d ok)" % (s["ok"], s["n"])),
                          fmt(s["mbps"], "%.0f") if step != "init" else "",
                          fmt(s["cpu"]), fmt(s["rss"], "%.0f"), fmt(s["repo"], "%.1f")]
            w("| %s | %s |" % (STEP_LABEL[step], " | ".join(cells)))
        w("")
        if "arca" in tools and peers:
            w("Ratios (time: peer wall / arca wall, >1 means arca is faster; "
              "RSS: arca RSS / peer RSS, <1 means arca uses less memory):")
            w("")
            w("| step |" + "".join(" %s time | %s RSS |" % (p, p) for p in peers))
            w("|---|" + "---:|" * (2 * len(peers)))
            for step in STEPS:
                a = summarize(rows, d, "arca", step)
                cells = []
                for p in peers:
                    b = summarize(rows, d, p, step)
                    ok = a and b and a["wall"] and b["wall"]
                    cells.append("%.2f×" % (b["wall"] / a["wall"]) if ok else "–")
                    ok = a and b and a["rss"] and b["rss"]
                    cells.append("%.2f" % (a["rss"] / b["rss"]) if ok else "–")
                w("| %s | %s |" % (STEP_LABEL[step], " | ".join(cells)))
            w("")
        # What the change cost in storage: the repository after the change
        # snapshot less the repository after the unchanged re-snapshot.
        added = {}
        for t in tools:
            vals = []
            for rnd in sorted({r["round"] for r in rows}):
                by = {r["step"]: r for r in rows if r["dataset"] == d and r["tool"] == t
                      and r["round"] == rnd and r["status"] == "ok"}
                if "change" in by and "resnapshot" in by:
                    vals.append(by["change"]["repo_bytes"] - by["resnapshot"]["repo_bytes"])
            if vals:
                added[t] = (med(vals), min(vals), max(vals))
        if added:
            w("Bytes the change snapshot added to the repository (after the change less "
              "after the unchanged re-snapshot; median, range over rounds):")
            w("")
            w("| tool | added MB | range MB | vs restic |")
            w("|---|---:|---:|---:|")
            base = added.get("restic")
            for t in tools:
                if t in added:
                    m, lo, hi = added[t]
                    w("| %s | %.1f | %.1f–%.1f | %s |" % (
                        t, m / 1e6, lo / 1e6, hi / 1e6,
                        ("%.2f" % (m / base[0])) if base and base[0] else "–"))
            w("")

    for rel in [d for d in datasets if d in RELEASES]:
        w("## %s (%s %s, snapshotted in order at the same path)"
          % (rel, RELEASES[rel][0], ", ".join(meta.get("release_versions", {}).get(rel, []))))
        w("")
        w("Every tool: %d fresh repositories a round (a new key, so a new chunker seed "
          "or polynomial, each), %d round(s), tools interleaved. Times are medians over "
          "all of them; the final repository size is given as median, min–max and "
          "spread = (max − min) / median." % (args.repos, args.rounds))
        w("")
        w("| tool | repos | total snapshot wall s | CPU s | max RSS MiB | "
          "final repo MiB, median | min–max | spread | time vs arca | repo vs arca |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        per = {}
        for t in tools:
            runs = []
            for key in sorted({(r["round"], r["repo"]) for r in rows}):
                rs = [r for r in rows if r["dataset"] == rel and r["tool"] == t
                      and (r["round"], r["repo"]) == key and r["step"].startswith("snapshot")]
                if rs and all(r["status"] == "ok" for r in rs):
                    runs.append((sum(r["wall"] for r in rs),
                                 sum(r["user"] + r["sys"] for r in rs),
                                 max(r["rss_kib"] for r in rs) / 1024,
                                 rs[-1]["repo_bytes"] / MIB))
            if runs:
                sizes = [x[3] for x in runs]
                per[t] = tuple(med([x[i] for x in runs]) for i in range(4)) + (
                    min(sizes), max(sizes), len(runs))
        for t in tools:
            if t not in per:
                fails = [r for r in rows if r["dataset"] == rel and r["tool"] == t
                         and r["status"] != "ok"]
                w("| %s | 0 | **FAILED** %s | | | | | | | |" % (
                    t, ("(`%s`)" % fails[0]["log"]) if fails else ""))
                continue
            v = per[t]
            a = per.get("arca")
            w("| %s | %d | %.2f | %.2f | %.0f | %.2f | %.2f–%.2f | %.1f %% | %s | %s |" % (
                t, v[6], v[0], v[1], v[2], v[3], v[4], v[5], 100 * (v[5] - v[4]) / v[3],
                ("%.2f×" % (v[0] / a[0])) if a and t != "arca" else "",
                ("%.2f" % (a[3] / v[3])) if a and t != "arca" else ""))
        w("")
        w("time vs arca = peer total / arca total (>1: arca faster); repo vs arca = "
          "arca median repo / peer median repo (<1: arca smaller).")
        w("")

    w("## Machine limits for the same data")
    w("")
    w("Cores: %s; CPU: %s. Warm page cache throughout." % (meta["nproc"], meta["cpu"]))
    w("")
    w("| dataset | read all files (find … \\| xargs cat) MB/s | zstd -3 1 thread MB/s | "
      "zstd -3 × %s cores MB/s | zstd ratio |" % meta["nproc"])
    w("|---|---:|---:|---:|---:|")
    for d in datasets:
        r = lim["read"].get(d)
        z = lim["zstd"].get(d)
        w("| %s | %s | %s | %s | %s |" % (
            d, fmt(r and r["mbps"], "%.0f"), fmt(z and z["mbps"], "%.0f"),
            fmt(z and z["mbps_all"], "%.0f"), fmt(z and z["ratio"], "%.2f")))
    w("")
    if lim["b3"]:
        w("BLAKE3 (`b3sum`, one file of random data): " + "; ".join(
            "%s %.0f MB/s" % (k, v) for k, v in lim["b3"].items()) + ".")
    else:
        w("BLAKE3: `b3sum` not available, not measured.")
    w("")
    w("zstd × cores is single-thread throughput times the core count (an upper bound). "
      "Raw measurements: `%s`, `%s`; per-step logs under `%s/logs/`." % (
          meta["tsv"], meta["json"], args.work))
    w("")
    return "\n".join(L)


def machine_meta():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                ram = int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return {"nproc": out(["nproc"]) or str(os.cpu_count()), "cpu": cpu, "ram_gib": ram,
            "kernel": os.uname().release,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC")}


def run_rounds(args, tools, datasets, dirs, objs, rows, verdicts):
    """Every round: each dataset, each tool in turn (order rotated). The
    release datasets run --repos fresh repositories per tool and round,
    interleaved: repository j of every tool before repository j+1 of any."""
    for rnd in range(1, args.rounds + 1):
        for d in datasets:
            for j in range(1, (args.repos if d in RELEASES else 1) + 1):
                k = (rnd - 1 + j - 1) % max(1, len(tools))
                for t in tools[k:] + tools[:k]:
                    try:
                        run_dataset(objs[t], d, dirs[d], args.work, args.scale, rnd, rows,
                                    verdicts, repo_no=j)
                    except Exception as e:  # a broken run must not stop the others
                        log("error in %s/%s round %d: %r" % (t, d, rnd, e))
                        rows.append({"round": rnd, "repo": j, "dataset": d, "tool": t,
                                     "step": "init", "status": "FAILED", "wall": None,
                                     "user": None, "sys": None, "rss_kib": None,
                                     "repo_bytes": 0, "data_bytes": 0,
                                     "log": "driver error: %r" % e})


def main():
    ap = argparse.ArgumentParser(description="arca vs restic/borg/rustic (see compare.sh)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--datasets", default=",".join(ALL_DATASETS))
    ap.add_argument("--tools", default=None)
    ap.add_argument("--with-rustic", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--repos", type=int, default=5,
                    help="fresh repositories per tool and round for the release datasets")
    ap.add_argument("--quick", action="store_true",
                    help="--scale 0.05 --rounds 1 --repos 2")
    ap.add_argument("--arca", required=True)
    ap.add_argument("--repo-root", default=".")
    ap.add_argument("--cmdline", default="")
    args = ap.parse_args()
    if args.quick:
        args.scale, args.rounds, args.repos = 0.05, 1, 2
    if args.repos < 1:
        ap.error("--repos must be at least 1")
    if args.tools is None:
        args.tools = "arca,restic,borg" + (",rustic" if args.with_rustic else "")
    args.work = os.path.abspath(args.work or os.path.join(args.repo_root, "target/compare"))
    args.out = os.path.abspath(args.out or os.path.join(args.work, "report.md"))
    datasets = [d for d in args.datasets.split(",") if d]
    tools = [t for t in args.tools.split(",") if t]
    for d in datasets:
        if d not in ALL_DATASETS:
            ap.error("unknown dataset %s" % d)
    for t in tools:
        if t not in ALL_TOOLS:
            ap.error("unknown tool %s" % t)
    os.makedirs(args.work, exist_ok=True)
    started = time.time()

    meta = machine_meta()
    meta["skipped"] = []
    runnable = []
    for t in tools:
        if available(t, args.arca):
            runnable.append(t)
        else:
            msg = "%s: not available on this machine" % t
            meta["skipped"].append(msg)
            log("skipping " + msg)
    tools = runnable
    objs = {t: Tool(t, args.work, args.arca) for t in tools}
    meta["versions"] = {t: objs[t].version() for t in tools}
    if "restic" in objs:
        meta["restic_repo"] = ("version 2" if objs["restic"].restic_v2
                               else "version 1 (no compression)")
    meta["release_versions"] = {d: release_versions(d, args.scale) for d in RELEASES}

    dirs = {d: ensure_dataset(args.work, d, args.scale) for d in datasets}
    log("machine limits")
    lim = machine_limits(args.work, datasets, dirs, args.scale)

    # Restores go to a tmpfs when one can be mounted: on ext4, creating
    # files right after many were deleted (the previous tool's restore)
    # makes the inode allocator skip recently freed inodes, which can slow
    # a 100,000-file restore several-fold for whichever tool comes next.
    restore_root = args.work + "/restore"
    os.makedirs(restore_root, exist_ok=True)
    meta["restore_fs"] = "the work directory's file system"
    if os.geteuid() == 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16g,mode=0755", "tmpfs", restore_root],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
        meta["restore_fs"] = "a tmpfs (in memory)"
    log("restore targets on %s" % meta["restore_fs"])

    rows, verdicts = [], []
    try:
        run_rounds(args, tools, datasets, dirs, objs, rows, verdicts)
    finally:
        if meta["restore_fs"].startswith("a tmpfs"):
            subprocess.run(["umount", restore_root])
    rmtree(args.work + "/live")

    base = os.path.splitext(args.out)[0]
    meta["tsv"], meta["json"] = base + ".tsv", base + ".json"
    meta["elapsed_s"] = round(time.time() - started, 1)
    cols = ["round", "repo", "dataset", "tool", "step", "status", "wall", "user", "sys", "rss_kib",
            "repo_bytes", "data_bytes", "log"]
    with open(meta["tsv"], "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            f.write("\t".join("" if r[c] is None else str(r[c]) for c in cols) + "\n")
    with open(meta["json"], "w") as f:
        json.dump({"command": args.cmdline, "meta": meta, "limits": lim, "rows": rows,
                   "restore_verification": verdicts}, f, indent=1)
    text = report(args, meta, rows, verdicts, lim, tools, datasets)
    text += "\nTotal run time: %.0f s.\n" % meta["elapsed_s"]
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    log("report: %s" % args.out)
    return 1 if any(not v["ok"] for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
