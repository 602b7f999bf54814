//! The WebDAV door: namespace operations, redirects to the pool, auth.

use super::macaroon;
use super::paths::{xml_escape, DPath};
use super::propfind::{self, Entry, PropRequest};
use super::respond::{
    blocking, etag, failure, header_str, mtime, record_of, set, status_only, text,
};
use super::{lock, Locality, Shared, Side};
use crate::checksum::{self, choose_digest};
use crate::serve::{full, Body, Io};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Name prefix of the pool's temporary upload files (hidden from listings).
pub(super) const UPLOAD_TMP_PREFIX: &str = ".dcache-upload-";

/// Bytes read from one door connection: a running total and the most recent bytes, enough
/// to find where an upload's request head ended.
#[derive(Default)]
struct Ledger {
    total: u64,
    tail: Vec<u8>,
}

/// How much of the stream the ledger keeps: more than hyper ever reads ahead of a head.
const LEDGER_TAIL: usize = 1 << 20;

impl Ledger {
    fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        self.tail.extend_from_slice(data);
        if self.tail.len() > 2 * LEDGER_TAIL {
            let cut = self.tail.len() - LEDGER_TAIL;
            self.tail.drain(..cut);
        }
    }

    /// Where the head of the last request `METHOD TARGET HTTP/1.x` lies in the tail. With
    /// `line_start`, the head must start a line (a previous request's body may end
    /// without a line break, so a head after one is found only without).
    fn head_span(&self, method: &str, target: &str, line_start: bool) -> Option<(usize, usize)> {
        let needle = format!("{method} {target} HTTP/1.");
        let needle = needle.as_bytes();
        let tail = &self.tail;
        let start = (0..tail.len().saturating_sub(needle.len() - 1))
            .rev()
            .find(|&i| {
                tail[i..].starts_with(needle) && (!line_start || i == 0 || tail[i - 1] == b'\n')
            })?;
        let end = tail[start..].windows(4).position(|w| w == b"\r\n\r\n")? + start + 4;
        Some((start, end))
    }

    /// Stream offset just past the head of the last request `METHOD TARGET HTTP/1.x`.
    fn head_end(&self, method: &str, target: &str) -> Option<u64> {
        let (_, end) = self.head_span(method, target, true)?;
        Some(self.total - self.tail.len() as u64 + end as u64)
    }

    /// The header names of the last request `METHOD TARGET HTTP/1.x`, as the client
    /// spelled them (hyper lower-cases them).
    fn raw_header_names(&self, method: &str, target: &str) -> Option<Vec<String>> {
        let (start, end) = self.head_span(method, target, false)?;
        let head = String::from_utf8_lossy(&self.tail[start..end]).into_owned();
        Some(
            head.split("\r\n")
                .skip(1)
                .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim().to_string()))
                .collect(),
        )
    }
}

/// The headers XRootD 5.5.3 reads by exact name (see [`super::DcacheDouble::strict_header_case`]).
const CASE_SENSITIVE: [&str; 6] = [
    "Depth",
    "Range",
    "Want-Digest",
    "Destination",
    "Overwrite",
    "Authorization",
];

/// Drops the headers of [`CASE_SENSITIVE`] that the client did not spell exactly so.
fn strip_miscased<B>(conn: &Conn, req: &mut Request<B>) {
    let target = req.uri().to_string();
    let names = lock(&conn.ledger)
        .raw_header_names(req.method().as_str(), &target)
        .unwrap_or_default();
    for want in CASE_SENSITIVE {
        let spelled_right = names.iter().any(|n| n == want);
        if !spelled_right {
            req.headers_mut().remove(want.to_ascii_lowercase().as_str());
        }
    }
}

/// A connection whose reads are recorded in a [`Ledger`].
struct LedgerIo {
    inner: Box<dyn Io>,
    ledger: Arc<Mutex<Ledger>>,
    /// Bytes already read (and recorded) that are handed out again first.
    replay: Vec<u8>,
}

impl AsyncRead for LedgerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                lock(&this.ledger).push(new);
            }
        }
        r
    }
}

impl AsyncWrite for LedgerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Per-connection state of the door.
struct Conn {
    ledger: Arc<Mutex<Ledger>>,
    /// Stream offset where the unread upload's body starts, once the door answered a PUT.
    upload_start: Mutex<Option<u64>>,
}

