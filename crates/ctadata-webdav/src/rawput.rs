//! PUT over a connection of our own, so `Expect: 100-continue` really waits.
//!
//! hyper (and so reqwest) sends a request body at once. A dCache door answers a PUT with
//! `307` to a pool *instead of* `100 Continue` and closes the connection on a body it did
//! not want; the body must go only to the pool. This module writes the request head,
//! waits for the interim `100` (then streams the body in large blocks) or for a final
//! answer such as the redirect (then sends nothing), all over one HTTP/1.1 connection,
//! with TLS by the same rustls configuration as every other request.
//!
//! Connections are kept alive and reused for the next PUT to the same origin through a
//! [`ConnPool`] owned by the backend: only after a complete exchange (body sent, answer read
//! to its end, no `Connection: close`). A PUT answered before its body was sent (the
//! door's redirect) never returns its connection. A reused connection that the server had
//! closed costs nothing: the PUT is made again, once, on a new connection when the old
//! one broke before any byte of an answer. Once an origin has answered `100 Continue` (it
//! takes bodies itself), small bodies go to it without waiting for the `100`.
//!
//! A local file is read ahead of the socket on a blocking thread in 1 MiB blocks, its
//! adler32 computed there, so reading, checksumming and sending overlap.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctadata_core::{Adler32, Checksum, Error, Result, Upload};
use futures::{FutureExt, StreamExt};
use reqwest::Url;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::errors::find_tls_error;
use crate::urls::redact;

/// A failed TLS handshake, told apart by the rustls error under it: our certificate
/// refused (an authentication failure), theirs not trusted (repeats), or network trouble.
fn handshake_error(url: &Url, e: std::io::Error) -> Error {
    let host = url.host_str().unwrap_or("?");
    match find_tls_error(&e) {
        Some(rustls::Error::AlertReceived(a)) if crate::errors::refused_our_certificate(*a) => Error::Auth {
            problem: ctadata_core::AuthProblem::Refused,
            message: format!("{host} refused the client certificate during the TLS handshake (alert {a:?})"),
            hint: "check that the server trusts your certificate's CA and that the proxy carries its chain ('cta-data cert info')".into(),
        },
        Some(rustls::Error::InvalidCertificate(_)) => {
            permanent(url, format!("TLS: the certificate of {host} was not accepted ({e})"))
        }
        _ => transport(url, format!("TLS handshake failed: {e}")),
    }
}

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What to send.
pub struct RawPut<'a> {
    /// Where to.
    pub url: &'a Url,
    /// Headers beyond Host, Content-Length, Expect and Connection (Authorization goes here).
    pub headers: Vec<(String, String)>,
    /// Send `Expect: 100-continue` and wait before the body (never for an empty body, nor
    /// for a small one to an origin that answered `100` before: see [`SMALL_BODY`]).
    pub expect_continue: bool,
    /// The body.
    pub body: &'a Upload,
    /// How long to wait for `100` or a final answer before sending the body anyway (RFC 9110).
    pub continue_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Idle timeout for reads and writes.
    pub io_timeout: Duration,
    /// TLS configuration for https.
    pub tls: Arc<rustls::ClientConfig>,
    /// Where kept-alive connections wait for the next PUT to their origin.
    pub pool: &'a ConnPool,
}

/// A final HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The first bytes of the body, as text.
    pub excerpt: String,
}

