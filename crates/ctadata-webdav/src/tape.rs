//! The WLCG Tape REST API for a WebDAV backend (dCache's frontend): discovery through the
//! door's `/.well-known/wlcg-tape-rest-api`, then stage, status, cancel, release and
//! archiveinfo (see [`ctadata_core::tape`] for the shapes).
//!
//! Paths sent to the API are the storage's namespace paths: the profile URL's own path
//! followed by the remote path (`https://door/pnfs/cta/` + `lst/a` is `/pnfs/cta/lst/a`).
//! The token goes to the tape endpoint only when it is on the door's host over https (or
//! the door's own origin): dCache serves the API on its frontend, another port of the
//! same host. No retries here: [`ctadata_core::retry::Retrying`] owns them.

use std::time::Duration;

use async_trait::async_trait;
use ctadata_core::credentials::BearerToken;
use ctadata_core::retry::parse_retry_after;
use ctadata_core::tape::{
    iso8601, ArchiveInfo, ArchiveLocality, StageState, StageStatus, StagedFile, TapeEndpoint,
    TapeOps,
};
use ctadata_core::{Error, RemotePath, Result};
use percent_encoding::{percent_decode_str, utf8_percent_encode};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};

use crate::errors::{excerpt, status_to_error};
use crate::send::show_headers;
use crate::urls::{redact, SEGMENT};
use crate::WebDav;

/// Where discovery is, on the door's origin.
const WELL_KNOWN: &str = "/.well-known/wlcg-tape-rest-api";

/// The largest answer read from the tape API (a status of a very big request).
const MAX_ANSWER: usize = 64 << 20;

impl WebDav {
    /// The namespace path the tape API knows `p` by.
    fn tape_path(&self, p: &RemotePath) -> String {
        let prefix = percent_decode_str(self.base.url().path()).decode_utf8_lossy();
        let prefix = if prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        format!("{prefix}{}", p.as_str())
    }

    /// The remote path of a namespace path from the tape API (outside the profile's URL:
    /// taken as it is).
    fn remote_of_tape_path(&self, s: &str) -> RemotePath {
        let prefix = percent_decode_str(self.base.url().path()).decode_utf8_lossy();
        let rest = s
            .strip_prefix(prefix.as_ref())
            .or_else(|| s.strip_prefix(prefix.trim_end_matches('/')))
            .unwrap_or(s);
        RemotePath::parse(rest)
            .or_else(|_| RemotePath::parse(s.trim_start_matches('/')))
            .unwrap_or_default()
    }

    /// The token may go to `url`: the door's origin, or its host over https (the frontend).
    fn tape_trusts(&self, url: &Url) -> bool {
        self.base.same_origin(url)
            || (url.scheme() == "https"
                && self.base.url().scheme() == "https"
                && url.host_str() == self.base.url().host_str())
    }

    /// One request to the tape API (or its discovery), with the token where it may go and
    /// one refresh on `401`. Redirects are not followed.
    async fn tape_call(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        about: &RemotePath,
    ) -> Result<reqwest::Response> {
        let mut token = self.token().await?;
        let resp = self.tape_once(&method, url, body, &token).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        if token.is_some() && !self.tape_trusts(url) {
            // The credential was kept back on purpose: say so, not that it was refused.
            return Err(Error::Auth {
                problem: ctadata_core::AuthProblem::Refused,
                message: format!(
                    "the tape endpoint {} wants credentials, and the token is sent only to the door's host over https",
                    redact(url)
                ),
                hint: "ask the site to publish the tape endpoint over https on the door's host; no token was sent to it".into(),
            });
        }
        if let Some(fresh) = self.refreshed(&token).await? {
            token = Some(fresh);
            let resp = self.tape_once(&method, url, body, &token).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
        }
        Err(self.refused(&token, about, 401))
    }

