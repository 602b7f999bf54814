//! The downloadservice as a [`StorageBackend`].
//!
//! Reads go through `list/` (listings and stat) and `fetch/` (whole files, streamed; the
//! service answers `200` with an HTML page for a missing file, so the byte count is checked
//! against the listed size). Byte ranges go through the `webdav/` passthrough in bounded
//! pieces, because the service buffers each `webdav` answer whole. Writes go to `upload/`
//! (streamed from disk) and `webdav` `MKCOL`, only inside the user's folder
//! `<lst|cta>/users/<user>/`.
//!
//! Paths: a path whose first segment is a top-level folder of the storage (`lst`, `cta`,
//! ...) is taken from the storage root; any other path is taken inside the user's folder,
//! as the service itself does for uploads (`results/x.h5` is
//! `lst/users/<user>/results/x.h5`), for reads and writes alike.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use ctadata_core::backend::check_put_target;
use ctadata_core::credentials::BearerToken;
use ctadata_core::retry::parse_retry_after;
use ctadata_core::{
    ByteRange, ByteStream, Capabilities, Download, Entry, EntryKind, EntryStream, Error,
    GetOptions, PutOptions, PutOutcome, RemotePath, Result, StorageBackend, Upload,
};
use ctadata_webdav::body::{body_stream, delivered_range};
use ctadata_webdav::errors::{status_to_error, with_retry_after};
use ctadata_webdav::urls::SEGMENT;
use ctadata_webdav::urls::{redact, Base};
use futures::StreamExt;
use percent_encoding::utf8_percent_encode;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use reqwest::{Method, Response, Url};

use crate::client::{content_type, location, looks_like_html, read_limited, short_text, Session};
use crate::listing::{parse_list, ListItem};

/// The largest piece asked of the `webdav` passthrough at once (it buffers whole answers).
pub const RANGE_PIECE: u64 = 8 << 20;

/// The top-level folders known without asking (SPEC: paths start at `cta/` or `lst/`).
const KNOWN_TOP: [&str; 2] = ["cta", "lst"];