impl Answer {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the PUT ended.
#[derive(Debug)]
pub enum RawOutcome {
    /// The body was sent; the server's final answer.
    Sent {
        /// The answer.
        answer: Answer,
        /// Bytes sent.
        bytes: u64,
        /// adler32 of what was sent.
        adler32: ctadata_core::Checksum,
    },
    /// The server answered before the body was sent (a redirect, or a refusal).
    Answered(Answer),
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_EXCERPT: usize = 2048;

fn transport(url: &Url, msg: impl std::fmt::Display) -> Error {
    Error::transport(redact(url), msg.to_string())
}

fn permanent(url: &Url, msg: impl std::fmt::Display) -> Error {
    Error::transport_permanent(redact(url), msg.to_string())
}

/// At most this many idle connections are kept per origin.
pub const MAX_IDLE_PER_ORIGIN: usize = 16;
/// An idle connection older than this is closed rather than reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Size of the blocks a local file is read and sent in (large enough to keep system calls
/// few, small enough to stay in cache between the read and the send).
pub const SEND_BLOCK: usize = 1 << 20;
/// Blocks read ahead of the socket (memory: at most `SEND_DEPTH + 2` blocks per upload).
const SEND_DEPTH: usize = 2;
/// Local files up to this size are read in one call on the sending task.
const INLINE_READ: u64 = 256 * 1024;
/// A final answer's body longer than this is not read to its end: the connection is dropped.
const MAX_DRAIN: usize = 64 * 1024;

/// Idle connections by origin, each with the time it was returned.
type IdleMap = HashMap<String, Vec<(Box<dyn Io>, Instant)>>;

/// A body up to this size goes without `Expect: 100-continue` to an origin that has
/// answered `100 Continue` before (it takes bodies itself: no redirecting door), as curl
/// does for small bodies: one round trip less per file.
pub const SMALL_BODY: u64 = 1 << 20;

/// Kept-alive PUT connections of one backend, by origin (scheme, host, port).
#[derive(Default)]
pub struct ConnPool {
    idle: Mutex<IdleMap>,
    /// Origins that answered `100 Continue`.
    continued: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for ConnPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnPool")
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl ConnPool {
    /// Idle connections held, all origins together.
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdleMap> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used live connection to `origin`; stale or closed ones are dropped.
    fn take(&self, origin: &str) -> Option<Box<dyn Io>> {
        loop {
            let (mut io, since) = self.lock().get_mut(origin)?.pop()?;
            if since.elapsed() < IDLE_TIMEOUT && alive(&mut io) {
                return Some(io);
            }
            tracing::debug!(
                origin,
                "dropping an idle connection the server closed (or too old)"
            );
        }
    }

    fn continued(&self, origin: &str) -> bool {
        self.continued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(origin)
    }

    fn give(&self, origin: String, io: Box<dyn Io>) {
        let mut idle = self.lock();
        let list = idle.entry(origin).or_default();
        list.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
        if list.len() >= MAX_IDLE_PER_ORIGIN {
            list.remove(0);
        }
        list.push((io, Instant::now()));
    }
}

/// An idle connection is healthy when a read would block: no end of stream, no error and
/// no unasked bytes waiting.
fn alive(io: &mut Box<dyn Io>) -> bool {
    let mut probe = [0u8; 1];
    io.read(&mut probe).now_or_never().is_none()
}

/// The pool key of a URL.
fn origin(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// A connection with what has been read from it but not consumed yet.
struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    /// Some byte of an answer arrived.
    got: bool,
    /// A read or write failed, or the server closed the connection.
    broke: bool,
}

impl Conn {
    fn new(io: Box<dyn Io>) -> Conn {
        Conn {
            io,
            buf: Vec::with_capacity(4096),
            got: false,
            broke: false,
        }
    }

