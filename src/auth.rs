//! Logging in and out of a profile's identity provider, and looking at its tokens.

use std::sync::Arc;

use ctadata_core::config::{BackendKind, EnvSnapshot, ResolvedProfile};
use ctadata_core::credentials::{BearerToken, Secret, TokenProvider};
use ctadata_core::{AuthProblem, Error, Result};
use ctadata_oidc::store::read_legacy_secret;
use ctadata_oidc::{DevicePrompt, OidcSession, ProfileStore, Session};

/// Where the client secret for a login comes from.
#[derive(Debug, Clone)]
pub enum SecretInput {
    /// Given now (prompt, stdin, or the old `-s` flag): stored for next time.
    Given(Secret),
    /// Use the stored one (or the old client's file, imported once).
    Stored,
}

/// What a profile without an identity provider authenticates with, and how to get it.
fn credential_of(profile: &ResolvedProfile) -> (&'static str, &'static str) {
    match profile.backend() {
        BackendKind::Downloadservice => (
            "the hub token (JUPYTERHUB_API_TOKEN, which JupyterHub sets in your session; or --token-file)",
            "on the platform's JupyterHub nothing is needed; elsewhere make a token on the hub's token page and export JUPYTERHUB_API_TOKEN",
        ),
        BackendKind::X509 => (
            "a grid proxy (X509_USER_PROXY, /tmp/x509up_u<uid>, or proxy/cert/key in the profile)",
            "make a proxy with voms-proxy-init (or grid-proxy-init); 'cta-data --profile grid cert info' shows the one in use",
        ),
        BackendKind::Local => ("nothing (a local directory needs no credential)", "use it as it is"),
        BackendKind::Dcache => ("bearer tokens", "see 'cta-data token status'"),
    }
}

/// Checks that `login` (and `logout`) make sense on the profile, before anything is asked
/// or read: a backend without an identity provider is a usage error (exit 2) saying what the
/// profile authenticates with; a `dcache` profile without `[oidc]` issuer and client_id is a
/// configuration error (exit 3) naming the section to add.
pub fn check_can_login(profile: &ResolvedProfile) -> Result<()> {
    if profile.backend() != BackendKind::Dcache {
        let (what, how) = credential_of(profile);
        return Err(Error::usage(
            format!(
                "profile '{}' ({} backend) has no identity provider to log in to: it authenticates with {what}",
                profile.name,
                profile.backend().as_str(),
            ),
            format!("{how}; to log in to dCache with a token instead: 'cta-data --profile cta login'"),
        ));
    }
    let has_idp = profile
        .profile
        .oidc
        .as_ref()
        .is_some_and(|o| o.issuer.is_some() && o.client_id.is_some());
    if !has_idp {
        return Err(Error::config(
            format!(
                "profile '{}' has no identity provider: its [oidc] section has no issuer and client_id",
                profile.name
            ),
            format!(
                "add [profiles.{}.oidc] with issuer and client_id to your config file, or give a token with --token-file FILE",
                profile.name
            ),
        ));
    }
    Ok(())
}

/// The profile's login session, or the error of [`check_can_login`] saying why it has none.
pub fn session(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<Arc<OidcSession>> {
    check_can_login(profile)?;
    ctadata_dcache::oidc_session(profile, env, insecure)?.ok_or_else(|| {
        Error::config(
            format!(
                "profile '{}' has no [oidc] issuer and client_id",
                profile.name
            ),
            format!(
                "add [profiles.{}.oidc] with issuer and client_id to your config file",
                profile.name
            ),
        )
    })
}

/// The stored client secret, importing the old client's `~/.config/cta-data/secret` once.
/// Returns the secret and, when it was imported, the file it came from.
pub fn stored_secret(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
) -> Result<Option<(Secret, Option<std::path::PathBuf>)>> {
    let store = ProfileStore::new(&env.config_dir(), &profile.name);
    if let Some(s) = store.secret()? {
        return Ok(Some((s, None)));
    }
    if let Some((s, from)) = read_legacy_secret(&env.config_dir())? {
        store.save_secret(&s)?;
        return Ok(Some((s, Some(from))));
    }
    Ok(None)
}

/// Logs in with the device flow; `show` presents the code to the user.
pub async fn login(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
    secret: SecretInput,
    show: impl FnOnce(&DevicePrompt),
) -> Result<Session> {
    let sess = session(profile, env, insecure)?;
    let store = sess.store().clone();
    match secret {
        SecretInput::Given(s) => store.save_secret(&s)?,
        SecretInput::Stored => {
            if stored_secret(profile, env)?.is_none() {
                return Err(Error::usage(
                    format!("no client secret is stored for profile '{}'", profile.name),
                    format!(
                        "run 'cta-data --profile {} login' in a terminal to be asked for it, or pipe it in with --secret-stdin",
                        profile.name
                    ),
                ));
            }
        }
    }
    let provider = sess.provider().await?;
    let new = provider.device_login(show).await?;
    let lock_store = store.clone();
    let lock = tokio::task::spawn_blocking(move || lock_store.lock())
        .await
        .map_err(|e| Error::internal("the lock task failed").with_source(e))??;
    store.save_session(&new)?;
    drop(lock);
    Ok(new)
}

/// What logout did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// The refresh token was revoked at the provider and the session deleted.
    Revoked,
    /// The session was deleted; the provider offers no revocation.
    DeletedOnly,
    /// There was no session.
    NoSession,
}

