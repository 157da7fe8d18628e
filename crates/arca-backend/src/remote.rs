//! Remote repositories through Apache OpenDAL: S3-compatible object stores
//! and SFTP hosts.
//!
//! OpenDAL is asynchronous; the engine is not. Each [`RemoteBackend`] owns a
//! small Tokio runtime and every call blocks on it, so any number of the
//! engine's threads can have requests in flight at once.
//!
//! The layout is the local one: `config`, `keys/<id>`, `data/<2 hex>/<id>`,
//! ... under the repository's prefix (S3) or directory (SFTP).

use std::io;
use std::time::Duration;

use opendal::{EntryMode, Operator};

use crate::{
    Backend, Entry, Error, ErrorKind, FileKind, check_name, cleanup, is_temporary, object_at,
};

/// How long one request may take before it counts as a transient failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a transfer may go without moving a byte.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings for an S3-compatible object store.
#[cfg(feature = "s3")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Config {
    /// `https://host[:port]`; `http://` for a server without TLS.
    pub endpoint: String,
    pub bucket: String,
    /// The key prefix the repository lives under (may be empty).
    pub prefix: String,
    /// The signing region; `us-east-1` when nothing says otherwise.
    pub region: Option<String>,
    /// Address the bucket as `bucket.host` (virtual-hosted style) rather
    /// than `host/bucket` (path style).
    pub virtual_host: bool,
    /// Let the credential chain ask the EC2 instance metadata service.
    pub ec2_metadata: bool,
}

#[cfg(feature = "s3")]
impl S3Config {
    /// Parses the part of `s3:<endpoint>/<bucket>/<prefix>` after `s3:` and
    /// completes it from the conventional environment: `AWS_REGION` or
    /// `AWS_DEFAULT_REGION`, `ARCA_S3_BUCKET_LOOKUP` (`path`, the default,
    /// or `dns`), `AWS_EC2_METADATA_DISABLED=false` to allow the instance
    /// metadata service. Credentials are read by the store's own chain:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_PROFILE` and the shared `~/.aws` files.
    pub fn from_address(address: &str) -> Result<S3Config, String> {
        let (scheme, rest) = match address.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("https", address),
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!("unknown scheme {scheme}:// (use http or https)"));
        }
        let mut parts = rest.splitn(3, '/');
        let host = parts.next().unwrap_or_default();
        let bucket = parts.next().unwrap_or_default();
        let prefix = parts.next().unwrap_or_default().trim_matches('/');
        if host.is_empty() || bucket.is_empty() {
            return Err("expected s3:<endpoint>/<bucket>[/<prefix>]".to_string());
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let virtual_host = match env("ARCA_S3_BUCKET_LOOKUP").as_deref() {
            None | Some("path") => false,
            Some("dns") => true,
            Some(other) => {
                return Err(format!("ARCA_S3_BUCKET_LOOKUP={other} is not path or dns"));
            }
        };
        Ok(S3Config {
            endpoint: format!("{scheme}://{host}"),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
            virtual_host,
            ec2_metadata: env("AWS_EC2_METADATA_DISABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("false")),
        })
    }
}

/// Settings for an SFTP host. Everything else (port, user, identity,
/// jump hosts) comes from the OpenSSH client's own configuration and agent.
#[cfg(feature = "sftp")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SftpConfig {
    /// `[user@]host` or `ssh://[user@]host[:port]`, as `ssh` takes it.
    pub destination: String,
    /// The repository's absolute path on the host.
    pub path: String,
    /// An identity file, when not the ones ssh would try.
    pub key: Option<String>,
    /// Host key checking: `strict` (default), `add` (accept new hosts) or
    /// `accept` (any key).
    pub known_hosts: String,
}