    /// Reads more into `buf`; 0 at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 8192];
        match self.io.read(&mut chunk).await {
            Ok(0) => {
                self.broke = true;
                Ok(0)
            }
            Ok(n) => {
                self.got = true;
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) => {
                self.broke = true;
                Err(e)
            }
        }
    }
}

async fn connect(p: &RawPut<'_>) -> Result<Box<dyn Io>> {
    let url = p.url;
    let host = url
        .host_str()
        .ok_or_else(|| permanent(url, "the URL has no host"))?
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let host_for_connect = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = tokio::time::timeout(
        p.connect_timeout,
        TcpStream::connect((host_for_connect.as_str(), port)),
    )
    .await
    .map_err(|_| {
        transport(
            url,
            format!("no connection within {} s", p.connect_timeout.as_secs()),
        )
    })?
    .map_err(|e| transport(url, format!("cannot connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    if url.scheme() == "https" {
        let name = ServerName::try_from(host_for_connect.clone())
            .map_err(|e| permanent(url, format!("bad host name: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(p.tls.clone());
        let stream = tokio::time::timeout(p.io_timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| transport(url, "TLS handshake timed out"))?
            .map_err(|e| handshake_error(url, e))?;
        Ok(Box::new(stream))
    } else {
        Ok(Box::new(tcp))
    }
}

/// Sends the PUT and returns how it ended: over a kept-alive connection to the same origin
/// when the pool has one (again on a new connection if that one turns out closed before
/// any answer), else over a new connection.
pub async fn put(p: RawPut<'_>) -> Result<RawOutcome> {
    let key = origin(p.url);
    if let Some(io) = p.pool.take(&key) {
        let mut conn = Conn::new(io);
        match exchange(&mut conn, &p).await {
            Err(e) if conn.broke && !conn.got => {
                tracing::debug!(url = %redact(p.url), "a kept-alive connection broke before any answer ({e}); sending again on a new one");
            }
            r => return keep(r, conn, key, p.pool),
        }
    }
    let mut conn = Conn::new(connect(&p).await?);
    let r = exchange(&mut conn, &p).await;
    keep(r, conn, key, p.pool)
}

/// Returns the connection to the pool when the exchange left it reusable.
fn keep(
    r: Result<(RawOutcome, bool)>,
    conn: Conn,
    key: String,
    pool: &ConnPool,
) -> Result<RawOutcome> {
    let (outcome, reusable) = r?;
    if reusable && conn.buf.is_empty() && !conn.broke {
        pool.give(key, conn.io);
    }
    Ok(outcome)
}

/// One request and its answer on `conn`; true when the connection may serve another.
async fn exchange(conn: &mut Conn, p: &RawPut<'_>) -> Result<(RawOutcome, bool)> {
    let url = p.url;
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(port)) => format!("{h}:{port}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    };
    let mut head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cta-data/{}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n",
        env!("CARGO_PKG_VERSION"),
        p.body.len()
    );
    // Nothing to hold back for an empty body: no `Expect` (XRootD 5.5.3 answers `100` to a
    // PUT of 0 bytes that asks and then never gives a final status).
    let key = origin(url);
    let expect_continue = p.expect_continue
        && !p.body.is_empty()
        && !(p.body.len() <= SMALL_BODY && p.pool.continued(&key));
    if expect_continue {
        head.push_str("Expect: 100-continue\r\n");
    }
    for (k, v) in &p.headers {
        if v.contains(['\r', '\n']) || k.contains(['\r', '\n', ':']) {
            return Err(Error::internal("a header value contains a line break"));
        }
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    tracing::debug!(method = "PUT", url = %redact(url), headers = %crate::send::show_pairs(
        head.lines().skip(1).filter_map(|l| l.split_once(": ")).map(|(k, v)| (k, v.to_string()))
    ), "request");
    write_all(conn, head.as_bytes(), p.io_timeout, url).await?;

    if expect_continue {
        // Wait for 100 Continue, or a final answer (the door's redirect), or the timeout:
        // one deadline for all the interim answers together.
        let deadline = tokio::time::Instant::now() + p.continue_timeout;
        loop {
            match tokio::time::timeout_at(deadline, read_head(conn, url)).await {
                Err(_) => {
                    tracing::debug!(url = %redact(url), "no answer to Expect: 100-continue; sending the body");
                    break;
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(h)) if h.status == 100 => {
                    p.pool
                        .continued
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key);
                    break;
                }
                Ok(Ok(h)) if (101..200).contains(&h.status) => continue,
                Ok(Ok(h)) => {
                    // The body was not sent: whether the server still waits for it is
                    // unknown (the door closes), so this connection is not reused.
                    let (answer, _) = finish_answer(conn, h, url).await;
                    return Ok((RawOutcome::Answered(answer), false));
                }
            }
        }
    }

    let (sent, adler, write_error) = match send_body(conn, p).await? {
        BodyEnd::Sent(sent, adler) => (sent, adler, None),
        BodyEnd::WriteFailed(sent, e) => (sent, Adler32::new().checksum(), Some(e)),
    };
    let mut write_error = write_error;
    if write_error.is_none() {
        if let Err(e) = tokio::time::timeout(p.io_timeout, conn.io.flush())
            .await
            .unwrap_or(Ok(()))
        {
            conn.broke = true;
            write_error = Some(transport(url, format!("sending failed: {e}")));
        }
    }
    // The server may have answered early (an error) and closed: read what it said.
    match tokio::time::timeout(p.io_timeout, read_final(conn, url)).await {
        Ok(Ok(h)) => {
            let keep_alive = h.keep_alive;
            let (answer, complete) = finish_answer(conn, h, url).await;
            if let (Some(e), true) = (write_error.take(), answer.status < 300) {
                return Err(e);
            }
            Ok((
                RawOutcome::Sent {
                    answer,
                    bytes: sent,
                    adler32: adler,
                },
                keep_alive && complete && write_error.is_none(),
            ))
        }
        Ok(Err(e)) => Err(write_error.unwrap_or(e)),
        Err(_) => Err(write_error.unwrap_or_else(|| {
            transport(
                url,
                format!(
                    "no answer within {} s after the upload",
                    p.io_timeout.as_secs()
                ),
            )
        })),
    }
}

/// How sending the body ended (local failures are errors of their own).
enum BodyEnd {
    /// All of it: bytes and their adler32.
    Sent(u64, Checksum),
    /// The connection failed after this many bytes.
    WriteFailed(u64, Error),
}

/// What the reading thread hands to the sender.
enum Piece {
    /// A buffer and how many of its bytes to send.
    Block(Vec<u8>, usize),
    /// The end of the file: its adler32.
    End(Checksum),
}

/// Streams the body: a local file from a reading thread (read ahead, checksummed there),
/// anything else from its stream.
async fn send_body(conn: &mut Conn, p: &RawPut<'_>) -> Result<BodyEnd> {
    let url = p.url;
    let len = p.body.len();
    let hook = p.body.read_hook().cloned();
    if let Some(path) = p.body.local_path().filter(|_| len <= INLINE_READ) {
        // A small file is read at once, here: a thread hand-off would cost more than the
        // read (a tree of small files pays it per file).
        let mut data = Vec::with_capacity(len as usize + 1);
        let read = std::fs::File::open(path).and_then(|f| {
            use std::io::Read;
            f.take(len + 1).read_to_end(&mut data)
        });
        if let Err(e) = read {
            return Err(Error::local("read", path, e));
        }
        if data.len() as u64 > len {
            return Err(grew(url, len));
        }
        if (data.len() as u64) < len {
            return Err(shrank(url, data.len() as u64, len));
        }
        let mut adler = Adler32::new();
        adler.update(&data);
        if let Err(e) = write_all(conn, &data, p.io_timeout, url).await {
            return Ok(BodyEnd::WriteFailed(0, e));
        }
        if let Some(h) = &hook {
            h(len);
        }
        return Ok(BodyEnd::Sent(len, adler.checksum()));
    }
    if let Some(path) = p.body.local_path() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(SEND_DEPTH);
        let (back_tx, back_rx) = std::sync::mpsc::channel();
        let path = path.to_path_buf();
        let reader = tokio::task::spawn_blocking(move || read_blocks(path, len, tx, back_rx));
        let mut sent = 0u64;
        let end = loop {
            match rx.recv().await {
                Some(Ok(Piece::Block(buf, n))) => {
                    if let Err(e) = write_all(conn, &buf[..n], p.io_timeout, url).await {
                        break BodyEnd::WriteFailed(sent, e);
                    }
                    sent += n as u64;
                    if let Some(h) = &hook {
                        h(n as u64);
                    }
                    let _ = back_tx.send(buf);
                }
                Some(Ok(Piece::End(sum))) => break BodyEnd::Sent(sent, sum),
                Some(Err(e)) => return Err(e),
                None => return Err(Error::internal("the file reader stopped")),
            }
        };
        // Dropping the receiver stops the reader at its next block.
        drop(rx);
        let _ = reader.await;
        return Ok(end);
    }
    let mut stream = p.body.open().await?;
    let mut adler = Adler32::new();
    let mut sent = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        adler.update(&chunk);
        if sent + chunk.len() as u64 > len {
            return Err(grew(url, len));
        }
        if let Err(e) = write_all(conn, &chunk, p.io_timeout, url).await {
            return Ok(BodyEnd::WriteFailed(sent, e));
        }
        sent += chunk.len() as u64;
    }
    if sent != len {
        return Err(shrank(url, sent, len));
    }
    Ok(BodyEnd::Sent(sent, adler.checksum()))
}

fn grew(url: &Url, len: u64) -> Error {
    Error::integrity(
        url.path(),
        format!("the local file grew while it was sent (more than {len} bytes); nothing was kept"),
    )
}

fn shrank(url: &Url, sent: u64, len: u64) -> Error {
    Error::integrity(
        url.path(),
        format!("the local file shrank while it was sent ({sent} of {len} bytes)"),
    )
}

/// The reading thread: fills blocks (reusing the ones sent back), checksums them and hands
/// them over; exactly `len` bytes or an error. Stops when the sender is gone.
fn read_blocks(
    path: PathBuf,
    len: u64,
    tx: tokio::sync::mpsc::Sender<Result<Piece>>,
    back: std::sync::mpsc::Receiver<Vec<u8>>,
) {
    let url_path = path.display().to_string();
    let fail = |e: std::io::Error| Err(Error::local("read", &path, e));
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(fail(e));
            return;
        }
    };
    // A block of the file's size (at least 1 byte, to see growth) up to SEND_BLOCK.
    let cap = usize::try_from(len)
        .unwrap_or(SEND_BLOCK)
        .clamp(1, SEND_BLOCK);
    let mut adler = Adler32::new();
    let mut total = 0u64;
    loop {
        let mut buf = back.try_recv().unwrap_or_else(|_| vec![0u8; cap]);
        let mut n = 0;
        while n < buf.len() {
            match file.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(fail(e));
                    return;
                }
            }
        }
        total += n as u64;
        if total > len {
            let e = Error::integrity(
                &url_path,
                format!("the local file grew while it was sent (more than {len} bytes); nothing was kept"),
            );
            let _ = tx.blocking_send(Err(e));
            return;
        }
        if n == 0 {
            let end = if total == len {
                Ok(Piece::End(adler.checksum()))
            } else {
                Err(Error::integrity(
                    &url_path,
                    format!("the local file shrank while it was sent ({total} of {len} bytes)"),
                ))
            };
            let _ = tx.blocking_send(end);
            return;
        }
        adler.update(&buf[..n]);
        if tx.blocking_send(Ok(Piece::Block(buf, n))).is_err() {
            return;
        }
    }
}

