//! Command-line arguments (clap derive). Nothing here acts; `config.rs`
//! resolves these into one settled configuration.

use std::path::PathBuf;

use arca_core::select::{SnapshotFilter, Spec};
use clap::{Args, Parser, Subcommand};

use crate::units;

const EXAMPLES: &str = "\
Examples:
  export ARCA_REPOSITORY=/srv/backup/arca ARCA_PASSWORD_FILE=/etc/arca/password
  arca init
  arca snapshot /var/lib/trades /etc/trading --tag nightly
  arca snapshots
  arca ls latest /var/lib/trades
  arca restore latest --target /tmp/restore
  arca status --max-age 26h
  arca forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --prune

Exit codes: 0 success, 1 error, 2 usage, 3 snapshot saved but some files could
not be read, 10 no repository, 11 repository locked, 12 wrong password.";

/// arca: deduplicating, encrypted snapshot backups.
///
/// Every snapshot is logically full, only chunks the repository has never
/// seen are stored, and everything is encrypted before it leaves the machine.
#[derive(Debug, Parser)]
#[command(
    name = "arca",
    version = env!("ARCA_VERSION_LINE"),
    after_help = EXAMPLES,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Repository: a path or local:PATH; s3:ENDPOINT/BUCKET/PREFIX;
    /// sftp:[USER@]HOST:/PATH or sftp://[USER@]HOST[:PORT]/PATH.
    #[arg(
        short = 'r',
        long = "repo",
        env = "ARCA_REPOSITORY",
        global = true,
        value_name = "REPO"
    )]
    pub repo: Option<units::Address>,

    /// Read the password from the first line of FILE.
    #[arg(long, env = "ARCA_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Run CMD with `sh -c` and use its output as the password.
    #[arg(
        long,
        env = "ARCA_PASSWORD_COMMAND",
        hide_env_values = true,
        global = true,
        value_name = "CMD"
    )]
    pub password_command: Option<String>,

    /// Print results as JSON on stdout (human messages go to stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// Print only errors and warnings.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Say more about what is happening (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Never draw progress bars (they are drawn only on a terminal anyway).
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// When the repository is locked (prune, repair, check, key changes), keep trying
    /// for up to DURATION (e.g. 30s, 10min, 2h) instead of failing at once.
    #[arg(long, global = true, value_name = "DURATION")]
    pub retry_lock: Option<units::Duration>,

    /// Keep nothing in the local cache (a remote repository's metadata,
    /// copy's map of what it already copied).
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// Keep the metadata cache here [default: $XDG_CACHE_HOME/arca or
    /// ~/.cache/arca].
    #[arg(long, env = "ARCA_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Transfers in flight at once [default: 8 for S3, 4 for SFTP, 2 for a
    /// local path].
    #[arg(long, env = "ARCA_CONNECTIONS", global = true, value_name = "N")]
    pub connections: Option<units::Connections>,

    /// After snapshot, forget, prune, check, run, status and pg
    /// archive-wal/restore-wal, and after every round of watch, write
    /// Prometheus metrics into FILE (for node_exporter's textfile
    /// collector), keeping the other commands' series in it.
    #[arg(long, env = "ARCA_METRICS_FILE", global = true, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Use the profile NAME: $XDG_CONFIG_HOME/arca/NAME.toml or
    /// ~/.config/arca/NAME.toml (flags and environment win over it).
    #[arg(long, global = true, value_name = "NAME", conflicts_with = "config")]
    pub profile: Option<units::ProfileName>,

    /// Use the profile in FILE (see --profile).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Append a timestamped line with the command and its outcome to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository.
    #[command(
        after_help = "Examples:\n  arca -r /srv/backup/arca init --compression 6\n  arca -r s3:s3.eu-west-1.amazonaws.com/acme-backups/db1 init\n  arca -r sftp:backup@vault:/srv/arca/db1 init\n\nS3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or ~/.aws); SFTP uses ssh's own config and agent. docs/backends.md has the details."
    )]
    Init(InitArgs),
    /// Take a snapshot of files and directories.
    #[command(
        after_help = "Examples:\n  arca snapshot /var/lib/trades\n  arca snapshot /etc /srv/strategies --tag nightly --host db1"
    )]
    Snapshot(Box<SnapshotArgs>),
    /// List snapshots.
    #[command(
        after_help = "Examples:\n  arca snapshots\n  arca snapshots --host db1 --tag nightly --json\n  arca snapshots --latest 1 --group-by host"
    )]
    Snapshots(SnapshotsArgs),
    /// List the entries of a snapshot.
    #[command(
        after_help = "Examples:\n  arca ls latest\n  arca ls 1a2b3c4d /var/lib/trades --long"
    )]
    Ls(LsArgs),
    /// Verify the repository: structure, and with --read-data every byte.
    #[command(
        after_help = "Examples:\n  arca check\n  arca check --read-data\n  arca check --read-data-subset 3/7   # nightly: day 3 of a weekly cycle\n  arca check --read-data-subset 10%\n  arca check --read-data-subset 2GiB\n\nExit code 0 only when no error was found; 1 otherwise."
    )]
    Check(CheckArgs),
    /// Rebuild the index from the packs, or rewrite damaged snapshots.
    #[command(
        subcommand,
        after_help = "Examples:\n  arca repair index\n  arca repair snapshots --dry-run\n  arca repair snapshots --forget"
    )]
    Repair(RepairCommand),
    /// Sizes, blob counts, and deduplication and compression ratios.
    #[command(after_help = "Examples:\n  arca stats\n  arca stats latest --json")]
    Stats(StatsArgs),
    /// Find which snapshots hold paths matching a pattern.
    #[command(
        after_help = "Examples:\n  arca find 'trades-2026-11-*.db'\n  arca find '/srv/strategies/**/*.toml' --host db1 --json\n\nA pattern without '/' matches entry names; with '/', whole stored paths."
    )]
    Find(FindArgs),
    /// Show what changed between two snapshots.
    #[command(
        after_help = "Examples:\n  arca diff 1a2b3c4d latest\n  arca diff 1a2b3c4d 5e6f7a8b --json\n\nLines: + added, - removed, M content modified, U metadata only, T type changed."
    )]
    Diff(DiffArgs),
    /// Write a stored file to stdout (a directory as a tar stream).
    #[command(
        after_help = "Examples:\n  arca dump latest /var/lib/trades/positions.csv > positions.csv\n  arca dump latest /etc/trading | tar -x -C /tmp/etc"
    )]
    Dump(DumpArgs),
    /// Remove snapshots: the ones given, or those a retention policy does not keep.
    #[command(
        after_help = "Examples:\n  arca forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-tag month-end --dry-run\n  arca forget --keep-within 30d --keep-monthly -1 --prune\n  arca forget 1a2b3c4d 5e6f7a8b\n\nSnapshots are grouped by host and paths (--group-by) and the policy applies to\neach group. Buckets (hour, day, ISO week, month, year) are in local time.\nSpans are like 2y5m7d3h (m: months, as in restic), counted back from the newest\nsnapshot of the group.\nA count of -1 means unlimited. See docs/retention.md for the exact rules.",
        group = clap::ArgGroup::new("policy").multiple(true).conflicts_with("ids")
    )]
    Forget(Box<ForgetArgs>),
    /// Delete data no snapshot uses, without ever blocking snapshots.
    #[command(
        after_help = "Examples:\n  arca prune --dry-run\n  arca prune\n  arca prune --max-unused 10% --keep-marked 48h\n  arca prune --instant-delete   # only when nothing else writes to the repository\n\nDeletion is two-phase: unused packs are marked now and deleted by a later prune\nonce the mark is older than --keep-marked (and still no snapshot uses them).\nExit code 11 when another prune or repair holds the lock."
    )]
    Prune(PruneArgs),
    /// Remove stale locks (or all locks with --remove-all).
    #[command(
        after_help = "Examples:\n  arca unlock\n  arca unlock --remove-all   # only when no arca process uses the repository\n\nA lock is stale when it was not refreshed for 30 minutes, or when its holder\nran on this host and has exited."
    )]
    Unlock(UnlockArgs),
    /// List, add and remove the passwords (keys) that open the repository.
    #[command(
        subcommand,
        after_help = "Examples:\n  arca key list\n  arca key add --new-password-file /etc/arca/password.ops --user ops\n  arca key passwd   # asks for the new password twice\n  arca key remove 1a2b3c4d\n\nEvery key wraps the same master key under its own password, so key changes\nrewrite no data. Key changes take the exclusive lock: exit 11 while a prune,\nrepair or check holds the repository (--retry-lock waits)."
    )]
    Key(KeyCommand),
    /// Restore a snapshot into a directory.
    #[command(
        after_help = "Examples:\n  arca restore latest --target /tmp/restore\n  arca restore 1a2b3c4d --target /srv/recovered\n  arca restore latest --target /srv/trades --delete --dry-run\n\nFiles are restored under their full original path below the target."
    )]
    Restore(RestoreArgs),
    /// Copy snapshots to another repository (offsite), re-encrypted under its key.
    #[command(
        after_help = "Examples:\n  arca copy --to /mnt/offsite/arca --to-password-file /etc/arca/offsite.password\n  arca copy latest --to s3:https://s3.eu-west-1.amazonaws.com/acme-backups/db1\n  arca copy --host db1 --tag nightly --to /mnt/offsite/arca --dry-run\n  ARCA_TO_REPOSITORY=/mnt/offsite/arca ARCA_TO_PASSWORD_FILE=/etc/arca/offsite.password arca copy\n\nWithout SNAP, every snapshot matching --host/--tag/--path is copied. Snapshots the\ndestination already holds a copy of are skipped, so the same command run nightly\ncopies only new ones. Exit code 10 when the destination does not exist, 12 when\nits password is wrong."
    )]
    Copy(CopyArgs),
    /// Show the newest snapshot of each host and path set, and its age (RPO).
    #[command(
        after_help = "Examples:\n  arca status\n  arca status --max-age 26h   # from cron or a monitoring check\n  arca status --host db1 --path /var/lib/trades --max-age 26h --json\n  arca --profile db status --max-wal-age 15min   # PostgreSQL WAL archiving\n\nSnapshots are grouped by host and paths. Exit code 1 with --max-age when the newest\nsnapshot of any group is older than DURATION, or when no snapshot matches at all.\n\nWhen the repository holds PostgreSQL WAL files (or with --max-wal-age), status also\nshows the newest one and when it was archived, the recovery window (from the oldest\nbase backup, tagged pg-base, of --host, to the newest WAL file) and, with a metrics\nfile, how many times pg archive-wal failed. Exit code 1 with --max-wal-age when the\nnewest WAL file is older than DURATION, or there is none.\n\nReads only snapshot files and a few WAL headers, and takes no lock."
    )]
    Status(StatusArgs),
    /// Restore a snapshot into a temporary directory, verify it, report RTO and RPO.
    #[command(
        after_help = "Examples:\n  arca drill\n  arca drill --host db1 --path /var/lib/trades --json\n  arca drill 1a2b3c4d --target-dir /srv/scratch   # room for a full restore\n\nEvery restored file is re-read and checked against the snapshot. The temporary\ndirectory is removed afterwards, also when the drill fails. Exit code 1 when any\ndata could not be read or does not match."
    )]
    Drill(DrillArgs),
    /// The nightly routine of a profile: hooks, snapshot, forget, prune when due, check.
    #[command(
        after_help = "Examples:\n  arca run --profile nightly\n  arca run --config /etc/arca/db1.toml --json --log-file /var/log/arca.log\n\nSteps: before-hooks, snapshot of [snapshot] sources, forget by [forget] (skipped\nwithout keep_*), prune when due ([prune] every), check (structure plus\n[check] read_data_subset), then after-hooks, or on_failure hooks when a step\nfailed. The exit code is the worst step's; docs/usage.md has the details."
    )]
    Run(RunArgs),
    /// Add, remove or set the tags of snapshots.
    #[command(
        after_help = "Examples:\n  arca tag 1a2b3c4d --add month-end\n  arca tag latest --host db1 --remove nightly --add weekly\n  arca tag 1a2b3c4d 5e6f7a8b --set audit-2026\n\nEach changed snapshot is written anew, recording the one it replaces as its\noriginal, and only then is the old one removed: an interruption never loses both.",
        group = clap::ArgGroup::new("change").required(true).multiple(true)
    )]
    Tag(TagArgs),
    /// Mount the repository as a read-only file system (FUSE).
    #[command(
        after_help = "Examples:\n  arca mount /mnt/arca   # Ctrl-C unmounts\n  arca mount /mnt/arca --host db1 --cache-size 256MiB\n  cp /mnt/arca/latest/var/lib/trades/positions.csv /tmp/\n\nLayout: snapshots/<time>_<id>/ (each snapshot's tree under its full original\npaths), hosts/<host>/, tags/<tag>/ and latest (a symlink to the newest snapshot).\nNew snapshots appear within seconds. Reads fetch only the chunks they touch.\nNeeds /dev/fuse and fusermount3 (Debian: fuse3). Takes no lock, like restore;\nthe command ends, unmounting, on Ctrl-C or SIGTERM (exit 0), or when the file\nsystem is unmounted (fusermount3 -u MOUNTPOINT)."
    )]
    Mount(MountArgs),
    /// Remove paths from stored snapshots: each is replaced by one without them.
    #[command(
        after_help = "Examples:\n  arca rewrite --exclude '*.key' --exclude /srv/app/cache/ --dry-run\n  arca rewrite 1a2b3c4d --exclude-file /etc/arca/excludes --forget\n  arca rewrite --host db1 --tag nightly --exclude '/var/lib/trades/**/*.tmp'\n\nPatterns mean what they mean to snapshot --exclude (gitignore rules, matched\nagainst the absolute paths stored), here applied to every entry of the snapshot.\nWithout SNAP, every snapshot matching --host/--tag/--path is rewritten; one in\nwhich nothing matches is left alone. The new snapshot is stored, recording the\nold one as its original, before --forget removes the old one. The removed data\nstays in the repository until a prune finds no snapshot using it.",
        group = clap::ArgGroup::new("patterns").required(true).multiple(true)
    )]
    Rewrite(RewriteArgs),
    /// Keep taking a consistent snapshot of each SQLite database whenever it changed.
    #[command(
        after_help = "Examples:\n  arca watch /var/lib/trades/orders.db --keep-within 24h --keep-hourly 168 --keep-daily 30\n  arca --profile db watch   # the databases, interval and policy of the profile's [watch]\n  arca watch /var/lib/trades/orders.db --once   # one round, from cron or a script\n  arca restore --as-of '2026-11-24 14:30' --path /var/lib/trades/orders.db --target /tmp/r\n\nEvery round reads each database's change stamp (its header's change counter and\npage count, and its write-ahead log's size and header) without opening it; only a\ndatabase that changed since its last snapshot is snapshotted, one snapshot per\ndatabase, tagged watch. The stamps are kept in the cache directory, so a\nrestarted watch (or --once from cron) snapshots only what changed since its\nlast run; without a cache its first round takes one of each. An idle database\ncosts one small read per round and no repository access. After a snapshot (at\nmost every five minutes) the --keep-* policy (else the profile's [watch] keep_*) forgets that database's older\nwatch snapshots of this host, each set of tags apart (one not read consistently\nis also tagged inconsistent, so it never pushes a consistent one out); with no\npolicy at all every snapshot is kept.\nForget removes snapshot files only: the nightly prune reclaims the data.\n\nA failed snapshot is reported in one line and retried in the next round. The\ncommand runs until SIGTERM or SIGINT and then exits 0, unless a snapshot was\nrunning: it is abandoned, leaving nothing half-written, with exit code 143\n(SIGTERM) or 130 (SIGINT). With --once the exit code is 0 when every database\nwas unchanged or saved, 3 when one was saved but not read consistently or its old\nsnapshots not forgotten, 1 when one failed or is missing. docs/sqlite.md has the details.",
        group = clap::ArgGroup::new("policy").multiple(true)
    )]
    Watch(Box<WatchArgs>),
    /// Print a shell completion script for arca.
    #[command(
        after_help = "Examples:\n  arca completions bash > /etc/bash_completion.d/arca\n  arca completions zsh > \"${fpath[1]}/_arca\"\n  arca completions fish > ~/.config/fish/completions/arca.fish"
    )]
    Completions(CompletionsArgs),
    /// PostgreSQL: WAL archiving, base backups and point-in-time recovery.
    #[command(
        subcommand,
        after_help = "Each WAL file is one object under wal/ in the repository, named by a keyed hash\nof its file name, compressed and encrypted. Archiving a file the repository\nalready holds with the same content succeeds without writing; different content\nunder the same name fails (exit 1) and keeps the stored file. docs/usage.md has\nthe details.\n\nExamples, in postgresql.conf:\n  archive_mode = on\n  archive_command = 'arca --profile db pg archive-wal %p'\n  restore_command = 'arca --profile db pg restore-wal %f %p'"
    )]
    Pg(PgCommand),
    /// Write the manual pages (arca.1 and one per command).
    #[command(
        after_help = "Examples:\n  arca man /usr/local/share/man/man1\n  arca man | man -l -   # read arca(1) now"
    )]
    Man(ManArgs),
    /// Print the version, the commit it was built from and its features.
    #[command(after_help = "Examples:\n  arca version\n  arca version --json")]
    Version,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// An existing empty directory to mount the file system on.
    pub mountpoint: PathBuf,

    /// Most memory kept for file chunks and directories read.
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    pub cache_size: units::Size,

    /// Let users other than the one mounting read the file system (needs
    /// user_allow_other in /etc/fuse.conf unless run as root).
    #[arg(long)]
    pub allow_other: bool,

    /// Which snapshots the file system shows.
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Snapshots: ids, unique id prefixes, or "latest" (the newest matching
    /// --host/--tag/--path).
    #[arg(value_name = "SNAP", required = true)]
    pub snapshots: Vec<Spec>,

    /// Add TAG (repeatable).
    #[arg(long = "add", value_name = "TAG", group = "change")]
    pub add: Vec<units::Tag>,

    /// Remove TAG (repeatable).
    #[arg(long = "remove", value_name = "TAG", group = "change")]
    pub remove: Vec<units::Tag>,

    /// Replace all tags with these (repeatable).
    #[arg(long = "set", value_name = "TAG", group = "change", conflicts_with_all = ["add", "remove"])]
    pub set: Vec<units::Tag>,

    /// Which snapshots "latest" considers.
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Snapshots: ids, unique id prefixes or "latest" (default: every
    /// snapshot matching --host/--tag/--path).
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<Spec>,

    /// Remove paths matching GLOB (gitignore rules, as snapshot --exclude; repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "GLOB", group = "patterns")]
    pub excludes: Vec<units::Glob>,

    /// Read such patterns from FILE, one per line (repeatable).
    #[arg(long = "exclude-file", value_name = "FILE", group = "patterns")]
    pub exclude_files: Vec<PathBuf>,

    /// Remove each rewritten snapshot once its replacement is stored.
    #[arg(long)]
    pub forget: bool,

    /// Show what would be removed from which snapshot; write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Which snapshots are rewritten without SNAP, and which "latest" considers.
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The SQLite databases (default: the profile's [watch] databases).
    #[arg(value_name = "DB")]
    pub databases: Vec<PathBuf>,

    /// Start a round every DURATION (e.g. 30s, 5min), counted from the
    /// previous round's start [default: 30s, or the profile's [watch] every].
    #[arg(long, value_name = "DURATION")]
    pub every: Option<units::Interval>,

    /// Add a tag to every snapshot (repeatable); watch is always added.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<units::Tag>,

    /// Record this host name instead of the machine's.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// How the databases are read, as for snapshot --sqlite [default:
    /// auto].
    #[arg(long, value_name = "MODE")]
    pub sqlite: Option<units::SqliteMode>,

    /// Run one round, then exit (for cron and scripts).
    #[arg(long)]
    pub once: bool,

    /// The retention policy applied to each database's watch snapshots
    /// after each of its snapshots; without any, the profile's [watch]
    /// keep_*; without those, every snapshot is kept.
    #[command(flatten)]
    pub keep: KeepArgs,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write arca.1 and arca-COMMAND.1 pages into DIR (created if missing);
    /// without DIR, print arca.1 on stdout.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Record this time in the snapshot instead of now (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local).
    #[arg(long, value_name = "TIME")]
    pub time: Option<units::Time>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// zstd level for new data, 0 (off) to 22.
    #[arg(
        long,
        value_name = "LEVEL",
        allow_negative_numbers = true,
        default_value_t = units::Compression(arca_core::InitOptions::DEFAULT_COMPRESSION)
    )]
    pub compression: units::Compression,

    /// Target pack size, e.g. 16MiB (1 MiB to 1 GiB).
    #[arg(long, value_name = "SIZE", default_value = "16MiB")]
    pub pack_size: units::PackSize,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Files and directories to back up.
    #[arg(value_name = "PATH", required_unless_present_any = ["stdin", "stdin_from_command"])]
    pub paths: Vec<PathBuf>,

    /// Store standard input as one file (see --stdin-name).
    #[arg(long, conflicts_with_all = ["paths", "stdin_from_command"])]
    pub stdin: bool,

    /// Run CMD with `sh -c` and store its output as one file; if CMD fails,
    /// nothing is saved and arca exits 1.
    #[arg(long, value_name = "CMD", conflicts_with = "paths")]
    pub stdin_from_command: Option<String>,

    /// File name for --stdin or --stdin-from-command.
    #[arg(long, value_name = "NAME", default_value = "stdin")]
    pub stdin_name: units::FileName,

    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,

    /// Record this host name instead of the machine's.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// A free-text description stored with the snapshot.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,

    /// Record this time instead of now (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local).
    #[arg(long, value_name = "TIME")]
    pub time: Option<units::Time>,

    /// Compare against this snapshot instead of the newest one of the same host and paths.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "force")]
    pub parent: Option<Spec>,

    /// Read every file, even those unchanged since the parent snapshot.
    #[arg(long)]
    pub force: bool,

    /// Leave out paths matching GLOB (gitignore rules; repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<units::Glob>,

    /// Read exclude patterns from FILE, one per line (gitignore rules; repeatable).
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,

    /// Leave out directories that contain an entry named NAME (repeatable).
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    pub exclude_if_present: Vec<String>,

    /// Leave out files larger than SIZE (e.g. 2GiB).
    #[arg(long, value_name = "SIZE")]
    pub exclude_larger_than: Option<units::Size>,

    /// Do not cross into other file systems below the given paths.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,

    /// How SQLite databases are read: auto stores a transactionally
    /// consistent image of every file whose header says it is one (a plain
    /// copy, with a warning, when that fails), always leaves out a database
    /// that cannot be read consistently, never reads them as plain files.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub sqlite: units::SqliteMode,

    /// Read and chunk everything and report what would be stored; store nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Read every pack, index and snapshot file back from the repository
    /// after writing it and check its hash, so storage that keeps other
    /// bytes than it acknowledged fails the snapshot before it is saved.
    #[arg(long)]
    pub verify_upload: bool,
}

