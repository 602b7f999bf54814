//! The pool node: serves and receives file data for single-use redirect URLs.

use super::door::{check_put_target, digest_header, UPLOAD_TMP_PREFIX};
use super::paths::DPath;
use super::respond::{etag, failure, header_str, mtime, record_of, set, status_only, text};
use super::{lock, Shared, Side};
use crate::checksum::{self, choose_digest, DigestAlgo, Hasher};
use crate::serve::{empty, Body, Io};
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::io::{ErrorKind, SeekFrom};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Serves one pool connection (kept alive between requests, as hyper does by default).
pub(super) async fn serve_connection(shared: Arc<Shared>, io: Box<dyn Io>) {
    shared
        .counters
        .pool_connections
        .fetch_add(1, Ordering::Relaxed);
    // Requests served on this connection, and when the last one ended (for the idle close).
    let served = Arc::new(std::sync::Mutex::new((
        0usize,
        0usize,
        std::time::Instant::now(),
    )));
    let idle_close = shared.faults().pool_idle_close;
    let state = served.clone();
    // mount (issue 19): the read tickets this connection opened, released when it closes.
    let _opened = OpenedTickets {
        shared: shared.clone(),
        uuids: Arc::new(std::sync::Mutex::new(Vec::new())),
    };
    let conn_uuids = _opened.uuids.clone();
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        let state = state.clone();
        let conn_uuids = conn_uuids.clone();
        async move {
            {
                let mut s = lock(&state);
                let mut faults = shared.faults();
                if s.0 > 0 && faults.drop_reused_pool_requests > 0 {
                    faults.drop_reused_pool_requests -= 1;
                    return Err(std::io::Error::other("dropped by the dCache double"));
                }
                s.0 += 1;
                s.1 += 1;
            }
            let resp = handle(shared, req, &conn_uuids).await;
            let mut s = lock(&state);
            s.1 -= 1;
            s.2 = std::time::Instant::now();
            Ok::<_, std::io::Error>(resp)
        }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let Some(after) = idle_close else {
        let _ = conn.await;
        return;
    };
    let idle = async {
        loop {
            tokio::time::sleep(after / 4).await;
            let s = lock(&served);
            if s.1 == 0 && s.2.elapsed() >= after {
                return;
            }
        }
    };
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = idle => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

// mount (issue 19)
/// The read tickets one connection opened; dropping it (the connection closed) releases them,
/// and a ticket no open connection holds any more is gone, as dCache's mover ends.
struct OpenedTickets {
    shared: Arc<Shared>,
    uuids: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for OpenedTickets {
    fn drop(&mut self) {
        let uuids = std::mem::take(&mut *lock(&self.uuids));
        let mut tickets = lock(&self.shared.tickets);
        for u in uuids {
            let gone = tickets.get_mut(&u).is_some_and(|t| {
                t.open = t.open.saturating_sub(1);
                t.open == 0
            });
            if gone {
                tickets.remove(&u);
            }
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    conn_uuids: &std::sync::Mutex<Vec<String>>,
) -> Response<Body> {
    let c = &shared.counters;
    c.pool_requests.fetch_add(1, Ordering::Relaxed);
    if req.headers().contains_key(header::AUTHORIZATION) {
        c.pool_auth.fetch_add(1, Ordering::Relaxed);
    }
    let mut rec = record_of(Side::Pool, &req);
    let is_put = req.method() == Method::PUT;
    let mut consumed = false;
    let mut resp = dispatch(&shared, req, &mut consumed, conn_uuids).await;
    if is_put && !consumed {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    rec.status = resp.status().as_u16();
    shared.record(rec);
    resp
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

async fn dispatch(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    consumed: &mut bool,
    conn_uuids: &std::sync::Mutex<Vec<String>>,
) -> Response<Body> {
    if let Some((status, retry_after)) = shared.take_failure(Side::Pool) {
        return failure(status, retry_after);
    }
    let write = match *req.method() {
        Method::GET | Method::HEAD => false,
        Method::PUT => true,
        _ => return text(405, "Method not allowed on a pool"),
    };
    let path = match DPath::from_request(req.uri().path()) {
        Ok(p) => p,
        Err(e) => return text(400, e),
    };
    let uuid = req
        .uri()
        .query()
        .and_then(|q| query_param(q, "dcache-http-uuid"));
    // mount (issue 19): a write ticket serves one request; a read ticket is opened by this
    // connection (once) and stays valid while any connection that opened it is open.
    let valid = uuid.is_some_and(|u| {
        let mut tickets = lock(&shared.tickets);
        let Some(t) = tickets.get_mut(&u) else {
            return false;
        };
        if t.path != path || t.write != write {
            return false;
        }
        if write {
            tickets.remove(&u);
            return true;
        }
        let mut mine = lock(conn_uuids);
        if !mine.contains(&u) {
            if t.used && t.open == 0 {
                return false;
            }
            t.open += 1;
            t.used = true;
            mine.push(u);
        }
        true
    });
    if !valid {
        shared.counters.stale_uuid.fetch_add(1, Ordering::Relaxed);
        // What dCache's HttpPoolRequestHandler answers for a UUID whose mover has ended
        // (or never existed): 400, "resubmit to door".
        return text(400, "Request is no longer valid. Please resubmit to door.");
    }
    if write {
        receive(shared, req, path, consumed).await
    } else {
        send(shared, req, path).await
    }
}

enum RangeSpec {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

/// A single `bytes=` range; anything else (several ranges, bad syntax) serves the whole file.
fn parse_range(value: Option<&str>, len: u64) -> RangeSpec {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangeSpec::Full;
        };
        if n == 0 || len == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Part(len.saturating_sub(n), len - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeSpec::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeSpec::Full,
        }
    };
    if start >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Part(start, end.min(len - 1))
}

async fn send(shared: &Arc<Shared>, req: Request<Incoming>, path: DPath) -> Response<Body> {
    let fs = path.fs(&shared.root);
    if req.method() == Method::GET {
        let replace = {
            let mut f = shared.faults();
            match f.replace_after_gets.as_mut() {
                Some((0, _)) => f.replace_after_gets.take().map(|(_, c)| c),
                Some((n, _)) => {
                    *n -= 1;
                    None
                }
                None => None,
            }
        };
        if let Some(contents) = replace {
            let tmp = fs.with_extension("replacing");
            let _ = std::fs::write(&tmp, contents).and_then(|()| std::fs::rename(&tmp, &fs));
        }
    }
    let meta = match tokio::fs::metadata(&fs).await {
        Ok(m) if m.is_file() => m,
        _ => return text(404, "Not found"),
    };
    let len = meta.len();
    let range = header_str(&req, "range");
    if shared.faults().broken_open_range {
        let open = range
            .as_deref()
            .and_then(|r| r.trim().strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.trim().parse::<u64>().ok());
        if let Some(n) = open {
            let mut resp = status_only(206);
            set(
                &mut resp,
                header::CONTENT_RANGE,
                &format!("bytes {n}--1/{len}"),
            );
            return resp;
        }
    }
    let range = range.filter(|_| !shared.faults().ignore_range);
    let (status, start, count) = match parse_range(range.as_deref(), len) {
        RangeSpec::Full => (200, 0, len),
        RangeSpec::Part(s, e) => (206, s, e - s + 1),
        RangeSpec::Unsatisfiable => {
            let mut resp = text(416, "Range Not Satisfiable");
            set(&mut resp, header::CONTENT_RANGE, &format!("bytes */{len}"));
            return resp;
        }
    };
    let mut digest = digest_header(shared, &req, &fs).await;
    let head = req.method() == Method::HEAD;
    if !head && shared.faults().unasked_digest {
        digest = Some("adler32=0badc0de".into());
    }
    let body = if head {
        empty()
    } else {
        let truncate = shared.faults().truncate_next_get.take();
        // mount (issue 19): a stalled answer
        let end = match shared.faults().stall_gets {
            Some(after) => Some((count.min(after), AtLimit::Stall)),
            None => truncate.map(|t| (t, AtLimit::Cut)),
        };
        stream_file(shared.clone(), fs, start, count, end)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    set(&mut resp, header::CONTENT_LENGTH, &count.to_string());
    set(&mut resp, header::CONTENT_TYPE, "application/octet-stream");
    set(&mut resp, header::ACCEPT_RANGES, "bytes");
    set(&mut resp, header::ETAG, &etag(&meta));
    set(
        &mut resp,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(mtime(&meta)),
    );
    if status == 206 {
        set(
            &mut resp,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{}", start, start + count - 1, len),
        );
    }
    if let Some(d) = digest {
        set(&mut resp, header::HeaderName::from_static("digest"), &d);
    }
    resp
}

/// What an answer does once it has sent its limit.
enum AtLimit {
    /// Breaks the connection (when bytes are still owed).
    Cut,
    // mount (issue 19)
    /// Sends nothing more and keeps the connection open for ten minutes, or until the client
    /// gives up.
    Stall,
}

/// Streams `count` bytes from `start`; with `end = (limit, then)`, stops after `limit` bytes
/// and then cuts the connection or stalls.
fn stream_file(
    shared: Arc<Shared>,
    fs: std::path::PathBuf,
    start: u64,
    count: u64,
    end: Option<(u64, AtLimit)>,
) -> Body {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    tokio::spawn(async move {
        let mut file = match tokio::fs::File::open(&fs).await {
            Ok(f) => f,
            Err(e) => return tx.abort(e),
        };
        if let Err(e) = file.seek(SeekFrom::Start(start)).await {
            return tx.abort(e);
        }
        let limit = end.as_ref().map_or(count, |(t, _)| (*t).min(count));
        let mut sent = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        while sent < limit {
            let want = ((limit - sent) as usize).min(buf.len());
            let n = match file.read(&mut buf[..want]).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => return tx.abort(e),
            };
            if tx
                .send_data(Bytes::copy_from_slice(&buf[..n]))
                .await
                .is_err()
            {
                return;
            }
            shared
                .counters
                .pool_sent_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
            sent += n as u64;
        }
        if matches!(end, Some((_, AtLimit::Stall))) {
            tokio::time::sleep(Duration::from_secs(600)).await;
            drop(tx);
        } else if sent < count {
            // Let the bytes already handed over reach the socket, then cut the connection.
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.abort(std::io::Error::new(
                ErrorKind::ConnectionAborted,
                "truncated by the dCache double",
            ));
        }
    });
    body.boxed()
}

async fn receive(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    path: DPath,
    consumed: &mut bool,
) -> Response<Body> {
    if shared.faults().full {
        return text(507, "Insufficient Storage");
    }
    if !req.headers().contains_key(header::CONTENT_LENGTH) {
        return text(411, "Length Required");
    }
    if let Some(resp) = check_put_target(shared, &path).await {
        return resp;
    }
    let want = header_str(&req, "want-digest")
        .as_deref()
        .and_then(choose_digest);
    let content_md5 = header_str(&req, "content-md5").map(|v| v.trim().to_string());
    let target = path.fs(&shared.root);
    let temp = target.with_file_name(format!("{UPLOAD_TMP_PREFIX}{}", uuid::Uuid::new_v4()));
    let mut file = match tokio::fs::File::create(&temp).await {
        Ok(f) => f,
        Err(e) => return text(500, &e.to_string()),
    };
    let mut adler = checksum::Adler32::new();
    let mut md5 = (content_md5.is_some() || want == Some(DigestAlgo::Md5))
        .then(|| Hasher::new(DigestAlgo::Md5));
    let mut sha = (want == Some(DigestAlgo::Sha256)).then(|| Hasher::new(DigestAlgo::Sha256));
    *consumed = true;
    let mut body = req.into_body();
    let mut failed = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    shared
                        .counters
                        .pool_body_bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    adler.update(&data);
                    if let Some(h) = md5.as_mut() {
                        h.update(&data);
                    }
                    if let Some(h) = sha.as_mut() {
                        h.update(&data);
                    }
                    if let Err(e) = file.write_all(&data).await {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
        }
    }
    if failed.is_none() {
        if let Err(e) = file.flush().await {
            failed = Some(e.to_string());
        }
    }
    drop(file);
    if let Some(e) = failed {
        let _ = tokio::fs::remove_file(&temp).await;
        return text(400, &format!("upload failed: {e}"));
    }
    // Write-once: a hard link never replaces an existing name.
    let linked = tokio::fs::hard_link(&temp, &target).await;
    let _ = tokio::fs::remove_file(&temp).await;
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return text(409, "Conflict: file exists (dCache files are write-once)")
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return text(409, "Conflict: parent directory does not exist")
        }
        Err(e) => return text(500, &e.to_string()),
    }
    if let Ok(meta) = std::fs::metadata(&target) {
        lock(&shared.checksums).insert(target.clone(), (meta.len(), mtime(&meta), adler.hex()));
    }
    let md5 = md5.map(Hasher::finish);
    if let (Some(sent), Some(actual)) = (&content_md5, &md5) {
        let b64 = base64::engine::general_purpose::STANDARD;
        if b64.decode(sent).ok() != b64.decode(actual).ok() {
            // dCache quirk: the mismatch is reported but the redirected upload stays behind.
            return text(400, "Content-MD5 mismatch");
        }
    }
    let mut resp = status_only(201);
    if let Some(algo) = want {
        let value = match algo {
            DigestAlgo::Adler32 => adler.hex(),
            DigestAlgo::Md5 => md5.unwrap_or_default(),
            DigestAlgo::Sha256 => sha.map(Hasher::finish).unwrap_or_default(),
        };
        let value = if shared.faults().corrupt_digest {
            checksum::corrupt(algo, &value)
        } else {
            value
        };
        set(
            &mut resp,
            header::HeaderName::from_static("digest"),
            &format!("{}={}", algo.token(), value),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str, len: u64) -> (u8, u64, u64) {
        match parse_range(Some(v), len) {
            RangeSpec::Full => (0, 0, 0),
            RangeSpec::Part(a, b) => (1, a, b),
            RangeSpec::Unsatisfiable => (2, 0, 0),
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(r("bytes=0-9", 100), (1, 0, 9));
        assert_eq!(r("bytes=90-", 100), (1, 90, 99));
        assert_eq!(r("bytes=-10", 100), (1, 90, 99));
        assert_eq!(r("bytes=95-200", 100), (1, 95, 99));
        assert_eq!(r("bytes=100-", 100), (2, 0, 0));
        assert_eq!(r("bytes=0-0", 0), (2, 0, 0));
        assert_eq!(r("bytes=0-1,5-6", 100), (0, 0, 0));
        assert_eq!(r("items=0-1", 100), (0, 0, 0));
    }
}
