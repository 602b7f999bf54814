//! The WebDAV backend: every `StorageBackend` operation as WebDAV requests, with
//! redirects, retries, digests and credentials handled once for all backends.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ctadata_core::credentials::{BearerToken, TokenProvider};
use ctadata_core::{
    AuthProblem, ByteRange, Capabilities, Checksum, ChecksumAlgorithm, Download, Entry, EntryKind,
    Error, GetOptions, PutOptions, PutOutcome, RemotePath, Result, StorageBackend, Upload,
};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::digest::{parse_digest, WANT_DIGEST};
use crate::propfind::{parse_multistatus, RawResponse, PROPFIND_BODY};
use crate::rawput::{self, RawOutcome, RawPut};
use crate::retry::{parse_retry_after, retryable_status, RetryPolicy};
use crate::tls::{client_config, TlsOptions};
use crate::urls::{redact, Base};

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Nothing beyond TLS (X.509 client certificates live in [`TlsOptions`]).
    None,
    /// `Authorization: Bearer` from a token provider, sent only to the base URL's origin.
    Bearer(Arc<dyn TokenProvider>),
}

/// Everything a WebDAV backend needs.
#[derive(Debug, Clone)]
pub struct WebDavConfig {
    /// The door (or passthrough) URL; paths are relative to it.
    pub url: String,
    /// The backend's name, for messages and capabilities (`dcache`, `x509`).
    pub backend_name: &'static str,
    /// TLS trust and identity.
    pub tls: TlsOptions,
    /// Credentials.
    pub auth: Auth,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading or writing.
    pub read_timeout: Duration,
    /// Wait for `100 Continue` or a redirect before sending a PUT body anyway.
    pub continue_timeout: Duration,
    /// Retries of idempotent requests.
    pub retry: RetryPolicy,
    /// Parallel transfers that suit this server.
    pub default_jobs: usize,
}

impl WebDavConfig {
    /// Defaults for `url` with the given auth.
    pub fn new(url: impl Into<String>, backend_name: &'static str, auth: Auth) -> Self {
        Self {
            url: url.into(),
            backend_name,
            tls: TlsOptions::system(),
            auth,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(300),
            continue_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            default_jobs: 4,
        }
    }
}

/// A WebDAV server seen as a [`StorageBackend`].
#[derive(Debug)]
pub struct WebDav {
    cfg: WebDavConfig,
    base: Base,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    /// Learned: this server answers HEAD without a `Digest`.
    no_digest: std::sync::atomic::AtomicBool,
}

const MAX_REDIRECTS: usize = 10;

/// One request, replayable for retries and redirects.
struct Req<'a> {
    method: Method,
    url: Url,
    path: &'a RemotePath,
    headers: HeaderMap,
    body: Option<Bytes>,
    follow: bool,
}