/// Which snapshots a command considers: `--host`, `--tag`, `--path`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only snapshots of this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Only snapshots with this tag (repeatable: all must match).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,

    /// Only snapshots that include this path (repeatable: all must match).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    /// The engine's filter.
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            host: self.host.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Only the newest N snapshots of each group (by --group-by, else by
    /// host and paths).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub latest: Option<u32>,

    /// List the snapshots group by group: any of host, paths, tags.
    #[arg(long, value_name = "FIELDS")]
    pub group_by: Option<units::GroupBy>,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Snapshots to copy: ids, unique id prefixes or "latest" (default: all).
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<Spec>,

    /// The destination repository: any address -r takes (path, s3:, sftp:).
    #[arg(long = "to", env = "ARCA_TO_REPOSITORY", value_name = "REPO")]
    pub to: units::Address,

    /// Read the destination's password from the first line of FILE.
    #[arg(long, env = "ARCA_TO_PASSWORD_FILE", value_name = "FILE")]
    pub to_password_file: Option<PathBuf>,

    /// Run CMD with `sh -c` and use its output as the destination's password.
    #[arg(
        long,
        env = "ARCA_TO_PASSWORD_COMMAND",
        hide_env_values = true,
        value_name = "CMD"
    )]
    pub to_password_command: Option<String>,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Show which snapshots would be copied and which are already there; copy nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot: an id, a unique id prefix, or "latest" (the newest
    /// matching --host/--tag/--path).
    pub snapshot: Spec,

    /// Only this path (as stored: absolute) and what is below it.
    pub path: Option<PathBuf>,

    /// Show type, mode, owner, size and modification time.
    #[arg(short, long)]
    pub long: bool,

    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot: an id, a unique id prefix, or "latest"; SNAP:PATH restores
    /// only PATH (its contents go straight into the target).
    #[arg(
        value_name = "SNAP",
        required_unless_present = "as_of",
        conflicts_with = "as_of",
        value_parser = parse_spec_with_path
    )]
    pub snapshot: Option<Spec>,

    /// Directory to restore into (created if missing).
    #[arg(short, long, value_name = "DIR")]
    pub target: PathBuf,

    /// Restore the newest snapshot taken at or before TIME (RFC 3339, or
    /// "YYYY-MM-DD HH:MM:SS" local); with --host/--path when several hosts or
    /// path sets have snapshots.
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<units::Time>,

    /// With --as-of or latest: which snapshots are considered.
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Restore only paths matching GLOB and what is below them (gitignore rules; repeatable).
    #[arg(short = 'i', long = "include", value_name = "GLOB")]
    pub includes: Vec<units::Glob>,

    /// Leave out paths matching GLOB (gitignore rules; repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<units::Glob>,

    /// Files already in the target: always replace, keep matching chunks
    /// (if-changed: a re-run resumes an interrupted restore), or never touch.
    #[arg(long, value_name = "MODE", default_value = "if-changed", value_parser = ["always", "if-changed", "never"])]
    pub overwrite: String,

    /// Remove entries of restored directories that the snapshot does not have.
    #[arg(long)]
    pub delete: bool,

    /// Re-read every restored file and check it against the snapshot.
    #[arg(long)]
    pub verify: bool,

    /// Leave out FIFOs and device nodes, and drop setuid/setgid bits and
    /// file capabilities (the default when not running as root).
    #[arg(long)]
    pub no_special: bool,

    /// List what would be written, overwritten and deleted (-v: and left
    /// unchanged), with totals; change nothing in the target.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Glob pattern (`*`, `?`, `[...]`, `**`).
    pub pattern: String,

    /// Search only these snapshots (repeatable; default: all matching
    /// --host/--tag/--path).
    #[arg(short, long = "snapshot", value_name = "SNAP")]
    pub snapshots: Vec<Spec>,

    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot.
    pub first: Spec,
    /// The newer snapshot.
    pub second: Spec,
    /// Which snapshots "latest" considers.
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Snapshot: an id, a unique id prefix, or "latest".
    pub snapshot: Spec,
    /// The stored path (absolute) of a file or directory.
    pub path: PathBuf,
    /// Which snapshots "latest" considers.
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read every pack and verify every blob.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,

    /// Read only a subset: N/M (bucket N of M, by pack id), P% (random) or SIZE (random, up to SIZE).
    #[arg(long, value_name = "SUBSET")]
    pub read_data_subset: Option<units::Subset>,
}

