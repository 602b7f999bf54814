//! Talking to the OpenID provider: discovery, the device flow, refresh, revocation.

use std::time::Duration;

use ctadata_core::credentials::Secret;
use ctadata_core::{AuthProblem, Error, Result};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreErrorResponseType, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType, CoreTokenResponse,
};
use openidconnect::{
    AdditionalProviderMetadata, ClientId, ClientSecret, DeviceAuthorizationUrl,
    DeviceCodeErrorResponseType, IssuerUrl, OAuth2TokenResponse, ProviderMetadata, RefreshToken,
    RequestTokenError, RevocationUrl, Scope,
};
use serde::{Deserialize, Serialize};

use crate::store::Session;

/// The discovery fields openidconnect's core metadata lacks.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ExtraMetadata {
    /// RFC 8628 device authorization endpoint.
    #[serde(default)]
    pub device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
    /// RFC 7009 revocation endpoint.
    #[serde(default)]
    pub revocation_endpoint: Option<RevocationUrl>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

/// Provider metadata with the device and revocation endpoints.
pub type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// What the user is shown during the device flow.
#[derive(Debug, Clone)]
pub struct DevicePrompt {
    /// Where to go.
    pub verification_uri: String,
    /// The code to type there.
    pub user_code: String,
    /// The link with the code in it, when the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// How long the code stays valid.
    pub expires_in: Duration,
}

/// An OpenID provider for one client.
#[derive(Debug, Clone)]
pub struct Provider {
    metadata: Metadata,
    http: reqwest::Client,
    client_id: String,
    secret: Secret,
    scope: Option<String>,
    profile: Option<String>,
}

fn unreachable_issuer(issuer: &str, e: impl std::fmt::Display) -> Error {
    Error::transport(
        issuer.to_string(),
        format!("the identity provider cannot be reached or read: {e}"),
    )
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s = format!("{s}: {t}");
        }
        src = x.source();
    }
    s
}

/// A client from the discovered metadata (a macro: the typestate differs per use).
macro_rules! client {
    ($s:expr) => {
        CoreClient::from_provider_metadata(
            $s.metadata.clone(),
            ClientId::new($s.client_id.clone()),
            Some(ClientSecret::new($s.secret.expose().to_string())),
        )
    };
}

impl Provider {
    /// Reads the issuer's discovery document.
    pub async fn discover(
        issuer: &str,
        client_id: &str,
        secret: Secret,
        scope: Option<String>,
        http: reqwest::Client,
    ) -> Result<Self> {
        // Keycloak's issuer has no trailing slash; configurations often add one.
        let mut candidates = vec![issuer.trim_end_matches('/').to_string()];
        if issuer.ends_with('/') {
            candidates.push(issuer.to_string());
        }
        let mut last = None;
        for cand in candidates {
            let url = IssuerUrl::new(cand.clone()).map_err(|e| {
                Error::config(
                    format!("invalid OIDC issuer '{issuer}': {e}"),
                    "fix [oidc] issuer in the profile",
                )
            })?;
            match Metadata::discover_async(url, &http).await {
                Ok(metadata) => {
                    return Ok(Self {
                        metadata,
                        http,
                        client_id: client_id.to_string(),
                        secret,
                        scope: scope.filter(|s| !s.trim().is_empty()),
                        profile: None,
                    })
                }
                Err(e) => last = Some(chain(&e)),
            }
        }
        Err(unreachable_issuer(issuer, last.unwrap_or_default()))
    }

    /// Names the profile this provider logs in for, so hints give the whole command
    /// (`cta-data --profile NAME login`), right whichever profile is the default.
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// `'cta-data [--profile NAME] <verb>'`, quoted, for hints.
    fn command(&self, verb: &str) -> String {
        match &self.profile {
            Some(p) => format!("'cta-data --profile {p} {verb}'"),
            None => format!("'cta-data {verb}'"),
        }
    }

    /// The issuer as the provider names itself.
    pub fn issuer(&self) -> String {
        self.metadata.issuer().to_string()
    }

    fn secret_refused(&self) -> Error {
        Error::Auth {
            problem: AuthProblem::Refused,
            message: format!(
                "the identity provider refused the client secret of client '{}'",
                self.client_id
            ),
            hint: format!(
                "reset it with {}, then {} asks for the secret again",
                self.command("reset-config"),
                self.command("login")
            ),
        }
    }

