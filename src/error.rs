//! The library's error type, the object store's, and how each kind maps to an exit code.

use std::path::PathBuf;

/// Every failure pgtier reports. The variant decides the exit code; the text is for a human.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line was wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A configuration file is wrong: names the file, the key path and what was expected (exit 2).
    #[error("{file}: {key}: {message}")]
    Config { file: PathBuf, key: String, message: String },
    /// What this host cannot do as asked, said before anything was created or changed: no
    /// PostgreSQL tool here fits (naming the major to install), or a restore onto an older
    /// major (exit 2).
    #[error("{0}")]
    Unsupported(String),
    /// An operation failed or found a problem (exit 1).
    #[error("{0}")]
    Failed(String),
    /// The bytes are not what was recorded: a checksum or size differs (exit 1).
    #[error("{0}")]
    Integrity(String),
    /// PostgreSQL or the object store could not be reached, or the connection broke: says
    /// nothing about the backup itself (exit 1).
    #[error("{0}")]
    Unreachable(String),
    /// A stream stopped before its end, so its checksum is unknown (exit 1).
    #[error("{0}")]
    Incomplete(String),
    /// What was asked for does not exist (a backup, an object) (exit 1).
    #[error("{0}")]
    NotFound(String),
    /// A signal stopped the work (exit 130, decided in `main` from the signal itself).
    #[error("interrupted by a signal")]
    Cancelled,
    /// A Glacier thaw was requested or is still under way: run the same command again later
    /// (exit 75, EX_TEMPFAIL in sysexits.h: a temporary failure, retry).
    #[error("{0}")]
    ThawPending(String),
    /// Only a copy in an archive class (GLACIER, DEEP_ARCHIVE) holds the backup, and no thaw
    /// was asked for: nothing was read or requested (exit 1 where it ends a command; a drill
    /// reports it as "cold, not drilled").
    #[error("{0}")]
    Cold(String),
    /// Another pgtier run holds the run lock (exit 11, as restic's "failed to lock").
    #[error("{0}")]
    Locked(String),
    /// The object store refused or failed an operation; its kind (access denied, no
    /// credentials, no such bucket, a failed condition, Object Lock, an archived copy) is kept
    /// for callers to branch on (exit 1).
    #[error(transparent)]
    Store(StoreError),
    /// An error with a step the operator can take about it (the exit code is the error's).
    #[error("{source}")]
    Remedied {
        #[source]
        source: Box<Error>,
        remedy: Remedy,
    },
    /// An I/O error with the path it concerned (exit 1).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What can go wrong talking to a store. Backends convert their own errors into these, so
/// callers branch on the kind, never on the words.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{0}: no such object")]
    NotFound(String),
    /// The object is in an archive class (GLACIER, DEEP_ARCHIVE) and must be thawed first.
    #[error("{0}: archived; it must be restored (thawed) before it can be read")]
    Archived(String),
    /// The store refused the newer checksum headers (the S3 store then writes without them).
    #[error("{0}")]
    ChecksumsRejected(String),
    /// The store could not be reached, or the request timed out.
    #[error("{0}")]
    Unreachable(String),
    /// A signal arrived while waiting for the store: the request was abandoned.
    #[error("interrupted by a signal")]
    Cancelled,
    /// The bytes are not the ones expected (an upload whose bytes hash to something other than
    /// the manifest's SHA-256 refuses to finish).
    #[error("{0}")]
    Mismatch(String),
    /// The credentials were refused this operation (bucket policy, IAM, a read-only key).
    #[error("{0}")]
    AccessDenied(String),
    /// No credentials were found anywhere the standard chain looks.
    #[error("{0}")]
    NoCredentials(String),
    /// The bucket does not exist.
    #[error("{0}")]
    NoSuchBucket(String),
    /// A conditional request's condition did not hold (`If-None-Match`, `If-Match`: HTTP 412).
    #[error("{0}")]
    Precondition(String),
    /// Object Lock refused the change: a locked version cannot be deleted or its lock shortened,
    /// or the bucket has no Object Lock for a locked write.
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// The same kind, its message prefixed with `what`.
    pub fn context(self, what: impl std::fmt::Display) -> StoreError {
        use StoreError::*;
        let p = |m: String| format!("{what}: {m}");
        match self {
            NotFound(m) => NotFound(p(m)),
            Archived(m) => Archived(p(m)),
            ChecksumsRejected(m) => ChecksumsRejected(p(m)),
            Unreachable(m) => Unreachable(p(m)),
            Cancelled => Cancelled,
            Mismatch(m) => Mismatch(p(m)),
            AccessDenied(m) => AccessDenied(p(m)),
            NoCredentials(m) => NoCredentials(p(m)),
            NoSuchBucket(m) => NoSuchBucket(p(m)),
            Precondition(m) => Precondition(p(m)),
            Locked(m) => Locked(p(m)),
            Other(m) => Other(p(m)),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => Error::NotFound(e.to_string()),
            StoreError::Unreachable(m) => Error::Unreachable(m),
            StoreError::Cancelled => Error::Cancelled,
            StoreError::Mismatch(m) => Error::Integrity(m),
            other => Error::Store(other),
        }
    }
}

