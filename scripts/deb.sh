#!/usr/bin/env bash
# Builds the Debian package target/debian/arca_VERSION-1_ARCH.deb and prints
# its path on the last line. It holds /usr/bin/arca, the manual pages
# (gzipped), bash, zsh and fish completions, the systemd units
# arca@.service, arca@.timer, arca-pg-backup@.service and .timer, and
# arca-watch@.service (ExecStart=/usr/bin/arca; nothing enables them) and
# the docs. Install it with `dpkg -i`.
#
# The release build comes first; the generated files (manual pages,
# completions, the unit rewritten for /usr/bin) go to
# target/release/deb-assets, where [package.metadata.deb] in
# crates/arca-cli/Cargo.toml takes them; then `cargo deb --no-build` packs
# it all. Installs cargo-deb when absent.
set -euo pipefail
cd "$(dirname "$0")/.."

# The cargo-deb release this script is tested with (builds on Rust >= 1.85).
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi

cargo build --release --locked -p arca-cli
release="${CARGO_TARGET_DIR:-target}/release"
arca="$release/arca"

assets="$release/deb-assets"
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions" "$assets/systemd"
"$arca" -q man "$assets/man"
# Debian policy: manual pages gzipped at maximum compression, without a
# timestamp (cargo-deb leaves files from the target directory as they are).
gzip -9n "$assets"/man/*.1
"$arca" completions bash >"$assets/completions/arca"
"$arca" completions zsh >"$assets/completions/_arca"
"$arca" completions fish >"$assets/completions/arca.fish"
# contrib's units run /usr/local/bin/arca (where `cargo install --root
# /usr/local` puts it); the package's binary is /usr/bin/arca.
for unit in arca@.service arca-pg-backup@.service arca-watch@.service; do
  sed 's|^ExecStart=/usr/local/bin/arca |ExecStart=/usr/bin/arca |' \
    "contrib/systemd/$unit" >"$assets/systemd/$unit"
  if grep -q '^ExecStart=/usr/local/' "$assets/systemd/$unit" ||
    ! grep -q '^ExecStart=/usr/bin/arca ' "$assets/systemd/$unit"; then
    echo "deb.sh: contrib/systemd/$unit has an ExecStart line not rewritten to /usr/bin/arca" >&2
    exit 1
  fi
done
cp contrib/systemd/arca@.timer contrib/systemd/arca-pg-backup@.timer "$assets/systemd/"

# cargo-deb prints the package's path on stdout.
cargo deb -p arca-cli --no-build --locked --strip --output target/debian/
