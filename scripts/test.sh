#!/usr/bin/env bash
# The whole test suite: installs the test servers the remote-repository
# tests need (scripts/test-servers.sh), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-servers.sh
cargo test --workspace --locked "$@"