#[cfg(feature = "sftp")]
impl SftpConfig {
    /// Parses the part after `sftp:` — `[user@]host:/path` or
    /// `//[user@]host[:port]/path` — and reads `ARCA_SFTP_KEY` and
    /// `ARCA_SFTP_KNOWN_HOSTS` from the environment.
    pub fn from_address(address: &str) -> Result<SftpConfig, String> {
        let (destination, path) = if let Some(rest) = address.strip_prefix("//") {
            let (authority, path) = rest
                .split_once('/')
                .ok_or("expected sftp://[user@]host[:port]/path")?;
            (format!("ssh://{authority}"), format!("/{path}"))
        } else {
            let (host, path) = address
                .split_once(':')
                .ok_or("expected sftp:[user@]host:/path")?;
            (host.to_string(), path.to_string())
        };
        let host = destination
            .trim_start_matches("ssh://")
            .rsplit('@')
            .next()
            .unwrap_or_default();
        if host.is_empty() || host.starts_with(':') {
            return Err("the host is missing".to_string());
        }
        if !path.starts_with('/') {
            return Err(format!(
                "the path {path:?} is not absolute (write sftp:host:/full/path)"
            ));
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let known_hosts = env("ARCA_SFTP_KNOWN_HOSTS").unwrap_or_else(|| "strict".to_string());
        if !["strict", "add", "accept"].contains(&known_hosts.as_str()) {
            return Err(format!(
                "ARCA_SFTP_KNOWN_HOSTS={known_hosts} is not strict, add or accept"
            ));
        }
        Ok(SftpConfig {
            destination,
            path,
            key: env("ARCA_SFTP_KEY"),
            known_hosts,
        })
    }
}

/// A repository on remote storage.
pub struct RemoteBackend {
    operator: Operator,
    runtime: tokio::runtime::Runtime,
    location: String,
    /// Write to a temporary name and rename into place (SFTP), because the
    /// storage can show a half-written file. An object store's PUT is
    /// already all-or-nothing.
    rename_into_place: bool,
    connections: usize,
}

impl std::fmt::Debug for RemoteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBackend")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl RemoteBackend {
    /// A repository in an S3-compatible bucket.
    #[cfg(feature = "s3")]
    pub fn s3(config: &S3Config) -> Result<RemoteBackend, Error> {
        opendal_http_transport_reqwest::install_default();
        let location = format!("s3:{}/{}/{}", config.endpoint, config.bucket, config.prefix);
        let mut builder = opendal::services::S3::default()
            .endpoint(&config.endpoint)
            .bucket(&config.bucket)
            .root(&format!("/{}", config.prefix))
            .region(config.region.as_deref().unwrap_or("us-east-1"));
        if config.virtual_host {
            builder = builder.enable_virtual_host_style();
        }
        if !config.ec2_metadata {
            builder = builder.disable_ec2_metadata();
        }
        let operator = Operator::new(builder).map_err(|e| setup_error(&location, e))?;
        RemoteBackend::new(operator, location, false, 8)
    }

    /// A repository in a directory on an SFTP host.
    #[cfg(feature = "sftp")]
    pub fn sftp(config: &SftpConfig) -> Result<RemoteBackend, Error> {
        let location = match config.destination.strip_prefix("ssh://") {
            Some(authority) => format!("sftp://{authority}{}", config.path),
            None => format!("sftp:{}:{}", config.destination, config.path),
        };
        let mut builder = opendal::services::Sftp::default()
            .endpoint(&config.destination)
            .root(&config.path)
            .known_hosts_strategy(&config.known_hosts);
        if let Some(key) = &config.key {
            builder = builder.key(key);
        }
        let operator = Operator::new(builder).map_err(|e| setup_error(&location, e))?;
        RemoteBackend::new(operator, location, true, 4)
    }