#[derive(Debug, Subcommand)]
pub enum PgCommand {
    /// Store one WAL file: PostgreSQL's archive_command (%p).
    #[command(
        after_help = "Exit 0 once the file is stored durably, or when the repository already holds\nthe same file; 1 when it holds different content under that name (kept as it\nis), or on any other failure; 2 when the name is not a WAL segment, .history,\n.backup or .partial file.\n\nExamples:\n  archive_command = 'arca --profile db pg archive-wal %p'\n  arca pg archive-wal /var/lib/postgresql/16/main/pg_wal/000000010000000000000001"
    )]
    ArchiveWal {
        /// The file; its name is the last component (pg_wal/NAME).
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Read the stored object back and verify it in full before
        /// reporting success, so storage that keeps other bytes than it
        /// acknowledged fails the command (and the object is removed).
        #[arg(long)]
        verify_upload: bool,
        /// Hand the file to a resident agent of this user that keeps the
        /// repository open, so the call skips the key derivation; the
        /// first call starts the agent and archives the file itself. The
        /// exit code means the same either way (docs/postgresql.md).
        #[arg(long)]
        agent: bool,
    },
    /// The resident agent of `archive-wal --agent` (started by it).
    #[command(hide = true)]
    Agent,
    /// Fetch one WAL file: PostgreSQL's restore_command (%f %p).
    #[command(
        after_help = "The file is verified in full, written beside PATH and renamed into place.\nExit 1 without a word when the repository does not hold NAME (PostgreSQL asks\nfor files past the end of the archive); 1 with one line when it is damaged\n(nothing is left at PATH).\n\nExamples:\n  restore_command = 'arca --profile db pg restore-wal %f %p'\n  arca pg restore-wal 000000010000000000000001 /tmp/000000010000000000000001"
    )]
    RestoreWal {
        /// The PostgreSQL file name (%f).
        #[arg(value_name = "NAME")]
        name: String,
        /// Where to write it (%p).
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Exit with CODE instead of the usual code when the file cannot be
        /// restored for any reason but its absence (damaged, repository
        /// unreachable, wrong password). PostgreSQL stops recovery on a
        /// code above 125 instead of taking the failure for the end of the
        /// archive; `arca pg restore` writes 255.
        #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u8).range(1..))]
        error_exit: Option<u8>,
    },
    /// Take a base backup: stream `pg_basebackup` into a snapshot.
    #[command(
        after_help = "Runs pg_basebackup -D - -Ft -X none and stores its tar stream as /base.tar,\nwith /base.json recording the backup's start and stop WAL positions, timeline\nand times, in a snapshot tagged pg-base. Nothing is written to local disk.\nThe WAL the backup needs comes from the archive (archive_command = 'arca pg\narchive-wal %p'); pg_basebackup waits until it is archived. The server must\nhave one tablespace. Connection settings come from --pg-* or libpq's PG*\nenvironment variables; options after -- go to pg_basebackup as they are.\n\nExamples:\n  arca --profile db pg backup --fast\n  arca pg backup --pg-host /var/run/postgresql --pg-user postgres -- --max-rate=100M"
    )]
    Backup(PgBackupArgs),
    /// Unpack a base backup into an empty data directory, ready to recover
    /// to a time.
    #[command(
        after_help = "Picks the newest base backup that ended at or before TIME (or the newest with\n--latest), unpacks it into DATADIR (which must be empty or absent), and writes\nrecovery.signal and the recovery settings into postgresql.auto.conf: a\nrestore_command through this arca with the same repository and password\nsource, recovery_target_time = TIME (not with --latest), and\nrecovery_target_action = 'promote'. Then prints the command that starts the\nserver; starting it replays the archived WAL up to TIME and opens the\ndatabase.\n\nExamples:\n  arca --profile db pg restore --as-of '2026-03-03 14:30:00' --target /srv/pg/recovered\n  arca --profile db pg restore --latest --target /var/lib/postgresql/16/main"
    )]
    Restore(PgRestoreArgs),
}

