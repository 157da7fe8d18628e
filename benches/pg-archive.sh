#!/usr/bin/env bash
# PostgreSQL WAL archiving, side by side: arca, pgBackRest and plain cp as
# the archive_command of the same workload on the same machine.
#
# Per tool and round: a fresh cluster (initdb in a temporary directory, its
# socket there, no TCP, default 16 MiB segments, archive_mode = on), then
# `pgbench -i -s SCALE` and `pgbench -T DURATION -c CLIENTS`, then
# pg_switch_wal() and a wait until the archiver has archived that segment.
#
#   arca              arca -q -r REPO --password-file FILE pg archive-wal %p
#                     (local repository, default compression)
#   pgbackrest        pgbackrest --stanza=bench archive-push %p (local
#                     repository, aes-256-cbc, default gz compression,
#                     synchronous: the default)
#   pgbackrest-async  the same with archive-async=y and a spool path: the
#                     command returns once a background process, which
#                     pushes every ready segment it finds, has pushed this one
#   cp                test ! -f DIR/%f && cp %p DIR/%f (PostgreSQL's example;
#                     no fsync, no compression, no encryption)
#
# Measured: the wall time of every archive_command call (a wrapper around
# it logs start, duration, the CPU time of its children and the exit
# status), reported as median and p99 per round, and the median apart for
# the segments pgbench -i wrote and those of the run; the archiver's backlog
# (segments with a .ready file) sampled every second: its maximum while
# pgbench -i's segments are archived (until the queue first falls to 1 in
# the run) and in the rest of the run, its value at the end of the run, and
# whether it kept up (fell to 1 or 0 in the last quarter of the run); how
# long archiving took to catch up after the run; pg_stat_archiver's
# archived_count and failed_count; the bytes the archive holds (sum of file
# sizes: arca's wal/, pgBackRest's archive/, cp's directory) and per
# archived segment; pgbench's tps; the machine's mean load average during
# the run (a hint of other work on it). Rounds interleave the tools; the
# summary gives medians over rounds and ratios of arca to synchronous
# pgBackRest.
# Last, for arca alone, what a call costs apart from the data: archive-wal
# of a new 16 MiB segment, of one already archived (opens the repository and
# compares), restore-wal of an absent name (opens the repository, one
# lookup) and `arca version` (program start), 11 calls each, with no
# server running.
#
#   bash benches/pg-archive.sh
#
#   ROUNDS=3 DURATION=120 SCALE=50 CLIENTS=4      the defaults (about 30 min on 2 cores)
#   ROUNDS=1 DURATION=20 SCALE=5                  a smoke run of a few minutes
#   TOOLS="arca arca-agent pgbackrest pgbackrest-async cp"   which tools, in this order
#   ARCA=/path                                    this arca binary, not a build
#   WORK=DIR  temporary clusters and archives (default: mktemp -d; removed)
#   OUT=DIR   per-round table and call logs (default: target/pg-archive)
#   WAIT_LIMIT=1200  seconds to wait for the last segment to be archived
#
# Runs as root (the servers and archive commands then run as `postgres`) or
# as any user who can run PostgreSQL. Installs pgbackrest, and postgresql
# when initdb is missing, from Debian's packages when root.
set -euo pipefail
export LC_ALL=C
rounds=${ROUNDS:-3} duration=${DURATION:-120} scale=${SCALE:-50} clients=${CLIENTS:-4}
read -ra tools <<<"${TOOLS:-arca arca-agent pgbackrest pgbackrest-async cp}"
wait_limit=${WAIT_LIMIT:-1200}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT:-$here/target/pg-archive}

log() { printf '[pg-archive] %s\n' "$*" >&2; }
root=0
[[ $(id -u) -eq 0 ]] && root=1
# Runs a command as the user the server runs as.
as_pg() { if ((root)); then runuser -u postgres -- "$@"; else "$@"; fi; }