    fn new(
        operator: Operator,
        location: String,
        rename_into_place: bool,
        connections: usize,
    ) -> Result<RemoteBackend, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("arca-io")
            .enable_all()
            .build()
            .map_err(|e| Error::repository(ErrorKind::Io, &location, Some(e)))?;
        let operator = {
            // Layers that start timers need the runtime entered.
            let _guard = runtime.enter();
            operator.layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_io_timeout(IO_TIMEOUT),
            )
        };
        Ok(RemoteBackend {
            operator,
            runtime,
            location,
            rename_into_place,
            connections,
        })
    }

    fn block_on<T>(
        &self,
        future: impl IntoFuture<Output = opendal::Result<T>>,
    ) -> opendal::Result<T> {
        self.runtime.block_on(future.into_future())
    }

    /// Everything under the directory of `kind` (the root's entries for
    /// the config), packs' fan-out directories included.
    fn listing(&self, kind: FileKind) -> Result<Vec<opendal::Entry>, Error> {
        let prefix = match kind {
            FileKind::Config => String::new(),
            _ => format!("{}/", kind.dir()),
        };
        let listed = self.block_on(
            self.operator
                .list_with(&prefix)
                .recursive(kind.fanned_out()),
        );
        match listed {
            Ok(entries) => Ok(entries),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::listing(
                classify(&e),
                kind,
                &self.location,
                Some(io::Error::other(describe(&e))),
            )),
        }
    }

    fn stat(&self, kind: FileKind, name: &str) -> Result<Option<opendal::Metadata>, Error> {
        match self.block_on(self.operator.stat(&path(kind, name))) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(object_error(&self.location, kind, name, e)),
        }
    }
}

impl Backend for RemoteBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<(), Error> {
        let listed = self.block_on(self.operator.list_with("").recursive(true).limit(8));
        match listed {
            Ok(entries)
                if entries
                    .iter()
                    .any(|e| e.metadata().mode() == EntryMode::FILE) =>
            {
                return Err(Error::repository(
                    ErrorKind::AlreadyExists,
                    &self.location,
                    None,
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
            Err(e) => return Err(repository_error(&self.location, e)),
        }
        if self.rename_into_place {
            for kind in FileKind::ALL.iter().filter(|k| !k.dir().is_empty()) {
                self.block_on(self.operator.create_dir(&format!("{}/", kind.dir())))
                    .map_err(|e| repository_error(&self.location, e))?;
            }
        }
        Ok(())
    }

    fn list(&self, kind: FileKind) -> Result<Vec<Entry>, Error> {
        Ok(self
            .listing(kind)?
            .into_iter()
            .filter_map(|e| {
                let name = object_at(kind, e.path())?;
                (e.metadata().mode() == EntryMode::FILE).then(|| Entry {
                    name: name.to_string(),
                    size: e.metadata().content_length(),
                    modified: e.metadata().last_modified().map(Into::into),
                })
            })
            .collect())
    }

    fn strays(&self, kind: FileKind) -> Result<Vec<String>, Error> {
        if kind == FileKind::Config {
            return Ok(Vec::new());
        }
        Ok(self
            .listing(kind)?
            .into_iter()
            .filter(|e| {
                e.metadata().mode() == EntryMode::FILE
                    && object_at(kind, e.path()).is_none()
                    && !is_temporary(e.name())
            })
            .map(|e| e.path().to_string())
            .collect())
    }

    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, Error> {
        check_name(kind, name)?;
        let too_large = || Error::new(ErrorKind::TooLarge, kind, name, None);
        let failed = |e| object_error(&self.location, kind, name, e);
        // Streamed, and given up one byte past the bound: a server that
        // announces one size and sends more (or ignores the range) cannot
        // make arca hold more than `max` bytes.
        let read: opendal::Result<Option<Vec<u8>>> = self.block_on(async {
            let reader = self.operator.reader(&path(kind, name)).await?;
            // No range asked for: a short object is no error, and the
            // stream is simply dropped once it passes the bound.
            let mut stream = reader.into_stream(..).await?;
            let mut bytes: Vec<u8> = Vec::new();
            while let Some(buffer) = std::future::poll_fn(|cx| {
                futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
            })
            .await
            {
                let buffer = buffer?;
                if (bytes.len() + buffer.len()) as u64 > max {
                    return Ok(None);
                }
                for chunk in buffer {
                    bytes.extend_from_slice(&chunk);
                }
            }
            Ok(Some(bytes))
        });
        read.map_err(failed)?.ok_or_else(too_large)
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        check_name(kind, name)?;
        let end = offset
            .checked_add(length)
            .ok_or_else(|| Error::new(ErrorKind::OutOfRange, kind, name, None))?;
        if length == 0 {
            return Ok(Vec::new());
        }
        let bytes = self
            .block_on(
                self.operator
                    .read_with(&path(kind, name))
                    .range(offset..end),
            )
            .map(|buffer| buffer.to_vec())
            .map_err(|e| object_error(&self.location, kind, name, e))?;
        if bytes.len() as u64 != length {
            return Err(Error::new(ErrorKind::OutOfRange, kind, name, None));
        }
        Ok(bytes)
    }

    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), Error> {
        check_name(kind, name)?;
        if self.stat(kind, name)?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists, kind, name, None));
        }
        let target = path(kind, name);
        let written = if self.rename_into_place {
            let temporary = temporary_path(kind, name);
            // An interrupt while it is being written deletes it (the
            // signal handler waits for the request, within its time limit).
            let _interrupt = {
                let (runtime, operator) = (self.runtime.handle().clone(), self.operator.clone());
                let temporary = temporary.clone();
                cleanup::on_interrupt(move || {
                    let _ = runtime.block_on(operator.delete(&temporary));
                })
            };
            self.block_on(async {
                self.operator.write(&temporary, bytes.to_vec()).await?;
                match self.operator.rename(&temporary, &target).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let _ = self.operator.delete(&temporary).await;
                        Err(e)
                    }
                }
            })
        } else {
            self.block_on(self.operator.write(&target, bytes.to_vec()))
                .map(|_| ())
        };
        written.map_err(|e| object_error(&self.location, kind, name, e))?;
        // Verify what landed: a short upload is a failure to retry.
        match self.stat(kind, name)? {
            Some(meta) if meta.content_length() == bytes.len() as u64 => Ok(()),
            Some(meta) => Err(Error::new(
                ErrorKind::Transient,
                kind,
                name,
                Some(io::Error::other(format!(
                    "stored {} bytes of {}",
                    meta.content_length(),
                    bytes.len()
                ))),
            )),
            None => Err(Error::new(
                ErrorKind::Transient,
                kind,
                name,
                Some(io::Error::other("the upload is not visible")),
            )),
        }
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error> {
        check_name(kind, name)?;
        self.block_on(self.operator.delete(&path(kind, name)))
            .map_err(|e| object_error(&self.location, kind, name, e))
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error> {
        check_name(kind, name)?;
        match self.stat(kind, name)? {
            Some(meta) => Ok(meta.content_length()),
            None => Err(Error::new(ErrorKind::NotFound, kind, name, None)),
        }
    }

    fn connections(&self) -> usize {
        self.connections
    }
}

