//! One error type with the cases a user acts on differently, each with its own exit code.

use std::path::PathBuf;
use std::time::Duration;

/// A boxed cause kept under an error (shown with `-v`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across cta-data.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why authentication failed: each case has a different fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthProblem {
    /// No credential was found in any source.
    Missing,
    /// A credential was found but has expired.
    Expired,
    /// The server (or the identity provider) refused the credential.
    Refused,
}

/// Everything that can go wrong, grouped by what the user does about it.
///
/// Every message says what happened and to which path; [`Error::hint`] says what to do next.
/// No variant ever carries a secret: callers put token *sources* in messages, never tokens.
///
/// Errors are classified once, where the answer or the I/O error is read:
/// [`Error::is_temporary`] says whether trying again may help, and the retry layer
/// ([`crate::retry::Retrying`]) is the only place that acts on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path given by the user or a server is not acceptable.
    #[error("invalid path '{}': {reason}", path.escape_debug())]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// Bad command-line usage that clap cannot see (e.g. a directory without `-r`).
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to type instead.
        hint: String,
    },
    /// The remote (or local) object does not exist.
    #[error("not found: {path}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NotFound {
        /// The path that is missing.
        path: String,
        /// Extra words from the server, if any.
        detail: Option<String>,
    },
    /// The credential is fine but does not allow this operation on this path.
    #[error("permission denied: {path}: {message}")]
    PermissionDenied {
        /// The path that was refused.
        path: String,
        /// What the server or the file system said.
        message: String,
    },
    /// The credential is missing, expired or refused.
    #[error("authentication failed ({problem}): {message}")]
    Auth {
        /// Which kind of failure.
        problem: AuthProblem,
        /// What happened, naming the credential's source (never the credential).
        message: String,
        /// The command that fixes it.
        hint: String,
    },
    /// The operation clashes with what is there (exists, is a directory, not empty...).
    #[error("conflict at {path}: {message}")]
    Conflict {
        /// The path in conflict.
        path: String,
        /// What clashes.
        message: String,
        /// How to proceed.
        hint: String,
    },
    /// Data arrived but does not match its size or checksum; it was not kept.
    #[error("integrity check failed for {path}: {message}")]
    Integrity {
        /// The file that failed the check.
        path: String,
        /// Expected versus actual.
        message: String,
        /// What to do instead, when trying again cannot help (the same wrong bytes come
        /// every time); `None` for the usual advice.
        hint: Option<String>,
    },
    /// The network or TLS failed: the server could not be reached or the connection broke.
    #[error("transport error talking to {target}: {message}")]
    Transport {
        /// Host or URL (without secrets).
        target: String,
        /// What failed.
        message: String,
        /// Trying again may help (a reset, a timeout, a busy server); false for failures
        /// that repeat (an untrusted certificate).
        temporary: bool,
        /// How long the server asked us to wait (`Retry-After`).
        retry_after: Option<Duration>,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The server answered something this client does not understand or did not expect.
    #[error("unexpected answer from the server for {path}: {}{message}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
    Protocol {
        /// The path of the request.
        path: String,
        /// The HTTP status, when there was one.
        status: Option<u16>,
        /// A short description with an excerpt of the answer.
        message: String,
        /// The underlying error (e.g. the XML parser's).
        #[source]
        source: Option<BoxError>,
    },
    /// A fault inside cta-data itself (a bug), never the user's doing.
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The configuration is invalid or incomplete.
    #[error("configuration error: {message}")]
    Config {
        /// What is wrong and where (file, key).
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// This backend cannot do the operation.
    #[error("'{operation}' is not supported by the {backend} backend")]
    Unsupported {
        /// The operation asked for.
        operation: String,
        /// The backend that cannot do it.
        backend: String,
        /// Which profile or tool can.
        hint: String,
    },
    /// A local file or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    LocalIo {
        /// What was being done ("read", "write", "create directory"...).
        action: String,
        /// The local path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Several files of a recursive transfer failed; each was reported on its own.
    #[error("{failed} of {total} files failed")]
    Partial {
        /// How many failed.
        failed: usize,
        /// How many were attempted.
        total: usize,
        /// Some failures may heal when the same command runs again (temporary errors).
        retry: bool,
    },
    /// The user interrupted the operation.
    #[error("interrupted (Ctrl-C)")]
    Interrupted,
    /// Tape (issue 14): a file is on tape only, staging failed or timed out, or the storage
    /// has no tape REST API.
    #[error("{message}")]
    Tape {
        /// The file (or the storage URL when the whole API is missing).
        path: String,
        /// What happened, naming the path (and the stage request, when there is one).
        message: String,
        /// What to do.
        hint: String,
    },
}

/// The exit codes of the `cta-data` command, one per error case (documented in README).
pub mod exit_code {
    /// Success.
    pub const OK: i32 = 0;
    /// An error that fits no other case (a bug: please report it).
    pub const OTHER: i32 = 1;
    /// Wrong usage: bad arguments, a bad path, a directory without `-r`.
    pub const USAGE: i32 = 2;
    /// The configuration is invalid (file, variable, profile).
    pub const CONFIG: i32 = 3;
    /// No credential, an expired one, or one the server refused.
    pub const AUTH: i32 = 4;
    /// The credential does not allow this operation on this path.
    pub const PERMISSION: i32 = 5;
    /// The path does not exist.
    pub const NOT_FOUND: i32 = 6;
    /// The target exists, is a directory, is not empty...
    pub const CONFLICT: i32 = 7;
    /// Size or checksum mismatch: the data was not kept.
    pub const INTEGRITY: i32 = 8;
    /// Network or TLS failure.
    pub const TRANSPORT: i32 = 9;
    /// The server answered something unexpected.
    pub const PROTOCOL: i32 = 10;
    /// The backend cannot do this operation.
    pub const UNSUPPORTED: i32 = 11;
    /// A local file could not be read or written.
    pub const LOCAL_IO: i32 = 12;
    /// Some files of a recursive transfer failed, others succeeded.
    pub const PARTIAL: i32 = 13;
    /// Tape: a file is only on tape (`get` without `--stage`), staging failed or timed
    /// out, or the storage has no tape REST API.
    pub const TAPE: i32 = 14;
    /// Interrupted by the user (Ctrl-C), as shells expect.
    pub const INTERRUPTED: i32 = 130;
}

impl Error {
    /// The exit code of the `cta-data` command for this error.
    pub fn exit_code(&self) -> i32 {
        use exit_code::*;
        match self {
            Error::InvalidPath { .. } | Error::Usage { .. } => USAGE,
            Error::Config { .. } => CONFIG,
            Error::Auth { .. } => AUTH,
            Error::PermissionDenied { .. } => PERMISSION,
            Error::NotFound { .. } => NOT_FOUND,
            Error::Conflict { .. } => CONFLICT,
            Error::Integrity { .. } => INTEGRITY,
            Error::Transport { .. } => TRANSPORT,
            Error::Protocol { .. } => PROTOCOL,
            Error::Unsupported { .. } => UNSUPPORTED,
            Error::LocalIo { .. } => LOCAL_IO,
            Error::Partial { .. } => PARTIAL,
            Error::Interrupted => INTERRUPTED,
            Error::Internal { .. } => OTHER,
            Error::Tape { .. } => TAPE,
        }
    }

    /// The one-word category of this error, one per exit code (`not_found`, `auth`,
    /// `local_io`...): the CLI's `--json` and the Python exceptions name it so.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidPath { .. } | Error::Usage { .. } => "usage",
            Error::Config { .. } => "config",
            Error::Auth { .. } => "auth",
            Error::PermissionDenied { .. } => "permission",
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Integrity { .. } => "integrity",
            Error::Transport { .. } => "transport",
            Error::Protocol { .. } => "protocol",
            Error::Unsupported { .. } => "unsupported",
            Error::LocalIo { .. } => "local_io",
            Error::Partial { .. } => "partial",
            Error::Interrupted => "interrupted",
            Error::Internal { .. } => "internal",
            Error::Tape { .. } => "tape",
        }
    }

    /// What the user should do next, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::InvalidPath { .. } => Some(
                "give a path from the storage root without '..', '.' or '//', e.g. lst/DL1/run.h5"
                    .into(),
            ),
            Error::Usage { hint, .. }
            | Error::Auth { hint, .. }
            | Error::Conflict { hint, .. }
            | Error::Config { hint, .. }
            | Error::Unsupported { hint, .. }
            | Error::Tape { hint, .. } => Some(hint.clone()),
            Error::NotFound { detail: Some(d), .. } if d.starts_with("local path") => {
                Some("check the local path (relative paths start at the current directory)".into())
            }
            Error::NotFound { .. } => {
                Some("check the path with 'cta-data list' on its parent directory".into())
            }
            Error::PermissionDenied { .. } => Some(
                "check that your account may access this path: 'cta-data token status' (a token) or 'cta-data cert info' (a grid proxy) shows who you are; on the platform, your hub user's rights apply"
                    .into(),
            ),
            Error::Integrity { hint: Some(h), .. } => Some(h.clone()),
            Error::Integrity { .. } => Some(
                "the damaged data was discarded; run the command again, and report it if it repeats"
                    .into(),
            ),
            Error::Transport {
                temporary: false, ..
            } => Some(
                "this does not heal by retrying: check the profile's url and trust ('cta-data config show')"
                    .into(),
            ),
            Error::Transport { .. } => Some(
                "check the network and the profile's url ('cta-data config show'); rerun to resume"
                    .into(),
            ),
            Error::Internal { .. } => Some(
                "this is a bug in cta-data: please report it with the output of the command run with -vv"
                    .into(),
            ),
            Error::Protocol { .. } => Some(
                "rerun with -vv for the full exchange; if it persists, report it with that output"
                    .into(),
            ),
            Error::LocalIo { source, .. } => Some(match source.kind() {
                std::io::ErrorKind::NotFound => "check the local path".into(),
                std::io::ErrorKind::PermissionDenied => {
                    "check the local file's permissions".into()
                }
                std::io::ErrorKind::StorageFull => {
                    "free some space on that disk or choose a target on another one, then run the same command again".into()
                }
                _ => "check the local disk (space, permissions)".into(),
            }),
            Error::Partial { retry: true, .. } => Some(
                "each failure is listed above; run the same command again to retry them (files already done are skipped)"
                    .into(),
            ),
            Error::Partial { .. } => Some(
                "each failure is listed above with what to do; running the same command again alone will not help"
                    .into(),
            ),
            Error::Interrupted => Some(
                "finished files are complete and unfinished downloads were kept as .part files: run the same command again to resume (finished files are skipped)"
                    .into(),
            ),
        }
    }

    /// A local I/O error: `Error::LocalIo` with the action and path, or `NotFound` for a
    /// missing local file so that the exit code tells the user the path is wrong.
    pub fn local(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            return Error::NotFound {
                path: path.display().to_string(),
                detail: Some(format!("local path; cannot {}", action.into())),
            };
        }
        Error::LocalIo {
            action: action.into(),
            path,
            source,
        }
    }

    /// A `NotFound` error for a remote path.
    pub fn not_found(path: impl ToString) -> Self {
        Error::NotFound {
            path: path.to_string(),
            detail: None,
        }
    }

    /// A `Conflict` error.
    pub fn conflict(
        path: impl ToString,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Error::Conflict {
            path: path.to_string(),
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A `Usage` error.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A `Config` error.
    pub fn config(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A temporary `Transport` error (trying again may help).
    pub fn transport(target: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Transport {
            target: target.into(),
            message: message.into(),
            temporary: true,
            retry_after: None,
            source: None,
        }
    }

    /// A `Transport` error that repeats whatever one does (e.g. an untrusted certificate).
    pub fn transport_permanent(target: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Transport {
            target: target.into(),
            message: message.into(),
            temporary: false,
            retry_after: None,
            source: None,
        }
    }

    /// A `Protocol` error.
    pub fn protocol(path: impl ToString, status: Option<u16>, message: impl Into<String>) -> Self {
        Error::Protocol {
            path: path.to_string(),
            status,
            message: message.into(),
            source: None,
        }
    }

    /// An `Integrity` error with the usual advice.
    pub fn integrity(path: impl ToString, message: impl Into<String>) -> Self {
        Error::Integrity {
            path: path.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    /// An `Internal` error: a bug of cta-data, exit code 1.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `cause` under this error (for `Transport`, `Protocol` and `Internal`; other
    /// cases carry their cause in their message and are returned unchanged).
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> Self {
        match &mut self {
            Error::Transport { source, .. }
            | Error::Protocol { source, .. }
            | Error::Internal { source, .. } => *source = Some(cause.into()),
            _ => {}
        }
        self
    }

    /// True when trying the same operation again may succeed: network trouble, timeouts,
    /// and the statuses 408, 429, 500, 502, 503, 504. Decided by the error's kind, never by
    /// its text.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Transport { temporary, .. } => *temporary,
            Error::Protocol {
                status: Some(s), ..
            } => crate::retry::retryable_status(*s),
            _ => false,
        }
    }

    /// How long the server asked to wait before trying again, when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Transport { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The chain of causes under this error, outermost first (for `-v`).
    pub fn causes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = std::error::Error::source(self);
        while let Some(c) = cur {
            let t = c.to_string();
            if !out.contains(&t) {
                out.push(t);
            }
            cur = c.source();
        }
        out
    }
}

impl std::fmt::Display for AuthProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthProblem::Missing => "no credential",
            AuthProblem::Expired => "credential expired",
            AuthProblem::Refused => "credential refused",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Error> {
        vec![
            Error::InvalidPath {
                path: "a/../b".into(),
                reason: "r".into(),
            },
            Error::Usage {
                message: "m".into(),
                hint: "h".into(),
            },
            Error::not_found("/x"),
            Error::PermissionDenied {
                path: "/x".into(),
                message: "m".into(),
            },
            Error::Auth {
                problem: AuthProblem::Missing,
                message: "m".into(),
                hint: "h".into(),
            },
            Error::conflict("/x", "exists", "h"),
            Error::integrity("/x", "m"),
            Error::transport("h", "m"),
            Error::protocol("/x", Some(500), "m"),
            Error::config("m", "h"),
            Error::Unsupported {
                operation: "rename".into(),
                backend: "b".into(),
                hint: "h".into(),
            },
            Error::local("read", "/tmp/x", std::io::Error::other("boom")),
            Error::Partial {
                failed: 1,
                total: 2,
                retry: false,
            },
            Error::Interrupted,
            Error::internal("m"),
            crate::tape::on_tape(&crate::RemotePath::parse("a").unwrap()),
        ]
    }

    #[test]
    fn every_case_has_its_own_exit_code() {
        let codes: Vec<i32> = all().iter().map(Error::exit_code).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        // InvalidPath and Usage share USAGE on purpose: both mean "retype the command";
        // Internal is OTHER (1), the code for bugs.
        assert_eq!(sorted.len(), codes.len() - 1, "{codes:?}");
        assert_eq!(Error::internal("x").exit_code(), exit_code::OTHER);
        assert!(codes.iter().all(|&c| c != 0));
        assert_eq!(Error::not_found("/x").exit_code(), exit_code::NOT_FOUND);
        assert_eq!(Error::config("m", "h").exit_code(), exit_code::CONFIG);
        assert_eq!(Error::Interrupted.exit_code(), 130);
    }

    #[test]
    fn every_failure_has_a_hint() {
        for e in all() {
            assert!(e.hint().is_some(), "{e:?}");
        }
    }

    #[test]
    fn a_partial_failure_says_rerun_only_when_a_rerun_can_help() {
        let p = |retry| Error::Partial {
            failed: 1,
            total: 3,
            retry,
        };
        assert!(p(true)
            .hint()
            .unwrap()
            .contains("run the same command again to retry"));
        let h = p(false).hint().unwrap();
        assert!(h.contains("will not help"), "{h}");
        let i = Error::Interrupted.hint().unwrap();
        assert!(
            i.contains(".part") && i.contains("same command again"),
            "{i}"
        );
    }

    #[test]
    fn temporary_is_decided_by_kind_and_status() {
        assert!(Error::transport("h", "reset").is_temporary());
        assert!(!Error::transport_permanent("h", "untrusted").is_temporary());
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(Error::protocol("/x", Some(s), "m").is_temporary(), "{s}");
        }
        for s in [400, 403, 404, 409, 501, 507] {
            assert!(!Error::protocol("/x", Some(s), "m").is_temporary(), "{s}");
        }
        assert!(!Error::not_found("/x").is_temporary());
        assert!(!Error::integrity("/x", "m").is_temporary());
    }

    #[test]
    fn causes_are_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer reset");
        let e = Error::transport("h", "the download broke").with_source(io);
        assert_eq!(e.causes(), vec!["peer reset".to_string()]);
        let e = Error::integrity("/x", "m");
        assert!(e.causes().is_empty());
    }

    #[test]
    fn messages_name_the_path() {
        assert_eq!(Error::not_found("/lst/x").to_string(), "not found: /lst/x");
        let p = Error::protocol("/lst", Some(502), "bad gateway");
        assert_eq!(
            p.to_string(),
            "unexpected answer from the server for /lst: HTTP 502: bad gateway"
        );
    }
}