apt_install() {
  if ((root)) && command -v apt-get >/dev/null; then
    log "installing $* (apt-get)"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    log "error: $* missing and not root: install it first"; exit 1
  fi
}
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
if [[ " ${tools[*]} " == *" pgbackrest"* ]] && ! command -v pgbackrest >/dev/null; then
  apt_install pgbackrest
fi

if [[ -n "${ARCA:-}" ]]; then
  arca_built=$ARCA
else
  log "building arca (cargo build --release --locked -p arca-cli)"
  cargo build --release --locked -p arca-cli --manifest-path "$here/Cargo.toml" >&2
  arca_built="${CARGO_TARGET_DIR:-$here/target}/release/arca"
fi

stats="$here/benches/pg-archive.py"
work=${WORK:-$(mktemp -d /tmp/pg-archive.XXXXXX)}
mkdir -p "$work/bin" "$out"
chmod 755 "$work"
server=""   # the data directory of the running server, for the trap
sampler=""
cleanup() {
  [[ -n $sampler ]] && kill "$sampler" 2>/dev/null
  [[ -n $server ]] && as_pg "$pgbin/pg_ctl" stop -m immediate -D "$server" >/dev/null 2>&1
  [[ -z ${WORK:-} ]] && rm -rf "$work"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Everything the archive commands run must be reachable by `postgres`.
cp "$arca_built" "$work/bin/arca"
cat >"$work/bin/timed" <<'SH'
#!/bin/bash
# timed LOG COMMAND: runs the shell command line COMMAND and appends
# "start_ns wall_ns children_cpu_ticks exit_status" to LOG. The clock is
# read without starting a process; CPU time is what the waited-for children
# used, in clock ticks (1/100 s), from this shell's own /proc entry.
log=$1 cmd=$2
start=${EPOCHREALTIME//[.,]/}
eval "$cmd"
status=$?
end=${EPOCHREALTIME//[.,]/}
read -ra stat </proc/$$/stat
echo "${start}000 $(((end - start) * 1000)) $((stat[15] + stat[16])) $status" >>"$log"
exit $status
SH
chmod 755 "$work/bin/arca" "$work/bin/timed"
echo "pg archive benchmark password" >"$work/password"
echo "pg archive benchmark passphrase" >"$work/passphrase"
chmod 600 "$work/password" "$work/passphrase"
((root)) && chown postgres: "$work/password" "$work/passphrase"


# The archive_command of TOOL, archiving into DIR (and pgBackRest's config).
setup_tool() {
  local tool=$1 dir=$2
  case $tool in
    arca)
      as_pg "$work/bin/arca" -q -r "$dir/repo" --password-file "$work/password" init
      echo "$work/bin/arca -q -r $dir/repo --password-file $work/password pg archive-wal %p"
      ;;
    arca-agent)
      # The resident agent keeps the repository open; it exits when the
      # round's directory (its cache, with the socket) is removed.
      as_pg "$work/bin/arca" -q -r "$dir/repo" --password-file "$work/password" init
      echo "$work/bin/arca -q -r $dir/repo --password-file $work/password --cache-dir $dir/cache pg archive-wal --agent %p"
      ;;
    pgbackrest | pgbackrest-async)
      {
        echo "[global]"
        echo "repo1-path=$dir/repo"
        echo "repo1-cipher-type=aes-256-cbc"
        echo "repo1-cipher-pass=$(cat "$work/passphrase")"
        echo "log-path=$dir/pgbackrest-log"
        echo "lock-path=$dir/pgbackrest-lock"
        echo "log-level-console=warn"
        if [[ $tool == pgbackrest-async ]]; then
          echo "archive-async=y"
          echo "spool-path=$dir/pgbackrest-spool"
        fi
        echo "[bench]"
        echo "pg1-path=$dir/data"
        echo "pg1-socket-path=$dir"
      } >"$dir/pgbackrest.conf"
      chmod 600 "$dir/pgbackrest.conf"
      mkdir "$dir/pgbackrest-log"
      ((root)) && chown postgres: "$dir/pgbackrest.conf" "$dir/pgbackrest-log"
      echo "pgbackrest --config=$dir/pgbackrest.conf --stanza=bench archive-push %p"
      ;;
    cp)
      mkdir "$dir/archive"
      ((root)) && chown postgres: "$dir/archive"
      echo "test ! -f $dir/archive/%f && cp %p $dir/archive/%f"
      ;;
    *) log "error: unknown tool $tool"; exit 2 ;;
  esac
}

