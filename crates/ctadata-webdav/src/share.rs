//! Share links for a WebDAV backend: dCache macaroons, asked for with an authenticated
//! `POST <path>` of `Content-Type: application/macaroon-request` and a JSON body
//! (`{"caveats": [...], "validity": "PT12H"}`), answered with
//! `{"macaroon": "...", "uri": {"targetWithMacaroon": "https://door/path?authz=..."}}`.
//!
//! The answer holds a secret: it is never logged, and no error quotes its body.

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use ctadata_core::credentials::Secret;
use ctadata_core::share::{
    macaroon_expiry, parse_macaroon_answer, ShareLink, ShareOps, ShareRequest,
};
use ctadata_core::{Error, RemotePath, Result};
use futures::StreamExt;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};

use crate::errors::{status_to_error, with_retry_after};
use crate::WebDav;

/// The media type of dCache's macaroon request.
pub(crate) const MACAROON_REQUEST: &str = "application/macaroon-request";

/// The most bytes of an answer read: a macaroon answer is about a kilobyte.
const MAX_ANSWER: usize = 256 * 1024;

/// What to do when the door does not give share links.
const NO_MACAROONS: &str = "check that the profile's url is the dCache WebDAV door itself (not a proxy or a web page in front of it) and that the door has macaroons enabled; ask the data center if it has";

#[async_trait]
impl ShareOps for WebDav {
    async fn share(&self, path: &RemotePath, req: &ShareRequest) -> Result<ShareLink> {
        self.check_addressable(path).await?;
        let mut r = self.req(Method::POST, path, false);
        r.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static(MACAROON_REQUEST));
        r.headers
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        r.body = Some(Bytes::from(req.body().to_string()));
        // A macaroon request is answered where it is asked; a redirect is not followed.
        r.follow = false;
        let resp = self.send(r).await?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            return Err(refused(resp, path).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.contains("html") {
            return Err(Error::protocol(
                path,
                Some(status),
                format!("the door answered the request for a share link with a web page ({content_type}), not a macaroon; {NO_MACAROONS}"),
            ));
        }
        let body = read_capped(resp).await.map_err(|_| {
            Error::transport(
                self.base.url().host_str().unwrap_or("the door").to_string(),
                format!("the answer to the request for a share link of {path} broke off"),
            )
        })?;
        let answer = match parse_macaroon_answer(&body) {
            Ok(a) => a,
            Err(not_json) => {
                let what = if not_json {
                    format!(
                        "is not JSON ({})",
                        if content_type.is_empty() {
                            "no Content-Type"
                        } else {
                            content_type.as_str()
                        }
                    )
                } else {
                    "holds no macaroon".to_string()
                };
                return Err(Error::protocol(
                    path,
                    Some(status),
                    format!(
                        "the door's answer to the request for a share link {what}; {NO_MACAROONS}"
                    ),
                ));
            }
        };
        let macaroon = answer.macaroon.expose();
        let link = match answer
            .target_with_macaroon
            .as_ref()
            .and_then(|s| Url::parse(s.expose()).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
        {
            Some(u) => u,
            None => {
                let mut u = self.base.url_for(path, false);
                u.query_pairs_mut().append_pair("authz", macaroon);
                u
            }
        };
        let expires =
            macaroon_expiry(macaroon).or_else(|| SystemTime::now().checked_add(req.validity));
        tracing::debug!(path = %path, "the door made a share link");
        Ok(ShareLink::new(
            Secret::new(link.as_str()),
            Secret::new(macaroon),
            expires,
            req.caveats(),
        ))
    }
}

/// The error for a refused macaroon request, without the answer's body.
async fn refused(resp: reqwest::Response, path: &RemotePath) -> Error {
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(ctadata_core::retry::parse_retry_after);
    match status {
        403 => Error::PermissionDenied {
            path: path.to_string(),
            message: "the door refused to make a share link (403): your account may not share this path, or the door gives no macaroons; share a path you may read, or ask the data center whether macaroons are enabled".to_string(),
        },
        300..=399 => Error::protocol(
            path,
            Some(status),
            format!("the door redirected the request for a share link; {NO_MACAROONS}"),
        ),
        400 | 405 | 415 | 501 => Error::protocol(
            path,
            Some(status),
            format!("the door did not take the request for a share link; {NO_MACAROONS}"),
        ),
        _ => with_retry_after(
            status_to_error(status, path, "make a share link of", ""),
            retry,
        ),
    }
}

/// The answer's body, at most [`MAX_ANSWER`] bytes.
async fn read_capped(resp: reqwest::Response) -> std::result::Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > MAX_ANSWER {
            break;
        }
    }
    Ok(out)
}