    async fn tape_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        token: &Option<BearerToken>,
    ) -> Result<reqwest::Response> {
        let mut rb = self
            .http
            .request(method.clone(), url.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if self.tape_trusts(url) {
            if let Some(h) = Self::auth_header(token) {
                rb = rb.header(AUTHORIZATION, h);
            }
        }
        if let Some(b) = body {
            rb = rb
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(b.to_string());
        }
        let request = rb.build().map_err(|e| self.transport(url, e))?;
        tracing::debug!(method = %method, url = %redact(url), headers = %show_headers(request.headers()), "tape request");
        let resp = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.transport(url, e))?;
        tracing::debug!(method = %method, url = %redact(url), status = resp.status().as_u16(), headers = %show_headers(resp.headers()), "tape answer");
        Ok(resp)
    }

    /// The JSON body of a successful answer.
    async fn tape_json(&self, resp: reqwest::Response, about: &RemotePath) -> Result<Value> {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| {
            Error::transport(
                about.to_string(),
                format!("the tape API's answer broke off: {e}"),
            )
        })?;
        if bytes.len() > MAX_ANSWER {
            return Err(Error::protocol(
                about,
                Some(status),
                "the tape API's answer is too large",
            ));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::protocol(
                about,
                Some(status),
                format!(
                    "the tape API answered something that is not JSON ({e}): {}",
                    crate::errors::short_text(&String::from_utf8_lossy(&bytes))
                ),
            )
        })
    }

    /// The error for an unexpected answer of the tape API, with the server's words (the
    /// spec's problem details: `title`, `detail`).
    async fn tape_error(&self, resp: reqwest::Response, about: &RemotePath, what: &str) -> Error {
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = excerpt(resp).await;
        let words = problem_words(&text).unwrap_or(text);
        crate::errors::with_retry_after(status_to_error(status, about, what, &words), retry)
    }

    /// `{endpoint}/{rest}`.
    async fn tape_url(&self, rest: &str) -> Result<Url> {
        let ep = TapeOps::endpoint(self).await?;
        let s = format!("{}/{rest}", ep.uri.trim_end_matches('/'));
        Url::parse(&s).map_err(|e| {
            Error::protocol(
                RemotePath::root(),
                None,
                format!("the tape endpoint gives an invalid URL: {e}"),
            )
        })
    }

    async fn discover(&self) -> Result<TapeEndpoint> {
        let root = RemotePath::root();
        let url = self
            .base
            .url()
            .join(WELL_KNOWN)
            .map_err(|e| Error::internal("the discovery URL").with_source(e))?;
        let resp = self.tape_call(Method::GET, &url, None, &root).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            return Err(no_tape_api(
                &url,
                &format!("{url} answered {}", status.as_u16()),
            ));
        }
        if !status.is_success() {
            return Err(self
                .tape_error(resp, &root, "discover the tape REST API")
                .await);
        }
        let doc = self
            .tape_json(resp, &root)
            .await
            .map_err(|e| no_tape_api(&url, &format!("its discovery document is not JSON ({e})")))?;
        let sitename = doc["sitename"].as_str().map(str::to_string);
        let endpoints = doc["endpoints"].as_array().cloned().unwrap_or_default();
        let chosen = endpoints
            .iter()
            .find(|e| e["version"].as_str().is_some_and(|v| v.trim() == "v1"))
            .or_else(|| {
                endpoints
                    .iter()
                    .find(|e| e["version"].as_str().is_some_and(|v| v.starts_with("v1")))
            })
            .ok_or_else(|| {
                let versions: Vec<&str> = endpoints
                    .iter()
                    .filter_map(|e| e["version"].as_str())
                    .collect();
                no_tape_api(
                    &url,
                    &format!(
                        "its discovery document offers no v1 endpoint (versions: {})",
                        if versions.is_empty() {
                            "none".to_string()
                        } else {
                            versions.join(", ")
                        }
                    ),
                )
            })?;
        let uri = chosen["uri"].as_str().unwrap_or_default();
        let uri = url.join(uri).map_err(|e| {
            no_tape_api(
                &url,
                &format!("its endpoint URI '{uri}' is not a URL ({e})"),
            )
        })?;
        if uri.scheme() == "http" && self.base.url().scheme() == "https" {
            return Err(Error::config(
                format!(
                    "the tape endpoint {} is plain http while the door is https",
                    redact(&uri)
                ),
                "ask the site to publish an https tape endpoint",
            ));
        }
        tracing::info!(endpoint = %redact(&uri), "tape REST API found");
        Ok(TapeEndpoint {
            uri: uri.to_string(),
            version: chosen["version"].as_str().unwrap_or("v1").to_string(),
            sitename,
        })
    }

    /// The paths of every file of request `id`, when `paths` is empty.
    async fn paths_or_all(&self, id: &str, paths: &[RemotePath]) -> Result<Vec<RemotePath>> {
        if !paths.is_empty() {
            return Ok(paths.to_vec());
        }
        Ok(TapeOps::status(self, id)
            .await?
            .files
            .into_iter()
            .map(|f| f.path)
            .collect())
    }

    /// `POST {endpoint}/{rest}` with `{"paths": [...]}` (cancel, release).
    async fn post_paths(
        &self,
        rest: &str,
        id: &str,
        paths: &[RemotePath],
        what: &str,
    ) -> Result<()> {
        let about = RemotePath::root();
        let paths = self.paths_or_all(id, paths).await?;
        let url = self.tape_url(rest).await?;
        let body = json!({"paths": paths.iter().map(|p| self.tape_path(p)).collect::<Vec<_>>()});
        let resp = self
            .tape_call(Method::POST, &url, Some(&body), &about)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(unknown_request(id));
        }
        if !resp.status().is_success() {
            return Err(self.tape_error(resp, &about, what).await);
        }
        Ok(())
    }
}