# Where TOOL keeps the archived WAL under DIR.
archive_of() {
  case $1 in
    arca*) echo "$2/repo/wal" ;;
    pgbackrest*) echo "$2/repo/archive" ;;
    cp) echo "$2/archive" ;;
  esac
}

psql_() { "$pgbin/psql" -h "$1" -U postgres -d postgres -Atqc "$2"; }

# Every second, the number of segments waiting to be archived and the
# machine's load average (which includes other users' work).
sample() {
  local load _
  while :; do
    read -r load _ </proc/loadavg
    echo "$EPOCHSECONDS $(ls "$1/pg_wal/archive_status" | grep -c '\.ready$' || true) $load" >>"$2"
    sleep 1
  done
}
start_sampling() { sample "$@" & sampler=$!; }
stop_sampling() { kill "$sampler"; wait "$sampler" 2>/dev/null || true; sampler=""; }

# A real, full segment for the open-cost measurement: the newest archived
# one still in a finished round's pg_wal, other than LAST (switched early,
# mostly zeros).
keep_segment() {
  local data=$1 last=$2 name
  [[ -f $work/segment ]] && return
  name=$(ls "$data/pg_wal/archive_status" | sed -n 's/^\([0-9A-F]\{24\}\)\.done$/\1/p' |
    grep -vx "$last" | sort | tail -n 1 || true)
  [[ -n $name ]] && cp "$data/pg_wal/$name" "$work/segment"
  return 0
}

run_round() {
  local tool=$1 n=$2
  local dir=$work/$tool-$n
  local data=$dir/data times=$dir/times command i
  rm -rf "$dir"
  mkdir "$dir"
  ((root)) && chown postgres: "$dir"
  command=$(setup_tool "$tool" "$dir")
  (cd "$dir" && as_pg "$pgbin/initdb" -D "$data" -A trust -U postgres >/dev/null)
  cat >>"$data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
archive_mode = on
archive_command = '$work/bin/timed $times "$command"'
EOF
  as_pg touch "$times"
  as_pg "$pgbin/pg_ctl" start -w -t 60 -D "$data" -l "$dir/server.log" >/dev/null
  server=$data
  if [[ $tool == pgbackrest* ]]; then
    as_pg pgbackrest --config="$dir/pgbackrest.conf" --stanza=bench stanza-create >/dev/null
  fi

  log "$tool, round $n: pgbench -i -s $scale"
  start_sampling "$data" "$dir/backlog-init"
  "$pgbin/pgbench" -h "$dir" -U postgres -i -s "$scale" -q postgres >"$dir/pgbench-init.out" 2>&1 ||
    { cat "$dir/pgbench-init.out" >&2; exit 1; }
  stop_sampling
  log "$tool, round $n: pgbench -T $duration -c $clients"
  start_sampling "$data" "$dir/backlog-run"
  "$pgbin/pgbench" -h "$dir" -U postgres -T "$duration" -c "$clients" postgres >"$dir/pgbench.out" 2>&1 ||
    { cat "$dir/pgbench.out" >&2; exit 1; }
  stop_sampling
  local ended=$EPOCHREALTIME last row
  last=$(psql_ "$dir" "select pg_walfile_name(pg_switch_wal())")
  for ((i = 0; ; i++)); do
    row=$(psql_ "$dir" "select coalesce(last_archived_wal, ''), archived_count, failed_count from pg_stat_archiver")
    [[ ${row%%|*} > $last || ${row%%|*} == "$last" ]] && break
    if ((i > wait_limit * 5)); then log "$tool, round $n: not archived after $wait_limit s: $row"; break; fi
    sleep 0.2
  done
  local catch_up
  catch_up=$(python3 -c "print(round($EPOCHREALTIME - $ended, 1))")
  IFS='|' read -r _ archived failed <<<"$row"
  # The calls so far: a shutdown switches segments once more and archives
  # that one too, after the figures above.
  cp "$times" "$dir/calls"
  local stored tps
  stored=$(find "$(archive_of "$tool" "$dir")" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }')
  tps=$(awk '/^tps = / { print $3 }' "$dir/pgbench.out")
  keep_segment "$data" "$last"
  as_pg "$pgbin/pg_ctl" stop -m fast -D "$data" >/dev/null
  server=""

  python3 "$stats" round "$out/rounds.tsv" "$tool" "$n" "$dir/calls" "$dir/backlog-init" \
    "$dir/backlog-run" "$catch_up" "$archived" "$failed" "$stored" "${tps:-0}"
  cp "$dir/calls" "$out/calls-$tool-$n"
  cp "$dir/backlog-init" "$out/backlog-init-$tool-$n"
  cp "$dir/backlog-run" "$out/backlog-run-$tool-$n"
  ((failed > 0)) && cp "$dir/server.log" "$out/server-$tool-$n.log"
  rm -rf "$dir"
}