/// Serves one door connection. The door never reads an upload's body: after answering a
/// `PUT` it ends the connection, reading what the client sends anyway, and counts every
/// body byte that reached it (from the end of the `PUT` head on, whether hyper or the drain
/// read it) in `door_body_bytes`.
pub(super) async fn serve_connection(shared: Arc<Shared>, io: Box<dyn Io>) {
    shared
        .counters
        .door_connections
        .fetch_add(1, Ordering::Relaxed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let conn_state = Arc::new(Conn {
        ledger: ledger.clone(),
        upload_start: Mutex::new(None),
    });
    let mut io = LedgerIo {
        inner: io,
        ledger: ledger.clone(),
        replay: Vec::new(),
    };
    if shared.faults().hang_empty_put && hang_empty_put(&shared, &mut io).await {
        return;
    }
    let svc = {
        let shared = shared.clone();
        let conn_state = conn_state.clone();
        service_fn(move |req| {
            let shared = shared.clone();
            let conn_state = conn_state.clone();
            async move { Ok::<_, Infallible>(handle(shared, &conn_state, req).await) }
        })
    };
    let result = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .without_shutdown()
        .await;
    let Some(start) = *lock(&conn_state.upload_start) else {
        return;
    };
    if let Ok(parts) = result {
        let mut io = parts.io.into_inner();
        drain_socket(&mut io).await;
        let _ = io.shutdown().await;
    }
    let total = lock(&ledger).total;
    shared
        .counters
        .door_body_bytes
        .fetch_add(total.saturating_sub(start), Ordering::Relaxed);
    shared
        .counters
        .pending_drains
        .fetch_sub(1, Ordering::SeqCst);
}

/// With [`super::DcacheDouble::hang_empty_put`]: reads the first request head; a `PUT` of
/// 0 bytes with `Expect: 100-continue` gets `100 Continue` and then nothing until the
/// client gives up (returns true); anything else is handed back for hyper to serve.
async fn hang_empty_put(shared: &Shared, io: &mut LedgerIo) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_string();
    let header = |name: &str| {
        text.split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .split("\r\n")
            .skip(1)
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
    };
    let hang = request_line.starts_with("put ")
        && header("content-length").as_deref() == Some("0")
        && header("expect").as_deref() == Some("100-continue");
    if !hang {
        io.replay = head;
        return false;
    }
    shared.record(super::RequestRecord {
        side: Side::Door,
        method: "PUT".into(),
        path_and_query: request_line.split(' ').nth(1).unwrap_or("").to_string(),
        range: None,
        want_digest: header("want-digest"),
        expect: header("expect"),
        depth: None,
        content_length: header("content-length"),
        authorization: header("authorization").is_some(),
        status: 100,
    });
    let _ = io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    let _ = io.flush().await;
    // Never a final answer: wait for the client to close (bounded, so the server ends).
    let _ = tokio::time::timeout(Duration::from_secs(900), async {
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    true
}

/// Reads what the client still sends (a body it did not hold back), until it stops.
async fn drain_socket(io: &mut LedgerIo) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(300), io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
}

async fn handle(shared: Arc<Shared>, conn: &Conn, mut req: Request<Incoming>) -> Response<Body> {
    shared
        .counters
        .door_requests
        .fetch_add(1, Ordering::Relaxed);
    if shared.faults().strict_header_case {
        strip_miscased(conn, &mut req);
    }
    let mut rec = record_of(Side::Door, &req);
    let is_put = req.method() == Method::PUT;
    let target = req.uri().to_string();
    let mut consumed = false;
    let mut resp = dispatch(&shared, req, &mut consumed).await;
    if is_put && !consumed {
        // The door never reads an upload. Like dCache after a redirect, the connection is
        // not reused; what the client sends anyway is counted once the answer is out.
        // (Other unread bodies are hyper's business: it drains or closes by itself.)
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        let mut start = lock(&conn.upload_start);
        if start.is_none() {
            let ledger = lock(&conn.ledger);
            // The head is in the ledger's tail; if it cannot be found (it always can), count
            // everything read from here on.
            *start = Some(ledger.head_end("PUT", &target).unwrap_or(ledger.total));
            shared
                .counters
                .pending_drains
                .fetch_add(1, Ordering::SeqCst);
        }
    }
    rec.status = resp.status().as_u16();
    shared.record(rec);
    resp
}

async fn dispatch(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    consumed: &mut bool,
) -> Response<Body> {
    if let Some((status, retry_after)) = shared.take_failure(Side::Door) {
        return failure(status, retry_after);
    }
    let grant = match check_auth(shared, &req) {
        Ok(g) => g,
        Err(resp) => return *resp,
    };
    let path = if shared.faults().cut_at_question_mark {
        DPath::from_request_cut(req.uri().path())
    } else {
        DPath::from_request(req.uri().path())
    };
    let path = match path {
        Ok(p) => p,
        Err(e) => return text(400, e),
    };
    if is_forbidden(shared, &path) {
        return text(403, "Permission denied");
    }
    // ---- tape REST API (issue 14, tape): routes go here ----
    shared.tape_settle();
    if super::tape::is_tape(req.uri().path()) {
        return super::tape::handle(shared, req).await;
    }
    super::tape::hold_nearline_get(shared, req.method(), &path).await;
    // ---- macaroons (issue 14, share): routes go here ----
    let req = match macaroon::route(shared, req, &path, grant.as_ref()).await {
        Ok(req) => req,
        Err(resp) => return resp,
    };
    // ---- third-party copy (issue 14, cp): `COPY` with `Source:`, or with a `Destination:`
    // on another server (a same-door `COPY` goes on to `move_copy`) ----
    if super::tpc::is_third_party(shared, &req) {
        return super::tpc::copy(shared, req, path).await;
    }
    match req.method().as_str() {
        "OPTIONS" => options(),
        "PROPFIND"
            if shared.faults().xrootd_namespace
                && req.uri().path().ends_with('/')
                && path.fs(&shared.root).is_file() =>
        {
            text(500, "Unable to open directory")
        }
        "PROPFIND" => propfind(shared, req, path, consumed).await,
        "GET" | "HEAD" => get_head(shared, req, path).await,
        "PUT" => put(shared, req, path).await,
        "MKCOL" if shared.faults().xrootd_namespace => mkcol_xrootd(shared, path).await,
        "DELETE" if shared.faults().xrootd_namespace => delete_xrootd(shared, path).await,
        "MKCOL" => mkcol(shared, path).await,
        "DELETE" => delete(shared, path).await,
        "MOVE" | "COPY" => move_copy(shared, req, path).await,
        _ => {
            let mut resp = text(405, "Method not allowed");
            set(&mut resp, header::ALLOW, ALLOW);
            resp
        }
    }
}

const ALLOW: &str = "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, MOVE, COPY, PROPFIND";

fn is_forbidden(shared: &Shared, path: &DPath) -> bool {
    shared
        .forbidden
        .as_ref()
        .is_some_and(|f| path.starts_with(f))
}

/// The request's credential checked: a macaroon first (`Ok(Some(grant))`, its limits are
/// enforced by [`macaroon::route`]), else the door's token or JWT policy; `Err` is the
/// `401` to answer.
fn check_auth(
    shared: &Shared,
    req: &Request<Incoming>,
) -> Result<Option<macaroon::Grant>, Box<Response<Body>>> {
    if let Some(grant) = macaroon::check_request(shared, req)? {
        return Ok(Some(grant));
    }
    let token = lock(&shared.token).clone();
    if token.is_none() && shared.jwt.is_none() {
        return Ok(None);
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let challenge = match presented {
        None => "Bearer realm=\"dCache\"",
        Some(v) => {
            let ok = v.split_once(' ').is_some_and(|(scheme, cred)| {
                scheme.eq_ignore_ascii_case("bearer")
                    && match (&shared.jwt, &token) {
                        (Some(policy), _) => policy.check(cred.trim()).is_ok(),
                        (None, Some(t)) => cred.trim() == t,
                        (None, None) => true,
                    }
            });
            if ok {
                return Ok(None);
            }
            "Bearer realm=\"dCache\", error=\"invalid_token\""
        }
    };
    let mut resp = text(401, "Unauthorized");
    set(&mut resp, header::WWW_AUTHENTICATE, challenge);
    Err(Box::new(resp))
}

fn options() -> Response<Body> {
    let mut resp = status_only(200);
    set(&mut resp, header::ALLOW, ALLOW);
    set(&mut resp, header::HeaderName::from_static("dav"), "1, 2");
    resp
}

// ----- PROPFIND -----

async fn propfind(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    path: DPath,
    consumed: &mut bool,
) -> Response<Body> {
    // The path as asked (XRootD names it so in its answer, whatever it served).
    let asked = req.uri().path().to_string();
    let mut depth = header_str(&req, "depth");
    if depth.is_none() && shared.faults().strict_header_case {
        // XRootD takes a PROPFIND without a Depth it can read as Depth: 0.
        depth = Some("0".into());
    }
    let depth = match depth.as_deref().map(str::trim) {
        Some("0") => 0,
        Some("1") => 1,
        Some(d) if !d.eq_ignore_ascii_case("infinity") => return text(400, "Bad Depth header"),
        _ => {
            // Depth infinity, or no Depth (which means infinity): refused as RFC 4918 allows.
            let mut resp = Response::new(full(
                "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<d:error xmlns:d=\"DAV:\"><d:propfind-finite-depth/></d:error>\n",
            ));
            *resp.status_mut() = StatusCode::FORBIDDEN;
            set(
                &mut resp,
                header::CONTENT_TYPE,
                "application/xml; charset=utf-8",
            );
            return resp;
        }
    };
    *consumed = true;
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(400, "unreadable PROPFIND body"),
    };
    let preq = match PropRequest::parse(&body) {
        Ok(p) => p,
        Err(e) => return text(400, &e),
    };
    let (malformed, corrupt, extras, synthetic, pause) = {
        let f = shared.faults();
        (
            f.malformed_propfind,
            f.corrupt_digest,
            f.extra_hrefs.clone(),
            f.synthetic.get(&path).copied().unwrap_or(0),
            f.synthetic_pause,
        )
    };
    let listing = {
        let shared = shared.clone();
        let path = path.clone();
        let checksums = preq.wants_checksums();
        blocking(move || collect_entries(&shared, &path, depth, checksums)).await
    };
    let (is_dir, mut entries) = match listing {
        Ok(x) => x,
        Err(e) if e.kind() == ErrorKind::NotFound => return text(404, "Not found"),
        Err(e) => return text(500, &e.to_string()),
    };
    if shared.faults().cut_at_question_mark {
        entries[0].href = asked;
    }
    if shared.faults().raw_hrefs {
        for e in &mut entries {
            e.href = percent_encoding::percent_decode_str(&e.href)
                .decode_utf8_lossy()
                .into_owned();
        }
    }
    let mut out = String::new();
    if malformed {
        out = propfind::malformed(&entries[0].href);
        return multistatus(full(out));
    }
    out.push_str(&propfind::header());
    for e in &entries {
        propfind::render(&mut out, e, &preq, corrupt);
    }
    let listing_children = is_dir && depth == 1;
    if listing_children {
        let now = SystemTime::now();
        for raw in &extras {
            let is_dir = raw.ends_with('/');
            let name = raw
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            let e = Entry {
                href: raw.clone(),
                name,
                is_dir,
                size: 1,
                mtime: now,
                etag: "\"extra\"".into(),
                adler32: None,
                locality: Locality::Online,
            };
            propfind::render(&mut out, &e, &preq, corrupt);
        }
    }
    if !(listing_children && synthetic > 0) {
        out.push_str(propfind::footer());
        return multistatus(full(out));
    }
    // A huge synthetic listing: streamed in batches so that neither side needs it whole.
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(2);
    tokio::spawn(async move {
        if tx.send_data(Bytes::from(out)).await.is_err() {
            return;
        }
        let mtime = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // `synthetic_pause`: stop once `at` entries are sent (or before the footer).
        let (at, pause) =
            pause.map_or((usize::MAX, Duration::ZERO), |(n, d)| (n.min(synthetic), d));
        let mut i = 0usize;
        loop {
            if i == at {
                tokio::time::sleep(pause).await;
            }
            if i >= synthetic {
                break;
            }
            let mut chunk = String::with_capacity(64 * 1024);
            let end = (i + 200).min(synthetic);
            let end = if i < at { end.min(at) } else { end };
            for k in i..end {
                let name = format!("entry-{k:07}.dat");
                let e = Entry {
                    href: path.child(&name).href(false),
                    name,
                    is_dir: false,
                    size: 0,
                    mtime,
                    etag: format!("\"synthetic-{k}\""),
                    adler32: Some("00000001".into()),
                    locality: Locality::Online,
                };
                propfind::render(&mut chunk, &e, &preq, corrupt);
            }
            i = end;
            if tx.send_data(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
        let _ = tx
            .send_data(Bytes::from_static(b"</d:multistatus>\n"))
            .await;
    });
    multistatus(body.boxed())
}

fn multistatus(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::MULTI_STATUS;
    set(
        &mut resp,
        header::CONTENT_TYPE,
        "application/xml; charset=utf-8",
    );
    resp
}

fn entry_for(shared: &Shared, path: &DPath, meta: &std::fs::Metadata, checksums: bool) -> Entry {
    let is_dir = meta.is_dir();
    let fs = path.fs(&shared.root);
    Entry {
        href: path.href(is_dir),
        name: path.name().to_string(),
        is_dir,
        size: if is_dir { 0 } else { meta.len() },
        mtime: mtime(meta),
        etag: etag(meta),
        adler32: if checksums && !is_dir {
            shared.adler32(&fs).ok()
        } else {
            None
        },
        locality: shared.locality(path),
    }
}

/// The entry itself and, for a directory at depth 1, its children sorted by name.
fn collect_entries(
    shared: &Shared,
    path: &DPath,
    depth: u8,
    checksums: bool,
) -> std::io::Result<(bool, Vec<Entry>)> {
    let fs = path.fs(&shared.root);
    let meta = std::fs::metadata(&fs)?;
    let mut entries = vec![entry_for(shared, path, &meta, checksums)];
    if meta.is_dir() && depth == 1 {
        let mut names: Vec<String> = std::fs::read_dir(&fs)?
            .filter_map(Result::ok)
            .filter_map(|d| d.file_name().into_string().ok())
            .filter(|n| !n.starts_with(UPLOAD_TMP_PREFIX))
            .collect();
        names.sort();
        for name in names {
            let child = path.child(&name);
            if let Ok(m) = std::fs::metadata(child.fs(&shared.root)) {
                entries.push(entry_for(shared, &child, &m, checksums));
            }
        }
    }
    Ok((meta.is_dir(), entries))
}

// ----- GET / HEAD -----

async fn get_head(shared: &Arc<Shared>, req: Request<Incoming>, path: DPath) -> Response<Body> {
    let fs = path.fs(&shared.root);
    let meta = match tokio::fs::metadata(&fs).await {
        Ok(m) => m,
        Err(_) => return text(404, "Not found"),
    };
    let head = req.method() == Method::HEAD;
    if meta.is_dir() {
        // dCache renders an HTML page for a directory.
        let page = {
            let root = shared.root.clone();
            let path = path.clone();
            blocking(move || html_listing(&root, &path)).await
        };
        let mut resp = Response::new(if head {
            crate::serve::empty()
        } else {
            full(page)
        });
        set(&mut resp, header::CONTENT_TYPE, "text/html; charset=utf-8");
        return resp;
    }
    if !head {
        let location = shared.ticket(&path, false);
        let mut resp = status_only(307);
        set(&mut resp, header::LOCATION, &location);
        return resp;
    }
    let mut resp = status_only(200);
    set(&mut resp, header::CONTENT_LENGTH, &meta.len().to_string());
    set(&mut resp, header::CONTENT_TYPE, "application/octet-stream");
    set(&mut resp, header::ETAG, &etag(&meta));
    set(
        &mut resp,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(mtime(&meta)),
    );
    set(&mut resp, header::ACCEPT_RANGES, "bytes");
    if let Some(digest) = digest_header(shared, &req, &fs).await {
        set(
            &mut resp,
            header::HeaderName::from_static("digest"),
            &digest,
        );
    }
    resp
}

/// The `Digest` header value answering the request's `Want-Digest`, if any.
pub(super) async fn digest_header<B>(
    shared: &Arc<Shared>,
    req: &Request<B>,
    fs: &std::path::Path,
) -> Option<String> {
    let algo = choose_digest(&header_str(req, "want-digest")?)?;
    let value = if algo == checksum::DigestAlgo::Adler32 {
        let shared = shared.clone();
        let fs = fs.to_path_buf();
        blocking(move || shared.adler32(&fs)).await.ok()?
    } else {
        let fs = fs.to_path_buf();
        blocking(move || checksum::file_digest(&fs, algo))
            .await
            .ok()?
    };
    let value = if shared.faults().corrupt_digest {
        checksum::corrupt(algo, &value)
    } else {
        value
    };
    Some(format!("{}={}", algo.token(), value))
}

fn html_listing(root: &std::path::Path, path: &DPath) -> String {
    let mut names: Vec<(String, bool)> = std::fs::read_dir(path.fs(root))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|d| {
                    let is_dir = d.file_type().map(|t| t.is_dir()).unwrap_or(false);
                    d.file_name().into_string().ok().map(|n| (n, is_dir))
                })
                .filter(|(n, _)| !n.starts_with(UPLOAD_TMP_PREFIX))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><title>dCache File System: {0}</title></head><body><h1>{0}</h1><table>\n",
        xml_escape(&path.abs())
    );
    for (name, is_dir) in names {
        let href = path.child(&name).href(is_dir);
        page.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td></tr>\n",
            xml_escape(&href),
            xml_escape(&name)
        ));
    }
    page.push_str("</table></body></html>\n");
    page
}

