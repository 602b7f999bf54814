//! What both platform services share: the hub token, the HTTP client, and the reading of
//! answers that mean "your token was not accepted" (no retries: the retry layer owns them).

use std::time::Duration;

use ctadata_core::config::{EnvSnapshot, ResolvedProfile};
use ctadata_core::credentials::{BearerToken, StaticSource, TokenChain, TokenSource};
use ctadata_core::{AuthProblem, Error, Result};
use ctadata_webdav::errors::transport_error;
use ctadata_webdav::profile_tls;
use ctadata_webdav::urls::{is_loopback, redact};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{RequestBuilder, Response, Url};

/// The variable JupyterHub sets in every single-user server (and the old client read).
pub const HUB_TOKEN_VAR: &str = "JUPYTERHUB_API_TOKEN";

/// Where the hub of a service lives, for the token page and the `api/user` call.
#[derive(Debug, Clone)]
pub struct Hub {
    /// `https://platform.cta.cscs.ch/hub/`, when the service URL shows where the hub is.
    base: Option<Url>,
}

impl Hub {
    /// The hub of a service at `service` (`https://host/prefix/services/<name>/` has its
    /// hub at `https://host/prefix/hub/`; any other URL at `https://host/hub/`).
    pub fn of_service(service: &Url) -> Self {
        let path = service.path();
        let prefix = match path.find("/services/") {
            Some(i) => &path[..i],
            None => "",
        };
        let base = service.join(&format!("{prefix}/hub/")).ok();
        Self { base }
    }

    /// The page where a user makes a token (`https://.../hub/token`).
    pub fn token_page(&self) -> String {
        match self.base.as_ref().and_then(|b| b.join("token").ok()) {
            Some(u) => redact(&u),
            None => "the hub's token page (Token, in the hub's control panel)".into(),
        }
    }

    /// The hub API call that names the token's owner.
    pub fn api_user(&self) -> Option<Url> {
        self.base.as_ref().and_then(|b| b.join("api/user").ok())
    }
}

/// The token sources of the platform profile, in order: `--token-file` (or the profile's
/// `token_file`), `CTADATA_TOKEN`, `JUPYTERHUB_API_TOKEN`.
pub fn token_sources(profile: &ResolvedProfile, env: &EnvSnapshot) -> Vec<StaticSource> {
    let mut v = Vec::new();
    if let Some(p) = &profile.profile.token_file {
        v.push(StaticSource::File {
            path: p.clone(),
            label: profile
                .origins
                .get("token_file")
                .cloned()
                .unwrap_or_else(|| "token_file".into()),
        });
    }
    for name in ["CTADATA_TOKEN", HUB_TOKEN_VAR] {
        v.push(StaticSource::Var {
            name: name.into(),
            value: env.get(name).map(str::to_string),
        });
    }
    v
}

/// A connection to one of the platform's services with the hub token.
#[derive(Debug)]
pub struct Session {
    /// The HTTP client: the profile's trust, no redirects followed.
    pub http: reqwest::Client,
    /// The service's URL (with a trailing `/`).
    pub base: Url,
    /// The service's name for messages (`downloadservice`, `certificateservice`).
    pub service: &'static str,
    /// Where the hub is.
    pub hub: Hub,
    sources: Vec<StaticSource>,
    chain: TokenChain,
    trust: String,
    /// Longest silence inside an answer's body.
    pub idle_timeout: Duration,
}

fn parse_url(raw: &str, key: &str, profile: &str) -> Result<Url> {
    let mut s = raw.trim().to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    let url = Url::parse(&s).map_err(|e| {
        Error::config(
            format!("the {key} '{raw}' of profile '{profile}' is not a URL: {e}"),
            "give a URL like https://platform.cta.cscs.ch/services/downloadservice/",
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::config(
            format!("the {key} '{raw}' of profile '{profile}' is not an http(s) URL"),
            "give an https:// URL",
        ));
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(
            format!("the {key} of profile '{profile}' carries a query or user information"),
            "give the service URL alone; the hub token goes in JUPYTERHUB_API_TOKEN or --token-file",
        ));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(Error::config(
            format!(
                "refusing to send the hub token over plain http to {}",
                redact(&url)
            ),
            "use the https:// URL of the service",
        ));
    }
    Ok(url)
}

