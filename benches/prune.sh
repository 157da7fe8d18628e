#!/usr/bin/env bash
# forget + prune of arca and restic on the same history, in the same run:
# ten versions of SIZE_MIB (default 512) of data, each version rewriting
# 10 % of the files; then everything but the newest is forgotten and pruned.
# Reports time, peak RSS and the repository size against a fresh repository
# holding only the newest version.
#
#   benches/prune.sh [SIZE_MIB] [WORKDIR]
#
# Installs restic from Debian's packages when it is missing.
set -euo pipefail
size_mib=${1:-512}
work=${2:-$(mktemp -d)}
here=$(cd "$(dirname "$0")/.." && pwd)

command -v restic >/dev/null || { apt-get update -q && apt-get install -y -q restic; } >&2
cargo build --release --locked -p arca-cli --manifest-path "$here/Cargo.toml" >&2
arca="$here/target/release/arca"
export ARCA_PASSWORD=bench RESTIC_PASSWORD=bench
data="$work/data"
files=$((size_mib / 4))
rm -rf "$data" "$work/arca" "$work/restic" "$work/fresh"
mkdir -p "$data"
for i in $(seq 1 "$files"); do head -c 4M /dev/urandom >"$data/f$i"; done
"$arca" -r "$work/arca" init -q
restic -r "$work/restic" init -q
for v in $(seq 1 10); do
  if [ "$v" -gt 1 ]; then
    for i in $(seq 1 $((files / 10))); do
      head -c 4M /dev/urandom >"$data/f$(( (v * files / 10 + i) % files + 1 ))"
    done
  fi
  "$arca" -r "$work/arca" --no-progress -q snapshot "$data"
  restic -r "$work/restic" backup -q "$data"
done
"$arca" -r "$work/fresh" init -q
"$arca" -r "$work/fresh" --no-progress -q snapshot "$data"

mib() { du -sm "$1" | cut -f1; }
timed() {
  local label=$1; shift
  local t
  t=$( { /usr/bin/time -f '%e %U %S %M' "$@" >/dev/null; } 2>&1 | tail -n 1)
  read -r wall user sys rss <<<"$t"
  echo "$label: ${wall} s wall, cpu $(python3 -c "print(round($user + $sys, 2))") s, peak RSS $((rss / 1024)) MiB"
}
echo "before: arca $(mib "$work/arca") MiB, restic $(mib "$work/restic") MiB; fresh arca with the newest version only: $(mib "$work/fresh") MiB"
timed "arca   forget --keep-last 1" "$arca" -r "$work/arca" -q forget --keep-last 1
timed "restic forget --keep-last 1" restic -r "$work/restic" -q forget --keep-last 1
timed "arca   prune --instant-delete" "$arca" -r "$work/arca" --no-progress -q prune --instant-delete
timed "restic prune" restic -r "$work/restic" -q prune
echo "after: arca $(mib "$work/arca") MiB, restic $(mib "$work/restic") MiB"
"$arca" -r "$work/arca" -q check --read-data
