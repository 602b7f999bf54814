//! HTTP third-party copy in the door double, as dCache's WebDAV door does it (the WLCG
//! HTTP-TPC specification):
//!
//! * Pull: `COPY` with `Source: <url>`. The door fetches the source over HTTP(S) as a real
//!   client would (following the source door's redirect to its pool), sending every
//!   `TransferHeader<Name>: value` of the request as `<Name>: value`, and writes the file.
//! * Push: `COPY` with an absolute `Destination:` on another server. The door sends the
//!   file with `PUT` (following the destination door's `307`), with the `TransferHeader*`
//!   headers.
//! * Both answer `202 Accepted` and stream performance markers (`Perf Marker` ...
//!   `Stripe Bytes Transferred: N` ... `End`), then `success: Created` or `failure: ...`.
//!   A refusal comes before any marker with a status (`405` when switched off, `412` for
//!   an existing destination with `Overwrite: F`, `409` for a missing parent).
//! * A copy that fails halfway leaves no file: dCache's pool removes the replica of a
//!   transfer that did not complete (a broken upload is not kept), unless
//!   [`DcacheDouble::tpc_keep_partial`] makes the double leave it for the client to find.
//!
//! The door trusts its own CA for its outgoing requests, plus those given with
//! [`DcacheDouble::tpc_trust`].

use super::paths::DPath;
use super::respond::{header_str, text};
use super::{lock, DcacheDouble, Shared};
use crate::serve::Body;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Which way a third-party copy went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpcWay {
    /// The door fetched from `Source:`.
    Pull,
    /// The door sent to `Destination:`.
    Push,
}

/// One third-party `COPY` the door received. Never holds a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpcRecord {
    /// Pull or push.
    pub way: TpcWay,
    /// The other end's URL as given.
    pub remote_url: String,
    /// Whether a `TransferHeaderAuthorization` header came with it.
    pub transfer_authorization: bool,
    /// The status the door answered.
    pub status: u16,
}

/// The switches and log of third-party copies.
#[derive(Debug, Default)]
pub(super) struct TpcState {
    refuse: bool,
    refuse_pull: bool,
    fail_after: Option<u64>,
    keep_partial: bool,
    trust: Vec<Vec<u8>>,
    log: Vec<TpcRecord>,
}

impl TpcState {
    /// Switches off, trusting `ca` (the door's own) for outgoing requests.
    pub(super) fn trusting(ca: Option<&crate::tls::TestCa>) -> Self {
        Self {
            trust: ca.map(|c| vec![c.ca_der().to_vec()]).unwrap_or_default(),
            ..Self::default()
        }
    }
}

/// Whether a `COPY` is a third-party one (the door's own `COPY` handles the rest).
pub(super) fn is_third_party<B>(shared: &Shared, req: &Request<B>) -> bool {
    if req.method().as_str() != "COPY" {
        return false;
    }
    if header_str(req, "source").is_some() {
        return true;
    }
    match header_str(req, "destination") {
        Some(d) if d.contains("://") => !d.starts_with(&format!("{}/", shared.door_url)),
        _ => false,
    }
}

/// The `TransferHeader*` headers with the prefix taken off.
fn transfer_headers<B>(req: &Request<B>) -> Vec<(String, String)> {
    req.headers()
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str();
            let rest = name
                .get(..14)
                .filter(|p| p.eq_ignore_ascii_case("transferheader"))
                .map(|_| &name[14..])?;
            (!rest.is_empty()).then(|| {
                (
                    rest.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
        })
        .collect()
}

fn http_client(shared: &Shared) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in lock(&shared.tpc).trust.iter() {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.clone()))
            .map_err(|e| format!("a trusted CA: {e}"))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

fn marker(bytes: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "Perf Marker\n    Timestamp: {now}\n    State: Running\n    State description: transfer in progress\n    Stripe Index: 0\n    Stripe Start Time: {now}\n    Stripe Last Transferred: {now}\n    Stripe Transfer Time: 0\n    Stripe Bytes Transferred: {bytes}\n    Stripe Status: RUNNING\n    Total Stripe Count: 1\nEnd\n"
    )
}