# What an arca call costs apart from its data, with no server running.
open_cost() {
  local dir=$work/open name i
  local repo=(-q -r "$dir/repo" --password-file "$work/password")
  mkdir -p "$dir/pg_wal"
  if [[ -f $work/segment ]]; then
    log "open cost: a 16 MiB segment of the pgbench run ($(gzip -1 <"$work/segment" | wc -c) bytes gzipped)"
  else
    log "open cost: no full segment kept; 16 MiB of random bytes instead"
    head -c 16M /dev/urandom >"$work/segment"
  fi
  "$work/bin/arca" "${repo[@]}" init
  : >"$dir/times"
  for i in $(seq 1 11); do
    name=$(printf '0000000100000000000000%02X' "$i")
    cp "$work/segment" "$dir/pg_wal/$name"
    timed_once new "$work/bin/arca" "${repo[@]}" pg archive-wal "$dir/pg_wal/$name"
    timed_once again "$work/bin/arca" "${repo[@]}" pg archive-wal "$dir/pg_wal/000000010000000000000001"
    timed_once absent "$work/bin/arca" "${repo[@]}" pg restore-wal 0000000100000000000000FF "$dir/absent" || true
    timed_once start "$work/bin/arca" version
  done
  cp "$work/segment" "$dir/pg_wal/000000010000000000000010"
  log "arca -v pg archive-wal of one more segment:"
  "$work/bin/arca" -v -r "$dir/repo" --password-file "$work/password" pg archive-wal \
    "$dir/pg_wal/000000010000000000000010" 2>&1 | sed 's/^/  /' >&2
  python3 "$stats" open "$dir/times"
}
timed_once() {
  local what=$1 start end status=0
  shift
  start=${EPOCHREALTIME//[.,]/}
  "$@" >/dev/null 2>&1 || status=$?
  end=${EPOCHREALTIME//[.,]/}
  echo "$what $(((end - start) * 1000))" >>"$work/open/times"
  return $status
}

python3 "$stats" header >"$out/rounds.tsv"
log "PostgreSQL $("$pgbin/postgres" -V | awk '{ print $3 }'), $(command -v pgbackrest >/dev/null && pgbackrest version), $("$work/bin/arca" version | head -n 1)"
log "tools: ${tools[*]}; $rounds rounds of pgbench -i -s $scale, pgbench -T $duration -c $clients; work: $work"
for n in $(seq 1 "$rounds"); do
  for tool in "${tools[@]}"; do
    run_round "$tool" "$n"
  done
done
python3 "$stats" summary "$out/rounds.tsv" "$rounds"
[[ " ${tools[*]} " == *" arca "* ]] && open_cost
echo "per-round table and every call's timing: $out"
