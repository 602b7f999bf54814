//! Bearer tokens and where they come from, without ever showing them.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::Result;

/// How far in the future a certificate's start may lie and still be used: the server judges
/// validity by its own clock, and clocks of grid hosts differ by minutes (grid-proxy-init
/// backdates proxies by five minutes for the same reason).
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// A secret string: its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself: only for the header or file that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A bearer token with the name of its source and, for JWTs, its claims of interest.
#[derive(Debug, Clone)]
pub struct BearerToken {
    /// The token.
    pub token: Secret,
    /// Where it came from, for messages (`variable BEARER_TOKEN`, `file /tmp/bt_u1000`).
    pub source: String,
    /// Expiry from the JWT `exp` claim (read without verifying), when it is a JWT.
    pub expires: Option<SystemTime>,
    /// The JWT `sub` claim, when present.
    pub subject: Option<String>,
    /// The JWT `scope` (or `scp`) claim, when present.
    pub scope: Option<String>,
    /// What the user does when this token is refused or expired.
    pub fix: String,
}

impl BearerToken {
    /// A token from `source`, with the JWT claims read when it is a JWT.
    pub fn new(token: impl Into<String>, source: impl Into<String>) -> Self {
        let token = token.into();
        let claims = jwt_claims(&token);
        let get = |k: &str| claims.as_ref().and_then(|c| c.get(k)).cloned();
        Self {
            expires: get("exp")
                .and_then(|v| v.as_f64())
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0)))
                // A dCache macaroon is no JWT: its `before:` caveat says when it expires.
                .or_else(|| crate::share::macaroon_expiry(&token)),
            subject: get("sub").and_then(|v| v.as_str().map(str::to_string)),
            scope: get("scope").or_else(|| get("scp")).and_then(|v| match v {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Array(a) => Some(
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                _ => None,
            }),
            token: Secret::new(token),
            fix: "get a fresh token and try again".into(),
            source: source.into(),
        }
    }

    /// Sets what the user does when this token is refused or expired.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    /// True when the JWT says it has expired (false when unknown).
    pub fn is_expired(&self) -> bool {
        self.expires.is_some_and(|e| e <= SystemTime::now())
    }

    /// "expired 3 min ago" / "expires in 55 min" / "expiry unknown".
    pub fn describe_expiry(&self) -> String {
        match self.expires {
            None => "expiry unknown (neither a JWT nor a macaroon with a lifetime)".into(),
            Some(e) => match e.duration_since(SystemTime::now()) {
                Ok(left) => format!("expires in {}", human_duration(left)),
                Err(past) => format!("expired {} ago", human_duration(past.duration())),
            },
        }
    }
}

/// "2 h 5 min", "40 s".
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// The payload of a JWT, decoded without verifying the signature (the server verifies).
pub fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (_h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64url_decode(p)?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Base64 (URL-safe or standard alphabet, padding optional) decoded; `None` on a stray
/// character.
pub(crate) fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Something that hands out bearer tokens: a fixed chain of sources, or a login session
/// that refreshes itself.
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A token to send now.
    async fn token(&self) -> Result<BearerToken>;

    /// Called once after the server answered 401 to `rejected`: a fresh token to retry
    /// with, or `None` when this provider cannot do better.
    async fn refresh(&self, _rejected: &BearerToken) -> Result<Option<BearerToken>> {
        Ok(None)
    }

    /// The sources consulted, in order, for messages and `token status`.
    fn sources(&self) -> Vec<String>;
}

/// One place a token may come from (a variable, a file, a login session, oidc-agent).
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// How the source is named in messages (`variable BEARER_TOKEN`).
    fn describe(&self) -> String;

    /// The source's token: `Ok(None)` when it has none (unset, absent, empty).
    async fn fetch(&self) -> Result<Option<BearerToken>>;

    /// A better token after `rejected` (which came from here) was refused or expired.
    async fn refresh(&self, _rejected: &BearerToken) -> Result<Option<BearerToken>> {
        Ok(None)
    }
}

/// Sources tried in order: the first one with a token wins, and refreshes go back to it.
#[derive(Debug, Clone)]
pub struct TokenChain {
    sources: Vec<std::sync::Arc<dyn TokenSource>>,
    missing_hint: String,
}

impl TokenChain {
    /// A chain of these sources; `missing_hint` says what to do when none has a token.
    pub fn new(
        sources: Vec<std::sync::Arc<dyn TokenSource>>,
        missing_hint: impl Into<String>,
    ) -> Self {
        Self {
            sources,
            missing_hint: missing_hint.into(),
        }
    }

    /// What to do when no source has a token.
    pub fn missing_hint(&self) -> &str {
        &self.missing_hint
    }

    /// The sources, in order.
    pub fn source_list(&self) -> &[std::sync::Arc<dyn TokenSource>] {
        &self.sources
    }