// ----- PUT -----

async fn put(shared: &Arc<Shared>, req: Request<Incoming>, path: DPath) -> Response<Body> {
    if shared.faults().full {
        return text(507, "Insufficient Storage");
    }
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_none() {
        return text(411, "Length Required");
    }
    if path.is_root() {
        return text(405, "Cannot PUT onto a directory");
    }
    if let Some(resp) = check_put_target(shared, &path).await {
        return resp;
    }
    let delay = *lock(&shared.redirect_delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let location = shared.ticket(&path, true);
    let mut resp = status_only(307);
    set(&mut resp, header::LOCATION, &location);
    resp
}

/// Parent must be a directory; the target must not exist (files are write-once).
pub(super) async fn check_put_target(shared: &Shared, path: &DPath) -> Option<Response<Body>> {
    let parent_ok = match path.parent() {
        Some(parent) => tokio::fs::metadata(parent.fs(&shared.root))
            .await
            .is_ok_and(|m| m.is_dir()),
        None => false,
    };
    if !parent_ok {
        return Some(text(409, "Conflict: parent directory does not exist"));
    }
    match tokio::fs::metadata(path.fs(&shared.root)).await {
        Ok(m) if m.is_dir() => Some(text(405, "Cannot PUT onto a directory")),
        Ok(_) => Some(text(
            409,
            "Conflict: file exists (dCache files are write-once: delete it first)",
        )),
        Err(_) => None,
    }
}

// ----- MKCOL / DELETE / MOVE / COPY -----

async fn mkcol(shared: &Arc<Shared>, path: DPath) -> Response<Body> {
    if path.is_root() {
        return text(405, "Method Not Allowed: exists");
    }
    let fs = path.fs(&shared.root);
    let parent = path.parent().map(|p| p.fs(&shared.root));
    blocking(move || {
        if std::fs::symlink_metadata(&fs).is_ok() {
            return text(405, "Method Not Allowed: exists");
        }
        if !parent.is_some_and(|p| p.is_dir()) {
            return text(409, "Conflict: parent directory does not exist");
        }
        match std::fs::create_dir(&fs) {
            Ok(()) => status_only(201),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                text(405, "Method Not Allowed: exists")
            }
            Err(e) if e.kind() == ErrorKind::NotFound => text(409, "Conflict"),
            Err(e) => text(500, &e.to_string()),
        }
    })
    .await
}

