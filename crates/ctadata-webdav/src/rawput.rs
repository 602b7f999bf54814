//! PUT over a connection of our own, so `Expect: 100-continue` really waits.
//!
//! hyper (and so reqwest) sends a request body at once. A dCache door answers a PUT with
//! `307` to a pool *instead of* `100 Continue` and closes the connection on a body it did
//! not want; the body must go only to the pool. This module writes the request head,
//! waits for the interim `100` (then streams the body in large blocks) or for a final
//! answer such as the redirect (then sends nothing), all over one HTTP/1.1 connection,
//! with TLS by the same rustls configuration as every other request.

use std::sync::Arc;
use std::time::Duration;

use ctadata_core::{Adler32, Error, Result, Upload};
use futures::StreamExt;
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

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What to send.
pub struct RawPut<'a> {
    /// Where to.
    pub url: &'a Url,
    /// Headers beyond Host, Content-Length, Expect and Connection (Authorization goes here).
    pub headers: Vec<(String, String)>,
    /// Send `Expect: 100-continue` and wait before the body (never for an empty body).
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

/// Sends the PUT and returns how it ended.
pub async fn put(p: RawPut<'_>) -> Result<RawOutcome> {
    let url = p.url;
    let mut conn = connect(&p).await?;
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
        "PUT {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cta-data/{}\r\nContent-Length: {}\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION"),
        p.body.len()
    );
    // Nothing to hold back for an empty body: no `Expect` (XRootD 5.5.3 answers `100` to a
    // PUT of 0 bytes that asks and then never gives a final status).
    let expect_continue = p.expect_continue && p.body.len() > 0;
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
    write_all(&mut conn, head.as_bytes(), p.io_timeout, url).await?;

    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    if expect_continue {
        // Wait for 100 Continue, or a final answer (the door's redirect), or the timeout:
        // one deadline for all the interim answers together.
        let deadline = tokio::time::Instant::now() + p.continue_timeout;
        loop {
            match tokio::time::timeout_at(deadline, read_head(&mut conn, &mut buf, url)).await {
                Err(_) => {
                    tracing::debug!(url = %redact(url), "no answer to Expect: 100-continue; sending the body");
                    break;
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(h)) if h.status == 100 => break,
                Ok(Ok(h)) if (101..200).contains(&h.status) => continue,
                Ok(Ok(h)) => {
                    let answer = finish_answer(&mut conn, buf, h, url).await;
                    return Ok(RawOutcome::Answered(answer));
                }
            }
        }
    }

    // Stream the body in large blocks, checksumming as it goes.
    let mut stream = p.body.open().await?;
    let mut adler = Adler32::new();
    let mut sent = 0u64;
    let mut write_error = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        adler.update(&chunk);
        sent += chunk.len() as u64;
        if sent > p.body.len() {
            return Err(Error::integrity(
                url.path(),
                format!(
                    "the local file grew while it was sent (more than {} bytes); nothing was kept",
                    p.body.len()
                ),
            ));
        }
        if let Err(e) = write_all(&mut conn, &chunk, p.io_timeout, url).await {
            write_error = Some(e);
            break;
        }
    }
    if write_error.is_none() && sent != p.body.len() {
        return Err(Error::integrity(
            url.path(),
            format!(
                "the local file shrank while it was sent ({sent} of {} bytes)",
                p.body.len()
            ),
        ));
    }
    if write_error.is_none() {
        if let Err(e) = tokio::time::timeout(p.io_timeout, conn.flush())
            .await
            .unwrap_or(Ok(()))
        {
            write_error = Some(transport(url, format!("sending failed: {e}")));
        }
    }
    // The server may have answered early (an error) and closed: read what it said.
    match tokio::time::timeout(p.io_timeout, read_final(&mut conn, &mut buf, url)).await {
        Ok(Ok(h)) => {
            let answer = finish_answer(&mut conn, buf, h, url).await;
            if let (Some(e), true) = (write_error, answer.status < 300) {
                return Err(e);
            }
            Ok(RawOutcome::Sent {
                answer,
                bytes: sent,
                adler32: adler.checksum(),
            })
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

async fn write_all(conn: &mut Box<dyn Io>, data: &[u8], t: Duration, url: &Url) -> Result<()> {
    match tokio::time::timeout(t, conn.write_all(data)).await {
        Err(_) => Err(transport(
            url,
            format!("sending stalled for {} s", t.as_secs()),
        )),
        Ok(Err(e)) => Err(transport(
            url,
            format!("the connection broke while sending: {e}"),
        )),
        Ok(Ok(())) => Ok(()),
    }
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

/// Reads one response head (any status) from `buf` + the connection; consumes it from `buf`.
async fn read_head(conn: &mut Box<dyn Io>, buf: &mut Vec<u8>, url: &Url) -> Result<Head> {
    loop {
        {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut hs);
            match resp.parse(buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let headers = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).trim().to_string(),
                            )
                        })
                        .collect();
                    buf.drain(..n);
                    return Ok(Head { status, headers });
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(permanent(url, format!("malformed HTTP answer: {e}"))),
            }
        }
        if buf.len() > MAX_HEAD {
            return Err(permanent(url, "the answer's head is too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = conn
            .read(&mut chunk)
            .await
            .map_err(|e| transport(url, format!("reading the answer failed: {e}")))?;
        if n == 0 {
            return Err(transport(
                url,
                "the server closed the connection without an answer",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads heads until a final (non-1xx) one.
async fn read_final(conn: &mut Box<dyn Io>, buf: &mut Vec<u8>, url: &Url) -> Result<Head> {
    loop {
        let h = read_head(conn, buf, url).await?;
        if h.status >= 200 {
            return Ok(h);
        }
    }
}

/// Reads (a bounded part of) the body for messages; never fails.
async fn finish_answer(conn: &mut Box<dyn Io>, mut buf: Vec<u8>, h: Head, url: &Url) -> Answer {
    let len = h
        .headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let want = len.unwrap_or(MAX_EXCERPT).min(MAX_EXCERPT);
    let deadline = Duration::from_millis(if len.is_some() { 2000 } else { 300 });
    let _ = tokio::time::timeout(deadline, async {
        while buf.len() < want {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    buf.truncate(want);
    tracing::debug!(method = "PUT", url = %redact(url), status = h.status, headers = %crate::send::show_pairs(
        h.headers.iter().map(|(k, v)| (k.as_str(), v.clone()))
    ), "answer");
    Answer {
        status: h.status,
        headers: h.headers,
        excerpt: String::from_utf8_lossy(&buf).to_string(),
    }
}
