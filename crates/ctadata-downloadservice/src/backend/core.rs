//! The HTTP core shared by every verb: the session with the service, its endpoints
//! (`list/`, `fetch/`, `upload/`) and the `webdav/` passthrough, one request each.

use std::sync::Arc;

use ctadata_core::credentials::BearerToken;
use ctadata_core::{RemotePath, Result};
use ctadata_webdav::urls::{Base, SEGMENT};
use percent_encoding::utf8_percent_encode;
use reqwest::{Method, RequestBuilder, Response, Url};

use crate::client::Session;

/// The service session and the passthrough's base, shared with the streams of reads.
#[derive(Debug, Clone)]
pub(super) struct Core {
    pub(super) s: Arc<Session>,
    pub(super) webdav: Base,
}

/// A path as the service's endpoints take it: each segment percent-encoded.
fn encode(p: &RemotePath) -> String {
    p.segments()
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

impl Core {
    /// The URL of `p` below one of the service's endpoints (`list`, `fetch`, `upload`).
    pub(super) fn endpoint(&self, endpoint: &str, p: &RemotePath) -> Url {
        self.s.url(endpoint, &encode(p))
    }

    /// Sends `method` for `abs` through the `webdav/` passthrough (`collection` adds the
    /// trailing `/`), with the headers and body `add` puts on; every status comes back.
    pub(super) async fn passthrough(
        &self,
        method: &'static str,
        abs: &RemotePath,
        collection: bool,
        add: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<(Response, BearerToken, Url)> {
        let url = self.webdav.url_for(abs, collection);
        let method = Method::from_bytes(method.as_bytes()).expect("valid method");
        let (resp, token) = self
            .s
            .send(&url, |c| add(c.request(method.clone(), url.clone())))
            .await?;
        Ok((resp, token, url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        let p = RemotePath::parse("lst/a b/c#d/ε+x").unwrap();
        assert_eq!(encode(&p), "lst/a%20b/c%23d/%CE%B5+x");
        assert_eq!(encode(&RemotePath::root()), "");
    }
}
