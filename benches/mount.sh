#!/usr/bin/env bash
# Reading a file through `arca mount` against restoring it: one 1 GiB file
# of random bytes, copied out of a fresh mount (cold blob cache, empty page
# cache of the mount) and restored with `arca restore latest:PATH`, both
# into a tmpfs when one can be mounted (root), else into WORKDIR. Rounds
# interleave the two; prints each run's wall seconds and the medians, and
# mount's throughput as a share of restore's.
#
#   benches/mount.sh [BINARY] [ROUNDS] [WORKDIR]
#
# BINARY defaults to a release build of this checkout; ROUNDS to 5. Needs
# /dev/fuse and fusermount3 (Debian: fuse3).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${1:-}" ]; then
  arca=$1
else
  cargo build --release --locked -p arca-cli --manifest-path "$here/Cargo.toml" >&2
  arca="$here/target/release/arca"
fi
rounds=${2:-5}
work=${3:-$(mktemp -d)}
export ARCA_REPOSITORY="$work/repo" ARCA_PASSWORD=bench

if [ ! -d "$work/repo" ]; then
  mkdir -p "$work/big"
  head -c $((1 << 30)) /dev/urandom >"$work/big/trades.db"
  "$arca" init >/dev/null
  "$arca" snapshot "$work/big" >/dev/null
fi

target="$work/target"
mnt="$work/mnt"
mkdir -p "$target" "$mnt"
cleanup() {
  if mountpoint -q "$mnt"; then fusermount3 -u -z "$mnt" || true; fi
  if [ -n "${tmpfs:-}" ]; then umount "$target"; fi
}
trap cleanup EXIT
if [ "$(id -u)" = 0 ] && ! mountpoint -q "$target"; then
  mount -t tmpfs -o size=3g tmpfs "$target" && tmpfs=1
fi

# Seconds (with fractions) a command takes; its output is dropped.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.3f}')"
}

read_through_mount() {
  "$arca" -q mount "$mnt" &
  local pid=$!
  for _ in $(seq 600); do
    mountpoint -q "$mnt" && [ -d "$mnt/latest" ] && break
    sleep 0.05
  done
  mountpoint -q "$mnt" || { echo "not mounted" >&2; exit 1; }
  local wall
  wall=$(seconds cp "$mnt/latest$work/big/trades.db" "$target/mounted.db")
  kill -INT "$pid"
  wait "$pid"
  cmp -s "$work/big/trades.db" "$target/mounted.db" || { echo "mount read differs" >&2; exit 1; }
  rm -f "$target/mounted.db"
  echo "$wall"
}

restore() {
  local wall
  wall=$(seconds "$arca" restore "latest:$work/big/trades.db" --target "$target/restored")
  cmp -s "$work/big/trades.db" "$target/restored/trades.db" || { echo "restore differs" >&2; exit 1; }
  rm -rf "$target/restored"
  echo "$wall"
}

results="$work/results.tsv"
: >"$results"
for round in $(seq "$rounds"); do
  # Assignments, so that a failed run (output differs) stops the script.
  wall=$(restore)
  printf '%s\trestore\t%s\n' "$round" "$wall" | tee -a "$results"
  wall=$(read_through_mount)
  printf '%s\tmount\t%s\n' "$round" "$wall" | tee -a "$results"
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
med = {k: statistics.median(float(r[2]) for r in rows if r[1] == k) for k in ("restore", "mount")}
mib = 1024
print(f"restore {med['restore']:.2f} s ({mib / med['restore']:.0f} MiB/s), "
      f"mount {med['mount']:.2f} s ({mib / med['mount']:.0f} MiB/s), "
      f"mount/restore throughput {med['restore'] / med['mount']:.2f}")
PY
