//! Sending one request: the bearer token (refreshed once on `401`), redirects followed by
//! hand so credentials never leave the base URL's origin, URLs redacted in every log line.
//! No retries here: the retry layer above the backend owns them.

use std::time::Duration;

use bytes::Bytes;
use ctadata_core::credentials::BearerToken;
use ctadata_core::{AuthProblem, Error, RemotePath, Result};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::backend::WebDav;
use crate::config::Auth;
use crate::errors::transport_error;
use crate::urls::redact;

/// The most redirects followed for one request.
pub(crate) const MAX_REDIRECTS: usize = 10;

/// One request, replayable for redirects.
pub(crate) struct Req<'a> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) path: &'a RemotePath,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    pub(crate) follow: bool,
}

/// The HTTP client every cta-data backend uses: the given rustls config, redirects followed
/// by hand (never by reqwest), HTTP/1.1 with header names in Title-Case (servers such as
/// XRootD 5.5.3 read `Depth`, `Range` or `Authorization` case-sensitively and ignore
/// `depth`), the given timeouts.
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
        .http1_title_case_headers()
        .tcp_nodelay(true)
        .user_agent(concat!("cta-data/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::internal("the HTTP client could not be set up").with_source(e))
}

/// The headers of a request or an answer for `-vv`, `Name: value` separated by `; `, with
/// secrets redacted: credentials (the scheme stays), cookies, and the query of any URL
/// (dCache puts a single-use secret in its redirects).
pub fn show_headers(headers: &HeaderMap) -> String {
    let pairs = headers.iter().map(|(k, v)| {
        (
            k.as_str(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        )
    });
    show_pairs(pairs)
}

/// [`show_headers`] over name and value pairs.
pub fn show_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}: {}", title_case(k), redact_header(k, &v)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `want-digest` as `Want-Digest`.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A header's value fit for a log: credentials and cookies hidden, URLs without queries.
fn redact_header(name: &str, value: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        // `TransferHeaderAuthorization` (third-party copy) carries the other end's credential.
        n if n.ends_with("authorization") => match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} <redacted>"),
            None => "<redacted>".into(),
        },
        "cookie" | "set-cookie" | "x-auth-token" => "<redacted>".into(),
        _ if value.contains('?') => match Url::parse(value) {
            Ok(u) => redact(&u),
            Err(_) => format!("{}?<redacted>", value.split('?').next().unwrap_or("")),
        },
        _ => value.to_string(),
    }
}

impl WebDav {
    /// The credential that is not a token (an X.509 proxy), checked before a request.
    pub(crate) fn check_credential(&self) -> Result<()> {
        match &self.cfg.credential_check {
            Some(c) => c.check(),
            None => Ok(()),
        }
    }

    /// The current token, refreshed first when it has expired (and the credential that is
    /// not a token checked: every request asks for the token first).
    pub(crate) async fn token(&self) -> Result<Option<BearerToken>> {
        self.check_credential()?;
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

    /// A fresh token after the server refused `token` with 401, when the provider has one.
    pub(crate) async fn refreshed(
        &self,
        token: &Option<BearerToken>,
    ) -> Result<Option<BearerToken>> {
        match (&self.cfg.auth, token) {
            (Auth::Bearer(p), Some(t)) => p.refresh(t).await,
            _ => Ok(None),
        }
    }

    pub(crate) fn auth_header(token: &Option<BearerToken>) -> Option<HeaderValue> {
        let t = token.as_ref()?;
        let mut v = HeaderValue::from_str(&format!("Bearer {}", t.token.expose())).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    /// The error for a `401` (or `403` to a token): names the token's source, never the token.
    pub(crate) fn refused(
        &self,
        token: &Option<BearerToken>,
        path: &RemotePath,
        status: u16,
    ) -> Error {
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

    pub(crate) fn transport(&self, url: &Url, e: reqwest::Error) -> Error {
        transport_error(url, e, &self.cfg.tls.describe_trust())
    }

    /// Sends a request with one token refresh on 401 and redirects followed by hand.
    pub(crate) async fn send(&self, req: Req<'_>) -> Result<reqwest::Response> {
        let mut token = self.token().await?;
        let resp = self.send_following(&req, &token).await?;
        self.learned.answer(resp.headers());
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        if let Some(fresh) = self.refreshed(&token).await? {
            token = Some(fresh);
            let resp = self.send_following(&req, &token).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
        }
        Err(self.refused(&token, req.path, 401))
    }

    pub(crate) async fn send_following(
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
            let request = rb.build().map_err(|e| self.transport(&url, e))?;
            tracing::debug!(method = %req.method, url = %redact(&url), headers = %show_headers(request.headers()), "request");
            let resp = self
                .http
                .execute(request)
                .await
                .map_err(|e| self.transport(&url, e))?;
            let status = resp.status();
            tracing::debug!(method = %req.method, url = %redact(&url), status = status.as_u16(), headers = %show_headers(resp.headers()), "answer");
            if req.follow && status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                url = self.redirect_target(&url, resp.headers(), req.path, status.as_u16())?;
                continue;
            }
            return Ok(resp);
        }
        Err(Error::protocol(
            req.path,
            None,
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
    }

    /// Where a redirect points, resolved against the URL that answered it.
    pub(crate) fn redirect_target(
        &self,
        from: &Url,
        headers: &HeaderMap,
        path: &RemotePath,
        status: u16,
    ) -> Result<Url> {
        let loc = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::protocol(path, Some(status), "a redirect without Location"))?;
        let next = from.join(loc).map_err(|e| {
            Error::protocol(
                path,
                Some(status),
                format!("a redirect to an invalid location: {e}"),
            )
        })?;
        tracing::debug!(from = %redact(from), to = %redact(&next), "following redirect");
        Ok(next)
    }

    pub(crate) fn req<'a>(
        &self,
        method: Method,
        path: &'a RemotePath,
        collection: bool,
    ) -> Req<'a> {
        Req {
            method,
            url: self.base.url_for(path, collection),
            path,
            headers: HeaderMap::new(),
            body: None,
            follow: true,
        }
    }
}
