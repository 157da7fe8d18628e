#!/usr/bin/env bash
# The whole test suite: installs the test servers the remote-repository
# tests need (scripts/test-servers.sh), runs every test, builds the library
# docs with warnings as errors, runs the embedding example, builds and
# checks the Debian package (scripts/deb-check.sh: as root on Debian, else
# skipped), then runs each fuzz target briefly (scripts/fuzz.sh;
# ARCA_SKIP_FUZZ=1 leaves that out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-servers.sh
cargo test --workspace --locked "$@"
# The library crates' API docs build without a warning (arca-core warns on
# any undocumented public item).
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps -p arca-core -p arca-backend
# The embedding example runs on its own (temporary repository and source).
cargo run --locked --example embed
# The .deb installs, works and removes cleanly.
bash scripts/deb-check.sh
# Every fuzz target over its seeds and a few seconds of mutations.
if [ "${ARCA_SKIP_FUZZ:-0}" != 1 ]; then
  bash scripts/fuzz.sh
fi