/// `MKCOL` as XRootD 5.5.3 does it: `201` for an existing directory, parents created.
async fn mkcol_xrootd(shared: &Arc<Shared>, path: DPath) -> Response<Body> {
    let fs = path.fs(&shared.root);
    blocking(move || match std::fs::create_dir_all(&fs) {
        Ok(()) => status_only(201),
        Err(e) => text(500, &e.to_string()),
    })
    .await
}

/// `DELETE` as XRootD 5.5.3 does it: a non-empty directory is refused with `500`.
async fn delete_xrootd(shared: &Arc<Shared>, path: DPath) -> Response<Body> {
    let fs = path.fs(&shared.root);
    blocking(move || {
        let r = match std::fs::symlink_metadata(&fs) {
            Err(_) => return text(404, "Not found"),
            Ok(m) if m.is_dir() => std::fs::remove_dir(&fs),
            Ok(_) => std::fs::remove_file(&fs),
        };
        match r {
            Ok(()) => status_only(200),
            Err(_) => text(500, "Unable to remove directory; directory not empty"),
        }
    })
    .await
}

async fn delete(shared: &Arc<Shared>, path: DPath) -> Response<Body> {
    if path.is_root() {
        return text(403, "Permission denied");
    }
    let fs = path.fs(&shared.root);
    blocking(move || {
        let meta = match std::fs::symlink_metadata(&fs) {
            Ok(m) => m,
            Err(_) => return text(404, "Not found"),
        };
        let r = if meta.is_dir() {
            std::fs::remove_dir_all(&fs)
        } else {
            std::fs::remove_file(&fs)
        };
        match r {
            Ok(()) => status_only(204),
            Err(e) => text(500, &e.to_string()),
        }
    })
    .await
}

