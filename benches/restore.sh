#!/usr/bin/env bash
# Restore throughput of two arca builds side by side, interleaved: 100,000
# small files (200 B to 8 KiB, 1,000 directories) and one 768 MiB file of
# half-random, half-zero MiB blocks, each restored into a tmpfs when one
# can be mounted (root), else into WORKDIR. Prints each run's wall seconds
# and peak RSS (/usr/bin/time) and the medians, per build.
#
#   benches/restore.sh BEFORE_BINARY [AFTER_BINARY] [ROUNDS] [WORKDIR]
#
# AFTER_BINARY defaults to a release build of this checkout; ROUNDS to 5.
set -euo pipefail
before=$1
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${2:-}" ]; then
  after=$2
else
  cargo build --release --locked -p arca-cli --manifest-path "$here/Cargo.toml" >&2
  after="$here/target/release/arca"
fi
rounds=${3:-5}
work=${4:-$(mktemp -d)}
export ARCA_REPOSITORY="$work/repo" ARCA_PASSWORD=bench

if [ ! -d "$work/small" ]; then
  python3 - "$work" <<'PY'
import os, random, sys
work = sys.argv[1]
rng = random.Random(7)
for i in range(100_000):
    d = os.path.join(work, "small", f"{i // 1000:03}", f"{(i // 100) % 10}")
    os.makedirs(d, exist_ok=True)
    size = rng.randint(200, 8192)
    with open(os.path.join(d, f"f{i}.dat"), "wb") as f:
        f.write(rng.randbytes(size // 2) + b"x" * (size - size // 2))
os.makedirs(os.path.join(work, "big"), exist_ok=True)
with open(os.path.join(work, "big", "trades.db"), "wb") as f:
    for _ in range(768):
        f.write(rng.randbytes(512 * 1024) + bytes(512 * 1024))
PY
  "$after" init >/dev/null
  "$after" snapshot "$work/small" "$work/big" >/dev/null
fi

target="$work/target"
mkdir -p "$target"
if [ "$(id -u)" = 0 ] && ! mountpoint -q "$target"; then
  mount -t tmpfs -o size=3g tmpfs "$target" && trap 'umount "$target"' EXIT
fi

results="$work/results.tsv"
: >"$results"
for round in $(seq "$rounds"); do
  for data in small big; do
    for build in before after; do
      binary=$before
      [ "$build" = after ] && binary=$after
      rm -rf "${target:?}/$build"
      /usr/bin/time -f "%e %M" -o "$work/time" \
        "$binary" restore "latest:$work/$data" --target "$target/$build" >/dev/null
      read -r wall kib <"$work/time"
      printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$data" "$build" "$wall" "$kib" | tee -a "$results"
    done
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
for data in ("small", "big"):
    walls = {b: [float(r[3]) for r in rows if r[1] == data and r[2] == b] for b in ("before", "after")}
    peaks = {b: [int(r[4]) / 1024 for r in rows if r[1] == data and r[2] == b] for b in ("before", "after")}
    med = {b: statistics.median(walls[b]) for b in walls}
    print(f"{data}: before {med['before']:.2f} s ({statistics.median(peaks['before']):.0f} MiB), "
          f"after {med['after']:.2f} s ({statistics.median(peaks['after']):.0f} MiB), "
          f"after/before {med['after'] / med['before']:.3f}")
PY