/// The object's path under the repository root.
fn path(kind: FileKind, name: &str) -> String {
    match kind {
        FileKind::Config => "config".to_string(),
        _ if kind.fanned_out() => format!("{}/{}/{name}", kind.dir(), &name[..2.min(name.len())]),
        _ => format!("{}/{name}", kind.dir()),
    }
}

/// A name beside the target that listings skip (not hex).
fn temporary_path(kind: FileKind, name: &str) -> String {
    let target = path(kind, name);
    let (dir, _) = target.rsplit_once('/').unwrap_or(("", ""));
    let unique = format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    if dir.is_empty() {
        format!(".tmp-{name}-{unique}")
    } else {
        format!("{dir}/.tmp-{name}-{unique}")
    }
}

/// Which of our kinds an OpenDAL failure is.
fn classify(e: &opendal::Error) -> ErrorKind {
    use opendal::ErrorKind as K;
    match e.kind() {
        K::NotFound => ErrorKind::NotFound,
        K::AlreadyExists | K::ConditionNotMatch => ErrorKind::AlreadyExists,
        K::RangeNotSatisfied => ErrorKind::OutOfRange,
        K::RateLimited => ErrorKind::Transient,
        _ if e.is_temporary() => ErrorKind::Transient,
        _ => ErrorKind::Io,
    }
}

