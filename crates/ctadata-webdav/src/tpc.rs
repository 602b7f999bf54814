//! Server-side copies for a WebDAV backend: `COPY` within the door, and HTTP third-party
//! copy (pull with `Source:`, push with `Destination:`) between doors.
//!
//! The other end's credential travels in `TransferHeaderAuthorization` (the server strips
//! the `TransferHeader` prefix and presents it as `Authorization`), never in a URL; the
//! header is marked sensitive and shown redacted at `-vv`. `Credential: none` tells the
//! server not to ask for a delegated X.509 proxy (dCache would, for a client that
//! authenticated with a certificate).

use std::time::Duration;

use async_trait::async_trait;
use ctadata_core::credentials::Secret;
use ctadata_core::share::ShareRequest;
use ctadata_core::tpc::{MarkerHook, MarkerParser, ServerCopyOps, TpcOutcome, TpcRequest};
use ctadata_core::{Error, RemotePath, Result, ShareOps};
use futures::StreamExt;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;

use crate::backend::{ext_method, WebDav};
use crate::config::Auth;
use crate::errors::{short_text, status_error};
use crate::urls::redact;

/// Statuses by which a server refuses a third-party copy before starting it: the client
/// may try another mode.
const REFUSALS: [u16; 4] = [403, 405, 501, 400];

fn header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    let v = HeaderValue::from_str(value)
        .map_err(|e| Error::internal(format!("a {name} header")).with_source(e))?;
    Ok((HeaderName::from_static(name), v))
}

/// A connection of our own for one request whose header names must go as written.
struct RawConn {
    io: Box<dyn crate::rawput::Io>,
    buf: Vec<u8>,
}

fn broke(url: &Url, msg: impl std::fmt::Display) -> Error {
    Error::transport(redact(url), msg.to_string())
}