/// A step the operator can take about an error. The library names the step; the command line
/// words it with its own flags (`cli::explain`), so the library never names a flag. A held lock
/// and a pending thaw carry theirs in their kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// Confirm replacing what exists.
    Force,
    /// Give an extra decryption key for this command.
    ExtraKey,
    /// Restore into another database, beside the original.
    OtherDatabase,
}

/// It happened, and nothing was found wrong.
pub const EXIT_OK: i32 = 0;
/// The operation failed, or an audit or drill found a problem.
pub const EXIT_FAILED: i32 = 1;
/// Bad usage or invalid configuration.
pub const EXIT_USAGE: i32 = 2;
/// Another pgtier run holds the run lock.
pub const EXIT_LOCKED: i32 = 11;
/// A Glacier thaw is under way: run the same command again later.
pub const EXIT_THAW_PENDING: i32 = 75;
/// Interrupted by SIGINT or SIGTERM.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The exit code of a command that ran to its end: `EXIT_FAILED` when it failed or found a
/// problem, else `EXIT_OK`.
pub fn exit_if(failed: bool) -> i32 {
    if failed { EXIT_FAILED } else { EXIT_OK }
}

/// The crate-wide result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this error; the one table of them (130, for a signal, is
    /// decided in `main`).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config { .. } | Error::Unsupported(_) => EXIT_USAGE,
            Error::Failed(_)
            | Error::Io { .. }
            | Error::Integrity(_)
            | Error::Unreachable(_)
            | Error::Incomplete(_)
            | Error::NotFound(_)
            | Error::Cold(_)
            | Error::Store(_)
            | Error::Cancelled => EXIT_FAILED,
            Error::ThawPending(_) => EXIT_THAW_PENDING,
            Error::Locked(_) => EXIT_LOCKED,
            Error::Remedied { source, .. } => source.exit_code(),
        }
    }

    /// This error, with a step the operator can take about it.
    pub fn remedy(self, remedy: Remedy) -> Self {
        Error::Remedied { source: Box::new(self), remedy }
    }

    /// The step the operator can take, if the error names one.
    pub fn remedy_of(&self) -> Option<Remedy> {
        match self {
            Error::Remedied { remedy, .. } => Some(*remedy),
            _ => None,
        }
    }

    /// A configuration error naming the file and key path.
    pub fn config(file: impl Into<PathBuf>, key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config { file: file.into(), key: key.into(), message: message.into() }
    }

    /// Wraps an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Prefixes the message with context, keeping the kind (and so the exit code).
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        match self {
            Error::Usage(m) => Error::Usage(format!("{what}: {m}")),
            Error::Unsupported(m) => Error::Unsupported(format!("{what}: {m}")),
            Error::Failed(m) => Error::Failed(format!("{what}: {m}")),
            Error::Integrity(m) => Error::Integrity(format!("{what}: {m}")),
            Error::Unreachable(m) => Error::Unreachable(format!("{what}: {m}")),
            Error::Incomplete(m) => Error::Incomplete(format!("{what}: {m}")),
            Error::NotFound(m) => Error::NotFound(format!("{what}: {m}")),
            Error::Cold(m) => Error::Cold(format!("{what}: {m}")),
            Error::Cancelled => Error::Cancelled,
            Error::Store(e) => Error::Store(e.context(what)),
            Error::ThawPending(m) => Error::ThawPending(format!("{what}: {m}")),
            Error::Locked(m) => Error::Locked(format!("{what}: {m}")),
            Error::Io { path, source } => Error::Failed(format!("{what}: {}: {source}", path.display())),
            Error::Remedied { source, remedy } => source.context(what).remedy(remedy),
            c @ Error::Config { .. } => c,
        }
    }
}

/// The innermost cause of an error, in its own words ("Connection refused (os error 111)"),
/// rather than the outermost wrapper's ("client error (Connect)").
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let said = cur.to_string();
    if said.is_empty() { e.to_string() } else { said }
}

/// What a caught panic says, as an error a person reads (it is pgtier's bug, not theirs).
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
    format!("internal error, a bug in pgtier ({what}); nothing after it ran. Please report it with the log above")
}

/// Builds an `Error::Failed` from a format string.
#[macro_export]
macro_rules! failed {
    ($($arg:tt)*) => { $crate::error::Error::Failed(format!($($arg)*)) };
}

/// Builds an `Error::Usage` from a format string.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => { $crate::error::Error::Usage(format!($($arg)*)) };
}

/// Adds a path to `std::io::Result`s.
pub trait IoContext<T> {
    /// Converts an I/O error into `Error::Io` naming `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// `s` with control and bidirectional-override characters escaped (line breaks kept), so a
/// value quoted from a config file cannot rewrite or reorder the error line a person reads.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && c != '\n' && c != '\t') || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(super::printable("a\u{1b}[2Jb\u{202e}c\nd"), "a\\u{1b}[2Jb\\u{202e}c\nd");
    }
}
