//! Reads: whole files streamed through `fetch/` (counted against the listed size), byte
//! ranges (and names `fetch/` cannot send) through the `webdav/` passthrough in bounded
//! pieces, each checked for its length.

use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use ctadata_core::{ByteRange, ByteStream, Download, Error, GetOptions, RemotePath, Result};
use ctadata_webdav::body::{body_stream, delivered_range};
use ctadata_webdav::errors::excerpt;
use futures::StreamExt;
use reqwest::header::{CONTENT_TYPE, RANGE};

use super::core::Core;
use super::errors::dots;
use super::DownloadService;
use crate::client::content_type;

/// The largest piece asked of the `webdav` passthrough at once (it buffers whole answers).
pub const RANGE_PIECE: u64 = 8 << 20;

/// Why a wrong byte count from the passthrough repeats on every attempt.
const REWRITES: &str = "retrying cannot help: the downloadservice rewrites some byte sequences in every answer it passes through, file contents included, so this file cannot be read through it; read it with the cta profile (direct dCache): 'cta-data --profile cta get ...'";

impl Core {
    /// One piece `start..end` of a file through the passthrough, checked for its length.
    async fn piece(&self, abs: &RemotePath, start: u64, end: u64) -> Result<Bytes> {
        let range = format!("bytes={}-{}", start, end - 1);
        let (resp, token, url) = self
            .passthrough("GET", abs, false, |rb| {
                rb.header(RANGE, range.clone())
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

impl DownloadService {
    /// A file or a byte range of it; `path` as the caller gave it.
    pub(super) async fn op_get(&self, path: &RemotePath, opts: GetOptions) -> Result<Download> {
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
            return Err(self.c.s.html_instead_of_data(
                &format!("the download of {abs}"),
                &excerpt(resp).await,
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
}
