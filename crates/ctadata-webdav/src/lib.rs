//! WebDAV for cta-data, done once: PROPFIND with `Depth: 1` parsed as a stream, GET with
//! ranges and redirects, PUT with a real `Expect: 100-continue`, MKCOL/DELETE/MOVE,
//! `Want-Digest` checksums, retries with backoff, and rustls TLS with grid CA directories.
//! It knows nothing of OIDC or X.509: credentials arrive as an [`Auth`] or a TLS identity.
#![warn(missing_docs)]

pub mod client;
pub mod digest;
pub mod propfind;
pub mod rawput;
pub mod retry;
pub mod tls;
pub mod urls;

pub use client::{Auth, WebDav, WebDavConfig};
pub use retry::RetryPolicy;
pub use tls::TlsOptions;

use std::path::PathBuf;

use ctadata_core::config::{EnvSnapshot, Profile};

/// The TLS settings of a profile: its `ca_file`, its `ca_dir` (else `X509_CERT_DIR`) and the
/// system roots, without a client identity.
pub fn profile_tls(profile: &Profile, env: &EnvSnapshot, insecure: bool) -> TlsOptions {
    TlsOptions {
        ca_file: profile.ca_file.clone(),
        ca_dir: profile
            .ca_dir
            .clone()
            .or_else(|| env.get("X509_CERT_DIR").map(PathBuf::from)),
        insecure,
        system_roots: true,
        client_identity: None,
    }
}
