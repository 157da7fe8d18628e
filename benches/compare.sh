#!/usr/bin/env bash
# Side-by-side, whole-process comparison of arca with restic, borg and
# (optionally) rustic on the same generated data, on the same machine.
#
# For each dataset (a ~1 GB SQLite trading database and its next-day version,
# 512 MiB of incompressible data, 100,000 small files, 10 successive
# Django source releases, and 10 successive libsqlite3-sys releases, whose
# large generated files (the SQLite amalgamation, bindings) change between
# releases) and each tool it measures init, first snapshot,
# unchanged re-snapshot, snapshot after a change, restore into an empty
# directory (verified byte for byte afterwards, outside timing) and a full
# data check: wall time, CPU time (user+sys), peak RSS and repository size.
# Tools are interleaved and their order rotated each round; the report gives
# medians over rounds, ratios against arca, and the machine's own limits for
# the same data (reading the files, BLAKE3, zstd level 3).
#
# The release datasets (history, generated) run --repos fresh repositories
# per tool and round
# (tools interleaved): each fresh repository has a new key and so new chunk
# boundaries, and the report gives every tool's final repository size as
# median, min–max and spread over them, next to the timings.
#
#   bash benches/compare.sh [--rounds N]
#                           [--datasets trades-db,random,smallfiles,history,generated]
#                           [--tools arca,restic,borg,rustic] [--with-rustic]
#                           [--repos N] [--scale F] [--work DIR] [--out FILE.md] [--quick]
#
#   --quick        = --scale 0.05 --rounds 1 --repos 2 (a smoke run of a few minutes)
#   --repos N      fresh repositories per tool and round for the release
#                  datasets (default 5)
#   --scale F      multiplies every dataset's size; below 0.5 the release
#                  datasets use only the first 3 of their 10 releases
#   ARCA=/path     use this arca binary instead of building one
#
# Peers are installed with apt-get when running as root and missing (restic,
# borgbackup, time, sqlite3, zstd, b3sum, python3); rustic only with
# --with-rustic (or rustic in --tools), by `cargo install rustic-rs --locked`
# when it is not on PATH. A tool that is still unavailable is skipped.
# Default work dir: target/compare in the repository; report: WORK/report.md,
# raw measurements beside it (.tsv and .json). The page cache is warm for
# every tool: the datasets are far smaller than RAM.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/.." && pwd)

# Only a few options matter here (which peers to install); the Python driver
# parses and validates the whole command line.
with_rustic=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --with-rustic) with_rustic=1 ;;
    --tools) [[ "${args[$((i + 1))]:-}" == *rustic* ]] && with_rustic=1 ;;
    --tools=*rustic*) with_rustic=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  esac
done

log() { printf '[compare] %s\n' "$*" >&2; }

# --- peers ------------------------------------------------------------------
# command -> Debian package
declare -A pkg_of=([restic]=restic [borg]=borgbackup [sqlite3]=sqlite3 [zstd]=zstd
  [b3sum]=b3sum [python3]=python3)
missing=()
for cmd in "${!pkg_of[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]}")
done
[[ -x /usr/bin/time ]] || missing+=(time)
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing: ${missing[*]}"
    apt-get update -qq >/dev/null 2>&1 || true
    # One by one, so a package missing from the archive (b3sum on older
    # releases) does not stop the others.
    for p in "${missing[@]}"; do
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null 2>&1 ||
        log "could not install $p (skipped)"
    done
  else
    log "missing (not root, not installing): ${missing[*]}"
  fi
fi
for need in python3 /usr/bin/time; do
  command -v "$need" >/dev/null 2>&1 || { log "error: $need is required"; exit 1; }
done

if ((with_rustic)) && ! command -v rustic >/dev/null 2>&1; then
  if [[ -x "$HOME/.cargo/bin/rustic" ]]; then
    export PATH="$PATH:$HOME/.cargo/bin"
  elif command -v cargo >/dev/null 2>&1; then
    log "installing rustic (cargo install rustic-rs --locked)"
    cargo install rustic-rs --locked >&2 || log "could not install rustic (skipped)"
    export PATH="$PATH:$HOME/.cargo/bin"
  else
    log "rustic unavailable: no cargo to install it with (skipped)"
  fi
fi

# --- arca -------------------------------------------------------------------
if [[ -n "${ARCA:-}" ]]; then
  arca=$ARCA
else
  log "building arca (cargo build --release --locked -p arca-cli)"
  (cd "$repo_root" && cargo build --release --locked -p arca-cli >&2)
  arca="${CARGO_TARGET_DIR:-$repo_root/target}/release/arca"
fi
[[ -x "$arca" ]] || { log "error: no arca binary at $arca"; exit 1; }

# Recorded in the report: the command line exactly as given.
cmdline="bash benches/compare.sh${*:+ $*}"
exec python3 "$here/compare.py" --arca "$arca" --repo-root "$repo_root" \
  --cmdline "$cmdline" "$@"
