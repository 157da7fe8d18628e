#!/usr/bin/env bash
# First snapshot versus unchanged re-snapshot of many small files (default
# 100,000 files of 200 B to 8 KiB in a deep tree). The re-snapshot must read
# no file contents (bytes_read 0) and take a fraction of the first run's time.
#
#   benches/smallfiles.sh [FILES] [WORKDIR]
set -euo pipefail
files=${1:-100000}
work=${2:-$(mktemp -d)}
here=$(cd "$(dirname "$0")/.." && pwd)

cargo build --release --locked -p arca-cli --manifest-path "$here/Cargo.toml" >&2
arca="$here/target/release/arca"
data="$work/smallfiles"
export ARCA_REPOSITORY="$work/repo-smallfiles" ARCA_PASSWORD=bench

if [ ! -d "$data" ]; then
  python3 - "$data" "$files" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(n):
    # 1,000 directories of 100 files, three levels deep.
    d = os.path.join(root, f"a{i // 10000}", f"b{(i // 1000) % 10}", f"c{(i // 100) % 10}")
    os.makedirs(d, exist_ok=True)
    size = rng.randint(200, 8192)
    with open(os.path.join(d, f"f{i}.dat"), "wb") as f:
        f.write(rng.randbytes(size // 2) + b"x" * (size - size // 2))
PY
fi

rm -rf "$ARCA_REPOSITORY"
"$arca" init >/dev/null 2>&1
run() {
  local label=$1 out json
  json=$(mktemp)
  out=$( { /usr/bin/time -f '%e %U %S %M' "$arca" --no-progress --json snapshot "$data" >"$json"; } 2>&1 | tail -n 1)
  read -r wall user sys rss <<<"$out"
  python3 - "$json" "$label" "$wall" "$user" "$sys" "$rss" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); s = j["summary"]
label, wall, user, sys_, rss = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
print(f"{label}: {wall:.2f} s wall, cpu {user + sys_:.2f} s, peak RSS {rss // 1024} MiB; "
      f"files new {s['files_new']} changed {s['files_changed']} unchanged {s['files_unchanged']}, "
      f"bytes read {s['bytes_read']}, bytes added {s['bytes_added']}")
PY
  echo "$wall" >>"$work/times"
  rm -f "$json"
}
: >"$work/times"
echo "data: $(find "$data" -type f | wc -l) files, $(du -sm "$data" | cut -f1) MiB ($work)"
sync
run "first snapshot"
run "unchanged re-snapshot"
python3 -c "
t = [float(x) for x in open('$work/times').read().split()]
print(f'ratio: re-snapshot takes {t[1] / t[0]:.3f} of the first run')"
