//! Small helpers shared by the door and the pool.

use super::{RequestRecord, Side};
use crate::serve::{empty, full, Body};
use http::{header, HeaderValue, Request, Response, StatusCode};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A response with a short text body.
pub(crate) fn text(status: u16, msg: &str) -> Response<Body> {
    let mut resp = Response::new(full(format!("{msg}\n")));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A response with no body and the given status.
pub(crate) fn status_only(status: u16) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

/// An injected failure, with `Retry-After` when asked for.
pub(crate) fn failure(status: u16, retry_after: Option<u64>) -> Response<Body> {
    let mut resp = text(status, "injected failure (dCache double)");
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Sets a header from a string, ignoring values that are not valid header text.
pub(crate) fn set(resp: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// A request header as text.
pub(crate) fn header_str<B>(req: &Request<B>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The log record of a request (status filled in later). Never copies `Authorization`.
pub(crate) fn record_of<B>(side: Side, req: &Request<B>) -> RequestRecord {
    RequestRecord {
        side,
        method: req.method().as_str().to_string(),
        path_and_query: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| req.uri().path().to_string()),
        range: header_str(req, "range"),
        want_digest: header_str(req, "want-digest"),
        expect: header_str(req, "expect"),
        depth: header_str(req, "depth"),
        content_length: header_str(req, "content-length"),
        authorization: req.headers().contains_key(header::AUTHORIZATION),
        status: 0,
    }
}

/// A dCache-like ETag: inode and modification time.
pub(crate) fn etag(meta: &Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("\"{:024X}_{}\"", meta.ino(), mtime)
}

/// The modification time, or the epoch when the platform has none.
pub(crate) fn mtime(meta: &Metadata) -> SystemTime {
    meta.modified().unwrap_or(UNIX_EPOCH)
}

/// Runs blocking filesystem work off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task of the dCache double panicked")
}