async fn write_all(conn: &mut Conn, data: &[u8], t: Duration, url: &Url) -> Result<()> {
    match tokio::time::timeout(t, conn.io.write_all(data)).await {
        Err(_) => Err(transport(
            url,
            format!("sending stalled for {} s", t.as_secs()),
        )),
        Ok(Err(e)) => {
            conn.broke = true;
            Err(transport(
                url,
                format!("the connection broke while sending: {e}"),
            ))
        }
        Ok(Ok(())) => Ok(()),
    }
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    /// HTTP/1.1 without `Connection: close`.
    keep_alive: bool,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response head (any status) from the connection; consumes it from its buffer.
async fn read_head(conn: &mut Conn, url: &Url) -> Result<Head> {
    loop {
        {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut hs);
            match resp.parse(&conn.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let headers: Vec<(String, String)> = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).trim().to_string(),
                            )
                        })
                        .collect();
                    let close = headers.iter().any(|(k, v)| {
                        k == "connection"
                            && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
                    });
                    let keep_alive = resp.version == Some(1) && !close;
                    conn.buf.drain(..n);
                    return Ok(Head {
                        status,
                        headers,
                        keep_alive,
                    });
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(permanent(url, format!("malformed HTTP answer: {e}"))),
            }
        }
        if conn.buf.len() > MAX_HEAD {
            return Err(permanent(url, "the answer's head is too large"));
        }
        let n = conn
            .fill()
            .await
            .map_err(|e| transport(url, format!("reading the answer failed: {e}")))?;
        if n == 0 {
            return Err(transport(
                url,
                "the server closed the connection without an answer",
            ));
        }
    }
}