impl Session {
    /// A session with the service at `url` (the profile's `key`), with the profile's trust,
    /// timeouts and token sources.
    pub fn new(
        profile: &ResolvedProfile,
        env: &EnvSnapshot,
        insecure: bool,
        url: &str,
        key: &str,
        service: &'static str,
    ) -> Result<Self> {
        let base = parse_url(url, key, &profile.name)?;
        let p = &profile.profile;
        let tls = profile_tls(p, env, insecure);
        let trust = tls.describe_trust();
        let config = ctadata_webdav::tls::client_config(&tls)?;
        let http = ctadata_webdav::http_client(
            &config,
            Duration::from_secs(p.connect_timeout.unwrap_or(15)),
            Duration::from_secs(p.read_timeout.unwrap_or(300)),
        )?;
        let sources = token_sources(profile, env);
        let hub = Hub::of_service(&base);
        let chain = TokenChain::new(
            sources
                .iter()
                .cloned()
                .map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn TokenSource>)
                .collect(),
            String::new(),
        );
        Ok(Self {
            http,
            base,
            service,
            hub,
            sources,
            chain,
            trust,
            idle_timeout: Duration::from_secs(p.idle_timeout.unwrap_or(60).max(1)),
        })
    }

    /// What to do about a missing or refused token.
    pub fn token_fix(&self) -> String {
        format!(
            "make a token at {} and export {HUB_TOKEN_VAR}=<token> (inside the platform's JupyterLab it is set for you), or give it with --token-file FILE",
            self.hub.token_page()
        )
    }

    /// The hub token to send, or an error naming every source that was tried.
    pub async fn token(&self) -> Result<BearerToken> {
        if let Some(t) = self.chain.find().await? {
            return Ok(t.with_fix(self.token_fix()));
        }
        let tried: Vec<String> = self.sources.iter().map(|s| s.describe()).collect();
        let blank: Vec<String> = self
            .sources
            .iter()
            .filter(|s| match s {
                StaticSource::Var { value, .. } => value.is_some(),
                StaticSource::File { path, .. } => path.is_file(),
                _ => false,
            })
            .map(|s| s.describe())
            .collect();
        let message = if blank.is_empty() {
            format!("no hub token found; tried, in order: {}", tried.join(", "))
        } else {
            format!(
                "the hub token in {} is empty or only white space, and no other source has one (tried, in order: {})",
                blank.join(" and in "),
                tried.join(", ")
            )
        };
        Err(Error::Auth {
            problem: AuthProblem::Missing,
            message,
            hint: self.token_fix(),
        })
    }

    /// `Authorization: Bearer <token>`, marked sensitive so it is never logged.
    pub fn auth_value(&self, t: &BearerToken) -> Result<HeaderValue> {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", t.token.expose())).map_err(|_| {
            Error::Auth {
                problem: AuthProblem::Refused,
                message: format!(
                    "the hub token from {} holds characters that cannot be sent in an HTTP header (a line break inside it?)",
                    t.source
                ),
                hint: self.token_fix(),
            }
        })?;
        v.set_sensitive(true);
        Ok(v)
    }

    /// A URL below the service: `endpoint` then the encoded `rest` (which may be empty).
    pub fn url(&self, endpoint: &str, rest: &str) -> Url {
        let mut s = self.base.as_str().to_string();
        s.push_str(endpoint);
        if !rest.is_empty() {
            s.push('/');
            s.push_str(rest);
        }
        Url::parse(&s).unwrap_or_else(|_| self.base.clone())
    }

    /// The error for a failed connection to `url`, without the URL's query.
    pub fn transport(&self, url: &Url, e: reqwest::Error) -> Error {
        transport_error(url, e, &self.trust)
    }

    /// Sends the request `build` makes with the token. Every status comes back to the
    /// caller; failures below HTTP come back classified (temporary or not). No retries
    /// here: the retry layer above the backend owns them.
    pub async fn send(
        &self,
        url: &Url,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(Response, BearerToken)> {
        let token = self.token().await?;
        let auth = self.auth_value(&token)?;
        let rb = build(&self.http).header(reqwest::header::AUTHORIZATION, auth);
        tracing::debug!(url = %redact(url), "request");
        match rb.send().await {
            Ok(resp) => {
                tracing::debug!(url = %redact(url), status = resp.status().as_u16(), "answer");
                Ok((resp, token))
            }
            Err(e) => Err(self.transport(url, e)),
        }
    }

    /// The error for an answer that says the token was not accepted (`401`, a redirect to
    /// the login page, `403` for missing scopes), or `None` for any other answer.
    pub fn auth_failure(
        &self,
        status: u16,
        location: Option<&str>,
        body: &str,
        token: &BearerToken,
    ) -> Option<Error> {
        let refused = |message: String, hint: String| Error::Auth {
            problem: AuthProblem::Refused,
            message,
            hint,
        };
        match status {
            401 => {
                let said = serde_json::from_str::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
                    .unwrap_or_else(|| short_text(body));
                Some(refused(
                    format!(
                        "the {} refused the hub token from {} (HTTP 401: {said})",
                        self.service, token.source
                    ),
                    self.token_fix(),
                ))
            }
            301..=303 | 307 | 308 => {
                let to = location
                    .and_then(|l| self.base.join(l).ok())
                    .map(|u| {
                        let mut u = u;
                        u.set_query(None);
                        u.to_string()
                    })
                    .unwrap_or_else(|| "another page".into());
                Some(refused(
                    format!(
                        "the {} sent a redirect to {to} (the hub's login page) instead of an answer: it did not accept the hub token from {}",
                        self.service, token.source
                    ),
                    self.token_fix(),
                ))
            }
            403 if body.to_ascii_lowercase().contains("scope") => Some(refused(
                format!(
                    "the hub token from {} is not allowed to use the {} (HTTP 403: {}); it needs the scope access:services!service={}",
                    token.source,
                    self.service,
                    short_text(body),
                    self.service
                ),
                format!(
                    "make a token with access to the {} at {}, or ask the CTA-CH DC team for access",
                    self.service,
                    self.hub.token_page()
                ),
            )),
            _ => None,
        }
    }

    /// The error for a `200` whose body is an HTML page where data or JSON was expected:
    /// the hub's login page (or another page the proxy put in front), never data.
    pub fn html_instead_of_data(&self, what: &str, body: &str, token: &BearerToken) -> Error {
        Error::Auth {
            problem: AuthProblem::Refused,
            message: format!(
                "the {} answered {what} with an HTML page ('{}') instead of data: most likely the hub's login page, so the hub token from {} was not accepted",
                self.service,
                short_text(body).chars().take(80).collect::<String>(),
                token.source
            ),
            hint: self.token_fix(),
        }
    }

    /// Refuses a `200` whose body is an HTML page where data or JSON was expected (see
    /// [`Session::html_instead_of_data`]); `what` names the answer (`the listing of ...`).
    pub fn refuse_html(
        &self,
        content_type: Option<&str>,
        body: &[u8],
        what: &str,
        token: &BearerToken,
    ) -> Result<()> {
        if looks_like_html(content_type, body) {
            return Err(self.html_instead_of_data(what, &String::from_utf8_lossy(body), token));
        }
        Ok(())
    }
}

