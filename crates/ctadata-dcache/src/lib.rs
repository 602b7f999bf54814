//! The `dcache` backend: WebDAV to a dCache door, authenticated with bearer tokens.
//!
//! Tokens come from a chain of sources tried in order; the first non-empty one wins:
//! the profile's `token_file` (or `--token-file`), `CTADATA_TOKEN`, then WLCG Bearer Token
//! Discovery (`BEARER_TOKEN`, `BEARER_TOKEN_FILE`, `$XDG_RUNTIME_DIR/bt_u<uid>`,
//! `/tmp/bt_u<uid>`). A token is never logged, never put in a URL or an error.
#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ctadata_core::config::{EnvSnapshot, ResolvedProfile};
use ctadata_core::credentials::{BearerToken, TokenProvider};
use ctadata_core::{AuthProblem, Error, Result};
use ctadata_webdav::{Auth, TlsOptions, WebDav, WebDavConfig};

/// Where a token may come from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A file named on purpose (profile `token_file`, `--token-file`): must exist.
    File {
        /// The file.
        path: PathBuf,
        /// How the user named it (`flag --token-file`, `profile key token_file`).
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
        path: Option<PathBuf>,
    },
    /// A discovery file that may be absent (`/tmp/bt_u<uid>`).
    Discovery(PathBuf),
}

impl TokenSource {
    /// How this source is named in messages.
    pub fn describe(&self) -> String {
        match self {
            TokenSource::File { path, label } => format!("{label} ({})", path.display()),
            TokenSource::Var { name, .. } => format!("variable {name}"),
            TokenSource::VarFile {
                name,
                path: Some(p),
            } => format!("variable {name} ({})", p.display()),
            TokenSource::VarFile { name, path: None } => format!("variable {name}"),
            TokenSource::Discovery(p) => format!("file {}", p.display()),
        }
    }

    fn fix(&self) -> String {
        match self {
            TokenSource::File { path, .. }
            | TokenSource::Discovery(path)
            | TokenSource::VarFile {
                path: Some(path), ..
            } => {
                format!("write a fresh token to {}", path.display())
            }
            TokenSource::Var { name, .. } | TokenSource::VarFile { name, .. } => {
                format!("set {name} to a fresh token")
            }
        }
    }