/// Reads heads until a final (non-1xx) one.
async fn read_final(conn: &mut Conn, url: &Url) -> Result<Head> {
    loop {
        let h = read_head(conn, url).await?;
        if h.status >= 200 {
            return Ok(h);
        }
    }
}

/// Reads the answer's body (its start kept for messages); never fails. True when the body
/// was read to its end, so the connection is ready for another request.
async fn finish_answer(conn: &mut Conn, h: Head, url: &Url) -> (Answer, bool) {
    let len = h
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = h
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let no_body = h.status == 204 || h.status == 304;
    let mut body = Vec::new();
    let complete = if no_body {
        true
    } else if chunked {
        matches!(
            tokio::time::timeout(Duration::from_secs(2), read_chunked(conn, &mut body)).await,
            Ok(true)
        )
    } else if let Some(len) = len.filter(|&l| l <= MAX_DRAIN) {
        let read = tokio::time::timeout(Duration::from_secs(2), async {
            while conn.buf.len() < len {
                if !matches!(conn.fill().await, Ok(n) if n > 0) {
                    return false;
                }
            }
            true
        })
        .await;
        body = conn.buf.drain(..len.min(conn.buf.len())).collect();
        matches!(read, Ok(true))
    } else {
        // Until the end of the stream, or too long: keep the start, never reuse.
        let want = len.unwrap_or(MAX_EXCERPT).min(MAX_EXCERPT);
        let wait = Duration::from_millis(if len.is_some() { 2000 } else { 300 });
        let _ = tokio::time::timeout(wait, async {
            while conn.buf.len() < want {
                if !matches!(conn.fill().await, Ok(n) if n > 0) {
                    break;
                }
            }
        })
        .await;
        body = std::mem::take(&mut conn.buf);
        conn.broke = true;
        false
    };
    body.truncate(MAX_EXCERPT);
    tracing::debug!(method = "PUT", url = %redact(url), status = h.status, headers = %crate::send::show_pairs(
        h.headers.iter().map(|(k, v)| (k.as_str(), v.clone()))
    ), "answer");
    (
        Answer {
            status: h.status,
            headers: h.headers,
            excerpt: String::from_utf8_lossy(&body).to_string(),
        },
        complete,
    )
}