impl RawConn {
    async fn open(
        url: &Url,
        tls: &std::sync::Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<RawConn> {
        let host = url
            .host_str()
            .ok_or_else(|| broke(url, "the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let tcp = tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| broke(url, format!("no connection within {} s", timeout.as_secs())))?
        .map_err(|e| broke(url, format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn crate::rawput::Io> = if url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| broke(url, format!("bad host name: {e}")))?;
            let c = tokio_rustls::TlsConnector::from(tls.clone());
            let s = tokio::time::timeout(timeout, c.connect(name, tcp))
                .await
                .map_err(|_| broke(url, "TLS handshake timed out"))?
                .map_err(|e| broke(url, format!("TLS handshake failed: {e}")))?;
            Box::new(s)
        } else {
            Box::new(tcp)
        };
        Ok(RawConn {
            io,
            buf: Vec::new(),
        })
    }

    async fn request(&mut self, method: &str, url: &Url, headers: &[(&str, String)]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_string(),
        };
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cta-data/{}\r\nContent-Length: 0\r\nConnection: close\r\n",
            env!("CARGO_PKG_VERSION")
        );
        for (k, v) in headers {
            if v.contains(['\r', '\n']) {
                return Err(Error::internal(format!("a {k} header with a line break")));
            }
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.io
            .write_all(head.as_bytes())
            .await
            .map_err(|e| broke(url, format!("sending the request failed: {e}")))?;
        self.io
            .flush()
            .await
            .map_err(|e| broke(url, format!("sending the request failed: {e}")))
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 16384];
        let n = self.io.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The final answer's status and headers (names in lower case).
    async fn head(&mut self, url: &Url) -> Result<(u16, Vec<(String, String)>)> {
        loop {
            {
                let mut hs = [httparse::EMPTY_HEADER; 64];
                let mut resp = httparse::Response::new(&mut hs);
                match resp.parse(&self.buf) {
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
                        self.buf.drain(..n);
                        if status >= 200 {
                            return Ok((status, headers));
                        }
                        continue;
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(broke(url, format!("malformed HTTP answer: {e}"))),
                }
            }
            if self.buf.len() > 64 * 1024 {
                return Err(broke(url, "the answer's head is too large"));
            }
            match self.fill().await {
                Ok(0) => {
                    return Err(broke(
                        url,
                        "the server closed the connection without an answer",
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(broke(url, format!("reading the answer failed: {e}"))),
            }
        }
    }

    /// The body as a stream of pieces (chunked, of a known length, or to the end).
    fn body(
        self,
        chunked: bool,
        length: Option<u64>,
    ) -> futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>> {
        enum St {
            Chunked,
            Left(u64),
            ToEnd,
            Done,
        }
        let st = if chunked {
            St::Chunked
        } else if let Some(l) = length {
            St::Left(l)
        } else {
            St::ToEnd
        };
        futures::stream::unfold((self, st), |(mut c, st)| async move {
            match st {
                St::Done => None,
                St::Left(0) => None,
                St::Left(n) => {
                    if c.buf.is_empty() {
                        match c.fill().await {
                            Ok(0) => return None,
                            Ok(_) => {}
                            Err(e) => return Some((Err(e), (c, St::Done))),
                        }
                    }
                    let take = (n as usize).min(c.buf.len());
                    let b: Vec<u8> = c.buf.drain(..take).collect();
                    Some((Ok(bytes::Bytes::from(b)), (c, St::Left(n - take as u64))))
                }
                St::ToEnd => {
                    if c.buf.is_empty() {
                        match c.fill().await {
                            Ok(0) => return None,
                            Ok(_) => {}
                            Err(e) => return Some((Err(e), (c, St::Done))),
                        }
                    }
                    let b = std::mem::take(&mut c.buf);
                    Some((Ok(bytes::Bytes::from(b)), (c, St::ToEnd)))
                }
                St::Chunked => loop {
                    match httparse::parse_chunk_size(&c.buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            if size == 0 {
                                return None;
                            }
                            let need = used + size as usize + 2;
                            while c.buf.len() < need {
                                match c.fill().await {
                                    Ok(0) => {
                                        return Some((
                                            Err(std::io::Error::other(
                                                "the chunked body broke off",
                                            )),
                                            (c, St::Done),
                                        ))
                                    }
                                    Ok(_) => {}
                                    Err(e) => return Some((Err(e), (c, St::Done))),
                                }
                            }
                            let data = c.buf[used..used + size as usize].to_vec();
                            c.buf.drain(..need);
                            return Some((Ok(bytes::Bytes::from(data)), (c, St::Chunked)));
                        }
                        Ok(httparse::Status::Partial) => match c.fill().await {
                            Ok(0) => return None,
                            Ok(_) => {}
                            Err(e) => return Some((Err(e), (c, St::Done))),
                        },
                        Err(_) => {
                            return Some((
                                Err(std::io::Error::other("a malformed chunk")),
                                (c, St::Done),
                            ))
                        }
                    }
                },
            }
        })
        .boxed()
    }
}

/// Which way a third-party copy goes, for the request and its messages.
#[derive(Clone, Copy)]
enum Way {
    Pull,
    Push,
}

impl WebDav {
    /// `COPY` of `path` with the third-party headers, the markers read as they come.
    async fn third_party(
        &self,
        way: Way,
        path: &RemotePath,
        req: &TpcRequest<'_>,
        markers: MarkerHook<'_>,
    ) -> Result<TpcOutcome> {
        self.check_addressable(path).await?;
        let remote = Url::parse(req.remote_url).map_err(|e| {
            Error::usage(
                format!("the URL of the other end is not valid: {e}"),
                "give https://host:port/path",
            )
        })?;
        if remote.query().is_some() || !remote.username().is_empty() {
            return Err(Error::internal(
                "refusing to send a URL with a query or user information to a third party (credentials go in headers)",
            ));
        }
        let here_url = self.base.url_for(path, false);
        // Header names exactly as the specification spells them: XRootD 5.5.3 takes the
        // name after `TransferHeader` as written and reads `Authorization` case-sensitively,
        // and reqwest can only send `Transferheaderauthorization`. So the request goes over
        // a connection of our own.
        let mut headers: Vec<(&str, String)> = vec![match way {
            Way::Pull => ("Source", remote.as_str().to_string()),
            Way::Push => ("Destination", remote.as_str().to_string()),
        }];
        headers.push(("Credential", "none".into()));
        headers.push(("Overwrite", if req.overwrite { "T" } else { "F" }.into()));
        // The client compares both sides' checksums itself at the end; a source without
        // one (XRootD gives none unasked) must not fail the copy at the server.
        headers.push(("RequireChecksumVerification", "false".into()));
        if let Some(auth) = req.remote_authorization {
            headers.push(("TransferHeaderAuthorization", auth.expose().to_string()));
        }
        let token = self.token().await?;
        if let Some(t) = &token {
            headers.push(("Authorization", format!("Bearer {}", t.token.expose())));
        }
        let here = redact(&here_url);
        let there = redact(&remote);
        let (from, to) = match way {
            Way::Pull => (there.clone(), here.clone()),
            Way::Push => (here.clone(), there.clone()),
        };
        tracing::debug!(method = "COPY", url = %here, headers = %crate::send::show_pairs(headers.iter().map(|(k, v)| (*k, v.clone()))), "request");
        let mut conn = RawConn::open(&here_url, &self.tls, self.cfg.connect_timeout).await?;
        conn.request("COPY", &here_url, &headers).await?;
        let (status, resp_headers) = conn.head(&here_url).await?;
        tracing::debug!(method = "COPY", url = %here, status, headers = %crate::send::show_pairs(resp_headers.iter().map(|(k, v)| (k.as_str(), v.clone()))), "answer");
        let chunked = resp_headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        let length = resp_headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<u64>().ok());
        let mut body = conn.body(chunked, length);
        if status == 401 {
            // XRootD answers 401 when the token lacks the scope for the copy's path.
            return Err(match self.refused(&token, path, 401) {
                Error::Auth {
                    problem,
                    message,
                    hint,
                } => Error::Auth {
                    problem,
                    message: format!(
                        "{here} refused the third-party copy from {from} to {to}: {message}; the token may lack the scope for it (a pull needs storage.create at the destination, a push storage.read at the source)"
                    ),
                    hint,
                },
                other => other,
            });
        }
        if REFUSALS.contains(&status) || !(200..300).contains(&status) {
            let mut text = Vec::new();
            while let Ok(Some(Ok(b))) =
                tokio::time::timeout(Duration::from_secs(2), body.next()).await
            {
                text.extend_from_slice(&b);
                if text.len() > 2048 {
                    break;
                }
            }
            let reason = short_text(&String::from_utf8_lossy(&text));
            if REFUSALS.contains(&status) {
                return Ok(TpcOutcome::Refused { status, reason });
            }
            return Err(crate::errors::status_to_error(
                status, path, "copy", &reason,
            ));
        }
        // 201/204 without a body: done at once (a server that copies synchronously).
        let mut parser = MarkerParser::default();
        let mut pending: Vec<u8> = Vec::new();
        let idle = self.cfg.idle_timeout.max(Duration::from_secs(60));
        let mut any_body = false;
        loop {
            let chunk = match tokio::time::timeout(idle, body.next()).await {
                Err(_) => {
                    return Err(Error::transport_permanent(
                        to.clone(),
                        format!(
                            "the third-party copy from {from} to {to} sent no word for {}s (last count: {} bytes); the server may still be copying: check the destination",
                            idle.as_secs(),
                            parser.bytes.unwrap_or(0)
                        ),
                    ))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Error::transport_permanent(
                        to.clone(),
                        format!(
                            "the answer to the third-party copy from {from} to {to} broke off after {} bytes: {e}",
                            parser.bytes.unwrap_or(0)
                        ),
                    ))
                }
                Ok(Some(Ok(b))) => b,
            };
            any_body |= !chunk.is_empty();
            pending.extend_from_slice(&chunk);
            while let Some(i) = pending.iter().position(|&c| c == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line);
                if let Some(n) = parser.line(&line) {
                    markers(n);
                }
            }
            if parser.end.is_some() {
                break;
            }
        }
        if parser.end.is_none() && !pending.is_empty() {
            parser.line(&String::from_utf8_lossy(&pending));
        }
        match parser.end {
            Some(Ok(_)) => Ok(TpcOutcome::Done {
                bytes: parser.bytes,
            }),
            Some(Err(reason)) => Err(Error::transport_permanent(
                to.clone(),
                format!(
                    "the third-party copy from {from} to {to} failed after {} bytes: {}",
                    parser.bytes.unwrap_or(0),
                    short_text(&reason)
                ),
            )),
            None if status != 202 && !any_body => Ok(TpcOutcome::Done { bytes: None }),
            None => Err(Error::protocol(
                path,
                Some(status),
                format!(
                    "the third-party copy from {from} to {to} ended without a success or failure line (last count: {} bytes)",
                    parser.bytes.unwrap_or(0)
                ),
            )),
        }
    }
}

#[async_trait]
impl ServerCopyOps for WebDav {
    async fn copy_within(&self, from: &RemotePath, to: &RemotePath, overwrite: bool) -> Result<()> {
        self.check_addressable(from).await?;
        self.check_addressable(to).await?;
        if from.is_root() || to.is_root() {
            return Err(Error::usage(
                "the storage root cannot be copied or replaced",
                "name paths below the root",
            ));
        }
        let src = self.op_stat(from).await?;
        if src.is_dir() && to.starts_with(from) {
            return Err(Error::usage(
                format!("cannot copy {from} into itself ({to})"),
                "choose a destination outside the source",
            ));
        }
        if let Some(dst) = self.exists(to).await? {
            if !overwrite {
                return Err(Error::conflict(
                    to,
                    "the destination exists",
                    "pass -f to replace it, or remove it first",
                ));
            }
            if dst.is_dir() != src.is_dir() {
                return Err(Error::conflict(
                    to,
                    if dst.is_dir() {
                        "a directory is there"
                    } else {
                        "a file is there"
                    },
                    "remove it first, or choose another destination",
                ));
            }
        }
        if !src.is_dir() {
            // A file: over our own connection and read like a third-party copy, because
            // XRootD's HTTP-TPC plugin takes every `COPY` with a `Destination:` as a push
            // (to itself here: it needs our credential in `TransferHeaderAuthorization`)
            // and answers `202` with markers; dCache and the double copy in the namespace
            // and answer `201`/`204` at once.
            let own = match self.cfg.auth {
                Auth::Bearer(_) => self
                    .token()
                    .await?
                    .map(|t| Secret::new(format!("Bearer {}", t.token.expose()))),
                Auth::None => None,
            };
            let dest = self.base.url_for(to, false).to_string();
            let req = TpcRequest {
                remote_url: &dest,
                remote_authorization: own.as_ref(),
                overwrite,
            };
            return match self.third_party(Way::Push, from, &req, &|_| {}).await? {
                TpcOutcome::Done { .. } => Ok(()),
                TpcOutcome::Refused { status, reason } => {
                    Err(crate::errors::status_to_error(status, to, "copy", &reason))
                }
            };
        }
        let mut r = self.req(ext_method("COPY"), from, src.is_dir());
        let dest = self.base.url_for(to, src.is_dir());
        let (n, v) = header("destination", dest.as_str())?;
        r.headers.insert(n, v);
        let (n, v) = header("overwrite", if overwrite { "T" } else { "F" })?;
        r.headers.insert(n, v);
        if src.is_dir() {
            let (n, v) = header("depth", "infinity")?;
            r.headers.insert(n, v);
        }
        r.follow = false;
        let resp = self.send(r).await?;
        match resp.status().as_u16() {
            s if (200..300).contains(&s) => Ok(()),
            412 => Err(Error::conflict(
                to,
                "the destination exists",
                "pass -f to replace it, or remove it first",
            )),
            _ => Err(status_error(resp, to, "copy").await),
        }
    }