/// The words of an RFC 7807 problem (`title: detail`), when the text is one.
fn problem_words(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let title = v["title"].as_str();
    let detail = v["detail"].as_str();
    match (title, detail) {
        (Some(t), Some(d)) => Some(format!("{t}: {d}")),
        (Some(t), None) => Some(t.to_string()),
        (None, Some(d)) => Some(d.to_string()),
        _ => None,
    }
}

fn no_tape_api(url: &Url, why: &str) -> Error {
    let origin = url.origin().ascii_serialization();
    Error::Tape {
        path: origin.clone(),
        message: format!("this storage has no tape REST API: {why}"),
        hint: format!(
            "{origin} publishes no WLCG Tape REST API ({WELL_KNOWN}); staging needs a dCache door with tape behind it (the cta profile), or ask the site"
        ),
    }
}

fn unknown_request(id: &str) -> Error {
    Error::Tape {
        path: id.to_string(),
        message: format!("the storage knows no stage request '{id}'"),
        hint: "check the id that 'cta-data stage' printed; the storage forgets requests some time after they end".into(),
    }
}

fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

#[async_trait]
impl TapeOps for WebDav {
    async fn endpoint(&self) -> Result<TapeEndpoint> {
        self.tape_endpoint
            .get_or_try_init(|| self.discover())
            .await
            .cloned()
    }

