#!/usr/bin/env bash
# Builds every fuzz target and runs each over its seed corpus and then
# FUZZ_SECONDS (default 10) of coverage-guided mutations. Installs
# cargo-fuzz when missing. Runs on the stable toolchain without a sanitizer;
# for long runs with AddressSanitizer see fuzz/README.md.
#
#   bash scripts/fuzz.sh                 # every target, 10 s each
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh tree index
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-10}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# cargo-fuzz passes -Z flags to rustc; stable accepts them with this set.
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build --sanitizer none
for target in "${targets[@]}"; do
  work="$(mktemp -d)"
  log="$work.log"
  # New inputs go to the scratch corpus; the committed seeds stay as they are.
  if ! cargo fuzz run --sanitizer none "$target" "$work" "seeds/$target" --       -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')"
  echo "fuzz target $target: $runs inputs in ${seconds} s, no failure"
  rm -rf "$work" "$log"
done