    /// Runs the device flow: `show` gets the prompt, then this polls until the user
    /// approves, denies, or the code expires.
    pub async fn device_login(&self, show: impl FnOnce(&DevicePrompt)) -> Result<Session> {
        let device_url = self.metadata.additional_metadata().device_authorization_endpoint.clone().ok_or_else(|| {
            Error::config(
                format!("the identity provider {} offers no device authorization endpoint", self.issuer()),
                "ask the provider's administrators to enable the OAuth 2.0 device grant for this client",
            )
        })?;
        let client = client!(self).set_device_authorization_url(device_url);
        let mut req = client.exchange_device_code();
        if let Some(s) = &self.scope {
            for part in s.split_whitespace() {
                req = req.add_scope(Scope::new(part.to_string()));
            }
        }
        let details: CoreDeviceAuthorizationResponse = req.request_async(&self.http).await.map_err(|e| match &e {
            RequestTokenError::ServerResponse(r) if *r.error() == CoreErrorResponseType::InvalidClient => self.secret_refused(),
            RequestTokenError::ServerResponse(r) if *r.error() == CoreErrorResponseType::UnauthorizedClient => Error::Auth {
                problem: AuthProblem::Refused,
                message: format!("client '{}' may not use the device flow at {}", self.client_id, self.issuer()),
                hint: "ask the provider's administrators to enable the device grant for this client".into(),
            },
            _ => unreachable_issuer(&self.issuer(), chain(&e)),
        })?;
        let prompt = DevicePrompt {
            verification_uri: details.verification_uri().to_string(),
            user_code: details.user_code().secret().to_string(),
            verification_uri_complete: details
                .verification_uri_complete()
                .map(|u| u.secret().to_string()),
            expires_in: details.expires_in(),
        };
        show(&prompt);
        // RFC 8628: wait the interval before each poll, the first one included.
        tokio::time::sleep(details.interval()).await;
        let token: CoreTokenResponse = client
            .exchange_device_access_token(&details)
            .map_err(|e| Error::internal("the device flow could not be set up").with_source(e))?
            .request_async(&self.http, tokio::time::sleep, None)
            .await
            .map_err(|e| match &e {
                RequestTokenError::ServerResponse(r) => match r.error() {
                    DeviceCodeErrorResponseType::AccessDenied => Error::Auth {
                        problem: AuthProblem::Refused,
                        message: "the login was denied at the identity provider".into(),
                        hint: format!(
                            "run {} again and approve the request",
                            self.command("login")
                        ),
                    },
                    DeviceCodeErrorResponseType::ExpiredToken => Error::Auth {
                        problem: AuthProblem::Expired,
                        message: format!(
                            "the code {} expired before it was approved ({} s)",
                            prompt.user_code,
                            prompt.expires_in.as_secs()
                        ),
                        hint: format!(
                            "run {} again and enter the new code in time",
                            self.command("login")
                        ),
                    },
                    DeviceCodeErrorResponseType::Basic(CoreErrorResponseType::InvalidClient) => {
                        self.secret_refused()
                    }
                    other => Error::Auth {
                        problem: AuthProblem::Refused,
                        message: format!(
                            "the identity provider ended the login: {}",
                            other.as_ref()
                        ),
                        hint: format!("run {} again", self.command("login")),
                    },
                },
                _ => unreachable_issuer(&self.issuer(), chain(&e)),
            })?;
        Ok(self.session_from(&token, None))
    }

    /// Trades the refresh token for new tokens; keeps the old refresh token when the
    /// provider sends none.
    pub async fn refresh(&self, old: &Session) -> Result<Session> {
        let Some(rt) = &old.refresh_token else {
            return Err(Error::Auth {
                problem: AuthProblem::Expired,
                message: "the login session has expired and holds no refresh token".into(),
                hint: format!("run {}", self.command("login")),
            });
        };
        let rt = RefreshToken::new(rt.clone());
        let client = client!(self);
        let token: CoreTokenResponse = client
            .exchange_refresh_token(&rt)
            .map_err(|e| {
                Error::config(
                    format!("the identity provider has no token endpoint: {e}"),
                    "check [oidc] issuer",
                )
            })?
            .request_async(&self.http)
            .await
            .map_err(|e| match &e {
                RequestTokenError::ServerResponse(r)
                    if *r.error() == CoreErrorResponseType::InvalidGrant =>
                {
                    Error::Auth {
                        problem: AuthProblem::Expired,
                        message:
                            "the login session has expired or was revoked at the identity provider"
                                .into(),
                        hint: format!("run {}", self.command("login")),
                    }
                }
                RequestTokenError::ServerResponse(r)
                    if *r.error() == CoreErrorResponseType::InvalidClient =>
                {
                    self.secret_refused()
                }
                _ => unreachable_issuer(&self.issuer(), chain(&e)),
            })?;
        Ok(self.session_from(&token, Some(old)))
    }

    /// Revokes a refresh token (RFC 7009); `Ok(false)` when the provider has no
    /// revocation endpoint. Done by hand: oauth2 insists on https, which a provider on
    /// loopback (tests, SSH tunnels) does not have.
    pub async fn revoke(&self, refresh_token: &str) -> Result<bool> {
        let Some(url) = self
            .metadata
            .additional_metadata()
            .revocation_endpoint
            .clone()
        else {
            return Ok(false);
        };
        let resp = self
            .http
            .post(url.url().clone())
            .basic_auth(
                form_encode(&self.client_id),
                Some(form_encode(self.secret.expose())),
            )
            .form(&[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ])
            .send()
            .await
            .map_err(|e| unreachable_issuer(&self.issuer(), chain(&e.without_url())))?;
        match resp.status().as_u16() {
            200 => Ok(true),
            401 => Err(self.secret_refused()),
            s => Err(Error::protocol(
                url.url().path().to_string(),
                Some(s),
                "the identity provider did not revoke the session",
            )),
        }
    }

    fn session_from(&self, t: &CoreTokenResponse, old: Option<&Session>) -> Session {
        let access = t.access_token().secret().to_string();
        let claims = ctadata_core::credentials::jwt_claims(&access);
        let now = chrono::Utc::now().timestamp();
        let exp_claim = claims
            .as_ref()
            .and_then(|c| c.get("exp"))
            .and_then(|v| v.as_i64());
        let expires_at = t
            .expires_in()
            .map(|d| now + d.as_secs() as i64)
            .or(exp_claim)
            .unwrap_or(now + 300);
        Session {
            issuer: self.issuer(),
            client_id: self.client_id.clone(),
            access_token: access,
            refresh_token: t
                .refresh_token()
                .map(|r| r.secret().to_string())
                .or_else(|| old.and_then(|o| o.refresh_token.clone())),
            expires_at,
            scope: t
                .scopes()
                .map(|s| {
                    s.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .or_else(|| old.and_then(|o| o.scope.clone())),
            subject: claims
                .as_ref()
                .and_then(|c| c.get("sub"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .or_else(|| old.and_then(|o| o.subject.clone())),
        }
    }
}

/// `application/x-www-form-urlencoded` of a client credential (RFC 6749 section 2.3.1).
fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