#[derive(Debug, Args)]
pub struct PgBackupArgs {
    /// The server's host or socket directory (pg_basebackup -h).
    #[arg(long, value_name = "HOST")]
    pub pg_host: Option<String>,
    /// The server's port (pg_basebackup -p).
    #[arg(long, value_name = "PORT")]
    pub pg_port: Option<u16>,
    /// The role to connect as, with replication rights (pg_basebackup -U).
    #[arg(long, value_name = "USER")]
    pub pg_user: Option<String>,
    /// The pg_basebackup to run; default: the one on PATH, else the newest
    /// under /usr/lib/postgresql.
    #[arg(long, value_name = "PATH")]
    pub pg_basebackup: Option<PathBuf>,
    /// Ask the server for an immediate checkpoint (--checkpoint=fast)
    /// instead of a spread one: the backup starts at once but the server
    /// does more I/O for a moment.
    #[arg(long)]
    pub fast: bool,
    /// Add a tag to the snapshot (repeatable); pg-base is always added.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Record this host name instead of this machine's.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Read the stored data back and verify it before the snapshot is saved.
    #[arg(long)]
    pub verify_upload: bool,
    /// Further pg_basebackup options.
    #[arg(last = true, value_name = "PG_BASEBACKUP_OPTION")]
    pub extra: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PgRestoreArgs {
    /// Recover to this time: RFC 3339, or "YYYY-MM-DD HH:MM[:SS]" in local time.
    #[arg(
        long,
        value_name = "TIME",
        required_unless_present = "latest",
        conflicts_with = "latest"
    )]
    pub as_of: Option<units::Time>,
    /// Recover to the end of the archived WAL.
    #[arg(long)]
    pub latest: bool,
    /// The data directory to create; it must be empty or not exist.
    #[arg(long, value_name = "DATADIR")]
    pub target: PathBuf,
    /// Use this base backup instead of choosing one.
    #[arg(long, value_name = "SNAPSHOT")]
    pub snapshot: Option<String>,
    /// Only base backups taken on this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the headers of the packs present.
    Index {
        /// Report what would be indexed; write nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// Salvage damaged packs: read each pack, and where its bytes no longer
    /// match its name, copy the blobs that still open into new packs, drop
    /// the rest from the index and delete the damaged pack. Packs the index
    /// lists that storage lacks leave the index too.
    Packs {
        /// Packs to read (ids or id prefixes, as `check --read-data` names
        /// them); every pack when none is given.
        #[arg(value_name = "PACK")]
        packs: Vec<String>,
        /// Report what would be salvaged; write nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// Rewrite snapshots that reference data no pack holds: damaged files
    /// keep their readable parts, the copy is tagged "repaired".
    Snapshots {
        /// Remove each original once its repaired copy is saved.
        #[arg(long)]
        forget: bool,
        /// Report what would be repaired; write nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshots to remove (ids or unique id prefixes); no policy then.
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,

    #[command(flatten)]
    pub keep: KeepArgs,

    /// Group snapshots by any of host, paths, tags ("" for one group).
    #[arg(long, value_name = "FIELDS", default_value = "host,paths")]
    pub group_by: units::GroupBy,

    /// Which snapshots the policy considers.
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Show what would be removed; remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Run prune afterwards.
    #[arg(long)]
    pub prune: bool,

    #[command(flatten)]
    pub prune_options: PruneOptionsArgs,
}

/// The `--keep-*` rules of a retention policy (`forget`, `watch`); each
/// belongs to the command's `policy` argument group.
#[derive(Debug, Args)]
pub struct KeepArgs {
    /// Keep the newest N snapshots (N: a number, or -1/unlimited for all).
    #[arg(long, value_name = "N", group = "policy", allow_hyphen_values = true)]
    pub keep_last: Option<units::Count>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", group = "policy", allow_hyphen_values = true)]
    pub keep_hourly: Option<units::Count>,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_name = "N", group = "policy", allow_hyphen_values = true)]
    pub keep_daily: Option<units::Count>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[arg(long, value_name = "N", group = "policy", allow_hyphen_values = true)]
    pub keep_weekly: Option<units::Count>,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_name = "N", group = "policy", allow_hyphen_values = true)]
    pub keep_monthly: Option<units::Count>,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(long, value_name = "N", group = "policy", allow_hyphen_values = true)]
    pub keep_yearly: Option<units::Count>,
    /// Keep every snapshot newer than SPAN before the newest (2y5m7d3h: years,
    /// months, days, hours, as in restic).
    #[arg(long, value_name = "SPAN", group = "policy")]
    pub keep_within: Option<units::Span>,
    /// Keep one snapshot per hour within SPAN of the newest.
    #[arg(long, value_name = "SPAN", group = "policy")]
    pub keep_within_hourly: Option<units::Span>,
    /// Keep one snapshot per day within SPAN of the newest.
    #[arg(long, value_name = "SPAN", group = "policy")]
    pub keep_within_daily: Option<units::Span>,
    /// Keep one snapshot per ISO week within SPAN of the newest.
    #[arg(long, value_name = "SPAN", group = "policy")]
    pub keep_within_weekly: Option<units::Span>,
    /// Keep one snapshot per month within SPAN of the newest.
    #[arg(long, value_name = "SPAN", group = "policy")]
    pub keep_within_monthly: Option<units::Span>,
    /// Keep one snapshot per year within SPAN of the newest.
    #[arg(long, value_name = "SPAN", group = "policy")]
    pub keep_within_yearly: Option<units::Span>,
    /// Keep snapshots having all of these comma-separated tags (repeatable: any list).
    #[arg(long = "keep-tag", value_name = "TAGS", group = "policy")]
    pub keep_tags: Vec<units::TagList>,
}

