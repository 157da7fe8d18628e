#!/usr/bin/env bash
# Snapshot and restore throughput of the same tree (default 1 GiB, made by
# benches/snapshot.sh) into a local repository and into an S3 repository on
# a loopback s3s-fs server (installed by scripts/test-servers.sh). Prints
# wall time and MB/s for each, with the metadata cache cold and warm.
#
#   benches/remote.sh [SIZE_MIB] [WORKDIR]
set -euo pipefail
size_mib=${1:-1024}
work=${2:-$(mktemp -d)}
here=$(cd "$(dirname "$0")/.." && pwd)

bash "$here/scripts/test-servers.sh" >&2
[ -d "$work/data" ] || bash "$here/benches/snapshot.sh" "$size_mib" "$work" >/dev/null
cargo build --release --locked -p arca-cli --manifest-path "$here/Cargo.toml" >&2
arca="$here/target/release/arca"
data="$work/data"
bytes=$(du -sb "$data" | cut -f1)
export ARCA_PASSWORD=bench ARCA_CACHE_DIR="$work/cache"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -rf "$work/s3" && mkdir -p "$work/s3/bench"
"$here/target/test-servers/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$work/s3" \
  >"$work/s3.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done

timed() {
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/stderr" \
    || { cat "$work/stderr" >&2; exit 1; }
  read -r wall rss <"$work/time"
  python3 -c "b=$bytes; w=$wall; print(f'  $label: {w:.2f} s, {b/w/1e6:.0f} MB/s, peak RSS {$rss // 1024} MiB')"
}

echo "data: $((bytes / 1048576)) MiB in $(find "$data" -type f | wc -l) files"
for repo in "$work/local-repo" "s3:http://127.0.0.1:$port/bench/repo"; do
  rm -rf "$work/local-repo" "$work/cache" "$work/restore"
  export ARCA_REPOSITORY=$repo
  "$arca" init >/dev/null 2>&1
  echo "$repo"
  sync
  timed "snapshot" "$arca" --no-progress snapshot "$data"
  timed "unchanged re-snapshot" "$arca" --no-progress snapshot "$data"
  timed "restore" "$arca" --no-progress restore latest --target "$work/restore"
  rm -rf "$work/restore"
done