    fn url_of(&self, path: &RemotePath) -> String {
        self.base.url_for(path, false).to_string()
    }

    fn same_door(&self, url: &str) -> bool {
        Url::parse(url).is_ok_and(|u| self.base.same_origin(&u))
    }

    async fn transfer_credential(
        &self,
        path: &RemotePath,
        write: bool,
        validity: Duration,
    ) -> Result<Option<Secret>> {
        if let Auth::Bearer(_) = self.cfg.auth {
            return Ok(self
                .token()
                .await?
                .map(|t| Secret::new(format!("Bearer {}", t.token.expose()))));
        }
        if self.cfg.tls.client_identity.is_none() {
            return Ok(None);
        }
        // X.509: the other server cannot use our certificate; a macaroon can stand in.
        let activities = if write {
            vec!["UPLOAD".to_string(), "DELETE".to_string()]
        } else {
            vec!["DOWNLOAD".to_string()]
        };
        match self
            .share(path, &ShareRequest::new(validity, activities))
            .await
        {
            Ok(link) => Ok(Some(Secret::new(format!(
                "Bearer {}",
                link.macaroon.expose()
            )))),
            Err(Error::Unsupported { .. }) => Ok(None),
            Err(e) => {
                tracing::info!(path = %path, error = %e, "no macaroon for the other end of a third-party copy");
                Ok(None)
            }
        }
    }

    async fn pull(
        &self,
        to: &RemotePath,
        req: &TpcRequest<'_>,
        markers: MarkerHook<'_>,
    ) -> Result<TpcOutcome> {
        self.third_party(Way::Pull, to, req, markers).await
    }

    async fn push(
        &self,
        from: &RemotePath,
        req: &TpcRequest<'_>,
        markers: MarkerHook<'_>,
    ) -> Result<TpcOutcome> {
        self.third_party(Way::Push, from, req, markers).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_other_ends_credential_is_redacted_in_logs() {
        let shown = crate::send::show_pairs([
            ("TransferHeaderAuthorization", "Bearer s3cr3t".to_string()),
            ("Source", "https://door:2880/a%20b".to_string()),
        ]);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("Bearer <redacted>"), "{shown}");
        assert!(shown.contains("https://door:2880/a%20b"), "{shown}");
    }
}
