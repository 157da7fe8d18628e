#!/usr/bin/env bash
# Listing a big directory through `arca mount`: `ls -l` (a lookup and a
# stat of every entry) of one directory of FILES empty files in a fresh
# mount, for one or two builds, rounds interleaved; prints each run's wall
# seconds and the medians. A lookup costs the same whatever the directory's
# size, so the time grows with FILES, not with its square.
#
#   benches/mount-listing.sh [ROUNDS] [FILES] [BINARY...]
#
# ROUNDS defaults to 3, FILES to 100000; the BINARYs (a build before a
# change and one after, say) default to a release build of this checkout.
# WORKDIR (environment) keeps the repository between runs. A listing is
# stopped after 600 s. Needs /dev/fuse and fusermount3 (Debian: fuse3).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
files=${2:-100000}
builds=("${@:3}")
if [ ${#builds[@]} -eq 0 ]; then
  cargo build --release --locked -p arca-cli --manifest-path "$here/Cargo.toml" >&2
  builds=("$here/target/release/arca")
fi
work=${WORKDIR:-$(mktemp -d)}
export ARCA_REPOSITORY="$work/repo" ARCA_PASSWORD=bench ARCA_CACHE_DIR="$work/cache"

if [ ! -d "$work/repo" ]; then
  mkdir -p "$work/src/dir"
  python3 - "$work/src/dir" "$files" <<'PY'
import os, sys
for i in range(int(sys.argv[2])):
    open(os.path.join(sys.argv[1], f"f{i:07d}"), "w").close()
PY
  "${builds[0]}" -q init
  "${builds[0]}" -q snapshot "$work/src"
fi

mnt="$work/mnt"
mkdir -p "$mnt"
cleanup() {
  if mountpoint -q "$mnt"; then fusermount3 -u -z "$mnt" || true; fi
}
trap cleanup EXIT

# Wall seconds of `ls -l` over the directory in a fresh mount by $1.
listing() {
  "$1" -q mount "$mnt" &
  local pid=$! start end lines
  for _ in $(seq 600); do
    [ -d "$mnt/latest$work/src/dir" ] && break
    sleep 0.05
  done
  start=$(date +%s.%N)
  lines=$(timeout 600 ls -l "$mnt/latest$work/src/dir" | wc -l || true)
  end=$(date +%s.%N)
  kill -INT "$pid"
  wait "$pid" || true
  [ "$lines" -eq $((files + 1)) ] || echo "listed $lines lines of $((files + 1))" >&2
  python3 -c "print(f'{$end - $start:.3f}')"
}

results="$work/listing.tsv"
: >"$results"
for round in $(seq "$rounds"); do
  for i in "${!builds[@]}"; do
    wall=$(listing "${builds[$i]}")
    printf '%s\tbuild%s\t%s\n' "$round" "$((i + 1))" "$wall" | tee -a "$results"
  done
done
python3 - "$results" "$files" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
for build in sorted({r[1] for r in rows}):
    med = statistics.median(float(r[2]) for r in rows if r[1] == build)
    print(f"{build}: ls -l of {sys.argv[2]} entries, median {med:.2f} s")
PY
