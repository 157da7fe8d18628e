#!/usr/bin/env bash
# `check --read-data` throughput of arca and restic on the same data, in the
# same run, interleaved, caches dropped before each (when running as root).
#
#   benches/check.sh [SIZE_MIB] [WORKDIR]
#
# Generates SIZE_MIB (default 1536) of data, two thirds incompressible and
# one third text-like, so the repository is well over 1 GiB. Installs restic
# from Debian's packages when it is missing.
set -euo pipefail
size_mib=${1:-1536}
work=${2:-$(mktemp -d)}
here=$(cd "$(dirname "$0")/.." && pwd)

command -v restic >/dev/null || { apt-get update -q && apt-get install -y -q restic; } >&2
cargo build --release --locked -p arca-cli --manifest-path "$here/Cargo.toml" >&2
arca="$here/target/release/arca"
export ARCA_PASSWORD=bench RESTIC_PASSWORD=bench
data="$work/data"
if [ ! -d "$data" ]; then
  mkdir -p "$data"
  random_mib=$((size_mib * 2 / 3))
  for i in $(seq 0 $((random_mib / 64 - 1))); do head -c 64M /dev/urandom >"$data/random$i.bin"; done
  python3 - "$data" $((size_mib - random_mib)) <<'PY'
import random, sys
root, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(3)
words = [b"order", b"fill", b"cancel", b"BTC-USD", b"qty=", b"px=", b"\n"]
for i in range(max(1, mib // 32)):
    buf = bytearray()
    while len(buf) < 32 << 20:
        buf += rng.choice(words) + b" " + str(rng.randint(0, 10**6)).encode() + b" "
    open(f"{root}/log{i}.txt", "wb").write(buf[: 32 << 20])
PY
fi
rm -rf "$work/arca" "$work/restic"
"$arca" -r "$work/arca" init -q
"$arca" -r "$work/arca" --no-progress -q snapshot "$data"
restic -r "$work/restic" init -q
restic -r "$work/restic" backup -q "$data"
mib() { du -sm "$1" | cut -f1; }
echo "repositories: arca $(mib "$work/arca") MiB, restic $(mib "$work/restic") MiB"

drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
measure() {
  local label=$1 repo=$2; shift 2
  drop
  local t
  t=$( { /usr/bin/time -f '%e %U %S %M' "$@" >/dev/null; } 2>&1 | tail -n 1)
  read -r wall user sys rss <<<"$t"
  python3 -c "
b = $(du -sb "$repo" | cut -f1); w = $wall
print(f'$label: {w:.2f} s, {b / w / 1e6:.0f} MB/s, cpu {$user + $sys:.2f} s, peak RSS {$rss // 1024} MiB')"
}
for round in 1 2 3; do
  measure "arca   check --read-data" "$work/arca" "$arca" -r "$work/arca" --no-progress -q check --read-data
  measure "restic check --read-data" "$work/restic" restic -r "$work/restic" -q check --read-data
done