/// The HTTP client every cta-data backend uses: the given rustls config, redirects followed
/// by hand (never by reqwest), HTTP/1.1, the given timeouts.
pub fn http_client(
    tls: &rustls::ClientConfig,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .read_timeout(read_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .http1_only()
        .tcp_nodelay(true)
        .user_agent(concat!("cta-data/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::config(format!("HTTP client setup failed: {e}"), "report this bug"))
}

impl WebDav {
    /// Builds the client (TLS configuration is read and checked here).
    pub fn new(cfg: WebDavConfig) -> Result<Self> {
        let base = Base::new(&cfg.url)?;
        if base.is_insecure_remote() && matches!(cfg.auth, Auth::Bearer(_)) {
            return Err(Error::config(
                format!(
                    "refusing to send a bearer token over plain http to {}",
                    base.url()
                ),
                "use the https:// URL of the door",
            ));
        }
        let tls = client_config(&cfg.tls)?;
        let http = http_client(&tls, cfg.connect_timeout, cfg.read_timeout)?;
        Ok(Self {
            cfg,
            base,
            http,
            tls,
            no_digest: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        self.base.url()
    }

    async fn token(&self) -> Result<Option<BearerToken>> {
        match &self.cfg.auth {
            Auth::None => Ok(None),
            Auth::Bearer(p) => {
                let t = p.token().await?;
                if t.is_expired() {
                    // Let a refreshing provider do better before giving up.
                    if let Some(fresh) = p.refresh(&t).await? {
                        return Ok(Some(fresh));
                    }
                    return Err(Error::Auth {
                        problem: AuthProblem::Expired,
                        message: format!("the token from {} {}", t.source, t.describe_expiry()),
                        hint: t.fix.clone(),
                    });
                }
                Ok(Some(t))
            }
        }
    }

    fn auth_header(token: &Option<BearerToken>) -> Option<HeaderValue> {
        let t = token.as_ref()?;
        let mut v = HeaderValue::from_str(&format!("Bearer {}", t.token.expose())).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    fn refused(&self, token: &Option<BearerToken>, path: &RemotePath, status: u16) -> Error {
        match token {
            Some(t) => Error::Auth {
                problem: if t.is_expired() { AuthProblem::Expired } else { AuthProblem::Refused },
                message: format!(
                    "the server answered {status} for {path}: it refused the token from {} ({})",
                    t.source,
                    t.describe_expiry()
                ),
                hint: t.fix.clone(),
            },
            None => Error::Auth {
                problem: AuthProblem::Missing,
                message: format!("the server answered {status} for {path}: it wants credentials and none were sent"),
                hint: "configure a credential for this profile (see 'cta-data config show')".into(),
            },
        }
    }

    fn transport(&self, url: &Url, e: &reqwest::Error) -> Error {
        Self::transport_error(url, e, &self.cfg.tls.describe_trust())
    }

    /// The error for a request to `url` that failed below HTTP, `trust` naming the trusted CAs.
    pub fn transport_error(url: &Url, e: &reqwest::Error, trust: &str) -> Error {
        // reqwest's own words ("error sending request for url (...)") repeat the URL, which
        // may hold dCache's single-use secret: keep the causes underneath instead.
        let mut parts: Vec<String> = Vec::new();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            let t = s.to_string();
            if !(t.starts_with("client error")
                || t.contains(url.as_str())
                || parts.iter().any(|p| p.contains(&t)))
            {
                parts.push(t);
            }
            src = s.source();
        }
        if e.is_timeout() {
            parts.insert(0, "timed out".into());
        }
        if parts.is_empty() {
            parts.push(e.without_url_string());
        }
        let msg = parts.join(": ");
        let host = url.host_str().unwrap_or("?");
        // The server refused *our* certificate (X.509 backend): a TLS alert, not a network fault.
        for alert in [
            "UnknownCA",
            "BadCertificate",
            "CertificateRequired",
            "CertificateExpired",
            "CertificateRevoked",
            "AccessDenied",
        ] {
            if msg.contains(&format!("received fatal alert: {alert}")) {
                return Error::Auth {
                    problem: AuthProblem::Refused,
                    message: format!("{host} refused the client certificate during the TLS handshake (alert {alert})"),
                    hint: "check that the server trusts your certificate's CA and that the proxy carries its chain ('cta-data cert info')".into(),
                };
            }
        }
        if msg.contains("certificate")
            || msg.contains("UnknownIssuer")
            || msg.contains("NotValidForName")
        {
            return Error::Transport {
                target: redact(url),
                message: format!(
                    "TLS: the certificate of {host} was not accepted ({msg}); trusted: {trust}"
                ),
            };
        }
        Error::Transport {
            target: redact(url),
            message: msg,
        }
    }

    /// Sends a request with retries (idempotent methods), one token refresh on 401, and
    /// redirects followed by hand so the token never leaves the base URL's origin.
    async fn send(&self, req: Req<'_>) -> Result<reqwest::Response> {
        let mut token = self.token().await?;
        let mut refreshed = false;
        let mut attempt = 0u32;
        loop {
            let result = self.send_following(&req, &token).await;
            let (delay, err) = match result {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    if let (Auth::Bearer(p), Some(t), false) = (&self.cfg.auth, &token, refreshed) {
                        refreshed = true;
                        if let Some(fresh) = p.refresh(t).await? {
                            token = Some(fresh);
                            continue;
                        }
                    }
                    return Err(self.refused(&token, req.path, 401));
                }
                Ok(resp)
                    if retryable_status(resp.status().as_u16())
                        && attempt < self.cfg.retry.max_retries =>
                {
                    let ra = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    (
                        self.cfg.retry.delay(attempt, ra),
                        format!("HTTP {}", resp.status().as_u16()),
                    )
                }
                Ok(resp) => return Ok(resp),
                // A TLS certificate failure does not heal by retrying.
                Err(e)
                    if attempt < self.cfg.retry.max_retries
                        && e.is_transient()
                        && !e.to_string().contains("TLS: the certificate") =>
                {
                    (self.cfg.retry.delay(attempt, None), e.to_string())
                }
                Err(e) => return Err(e),
            };
            attempt += 1;
            tracing::info!(method = %req.method, path = %req.path, attempt, "retrying in {:.1} s after {err}", delay.as_secs_f64());
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_following(
        &self,
        req: &Req<'_>,
        token: &Option<BearerToken>,
    ) -> Result<reqwest::Response> {
        let mut url = req.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut rb = self
                .http
                .request(req.method.clone(), url.clone())
                .headers(req.headers.clone());
            if self.base.same_origin(&url) {
                if let Some(h) = Self::auth_header(token) {
                    rb = rb.header(reqwest::header::AUTHORIZATION, h);
                }
            }
            if let Some(b) = &req.body {
                rb = rb.body(b.clone());
            }
            tracing::debug!(method = %req.method, url = %redact(&url), "request");
            let resp = rb.send().await.map_err(|e| self.transport(&url, &e))?;
            let status = resp.status();
            if req.follow && status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let loc = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| Error::Protocol {
                        path: req.path.to_string(),
                        status: Some(status.as_u16()),
                        message: "a redirect without Location".into(),
                    })?;
                let next = url.join(loc).map_err(|e| Error::Protocol {
                    path: req.path.to_string(),
                    status: Some(status.as_u16()),
                    message: format!("a redirect to an invalid location: {e}"),
                })?;
                tracing::debug!(from = %redact(&url), to = %redact(&next), "following redirect");
                url = next;
                continue;
            }
            return Ok(resp);
        }
        Err(Error::Protocol {
            path: req.path.to_string(),
            status: None,
            message: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    fn req<'a>(&self, method: &str, path: &'a RemotePath, collection: bool) -> Req<'a> {
        Req {
            method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
            url: self.base.url_for(path, collection),
            path,
            headers: HeaderMap::new(),
            body: None,
            follow: true,
        }
    }

    /// Turns an unexpected status into the error a user acts on.
    async fn status_error(&self, resp: reqwest::Response, path: &RemotePath, what: &str) -> Error {
        let status = resp.status().as_u16();
        let excerpt = excerpt(resp).await;
        status_to_error(status, path, what, &excerpt)
    }

    async fn propfind(
        &self,
        path: &RemotePath,
        depth: u8,
        collection: bool,
    ) -> Result<reqwest::Response> {
        let mut r = self.req("PROPFIND", path, collection);
        r.headers.insert(
            "depth",
            HeaderValue::from_static(if depth == 0 { "0" } else { "1" }),
        );
        r.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        );
        r.body = Some(Bytes::from_static(PROPFIND_BODY.as_bytes()));
        self.send(r).await
    }

    /// Reads a multistatus answer, handing each entry (path resolved) to `f`.
    async fn read_multistatus(
        &self,
        resp: reqwest::Response,
        path: &RemotePath,
        mut f: impl FnMut(Option<RemotePath>, RawResponse),
    ) -> Result<()> {
        let status = resp.status().as_u16();
        if status != 207 {
            return Err(self.status_error(resp, path, "list").await);
        }
        let request_url = resp.url().clone();
        let stream = resp.bytes_stream().map_err(std::io::Error::other);
        let reader = tokio::io::BufReader::with_capacity(
            64 * 1024,
            tokio_util::io::StreamReader::new(stream),
        );
        parse_multistatus(reader, |raw| {
            let p = self.base.href_to_path(&raw.href, &request_url);
            f(p, raw)
        })
        .await
        .map_err(|e| Error::Protocol {
            path: path.to_string(),
            status: Some(207),
            message: e.0,
        })?;
        Ok(())
    }

    fn entry(path: RemotePath, raw: RawResponse) -> Entry {
        let mut e = Entry::new(
            path,
            if raw.is_collection {
                EntryKind::Directory
            } else {
                EntryKind::File
            },
        );
        e.size = if raw.is_collection { None } else { raw.size };
        e.mtime = raw.mtime;
        e.etag = raw.etag;
        e.checksums = raw.checksums;
        e.locality = raw.locality;
        e
    }

    async fn head_digest(&self, path: &RemotePath) -> Result<(Option<u64>, Vec<Checksum>)> {
        let mut r = self.req("HEAD", path, false);
        r.headers
            .insert("want-digest", HeaderValue::from_static(WANT_DIGEST));
        let resp = self.send(r).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp, path, "check").await);
        }
        let len = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let sums = resp
            .headers()
            .get_all("digest")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_digest)
            .collect();
        Ok((len, sums))
    }

    async fn exists(&self, path: &RemotePath) -> Result<Option<Entry>> {
        match self.stat(path).await {
            Ok(e) => Ok(Some(e)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_quietly(&self, path: &RemotePath) {
        let r = self.req("DELETE", path, false);
        match self.send(r).await {
            Ok(resp) if resp.status().is_success() => {
                tracing::info!(path = %path, "removed the bad upload")
            }
            Ok(resp) => {
                tracing::warn!(path = %path, status = resp.status().as_u16(), "could not remove the bad upload")
            }
            Err(e) => tracing::warn!(path = %path, "could not remove the bad upload: {e}"),
        }
    }

    /// One PUT, door then pool: the body goes only where the server says, once.
    async fn put_once(
        &self,
        path: &RemotePath,
        body: &Upload,
    ) -> Result<(u64, Checksum, Vec<Checksum>)> {
        let mut url = self.base.url_for(path, false);
        let mut token = self.token().await?;
        let mut refreshed = false;
        let mut attempt = 0;
        let mut hops = 0;
        loop {
            let mut headers = vec![("Want-Digest".to_string(), WANT_DIGEST.to_string())];
            let same_origin = self.base.same_origin(&url);
            if let (true, Some(t)) = (same_origin, &token) {
                headers.push((
                    "Authorization".into(),
                    format!("Bearer {}", t.token.expose()),
                ));
            }
            let outcome = rawput::put(RawPut {
                url: &url,
                headers,
                // The door is asked to wait; a pool location takes the body at once.
                expect_continue: same_origin,
                body,
                continue_timeout: self.cfg.continue_timeout,
                connect_timeout: self.cfg.connect_timeout,
                io_timeout: self.cfg.read_timeout,
                tls: self.tls.clone(),
            })
            .await;
            let answer = match outcome {
                Ok(RawOutcome::Sent {
                    answer,
                    bytes,
                    adler32,
                }) if (200..300).contains(&answer.status) => {
                    let sums = answer
                        .headers
                        .iter()
                        .filter(|(k, _)| k == "digest")
                        .flat_map(|(_, v)| parse_digest(v))
                        .collect();
                    return Ok((bytes, adler32, sums));
                }
                Ok(RawOutcome::Sent { answer, .. }) | Ok(RawOutcome::Answered(answer)) => answer,
                Err(e) if e.is_transient() && attempt < self.cfg.retry.max_retries => {
                    tokio::time::sleep(self.cfg.retry.delay(attempt, None)).await;
                    attempt += 1;
                    tracing::info!(path = %path, attempt, "retrying the upload after: {e}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            match answer.status {
                301 | 302 | 303 | 307 | 308 if hops < MAX_REDIRECTS => {
                    let loc = answer.header("location").ok_or_else(|| Error::Protocol {
                        path: path.to_string(),
                        status: Some(answer.status),
                        message: "a redirect without Location".into(),
                    })?;
                    url = url.join(loc).map_err(|e| Error::Protocol {
                        path: path.to_string(),
                        status: Some(answer.status),
                        message: format!("a redirect to an invalid location: {e}"),
                    })?;
                    tracing::debug!(to = %redact(&url), "upload redirected");
                    hops += 1;
                }
                401 if !refreshed => {
                    refreshed = true;
                    let fresh = match (&self.cfg.auth, &token) {
                        (Auth::Bearer(p), Some(t)) => p.refresh(t).await?,
                        _ => None,
                    };
                    match fresh {
                        Some(f) => {
                            token = Some(f);
                            url = self.base.url_for(path, false);
                        }
                        None => return Err(self.refused(&token, path, 401)),
                    }
                }
                401 => return Err(self.refused(&token, path, 401)),
                s if retryable_status(s) && attempt < self.cfg.retry.max_retries => {
                    let ra = answer.header("retry-after").and_then(parse_retry_after);
                    tokio::time::sleep(self.cfg.retry.delay(attempt, ra)).await;
                    attempt += 1;
                    url = self.base.url_for(path, false);
                }
                s => return Err(status_to_error(s, path, "upload", &answer.excerpt)),
            }
        }
    }

    async fn mkcol(&self, path: &RemotePath) -> Result<reqwest::Response> {
        let r = self.req("MKCOL", path, true);
        self.send(r).await
    }
}

/// Reads the first bytes of an error body, as text without tags.
async fn excerpt(resp: reqwest::Response) -> String {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Ok(Some(Ok(b))) = tokio::time::timeout(Duration::from_secs(2), s.next()).await {
        out.extend_from_slice(&b);
        if out.len() > 2048 {
            break;
        }
    }
    short_text(&String::from_utf8_lossy(&out))
}

/// Removes tags and squeezes white space, keeping at most 200 characters.
pub fn short_text(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let squeezed: Vec<&str> = out.split_whitespace().collect();
    let t = squeezed.join(" ");
    if t.chars().count() > 200 {
        format!("{}...", t.chars().take(200).collect::<String>())
    } else {
        t
    }
}

/// The error for an unexpected status.
pub fn status_to_error(status: u16, path: &RemotePath, what: &str, excerpt: &str) -> Error {
    let excerpt = short_text(excerpt);
    let detail = if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    };
    match status {
        401 => Error::Auth {
            problem: AuthProblem::Refused,
            message: format!("the server answered 401 for {path}"),
            hint: "check the profile's credential ('cta-data config show')".into(),
        },
        403 => Error::PermissionDenied {
            path: path.to_string(),
            message: format!("the server refused to {what} it (403){detail}"),
        },
        404 | 410 => Error::NotFound {
            path: path.to_string(),
            detail: None,
        },
        405 if what == "create directory" => Error::conflict(
            path,
            "it already exists",
            "use 'mkdir -p' to accept an existing directory",
        ),
        409 => Error::NotFound {
            path: path
                .parent()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "/".into()),
            detail: Some(format!("the parent of {path} does not exist (409){detail}")),
        },
        412 => Error::conflict(path, "the target exists", "pass --force to replace it"),
        413 | 507 => Error::Protocol {
            path: path.to_string(),
            status: Some(status),
            message: format!(
                "the storage has no room for this file{detail}; contact the data center"
            ),
        },
        416 => Error::Protocol {
            path: path.to_string(),
            status: Some(416),
            message: "the requested byte range is outside the file".into(),
        },
        502..=504 | 429 => Error::Transport {
            target: path.to_string(),
            message: format!(
                "the server is unavailable (HTTP {status}) even after retries{detail}"
            ),
        },
        _ => Error::Protocol {
            path: path.to_string(),
            status: Some(status),
            message: format!("{what} failed{detail}"),
        },
    }
}

#[async_trait]
impl StorageBackend for WebDav {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: self.cfg.backend_name,
            write: true,
            mkdir: true,
            delete: true,
            rename: true,
            ranged_reads: true,
            etags: true,
            checksums: vec![ChecksumAlgorithm::Adler32, ChecksumAlgorithm::Md5],
            default_jobs: self.cfg.default_jobs,
        }
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        let resp = self.propfind(path, 0, false).await?;
        let mut found = None;
        self.read_multistatus(resp, path, |p, raw| {
            if found.is_none() && !raw.bad_status && p.as_ref() == Some(path) {
                found = Some(Self::entry(path.clone(), raw));
            }
        })
        .await?;
        let mut found = found.ok_or_else(|| Error::Protocol {
            path: path.to_string(),
            status: Some(207),
            message: "the server's answer does not describe the path asked for".into(),
        })?;
        // Some servers (nginx dav-ext) list no getetag; their HEAD has the ETag that
        // resumes and conditional reads need.
        if found.is_file() && found.etag.is_none() {
            let resp = self.send(self.req("HEAD", path, false)).await?;
            if resp.status().is_success() {
                found.etag = resp
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
        }
        Ok(found)
    }

    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let resp = self.propfind(dir, 1, true).await?;
        let mut out = Vec::new();
        let mut itself: Option<bool> = None;
        self.read_multistatus(resp, dir, |p, raw| {
            let Some(p) = p else {
                tracing::warn!(dir = %dir, href = %raw.href, "ignoring an href outside the storage root");
                return;
            };
            if raw.bad_status {
                return;
            }
            if &p == dir {
                itself = Some(raw.is_collection);
            } else if p.parent().as_ref() == Some(dir) {
                out.push(Self::entry(p, raw));
            } else {
                tracing::warn!(dir = %dir, entry = %p, "ignoring an entry that is not a child of the listed directory");
            }
        })
        .await?;
        if itself == Some(false) && out.is_empty() {
            return Err(Error::conflict(
                dir,
                "it is a file, not a directory",
                "use 'cta-data stat' for a file",
            ));
        }
        Ok(out)
    }

    async fn get(&self, path: &RemotePath, opts: GetOptions) -> Result<Download> {
        let mut r = self.req("GET", path, false);
        if opts.want_checksums {
            r.headers
                .insert("want-digest", HeaderValue::from_static(WANT_DIGEST));
        }
        if let Some(range) = opts.range {
            r.headers.insert(
                reqwest::header::RANGE,
                HeaderValue::from_str(&range.to_http_header())
                    .map_err(|_| Error::usage("bad range", "report this bug"))?,
            );
        }
        if let Some(tag) = &opts.if_match {
            if let Ok(v) = HeaderValue::from_str(tag) {
                r.headers.insert(reqwest::header::IF_MATCH, v);
            }
        }
        let resp = self.send(r).await?;
        let status = resp.status().as_u16();
        match status {
            200 | 206 => {}
            412 => {
                return Err(Error::conflict(
                    path,
                    "the file changed on the server since the transfer began",
                    "rerun to start it again",
                ))
            }
            _ => return Err(self.status_error(resp, path, "read").await),
        }
        let h = resp.headers();
        let text = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_length: Option<u64> = text("content-length").and_then(|v| v.parse().ok());
        let (size, range) = if status == 206 {
            let cr = text("content-range").unwrap_or_default();
            match parse_content_range(&cr) {
                Some((start, end, total)) => (total, Some(start..end + 1)),
                None => {
                    return Err(Error::Protocol {
                        path: path.to_string(),
                        status: Some(206),
                        message: format!("unreadable Content-Range '{cr}'"),
                    })
                }
            }
        } else {
            if let Some(ByteRange::From(s) | ByteRange::Bounded { start: s, .. }) = opts.range {
                if s > 0 {
                    return Err(Error::Protocol {
                        path: path.to_string(),
                        status: Some(200),
                        message: "the server ignored the byte range and sent the whole file".into(),
                    });
                }
            }
            (content_length, content_length.map(|l| 0..l))
        };
        let checksums = if status == 200 || opts.want_checksums {
            h.get_all("digest")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(parse_digest)
                .collect()
        } else {
            Vec::new()
        };
        let etag = text("etag");
        let mtime = text("last-modified").and_then(|v| httpdate::parse_http_date(&v).ok());
        let expected = content_length;
        let p = path.clone();
        let url = resp.url().clone();
        let body = resp.bytes_stream();
        let stream =
            futures::stream::unfold((body, false, 0u64), move |(mut body, done, received)| {
                let p = p.clone();
                let url = url.clone();
                async move {
                    if done {
                        return None;
                    }
                    match body.next().await {
                        Some(Ok(b)) => {
                            let n = received + b.len() as u64;
                            Some((Ok(b), (body, false, n)))
                        }
                        Some(Err(e)) => Some((
                            Err(Error::Transport {
                                target: redact(&url),
                                message: format!(
                                    "the download of {p} broke after {received} bytes: {}",
                                    e.without_url()
                                ),
                            }),
                            (body, true, received),
                        )),
                        None => match expected {
                            Some(exp) if exp != received => Some((
                                Err(Error::Transport {
                                    target: redact(&url),
                                    message: format!(
                                        "the download of {p} ended after {received} of {exp} bytes"
                                    ),
                                }),
                                (body, true, received),
                            )),
                            _ => None,
                        },
                    }
                }
            })
            .boxed();
        Ok(Download {
            path: path.clone(),
            size,
            range,
            mtime,
            etag,
            checksums,
            stream,
        })
    }

    async fn put(&self, path: &RemotePath, body: Upload, opts: PutOptions) -> Result<PutOutcome> {
        if path.is_root() {
            return Err(Error::conflict(
                path,
                "the root is a directory",
                "give a file name",
            ));
        }
        if opts.create_parents {
            if let Some(parent) = path.parent() {
                self.mkdir(&parent, true).await?;
            }
        }
        let existing = if opts.known_absent {
            None
        } else {
            self.exists(path).await?
        };
        let upload_path = match &existing {
            Some(e) if e.is_dir() => {
                return Err(Error::conflict(
                    path,
                    "a directory is there",
                    "give the file's full path, or end the path with '/'",
                ))
            }
            Some(_) if !opts.overwrite => {
                return Err(Error::conflict(
                    path,
                    "a file is already there",
                    "pass --force to replace it",
                ))
            }
            // Replace by upload-then-move, so a failed upload leaves the old file.
            Some(_) => path.parent().unwrap_or_default().join(&format!(
                ".{}.cta-data-upload-{:08x}",
                path.name(),
                fastrand::u32(..)
            ))?,
            None => path.clone(),
        };
        let result = async {
            let (bytes, sent_sum, answer_sums) = match self.put_once(&upload_path, &body).await {
                Ok(x) => x,
                // Servers disagree on how to say "no parent" (409, nginx 500): ask.
                Err(e @ (Error::Protocol { .. } | Error::NotFound { .. })) => {
                    if let Some(parent) = path.parent() {
                        if self.exists(&parent).await?.is_none() {
                            return Err(Error::NotFound {
                                path: parent.to_string(),
                                detail: Some(format!("the parent directory of {path} does not exist; 'put' creates it, or use 'mkdir -p'")),
                            });
                        }
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            // The server's checksum of what it stored: from the PUT's answer when it sent
            // one, else from a HEAD (skipped once a server has shown it never gives one).
            let sums = if Checksum::find(&answer_sums, &ChecksumAlgorithm::Adler32).is_some() {
                answer_sums
            } else if self.no_digest.load(std::sync::atomic::Ordering::Relaxed) {
                Vec::new()
            } else {
                let (len, sums) = self.head_digest(&upload_path).await?;
                if let Some(l) = len.filter(|&l| l != bytes && l != 0) {
                    return Err(Error::Integrity {
                        path: path.to_string(),
                        message: format!("sent {bytes} bytes but the server stored {l}; the remote copy was removed"),
                    });
                }
                if sums.is_empty() {
                    tracing::debug!("the server gives no Digest: later uploads rely on its status and length");
                    self.no_digest.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                sums
            };
            let mut verified = Vec::new();
            if let Some(server) = Checksum::find(&sums, &ChecksumAlgorithm::Adler32) {
                if server.value != sent_sum.value {
                    return Err(Error::Integrity {
                        path: path.to_string(),
                        message: format!("adler32 of what was sent is {} but the server stored {}; the remote copy was removed", sent_sum.value, server.value),
                    });
                }
                verified.push(sent_sum.clone());
            }
            if let Some(want) = &opts.checksum {
                if want.algorithm == ChecksumAlgorithm::Adler32 && want.value != sent_sum.value {
                    return Err(Error::Integrity { path: path.to_string(), message: format!("adler32 {} differs from the expected {}", sent_sum.value, want.value) });
                }
            }
            if upload_path != *path {
                self.rename(&upload_path, path, true).await?;
            }
            Ok(PutOutcome { path: path.clone(), size: bytes, checksums: verified })
        }
        .await;
        if let Err(Error::Integrity { .. }) = &result {
            self.delete_quietly(&upload_path).await;
        } else if result.is_err() && upload_path != *path {
            self.delete_quietly(&upload_path).await;
        }
        result
    }

    async fn mkdir(&self, path: &RemotePath, parents: bool) -> Result<()> {
        if path.is_root() {
            return if parents {
                Ok(())
            } else {
                Err(Error::conflict(path, "the root exists", "use 'mkdir -p'"))
            };
        }
        if parents {
            match self.exists(path).await? {
                Some(e) if e.is_dir() => return Ok(()),
                Some(_) => {
                    return Err(Error::conflict(
                        path,
                        "a file is there",
                        "choose another name",
                    ))
                }
                None => {}
            }
            // Find the deepest existing ancestor, then create downwards.
            let ancestors = path.ancestors();
            let mut start = 0;
            for (i, a) in ancestors.iter().enumerate().rev() {
                match self.exists(a).await? {
                    Some(e) if e.is_dir() => {
                        start = i + 1;
                        break;
                    }
                    Some(_) => {
                        return Err(Error::conflict(
                            a,
                            "a file is in the way",
                            "choose another path",
                        ))
                    }
                    None => {}
                }
            }
            for a in ancestors[start..].iter().chain(std::iter::once(path)) {
                let resp = self.mkcol(a).await?;
                let s = resp.status().as_u16();
                // 405: created meanwhile by a parallel transfer.
                if !(resp.status().is_success() || s == 405) {
                    return Err(self.status_error(resp, a, "create directory").await);
                }
            }
            return Ok(());
        }
        let resp = self.mkcol(path).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        let s = resp.status().as_u16();
        if s == 409 {
            return Err(Error::NotFound {
                path: path.parent().unwrap_or_default().to_string(),
                detail: Some("the parent directory does not exist; use 'mkdir -p'".into()),
            });
        }
        Err(self.status_error(resp, path, "create directory").await)
    }

    async fn delete(&self, path: &RemotePath, recursive: bool) -> Result<()> {
        if path.is_root() {
            return Err(Error::usage(
                "refusing to delete the storage root",
                "name a path below the root",
            ));
        }
        let e = self.stat(path).await?;
        if e.is_dir() && !recursive && !self.list(path).await?.is_empty() {
            return Err(Error::conflict(
                path,
                "the directory is not empty",
                "use 'rm -r' to delete it with its contents",
            ));
        }
        let r = self.req("DELETE", path, e.is_dir());
        let resp = self.send(r).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(resp, path, "delete").await)
        }
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath, overwrite: bool) -> Result<()> {
        if from.is_root() || to.is_root() {
            return Err(Error::usage(
                "the storage root cannot be moved",
                "name paths below the root",
            ));
        }
        if to.starts_with(from) {
            return Err(Error::usage(
                format!("cannot move {from} into itself ({to})"),
                "choose a destination outside the source",
            ));
        }
        let src = self.stat(from).await?;
        if let Some(dst) = self.exists(to).await? {
            if !overwrite || dst.is_dir() {
                return Err(Error::conflict(
                    to,
                    "the destination exists",
                    "pass --force to replace a file, or remove it first",
                ));
            }
        }
        let mut r = self.req("MOVE", from, src.is_dir());
        let dest = self.base.url_for(to, src.is_dir());
        r.headers.insert(
            HeaderName::from_static("destination"),
            HeaderValue::from_str(dest.as_str())
                .map_err(|_| Error::usage("bad destination", "report this bug"))?,
        );
        r.headers.insert(
            HeaderName::from_static("overwrite"),
            HeaderValue::from_static(if overwrite { "T" } else { "F" }),
        );
        r.follow = false;
        let resp = self.send(r).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(resp, to, "move").await)
        }
    }
}