/// Revokes the refresh token (when the provider can) and deletes the session.
pub async fn logout(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<LogoutOutcome> {
    let sess = session(profile, env, insecure)?;
    let Some(stored) = sess.stored()? else {
        return Ok(LogoutOutcome::NoSession);
    };
    let mut outcome = LogoutOutcome::DeletedOnly;
    if let Some(rt) = &stored.refresh_token {
        match sess.provider().await {
            Ok(p) => {
                if p.revoke(rt).await? {
                    outcome = LogoutOutcome::Revoked;
                }
            }
            Err(e) => {
                tracing::warn!("cannot reach the identity provider to revoke the session: {e}")
            }
        }
    }
    sess.store().remove_session()?;
    Ok(outcome)
}

/// Removes the profile's stored secret and session; says which files went.
pub fn reset(profile: &ResolvedProfile, env: &EnvSnapshot) -> Result<Vec<std::path::PathBuf>> {
    let store = ProfileStore::new(&env.config_dir(), &profile.name);
    let mut removed = Vec::new();
    if store.remove_session()? {
        removed.push(store.session_path());
    }
    if store.remove_secret()? {
        removed.push(store.secret_path());
    }
    Ok(removed)
}

/// The token the profile would use now, with its source: a login session's token is
/// refreshed when it is about to expire; a token that has expired (a JWT whose `exp` is
/// past) is refreshed when its source can, else refused with an authentication error
/// (exit 4) whose hint names the fix. An expired token is never returned.
pub async fn current_token(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<BearerToken> {
    let chain = token_chain(profile, env, insecure)?;
    let t = chain.token().await?;
    if !t.is_expired() {
        return Ok(t);
    }
    if let Some(fresh) = chain.refresh(&t).await? {
        if !fresh.is_expired() {
            tracing::info!(source = %fresh.source, "the expired token was replaced by a fresh one");
            return Ok(fresh);
        }
    }
    Err(expired(&t))
}

/// The error for a token whose `exp` is past: its source, when, and the fix.
pub fn expired(t: &BearerToken) -> Error {
    Error::Auth {
        problem: AuthProblem::Expired,
        message: format!("the token from {} {}", t.source, t.describe_expiry()),
        hint: t.fix.clone(),
    }
}

/// The token chain of a `dcache` profile.
pub fn token_chain(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<ctadata_core::credentials::TokenChain> {
    if profile.backend() != BackendKind::Dcache {
        let (what, _) = credential_of(profile);
        return Err(Error::config(
            format!(
                "profile '{}' ({} backend) has no bearer token chain: it authenticates with {what}",
                profile.name,
                profile.backend().as_str()
            ),
            "print-token and token status are for the dcache profiles, e.g. 'cta-data --profile cta print-token'",
        ));
    }
    ctadata_dcache::token_chain(profile, env, insecure)
}

/// One line of `token status`: a source and whether it holds a token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceStatus {
    /// The source.
    pub source: String,
    /// "token", "none", or the error it gave.
    pub state: String,
}

/// What `token status` found: every source in order, the token that would be used, and
/// the first error a source gave (the one a command would fail with).
#[derive(Debug)]
#[non_exhaustive]
pub struct StatusReport {
    /// Every source of the chain, in order, with what it holds (nothing secret).
    pub sources: Vec<SourceStatus>,
    /// The token that would be used.
    pub winner: Option<BearerToken>,
    /// The first error a source gave before a token was found.
    pub first_error: Option<Error>,
}

/// Every source of the chain in order, with what it holds (nothing secret), and the token
/// that would be used. Turn the outcome into the command's verdict with [`status_verdict`].
pub async fn status(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<StatusReport> {
    let chain = token_chain(profile, env, insecure)?;
    let mut out = Vec::new();
    let mut winner = None;
    let mut first_error = None;
    for s in chain.source_list() {
        let state = if winner.is_some() {
            "not consulted".to_string()
        } else {
            match s.fetch().await {
                Ok(Some(t)) => {
                    winner = Some(t);
                    "token (used)".to_string()
                }
                Ok(None) => "none".to_string(),
                Err(e) => {
                    let state = format!("error: {e}");
                    first_error.get_or_insert(e);
                    state
                }
            }
        };
        out.push(SourceStatus {
            source: s.describe(),
            state,
        });
    }
    Ok(StatusReport {
        sources: out,
        winner,
        first_error,
    })
}

/// The verdict of `token status` once its report is printed: `Ok` when a token is there,
/// not expired, and no source before it failed; otherwise the error a command would fail
/// with (a source's error, or an authentication error, exit 4, naming the fix).
pub fn status_verdict(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
    report: StatusReport,
) -> Result<()> {
    if let Some(e) = report.first_error {
        return Err(e);
    }
    match &report.winner {
        Some(t) if t.is_expired() => Err(expired(t)),
        Some(_) => Ok(()),
        None => {
            let chain = token_chain(profile, env, insecure)?;
            Err(Error::Auth {
                problem: AuthProblem::Missing,
                message: format!(
                    "no token for profile '{}'; tried, in order: {}",
                    profile.name,
                    chain.sources().join(", ")
                ),
                hint: chain.missing_hint().to_string(),
            })
        }
    }
}