impl KeepArgs {
    /// The engine's policy; empty when no rule is given.
    pub fn policy(&self) -> arca_core::retention::Policy {
        let count = |c: Option<units::Count>| c.map(|c| c.0);
        let span = |s: Option<units::Span>| s.map(|s| s.0);
        arca_core::retention::Policy {
            last: count(self.keep_last),
            hourly: count(self.keep_hourly),
            daily: count(self.keep_daily),
            weekly: count(self.keep_weekly),
            monthly: count(self.keep_monthly),
            yearly: count(self.keep_yearly),
            within: span(self.keep_within),
            within_hourly: span(self.keep_within_hourly),
            within_daily: span(self.keep_within_daily),
            within_weekly: span(self.keep_within_weekly),
            within_monthly: span(self.keep_within_monthly),
            within_yearly: span(self.keep_within_yearly),
            tags: self.keep_tags.iter().map(|t| t.0.clone()).collect(),
        }
    }
}

#[derive(Debug, Args)]
pub struct PruneOptionsArgs {
    /// Repack packs with more than this share of unused bytes ("5%", or "unlimited").
    #[arg(long, value_name = "PERCENT", default_value = "5%")]
    pub max_unused: units::Percent,

    /// Delete marked packs only once marked for this long (e.g. 24h, 2d, 0).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub keep_marked: units::Duration,

