#!/usr/bin/env python3
"""How much a repository's final size varies between fresh repositories.

Each fresh arca repository draws a new key, and so a new chunker seed
(docs/format.md §3.2, §5.1); restic draws a new chunker polynomial, borg a
new chunker seed. For N fresh repositories per tool, the trees are
snapshotted in order at one path into one repository, and the repository's
final size (`du -sb`) is recorded. Tools are interleaved (repository j of
every tool before repository j+1 of any), so machine noise cannot line up
with one tool. Prints every size, then per tool the median, min, max and
spread = (max - min) / median.

    python3 benches/spread.py --arca target/release/arca [--repos 10]
        [--tools arca,restic,borg] [--work DIR] [--arca-init-args "..."]
        [TREE...]

Without TREE arguments, the trees are compare.sh's `history` dataset: the
ten Django 4.2.x releases, downloaded into WORK/data/history on first use.
Standard library only; uses compare.py's tool definitions."""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402


def run_once(tool, trees, live, init_args):
    """Fresh repository, every tree in order at `live`; the final size."""
    tool.reset()
    env = tool.env
    compare.sh(tool.cmd_init() + init_args, env=env, stdout=compare.subprocess.DEVNULL,
               stderr=compare.subprocess.DEVNULL)
    for t in trees:
        compare.rmtree(live)
        os.makedirs(live)
        compare.sh(["cp", "-a", t + "/.", live + "/"])
        compare.sh(tool.cmd_snapshot(live), env=env, stdout=compare.subprocess.DEVNULL,
                   stderr=compare.subprocess.DEVNULL)
    size = compare.du(tool.repo)
    compare.rmtree(tool.base)
    return size


def summary(sizes):
    med = statistics.median(sizes)
    return {"n": len(sizes), "median": med, "min": min(sizes), "max": max(sizes),
            "spread": (max(sizes) - min(sizes)) / med}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arca", default="target/release/arca")
    ap.add_argument("--repos", type=int, default=10)
    ap.add_argument("--tools", default="arca,restic")
    ap.add_argument("--work", default="target/compare")
    ap.add_argument("--arca-init-args", default="",
                    help="extra arguments of `arca init`, e.g. '--compression 3'")
    ap.add_argument("trees", nargs="*")
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    trees = [os.path.abspath(t) for t in args.trees]
    if not trees:
        ddir = compare.ensure_dataset(work, "history", 1.0)
        trees = ["%s/releases/%s" % (ddir, v) for v in compare.HISTORY_VERSIONS]
    tools = [t for t in args.tools.split(",") if compare.available(t, args.arca)]
    objs = {t: compare.Tool(t, work + "/spread", os.path.abspath(args.arca)) for t in tools}
    init_args = {t: [] for t in tools}
    init_args["arca"] = args.arca_init_args.split()
    live = work + "/spread/live"
    sizes = {t: [] for t in tools}
    for j in range(args.repos):
        k = j % len(tools)
        for t in tools[k:] + tools[:k]:
            size = run_once(objs[t], trees, live, init_args[t])
            sizes[t].append(size)
            print("repo %2d %-7s %d" % (j + 1, t, size), flush=True)
    compare.rmtree(live)
    print("tool     n   median B    min B      max B      spread")
    for t in tools:
        s = summary(sizes[t])
        print("%-7s %2d %10d %10d %10d %7.2f %%" % (t, s["n"], s["median"], s["min"],
                                                     s["max"], 100 * s["spread"]))


if __name__ == "__main__":
    main()
