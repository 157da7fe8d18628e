#!/usr/bin/env bash
# The whole test suite: installs the test servers the remote-repository
# tests need (scripts/test-servers.sh), runs every test, then runs each fuzz
# target briefly (scripts/fuzz.sh; ARCA_SKIP_FUZZ=1 leaves that out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-servers.sh
cargo test --workspace --locked "$@"
# Every fuzz target over its seeds and a few seconds of mutations.
if [ "${ARCA_SKIP_FUZZ:-0}" != 1 ]; then
  bash scripts/fuzz.sh
fi
