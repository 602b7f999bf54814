//! Logging in and out of a profile's identity provider, and looking at its tokens.

use std::sync::Arc;

use ctadata_core::config::{BackendKind, EnvSnapshot, ResolvedProfile};
use ctadata_core::credentials::{BearerToken, Secret, TokenProvider};
use ctadata_core::{Error, Result};
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

/// The profile's login session, or a configuration error saying why it has none.
pub fn session(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<Arc<OidcSession>> {
    if profile.backend() != BackendKind::Dcache {
        return Err(Error::config(
            format!(
                "profile '{}' uses the {} backend, which has no OIDC login",
                profile.name,
                profile.backend().as_str()
            ),
            "log in with a dcache profile (cta, cta-dev), e.g. 'cta-data --profile cta login'",
        ));
    }
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
                    "run 'cta-data login' in a terminal to be asked for it, or pipe it in with --secret-stdin",
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

/// The token the profile would use now (refreshed if needed), with its source.
pub async fn current_token(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<BearerToken> {
    token_chain(profile, env, insecure)?.token().await
}

/// The token chain of a `dcache` profile.
pub fn token_chain(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<ctadata_core::credentials::TokenChain> {
    if profile.backend() != BackendKind::Dcache {
        return Err(Error::config(
            format!("profile '{}' uses the {} backend, which does not use bearer tokens from this chain", profile.name, profile.backend().as_str()),
            "use a dcache profile (cta, cta-dev)",
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

/// Every source of the chain in order, with what it holds (nothing secret).
pub async fn status(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<(Vec<SourceStatus>, Option<BearerToken>)> {
    let chain = token_chain(profile, env, insecure)?;
    let mut out = Vec::new();
    let mut winner = None;
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
                Err(e) => format!("error: {e}"),
            }
        };
        out.push(SourceStatus {
            source: s.describe(),
            state,
        });
    }
    Ok((out, winner))
}
