//! PUT: door then pool with a real `Expect: 100-continue`, the server's checksum compared
//! with what was sent, and replacement by upload-then-move so a failed upload leaves the
//! old file.

use std::sync::atomic::Ordering;

use ctadata_core::backend::check_put_target;
use ctadata_core::{
    Checksum, ChecksumAlgorithm, Error, PutOptions, PutOutcome, RemotePath, Result, Upload,
};
use reqwest::header::HeaderValue;
use reqwest::Method;

use crate::backend::WebDav;
use crate::digest::{parse_digest, WANT_DIGEST};
use crate::errors::{status_error, status_to_error, with_retry_after};
use crate::rawput::{self, RawOutcome, RawPut};
use crate::send::MAX_REDIRECTS;
use crate::urls::redact;
use ctadata_core::retry::parse_retry_after;

impl WebDav {
    pub(crate) async fn op_put(
        &self,
        path: &RemotePath,
        body: Upload,
        opts: PutOptions,
    ) -> Result<PutOutcome> {
        self.check_addressable(path).await?;
        if path.is_root() {
            return Err(Error::conflict(
                path,
                "the root is a directory",
                "give a file name",
            ));
        }
        if opts.create_parents {
            if let Some(parent) = path.parent() {
                self.op_mkdir(&parent, true).await?;
            }
        }
        let existing = if opts.known_absent {
            None
        } else {
            self.exists(path).await?
        };
        let replace = check_put_target(path, existing.as_ref(), opts.overwrite)?;
        let upload_path = if replace {
            // Replace by upload-then-move, so a failed upload leaves the old file.
            path.parent().unwrap_or_default().join(&format!(
                ".{}.cta-data-upload-{:08x}",
                path.name(),
                fastrand::u32(..)
            ))?
        } else {
            path.clone()
        };
        let result = self.put_verified(path, &upload_path, &body, &opts).await;
        match &result {
            Ok(_) => {}
            // A bad copy, a temporary copy, or what a broken upload left of a new file: none
            // may stay (dCache files are write-once, so a leftover would block the retry).
            Err(Error::Integrity { .. }) => self.delete_quietly(&upload_path).await,
            Err(_) if upload_path != *path => self.delete_quietly(&upload_path).await,
            Err(e) if e.is_temporary() => self.delete_quietly(&upload_path).await,
            Err(_) => {}
        }
        result
    }