    /// The first token found, or `None`.
    pub async fn find(&self) -> Result<Option<BearerToken>> {
        for s in &self.sources {
            if let Some(t) = s.fetch().await? {
                tracing::debug!(source = %s.describe(), "bearer token found");
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl TokenProvider for TokenChain {
    async fn token(&self) -> Result<BearerToken> {
        self.find().await?.ok_or_else(|| crate::error::Error::Auth {
            problem: crate::error::AuthProblem::Missing,
            message: format!(
                "no bearer token found; tried, in order: {}",
                self.sources().join(", ")
            ),
            hint: self.missing_hint.clone(),
        })
    }

    async fn refresh(&self, rejected: &BearerToken) -> Result<Option<BearerToken>> {
        for s in &self.sources {
            if s.describe() == rejected.source {
                if let Some(t) = s.refresh(rejected).await? {
                    return Ok(Some(t));
                }
                break;
            }
        }
        // Another tool may have rewritten a file meanwhile, or a later source may do better.
        Ok(self.find().await?.filter(|t| t.token != rejected.token))
    }

    fn sources(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.describe()).collect()
    }
}

/// A token given for one command alone, such as the macaroon of a share link given as the
/// remote path: when a profile carries one ([`crate::config::ResolvedProfile::given_token`]),
/// it is the only source consulted.
#[derive(Debug, Clone)]
pub struct GivenToken {
    token: Secret,
    label: String,
    fix: String,
}

impl GivenToken {
    /// `token`, named `label` in messages (`the share link`), with `fix` for when it is
    /// refused or expired.
    pub fn new(token: Secret, label: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            token,
            label: label.into(),
            fix: fix.into(),
        }
    }

    /// The token (a secret).
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// What the user does when it is refused or expired.
    pub fn fix(&self) -> &str {
        &self.fix
    }
}

#[async_trait]
impl TokenSource for GivenToken {
    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn fetch(&self) -> Result<Option<BearerToken>> {
        Ok(Some(
            BearerToken::new(self.token.expose(), self.label.clone()).with_fix(self.fix.clone()),
        ))
    }
}

/// The sources that need no login: files and variables.
#[derive(Debug, Clone)]
pub enum StaticSource {
    /// A file named on purpose (profile `token_file`, `--token-file`): it must exist.
    File {
        /// The file.
        path: std::path::PathBuf,
        /// How the user named it (`flag --token-file`, `file ... (token_file)`).
        label: String,
    },
    /// A variable holding the token itself.
    Var {
        /// Variable name.
        name: String,
        /// Its value when the program started, if set.
        value: Option<String>,
    },
    /// A variable naming a file that holds the token (`BEARER_TOKEN_FILE`).
    VarFile {
        /// Variable name.
        name: String,
        /// The file it names, if set.
        path: Option<std::path::PathBuf>,
    },
    /// A discovery file that may be absent (`/tmp/bt_u<uid>`).
    Discovery(std::path::PathBuf),
}

impl StaticSource {
    fn fix(&self) -> String {
        match self {
            StaticSource::File { path, .. }
            | StaticSource::Discovery(path)
            | StaticSource::VarFile {
                path: Some(path), ..
            } => {
                format!("write a fresh token to {}", path.display())
            }
            StaticSource::Var { name, .. } | StaticSource::VarFile { name, .. } => {
                format!("set {name} to a fresh token")
            }
        }
    }

    fn read_sync(&self) -> Result<Option<String>> {
        let from_file = |p: &std::path::PathBuf, must_exist: bool| -> Result<Option<String>> {
            match std::fs::read_to_string(p) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => Ok(None),
                Err(e) => Err(crate::error::Error::Auth {
                    problem: crate::error::AuthProblem::Missing,
                    message: format!(
                        "cannot read the token file {} named by {}: {e}",
                        p.display(),
                        self.describe()
                    ),
                    hint: "fix the path, or unset it to use the other token sources".into(),
                }),
            }
        };
        let raw = match self {
            StaticSource::File { path, .. } => from_file(path, true)?,
            StaticSource::Var { value, .. } => value.clone(),
            StaticSource::VarFile { path: Some(p), .. } => from_file(p, true)?,
            StaticSource::VarFile { path: None, .. } => None,
            StaticSource::Discovery(p) => from_file(p, false)?,
        };
        Ok(raw.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
    }
}

#[async_trait]
impl TokenSource for StaticSource {
    fn describe(&self) -> String {
        match self {
            StaticSource::File { path, label } => format!("{label} ({})", path.display()),
            StaticSource::Var { name, .. } => format!("variable {name}"),
            StaticSource::VarFile {
                name,
                path: Some(p),
            } => format!("variable {name} ({})", p.display()),
            StaticSource::VarFile { name, path: None } => format!("variable {name}"),
            StaticSource::Discovery(p) => format!("file {}", p.display()),
        }
    }

    async fn fetch(&self) -> Result<Option<BearerToken>> {
        Ok(self
            .read_sync()?
            .map(|t| BearerToken::new(t, self.describe()).with_fix(self.fix())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("eyJhbGciOi.secret.value");
        assert!(!format!("{s:?} {s}").contains("secret"));
        let t = BearerToken::new("abc.def.ghi", "variable X");
        assert!(!format!("{t:?}").contains("abc.def"));
    }

    #[test]
    fn jwt_claims_are_read_without_verification() {
        // {"sub":"alice","exp":1700000000,"scope":"storage.read:/"}
        let payload =
            "eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMCwic2NvcGUiOiJzdG9yYWdlLnJlYWQ6LyJ9";
        let t = BearerToken::new(format!("eyJhbGciOiJub25lIn0.{payload}.sig"), "test");
        assert_eq!(t.subject.as_deref(), Some("alice"));
        assert_eq!(t.scope.as_deref(), Some("storage.read:/"));
        assert!(t.is_expired());
        assert!(t.describe_expiry().starts_with("expired"));
        let opaque = BearerToken::new("opaque-token", "test");
        assert!(!opaque.is_expired());
        assert!(opaque.describe_expiry().contains("unknown"));
    }
}
