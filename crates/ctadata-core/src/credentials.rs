//! Bearer tokens and where they come from, without ever showing them.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::Result;

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
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0))),
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
            None => "expiry unknown (not a JWT)".into(),
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

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
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
