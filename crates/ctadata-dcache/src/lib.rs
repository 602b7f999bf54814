//! The `dcache` backend: WebDAV to a dCache door, authenticated with bearer tokens.
//!
//! Tokens come from a chain of sources tried in order; the first non-empty one wins:
//! the profile's `token_file` (or `--token-file`), `CTADATA_TOKEN`, then WLCG Bearer Token
//! Discovery (`BEARER_TOKEN`, `BEARER_TOKEN_FILE`, `$XDG_RUNTIME_DIR/bt_u<uid>`,
//! `/tmp/bt_u<uid>`). A token is never logged, never put in a URL or an error.
//! A share link given as the remote path brings its own token (its macaroon): then it is
//! the only one sent ([`ctadata_core::config::ResolvedProfile::with_link`]).
#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ctadata_core::config::{current_uid, EnvSnapshot, ResolvedProfile};
use ctadata_core::credentials::{StaticSource, TokenChain, TokenProvider, TokenSource};
use ctadata_core::{Error, Result};
use ctadata_oidc::{OidcAgentSource, OidcSession, ProfileStore, SessionSettings};
use ctadata_webdav::{profile_tls, webdav_config, Auth, WebDav};

/// What to do when no source has a token.
pub const MISSING_TOKEN_HINT: &str =
    "give a token with --token-file FILE, or export BEARER_TOKEN / CTADATA_TOKEN";

/// The static sources in their documented order: `token_file`, `CTADATA_TOKEN`,
/// `BEARER_TOKEN`, `BEARER_TOKEN_FILE`, then the discovery files. `session` (a login
/// session) goes after what the user sets on purpose and before the discovery files, so a
/// stale `/tmp/bt_u<uid>` left by another tool never shadows a login.
pub fn token_sources(
    token_file: Option<PathBuf>,
    token_file_label: &str,
    env: &EnvSnapshot,
    session: Option<Arc<dyn TokenSource>>,
    agent: Option<Arc<dyn TokenSource>>,
) -> Vec<Arc<dyn TokenSource>> {
    let uid = current_uid();
    let mut v: Vec<Arc<dyn TokenSource>> = Vec::new();
    if let Some(p) = token_file {
        v.push(Arc::new(StaticSource::File {
            path: p,
            label: token_file_label.to_string(),
        }));
    }
    for name in ["CTADATA_TOKEN", "BEARER_TOKEN"] {
        v.push(Arc::new(StaticSource::Var {
            name: name.into(),
            value: env.get(name).map(str::to_string),
        }));
    }
    v.push(Arc::new(StaticSource::VarFile {
        name: "BEARER_TOKEN_FILE".into(),
        path: env.get("BEARER_TOKEN_FILE").map(PathBuf::from),
    }));
    if let Some(s) = session {
        v.push(s);
    }
    if let Some(dir) = env.get("XDG_RUNTIME_DIR") {
        v.push(Arc::new(StaticSource::Discovery(
            PathBuf::from(dir).join(format!("bt_u{uid}")),
        )));
    }
    v.push(Arc::new(StaticSource::Discovery(PathBuf::from(format!(
        "/tmp/bt_u{uid}"
    )))));
    if let Some(a) = agent {
        v.push(a);
    }
    v
}

/// Options the program passes beyond the profile.
#[derive(Debug, Clone, Default)]
pub struct DcacheOptions {
    /// `--insecure`.
    pub insecure: bool,
}

/// An HTTP client for the identity provider: the profile's trust, no redirects.
pub fn provider_http(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<reqwest::Client> {
    let p = &profile.profile;
    let tls = ctadata_webdav::tls::client_config(&profile_tls(p, env, insecure))?;
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .redirect(reqwest::redirect::Policy::none())
        .http1_title_case_headers()
        .connect_timeout(Duration::from_secs(p.connect_timeout.unwrap_or(15)))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::internal("the HTTP client could not be set up").with_source(e))
}

/// The profile's login session, when its `[oidc]` section names an issuer and a client.
pub fn oidc_session(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<Option<Arc<OidcSession>>> {
    let Some(o) = &profile.profile.oidc else {
        return Ok(None);
    };
    let (Some(issuer), Some(client_id)) = (&o.issuer, &o.client_id) else {
        return Ok(None);
    };
    let settings = SessionSettings {
        profile: profile.name.clone(),
        issuer: issuer.clone(),
        client_id: client_id.clone(),
        scope: o.scope.clone(),
        margin: Duration::from_secs(o.refresh_margin.unwrap_or(60)),
        http: provider_http(profile, env, insecure)?,
    };
    Ok(Some(OidcSession::new(
        ProfileStore::new(&env.config_dir(), &profile.name),
        settings,
    )))
}

/// The whole token chain of a profile, in its documented order.
pub fn token_chain(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<TokenChain> {
    // A share link's macaroon, given for this command alone: the only token sent.
    if let Some(given) = profile.given_token() {
        return Ok(TokenChain::new(
            vec![Arc::new(given.clone()) as Arc<dyn TokenSource>],
            given.fix().to_string(),
        ));
    }
    let label = profile
        .origins
        .get("token_file")
        .cloned()
        .unwrap_or_else(|| "token_file".into());
    let session = oidc_session(profile, env, insecure)?.map(|s| s as Arc<dyn TokenSource>);
    let agent = profile
        .profile
        .oidc
        .as_ref()
        .and_then(|o| o.agent_account.clone())
        .map(|a| Arc::new(OidcAgentSource::new(a)) as Arc<dyn TokenSource>);
    let mut hint = if session.is_some() {
        format!(
            "log in with 'cta-data --profile {} login', or {MISSING_TOKEN_HINT}",
            profile.name
        )
    } else {
        MISSING_TOKEN_HINT.to_string()
    };
    if let Some(a) = profile
        .profile
        .oidc
        .as_ref()
        .and_then(|o| o.agent_account.as_ref())
    {
        hint.push_str(&format!("; or check that 'oidc-token {a}' works (is oidc-agent running with that account loaded?)"));
    }
    Ok(TokenChain::new(
        token_sources(
            profile.profile.token_file.clone(),
            &label,
            env,
            session,
            agent,
        ),
        hint,
    ))
}

/// Opens the dcache backend of a resolved profile.
pub fn open(profile: &ResolvedProfile, env: &EnvSnapshot, opts: &DcacheOptions) -> Result<WebDav> {
    let provider: Arc<dyn TokenProvider> = Arc::new(token_chain(profile, env, opts.insecure)?);
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
    use ctadata_core::credentials::TokenProvider;

    fn chain(dir: &std::path::Path, vars: &[(&str, &str)]) -> TokenChain {
        let env = EnvSnapshot::from_pairs(vars.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        // The discovery files point into the test directory.
        let sources = token_sources(None, "token_file", &env, None, None)
            .into_iter()
            .map(|s| -> Arc<dyn TokenSource> {
                let d = s.describe();
                match d.strip_prefix("file ") {
                    Some(p) => Arc::new(StaticSource::Discovery(
                        dir.join(std::path::Path::new(p).file_name().unwrap()),
                    )),
                    None => s,
                }
            })
            .collect();
        TokenChain::new(sources, MISSING_TOKEN_HINT)
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
        assert_eq!(e.exit_code(), ctadata_core::error::exit_code::AUTH);
        let e = chain(d.path(), &[("BEARER_TOKEN_FILE", "/nonexistent/tok")])
            .token()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/tok"), "{e}");
    }
}