/// True when the answer is declared as HTML or its body starts like an HTML page.
pub fn looks_like_html(content_type: Option<&str>, body: &[u8]) -> bool {
    let declared = content_type.is_some_and(|c| c.to_ascii_lowercase().contains("text/html"));
    let head: String = String::from_utf8_lossy(&body[..body.len().min(256)])
        .trim_start()
        .chars()
        .take(15)
        .collect::<String>()
        .to_ascii_lowercase();
    (declared && head.starts_with('<'))
        || head.starts_with("<!doctype html")
        || head.starts_with("<html")
}

/// The `Content-Type` of an answer.
pub fn content_type(resp: &Response) -> Option<String> {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The `Location` of an answer.
pub fn location(resp: &Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Reads at most `limit` bytes of a body whose bytes count (JSON answers, and error answers
/// that may say why the token was refused); an error's text alone is
/// `ctadata_webdav::errors::excerpt`.
pub async fn read_limited(resp: Response, limit: usize) -> Vec<u8> {
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Ok(Some(Ok(b))) = tokio::time::timeout(Duration::from_secs(30), s.next()).await {
        out.extend_from_slice(&b);
        if out.len() > limit {
            break;
        }
    }
    out
}

/// Removes tags and squeezes white space, keeping at most 200 characters.
pub use ctadata_webdav::errors::short_text;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_is_found_from_the_service_url() {
        let u = Url::parse("https://platform.cta.cscs.ch/services/downloadservice/").unwrap();
        let h = Hub::of_service(&u);
        assert_eq!(h.token_page(), "https://platform.cta.cscs.ch/hub/token");
        assert_eq!(
            h.api_user().unwrap().as_str(),
            "https://platform.cta.cscs.ch/hub/api/user"
        );
        let u = Url::parse("http://127.0.0.1:8000/jh/services/certificateservice/").unwrap();
        assert_eq!(
            Hub::of_service(&u).token_page(),
            "http://127.0.0.1:8000/jh/hub/token"
        );
        let u = Url::parse("https://ds.example.org/ds/").unwrap();
        assert_eq!(
            Hub::of_service(&u).token_page(),
            "https://ds.example.org/hub/token"
        );
    }

    #[test]
    fn html_is_recognised() {
        assert!(looks_like_html(
            Some("text/html; charset=utf-8"),
            b"  <!DOCTYPE html><html>"
        ));
        assert!(looks_like_html(None, b"<html><body>login</body></html>"));
        assert!(!looks_like_html(Some("application/json"), b"[]"));
        assert!(!looks_like_html(Some("text/html"), b"OK"));
    }
}
