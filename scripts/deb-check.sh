#!/usr/bin/env bash
# Builds the Debian package (scripts/deb.sh), installs it with dpkg, checks
# what it installed (the binary, the manual pages through man, the bash
# completion, `systemd-analyze verify` on the units, nothing enabled), then
# removes it again so it shadows nothing. Needs root and dpkg: otherwise
# it says why it is skipped, or fails under ARCA_TEST_REQUIRE_SERVERS=1 (CI).
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  if [ "${ARCA_TEST_REQUIRE_SERVERS:-0}" = 1 ]; then
    echo "deb-check: $1, and ARCA_TEST_REQUIRE_SERVERS=1 requires the package check" >&2
    exit 1
  fi
  echo "deb-check: skipped: $1" >&2
  exit 0
}
fail() {
  echo "deb-check: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || skip "installing a package needs root"
command -v dpkg >/dev/null 2>&1 || skip "no dpkg (not a Debian system)"
if dpkg-query -W -f='${Status}' arca 2>/dev/null | grep -q 'ok installed'; then
  skip "a package named arca is installed already; it is left alone"
fi

# man to look the pages up, systemd-analyze to verify the units.
if ! command -v man >/dev/null 2>&1 || ! command -v systemd-analyze >/dev/null 2>&1; then
  apt-get update -q && apt-get install -y -q man-db systemd
fi

deb=$(bash scripts/deb.sh | tail -n 1)
[ -f "$deb" ] || fail "scripts/deb.sh printed no package path (got '$deb')"
echo "deb-check: checking $deb"
# No maintainer script at all: installing enables and starts nothing.
# (Whole outputs are captured before matching: with pipefail, grep -q
# quitting early would fail the pipe.)
control=$(dpkg-deb --ctrl-tarfile "$deb" | tar -t)
if grep -Eq '(pre|post)(inst|rm)$' <<<"$control"; then
  fail "the package has maintainer scripts; it must not enable or start units"
fi

# Slim images exclude manual pages from installs; these are the package's.
dpkg -i --path-include='/usr/share/man/man1/arca*' "$deb"
trap 'dpkg -r arca >/dev/null' EXIT

version=$(/usr/bin/arca --version)
grep -q '^arca ' <<<"$version" || fail "/usr/bin/arca --version: $version"
page=$(man -w arca) || fail "man -w arca finds no page"
[ "$page" = /usr/share/man/man1/arca.1.gz ] || fail "man -w arca: $page"
man -w arca-snapshot >/dev/null || fail "man -w arca-snapshot finds no page"
# The page renders (gzipped roff that man can read).
rendered=$(man -P cat arca 2>/dev/null)
grep -q 'snapshot' <<<"$rendered" || fail "man arca does not render"

completion=/usr/share/bash-completion/completions/arca
[ -s "$completion" ] || fail "no $completion"
bash -c "source $completion && complete -p arca" >/dev/null ||
  fail "$completion does not define a completion for arca"
[ -s /usr/share/zsh/vendor-completions/_arca ] || fail "no zsh completion"
[ -s /usr/share/fish/vendor_completions.d/arca.fish ] || fail "no fish completion"

units=/usr/lib/systemd/system
grep -qx 'ExecStart=/usr/bin/arca --profile %i -q run' "$units/arca@.service" ||
  fail "$units/arca@.service does not run /usr/bin/arca"
grep -qx 'ExecStart=/usr/bin/arca --profile %i -q pg backup' "$units/arca-pg-backup@.service" ||
  fail "$units/arca-pg-backup@.service does not run /usr/bin/arca"
grep -qx 'ExecStart=/usr/bin/arca --profile %i watch' "$units/arca-watch@.service" ||
  fail "$units/arca-watch@.service does not run /usr/bin/arca"
# The installed templates, as `systemctl enable arca@nightly.timer` would
# instantiate them; works without systemd running. verify exits 0 on
# warnings, so any output fails.
out=$(systemd-analyze verify --man=no "$units/arca@.service" "$units/arca@.timer" \
  arca@nightly.timer arca@nightly.service \
  "$units/arca-pg-backup@.service" "$units/arca-pg-backup@.timer" \
  arca-pg-backup@db.timer arca-pg-backup@db.service \
  "$units/arca-watch@.service" arca-watch@trades.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
if ls /etc/systemd/system/*.wants/arca@* /etc/systemd/system/*.wants/arca-pg-backup@* \
  /etc/systemd/system/*.wants/arca-watch@* >/dev/null 2>&1; then
  fail "installing enabled a unit"
fi

dpkg -r arca >/dev/null
trap - EXIT
[ ! -e /usr/bin/arca ] || fail "dpkg -r arca left /usr/bin/arca"
echo "deb-check: ok: binary, manual pages, completions and units install and remove cleanly"