    /// Delete unused packs now instead of marking them. Only safe when no
    /// other process is writing to the repository.
    #[arg(long)]
    pub instant_delete: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Show which packs would be deleted, marked and repacked; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub options: PruneOptionsArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys, oldest first; the one that opened the repository is marked.
    #[command(after_help = "Examples:\n  arca key list\n  arca key list --json")]
    List,
    /// Add a key: another password for the same repository.
    #[command(
        after_help = "Examples:\n  arca key add   # asks for the new password twice\n  arca key add --new-password-file /etc/arca/password.ops --host db2 --user ops\n\nThe new password comes from --new-password-file, else ARCA_NEW_PASSWORD, else a\nprompt on the terminal; with none of them arca exits 2."
    )]
    Add(NewKeyArgs),
    /// Remove a key, by id or unique id prefix (see `arca key list`).
    #[command(
        after_help = "Examples:\n  arca key remove 5e6f7a8b\n  arca key remove 1a2b3c4d --force   # the key in use: another must remain\n\nThe last key is never removed, not even with --force: without a key the data\ncannot be read."
    )]
    Remove(KeyRemoveArgs),
    /// Change the password: add a key for the new password, then remove the key in use.
    #[command(
        after_help = "Examples:\n  arca key passwd   # asks for the new password twice\n  arca key passwd --new-password-file /etc/arca/password.new\n\nThe new key is written and checked before the old one is removed: an interrupted\nchange leaves both passwords working, never neither. Other keys are left alone."
    )]
    Passwd(NewKeyArgs),
}