/// Sends a request, following redirects by hand (the credential goes to the first host
/// only, as a careful client does); `body` is re-sent after a redirect.
async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(String, String)],
    body: Option<Bytes>,
) -> Result<reqwest::Response, String> {
    let mut url = reqwest::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
    let first = url.clone();
    for _ in 0..5 {
        let mut rb = client.request(method.clone(), url.clone());
        for (k, v) in headers {
            let same = url.origin() == first.origin();
            if k.eq_ignore_ascii_case("authorization") && !same {
                continue;
            }
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(b) = &body {
            rb = rb.body(b.clone());
        }
        let resp = rb.send().await.map_err(|e| format!("{e}"))?;
        if resp.status().is_redirection() {
            let loc = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or("a redirect without Location")?;
            url = url.join(loc).map_err(|e| e.to_string())?;
            continue;
        }
        return Ok(resp);
    }
    Err("too many redirects".into())
}

/// Handles a third-party `COPY` of `path` on this door.
pub(super) async fn copy(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    path: DPath,
) -> Response<Body> {
    let source = header_str(&req, "source");
    let (way, remote) = match &source {
        Some(s) => (TpcWay::Pull, s.clone()),
        None => (
            TpcWay::Push,
            header_str(&req, "destination").unwrap_or_default(),
        ),
    };
    let carried = transfer_headers(&req);
    let mut rec = TpcRecord {
        way,
        remote_url: remote.clone(),
        transfer_authorization: carried
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization")),
        status: 202,
    };
    let resp = prepare(shared, &req, &path, way, &remote, carried).await;
    rec.status = resp.status().as_u16();
    lock(&shared.tpc).log.push(rec);
    resp
}

async fn prepare(
    shared: &Arc<Shared>,
    req: &Request<Incoming>,
    path: &DPath,
    way: TpcWay,
    remote: &str,
    carried: Vec<(String, String)>,
) -> Response<Body> {
    {
        let st = lock(&shared.tpc);
        if st.refuse || (way == TpcWay::Pull && st.refuse_pull) {
            let mut r = text(
                405,
                "Method Not Allowed: third-party copy is disabled on this door",
            );
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, MOVE, PROPFIND"),
            );
            return r;
        }
    }
    if !(remote.starts_with("https://") || remote.starts_with("http://")) {
        return text(400, "Bad Request: the remote URL must be http(s)");
    }
    if remote.contains('?') {
        // dCache would pass it on; the double refuses, so a client that puts a credential
        // in the query is caught.
        return text(400, "Bad Request: a query in the remote URL");
    }
    let overwrite =
        !header_str(req, "overwrite").is_some_and(|v| v.trim().eq_ignore_ascii_case("f"));
    let fs = path.fs(&shared.root);
    let client = match http_client(shared) {
        Ok(c) => c,
        Err(e) => return text(500, &e),
    };
    let (fail_after, keep_partial) = {
        let st = lock(&shared.tpc);
        (st.fail_after, st.keep_partial)
    };
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(8);
    match way {
        TpcWay::Pull => {
            if !path.parent().is_some_and(|p| p.fs(&shared.root).is_dir()) {
                return text(409, "Conflict: parent directory does not exist");
            }
            if fs.is_dir() {
                return text(409, "Conflict: a directory is there");
            }
            if fs.exists() && !overwrite {
                return text(412, "Precondition Failed: destination exists");
            }
            let resp = match send(&client, reqwest::Method::GET, remote, &carried, None).await {
                Ok(r) => r,
                Err(e) => return text(500, &format!("cannot reach the source: {e}")),
            };
            if !resp.status().is_success() {
                // dCache answers the client at once when the source refuses before data.
                let s = resp.status().as_u16();
                return text(
                    if s == 401 || s == 403 { 403 } else { 500 },
                    &format!("the source answered {s} to GET {remote}"),
                );
            }
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from(marker(0))).await;
                let mut file = match tokio::fs::File::create(&fs).await {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = tx
                            .send_data(Bytes::from(format!("failure: cannot write: {e}\n")))
                            .await;
                        return;
                    }
                };
                let mut n: u64 = 0;
                let mut stream = resp.bytes_stream();
                let mut failed = None;
                use futures::StreamExt;
                use tokio::io::AsyncWriteExt;
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => {
                            failed = Some(format!("the source connection broke: {e}"));
                            break;
                        }
                    };
                    let take = match fail_after {
                        Some(limit) if n + chunk.len() as u64 >= limit => {
                            (limit - n.min(limit)) as usize
                        }
                        _ => chunk.len(),
                    };
                    if file.write_all(&chunk[..take]).await.is_err() {
                        failed = Some("cannot write the file".into());
                        break;
                    }
                    n += take as u64;
                    let _ = tx.send_data(Bytes::from(marker(n))).await;
                    if take < chunk.len() || fail_after.is_some_and(|l| n >= l) {
                        failed = Some(format!(
                            "Transfer forcefully killed: the source closed the connection after {n} bytes (dCache double)"
                        ));
                        break;
                    }
                }
                let _ = file.flush().await;
                drop(file);
                let end = match failed {
                    None => "success: Created\n".to_string(),
                    Some(why) => {
                        if !keep_partial {
                            let _ = tokio::fs::remove_file(&fs).await;
                        }
                        format!("failure: {why}\n")
                    }
                };
                let _ = tx.send_data(Bytes::from(end)).await;
            });
        }
        TpcWay::Push => {
            let data = match tokio::fs::read(&fs).await {
                Ok(d) => Bytes::from(d),
                Err(_) => return text(404, "Not found"),
            };
            let remote = remote.to_string();
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from(marker(0))).await;
                let (data, cut) = match fail_after {
                    Some(l) if (l as usize) < data.len() => (data.slice(..l as usize), true),
                    _ => (data, false),
                };
                let mut headers = carried;
                if !overwrite {
                    headers.push(("overwrite".into(), "F".into()));
                }
                let r = send(
                    &client,
                    reqwest::Method::PUT,
                    &remote,
                    &headers,
                    Some(data.clone()),
                )
                .await;
                let end = match r {
                    Ok(resp) if resp.status().is_success() && !cut => {
                        let _ = tx.send_data(Bytes::from(marker(data.len() as u64))).await;
                        "success: Created\n".to_string()
                    }
                    Ok(_) if cut => {
                        let _ = tx.send_data(Bytes::from(marker(data.len() as u64))).await;
                        format!(
                            "failure: Transfer forcefully killed after {} bytes (dCache double)\n",
                            data.len()
                        )
                    }
                    Ok(resp) => format!(
                        "failure: rejected PUT: {} {}\n",
                        resp.status().as_u16(),
                        resp.status().canonical_reason().unwrap_or("")
                    ),
                    Err(e) => format!("failure: cannot reach the destination: {e}\n"),
                };
                let _ = tx.send_data(Bytes::from(end)).await;
            });
        }
    }
    let mut resp = Response::new(body.boxed());
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/perf-marker-stream"),
    );
    resp
}

impl DcacheDouble {
    /// Third-party `COPY` (pull and push) is refused with `405`.
    pub fn tpc_refuse(&self, on: bool) {
        lock(&self.shared.tpc).refuse = on;
    }

    /// Pull (`COPY` with `Source:`) is refused with `405`; push still works.
    pub fn tpc_refuse_pull(&self, on: bool) {
        lock(&self.shared.tpc).refuse_pull = on;
    }

    /// Third-party copies stop after `bytes` bytes with a `failure:` line.
    pub fn tpc_fail_after(&self, bytes: Option<u64>) {
        lock(&self.shared.tpc).fail_after = bytes;
    }

    /// A pull that failed halfway leaves its partial file (dCache removes it).
    pub fn tpc_keep_partial(&self, on: bool) {
        lock(&self.shared.tpc).keep_partial = on;
    }

    /// The door's outgoing requests also trust this CA.
    pub fn tpc_trust(&self, ca: &crate::tls::TestCa) {
        lock(&self.shared.tpc).trust.push(ca.ca_der().to_vec());
    }

    /// The third-party copies received so far.
    pub fn tpc_log(&self) -> Vec<TpcRecord> {
        lock(&self.shared.tpc).log.clone()
    }
}