/// Parses `bytes 0-9/100` (the total may be `*`).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let v = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = v.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let total = if total.trim() == "*" {
        None
    } else {
        Some(total.trim().parse().ok()?)
    };
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, total))
}

trait WithoutUrl {
    fn without_url_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_string(&self) -> String {
        let mut s = String::new();
        if self.is_connect() {
            s.push_str("connection failed");
        } else if self.is_body() || self.is_decode() {
            s.push_str("the answer's body broke off");
        } else if self.is_request() {
            s.push_str("the request failed");
        } else {
            s.push_str("HTTP error");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some((0, 9, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn error_bodies_are_shortened() {
        assert_eq!(
            short_text("<html><body><h1>Forbidden</h1>\n<p>no  access</p></body></html>"),
            "Forbidden no access"
        );
        assert!(short_text(&"x".repeat(500)).len() < 210);
    }

    #[test]
    fn statuses_map_to_what_users_do() {
        let p = RemotePath::parse("a/b").unwrap();
        assert!(matches!(
            status_to_error(403, &p, "read", ""),
            Error::PermissionDenied { .. }
        ));
        assert!(matches!(
            status_to_error(404, &p, "read", ""),
            Error::NotFound { .. }
        ));
        let e = status_to_error(409, &p, "upload", "");
        assert!(e.to_string().contains("/a"), "{e}");
        assert!(matches!(
            status_to_error(507, &p, "upload", ""),
            Error::Protocol {
                status: Some(507),
                ..
            }
        ));
        assert!(status_to_error(500, &p, "read", "boom")
            .to_string()
            .contains("boom"));
    }
}
