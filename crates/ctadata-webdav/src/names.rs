//! Names a server may not address faithfully: a `?` in a path.
//!
//! The client always sends a `?` of a name percent-encoded (`%3F`), so a server that follows
//! RFC 3986 addresses the file by its real name. XRootD 5.5.3's XrdHttp does not: it
//! decodes the request path and then cuts it at the `?`, so `GET /qm/r%3Fx.txt` serves the
//! file `qm/r`, `PUT /up/q%3Fx.txt` writes `up/q` (over a file of that name), and
//! `PROPFIND` answers with the path asked for, whatever it served: no answer tells the
//! two files apart. So before the first request that addresses such a name, the client
//! asks the server once (per backend) how it treats one: a `PROPFIND` of a name that cannot
//! exist, `DIR/?cta-data-probe-RANDOM` in a directory that does. A faithful server answers
//! `404`; one that cuts answers `207` (for `DIR/`). Where the server cuts, or where the
//! client cannot tell, every operation on such a name is refused before any request
//! addresses it (exit code "unsupported"): never another file read or written under its
//! name. Paths without a `?` cost nothing.

use bytes::Bytes;
use ctadata_core::{Error, RemotePath, Result};
use reqwest::header::HeaderValue;
use tokio::sync::OnceCell;

use crate::backend::{ext_method, WebDav};
use crate::propfind::PROPFIND_BODY;

/// The characters of a name that a server may not address as written.
const DOUBTFUL: [char; 1] = ['?'];

/// How the server treats a name holding `?` (learned once per backend, see the module).
#[derive(Debug, Clone)]
pub(crate) enum Addressing {
    /// It addresses the name as written.
    Faithful,
    /// It answers for another path (the one cut at `?`): `why` says what showed it.
    Cuts { why: String },
    /// No probe could tell (`why` says what each answered).
    Unknown { why: String },
}

/// What one probe of a directory showed.
enum Probe {
    Decided(Addressing),
    /// Nothing conclusive (the directory missing or unreadable): what was answered.
    Inconclusive(String),
}

/// The first character of `path` that a server may not address as written.
fn doubtful(path: &RemotePath) -> Option<char> {
    path.as_str().chars().find(|c| DOUBTFUL.contains(c))
}

/// The directory a probe for `path` looks in: the parent of its first segment holding a
/// doubtful character (the deepest directory that may exist and can be addressed).
fn probe_dir(path: &RemotePath) -> RemotePath {
    let mut dir = RemotePath::root();
    for seg in path.segments() {
        if seg.contains(DOUBTFUL) {
            break;
        }
        dir = dir.join(seg).unwrap_or(dir);
    }
    dir
}

impl WebDav {
    /// Refuses a request for a path the server would not address faithfully (see the
    /// module). Free for a path without a `?`; otherwise the first call asks the server
    /// once (two or three `PROPFIND`s) and later calls reuse its answer.
    pub(crate) async fn check_addressable(&self, path: &RemotePath) -> Result<()> {
        let Some(c) = doubtful(path) else {
            return Ok(());
        };
        let addressing = self
            .question_mark
            .get_or_try_init(|| self.probe_question_mark(path))
            .await?;
        let hint = match addressing {
            Addressing::Faithful => return Ok(()),
            Addressing::Cuts { why } => format!(
                "this server cuts request paths at '{c}' ({why}): any request for {path} would read, write or delete the file named by the part before the '{c}' instead, so none was sent. Rename it without '{c}' with a tool that speaks the xroot protocol (e.g. 'xrdfs HOST mv OLD NEW') or through a server that addresses such names, then use the new name; 'cta-data list' of its directory still shows it"
            ),
            Addressing::Unknown { why } => format!(
                "cta-data could not tell whether this server addresses a name holding '{c}' as written or cuts the path there ({why}); one that cuts would read, write or delete another file instead, so no request for {path} was sent. Rename it without '{c}' with another tool, or ask the server's administrators how it treats '{c}'"
            ),
        };
        Err(Error::Unsupported {
            operation: format!("reaching {path} (a name holding '{c}')"),
            backend: self.cfg.backend_name.to_string(),
            hint,
        })
    }

