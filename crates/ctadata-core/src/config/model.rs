//! What a configuration holds: the backends, a profile's keys, and the checks a profile passes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which way into the storage a profile uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// WebDAV to the dCache door with OIDC bearer tokens.
    Dcache,
    /// WebDAV to the dCache door with an X.509 proxy certificate.
    X509,
    /// The JupyterHub downloadservice, with a hub token.
    Downloadservice,
    /// A local directory as storage root.
    Local,
}

impl BackendKind {
    /// The name used in config files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Dcache => "dcache",
            Self::X509 => "x509",
            Self::Downloadservice => "downloadservice",
            Self::Local => "local",
        }
    }
}

/// OpenID Connect settings of a `dcache` profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The OAuth client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Scopes to ask for (space separated); empty means the provider's defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// An oidc-agent account to ask with `oidc-token`, the last token source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_account: Option<String>,
    /// Refresh the access token when fewer than this many seconds are left (default 60).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub refresh_margin: Option<u64>,
}

/// One profile: a backend and its settings. Every key is optional in a layer; the
/// resolved profile is checked by [`Profile::validate_as`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Which backend: `dcache`, `x509`, `downloadservice` or `local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendKind>,
    /// The door or the service URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Extra trusted CA certificates (PEM bundle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A hashed CA directory (grid style, `<hash>.0` files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_dir: Option<PathBuf>,
    /// `local` backend: the directory used as storage root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// A file holding the bearer token (first token source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// `downloadservice` backend: the certificateservice URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificateservice_url: Option<String>,
    /// `x509` backend: the proxy certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<PathBuf>,
    /// `x509` backend: an end-entity certificate (instead of a proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// `x509` backend: the key of `cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Seconds to wait for a connection.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub connect_timeout: Option<u64>,
    /// Seconds to wait for an answer's head (long: dCache holds a GET while a pool stages
    /// the file from tape).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub read_timeout: Option<u64>,
    /// Seconds of silence inside an answer's body before the read is given up (and
    /// resumed by the retry layer).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub idle_timeout: Option<u64>,
    /// Parallel transfers for recursive get/put.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub jobs: Option<u64>,
    /// Connections (parallel byte ranges) for one big download; 1 for one stream.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub streams: Option<u64>,
    /// Files at least this large are downloaded in several streams (bytes, or with a
    /// K, M, G or T suffix: "64M").
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_size"
    )]
    pub stream_cutoff: Option<u64>,
    /// OIDC settings (`dcache` backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSettings>,
}

/// The whole configuration after layering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The profile used when none is named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// A number as a TOML integer or as a string (from environment variables).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(u64),
    Str(String),
}

/// Reads an optional [`NumOrStr`], parsing strings with `parse`.
fn de_opt_num<'de, D: serde::Deserializer<'de>>(
    d: D,
    parse: fn(&str) -> Option<u64>,
    expected: &'static str,
) -> std::result::Result<Option<u64>, D::Error> {
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::Num(n)) => Ok(Some(n)),
        Some(NumOrStr::Str(s)) => parse(&s).map(Some).ok_or_else(|| {
            serde::de::Error::invalid_value(serde::de::Unexpected::Str(&s), &expected)
        }),
    }
}

/// Numbers may come as TOML integers or as strings (from environment variables).
fn de_opt_u64<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    de_opt_num(d, |s| s.trim().parse().ok(), "a whole number")
}

/// A size in bytes: digits, optionally followed by K, M, G or T (powers of 1024; "KiB",
/// "MB" and the like are read the same way).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let shift = match unit
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

fn de_opt_size<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    de_opt_num(d, parse_size, "a size such as 67108864 or \"64M\"")
}

impl Profile {
    /// Checks that what the backend needs is there.
    pub fn validate_as(&self, name: &str) -> Result<()> {
        let Some(backend) = self.backend else {
            return Err(Error::config(
                format!("profile '{name}' has no 'backend'"),
                format!("set backend = \"dcache\" | \"x509\" | \"downloadservice\" | \"local\" under [profiles.{name}]"),
            ));
        };
        match backend {
            BackendKind::Local => {
                if self.root.is_none() {
                    return Err(Error::config(
                        format!("profile '{name}' (backend local) has no 'root'"),
                        format!("set root = \"/some/directory\" under [profiles.{name}]"),
                    ));
                }
            }
            _ => match &self.url {
                None => {
                    return Err(Error::config(
                        format!(
                            "profile '{name}' (backend {}) has no 'url'",
                            backend.as_str()
                        ),
                        format!("set url = \"https://...\" under [profiles.{name}], or pass --url"),
                    ))
                }
                Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                    return Err(Error::config(
                        format!("profile '{name}': url '{u}' is not an http(s) URL"),
                        "give a URL such as https://dcache.cta.cscs.ch:2880",
                    ))
                }
                Some(_) => {}
            },
        }
        Ok(())
    }
}
