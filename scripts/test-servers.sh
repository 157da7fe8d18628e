#!/usr/bin/env bash
# Installs the storage servers the remote-repository tests run against:
#   - s3s-fs, an S3 server over a local directory (crates.io), built into
#     target/test-servers/bin. It speaks the S3 protocol (SigV4 auth, ranged
#     GET, list-objects-v2) as a real process on loopback, builds in about a
#     minute, and needs no download beyond crates.io.
#   - OpenSSH's sshd and ssh from Debian's openssh-server/openssh-client.
#   - promtool from Debian's prometheus package, which the metrics tests run
#     on the files --metrics-file writes, and the dashboard test on the
#     queries of contrib/grafana/arca.json (as recording rules).
#   - python3-fusepy from Debian (libfuse2; root mounts without fusermount), for a case-insensitive FUSE file
#     system the restore tests write into.
#   - fusermount3 from Debian's fuse3, with which the mount tests mount arca's
#     own FUSE file system (arca mounts without libfuse, through fusermount3).
#   - systemd-analyze from Debian's systemd package, which verifies the units
#     under contrib/systemd. `systemd-analyze verify` reads unit files only and
#     needs no running systemd, so it works in a container; the test passes
#     --man=no so that it never looks up man pages, which slim images lack.
#   - PostgreSQL from Debian's postgresql package (initdb, pg_ctl, psql under
#     /usr/lib/postgresql/<version>/bin), whose archive_command the WAL
#     archiving tests point at arca; they run the server as the package's
#     postgres user, which the package creates.
# The tests start and stop their own instances on free loopback ports.
# Safe to run again: what is present is not installed twice.
set -euo pipefail
cd "$(dirname "$0")/.."

S3S_VERSION=0.14.1
root="$PWD/target/test-servers"

if [ ! -x "$root/bin/s3s-fs" ]; then
  echo "installing s3s-fs $S3S_VERSION into $root"
  cargo install --quiet --locked --root "$root" --features binary "s3s-fs@$S3S_VERSION"
fi

if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing openssh-server and openssh-client"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      openssh-server openssh-client
  else
    echo "OpenSSH's server is missing; as root run: apt-get install openssh-server" >&2
  fi
fi

if [ ! -x /usr/bin/promtool ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing prometheus (for promtool)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      prometheus
  else
    echo "promtool is missing; as root run: apt-get install prometheus" >&2
  fi
fi

if ! command -v systemd-analyze >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing systemd (for systemd-analyze)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      systemd
  else
    echo "systemd-analyze is missing; as root run: apt-get install systemd" >&2
  fi
fi

if ! command -v fusermount3 >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing fuse3 (for fusermount3)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      fuse3
  else
    echo "fusermount3 is missing; as root run: apt-get install fuse3" >&2
  fi
fi

# A case-insensitive FUSE file system (tests/fixtures/casefold_fs.py) for the
# restore tests on targets that fold names: Debian's python3-fusepy, run by
# the system's /usr/bin/python3, and /dev/fuse.
if ! /usr/bin/python3 -c 'import fusepy' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing python3-fusepy (for the case-insensitive file system)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      python3-fusepy
  else
    echo "python3-fusepy is missing; as root run: apt-get install python3-fusepy" >&2
  fi
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! id postgres >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing postgresql (for the WAL archiving tests)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      postgresql
  else
    echo "PostgreSQL is missing; as root run: apt-get install postgresql" >&2
  fi
fi