    /// Finds out how the server treats a name holding `?` (see the module): in the probe
    /// directory of `path`, else in each of its ancestors up to the root (the first that
    /// exists and may be read decides; a new directory of `put -r` does not exist yet, and
    /// a token may not read the root).
    async fn probe_question_mark(&self, path: &RemotePath) -> Result<Addressing> {
        let mut tried = Vec::new();
        let mut dirs = vec![probe_dir(path)];
        while let Some(up) = dirs.last().and_then(RemotePath::parent) {
            dirs.push(up);
        }
        for dir in dirs {
            match self.probe_in(&dir).await? {
                Probe::Decided(a) => {
                    tracing::debug!(?a, dir = %dir, "how this server addresses a name holding '?'");
                    return Ok(a);
                }
                Probe::Inconclusive(why) => tried.push(why),
            }
        }
        Ok(Addressing::Unknown {
            why: tried.join("; "),
        })
    }

    /// One probe: a `PROPFIND` of `DIR/?cta-data-probe-RANDOM`, and of `DIR` itself when
    /// that answers `404` (a `404` proves nothing when `DIR` is missing too).
    async fn probe_in(&self, dir: &RemotePath) -> Result<Probe> {
        let name = format!("?cta-data-probe-{:08x}", fastrand::u32(..));
        let probe = dir.join(&name)?;
        let (status, server) = self.propfind_status(&probe).await?;
        let shown = probe.to_string();
        match status {
            207 => Ok(Probe::Decided(Addressing::Cuts {
                why: format!(
                    "asked about {shown}, a name that cannot exist, {} answered for {dir} instead",
                    server.map_or("it".into(), |s| format!("it ({s})"))
                ),
            })),
            404 if dir.is_root() => Ok(Probe::Decided(Addressing::Faithful)),
            404 => match self.propfind_status(dir).await? {
                (207, _) => Ok(Probe::Decided(Addressing::Faithful)),
                (s, _) => Ok(Probe::Inconclusive(format!(
                    "{shown}: 404, and {dir} itself: {s}"
                ))),
            },
            s => Ok(Probe::Inconclusive(format!("{shown}: {s}"))),
        }
    }

    /// The status of a `PROPFIND` (`Depth: 0`) of `path`, and the `Server` it names.
    async fn propfind_status(&self, path: &RemotePath) -> Result<(u16, Option<String>)> {
        let mut r = self.req(ext_method("PROPFIND"), path, false);
        r.headers.insert("depth", HeaderValue::from_static("0"));
        r.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        );
        r.body = Some(Bytes::from_static(PROPFIND_BODY.as_bytes()));
        let resp = self.send(r).await?;
        let server = resp
            .headers()
            .get(reqwest::header::SERVER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = resp.status().as_u16();
        // Read to its end, so the connection can serve the next request.
        let _ = resp.bytes().await;
        Ok((status, server))
    }
}

/// A fresh, unprobed state for [`WebDav::check_addressable`].
pub(crate) fn unprobed() -> OnceCell<Addressing> {
    OnceCell::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(s: &str) -> RemotePath {
        RemotePath::parse(s).unwrap()
    }

    #[test]
    fn the_probe_looks_above_the_first_doubtful_segment() {
        assert_eq!(doubtful(&rp("a/b c#d%41+&.txt")), None);
        assert_eq!(doubtful(&rp("a/r?x.txt")), Some('?'));
        assert_eq!(probe_dir(&rp("qm/r?x.txt")), rp("qm"));
        assert_eq!(probe_dir(&rp("a/b?c/d/e?f")), rp("a"));
        assert!(probe_dir(&rp("?x/y")).is_root());
    }
}