    /// The token of this source: `Ok(None)` when the source is unset, absent or empty.
    fn read(&self) -> Result<Option<String>> {
        let from_file = |p: &PathBuf, must_exist: bool| -> Result<Option<String>> {
            match std::fs::read_to_string(p) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => Ok(None),
                Err(e) => Err(Error::Auth {
                    problem: AuthProblem::Missing,
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
            TokenSource::File { path, .. } => from_file(path, true)?,
            TokenSource::Var { value, .. } => value.clone(),
            TokenSource::VarFile { path: Some(p), .. } => from_file(p, true)?,
            TokenSource::VarFile { path: None, .. } => None,
            TokenSource::Discovery(p) => from_file(p, false)?,
        };
        Ok(raw.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
    }
}

/// The fixed chain of token sources (no login session: that is the OIDC crate's).
#[derive(Debug, Clone)]
pub struct StaticTokens {
    sources: Vec<TokenSource>,
}

/// The real user id, for the WLCG discovery file names.
pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

impl StaticTokens {
    /// The chain in its documented order, from the profile and the environment.
    pub fn from_env(
        token_file: Option<PathBuf>,
        token_file_label: &str,
        env: &EnvSnapshot,
    ) -> Self {
        let uid = current_uid();
        let mut sources = Vec::new();
        if let Some(p) = token_file {
            sources.push(TokenSource::File {
                path: p,
                label: token_file_label.to_string(),
            });
        }
        for name in ["CTADATA_TOKEN", "BEARER_TOKEN"] {
            sources.push(TokenSource::Var {
                name: name.into(),
                value: env.get(name).map(str::to_string),
            });
        }
        sources.push(TokenSource::VarFile {
            name: "BEARER_TOKEN_FILE".into(),
            path: env.get("BEARER_TOKEN_FILE").map(PathBuf::from),
        });
        if let Some(dir) = env.get("XDG_RUNTIME_DIR") {
            sources.push(TokenSource::Discovery(
                PathBuf::from(dir).join(format!("bt_u{uid}")),
            ));
        }
        sources.push(TokenSource::Discovery(PathBuf::from(format!(
            "/tmp/bt_u{uid}"
        ))));
        Self { sources }
    }

    /// A chain of exactly these sources.
    pub fn new(sources: Vec<TokenSource>) -> Self {
        Self { sources }
    }

    /// The first token found, with its source.
    pub fn find(&self) -> Result<Option<BearerToken>> {
        for s in &self.sources {
            if let Some(t) = s.read()? {
                tracing::debug!(source = %s.describe(), "bearer token found");
                return Ok(Some(BearerToken::new(t, s.describe()).with_fix(s.fix())));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl TokenProvider for StaticTokens {
    async fn token(&self) -> Result<BearerToken> {
        self.find()?.ok_or_else(|| Error::Auth {
            problem: AuthProblem::Missing,
            message: format!(
                "no bearer token found; tried, in order: {}",
                self.sources().join(", ")
            ),
            hint: "give a token with --token-file FILE, or export BEARER_TOKEN / CTADATA_TOKEN"
                .into(),
        })
    }

    async fn refresh(&self, rejected: &BearerToken) -> Result<Option<BearerToken>> {
        // Another tool may have rewritten a token file meanwhile.
        Ok(self.find()?.filter(|t| t.token != rejected.token))
    }

    fn sources(&self) -> Vec<String> {
        self.sources.iter().map(TokenSource::describe).collect()
    }
}

/// Options the program passes beyond the profile.
#[derive(Debug, Clone, Default)]
pub struct DcacheOptions {
    /// `--insecure`.
    pub insecure: bool,
    /// An extra token provider placed before the static chain's discovery part (OIDC login).
    pub token_provider: Option<Arc<dyn TokenProvider>>,
}

/// The WebDAV settings every door-facing backend shares: URL, trust, timeouts, jobs.
pub fn webdav_config(
    profile: &ResolvedProfile,
    backend_name: &'static str,
    auth: Auth,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<WebDavConfig> {
    let p = &profile.profile;
    let url = p.url.clone().ok_or_else(|| {
        Error::config(format!("profile '{}' has no url", profile.name), "set url")
    })?;
    let mut cfg = WebDavConfig::new(url, backend_name, auth);
    cfg.tls = TlsOptions {
        ca_file: p.ca_file.clone(),
        ca_dir: p
            .ca_dir
            .clone()
            .or_else(|| env.get("X509_CERT_DIR").map(PathBuf::from)),
        insecure,
        system_roots: true,
        client_identity: None,
    };
    if let Some(s) = p.connect_timeout {
        cfg.connect_timeout = Duration::from_secs(s);
    }
    if let Some(s) = p.read_timeout {
        cfg.read_timeout = Duration::from_secs(s);
    }
    if let Some(j) = p.jobs {
        cfg.default_jobs = j.max(1) as usize;
    }
    Ok(cfg)
}

/// Opens the dcache backend of a resolved profile.
pub fn open(profile: &ResolvedProfile, env: &EnvSnapshot, opts: &DcacheOptions) -> Result<WebDav> {
    let label = profile
        .origins
        .get("token_file")
        .cloned()
        .unwrap_or_else(|| "token_file".into());
    let provider: Arc<dyn TokenProvider> = match &opts.token_provider {
        Some(p) => p.clone(),
        None => Arc::new(StaticTokens::from_env(
            profile.profile.token_file.clone(),
            &label,
            env,
        )),
    };
    WebDav::new(webdav_config(
        profile,
        "dcache",
        Auth::Bearer(provider),
        env,
        opts.insecure,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(dir: &std::path::Path, vars: &[(&str, &str)]) -> StaticTokens {
        let env = EnvSnapshot::from_pairs(vars.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        let mut s = StaticTokens::from_env(None, "token_file", &env);
        // Point the discovery files into the test directory.
        for src in &mut s.sources {
            if let TokenSource::Discovery(p) = src {
                *p = dir.join(p.file_name().unwrap());
            }
        }
        s
    }

    #[tokio::test]
    async fn wlcg_discovery_order() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("tokfile");
        std::fs::write(&f, "  from-file\n").unwrap();
        let fs = f.display().to_string();
        let all = [
            ("CTADATA_TOKEN", "a"),
            ("BEARER_TOKEN", "b"),
            ("BEARER_TOKEN_FILE", fs.as_str()),
        ];
        let t = chain(d.path(), &all).token().await.unwrap();
        assert_eq!(
            (t.token.expose(), t.source.as_str()),
            ("a", "variable CTADATA_TOKEN")
        );
        let t = chain(d.path(), &all[1..]).token().await.unwrap();
        assert_eq!(t.token.expose(), "b");
        let t = chain(
            d.path(),
            &[("BEARER_TOKEN", "   "), ("BEARER_TOKEN_FILE", fs.as_str())],
        )
        .token()
        .await
        .unwrap();
        assert_eq!(
            t.token.expose(),
            "from-file",
            "whitespace trimmed, empty means next"
        );
        let uid = current_uid();
        std::fs::write(d.path().join(format!("bt_u{uid}")), "disc\n").unwrap();
        let t = chain(d.path(), &[]).token().await.unwrap();
        assert_eq!(t.token.expose(), "disc");
        assert!(t.fix.contains(&format!("bt_u{uid}")));
    }

    #[tokio::test]
    async fn a_missing_token_lists_every_source() {
        let d = tempfile::tempdir().unwrap();
        let e = chain(d.path(), &[("XDG_RUNTIME_DIR", "/run/user/1")])
            .token()
            .await
            .unwrap_err();
        let msg = e.to_string();
        for s in ["CTADATA_TOKEN", "BEARER_TOKEN", "BEARER_TOKEN_FILE", "bt_u"] {
            assert!(msg.contains(s), "{msg}");
        }
        assert!(!msg.contains("secret"));
        assert_eq!(e.exit_code(), ctadata_core::error::exit_code::AUTH);
        let e = chain(d.path(), &[("BEARER_TOKEN_FILE", "/nonexistent/tok")])
            .token()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/tok"), "{e}");
    }
}
