#!/usr/bin/env bash
# Whole-process throughput of `arca snapshot` on a generated directory of
# mixed data (default 1 GiB): incompressible files, text-like files, and many
# small files. Prints wall time, MB/s, CPU time and peak RSS for the first
# snapshot and for an unchanged re-snapshot.
#
#   benches/snapshot.sh [SIZE_MIB] [WORKDIR]
set -euo pipefail
size_mib=${1:-1024}
work=${2:-$(mktemp -d)}
here=$(cd "$(dirname "$0")/.." && pwd)

cargo build --release --locked -p arca-cli --manifest-path "$here/Cargo.toml" >&2
arca="$here/target/release/arca"
data="$work/data"
export ARCA_REPOSITORY="$work/repo" ARCA_PASSWORD=bench

if [ ! -d "$data" ]; then
  mkdir -p "$data/random" "$data/text" "$data/small"
  python3 - "$data" "$size_mib" <<'PY'
import os, random, sys
root, total = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(42)
words = [b"order", b"fill", b"cancel", b"BTC-USD", b"ETH-USD", b"qty=", b"px=", b"venue=X", b"\n"]
share = total // 3
# Incompressible: 64 MiB files.
left, i = share, 0
while left > 0:
    n = min(64 << 20, left)
    with open(f"{root}/random/r{i}.bin", "wb") as f: f.write(rng.randbytes(n))
    left -= n; i += 1
# Text-like: 32 MiB log files.
left, i = share, 0
while left > 0:
    n = min(32 << 20, left)
    buf = bytearray()
    while len(buf) < n:
        buf += rng.choice(words) + b" " + str(rng.randint(0, 10**6)).encode() + b" "
    with open(f"{root}/text/t{i}.log", "wb") as f: f.write(buf[:n])
    left -= n; i += 1
# Small files, 2-16 KiB, in a nested tree.
left, i = total - 2 * share, 0
while left > 0:
    n = min(rng.randint(2048, 16384), left)
    d = f"{root}/small/{i % 50}/{i % 7}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i}.dat", "wb") as f: f.write(rng.randbytes(n // 2) + b"a" * (n - n // 2))
    left -= n; i += 1
PY
fi

bytes=$(du -sb "$data" | cut -f1)
rm -rf "$ARCA_REPOSITORY"
"$arca" init >/dev/null 2>&1
sync
run() {
  local label=$1
  local out
  out=$( { /usr/bin/time -f '%e %U %S %M' "$arca" --no-progress --json snapshot "$data" >/dev/null; } 2>&1 | tail -n 1)
  read -r wall user sys rss <<<"$out"
  python3 -c "
b=$bytes; w=$wall
print(f'$label: {w:.2f} s wall, {b/w/1e6:.0f} MB/s, cpu {float($user)+float($sys):.2f} s, peak RSS {int($rss)//1024} MiB')"
}
echo "data: $((bytes / 1048576)) MiB in $(find "$data" -type f | wc -l) files ($work)"
run "first snapshot"
run "unchanged re-snapshot"
echo "repository: $(du -sm "$ARCA_REPOSITORY" | cut -f1) MiB"