/// Reads a chunked body to its end (at most [`MAX_DRAIN`] bytes of data kept in `out`).
async fn read_chunked(conn: &mut Conn, out: &mut Vec<u8>) -> bool {
    loop {
        let size = loop {
            match httparse::parse_chunk_size(&conn.buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    conn.buf.drain(..used);
                    break size;
                }
                Ok(httparse::Status::Partial) if conn.buf.len() < 1024 => {
                    if !matches!(conn.fill().await, Ok(n) if n > 0) {
                        return false;
                    }
                }
                _ => return false,
            }
        };
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                match memchr::memmem::find(&conn.buf, b"\r\n") {
                    Some(0) => {
                        conn.buf.drain(..2);
                        return true;
                    }
                    Some(i) => {
                        conn.buf.drain(..i + 2);
                    }
                    None if conn.buf.len() < 8192 => {
                        if !matches!(conn.fill().await, Ok(n) if n > 0) {
                            return false;
                        }
                    }
                    None => return false,
                }
            }
        }
        let Ok(size) = usize::try_from(size) else {
            return false;
        };
        if out.len() + size > MAX_DRAIN {
            return false;
        }
        while conn.buf.len() < size + 2 {
            if !matches!(conn.fill().await, Ok(n) if n > 0) {
                return false;
            }
        }
        out.extend_from_slice(&conn.buf[..size]);
        conn.buf.drain(..size + 2);
    }
}
