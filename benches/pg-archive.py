#!/usr/bin/env python3
"""Statistics for benches/pg-archive.sh (standard-library Python).

  pg-archive.py header                      the per-round table's header
  pg-archive.py round OUT TOOL ROUND CALLS BACKLOG_INIT BACKLOG_RUN
                      CATCH_UP ARCHIVED FAILED STORED TPS
                                            appends one round's row to OUT, prints it
  pg-archive.py summary OUT ROUNDS          medians over rounds, ratios arca / pgbackrest
  pg-archive.py open TIMES                  arca's cost of a call, by part

CALLS holds a line per archive_command call ("start_ns wall_ns cpu_ticks
status"), the BACKLOG files a line per second ("epoch_s ready_segments
load_average").
"""
import csv, math, statistics as st, sys

COLUMNS = ["tool", "round", "calls", "median_ms", "p99_ms", "init_median_ms", "run_median_ms",
           "cpu_ms", "init_backlog_max", "run_backlog_max", "run_backlog_end", "kept_up",
           "catch_up_s", "archived", "failed", "stored_bytes", "bytes_per_segment", "tps", "load"]

def samples(path, column=1, kind=int):
    with open(path) as f:
        return [kind(line.split()[column]) for line in f if line.strip()]

def round_row(tool, rnd, times, init, run, catch_up, archived, failed, stored, tps):
    calls = [line.split() for line in open(times) if line.strip()]
    wall = sorted(int(c[1]) / 1e6 for c in calls)
    p99 = wall[max(0, math.ceil(0.99 * len(wall)) - 1)] if wall else 0
    cpu = [int(c[2]) * 10 for c in calls]  # ticks of 1/100 s -> ms
    init_s, run_s = samples(init), samples(run)
    # The run starts with what pgbench -i left queued: that belongs to
    # pgbench -i until the queue first falls to 1.
    drained = next((i for i, n in enumerate(run_s) if n <= 1), len(run_s))
    split = (samples(run, 0)[drained] if drained < len(run_s) else math.inf) * 1e9
    init_wall = [int(c[1]) / 1e6 for c in calls if int(c[0]) < split]
    run_wall = [int(c[1]) / 1e6 for c in calls if int(c[0]) >= split]
    tail = run_s[-max(1, len(run_s) // 4):] if run_s else [0]
    archived = int(archived)
    return {
        "tool": tool, "round": rnd, "calls": len(calls),
        "median_ms": st.median(wall) if wall else 0, "p99_ms": p99,
        "init_median_ms": st.median(init_wall) if init_wall else 0,
        "run_median_ms": st.median(run_wall) if run_wall else 0,
        "cpu_ms": st.mean(cpu) if cpu else 0,
        "init_backlog_max": max(init_s + run_s[:drained], default=0),
        "run_backlog_max": max(run_s[drained:], default=0),
        "run_backlog_end": run_s[-1] if run_s else 0, "kept_up": int(min(tail) <= 1),
        "catch_up_s": float(catch_up), "archived": archived, "failed": int(failed),
        "stored_bytes": int(stored),
        "bytes_per_segment": int(stored) / archived if archived else 0, "tps": float(tps),
        "load": st.mean(samples(run, 2, float) or [0]),
    }

def summary(path, rounds_wanted):
    rows = list(csv.DictReader(open(path), delimiter="\t"))
    tools = list(dict.fromkeys(r["tool"] for r in rows))
    med = {}
    for t in tools:
        mine = [r for r in rows if r["tool"] == t]
        m = {k: st.median(float(r[k]) for r in mine) for k in COLUMNS[2:]}
        m["rounds"] = len(mine)
        m["kept_up"] = sum(int(r["kept_up"]) for r in mine)
        m["failed"] = sum(int(r["failed"]) for r in mine)
        med[t] = m
    print(f"\nMedians of the rounds ({rounds_wanted} asked):\n")
    print("| tool | per segment, median | p99 | median, pgbench -i / run | CPU a call "
          "| max backlog, pgbench -i | max backlog, run | kept up | catch-up after run | archived "
          "| failed | stored a segment | tps | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t, m in med.items():
        print(f"| {t} | {m['median_ms']:.1f} ms | {m['p99_ms']:.1f} ms "
              f"| {m['init_median_ms']:.0f} / {m['run_median_ms']:.0f} ms | {m['cpu_ms']:.0f} ms "
              f"| {m['init_backlog_max']:.0f} | {m['run_backlog_max']:.0f} "
              f"| {m['kept_up']}/{m['rounds']} | {m['catch_up_s']:.1f} s | {m['archived']:.0f} "
              f"| {m['failed']} | {m['bytes_per_segment'] / 2**20:.2f} MiB "
              f"({m['bytes_per_segment']:.0f} B) | {m['tps']:.0f} | {m['load']:.1f} |")
    p = med.get("pgbackrest")
    for name in ("arca", "arca-agent"):
        a = med.get(name)
        if a and p:
            print(f"\n{name} / pgbackrest: per-segment median time {a['median_ms'] / p['median_ms']:.2f}, "
                  f"p99 {a['p99_ms'] / p['p99_ms']:.2f}, "
                  f"CPU {a['cpu_ms'] / max(p['cpu_ms'], 1e-9):.2f}, "
                  f"stored bytes {a['bytes_per_segment'] / p['bytes_per_segment']:.2f}")

def open_cost(path):
    runs = {}
    for line in open(path):
        what, ns = line.split()
        runs.setdefault(what, []).append(int(ns) / 1e6)
    m = {k: st.median(v) for k, v in runs.items()}
    print(f"\narca, what a call costs (median of {len(runs['new'])} calls each, no pgbench running):\n")
    labels = {"new": "archive-wal, new 16 MiB segment", "again": "archive-wal, already archived",
              "absent": "restore-wal, absent name (open + one lookup)", "start": "arca version (start only)"}
    for k, label in labels.items():
        print(f"  {label:48} {m[k]:7.1f} ms")
    print(f"  opening the repository is {m['absent'] / m['new']:.0%} of a new segment's call "
          f"({m['absent'] - m['start']:.0f} ms of {m['new']:.0f} ms beyond program start)")

if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "round":
        out, row = args[0], round_row(*args[1:])
        with open(out, "a") as f:
            f.write("\t".join(str(row[k]) for k in COLUMNS) + "\n")
        print(f"  {row['calls']} calls: median {row['median_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms "
              f"(median {row['init_median_ms']:.0f} ms for pgbench -i's segments, "
              f"{row['run_median_ms']:.0f} ms in the run), CPU {row['cpu_ms']:.0f} ms; "
              f"backlog max {row['init_backlog_max']} (init) / {row['run_backlog_max']} (run), "
              f"end of run {row['run_backlog_end']}, "
              f"kept up: {'yes' if row['kept_up'] else 'no'}; caught up {row['catch_up_s']:.1f} s "
              f"after the run; archived {row['archived']}, failed {row['failed']}; "
              f"{row['stored_bytes']} B stored, {row['bytes_per_segment']:.0f} B a segment; "
              f"{row['tps']:.0f} tps; load average {row['load']:.1f}")
    elif mode == "header":
        print("\t".join(COLUMNS))
    elif mode == "summary":
        summary(*args)
    elif mode == "open":
        open_cost(*args)
