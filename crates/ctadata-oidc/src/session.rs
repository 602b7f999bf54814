//! The login session as a token source: refreshed in-process when it is about to expire,
//! under an exclusive file lock so that many processes sharing a home directory refresh
//! once between them (the provider rotates refresh tokens: a second refresh with the same
//! one would end the session).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ctadata_core::credentials::{BearerToken, TokenSource};
use ctadata_core::{AuthProblem, Error, Result};
use tokio::sync::{Mutex, OnceCell};

use crate::flow::Provider;
use crate::store::{ProfileStore, Session};

/// What a session needs to know about its profile.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The profile's name (messages name the command to run).
    pub profile: String,
    /// The issuer URL.
    pub issuer: String,
    /// The OAuth client id.
    pub client_id: String,
    /// Scopes asked for at login.
    pub scope: Option<String>,
    /// Refresh when less than this is left (default 60 s).
    pub margin: Duration,
    /// The HTTP client for the provider (no redirects).
    pub http: reqwest::Client,
}

/// A profile's stored login, usable as a token source.
#[derive(Debug)]
pub struct OidcSession {
    store: ProfileStore,
    settings: SessionSettings,
    provider: OnceCell<Provider>,
    in_process: Mutex<()>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl OidcSession {
    /// A session over `store` for the profile described by `settings`.
    pub fn new(store: ProfileStore, settings: SessionSettings) -> Arc<Self> {
        Arc::new(Self {
            store,
            settings,
            provider: OnceCell::new(),
            in_process: Mutex::new(()),
        })
    }

    /// The store.
    pub fn store(&self) -> &ProfileStore {
        &self.store
    }

    fn login_hint(&self) -> String {
        format!("run 'cta-data --profile {} login'", self.settings.profile)
    }

    /// The provider, discovered once (needs the stored client secret).
    pub async fn provider(&self) -> Result<&Provider> {
        self.provider
            .get_or_try_init(|| async {
                let secret = self.store.secret()?.ok_or_else(|| Error::Auth {
                    problem: AuthProblem::Missing,
                    message: format!(
                        "the client secret of profile '{}' is not stored",
                        self.settings.profile
                    ),
                    hint: self.login_hint(),
                })?;
                Provider::discover(
                    &self.settings.issuer,
                    &self.settings.client_id,
                    secret,
                    self.settings.scope.clone(),
                    self.settings.http.clone(),
                )
                .await
                .map(|p| p.with_profile(&self.settings.profile))
            })
            .await
    }

    fn check_owner(&self, s: &Session) -> Result<()> {
        let same_issuer =
            s.issuer.trim_end_matches('/') == self.settings.issuer.trim_end_matches('/');
        if !same_issuer || s.client_id != self.settings.client_id {
            return Err(Error::Auth {
                problem: AuthProblem::Missing,
                message: format!(
                    "the stored session of profile '{}' belongs to {} (client {}), not to the profile's {} (client {})",
                    self.settings.profile, s.issuer, s.client_id, self.settings.issuer, self.settings.client_id
                ),
                hint: self.login_hint(),
            });
        }
        Ok(())
    }

    fn fresh(&self, s: &Session) -> bool {
        s.expires_at - now() > self.settings.margin.as_secs() as i64
    }

    /// The stored session as it is, without refreshing.
    pub fn stored(&self) -> Result<Option<Session>> {
        self.store.session()
    }

    /// Refreshes under the lock unless another process did it meanwhile; `rejected` forces
    /// a refresh when the stored access token is that one.
    pub async fn refresh_locked(&self, rejected: Option<&str>) -> Result<Session> {
        let _one_at_a_time = self.in_process.lock().await;
        let store = self.store.clone();
        let lock = tokio::task::spawn_blocking(move || store.lock())
            .await
            .map_err(|e| Error::internal("the lock task failed").with_source(e))??;
        let s = self.store.session()?.ok_or_else(|| Error::Auth {
            problem: AuthProblem::Missing,
            message: format!("profile '{}' has no login session", self.settings.profile),
            hint: self.login_hint(),
        })?;
        self.check_owner(&s)?;
        let forced = rejected.is_some_and(|r| r == s.access_token);
        if self.fresh(&s) && !forced {
            tracing::debug!("the session was refreshed meanwhile");
            return Ok(s);
        }
        let provider = self.provider().await?;
        let new = provider.refresh(&s).await.map_err(|e| match e {
            Error::Auth {
                problem, message, ..
            } => Error::Auth {
                problem,
                message,
                hint: self.login_hint(),
            },
            other => other,
        })?;
        self.store.save_session(&new)?;
        drop(lock);
        tracing::info!(profile = %self.settings.profile, "access token refreshed");
        Ok(new)
    }

    fn token(&self, s: &Session) -> BearerToken {
        BearerToken::new(s.access_token.clone(), self.describe()).with_fix(self.login_hint())
    }
}

#[async_trait]
impl TokenSource for OidcSession {
    fn describe(&self) -> String {
        format!(
            "login session of profile '{}' ({})",
            self.settings.profile,
            self.store.session_path().display()
        )
    }

    async fn fetch(&self) -> Result<Option<BearerToken>> {
        let Some(s) = self.store.session()? else {
            return Ok(None);
        };
        self.check_owner(&s)?;
        if self.fresh(&s) {
            return Ok(Some(self.token(&s)));
        }
        Ok(Some(self.token(&self.refresh_locked(None).await?)))
    }

    async fn refresh(&self, rejected: &BearerToken) -> Result<Option<BearerToken>> {
        let s = self.refresh_locked(Some(rejected.token.expose())).await?;
        Ok(Some(self.token(&s)))
    }
}

/// `oidc-agent`'s `oidc-token <account>`: the last token source. Only the account name is
/// on the child's command line; the token comes back on its stdout.
#[derive(Debug, Clone)]
pub struct OidcAgentSource {
    /// The oidc-agent account.
    pub account: String,
    /// The program (default `oidc-token`).
    pub program: String,
}

impl OidcAgentSource {
    /// A source for `account`.
    pub fn new(account: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            program: "oidc-token".into(),
        }
    }
}

#[async_trait]
impl TokenSource for OidcAgentSource {
    fn describe(&self) -> String {
        format!("oidc-agent account '{}'", self.account)
    }

    async fn fetch(&self) -> Result<Option<BearerToken>> {
        let child = tokio::process::Command::new(&self.program)
            .arg(&self.account)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(Duration::from_secs(30), child).await {
            Err(_) => {
                tracing::warn!(account = %self.account, "oidc-token did not answer within 30 s");
                return Ok(None);
            }
            Ok(Err(e)) => {
                tracing::debug!("oidc-token not usable: {e}");
                return Ok(None);
            }
            Ok(Ok(o)) => o,
        };
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            tracing::warn!(account = %self.account, "oidc-token failed: {}", err.trim());
            return Ok(None);
        }
        let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if t.is_empty() {
            return Ok(None);
        }
        Ok(Some(BearerToken::new(t, self.describe()).with_fix(
            format!(
                "check 'oidc-token {}' (is oidc-agent running?)",
                self.account
            ),
        )))
    }

    async fn refresh(&self, _rejected: &BearerToken) -> Result<Option<BearerToken>> {
        self.fetch().await
    }
}