/// What went wrong, in a few words: the storage's own message and cause,
/// without OpenDAL's request context (which `-vv` users can get from the
/// request log instead).
fn describe(e: &opendal::Error) -> String {
    use opendal::ErrorKind as K;
    let mut text = match e.kind() {
        K::PermissionDenied => {
            "access denied (check the credentials and the permissions)".to_string()
        }
        K::RateLimited => "the server is throttling requests".to_string(),
        _ => String::new(),
    };
    let message = e.message();
    // S3 error bodies arrive as `S3Error { code: "NoSuchBucket", ... }`.
    let message = match message.split_once("code: \"") {
        Some((_, rest)) => rest.split('"').next().unwrap_or(message),
        None => message,
    };
    if text.is_empty() && !message.is_empty() {
        text = match message {
            "NoSuchBucket" => "the bucket does not exist (create it first)".to_string(),
            "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                format!("access denied ({message}): check the credentials")
            }
            other => other.to_string(),
        };
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(part.trim());
        }
        source = cause.source();
    }
    if text.is_empty() {
        text = e.kind().to_string();
    }
    if e.is_temporary() {
        text.push_str(" (temporary)");
    }
    text
}

fn object_error(location: &str, kind: FileKind, name: &str, e: opendal::Error) -> Error {
    Error::new(
        classify(&e),
        kind,
        name,
        Some(io::Error::other(describe(&e))),
    )
    .within(location)
}

fn repository_error(location: &str, e: opendal::Error) -> Error {
    Error::repository(classify(&e), location, Some(io::Error::other(describe(&e))))
}

fn setup_error(location: &str, e: opendal::Error) -> Error {
    Error::repository(
        ErrorKind::Io,
        location,
        Some(io::Error::other(describe(&e))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fan_out_packs_only() {
        assert_eq!(path(FileKind::Config, "config"), "config");
        assert_eq!(path(FileKind::Data, "abcdef"), "data/ab/abcdef");
        assert_eq!(path(FileKind::Tree, "0123"), "tree/01/0123");
        assert_eq!(path(FileKind::Index, "abcdef"), "index/abcdef");
        let temporary = temporary_path(FileKind::Data, "abcdef");
        assert!(temporary.starts_with("data/ab/.tmp-abcdef-"), "{temporary}");
        assert!(check_name(FileKind::Data, temporary.rsplit('/').next().unwrap()).is_err());
        assert_eq!(object_at(FileKind::Data, &temporary), None);
        for (kind, name) in [
            (FileKind::Config, "config"),
            (FileKind::Data, "abcdef"),
            (FileKind::Tree, "0123"),
            (FileKind::Index, "abcdef"),
        ] {
            assert_eq!(object_at(kind, &path(kind, name)), Some(name), "{kind}");
        }
    }

    #[cfg(feature = "s3")]
    #[test]
    fn parses_s3_addresses() {
        let c = S3Config::from_address("http://127.0.0.1:9000/bucket/some/prefix/").unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:9000");
        assert_eq!(c.bucket, "bucket");
        assert_eq!(c.prefix, "some/prefix");
        let c = S3Config::from_address("s3.amazonaws.com/b").unwrap();
        assert_eq!(c.endpoint, "https://s3.amazonaws.com");
        assert_eq!(c.prefix, "");
        assert!(S3Config::from_address("host-only").is_err());
        assert!(S3Config::from_address("ftp://h/b").is_err());
    }

    #[cfg(feature = "sftp")]
    #[test]
    fn parses_sftp_addresses() {
        let c = SftpConfig::from_address("backup@vault:/srv/arca").unwrap();
        assert_eq!(c.destination, "backup@vault");
        assert_eq!(c.path, "/srv/arca");
        let c = SftpConfig::from_address("//backup@127.0.0.1:2222/srv/arca").unwrap();
        assert_eq!(c.destination, "ssh://backup@127.0.0.1:2222");
        assert_eq!(c.path, "/srv/arca");
        assert!(SftpConfig::from_address("vault:relative/path").is_err());
        assert!(SftpConfig::from_address("no-colon").is_err());
        assert!(SftpConfig::from_address(":/path").is_err());
    }
}