    async fn stage(&self, paths: &[RemotePath], pin: Option<Duration>) -> Result<String> {
        let about = paths.first().cloned().unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::usage("nothing to stage", "name at least one file"));
        }
        let url = self.tape_url("stage").await?;
        let files: Vec<Value> = paths
            .iter()
            .map(|p| {
                let mut f = json!({"path": self.tape_path(p)});
                if let Some(d) = pin {
                    f["diskLifetime"] = iso8601(d).into();
                }
                f
            })
            .collect();
        let body = json!({"files": files});
        let resp = self
            .tape_call(Method::POST, &url, Some(&body), &about)
            .await?;
        if !resp.status().is_success() {
            return Err(self.tape_error(resp, &about, "stage").await);
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let doc = self.tape_json(resp, &about).await?;
        let id = doc["requestId"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                location.and_then(|l| {
                    l.trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .map(|s| percent_decode_str(s).decode_utf8_lossy().to_string())
                })
            })
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::protocol(
                    &about,
                    Some(201),
                    "the stage request was accepted without a requestId",
                )
            })?;
        tracing::info!(request = %id, files = paths.len(), "stage request made");
        Ok(id)
    }

    async fn status(&self, id: &str) -> Result<StageStatus> {
        let about = RemotePath::root();
        let url = self.tape_url(&format!("stage/{}", segment(id))).await?;
        let resp = self.tape_call(Method::GET, &url, None, &about).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(unknown_request(id));
        }
        if !resp.status().is_success() {
            return Err(self
                .tape_error(resp, &about, "read the stage request")
                .await);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let doc = self.tape_json(resp, &about).await?;
        let files = doc["files"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .map(|f| StagedFile {
                        path: self.remote_of_tape_path(f["path"].as_str().unwrap_or_default()),
                        state: StageState::parse(f["state"].as_str().unwrap_or("UNKNOWN")),
                        on_disk: f["onDisk"].as_bool(),
                        error: f["error"].as_str().map(str::to_string),
                        started_at: int(&f["startedAt"]),
                        finished_at: int(&f["finishedAt"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(StageStatus {
            id: doc["id"].as_str().unwrap_or(id).to_string(),
            created_at: int(&doc["createdAt"]),
            started_at: int(&doc["startedAt"]),
            completed_at: int(&doc["completedAt"]),
            files,
            retry_after,
        })
    }

    async fn cancel(&self, id: &str, paths: &[RemotePath]) -> Result<()> {
        self.post_paths(
            &format!("stage/{}/cancel", segment(id)),
            id,
            paths,
            "cancel",
        )
        .await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let about = RemotePath::root();
        let url = self.tape_url(&format!("stage/{}", segment(id))).await?;
        let resp = self.tape_call(Method::DELETE, &url, None, &about).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(unknown_request(id));
        }
        if !resp.status().is_success() {
            return Err(self
                .tape_error(resp, &about, "delete the stage request")
                .await);
        }
        Ok(())
    }

    async fn release(&self, id: &str, paths: &[RemotePath]) -> Result<()> {
        self.post_paths(&format!("release/{}", segment(id)), id, paths, "release")
            .await
    }

    async fn archive_info(&self, paths: &[RemotePath]) -> Result<Vec<ArchiveInfo>> {
        let about = paths.first().cloned().unwrap_or_default();
        let url = self.tape_url("archiveinfo").await?;
        let body = json!({"paths": paths.iter().map(|p| self.tape_path(p)).collect::<Vec<_>>()});
        let resp = self
            .tape_call(Method::POST, &url, Some(&body), &about)
            .await?;
        if !resp.status().is_success() {
            return Err(self
                .tape_error(resp, &about, "read the archive information")
                .await);
        }
        let doc = self.tape_json(resp, &about).await?;
        let items = doc.as_array().cloned().unwrap_or_default();
        Ok(items
            .iter()
            .map(|i| ArchiveInfo {
                path: self.remote_of_tape_path(i["path"].as_str().unwrap_or_default()),
                locality: i["locality"].as_str().map(ArchiveLocality::parse),
                error: i["error"].as_str().map(str::to_string),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_details_give_the_servers_words() {
        assert_eq!(
            problem_words(r#"{"title":"Bad request","status":400,"detail":"no such file"}"#),
            Some("Bad request: no such file".into())
        );
        assert_eq!(problem_words("<html>oops</html>"), None);
    }

    #[test]
    fn tape_paths_carry_the_urls_path() {
        let cfg =
            crate::WebDavConfig::new("https://door:2880/pnfs/cta", "dcache", crate::Auth::None);
        let w = WebDav::new(cfg).unwrap();
        let p = RemotePath::parse("lst/a b/é.h5").unwrap();
        assert_eq!(w.tape_path(&p), "/pnfs/cta/lst/a b/é.h5");
        assert_eq!(w.remote_of_tape_path("/pnfs/cta/lst/a b/é.h5"), p);
        assert!(w.tape_trusts(&Url::parse("https://door:3880/api/v1/tape").unwrap()));
        assert!(!w.tape_trusts(&Url::parse("https://elsewhere:3880/api").unwrap()));
        assert!(!w.tape_trusts(&Url::parse("http://door:3880/api").unwrap()));
    }
}
