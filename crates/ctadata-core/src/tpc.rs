//! Server-side copies: a WebDAV `COPY` within one door, and HTTP third-party copy (pull,
//! then push) between two doors. A backend that does them returns a [`ServerCopyOps`] from
//! [`crate::StorageBackend::server_copy`].
//!
//! HTTP third-party copy (the WLCG HTTP-TPC specification, as dCache and XRootD's
//! `XrdHttpTPC` speak it): the client sends `COPY` to one server, which moves the bytes
//! itself.
//! * Pull: `COPY` to the destination with `Source: <url>`; the headers
//!   `TransferHeader<Name>: value` are sent by the destination to the source as
//!   `<Name>: value` (so `TransferHeaderAuthorization: Bearer ...` carries the source's
//!   credential, never a URL).
//! * Push: `COPY` to the source with `Destination: <url>`, and `TransferHeader*` for the
//!   destination.
//! * The server answers `202 Accepted` and then streams performance markers
//!   (`Perf Marker` ... `Stripe Bytes Transferred: N` ... `End`), ending with a line
//!   `success: ...` or `failure: ...`. A refusal comes before any marker (`405`, `501`,
//!   `403`...).

use std::time::Duration;

use async_trait::async_trait;

use crate::credentials::Secret;
use crate::error::Result;
use crate::path::RemotePath;

/// How a copy was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// WebDAV `COPY` within one door.
    Within,
    /// HTTP third-party copy, the destination pulling from the source.
    Pull,
    /// HTTP third-party copy, the source pushing to the destination.
    Push,
    /// Through the client: a read from the source written to the destination.
    Stream,
}

impl CopyMode {
    /// The mode's name (`copy`, `pull`, `push`, `stream`), as `--mode` and `--json` say it.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyMode::Within => "copy",
            CopyMode::Pull => "pull",
            CopyMode::Push => "push",
            CopyMode::Stream => "stream",
        }
    }
}

/// What a third-party `COPY` came to, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpcOutcome {
    /// The server reported success; `bytes` is the last count its markers gave.
    Done {
        /// Bytes the last performance marker counted, when there was one.
        bytes: Option<u64>,
    },
    /// The server would not do it (before any marker): another mode may work.
    Refused {
        /// The HTTP status of the refusal.
        status: u16,
        /// The server's words (shortened), for messages.
        reason: String,
    },
}

/// Called with the bytes transferred so far, at each performance marker.
pub type MarkerHook<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// A third-party copy to ask of one server: the other end's URL and credential.
#[derive(Debug, Clone)]
pub struct TpcRequest<'a> {
    /// The URL of the other end (`Source:` for a pull, `Destination:` for a push): never
    /// with a credential in it.
    pub remote_url: &'a str,
    /// The value of `Authorization` the server should present to the other end
    /// (`Bearer ...`), sent as `TransferHeaderAuthorization`; `None` to send none.
    pub remote_authorization: Option<&'a Secret>,
    /// Replace an existing destination file.
    pub overwrite: bool,
}

/// Copies done by the servers, without the bytes passing through the client.
#[async_trait]
pub trait ServerCopyOps: Send + Sync {
    /// Copies `from` to `to` on the same storage (WebDAV `COPY`, a tree with `Depth:
    /// infinity`); an existing destination is a conflict unless `overwrite`.
    async fn copy_within(&self, from: &RemotePath, to: &RemotePath, overwrite: bool) -> Result<()>;

    /// The URL by which another server reaches `path` here (no credential in it).
    fn url_of(&self, path: &RemotePath) -> String;

    /// Whether `self` and a server at `url` are the same door (scheme, host and port).
    fn same_door(&self, url: &str) -> bool;

    /// A credential for `path` that this backend can hand to a third party, as the value
    /// of an `Authorization` header: the bearer token, or for X.509 a macaroon valid for
    /// `validity` (reading when `!write`, writing when `write`). `None` when it has none
    /// to give (the third party then goes without).
    async fn transfer_credential(
        &self,
        path: &RemotePath,
        write: bool,
        validity: Duration,
    ) -> Result<Option<Secret>>;

    /// Pull: this server (the destination) fetches `req.remote_url` into `to`.
    async fn pull(
        &self,
        to: &RemotePath,
        req: &TpcRequest<'_>,
        markers: MarkerHook<'_>,
    ) -> Result<TpcOutcome>;

    /// Push: this server (the source) sends `from` to `req.remote_url`.
    async fn push(
        &self,
        from: &RemotePath,
        req: &TpcRequest<'_>,
        markers: MarkerHook<'_>,
    ) -> Result<TpcOutcome>;
}

/// What the body of a third-party `COPY` said, read line by line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MarkerParser {
    /// Bytes the last marker counted.
    pub bytes: Option<u64>,
    /// Markers seen.
    pub markers: u64,
    /// The final line, once seen: `Ok(words after "success:")` or `Err(words after
    /// "failure:")`.
    pub end: Option<std::result::Result<String, String>>,
}

impl MarkerParser {
    /// Reads one line of the body; returns the new byte count when a marker completed one.
    pub fn line(&mut self, line: &str) -> Option<u64> {
        let l = line.trim();
        if let Some(rest) = strip_prefix_ci(l, "success:") {
            self.end = Some(Ok(rest.trim().to_string()));
            return None;
        }
        if let Some(rest) = strip_prefix_ci(l, "failure:") {
            self.end = Some(Err(rest.trim().to_string()));
            return None;
        }
        if let Some(rest) = strip_prefix_ci(l, "Stripe Bytes Transferred:") {
            if let Ok(n) = rest.trim().parse::<u64>() {
                self.bytes = Some(n);
            }
            return None;
        }
        if l.eq_ignore_ascii_case("End") {
            self.markers += 1;
            return self.bytes;
        }
        None
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_read_as_dcache_and_xrootd_send_them() {
        let mut p = MarkerParser::default();
        let body = "Perf Marker\n Timestamp: 1537788010\n Stripe Index: 0\n Stripe Bytes Transferred: 238745\n Total Stripe Count: 1\nEnd\n";
        let seen: Vec<u64> = body.lines().filter_map(|l| p.line(l)).collect();
        assert_eq!(seen, vec![238745]);
        assert_eq!(p.markers, 1);
        assert!(p.end.is_none());
        p.line("success: Created");
        assert_eq!(p.end, Some(Ok("Created".into())));
        let mut f = MarkerParser::default();
        f.line("failure: rejected GET: 403 Forbidden");
        assert_eq!(f.end, Some(Err("rejected GET: 403 Forbidden".into())));
        assert!(MarkerParser::default()
            .line("Stripe Bytes Transferred: x")
            .is_none());
    }

    #[test]
    fn modes_have_names() {
        let names: Vec<&str> = [
            CopyMode::Within,
            CopyMode::Pull,
            CopyMode::Push,
            CopyMode::Stream,
        ]
        .iter()
        .map(|m| m.as_str())
        .collect();
        assert_eq!(names, ["copy", "pull", "push", "stream"]);
    }
}