#[derive(Debug, Args)]
pub struct NewKeyArgs {
    /// Read the new password from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,

    /// Record this host name in the key instead of the machine's.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Record this user name in the key instead of the current user's.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeyRemoveArgs {
    /// The key: an id or unique id prefix.
    #[arg(value_name = "ID")]
    pub id: String,

    /// Remove the key even if it is the one in use (never the last key).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Remove every lock, stale or not.
    #[arg(long)]
    pub remove_all: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this snapshot (default: all matching --host/--tag/--path).
    pub snapshot: Option<Spec>,

    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit 1 when the newest snapshot of a group is older than DURATION
    /// (e.g. 30s, 10min, 26h, 2d) or no snapshot matches.
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<units::Duration>,

    /// Exit 1 when the newest archived PostgreSQL WAL file was archived
    /// more than DURATION ago, or the repository holds none.
    #[arg(long, value_name = "DURATION")]
    pub max_wal_age: Option<units::Duration>,

    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Snapshot: an id, a unique id prefix, or "latest" (the default: the
    /// newest matching --host/--tag/--path).
    #[arg(value_name = "SNAP")]
    pub snapshot: Option<Spec>,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Create the temporary directory in DIR [default: the system's temp directory].
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
}

/// `SNAP` or `SNAP:PATH`.
fn parse_spec_with_path(text: &str) -> Result<Spec, arca_core::Error> {
    Spec::parse(text, true)
}