    async fn put_verified(
        &self,
        path: &RemotePath,
        upload_path: &RemotePath,
        body: &Upload,
        opts: &PutOptions,
    ) -> Result<PutOutcome> {
        let (bytes, sent_sum, answer_sums) = match self.put_once(upload_path, body).await {
            Ok(x) => x,
            // Servers disagree on how to say "no parent" (409, nginx 500): ask.
            Err(e @ (Error::Protocol { .. } | Error::NotFound { .. })) => {
                if let Some(parent) = path.parent() {
                    if self.exists(&parent).await?.is_none() {
                        return Err(Error::NotFound {
                            path: parent.to_string(),
                            detail: Some(format!("the parent directory of {path} does not exist; 'put' creates it, or use 'mkdir -p'")),
                        });
                    }
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        // The server's checksum of what it stored: from the PUT's answer when it sent
        // one, else from a HEAD (skipped once a server has shown it never gives one).
        let sums = if Checksum::find(&answer_sums, &ChecksumAlgorithm::Adler32).is_some() {
            answer_sums
        } else if self.no_digest.load(Ordering::Relaxed) {
            Vec::new()
        } else {
            let (len, sums) = self.head_digest(upload_path).await?;
            if let Some(l) = len.filter(|&l| l != bytes && l != 0) {
                return Err(Error::integrity(
                    path,
                    format!(
                        "sent {bytes} bytes but the server stored {l}; the remote copy was removed"
                    ),
                ));
            }
            if sums.is_empty() {
                tracing::debug!(
                    "the server gives no Digest: later uploads rely on its status and length"
                );
                self.no_digest.store(true, Ordering::Relaxed);
            }
            sums
        };
        let mut verified = Vec::new();
        if let Some(server) = Checksum::find(&sums, &ChecksumAlgorithm::Adler32) {
            if server.value != sent_sum.value {
                return Err(Error::integrity(
                    path,
                    format!("adler32 of what was sent is {} but the server stored {}; the remote copy was removed", sent_sum.value, server.value),
                ));
            }
            verified.push(sent_sum.clone());
        }
        if let Some(want) = &opts.checksum {
            if want.algorithm == ChecksumAlgorithm::Adler32 && want.value != sent_sum.value {
                return Err(Error::integrity(
                    path,
                    format!(
                        "adler32 {} differs from the expected {}",
                        sent_sum.value, want.value
                    ),
                ));
            }
        }
        if upload_path != path {
            self.op_rename(upload_path, path, true).await?;
        }
        Ok(PutOutcome {
            path: path.clone(),
            size: bytes,
            checksums: verified,
        })
    }

    pub(crate) async fn head_digest(
        &self,
        path: &RemotePath,
    ) -> Result<(Option<u64>, Vec<Checksum>)> {
        let mut r = self.req(Method::HEAD, path, false);
        r.headers
            .insert("want-digest", HeaderValue::from_static(WANT_DIGEST));
        let resp = self.send(r).await?;
        if !resp.status().is_success() {
            return Err(status_error(resp, path, "check").await);
        }
        let len = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let sums = resp
            .headers()
            .get_all("digest")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_digest)
            .collect();
        Ok((len, sums))
    }

    pub(crate) async fn delete_quietly(&self, path: &RemotePath) {
        let r = self.req(Method::DELETE, path, false);
        match self.send(r).await {
            Ok(resp) if resp.status().is_success() => {
                tracing::info!(path = %path, "removed the failed upload")
            }
            Ok(resp) if resp.status().as_u16() == 404 => {}
            Ok(resp) => {
                tracing::warn!(path = %path, status = resp.status().as_u16(), "could not remove the failed upload")
            }
            Err(e) => tracing::warn!(path = %path, "could not remove the failed upload: {e}"),
        }
    }

    /// One PUT, door then pool: the body goes only where the server says, once. Returns
    /// the bytes sent, their adler32 and the checksums the answer carried.
    async fn put_once(
        &self,
        path: &RemotePath,
        body: &Upload,
    ) -> Result<(u64, Checksum, Vec<Checksum>)> {
        let mut url = self.base.url_for(path, false);
        let mut token = self.token().await?;
        let mut refreshed = false;
        let mut hops = 0;
        loop {
            let mut headers = vec![("Want-Digest".to_string(), WANT_DIGEST.to_string())];
            let same_origin = self.base.same_origin(&url);
            if let (true, Some(t)) = (same_origin, &token) {
                headers.push((
                    "Authorization".into(),
                    format!("Bearer {}", t.token.expose()),
                ));
            }
            tracing::debug!(url = %redact(&url), "PUT");
            let outcome = rawput::put(RawPut {
                url: &url,
                headers,
                // The door is asked to wait; a pool location takes the body at once.
                expect_continue: same_origin,
                body,
                continue_timeout: self.cfg.continue_timeout,
                connect_timeout: self.cfg.connect_timeout,
                io_timeout: self.cfg.read_timeout,
                tls: self.tls.clone(),
                pool: &self.put_pool,
            })
            .await?;
            let answer = match outcome {
                RawOutcome::Sent {
                    answer,
                    bytes,
                    adler32,
                } if (200..300).contains(&answer.status) => {
                    let sums = answer
                        .headers
                        .iter()
                        .filter(|(k, _)| k == "digest")
                        .flat_map(|(_, v)| parse_digest(v))
                        .collect();
                    return Ok((bytes, adler32, sums));
                }
                RawOutcome::Sent { answer, .. } | RawOutcome::Answered(answer) => answer,
            };
            match answer.status {
                301 | 302 | 303 | 307 | 308 if hops < MAX_REDIRECTS => {
                    let loc = answer.header("location").ok_or_else(|| {
                        Error::protocol(path, Some(answer.status), "a redirect without Location")
                    })?;
                    url = url.join(loc).map_err(|e| {
                        Error::protocol(
                            path,
                            Some(answer.status),
                            format!("a redirect to an invalid location: {e}"),
                        )
                    })?;
                    tracing::debug!(to = %redact(&url), "upload redirected");
                    hops += 1;
                }
                401 if !refreshed => {
                    refreshed = true;
                    match self.refreshed(&token).await? {
                        Some(f) => {
                            token = Some(f);
                            url = self.base.url_for(path, false);
                        }
                        None => return Err(self.refused(&token, path, 401)),
                    }
                }
                401 => return Err(self.refused(&token, path, 401)),
                s => {
                    let after = answer.header("retry-after").and_then(parse_retry_after);
                    return Err(with_retry_after(
                        status_to_error(s, path, "upload", &answer.excerpt),
                        after,
                    ));
                }
            }
        }
    }
}
