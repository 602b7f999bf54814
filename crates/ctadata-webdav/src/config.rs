//! What a WebDAV backend is built from: the URL, TLS, credentials and timeouts.

use std::sync::Arc;
use std::time::Duration;

use ctadata_core::credentials::TokenProvider;
use ctadata_core::Result;

use crate::tls::TlsOptions;

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Nothing beyond TLS (X.509 client certificates live in [`TlsOptions`]).
    None,
    /// `Authorization: Bearer` from a token provider, sent only to the base URL's origin.
    Bearer(Arc<dyn TokenProvider>),
}

/// A credential that is not a token (an X.509 proxy), checked before every request: an
/// expired one gives its own error at once, not a refused TLS handshake later.
pub trait CredentialCheck: Send + Sync + std::fmt::Debug {
    /// `Ok` when the credential may be used now; else the error to give (`Error::Auth`).
    fn check(&self) -> Result<()>;
}

/// Everything a WebDAV backend needs.
#[derive(Debug, Clone)]
pub struct WebDavConfig {
    /// The door (or passthrough) URL; paths are relative to it.
    pub url: String,
    /// The backend's name, for messages and capabilities (`dcache`, `x509`).
    pub backend_name: &'static str,
    /// TLS trust and identity.
    pub tls: TlsOptions,
    /// Credentials.
    pub auth: Auth,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Longest wait for an answer's head: long, because dCache holds a GET while a pool
    /// stages the file from tape.
    pub read_timeout: Duration,
    /// Longest silence inside an answer's body before the read is given up (and resumed
    /// by the retry layer).
    pub idle_timeout: Duration,
    /// Wait for `100 Continue` or a redirect before sending a PUT body anyway.
    pub continue_timeout: Duration,
    /// Parallel transfers that suit this server.
    pub default_jobs: usize,
    /// Checked before every request (the x509 backend's proxy); `None`: nothing to check.
    pub credential_check: Option<Arc<dyn CredentialCheck>>,
}

impl WebDavConfig {
    /// Defaults for `url` with the given auth.
    pub fn new(url: impl Into<String>, backend_name: &'static str, auth: Auth) -> Self {
        Self {
            url: url.into(),
            backend_name,
            tls: TlsOptions::system(),
            auth,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
            continue_timeout: Duration::from_secs(60),
            default_jobs: 4,
            credential_check: None,
        }
    }
}
