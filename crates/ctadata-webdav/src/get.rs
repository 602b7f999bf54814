//! GET: a whole file or a byte range, with the server's checksums when asked.

use ctadata_core::{ChecksumAlgorithm, Download, Error, GetOptions, RemotePath, Result};
use reqwest::header::HeaderValue;
use reqwest::Method;

use crate::backend::WebDav;
use crate::body::{checked_body, delivered_range};
use crate::digest::{parse_digest, WANT_DIGEST};
use crate::errors::status_error;

/// The algorithms [`WANT_DIGEST`] asks for.
const WANTED: [ChecksumAlgorithm; 2] = [ChecksumAlgorithm::Adler32, ChecksumAlgorithm::Md5];

impl WebDav {
    pub(crate) async fn op_get(&self, path: &RemotePath, opts: GetOptions) -> Result<Download> {
        self.check_addressable(path).await?;
        // ---- mount (issue 19): the pool URL of an earlier read of this open file ----
        // dCache keeps a read mover (and its URL) alive while a connection that used it is
        // open: a later range goes straight to the pool, one round trip. Any failure there
        // (the mover ended: the pool answers an error, or the connection is gone) forgets
        // the URL and asks the door again.
        if let Some(session) = &opts.session {
            self.check_credential()?;
            if let Some(pool) = session.get().and_then(|u| url::Url::parse(&u).ok()) {
                let mut r = self.req(Method::GET, path, false);
                r.url = pool;
                r.follow = false;
                match self.get_at(path, r, &opts).await {
                    Ok(d) => return Ok(d),
                    Err(e) => {
                        session.set(None);
                        tracing::debug!(
                            "{path}: the pool's URL no longer serves ({e}); asking the door again"
                        );
                    }
                }
            }
        }
        let r = self.req(Method::GET, path, false);
        self.get_at(path, r, &opts).await
    }

    /// One GET (`r`'s URL: the door, or a pool remembered in the read session).
    async fn get_at(
        &self,
        path: &RemotePath,
        mut r: crate::send::Req<'_>,
        opts: &GetOptions,
    ) -> Result<Download> {
        let at_pool = !r.follow;
        if opts.want_checksums {
            r.headers
                .insert("want-digest", HeaderValue::from_static(WANT_DIGEST));
        }
        if let Some(range) = opts.range {
            let v = HeaderValue::from_str(&range.to_http_header())
                .map_err(|e| Error::internal("a Range header").with_source(e))?;
            r.headers.insert(reqwest::header::RANGE, v);
        }
        if let Some(tag) = &opts.if_match {
            if let Ok(v) = HeaderValue::from_str(tag) {
                r.headers.insert(reqwest::header::IF_MATCH, v);
            }
        }
        let resp = if at_pool {
            // No token: the pool's URL carries the transfer's own authorisation.
            self.send_following(&r, &None).await?
        } else {
            self.send(r).await?
        };
        let status = resp.status().as_u16();
        if let Some(session) = &opts.session {
            if !at_pool && (status == 200 || status == 206) && !self.base.same_origin(resp.url()) {
                session.set(Some(resp.url().to_string()));
            }
        }
        match status {
            200 | 206 => {}
            412 => {
                return Err(Error::conflict(
                    path,
                    "the file changed on the server since the transfer began",
                    "rerun to start it again",
                ))
            }
            _ => return Err(status_error(resp, path, "read").await),
        }
        let h = resp.headers();
        let (size, range) = delivered_range(status, h, opts.range, path)?;
        // Only a digest that was asked for counts, of an algorithm asked for: some servers
        // send the last one they computed, possibly of another file. (One asked for may
        // still be such a leftover: the download checks a mismatch against the file's own.)
        let checksums = if opts.want_checksums {
            h.get_all("digest")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(parse_digest)
                .filter(|c| WANTED.contains(&c.algorithm))
                .collect()
        } else {
            Vec::new()
        };
        let text = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let etag = text("etag");
        let mtime = text("last-modified").and_then(|v| httpdate::parse_http_date(&v).ok());
        let expected = range.as_ref().map(|r| r.end - r.start);
        let stream = checked_body(resp, path, expected, self.cfg.idle_timeout);
        Ok(Download {
            path: path.clone(),
            size,
            range,
            mtime,
            etag,
            checksums,
            stream,
        })
    }
}