/// The hub user name as the service turns it into a folder name: lower-cased, with every
/// character outside `[0-1a-z]` replaced by `_` (sic: the digits 2 to 9 too).
pub fn user_folder_name(hub_user: &str) -> String {
    hub_user
        .to_lowercase()
        .chars()
        .map(|c| {
            if matches!(c, '0'..='1' | 'a'..='z') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn encode(p: &RemotePath) -> String {
    p.segments()
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Why a wrong byte count from the passthrough repeats on every attempt.
const REWRITES: &str = "retrying cannot help: the downloadservice rewrites some byte sequences in every answer it passes through, file contents included, so this file cannot be read through it; read it with the cta profile (direct dCache): 'cta-data --profile cta get ...'";

/// The service session and the passthrough's base, shared with the streams of reads.
#[derive(Debug, Clone)]
struct Core {
    s: Arc<Session>,
    webdav: Base,
}

impl Core {
    fn endpoint(&self, endpoint: &str, p: &RemotePath) -> Url {
        self.s.url(endpoint, &encode(p))
    }

    /// Reads a non-success answer and turns it into the error the user acts on.
    async fn failure(
        &self,
        resp: Response,
        token: &BearerToken,
        path: &RemotePath,
        what: &str,
    ) -> Error {
        let status = resp.status().as_u16();
        let loc = location(&resp);
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = String::from_utf8_lossy(&read_limited(resp, 4096).await).to_string();
        if let Some(e) = self.s.auth_failure(status, loc.as_deref(), &body, token) {
            return e;
        }
        let text = short_text(&body);
        let detail = if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        };
        match status {
            403 => Error::PermissionDenied {
                path: path.to_string(),
                message: format!("the downloadservice refused to {what} (HTTP 403){detail}"),
            },
            404 | 410 => Error::NotFound {
                path: path.to_string(),
                detail: None,
            },
            400 if path.as_str().contains("..") => dots(path),
            // A known fault of the service, the same every time: no retry can help.
            500 if path.as_str().contains('(') || path.as_str().contains(')') => Error::Unsupported {
                operation: format!("{what} a name with parentheses"),
                backend: "downloadservice".into(),
                hint: format!("the downloadservice answers 500 for {path}; use the cta profile for this path ('cta-data --profile cta ...')"),
            },
            _ => with_retry_after(
                status_to_error(status, path, what, &body),
                retry_after,
            ),
        }
    }

    /// One piece `start..end` of a file through the passthrough, checked for its length.
    async fn piece(&self, abs: &RemotePath, start: u64, end: u64) -> Result<Bytes> {
        let url = self.webdav.url_for(abs, false);
        let range = format!("bytes={}-{}", start, end - 1);
        let (resp, token) = self
            .s
            .send(&url, |c| {
                c.get(url.clone())
                    .header(RANGE, range.clone())
                    .header(CONTENT_TYPE, "application/json")
            })
            .await?;
        let status = resp.status().as_u16();
        match status {
            200 | 206 => {}
            _ => return Err(self.failure(resp, &token, abs, "read").await),
        }
        let asked = ByteRange::bounded(start, end)?;
        delivered_range(status, resp.headers(), Some(asked), abs)?;
        let body = resp.bytes().await.map_err(|e| self.s.transport(&url, e))?;
        if body.len() as u64 != end - start {
            return Err(Error::Integrity {
                path: abs.to_string(),
                message: format!(
                    "the webdav passthrough sent {} bytes for bytes {start}-{} ({} expected); nothing was kept",
                    body.len(),
                    end - 1,
                    end - start
                ),
                hint: Some(REWRITES.into()),
            });
        }
        Ok(body)
    }
}

/// The downloadservice backend.
#[derive(Debug)]
pub struct DownloadService {
    c: Core,
    env_user: Option<String>,
    home: tokio::sync::OnceCell<RemotePath>,
    top: tokio::sync::OnceCell<Vec<String>>,
    jobs: usize,
}

impl DownloadService {
    /// A backend over a session with the service; `env_user` is `JUPYTERHUB_USER`.
    pub fn new(s: Session, env_user: Option<String>, jobs: usize) -> Result<Self> {
        let webdav = Base::new(
            s.base
                .join("webdav/")
                .map_err(|e| {
                    Error::config(format!("bad service URL: {e}"), "check the profile's url")
                })?
                .as_str(),
        )?;
        Ok(Self {
            c: Core {
                s: Arc::new(s),
                webdav,
            },
            env_user,
            home: tokio::sync::OnceCell::new(),
            top: tokio::sync::OnceCell::new(),
            jobs: jobs.max(1),
        })
    }

    /// The service URL.
    pub fn url(&self) -> &Url {
        &self.c.s.base
    }

    // ----- where paths are -------------------------------------------------------------

    /// The top-level folders of the storage (from one listing of the root).
    async fn top_level(&self) -> Result<&Vec<String>> {
        self.top
            .get_or_try_init(|| async {
                match self.list_items(&RemotePath::root()).await {
                    Ok(items) => Ok(items
                        .iter()
                        .filter_map(|i| i.path.as_ref())
                        .filter(|p| !p.is_root())
                        .filter_map(|p| p.segments().next().map(str::to_string))
                        .collect()),
                    Err(e @ Error::Auth { .. }) => Err(e),
                    Err(e) => {
                        tracing::debug!(
                            "cannot list the storage root ({e}): assuming cta/ and lst/"
                        );
                        Ok(KNOWN_TOP.iter().map(|s| s.to_string()).collect())
                    }
                }
            })
            .await
    }

    async fn is_top_level(&self, p: &RemotePath) -> Result<bool> {
        let Some(first) = p.segments().next() else {
            return Ok(true);
        };
        if KNOWN_TOP.contains(&first) {
            return Ok(true);
        }
        Ok(self.top_level().await?.iter().any(|t| t == first))
    }

    /// The path from the storage root: top-level paths as they are, others in the user folder.
    async fn absolute(&self, p: &RemotePath) -> Result<RemotePath> {
        if self.is_top_level(p).await? {
            return Ok(p.clone());
        }
        self.home().await?.join(p.as_str())
    }

    /// The hub user name: from the hub's `api/user`, else `JUPYTERHUB_USER`.
    async fn user_name(&self) -> Result<String> {
        let mut why = String::from("the hub's address is unknown");
        if let Some(url) = self.c.s.hub.api_user() {
            match self
                .c
                .s
                .send(&url, |c| {
                    c.get(url.clone())
                        .header(ACCEPT, "application/json")
                        .header(CONTENT_TYPE, "application/json")
                })
                .await
            {
                Ok((resp, _)) if resp.status().as_u16() == 200 => {
                    let body = read_limited(resp, 1 << 20).await;
                    match serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string))
                    {
                        Some(n) if !n.is_empty() => return Ok(n),
                        _ => why = format!("{} answered without a user name", redact(&url)),
                    }
                }
                Ok((resp, _)) => {
                    why = format!("{} answered HTTP {}", redact(&url), resp.status().as_u16())
                }
                Err(e @ Error::Auth { .. }) => return Err(e),
                Err(e) => why = e.to_string(),
            }
        }
        if let Some(u) = &self.env_user {
            tracing::debug!("hub user from JUPYTERHUB_USER ({why})");
            return Ok(u.clone());
        }
        Err(Error::config(
            format!("cannot tell your hub user name, which names your folder on the storage: {why}, and JUPYTERHUB_USER is not set"),
            "export JUPYTERHUB_USER=<your hub user name> (as shown in the hub's control panel)",
        ))
    }

    /// The user's folder `<lst|cta>/users/<user>`, where the service puts uploads.
    pub async fn home(&self) -> Result<RemotePath> {
        self.home
            .get_or_try_init(|| async {
                let name = self.user_name().await?;
                let folder = user_folder_name(&name);
                for top in ["lst", "cta"] {
                    let users = RemotePath::parse(&format!("{top}/users"))?;
                    if self.visible(&users).await? {
                        let home = users.join(&folder)?;
                        tracing::debug!(user = %name, home = %home, "user folder");
                        return Ok(home);
                    }
                }
                Err(Error::PermissionDenied {
                    path: "/lst/users and /cta/users".into(),
                    message: "neither is visible to you through the downloadservice, so it has no folder to put your files in; ask the CTA-CH DC team for write access".into(),
                })
            })
            .await
            .cloned()
    }

    /// The target of a write: (path from the root, path below the user folder).
    async fn write_target(&self, p: &RemotePath) -> Result<(RemotePath, RemotePath)> {
        let home = self.home().await?;
        if let Some(rel) = p.strip_prefix(&home) {
            return Ok((p.clone(), RemotePath::parse(rel)?));
        }
        if self.is_top_level(p).await? {
            return Err(Error::PermissionDenied {
                path: p.to_string(),
                message: format!(
                    "the downloadservice writes only inside your user folder {home}/; give a path in it, or one relative to it ('results/x.h5' lands in {home}/results/x.h5)"
                ),
            });
        }
        Ok((home.join(p.as_str())?, p.clone()))
    }

    // ----- requests ----------------------------------------------------------------------

    /// `list/<path>`: the raw items, the queried one included.
    async fn list_items(&self, abs: &RemotePath) -> Result<Vec<ListItem>> {
        let url = self.c.endpoint("list", abs);
        let (resp, token) = self
            .c
            .s
            .send(&url, |c| {
                c.get(url.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .header(ACCEPT, "application/json")
            })
            .await?;
        if resp.status().as_u16() != 200 {
            return Err(self.c.failure(resp, &token, abs, "list").await);
        }
        let ctype = content_type(&resp);
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.c.s.transport(&url, e))?;
        if looks_like_html(ctype.as_deref(), &body) {
            return Err(self.c.s.html_instead_of_data(
                &format!("the listing of {abs}"),
                &String::from_utf8_lossy(&body[..body.len().min(2048)]),
                &token,
            ));
        }
        parse_list(&body).map_err(|e| {
            Error::protocol(
                abs.to_string(),
                Some(200),
                format!("the list answer cannot be used: {}", e.0),
            )
        })
    }

    fn entry(path: RemotePath, item: &ListItem) -> Entry {
        let mut e = Entry::new(
            path,
            if item.is_dir {
                EntryKind::Directory
            } else {
                EntryKind::File
            },
        );
        e.size = item.size;
        e.mtime = item.mtime;
        e
    }

    /// The item describing `abs` itself: the one with its path, else the first one (the
    /// service puts the queried item first) when it is not one of the children.
    fn itself<'a>(abs: &RemotePath, items: &'a [ListItem]) -> Option<&'a ListItem> {
        items
            .iter()
            .find(|i| i.path.as_ref() == Some(abs))
            .or_else(|| {
                items
                    .first()
                    .filter(|i| i.path.as_ref().and_then(|p| p.parent()).as_ref() != Some(abs))
            })
    }

    async fn stat_abs(&self, path: &RemotePath, abs: &RemotePath) -> Result<Entry> {
        let items = match self.list_items(abs).await {
            Ok(items) => items,
            // `list/<file>` fails for some names (a `(`) while the parent's listing
            // describes the file: look there.
            Err(e @ Error::Unsupported { .. }) => {
                let Some(parent) = abs.parent() else {
                    return Err(e);
                };
                let Ok(siblings) = self.list_items(&parent).await else {
                    return Err(e);
                };
                return match siblings.iter().find(|i| i.path.as_ref() == Some(abs)) {
                    Some(i) => Ok(Self::entry(path.clone(), i)),
                    None => Err(Error::not_found(path)),
                };
            }
            Err(e) => return Err(e),
        };
        match Self::itself(abs, &items) {
            Some(i) => Ok(Self::entry(path.clone(), i)),
            None => Err(Error::protocol(
                abs.to_string(),
                Some(200),
                "the list answer does not describe the path asked for",
            )),
        }
    }

    /// `PROPFIND Depth: 0` through the passthrough: does the directory exist for this user?
    async fn visible(&self, abs: &RemotePath) -> Result<bool> {
        let url = self.c.webdav.url_for(abs, true);
        let (resp, token) = self
            .c
            .s
            .send(&url, |c| {
                c.request(
                    Method::from_bytes(b"PROPFIND").expect("valid method"),
                    url.clone(),
                )
                .header("depth", "0")
                .header(CONTENT_TYPE, "application/xml; charset=utf-8")
                .body(ctadata_webdav::propfind::PROPFIND_BODY)
            })
            .await?;
        match resp.status().as_u16() {
            207 | 200 => Ok(true),
            403 | 404 => Ok(false),
            _ => Err(self
                .c
                .failure(resp, &token, abs, "look at the folder")
                .await),
        }
    }

    /// `MKCOL` through the passthrough: `Ok(true)` created, `Ok(false)` already there (405).
    async fn mkcol(&self, abs: &RemotePath) -> Result<bool> {
        let url = self.c.webdav.url_for(abs, true);
        let (resp, token) = self
            .c
            .s
            .send(&url, |c| {
                c.request(
                    Method::from_bytes(b"MKCOL").expect("valid method"),
                    url.clone(),
                )
            })
            .await?;
        match resp.status().as_u16() {
            200 | 201 => Ok(true),
            405 => Ok(false),
            409 => Err(Error::NotFound {
                path: abs.parent().unwrap_or_default().to_string(),
                detail: Some(format!(
                    "the parent of {abs} does not exist (409); use 'mkdir -p'"
                )),
            }),
            _ => Err(self
                .c
                .failure(resp, &token, abs, "create the directory")
                .await),
        }
    }

    /// Creates `rel` (below the user folder) and every missing folder above it.
    async fn mkcols(&self, home: &RemotePath, rel: &RemotePath) -> Result<bool> {
        let mut created = self.mkcol(home).await?;
        let mut chain = rel.ancestors();
        if !rel.is_root() {
            chain.push(rel.clone());
        }
        for a in chain {
            created = self.mkcol(&home.join(a.as_str())?).await?;
        }
        Ok(created)
    }

    // ----- reads -------------------------------------------------------------------------

    /// Bytes `range` of a file, in pieces of at most [`RANGE_PIECE`].
    async fn ranged(
        &self,
        path: &RemotePath,
        abs: &RemotePath,
        range: Range<u64>,
        size: u64,
        mtime: Option<SystemTime>,
    ) -> Result<Download> {
        let first_end = range.end.min(range.start + RANGE_PIECE);
        let first = if range.start < range.end {
            Some(self.c.piece(abs, range.start, first_end).await?)
        } else {
            None
        };
        let this = self.c.clone();
        let abs2 = abs.clone();
        let end = range.end;
        let rest = futures::stream::unfold(first_end, move |at| {
            let this = this.clone();
            let abs = abs2.clone();
            async move {
                if at >= end {
                    return None;
                }
                let to = end.min(at + RANGE_PIECE);
                match this.piece(&abs, at, to).await {
                    Ok(b) => Some((Ok(b), to)),
                    Err(e) => Some((Err(e), end)),
                }
            }
        });
        let stream: ByteStream = futures::stream::iter(first.map(Ok)).chain(rest).boxed();
        Ok(Download {
            path: path.clone(),
            size: Some(size),
            range: Some(range),
            mtime,
            etag: None,
            checksums: Vec::new(),
            stream,
        })
    }

    /// The whole file through `fetch/`, counted against the listed size.
    async fn fetch(
        &self,
        path: &RemotePath,
        abs: &RemotePath,
        size: u64,
        mtime: Option<SystemTime>,
    ) -> Result<Download> {
        let url = self.c.endpoint("fetch", abs);
        let (resp, token) = self
            .c
            .s
            .send(&url, |c| {
                c.get(url.clone()).header(CONTENT_TYPE, "application/json")
            })
            .await?;
        let status = resp.status().as_u16();
        if status != 200 {
            if status == 500 && abs.name().chars().any(|c| u32::from(c) > 0xFF) {
                return Err(Error::protocol(
                    abs.to_string(),
                    Some(500),
                    "the downloadservice cannot send names with characters outside Latin-1",
                ));
            }
            return Err(self.c.failure(resp, &token, abs, "read").await);
        }
        if content_type(&resp).is_some_and(|c| c.to_ascii_lowercase().contains("text/html")) {
            let body = read_limited(resp, 2048).await;
            return Err(self.c.s.html_instead_of_data(
                &format!("the download of {abs}"),
                &String::from_utf8_lossy(&body),
                &token,
            ));
        }
        // The service streams without Content-Length: the listed size is what to expect.
        let stream = body_stream(
            resp.bytes_stream(),
            abs.clone(),
            url.clone(),
            Some(size),
            self.c.s.idle_timeout,
        )
        .map(|r| {
            r.map_err(|e| match e {
                Error::Integrity { path, message, .. } => Error::Integrity {
                    path,
                    message,
                    hint: Some("the downloadservice answers a missing file or a directory with an HTML page, the same on every attempt; check the path with 'cta-data list' on its parent".into()),
                },
                other => other,
            })
        })
        .boxed();
        Ok(Download {
            path: path.clone(),
            size: Some(size),
            range: Some(0..size),
            mtime,
            etag: None,
            checksums: Vec::new(),
            stream,
        })
    }

    // ----- writes ------------------------------------------------------------------------

    async fn upload(
        &self,
        abs: &RemotePath,
        rel: &RemotePath,
        body: &Upload,
    ) -> Result<PutOutcome> {
        let url = self.c.endpoint("upload", rel);
        let len = body.len();
        let stream = body.open().await?;
        // Sent once: a failed upload is retried whole by the transfer engine.
        let cell = std::sync::Mutex::new(Some(stream));
        let (resp, token) = self
            .c
            .s
            .send(&url, |c| {
                let s = cell
                    .lock()
                    .ok()
                    .and_then(|mut g| g.take())
                    .unwrap_or_else(|| futures::stream::empty().boxed());
                c.post(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, HeaderValue::from(len))
                    .body(reqwest::Body::wrap_stream(s))
            })
            .await?;
        match resp.status().as_u16() {
            200 => {}
            // The service's answer to an overwrite: the file was replaced.
            204 => return self.stored(abs.clone(), len).await,
            405 => {
                return Err(Error::conflict(
                    abs,
                    "a directory is there",
                    "give the file's full path, or end the path with '/'",
                ))
            }
            409 => {
                return Err(Error::NotFound {
                    path: abs.parent().unwrap_or_default().to_string(),
                    detail: Some(format!(
                        "the parent directory of {abs} does not exist (409); 'put' creates it, or use 'mkdir -p'"
                    )),
                })
            }
            413 | 507 => {
                return Err(Error::protocol(abs.to_string(), Some(resp.status().as_u16()), "the storage has no room for this file; contact the data center"))
            }
            _ => return Err(self.c.failure(resp, &token, abs, "upload").await),
        }
        let ctype = content_type(&resp);
        let answer = read_limited(resp, 1 << 16).await;
        if looks_like_html(ctype.as_deref(), &answer) {
            return Err(self.c.s.html_instead_of_data(
                &format!("the upload of {abs}"),
                &String::from_utf8_lossy(&answer),
                &token,
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&answer).map_err(|e| Error::protocol(abs.to_string(), Some(200), format!(
                "the upload answer is not JSON ({e}): '{}'; the file may have been stored: check with 'cta-data stat {}'",
                short_text(&String::from_utf8_lossy(&answer)),
                abs.as_str()
            )))?;
        let Some(landed) = v.get("path").and_then(|p| p.as_str()) else {
            return Err(Error::protocol(abs.to_string(), Some(200), format!(
                    "the upload answer has no 'path', so where the file landed is unknown ({}); it should be at {abs}: check with 'cta-data stat {}'",
                    short_text(&v.to_string()),
                    abs.as_str()
                )));
        };
        let landed = RemotePath::parse(landed).map_err(|e| {
            Error::protocol(
                abs.to_string(),
                Some(200),
                format!("the upload answer names an unusable path: {e}"),
            )
        })?;
        if let Some(w) = v.get("total_written").and_then(|w| w.as_u64()) {
            if w != len {
                return Err(Error::integrity(
                    landed.to_string(),
                    format!("sent {len} bytes but the service wrote {w}; upload the file again"),
                ));
            }
        }
        if landed != *abs {
            tracing::warn!(expected = %abs, landed = %landed, "the service put the file elsewhere than expected");
        }
        self.stored(landed, len).await
    }

    /// Checks that the storage lists `len` bytes at `landed`: the service counts what it
    /// received, not what the storage kept (it streams to dCache without Content-Length).
    async fn stored(&self, landed: RemotePath, len: u64) -> Result<PutOutcome> {
        let listed = match self.stat_abs(&landed, &landed).await {
            Ok(e) => e.size,
            Err(Error::NotFound { .. }) => {
                return Err(Error::integrity(landed.to_string(), format!(
                        "the downloadservice accepted {len} bytes but the storage has no file there; upload it again"
                    )))
            }
            Err(e) => return Err(e),
        };
        if let Some(s) = listed.filter(|&s| s != len) {
            return Err(Error::integrity(landed.to_string(), format!(
                    "sent {len} bytes but the storage lists {s}; upload the file again (with --force)"
                )));
        }
        Ok(PutOutcome {
            path: landed,
            size: len,
            checksums: Vec::new(),
        })
    }
}

/// The error for a path with `..` in it, which the service refuses even inside a name.
fn dots(path: &RemotePath) -> Error {
    Error::InvalidPath {
        path: path.as_str().to_string(),
        reason: "the downloadservice refuses any path containing '..', even inside a name; use the cta profile for it".into(),
    }
}

fn unsupported(operation: &str, how: &str) -> Error {
    Error::Unsupported {
        operation: operation.into(),
        backend: "downloadservice".into(),
        hint: format!(
            "the downloadservice cannot {operation} files or directories; do it on the dCache door with the cta profile: 'cta-data --profile cta {how}' (after 'cta-data --profile cta login')"
        ),
    }
}

#[async_trait]
impl StorageBackend for DownloadService {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: "downloadservice",
            write: true,
            mkdir: true,
            delete: false,
            rename: false,
            ranged_reads: true,
            etags: false,
            checksums: Vec::new(),
            default_jobs: self.jobs,
        }
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        let abs = self.absolute(path).await?;
        self.stat_abs(path, &abs).await
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        // The service answers one JSON array: read whole (it is bounded by the service's
        // own buffering), handed on as a stream like every other listing.
        let abs = self.absolute(dir).await?;
        let items = self.list_items(&abs).await?;
        let itself = Self::itself(&abs, &items);
        let mut out = Vec::new();
        for item in &items {
            if itself.is_some_and(|i| std::ptr::eq(i, item)) {
                continue;
            }
            let Some(p) = &item.path else {
                tracing::warn!(dir = %abs, href = %item.href, "ignoring a listing entry whose href is not a usable path");
                continue;
            };
            if p.parent().as_ref() != Some(&abs) {
                tracing::warn!(dir = %abs, href = %item.href, "ignoring a listing entry that is not a child of the listed directory");
                continue;
            }
            out.push(Self::entry(dir.join(p.name())?, item));
        }
        if itself.is_some_and(|i| !i.is_dir) && out.is_empty() {
            return Err(Error::conflict(
                &abs,
                "it is a file, not a directory",
                "use 'cta-data stat' for a file",
            ));
        }
        Ok(futures::stream::iter(out.into_iter().map(Ok)).boxed())
    }

    async fn get(&self, path: &RemotePath, opts: GetOptions) -> Result<Download> {
        let abs = self.absolute(path).await?;
        // The entry the caller's listing gave saves a `list/<file>` (which the service
        // answers with 500 for some names).
        let e = match opts
            .known
            .clone()
            .filter(|k| k.path == *path && k.size.is_some())
        {
            Some(k) => k,
            None => self.stat_abs(path, &abs).await?,
        };
        if e.is_dir() {
            return Err(Error::usage(
                format!("{abs} is a directory"),
                format!("use 'cta-data get -r {}' for a directory", path.as_str()),
            ));
        }
        let Some(size) = e.size else {
            return Err(Error::protocol(abs.to_string(), Some(200), "the downloadservice lists no size for this file; without it a missing file (which the service answers with an HTML page) cannot be told from data, so nothing was read"));
        };
        if abs.as_str().contains("..") {
            return Err(dots(&abs));
        }
        match opts.range {
            // fetch/ cannot send names outside Latin-1: read them in pieces instead.
            None if abs.name().chars().all(|c| u32::from(c) <= 0xFF) => {
                self.fetch(path, &abs, size, e.mtime).await
            }
            None => self.ranged(path, &abs, 0..size, size, e.mtime).await,
            Some(r) => {
                self.ranged(path, &abs, r.resolve(size), size, e.mtime)
                    .await
            }
        }
    }

    async fn put(&self, path: &RemotePath, body: Upload, opts: PutOptions) -> Result<PutOutcome> {
        let (abs, rel) = self.write_target(path).await?;
        if rel.is_root() {
            return Err(Error::conflict(
                &abs,
                "this is your user folder, a directory",
                "give a file name",
            ));
        }
        if abs.as_str().contains("..") {
            return Err(dots(&abs));
        }
        if !opts.known_absent {
            let existing = match self.stat_abs(&abs, &abs).await {
                Ok(e) => Some(e),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            // The service replaces a file in place (204): no temporary name needed.
            check_put_target(&abs, existing.as_ref(), opts.overwrite)?;
        }
        if opts.create_parents {
            if let Some(parent) = rel.parent().filter(|p| !p.is_root()) {
                let home = self.home().await?;
                self.mkcols(&home, &parent).await?;
            }
        }
        self.upload(&abs, &rel, &body).await
    }

    async fn mkdir(&self, path: &RemotePath, parents: bool) -> Result<()> {
        let (abs, rel) = self.write_target(path).await?;
        let home = self.home().await?;
        if parents {
            if !self.mkcols(&home, &rel).await? {
                // Already there: make sure it is a directory.
                let e = self.stat_abs(&abs, &abs).await?;
                if !e.is_dir() {
                    return Err(Error::conflict(
                        &abs,
                        "a file is there",
                        "choose another name",
                    ));
                }
            }
            return Ok(());
        }
        if self.mkcol(&abs).await? {
            Ok(())
        } else {
            Err(Error::conflict(
                &abs,
                "it already exists",
                "use 'mkdir -p' to accept an existing directory",
            ))
        }
    }

    async fn delete(&self, path: &RemotePath, recursive: bool) -> Result<()> {
        let how = if recursive {
            format!("rm -r {}", path.as_str())
        } else {
            format!("rm {}", path.as_str())
        };
        Err(unsupported("delete", &how))
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath, _overwrite: bool) -> Result<()> {
        Err(unsupported(
            "rename",
            &format!("mv {} {}", from.as_str(), to.as_str()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_folder_names_follow_the_service() {
        assert_eq!(user_folder_name("alice"), "alice");
        assert_eq!(
            user_folder_name("Volodymyr.Savchenko@epfl.ch"),
            "volodymyr_savchenko_epfl_ch"
        );
        assert_eq!(user_folder_name("bob-2024"), "bob__0__");
        assert_eq!(user_folder_name("a10b29"), "a10b__");
        assert_eq!(user_folder_name("Éva"), "_va");
    }

    #[test]
    fn segments_are_encoded() {
        let p = RemotePath::parse("lst/a b/c#d/ε+x").unwrap();
        assert_eq!(encode(&p), "lst/a%20b/c%23d/%CE%B5+x");
        assert_eq!(encode(&RemotePath::root()), "");
    }
}
