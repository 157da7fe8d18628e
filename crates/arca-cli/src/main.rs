//! The `arca` binary: parse arguments, resolve one configuration, run one
//! command, map its outcome to an exit code. All the work is in arca-core.

mod agent;
mod cli;
mod commands;
mod config;
mod exit;
mod interrupt;
mod json;
mod metrics;
mod outfile;
mod output;
mod password;
mod profile;
mod progress;
mod session;
mod steps;
mod units;

use clap::{CommandFactory, FromArgMatches};

/// Buffers of at least this size (large chunks, packs) are mapped and
/// unmapped on their own rather than carved out of glibc's arenas. glibc
/// otherwise raises this threshold as large buffers are freed and then
/// keeps freed chunk and pack memory in its per-thread arenas: on a 1 GB
/// snapshot that grew the peak resident set by half. Below it (typical
/// chunks, read windows) arena memory is reused, sparing page faults.
const MMAP_THRESHOLD: libc::c_int = 2 << 20;

/// A crash must not write the keys in memory to a core file. The resource
/// limit does not bind a core pattern that pipes to a program (systemd-
/// coredump, apport); not being dumpable does, and also keeps other
/// processes of the same user from attaching to arca or reading its memory
/// through /proc.
fn disable_core_dumps() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct passed by reference; prctl with
    // PR_SET_DUMPABLE takes plain integers.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// A restore holds a directory handle per level it is in (up to the
/// format's depth limit) besides the files it writes: take the open-file
/// limit the system allows rather than the conservative default.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max.min(1 << 16).max(limit.rlim_cur);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn main() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
    disable_core_dumps();
    raise_open_file_limit();
    interrupt::install();
    let parsed = cli::Cli::command()
        .try_get_matches()
        .and_then(|m| cli::Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            if !e.use_stderr() {
                let _ = e.print();
                std::process::exit(exit::SUCCESS);
            }
            // A bad value is one line naming the option; other usage
            // errors keep clap's hint.
            let bad_value = matches!(
                e.kind(),
                clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::ValueValidation
            );
            if bad_value {
                // clap's lines (the value, then any allowed values or tip)
                // joined into one, without its pointer to --help.
                let text = e.render().to_string();
                let parts: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                    .collect();
                let line = parts.join(" ");
                let line = line.strip_prefix("error: ").unwrap_or(&line);
                eprintln!("arca: {}", output::sanitize(line));
            } else {
                let _ = e.print();
            }
            std::process::exit(exit::USAGE);
        }
    };
    let config = match config::Config::resolve(cli.global) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("arca: {}", output::sanitize(&message(&error)));
            std::process::exit(exit::USAGE);
        }
    };
    if let Some(threads) = config.io_threads() {
        // Reads for restore and check run on rayon's pool; against remote
        // storage its threads mostly wait, so it gets one per connection.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
    let name = matches.subcommand_name().unwrap_or("arca").to_string();
    let result = commands::run(&config, cli.command);
    interrupt::defer_to_interrupt();
    let code = match result {
        Ok(code) => code,
        Err(error) => {
            let text = message(&error);
            eprintln!("arca: {}", output::sanitize(&text));
            config.log(&format!("{name}: error: {text}"));
            exit::for_error(&error)
        }
    };
    let outcome = if code == exit::SUCCESS {
        "ok"
    } else {
        "failed"
    };
    config.log(&format!("{name}: {outcome}, exit code {code}"));
    config.report_transfers();
    std::process::exit(code);
}

/// The error and its causes in one line, leaving out causes whose text the
/// message before them already includes, then what to do about it.
pub(crate) fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    if let Some(hint) = exit::hint(error) {
        text.push_str("; ");
        text.push_str(hint);
    }
    text
}