/// The path part of a `Destination` header (absolute URL or absolute path); `cut`: cut at
/// the first `?` once decoded, as XRootD 5.5.3 does.
fn destination_path(dest: &str, cut: bool) -> Result<DPath, &'static str> {
    let rest = match dest.split_once("://") {
        Some((_, after)) => match after.find('/') {
            Some(i) => &after[i..],
            None => "/",
        },
        None => dest,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    if cut {
        DPath::from_request_cut(rest)
    } else {
        DPath::from_request(rest)
    }
}

async fn move_copy(shared: &Arc<Shared>, req: Request<Incoming>, src: DPath) -> Response<Body> {
    let is_move = req.method().as_str() == "MOVE";
    let Some(dest) = header_str(&req, "destination") else {
        return text(400, "Destination header required");
    };
    let dest = match destination_path(&dest, shared.faults().cut_at_question_mark) {
        Ok(d) => d,
        Err(e) => return text(400, e),
    };
    if is_forbidden(shared, &dest) {
        return text(403, "Permission denied");
    }
    let overwrite = shared.faults().xrootd_namespace
        || !header_str(&req, "overwrite").is_some_and(|v| v.trim().eq_ignore_ascii_case("f"));
    let shallow = header_str(&req, "depth").is_some_and(|d| d.trim() == "0");
    if src.is_root() || dest.is_root() {
        return text(403, "Permission denied");
    }
    if dest == src {
        return text(403, "Forbidden: source and destination are the same");
    }
    let root = shared.root.clone();
    blocking(move || {
        let src_fs = src.fs(&root);
        let dest_fs = dest.fs(&root);
        let src_meta = match std::fs::symlink_metadata(&src_fs) {
            Ok(m) => m,
            Err(_) => return text(404, "Not found"),
        };
        if src_meta.is_dir() && dest.starts_with(&src) {
            return text(409, "Conflict: destination inside source");
        }
        if !dest.parent().is_some_and(|p| p.fs(&root).is_dir()) {
            return text(409, "Conflict: destination parent does not exist");
        }
        let existed = std::fs::symlink_metadata(&dest_fs).is_ok();
        if existed {
            if !overwrite {
                return text(412, "Precondition Failed: destination exists");
            }
            let r = if dest_fs.is_dir() {
                std::fs::remove_dir_all(&dest_fs)
            } else {
                std::fs::remove_file(&dest_fs)
            };
            if let Err(e) = r {
                return text(500, &e.to_string());
            }
        }
        let r = if is_move {
            std::fs::rename(&src_fs, &dest_fs)
        } else {
            copy_tree(&src_fs, &dest_fs, shallow)
        };
        match r {
            Ok(()) => status_only(if existed { 204 } else { 201 }),
            Err(e) => text(500, &e.to_string()),
        }
    })
    .await
}

fn copy_tree(src: &std::path::Path, dest: &std::path::Path, shallow: bool) -> std::io::Result<()> {
    if src.is_dir() {
        std::fs::create_dir(dest)?;
        if shallow {
            return Ok(());
        }
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dest.join(entry.file_name()), false)?;
        }
        Ok(())
    } else {
        std::fs::copy(src, dest).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(
            destination_path("https://h:1/a/b%20c?x", false)
                .unwrap()
                .rel(),
            "a/b c"
        );
        assert_eq!(destination_path("/a/b/", false).unwrap().rel(), "a/b");
        assert!(destination_path("http://h/a/../../etc", false).is_err());
        assert_eq!(destination_path("/a/q%3Fx", false).unwrap().rel(), "a/q?x");
        assert_eq!(destination_path("/a/q%3Fx", true).unwrap().rel(), "a/q");
    }
}
